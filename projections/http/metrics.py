"""Prometheus metrics at ``/metrics``: HTTP requests, ingestion, projection positions and lag.

Written by hand in the Prometheus text exposition format (version 0.0.4):
a few counters and one histogram do not justify a dependency. Requests are
counted by method, route template (``/v1/findings/{finding_id}``, never the
raw path, so ids do not explode the series) and status; latency is a
histogram by method and route. Ingestion figures come from the HTTP ingest
thread and the store's rejection counts; projection figures from the read
API's view of the runners (positions, events behind, stalled seconds).
Nothing here names a unit or a person.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from projections.http.context import ReadApi

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds (seconds) of the request latency histogram."""

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class HttpMetrics:
    """Request counts and latency histograms, updated by :class:`MetricsMiddleware`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = {}
        self.latency: dict[tuple[str, str], list[float]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one finished request."""
        index = bisect.bisect_left(BUCKETS, seconds)
        with self._lock:
            key = (method, route, status)
            self.requests[key] = self.requests.get(key, 0) + 1
            series = self.latency.get((method, route))
            if series is None:
                series = self.latency[(method, route)] = [0.0] * (len(BUCKETS) + 2)
            if index < len(BUCKETS):
                series[index] += 1
            series[-2] += 1  # count
            series[-1] += seconds  # sum

    def render(self) -> list[str]:
        """The HTTP metrics as exposition-format lines."""
        with self._lock:
            requests = dict(self.requests)
            latency = {k: list(v) for k, v in self.latency.items()}
        lines = [
            "# HELP practice_events_http_requests_total HTTP requests answered.",
            "# TYPE practice_events_http_requests_total counter",
        ]
        for (method, route, status), total in sorted(requests.items()):
            labels = _labels(method=method, route=route, status=str(status))
            lines.append(f"practice_events_http_requests_total{labels} {total}")
        lines += [
            "# HELP practice_events_http_request_duration_seconds Time to answer a request.",
            "# TYPE practice_events_http_request_duration_seconds histogram",
        ]
        name = "practice_events_http_request_duration_seconds"
        for (method, route), series in sorted(latency.items()):
            cumulative = 0.0
            for bound, count in zip(BUCKETS, series, strict=False):
                cumulative += count
                labels = _labels(method=method, route=route, le=_number(bound))
                lines.append(f"{name}_bucket{labels} {_number(cumulative)}")
            labels = _labels(method=method, route=route, le="+Inf")
            lines.append(f"{name}_bucket{labels} {_number(series[-2])}")
            base = _labels(method=method, route=route)
            lines.append(f"{name}_count{base} {_number(series[-2])}")
            lines.append(f"{name}_sum{base} {series[-1]:.6f}")
        return lines


class MetricsMiddleware:
    """Pure ASGI middleware timing every HTTP request (cheaper than BaseHTTPMiddleware)."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on and record its route, status and duration."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def remember(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, remember)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(
                scope.get("method", "GET"), template, status, time.perf_counter() - started
            )


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: str) -> str:
    inner = ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items())
    return "{" + inner + "}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render_metrics(read_api: ReadApi, http: HttpMetrics) -> str:
    """Every metric in the Prometheus text format (ingestion, projections, HTTP)."""
    lines: list[str] = []
    runtime = read_api.runtime
    if runtime is not None:
        ingest = runtime.ingest
        lines += [
            "# HELP practice_events_ingest_http_groups_total Transactions of HTTP ingestion.",
            "# TYPE practice_events_ingest_http_groups_total counter",
            f"practice_events_ingest_http_groups_total {ingest.groups}",
            "# HELP practice_events_ingest_http_inputs_total Events taken by HTTP ingestion.",
            "# TYPE practice_events_ingest_http_inputs_total counter",
            f"practice_events_ingest_http_inputs_total {ingest.inputs_done}",
            "# HELP practice_events_ingest_http_pending Events waiting to be stored.",
            "# TYPE practice_events_ingest_http_pending gauge",
            f"practice_events_ingest_http_pending {ingest.pending}",
        ]
        try:
            rejections = runtime.store.store.count_rejections()
            head: int | None = read_api.head()
        except Exception:  # noqa: BLE001 - a scrape must answer even with the store away
            rejections, head = {}, None
        lines += [
            "# HELP practice_events_rejections_total Inputs refused, by stable code.",
            "# TYPE practice_events_rejections_total counter",
        ]
        for code, count in sorted(rejections.items()):
            lines.append(f"practice_events_rejections_total{_labels(code=code)} {count}")
        lines += [
            "# HELP practice_events_store_up Whether the event store answered this scrape.",
            "# TYPE practice_events_store_up gauge",
            f"practice_events_store_up {0 if head is None else 1}",
        ]
        if head is not None:
            lines += [
                "# HELP practice_events_log_head_position Last position of the event log.",
                "# TYPE practice_events_log_head_position gauge",
                f"practice_events_log_head_position {head}",
            ]
    try:
        lag = read_api.lag()
    except Exception:  # noqa: BLE001 - the view store may be away; say so below
        lag = {}
    lines += [
        "# HELP practice_events_projection_position Last log position a projection processed.",
        "# TYPE practice_events_projection_position gauge",
    ]
    for name, row in sorted(lag.items()):
        lines.append(
            f"practice_events_projection_position{_labels(projection=name)} "
            f"{int(row.get('position') or 0)}"
        )
    lines += [
        "# HELP practice_events_projection_lag_events Events a projection is behind the log.",
        "# TYPE practice_events_projection_lag_events gauge",
    ]
    for name, row in sorted(lag.items()):
        behind = row.get("events_behind")
        if behind is not None:
            lines.append(
                f"practice_events_projection_lag_events{_labels(projection=name)} {behind}"
            )
    lines += [
        "# HELP practice_events_projection_stalled_seconds Seconds behind the log without moving.",
        "# TYPE practice_events_projection_stalled_seconds gauge",
    ]
    for name, row in sorted(lag.items()):
        lines.append(
            f"practice_events_projection_stalled_seconds{_labels(projection=name)} "
            f"{_number(float(row.get('stalled_seconds') or 0.0))}"
        )
    lines += [
        "# HELP practice_events_projection_failed Whether a projection stopped on an error.",
        "# TYPE practice_events_projection_failed gauge",
    ]
    for name, row in sorted(lag.items()):
        failed = 1 if row.get("status") == "failed" else 0
        lines.append(f"practice_events_projection_failed{_labels(projection=name)} {failed}")
    answers = read_api.answers
    lines += [
        "# HELP practice_events_api_answers_reused_total Answers given again (views unchanged).",
        "# TYPE practice_events_api_answers_reused_total counter",
        f"practice_events_api_answers_reused_total {answers.hits}",
        "# HELP practice_events_api_answers_computed_total Answers computed from the views.",
        "# TYPE practice_events_api_answers_computed_total counter",
        f"practice_events_api_answers_computed_total {answers.misses}",
    ]
    lines += http.render()
    return "\n".join(lines) + "\n"
