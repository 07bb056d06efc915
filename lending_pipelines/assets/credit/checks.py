"""Credit checks evaluated inside the materializations (`check_specs`): the dashboard's bucket
totals reconcile with total outstanding; no retailer was notified twice for one pause day."""

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ...db.credit.exposure import total_outstanding


def buckets_reconcile(conn: Connection, buckets: list[dict]) -> dg.AssetCheckResult:
    by_currency: dict[str, int] = {}
    for row in buckets:
        by_currency[row["currency"]] = by_currency.get(row["currency"], 0) + row["amount"]
    total = {currency: amount for currency, amount in total_outstanding(conn).items() if amount}
    shown = {currency: amount for currency, amount in by_currency.items() if amount}
    return dg.AssetCheckResult(
        check_name="aging_buckets_reconcile_with_outstanding",
        passed=shown == total,
        metadata={
            "bucket_totals": dg.MetadataValue.json(shown),
            "total_outstanding": dg.MetadataValue.json(total),
        },
    )


def one_pause_notice_per_retailer_and_day(conn: Connection) -> dg.AssetCheckResult:
    """Outbox keys are unique; this watches the pauses: every pause audited exactly once per
    retailer and day, and no retailer with two pause notices for one day."""
    doubled = conn.execute(
        sa.text(
            "SELECT entity_id, new_value->>'business_date' AS day, count(*) AS n "
            "FROM lending.audit_log WHERE action IN ('credit.guardrails_pause', "
            "'credit.auto_pause') GROUP BY 1, 2 HAVING count(*) > 1 ORDER BY 1, 2 LIMIT 20"
        )
    ).mappings()
    problems = [f"{r['entity_id']} {r['day']}: {r['n']} pauses" for r in doubled]
    return dg.AssetCheckResult(
        check_name="no_retailer_paused_twice_a_day",
        passed=not problems,
        metadata={"problems": dg.MetadataValue.json(problems)},
    )
