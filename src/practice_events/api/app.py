"""The FastAPI application: HTTP ingestion, health and readiness, and its plugins.

:func:`create_app` wires routes and problem handlers; its lifespan opens the
:class:`Runtime` (event store, token store, ingest thread) through the
composition root and closes it on shutdown: the ingest thread first finishes
the requests it has taken, then the store is closed.

Plugins (entry-point group ``practice_events.http``)
----------------------------------------------------
The core package never imports ``projections`` or ``consumers``; they plug
into the app instead. Each entry point of the group names a callable
``install(app: FastAPI, settings: Settings) -> PluginHooks | None``, called
once by :func:`create_app` (in entry-point name order). It may add routers
to ``app`` and may return hooks for the lifespan:

* ``start(runtime)`` runs (in a worker thread) after the runtime opened, in
  name order; it may publish things other plugins use in
  ``runtime.services`` (by convention ``"<package>.<name>"``, e.g.
  ``"projections.runner"``: an in-process ``BatchedRunner`` that the read
  API uses for ``wait``/``lag``);
* ``stop()`` runs in reverse order on shutdown, before the runtime closes
  (also when a later plugin's ``start`` failed).

``start`` may also add a readiness check to ``runtime.checks`` (name ->
callable returning ``{"ok": bool, ...}``), which ``/readyz`` runs.

Read ``runtime.services`` when a request needs it, not in ``start``: plugins
start in name order. ``create_app(..., plugins=())`` loads none (tests of the
core), ``plugins=("projections",)`` only those named. Routers of other
features (e.g. the auditors' replay and export endpoints) plug in the same
way, with :func:`practice_events.api.auth.require_role` for access.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, entry_points, version
from typing import Any, Protocol, TypedDict

import anyio
import anyio.to_thread
import structlog
from eventsourcing.persistence import PersistenceError
from fastapi import APIRouter, FastAPI, Request
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.responses import Response

from practice_events.api.auth import runtime_of
from practice_events.api.ingest import IngestThread
from practice_events.api.ingest import router as ingest_router
from practice_events.api.problems import (
    PROBLEM_RESPONSE_SCHEMA,
    JsonResponse,
    install_problem_handlers,
    problem_response,
)
from practice_events.api.ratelimit import RateLimiter, RateLimitMiddleware, RatePolicy
from practice_events.application import PracticeEvents
from practice_events.auth.tokens import TokenStore, TokenVerifier, token_store
from practice_events.config import Settings, mask_url
from practice_events.errors import TransientError

log = structlog.get_logger(__name__)

MIB = 1024 * 1024


class HttpLimits(BaseSettings):
    """Limits of the HTTP server, from ``PRACTICE_EVENTS_HTTP_*`` environment variables.

    Kept beside the app rather than in :class:`~practice_events.config.Settings`
    while the HTTP side grows; the names are those the settings would use
    (``http_max_batch_events`` …).
    """

    model_config = SettingsConfigDict(env_prefix="PRACTICE_EVENTS_HTTP_", extra="ignore")

    max_event_bytes: int = Field(
        default=1 * MIB, ge=1024, description="Largest single event body, in bytes"
    )
    max_batch_events: int = Field(
        default=1000, ge=1, le=50_000, description="Most events in one batch request"
    )
    max_batch_bytes: int = Field(
        default=5 * MIB, ge=1024, description="Largest batch request body, in bytes"
    )
    max_pending_events: int = Field(
        default=50_000,
        ge=1,
        description="Events waiting to be stored beyond which requests get 503 OVERLOADED",
    )
    token_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long a checked token is trusted without asking the store again "
        "(a revocation takes effect within this time)",
    )
    readiness_timeout_seconds: float = Field(
        default=5.0, gt=0, description="How long /readyz waits for the store"
    )
    rate_ingest_per_second: float = Field(
        default=100.0,
        ge=0,
        description="Requests a second each token (without a valid token: each client address) "
        "may post to /v1/events and /v1/events:batch, on average; 0: no limit. Per server "
        "process (see practice_events.api.ratelimit)",
    )
    rate_ingest_burst: int = Field(
        default=200, ge=1, description="Ingest requests a token may send at once before the rate"
    )
    rate_query_per_second: float = Field(
        default=50.0,
        ge=0,
        description="Requests a second each token (without a valid token: each client address) "
        "may make to every other endpoint but /healthz, /readyz and /metrics; 0: no limit. Per "
        "server process",
    )
    rate_query_burst: int = Field(
        default=200, ge=1, description="Other requests a token may send at once before the rate"
    )
    opentelemetry: bool = Field(
        default=False,
        description="Let FastAPI report spans and metrics to a configured OpenTelemetry SDK. "
        "Off: the service publishes Prometheus metrics at /metrics, and FastAPI's check for "
        "OpenTelemetry providers costs about 40 us on every request",
    )

    def rate_limiter(self) -> RateLimiter:
        """A fresh :class:`~practice_events.api.ratelimit.RateLimiter` with these limits."""
        return RateLimiter(
            {
                "ingest": RatePolicy(self.rate_ingest_per_second, self.rate_ingest_burst),
                "query": RatePolicy(self.rate_query_per_second, self.rate_query_burst),
            }
        )


@dataclass
class Runtime:
    """The resources one server process holds while it runs."""

    settings: Settings
    limits: HttpLimits
    store: PracticeEvents
    tokens: TokenStore
    verifier: TokenVerifier
    ingest: IngestThread
    services: dict[str, Any] = field(default_factory=dict)
    """What plugins share while the server runs (see "Plugins" in the module docstring)."""
    checks: dict[str, Callable[[], dict[str, Any]]] = field(default_factory=dict)
    """Readiness checks plugins add: name -> callable returning ``{"ok": bool, ...}``."""
    limiter: RateLimiter | None = None
    """This process's request-rate buckets (see :mod:`practice_events.api.ratelimit`)."""

    def close(self) -> None:
        """Stop the ingest thread (after the requests it took) and close the store."""
        try:
            self.ingest.stop()
        finally:
            try:
                self.ingest.pipeline.close()  # a shard router closes the other shards' stores
            finally:
                self.store.close()


