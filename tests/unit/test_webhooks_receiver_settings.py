"""The receiver's settings and the pure parts of its checks."""

import ipaddress

import pytest
from starlette.requests import Request

from lending_pipelines.settings import Settings, SettingsError
from lending_pipelines.webhooks.access_log import redact
from lending_pipelines.webhooks.networks import caller_address, parse_networks
from lending_pipelines.webhooks.signatures import token_matches


def test_receiver_bind_defaults_are_loopback_and_not_derived_from_the_public_url():
    s = Settings.from_env({"LENDING_WEBHOOKS_URL": "https://hooks.example.test"})
    assert (s.webhooks_host, s.webhooks_port) == ("127.0.0.1", 8701)
    assert (s.mpesa_allowed_networks, s.webhooks_trusted_proxies) == ((), ())


def test_allowed_networks_are_parsed_from_comma_separated_cidrs():
    s = Settings.from_env({"LENDING_MPESA_ALLOWED_NETWORKS": "196.201.214.0/24, 196.201.213.44"})
    assert s.mpesa_allowed_networks == (
        ipaddress.ip_network("196.201.214.0/24"),
        ipaddress.ip_network("196.201.213.44/32"),
    )


@pytest.mark.parametrize(
    ("env", "value"),
    [
        ("LENDING_MPESA_ALLOWED_NETWORKS", "196.201.214.0/24,safaricom"),
        ("LENDING_WEBHOOKS_TRUSTED_PROXIES", "10.0.0.0/33"),
        ("LENDING_WEBHOOKS_PORT", "0"),
        ("LENDING_WEBHOOKS_REQUEST_TIMEOUT_SECONDS", "soon"),
    ],
)
def test_a_bad_receiver_setting_fails_fast_naming_the_variable_and_value(env, value):
    with pytest.raises(SettingsError) as error:
        Settings.from_env({env: value})
    assert env in str(error.value) and repr(value) in str(error.value)


def test_receiver_secrets_stay_out_of_the_settings_repr():
    shown = repr(
        Settings.from_env(
            {
                "LENDING_MPESA_CALLBACK_TOKEN_PREVIOUS": "previous-token-value-123456",
                "LENDING_STRIPE_WEBHOOK_SECRET_PREVIOUS": "whsec_previous_value",
            }
        )
    )
    assert "previous-token-value" not in shown and "whsec_previous" not in shown


def _request(peer: str, forwarded: str | None = None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return Request({"type": "http", "client": (peer, 5555), "headers": headers})


def test_the_caller_is_the_rightmost_forwarded_address_that_is_not_a_trusted_proxy():
    proxies = parse_networks(["10.0.0.0/8"])
    assert (
        str(caller_address(_request("10.0.0.5", "1.2.3.4, 196.201.214.9, 10.0.0.7"), proxies))
        == "196.201.214.9"
    )
    assert str(caller_address(_request("203.0.113.1", "196.201.214.9"), proxies)) == "203.0.113.1"
    assert caller_address(_request("10.0.0.5", "not-an-ip"), proxies) is None


def test_tokens_are_compared_as_bytes_against_every_accepted_token():
    tokens = (b"a" * 24, b"b" * 24)
    assert token_matches("b" * 24, tokens)
    assert not token_matches("é" * 24, tokens)
    assert not token_matches("\udcff" * 3, tokens)


def test_the_access_log_path_never_carries_the_mpesa_token():
    assert redact("/mpesa/s3cr3t-token/result") == "/mpesa/***/result"
    assert redact("/mpesa/s3cr3t-token") == "/mpesa/***"
    assert redact("/twilio/status") == "/twilio/status"
