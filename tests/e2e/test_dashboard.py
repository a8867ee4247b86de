"""The dashboard in a real headless Chromium against a running server with demo data.

One ``practice-events serve --demo`` process (a small demo district, 60 days)
serves the whole module; a producer posts two findings of its own (one
overdue for weeks, one fresh). Every number the page shows is compared with
what the read API answers for the same unit and period: the page carries the
API's raw values in ``data-value`` attributes beside the text people read.
Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest

from tests.e2e.browser import (
    Server,
    browser_errors,
    chromium,
    loads,
    screenshot,
    start_server,
    wait_for,
    wait_loaded,
)
from tests.harness import cloud_event

ZONE = ZoneInfo("Asia/Shanghai")
DEMO_ENV = {"PRACTICE_EVENTS_DEMO_EVENTS": "4000", "PRACTICE_EVENTS_DEMO_DAYS": "60"}
SOURCE = "urn:test:dashboard"


def this_month() -> str:
    return datetime.now(ZONE).strftime("%Y-%m")


def post(server: Server, token: str, event: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(
        server.url + "/v1/events",
        content=orjson.dumps(event),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/cloudevents+json",
        },
        timeout=30,
    )
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def record_finding(
    server: Server, token: str, station: str, recorded: datetime, *, feed_back: bool
) -> tuple[str, int]:
    """Post a finding at ``station`` (fed back an hour later if asked); return id and position."""
    finding = f"F-TEST-{uuid.uuid4().hex[:8]}"
    answer = post(
        server,
        token,
        cloud_event(
            "practice.finding.recorded.v1",
            finding,
            {
                "source": "supervision",
                "site_id": station,
                "severity": "normal",
                "category": "signage_missing",
                "description": "测试：阵地标识标牌缺失",
                "responsible_unit_id": station,
            },
            time=recorded,
            source=SOURCE,
        ),
    )
    if feed_back:
        answer = post(
            server,
            token,
            cloud_event(
                "practice.finding.fed_back.v1",
                finding,
                {"channel": "platform", "note": "请限期整改"},
                time=recorded + timedelta(hours=1),
                source=SOURCE,
            ),
        )
    return finding, int(answer["position"])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("dashboard"), env=DEMO_ENV)
    try:
        yield running
    finally:
        assert running.stop() == 0, running.log_text()[-3000:]


@pytest.fixture(scope="module")
def units(server: Server) -> dict[str, list[dict[str, Any]]]:
    by_level: dict[str, list[dict[str, Any]]] = {}
    for unit in server.json("/v1/units")["items"]:
        by_level.setdefault(unit["level"], []).append(unit)
    return by_level


@pytest.fixture(scope="module")
def findings(server: Server, units: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    """One finding overdue for weeks and one recorded now, both at the first station."""
    created = server.cli("tokens", "create", "--role", "producer", "--source", SOURCE, "--json")
    assert created.returncode == 0, created.stderr
    token = orjson.loads(created.stdout)["token"]
    station = units["station"][0]["site_id"]
    now = datetime.now(ZONE).replace(microsecond=0)
    weeks_ago, just_now = now - timedelta(days=20), now - timedelta(seconds=2)
    overdue, _ = record_finding(server, token, station, weeks_ago, feed_back=True)
    fresh, position = record_finding(server, token, station, just_now, feed_back=False)
    server.json(f"/v1/findings/{fresh}", min_position=position)
    return {"overdue": overdue, "fresh": fresh, "station": station}


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    driver = chromium(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield driver
    finally:
        driver.quit()


def open_page(browser: Any, server: Server, fragment: str) -> None:
    """Open the dashboard at ``fragment`` (no auto-refresh) and wait for its data."""
    browser.get("about:blank")
    browser.get(f"{server.url}/#{fragment}&refresh=0")
    wait_loaded(browser)


def data_value(browser: Any, selector: str) -> str:
    return str(browser.execute_script(f"return document.querySelector({selector!r}).dataset.value"))


def as_number(text: str) -> float | None:
    return float(text) if text else None


def select(browser: Any, element_id: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    before = loads(browser)
    Select(browser.find_element(By.ID, element_id)).select_by_value(value)
    wait_loaded(browser, after=before)


class TestThePage:
    def test_is_served_with_a_strict_content_security_policy(self, server: Server) -> None:
        page = httpx.get(server.url + "/", timeout=10)
        assert page.status_code == 200
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["x-frame-options"] == "DENY"
        html = page.text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline script"
        assert " style=" not in html
        assert not re.search(r"""(src|href)=["']https?:""", html), "a file from another origin"
        for src in re.findall(r"""(?:src|href)="(/dashboard/[^"]+)""", html):
            asset = httpx.get(server.url + src, timeout=10)
            assert asset.status_code == 200, src
            assert asset.headers["x-content-type-options"] == "nosniff"
            assert asset.headers["content-security-policy"] == csp

    def test_renders_without_script_errors(self, browser: Any, server: Server) -> None:
        open_page(browser, server, f"unit=WLY&kind=month&period={this_month()}")
        assert browser.find_element("id", "main").is_displayed()
        assert browser_errors(browser) == []
        screenshot(browser, "dashboard-district")


