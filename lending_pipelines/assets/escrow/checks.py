"""The escrow checks, evaluated inside each materialization for its partition (the assets'
`check_specs`): nothing released twice, releases and repayments as the ledger holds them."""

from datetime import date

import dagster as dg

from ...db.escrow import (
    release_integrity_problems,
    releases_on,
    repayments_on,
)
from ...partners.blnk import BlnkClient
from ...resources.database import DatabaseResource


def check_releases(
    database: DatabaseResource, blnk: BlnkClient, business_date: date
) -> list[dg.AssetCheckResult]:
    with database.begin() as conn:
        problems = release_integrity_problems(conn)
        releases = releases_on(conn, business_date)
    mismatches, ledger_total = [], 0
    for release in releases:
        outcome = blnk.read_outcome(release["ledger_reference"])
        txn = None if outcome is None else outcome.transaction
        if txn is None:
            mismatches.append(f"{release['ledger_reference']}: no outcome in the ledger")
            continue
        ledger_total += txn.precise_amount
        found = (txn.transaction_id, txn.precise_amount, txn.source, txn.destination, txn.status)
        expected = (
            release["ledger_transaction_id"],
            release["amount"],
            release["source_balance_id"],
            release["destination_balance_id"],
            "APPLIED",
        )
        if found != expected:
            mismatches.append(f"{release['ledger_reference']}: ledger {found} vs local {expected}")
    local_total = sum(release["amount"] for release in releases)
    return [
        dg.AssetCheckResult(
            check_name="no_escrow_released_twice",
            passed=not problems,
            metadata={"problems": dg.MetadataValue.json(problems)},
        ),
        dg.AssetCheckResult(
            check_name="released_amounts_match_ledger",
            passed=not mismatches and local_total == ledger_total,
            metadata={
                "releases": len(releases),
                "released_amount": local_total,
                "ledger_amount": ledger_total,
                "mismatches": dg.MetadataValue.json(mismatches),
            },
        ),
    ]


def check_repayments(
    database: DatabaseResource, blnk: BlnkClient, business_date: date
) -> list[dg.AssetCheckResult]:
    with database.begin() as conn:
        records = repayments_on(conn, business_date)
    applied = [r for r in records if r.status == "applied"]
    pending = [r.retailer_id for r in records if r.status == "pending"]
    mismatches = []
    for repayment in applied:
        outcome = blnk.read_outcome(repayment.ledger_reference)
        txn = None if outcome is None else outcome.transaction
        found = (
            None
            if txn is None
            else (txn.transaction_id, txn.precise_amount, txn.source, txn.destination, txn.status)
        )
        expected = (
            repayment.ledger_transaction_id,
            repayment.amount,
            repayment.source_balance_id,
            repayment.destination_balance_id,
            "APPLIED",
        )
        if found != expected:
            mismatches.append(f"{repayment.ledger_reference}: ledger {found} vs local {expected}")
    distinct = len({r.ledger_transaction_id for r in applied}) == len(applied)
    return [
        dg.AssetCheckResult(
            check_name="repayments_match_ledger_one_to_one",
            passed=not mismatches and not pending and distinct,
            metadata={
                "applied": len(applied),
                "pending": dg.MetadataValue.json(pending),
                "mismatches": dg.MetadataValue.json(mismatches),
                "distinct_ledger_transactions": distinct,
            },
        )
    ]
