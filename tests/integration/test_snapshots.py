"""Aggregate snapshots: a cache that loads long histories fast and never changes a decision.

The property that matters: an aggregate loaded from its snapshot plus the
events after it is equal, attribute for attribute, to the same aggregate
replayed from all its events; and a store ingested with snapshots holds
exactly what one ingested without them holds. Snapshots made by other code,
unreadable ones and encrypted ones are covered on real SQLite files and real
PostgreSQL.
"""

from __future__ import annotations

import base64
import math
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import orjson
import pytest

from practice_events.application import PracticeEvents
from practice_events.bootstrap import build_app, build_pipeline
from practice_events.config import Settings
from practice_events.demo.generator import generate
from practice_events.domain.need import Stage
from practice_events.domain.volunteer import Session
from practice_events.ingest.pipeline import Pipeline, RawInput
from practice_events.store.snapshots import UnsnapshottableError, code_fingerprint, pack, unpack

INTERVAL = 5
EVENTS = 3_000


def demo(count: int = EVENTS + 600) -> list[bytes]:
    """The demo district's first ``count`` events, as producers' bytes."""
    return [orjson.dumps(e) for e in generate(seed=11, events=count)][:count]


DEMO = demo()


def ingest(pipeline: Pipeline, payloads: list[bytes], batch: int = 300) -> list[tuple[str, str]]:
    """Ingest in batches; every outcome as (status, code)."""
    outcomes: list[tuple[str, str]] = []
    for start in range(0, len(payloads), batch):
        chunk = [RawInput(p, channel="test") for p in payloads[start : start + batch]]
        result = pipeline.process(chunk)
        outcomes += [(o.status, o.code or "") for o in result.outcomes]
    return outcomes


def state(aggregate: Any) -> dict[str, Any]:
    """An aggregate's whole state, as the snapshot must reproduce it."""
    return {k: v for k, v in aggregate.__dict__.items() if k != "_pending_events"}


def originators(app: PracticeEvents) -> list[UUID]:
    """Every aggregate id in the store."""
    ids: set[UUID] = set()
    start = 1
    while page := app.notification_log.select(start, 1000):
        ids.update(UUID(str(n.originator_id)) for n in page)
        start = page[-1].id + 1
    return sorted(ids)


def snapshot_count(app: PracticeEvents) -> int:
    """Rows in the snapshots table."""
    return len(app.recorder.select_snapshots(originators(app)))  # type: ignore[attr-defined]


def tamper(app: PracticeEvents, statement: str) -> None:
    """Run an UPDATE on the snapshots table directly (SQLite or PostgreSQL)."""
    recorder: Any = app.recorder
    table = getattr(recorder, "snapshots_table", "aggregate_snapshots")
    schema = getattr(recorder.datastore, "schema", None)
    name = f'"{schema}"."{table}"' if schema else table
    with recorder.datastore.transaction(commit=True) as cursor:
        cursor.execute(statement.format(table=name))


@pytest.fixture
def settings(store_url: str) -> Settings:
    return Settings(store=store_url, snapshot_interval=INTERVAL)


@pytest.fixture
def loaded(settings: Settings) -> Iterator[PracticeEvents]:
    """A store holding the first demo events, ingested with snapshots every INTERVAL events."""
    app = build_app(settings)
    try:
        outcomes = ingest(build_pipeline(settings, app), DEMO[:EVENTS])
        assert {status for status, _ in outcomes} == {"accepted"}
        yield app
    finally:
        app.close()


# -- the encoding -----------------------------------------------------------------------------


class TestEncoding:
    def test_every_kind_of_value_comes_back_equal_and_of_the_same_type(self) -> None:
        moment = datetime(2025, 6, 30, 23, 30, tzinfo=UTC)
        value = {
            "text": "文明实践",
            "numbers": [1, 2.5, -3, True, None],
            "tuple": ("a", (1, 2)),
            "set": {1, 2},
            "frozen": frozenset({"x"}),
            "int keys": {2025: "report", 7: 1.5},
            "looks tagged": {"$tuple": [1]},
            "times": [moment, moment.date(), timedelta(days=1, seconds=3, microseconds=5)],
            "uuid": uuid4(),
            "stage": Stage.ACCEPTED,
            "session": Session("s-1", "WLY-01", None, "volunteer", moment, hours=1.5),
            "insurance": [(date(2025, 1, 1), date(2025, 12, 31))],
        }
        back = unpack(orjson.loads(orjson.dumps(pack(value))))
        assert back == value
        assert type(back["tuple"]) is tuple
        assert type(back["tuple"][1]) is tuple
        assert type(back["int keys"]) is dict
        assert list(back["int keys"]) == [2025, 7]
        assert type(back["session"]) is Session
        assert type(back["times"][1]) is date
        assert back["stage"] is Stage.ACCEPTED

    @pytest.mark.parametrize("value", [object(), math.nan, math.inf, b"bytes", 10**30 * 1.0j])
    def test_an_unknown_type_or_a_float_json_cannot_hold_is_refused(self, value: Any) -> None:
        with pytest.raises(UnsnapshottableError):
            pack({"x": value})

    @pytest.mark.parametrize(
        "packed",
        [
            {"$dataclass": ["os:PathLike", []]},
            {"$dataclass": ["practice_events.domain.volunteer", []]},
            {"$dataclass": ["practice_events.domain.volunteer:Volunteer", []]},
            {"$dataclass": ["practice_events.domain.volunteer:ACTIVE", []]},
            {"$dataclass": ["practice_events.domain.volunteer:Nowhere", []]},
            {"$dataclass": ["practice_events.domain.volunteer:Session", ["too few"]]},
            {"$nonsense": 1},
        ],
    )
    def test_a_row_can_only_build_this_packages_own_dataclasses(self, packed: Any) -> None:
        with pytest.raises(ValueError):
            unpack(packed)

    def test_the_fingerprint_is_stable_within_a_process(self) -> None:
        assert code_fingerprint() == code_fingerprint()
        assert len(code_fingerprint()) == 32


