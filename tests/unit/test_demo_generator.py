"""The demo generator: deterministic, time-ordered, valid against contracts and domain, realistic.

Histories are replayed in memory through the real contracts and the real
``apply_event`` (:class:`MemoryStore`), so a rule broken by the generator
fails here without any I/O.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from practice_events.bootstrap import build_context
from practice_events.config import Settings
from practice_events.contracts import load_all as load_contracts
from practice_events.contracts.base import catalogue
from practice_events.contracts.envelope import parse_structured
from practice_events.demo.dirty import RAW_LINE
from practice_events.demo.generator import (
    DEFAULT_END,
    SOURCES,
    Generation,
    generate,
    plan,
    write_jsonl,
)
from practice_events.domain.base import PracticeAggregate, aggregate_id
from practice_events.errors import PracticeEventsError
from practice_events.ingest.apply import apply_event

FUTURE_SKEW = timedelta(minutes=5)


class MemoryStore:
    """The ingest pipeline's decisions, in memory: contract, future time, dedupe, domain.

    ``ingest`` returns ``accepted``, ``DUPLICATE`` or the rejection code, as
    the real pipeline would for the same input in the same order.
    """

    def __init__(self) -> None:
        load_contracts()
        self.ctx = build_context(Settings(store="sqlite:///:memory:"))
        self.aggregates: dict[UUID, PracticeAggregate] = {}
        self.digests: dict[tuple[str, str], str] = {}
        self.now = datetime.now().astimezone()

    def lookup(self, kind: str, subject: str) -> PracticeAggregate | None:
        return self.aggregates.get(aggregate_id(kind, subject))

    def exists(self, kind: str, subject: str) -> bool:
        return aggregate_id(kind, subject) in self.aggregates

    def ingest(self, event: Mapping[str, Any]) -> str:
        raw = event.get(RAW_LINE)
        try:
            incoming = parse_structured(raw.encode() if isinstance(raw, str) else event)
        except PracticeEventsError as exc:
            return exc.code
        if incoming.time - self.now > FUTURE_SKEW:
            return "TIME_IN_FUTURE"
        previous = self.digests.get(incoming.key)
        if previous is not None:
            return "DUPLICATE" if previous == incoming.digest else "DUPLICATE_CONFLICT"
        try:
            aggregate = apply_event(incoming, self.lookup, self.exists, self.ctx)
        except PracticeEventsError as exc:
            return exc.code
        aggregate.collect_events()
        self.aggregates[aggregate.id] = aggregate
        self.digests[incoming.key] = incoming.digest
        return "accepted"

    def replay(self, events: Iterable[Mapping[str, Any]]) -> Counter[str]:
        """Ingest every event; return outcomes counted, with examples of refusals printed."""
        outcomes: Counter[str] = Counter()
        for event in events:
            outcome = self.ingest(event)
            outcomes[outcome] += 1
            if outcome != "accepted" and outcomes[outcome] <= 3:
                print(
                    "refused", outcome, event.get("type"), event.get("subject"), event.get("time")
                )
        return outcomes


def times(events: Iterable[Mapping[str, Any]]) -> Iterator[datetime]:
    for event in events:
        yield datetime.fromisoformat(event["time"])


@pytest.fixture(scope="module")
def year() -> list[dict[str, Any]]:
    """A small district over a whole year (about 45,000 events)."""
    return list(generate(seed=11, days=365, events=45_000))


@pytest.fixture(scope="module")
def mix() -> Counter[str]:
    """Event types of a larger year (about 150,000 events, counted while streaming)."""
    return Counter(e["type"] for e in generate(seed=11, days=365, events=150_000))


class TestDeterminism:
    def test_writes_the_same_bytes_for_the_same_arguments(self) -> None:
        first, second = io.BytesIO(), io.BytesIO()
        write_jsonl(first, seed=3, days=20, events=3_000)
        write_jsonl(second, seed=3, days=20, events=3_000)
        assert first.getvalue() == second.getvalue()
        assert first.getvalue().count(b"\n") > 2_000

    def test_writes_other_bytes_for_another_seed(self) -> None:
        first, second = io.BytesIO(), io.BytesIO()
        write_jsonl(first, seed=3, days=20, events=3_000)
        write_jsonl(second, seed=4, days=20, events=3_000)
        assert first.getvalue() != second.getvalue()

    def test_never_reads_the_global_random_generator(self) -> None:
        import random

        random.seed(1)
        one = [e["id"] for e in generate(seed=3, days=10, events=2_000)]
        random.seed(2)
        two = [e["id"] for e in generate(seed=3, days=10, events=2_000)]
        assert one == two


class TestWindow:
    def test_defaults_to_the_year_2025_at_reference_size(self) -> None:
        resolved = plan()
        assert (resolved.start, resolved.days, resolved.scale) == (date(2025, 1, 1), 365, 1.0)

    def test_scales_the_district_when_days_are_given(self) -> None:
        resolved = plan(days=60, events=20_000)
        assert resolved.days == 60
        assert 0 < resolved.scale < 1

    def test_scales_days_and_district_and_ends_in_the_past_for_events_alone(self) -> None:
        big = plan(events=1_000_000)
        assert big.end == DEFAULT_END
        assert big.days > 365
        assert big.scale > 1
        small = plan(events=20_000)
        assert small.end == DEFAULT_END
        assert 30 <= small.days < 365

    def test_keeps_an_explicit_start(self) -> None:
        assert plan(events=50_000, start=date(2024, 3, 1)).start == date(2024, 3, 1)

    @pytest.mark.parametrize(("days", "events"), [(0, None), (10, 0), (-1, 5)])
    def test_refuses_nonsense_sizes(self, days: int, events: int | None) -> None:
        with pytest.raises(ValueError, match="positive"):
            plan(days=days, events=events)

    def test_produces_about_the_events_asked_for(self) -> None:
        produced = sum(1 for _ in generate(seed=2, events=30_000))
        assert 0.85 * 30_000 < produced < 1.15 * 30_000

    def test_yields_events_in_time_order_inside_the_window(
        self, year: list[dict[str, Any]]
    ) -> None:
        stamps = list(times(year))
        assert stamps == sorted(stamps)
        window = plan(days=365, events=45_000)
        assert stamps[0].date() >= window.start
        assert stamps[-1].date() < window.end
        assert all(e["time"].endswith("+08:00") for e in year)


class TestEnvelopes:
    def test_uses_unique_ids_and_the_district_producers(self, year: list[dict[str, Any]]) -> None:
        ids = [e["id"] for e in year]
        assert len(set(ids)) == len(ids)
        assert {e["source"] for e in year} == set(SOURCES)
        UUID(ids[0])

    def test_sends_every_producer_event_type_but_scorecards(self, mix: Counter[str]) -> None:
        producer_types = {t for t, model in catalogue().items() if not model.SYSTEM}
        sent = set(mix)
        assert sent <= producer_types
        # Scorecards are computed and published by the scorecard projections; the demo
        # names no person, not even a fictional one, so it records no personal details.
        assert producer_types - sent == {
            "practice.assessment.scorecard_published.v1",
            "practice.volunteer.personal_details_recorded.v1",
        }

    def test_never_names_a_person(self, year: list[dict[str, Any]]) -> None:
        keys: set[str] = set()
        for event in year:
            kind = event["type"]
            if kind.startswith(("practice.volunteer.", "practice.attendance.")) and (
                kind != "practice.volunteer.team_registered.v1"  # a team's name is no person's
            ):
                keys.update(event["data"])
        assert keys
        assert not keys & {"name", "real_name", "phone", "id_number", "id_card"}


class TestValidity:
    @pytest.mark.parametrize(
        ("start", "days", "events"),
        [
            (date(2025, 1, 1), 60, 12_000),  # Spring Festival, the first registrations
            (date(2025, 6, 20), 50, 9_000),  # flood season, July revisions, half-year report
            (date(2024, 12, 10), 45, 8_000),  # a new year: dual check-in again, renewals
        ],
    )
    def test_every_event_passes_contracts_and_domain_rules(
        self, start: date, days: int, events: int
    ) -> None:
        outcomes = MemoryStore().replay(generate(seed=5, days=days, events=events, start=start))
        assert set(outcomes) == {"accepted"}

    def test_a_whole_year_passes(self, year: list[dict[str, Any]]) -> None:
        assert set(MemoryStore().replay(year)) == {"accepted"}


class TestRealism:
    def test_peaks_in_march_for_learning_from_lei_feng(self, year: list[dict[str, Any]]) -> None:
        per_month = Counter(
            e["time"][5:7] for e in year if e["type"] == "practice.attendance.checked_in.v1"
        )
        assert per_month["03"] > 1.3 * per_month["02"]
        assert per_month["03"] > per_month["11"]

    def test_serves_more_at_weekends(self, year: list[dict[str, Any]]) -> None:
        days = Counter(
            datetime.fromisoformat(e["time"]).weekday() >= 5
            for e in year
            if e["type"] == "practice.attendance.checked_in.v1"
        )
        assert days[True] / 2 > 1.3 * days[False] / 5

    def test_floods_bring_needs_findings_and_emergency_activities_in_summer(
        self, year: list[dict[str, Any]]
    ) -> None:
        summer = Counter(e["type"] for e in year if e["time"][5:7] in ("07", "08"))
        spring = Counter(e["type"] for e in year if e["time"][5:7] in ("04", "05"))
        assert summer["practice.need.submitted.v1"] > spring["practice.need.submitted.v1"]
        emergency = [
            e
            for e in year
            if e["type"] == "practice.activity.planned.v1"
            and e["data"]["category"] in ("emergency_rescue", "flood_patrol")
        ]
        assert emergency
        assert {e["time"][5:7] for e in emergency} <= {"06", "07", "08", "09"}

    def test_sets_a_theme_every_month_and_reports_on_it(self, year: list[dict[str, Any]]) -> None:
        themes = {e["data"]["month"] for e in year if e["type"] == "practice.activity.theme_set.v1"}
        assert {f"2025-{m:02d}" for m in range(1, 13)} <= themes
        bulletins = [e for e in year if e["type"] == "practice.assessment.bulletin_published.v1"]
        assert len(bulletins) == 11  # December's bulletin appears in January

    def test_keeps_sessions_mostly_between_one_and_four_hours(
        self, year: list[dict[str, Any]]
    ) -> None:
        opened: dict[tuple[str, str], datetime] = {}
        lengths: list[float] = []
        for event in year:
            key = (event["subject"], event["data"].get("session_id", ""))
            if event["type"] == "practice.attendance.checked_in.v1":
                opened[key] = datetime.fromisoformat(event["time"])
            elif event["type"] == "practice.attendance.checked_out.v1" and key in opened:
                seconds = (datetime.fromisoformat(event["time"]) - opened[key]).total_seconds()
                lengths.append(seconds / 3600)
        within = sum(1 for hours in lengths if 1 <= hours <= 4.25)
        assert within / len(lengths) > 0.7

    def test_takes_every_path_of_the_closed_loop(self, mix: Counter[str]) -> None:
        sent = mix
        for suffix in (
            "returned",
            "reassigned",
            "extension_requested",
            "extension_granted",
            "extension_denied",
            "verification_failed",
            "reopened",
            "voided",
            "closed",
        ):
            assert sent[f"practice.finding.{suffix}.v1"] > 0, suffix

    def test_generation_exposes_expectations_only_when_dirty(self) -> None:
        assert Generation(days=5, events=1_000).expected is None
        assert Generation(days=5, events=1_000, dirty=0.1).expected is not None
