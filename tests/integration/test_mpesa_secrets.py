"""No M-Pesa consumer secret, security credential or access token ever reaches a log line, an
exception message or a repr — for rejected credentials, timeouts and gateway 500s."""

from __future__ import annotations

import base64
import logging
import traceback

import pytest

from lending_dev.sandbox.mpesa import DEFAULT_APPS
from lending_pipelines.resources.mpesa import TOKEN_CACHE, MpesaError, MpesaResource

CALLBACK_TOKEN = "cb-77aa0e3f-do-not-leak"
APP = dict(
    DEFAULT_APPS[0],
    consumer_secret="cs-1f0e9d2c-do-not-leak",
    security_credential="sc-a8b7c6d5-do-not-leak",
)


@pytest.fixture(autouse=True)
def fresh_tokens():
    TOKEN_CACHE.clear()
    yield
    TOKEN_CACHE.clear()


def client_and_resource(sandbox, **settings):
    resource = MpesaResource(
        base_url=sandbox.url("mpesa"),
        consumer_key=APP["consumer_key"],
        consumer_secret=APP["consumer_secret"],
        shortcode=APP["shortcode"],
        initiator_name=APP["initiator_name"],
        security_credential=APP["security_credential"],
        result_url="http://127.0.0.1:9/mpesa/{token}/result",
        callback_token=CALLBACK_TOKEN,
        backoff_base_seconds=0.01,
        **settings,
    )
    return resource.client(), resource


@pytest.mark.parametrize(
    ("case", "faults"),
    [
        ("bad-secret", {}),
        ("token-timeout", {"mpesa": {"timeout_rate": 1.0}}),
        ("b2c-500", None),
        ("b2c-timeout", None),
    ],
)
def test_failing_calls_never_show_secrets_or_tokens(sandbox, caplog, case, faults):
    caplog.set_level(logging.DEBUG)
    secrets = [APP["consumer_secret"], APP["security_credential"], CALLBACK_TOKEN]
    secrets.append(
        base64.b64encode(f"{APP['consumer_key']}:{APP['consumer_secret']}".encode()).decode()
    )
    if case != "bad-secret":
        # the sandbox knows this app with these secrets; make the calls fail otherwise
        sandbox.configure("mpesa", {"apps": [APP]})
    client, resource = client_and_resource(sandbox, timeout_seconds=0.3, max_attempts=2)
    if case.startswith("b2c"):
        secrets.append(client.access_token())  # a real token, cached, then used as Bearer
        sandbox.set_faults(
            {"mpesa": {"error_rate": 1.0} if case == "b2c-500" else {"timeout_rate": 1.0}}
        )
    elif faults:
        sandbox.set_faults(faults)
    with pytest.raises(MpesaError) as caught:
        if case.startswith("b2c"):
            client.b2c_payment(
                originator_conversation_id="leak-1", phone="254712345678", amount=100
            )
        else:
            client.access_token()
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
    assert [secret for secret in secrets if secret in shown] == []
    assert "600981" in str(caught.value)  # the error still names the shortcode
