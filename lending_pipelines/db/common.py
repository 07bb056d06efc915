"""Cross-cutting tables every workflow uses: audit log, feature flags, inbound events, outbox."""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from .meta import metadata

NOW = sa.text("now()")

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("entity", sa.Text, nullable=False),
    sa.Column("entity_id", sa.Text, nullable=False),
    sa.Column("old_value", JSONB),
    sa.Column("new_value", JSONB),
    sa.Column("reason", sa.Text),
    sa.Column("run_id", sa.Text),
    sa.Index("ix_audit_log_entity_entity_id", "entity", "entity_id"),
)

feature_flags = sa.Table(
    "feature_flags",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("updated_by", sa.Text, nullable=False),
)

inbound_events = sa.Table(
    "inbound_events",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("provider", sa.Text, nullable=False),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("event_type", sa.Text),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("payload", JSONB, nullable=False),
    sa.Column("processed_at", sa.DateTime(timezone=True)),
    sa.Column("error", sa.Text),
    sa.UniqueConstraint("provider", "event_id"),
    sa.Index(
        "ix_inbound_events_unprocessed",
        "provider",
        "id",
        postgresql_where=sa.text("processed_at IS NULL"),
    ),
)

OUTBOX_STATUSES = ("pending", "sending", "sent", "failed", "unknown")

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("idempotency_key", sa.Text, nullable=False),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("payload", JSONB, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    sa.Column("provider_message_id", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    sa.Column("sent_at", sa.DateTime(timezone=True)),
    # The provider's last reported delivery status (only ever moves forward) and its time.
    sa.Column("delivery_status", sa.Text),
    sa.Column("delivery_status_at", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("idempotency_key"),
    sa.Index("ix_outbox_provider_message_id", "provider_message_id"),
    sa.CheckConstraint(
        "status IN ('pending', 'sending', 'sent', 'failed', 'unknown')", name="status"
    ),
)
