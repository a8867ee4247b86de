"""Who sees what: every role × every read endpoint × units inside and outside its reach.

Real HTTP against a running server, on SQLite and on PostgreSQL, over the
demo district (two institutes). The rules under test (projections/http/access.py):
a supervisor sees its unit and what hangs under it, auditors see all,
producers see no unit data; a unit or record outside a caller's reach is
answered exactly like one that does not exist (404, same detail); lists,
summaries and exports only ever contain the caller's units.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import pytest

from tests.factories_read_api import (
    CENTRE,
    INSTITUTE,
    OTHER_INSTITUTE,
    OTHER_STATION,
    PERIOD,
    ROLES,
    STATION,
    ReadApiEnv,
    read_api_env,
)

__all__ = ["read_api_env"]

pytestmark = pytest.mark.slow

READERS = ("district", "institute", "station", "other_station", "auditor")

UNIT_ENDPOINTS = {
    "unit": "/v1/units/{unit}",
    "closed_loop": "/v1/units/{unit}/closed-loop?period=" + PERIOD,
    "scorecard": "/v1/units/{unit}/scorecard?period=" + PERIOD,
    "trend": "/v1/units/{unit}/trend?kind=month&last=2&until=" + PERIOD,
    "published": "/v1/units/{unit}/published?period=" + PERIOD,
    "volunteers_summary": "/v1/units/{unit}/volunteers?period=" + PERIOD,
    "officials": "/v1/units/{unit}/officials?year=2025",
    "needs_summary": "/v1/units/{unit}/needs?period=" + PERIOD,
    "meetings_summary": "/v1/units/{unit}/meetings?period=" + PERIOD,
    "findings_of_unit": "/v1/findings?unit={unit}",
    "volunteers_of_unit": "/v1/volunteers?unit={unit}",
    "needs_of_unit": "/v1/needs?unit={unit}",
    "meetings_of_unit": "/v1/meetings?unit={unit}",
    "rankings_of_unit": "/v1/rankings?period=" + PERIOD + "&unit={unit}",
}
"""Endpoints that name a unit: 200 within reach, 404 otherwise (and for unknown units)."""

UNITS = (CENTRE, INSTITUTE, STATION, "WLY-WC-001", OTHER_INSTITUTE, OTHER_STATION, "NO-SUCH-UNIT")

LISTS = {
    "/v1/units": ("site_id", "site_id"),
    "/v1/findings": ("finding_id", "site_id"),
    "/v1/needs": ("need_id", "site_id"),
    "/v1/meetings": ("meeting_id", "site_id"),
    "/v1/volunteers": ("volunteer_no", "home_site_id"),
}
"""List endpoints: the id field (first CSV column) and the field naming each item's site."""

RECORDS = {
    "findings": ("/v1/findings", "finding_id", ("unit_id", "site_id")),
    "needs": ("/v1/needs", "need_id", ("site_id",)),
    "meetings": ("/v1/meetings", "meeting_id", ("site_id",)),
    "volunteers": ("/v1/volunteers", "volunteer_no", ("home_site_id",)),
}
"""Record kinds: the auditor's list, the id field, the fields that put a record in reach."""


def expected_status(env: ReadApiEnv, role: str, unit: str) -> int:
    """200 within the role's reach, 404 outside it or for an unknown unit, 403 for producers."""
    if role == "producer":
        return 403
    if unit not in env.sites:
        return 404
    visible = env.visible(role)
    return 200 if visible is None or unit in visible else 404


class TestUnitEndpoints:
    @pytest.mark.parametrize("endpoint", sorted(UNIT_ENDPOINTS))
    @pytest.mark.parametrize("unit", UNITS)
    @pytest.mark.parametrize("role", ROLES)
    def test_answers_within_reach_and_404_beyond(
        self, read_api_env: ReadApiEnv, role: str, unit: str, endpoint: str
    ) -> None:
        env = read_api_env
        response = env.get(role, UNIT_ENDPOINTS[endpoint].format(unit=unit))
        expected = expected_status(env, role, unit)
        assert response.status_code == expected, response.text
        if expected == 404:
            body = response.json()
            assert body["code"] == "NOT_FOUND"
            assert body["detail"] == f"no unit {unit!r} among those you may see"
        if expected == 403:
            assert response.json()["code"] == "FORBIDDEN"

    @pytest.mark.parametrize("role", ["institute", "station"])
    def test_an_out_of_reach_unit_looks_exactly_like_a_missing_one(
        self, read_api_env: ReadApiEnv, role: str
    ) -> None:
        env = read_api_env
        outside = env.get(role, f"/v1/units/{OTHER_STATION}/scorecard?period={PERIOD}").json()
        missing = env.get(role, f"/v1/units/NO-SUCH/scorecard?period={PERIOD}").json()
        assert outside["detail"].replace(OTHER_STATION, "X") == missing["detail"].replace(
            "NO-SUCH", "X"
        )
        assert {k for k in outside if k not in ("detail", "instance")} == {
            k for k in missing if k not in ("detail", "instance")
        }


