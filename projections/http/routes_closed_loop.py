"""The closed loop: findings (filtered, paged, sorted), one finding's timeline, a unit's figures."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import Field
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

router = APIRouter(prefix="/v1", tags=["closed loop"])

VIEWS = ("network", "closed_loop")

Stage = Literal[
    "FOUND",
    "FED_BACK",
    "DISPUTED",
    "ACKNOWLEDGED",
    "IN_RECTIFICATION",
    "PENDING_VERIFICATION",
    "CLOSED",
    "VOIDED",
]
SlaStatus = Literal["running", "breached", "met", "met_late", "cancelled"]
Severity = Literal["critical", "high", "normal", "low"]
Sort = Literal["recorded_at", "due_at", "closed_at", "last_event_at"]

FINDING_COLUMNS = (
    "finding_id",
    "site_id",
    "unit_id",
    "severity",
    "category",
    "stage",
    "sla_status",
    "overdue",
    "overdue_working_days",
    "current_target",
    "current_due_at",
    "recorded_at",
    "fed_back_at",
    "ack_due_at",
    "acknowledged_at",
    "rectify_due_at",
    "rectified_at",
    "verify_due_at",
    "verified_at",
    "closed_at",
    "closure",
    "cycle",
    "reopen_count",
    "return_count",
    "extension_count",
    "escalation_level",
    "source",
    "description",
)

SUMMARY_COLUMNS = (
    "indicator",
    "status",
    "value",
    "numerator",
    "denominator",
    "min_sample",
    "pending",
    "excluded",
    "details",
)


class Finding(Open):
    """A finding of the closed loop, with its SLA status evaluated now."""

    finding_id: str
    site_id: str
    unit_id: str = Field(description="The accountable unit (responsible, or the site before)")
    severity: str
    category: str
    stage: str
    sla_status: str = Field(description="running, breached, met, met_late or cancelled")
    overdue: bool
    overdue_working_days: int | None = None
    recorded_at: str
    current_due_at: str | None = None


class FindingPage(Open):
    """A page of findings; pass ``next_cursor`` as ``cursor`` for the next one."""

    items: list[Finding]
    next_cursor: str | None


class TimelineEvent(Open):
    """One event of a finding's life."""

    position: int
    type: str
    time: str
    data: dict[str, Any]


class FindingDetail(Finding):
    """One finding with its SLA clocks and full timeline."""

    clocks: list[dict[str, Any]]
    timeline: list[TimelineEvent]


class ClosedLoopSummary(Open):
    """The closed-loop figures of a unit (and everything under it) for a period."""

    unit_id: str
    period: str
    first_date: str
    end_date: str
    evaluated_at: str
    indicators: dict[str, Figure]


@router.get(
    "/findings",
    summary="Findings: filtered, sorted, cursor-paged (CSV: every matching row)",
    response_model=FindingPage,
    responses={200: CSV_RESPONSE, **ERRORS},
)
async def list_findings(
    *,
    request: Request,
    caller: Reader,
    api: ReadApiDep,
    _fresh: Annotated[None, fresh(*VIEWS)],
    unit: Annotated[str | None, id_query("A unit: its findings and those under it")] = None,
    site: Annotated[str | None, id_query("Findings at this site")] = None,
    stage: Annotated[list[Stage] | None, Query(description="One or more stages")] = None,
    sla: Annotated[SlaStatus | None, Query(description="SLA status now")] = None,
    severity: Annotated[Severity | None, Query()] = None,
    overdue: Annotated[bool | None, Query(description="Open and past the due time")] = None,
    period: Annotated[str | None, period_query("Recorded in this period")] = None,
    q: Annotated[
        str | None, Query(max_length=200, description="Text in the id, category or description")
    ] = None,
    sort: Annotated[Sort, Query()] = "recorded_at",
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
    limit: Annotated[
        int | None,
        Query(ge=1, le=500, description="Rows per page (default 50; CSV: all rows)"),
    ] = None,
    cursor: Annotated[
        str | None, Query(max_length=1000, description="next_cursor of the previous page")
    ] = None,
    fmt: FormatParam = None,
) -> Response:
    """List the findings the caller may see; overdue first with ``sort=due_at&order=asc``."""

    def compute() -> Response:
        from projections import closed_loop

        views = api.views()
        scope = caller.scope(views)
        for ident in (unit, site):
            if ident is not None:
                caller.check_unit(views, ident)
        chosen = wanted_format(request, fmt)
        filters: dict[str, Any] = {
            "scope": scope,
            "unit_id": unit,
            "site_id": site,
            "stage": stage,
            "sla": sla,
            "severity": severity,
            "overdue": overdue,
            "period": parse_period(period) if period else None,
            "text": q,
            "sort": sort,
            "descending": order == "desc",
            "zone": api.settings.zone,
            "calendar": api.calendar,
        }

        def page(after: str | None, size: int) -> dict[str, Any]:
            return closed_loop.list_findings(views, limit=size, cursor=after, **filters)

        if chosen == "csv":
            rows = list(export_rows(page, limit or api.api.export_max_rows, start=cursor))
            return respond(request, None, Table("findings", FINDING_COLUMNS, rows), "csv")
        return respond(request, page(cursor, limit or 50), None, "json")

    return await cached(request, caller, api, VIEWS, compute)


