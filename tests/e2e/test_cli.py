"""The command line as a user runs it: a real process, a real store, real files."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.harness import cloud_event

pytestmark = pytest.mark.postgres


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``practice-events`` with ``args`` and return the finished process."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "practice_events.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
        check=False,
    )


def write_events(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"\n".join(lines) + b"\n")


def sample_lines() -> list[bytes]:
    centre = cloud_event(
        "practice.site.registered.v1",
        "WLY",
        {"level": "centre", "name": "武陵源区新时代文明实践中心"},
        event_id="c-1",
        source="urn:wly:admin",
    )
    institute = cloud_event(
        "practice.site.registered.v1",
        "WLY-I1",
        {"level": "institute", "parent_id": "WLY", "name": "索溪峪街道文明实践所"},
        event_id="i-1",
        source="urn:wly:admin",
    )
    orphan = cloud_event(
        "practice.site.registered.v1",
        "WLY-S9",
        {"level": "station", "parent_id": "NOWHERE", "name": "孤站"},
        event_id="s-9",
        source="urn:wly:admin",
    )
    return [
        orjson.dumps(centre),
        orjson.dumps(institute),
        b"{this is not json",
        orjson.dumps(orphan),
        orjson.dumps({**centre, "type": "practice.site.teleported.v1", "id": "x-1"}),
    ]


class TestIngestFile:
    def test_summary_rejections_file_and_stats(self, store_url: str, tmp_path: Path) -> None:
        events = tmp_path / "events.jsonl"
        write_events(events, sample_lines())
        env = {"PRACTICE_EVENTS_STORE": store_url}
        done = run("ingest-file", str(events), "--json", env=env)
        assert done.returncode == 0, done.stderr
        summary = orjson.loads(done.stdout)
        assert summary["accepted"] == 2
        assert summary["rejected"] == 3
        assert summary["rejected_by_code"] == {
            "MALFORMED_JSON": 1,
            "UNKNOWN_REFERENCE": 1,
            "UNKNOWN_TYPE": 1,
        }
        refused = [
            orjson.loads(x) for x in Path(summary["rejections_file"]).read_bytes().split(b"\n") if x
        ]
        assert [r["line"] for r in refused] == [3, 4, 5]
        assert refused[0]["original"] == "{this is not json"
        assert all(r["reason"] for r in refused)

        again = run("ingest-file", str(events), "--json", env=env)
        assert orjson.loads(again.stdout)["duplicate"] == 2

        stats = run("store", "stats", "--json", env=env)
        assert stats.returncode == 0, stats.stderr
        figures = orjson.loads(stats.stdout)
        assert figures["events_by_type"] == {"practice.site.registered.v1": 2}
        assert figures["aggregates_by_kind"]["site"] == 2
        assert figures["accepted_cloudevents"] == 2
        assert figures["rejections_by_code"]["MALFORMED_JSON"] == 1

    def test_strict_exit_code(self, sqlite_url: str, tmp_path: Path) -> None:
        events = tmp_path / "events.jsonl"
        write_events(events, sample_lines())
        done = run(
            "ingest-file",
            str(events),
            "--strict",
            "--no-progress",
            env={"PRACTICE_EVENTS_STORE": sqlite_url},
        )
        assert done.returncode == 4
        assert "rejected UNKNOWN_TYPE: 1" in done.stdout


class TestErrors:
    def test_bad_store_url_is_one_line_and_exit_2(self, tmp_path: Path) -> None:
        done = run("store", "stats", env={"PRACTICE_EVENTS_STORE": "oracle://db"})
        assert done.returncode == 2
        assert "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1

    def test_missing_file(self, sqlite_url: str) -> None:
        done = run("ingest-file", "/no/such/file.jsonl", env={"PRACTICE_EVENTS_STORE": sqlite_url})
        assert done.returncode == 2
        assert "no such file" in done.stderr

    def test_reading_a_sqlite_store_that_does_not_exist_creates_nothing(
        self, tmp_path: Path
    ) -> None:
        missing = tmp_path / "typo" / "store.db"
        for argv in (
            ("store", "stats"),
            ("audit", "verify"),
            ("audit", "history", "volunteer", "V1"),
        ):
            done = run(*argv, "--store", f"sqlite:///{missing}")
            assert done.returncode == 2, argv
            assert f"no event store at {missing}" in done.stderr
            assert "Traceback" not in done.stderr
        assert not missing.parent.exists()

    def test_an_unreachable_postgres_is_one_line_and_exit_3(self) -> None:
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            port = unused.getsockname()[1]
        url = f"postgresql://postgres@127.0.0.1:{port}/practice?connect_timeout=1"
        done = run("store", "stats", "--store", url)
        assert done.returncode == 3
        assert done.stderr.startswith("practice-events: unavailable: ")
        assert len(done.stderr.strip().splitlines()) == 1

    def test_version_and_help(self) -> None:
        assert run("--version").stdout.startswith("practice-events ")
        assert "examples" in run("ingest-file", "--help").stdout


def test_schemas_are_written_and_importable(tmp_path: Path) -> None:
    done = run("schemas", "--out", str(tmp_path / "schemas"))
    assert done.returncode == 0, done.stderr
    index = orjson.loads((tmp_path / "schemas" / "index.json").read_bytes())
    assert index["count"] >= 40
    first = index["types"][0]
    schema = orjson.loads((tmp_path / "schemas" / first["schema"]).read_bytes())
    assert schema["properties"]["type"]["const"] == first["type"]

    from practice_events.contracts.schemas import all_schemas

    assert set(all_schemas()) == {t["type"] for t in index["types"]}


def test_the_committed_event_catalogue_is_current() -> None:
    """docs/event-catalogue.md is generated; this fails when a contract changed without it."""
    from practice_events.contracts.schemas import catalogue_markdown

    committed = (Path(__file__).resolve().parents[2] / "docs" / "event-catalogue.md").read_text(
        encoding="utf-8"
    )
    assert committed == catalogue_markdown(), (
        "run: practice-events schemas --markdown docs/event-catalogue.md"
    )
