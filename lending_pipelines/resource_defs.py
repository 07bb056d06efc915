"""The resources every job can ask for, chosen by settings (never by `if` inside assets).

Secrets are `EnvVar`s so they are read in the run process and never stored in run config.
"""

from __future__ import annotations

import os

import dagster as dg
from pydantic import SecretStr

from .analytics_dbt import dbt_resource
from .resources.alerts import AlertsResource
from .resources.blnk import BlnkResource
from .resources.collections_config import CollectionsConfig
from .resources.credit_config import CreditConfig
from .resources.database import DatabaseResource
from .resources.escrow_config import EscrowConfig
from .resources.fineract import FineractResource
from .resources.loans_config import LoansConfig
from .resources.mpesa import MpesaResource
from .resources.payouts_config import PayoutsConfig
from .resources.stripe_connect import StripeConnectResource
from .resources.whatsapp import WhatsAppResource
from .settings import Settings
from .webhooks.urls import mpesa_callback_url

BLNK_API_KEY_ENV = "LENDING_BLNK_API_KEY"
STRIPE_API_KEY_ENV = "LENDING_STRIPE_API_KEY"
TWILIO_AUTH_TOKEN_ENV = "LENDING_TWILIO_AUTH_TOKEN"
MPESA_CALLBACK_TOKEN_ENV = "LENDING_MPESA_CALLBACK_TOKEN"


def build_resources(settings: Settings) -> dict[str, object]:
    token_placeholder = settings.model_copy(update={"mpesa_callback_token": SecretStr("{token}")})
    return {
        "database": DatabaseResource(statement_timeout_ms=settings.statement_timeout_ms),
        "blnk": BlnkResource(
            base_url=settings.blnk_url or f"{settings.sandbox_url}/blnk",
            api_key=dg.EnvVar(BLNK_API_KEY_ENV) if os.environ.get(BLNK_API_KEY_ENV) else None,
        ),
        "stripe_connect": StripeConnectResource(
            api_key=dg.EnvVar(STRIPE_API_KEY_ENV),
            api_base=settings.stripe_url or f"{settings.sandbox_url}/stripe",
        ),
        "whatsapp": WhatsAppResource(
            account_sid=settings.twilio_account_sid,
            auth_token=dg.EnvVar(TWILIO_AUTH_TOKEN_ENV),
            from_number=settings.whatsapp_from,
            base_url=settings.twilio_url or f"{settings.sandbox_url}/twilio",
            status_callback_url=f"{settings.webhooks_url}/twilio/status",
        ),
        # Partners' Fineract/M-Pesa credentials live encrypted in `lending.partners`; these carry
        # the shared settings (timeouts, retries, Daraja host, our callback URLs).
        "fineract": FineractResource(),
        "mpesa": MpesaResource(
            base_url=settings.mpesa_base_url or f"{settings.sandbox_url}/mpesa",
            # The receiver's callback URLs with a placeholder: the token itself is a secret,
            # read from the environment in the run process (never shown in the UI).
            result_url=mpesa_callback_url(token_placeholder, "result"),
            timeout_url=mpesa_callback_url(token_placeholder, "timeout"),
            callback_token=dg.EnvVar(MPESA_CALLBACK_TOKEN_ENV)
            if os.environ.get(MPESA_CALLBACK_TOKEN_ENV)
            else None,
        ),
        # dbt in dbt/; its connection comes from the `database` resource's URL at run time.
        "dbt": dbt_resource(),
        # Each workflow's knobs, from the settings (LENDING_* variables), shown in the UI.
        "payouts_config": PayoutsConfig.from_settings(settings),
        "escrow_config": EscrowConfig.from_settings(settings),
        "loans_config": LoansConfig.from_settings(settings),
        "credit_config": CreditConfig.from_env(os.environ),
        "collections_config": CollectionsConfig.from_env(settings),
        "alerts": AlertsResource(
            webhook_url=dg.EnvVar("LENDING_ALERT_WEBHOOK_URL")
            if settings.alert_webhook_url
            else None,
            reminder_minutes=settings.alert_reminder_minutes,
        ),
    }