def open_runtime(settings: Settings, limits: HttpLimits | None = None) -> Runtime:
    """Open the event store, the token store and the ingest thread.

    Raises :class:`TransientError` when the store cannot be reached.
    """
    from practice_events.bootstrap import build_app, build_ingest

    limits = limits or HttpLimits()
    try:
        store = build_app(settings)
    except PersistenceError as exc:
        msg = f"cannot open the event store {mask_url(settings.store)}: {exc}"
        raise TransientError(msg) from exc
    try:
        tokens = token_store(store)
        pipeline = build_ingest(settings, store)  # a shard router with PRACTICE_EVENTS_SHARDS
        ingest = IngestThread(
            pipeline, max_group=settings.batch_size, max_pending=limits.max_pending_events
        )
        ingest.start()
    except PersistenceError as exc:
        store.close()
        msg = f"cannot prepare the event store {mask_url(settings.store)}: {exc}"
        raise TransientError(msg) from exc
    except BaseException:
        store.close()
        raise
    verifier = TokenVerifier(tokens, ttl=limits.token_cache_seconds)
    log.info("http_runtime_opened", store=mask_url(settings.store))
    return Runtime(settings, limits, store, tokens, verifier, ingest, limiter=limits.rate_limiter())


class LifespanState(TypedDict):
    """What the lifespan hands to every request (``request.state.runtime``)."""

    runtime: Runtime


def _version() -> str:
    try:
        return version("practice-events")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


health = APIRouter(tags=["health"])


@health.get("/healthz", summary="Liveness (no I/O)")
async def healthz() -> JsonResponse:
    """Say the process is alive; touches nothing else, so it never waits."""
    return JsonResponse({"status": "ok"})


@health.get(
    "/readyz",
    summary="Readiness: the store answers, ingestion runs, plugins' checks pass",
    response_model=None,
    responses={503: PROBLEM_RESPONSE_SCHEMA},
)
async def readyz(request: Request) -> Response:
    """Answer 200 when the store is reachable, the ingest thread runs and every check passes.

    The ingest check also fails while the last write failed (see
    :attr:`IngestThread.store_fault`): a store that answers reads but refuses
    writes is not ready to ingest. Plugins add checks to ``runtime.checks``
    (the read API: each projection's lag under a bound); any failing check
    makes the answer 503 with details.
    """
    runtime = runtime_of(request)
    checks: dict[str, dict[str, object]] = {}
    try:
        with anyio.fail_after(runtime.limits.readiness_timeout_seconds):
            position = await anyio.to_thread.run_sync(
                runtime.store.last_position, abandon_on_cancel=True
            )
        checks["store"] = {"ok": True, "last_position": position}
    except TimeoutError:
        waited = runtime.limits.readiness_timeout_seconds
        checks["store"] = {"ok": False, "error": f"no answer within {waited} s"}
    except PersistenceError as exc:
        checks["store"] = {"ok": False, "error": f"unreachable: {exc}"}
    fault = runtime.ingest.store_fault
    checks["ingest"] = {
        "ok": runtime.ingest.alive and fault is None,
        "pending_events": runtime.ingest.pending,
    }
    if fault is not None:
        # Reads may work while writes fail (a full disk, a lock held too long).
        checks["ingest"]["error"] = f"the last write failed: {fault}"
    for name, check in list(runtime.checks.items()):
        try:
            with anyio.fail_after(runtime.limits.readiness_timeout_seconds):
                checks[name] = await anyio.to_thread.run_sync(check, abandon_on_cancel=True)
        except TimeoutError:
            waited = runtime.limits.readiness_timeout_seconds
            checks[name] = {"ok": False, "error": f"no answer within {waited} s"}
    if all(check["ok"] for check in checks.values()):
        return JsonResponse({"status": "ready", "checks": checks})
    failing = ", ".join(name for name, check in checks.items() if not check["ok"])
    return problem_response(
        503, "NOT_READY", f"not ready: {failing}", instance=request.url.path, checks=checks
    )


