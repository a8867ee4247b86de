"""Scorecards: a unit's indicators and composite, its trend, peer rankings, bulletins, models."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import Field
from starlette.responses import Response

from projections.http.access import Reader, not_found, redact_ranking
from projections.http.exports import CSV_RESPONSE, Table, respond, wanted_format
from projections.http.routes_common import (
    ERRORS,
    Figure,
    FormatParam,
    Open,
    ReadApiDep,
    cached,
    fresh,
    id_query,
    parse_period,
    period_query,
)
from projections.http.routes_network import Level

router = APIRouter(prefix="/v1", tags=["scorecards"])

VIEWS = ("network", "closed_loop", "scorecards", "ledger")
"""Every view a scorecard reads (``projections.scorecards.SOURCES``)."""

Kind = Literal["month", "quarter", "half_year", "year"]

INDICATOR_COLUMNS = (
    "code",
    "title",
    "area",
    "status",
    "value",
    "numerator",
    "denominator",
    "min_sample",
    "weight",
    "effective_weight",
    "normalised",
    "score",
    "in_model",
    "window",
)

RANKING_COLUMNS = (
    "rank",
    "unit_id",
    "name",
    "composite",
    "status",
    "covered_weight",
    "model_id",
    "model_version",
    "visible",
)

DOCUMENT_COLUMNS = (
    "kind",
    "document_ref",
    "model_id",
    "model_version",
    "as_of_position",
    "published_at",
    "event_id",
    "position",
    "data",
)

MODEL_COLUMNS = ("model_id", "version", "title", "effective_from", "area_weights", "indicators")


class Indicator(Figure):
    """One indicator of a scorecard: its figure, definition, weight and points."""

    code: str
    area: str | None = None
    weight: float
    effective_weight: float
    normalised: float | None = None
    score: float | None = None
    in_model: bool


class Composite(Open):
    """The composite score under the scoring model (None with insufficient data)."""

    status: str
    value: float | None = None
    bonus_total: float | None = None
    deduction_total: float | None = None
    covered_weight: float | None = None


class Rank(Open):
    """The unit's rank among its peers (same level and parent, operating in the period)."""

    position: int | None = Field(description="None when the composite has insufficient data")
    of: int = Field(description="Peers with a composite")
    peers: int = Field(description="Peers operating in the period")


class Scorecard(Open):
    """A unit's scorecard for a period."""

    unit_id: str
    name: str | None = None
    level: str | None = None
    period: str
    kind: str
    first_date: str
    end_date: str
    model: dict[str, Any] | None
    composite: Composite
    indicators: list[Indicator]
    rank: Rank


class TrendPoint(Open):
    """The composite and each indicator's value for one period."""

    period: str
    composite: float | None = None
    status: str
    model_version: int | None = None
    indicators: dict[str, dict[str, Any]]


class Trend(Open):
    """A unit's composite and indicators over the last periods, oldest first."""

    unit_id: str
    kind: str
    points: list[TrendPoint]


class RankingRow(Open):
    """A peer unit's place; details are withheld (None) for units you may not see."""

    unit_id: str
    name: str | None = None
    rank: int | None = None
    composite: float | None = None
    status: str | None = None
    visible: bool = Field(description="False: a peer outside your units (details withheld)")


class Rankings(Open):
    """Peer units of one level under one parent, best composite first."""

    level: str
    parent_id: str | None
    period: str
    ranked: int
    units: list[RankingRow]


class Published(Open):
    """Scorecards and bulletins published for a unit and period, frozen as sent."""

    unit_id: str
    period: str
    scorecards: list[dict[str, Any]]
    documents: list[dict[str, Any]]


class ScoringModelsOut(Open):
    """Every version of every scoring model, as published."""

    items: list[dict[str, Any]]


ModelId = Annotated[str | None, id_query("Scoring model id (default: the one in effect)")]
ModelVersion = Annotated[int | None, Query(ge=1, le=1_000_000, description="Scoring model version")]


