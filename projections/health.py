"""Liveness and readiness of a ``projections run`` process over HTTP, for orchestrators.

``practice-events projections run --health-port 8082 --health-host 0.0.0.0``
serves, from the standard library on a daemon thread:

``GET /healthz``
    200 ``{"status": "alive"}``; no I/O, so a slow database never fails it.
    The liveness probe.
``GET /readyz``
    200 when every projection of this process is running (not starting, not
    failed, not stopped), 503 otherwise; the body lists each projection's
    status, position, the log head it last saw and any error. It reads the
    runner's in-memory state only (no I/O), so it answers even while the
    database is slow; lag is reported, not judged, because a runner that is
    catching up is doing its job and restarting it or holding back a rollout
    would not help. A failed projection (a bug met on one event) makes it
    503 until the process is restarted after a fix: restarting it sooner
    fails again on the same event, which is why the liveness probe ignores
    failures.

The query API's own ``/readyz`` judges lag (``PRACTICE_EVENTS_API_READY_*``)
because stale views are what its callers would see.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from projections.runner import BatchedRunner


def runner_readiness(runner: BatchedRunner) -> tuple[bool, dict[str, Any]]:
    """Return whether every projection of ``runner`` is running, and the details."""
    projections = {
        name: {
            "status": state.status,
            "position": state.position,
            "head_seen": state.head_seen,
            "error": state.error,
            "failed_position": state.failed_position,
        }
        for name, state in sorted(runner.states.items())
    }
    ready = bool(projections) and all(p["status"] == "running" for p in projections.values())
    return ready, {"ready": ready, "projections": projections}


class RunnerHealthServer:
    """``/healthz`` and ``/readyz`` of one projection-runner process (see the module docstring)."""

    def __init__(self, runner: BatchedRunner, port: int, host: str = "127.0.0.1") -> None:
        served = runner

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/healthz":
                    self._answer(200, {"status": "alive"})
                elif self.path == "/readyz":
                    ready, body = runner_readiness(served)
                    self._answer(200 if ready else 503, body)
                else:
                    self._answer(404, {"error": "not found"})

            def _answer(self, status: int, body: Mapping[str, Any]) -> None:
                data = orjson.dumps(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # the stdlib's signature
                return

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="projections-health", daemon=True
        )

    @property
    def port(self) -> int:
        """The port actually bound (useful when 0 was asked for)."""
        return int(self.server.server_address[1])

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()

    def close(self) -> None:
        """Stop serving and release the port."""
        self.server.shutdown()
        self.server.server_close()
