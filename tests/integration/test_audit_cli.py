"""``practice-events audit …`` end to end on a SQLite store: what an auditor types.

The commands are thin; these scenarios check the wiring, the output an
auditor relies on (JSON and text) and the exit codes, notably 5 when the
log no longer matches its seals or a signed checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from practice_events.cli import main
from tests.factories_audit import Store, Tamper, demo_events


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """A SQLite store holding the first 400 events of the demo history."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    s = Store(url)
    s.ingest(demo_events()[:400])
    s.close()
    return url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run the CLI; return its exit code and what it printed on stdout."""
    code = main(list(argv))
    return code, capsys.readouterr().out


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    """Run the CLI with ``--json``; return its exit code and the parsed output."""
    code, out = run(capsys, *argv, "--json")
    return code, orjson.loads(out)


class TestIntegrityCommands:
    def test_seal_then_verify_reports_an_intact_log(
        self, store_url: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, sealed = run_json(capsys, "audit", "seal", "--store", store_url)
        assert code == 0
        assert sealed["sealed"] == sealed["position"] > 0
        code, report = run_json(capsys, "audit", "verify", "--store", store_url)
        assert code == 0
        assert report["ok"]
        assert report["chain_hash"] == sealed["chain_hash"]

    def test_verify_takes_the_number_of_ranges_checked_at_once(
        self, store_url: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        run(capsys, "audit", "seal", "--store", store_url)
        Tamper(store_url).delete(33)
        reports = [
            run_json(capsys, "audit", "verify", "--store", store_url, "--workers", workers)
            for workers in ("1", "3")
        ]
        for code, report in reports:
            assert code == 5
            assert report["first_break"]["position"] == 33
        timing = {"seconds", "events_per_second"}
        one, three = ({k: v for k, v in r.items() if k not in timing} for _, r in reports)
        assert one == three

    def test_verify_exits_5_and_names_the_break_after_tampering(
        self, store_url: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        run(capsys, "audit", "seal", "--store", store_url)
        Tamper(store_url).delete(33)
        code, out = run(capsys, "audit", "verify", "--store", store_url, "--no-progress")
        assert code == 5
        assert "BROKEN at position 33: deleted" in out

    def test_checkpoint_signed_with_a_key_file_is_verified_later(
        self, store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        key = tmp_path / "audit.key"
        assert run(capsys, "audit", "keygen", "--out", str(key))[0] == 0
        assert oct(key.stat().st_mode & 0o777) == "0o600"
        checkpoint = tmp_path / "cp.json"
        code, _ = run(
            capsys,
            "audit", "checkpoint", "--store", store_url, "--key", str(key),
            "--out", str(checkpoint), "--label", "2025-Q4",
        )  # fmt: skip
        assert code == 0
        doc = orjson.loads(checkpoint.read_bytes())
        assert doc["label"] == "2025-Q4"
        code, report = run_json(
            capsys, "audit", "verify", "--store", store_url, "--checkpoint", str(checkpoint)
        )
        assert code == 0
        assert report["checkpoint"]["ok"]

    def test_checkpoint_without_a_key_is_a_usage_error(
        self, store_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("PRACTICE_EVENTS_AUDIT_KEY_FILE", raising=False)
        assert run(capsys, "audit", "checkpoint", "--store", store_url)[0] == 2


class TestReadingCommands:
    def test_history_as_json(self, store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
        volunteer = next(
            e["subject"] for e in demo_events() if e["type"] == "practice.volunteer.registered.v1"
        )
        code, out = run_json(
            capsys, "audit", "history", "volunteer", volunteer, "--store", store_url
        )
        assert code == 0
        assert out["events"][0]["type"] == "practice.volunteer.registered.v1"

    def test_history_of_an_unknown_aggregate_is_a_usage_error(
        self, store_url: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert run(capsys, "audit", "history", "finding", "F-NONE", "--store", store_url)[0] == 2

    def test_replay_to_a_directory_writes_tables_and_a_manifest(
        self, store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        out = tmp_path / "replay"
        code, _ = run(
            capsys, "audit", "replay", "--store", store_url, "--position", "300",
            "--out", str(out), "--no-progress",
        )  # fmt: skip
        assert code == 0
        manifest = orjson.loads((out / "replay.json").read_bytes())
        assert manifest["position"] == 300
        assert manifest["basis"] == "recorded"
        assert (out / "network_sites.jsonl").exists()
        assert (out / "replay.views.db").exists()

    def test_replay_in_two_processes_exports_the_same_tables_and_manifest(
        self, store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        outs = {jobs: tmp_path / f"jobs{jobs}" for jobs in ("1", "2")}
        for jobs, out in outs.items():
            code, _ = run(
                capsys, "audit", "replay", "--store", store_url, "--position", "300",
                "--out", str(out), "--jobs", jobs, "--no-progress",
            )  # fmt: skip
            assert code == 0
        tables = sorted(p.name for p in outs["1"].glob("*.jsonl"))
        assert tables == sorted(p.name for p in outs["2"].glob("*.jsonl"))
        assert len(tables) > 20
        for name in tables:
            assert (outs["2"] / name).read_bytes() == (outs["1"] / name).read_bytes(), name
        timing = {"seconds", "events_per_second", "views"}
        one, two = (orjson.loads((out / "replay.json").read_bytes()) for out in outs.values())
        assert {k: v for k, v in two.items() if k not in timing} == {
            k: v for k, v in one.items() if k not in timing
        }

    def test_replay_needs_a_moment(
        self, store_url: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert run(capsys, "audit", "replay", "--store", store_url)[0] == 2

    def test_reproduce_with_nothing_published_is_fine(
        self, store_url: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, out = run_json(capsys, "audit", "reproduce", "--store", store_url)
        assert code == 0
        assert out == {"ok": True, "publications": []}

    def test_certificate_as_json(self, store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
        volunteer = next(
            e["subject"] for e in demo_events() if e["type"] == "practice.volunteer.registered.v1"
        )
        code, doc = run_json(
            capsys, "audit", "certificate", volunteer, "--position", "400", "--store", store_url
        )
        assert code == 0
        assert doc["number"].endswith(f"-CERT-{volunteer}-400")


class TestMovingCommands:
    def test_export_then_import_into_an_empty_store(
        self, store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        out = tmp_path / "all.jsonl.gz"
        code, summary = run_json(capsys, "audit", "export", "--store", store_url, "--out", str(out))
        assert code == 0
        assert out.read_bytes()[:2] == b"\x1f\x8b"
        empty = f"sqlite:///{tmp_path / 'empty.db'}"
        code, imported = run_json(capsys, "audit", "import", str(out), "--store", empty)
        assert code == 0
        assert imported["accepted"] == summary["exported"]
        assert imported["rejected"] == 0

    def test_a_time_without_offset_is_a_usage_error(
        self, store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, _ = run(
            capsys, "audit", "export", "--store", store_url, "--out", str(tmp_path / "x.jsonl"),
            "--from", "2025-11-01T00:00:00",
        )  # fmt: skip
        assert code == 2