def indicator_rows(card: dict[str, Any]) -> list[dict[str, Any]]:
    """CSV rows of a scorecard: one per indicator, then the composite."""
    rows = []
    for item in card["indicators"]:
        definition = item.get("definition") or {}
        rows.append({**item, "title": definition.get("title")})
    composite = card["composite"]
    rows.append(
        {
            "code": "composite",
            "title": "综合得分 / composite",
            "status": composite.get("status"),
            "value": composite.get("value"),
            "weight": composite.get("covered_weight"),
        }
    )
    return rows


@router.get(
    "/units/{unit_id}/scorecard",
    summary="A unit's scorecard for a period: every indicator, the composite, its rank",
    response_model=Scorecard,
    responses={200: CSV_RESPONSE, **ERRORS},
)
async def get_scorecard(
    *,
    request: Request,
    caller: Reader,
    api: ReadApiDep,
    unit_id: Annotated[str, Path(min_length=1, max_length=128)],
    period: Annotated[str, period_query()],
    _fresh: Annotated[None, fresh(*VIEWS)],
    model_id: ModelId = None,
    model_version: ModelVersion = None,
    fmt: FormatParam = None,
) -> Response:
    """Indicators with value, numerator, denominator and sample status; composite and rank."""

    def compute() -> Response:
        from projections import scorecards

        chosen = parse_period(period)
        views = api.views()
        caller.check_unit(views, unit_id)
        card = scorecards.scorecard(
            views,
            unit_id,
            chosen,
            model_version,
            model_id=model_id,
            settings=api.scorecard_settings,
        )
        table = Table(f"scorecard-{unit_id}-{chosen.name}", INDICATOR_COLUMNS, indicator_rows(card))
        return respond(request, card, table, wanted_format(request, fmt))

    return await cached(request, caller, api, VIEWS, compute)


@router.get(
    "/units/{unit_id}/trend",
    summary="A unit's composite and indicators over the last periods (oldest first)",
    response_model=Trend,
    responses={200: CSV_RESPONSE, **ERRORS},
)
async def get_trend(
    *,
    request: Request,
    caller: Reader,
    api: ReadApiDep,
    unit_id: Annotated[str, Path(min_length=1, max_length=128)],
    _fresh: Annotated[None, fresh(*VIEWS)],
    kind: Annotated[Kind, Query(description="Kind of period")] = "month",
    last: Annotated[int, Query(ge=1, le=60, description="How many periods")] = 12,
    until: Annotated[str | None, period_query("The last period (default: the current one)")] = None,
    model_id: ModelId = None,
    model_version: ModelVersion = None,
    fmt: FormatParam = None,
) -> Response:
    """The trend the dashboard charts (default: the last 12 months)."""

    def compute() -> Response:
        from projections import scorecards

        final = parse_period(until) if until else None
        views = api.views()
        caller.check_unit(views, unit_id)
        body = scorecards.trend(
            views,
            unit_id,
            kind,
            last,
            until=final,
            model_version=model_version,
            model_id=model_id,
            settings=api.scorecard_settings,
        )
        codes: list[str] = []
        rows = []
        for point in body["points"]:
            row = {k: v for k, v in point.items() if k != "indicators"}
            for code, figure in point["indicators"].items():
                if code not in codes:
                    codes.append(code)
                row[code] = figure.get("value")
            rows.append(row)
        columns = ("period", "composite", "status", "model_version", *codes)
        table = Table(f"trend-{unit_id}-{kind}", columns, rows)
        return respond(request, body, table, wanted_format(request, fmt))

    return await cached(request, caller, api, VIEWS, compute)


