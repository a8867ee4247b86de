"""Producer clocks: far future and far past are handled by rule, and never reorder history.

The rules (``Pipeline._check_time``), at their boundaries, with the
pipeline's clock fixed: a time more than ``max_future_skew`` ahead is
refused (``TIME_IN_FUTURE``), a time before ``earliest_event_time`` is
refused (``TIME_TOO_OLD``), a time more than ``max_past_skew`` behind is
stored and flagged ``BACKDATED``. Then a story on a real SQLite store with
the volunteer ledger: April's service is recorded first, March's arrives
late; the log keeps recording order, the late events get later positions,
and the ledger still counts March's hours in March (and a rebuild, which
replays the log in recording order, gives the same view).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import orjson
import pytest

from practice_events.bootstrap import build_app, build_pipeline
from practice_events.config import Settings
from practice_events.ingest.pipeline import BACKDATED, Outcome, Pipeline, RawInput
from projections.ledger import LedgerProjection, volunteers_summary
from projections.runner import LogReader
from tests.factories_volunteer import (
    CENTRE,
    HOURS_APPROVED,
    HOURS_RECORDED,
    REGISTERED,
    SITE_REGISTERED,
    STATION,
    VOLUNTEER,
    approve,
    back_fill,
    volunteer,
)
from tests.harness import CST, cloud_event
from tests.integration.viewstack import ViewStack

NOW = datetime(2024, 4, 12, 0, 0, tzinfo=CST)
"""The pipeline's clock in these scenarios."""


def t(month: int, day: int, hour: int = 9, minute: int = 0) -> datetime:
    """A Beijing time in 2024."""
    return datetime(2024, month, day, hour, minute, tzinfo=CST)


@pytest.fixture
def pipeline(sqlite_url: str) -> Iterator[Pipeline]:
    """The pipeline of a fresh store, its clock at NOW, with the clock rules from settings."""
    settings = Settings(
        store=sqlite_url,
        earliest_event_time=datetime(2018, 1, 1, tzinfo=CST),
        max_future_skew_seconds=300,
        max_past_skew_seconds=7 * 24 * 3600,
    )
    app = build_app(settings)
    built = build_pipeline(settings, app)
    built.clock = lambda: NOW
    try:
        yield built
    finally:
        app.close()


def centre_at(pipeline: Pipeline, subject: str, time: datetime) -> Outcome:
    """Send the registration of a centre timed ``time``; return its outcome."""
    event = cloud_event(SITE_REGISTERED, subject, {"level": "centre", "name": subject}, time=time)
    return pipeline.process([RawInput(orjson.dumps(event), channel="test")]).outcomes[0]


class TestRules:
    def test_refuses_a_time_beyond_the_future_skew_and_takes_one_within_it(
        self, pipeline: Pipeline
    ) -> None:
        assert centre_at(pipeline, "C-1", NOW + timedelta(seconds=300)).status == "accepted"
        late = centre_at(pipeline, "C-2", NOW + timedelta(seconds=301))
        assert (late.status, late.code) == ("rejected", "TIME_IN_FUTURE")
        assert "producer's clock" in (late.reason or "")

    def test_refuses_a_time_before_the_earliest_the_network_records(
        self, pipeline: Pipeline
    ) -> None:
        # earliest_event_time = 2018-01-01 here (the default is 2000): settings reach the rule.
        assert centre_at(pipeline, "C-1", datetime(2018, 1, 1, tzinfo=CST)).status == "accepted"
        old = centre_at(pipeline, "C-2", datetime(2017, 12, 31, 23, 59, 59, tzinfo=CST))
        assert (old.status, old.code) == ("rejected", "TIME_TOO_OLD")
        assert "2018-01-01T00:00:00+08:00" in (old.reason or "")
        rows = pipeline.app.recorder.select_rejections()  # type: ignore[attr-defined]
        assert [r["code"] for r in rows] == ["TIME_TOO_OLD"]

    def test_flags_a_late_event_and_stores_it(self, pipeline: Pipeline) -> None:
        on_time = centre_at(pipeline, "C-1", NOW - timedelta(days=7))
        late = centre_at(pipeline, "C-2", NOW - timedelta(days=7, seconds=1))
        assert (on_time.status, on_time.flags) == ("accepted", ())
        assert (late.status, late.flags) == ("accepted", (BACKDATED,))
        assert late.as_dict()["flags"] == ["BACKDATED"]
        assert "flags" not in on_time.as_dict()
        assert pipeline.app.recorder.count_ingested_keys() == 2  # type: ignore[attr-defined]


class TestHistoryOrder:
    def test_a_late_back_dated_event_is_recorded_after_and_counted_in_its_own_period(
        self, sqlite_url: str
    ) -> None:
        stack = ViewStack(sqlite_url, [LedgerProjection()], batch_size=3)
        stack.pipeline.clock = lambda: NOW
        try:
            stack.send(SITE_REGISTERED, CENTRE, {"level": "centre", "name": "中心"}, t(3, 1, 8))
            stack.send(
                SITE_REGISTERED,
                STATION,
                {"level": "station", "parent_id": CENTRE, "name": "站"},
                t(3, 1, 8),
            )
            stack.send(REGISTERED, VOLUNTEER, volunteer(), t(3, 1))
            # April's service (3 h) is recorded first ...
            april = [
                stack.send(
                    HOURS_RECORDED,
                    VOLUNTEER,
                    back_fill("BF-APR", start=t(4, 10, 9), end=t(4, 10, 12)),
                    t(4, 10, 12, 30),
                ),
                stack.send(HOURS_APPROVED, VOLUNTEER, approve("BF-APR"), t(4, 11)),
            ]
            # ... then March's (2 h) arrives, three weeks late.
            march = [
                stack.send(
                    HOURS_RECORDED,
                    VOLUNTEER,
                    back_fill("BF-MAR", start=t(3, 20, 9), end=t(3, 20, 11)),
                    t(3, 20, 11, 30),
                ),
                stack.send(HOURS_APPROVED, VOLUNTEER, approve("BF-MAR"), t(3, 21)),
            ]

            # Flagged by the rule, stored all the same.
            assert [r.outcomes[0].flags for r in april] == [(), ()]
            assert [r.outcomes[0].flags for r in march] == [(BACKDATED,), (BACKDATED,)]
            # History is the order of recording: the late events come after, whatever their time.
            last_april = max(r.last_position for r in april)
            assert min(r.outcomes[0].position or 0 for r in march) > last_april
            log = LogReader(stack.app).read(0, 1000)
            sessions = [
                (e.data.get("session_id"), e.time)
                for e in log
                if e.type in (HOURS_RECORDED, HOURS_APPROVED)
            ]
            assert [s for s, _ in sessions] == ["BF-APR", "BF-APR", "BF-MAR", "BF-MAR"]
            assert sessions[2][1] < sessions[0][1], "the log is not sorted by producer time"

            # The ledger counts each hour in the business period its time names.
            stack.catch_up()
            assert volunteers_summary(stack.views, {STATION}, "2024-03")["approved_hours"] == 2.0
            assert volunteers_summary(stack.views, {STATION}, "2024-04")["approved_hours"] == 3.0
            stack.assert_rebuild_equals_incremental(LedgerProjection())
        finally:
            stack.close()
