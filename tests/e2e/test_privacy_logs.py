"""Logs never carry personal details or tokens: a real server, real commands, every log line read.

``practice-events serve`` runs with JSON logs at debug level. Tokens are
created with the CLI; sites, volunteers and one volunteer's details arrive by
``ingest-file`` (with a refused line); another volunteer's details and a
refused event arrive over HTTP with a producer's bearer token; a wrong token
is tried; the district supervisor reads the ledger, the personal details and the
rejections; ``privacy erase`` runs and the details read
``[erased]`` at the next request. Then the server's log and every command's
stderr are searched for each personal detail and each token string.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from practice_events.contracts.volunteer import resident_id_check
from practice_events.privacy import ERASED, PERSONAL_DETAILS_RECORDED, REDACTED
from tests.e2e.browser import Server, start_server
from tests.harness import cloud_event

pytestmark = pytest.mark.slow

SOURCE = "urn:test:registry"
FIRST = {"name": "诸葛孔明", "phone": "13611112222", "id_number": "43081119810101001"}
SECOND = {"name": "黄月英", "phone": "15822223333", "id_number": "43081119830303002"}
REFUSED = {"name": "庞士元", "phone": "18933334444", "id_number": "43081119790909003"}
for person in (FIRST, SECOND, REFUSED):
    person["id_number"] += resident_id_check(person["id_number"])
WRONG_TOKEN = "pe_this-token-was-never-issued-0123456789"


def ingest_lines() -> list[dict[str, Any]]:
    """Sites, two volunteers, the first one's details and a refused details line (bad ID)."""
    bad = {**REFUSED, "id_number": REFUSED["id_number"][:-1] + "Z"}
    return [
        cloud_event("practice.site.registered.v1", "WLY", {"level": "centre", "name": "中心"}),
        cloud_event(
            "practice.site.registered.v1",
            "WLY-ZHAN-01",
            {"level": "station", "parent_id": "WLY", "name": "军地坪站"},
        ),
        cloud_event("practice.volunteer.registered.v1", "V-1", {"home_site_id": "WLY-ZHAN-01"}),
        cloud_event("practice.volunteer.registered.v1", "V-2", {"home_site_id": "WLY-ZHAN-01"}),
        cloud_event(PERSONAL_DETAILS_RECORDED, "V-1", FIRST, source=SOURCE),
        cloud_event(PERSONAL_DETAILS_RECORDED, "V-2", bad, source=SOURCE),
    ]


def post(server: Server, token: str, event: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        server.url + "/v1/events",
        content=orjson.dumps(event),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/cloudevents+json",
        },
        timeout=30,
    )


def test_logs_carry_no_personal_details_and_no_tokens(tmp_path: Path) -> None:
    env = {"PRACTICE_EVENTS_LOG_FORMAT": "json", "PRACTICE_EVENTS_LOG_LEVEL": "debug"}
    server = start_server(tmp_path / "w", demo=False, env=env)
    stderr: list[str] = []

    def cli(*args: str) -> str:
        done = server.cli(*args)
        stderr.append(done.stderr)
        assert done.returncode == 0, done.stderr
        return done.stdout

    try:
        producer = cli("tokens", "create", "--role", "producer", "--source", SOURCE).strip()
        supervisor = cli("tokens", "create", "--role", "district_supervisor", "--unit", "WLY")
        supervisor = supervisor.strip()
        events = tmp_path / "registry.jsonl"
        events.write_bytes(b"\n".join(orjson.dumps(e) for e in ingest_lines()) + b"\n")
        summary = orjson.loads(cli("ingest-file", str(events), "--json", "--no-progress"))
        assert (summary["accepted"], summary["rejected"]) == (5, 1)
        kept = Path(summary["rejections_file"]).read_text()
        assert REFUSED["name"] not in kept
        assert REDACTED in kept

        details_2 = cloud_event(PERSONAL_DETAILS_RECORDED, "V-2", SECOND, source=SOURCE)
        accepted = post(server, producer, details_2)
        assert accepted.status_code == 202, accepted.text
        position = accepted.json()["position"]
        refused = post(
            server, producer, cloud_event(PERSONAL_DETAILS_RECORDED, "V-9", REFUSED, source=SOURCE)
        )
        assert refused.status_code == 422, refused.text
        assert REFUSED["name"] not in refused.text
        wrong = server.get("/v1/units", token=WRONG_TOKEN)
        assert wrong.status_code == 401

        shown = server.get(
            "/v1/volunteers/V-1/personal-details", token=supervisor, min_position=position
        )
        assert shown.status_code == 200, shown.text
        assert (shown.json()["name"], shown.json()["status"]) == (FIRST["name"], "recorded")
        assert shown.headers["cache-control"] == "no-store"
        second = server.get("/v1/volunteers/V-2/personal-details", token=supervisor).json()
        assert {k: second[k] for k in SECOND} == SECOND
        assert server.get("/v1/volunteers/V-1/personal-details", token=producer).status_code == 403
        assert server.get("/v1/volunteers/V-1", token=supervisor).status_code == 200
        rejections = server.get("/v1/rejections", token=supervisor)
        assert rejections.status_code == 200
        assert REFUSED["name"] not in rejections.text
        assert rejections.text.count(REDACTED) >= 2

        erased = orjson.loads(cli("privacy", "erase", "V-1", "--json", "--actor", "DPO-01"))
        assert erased["status"] == "erased"
        again = server.get("/v1/volunteers/V-1/personal-details", token=supervisor)
        assert again.status_code == 200
        assert again.json()["status"] == "erased"
        assert {again.json()[k] for k in FIRST} == {ERASED}
    finally:
        assert server.stop() == 0

    logs = server.log_text() + "".join(stderr)
    lines = [orjson.loads(line) for line in server.log_text().splitlines() if line.startswith("{")]
    logged = {line.get("event") for line in lines}
    # The capture works and saw the work: ingestion, token checks, the details being read.
    assert {"http_ingest_started", "personal_details_read"} <= logged, sorted(logged)[:40]
    secrets = [producer, supervisor, WRONG_TOKEN]
    details = [v for person in (FIRST, SECOND, REFUSED) for v in person.values()]
    leaks = [
        value
        for value in [*details, *secrets]
        if value in logs or orjson.dumps(value).decode()[1:-1] in logs
    ]
    assert leaks == []
