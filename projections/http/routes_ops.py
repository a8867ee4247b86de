"""Operations: ``/metrics`` in the Prometheus text format (no unit data, no token needed)."""

from __future__ import annotations

import anyio.to_thread
from fastapi import APIRouter, Request
from starlette.responses import Response

from projections.http.metrics import CONTENT_TYPE, HttpMetrics, render_metrics
from projections.http.routes_common import api_of

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    summary="Prometheus metrics: ingestion, projection positions and lag, HTTP requests",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE.split(";")[0]: {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    """Counters and gauges for scraping (reads the store and the views in a worker thread)."""
    http: HttpMetrics = request.app.state.http_metrics
    text = await anyio.to_thread.run_sync(render_metrics, api_of(request), http)
    return Response(text, media_type=CONTENT_TYPE)
