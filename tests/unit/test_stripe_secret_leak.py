"""The Stripe API key never appears in a log line, an exception string, a repr, run config or a
Dagster event — on success, on refusal and on failure."""

from __future__ import annotations

import logging

import httpx
import pytest
import respx
from dagster import EnvVar, job, op

from lending_pipelines.partners.stripe import StripeConnectError
from lending_pipelines.resources.stripe_connect import StripeConnectResource

SECRET = "sk_test_leakcheck_5e3c7a91b2d4f6"


def everything_logged(caplog) -> str:
    return "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)


def test_no_log_line_or_error_contains_the_api_key(sandbox, caplog, monkeypatch):
    import stripe

    monkeypatch.setattr(stripe, "log", "debug")  # the SDK's most verbose logging
    caplog.set_level(logging.DEBUG)
    resource = StripeConnectResource(
        api_key=SECRET, api_base=sandbox.url("stripe"), rate_limit_backoff_seconds=0.01
    )
    client = resource.get_client()
    texts = [repr(resource), str(resource), str(resource.model_dump(exclude={"api_key"}))]
    client.available_balance()
    client.check_account("acct_1DevCreatorReady01")
    client.create_transfer(
        amount=100, currency="usd", destination="acct_1DevCreatorReady01", idempotency_key="s1"
    )
    sandbox.configure("stripe", {"balance": {"usd": 1}})
    for call in (
        lambda: client.create_transfer(
            amount=100,
            currency="usd",
            destination="acct_1DevCreatorReady02",
            idempotency_key="s2",
        ),
        lambda: client.check_account("acct_missing"),
        lambda: (
            StripeConnectResource(
                api_key=SECRET.replace("sk_test", "rk_live"), api_base=sandbox.url("stripe")
            )
            .get_client()
            .available_balance()
        ),
    ):
        with pytest.raises(StripeConnectError) as info:
            call()
        texts += [str(info.value), repr(info.value), str(info.value.args)]
    joined = "\n".join(texts) + everything_logged(caplog)
    assert "Request to Stripe api" in joined  # the SDK's logging was captured
    assert SECRET not in joined and SECRET.replace("sk_test", "rk_live") not in joined


@respx.mock
def test_an_api_key_echoed_by_a_proxy_is_redacted(caplog):
    caplog.set_level(logging.DEBUG)
    respx.get("https://stripe.test/v1/balance").mock(
        return_value=httpx.Response(
            502, json={"error": {"message": f"upstream refused key {SECRET}", "type": "api_error"}}
        )
    )
    client = StripeConnectResource(
        api_key=SECRET, api_base="https://stripe.test", max_network_retries=0
    ).get_client()
    with pytest.raises(StripeConnectError) as info:
        client.available_balance()
    assert SECRET not in str(info.value) and "***" in str(info.value)


def test_dagster_run_config_and_events_never_hold_the_key(sandbox, monkeypatch):
    monkeypatch.setenv("LEAKCHECK_STRIPE_KEY", SECRET)

    @op
    def pay(stripe_connect: StripeConnectResource) -> None:
        client = stripe_connect.get_client()
        client.available_balance()
        client.create_transfer(
            amount=10, currency="usd", destination="acct_unknown", idempotency_key="leak-1"
        )

    @job(
        resource_defs={
            "stripe_connect": StripeConnectResource(
                api_key=EnvVar("LEAKCHECK_STRIPE_KEY"), api_base=sandbox.url("stripe")
            )
        }
    )
    def leak_job():
        pay()

    result = leak_job.execute_in_process(raise_on_error=False)
    assert not result.success  # the unknown destination fails the op, with its error text
    events = "\n".join(str(event) for event in result.all_events)
    assert "acct_unknown" in events
    assert SECRET not in events
    assert SECRET not in str(result.dagster_run.run_config)
