"""The sandbox's shared machinery: the provider base class and fault injection.

Every emulated API is a `ProviderSandbox` mounted under its own path prefix. Faults are applied
in front of the provider's handlers so a provider module only implements the real wire format.
"""

from __future__ import annotations

import abc
import asyncio
import json
import random
from dataclasses import asdict, dataclass, fields

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute


class SandboxConfigError(ValueError):
    """A fault or provider option that the sandbox cannot honour."""


@dataclass(frozen=True)
class FaultConfig:
    """Faults applied to one provider (or one provider scope such as a Fineract tenant).

    Rates are probabilities in [0, 1] drawn per request from a seeded generator, so a run with the
    same requests sees the same faults.
    """

    latency_ms: int = 0
    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    timeout_rate: float = 0.0
    malformed_rate: float = 0.0

    @classmethod
    def from_dict(cls, key: str, raw: object) -> FaultConfig:
        if not isinstance(raw, dict):
            raise SandboxConfigError(f"faults[{key!r}] must be an object, got {raw!r}")
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise SandboxConfigError(
                f"faults[{key!r}]: unknown field(s) {sorted(unknown)}; known: {sorted(known)}"
            )
        config = cls(**raw)
        for name in ("error_rate", "rate_limit_rate", "timeout_rate", "malformed_rate"):
            value = getattr(config, name)
            if not isinstance(value, int | float) or not 0 <= value <= 1:
                raise SandboxConfigError(f"faults[{key!r}].{name} is {value!r}, expected 0..1")
        if not isinstance(config.latency_ms, int) or config.latency_ms < 0:
            raise SandboxConfigError(
                f"faults[{key!r}].latency_ms is {config.latency_ms!r}, expected an integer >= 0"
            )
        return config


def parse_faults(raw: object) -> dict[str, FaultConfig]:
    """Parse `{"stripe": {...}, "fineract:acme": {...}}` into fault configs."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except json.JSONDecodeError as exc:
            raise SandboxConfigError(f"faults are not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise SandboxConfigError(f"faults must be a JSON object, got {raw!r}")
    return {key: FaultConfig.from_dict(key, value) for key, value in raw.items()}


class ProviderSandbox(abc.ABC):
    """One emulated partner API. Subclasses implement the provider's real paths and shapes."""

    name: str = ""

    def __init__(self, **options: object) -> None:
        self.options = options
        self._tasks: set[asyncio.Task] = set()

    def spawn(self, coroutine) -> asyncio.Task:
        """Run background work (a callback after a delay) that shutdown() will cancel."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @abc.abstractmethod
    def routes(self) -> list[BaseRoute]:
        """The provider's real paths, relative to its prefix."""

    def fault_scope(self, request: Request) -> str | None:
        return None

    def error_response(self) -> Response:
        return JSONResponse({"error": "internal server error"}, status_code=500)

    def rate_limited_response(self) -> Response:
        return JSONResponse({"error": "rate limited"}, status_code=429)

    def snapshot(self) -> dict:
        return {}

    def configure(self, body: dict) -> None:
        raise SandboxConfigError(f"sandbox {self.name!r} takes no configuration")

    @abc.abstractmethod
    def reset(self) -> None:
        """Return to the seeded initial state."""

    async def shutdown(self) -> None:
        """Cancel background work (callbacks in flight)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class FaultInjector:
    """Holds the active faults and decides, per request, which one (if any) to apply."""

    def __init__(self, faults: dict[str, FaultConfig] | None = None, seed: int = 7) -> None:
        self._seed = seed
        self._faults: dict[str, FaultConfig] = dict(faults or {})
        self._rng = random.Random(seed)
        self.counts: dict[str, int] = {}

    def set(self, faults: dict[str, FaultConfig]) -> None:
        self._faults.update(faults)

    def clear(self) -> None:
        self._faults.clear()
        self._rng = random.Random(self._seed)
        self.counts.clear()

    def active(self) -> dict[str, dict]:
        return {key: asdict(config) for key, config in self._faults.items()}

    def config_for(self, provider: str, scope: str | None) -> FaultConfig | None:
        if scope is not None and f"{provider}:{scope}" in self._faults:
            return self._faults[f"{provider}:{scope}"]
        return self._faults.get(provider)

    def draw(self, config: FaultConfig) -> str | None:
        """Pick at most one fault for a request: timeout, error, rate limit or malformed body."""
        roll = self._rng.random()
        for kind, rate in (
            ("timeout", config.timeout_rate),
            ("error", config.error_rate),
            ("rate_limit", config.rate_limit_rate),
            ("malformed", config.malformed_rate),
        ):
            if roll < rate:
                return kind
            roll -= rate
        return None

    def record(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1


# How long a "timeout" fault holds the request open: longer than any client timeout in use.
TIMEOUT_HOLD_SECONDS = 300.0


async def apply_faults(
    injector: FaultInjector, provider: ProviderSandbox, request: Request
) -> tuple[Response | None, bool]:
    """Apply latency and draw a fault. Returns (early response, malform the real response)."""
    config = injector.config_for(provider.name, provider.fault_scope(request))
    if config is None:
        return None, False
    if config.latency_ms:
        await asyncio.sleep(config.latency_ms / 1000)
    kind = injector.draw(config)
    if kind is None:
        return None, False
    injector.record(f"{provider.name}:{kind}")
    if kind == "timeout":
        await asyncio.sleep(TIMEOUT_HOLD_SECONDS)
        return provider.error_response(), False
    if kind == "error":
        return provider.error_response(), False
    if kind == "rate_limit":
        return provider.rate_limited_response(), False
    return None, True


def malformed(response: Response) -> Response:
    """A 200 whose JSON body is cut in half: what a proxy dropping the connection produces."""
    body = bytes(response.body) if hasattr(response, "body") else b'{"truncated": '
    cut = body[: max(1, len(body) // 2)]
    if cut == body:
        cut = body + b"{"
    return Response(cut, status_code=200, media_type="application/json")
