"""The disbursement engine's knobs as plain values (no Dagster, no environment): the assets and
ops build them from the `loans_config` resource, scripts and tests from the settings."""

from __future__ import annotations

from dataclasses import dataclass

from ...settings import Settings


@dataclass(frozen=True)
class DisbursementRules:
    backoff_seconds: int  # base of the exponential backoff between attempts
    submitter_wait_seconds: int  # wait for another submitter before leaving it the due rows
    reconcile_after_minutes: int  # submitted/unknown rows older than this get a status query
    max_attempts: int  # B2C attempts before a disbursement stops as failed
    not_found_gap_minutes: int  # second not-found answer at least this long after the first
    timezone: str  # business day a payment is recorded under in Fineract

    @classmethod
    def from_settings(cls, settings: Settings) -> DisbursementRules:
        return cls(
            backoff_seconds=settings.disbursement_backoff_seconds,
            submitter_wait_seconds=settings.disbursement_submitter_wait_seconds,
            reconcile_after_minutes=settings.disbursement_reconcile_after_minutes,
            max_attempts=settings.disbursement_max_attempts,
            not_found_gap_minutes=settings.disbursement_not_found_gap_minutes,
            timezone=settings.loans_timezone,
        )