PLUGIN_GROUP = "practice_events.http"
"""The entry-point group of HTTP plugins (see the module docstring)."""


class PluginHooks(Protocol):
    """What a plugin's ``install`` may return: work to start and stop with the server."""

    def start(self, runtime: Runtime) -> None:
        """Start (the runtime is open); may publish into ``runtime.services``."""

    def stop(self) -> None:
        """Stop; called on shutdown before the runtime closes."""


def install_plugins(
    app: FastAPI, settings: Settings, names: Sequence[str] | None = None
) -> list[tuple[str, PluginHooks]]:
    """Call every installed plugin's ``install`` (or only ``names``); return their hooks."""
    found = sorted(entry_points(group=PLUGIN_GROUP), key=lambda ep: ep.name)
    hooks: list[tuple[str, PluginHooks]] = []
    for ep in found:
        if names is not None and ep.name not in names:
            continue
        installed = ep.load()(app, settings)
        log.debug("http_plugin_installed", plugin=ep.name)
        if installed is not None:
            hooks.append((ep.name, installed))
    return hooks


def _telemetry_options(enabled: bool) -> dict[str, Any]:
    """FastAPI's keyword turning its native OpenTelemetry off, unless ``enabled``.

    FastAPI 0.16x asks the OpenTelemetry API on every request whether a
    tracer, meter or logger provider has been configured: about 40 us each
    time, a quarter of the CPU time of a reused read-API answer (measured:
    docs/performance.md). Older FastAPI has no such keyword (nor the cost).
    """
    import inspect

    if enabled or "telemetry" not in inspect.signature(FastAPI).parameters:
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}


def create_app(
    settings: Settings,
    *,
    limits: HttpLimits | None = None,
    runtime: Runtime | None = None,
    plugins: Sequence[str] | None = None,
) -> FastAPI:
    """Build the HTTP application.

    The lifespan opens a :class:`Runtime` from ``settings`` (or takes the one
    given, e.g. opened early by ``serve`` to report store errors before
    listening), starts the plugins' hooks, and on shutdown stops them and
    closes the runtime either way. ``plugins``: which plugins to install
    (None: every installed one; see the module docstring).
    """
    hooks: list[tuple[str, PluginHooks]] = []

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[LifespanState]:
        opened = runtime
        if opened is None:
            opened = await anyio.to_thread.run_sync(open_runtime, settings, limits)
        started: list[tuple[str, PluginHooks]] = []
        try:
            for name, hook in hooks:
                await anyio.to_thread.run_sync(hook.start, opened)
                started.append((name, hook))
                log.info("http_plugin_started", plugin=name)
            yield {"runtime": opened}
        finally:
            for name, hook in reversed(started):
                try:
                    await anyio.to_thread.run_sync(hook.stop)
                except Exception:
                    log.exception("http_plugin_stop_failed", plugin=name)
            await anyio.to_thread.run_sync(opened.close)
            log.info("http_runtime_closed")

    chosen = limits or (runtime.limits if runtime is not None else HttpLimits())
    app = FastAPI(
        title="practice-events",
        version=_version(),
        summary="Event-sourced activity tracking for civilization practice networks",
        lifespan=lifespan,
        default_response_class=JsonResponse,
        # The interactive docs pages load their scripts from a CDN, which the
        # networks this runs in may not reach; /openapi.json is served.
        docs_url=None,
        redoc_url=None,
        **_telemetry_options(chosen.opentelemetry),
    )
    install_problem_handlers(app)
    app.add_middleware(RateLimitMiddleware)
    app.include_router(health)
    app.include_router(ingest_router)
    hooks.extend(install_plugins(app, settings, plugins))
    return app
