"""The batched projection runner on SQLite and PostgreSQL (projections/runner.py).

What the framework promises, each checked with real stores and small test
projections that record which events they saw:

* many events per view transaction, never more than the batch size;
* the view rows and the tracking position commit together (a failing batch
  leaves neither);
* a failing projection stops alone, reports the failing event, and resumes
  from its tracking position after a fix;
* ``wait(position)`` returns as soon as the position is processed, also for
  positions its topic filter skips, and never hangs;
* a rebuilt view equals the incrementally built one, row for row;
* lag in events and seconds; the ``projections`` commands.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest

from practice_events.cli import main
from projections.base import LoggedEvent, Projection
from projections.closed_loop import ClosedLoopProjection
from projections.network import NetworkProjection
from projections.runner import BatchedRunner, rebuild
from projections.viewstore import Tx
from tests.factories_finding import (
    ACKNOWLEDGED,
    FED_BACK,
    RECORDED,
    acknowledged,
    at,
    fed_back,
    recorded,
)
from tests.integration.loop_env import SITE_REGISTERED, LoopEnv

pytestmark = pytest.mark.postgres

SITE_UPDATED = "practice.site.updated.v1"
CLI = (sys.executable, "-c", "import sys; from practice_events.cli import main; sys.exit(main())")


class Recorder(Projection):
    """Writes one row per site registration; remembers the size of every batch."""

    NAME: ClassVar[str] = "test_recorder"
    TOPICS: ClassVar[tuple[str, ...]] = (SITE_REGISTERED,)
    TABLES: ClassVar[Mapping[str, str]] = {
        "events": (
            "CREATE TABLE IF NOT EXISTS {name} ("
            "position BIGINT PRIMARY KEY, subject TEXT NOT NULL, type TEXT NOT NULL)"
        )
    }

    def __init__(self, fail_on: str | None = None) -> None:
        super().__init__()
        self.fail_on = fail_on
        self.batches: list[int] = []

    def apply(self, tx: Tx, events: Sequence[LoggedEvent], tables: Mapping[str, str]) -> None:
        """Insert the rows of the whole batch, then fail if told to (after writing)."""
        self.batches.append(len(events))
        tx.executemany(
            f"INSERT INTO {tables['events']} (position, subject, type) VALUES (?, ?, ?)",
            [(e.position, e.subject, e.type) for e in events],
        )
        if self.fail_on is not None and any(e.subject == self.fail_on for e in events):
            msg = f"cannot project {self.fail_on}"
            raise RuntimeError(msg)


class Flaky(Recorder):
    """A second recorder, with its own name and tracking."""

    NAME: ClassVar[str] = "test_flaky"


@pytest.fixture
def env(store_url: str, tmp_path: Path) -> Iterator[LoopEnv]:
    """A store with a centre registered, and no projection yet."""
    environment = LoopEnv(store_url, tmp_path, [])
    environment.sites(("C", "centre", None))
    try:
        yield environment
    finally:
        environment.close()


def register(env: LoopEnv, *subjects: str) -> int:
    """Register stations under the centre, one ingest batch each; return the last position."""
    position = 0
    for subject in subjects:
        position = env.send(
            SITE_REGISTERED,
            subject,
            {"level": "station", "parent_id": "C", "name": subject},
            "2024-01-03T09:00:00+08:00",
        )
    return position


def recorded_subjects(env: LoopEnv, projection: Projection) -> list[str]:
    """The subjects a recorder's view holds, in log order."""
    table = projection.table_names()["events"]
    with env.views.read() as tx:
        return [r["subject"] for r in tx.query(f"SELECT subject FROM {table} ORDER BY position")]


def runner(env: LoopEnv, *projections: Projection, batch_size: int = 4) -> BatchedRunner:
    """A runner over the test's stores (stopped by the test or the fixture)."""
    built = BatchedRunner(env.app, env.views, projections, batch_size=batch_size)
    env.runner = built
    return built


class TestBatching:
    def test_many_events_per_transaction_never_more_than_the_batch(self, env: LoopEnv) -> None:
        subjects = [f"S{n:02d}" for n in range(1, 11)]
        register(env, *subjects)
        recorder = Recorder()
        counts = runner(env, recorder, batch_size=4).catch_up()
        # the centre and 10 stations: 11 registrations in pages of 4
        assert recorder.batches == [4, 4, 3]
        assert counts == {"test_recorder": 11}
        assert recorded_subjects(env, recorder) == ["C", *subjects]
        assert env.views.position("test_recorder") == env.app.last_position()

    def test_rows_and_position_commit_together(self, env: LoopEnv) -> None:
        register(env, "S01", "S02", "BAD", "S04")
        recorder = Recorder(fail_on="BAD")
        run = runner(env, recorder, batch_size=2)
        assert run.run_once("test_recorder") == 2  # C, S01
        position = env.views.position("test_recorder")
        with pytest.raises(RuntimeError, match="cannot project BAD"):
            run.run_once("test_recorder")  # S02, BAD: rows written, then the failure
        assert env.views.position("test_recorder") == position
        assert recorded_subjects(env, recorder) == ["C", "S01"]  # S02 rolled back too


