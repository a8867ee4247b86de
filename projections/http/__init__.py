"""The read API: supervisors' and auditors' queries over the projections, as an HTTP plugin.

Installed into the core app through the ``practice_events.http`` entry-point
group (``projections = "projections.http:install"``; see "Plugins" in
:mod:`practice_events.api.app`), so the core package never imports this one.

:func:`install` adds the query routers (``/v1/…``, documented in
``docs/api.md`` and at ``/openapi.json``), ``/metrics`` and the request
metrics middleware, and returns the :class:`~projections.http.context.ReadApi`
hooks: on start they open the view store and add the projections' lag to
``/readyz``; on stop they close the view store.

Modules: :mod:`~projections.http.access` (roles and unit scopes),
:mod:`~projections.http.exports` (CSV/JSON, zh-CN/en headers),
:mod:`~projections.http.context` (view store, read-your-writes, lag),
:mod:`~projections.http.metrics` (Prometheus) and one ``routes_*`` module
per area. Other read-side pages (the dashboard) are added by
:func:`install` too, from their own modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from practice_events.config import Settings
    from projections.http.context import ReadApi

ROUTE_MODULES = (
    "routes_network",
    "routes_closed_loop",
    "routes_scorecards",
    "routes_ledger",
    "routes_privacy",
    "routes_needs",
    "routes_meetings",
    "routes_rejections",
    "routes_ops",
)
"""The modules whose ``router`` the read API includes, in this order."""


def install(app: FastAPI, settings: Settings) -> ReadApi:
    """Add the read API's routes, metrics and error answers to ``app``; return its hooks."""
    import importlib

    from starlette.middleware import Middleware

    from projections.http.answers import AnswerMiddleware
    from projections.http.context import ReadApi
    from projections.http.dashboard import install_dashboard
    from projections.http.metrics import HttpMetrics, MetricsMiddleware
    from projections.http.routes_common import install_view_errors

    read_api = ReadApi(settings)
    http_metrics = HttpMetrics()
    app.state.read_api = read_api
    app.state.http_metrics = http_metrics
    for name in ROUTE_MODULES:
        module = importlib.import_module(f"projections.http.{name}")
        app.include_router(module.router)
    install_view_errors(app)
    app.add_middleware(MetricsMiddleware, metrics=http_metrics)
    # Innermost (appended, where add_middleware prepends): inside the rate limiter and
    # the metrics, so that a reused answer is still limited and counted.
    app.user_middleware.append(Middleware(AnswerMiddleware, read_api=read_api))
    install_dashboard(app, settings)  # the page at / (projections/http/dashboard.py)
    return read_api
