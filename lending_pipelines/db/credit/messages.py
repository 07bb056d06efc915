"""WhatsApp intents written by credit statements: SQL pieces that put outbox rows in the same
statement (so the same transaction) as the change they announce.

Keys are deterministic, `<kind>:<entity>:<day>` (or `<kind>:<entity>` for once-ever messages),
unique in `lending.outbox`, inserted `ON CONFLICT DO NOTHING`: a re-run or a concurrent run adds
nothing. The payload is exactly what `send_whatsapp_once` enqueues for a template
(`{"content_sid": ..., "variables": {"1": ..., ...}}`, every variable a string), so delivering
the row later through `send_whatsapp_once` finds the same intent.
"""

from __future__ import annotations

CHANNEL = "whatsapp"

# `whatsapp:+E164` for a valid number; anything else is kept as it is (send_whatsapp_once records it
# failed without calling Twilio).
TARGET_SQL = (
    "CASE WHEN {number} ~ '^\\+[1-9][0-9]{{6,14}}$' THEN 'whatsapp:' || {number} ELSE {number} END"
)


def target_sql(number: str) -> str:
    return TARGET_SQL.format(number=number)


def template_payload_sql(content_sid_param: str, *variables: str) -> str:
    """`jsonb_build_object('content_sid', :sid, 'variables', {"1": v1::text, ...})`."""
    pairs = ", ".join(f"'{i}', ({v})::text" for i, v in enumerate(variables, start=1))
    return (
        f"jsonb_build_object('content_sid', CAST(:{content_sid_param} AS text), "
        f"'variables', jsonb_build_object({pairs}))"
    )


def insert_outbox_sql(*, source: str, key: str, number: str, payload: str) -> str:
    """An INSERT of one outbox row per row of `source` (a CTE name), skipping existing keys."""
    return (
        "INSERT INTO lending.outbox (idempotency_key, channel, target, payload, status) "
        f"SELECT {key}, '{CHANNEL}', {target_sql(number)}, {payload}, 'pending' FROM {source} "
        "ON CONFLICT (idempotency_key) DO NOTHING RETURNING idempotency_key"
    )


# Outbox rows built in Python (payload from the domain's formatting) and inserted in the same
# statement as the change: `:intents` is a JSON array of {key, number, payload}.
INTENTS_CTE = """
intents AS (
    SELECT * FROM jsonb_to_recordset(CAST(:intents AS jsonb))
        AS i(entity_id text, key text, number text, payload jsonb)
)"""

QUEUE_INTENTS = insert_outbox_sql(
    source="intents i JOIN changed c ON c.entity_id = i.entity_id",
    key="i.key",
    number="i.number",
    payload="i.payload",
)


def template_payload(content_sid: str, *variables: object) -> dict:
    """What `send_whatsapp_once` enqueues for a template, every variable a string."""
    return {
        "content_sid": content_sid,
        "variables": {str(i): str(v) for i, v in enumerate(variables, start=1)},
    }