def recorded_failure(env: LoopEnv, name: str, timeout: float = 5.0) -> dict[str, Any]:
    """The tracking row once the failure is written (the runner flags it in memory first)."""
    deadline = time.monotonic() + timeout
    while True:
        row = env.views.positions()[name]
        if row["failed_at"] is not None or time.monotonic() > deadline:
            return row
        time.sleep(0.02)


class TestFailure:
    def test_failing_projection_stops_alone_and_resumes_after_a_fix(self, env: LoopEnv) -> None:
        head = register(env, "S01", "BAD", "S03")
        bad_position = head - 1
        healthy, flaky = Recorder(), Flaky(fail_on="BAD")
        run = runner(env, healthy, flaky, batch_size=10)
        run.start()
        assert run.wait(head, names=["test_recorder"], timeout=10)
        assert not run.wait(head, names=["test_flaky"], timeout=10)  # failed: returns at once
        state = run.states["test_flaky"]
        assert (state.status, state.failed_position) == ("failed", bad_position)
        assert state.error == "RuntimeError: cannot project BAD"
        stored = recorded_failure(env, "test_flaky")
        assert (stored["failed_at"], stored["position"]) == (bad_position, bad_position - 1)
        assert recorded_subjects(env, flaky) == ["C", "S01"]  # applied one by one up to BAD
        assert recorded_subjects(env, healthy) == ["C", "S01", "BAD", "S03"]
        lag = run.lag()
        assert lag["test_flaky"]["status"] == "failed"
        assert lag["test_flaky"]["events_behind"] == 2
        run.stop()

        fixed = Flaky()  # the fix is deployed; the process restarts
        again = runner(env, fixed)
        again.catch_up()
        assert recorded_subjects(env, fixed) == ["C", "S01", "BAD", "S03"]
        assert env.views.positions()["test_flaky"]["error"] is None


class TestWait:
    def test_returns_fast_once_the_position_is_processed(self, env: LoopEnv) -> None:
        run = runner(env, Recorder())
        run.start()
        position = register(env, "S01")
        started = time.monotonic()
        assert run.wait(position, timeout=5)
        assert time.monotonic() - started < 1.0  # no fixed 100 ms sleeps, no timeout

    def test_does_not_hang_on_a_position_its_topics_skip(self, env: LoopEnv) -> None:
        run = runner(env, Recorder())
        run.start()
        position = env.send(SITE_UPDATED, "C", {"name": "中心"}, "2024-01-04T09:00:00+08:00")
        started = time.monotonic()
        assert run.wait(position, timeout=5)  # not a registration: skipped, still passed
        assert time.monotonic() - started < 1.0

    def test_gives_up_at_the_timeout(self, env: LoopEnv) -> None:
        run = runner(env, Recorder())
        run.start()
        started = time.monotonic()
        assert not run.wait(env.app.last_position() + 100, timeout=0.3)
        assert 0.25 < time.monotonic() - started < 2.0


class TestRebuild:
    def test_rebuild_swaps_in_a_view_equal_to_the_incremental_one(self, env: LoopEnv) -> None:
        env.sites(("C-S1", "station", "C"), ("C-S2", "station", "C"))
        network, loop = NetworkProjection(), ClosedLoopProjection()
        run = runner(env, network, loop, batch_size=2)
        for n in range(1, 6):
            subject = f"F{n}"
            env.send(RECORDED, subject, recorded(site_id="C-S1", responsible_unit_id="C-S1"), at(4))
            run.catch_up()  # the view grows batch by batch, interleaved with ingestion
            env.send(FED_BACK, subject, fed_back(), at(4, 10))
            if n % 2:
                env.send(ACKNOWLEDGED, subject, acknowledged(), at(5 + n, 9))
        run.catch_up()
        for projection in (network, loop):
            before = env.rows(projection)
            assert rebuild(env.app, env.views, projection, batch_size=1000) == (
                env.app.last_position()
            )
            assert env.rows(projection) == before
        # the swapped-in view keeps running incrementally
        env.send(ACKNOWLEDGED, "F2", acknowledged(), at(12, 9))
        run.catch_up()
        with env.views.read() as tx:
            stage = tx.scalar("SELECT stage FROM closed_loop_findings WHERE finding_id = 'F2'")
        assert stage == "ACKNOWLEDGED"

    def test_new_version_rebuilds_from_the_start(self, env: LoopEnv) -> None:
        register(env, "S01")
        runner(env, Recorder()).catch_up()

        class RecorderV2(Recorder):
            VERSION: ClassVar[int] = 2

        upgraded = RecorderV2()
        runner(env, upgraded).catch_up()
        assert upgraded.batches == [2]  # everything again, into fresh tables
        assert recorded_subjects(env, upgraded) == ["C", "S01"]


