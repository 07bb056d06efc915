"""No Fineract password ever reaches a log line, an exception message or a repr — not for
bad credentials, not for timeouts, not for server errors."""

from __future__ import annotations

import base64
import logging
import traceback

import pytest

from lending_pipelines.resources.fineract import FineractError, FineractResource

PASSWORD = "Pw-7c1e9b44-do-not-leak"


def leaks(text: str) -> list[str]:
    secret_forms = [
        PASSWORD,
        base64.b64encode(f"mifos:{PASSWORD}".encode()).decode(),
        base64.b64encode(f"acme:{PASSWORD}".encode()).decode(),
    ]
    return [form for form in secret_forms if form in text]


@pytest.mark.parametrize(
    "faults",
    [
        {},  # PASSWORD is not acme's password → 401
        {"fineract:acme": {"timeout_rate": 1.0}},
        {"fineract:acme": {"error_rate": 1.0}},
        {"fineract:acme": {"malformed_rate": 1.0}},
    ],
    ids=["401", "timeout", "500", "malformed"],
)
def test_failing_calls_never_show_the_password(sandbox, caplog, faults):
    if faults:
        sandbox.set_faults(faults)
    resource = FineractResource(
        password=PASSWORD, timeout_seconds=0.3, max_attempts=2, backoff_base_seconds=0.01
    )
    client = resource.client_for(
        base_url=sandbox.url("fineract"), tenant_id="acme", username="mifos", password=PASSWORD
    )
    caplog.set_level(logging.DEBUG)
    with pytest.raises(FineractError) as caught:
        client.list_loans()
    shown = "\n".join(
        [
            str(caught.value),
            repr(caught.value),
            "".join(traceback.format_exception(caught.value)),
            caplog.text,
            repr(resource),
            str(resource),
            repr(client),
            repr(client.config),
        ]
    )
    assert leaks(shown) == []
    assert "tenant 'acme'" in str(caught.value)
