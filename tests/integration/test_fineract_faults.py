"""Fault injection on the Fineract sandbox: the client retries through 5xx, latency, timeouts
and cut bodies without losing or duplicating loans, and faults stay scoped to one tenant."""

from __future__ import annotations

import asyncio
import time

import pytest

from lending_pipelines.resources.fineract import FineractResource, FineractRetryableError

BIG = {"id": "big", "loans": 1000, "invalid_phone_every": 0}


def big_tenant(sandbox, **settings):
    sandbox.configure("fineract", {"add_tenants": [BIG]})
    resource = FineractResource(
        **{"page_size": 100, "max_attempts": 8, "backoff_base_seconds": 0.02, **settings}
    )
    return resource.client_for(
        base_url=sandbox.url("fineract"), tenant_id="big", username="mifos", password="password"
    )


def test_listing_1000_loans_across_10_pages_survives_30_percent_5xx_and_200ms_latency(sandbox):
    client = big_tenant(sandbox, timeout_seconds=5)
    sandbox.set_faults({"fineract:big": {"error_rate": 0.3, "latency_ms": 200}})
    started = time.monotonic()
    listing = client.list_loans()
    elapsed = time.monotonic() - started
    ids = [loan.id for loan in listing.loans]
    assert len(ids) == 1000 and len(set(ids)) == 1000
    assert listing.pages == 10
    injected = sandbox.admin.get("/_admin/faults").json()["counts"].get("fineract:error", 0)
    assert injected > 0  # the faults really happened
    assert elapsed < 30


def test_concurrent_page_fetching_under_faults_also_returns_each_loan_exactly_once(sandbox):
    client = big_tenant(sandbox, page_concurrency=5, timeout_seconds=5)
    sandbox.set_faults({"fineract:big": {"error_rate": 0.3, "latency_ms": 50}})
    ids = [loan.id for loan in asyncio.run(client.alist_loans()).loans]
    assert sorted(ids) == list(range(1, 1001))


def test_a_server_that_never_answers_fails_with_a_retryable_timeout(sandbox):
    client = big_tenant(sandbox, timeout_seconds=0.2, max_attempts=2)
    sandbox.set_faults({"fineract:big": {"timeout_rate": 1.0}})
    with pytest.raises(FineractRetryableError, match="tenant 'big'.*timed out"):
        client.list_loans()


def test_a_cut_json_body_fails_with_a_retryable_error_naming_the_tenant(sandbox):
    client = big_tenant(sandbox, max_attempts=2)
    sandbox.set_faults({"fineract:big": {"malformed_rate": 1.0}})
    with pytest.raises(FineractRetryableError, match="tenant 'big'.*not valid JSON"):
        client.list_loans()


def test_faults_on_one_tenant_leave_the_others_untouched(sandbox):
    big_tenant(sandbox)
    sandbox.set_faults({"fineract:big": {"error_rate": 1.0}})
    acme = FineractResource(max_attempts=1).client_for(
        base_url=sandbox.url("fineract"), tenant_id="acme", username="mifos", password="acme-pass"
    )
    assert len(acme.list_loans().loans) == 60
