"""Workflow 1 end to end through Dagster against the sandbox and the real callback receiver:
polling, auto-disbursement, results applied by the sensor's job, Fineract updated."""

from __future__ import annotations

import dagster as dg
import sqlalchemy as sa

from lending_pipelines.db import loans as loans_db
from lending_pipelines.sensors.mpesa_results import mpesa_results_sensor
from tests.loans_world import *  # noqa: F403
from tests.metadata_text import shown

TENANTS = [
    {"id": "acme", "password": "acme-pass", "loans": 12, "invalid_phone_every": 4},
    {"id": "umoja", "password": "umoja-pass", "loans": 6, "version": "1.8.4"},
]


def test_two_polls_track_each_loan_once_and_every_eligible_loan_is_paid_once(world):
    world.sandbox.configure("fineract", {"tenants": TENANTS})
    world.add_partner("acme", products=(1, 2))
    world.add_partner("umoja", products=(1, 2), filter_mode="sqlSearch")

    first = world.run("loan_polling_job")
    tracked_after_first = {(r.partner_id, r.fineract_loan_id): r for r in world.tracked()}
    second = world.run("loan_polling_job")
    tracked = {(r.partner_id, r.fineract_loan_id): r for r in world.tracked()}
    assert first.success and second.success

    fineract = world.sandbox.state("fineract")["tenants"]
    approved = {
        (tenant, int(loan_id))
        for tenant, state in fineract.items()
        for loan_id, loan in state["loans"].items()
        if loan["status"] == 200
    }
    assert set(tracked) == approved and len(world.tracked()) == 18  # no duplicate rows
    for key, row in tracked.items():
        assert row.first_seen_at == tracked_after_first[key].first_seen_at
        assert row.last_seen_at > tracked_after_first[key].last_seen_at

    # one request per eligible loan; invalid phones failed with the number quoted, never sent
    requests = world.requests()
    assert {(r.partner_id, r.fineract_loan_id) for r in requests} == approved
    invalid = [r for r in requests if r.status == "failed"]
    assert len(invalid) == 3
    assert all("phone" in r.failure_reason and "nothing sent" in r.failure_reason for r in invalid)
    payments = world.sandbox.state("mpesa")
    assert len(payments["payments"]) == 15
    assert set(payments["paid_count_by_occasion"].values()) == {1}
    assert {p["phone"] for p in payments["payments"]} == {r.phone for r in requests if r.phone}

    # the callbacks arrive through the receiver; the sensor sees them and launches the job
    world.settle()
    context = dg.build_sensor_context(instance=world.instance, resources=world.resources())
    tick = mpesa_results_sensor(context)
    assert isinstance(tick, dg.RunRequest)
    world.apply_results()  # each callback is a hint: confirmed by a status query...
    assert {r.status for r in world.requests() if r.status != "failed"} == {"submitted"}
    world.apply_results()  # ...whose answer settles it
    assert len(world.sandbox.state("mpesa")["status_queries"]) == 15

    requests = {r.id: r for r in world.requests()}
    succeeded = [r for r in requests.values() if r.status == "succeeded"]
    assert len(succeeded) == 15 and all(r.fineract_recorded_at for r in succeeded)
    receipts = {p["originator_conversation_id"]: p["transaction_id"] for p in payments["payments"]}
    assert all(r.mpesa_transaction_id == receipts[r.originator_conversation_id] for r in succeeded)

    # Fineract shows each of them disbursed once, with the M-Pesa transaction id
    after = world.sandbox.state("fineract")["tenants"]
    recorded = {
        (tenant, d["loan_id"]): d["receiptNumber"]
        for tenant, state in after.items()
        for d in state["disbursements"]
    }
    assert recorded == {
        (r.partner_id, r.fineract_loan_id): r.mpesa_transaction_id for r in succeeded
    }
    assert all(
        after[r.partner_id]["loans"][str(r.fineract_loan_id)]["status"] == 300 for r in succeeded
    )
    assert {
        r.status_id for r in world.tracked() if (r.partner_id, r.fineract_loan_id) in recorded
    } == {300}

    # nothing left for the sensor
    assert isinstance(mpesa_results_sensor(context), dg.SkipReason)


def test_the_polling_materialization_reports_per_partner_numbers(world):
    world.sandbox.configure("fineract", {"tenants": TENANTS})
    world.add_partner("acme")
    world.add_partner("umoja", filter_mode="sqlSearch")
    result = world.run("loan_polling_job")
    [tracking] = [m for m in result.asset_materializations_for_node("loan_tracking")]
    metadata = tracking.metadata
    assert metadata["partners_polled"].value == 2 and metadata["partners_failed"].value == 0
    assert metadata["loans_seen"].value == 18 and metadata["new_loans"].value == 18
    assert "umoja" in shown(metadata["per_partner"])
    [disbursing] = result.asset_materializations_for_node("loan_disbursements")
    assert disbursing.metadata["requests_created"].value == 18
    assert disbursing.metadata["submission_submitted"].value == 15
    assert disbursing.metadata["submission_invalid_phone"].value == 3


def test_a_partner_without_mpesa_or_a_product_without_auto_disbursal_gets_no_request(world):
    world.sandbox.configure("fineract", {"tenants": TENANTS})
    world.add_partner("acme", products=(1,))
    world.add_partner("umoja", filter_mode="sqlSearch", mpesa=False)
    world.run("loan_polling_job")
    loans = world.sandbox.state("fineract")["tenants"]["acme"]["loans"]
    product_one = {
        int(i) for i, loan in loans.items() if loan["status"] == 200 and loan["product_id"] == 1
    }
    assert {r.fineract_loan_id for r in world.requests()} == product_one
    assert {r.partner_id for r in world.requests()} == {"acme"}


def test_wallet_charges_are_reserved_and_a_short_wallet_sends_nothing(world):
    world.sandbox.configure(
        "fineract", {"tenants": [dict(TENANTS[0], invalid_phone_every=0, loans=4)]}
    )
    world.add_partner("acme", disbursement_charge_minor=3000, wallet_balance_minor=7000)
    world.run("loan_polling_job")
    requests = world.requests()
    assert [r.status for r in requests].count("submitted") == 2  # 2 charges of 30 KES fit in 70
    short = [r for r in requests if r.status == "failed"]
    assert len(short) == 2 and all("wallet" in r.failure_reason and r.retryable for r in short)
    assert len(world.sandbox.state("mpesa")["payments"]) == 2
    with world.engine.connect() as conn:
        wallet = conn.execute(
            sa.select(loans_db.partners.c.wallet_balance_minor).where(
                loans_db.partners.c.id == "acme"
            )
        ).scalar()
    assert wallet == 1000
