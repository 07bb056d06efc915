"""The partner-API sandbox: one Starlette app, one port, a path prefix per provider.

    /fineract/fineract-provider/api/v1/...   Apache Fineract (multi-tenant)
    /mpesa/oauth/v1/generate, /mpesa/mpesa/b2c/v3/paymentrequest, ...   Safaricom Daraja
    /stripe/v1/...                            Stripe
    /blnk/...                                 Blnk ledger
    /twilio/2010-04-01/Accounts/...           Twilio Messages
    /_admin/...                               faults, state snapshots, configuration, reset

Resources know nothing about the sandbox: only their base URLs point here.
"""

from __future__ import annotations

import importlib
import os
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .core import (
    FaultInjector,
    ProviderSandbox,
    SandboxConfigError,
    apply_faults,
    malformed,
    parse_faults,
)

PROVIDER_CLASSES = {
    "fineract": "lending_dev.sandbox.fineract:FineractSandbox",
    "mpesa": "lending_dev.sandbox.mpesa:MpesaSandbox",
    "stripe": "lending_dev.sandbox.stripe:StripeSandbox",
    "blnk": "lending_dev.sandbox.blnk:BlnkSandbox",
    "twilio": "lending_dev.sandbox.twilio:TwilioSandbox",
}

FAULTS_ENV = "LENDING_SANDBOX_FAULTS"


def _load_provider(name: str, options: dict) -> ProviderSandbox:
    module_name, class_name = PROVIDER_CLASSES[name].split(":")
    provider_class = getattr(importlib.import_module(module_name), class_name)
    return provider_class(**options)


class FaultMiddleware:
    """Applies the configured faults to requests under a provider's prefix (never to /_admin)."""

    def __init__(
        self, app: ASGIApp, providers: dict[str, ProviderSandbox], injector: FaultInjector
    ):
        self.app = app
        self.providers = providers
        self.injector = injector

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        prefix = scope["path"].split("/", 2)[1] if scope["path"].count("/") >= 1 else ""
        provider = self.providers.get(prefix)
        if provider is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        early, malform = await apply_faults(self.injector, provider, request)
        if early is not None:
            await early(scope, receive, send)
            return
        if not malform:
            await self.app(scope, receive, send)
            return
        captured: dict = {"body": b""}

        async def capture(message: dict) -> None:
            if message["type"] == "http.response.body":
                captured["body"] += message.get("body", b"")

        await self.app(scope, receive, capture)
        await malformed(Response(captured["body"]))(scope, receive, send)


def build_app(
    options: dict[str, dict] | None = None,
    faults: dict | str | None = None,
    providers: list[str] | None = None,
) -> Starlette:
    """Build the sandbox. `options[name]` goes to that provider's constructor; faults default
    to the LENDING_SANDBOX_FAULTS environment variable (JSON)."""
    options = options or {}
    unknown = set(options) - set(PROVIDER_CLASSES)
    if unknown:
        raise SandboxConfigError(f"unknown sandbox provider(s) {sorted(unknown)}")
    names = providers or list(PROVIDER_CLASSES)
    loaded = {name: _load_provider(name, options.get(name, {})) for name in names}
    injector = FaultInjector(
        parse_faults(faults if faults is not None else os.environ.get(FAULTS_ENV, ""))
    )

    def provider_or_404(request: Request) -> ProviderSandbox:
        name = request.path_params["provider"]
        if name not in loaded:
            raise SandboxConfigError(f"unknown sandbox provider {name!r}")
        return loaded[name]

    async def get_faults(request: Request) -> Response:
        return JSONResponse({"faults": injector.active(), "counts": injector.counts})

    async def set_faults(request: Request) -> Response:
        injector.set(parse_faults(await request.json()))
        return JSONResponse({"faults": injector.active()})

    async def clear_faults(request: Request) -> Response:
        injector.clear()
        return JSONResponse({"faults": {}})

    async def reset(request: Request) -> Response:
        injector.clear()
        for provider in loaded.values():
            provider.reset()
        return JSONResponse({"reset": sorted(loaded)})

    async def snapshot(request: Request) -> Response:
        return JSONResponse(provider_or_404(request).snapshot())

    async def configure(request: Request) -> Response:
        provider_or_404(request).configure(await request.json())
        return JSONResponse({"configured": request.path_params["provider"]})

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True, "providers": sorted(loaded)})

    async def config_error(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=400)

    @asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        for provider in loaded.values():
            await provider.shutdown()

    admin = [
        Route("/_admin/health", health),
        Route("/_admin/faults", get_faults, methods=["GET"]),
        Route("/_admin/faults", set_faults, methods=["POST"]),
        Route("/_admin/faults", clear_faults, methods=["DELETE"]),
        Route("/_admin/reset", reset, methods=["POST"]),
        Route("/_admin/{provider}", snapshot, methods=["GET"]),
        Route("/_admin/{provider}/configure", configure, methods=["POST"]),
    ]
    mounts = [Mount(f"/{name}", routes=provider.routes()) for name, provider in loaded.items()]
    app = Starlette(
        routes=admin + mounts,
        middleware=[Middleware(FaultMiddleware, providers=loaded, injector=injector)],
        exception_handlers={SandboxConfigError: config_error},
        lifespan=lifespan,
    )
    app.state.providers = loaded
    app.state.faults = injector
    return app
