"""Typed settings read from the environment.

Every setting has an environment variable, a documented default and a parser; a bad value fails
at start-up with a `SettingsError` that names the variable and the value. The README's
configuration table lists the same variables (a test keeps the two in step).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    """A configuration value that cannot be used."""


def _fail(env: str, raw: str, expected: str) -> SettingsError:
    return SettingsError(f"{env}={raw!r} is invalid: expected {expected}")


def _bool(env: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise _fail(env, raw, "true or false")


def _int(minimum: int) -> Callable[[str, str], int]:
    def parse(env: str, raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise _fail(env, raw, f"an integer >= {minimum}") from None
        if value < minimum:
            raise _fail(env, raw, f"an integer >= {minimum}")
        return value

    return parse


def _decimal(minimum: Decimal, maximum: Decimal | None = None) -> Callable[[str, str], Decimal]:
    expected = f"a decimal in [{minimum}, {maximum}]" if maximum else f"a decimal > {minimum}"

    def parse(env: str, raw: str) -> Decimal:
        try:
            value = Decimal(raw.strip())
        except InvalidOperation:
            raise _fail(env, raw, expected) from None
        if not value.is_finite() or value < minimum or (maximum is not None and value > maximum):
            raise _fail(env, raw, expected)
        if maximum is None and value == minimum:
            raise _fail(env, raw, expected)
        return value

    return parse


def _timezone(env: str, raw: str) -> str:
    try:
        ZoneInfo(raw.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise _fail(env, raw, "an IANA timezone such as 'Africa/Nairobi'") from None
    return raw.strip()


def _currency(env: str, raw: str) -> str:
    value = raw.strip().upper()
    if len(value) != 3 or not value.isalpha():
        raise _fail(env, raw, "a three-letter ISO 4217 currency code")
    return value


def _text(env: str, raw: str) -> str:
    return raw.strip()


def _optional_text(env: str, raw: str) -> str | None:
    return raw.strip() or None


def _url(env: str, raw: str) -> str:
    value = raw.strip().rstrip("/")
    if not value.startswith(("http://", "https://")):
        raise _fail(env, raw, "an http(s) URL")
    return value


def _optional_url(env: str, raw: str) -> str | None:
    return _url(env, raw) if raw.strip() else None


def _path(env: str, raw: str) -> Path:
    path = Path(raw.strip()).expanduser()
    return (path if path.is_absolute() else PROJECT_ROOT / path).resolve()


def _networks(env: str, raw: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """A comma-separated list of CIDRs (a bare address is a /32 or /128); empty: none."""
    networks = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            expected = f"comma-separated CIDRs such as '196.201.214.0/24' (not {item!r})"
            raise _fail(env, raw, expected) from None
    return tuple(networks)


RATE = _decimal(Decimal(0), Decimal(1))


def setting(
    env: str,
    default: str,
    parse: Callable[[str, str], object],
    doc: str,
    secret: bool = False,
):
    """Declare a setting: its environment variable, default (as the raw string) and meaning.
    A secret one is left out of the settings' repr, so printing settings never leaks it."""
    return field(
        default=None,
        repr=not secret,
        metadata={"env": env, "default": default, "parse": parse, "doc": doc},
    )


