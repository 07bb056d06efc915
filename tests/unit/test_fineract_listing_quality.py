"""A partner's listing with one malformed loan, or a totalFilteredRecords that lies: the good
loans are kept, the bad one is named, and paging stops at the first short page."""

from __future__ import annotations

import asyncio

import httpx
import respx

from lending_pipelines.resources.fineract import BadLoanRecord
from tests.unit.test_fineract_resource import LOANS, client, loan_json, page


@respx.mock
def test_one_loan_with_a_principal_of_12500_with_a_comma_does_not_stop_the_others():
    respx.get(LOANS).mock(
        side_effect=[
            page(3, loan_json(1), loan_json(2, principal="12,500.00")),
            page(3, loan_json(3)),
        ]
    )
    listing = client().list_loans(200)
    assert [loan.id for loan in listing.loans] == [1, 3]
    assert listing.bad_records == [
        BadLoanRecord(loan_id=2, field="principal", value="'12,500.00'", expected="a decimal")
    ]
    assert listing.records_received == 3 and not listing.total_mismatch


@respx.mock
def test_a_server_claiming_a_million_loans_is_paged_until_its_first_short_page():
    route = respx.get(LOANS).mock(
        side_effect=[
            page(1_000_000, loan_json(1), loan_json(2)),
            page(1_000_000, loan_json(3)),
            page(1_000_000),
        ]
    )
    listing = client().list_loans(200)
    assert [loan.id for loan in listing.loans] == [1, 2, 3]
    assert route.call_count == 2
    assert listing.total_mismatch
    assert (listing.total_reported, listing.records_received) == (1_000_000, 3)


@respx.mock
def test_concurrent_paging_of_a_lying_server_costs_one_wave_not_thousands_of_requests():
    def answer(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        if offset >= 6:  # the real book ends at 6 loans; the claimed total says 1,000,000
            return page(1_000_000)
        return page(1_000_000, loan_json(offset + 1), loan_json(offset + 2))

    route = respx.get(LOANS).mock(side_effect=answer)
    listing = asyncio.run(client(page_concurrency=4).alist_loans(200))
    assert sorted(loan.id for loan in listing.loans) == [1, 2, 3, 4, 5, 6]
    assert route.call_count == 1 + 4  # the first page, then the one wave that finds the end
    assert listing.total_mismatch and listing.records_received == 6


@respx.mock
def test_concurrent_paging_keeps_good_loans_and_names_the_bad_one():
    respx.get(LOANS).mock(
        side_effect=lambda request: {
            "0": page(4, loan_json(1), loan_json(2, clientId="seven")),
            "2": page(4, loan_json(3), loan_json(4)),
        }[request.url.params["offset"]]
    )
    listing = asyncio.run(client(page_concurrency=4).alist_loans(200))
    assert sorted(loan.id for loan in listing.loans) == [1, 3, 4]
    assert [(b.loan_id, b.field) for b in listing.bad_records] == [(2, "clientId")]
