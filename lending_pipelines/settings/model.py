"""The settings model: one field per environment variable (declared with `setting`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from .values import (
    AtLeast0,
    AtLeast1,
    AtLeast30,
    Currency,
    Flag,
    LocalPath,
    Networks,
    OptionalUrl,
    Percent,
    PositiveDecimal,
    Rate,
    Secret,
    SettingsError,
    Text,
    Timezone,
    Url,
    setting,
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        frozen=True,
        case_sensitive=True,
        env_ignore_empty=True,  # an empty variable means the default, as if unset
        validate_default=True,  # defaults are raw strings, parsed like the environment's
        extra="ignore",
    )

    # --- infrastructure -------------------------------------------------------------------
    home: LocalPath = setting(
        "LENDING_HOME",
        ".lending",
        "Local state: embedded PostgreSQL data, DAGSTER_HOME, dev keys, payment-file inbox (a "
        "relative path is under the repository root).",
    )
    database_url: Secret = setting(
        "LENDING_DATABASE_URL",
        "",
        "SQLAlchemy URL of the operational database. Empty: the embedded PostgreSQL under "
        "LENDING_HOME is started (or reused) in dev mode, and start-up fails outside it.",
        secret=True,
        production=True,
    )
    dev_mode: Flag = setting(
        "LENDING_DEV_MODE",
        "false",
        "Local development: the embedded PostgreSQL, generated dev secrets and the local partner "
        "services. Set by `make dev`, `make test` and the tests; `dagster dev` / `dg dev` from "
        "the repository turn it on too. Never in production.",
    )
    statement_timeout_ms: AtLeast1 = setting(
        "LENDING_STATEMENT_TIMEOUT_MS",
        "30000",
        "PostgreSQL statement_timeout for every operational connection.",
    )
    sandbox_url: Url = setting(
        "LENDING_SANDBOX_URL",
        "http://127.0.0.1:8700",
        "Base URL of the partner-API sandbox (used by `make dev` and the seed data).",
    )
    webhooks_url: Url = setting(
        "LENDING_WEBHOOKS_URL",
        "http://127.0.0.1:8701",
        "Public base URL of the callback receiver (https, at the TLS proxy), given to M-Pesa as "
        "ResultURL and Twilio as StatusCallback; Twilio signatures are checked against it. Never "
        "the bind address.",
        production=True,
    )
    mpesa_callback_token: Secret = setting(
        "LENDING_MPESA_CALLBACK_TOKEN",
        "",
        "Unguessable path token of the M-Pesa callback URLs (Daraja does not sign callbacks). "
        "Required by the receiver; `make dev` generates one.",
        secret=True,
        production=True,
    )
    stripe_webhook_secret: Secret = setting(
        "LENDING_STRIPE_WEBHOOK_SECRET",
        "",
        "Endpoint secret (whsec_...) verifying Stripe-Signature. Empty: Stripe events refused.",
        secret=True,
        production=True,
    )
    mpesa_callback_token_previous: Secret = setting(
        "LENDING_MPESA_CALLBACK_TOKEN_PREVIOUS",
        "",
        "The token being rotated out: the receiver accepts it too until every request sent with "
        "it has been answered. At least 24 characters, like the current one.",
        secret=True,
    )
    stripe_webhook_secret_previous: Secret = setting(
        "LENDING_STRIPE_WEBHOOK_SECRET_PREVIOUS",
        "",
        "The endpoint secret being rolled out: a Stripe-Signature matching either is accepted.",
        secret=True,
    )
    webhooks_host: Text = setting(
        "LENDING_WEBHOOKS_HOST",
        "127.0.0.1",
        "Address `lending webhooks` binds (plain HTTP; TLS terminates at the proxy in front). "
        "Never derived from LENDING_WEBHOOKS_URL; `--host` overrides it.",
    )
    webhooks_port: AtLeast1 = setting(
        "LENDING_WEBHOOKS_PORT", "8701", "Port `lending webhooks` binds; `--port` overrides it."
    )
    webhooks_request_timeout_seconds: AtLeast1 = setting(
        "LENDING_WEBHOOKS_REQUEST_TIMEOUT_SECONDS",
        "10",
        "A request's headers, and then its body, must each arrive within this; slower clients are"
        " disconnected (408).",
    )
    webhooks_max_body_bytes_mpesa: AtLeast1 = setting(
        "LENDING_WEBHOOKS_MAX_BODY_BYTES_MPESA",
        "65536",
        "Largest Daraja callback body accepted (a result is 1-3 KB); larger is answered 413.",
    )
    webhooks_max_body_bytes_stripe: AtLeast1 = setting(
        "LENDING_WEBHOOKS_MAX_BODY_BYTES_STRIPE",
        "262144",
        "Largest Stripe event body accepted (events embed whole objects); larger: 413.",
    )
    webhooks_max_body_bytes_twilio: AtLeast1 = setting(
        "LENDING_WEBHOOKS_MAX_BODY_BYTES_TWILIO",
        "16384",
        "Largest Twilio status-callback form accepted (1-2 KB); larger is answered 413.",
    )
    webhooks_max_connections: AtLeast1 = setting(
        "LENDING_WEBHOOKS_MAX_CONNECTIONS",
        "200",
        "Open connections the receiver keeps; one more is answered 503 and closed at once.",
    )
    mpesa_allowed_networks: Networks = setting(
        "LENDING_MPESA_ALLOWED_NETWORKS",
        "",
        "Comma-separated CIDRs allowed to call the M-Pesa callback paths (Safaricom publishes its"
        " callback addresses). Empty: any address (dev).",
        production=True,
    )
    webhooks_trusted_proxies: Networks = setting(
        "LENDING_WEBHOOKS_TRUSTED_PROXIES",
        "",
        "Comma-separated CIDRs of the proxies in front of the receiver; X-Forwarded-For is "
        "honoured only from them. Empty: the peer address is the caller.",
        production=True,
    )
    # --- kill switches (also overridable in the feature_flags table) ----------------------
    cron_enabled: Flag = setting(
        "CRON_ENABLED", "true", "Every schedule and sensor skips with a reason when false."
    )
    escalation_enabled: Flag = setting(
        "ESCALATION_ENABLED", "true", "Collections: escalate DPD >= 90 loans to legal."
    )
    scoring_enabled: Flag = setting(
        "SCORING_ENABLED", "true", "Collections: compute collector scores."
    )
    reminders_enabled: Flag = setting(
        "REMINDERS_ENABLED", "true", "Credit and collections: send reminder messages."
    )
    # --- timezones per workflow -----------------------------------------------------------
    loans_timezone: Timezone = setting(
        "LENDING_LOANS_TIMEZONE", "Africa/Nairobi", "Loan polling / disbursement schedules."
    )
    credit_timezone: Timezone = setting(
        "LENDING_CREDIT_TIMEZONE", "Asia/Kolkata", "Retailer credit operations."
    )
    payouts_timezone: Timezone = setting(
        "LENDING_PAYOUTS_TIMEZONE", "UTC", "Creator payout dates (02:00 on 1st/15th)."
    )
    escrow_timezone: Timezone = setting(
        "LENDING_ESCROW_TIMEZONE", "Africa/Nairobi", "Escrow release and auto-deduct."
    )
    collections_timezone: Timezone = setting(
        "LENDING_COLLECTIONS_TIMEZONE", "Asia/Kolkata", "DPD business days."
    )
    # --- loans: polling and auto-disbursement ---------------------------------------------
    poll_concurrency: AtLeast1 = setting(
        "LENDING_POLL_CONCURRENCY", "16", "Partners polled at once."
    )
    poll_timeout_seconds: AtLeast1 = setting(
        "LENDING_POLL_TIMEOUT_SECONDS", "30", "Whole polling budget per partner."
    )
    poll_success_rate_warn: Rate = setting(
        "LENDING_POLL_SUCCESS_RATE_WARN",
        "0.95",
        "Polling success rate over the last hour below which the check warns.",
    )
    poll_error_rate_fail: Rate = setting(
        "LENDING_POLL_ERROR_RATE_FAIL",
        "0.10",
        "Polling error rate over the last hour above which the check fails.",
    )
    no_new_loan_hours: AtLeast1 = setting(
        "LENDING_NO_NEW_LOAN_HOURS", "24", "Alert when no new loan was tracked this long."
    )
    partner_failing_minutes: AtLeast1 = setting(
        "LENDING_PARTNER_FAILING_MINUTES",
        "60",
        "Alert when a partner failed every poll for this long.",
    )
    disbursement_success_rate_min: Rate = setting(
        "LENDING_DISBURSEMENT_SUCCESS_RATE_MIN",
        "0.90",
        "Auto-disbursement success rate below which the check fails.",
    )
    disbursement_stuck_minutes: AtLeast1 = setting(
        "LENDING_DISBURSEMENT_STUCK_MINUTES",
        "60",
        "A disbursement without a final outcome for this long is reported stuck.",
    )
    disbursement_reconcile_after_minutes: AtLeast0 = setting(
        "LENDING_DISBURSEMENT_RECONCILE_AFTER_MINUTES",
        "10",
        "Submitted/unknown disbursements older than this are reconciled with a status query.",
    )
    disbursement_not_found_gap_minutes: AtLeast0 = setting(
        "LENDING_DISBURSEMENT_NOT_FOUND_GAP_MINUTES",
        "30",
        "An attempt M-Pesa reports not found is sent again (same id) only after a second not-"
        "found answer at least this long after the first.",
    )
    disbursement_submitter_wait_seconds: AtLeast0 = setting(
        "LENDING_DISBURSEMENT_SUBMITTER_WAIT_SECONDS",
        "30",
        "How long a B2C submitter (polling run, retry run, UI materialization) waits for another "
        "one to finish before leaving the due rows to it.",
    )
    disbursement_max_attempts: AtLeast1 = setting(
        "LENDING_DISBURSEMENT_MAX_ATTEMPTS",
        "5",
        "B2C attempts per disbursement before it stops as failed.",
    )
    disbursement_backoff_seconds: AtLeast1 = setting(
        "LENDING_DISBURSEMENT_BACKOFF_SECONDS",
        "60",
        "Base of the exponential backoff between disbursement attempts.",
    )
    mpesa_base_url: OptionalUrl = setting(
        "LENDING_MPESA_BASE_URL",
        "",
        "Daraja host (https://api.safaricom.co.ke live, https://sandbox.safaricom.co.ke for "
        "Safaricom's sandbox). Empty: the local sandbox's /mpesa. A partner row may override it.",
        production=True,
    )
    encryption_key: Secret = setting(
        "LENDING_ENCRYPTION_KEY",
        "",
        "Fernet key(s) encrypting partner credentials at rest, comma-separated during a rotation:"
        " the first encrypts, all decrypt (`lending secrets rotate`). `make dev` generates one "
        "under LENDING_HOME when unset; production must set it.",
        secret=True,
        production=True,
    )
    # --- payouts ----------------------------------------------------------------------------
    payout_currency: Currency = setting(
        "LENDING_PAYOUT_CURRENCY", "USD", "Currency creators are paid in."
    )
    token_rate: PositiveDecimal = setting(
        "LENDING_TOKEN_RATE", "0.05", "Money per token in LENDING_PAYOUT_CURRENCY major units."
    )
    payout_minimum_tokens: AtLeast1 = setting(
        "LENDING_PAYOUT_MINIMUM_TOKENS", "200", "Minimum available balance to be paid."
    )
    payout_hold_days: AtLeast0 = setting(
        "LENDING_PAYOUT_HOLD_DAYS", "7", "Chargeback hold on earnings, in days."
    )
    payout_chunk_size: AtLeast1 = setting(
        "LENDING_PAYOUT_CHUNK_SIZE", "25", "Payout items per chunk."
    )
    payout_max_concurrent_chunks: AtLeast1 = setting(
        "LENDING_PAYOUT_MAX_CONCURRENT_CHUNKS", "5", "Chunks processed at once."
    )
    payout_lease_seconds: AtLeast30 = setting(
        "LENDING_PAYOUT_LEASE_SECONDS",
        "900",
        "How long a payout worker holds a chunk without progress; after it, another run or the "
        "retry job takes over the chunk's items.",
    )
    stripe_account_event_fresh_hours: AtLeast0 = setting(
        "LENDING_STRIPE_ACCOUNT_EVENT_FRESH_HOURS",
        "24",
        "A Connect account state from a verified account.updated event younger than this is used "
        "without asking Stripe again before a payout (0: always ask).",
    )
    stripe_requests_per_second: AtLeast1 = setting(
        "LENDING_STRIPE_REQUESTS_PER_SECOND",
        "20",
        "Shared Stripe request-rate limit across payout workers.",
    )
    stripe_url: OptionalUrl = setting(
        "LENDING_STRIPE_URL",
        "",
        "Stripe API base URL (https://api.stripe.com live). Empty: the sandbox's /stripe. The "
        "secret key is read from LENDING_STRIPE_API_KEY (a secret, never config).",
        production=True,
    )
    # --- WhatsApp (Twilio) ------------------------------------------------------------------
    twilio_url: OptionalUrl = setting(
        "LENDING_TWILIO_URL",
        "",
        "Twilio API base URL (https://api.twilio.com live). Empty: the sandbox's /twilio. The "
        "auth token is read from LENDING_TWILIO_AUTH_TOKEN (a secret, never config).",
        production=True,
    )
    twilio_account_sid: Text = setting(
        "LENDING_TWILIO_ACCOUNT_SID",
        "AC0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d",
        "Twilio Account SID (AC...). The default is the sandbox's account.",
        production=True,
    )
    whatsapp_from: Text = setting(
        "LENDING_WHATSAPP_FROM",
        "+14155238886",
        "WhatsApp sender number (+E164) registered on the Twilio account.",
        production=True,
    )
    # --- escrow and auto-deduct -------------------------------------------------------------
    escrow_release_days: AtLeast0 = setting(
        "LENDING_ESCROW_RELEASE_DAYS", "7", "Default auto_release_at after order creation."
    )
    auto_deduct_percent: Percent = setting(
        "LENDING_AUTO_DEDUCT_PERCENT", "30", "Default share of outstanding debt deducted per day."
    )
    min_wallet_balance_minor: AtLeast0 = setting(
        "LENDING_MIN_WALLET_BALANCE_MINOR",
        "10000",
        "Default minimum wallet balance kept by auto-deduct (minor units; RWF has none).",
    )
    wallet_currency: Currency = setting(
        "LENDING_WALLET_CURRENCY", "RWF", "Currency of retailer wallets."
    )
    blnk_url: OptionalUrl = setting(
        "LENDING_BLNK_URL",
        "",
        "Base URL of the Blnk ledger (e.g. http://blnk.internal:5001). Empty: the sandbox's "
        "/blnk. In secure mode its key is read from LENDING_BLNK_API_KEY (a secret, never "
        "config).",
        production=True,
    )
    # --- alerts ---------------------------------------------------------------------------
    alert_webhook_url: Secret = setting(
        "LENDING_ALERT_WEBHOOK_URL",
        "",
        "Slack-compatible webhook for alerts. Empty: alerts are logged.",
        secret=True,
        production=True,
    )
    alert_reminder_minutes: AtLeast0 = setting(
        "LENDING_ALERT_REMINDER_MINUTES",
        "240",
        "A condition that keeps failing alerts when it starts, again every this many minutes (0: "
        "never again), and once when it clears.",
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings from `environ` (default: the process environment)."""
        try:
            if environ is None:
                return cls()
            given = {env: raw for env, raw in environ.items() if env in ENV_NAMES and raw.strip()}
            return cls.model_validate(given)
        except ValidationError as error:
            raise _settings_error(error) from None

    @property
    def pg_data_dir(self) -> Path:
        return self.home / "pg"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster_home"


def extra(name: str) -> dict[str, Any]:
    """A field's declaration: env, raw_default, secret."""
    return Settings.model_fields[name].json_schema_extra  # type: ignore[return-value]


ENV_NAMES = {extra(name)["env"] for name in Settings.model_fields}
SECRET_ENV = {extra(name)["env"] for name in Settings.model_fields if extra(name)["secret"]}


def _settings_error(error: ValidationError) -> SettingsError:
    """The first problem as `VAR='value' is invalid: expected ...` (a secret's value hidden)."""
    problem = error.errors()[0]
    env = str(problem["loc"][0]) if problem["loc"] else "?"
    raw = "***" if env in SECRET_ENV else problem.get("input")
    reason = str(problem["msg"]).removeprefix("Value error, ")
    return SettingsError(f"{env}={raw!r} is invalid: {reason}")
