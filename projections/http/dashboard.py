"""The supervisors' dashboard: a static page at ``/`` over the read API.

The page (``projections/http/dashboard/``: HTML, CSS and JavaScript, no
library and nothing from a CDN) calls the same ``/v1/…`` endpoints any
client calls, with the supervisor's bearer token, so it shows exactly what
that token may see. Its routes are left out of the OpenAPI document.

Routes
------
``GET /``
    the page (Chinese by default, English on a switch).
``GET /dashboard/{asset}``
    its scripts and style sheet (a fixed list, read once at start-up).
``GET /dashboard/config.json``
    the network's time zone (periods are local) and whether a demo token is offered.
``GET /dashboard/demo-token``
    only when the server was started with ``serve --demo``, and only to a
    browser on the same machine (a loopback client address): the demo
    district-supervisor token, so that the local demo opens without pasting
    a token. This is a deliberate convenience for a laptop demo: anyone who
    can reach it reads every unit of the demo district. Production servers
    never have a demo token, so there the endpoint is always 404 and the
    page asks for a token (kept in the tab's ``sessionStorage`` only).

Security headers on every dashboard answer: a Content-Security-Policy with
no inline script or style (``script-src 'self'``), ``X-Content-Type-Options:
nosniff``, ``X-Frame-Options: DENY`` (and ``frame-ancestors 'none'``) and
``Referrer-Policy: no-referrer``.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from starlette.responses import Response

from practice_events.api.problems import JsonResponse, problem_response

if TYPE_CHECKING:
    from fastapi import FastAPI

    from practice_events.config import Settings

ASSET_DIR = Path(__file__).with_name("dashboard")
"""Where the page's files live (shipped as package data)."""

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}

ASSETS = ("app.js", "i18n.js", "charts.js", "app.css", "favicon.svg")
"""The files served under ``/dashboard/`` (nothing else is, whatever the path asks)."""

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
"""No inline script or style, nothing from another origin, never framed."""

SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
"""Headers on every dashboard answer."""


@dataclass(frozen=True, slots=True)
class Asset:
    """One file of the page, read once."""

    body: bytes
    content_type: str
    etag: str


def _load(name: str) -> Asset:
    path = ASSET_DIR / name
    body = path.read_bytes()
    digest = hashlib.sha256(body).hexdigest()[:16]
    return Asset(body, CONTENT_TYPES[path.suffix], f'"{digest}"')


def _answer(request: Request, asset: Asset, cache: str) -> Response:
    headers = {**SECURITY_HEADERS, "ETag": asset.etag, "Cache-Control": cache}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.content_type, headers=headers)


def is_loopback(host: str | None) -> bool:
    """Tell whether a client address is this machine's (127.0.0.0/8, ::1)."""
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def install_dashboard(app: FastAPI, settings: Settings) -> None:
    """Add the dashboard's routes to ``app`` (the files are read now, once)."""
    page = _load("index.html")
    assets = {name: _load(name) for name in ASSETS}
    router = APIRouter(include_in_schema=False)

    @router.get("/")
    def dashboard_page(request: Request) -> Response:
        """The dashboard page."""
        return _answer(request, page, "no-cache")

    @router.get("/dashboard/config.json")
    def dashboard_config(request: Request) -> Response:
        """What the page needs before it can ask the API anything."""
        demo = getattr(request.app.state, "demo_token", None) is not None
        body = {"timezone": settings.timezone, "demo": demo and _local(request)}
        return JsonResponse(body, headers={**SECURITY_HEADERS, "Cache-Control": "no-store"})

    @router.get("/dashboard/demo-token")
    def dashboard_demo_token(request: Request) -> Response:
        """The demo token, for a browser on this machine of a ``serve --demo`` server only."""
        token = getattr(request.app.state, "demo_token", None)
        if token is None or not _local(request):
            return problem_response(
                404,
                "NOT_FOUND",
                "no demo token here: paste a token from `practice-events tokens create`",
                instance=request.url.path,
                headers={**SECURITY_HEADERS, "Cache-Control": "no-store"},
            )
        return JsonResponse(
            {"token": token, "role": "district_supervisor"},
            headers={**SECURITY_HEADERS, "Cache-Control": "no-store"},
        )

    @router.get("/dashboard/{name}")
    def dashboard_asset(request: Request, name: str) -> Response:
        """One of the page's scripts or style sheets."""
        asset = assets.get(name)
        if asset is None:
            return problem_response(
                404,
                "NOT_FOUND",
                f"no dashboard file {name[:64]!r}",
                instance=request.url.path,
                headers=SECURITY_HEADERS,
            )
        return _answer(request, asset, "no-cache")

    app.include_router(router)


def _local(request: Request) -> bool:
    client = request.client
    return is_loopback(client.host if client else None)
