"""Ledgers: volunteers' and teams' hours and points, a unit's volunteer figures, 双报到."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

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

router = APIRouter(prefix="/v1", tags=["ledgers"])

VIEWS = ("network", "ledger")

VOLUNTEER_COLUMNS = (
    "volunteer_no",
    "home_site_id",
    "is_official",
    "status",
    "registered_on",
    "approved_hours",
    "pending_hours",
    "rejected_hours",
    "points_awarded",
    "points_balance",
    "star_level",
    "last_service_date",
)

OFFICIAL_COLUMNS = (
    "volunteer_no",
    "home_site_id",
    "home_unit_id",
    "community_site_id",
    "community_reported_at",
    "post_site_id",
    "post_reported_at",
    "dual_reported",
    "quota_hours",
    "quota_due_so_far",
    "approved_hours",
    "quota_met",
    "meetings_attended",
)

SITE_HOURS_COLUMNS = ("site_id", "approved_hours", "sessions", "volunteers")


class Volunteer(Open):
    """A volunteer (by number; never personal data) with the ledger's totals."""

    volunteer_no: str
    home_site_id: str | None = None
    is_official: bool
    approved_hours: float
    points_balance: int
    star_level: int


class VolunteerPage(Open):
    """A page of volunteers; pass ``next_cursor`` as ``cursor`` for the next one."""

    items: list[Volunteer]
    next_cursor: str | None


class VolunteerLedger(Open):
    """One volunteer's ledger: totals, teams, latest sessions and points movements."""

    volunteer: Volunteer
    teams: list[dict[str, Any]]
    sessions: list[dict[str, Any]]
    points: list[dict[str, Any]]


class TeamLedger(Open):
    """A team with its members and the hours they served while members."""

    team: dict[str, Any]
    members: list[dict[str, Any]]


class VolunteersSummary(Open):
    """A unit's volunteer figures for a period."""

    period: str
    registered: int
    active: int
    active_rate: Figure
    approved_hours: float
    hours_per_active: Figure
    hours_at_sites: list[dict[str, Any]]


class OfficialsSummary(Open):
    """Officials' dual check-in (双报到) and service quota for a year."""

    year: int
    as_of: str
    officials: list[dict[str, Any]]
    summary: dict[str, Any]


@router.get(
    "/volunteers",
    summary="Volunteers of your units with their hours, points and stars (cursor-paged)",
    response_model=VolunteerPage,
    responses={200: CSV_RESPONSE, **ERRORS},
)
async def list_volunteers(
    *,
    request: Request,
    caller: Reader,
    api: ReadApiDep,
    _fresh: Annotated[None, fresh(*VIEWS)],
    unit: Annotated[str | None, id_query("Volunteers whose home site is under this unit")] = None,
    status: Annotated[str | None, Query(max_length=32, description="Volunteer status")] = None,
    is_official: Annotated[bool | None, Query(description="Only officials (双报到)")] = None,
    min_star_level: Annotated[int | None, Query(ge=0, le=10)] = None,
    order: Annotated[
        Literal["volunteer_no", "approved_hours", "points_balance"], Query()
    ] = "volunteer_no",
    limit: Annotated[
        int | None, Query(ge=1, le=500, description="Rows per page (default 50; CSV: all)")
    ] = None,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
    fmt: FormatParam = None,
) -> Response:
    """List volunteers in the caller's units (or under ``unit``)."""

    def compute() -> Response:
        from projections import ledger

        views = api.views()
        scope = caller.narrow(views, unit)

        def page(after: str | None, size: int) -> dict[str, Any]:
            return ledger.list_volunteers(
                views,
                scope,
                status=status,
                is_official=is_official,
                min_star_level=min_star_level,
                order=order,
                cursor=after,
                limit=size,
            )

        if wanted_format(request, fmt) == "csv":
            rows = list(export_rows(page, limit or api.api.export_max_rows, start=cursor))
            return respond(request, None, Table("volunteers", VOLUNTEER_COLUMNS, rows), "csv")
        return respond(request, page(cursor, limit or 50), None, "json")

    return await cached(request, caller, api, VIEWS, compute)


