"""The shortcuts the ingest path takes for speed give the answers of the long way round.

Each fast path here (docs/performance.md, "Ingest") replaced slower code
whose results are the contract: the same ids, the same error code and reason
for the first fault of an event, the collector restored after ingestion.
"""

from __future__ import annotations

import gc
import uuid
from typing import Any

import pytest

from practice_events.contracts import load_all
from practice_events.contracts.envelope import parse_binary, validate_envelope
from practice_events.domain.base import NAMESPACE, derived_meta, uuid5_text
from practice_events.errors import ContractError
from practice_events.ingest.collector import YOUNG_THRESHOLD, relaxed_gc

load_all()


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a",
        "evt-1:practice.attendance.hours_credited.v1",
        "中文:x",
        "x" * 500,
        "\u00e9\U0001f600",
    ],
)
def test_uuid5_text_is_uuid5(name: str) -> None:
    assert uuid5_text(name) == str(uuid.uuid5(NAMESPACE, name))


def test_derived_meta_id_is_still_the_uuid5_of_cause_and_type() -> None:
    meta = derived_meta({"id": "evt-1", "time": "2025-01-01T00:00:00+08:00"}, "t.v1")
    assert meta["id"] == str(uuid.uuid5(NAMESPACE, "evt-1:t.v1"))


def test_relaxed_gc_nests_and_restores() -> None:
    before = gc.get_threshold()
    with relaxed_gc():
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
        with relaxed_gc():
            assert gc.get_threshold()[0] == YOUNG_THRESHOLD
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD  # the outer block still runs
    assert gc.get_threshold() == before


def _envelope(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": "evt-1",
        "source": "urn:test",
        "type": "practice.site.registered.v1",
        "subject": "S-1",
        "time": "2024-03-04T09:00:00+08:00",
        "data": {"level": "centre", "name": "x"},
    }
    event.update(changes)
    return {k: v for k, v in event.items() if v is not None}


def _refusal(obj: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(ContractError) as caught:
        validate_envelope(obj)
    return caught.value.code, caught.value.reason


@pytest.mark.parametrize(
    ("changes", "code", "reason"),
    [
        # Several faults: the first attribute in the order id, source, type, subject, time wins.
        (
            {"id": " evt-1", "source": None},
            "INVALID_ATTRIBUTE",
            "attribute 'id' has leading or trailing whitespace",
        ),
        (
            {"source": "urn:\x07", "subject": 7},
            "INVALID_ATTRIBUTE",
            "attribute 'source' contains the control character U+0007",
        ),
        (
            {"subject": "S\ud800", "time": "yesterday"},
            "INVALID_ATTRIBUTE",
            "attribute 'subject' is not valid UTF-8",
        ),
        (
            {"specversion": "0.3", "id": None},
            "INVALID_ATTRIBUTE",
            "specversion must be '1.0', got '0.3'",
        ),
        (
            {"specversion": None, "id": 5},
            "MISSING_ATTRIBUTE",
            "required CloudEvents attribute 'specversion' is missing",
        ),
        (
            {"type": "x" * 257},
            "INVALID_ATTRIBUTE",
            "attribute 'type' is longer than 256 characters",
        ),
        ({"time": ""}, "MISSING_ATTRIBUTE", "required CloudEvents attribute 'time' is missing"),
        ({"time": "2024-03-04T09:00:00"}, "NAIVE_DATETIME", None),
    ],
)
def test_first_fault_of_the_envelope_decides(
    changes: dict[str, Any], code: str, reason: str | None
) -> None:
    got_code, got_reason = _refusal(_envelope(**changes))
    assert got_code == code
    if reason is not None:
        assert got_reason == reason


def test_duplicate_header_names_the_first_spelling() -> None:
    headers = [("ce_specversion", "1.0"), ("x-trace", "1"), ("ce_id", "a"), ("CE-ID", "b")]
    with pytest.raises(ContractError) as caught:
        parse_binary(headers, b"{}")
    assert caught.value.code == "DUPLICATE_ATTRIBUTE"
    assert caught.value.reason == (
        "attribute 'id' is given twice (headers 'ce_id' and 'CE-ID'); send each attribute once"
    )


def test_many_header_names_are_still_read() -> None:
    """Producers choose header names: past the remembered ones, they are read all the same."""
    headers = [(f"x-noise-{i}", "v") for i in range(600)]
    headers += [(f"CE_{k.upper()}", v) for k, v in _envelope(data=None).items()]
    event = parse_binary(headers, b'{"level": "centre", "name": "x"}')
    assert (event.id, event.subject) == ("evt-1", "S-1")
