"""The overdue scheduler on SQLite and PostgreSQL: once per (finding, stage, due time).

Calendar of ``loop_env.py`` (8 March 2024 a holiday, 16 March a make-up
working day). A normal finding fed back on Monday 4 March 10:00 must be
acknowledged by the end of Wednesday 6 March and rectified by the end of
Monday 25 March. The escalation ladder: 1, 5 and 15 working days after the
due time give levels 1, 2 and 3.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from practice_events.bootstrap import build_app
from practice_events.cli import main
from practice_events.domain.base import aggregate_id
from practice_events.ingest.pipeline import Pipeline
from projections.closed_loop import ClosedLoopProjection, get_finding
from projections.network import NetworkProjection
from projections.scheduler import OverdueScheduler, overdue_event_id
from tests.factories_finding import (
    ACKNOWLEDGED,
    EXT_DENIED,
    EXT_GRANTED,
    EXT_REQUESTED,
    FED_BACK,
    PLAN,
    RECORDED,
    acknowledged,
    at,
    deny,
    extension,
    fed_back,
    grant,
    plan,
    recorded,
)
from tests.harness import CST
from tests.integration.loop_env import LoopEnv

pytestmark = pytest.mark.postgres

OVERDUE = "practice.finding.overdue.v1"
ESCALATED = "practice.finding.escalated.v1"


def end_of(day: int, month: int = 3) -> datetime:
    """The last instant of a local day in 2024."""
    return datetime(2024, month, day, 23, 59, 59, 999_999, tzinfo=CST)


@pytest.fixture
def env(store_url: str, tmp_path: Path) -> Iterator[LoopEnv]:
    """A station, the closed-loop projection, and finding X fed back on 4 March 10:00."""
    environment = LoopEnv(store_url, tmp_path, [NetworkProjection(), ClosedLoopProjection()])
    environment.sites(("WLY", "centre", None), ("WLY-ZHAN-1", "station", "WLY"))
    environment.send(RECORDED, "X", recorded(), at(4, 9))
    environment.send(FED_BACK, "X", fed_back(), at(4, 10))
    try:
        yield environment
    finally:
        environment.close()


def scheduler(env: LoopEnv, now: datetime, *, catch_up: bool = True, app: Any = None) -> Any:
    """A scheduler whose clock says ``now`` (its own pipeline, no aggregate cache)."""
    application = app or env.app
    return OverdueScheduler(
        application,
        Pipeline(application, env.ctx, cache_size=0),
        env.views,
        calendar=env.calendar,
        policy=env.ctx.service("sla"),
        clock=lambda: now,
        catch_up=catch_up,
    )


def stored(env: LoopEnv, event_type: str) -> int:
    """How many events of a type the store holds."""
    return env.app.store.count_events_by_topic().get(event_type, 0)


class TestOnce:
    def test_emits_overdue_and_escalations_with_deterministic_times(self, env: LoopEnv) -> None:
        # 15 Mar noon: (6 Mar, 15 Mar] = 7 · 11-15 = 6 working days → level 2
        result = scheduler(env, datetime(2024, 3, 15, 12, 0, tzinfo=CST)).run_once()
        assert (result.candidates, result.emitted, result.rejected) == (1, 3, 0)
        env.catch_up()
        x = get_finding(env.views, "X", now=datetime(2024, 3, 15, 12, 0, tzinfo=CST))
        assert x is not None
        assert (x["overdue_stage"], x["escalation_level"]) == ("acknowledgement", 2)
        assert x["overdue_marked_at"] == "2024-03-06T16:00:00.000000+00:00"  # 7 Mar 00:00
        system = [e for e in x["timeline"] if e["source"] == "practice-events"]
        assert [(e["type"], e["time"]) for e in system] == [
            (OVERDUE, "2024-03-06T16:00:00.000000+00:00"),  # due + 1 µs = 7 Mar 00:00
            (ESCALATED, "2024-03-06T16:00:00.000000+00:00"),  # 1st working day: 7 Mar
            (ESCALATED, "2024-03-13T16:00:00.000000+00:00"),  # 5th: 7 11 12 13 14 → 14 Mar
        ]
        assert system[0]["event_id"] == overdue_event_id("X", "acknowledgement", end_of(6))
        assert [e["data"].get("level") for e in system] == [None, 1, 2]

    def test_second_pass_and_restart_emit_nothing_new(self, env: LoopEnv) -> None:
        now = datetime(2024, 3, 15, 12, 0, tzinfo=CST)
        env.catch_up()
        assert scheduler(env, now, catch_up=False).run_once().emitted == 3
        # the view has not seen those 3 events yet: it still names X as a candidate,
        # but the aggregate (the authority) has them, so nothing is sent again
        assert env.views.position("closed_loop") < env.app.last_position()
        stale = scheduler(env, now, catch_up=False).run_once()
        assert (stale.candidates, stale.emitted, stale.duplicates) == (1, 0, 0)
        restarted = scheduler(env, now).run_once()  # a new process: catches up, then scans
        assert (restarted.candidates, restarted.emitted) == (0, 0)
        assert (stored(env, OVERDUE), stored(env, ESCALATED)) == (1, 2)

    def test_later_pass_emits_only_what_became_due(self, env: LoopEnv) -> None:
        scheduler(env, datetime(2024, 3, 15, 12, 0, tzinfo=CST)).run_once()
        # 29 Mar: ack (6 Mar, 29 Mar] = 7 · 11-15 · 16W · 18-22 · 25-29 = 17 wd → level 3
        # (15th working day: 27 Mar); rectification due 25 Mar: overdue, 4 wd → level 1
        later = scheduler(env, datetime(2024, 3, 29, 12, 0, tzinfo=CST)).run_once()
        assert later.emitted == 3
        env.catch_up()
        x = get_finding(env.views, "X", now=datetime(2024, 3, 29, 12, 0, tzinfo=CST))
        assert x is not None
        system = [
            (e["type"], e["data"]["stage"], e["data"].get("level"), e["time"])
            for e in x["timeline"]
            if e["source"] == "practice-events"
        ][3:]
        assert system == [
            (OVERDUE, "rectification", None, "2024-03-25T16:00:00.000000+00:00"),
            (ESCALATED, "acknowledgement", 3, "2024-03-26T16:00:00.000000+00:00"),
            (ESCALATED, "rectification", 1, "2024-03-25T16:00:00.000000+00:00"),
        ]
        assert (stored(env, OVERDUE), stored(env, ESCALATED)) == (2, 4)

    def test_nothing_before_the_due_time(self, env: LoopEnv) -> None:
        result = scheduler(env, end_of(6)).run_once()  # the due instant itself: not yet late
        assert (result.candidates, result.emitted) == (0, 0)

    def test_target_met_late_is_never_marked(self, env: LoopEnv) -> None:
        env.send(ACKNOWLEDGED, "X", acknowledged(), at(7, 9))  # after the due time
        result = scheduler(env, datetime(2024, 3, 15, 12, 0, tzinfo=CST)).run_once()
        assert result.emitted == 0
        env.catch_up()
        x = get_finding(env.views, "X", now=datetime(2024, 3, 15, 12, 0, tzinfo=CST))
        assert x is not None
        assert (x["sla_ack"], x["overdue_stage"]) == ("met_late", None)


class TestExtension:
    def test_new_due_time_can_be_overdue_again(self, env: LoopEnv) -> None:
        env.send(ACKNOWLEDGED, "X", acknowledged(), at(5, 9))
        env.send(PLAN, "X", plan(), at(5, 15))
        env.send(EXT_REQUESTED, "X", extension(end_of(29)), at(25, 10))  # before 25 Mar ends
        first = scheduler(env, datetime(2024, 3, 26, 12, 0, tzinfo=CST)).run_once()
        assert first.emitted == 2  # rectification overdue (due 25 Mar) + escalation 1 (26 Mar)
        env.send(EXT_GRANTED, "X", grant(end_of(29)), at(26, 15))  # granted late: new due
        env.catch_up()
        x = get_finding(env.views, "X", now=datetime(2024, 3, 27, tzinfo=CST))
        assert x is not None
        assert (x["overdue_stage"], x["sla_rectify"]) == (None, "running")
        assert scheduler(env, datetime(2024, 3, 29, 12, 0, tzinfo=CST)).run_once().emitted == 0
        second = scheduler(env, datetime(2024, 4, 1, 12, 0, tzinfo=CST)).run_once()
        assert second.emitted == 1  # overdue for 29 Mar; level 1 already reached
        env.catch_up()
        x = get_finding(env.views, "X", now=datetime(2024, 4, 1, 12, 0, tzinfo=CST))
        assert x is not None
        assert x["overdue_stage"] == "rectification"
        assert x["overdue_marked_at"] == "2024-03-29T16:00:00.000000+00:00"
        assert stored(env, OVERDUE) == 2


class TestRace:
    def test_two_copies_sending_the_same_plan_store_it_once(
        self, env: LoopEnv, store_url: str
    ) -> None:
        env.catch_up()
        now = datetime(2024, 3, 15, 12, 0, tzinfo=CST)
        apps = [build_app(env.settings) for _ in range(2)]
        try:
            copies = [scheduler(env, now, catch_up=False, app=a) for a in apps]
            # both read the same view and aggregate before either sends: the worst case
            plans = [c.plan(now)[1] for c in copies]
            assert [len(events) for events in plans] == [3, 3]
            assert [e.id for e in plans[0]] == [e.id for e in plans[1]]
            assert [e.digest for e in plans[0]] == [e.digest for e in plans[1]]
            outcomes = race(
                [lambda c=c, p=p: c.pipeline.process(p) for c, p in zip(copies, plans, strict=True)]
            )
            every = [o for batch in outcomes for o in batch.outcomes]
            assert sum(o.status == "accepted" for o in every) == 3
            assert all(_lost_race(o) for o in every if o.status != "accepted")
        finally:
            for a in apps:
                a.close()
        assert (stored(env, OVERDUE), stored(env, ESCALATED)) == (1, 2)

    def test_two_running_copies_never_emit_twice(self, env: LoopEnv, store_url: str) -> None:
        now = datetime(2024, 3, 15, 12, 0, tzinfo=CST)
        apps = [build_app(env.settings) for _ in range(2)]
        try:
            copies = [scheduler(env, now, app=a) for a in apps]
            results = race([c.run_once for c in copies])
        finally:
            for a in apps:
                a.close()
        assert sum(r.emitted for r in results) == 3
        assert all(
            rejection["code"] == "ILLEGAL_TRANSITION" for r in results for rejection in r.rejections
        )
        assert (stored(env, OVERDUE), stored(env, ESCALATED)) == (1, 2)


def _lost_race(outcome: Any) -> bool:
    """The loser's copy is a duplicate of the winner's event (same id and digest).

    Or, when its duplicate check ran just before the winner committed and its
    aggregate load just after, the aggregate refuses it ("already marked" /
    "already escalated"): the ingest pipeline checks ``(source, id)`` before it
    loads aggregates. Either way the event is stored once.
    """
    if outcome.status == "duplicate":
        return True
    return outcome.code == "ILLEGAL_TRANSITION" and "already" in (outcome.reason or "")


def race(calls: list[Any]) -> list[Any]:
    """Run the calls on threads released together; return their results (raise any error)."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = calls[index]()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    if errors:
        raise errors[0]
    return results


