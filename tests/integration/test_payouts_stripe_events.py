"""Stripe events after a payout, through the real receiver (Stripe-Signature verified) and
`stripe_events_job`: a reversed transfer stops counting as paid once Stripe confirms it, a
signed event that Stripe contradicts changes nothing and raises an alert, and a fresh
`account.updated` replaces the per-candidate account call before a payout date."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import timedelta

import sqlalchemy as sa
from dagster import DagsterInstance, Definitions
from starlette.testclient import TestClient

from lending_pipelines.assets.payouts.jobs import STRIPE_EVENTS_JOBS
from lending_pipelines.db import payouts as payouts_db
from lending_pipelines.db.common import inbound_events
from lending_pipelines.resources.stripe_connect import StripeConnectResource
from lending_pipelines.webhooks.app import build_app
from tests.e2e.test_payouts_e2e import (
    AS_OF,
    PARTITION_DATE,
    add_creator,
    items_by_ref,
    payout_resources,
    payout_settings,  # noqa: F401  (fixture)
    run_payouts,
    stripe_accounts,
)
from tests.integration.test_payouts_retry import make_batch, retry

WEBHOOK_SECRET = "whsec_test_payouts_events_0001"


def post_signed_events(db_url: str, *events: dict) -> None:
    app = build_app(database_url=db_url, mpesa_token="t" * 32, stripe_webhook_secret=WEBHOOK_SECRET)
    with TestClient(app) as receiver:
        for event in events:
            body = json.dumps(event)
            stamp = int(time.time())
            signature = hmac.new(
                WEBHOOK_SECRET.encode(), f"{stamp}.{body}".encode(), hashlib.sha256
            ).hexdigest()
            response = receiver.post(
                "/stripe/events",
                content=body,
                headers={
                    "stripe-signature": f"t={stamp},v1={signature}",
                    "content-type": "application/json",
                },
            )
            assert response.status_code == 200, response.text


def transfer_event(event_id: str, transfer: dict, **changes) -> dict:
    return {
        "id": event_id,
        "object": "event",
        "type": "transfer.reversed",
        "created": int(time.time()),
        "data": {"object": {**transfer, **changes}},
    }


def account_event(event_id: str, account_id: str, *, payouts_enabled: bool) -> dict:
    return {
        "id": event_id,
        "object": "event",
        "type": "account.updated",
        "created": int(time.time()),
        "data": {
            "object": {
                "id": account_id,
                "object": "account",
                "payouts_enabled": payouts_enabled,
                "capabilities": {"transfers": "active"},
                "requirements": {"currently_due": [], "past_due": [], "disabled_reason": None},
            }
        },
    }


def apply_events(resources: dict):
    defs = Definitions(jobs=STRIPE_EVENTS_JOBS, resources=resources)
    result = defs.resolve_job_def("stripe_events_job").execute_in_process(
        instance=DagsterInstance.ephemeral()
    )
    assert result.success
    return result


def _metadata(result) -> dict:
    [materialized] = [
        e
        for e in result.all_events
        if e.event_type_value == "STEP_OUTPUT" and e.step_key == "apply_stripe_events"
    ]
    return {k: v.value for k, v in materialized.event_specific_data.metadata.items()}


def _events(engine) -> dict[str, sa.Row]:
    with engine.connect() as conn:
        return {row.event_id: row for row in conn.execute(sa.select(inbound_events))}


def test_a_reversed_transfer_is_applied_as_stripe_confirms_it_and_a_contradicted_event_is_not(
    db,
    db_url,
    sandbox,
    payout_settings,  # noqa: F811
):
    resources = make_batch(db, sandbox, db_url)
    assert run_payouts(resources).success
    items = items_by_ref(db)
    transfers = {t["id"]: t for t in sandbox.state("stripe")["transfers"]}
    client = StripeConnectResource(
        api_key="sk_test_payouts_events_0001", api_base=sandbox.url("stripe")
    ).get_client()
    client.reverse_transfer(items["a"].stripe_transfer_id)  # really reversed at Stripe
    tr_a = transfers[items["a"].stripe_transfer_id]
    tr_b = transfers[items["b"].stripe_transfer_id]
    post_signed_events(
        db_url,
        transfer_event("evt_reversed_a", tr_a, amount_reversed=tr_a["amount"], reversed=True),
        # signed, but Stripe says transfer b was never reversed: a hint Stripe contradicts
        transfer_event("evt_forged_b", tr_b, amount_reversed=tr_b["amount"], reversed=True),
    )

    result = apply_events(resources)
    metadata = _metadata(result)
    assert (metadata["reversals"], metadata["mismatches"], metadata["alerts_sent"]) == (1, 1, 2)
    items = items_by_ref(db)
    assert items["a"].status == "reversed"
    assert items["a"].amount_reversed_minor == tr_a["amount"]
    assert items["b"].status == "paid" and items["b"].amount_reversed_minor == 0
    with db.connect() as conn:
        back = conn.execute(
            sa.select(payouts_db.ledger_entries).where(
                payouts_db.ledger_entries.c.entry_type == "adjustment"
            )
        ).all()
        batch = payouts_db.get_batch(conn, PARTITION_DATE)
    assert [(e.creator_id, e.tokens) for e in back] == [(items["a"].creator_id, items["a"].tokens)]
    assert batch.status == "completed_with_failures" and batch.paid_count == 2
    events = _events(db)
    assert events["evt_reversed_a"].processed_at is not None
    assert events["evt_reversed_a"].error is None
    assert events["evt_forged_b"].error.startswith("mismatch")

    # the same event delivered again is stored once; re-running changes nothing more
    post_signed_events(
        db_url,
        transfer_event("evt_reversed_a", tr_a, amount_reversed=tr_a["amount"], reversed=True),
    )
    assert _metadata(apply_events(resources))["reversals"] == 0
    with db.connect() as conn:
        adjustments = conn.execute(
            sa.select(sa.func.count()).where(payouts_db.ledger_entries.c.entry_type == "adjustment")
        ).scalar_one()
    assert adjustments == 1


def test_a_transfer_found_reversed_before_a_resend_is_recorded_reversed_not_paid(
    db,
    db_url,
    sandbox,
    payout_settings,  # noqa: F811
):
    """`existing_transfer` honours `reversed`: a dead run's item whose transfer Stripe made and
    then reversed is neither counted as paid nor paid a second time."""
    resources = make_batch(db, sandbox, db_url, refs=("a",))
    [item] = items_by_ref(db).values()
    client = StripeConnectResource(
        api_key="sk_test_payouts_events_0002", api_base=sandbox.url("stripe")
    ).get_client()
    made = client.create_transfer(
        amount=item.amount_minor,
        currency=item.currency,
        destination=item.destination_account,
        idempotency_key=item.idempotency_key,
        transfer_group=item.idempotency_key,
    )
    client.reverse_transfer(made.id)
    with db.begin() as conn:
        conn.execute(
            sa.update(payouts_db.payout_items).values(
                status="processing",
                claimed_at=sa.func.now() - sa.text("interval '2 days'"),
                key_sent_at=sa.func.now() - sa.text("interval '2 days'"),
            )
        )
    assert retry(resources).success
    [item] = items_by_ref(db).values()
    assert item.status == "reversed" and item.stripe_transfer_id == made.id
    assert sandbox.state("stripe")["transfer_count"] == 1
    with db.connect() as conn:
        tokens = conn.execute(
            sa.select(sa.func.sum(payouts_db.ledger_entries.c.tokens)).where(
                payouts_db.ledger_entries.c.creator_id == item.creator_id,
                payouts_db.ledger_entries.c.entry_type.in_(("withdrawal_completed", "adjustment")),
            )
        ).scalar_one()
    assert tokens == 0  # withdrawn, then given back


def test_a_fresh_account_updated_event_replaces_the_account_call_before_a_payout(
    db,
    db_url,
    sandbox,
    payout_settings,  # noqa: F811
):
    stripe_accounts(sandbox, {"id": "acct_e2e_a"}, {"id": "acct_e2e_b"})
    with db.begin() as conn:
        for ref in ("a", "b"):
            add_creator(conn, ref, earnings=[(400, AS_OF - timedelta(days=10))])
    resources = payout_resources(db_url, sandbox)
    # Stripe says b can be paid, but b's verified event (newer than our last look) says not
    post_signed_events(db_url, account_event("evt_acct_b", "acct_e2e_b", payouts_enabled=False))
    assert _metadata(apply_events(resources))["accounts_updated"] == 1
    before = sandbox.state("stripe")["requests"].get("total", 0)
    result = run_payouts(resources, selection=["eligible_creators"])
    assert result.success
    asked = sandbox.state("stripe")["requests"]["total"] - before
    assert asked == 1  # only a's account was fetched
    [materialization] = result.asset_materializations_for_node("eligible_creators")
    assert materialization.metadata["accounts_from_events"].value == 1
    with db.connect() as conn:
        refs = {
            row.id: row.external_ref
            for row in conn.execute(
                sa.select(payouts_db.creators.c.id, payouts_db.creators.c.external_ref)
            )
        }
        reasons = {
            refs[row.creator_id]: row.reason
            for row in payouts_db.eligibility_rows(conn, PARTITION_DATE)
        }
    assert reasons == {"a": None, "b": "payouts_disabled"}


def test_a_malformed_account_event_is_marked_with_its_field_and_the_others_still_apply(
    db,
    db_url,
    sandbox,
    payout_settings,  # noqa: F811
):
    with db.begin() as conn:
        for ref in ("a", "b"):
            add_creator(conn, ref, earnings=[(400, AS_OF - timedelta(days=10))])
    malformed = account_event("evt_acct_a_bad", "acct_e2e_a", payouts_enabled=False)
    malformed["data"]["object"]["requirements"]["past_due"] = "individual.id_number"
    post_signed_events(
        db_url, malformed, account_event("evt_acct_b_ok", "acct_e2e_b", payouts_enabled=False)
    )
    metadata = _metadata(apply_events(payout_resources(db_url, sandbox)))
    assert metadata["accounts_updated"] == 1
    events = _events(db)
    assert (
        events["evt_acct_b_ok"].processed_at is not None and events["evt_acct_b_ok"].error is None
    )
    bad = events["evt_acct_a_bad"]
    assert bad.processed_at is not None
    assert "data.object.requirements.past_due" in bad.error and "individual.id_number" in bad.error
    with db.connect() as conn:
        states = dict(
            conn.execute(
                sa.select(
                    payouts_db.creators.c.external_ref, payouts_db.creators.c.account_event_at
                )
            ).all()
        )
    assert states["a"] is None and states["b"] is not None  # nothing applied from the bad one
