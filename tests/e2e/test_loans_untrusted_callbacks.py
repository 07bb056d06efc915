"""A result callback is a hint, not proof: forged callbacks posted through the real receiver
(by someone who learned the callback URL, token included) never cause a second B2C nor a
Fineract record; a genuine result settles after one sensor tick plus one status query; a status
answer that does not match what we sent alerts instead of updating."""

from __future__ import annotations

import time
from datetime import date, datetime
from zoneinfo import ZoneInfo

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa

from lending_pipelines.db import loans as loans_db
from lending_pipelines.sensors.mpesa_results import mpesa_results_sensor
from lending_pipelines.settings import get_settings
from tests.loans_world import *  # noqa: F403
from tests.loans_world import CALLBACK_TOKEN, SENT_ALERTS


def one_paid_loan(world, **mpesa: object):
    """One approved loan, auto-disbursed; by default M-Pesa's own callback never arrives."""
    world.sandbox.configure(
        "fineract",
        {
            "tenants": [
                {"id": "acme", "password": "acme-pass", "loans": 1, "invalid_phone_every": 0}
            ]
        },
    )
    world.sandbox.configure("mpesa", {"drop_callback_rate": 1.0, **mpesa})
    world.add_partner("acme")
    assert world.run("loan_polling_job").success
    [request] = world.requests()
    return request


def post_forged_result(world, ocid: str, code: int, receipt: str | None = None) -> None:
    result: dict = {
        "ResultType": 0,
        "ResultCode": code,
        "ResultDesc": "forged",
        "OriginatorConversationID": ocid,
        "ConversationID": "AG_20260101_forged0000000000000",
        "TransactionID": receipt or "FORGED0000",
    }
    if code == 0:
        result["ResultParameters"] = {
            "ResultParameter": [
                {"Key": "TransactionAmount", "Value": 10},
                {"Key": "TransactionReceipt", "Value": receipt},
            ]
        }
    response = httpx.post(
        f"{world.receiver_url}/mpesa/{CALLBACK_TOKEN}/result", json={"Result": result}
    )
    assert response.status_code == 200  # the receiver stores it: only the workflow can judge


def today() -> date:
    return datetime.now(ZoneInfo(get_settings().loans_timezone)).date()


def fineract_disbursements(world) -> list[dict]:
    return world.sandbox.state("fineract")["tenants"]["acme"]["disbursements"]


def test_a_forged_failure_callback_never_leads_to_a_second_b2c_nor_a_new_attempt_id(world):
    request = one_paid_loan(world)  # M-Pesa paid; its callback was lost
    post_forged_result(world, request.originator_conversation_id, code=17)  # "retryable"

    world.apply_results()  # the sensor's run: a hint, confirmed with a status query
    world.apply_results()  # the query's answer: paid
    time.sleep(1.1)  # past the 1 s backoff a retryable failure would wait for
    assert world.run("disbursement_retry_job").success
    world.apply_results()

    mpesa = world.sandbox.state("mpesa")
    assert len(mpesa["payments"]) == 1 and mpesa["duplicates_rejected"] == 0
    [after] = world.requests()
    assert after.status == "succeeded" and after.attempts == 1
    assert after.originator_conversation_id == request.originator_conversation_id
    assert after.mpesa_transaction_id == mpesa["payments"][0]["transaction_id"]
    assert [d["receiptNumber"] for d in fineract_disbursements(world)] == [
        after.mpesa_transaction_id
    ]
    assert any("not the acknowledged" in alert["text"] for alert in SENT_ALERTS)


def test_a_forged_success_callback_is_never_recorded_in_fineract(world):
    # M-Pesa refused the payment (customer not registered); its callback was lost
    request = one_paid_loan(world, failure_rate=1.0, failure_codes=[2040])
    post_forged_result(world, request.originator_conversation_id, code=0, receipt="FAKE123456")

    world.apply_results()
    world.apply_results()
    assert world.run("disbursement_retry_job").success
    world.apply_results()

    [after] = world.requests()
    assert after.status == "failed" and after.mpesa_transaction_id is None
    assert after.failure_reason.startswith("2040")
    assert fineract_disbursements(world) == []
    loan = world.sandbox.state("fineract")["tenants"]["acme"]["loans"][
        str(request.fineract_loan_id)
    ]
    assert loan["status"] == 200
    assert len(world.sandbox.state("mpesa")["payments"]) == 1


