"""RFC 9457 problem details: every error answer of the HTTP API, with a stable code.

A problem document looks like::

    HTTP/1.1 422 Unprocessable Content
    Content-Type: application/problem+json

    {"type": "urn:practice-events:problem:schema-violation",
     "title": "Unprocessable Content", "status": 422,
     "code": "SCHEMA_VIOLATION",
     "detail": "practice.site.registered.v1: data.level: Input should be ...",
     "instance": "/v1/events"}

``code`` is the same stable code the ingest pipeline, the dead-letter topic
and the rejections store use (see :mod:`practice_events.errors` and
:mod:`practice_events.contracts.envelope`); ``detail`` is the same reason
text. ``type`` is derived from the code. Extra members (``event``,
``checks``, ``errors``) carry context where it helps.

Status codes, decided once here so that routes never choose them ad hoc:

=====  ================================================================================
400    ``MALFORMED_JSON`` (not JSON), ``INVALID_BATCH`` (not an array), bad headers
401    ``UNAUTHENTICATED``, ``INVALID_TOKEN``, ``TOKEN_EXPIRED``, ``TOKEN_REVOKED``
403    ``FORBIDDEN`` (wrong role), ``SOURCE_NOT_ALLOWED`` (token not bound to the source)
404    ``NOT_FOUND``; 405 ``METHOD_NOT_ALLOWED``
409    ``DUPLICATE_CONFLICT`` (an id reused with different content)
413    ``PAYLOAD_TOO_LARGE`` (bytes), ``BATCH_TOO_LARGE`` (events)
415    ``UNSUPPORTED_MEDIA_TYPE``
422    every other contract or domain refusal (``SCHEMA_VIOLATION``, ``ILLEGAL_TRANSITION`` …)
429    ``RATE_LIMITED`` (the token's or address's request budget is spent); with ``Retry-After``
500    ``INTERNAL``: a bug, never bad input
503    ``TRANSIENT`` (store unreachable), ``OVERLOADED``, ``NOT_READY``; with ``Retry-After``
=====  ================================================================================
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from practice_events.errors import (
    ContractError,
    DomainError,
    PracticeEventsError,
    TransientError,
)

log = structlog.get_logger(__name__)

PROBLEM_JSON = "application/problem+json"
"""The media type of problem documents."""

RETRY_AFTER_SECONDS = 5
"""What ``Retry-After`` says when the store is away or the server is busy."""

STATUS_BY_CODE: dict[str, int] = {
    "MALFORMED_JSON": 400,
    "INVALID_BATCH": 400,
    "BAD_REQUEST": 400,
    "UNAUTHENTICATED": 401,
    "INVALID_TOKEN": 401,
    "TOKEN_EXPIRED": 401,
    "TOKEN_REVOKED": 401,
    "FORBIDDEN": 403,
    "SOURCE_NOT_ALLOWED": 403,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "NOT_ACCEPTABLE": 406,
    "DUPLICATE_CONFLICT": 409,
    "PAYLOAD_TOO_LARGE": 413,
    "BATCH_TOO_LARGE": 413,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "RATE_LIMITED": 429,
    "TRANSIENT": 503,
    "OVERLOADED": 503,
    "NOT_READY": 503,
    "INTERNAL": 500,
}
"""HTTP status of each code; contract and domain codes not listed answer 422."""

_CODE_BY_STATUS = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "SCHEMA_VIOLATION",
    429: "RATE_LIMITED",
    503: "NOT_READY",
}


def status_for(code: str, default: int = 422) -> int:
    """Return the HTTP status for a stable error code."""
    return STATUS_BY_CODE.get(code, default)


def problem_type(code: str) -> str:
    """Return the problem ``type`` URI of a code (``urn:practice-events:problem:<code>``)."""
    return "urn:practice-events:problem:" + code.lower().replace("_", "-")


class ProblemResponse(Response):
    """A ``application/problem+json`` response rendered with orjson."""

    media_type = PROBLEM_JSON

    def render(self, content: Any) -> bytes:
        """Serialise the problem document."""
        return orjson.dumps(content)


class JsonResponse(JSONResponse):
    """A JSON response rendered with orjson (fast, and datetimes come out as RFC 3339).

    A ``JSONResponse`` subclass so that FastAPI documents a route's response
    model in OpenAPI (for other response classes it publishes ``string``).
    """

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Serialise the body."""
        return orjson.dumps(content)


