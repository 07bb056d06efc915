"""A Fineract listing page is read in one pass from its bytes when it is plainly well-formed; a
page with a malformed loan, or a number a float could not carry exactly, is read the exact way,
so no malformed loan is accepted and no amount changes on the way in."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import httpx
import pytest
import respx

from lending_pipelines.partners.fineract import client as client_module
from lending_pipelines.partners.fineract import listing as one_pass
from lending_pipelines.partners.fineract.listing import numbers_read_exactly
from lending_pipelines.partners.fineract.models import (
    CurrencyPayload,
    LoanPayload,
    StatusPayload,
    SummaryPayload,
    TimelinePayload,
    parse_page,
)
from lending_pipelines.resources.fineract import FineractResource
from tests.unit.test_fineract_resource import BASE, LOANS, client, loan_json, page


def raw_page(total: int, *items: str) -> httpx.Response:
    """A page written by hand, so that numbers reach the client exactly as typed here."""
    body = f'{{"totalFilteredRecords": {total}, "pageItems": [{",".join(items)}]}}'
    return httpx.Response(200, content=body.encode(), headers={"content-type": "application/json"})


def loan_text(loan_id: int, principal: str = "5000.000000") -> str:
    body = json.dumps(loan_json(loan_id, principal=0))
    return body.replace('"principal": 0', f'"principal": {principal}')


def list_both_ways(**settings):
    """The same listing through the sync and the async (polling) client."""
    sync = client(**settings).list_loans(200)
    concurrent = asyncio.run(client(**settings).alist_loans(200))
    return sync, concurrent


@respx.mock
def test_a_well_formed_page_is_read_in_one_pass_without_the_loan_by_loan_reader(monkeypatch):
    def loan_by_loan(*args):
        raise AssertionError("a well-formed page went through the loan-by-loan reader")

    monkeypatch.setattr(client_module, "parse_page", loan_by_loan)
    respx.get(LOANS).mock(
        side_effect=lambda request: (
            page(3, loan_json(1), loan_json(2))
            if request.url.params["offset"] == "0"
            else page(3, loan_json(3, principal=4999.9))
        )
    )
    for listing in list_both_ways():
        assert [loan.id for loan in listing.loans] == [1, 2, 3]
        assert listing.loans[2].principal == Decimal("4999.9")
        assert listing.loans[0].approved_on.isoformat() == "2024-10-02"
        assert not listing.bad_records and listing.pages == 2


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("123456789012.123456789", Decimal("123456789012.123456789")),  # 21 digits
        ("0.1000000000000000000001", Decimal("0.1000000000000000000001")),  # a float says 0.1
        ("1e-400", Decimal("1E-400")),  # a float says 0.0
        ("12345678901234567890", Decimal("12345678901234567890")),
    ],
)
@respx.mock
def test_an_amount_a_float_cannot_carry_is_read_exactly_from_its_text(written, read):
    respx.get(LOANS).mock(return_value=raw_page(2, loan_text(1), loan_text(2, written)))
    for listing in list_both_ways():
        assert [loan.principal for loan in listing.loans] == [Decimal("5000.000000"), read]
        assert not listing.bad_records


def test_only_numbers_of_at_most_15_digits_without_an_exponent_count_as_float_safe():
    assert numbers_read_exactly(b'{"a": 123456789012.345, "b": [2024, 10, 2], "c": "LN-00001"}')
    assert not numbers_read_exactly(b'{"a": 1234567890123.4567}')
    assert not numbers_read_exactly(b'{"a": 5e3}')
    assert not numbers_read_exactly(b'{"a": 5.0E-3}')


@pytest.mark.parametrize(
    ("written", "field", "value", "expected"),
    [
        ('"approvedOnDate": [2024, 2, 30]', "timeline.approvedOnDate", "[2024, 2, 30]",
         "a date as [yyyy, m, d]"),
        ('"approvedOnDate": [2024, true, 1]', "timeline.approvedOnDate", "[2024, True, 1]",
         "a date as [yyyy, m, d]"),
        ('"approvedOnDate": [2024, 10]', "timeline.approvedOnDate", "[2024, 10]",
         "a date as [yyyy, m, d]"),
        ('"approvedOnDate": [2024, 10, 2.0]', "timeline.approvedOnDate",
         "[2024, 10, Decimal('2.0')]", "a date as [yyyy, m, d]"),
        ('"approvedOnDate": "2024-10-02"', "timeline.approvedOnDate", "'2024-10-02'",
         "a date as [yyyy, m, d]"),
        ('"principal": true', "principal", "True", "a decimal"),
        ('"principal": NaN', "principal", "nan", "a decimal"),
        ('"principal": "12,500.00"', "principal", "'12,500.00'", "a decimal"),
        ('"code": 7', "status.code", "7", "a string"),
        ('"accountNo": 2', "accountNo", "2", "a string"),
    ],
)  # fmt: skip
@respx.mock
def test_a_malformed_loan_in_a_good_page_is_set_aside_naming_field_and_value(
    written, field, value, expected
):
    good = loan_text(2)
    name = written.split(":")[0]
    start = good.index(name)
    end = min(i for i in (good.find(",", start), good.find("}", start)) if i > 0)
    if good[start:end].count("[") > good[start:end].count("]"):  # a date: up to its "]"
        end = good.index("]", start) + 1
    bad = good[:start] + written + good[end:]
    respx.get(LOANS).mock(return_value=raw_page(3, loan_text(1), bad, loan_text(3)))
    for listing in list_both_ways(page_size=3):
        assert [loan.id for loan in listing.loans] == [1, 3]
        assert [(b.loan_id, b.field, b.value, b.expected) for b in listing.bad_records] == [
            (2, field, value, expected)
        ]


def test_the_one_pass_reader_knows_every_field_of_the_loan_model():
    def wire_names(model):
        return {info.alias or name for name, info in model.model_fields.items()}

    assert set(one_pass._Loan.__annotations__) == wire_names(LoanPayload)
    assert set(one_pass._Status.__annotations__) == wire_names(StatusPayload)
    assert set(one_pass._Currency.__annotations__) == wire_names(CurrencyPayload)
    assert set(one_pass._Timeline.__annotations__) == wire_names(TimelinePayload)
    assert set(one_pass._Summary.__annotations__) == wire_names(SummaryPayload)


def test_both_readers_make_the_same_loans_of_a_page_with_every_field():
    full = loan_json(
        7,
        status=300,
        externalId="LN-7",
        clientName="Otieno Wanjiru",
        loanProductName="Mobile Micro Loan",
        principal=15000.5,
        approvedPrincipal=15000.5,
        netDisbursalAmount=14800.25,
        timeline={
            "submittedOnDate": [2026, 11, 27],
            "approvedOnDate": [2026, 11, 28],
            "expectedDisbursementDate": [2026, 11, 29],
            "actualDisbursementDate": [2026, 11, 30],
        },
        summary={"totalOutstanding": 12000.75},
    )
    content = json.dumps({"totalFilteredRecords": 2, "pageItems": [full, loan_json(8)]}).encode()
    fast = one_pass.read_page("acme", content)
    exact = parse_page("acme", json.loads(content, parse_float=Decimal))
    assert fast is not None and fast.loans == exact.loans and len(fast.loans) == 2
    assert (fast.total, fast.size, fast.bad) == (exact.total, exact.size, exact.bad) == (2, 2, [])
    assert fast.loans[0].total_outstanding == Decimal("12000.75")
    assert fast.loans[0].actual_disbursement_on.isoformat() == "2026-11-30"


@respx.mock
def test_a_partner_with_1000_approved_loans_is_listed_in_two_round_trips_by_default():
    book = [loan_json(n) for n in range(1, 1001)]
    in_flight, most_at_once = 0, 0

    async def answer(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, most_at_once
        in_flight += 1
        most_at_once = max(most_at_once, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        offset, limit = int(request.url.params["offset"]), int(request.url.params["limit"])
        return page(len(book), *book[offset : offset + limit])

    route = respx.get(LOANS).mock(side_effect=answer)
    resource = FineractResource()
    partner = resource.client_for(base_url=BASE, tenant_id="acme", username="u", password="p")
    listing = asyncio.run(partner.alist_loans(200))
    assert sorted(loan.id for loan in listing.loans) == list(range(1, 1001))
    assert route.call_count == 10 and listing.pages == 10  # pages of 100
    assert most_at_once == 9  # the first page, then the other nine at once