def test_a_genuine_result_settles_after_one_sensor_tick_and_one_status_query(world):
    world.sandbox.configure(
        "fineract",
        {
            "tenants": [
                {"id": "acme", "password": "acme-pass", "loans": 1, "invalid_phone_every": 0}
            ]
        },
    )
    world.add_partner("acme")
    assert world.run("loan_polling_job").success
    world.settle()  # M-Pesa's genuine callback is stored by the receiver

    context = dg.build_sensor_context(instance=world.instance, resources=world.resources())
    assert isinstance(mpesa_results_sensor(context), dg.RunRequest)
    assert world.run("mpesa_results_job").success
    [pending] = world.requests()
    assert pending.status == "submitted"  # the callback alone proves nothing
    assert len(world.sandbox.state("mpesa")["status_queries"]) == 1

    world.settle()  # the status query's answer arrives
    assert isinstance(mpesa_results_sensor(context), dg.RunRequest)
    assert world.run("mpesa_results_job").success

    [paid] = world.requests()
    mpesa = world.sandbox.state("mpesa")
    assert paid.status == "succeeded" and paid.fineract_recorded_at is not None
    assert paid.mpesa_transaction_id == mpesa["payments"][0]["transaction_id"]
    assert len(mpesa["status_queries"]) == 1
    assert [d["receiptNumber"] for d in fineract_disbursements(world)] == [
        paid.mpesa_transaction_id
    ]


@pytest.mark.parametrize(
    ("column", "value", "named"),
    [("amount_minor", 100_000_00, "Amount"), ("phone", "254700000001", "receiver")],
    ids=["amount", "receiver"],
)
def test_a_status_answer_that_does_not_match_alerts_once_and_changes_nothing(
    world, column, value, named
):
    request = one_paid_loan(world)
    with world.engine.begin() as conn:  # what we hold differs from what M-Pesa paid
        conn.execute(
            sa.update(loans_db.disbursement_requests)
            .where(loans_db.disbursement_requests.c.id == request.id)
            .values({column: value})
        )
    for _ in range(2):
        assert world.run("disbursement_retry_job").success  # reconciliation asks M-Pesa
        world.apply_results()

    [after] = world.requests()
    assert after.status == "submitted" and after.mpesa_transaction_id is None
    assert named in after.needs_review
    assert fineract_disbursements(world) == []
    alerts = [a for a in SENT_ALERTS if "does not match" in a["text"]]
    assert len(alerts) == 1 and alerts[0]["severity"] == "critical"
    assert len(world.sandbox.state("mpesa")["status_queries"]) == 1  # held: not asked again


def test_a_loan_disbursed_another_way_in_fineract_alerts_instead_of_counting_as_recorded(world):
    request = one_paid_loan(world)
    with world.fineract.client_for(
        base_url=world.sandbox.url("fineract"), tenant_id="acme", username="mifos",
        password="acme-pass", filter_mode="status",
    ) as fineract:  # fmt: skip
        fineract.disburse(request.fineract_loan_id, on=today(), reference="BRANCH-CASH-1")
    assert world.run("disbursement_retry_job").success  # reconciliation: paid by M-Pesa
    world.apply_results()
    world.apply_results()

    [after] = world.requests()
    assert after.status == "succeeded" and after.fineract_recorded_at is None
    assert "another way" in after.needs_review
    alerts = [a for a in SENT_ALERTS if "another way" in a["text"]]
    assert len(alerts) == 1 and alerts[0]["severity"] == "critical"
    assert world.run("disbursement_retry_job").success  # no second alert for the same incident
    assert len([a for a in SENT_ALERTS if "another way" in a["text"]]) == 1


def test_a_loan_already_disbursed_with_our_external_id_counts_as_recorded(world):
    request = one_paid_loan(world)
    receipt = world.sandbox.state("mpesa")["payments"][0]["transaction_id"]
    with world.fineract.client_for(
        base_url=world.sandbox.url("fineract"), tenant_id="acme", username="mifos",
        password="acme-pass", filter_mode="status",
    ) as fineract:  # fmt: skip
        # our earlier disburse command went through but its answer was lost
        fineract.disburse(request.fineract_loan_id, on=today(), reference=receipt)
    assert world.run("disbursement_retry_job").success
    world.apply_results()

    [after] = world.requests()
    assert after.status == "succeeded" and after.fineract_recorded_at is not None
    assert after.needs_review is None and not SENT_ALERTS
    assert len(fineract_disbursements(world)) == 1


def test_a_callback_with_a_non_integer_result_code_is_kept_as_malformed_and_changes_nothing(world):
    request = one_paid_loan(world)
    body = {
        "Result": {
            "ResultType": 0,
            "ResultCode": 0.4,  # truncated, it would read as 0: success
            "ResultDesc": "The service request is processed successfully.",
            "OriginatorConversationID": request.originator_conversation_id,
            "ConversationID": request.conversation_id,
            "TransactionID": "SX0000000Q",
        }
    }
    assert (
        httpx.post(f"{world.receiver_url}/mpesa/{CALLBACK_TOKEN}/result", json=body).status_code
        == 200
    )
    world.apply_results()

    [after] = world.requests()
    assert after.status == "submitted" and after.mpesa_transaction_id is None
    assert world.sandbox.state("mpesa")["status_queries"] == []  # not even a hint
    with world.engine.connect() as conn:
        [error] = conn.execute(sa.text("SELECT error FROM lending.inbound_events")).scalars()
    assert "'Result.ResultCode'" in error and "0.4" in error
    assert fineract_disbursements(world) == []