class TestScorecard:
    def test_composite_and_indicators_equal_the_apis(self, browser: Any, server: Server) -> None:
        period = this_month()
        open_page(browser, server, f"unit=WLY&kind=month&period={period}")
        card = server.json("/v1/units/WLY/scorecard", period=period)
        composite = card["composite"]["value"]
        assert as_number(data_value(browser, "#composite-value")) == composite
        if composite is not None:
            shown = browser.find_element("id", "composite-value").text
            assert shown == f"{composite:.1f}"
        rows = browser.execute_script(
            "return [...document.querySelectorAll('[data-testid=indicator-row]')].map("
            "r => [r.dataset.code, r.querySelector('[data-testid=indicator-value]').dataset.value,"
            " r.querySelector('[data-testid=indicator-value]').textContent])"
        )
        expected = {item["code"]: item["value"] for item in card["indicators"]}
        assert [code for code, _, _ in rows] == [item["code"] for item in card["indicators"]]
        for code, raw, text in rows:
            assert as_number(raw) == expected[code], code
            definition = next(i["definition"] for i in card["indicators"] if i["code"] == code)
            if expected[code] is not None and definition.get("scale") == "fraction":
                assert text == f"{expected[code] * 100:.1f}%", code

    def test_trend_charts_every_period_with_a_composite(self, browser: Any, server: Server) -> None:
        period = this_month()
        open_page(browser, server, f"unit=WLY&kind=month&period={period}")
        trend = server.json("/v1/units/WLY/trend", kind="month", last=12, until=period)
        assert len(trend["points"]) == 12
        plotted = browser.execute_script(
            "return [...document.querySelectorAll('#trend-chart circle.dot')].map("
            "c => [c.dataset.period, Number(c.dataset.value)])"
        )
        points = trend["points"]
        expected = [[p["period"], p["composite"]] for p in points if p["composite"] is not None]
        assert plotted == expected