class Problem(Exception):  # noqa: N818 - it is an HTTP problem, named as RFC 9457 names it
    """An error answer raised by a route: status, stable code, reason and extra members."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra

    @classmethod
    def from_error(cls, exc: PracticeEventsError, **extra: Any) -> Problem:
        """Build the problem for an error of the family (status from its code)."""
        status = status_for(exc.code, _default_status(exc))
        return cls(status, exc.code, exc.reason, headers=_headers_for(status, exc.code), **extra)


def _default_status(exc: PracticeEventsError) -> int:
    if isinstance(exc, ContractError | DomainError):
        return 422
    if isinstance(exc, TransientError):
        return 503
    return 422 if exc.code not in ("INTERNAL", "BAD_CONFIGURATION") else 500


def _headers_for(status: int, code: str) -> dict[str, str]:
    if status == 503:
        return {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if status == 401:
        if code == "UNAUTHENTICATED":
            return {"WWW-Authenticate": 'Bearer realm="practice-events"'}
        return {"WWW-Authenticate": 'Bearer realm="practice-events", error="invalid_token"'}
    return {}


def problem_response(
    status: int,
    code: str,
    detail: str,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> ProblemResponse:
    """Return a problem+json response."""
    try:
        title = HTTPStatus(status).phrase
    except ValueError:  # pragma: no cover - only standard statuses are used
        title = "Error"
    body: dict[str, Any] = {
        "type": problem_type(code),
        "title": title,
        "status": status,
        "code": code,
        "detail": detail,
    }
    if instance is not None:
        body["instance"] = instance
    body.update(extra)
    merged = _headers_for(status, code)
    merged.update(headers or {})
    return ProblemResponse(body, status_code=status, headers=merged)


# -- exception handlers ---------------------------------------------------------------------


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return problem_response(
        exc.status,
        exc.code,
        exc.detail,
        instance=request.url.path,
        headers=exc.headers,
        **exc.extra,
    )


async def _on_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PracticeEventsError)
    problem = Problem.from_error(exc)
    if problem.status >= 500 and not isinstance(exc, TransientError):
        log.error("http_internal_error", path=request.url.path, code=exc.code, error=str(exc))
    elif isinstance(exc, TransientError):
        log.warning("http_store_unavailable", path=request.url.path, reason=exc.reason)
    return await _on_problem(request, problem)


async def _on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _CODE_BY_STATUS.get(exc.status_code, f"HTTP_{exc.status_code}")
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    headers = dict(exc.headers or {})
    return problem_response(
        exc.status_code, code, detail, instance=request.url.path, headers=headers
    )


async def _on_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "where": ".".join(str(p) for p in error.get("loc", ())),
            "message": str(error.get("msg", "invalid")),
        }
        for error in exc.errors()[:10]
    ]
    detail = "; ".join(f"{e['where']}: {e['message']}" for e in errors[:3]) or "invalid request"
    return problem_response(
        422, "SCHEMA_VIOLATION", detail, instance=request.url.path, errors=errors
    )


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    log.error("http_unexpected_error", path=request.url.path, exc_info=exc)
    return problem_response(
        500,
        "INTERNAL",
        "an unexpected error occurred on the server; it has been logged",
        instance=request.url.path,
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error answer a problem document."""
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(PracticeEventsError, _on_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(Exception, _on_unexpected)


PROBLEM_RESPONSE_SCHEMA: dict[str, Any] = {
    "description": "An RFC 9457 problem document",
    "content": {
        PROBLEM_JSON: {
            "schema": {
                "type": "object",
                "required": ["type", "title", "status", "code", "detail"],
                "properties": {
                    "type": {"type": "string", "format": "uri"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "code": {"type": "string", "description": "Stable machine-readable code"},
                    "detail": {"type": "string", "description": "What to do about it"},
                    "instance": {"type": "string"},
                },
                "additionalProperties": True,
            }
        }
    },
}
"""OpenAPI description of a problem answer, for ``responses=`` of the routes."""
