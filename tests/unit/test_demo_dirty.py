"""Bad input mixed into a demo history: every bad line gets exactly the code it is tagged with."""

from __future__ import annotations

import random
from collections import Counter
from datetime import date
from typing import Any

import orjson
import pytest

from practice_events.demo.dirty import DUPLICATE, KINDS, RAW_LINE, DirtyMixer
from practice_events.demo.generator import Generation
from practice_events.demo.network import build_network
from tests.unit.test_demo_generator import MemoryStore


@pytest.fixture(scope="module")
def mixed() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A short history with 10 % bad lines, and what ingesting it must report."""
    run = Generation(seed=9, days=40, events=8_000, dirty=0.1)
    events = list(run.events())
    assert run.expected is not None
    return events, run.expected.as_dict()


class TestMixing:
    def test_adds_about_the_share_asked_for(
        self, mixed: tuple[list[dict[str, Any]], dict[str, Any]]
    ) -> None:
        events, expected = mixed
        assert expected["lines"] == len(events)
        assert 0.08 < expected["dirty"] / len(events) < 0.12

    def test_uses_every_kind_of_bad_input(
        self, mixed: tuple[list[dict[str, Any]], dict[str, Any]]
    ) -> None:
        _, expected = mixed
        codes = set(expected["expected_rejections_by_code"])
        assert codes == {code for code, _ in KINDS if code != DUPLICATE}
        assert expected["expected_duplicates"] > 0

    def test_tags_every_bad_object_with_its_code(
        self, mixed: tuple[list[dict[str, Any]], dict[str, Any]]
    ) -> None:
        events, expected = mixed
        tags = Counter(e["pedirty"] for e in events if "pedirty" in e)
        raw = sum(1 for e in events if RAW_LINE in e)
        rejections = Counter(expected["expected_rejections_by_code"])
        assert tags[DUPLICATE] == expected["expected_duplicates"]
        assert tags["MALFORMED_JSON"] + raw == rejections["MALFORMED_JSON"]
        del tags[DUPLICATE]
        rejections["MALFORMED_JSON"] -= raw
        assert +tags == +rejections

    def test_breaks_raw_lines_beyond_repair(
        self, mixed: tuple[list[dict[str, Any]], dict[str, Any]]
    ) -> None:
        events, _ = mixed
        raw = [e[RAW_LINE] for e in events if RAW_LINE in e]
        assert raw
        for line in raw:
            assert line.strip()
            assert "\n" not in line
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            assert not isinstance(value, dict)

    def test_refuses_a_share_outside_zero_to_a_half(self) -> None:
        network = build_network(random.Random(1), 0.01, date(2025, 1, 1))
        for share in (0.0, 0.6, -0.1):
            with pytest.raises(ValueError, match="dirty share"):
                DirtyMixer(seed=1, share=share, network=network, end=0)


class TestOutcomes:
    def test_every_line_meets_its_expected_fate(
        self, mixed: tuple[list[dict[str, Any]], dict[str, Any]]
    ) -> None:
        events, expected = mixed
        store = MemoryStore()
        outcomes: Counter[str] = Counter()
        for event in events:
            outcome = store.ingest(event)
            outcomes[outcome] += 1
            if RAW_LINE in event:
                assert outcome == "MALFORMED_JSON"
            else:
                assert outcome == event.get("pedirty", "accepted"), event
        assert outcomes["accepted"] == expected["expected_accepted"]
        assert outcomes[DUPLICATE] == expected["expected_duplicates"]
        del outcomes["accepted"], outcomes[DUPLICATE]
        assert dict(sorted(outcomes.items())) == expected["expected_rejections_by_code"]

    def test_leaves_the_clean_history_as_it_was(self) -> None:
        clean = list(Generation(seed=9, days=15, events=3_000).events())
        mixed = list(Generation(seed=9, days=15, events=3_000, dirty=0.2).events())
        assert [e for e in mixed if RAW_LINE not in e and "pedirty" not in e] == clean