@dataclass(frozen=True)
class Settings:
    # --- infrastructure -------------------------------------------------------------------
    home: Path = setting(
        "LENDING_HOME",
        ".lending",
        _path,
        "Local state: embedded PostgreSQL data, DAGSTER_HOME, dev keys, payment-file inbox "
        "(a relative path is under the repository root).",
    )
    database_url: str | None = setting(
        "LENDING_DATABASE_URL",
        "",
        _optional_text,
        "SQLAlchemy URL of the operational database. Empty: the embedded PostgreSQL under "
        "LENDING_HOME is started (or reused) in dev mode, and start-up fails outside it.",
        secret=True,
    )
    dev_mode: bool = setting(
        "LENDING_DEV_MODE",
        "false",
        _bool,
        "Local development: the embedded PostgreSQL, generated dev secrets and the local partner "
        "services. Set by `make dev`, `make test` and the tests; `dagster dev` / `dg dev` from "
        "the repository turn it on too. Never in production.",
    )
    statement_timeout_ms: int = setting(
        "LENDING_STATEMENT_TIMEOUT_MS",
        "30000",
        _int(1),
        "PostgreSQL statement_timeout for every operational connection.",
    )
    sandbox_url: str = setting(
        "LENDING_SANDBOX_URL",
        "http://127.0.0.1:8700",
        _url,
        "Base URL of the partner-API sandbox (used by `make dev` and the seed data).",
    )
    webhooks_url: str = setting(
        "LENDING_WEBHOOKS_URL",
        "http://127.0.0.1:8701",
        _url,
        "Public base URL of the callback receiver (https, at the TLS proxy), given to M-Pesa as "
        "ResultURL and Twilio as StatusCallback; Twilio signatures are checked against it. "
        "Never the bind address.",
    )
    mpesa_callback_token: str | None = setting(
        "LENDING_MPESA_CALLBACK_TOKEN",
        "",
        _optional_text,
        "Unguessable path token of the M-Pesa callback URLs (Daraja does not sign callbacks). "
        "Required by the receiver; `make dev` generates one.",
        secret=True,
    )
    stripe_webhook_secret: str | None = setting(
        "LENDING_STRIPE_WEBHOOK_SECRET",
        "",
        _optional_text,
        "Endpoint secret (whsec_...) verifying Stripe-Signature. Empty: Stripe events refused.",
        secret=True,
    )
    mpesa_callback_token_previous: str | None = setting(
        "LENDING_MPESA_CALLBACK_TOKEN_PREVIOUS",
        "",
        _optional_text,
        "The token being rotated out: the receiver accepts it too until every request sent "
        "with it has been answered. At least 24 characters, like the current one.",
        secret=True,
    )
    stripe_webhook_secret_previous: str | None = setting(
        "LENDING_STRIPE_WEBHOOK_SECRET_PREVIOUS",
        "",
        _optional_text,
        "The endpoint secret being rolled out: a Stripe-Signature matching either is accepted.",
        secret=True,
    )
    webhooks_host: str = setting(
        "LENDING_WEBHOOKS_HOST",
        "127.0.0.1",
        _text,
        "Address `lending webhooks` binds (plain HTTP; TLS terminates at the proxy in front). "
        "Never derived from LENDING_WEBHOOKS_URL; `--host` overrides it.",
    )
    webhooks_port: int = setting(
        "LENDING_WEBHOOKS_PORT",
        "8701",
        _int(1),
        "Port `lending webhooks` binds; `--port` overrides it.",
    )
    webhooks_request_timeout_seconds: int = setting(
        "LENDING_WEBHOOKS_REQUEST_TIMEOUT_SECONDS",
        "10",
        _int(1),
        "A request's headers, and then its body, must each arrive within this; slower clients "
        "are disconnected (408).",
    )
    webhooks_max_connections: int = setting(
        "LENDING_WEBHOOKS_MAX_CONNECTIONS",
        "200",
        _int(1),
        "Open connections the receiver keeps; one more is answered 503 and closed at once.",
    )
    mpesa_allowed_networks: tuple = setting(
        "LENDING_MPESA_ALLOWED_NETWORKS",
        "",
        _networks,
        "Comma-separated CIDRs allowed to call the M-Pesa callback paths (Safaricom publishes "
        "its callback addresses). Empty: any address (dev).",
    )
    webhooks_trusted_proxies: tuple = setting(
        "LENDING_WEBHOOKS_TRUSTED_PROXIES",
        "",
        _networks,
        "Comma-separated CIDRs of the proxies in front of the receiver; X-Forwarded-For is "
        "honoured only from them. Empty: the peer address is the caller.",
    )
    # --- kill switches (also overridable in the feature_flags table) ----------------------
    cron_enabled: bool = setting(
        "CRON_ENABLED", "true", _bool, "Every schedule and sensor skips with a reason when false."
    )
    escalation_enabled: bool = setting(
        "ESCALATION_ENABLED", "true", _bool, "Collections: escalate DPD >= 90 loans to legal."
    )
    scoring_enabled: bool = setting(
        "SCORING_ENABLED", "true", _bool, "Collections: compute collector scores."
    )
    reminders_enabled: bool = setting(
        "REMINDERS_ENABLED", "true", _bool, "Credit and collections: send reminder messages."
    )
    # --- timezones per workflow -----------------------------------------------------------
    loans_timezone: str = setting(
        "LENDING_LOANS_TIMEZONE",
        "Africa/Nairobi",
        _timezone,
        "Loan polling / disbursement schedules.",
    )
    credit_timezone: str = setting(
        "LENDING_CREDIT_TIMEZONE", "Asia/Kolkata", _timezone, "Retailer credit operations."
    )
    payouts_timezone: str = setting(
        "LENDING_PAYOUTS_TIMEZONE", "UTC", _timezone, "Creator payout dates (02:00 on 1st/15th)."
    )
    escrow_timezone: str = setting(
        "LENDING_ESCROW_TIMEZONE", "Africa/Nairobi", _timezone, "Escrow release and auto-deduct."
    )
    collections_timezone: str = setting(
        "LENDING_COLLECTIONS_TIMEZONE", "Asia/Kolkata", _timezone, "DPD business days."
    )
    # --- loans: polling and auto-disbursement ---------------------------------------------
    poll_concurrency: int = setting(
        "LENDING_POLL_CONCURRENCY", "16", _int(1), "Partners polled at once."
    )
    poll_timeout_seconds: int = setting(
        "LENDING_POLL_TIMEOUT_SECONDS", "30", _int(1), "Whole polling budget per partner."
    )
    poll_success_rate_warn: Decimal = setting(
        "LENDING_POLL_SUCCESS_RATE_WARN",
        "0.95",
        RATE,
        "Polling success rate over the last hour below which the check warns.",
    )
    poll_error_rate_fail: Decimal = setting(
        "LENDING_POLL_ERROR_RATE_FAIL",
        "0.10",
        RATE,
        "Polling error rate over the last hour above which the check fails.",
    )
    no_new_loan_hours: int = setting(
        "LENDING_NO_NEW_LOAN_HOURS", "24", _int(1), "Alert when no new loan was tracked this long."
    )
    partner_failing_minutes: int = setting(
        "LENDING_PARTNER_FAILING_MINUTES",
        "60",
        _int(1),
        "Alert when a partner failed every poll for this long.",
    )
    disbursement_success_rate_min: Decimal = setting(
        "LENDING_DISBURSEMENT_SUCCESS_RATE_MIN",
        "0.90",
        RATE,
        "Auto-disbursement success rate below which the check fails.",
    )
    disbursement_stuck_minutes: int = setting(
        "LENDING_DISBURSEMENT_STUCK_MINUTES",
        "60",
        _int(1),
        "A disbursement without a final outcome for this long is reported stuck.",
    )
    disbursement_reconcile_after_minutes: int = setting(
        "LENDING_DISBURSEMENT_RECONCILE_AFTER_MINUTES",
        "10",
        _int(0),
        "Submitted/unknown disbursements older than this are reconciled with a status query.",
    )
    disbursement_not_found_gap_minutes: int = setting(
        "LENDING_DISBURSEMENT_NOT_FOUND_GAP_MINUTES",
        "30",
        _int(0),
        "An attempt M-Pesa reports not found is sent again (same id) only after a second "
        "not-found answer at least this long after the first.",
    )
    disbursement_submitter_wait_seconds: int = setting(
        "LENDING_DISBURSEMENT_SUBMITTER_WAIT_SECONDS",
        "30",
        _int(0),
        "How long a B2C submitter (polling run, retry run, UI materialization) waits for "
        "another one to finish before leaving the due rows to it.",
    )
    disbursement_max_attempts: int = setting(
        "LENDING_DISBURSEMENT_MAX_ATTEMPTS",
        "5",
        _int(1),
        "B2C attempts per disbursement before it stops as failed.",
    )
    disbursement_backoff_seconds: int = setting(
        "LENDING_DISBURSEMENT_BACKOFF_SECONDS",
        "60",
        _int(1),
        "Base of the exponential backoff between disbursement attempts.",
    )
    mpesa_base_url: str | None = setting(
        "LENDING_MPESA_BASE_URL",
        "",
        _optional_url,
        "Daraja host (https://api.safaricom.co.ke live, https://sandbox.safaricom.co.ke for "
        "Safaricom's sandbox). Empty: the local sandbox's /mpesa. A partner row may override it.",
    )
    encryption_key: str | None = setting(
        "LENDING_ENCRYPTION_KEY",
        "",
        _optional_text,
        "Fernet key(s) encrypting partner credentials at rest, comma-separated during a "
        "rotation: the first encrypts, all decrypt (`lending secrets rotate`). `make dev` "
        "generates one under LENDING_HOME when unset; production must set it.",
        secret=True,
    )
    # --- payouts ----------------------------------------------------------------------------
    payout_currency: str = setting(
        "LENDING_PAYOUT_CURRENCY", "USD", _currency, "Currency creators are paid in."
    )
    token_rate: Decimal = setting(
        "LENDING_TOKEN_RATE",
        "0.05",
        _decimal(Decimal(0)),
        "Money per token in LENDING_PAYOUT_CURRENCY major units.",
    )
    payout_minimum_tokens: int = setting(
        "LENDING_PAYOUT_MINIMUM_TOKENS", "200", _int(1), "Minimum available balance to be paid."
    )
    payout_hold_days: int = setting(
        "LENDING_PAYOUT_HOLD_DAYS", "7", _int(0), "Chargeback hold on earnings, in days."
    )
    payout_chunk_size: int = setting(
        "LENDING_PAYOUT_CHUNK_SIZE", "25", _int(1), "Payout items per chunk."
    )
    payout_max_concurrent_chunks: int = setting(
        "LENDING_PAYOUT_MAX_CONCURRENT_CHUNKS", "5", _int(1), "Chunks processed at once."
    )
    payout_lease_seconds: int = setting(
        "LENDING_PAYOUT_LEASE_SECONDS",
        "900",
        _int(30),
        "How long a payout worker holds a chunk without progress; after it, another run or "
        "the retry job takes over the chunk's items.",
    )
    stripe_account_event_fresh_hours: int = setting(
        "LENDING_STRIPE_ACCOUNT_EVENT_FRESH_HOURS",
        "24",
        _int(0),
        "A Connect account state from a verified account.updated event younger than this is "
        "used without asking Stripe again before a payout (0: always ask).",
    )
    stripe_requests_per_second: int = setting(
        "LENDING_STRIPE_REQUESTS_PER_SECOND",
        "20",
        _int(1),
        "Shared Stripe request-rate limit across payout workers.",
    )
    stripe_url: str | None = setting(
        "LENDING_STRIPE_URL",
        "",
        _optional_url,
        "Stripe API base URL (https://api.stripe.com live). Empty: the sandbox's /stripe. The "
        "secret key is read from LENDING_STRIPE_API_KEY (a secret, never config).",
    )
    # --- WhatsApp (Twilio) ------------------------------------------------------------------
    twilio_url: str | None = setting(
        "LENDING_TWILIO_URL",
        "",
        _optional_url,
        "Twilio API base URL (https://api.twilio.com live). Empty: the sandbox's /twilio. The "
        "auth token is read from LENDING_TWILIO_AUTH_TOKEN (a secret, never config).",
    )
    twilio_account_sid: str = setting(
        "LENDING_TWILIO_ACCOUNT_SID",
        "AC0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d",
        _text,
        "Twilio Account SID (AC...). The default is the sandbox's account.",
    )
    whatsapp_from: str = setting(
        "LENDING_WHATSAPP_FROM",
        "+14155238886",
        _text,
        "WhatsApp sender number (+E164) registered on the Twilio account.",
    )
    # --- escrow and auto-deduct -------------------------------------------------------------
    escrow_release_days: int = setting(
        "LENDING_ESCROW_RELEASE_DAYS", "7", _int(0), "Default auto_release_at after order creation."
    )
    auto_deduct_percent: Decimal = setting(
        "LENDING_AUTO_DEDUCT_PERCENT",
        "30",
        _decimal(Decimal(0), Decimal(100)),
        "Default share of outstanding debt deducted per day.",
    )
    min_wallet_balance_minor: int = setting(
        "LENDING_MIN_WALLET_BALANCE_MINOR",
        "10000",
        _int(0),
        "Default minimum wallet balance kept by auto-deduct (minor units; RWF has none).",
    )
    wallet_currency: str = setting(
        "LENDING_WALLET_CURRENCY", "RWF", _currency, "Currency of retailer wallets."
    )
    blnk_url: str | None = setting(
        "LENDING_BLNK_URL",
        "",
        _optional_url,
        "Base URL of the Blnk ledger (e.g. http://blnk.internal:5001). Empty: the sandbox's "
        "/blnk. In secure mode its key is read from LENDING_BLNK_API_KEY (a secret, never config).",
    )
    # --- alerts ---------------------------------------------------------------------------
    alert_webhook_url: str | None = setting(
        "LENDING_ALERT_WEBHOOK_URL",
        "",
        _optional_text,
        "Slack-compatible webhook for alerts. Empty: alerts are logged.",
        secret=True,
    )
    alert_reminder_minutes: int = setting(
        "LENDING_ALERT_REMINDER_MINUTES",
        "240",
        _int(0),
        "A condition that keeps failing alerts when it starts, again every this many minutes "
        "(0: never again), and once when it clears.",
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        values = {}
        for spec in fields(cls):
            env, default, parse = (spec.metadata[k] for k in ("env", "default", "parse"))
            raw = environ.get(env)
            if raw is None or (raw.strip() == "" and default != ""):
                raw = default
            values[spec.name] = parse(env, raw)
        return cls(**values)

    @property
    def pg_data_dir(self) -> Path:
        return self.home / "pg"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster_home"


def documented_settings() -> list[tuple[str, str, str]]:
    """(environment variable, default, meaning) for every setting, in declaration order."""
    return [(f.metadata["env"], f.metadata["default"], f.metadata["doc"]) for f in fields(Settings)]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings.from_env()
