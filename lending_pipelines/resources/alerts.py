"""Alerts: Slack-compatible webhook posts, or log lines when no webhook is configured.

Alerting runs inside failure sensors and checks, often because something else already broke, so
`send` never raises into the caller: a delivery that keeps failing is logged loudly and reported
by returning False. The webhook URL embeds a token (Slack, Teams): it never appears in a log line
or an error message.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any

import httpx
from dagster import ConfigurableResource, get_dagster_logger
from pydantic import Field

from ..domain.backoff import backoff_delay


class _RedactWebhookUrls(logging.Filter):
    """httpx logs every request line with its full URL at INFO; for a webhook URL that line
    would carry the token, so registered URLs are masked in the `httpx` logger's records."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if self.urls:
            message = record.getMessage()
            if any(url in message for url in self.urls):
                for url in self.urls:
                    message = message.replace(url, "<alert webhook>")
                record.msg, record.args = message, None
        return True


def _url_forms(url: str) -> set[str]:
    """The URL as configured and as httpx prints it (normalised), both to be masked."""
    try:
        return {url, str(httpx.URL(url))}
    except Exception:  # noqa: BLE001 - an unparseable URL fails at send time, reported there
        return {url}


_REDACTOR = _RedactWebhookUrls()
logging.getLogger("httpx").addFilter(_REDACTOR)

SEVERITIES = {
    "info": (logging.INFO, "#439FE0"),
    "warning": (logging.WARNING, "#DAA038"),
    "error": (logging.ERROR, "#D00000"),
    "critical": (logging.CRITICAL, "#8B0000"),
}


def slack_payload(
    title: str, text: str, severity: str, fields: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A message incoming webhooks accept: a plain `text` fallback plus one coloured
    attachment with the title, the text and one short field per entry of `fields`."""
    _, color = SEVERITIES[severity]
    attachment: dict[str, Any] = {
        "fallback": f"[{severity.upper()}] {title}: {text}",
        "color": color,
        "title": title,
        "text": text,
        "fields": [
            {"title": str(key), "value": str(value), "short": len(str(value)) <= 40}
            for key, value in (fields or {}).items()
        ],
    }
    return {"text": f"[{severity.upper()}] {title}", "attachments": [attachment]}


class AlertsResource(ConfigurableResource):
    """Sends operator alerts. Unset `webhook_url` (LENDING_ALERT_WEBHOOK_URL): alerts are logged."""

    webhook_url: str | None = Field(
        default=None, repr=False, description="Slack-compatible incoming-webhook URL."
    )
    timeout: float = Field(default=5.0, gt=0, description="Seconds per delivery attempt.")
    retries: int = Field(default=3, ge=0, description="Extra delivery attempts.")
    backoff_seconds: float = Field(default=0.5, ge=0)
    reminder_minutes: int = Field(
        default=240,
        ge=0,
        description="A condition that keeps failing alerts again every this many minutes "
        "(0: never again) until it clears (LENDING_ALERT_REMINDER_MINUTES).",
    )

    def send(
        self,
        title: str,
        text: str,
        severity: str = "error",
        fields: dict[str, Any] | None = None,
    ) -> bool:
        """Deliver one alert. True when delivered (or logged, with no webhook), False when every
        delivery attempt failed. Never raises."""
        log = get_dagster_logger("alerts")
        if severity not in SEVERITIES:
            log.warning("alert %r has unknown severity %r; sent as 'error'", title, severity)
            severity = "error"
        level, _ = SEVERITIES[severity]
        if not self.webhook_url:
            details = "".join(f"\n  {key}: {value}" for key, value in (fields or {}).items())
            log.log(level, "ALERT [%s] %s: %s%s", severity.upper(), title, text, details)
            return True
        payload = slack_payload(title, text, severity, fields)
        _REDACTOR.urls.update(_url_forms(self.webhook_url))
        problem = "no attempt made"
        for attempt in range(1, self.retries + 2):
            try:
                response = httpx.post(self.webhook_url, json=payload, timeout=self.timeout)
            except Exception as exc:  # noqa: BLE001 - alerting must never break its caller
                # httpx messages can embed the URL; report only the kind of failure.
                problem = type(exc).__name__
            else:
                if response.is_success:
                    return True
                problem = f"HTTP {response.status_code}"
                if 400 <= response.status_code < 500 and response.status_code != 429:
                    break  # a rejected payload or a revoked webhook will not heal by retrying
            if attempt <= self.retries:
                time.sleep(
                    backoff_delay(
                        attempt,
                        base=self.backoff_seconds,
                        cap=10.0,
                        jitter=0.25,
                        rand=random.random(),
                    )
                )
        log.error(
            "ALERT NOT DELIVERED (%s) [%s] %s: %s%s",
            problem,
            severity.upper(),
            title,
            text,
            "".join(f"\n  {key}: {value}" for key, value in (fields or {}).items()),
        )
        return False
