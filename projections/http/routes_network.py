"""Units: the part of the network a caller may see (the dashboard's unit picker)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import Field
from starlette.responses import Response

from projections.http.access import Reader
from projections.http.exports import CSV_RESPONSE, Table, respond, wanted_format
from projections.http.routes_common import (
    ERRORS,
    FormatParam,
    Open,
    ReadApiDep,
    cached,
    fresh,
    id_query,
)

router = APIRouter(prefix="/v1", tags=["units"])

VIEWS = ("network",)

Level = Literal["centre", "institute", "station", "base", "post", "house_meeting_site"]

UNIT_COLUMNS = (
    "site_id",
    "level",
    "parent_id",
    "name",
    "active",
    "station_id",
    "institute_id",
    "centre_id",
    "registered_date",
    "deactivated_date",
    "assessment_count",
    "last_assessed_at",
    "last_score",
    "path",
)


class Unit(Open):
    """A site of the network (centre, institute, station, base, post, house-meeting site)."""

    site_id: str
    level: str
    parent_id: str | None = None
    name: str
    active: bool
    path: str = Field(description="Ids from the root down to this unit, joined by ' > '")


class UnitList(Open):
    """The units a caller may see, as a tree (ordered by path)."""

    items: list[Unit]


class PathStep(Open):
    """One step of a unit's breadcrumb."""

    site_id: str
    level: str
    name: str


class UnitDetail(Unit):
    """One unit with its path from the root."""

    path_sites: list[PathStep]


@router.get(
    "/units",
    summary="The units you may see (a tree, ordered by path)",
    response_model=UnitList,
    responses={200: CSV_RESPONSE, **ERRORS},
)
async def list_units(
    *,
    request: Request,
    caller: Reader,
    api: ReadApiDep,
    _fresh: Annotated[None, fresh(*VIEWS)],
    level: Annotated[Level | None, Query(description="Only units of this level")] = None,
    parent_id: Annotated[str | None, id_query("Only the children of this unit")] = None,
    active: Annotated[bool | None, Query(description="Only (in)active units")] = None,
    fmt: FormatParam = None,
) -> Response:
    """List the units under the caller's unit (auditors: all), filtered."""

    def compute() -> Response:
        from projections.network import list_sites

        views = api.views()
        scope = caller.scope(views)
        items = list_sites(views, scope=scope, level=level, parent_id=parent_id, active=active)
        return respond(
            request,
            {"items": items},
            Table("units", UNIT_COLUMNS, items),
            wanted_format(request, fmt),
        )

    return await cached(request, caller, api, VIEWS, compute)


@router.get(
    "/units/{unit_id}",
    summary="One unit with its path from the root",
    response_model=UnitDetail,
    responses=ERRORS,
)
async def get_unit(
    *,
    request: Request,
    caller: Reader,
    api: ReadApiDep,
    unit_id: Annotated[str, Path(min_length=1, max_length=128)],
    _fresh: Annotated[None, fresh(*VIEWS)],
) -> Response:
    """Return one unit (404 when unknown or outside the caller's units)."""

    def compute() -> Response:
        from projections.network import get_site

        views = api.views()
        caller.check_unit(views, unit_id)
        site = get_site(views, unit_id)
        assert site is not None  # check_unit found it among the sites
        return respond(request, site, None, "json")

    return await cached(request, caller, api, VIEWS, compute)