@router.get(
    "/rankings",
    summary="Peer units ranked by composite (peers outside your units: name and rank only)",
    response_model=Rankings,
    responses={200: CSV_RESPONSE, **ERRORS},
)
async def get_rankings(
    *,
    request: Request,
    caller: Reader,
    api: ReadApiDep,
    period: Annotated[str, period_query()],
    _fresh: Annotated[None, fresh(*VIEWS)],
    unit: Annotated[str | None, id_query("Rank this unit among its peers")] = None,
    level: Annotated[Level | None, Query(description="Or: the level of the peers")] = None,
    parent_id: Annotated[str | None, id_query("…and their parent (none for centres)")] = None,
    model_id: ModelId = None,
    model_version: ModelVersion = None,
    fmt: FormatParam = None,
) -> Response:
    """Rank the units of one level under one parent (``unit``: that unit and its peers)."""

    def compute() -> Response:
        from projections import scorecards
        from projections.network import get_site

        chosen = parse_period(period)
        views = api.views()
        scope = caller.scope(views)
        peer_level, peer_parent = level, parent_id
        if unit is not None:
            caller.check_unit(views, unit)
            site = get_site(views, unit)
            assert site is not None  # check_unit found it among the sites
            peer_level, peer_parent = site["level"], site["parent_id"]
        elif peer_level is None:
            from projections.rows import bad_request

            msg = "give unit (rank it among its peers) or level (and parent_id)"
            raise bad_request(msg)
        else:
            _check_peers(views, caller, scope, peer_level, peer_parent)
        assert peer_level is not None
        body = scorecards.rankings(
            views,
            peer_level,
            peer_parent,
            chosen,
            model_version=model_version,
            model_id=model_id,
            settings=api.scorecard_settings,
        )
        body["units"] = redact_ranking(body["units"], scope)
        table = Table(f"rankings-{peer_level}-{chosen.name}", RANKING_COLUMNS, body["units"])
        return respond(request, body, table, wanted_format(request, fmt))

    return await cached(request, caller, api, VIEWS, compute)


def _check_peers(
    views: Any, caller: Any, scope: frozenset[str] | None, level: str, parent_id: str | None
) -> None:
    """404 unless the caller may see a ranking of ``level`` units under ``parent_id``.

    Allowed: every unit (auditors), a parent within the caller's units, or
    peers of the caller's own unit (same level and parent).
    """
    from projections.network import get_site

    label = f"{level} units under {parent_id}" if parent_id else f"{level} units"
    if parent_id is not None:
        known = get_site(views, parent_id)
        if known is None:
            raise not_found("ranking of", label)
    if scope is None or (parent_id is not None and parent_id in scope):
        return
    own = get_site(views, caller.unit) if caller.unit else None
    if own is None or own["level"] != level or own["parent_id"] != parent_id:
        raise not_found("ranking of", label)


@router.get(
    "/units/{unit_id}/published",
    summary="Scorecards and bulletins published for a unit and period, frozen as sent",
    response_model=Published,
    responses={200: CSV_RESPONSE, **ERRORS},
)
async def get_published(
    *,
    request: Request,
    caller: Reader,
    api: ReadApiDep,
    unit_id: Annotated[str, Path(min_length=1, max_length=128)],
    period: Annotated[str, period_query()],
    _fresh: Annotated[None, fresh(*VIEWS)],
    fmt: FormatParam = None,
) -> Response:
    """What the bulletin said, with the log position it was computed at."""

    def compute() -> Response:
        from projections import scorecards

        chosen = parse_period(period)
        views = api.views()
        caller.check_unit(views, unit_id)
        body = scorecards.published(views, unit_id, chosen)
        rows = [{"kind": "scorecard", **row} for row in body["scorecards"]] + body["documents"]
        table = Table(f"published-{unit_id}-{chosen.name}", DOCUMENT_COLUMNS, rows)
        return respond(request, body, table, wanted_format(request, fmt))

    return await cached(request, caller, api, VIEWS, compute)


@router.get(
    "/scoring-models",
    summary="Every version of every scoring model",
    response_model=ScoringModelsOut,
    responses={200: CSV_RESPONSE, **ERRORS},
)
async def list_scoring_models(
    *,
    request: Request,
    caller: Reader,
    api: ReadApiDep,
    _fresh: Annotated[None, fresh("scorecards")],
    fmt: FormatParam = None,
) -> Response:
    """The versioned formulas and weights scorecards are computed with."""

    def compute() -> Response:
        from projections import scorecards

        items = scorecards.scoring_models(api.views())
        table = Table("scoring-models", MODEL_COLUMNS, items)
        return respond(request, {"items": items}, table, wanted_format(request, fmt))

    return await cached(request, caller, api, ("scorecards",), compute)
