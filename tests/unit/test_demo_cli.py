"""``practice-events demo generate``: files, standard output, dirty sidecars, Kafka messages."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from practice_events.cli import EXIT_OK, EXIT_USAGE, main
from practice_events.contracts import load_all as load_contracts
from practice_events.contracts.envelope import parse_binary
from practice_events.demo.cli import binary_message
from practice_events.demo.dirty import RAW_LINE

SMALL = ["--days", "10", "--events", "2000", "--no-progress"]


class TestGenerate:
    def test_writes_a_jsonl_file_and_says_so(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        out = tmp_path / "demo.jsonl"
        assert main(["demo", "generate", *SMALL, "--out", str(out)]) == EXIT_OK
        lines = out.read_bytes().splitlines()
        assert len(lines) > 1_000
        assert orjson.loads(lines[0])["type"] == "practice.site.registered.v1"
        said = capsys.readouterr().out
        assert f"{len(lines):,} lines" in said
        assert str(out) in said

    def test_streams_to_standard_output(self, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
        assert main(["demo", "generate", *SMALL, "--out", "-"]) == EXIT_OK
        captured = capsysbinary.readouterr()
        lines = captured.out.splitlines()
        assert len(lines) > 1_000
        assert all(line.startswith(b'{"specversion":"1.0"') for line in lines[:50])
        assert b"lines in" in captured.err

    def test_writes_the_expected_outcome_beside_a_dirty_file(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        out = tmp_path / "dirty.jsonl"
        assert main(["demo", "generate", *SMALL, "--dirty", "0.1", "--out", str(out)]) == 0
        expected = orjson.loads((tmp_path / "dirty.jsonl.expected.json").read_bytes())
        assert expected["lines"] == len(out.read_bytes().splitlines())
        assert expected["expected_rejected"] > 0
        assert "to be rejected" in capsys.readouterr().out

    def test_prints_the_summary_as_json(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        out = tmp_path / "demo.jsonl"
        assert main(["demo", "generate", *SMALL, "--out", str(out), "--json"]) == EXIT_OK
        summary = orjson.loads(capsys.readouterr().out)
        assert summary["lines"] == sum(summary["by_type"].values())
        assert summary["days"] == 10

    def test_warns_when_the_window_reaches_into_the_future(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        out = tmp_path / "future.jsonl"
        argv = ["demo", "generate", "--days", "3", "--events", "1000", "--no-progress"]
        assert main([*argv, "--start", "2099-01-01", "--out", str(out)]) == EXIT_OK
        assert "after today" in capsys.readouterr().err
        assert main([*argv, "--out", str(out)]) == EXIT_OK
        assert "after today" not in capsys.readouterr().err

    def test_needs_an_output_for_jsonl(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["demo", "generate", *SMALL]) == EXIT_USAGE
        assert "--out is required" in capsys.readouterr().err

    def test_needs_a_broker_for_kafka(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.delenv("PRACTICE_EVENTS_KAFKA_BOOTSTRAP", raising=False)
        monkeypatch.delenv("PRACTICE_EVENTS_CONFIG", raising=False)
        assert main(["demo", "generate", *SMALL, "--format", "kafka"]) == EXIT_USAGE
        assert "--kafka BOOTSTRAP is required" in capsys.readouterr().err

    def test_refuses_a_dirty_share_above_a_half(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit):
            main(["demo", "generate", *SMALL, "--dirty", "0.7", "--out", "-"])
        assert "between 0 and 0.5" in capsys.readouterr().err


class TestBinaryMode:
    def test_puts_attributes_in_headers_data_in_the_value_and_subject_in_the_key(self) -> None:
        load_contracts()
        event = {
            "specversion": "1.0",
            "id": "e-1",
            "source": "urn:wly:checkin-app",
            "type": "practice.attendance.checked_in.v1",
            "subject": "V4308110000001",
            "time": "2025-03-05T09:00:00+08:00",
            "datacontenttype": "application/json",
            "data": {"session_id": "S1", "site_id": "WLY-ZHAN-01", "method": "qr"},
        }
        key, value, headers = binary_message(event)
        assert key == b"V4308110000001"
        assert orjson.loads(value) == event["data"]
        as_text = {name: raw.decode() for name, raw in headers}
        assert as_text["ce_type"] == event["type"]
        assert as_text["content-type"] == "application/json"
        incoming = parse_binary(as_text, value)
        assert incoming.subject == "V4308110000001"
        assert incoming.data_json["site_id"] == "WLY-ZHAN-01"

    def test_sends_a_broken_line_as_it_is(self) -> None:
        key, value, headers = binary_message({RAW_LINE: '{"specversion":"1.0","id'})
        assert key is None
        assert value == b'{"specversion":"1.0","id'
        assert not any(name.startswith("ce_") for name, _ in headers)

    def test_carries_the_dirty_tag_as_an_extension_header(self) -> None:
        _, _, headers = binary_message(
            {"specversion": "1.0", "id": "x", "pedirty": "UNKNOWN_TYPE", "data": {}}
        )
        assert ("ce_pedirty", b"UNKNOWN_TYPE") in headers
