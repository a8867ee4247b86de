"""What every read route shares: the read API handle, freshness, periods, errors, schemas.

* :func:`read_api` finds the plugin's :class:`~projections.http.context.ReadApi`.
* :func:`fresh` builds the read-your-writes dependency of an endpoint: it
  takes ``?min_position=N`` or the ``X-Min-Position`` header and waits for
  the projections behind the endpoint (see ``ReadApi.wait_for``).
* Periods are ``2024-03``, ``2024-Q1``, ``2024-H1`` or ``2024``.
* :func:`install_view_errors` maps view-store failures to problems: a view
  not built yet or a database away is 503 (retry), never a 500.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Annotated, Any, Literal

import anyio.to_thread
import structlog
from fastapi import Depends, FastAPI, Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from practice_events.api.problems import PROBLEM_RESPONSE_SCHEMA, problem_response
from practice_events.scoring.periods import Period
from projections.http.access import Caller
from projections.http.answers import answer_key
from projections.http.context import Origin, ReadApi

log = structlog.get_logger(__name__)

PERIOD_PATTERN = r"^\d{4}(-(0[1-9]|1[0-2])|-Q[1-4]|-H[12])?$"
MIN_YEAR, MAX_YEAR = 2000, 2099
"""Periods outside these years are refused (400): nothing happened then."""

PERIOD_HELP = "Period in the network's time zone: 2024-03 (month), 2024-Q1, 2024-H1 or 2024"

ERRORS: dict[int | str, dict[str, Any]] = {
    400: PROBLEM_RESPONSE_SCHEMA,
    401: PROBLEM_RESPONSE_SCHEMA,
    403: PROBLEM_RESPONSE_SCHEMA,
    404: PROBLEM_RESPONSE_SCHEMA,
    406: PROBLEM_RESPONSE_SCHEMA,
    422: PROBLEM_RESPONSE_SCHEMA,
    429: PROBLEM_RESPONSE_SCHEMA,
    503: PROBLEM_RESPONSE_SCHEMA,
}
"""Problem answers every read endpoint may give (documented in OpenAPI)."""

FormatParam = Annotated[
    Literal["json", "csv"] | None,
    Query(
        alias="format",
        description="json (default) or csv; Accept: text/csv also asks for CSV",
    ),
]


async def cached(
    request: Request,
    caller: Caller,
    api: ReadApi,
    names: Sequence[str],
    compute: Callable[[], Response],
) -> Response:
    """``compute()``'s answer, reused while the views ``names`` have not moved.

    The key is the question (path, parameters, the headers that choose format
    and language) and what the caller may see (:func:`~projections.http.answers.answer_key`);
    see ``AnswerCache``. A reused answer is found on the event loop without
    I/O (positions as last polled, or the in-process runner's), usually
    before the request is even routed (``AnswerMiddleware``); a request with
    ``min_position`` reads the positions afresh, and a computed answer is
    computed on a worker thread.

    Only for answers that depend on nothing but the question and the
    caller's role and unit (``Caller.visibility``): the middleware gives them
    to any active token with the same role and unit.
    """
    key = answer_key(request.scope, caller.visibility)
    exact = "min_position" in request.query_params or "x-min-position" in request.headers
    markers = None if exact else api.recent_markers(names)
    found = api.answers.lookup(key, markers, compute) if markers is not None else None
    if found is None:
        if markers is None:
            markers = await anyio.to_thread.run_sync(api.markers, names)
        origin = Origin(tuple(names), request.scope.get("route"), compute)
        found = await anyio.to_thread.run_sync(
            api.answers.get_or_compute, key, markers, compute, origin
        )
    headers = {k: v for k, v in found.headers.items() if k != "content-length"}
    return Response(found.body, status_code=found.status_code, headers=headers)


def api_of(request: Request) -> ReadApi:
    """The read API plugin's state (installed on ``app.state``)."""
    api: ReadApi = request.app.state.read_api
    return api


async def read_api(request: Request) -> ReadApi:
    """The read API as a dependency (async: no thread hop for a lookup)."""
    return api_of(request)


ReadApiDep = Annotated[ReadApi, Depends(read_api)]


def fresh(*names: str) -> Any:
    """A dependency waiting until the projections ``names`` passed ``min_position``."""

    async def dependency(
        request: Request,
        min_position: Annotated[
            int | None,
            Query(
                ge=0,
                le=2**62,
                description="Answer only once the views behind this endpoint have processed "
                "this log position (from an ingestion answer); 503 NOT_CAUGHT_UP if they do "
                "not within the wait bound",
            ),
        ] = None,
        x_min_position: Annotated[
            int | None,
            Header(
                ge=0,
                le=2**62,
                alias="X-Min-Position",
                description="The same as ?min_position (the query parameter wins)",
            ),
        ] = None,
    ) -> None:
        position = min_position if min_position is not None else x_min_position
        if position:
            await api_of(request).wait_for(position, names)

    return Depends(dependency)


def parse_period(text: str) -> Period:
    """Parse a period name; 400 BAD_REQUEST with the accepted forms otherwise."""
    from projections.rows import bad_request

    try:
        period = Period.parse(text)
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    if not MIN_YEAR <= period.first.year <= MAX_YEAR:
        msg = f"period {text!r} is outside the years {MIN_YEAR}-{MAX_YEAR}"
        raise bad_request(msg)
    return period


def period_query(description: str = PERIOD_HELP) -> Any:
    """A ``period`` query parameter (pattern documented in OpenAPI)."""
    return Query(pattern=PERIOD_PATTERN, description=description, examples=["2025-06"])


IdPath = Annotated[str, Field(min_length=1, max_length=128)]


def id_query(description: str) -> Any:
    """A query parameter naming an id (bounded length)."""
    return Query(min_length=1, max_length=128, description=description)


class Open(BaseModel):
    """Base of response schemas: the fields listed are documented, others may follow."""

    model_config = ConfigDict(extra="allow")


class Figure(Open):
    """One indicator figure: value with numerator, denominator and sample status."""

    status: str = Field(description="ok, or insufficient_data below the minimum sample")
    value: float | None = Field(default=None, description="The figure (None without data)")
    numerator: float | None = Field(default=None, description="What was counted")
    denominator: float | None = Field(default=None, description="Out of how many")
    min_sample: int | None = Field(default=None, description="Least denominator for a value")


def export_rows(
    fetch: Callable[[str | None, int], Mapping[str, Any]],
    maximum: int,
    *,
    start: str | None = None,
    page: int = 500,
) -> Iterator[Mapping[str, Any]]:
    """Every row of a cursor-paged query from ``start``, page after page, up to ``maximum``."""
    cursor = start
    taken = 0
    while taken < maximum:
        result = fetch(cursor, min(page, maximum - taken))
        items = result["items"]
        yield from items
        taken += len(items)
        cursor = result.get("next_cursor")
        if not cursor or not items:
            return


def _is_missing_table(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "no such table" in text or ("relation" in text and "does not exist" in text)


async def _on_sqlite_error(request: Request, exc: Exception) -> Response:
    if _is_missing_table(exc):
        return problem_response(
            503,
            "NOT_READY",
            "the views are not built yet; start the projections (`practice-events "
            "projections run`) and retry",
            instance=request.url.path,
        )
    log.warning("view_store_error", path=request.url.path, error=str(exc))
    return problem_response(
        503, "TRANSIENT", "the view store is busy or unavailable; retry", instance=request.url.path
    )


def install_view_errors(app: FastAPI) -> None:
    """Answer view-store failures with 503 problems (never a 500 for a view being built)."""
    app.add_exception_handler(sqlite3.OperationalError, _on_sqlite_error)
    try:
        import psycopg
        import psycopg_pool
    except ImportError:  # pragma: no cover - psycopg is a dependency of the postgres extra
        return
    app.add_exception_handler(psycopg.errors.UndefinedTable, _on_sqlite_error)
    app.add_exception_handler(psycopg.OperationalError, _on_sqlite_error)
    app.add_exception_handler(psycopg_pool.PoolTimeout, _on_sqlite_error)