class TestCommand:
    def test_scheduler_run_once(
        self,
        env: LoopEnv,
        store_url: str,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        monkeypatch.setenv("PRACTICE_EVENTS_CALENDAR_FILE", str(tmp_path / "calendar.toml"))
        # the real clock (long after March 2024): acknowledgement and rectification
        # are overdue, each escalated to level 3
        assert main(["scheduler", "run", "--once", "--json", "--store", store_url]) == 0
        first = capsys.readouterr().out
        assert '"emitted":8' in first
        assert main(["scheduler", "run", "--once", "--json", "--store", store_url]) == 0
        assert '"emitted":0' in capsys.readouterr().out


class ContendedPipeline(Pipeline):
    """The scheduler's pipeline, with another producer committing to one finding first.

    Right before each commit that touches the hot finding, a real second
    writer (the environment's own pipeline) stores an extension request or
    its denial on it: the commit then meets the version that writer took,
    exactly as under sustained ingestion. ``writes`` bounds how many times.
    """

    def __init__(self, env: LoopEnv, hot: str, writes: int) -> None:
        super().__init__(env.app, env.ctx, cache_size=0)
        self.env, self.hot, self.left = env, hot, writes
        self.hot_id = aggregate_id("finding", hot)
        self.written = 0
        self.batches: list[int] = []

    def _commit(self, work: Any, trackings: Any) -> Any:
        self.batches.append(len(work.touched))
        if self.written < self.left and self.hot_id in work.touched:
            request = self.written % 2 == 0  # request, deny, request … before the due time
            self.env.send(
                EXT_REQUESTED if request else EXT_DENIED,
                self.hot,
                extension(at(29, 18)) if request else deny(),
                at(20, 9, self.written),
            )
            self.written += 1
        return super()._commit(work, trackings)


class TestContention:
    def test_findings_busy_with_other_writers_do_not_hold_back_the_rest(self, env: LoopEnv) -> None:
        env.send(ACKNOWLEDGED, "X", acknowledged(), at(5, 9))
        for subject in ("Y", "Z"):
            env.send(RECORDED, subject, recorded(), at(4, 9))
            env.send(FED_BACK, subject, fed_back(), at(4, 10))
            env.send(ACKNOWLEDGED, subject, acknowledged(), at(5, 9))
        env.catch_up()
        now = datetime(2024, 3, 27, 12, 0, tzinfo=CST)  # rectification (due 25 Mar) overdue
        contended = ContendedPipeline(env, "Y", writes=6)  # 3 tries as a batch, 3 alone
        first = OverdueScheduler(
            env.app,
            contended,
            env.views,
            calendar=env.calendar,
            policy=env.ctx.service("sla"),
            clock=lambda: now,
            catch_up=False,
        ).run_once()
        assert contended.batches[:3] == [3, 3, 3]  # the whole batch conflicted three times
        assert contended.written == 6
        assert (first.candidates, first.emitted, first.rejected) == (3, 4, 0)  # X and Z
        assert stored(env, OVERDUE) == 2
        second = scheduler(env, now, catch_up=False).run_once()  # Y, now quiet
        assert (second.emitted, second.duplicates) == (2, 0)  # the aggregates say X, Z are done
        assert stored(env, OVERDUE) == 3
        assert stored(env, ESCALATED) == 3
        assert stored(env, EXT_REQUESTED) == 3