def items(env: ReadApiEnv, role: str, path: str) -> list[dict[str, Any]]:
    """Every item of a list endpoint, following the cursor page after page."""
    found: list[dict[str, Any]] = []
    cursor = None
    with env.client(role) as http:
        while True:
            params = {"cursor": cursor} if cursor else {}
            if path != "/v1/units":
                params["limit"] = "500"
            response = http.get(path, params=params)
            assert response.status_code == 200, response.text
            body = response.json()
            found.extend(body["items"])
            cursor = body.get("next_cursor")
            if not cursor:
                return found


class TestLists:
    @pytest.mark.parametrize("path", sorted(LISTS))
    @pytest.mark.parametrize("role", READERS)
    def test_hold_exactly_the_callers_units(
        self, read_api_env: ReadApiEnv, role: str, path: str
    ) -> None:
        env = read_api_env
        _, field = LISTS[path]
        visible = env.visible(role)
        everything = items(env, "auditor", path)
        mine = items(env, role, path)
        if "findings" in path:
            expected = [
                r
                for r in everything
                if visible is None or r["unit_id"] in visible or r["site_id"] in visible
            ]
        else:
            expected = [r for r in everything if visible is None or r[field] in visible]
        assert [r[field] for r in mine] == [r[field] for r in expected]
        if role in ("district", "institute", "auditor"):
            assert mine, "the demo gives these roles something to see"

    @pytest.mark.parametrize("path", sorted(LISTS))
    def test_are_forbidden_to_producers(self, read_api_env: ReadApiEnv, path: str) -> None:
        assert read_api_env.get("producer", path).status_code == 403

    @pytest.mark.parametrize("path", sorted(LISTS))
    def test_need_a_token(self, read_api_env: ReadApiEnv, path: str) -> None:
        response = read_api_env.get(None, path)
        assert response.status_code == 401
        assert response.json()["code"] == "UNAUTHENTICATED"

    @pytest.mark.parametrize("path", sorted(LISTS))
    @pytest.mark.parametrize("role", ["institute", "station"])
    def test_export_the_same_rows_as_csv(
        self, read_api_env: ReadApiEnv, role: str, path: str
    ) -> None:
        env = read_api_env
        id_field, _ = LISTS[path]
        json_ids = [str(r[id_field]) for r in items(env, role, path)]
        response = env.get(role, path + "?format=csv", **{"accept-language": "en"})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        sheet = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
        assert [row[0] for row in sheet[1:]] == json_ids


def sample_records(env: ReadApiEnv, kind: str) -> Iterator[tuple[str, set[str]]]:
    """A few records of ``kind`` in each institute: (id, the units that put it in reach)."""
    path, id_field, unit_fields = RECORDS[kind]
    per_institute: dict[str | None, int] = {}
    for row in items(env, "auditor", path):
        units = {row[f] for f in unit_fields if row.get(f)}
        institutes = {env.sites[u]["institute_id"] for u in units if u in env.sites}
        key = min(institutes) if institutes else None
        if per_institute.get(key, 0) < 3:
            per_institute[key] = per_institute.get(key, 0) + 1
            yield str(row[id_field]), units


RECORD_PATHS = {
    "findings": "/v1/findings/{id}",
    "needs": "/v1/needs/{id}",
    "meetings": "/v1/meetings/{id}",
    "volunteers": "/v1/volunteers/{id}",
}


