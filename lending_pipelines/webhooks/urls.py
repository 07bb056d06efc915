"""The receiver's public URLs that partners are given, without the receiver app (Starlette)."""

from __future__ import annotations

from ..settings import Settings, reveal
from .config import ReceiverConfigError


def mpesa_callback_url(settings: Settings, kind: str = "result") -> str:
    """The ResultURL / QueueTimeOutURL to give Daraja."""
    if not settings.mpesa_callback_token:
        raise ReceiverConfigError("LENDING_MPESA_CALLBACK_TOKEN is not set")
    return f"{settings.webhooks_url}/mpesa/{reveal(settings.mpesa_callback_token)}/{kind}"
