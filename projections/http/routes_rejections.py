"""Rejections: "why was my event refused?" for producers; every refusal for auditors.

Refusals are written by the ingest pipeline into the event store in the same
transaction as the batch's accepted events, so these endpoints read the
store directly (no projection, nothing to wait for). A producer token reads
the refusals of its own sources only: it names one with ``source`` (a token
bound to a single exact source may leave it out); a source it is not bound
to is 403 ``SOURCE_NOT_ALLOWED``. The district supervisor and auditors read
every producer's.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from practice_events.errors import PracticeEventsError
from projections.http.access import Caller, RejectionReader
from projections.http.exports import CSV_RESPONSE, Table, respond, wanted_format
from projections.http.routes_common import ERRORS, FormatParam, Open, ReadApiDep

router = APIRouter(prefix="/v1", tags=["rejections"])

REJECTION_COLUMNS = (
    "seq",
    "received_at",
    "channel",
    "code",
    "reason",
    "source",
    "event_id",
    "event_type",
    "subject",
)

SourceParam = Annotated[
    str | None,
    Query(min_length=1, max_length=256, description="The producer (CloudEvents source)"),
]


class Rejection(Open):
    """One refused input: the stable code, the reason, and what was sent."""

    seq: int
    received_at: str
    code: str
    reason: str
    source: str | None = None
    event_id: str | None = None
    event_type: str | None = None


class RejectionPage(Open):
    """A page of refusals, oldest first; pass ``next_after`` as ``after`` for the next."""

    items: list[Rejection]
    next_after: int | None


class RejectionSummary(Open):
    """Refusals grouped by producer and code."""

    source: str | None
    total: int
    totals_by_code: dict[str, int]
    producers: list[dict[str, Any]]


class WhyRefused(Open):
    """Every refusal of one event (by source and id), oldest first."""

    source: str
    event_id: str
    refusals: list[Rejection]


def source_for(caller: Caller, source: str | None) -> str | None:
    """The source a caller reads (None: every source; producers always get one)."""
    if source is not None:
        if not caller.allows_source(source):
            msg = (
                f"this token may not read the rejections of source {source!r}; "
                f"it is bound to {', '.join(caller.token.sources)}"
            )
            raise PracticeEventsError(msg, code="SOURCE_NOT_ALLOWED")
        return source
    if caller.role != "producer":
        return None
    exact = [s for s in caller.token.sources if not s.endswith("*")]
    if len(caller.token.sources) == 1 and exact:
        return exact[0]
    msg = (
        "give source: one of the sources this token is bound to "
        f"({', '.join(caller.token.sources)})"
    )
    raise PracticeEventsError(msg, code="BAD_REQUEST")


@router.get(
    "/rejections",
    summary="Refused events, oldest first, each with its code, reason and payload",
    response_model=RejectionPage,
    responses={200: CSV_RESPONSE, **ERRORS},
)
def list_rejections(
    *,
    request: Request,
    caller: RejectionReader,
    api: ReadApiDep,
    source: SourceParam = None,
    code: Annotated[str | None, Query(max_length=64, description="A stable error code")] = None,
    after: Annotated[int, Query(ge=0, le=2**62, description="next_after of the last page")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    fmt: FormatParam = None,
) -> Response:
    """A producer's refusals (its own sources only), or everyone's for auditors."""
    from projections import rejections

    chosen = source_for(caller, source)
    assert api.runtime is not None
    body = rejections.list_rejections(
        api.runtime.store, source=chosen, code=code, after=after, limit=limit
    )
    table = Table("rejections", REJECTION_COLUMNS, body["items"])
    return respond(request, body, table, wanted_format(request, fmt))


@router.get(
    "/rejections/summary",
    summary="Refusals grouped by producer and code",
    response_model=RejectionSummary,
    responses=ERRORS,
)
def rejections_summary(
    *,
    request: Request,
    caller: RejectionReader,
    api: ReadApiDep,
    source: SourceParam = None,
) -> Response:
    """What to fix first: counts per code, the latest refusal of each producer."""
    from projections import rejections

    chosen = source_for(caller, source)
    assert api.runtime is not None
    body = rejections.rejections_by_producer(api.runtime.store, chosen)
    return respond(request, body, None, "json")


@router.get(
    "/rejections/why",
    summary="Why was my event refused? Every refusal of one event",
    response_model=WhyRefused,
    responses=ERRORS,
)
def why_refused(
    *,
    request: Request,
    caller: RejectionReader,
    api: ReadApiDep,
    event_id: Annotated[str, Query(min_length=1, max_length=256, description="CloudEvents id")],
    source: SourceParam = None,
) -> Response:
    """The refusals of the event ``(source, event_id)``; empty if it was never refused."""
    from projections import rejections

    chosen = source_for(caller, source)
    if chosen is None:
        msg = "give source: the CloudEvents source of the event"
        raise PracticeEventsError(msg, code="BAD_REQUEST")
    assert api.runtime is not None
    found = rejections.why_refused(api.runtime.store, chosen, event_id)
    return respond(
        request, {"source": chosen, "event_id": event_id, "refusals": found}, None, "json"
    )