class TestPickers:
    def test_the_institute_picker_shows_that_institutes_scorecard(
        self, browser: Any, server: Server, units: dict[str, list[dict[str, Any]]]
    ) -> None:
        period = this_month()
        open_page(browser, server, f"unit=WLY&kind=month&period={period}")
        institute = units["institute"][0]["site_id"]
        select(browser, "pick-institute", institute)
        assert browser.execute_script("return document.body.dataset.unit") == institute
        assert f"unit={institute}" in browser.current_url
        card = server.json(f"/v1/units/{institute}/scorecard", period=period)
        assert as_number(data_value(browser, "#composite-value")) == card["composite"]["value"]
        stations = browser.execute_script(
            "return [...document.querySelectorAll('#pick-station option')].map(o => o.value)"
        )
        expected = [u["site_id"] for u in units["station"] if u["parent_id"] == institute]
        assert stations == ["", *expected]

    def test_the_station_picker_shows_that_stations_figures(
        self, browser: Any, server: Server, units: dict[str, list[dict[str, Any]]]
    ) -> None:
        period = this_month()
        station = units["station"][0]
        open_page(browser, server, f"unit={station['parent_id']}&kind=month&period={period}")
        select(browser, "pick-station", station["site_id"])
        unit = station["site_id"]
        card = server.json(f"/v1/units/{unit}/scorecard", period=period)
        assert as_number(data_value(browser, "#composite-value")) == card["composite"]["value"]
        summary = server.json(f"/v1/units/{unit}/closed-loop", period=period)
        shown = browser.execute_script(
            "return document.getElementById('loop-figures').dataset.found"
        )
        assert as_number(shown) == summary["indicators"]["found"]["value"]
        screenshot(browser, "dashboard-station")

    def test_the_period_pickers_switch_to_quarters(self, browser: Any, server: Server) -> None:
        open_page(browser, server, f"unit=WLY&kind=month&period={this_month()}")
        select(browser, "pick-kind", "quarter")
        periods = browser.execute_script(
            "return [...document.querySelectorAll('#pick-period option')].map(o => o.value)"
        )
        assert all(re.fullmatch(r"\d{4}-Q[1-4]", p) for p in periods)
        previous = periods[1]
        select(browser, "pick-period", previous)
        assert browser.execute_script("return document.body.dataset.period") == previous
        card = server.json("/v1/units/WLY/scorecard", period=previous)
        assert as_number(data_value(browser, "#composite-value")) == card["composite"]["value"]
        trend = server.json("/v1/units/WLY/trend", kind="quarter", last=12, until=previous)
        dots = browser.execute_script(
            "return document.querySelectorAll('#trend-chart circle.dot').length"
        )
        assert dots == sum(1 for p in trend["points"] if p["composite"] is not None)


class TestClosedLoop:
    def test_the_funnel_counts_the_periods_findings(
        self, browser: Any, server: Server, findings: dict[str, str]
    ) -> None:
        period = this_month()
        open_page(browser, server, f"unit=WLY&kind=month&period={period}")
        listed: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"unit": "WLY", "period": period, "limit": 500}
            if cursor:
                params["cursor"] = cursor
            page = server.json("/v1/findings", **params)
            listed += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                break
        live = [f for f in listed if f["stage"] != "VOIDED"]
        expected = {
            "found": len(live),
            "fed_back": sum(1 for f in live if f["fed_back_at"]),
            "rectified": sum(1 for f in live if f["rectified_at"]),
            "verified": sum(1 for f in live if f["verified_at"]),
        }
        for step, count in expected.items():
            assert int(data_value(browser, f"[data-testid=funnel-{step}]")) == count, step
        summary = server.json("/v1/units/WLY/closed-loop", period=period)
        assert expected["found"] == summary["indicators"]["found"]["value"]
        assert findings["fresh"] in {f["finding_id"] for f in live}

    def test_overdue_findings_are_listed_first(
        self, browser: Any, server: Server, findings: dict[str, str]
    ) -> None:
        open_page(browser, server, f"unit=WLY&kind=month&period={this_month()}")
        rows = browser.execute_script(
            "return [...document.querySelectorAll('[data-testid=finding-row]')].map("
            "r => [r.dataset.finding, r.dataset.overdue === 'true'])"
        )
        overdue = server.json(
            "/v1/findings", unit="WLY", overdue="true", sort="due_at", order="asc", limit=100
        )["items"]
        assert findings["overdue"] in {f["finding_id"] for f in overdue}
        assert [r[0] for r in rows[: len(overdue)]] == [f["finding_id"] for f in overdue]
        flags = [flag for _, flag in rows]
        assert flags == sorted(flags, reverse=True), "an overdue finding after a current one"

    def test_clicking_a_finding_shows_its_timeline(
        self, browser: Any, server: Server, findings: dict[str, str]
    ) -> None:
        from selenium.webdriver.common.by import By

        open_page(browser, server, f"unit=WLY&kind=month&period={this_month()}")
        finding = findings["overdue"]
        browser.find_element(By.CSS_SELECTOR, f"tr[data-finding='{finding}']").click()
        wait_for(
            browser,
            "document.getElementById('timeline').dataset.state === 'ready' && "
            f"document.getElementById('timeline').dataset.finding === {finding!r}",
        )
        shown = browser.execute_script(
            "return [...document.querySelectorAll('[data-testid=timeline-event]')].map("
            "e => [e.dataset.type, Number(e.dataset.position)])"
        )
        detail = server.json(f"/v1/findings/{finding}")
        assert shown == [[e["type"], e["position"]] for e in detail["timeline"]]
        assert shown[0][0] == "practice.finding.recorded.v1"
        assert browser.find_element(By.ID, "timeline").is_displayed()
        screenshot(browser, "dashboard-timeline")
        browser.find_element(By.ID, "timeline-close").click()
        assert not browser.find_element(By.ID, "timeline").is_displayed()


