"""House meetings (屋场会): lists, one meeting with its concerns, a unit's coverage for a period."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from projections.http.access import Reader, not_found
from projections.http.exports import CSV_RESPONSE, Table, respond, wanted_format
from projections.http.routes_common import (
    ERRORS,
    Figure,
    FormatParam,
    Open,
    ReadApiDep,
    cached,
    export_rows,
    fresh,
    id_query,
    parse_period,
    period_query,
)

router = APIRouter(prefix="/v1", tags=["house meetings"])

VIEWS = ("network", "meetings")

MEETING_COLUMNS = (
    "meeting_id",
    "site_id",
    "started_at",
    "held_on",
    "attendees_count",
    "complete",
    "missing_steps",
    "concerns_raised",
    "concerns_open",
)

SITE_COLUMNS = ("site_id", "name", "covered", "meetings", "attendees")


class Meeting(Open):
    """A house meeting with the steps it logged."""

    meeting_id: str
    site_id: str | None = None
    started_at: str | None = None
    complete: bool
    missing_steps: list[str]


class MeetingPage(Open):
    """A page of meetings; pass ``next_cursor`` as ``cursor`` for the next one."""

    items: list[Meeting]
    next_cursor: str | None


class MeetingDetail(Meeting):
    """One meeting with the concerns raised at it."""

    concerns: list[dict[str, Any]]


class MeetingsSummary(Open):
    """A unit's house meetings for a period: coverage, five-step completeness, concerns."""

    period: str
    coverage: Figure
    meetings: int
    five_step_completeness: Figure
    concerns: dict[str, Any]
    by_site: list[dict[str, Any]]


@router.get(
    "/meetings",
    summary="House meetings at your units' sites, latest first (cursor-paged)",
    response_model=MeetingPage,
    responses={200: CSV_RESPONSE, **ERRORS},
)
async def list_meetings(
    *,
    request: Request,
    caller: Reader,
    api: ReadApiDep,
    _fresh: Annotated[None, fresh(*VIEWS)],
    unit: Annotated[str | None, id_query("Meetings at sites under this unit")] = None,
    site: Annotated[str | None, id_query("Meetings at this site")] = None,
    period: Annotated[str | None, period_query("Held in this period")] = None,
    complete: Annotated[bool | None, Query(description="All five steps logged (or not)")] = None,
    open_concerns: Annotated[bool | None, Query(description="With open concerns (or not)")] = None,
    limit: Annotated[
        int | None, Query(ge=1, le=500, description="Rows per page (default 50; CSV: all)")
    ] = None,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
    fmt: FormatParam = None,
) -> Response:
    """List the meetings the caller may see."""

    def compute() -> Response:
        from projections import meetings

        views = api.views()
        scope = caller.narrow(views, unit)
        if site is not None:
            caller.check_unit(views, site, within=scope)
        chosen = parse_period(period) if period else None

        def page(after: str | None, size: int) -> dict[str, Any]:
            return meetings.list_meetings(
                views,
                scope,
                period=chosen,
                site_id=site,
                complete=complete,
                with_open_concerns=open_concerns,
                cursor=after,
                limit=size,
            )

        if wanted_format(request, fmt) == "csv":
            rows = list(export_rows(page, limit or api.api.export_max_rows, start=cursor))
            return respond(request, None, Table("meetings", MEETING_COLUMNS, rows), "csv")
        return respond(request, page(cursor, limit or 50), None, "json")

    return await cached(request, caller, api, VIEWS, compute)


@router.get(
    "/meetings/{meeting_id}",
    summary="One house meeting with its concerns",
    response_model=MeetingDetail,
    responses=ERRORS,
)
async def get_meeting(
    *,
    request: Request,
    caller: Reader,
    api: ReadApiDep,
    meeting_id: Annotated[str, Path(min_length=1, max_length=128)],
    _fresh: Annotated[None, fresh(*VIEWS)],
) -> Response:
    """Return one meeting (404 when unknown or not of the caller's units)."""

    def compute() -> Response:
        from projections import meetings

        views = api.views()
        found = meetings.get_meeting(views, meeting_id, unit_scope=caller.scope(views))
        if found is None:
            raise not_found("meeting", meeting_id)
        return respond(request, found, None, "json")

    return await cached(request, caller, api, VIEWS, compute)


@router.get(
    "/units/{unit_id}/meetings",
    summary="A unit's house meetings for a period: coverage, five steps, concerns",
    response_model=MeetingsSummary,
    responses={200: CSV_RESPONSE, **ERRORS},
)
async def meetings_summary(
    *,
    request: Request,
    caller: Reader,
    api: ReadApiDep,
    unit_id: Annotated[str, Path(min_length=1, max_length=128)],
    period: Annotated[str, period_query()],
    _fresh: Annotated[None, fresh(*VIEWS)],
    fmt: FormatParam = None,
) -> Response:
    """Coverage of house-meeting sites, 讲听演评办 completeness, concerns (CSV: per site)."""

    def compute() -> Response:
        from projections import meetings

        chosen = parse_period(period)
        views = api.views()
        scope = caller.narrow(views, unit_id)
        body = meetings.meetings_summary(views, scope, chosen)
        body["unit_id"] = unit_id
        table = Table(f"meetings-{unit_id}-{chosen.name}", SITE_COLUMNS, body["by_site"])
        return respond(request, body, table, wanted_format(request, fmt))

    return await cached(request, caller, api, VIEWS, compute)