class TestRecords:
    @pytest.mark.parametrize("kind", sorted(RECORD_PATHS))
    @pytest.mark.parametrize("role", ROLES)
    def test_one_record_is_404_unless_within_reach(
        self, read_api_env: ReadApiEnv, role: str, kind: str
    ) -> None:
        env = read_api_env
        samples = list(sample_records(env, kind))
        institutes = {
            env.sites[u]["institute_id"] for _, units in samples for u in units if u in env.sites
        }
        assert {INSTITUTE, OTHER_INSTITUTE} <= institutes, f"the demo has {kind} in both"
        visible = env.visible(role)
        for ident, units in [*samples, ("NO-SUCH-RECORD", set())]:
            response = env.get(role, RECORD_PATHS[kind].format(id=ident))
            if role == "producer":
                expected = 403
            elif ident == "NO-SUCH-RECORD":
                expected = 404
            else:
                expected = 200 if visible is None or units & visible else 404
            assert response.status_code == expected, (ident, units, response.text)
            if expected == 404:
                assert response.json()["detail"].endswith(f"{ident!r} among those you may see")

    @pytest.mark.parametrize("role", READERS)
    def test_a_team_is_404_unless_within_reach(self, read_api_env: ReadApiEnv, role: str) -> None:
        env = read_api_env
        ledger = env.get("auditor", "/v1/volunteers?limit=200&order=approved_hours").json()
        teams: dict[str, str] = {}
        for volunteer in ledger["items"][:40]:
            detail = env.get("auditor", f"/v1/volunteers/{volunteer['volunteer_no']}").json()
            for team in detail["teams"]:
                if team.get("site_id"):
                    teams[team["team_id"]] = team["site_id"]
        assert teams
        visible = env.visible(role)
        for team_id, site in teams.items():
            response = env.get(role, f"/v1/teams/{team_id}")
            expected = 200 if visible is None or site in visible else 404
            assert response.status_code == expected, (team_id, site)


class TestRankings:
    @pytest.mark.parametrize("role", ["station", "other_station", "institute"])
    def test_show_peers_names_and_ranks_but_not_their_figures(
        self, read_api_env: ReadApiEnv, role: str
    ) -> None:
        env = read_api_env
        unit = {"station": STATION, "other_station": OTHER_STATION, "institute": INSTITUTE}[role]
        body = env.get(role, f"/v1/rankings?unit={unit}&period={PERIOD}").json()
        visible = env.visible(role)
        assert visible is not None
        assert len(body["units"]) > 1
        for row in body["units"]:
            assert row["name"]
            if row["unit_id"] in visible:
                assert row["visible"] is True
                assert row["status"] is not None
            else:
                assert row["visible"] is False
                assert row["composite"] is None
                assert row["status"] is None

    def test_of_stations_under_an_institute_are_open_to_its_supervisor(
        self, read_api_env: ReadApiEnv
    ) -> None:
        env = read_api_env
        path = f"/v1/rankings?level=station&parent_id={INSTITUTE}&period={PERIOD}"
        body = env.get("institute", path).json()
        assert body["units"]
        assert all(row["visible"] for row in body["units"])

    def test_of_another_institutes_stations_are_404(self, read_api_env: ReadApiEnv) -> None:
        path = f"/v1/rankings?level=station&parent_id={OTHER_INSTITUTE}&period={PERIOD}"
        response = read_api_env.get("station", path)
        assert response.status_code == 404

    def test_of_stations_as_csv_keep_the_figures_withheld(self, read_api_env: ReadApiEnv) -> None:
        env = read_api_env
        path = f"/v1/rankings?unit={STATION}&period={PERIOD}&format=csv"
        text = env.get("station", path, **{"accept-language": "en"}).content.decode("utf-8-sig")
        rows = list(csv.DictReader(io.StringIO(text)))
        hidden = [r for r in rows if r["Unit"] != STATION]
        assert hidden
        assert all(r["Composite"] == "" and r["Details visible"] == "false" for r in hidden)


class TestRejections:
    def test_producers_read_only_their_own_sources(self, read_api_env: ReadApiEnv) -> None:
        env = read_api_env
        bad = {
            "specversion": "1.0",
            "id": "refused-1",
            "type": "practice.site.registered.v1",
            "subject": "X-1",
            "time": "2025-01-05T09:00:00+08:00",
            "data": {"level": "castle"},
        }
        env.post_events("producer", [{**bad, "source": "urn:test:producer-a"}])
        env.post_events("other_producer", [{**bad, "source": "urn:test:producer-b"}])
        own = env.get("producer", "/v1/rejections").json()["items"]
        assert own
        assert {r["source"] for r in own} == {"urn:test:producer-a"}
        why = env.get("producer", "/v1/rejections/why?event_id=refused-1").json()
        assert why["refusals"]
        assert why["refusals"][0]["code"] == "SCHEMA_VIOLATION"
        other = env.get("producer", "/v1/rejections?source=urn:test:producer-b")
        assert other.status_code == 403
        assert other.json()["code"] == "SOURCE_NOT_ALLOWED"
        summary = env.get("producer", "/v1/rejections/summary").json()
        assert {p["source"] for p in summary["producers"]} == {"urn:test:producer-a"}

    @pytest.mark.parametrize(
        ("role", "status"),
        [("district", 200), ("auditor", 200), ("institute", 403), ("station", 403)],
    )
    def test_supervisors_below_the_district_may_not_read_them(
        self, read_api_env: ReadApiEnv, role: str, status: int
    ) -> None:
        assert read_api_env.get(role, "/v1/rejections").status_code == status
