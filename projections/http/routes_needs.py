"""Needs and wishes (微心愿): lists, one need's timeline, a unit's needs loop for a period."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from projections.http.access import Reader, not_found
from projections.http.exports import CSV_RESPONSE, Table, respond, wanted_format
from projections.http.routes_common import (
    ERRORS,
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

router = APIRouter(prefix="/v1", tags=["needs"])

VIEWS = ("network", "needs")

NeedStage = Literal["submitted", "accepted", "rejected", "dispatched", "claimed", "closed"]

NEED_COLUMNS = (
    "need_id",
    "site_id",
    "channel",
    "category",
    "urgency",
    "stage",
    "outcome",
    "submitted_at",
    "accepted_at",
    "first_delivered_at",
    "due_at",
    "redispatch_count",
    "delivery_count",
    "hours_delivered",
    "time_to_serve_hours",
    "closed_at",
    "rating",
)

SITE_COLUMNS = ("site_id", "submitted", "accepted", "rejected", "deliveries")


class Need(Open):
    """A need or wish and where it stands."""

    need_id: str
    site_id: str | None = None
    stage: str
    submitted_at: str | None = None


class NeedPage(Open):
    """A page of needs; pass ``next_cursor`` as ``cursor`` for the next one."""

    items: list[Need]
    next_cursor: str | None


class NeedDetail(Need):
    """One need with its timeline."""

    timeline: list[dict[str, Any]]


class NeedsSummary(Open):
    """A unit's needs loop for a period: in total and per site."""

    period: str
    total: dict[str, Any]
    by_site: list[dict[str, Any]]


@router.get(
    "/needs",
    summary="Needs and wishes of your units, newest first (cursor-paged)",
    response_model=NeedPage,
    responses={200: CSV_RESPONSE, **ERRORS},
)
async def list_needs(
    *,
    request: Request,
    caller: Reader,
    api: ReadApiDep,
    _fresh: Annotated[None, fresh(*VIEWS)],
    unit: Annotated[str | None, id_query("Needs at sites under this unit")] = None,
    site: Annotated[str | None, id_query("Needs at this site")] = None,
    stage: Annotated[NeedStage | None, Query()] = None,
    category: Annotated[str | None, Query(max_length=64)] = None,
    channel: Annotated[str | None, Query(max_length=64)] = None,
    period: Annotated[str | None, period_query("Submitted in this period")] = None,
    overdue: Annotated[
        bool | None, Query(description="Only needs in service, not yet served, past due now")
    ] = None,
    limit: Annotated[
        int | None, Query(ge=1, le=500, description="Rows per page (default 50; CSV: all)")
    ] = None,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
    fmt: FormatParam = None,
) -> Response:
    """List the needs the caller may see."""

    def compute() -> Response:
        from projections import needs

        views = api.views()
        scope = caller.narrow(views, unit)
        if site is not None:
            caller.check_unit(views, site, within=scope)
        chosen = parse_period(period) if period else None
        overdue_at = datetime.now(UTC) if overdue else None

        def page(after: str | None, size: int) -> dict[str, Any]:
            return needs.list_needs(
                views,
                scope,
                stage=stage,
                site_id=site,
                category=category,
                channel=channel,
                period=chosen,
                overdue_at=overdue_at,
                cursor=after,
                limit=size,
            )

        if wanted_format(request, fmt) == "csv":
            rows = list(export_rows(page, limit or api.api.export_max_rows, start=cursor))
            return respond(request, None, Table("needs", NEED_COLUMNS, rows), "csv")
        return respond(request, page(cursor, limit or 50), None, "json")

    return await cached(request, caller, api, VIEWS, compute)


@router.get(
    "/needs/{need_id}",
    summary="One need with its timeline",
    response_model=NeedDetail,
    responses=ERRORS,
)
async def get_need(
    *,
    request: Request,
    caller: Reader,
    api: ReadApiDep,
    need_id: Annotated[str, Path(min_length=1, max_length=128)],
    _fresh: Annotated[None, fresh(*VIEWS)],
) -> Response:
    """Return one need (404 when unknown or not of the caller's units)."""

    def compute() -> Response:
        from projections import needs

        views = api.views()
        found = needs.get_need(views, need_id, unit_scope=caller.scope(views))
        if found is None:
            raise not_found("need", need_id)
        return respond(request, found, None, "json")

    return await cached(request, caller, api, VIEWS, compute)


@router.get(
    "/units/{unit_id}/needs",
    summary="A unit's needs loop for a period: fulfilment, time to serve, satisfaction",
    response_model=NeedsSummary,
    responses={200: CSV_RESPONSE, **ERRORS},
)
async def needs_summary(
    *,
    request: Request,
    caller: Reader,
    api: ReadApiDep,
    unit_id: Annotated[str, Path(min_length=1, max_length=128)],
    period: Annotated[str, period_query()],
    _fresh: Annotated[None, fresh(*VIEWS)],
    fmt: FormatParam = None,
) -> Response:
    """Figures of the needs loop in total and per site (CSV: one row per site)."""

    def compute() -> Response:
        from projections import needs

        chosen = parse_period(period)
        views = api.views()
        scope = caller.narrow(views, unit_id)
        body = needs.needs_summary(views, scope, chosen)
        body["unit_id"] = unit_id
        table = Table(f"needs-{unit_id}-{chosen.name}", SITE_COLUMNS, body["by_site"])
        return respond(request, body, table, wanted_format(request, fmt))

    return await cached(request, caller, api, VIEWS, compute)
