"""The read API as supervisors use it: filters, pages, timelines, exports, read-your-writes.

Real HTTP against a running server over the demo district (SQLite and
PostgreSQL), plus a small store of its own for the tests that stop the
projections (freshness and readiness).
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from starlette.requests import Request

from practice_events.config import Settings
from projections.registry import all_projections
from projections.runner import BatchedRunner
from projections.viewstore import ViewStore, default_view_url
from tests.factories_api import centre, institute, live_server
from tests.factories_read_api import (
    CENTRE,
    INSTITUTE,
    OTHER_STATION,
    PERIOD,
    PRODUCER_SOURCE,
    STATION,
    ReadApiEnv,
    read_api_env,
)
from tests.harness import cloud_event

__all__ = ["read_api_env"]

pytestmark = pytest.mark.slow


def problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["code"] == code
    return body


class TestFindings:
    def test_pages_never_repeat_or_lose_a_finding(self, read_api_env: ReadApiEnv) -> None:
        env = read_api_env
        every = env.get("auditor", "/v1/findings?limit=500").json()["items"]
        seen: list[str] = []
        cursor = None
        with env.client("auditor") as http:
            while True:
                params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
                body = http.get("/v1/findings", params=params).json()
                seen += [f["finding_id"] for f in body["items"]]
                cursor = body["next_cursor"]
                if cursor is None:
                    break
        assert seen == [f["finding_id"] for f in every]
        assert len(seen) == len(set(seen)) > 3

    def test_overdue_come_first_when_sorted_by_due_time(self, read_api_env: ReadApiEnv) -> None:
        body = read_api_env.get("auditor", "/v1/findings?sort=due_at&order=asc&limit=500").json()
        due = [f["current_due_at"] for f in body["items"] if f["current_due_at"]]
        assert due == sorted(due)
        overdue = read_api_env.get("auditor", "/v1/findings?overdue=true&limit=500").json()
        assert all(f["overdue"] and f["sla_status"] == "breached" for f in overdue["items"])

    def test_filters_by_stage_severity_text_and_period(self, read_api_env: ReadApiEnv) -> None:
        env = read_api_env
        every = env.get("auditor", "/v1/findings?limit=500").json()["items"]
        sample = every[0]
        stage = env.get("auditor", f"/v1/findings?stage={sample['stage']}&limit=500").json()
        assert stage["items"]
        assert {f["stage"] for f in stage["items"]} == {sample["stage"]}
        severity = env.get("auditor", f"/v1/findings?severity={sample['severity']}").json()
        assert {f["severity"] for f in severity["items"]} == {sample["severity"]}
        text = env.get("auditor", f"/v1/findings?q={sample['finding_id']}").json()
        assert [f["finding_id"] for f in text["items"]] == [sample["finding_id"]]
        in_period = env.get("auditor", f"/v1/findings?period={PERIOD}&limit=500").json()
        assert len(in_period["items"]) == len(every)
        before = env.get("auditor", "/v1/findings?period=2024-12").json()
        assert before["items"] == []

    def test_one_finding_has_its_clocks_and_full_timeline(self, read_api_env: ReadApiEnv) -> None:
        env = read_api_env
        every = env.get("auditor", "/v1/findings?limit=500").json()["items"]
        busiest = max(every, key=lambda f: f["last_event_at"])
        body = env.get("auditor", f"/v1/findings/{busiest['finding_id']}").json()
        assert body["timeline"][0]["type"] == "practice.finding.recorded.v1"
        positions = [e["position"] for e in body["timeline"]]
        assert positions == sorted(positions)
        assert body["stage"] == busiest["stage"]

    @pytest.mark.parametrize(
        ("query", "status", "code"),
        [
            ("period=2025-13", 422, "SCHEMA_VIOLATION"),
            ("period=1999-01", 400, "BAD_REQUEST"),
            ("cursor=not-a-cursor", 400, "BAD_REQUEST"),
            ("limit=0", 422, "SCHEMA_VIOLATION"),
            ("limit=501", 422, "SCHEMA_VIOLATION"),
            ("sort=severity", 422, "SCHEMA_VIOLATION"),
            ("stage=LOST", 422, "SCHEMA_VIOLATION"),
            ("format=xml", 422, "SCHEMA_VIOLATION"),
            ("min_position=-1", 422, "SCHEMA_VIOLATION"),
            ("min_position=999999999", 400, "UNKNOWN_POSITION"),
        ],
    )
    def test_bad_input_is_a_4xx_problem_with_a_stable_code(
        self, read_api_env: ReadApiEnv, query: str, status: int, code: str
    ) -> None:
        problem(read_api_env.get("district", f"/v1/findings?{query}"), status, code)


class TestSummariesAndScorecards:
    def test_closed_loop_summary_counts_the_findings_of_the_period(
        self, read_api_env: ReadApiEnv
    ) -> None:
        env = read_api_env
        body = env.get("district", f"/v1/units/{CENTRE}/closed-loop?period={PERIOD}").json()
        listed = env.get("district", f"/v1/findings?period={PERIOD}&limit=500").json()["items"]
        not_voided = [f for f in listed if f["stage"] != "VOIDED"]
        assert body["indicators"]["found"]["value"] == len(not_voided)
        assert body["definitions"]["found"]["window"]

    def test_scorecard_lists_every_indicator_with_its_sample_status(
        self, read_api_env: ReadApiEnv
    ) -> None:
        body = read_api_env.get("institute", f"/v1/units/{INSTITUTE}/scorecard?period={PERIOD}")
        card = body.json()
        assert card["unit_id"] == INSTITUTE
        assert card["period"] == PERIOD
        assert len(card["indicators"]) >= 10
        for indicator in card["indicators"]:
            assert indicator["status"] in ("ok", "insufficient_data")
            assert {"value", "numerator", "denominator", "min_sample"} <= set(indicator)
            if indicator["status"] == "insufficient_data":
                assert indicator["value"] is None
        assert card["composite"]["status"] in ("ok", "insufficient_data")

    def test_trend_covers_the_periods_asked_for(self, read_api_env: ReadApiEnv) -> None:
        path = f"/v1/units/{STATION}/trend?kind=month&last=3&until={PERIOD}"
        body = read_api_env.get("station", path).json()
        assert [p["period"] for p in body["points"]] == ["2024-11", "2024-12", PERIOD]

    def test_rankings_need_a_unit_or_a_level(self, read_api_env: ReadApiEnv) -> None:
        problem(read_api_env.get("district", f"/v1/rankings?period={PERIOD}"), 400, "BAD_REQUEST")

    def test_scoring_models_are_listed(self, read_api_env: ReadApiEnv) -> None:
        body = read_api_env.get("station", "/v1/scoring-models").json()
        assert body["items"]
        assert body["items"][0]["indicators"]

    def test_officials_dual_checkin_of_a_unit(self, read_api_env: ReadApiEnv) -> None:
        body = read_api_env.get("district", f"/v1/units/{CENTRE}/officials?year=2025").json()
        assert body["summary"]["officials"] == len(body["officials"]) > 0
        assert body["summary"]["dual_checkin_rate"]["status"] in ("ok", "insufficient_data")


class TestExports:
    def test_csv_headers_follow_the_callers_language(self, read_api_env: ReadApiEnv) -> None:
        env = read_api_env
        path = f"/v1/units/{CENTRE}/scorecard?period={PERIOD}&format=csv"
        zh = env.get("district", path, **{"accept-language": "zh-CN,zh;q=0.9,en;q=0.5"})
        en = env.get("district", path, **{"accept-language": "en-US,en;q=0.9"})
        default = env.get("district", path)
        assert zh.content.startswith("\ufeff".encode())
        assert zh.text.lstrip("\ufeff").split("\r\n")[0].startswith("指标代码,指标名称")
        assert en.text.lstrip("\ufeff").split("\r\n")[0].startswith("Code,Title")
        assert default.headers["content-language"] == "zh-CN"
        assert en.headers["content-language"] == "en"
        assert en.headers["content-disposition"].startswith("attachment; filename=")
        rows = list(csv.DictReader(io.StringIO(en.text.lstrip("\ufeff"))))
        card = env.get("district", f"/v1/units/{CENTRE}/scorecard?period={PERIOD}").json()
        assert [r["Code"] for r in rows] == [i["code"] for i in card["indicators"]] + ["composite"]

    def test_accept_text_csv_asks_for_csv(self, read_api_env: ReadApiEnv) -> None:
        response = read_api_env.get("institute", "/v1/needs", accept="text/csv")
        assert response.headers["content-type"].startswith("text/csv")
        json_again = read_api_env.get("institute", "/v1/needs", accept="application/json")
        assert json_again.headers["content-type"] == "application/json"

    @pytest.mark.parametrize(
        "path",
        [
            "/v1/units",
            "/v1/findings",
            f"/v1/units/{CENTRE}/closed-loop?period={PERIOD}",
            f"/v1/units/{CENTRE}/trend?kind=month&last=2&until={PERIOD}",
            f"/v1/rankings?unit={INSTITUTE}&period={PERIOD}",
            f"/v1/units/{CENTRE}/published?period={PERIOD}",
            "/v1/scoring-models",
            "/v1/volunteers",
            f"/v1/units/{CENTRE}/volunteers?period={PERIOD}",
            f"/v1/units/{CENTRE}/officials?year=2025",
            "/v1/needs",
            f"/v1/units/{CENTRE}/needs?period={PERIOD}",
            "/v1/meetings",
            f"/v1/units/{CENTRE}/meetings?period={PERIOD}",
        ],
    )
    def test_every_list_and_summary_exports_as_csv(
        self, read_api_env: ReadApiEnv, path: str
    ) -> None:
        separator = "&" if "?" in path else "?"
        response = read_api_env.get("district", f"{path}{separator}format=csv")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv; charset=utf-8")
        sheet = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
        assert sheet[0]
        assert all(sheet[0])

    def test_cells_that_look_like_formulas_are_defused(self) -> None:
        from projections.http.exports import cell

        assert cell('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
        assert cell("-1+2") == "'-1+2"
        assert cell(-1.5) == "-1.5"
        assert cell(None) == ""
        assert cell(True) == "true"
        assert cell({"a": [1]}) == '{"a":[1]}'


def register(subject: str, parent: str, source: str = PRODUCER_SOURCE) -> dict[str, object]:
    data = {"level": "house_meeting_site", "parent_id": parent, "name": f"{subject} 屋场"}
    return cloud_event("practice.site.registered.v1", subject, data, source=source)


class TestReadYourWrites:
    def test_min_position_answers_once_the_views_have_the_event(
        self, read_api_env: ReadApiEnv
    ) -> None:
        env = read_api_env
        subject = f"RYW-{uuid.uuid4().hex[:8]}"
        answer = env.post_events("producer", [register(subject, STATION)])
        position = answer["last_position"]
        seen = env.get("station", f"/v1/units/{subject}?min_position={position}")
        assert seen.status_code == 200, seen.text
        assert seen.json()["parent_id"] == STATION
        by_header = env.get("district", f"/v1/units/{subject}", **{"x-min-position": str(position)})
        assert by_header.status_code == 200
        hidden = env.get("other_station", f"/v1/units/{subject}?min_position={position}")
        assert OTHER_STATION not in env.subtree(STATION)
        problem(hidden, 404, "NOT_FOUND")

    def test_a_repeated_question_sees_a_write_once_its_views_have_it(
        self, read_api_env: ReadApiEnv
    ) -> None:
        env = read_api_env
        before = {u["site_id"] for u in env.get("station", "/v1/units").json()["items"]}
        again = {u["site_id"] for u in env.get("station", "/v1/units").json()["items"]}
        assert again == before
        subject = f"RYW-{uuid.uuid4().hex[:8]}"
        position = env.post_events("producer", [register(subject, STATION)])["last_position"]
        after = env.get("station", f"/v1/units?min_position={position}").json()["items"]
        assert {u["site_id"] for u in after} == before | {subject}


@pytest.fixture
def small_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ReadApiEnv, BatchedRunner]]:
    """A tiny store served with its projections stopped (the test runs them by hand)."""
    monkeypatch.setenv("PRACTICE_EVENTS_API_WAIT_SECONDS", "0.3")
    monkeypatch.setenv("PRACTICE_EVENTS_API_READY_MAX_LAG_EVENTS", "0")
    url = f"sqlite:///{tmp_path / 'small.db'}"
    settings = Settings(store=url)
    with live_server(settings, plugins=("projections",)) as server:
        runtime = server.runtime_or_fail()
        views = ViewStore(default_view_url(url))
        runner = BatchedRunner(runtime.store, views, all_projections(settings))
        env = ReadApiEnv(url, server, runner, views)
        env.tokens = {
            "producer": runtime.tokens.issue("producer", sources=["urn:test:*"]).secret,
            "auditor": runtime.tokens.issue("auditor").secret,
        }
        try:
            yield env, runner
        finally:
            views.close()


class TestFreshnessAndReadiness:
    def test_a_lagging_view_answers_503_with_its_position(
        self, small_server: tuple[ReadApiEnv, BatchedRunner]
    ) -> None:
        env, runner = small_server
        runner.catch_up()
        position = env.post_events("producer", [centre(source="urn:test:a")])["last_position"]
        lagging = env.get("auditor", f"/v1/units/C-1?min_position={position}")
        body = problem(lagging, 503, "NOT_CAUGHT_UP")
        assert lagging.headers["retry-after"]
        assert body["min_position"] == position
        assert body["positions"] == {"network": position - 1}
        runner.catch_up()
        assert env.get("auditor", f"/v1/units/C-1?min_position={position}").status_code == 200

    def test_readyz_reports_each_projection_and_fails_while_one_lags(
        self, small_server: tuple[ReadApiEnv, BatchedRunner]
    ) -> None:
        env, runner = small_server
        runner.catch_up()
        assert env.get(None, "/readyz").status_code == 200
        env.post_events("producer", [centre(source="urn:test:a")])
        body = problem(env.get(None, "/readyz"), 503, "NOT_READY")
        checks = body["checks"]
        assert isinstance(checks, dict)
        assert checks["projections"]["ok"] is False
        assert checks["projections"]["projections"]["closed_loop"]["events_behind"] == 1
        runner.catch_up()
        ready = env.get(None, "/readyz")
        assert ready.status_code == 200
        assert set(ready.json()["checks"]["projections"]["projections"]) >= {
            "network",
            "closed_loop",
            "scorecards",
        }

    def test_an_in_process_runner_is_waited_for_without_polling(
        self, small_server: tuple[ReadApiEnv, BatchedRunner]
    ) -> None:
        env, runner = small_server
        env.server.runtime_or_fail().services["projections.runner"] = runner
        runner.start()
        try:
            answer = env.post_events(
                "producer", [centre(source="urn:test:a"), institute("I-1", source="urn:test:a")]
            )
            path = f"/v1/units/I-1?min_position={answer['last_position']}"
            assert env.get("auditor", path).json()["parent_id"] == "C-1"
        finally:
            runner.stop()

    def test_views_not_built_yet_answer_503_not_500(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'empty.db'}"
        with live_server(Settings(store=url), plugins=("projections",)) as server:
            secret = server.runtime_or_fail().tokens.issue("auditor").secret
            response = httpx.get(
                f"{server.url}/v1/findings", headers={"Authorization": f"Bearer {secret}"}
            )
            problem(response, 503, "NOT_READY")


class TestMetrics:
    def test_exposes_requests_ingestion_and_projections(self, read_api_env: ReadApiEnv) -> None:
        env = read_api_env
        env.get("auditor", "/v1/findings?limit=1")
        text = env.get(None, "/metrics").text
        assert (
            'practice_events_http_requests_total{method="GET",route="/v1/findings",status="200"}'
            in text
        )
        assert "practice_events_http_request_duration_seconds_bucket{" in text
        assert 'practice_events_projection_position{projection="closed_loop"}' in text
        assert 'practice_events_projection_lag_events{projection="scorecards"}' in text
        assert "practice_events_ingest_http_inputs_total" in text
        assert "practice_events_log_head_position" in text
        for line in text.splitlines():
            assert line.startswith("#") or len(line.rsplit(" ", 1)) == 2

    def test_counts_answers_reused_while_the_views_stand_still(
        self, read_api_env: ReadApiEnv
    ) -> None:
        env = read_api_env

        def reused() -> int:
            for line in env.get(None, "/metrics").text.splitlines():
                if line.startswith("practice_events_api_answers_reused_total "):
                    return int(line.split()[1])
            raise AssertionError("no reuse counter")

        path = f"/v1/units/{INSTITUTE}/closed-loop?period={PERIOD}"
        first = env.get("institute", path).json()
        before = reused()
        second = env.get("institute", path).json()
        assert second == first
        assert reused() > before

    def test_never_names_a_unit(self, read_api_env: ReadApiEnv) -> None:
        env = read_api_env
        env.get("auditor", f"/v1/findings/{orjson.dumps('x').decode()}")
        text = env.get(None, "/metrics").text
        assert "WLY" not in text


def request_with(**headers: str) -> Request:
    raw = [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": raw})


class TestNegotiation:
    @pytest.mark.parametrize(
        ("header", "expected"),
        [
            (None, "zh-CN"),
            ("zh-CN", "zh-CN"),
            ("zh-TW,zh;q=0.9", "zh-CN"),
            ("en", "en"),
            ("en-GB,en;q=0.8,zh;q=0.5", "en"),
            ("zh;q=0.4,en;q=0.6", "en"),
            ("fr-FR", "zh-CN"),
            ("en;q=bogus", "zh-CN"),
        ],
    )
    def test_picks_the_header_language(self, header: str | None, expected: str) -> None:
        from projections.http.exports import language

        request = request_with(**({"accept_language": header} if header else {}))
        assert language(request) == expected

    @pytest.mark.parametrize(
        ("accept", "explicit", "expected"),
        [
            ("text/csv", None, "csv"),
            ("application/json", None, "json"),
            ("text/csv;q=0.5, application/json", None, "json"),
            ("application/json;q=0.5, text/csv", None, "csv"),
            ("*/*", None, "json"),
            ("text/csv", "json", "json"),
            ("application/json", "csv", "csv"),
        ],
    )
    def test_picks_csv_or_json(self, accept: str, explicit: str | None, expected: str) -> None:
        from projections.http.exports import wanted_format

        request = request_with(accept=accept)
        assert wanted_format(request, explicit) == expected
