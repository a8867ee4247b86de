"""Reused answers given before routing: the read API's fast path for repeated questions.

Dashboards ask the same questions again and again, and the answer cache
(:class:`~projections.http.context.AnswerCache`) already keeps the answers
while the views behind them have not moved. Finding a kept answer inside the
route still costs the whole of FastAPI's request handling: matching the
route, solving its dependencies, validating a dozen query parameters. For a
reused answer that was most of the request's CPU time (measured: see
``docs/performance.md``), so :class:`AnswerMiddleware` looks the answer up
before the router and gives it directly.

Why that gives exactly what the route would give:

* the key is the same as the route's (:func:`answer_key`, used by both): the
  path, every query parameter, the ``Accept`` and ``Accept-Language``
  headers (the only headers the read routes read) and the caller's
  visibility (role and unit). Only 200 answers are kept, and an answer is
  kept only by the route that computed it, so the same key passed the same
  validation and the same role check;
* the caller must hold an **active** token (the rate limiter's lookup of the
  secret, or the token cache), so a revoked or expired token still gets its
  401 from the route; requests without one go to the route;
* the views' positions are checked as the route checks them; a request with
  ``min_position`` (or ``X-Min-Position``) always goes to the route, which
  reads the positions afresh;
* the answer cache is only consulted for routes that use
  :func:`projections.http.routes_common.cached`, whose answers depend on the
  question and on the caller's role and unit only (routes whose answers
  depend on more, such as a producer's sources, must not use it).

The middleware sits inside the rate limiter (a reused answer still takes from
the token's bucket) and inside the metrics middleware (it names the route
that made the answer, so the metrics label stays the route template).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import structlog

from practice_events.api.auth import TOKEN_LOOKUP, bearer_secret_of

if TYPE_CHECKING:
    from practice_events.auth.tokens import ApiToken
    from projections.http.context import ReadApi

log = structlog.get_logger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

FRESHNESS_PARAMETER = "min_position"
"""Read-your-writes: such requests always go to the route (it reads positions afresh)."""


def _header(scope: Mapping[str, Any], name: bytes) -> str:
    """The first value of header ``name`` (lower case) as text, or ''."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return ""


def query_items(scope: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The query parameters of a request, decoded as Starlette decodes them."""
    text = scope.get("query_string", b"").decode("latin-1")
    return parse_qsl(text, keep_blank_values=True)


def answer_key(
    scope: Mapping[str, Any], visibility: str, items: list[tuple[str, str]] | None = None
) -> tuple[Hashable, ...]:
    """The answer cache key of a request: its question and what the caller may see.

    Path, query parameters but ``min_position`` (sorted), ``Accept``,
    ``Accept-Language`` and the caller's visibility; computed the same way
    by the routes (:func:`~projections.http.routes_common.cached`) and by
    :class:`AnswerMiddleware`. ``items``: the query parameters if already parsed.
    """
    given = query_items(scope) if items is None else items
    params = tuple(sorted((k, v) for k, v in given if k != FRESHNESS_PARAMETER))
    return (
        scope["path"],
        params,
        visibility,
        _header(scope, b"accept"),
        _header(scope, b"accept-language"),
    )


def visibility_of(token: ApiToken) -> str:
    """What decides the rows a token sees (``Caller.visibility``): its role and unit."""
    from projections.http.access import Caller

    return Caller(token).visibility


class AnswerMiddleware:
    """Pure ASGI middleware giving kept answers before routing (see the module docstring)."""

    def __init__(self, app: ASGIApp, read_api: ReadApi) -> None:
        self.app = app
        self.read_api = read_api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the kept answer for this question, or hand the request on."""
        if scope["type"] == "http" and scope["method"] == "GET":
            try:
                found = self._find(scope)
            except Exception:  # the route answers, whatever went wrong here
                log.debug("answer_reuse_failed", exc_info=True)
                found = None
            if found is not None:
                route, response = found
                scope["route"] = route
                await send(
                    {
                        "type": "http.response.start",
                        "status": response.status_code,
                        "headers": list(response.raw_headers),
                    }
                )
                await send({"type": "http.response.body", "body": response.body})
                return
        await self.app(scope, receive, send)

    def _find(self, scope: Scope) -> tuple[Any, Any] | None:
        """The (route, response) kept for this request, or None to let the route answer."""
        if not scope["path"].startswith("/v1/"):
            return None
        if any(name == b"x-min-position" for name, _ in scope["headers"]):
            return None  # even empty: the route answers 422 for that
        items = query_items(scope)
        if any(name == FRESHNESS_PARAMETER for name, _ in items):
            return None  # decoded names: min%5Fposition is min_position too
        token = self._active_token(scope)
        if token is None:
            return None
        key = answer_key(scope, visibility_of(token), items)
        found = self.read_api.answers.reuse(key, self.read_api.recent_markers)
        if found is None:
            return None
        response, origin = found
        return origin.route, response

    def _active_token(self, scope: Scope) -> ApiToken | None:
        """The request's token if it is active now, known without I/O (else None)."""
        runtime = self.read_api.runtime
        if runtime is None:
            return None
        secret = bearer_secret_of(_header(scope, b"authorization"))
        if secret is None:
            return None
        state = scope.get("state")
        looked_up = state.get(TOKEN_LOOKUP) if isinstance(state, dict) else None
        if looked_up is not None and looked_up[0] == secret:
            token: ApiToken | None = looked_up[1]
        else:
            token = runtime.verifier.cached(secret)
        if token is None or token.status(runtime.verifier.store.clock()) != "active":
            return None
        return token
