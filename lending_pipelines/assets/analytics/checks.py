"""A privacy check over the whole analytics schema, evaluated in the daily refresh."""

import dagster as dg

from ...analytics_dbt import ANALYTICS_SCHEMA
from ...db.privacy import phone_number_findings
from ...resources.database import DatabaseResource
from ..metadata import table_metadata


@dg.asset_check(
    asset=dg.AssetKey([ANALYTICS_SCHEMA, "disbursement_outcomes_daily"]),
    name="no_phone_numbers_in_analytics",
    description="No text column of any table or view in the analytics schema holds something "
    "that looks like a phone number (analytics leaves personal data out; free-text reasons "
    "must carry numbers masked).",
)
def no_phone_numbers_in_analytics(database: DatabaseResource) -> dg.AssetCheckResult:
    with database.connect() as conn:
        findings = phone_number_findings(conn, ANALYTICS_SCHEMA)
    rows = [{"relation": f.relation, "column": f.column, "rows": f.rows} for f in findings]
    return dg.AssetCheckResult(
        passed=not findings,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            "no phone numbers in the analytics schema"
            if not findings
            else "phone numbers found in "
            + ", ".join(f"{f.relation}.{f.column} ({f.rows} rows)" for f in findings)
        ),
        metadata={"findings": table_metadata(rows, ["relation", "column", "rows"])},
    )


ANALYTICS_CHECKS = [no_phone_numbers_in_analytics]