class TestLanguage:
    def test_chinese_by_default_english_on_the_switch(self, browser: Any, server: Server) -> None:
        from selenium.webdriver.common.by import By

        browser.get("about:blank")
        browser.get(f"{server.url}/#refresh=0")
        browser.execute_script("localStorage.clear()")
        browser.get("about:blank")
        browser.get(f"{server.url}/#refresh=0")
        wait_loaded(browser)
        assert browser.execute_script("return document.documentElement.lang") == "zh-CN"
        assert "监督看板" in browser.find_element(By.TAG_NAME, "h1").text
        before = loads(browser)
        browser.find_element(By.ID, "lang-switch").click()
        wait_loaded(browser, after=before)
        assert browser.execute_script("return document.documentElement.lang") == "en"
        assert browser.find_element(By.TAG_NAME, "h1").text.startswith("Civilization Practice")
        assert "lang=en" in browser.current_url
        headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#indicators th")]
        assert headers[0] == "Indicator"
        screenshot(browser, "dashboard-english")
        browser.find_element(By.ID, "lang-switch").click()
        assert browser.execute_script("return document.documentElement.lang") == "zh-CN"


class TestToken:
    def test_asks_for_a_token_and_refuses_a_bad_one(self, browser: Any, server: Server) -> None:
        from selenium.webdriver.common.by import By

        open_page(browser, server, f"unit=WLY&kind=month&period={this_month()}")
        browser.find_element(By.ID, "sign-out").click()
        wait_for(browser, "document.body.dataset.state === 'login'")
        assert browser.execute_script("return sessionStorage.length") == 0
        box = browser.find_element(By.ID, "token-input")
        box.send_keys("pe_" + "x" * 43)
        browser.find_element(By.ID, "login-submit").click()
        wait_for(browser, "!document.getElementById('login-error').hidden")
        screenshot(browser, "dashboard-token-refused")
        assert server.token is not None
        box.send_keys(server.token)
        browser.find_element(By.ID, "login-submit").click()
        wait_loaded(browser)
        assert browser.find_element(By.ID, "main").is_displayed()


class TestDemoToken:
    def test_is_given_only_to_this_machine(self, server: Server) -> None:
        """The demo endpoint answers loopback clients; a remote client gets 404."""
        from fastapi import FastAPI
        from fastapi.testclient import TestClient

        from practice_events.config import Settings
        from projections.http.dashboard import install_dashboard

        app = FastAPI()
        install_dashboard(app, Settings())
        app.state.demo_token = "pe_demo"

        def ask(client: str) -> httpx.Response:
            with TestClient(app, client=(client, 40000)) as http:
                answer: httpx.Response = http.get("/dashboard/demo-token")
            return answer

        assert ask("127.0.0.1").json()["token"] == "pe_demo"
        assert ask("10.1.2.3").status_code == 404
        assert ask("::1").status_code == 200
        assert httpx.get(server.url + "/dashboard/demo-token", timeout=10).status_code == 200

    def test_is_not_offered_without_demo(self) -> None:
        from fastapi import FastAPI
        from fastapi.testclient import TestClient

        from practice_events.config import Settings
        from projections.http.dashboard import install_dashboard

        app = FastAPI()
        install_dashboard(app, Settings())
        with TestClient(app, client=("127.0.0.1", 40000)) as http:
            assert http.get("/dashboard/demo-token").status_code == 404
            assert http.get("/dashboard/config.json").json()["demo"] is False
            assert http.get("/dashboard/dashboard.py").status_code == 404


def test_artifacts_folder_is_ignored_by_git() -> None:
    ignored = (Path(__file__).resolve().parents[2] / ".gitignore").read_text(encoding="utf-8")
    assert "test-artifacts/" in ignored
