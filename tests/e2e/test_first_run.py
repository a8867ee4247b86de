"""A new user's first run: `make run`'s command in an empty directory, used, stopped, restarted.

``practice-events serve --demo`` (what ``make run`` runs after set-up) starts
in a fresh working directory with a small demo district (an environment
setting keeps it quick), loads it, serves; a producer posts events; they are
in the API and on the dashboard (headless Chromium); SIGTERM stops it
gracefully (exit 0); a second start reuses the store, loads nothing, starts
in seconds and everything is still there. Bad settings end in one line and
exit code 2.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest

from tests.e2e.browser import (
    Server,
    chromium,
    screenshot,
    server_env,
    start_server,
    wait_for,
    wait_loaded,
)
from tests.harness import cloud_event

pytestmark = pytest.mark.slow

ZONE = ZoneInfo("Asia/Shanghai")
SMALL_DEMO = {"PRACTICE_EVENTS_DEMO_EVENTS": "3000", "PRACTICE_EVENTS_DEMO_DAYS": "45"}
SOURCE = "urn:test:first-run"


def post_batch(server: Server, token: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    response = httpx.post(
        server.url + "/v1/events:batch",
        content=orjson.dumps(events),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/cloudevents-batch+json",
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def finding_events(finding: str, station: str) -> list[dict[str, Any]]:
    recorded = datetime.now(ZONE).replace(microsecond=0) - timedelta(hours=2)
    return [
        cloud_event(
            "practice.finding.recorded.v1",
            finding,
            {
                "source": "supervision",
                "site_id": station,
                "severity": "high",
                "category": "records_incomplete",
                "description": "首次运行测试：活动记录不全",
                "responsible_unit_id": station,
            },
            time=recorded,
            source=SOURCE,
        ),
        cloud_event(
            "practice.finding.fed_back.v1",
            finding,
            {"channel": "platform"},
            time=recorded + timedelta(minutes=30),
            source=SOURCE,
        ),
    ]


def shows_finding(server: Server, profile: Path, finding: str, name: str) -> list[str]:
    """Open the dashboard, click ``finding``, return the event types of its timeline."""
    from selenium.webdriver.common.by import By

    driver = chromium(profile)
    try:
        month = datetime.now(ZONE).strftime("%Y-%m")
        driver.get(f"{server.url}/#unit=WLY&kind=month&period={month}&refresh=0")
        wait_loaded(driver)
        driver.find_element(By.CSS_SELECTOR, f"tr[data-finding='{finding}']").click()
        wait_for(driver, "document.getElementById('timeline').dataset.state === 'ready'")
        screenshot(driver, name)
        types: list[str] = driver.execute_script(
            "return [...document.querySelectorAll('[data-testid=timeline-event]')]"
            ".map(e => e.dataset.type)"
        )
        return types
    finally:
        driver.quit()


class TestFirstRun:
    def test_serve_demo_then_post_stop_and_restart(self, tmp_path: Path) -> None:
        workdir = tmp_path / "fresh"
        first = start_server(workdir, env=SMALL_DEMO)
        try:
            assert first.token is not None
            assert first.token.startswith("pe_")
            assert (workdir / "var" / "practice-events.db").is_file()
            marker = orjson.loads((workdir / "var" / "practice-events.demo.json").read_bytes())
            assert marker["complete"] is True
            assert marker["loaded"]["rejected"] == 0
            assert "demo_loaded" in first.log_text()

            created = first.cli("tokens", "create", "--role", "producer", "--source", SOURCE)
            assert created.returncode == 0, created.stderr
            producer = created.stdout.strip()
            station = next(
                u["site_id"] for u in first.json("/v1/units")["items"] if u["level"] == "station"
            )
            finding = f"F-FIRST-{uuid.uuid4().hex[:8]}"
            answer = post_batch(first, producer, finding_events(finding, station))
            assert answer["accepted"] == 2, answer
            position = answer["last_position"]
            detail = first.json(f"/v1/findings/{finding}", min_position=position)
            assert detail["stage"] == "FED_BACK"
            assert [e["type"] for e in detail["timeline"]] == [
                "practice.finding.recorded.v1",
                "practice.finding.fed_back.v1",
            ]
            shown = shows_finding(first, tmp_path / "profile-1", finding, "first-run-before")
            assert shown == [e["type"] for e in detail["timeline"]]
            month = datetime.now(ZONE).strftime("%Y-%m")
            card = first.json("/v1/units/WLY/scorecard", period=month)
            head = first.json("/readyz")["checks"]["store"]["last_position"]
        finally:
            code = first.stop()
        assert code == 0, first.log_text()[-3000:]
        log = first.log_text()
        assert "embedded_projections_stopped" in log
        assert "http_runtime_closed" in log
        assert "stopped" in log

        second = start_server(workdir, env=SMALL_DEMO)
        try:
            assert second.started_seconds < 30, second.started_seconds
            assert "demo_already_loaded" in second.log_text()
            assert "demo_loading" not in second.log_text()
            assert second.token == first.token
            assert second.json("/readyz")["checks"]["store"]["last_position"] == head
            again = second.json(f"/v1/findings/{finding}")
            assert again["timeline"] == detail["timeline"]
            assert (
                second.json("/v1/units/WLY/scorecard", period=month)["composite"]
                == (card["composite"])
            )
            assert second.get("/v1/units", token=producer).status_code == 403
            shown = shows_finding(second, tmp_path / "profile-2", finding, "first-run-after")
            assert shown == [e["type"] for e in detail["timeline"]]
        finally:
            assert second.stop() == 0, second.log_text()[-3000:]


def run_cli(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "practice_events.cli", *args],
        cwd=workdir,
        env=server_env(SMALL_DEMO),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class TestBadSettings:
    def test_a_port_in_use_is_one_line_and_exit_2(self, tmp_path: Path) -> None:
        server = start_server(tmp_path / "busy", demo=False)
        try:
            port = server.url.rsplit(":", 1)[1]
            result = run_cli(tmp_path / "busy", "serve", "--port", port)
            assert result.returncode == 2
            assert result.stderr.strip().count("\n") == 0, result.stderr
            assert "already in use" in result.stderr
        finally:
            assert server.stop() == 0

    def test_an_unreachable_postgresql_is_one_line_and_exit_2(self, tmp_path: Path) -> None:
        store = "postgresql://postgres@127.0.0.1:9/practice?connect_timeout=2"
        result = run_cli(tmp_path, "serve", "--demo", "--port", "0", "--store", store)
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("practice-events: cannot open the event store"), result.stderr

    def test_a_bad_store_url_is_one_line_and_exit_2(self, tmp_path: Path) -> None:
        result = run_cli(tmp_path, "serve", "--store", "oracle://db/x")
        assert result.returncode == 2
        assert result.stderr.strip().count("\n") == 0, result.stderr
        assert "unsupported store URL" in result.stderr


@pytest.mark.kafka
class TestServeWithKafka:
    def test_consumes_the_topic_in_process_and_leaves_the_group_on_sigterm(
        self, tmp_path: Path, topics: Any
    ) -> None:
        from tests.kafka_fixtures import produce_confluent, valid_stream

        kafka = {
            "PRACTICE_EVENTS_KAFKA_BOOTSTRAP": topics.bootstrap,
            "PRACTICE_EVENTS_KAFKA_TOPIC": topics.topic,
            "PRACTICE_EVENTS_KAFKA_GROUP": topics.group,
            "PRACTICE_EVENTS_KAFKA_DLQ_TOPIC": topics.dlq,
        }
        server = start_server(tmp_path / "kafka", demo=False, env=kafka)
        try:
            checks = server.json("/readyz")["checks"]
            assert checks["kafka"]["ok"] is True
            created = server.cli("tokens", "create", "--role", "auditor")
            assert created.returncode == 0, created.stderr
            auditor = created.stdout.strip()
            messages = valid_stream(24, prefix="kafka")
            produce_confluent(topics.bootstrap, topics.topic, messages)
            expected = {f"S-kafka-{n:05d}" for n in range(6)}
            deadline = time.monotonic() + 60
            seen: set[str] = set()
            while time.monotonic() < deadline and not expected <= seen:
                answer = server.get("/v1/units", token=auditor)
                if answer.status_code == 200:
                    seen = {u["site_id"] for u in answer.json()["items"]}
                time.sleep(0.5)
            assert expected <= seen, server.log_text()[-3000:]
        finally:
            code = server.stop()
        assert code == 0
        log = server.log_text()
        assert "embedded_kafka_started" in log
        assert "worker_stopped" in log
