"""The Twilio auth token never appears in a log line, an exception string, a repr, run config or
a Dagster event."""

from __future__ import annotations

import logging

import pytest
from dagster import EnvVar, job, op

from lending_dev.sandbox.twilio import DEV_ACCOUNT_SID, DEV_AUTH_TOKEN
from lending_pipelines.partners.twilio import WhatsAppError
from lending_pipelines.resources.whatsapp import WhatsAppResource

TEMPLATE = "HX" + "ab" * 16


def test_no_log_line_or_error_contains_the_auth_token(sandbox, caplog):
    caplog.set_level(logging.DEBUG)
    resource = WhatsAppResource(
        account_sid=DEV_ACCOUNT_SID,
        auth_token=DEV_AUTH_TOKEN,
        from_number="+14155238886",
        base_url=sandbox.url("twilio"),
        backoff_seconds=0.01,
        rate_limit_max_retries=1,
    )
    texts = [repr(resource), str(resource)]
    with resource.get_client() as client:
        sid = client.send_template("+254712345678", TEMPLATE, {"1": "x"}).sid
        client.fetch_message(sid)
        sandbox.set_faults({"twilio": {"rate_limit_rate": 1}})
        with pytest.raises(WhatsAppError) as limited:
            client.send_text("+254712345678", "hi")
        sandbox.clear_faults()
        texts += [str(limited.value), repr(limited.value)]
    wrong = resource.model_copy(update={"auth_token": DEV_AUTH_TOKEN + "-wrong"})
    with wrong.get_client() as client, pytest.raises(WhatsAppError) as refused:
        client.send_template("+254712345678", TEMPLATE)
    texts += [str(refused.value), repr(refused.value), repr(wrong)]
    logged = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    assert "HTTP Request" in logged  # httpx's request log was captured
    joined = "\n".join(texts) + logged
    assert DEV_AUTH_TOKEN not in joined


def test_dagster_run_config_and_events_never_hold_the_token(sandbox, monkeypatch):
    monkeypatch.setenv("LEAKCHECK_TWILIO_TOKEN", DEV_AUTH_TOKEN)

    @op
    def notify(whatsapp: WhatsAppResource) -> None:
        with whatsapp.get_client() as client:
            client.send_template("+254712345678", TEMPLATE)
            client.send_template("not-a-number", TEMPLATE)

    @job(
        resource_defs={
            "whatsapp": WhatsAppResource(
                account_sid=DEV_ACCOUNT_SID,
                auth_token=EnvVar("LEAKCHECK_TWILIO_TOKEN"),
                from_number="+14155238886",
                base_url=sandbox.url("twilio"),
            )
        }
    )
    def leak_job():
        notify()

    result = leak_job.execute_in_process(raise_on_error=False)
    assert not result.success
    events = "\n".join(str(event) for event in result.all_events)
    assert "not-a-number" in events
    assert DEV_AUTH_TOKEN not in events
    assert DEV_AUTH_TOKEN not in str(result.dagster_run.run_config)