@router.get(
    "/volunteers/{volunteer_no}",
    summary="One volunteer's ledger: hours, sessions, points and teams",
    response_model=VolunteerLedger,
    responses=ERRORS,
)
async def get_volunteer(
    *,
    request: Request,
    caller: Reader,
    api: ReadApiDep,
    volunteer_no: Annotated[str, Path(min_length=1, max_length=128)],
    _fresh: Annotated[None, fresh(*VIEWS)],
    sessions: Annotated[int, Query(ge=1, le=1000, description="Latest sessions shown")] = 100,
    points: Annotated[int, Query(ge=1, le=1000, description="Latest movements shown")] = 100,
) -> Response:
    """Return a volunteer's ledger (404 when unknown or not of the caller's units)."""

    def compute() -> Response:
        from projections import ledger

        views = api.views()
        found = ledger.volunteer_ledger(
            views,
            volunteer_no,
            unit_scope=caller.scope(views),
            sessions_limit=sessions,
            points_limit=points,
        )
        if found is None:
            raise not_found("volunteer", volunteer_no)
        return respond(request, found, None, "json")

    return await cached(request, caller, api, VIEWS, compute)


@router.get(
    "/teams/{team_id}",
    summary="A team's members and the hours they served while members",
    response_model=TeamLedger,
    responses={200: CSV_RESPONSE, **ERRORS},
)
async def get_team(
    *,
    request: Request,
    caller: Reader,
    api: ReadApiDep,
    team_id: Annotated[str, Path(min_length=1, max_length=128)],
    _fresh: Annotated[None, fresh(*VIEWS)],
    fmt: FormatParam = None,
) -> Response:
    """Return a team's ledger (404 when unknown or not of the caller's units)."""

    def compute() -> Response:
        from projections import ledger

        views = api.views()
        found = ledger.team_ledger(views, team_id, unit_scope=caller.scope(views))
        if found is None:
            raise not_found("team", team_id)
        columns = ("volunteer_no", "role", "active", "joined_at", "left_at", "approved_hours")
        table = Table(f"team-{team_id}", columns, found["members"])
        return respond(request, found, table, wanted_format(request, fmt))

    return await cached(request, caller, api, VIEWS, compute)


@router.get(
    "/units/{unit_id}/volunteers",
    summary="A unit's volunteer figures for a period (registered, active, hours)",
    response_model=VolunteersSummary,
    responses={200: CSV_RESPONSE, **ERRORS},
)
async def volunteers_summary(
    *,
    request: Request,
    caller: Reader,
    api: ReadApiDep,
    unit_id: Annotated[str, Path(min_length=1, max_length=128)],
    period: Annotated[str, period_query()],
    _fresh: Annotated[None, fresh(*VIEWS)],
    fmt: FormatParam = None,
) -> Response:
    """Registered and active volunteers, approved hours, hours per active volunteer."""

    def compute() -> Response:
        from projections import ledger

        chosen = parse_period(period)
        views = api.views()
        scope = caller.narrow(views, unit_id)
        body = ledger.volunteers_summary(views, scope, chosen)
        body["unit_id"] = unit_id
        table = Table(
            f"volunteers-{unit_id}-{chosen.name}", SITE_HOURS_COLUMNS, body["hours_at_sites"]
        )
        return respond(request, body, table, wanted_format(request, fmt))

    return await cached(request, caller, api, VIEWS, compute)


@router.get(
    "/units/{unit_id}/officials",
    summary="Officials' dual check-in (双报到) and service quota for a year",
    response_model=OfficialsSummary,
    responses={200: CSV_RESPONSE, **ERRORS},
)
async def officials(
    *,
    request: Request,
    caller: Reader,
    api: ReadApiDep,
    unit_id: Annotated[str, Path(min_length=1, max_length=128)],
    year: Annotated[int, Query(ge=2000, le=2099, description="Calendar year")],
    _fresh: Annotated[None, fresh(*VIEWS)],
    as_of: Annotated[
        date | None, Query(description="Pro-rate quotas to this local date (default: today)")
    ] = None,
    fmt: FormatParam = None,
) -> Response:
    """Who reported to a community and a post, and who met the service quota so far."""

    def compute() -> Response:
        from projections import ledger

        views = api.views()
        scope = caller.narrow(views, unit_id)
        body = ledger.officials_dual_checkin(
            views, scope, year, as_of=as_of, timezone=api.settings.timezone
        )
        body["unit_id"] = unit_id
        table = Table(f"officials-{unit_id}-{year}", OFFICIAL_COLUMNS, body["officials"])
        return respond(request, body, table, wanted_format(request, fmt))

    return await cached(request, caller, api, VIEWS, compute)