class TestLag:
    def test_events_and_seconds_behind(self, env: LoopEnv) -> None:
        run = runner(env, Recorder())
        head = register(env, "S01", "S02")
        lag = run.lag()["test_recorder"]
        assert (lag["position"], lag["head"], lag["events_behind"]) == (0, head, head)
        assert lag["seconds_behind"] >= 0
        run.catch_up()
        lag = run.lag()["test_recorder"]
        assert (lag["events_behind"], lag["seconds_behind"]) == (0, 0.0)


def json_out(out: str) -> Any:
    """The JSON document a command printed (log lines may surround it in tests)."""
    lines = out.splitlines()
    start = lines.index("[")
    end = lines.index("]", start)
    return orjson.loads("\n".join(lines[start : end + 1]))


class TestCommands:
    def test_status_and_rebuild(
        self,
        env: LoopEnv,
        store_url: str,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        monkeypatch.setenv("PRACTICE_EVENTS_CALENDAR_FILE", str(tmp_path / "calendar.toml"))
        env.send(RECORDED, "F1", recorded(site_id="C", responsible_unit_id="C"), at(4))
        head = env.app.last_position()
        assert main(["projections", "status", "--json", "--store", store_url]) == 0
        before: list[dict[str, Any]] = json_out(capsys.readouterr().out)
        network = next(r for r in before if r["projection"] == "network")
        assert (network["position"], network["events_behind"]) == (0, head)
        assert network["seconds_behind"] > 0  # the oldest waiting event is the centre

        assert main(["projections", "rebuild", "all", "--json", "--store", store_url]) == 0
        rebuilt = {r["projection"]: r for r in json_out(capsys.readouterr().out)}
        assert rebuilt["network"]["events"] == 1
        assert rebuilt["closed_loop"]["events"] == 1
        assert {r["position"] for r in rebuilt.values()} == {head}

        assert main(["projections", "status", "--json", "--store", store_url]) == 0
        after = json_out(capsys.readouterr().out)
        assert {(r["events_behind"], r["status"]) for r in after} == {(0, "ok")}
        assert main(["projections", "rebuild", "nope", "--store", store_url]) == 2


class TestConcurrentRunners:
    """Two processes running one projection (or a scheduler catching up beside it)."""

    def race(self, env: LoopEnv) -> Recorder:
        first, second = Recorder(), Recorder()
        runners = [
            BatchedRunner(env.app, env.views, [first], batch_size=3),
            BatchedRunner(env.app, env.views, [second], batch_size=3),
        ]
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def run(each: BatchedRunner) -> None:
            try:
                barrier.wait()
                each.catch_up()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the test below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(r,)) for r in runners]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not errors, errors
        return first

    def test_started_projection_applies_each_page_once(self, env: LoopEnv) -> None:
        runner(env, Recorder(), batch_size=1).run_once("test_recorder")  # the tracking row exists
        register(env, *(f"S{n:02d}" for n in range(1, 9)))
        recorder = self.race(env)
        assert recorded_subjects(env, recorder) == ["C", *(f"S{n:02d}" for n in range(1, 9))]

    def test_fresh_projection_applies_each_page_once(self, env: LoopEnv) -> None:
        register(env, *(f"S{n:02d}" for n in range(1, 9)))
        recorder = self.race(env)
        assert recorded_subjects(env, recorder) == ["C", *(f"S{n:02d}" for n in range(1, 9))]


class TestRunCommand:
    def test_runs_until_sigterm_then_exits_cleanly(self, env: LoopEnv, store_url: str) -> None:
        env.send(RECORDED, "F1", recorded(site_id="C", responsible_unit_id="C"), at(4))
        head = env.app.last_position()
        process = subprocess.Popen(
            [*CLI, "projections", "run", "--store", store_url],
            env={**os.environ, "PRACTICE_EVENTS_LOG_LEVEL": "warning"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while env.views.positions().get("closed_loop", {}).get("position", 0) < head:
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
                assert time.monotonic() < deadline, "projections run did not catch up"
                time.sleep(0.1)
        finally:
            process.send_signal(signal.SIGTERM)
            output = process.communicate(timeout=30)[0]
        assert process.returncode == 0, output
