"""AlertsResource: Slack-compatible posts with retries; logs when no webhook is configured;
never raises into its caller and never shows the webhook URL."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
import respx

from lending_pipelines.resources.alerts import AlertsResource

HOOK = "https://hooks.example.test/services/T000/B000/very-secret-token"


def alerts(**overrides) -> AlertsResource:
    return AlertsResource(webhook_url=HOOK, backoff_seconds=0.001, **overrides)


@respx.mock
def test_an_alert_is_posted_as_slack_compatible_json():
    route = respx.post(HOOK).respond(200, text="ok")
    delivered = alerts().send(
        "Escrow release failed",
        "run 1234 failed in step escrow_releases",
        severity="warning",
        fields={"partition": "2026-03-01", "escrows": 3},
    )
    assert delivered is True and route.call_count == 1
    payload = json.loads(route.calls.last.request.content)
    assert payload["text"] == "[WARNING] Escrow release failed"
    (attachment,) = payload["attachments"]
    assert attachment["title"] == "Escrow release failed"
    assert attachment["text"] == "run 1234 failed in step escrow_releases"
    assert attachment["color"] == "#DAA038"
    assert attachment["fields"] == [
        {"title": "partition", "value": "2026-03-01", "short": True},
        {"title": "escrows", "value": "3", "short": True},
    ]


@respx.mock
def test_a_failing_webhook_is_retried_then_succeeds():
    route = respx.post(HOOK).mock(
        side_effect=[httpx.Response(503), httpx.ConnectError("reset"), httpx.Response(200)]
    )
    assert alerts(retries=3).send("t", "x") is True
    assert route.call_count == 3


@respx.mock
def test_a_webhook_that_keeps_failing_returns_false_logs_loudly_and_never_raises(caplog):
    caplog.set_level(logging.INFO)
    route = respx.post(HOOK).respond(500)
    assert alerts(retries=2).send("Auto-deduct failed", "details", fields={"k": "v"}) is False
    assert route.call_count == 3
    failures = [r for r in caplog.records if "ALERT NOT DELIVERED" in r.getMessage()]
    assert failures and failures[0].levelno == logging.ERROR
    assert "Auto-deduct failed" in failures[0].getMessage()
    assert not [r for r in caplog.records if "very-secret-token" in r.getMessage()]


@respx.mock
def test_a_rejected_payload_is_not_retried():
    route = respx.post(HOOK).respond(404, text="no_service")
    assert alerts(retries=3).send("t", "x") is False
    assert route.call_count == 1


def test_an_unreachable_webhook_returns_false_without_showing_the_url(caplog):
    caplog.set_level(logging.INFO)
    unreachable = "http://127.0.0.1:9/hook/secret-path-token"
    resource = AlertsResource(webhook_url=unreachable, retries=1, backoff_seconds=0.001)
    assert resource.send("t", "x") is False
    assert "secret-path-token" not in repr(resource)
    assert not [r for r in caplog.records if "secret-path-token" in r.getMessage()]


def test_without_a_webhook_the_alert_is_logged_at_its_severity(caplog):
    caplog.set_level(logging.INFO)
    assert AlertsResource().send(
        "Escrow check failed",
        "2 escrows released twice",
        severity="critical",
        fields={"partition": "2026-03-01"},
    )
    (record,) = [r for r in caplog.records if "ALERT" in r.getMessage()]
    assert record.levelno == logging.CRITICAL
    message = record.getMessage()
    assert "Escrow check failed" in message and "2 escrows released twice" in message
    assert "partition: 2026-03-01" in message


@pytest.mark.parametrize("severity", ["info", "warning", "error"])
def test_each_known_severity_is_accepted(severity, caplog):
    caplog.set_level(logging.INFO)
    assert AlertsResource().send("t", "x", severity=severity)
    assert any(f"[{severity.upper()}]" in r.getMessage() for r in caplog.records)


def test_an_unknown_severity_is_sent_as_error(caplog):
    caplog.set_level(logging.INFO)
    assert AlertsResource().send("t", "x", severity="loud")
    assert any("[ERROR] t" in r.getMessage() for r in caplog.records)
