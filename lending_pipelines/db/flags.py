"""Kill switches: the environment gives the default, a `feature_flags` row overrides it."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from ..settings import Settings
from .audit import record_audit
from .common import feature_flags

# Flag name → the Settings attribute holding its environment default.
FLAGS = {
    "CRON_ENABLED": "cron_enabled",
    "ESCALATION_ENABLED": "escalation_enabled",
    "SCORING_ENABLED": "scoring_enabled",
    "REMINDERS_ENABLED": "reminders_enabled",
}


def _check(name: str) -> None:
    if name not in FLAGS:
        raise KeyError(f"unknown feature flag {name!r}; known: {sorted(FLAGS)}")


def flag_enabled(conn: Connection, name: str, settings: Settings) -> bool:
    """Whether a flag is on: the table's value if set, else the environment's."""
    _check(name)
    stored = conn.execute(
        sa.select(feature_flags.c.enabled).where(feature_flags.c.name == name)
    ).scalar_one_or_none()
    return getattr(settings, FLAGS[name]) if stored is None else stored


def set_flag(
    conn: Connection, name: str, enabled: bool, updated_by: str, reason: str | None = None
) -> None:
    """Override a flag in the database (takes effect at the next tick, no deploy needed)."""
    _check(name)
    old = conn.execute(
        sa.select(feature_flags.c.enabled).where(feature_flags.c.name == name)
    ).scalar_one_or_none()
    record_audit(
        conn,
        actor=updated_by,
        action="feature_flag.set",
        entity="feature_flag",
        entity_id=name,
        old_value={"enabled": old},
        new_value={"enabled": enabled},
        reason=reason,
    )
    stmt = insert(feature_flags).values(name=name, enabled=enabled, updated_by=updated_by)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[feature_flags.c.name],
            set_={"enabled": enabled, "updated_by": updated_by, "updated_at": sa.func.now()},
        )
    )
