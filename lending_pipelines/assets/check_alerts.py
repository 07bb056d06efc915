"""Asset checks alert per incident: when they start failing, at the reminder interval, and
once when they pass again — not on every evaluation."""

from __future__ import annotations

import dagster as dg

from ..resources.alerts import AlertsResource
from ..resources.database import DatabaseResource
from ..workflows.incidents import reminder_interval, report_condition


def alert_on_check(
    database: DatabaseResource,
    alerts: AlertsResource,
    result: dg.AssetCheckResult,
    *,
    key: str,
    title: str,
) -> None:
    """Report `result` of the check identified by `key` (stable across runs) as an incident."""
    severity = "warning" if result.severity == dg.AssetCheckSeverity.WARN else "error"
    report_condition(
        database.get_engine(),
        alerts.send,
        key=key,
        firing=not result.passed,
        title=title,
        text=result.description or title,
        severity=severity,
        remind_every=reminder_interval(alerts.reminder_minutes),
    )
