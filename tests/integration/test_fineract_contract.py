"""Every FineractClient method against the Fineract sandbox over real HTTP."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import date
from decimal import Decimal

import httpx
import pytest

from lending_pipelines.resources.fineract import (
    API_PREFIX,
    FineractFinalError,
    FineractResource,
    FineractRetryableError,
    LoanStatusId,
)


def tenant(sandbox, tenant_id: str = "acme", password: str = "acme-pass", **settings):
    resource = FineractResource(**{"backoff_base_seconds": 0.01, **settings})
    return resource.client_for(
        base_url=sandbox.url("fineract"), tenant_id=tenant_id, username="mifos", password=password
    )


def approved_in_sandbox(sandbox, tenant_id: str) -> set[int]:
    loans = sandbox.state("fineract")["tenants"][tenant_id]["loans"]
    return {int(i) for i, loan in loans.items() if loan["status"] == 200}


def test_listing_returns_every_approved_loan_across_pages(sandbox):
    listing = tenant(sandbox, page_size=7).list_loans(LoanStatusId.APPROVED)
    assert {loan.id for loan in listing.loans} == approved_in_sandbox(sandbox, "acme")
    assert len(listing.loans) == 60 and listing.pages == 9  # 60 / 7 rounded up
    assert all(loan.status.id == 200 and loan.status.value == "Approved" for loan in listing.loans)
    assert all(isinstance(loan.principal, Decimal) for loan in listing.loans)


def test_async_listing_matches_the_sync_listing(sandbox):
    client = tenant(sandbox, page_size=10, page_concurrency=3)
    sync_ids = [loan.id for loan in client.list_loans().loans]
    async_ids = [loan.id for loan in asyncio.run(client.alist_loans()).loans]
    assert sorted(async_ids) == sorted(sync_ids) and len(set(async_ids)) == len(async_ids)


def test_other_statuses_can_be_listed(sandbox):
    active = tenant(sandbox).list_loans(LoanStatusId.ACTIVE)
    assert len(active.loans) == 12
    assert all(loan.total_outstanding is not None for loan in active.loans)  # summary from 300


def test_an_old_server_is_filtered_with_sqlsearch(sandbox):
    old = tenant(sandbox, "umoja", "umoja-pass", filter_mode="sqlSearch").list_loans()
    assert {loan.id for loan in old.loans} == approved_in_sandbox(sandbox, "umoja")
    assert old.other_status_dropped == 0


def test_the_status_filter_on_an_old_server_is_ignored_but_nothing_else_gets_through(sandbox):
    wrong_mode = tenant(sandbox, "umoja", "umoja-pass", filter_mode="status").list_loans()
    assert {loan.id for loan in wrong_mode.loans} == approved_in_sandbox(sandbox, "umoja")
    assert wrong_mode.other_status_dropped == 6  # the 3 pending + 3 active loans came back too


def test_new_approved_loans_appear_over_time(sandbox):
    sandbox.configure(
        "fineract", {"add_tenants": [{"id": "growing", "loans": 2, "new_loans_per_minute": 1200}]}
    )
    client = tenant(sandbox, "growing", "password")
    before = len(client.list_loans().loans)
    time.sleep(0.3)
    after = len(client.list_loans().loans)
    assert before >= 2 and after >= before + 3


def test_get_loan_and_borrower_give_the_phone_number_behind_a_loan(sandbox):
    client = tenant(sandbox)
    loan = client.get_loan(1)
    borrower = client.get_borrower(loan.client_id)
    expected = sandbox.state("fineract")["tenants"]["acme"]["loans"]["1"]["mobile_no"]
    assert loan.id == 1 and loan.approved_on is not None
    assert borrower.id == loan.client_id and borrower.mobile_no == expected


def test_an_unknown_loan_is_a_final_404(sandbox):
    with pytest.raises(FineractFinalError) as caught:
        tenant(sandbox).get_loan(99999)
    assert caught.value.status_code == 404 and "error.msg.loan.id.invalid" in str(caught.value)


def test_wrong_credentials_are_a_final_401(sandbox):
    with pytest.raises(FineractFinalError) as caught:
        tenant(sandbox, "duka", "not-the-password").list_loans()
    assert caught.value.status_code == 401 and "tenant 'duka'" in str(caught.value)


def test_a_request_without_tenant_is_refused_with_400(sandbox):
    response = httpx.get(
        f"{sandbox.url('fineract')}{API_PREFIX}/loans", auth=("mifos", "acme-pass"), timeout=5
    )
    assert response.status_code == 400 and "tenant" in response.text.lower()


def test_a_read_only_user_gets_403_on_commands(sandbox):
    sandbox.configure(
        "fineract",
        {"add_tenants": [{"id": "ro", "loans": 2, "read_only_users": {"viewer": "view-pass"}}]},
    )
    viewer = FineractResource().client_for(
        base_url=sandbox.url("fineract"), tenant_id="ro", username="viewer", password="view-pass"
    )
    assert len(viewer.list_loans().loans) == 2
    with pytest.raises(FineractFinalError) as caught:
        viewer.disburse(1, on=date.today(), reference="R1")
    assert caught.value.status_code == 403 and "error.msg.not.authorized" in str(caught.value)


def test_disbursing_moves_the_loan_to_active_and_records_the_mpesa_reference(sandbox):
    client = tenant(sandbox)
    result = client.disburse(
        5, on=date.today(), reference="SGX1234567", receipt_number="SGX1234567"
    )
    assert result.loan_id == 5 and result.sub_resource_external_id == "mpesa-SGX1234567"
    assert client.get_loan(5).status.id == 300
    recorded = sandbox.state("fineract")["tenants"]["acme"]["disbursements"]
    assert [(d["loan_id"], d["externalId"], d["receiptNumber"]) for d in recorded] == [
        (5, "mpesa-SGX1234567", "SGX1234567")
    ]


def test_a_repeated_disburse_with_the_same_key_replays_instead_of_disbursing_twice(sandbox):
    client = tenant(sandbox)
    first = client.disburse(6, on=date.today(), reference="SGX0000006")
    again = client.disburse(6, on=date.today(), reference="SGX0000006")
    assert not first.served_from_cache and again.served_from_cache
    assert again.sub_resource_id == first.sub_resource_id
    assert len(sandbox.state("fineract")["tenants"]["acme"]["disbursements"]) == 1


def test_disbursing_an_already_disbursed_loan_with_a_new_key_is_a_final_400(sandbox):
    client = tenant(sandbox)
    client.disburse(7, on=date.today(), reference="A")
    with pytest.raises(FineractFinalError) as caught:
        client.disburse(7, on=date.today(), reference="B")
    assert caught.value.status_code == 400
    assert "error.msg.loan.disbursal.account.is.not.approve.not.disbursed.state" in (
        caught.value.error_codes
    )


def test_a_locked_loan_is_retried_by_the_client_and_then_disbursed(sandbox):
    sandbox.configure("fineract", {"lock_loans": {"tenant": "acme", "loan_ids": [8], "times": 2}})
    result = tenant(sandbox, max_attempts=3).disburse(8, on=date.today(), reference="L8")
    assert result.loan_id == 8
    assert sandbox.state("fineract")["tenants"]["acme"]["command_requests"] == 3


def test_a_loan_locked_longer_than_the_retry_budget_is_a_retryable_409(sandbox):
    sandbox.configure("fineract", {"lock_loans": {"tenant": "acme", "loan_ids": [9], "times": 5}})
    with pytest.raises(FineractRetryableError) as caught:
        tenant(sandbox, max_attempts=2).disburse(9, on=date.today(), reference="L9")
    assert caught.value.status_code == 409 and "error.msg.loan.locked" in str(caught.value)


def test_a_concurrent_duplicate_gets_425_while_the_first_is_processing(sandbox):
    sandbox.configure("fineract", {"processing_delay_ms": 400})
    client = tenant(sandbox, max_attempts=1)
    errors: list[Exception] = []
    first = threading.Thread(target=lambda: client.disburse(10, on=date.today(), reference="C"))
    first.start()
    time.sleep(0.1)
    try:
        tenant(sandbox, max_attempts=1).disburse(10, on=date.today(), reference="C")
    except FineractRetryableError as exc:
        errors.append(exc)
    first.join()
    assert errors and errors[0].status_code == 425
    assert len(sandbox.state("fineract")["tenants"]["acme"]["disbursements"]) == 1


def test_repayment_reduces_the_outstanding_balance(sandbox):
    client = tenant(sandbox)
    client.disburse(11, on=date.today(), reference="D11")
    principal = client.get_loan(11).principal
    result = client.repay(11, amount=Decimal("500"), on=date.today(), reference="P1")
    assert result.resource_id is not None
    assert client.get_loan(11).total_outstanding == principal - 500


def test_repayment_on_a_loan_that_is_not_active_is_a_final_403(sandbox):
    with pytest.raises(FineractFinalError) as caught:
        tenant(sandbox).repay(12, amount=Decimal("10"), on=date.today(), reference="P2")
    assert caught.value.status_code == 403