@router.get(
    "/findings/{finding_id}",
    summary="One finding with its SLA clocks and full timeline",
    response_model=FindingDetail,
    responses=ERRORS,
)
async def get_finding(
    *,
    request: Request,
    caller: Reader,
    api: ReadApiDep,
    finding_id: Annotated[str, Path(min_length=1, max_length=128)],
    _fresh: Annotated[None, fresh(*VIEWS)],
) -> Response:
    """Return one finding (404 when unknown or not the caller's)."""

    def compute() -> Response:
        from projections import closed_loop

        views = api.views()
        found = closed_loop.get_finding(
            views,
            finding_id,
            scope=caller.scope(views),
            zone=api.settings.zone,
            calendar=api.calendar,
        )
        if found is None:
            raise not_found("finding", finding_id)
        return respond(request, found, None, "json")

    return await cached(request, caller, api, VIEWS, compute)


def summary_rows(indicators: dict[str, Any]) -> list[dict[str, Any]]:
    """One CSV row per closed-loop figure (extra members as JSON in ``details``)."""
    known = set(SUMMARY_COLUMNS)
    rows = []
    for name, figure in indicators.items():
        row = {"indicator": name, **{k: v for k, v in figure.items() if k in known}}
        extra = {k: v for k, v in figure.items() if k not in known}
        row["details"] = extra or None
        rows.append(row)
    return rows


@router.get(
    "/units/{unit_id}/closed-loop",
    summary="A unit's closed-loop figures for a period (the unit and everything under it)",
    response_model=ClosedLoopSummary,
    responses={200: CSV_RESPONSE, **ERRORS},
)
async def closed_loop_summary(
    *,
    request: Request,
    caller: Reader,
    api: ReadApiDep,
    unit_id: Annotated[str, Path(min_length=1, max_length=128)],
    period: Annotated[str, period_query()],
    _fresh: Annotated[None, fresh(*VIEWS)],
    fmt: FormatParam = None,
) -> Response:
    """Found, fed back, on-time acknowledgement and rectification, backlog, reopens, returns."""

    def compute() -> Response:
        from projections import closed_loop

        chosen = parse_period(period)
        views = api.views()
        scope = caller.scope(views)
        caller.check_unit(views, unit_id)
        body = closed_loop.closed_loop_summary(
            views, unit_id, chosen, scope=scope, zone=api.settings.zone, calendar=api.calendar
        )
        body["definitions"] = closed_loop.INDICATORS
        table = Table(
            f"closed-loop-{unit_id}-{chosen.name}",
            SUMMARY_COLUMNS,
            summary_rows(body["indicators"]),
        )
        return respond(request, body, table, wanted_format(request, fmt))

    return await cached(request, caller, api, VIEWS, compute)