# -- on real stores ---------------------------------------------------------------------------


@pytest.mark.postgres
class TestLoading:
    def test_snapshot_plus_tail_equals_the_whole_history_for_every_aggregate(
        self, loaded: PracticeEvents, settings: Settings
    ) -> None:
        assert snapshot_count(loaded) > 50
        ids = originators(loaded)
        cold = build_pipeline(settings, loaded)
        restored = cold._load(ids)
        assert len(restored) == len(ids)
        replayed_from_snapshots = 0
        for agg_id in ids:
            assert state(restored[agg_id]) == state(loaded.repository.get(agg_id)), agg_id
            replayed_from_snapshots += cold._snapshot_at[agg_id] > 0
        assert replayed_from_snapshots == snapshot_count(loaded)

    def test_a_snapshot_made_by_other_code_is_ignored_then_replaced(
        self, loaded: PracticeEvents, settings: Settings
    ) -> None:
        tamper(loaded, "UPDATE {table} SET fingerprint = 'other code'")
        ids = originators(loaded)
        cold = build_pipeline(settings, loaded)
        restored = cold._load(ids)
        assert all(cold._snapshot_at[i] == 0 for i in ids)
        for agg_id in ids:
            assert state(restored[agg_id]) == state(loaded.repository.get(agg_id))
        ingest(cold, DEMO[EVENTS : EVENTS + 300])
        rows = loaded.recorder.select_snapshots(ids)  # type: ignore[attr-defined]
        assert any(r.fingerprint == code_fingerprint() for r in rows.values())

    def test_an_unreadable_snapshot_is_ignored(
        self, loaded: PracticeEvents, settings: Settings
    ) -> None:
        tamper(loaded, "UPDATE {table} SET state = substr(state, 1, 40)")
        ids = originators(loaded)
        restored = build_pipeline(settings, loaded)._load(ids)
        for agg_id in ids:
            assert state(restored[agg_id]) == state(loaded.repository.get(agg_id))

    def test_a_cold_pipeline_with_snapshots_decides_exactly_as_one_without(
        self, loaded: PracticeEvents, settings: Settings, tmp_path: Any
    ) -> None:
        plain_settings = Settings(store=f"sqlite:///{tmp_path / 'plain.db'}", snapshot_interval=0)
        plain = build_app(plain_settings)
        try:
            ingest(build_pipeline(plain_settings, plain), DEMO[:EVENTS])
            assert snapshot_count(plain) == 0
            later = DEMO[EVENTS:]
            with_snapshots = ingest(build_pipeline(settings, loaded), later, batch=97)
            without = ingest(build_pipeline(plain_settings, plain), later, batch=97)
            assert with_snapshots == without
            assert len(with_snapshots) == len(later)

            def events(app: PracticeEvents) -> list[tuple[Any, ...]]:
                out = []
                start = 1
                while page := app.notification_log.select(start, 1000):
                    for n in page:
                        body = orjson.loads(n.state)
                        body.pop("timestamp", None)
                        out.append((str(n.originator_id), n.originator_version, n.topic, body))
                    start = page[-1].id + 1
                return out

            assert events(loaded) == events(plain)
        finally:
            plain.close()


@pytest.mark.postgres
def test_snapshots_are_sealed_like_events(store_url: str) -> None:
    key = base64.b64encode(os.urandom(32)).decode()
    settings = Settings(store=store_url, snapshot_interval=INTERVAL, cipher_key=key, compress=True)
    app = build_app(settings)
    try:
        ingest(build_pipeline(settings, app), DEMO[:1500])
        ids = originators(app)
        rows = app.recorder.select_snapshots(ids)  # type: ignore[attr-defined]
        assert rows
        sites = {orjson.loads(p)["data"].get("home_site_id") for p in DEMO[:1500]} - {None}
        assert sites
        for row in rows.values():
            assert b"practice_events" not in row.state
            assert not any(site.encode() in row.state for site in sites)
        restored = build_pipeline(settings, app)._load(ids)
        for agg_id in ids:
            assert state(restored[agg_id]) == state(app.repository.get(agg_id))
    finally:
        app.close()
