"""Builders for HTTP tests: a live uvicorn server in a thread, and valid site events.

The server is the real application (:func:`practice_events.api.app.create_app`)
on a real socket; tests talk to it with httpx, as a producer would.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn

from practice_events.api.app import HttpLimits, Runtime, create_app, open_runtime
from practice_events.api.cli import bind_socket
from practice_events.config import Settings
from tests.harness import cloud_event

SITE_REGISTERED = "practice.site.registered.v1"
SITE_DEACTIVATED = "practice.site.deactivated.v1"
CE_JSON = "application/cloudevents+json"
CE_BATCH = "application/cloudevents-batch+json"

TEST_LIMITS = HttpLimits(
    max_event_bytes=16 * 1024,
    max_batch_events=50,
    max_batch_bytes=64 * 1024,
    token_cache_seconds=0,
    rate_ingest_per_second=1_000_000,
    rate_query_per_second=1_000_000,
)
"""Small limits, so that size tests send little; no token cache, so revocations show at once.

Request rates are limited (so every request passes the rate limiter) but far
beyond what a test sends; ``tests/integration/test_api_limits.py`` tests the
limits themselves with small ones.
"""


@dataclass
class LiveServer:
    """A running server: its base URL and, when the test opened it, the runtime."""

    url: str
    server: uvicorn.Server
    runtime: Runtime | None

    def runtime_or_fail(self) -> Runtime:
        """Return the runtime the test opened (fails if the lifespan opened its own)."""
        assert self.runtime is not None
        return self.runtime


@contextmanager
def live_server(
    settings: Settings,
    *,
    limits: HttpLimits = TEST_LIMITS,
    open_early: bool = True,
    plugins: Sequence[str] | None = (),
) -> Iterator[LiveServer]:
    """Run the app on a free port in a background thread until the block ends.

    ``plugins``: the HTTP plugins to install (default none: the core app;
    ``None``: every installed one, as ``serve`` does).

    With ``open_early`` the test opens the runtime itself (and can issue tokens
    through it); otherwise the app's lifespan opens it, as in production.
    """
    runtime = open_runtime(settings, limits) if open_early else None
    app = create_app(settings, limits=limits, runtime=runtime, plugins=plugins)
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "the server thread died during start-up"
        assert time.monotonic() < deadline, "the server did not start within 30 s"
        time.sleep(0.01)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", server, runtime)
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def centre(subject: str = "C-1", **kw: Any) -> dict[str, Any]:
    """A valid registration of a district centre (needs no other site)."""
    return cloud_event(SITE_REGISTERED, subject, {"level": "centre", "name": "文明实践中心"}, **kw)


def institute(subject: str, parent: str = "C-1", **kw: Any) -> dict[str, Any]:
    """A valid registration of an institute under ``parent``."""
    data = {"level": "institute", "parent_id": parent, "name": f"{subject} 文明实践所"}
    return cloud_event(SITE_REGISTERED, subject, data, **kw)


def new_id() -> str:
    """Return a fresh CloudEvents id."""
    return str(uuid.uuid4())
