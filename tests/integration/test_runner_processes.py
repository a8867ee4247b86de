"""Projection runners as separate processes, each owning a set of projections.

``practice-events projections run --only …`` processes over one event store
and one view store, with the test-only projections of
``tests/projection_plugins.py`` loaded through ``--plugin``:

* one process owns a slow projection (two seconds per event);
* another owns the network view, a tally of applications and a projection
  that fails on one event;
* a third owns the same tally (two runners of one projection).

While events keep arriving, the network view and the tally reach the head of
the log although the slow projection is far behind (in another process) and
the failing one has stopped (in the same process); the tally shows every
event applied exactly once. On SQLite the views file has one writer at a
time, so there the slow projection delays each of the others' commits by up
to one of its batches (``projections/viewstore.py`` gives writers fair turns);
on PostgreSQL nothing couples them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

import pytest

from tests.integration.loop_env import SITE_REGISTERED, LoopEnv

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = "tests.projection_plugins"
SLOW_SECONDS = 2.0
"""Per event: the slow projection needs 64 s for the 32 registrations; the test stops it early."""
CLI = (sys.executable, "-c", "import sys; from practice_events.cli import main; sys.exit(main())")


class RunnerProcess:
    """``practice-events projections run`` in a child process, its output in a file."""

    def __init__(self, store_url: str, log_path: Path, *options: str, slow_seconds: float) -> None:
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        self.process = subprocess.Popen(
            [*CLI, "projections", "run", "--store", store_url, "--plugin", PLUGIN, *options],
            cwd=ROOT,
            env={
                **os.environ,
                "PRACTICE_EVENTS_LOG_LEVEL": "warning",
                "PE_TEST_SLOW_SECONDS": str(slow_seconds),
            },
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def alive(self) -> bool:
        """True while the process runs."""
        return self.process.poll() is None

    def log(self) -> str:
        """What the process printed so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> int:
        """SIGTERM, wait, return the exit code (kill if it does not stop)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()
        return int(self.process.returncode)


@pytest.fixture
def env(store_url: str, tmp_path: Path) -> Iterator[LoopEnv]:
    """A store with a centre, stations and one station a projection cannot handle."""
    environment = LoopEnv(store_url, tmp_path, [])
    environment.sites(("C", "centre", None))
    environment.sites(*((f"S{n:02d}", "station", "C") for n in range(1, 11)))
    environment.sites(("FAIL-1", "station", "C"))
    environment.sites(*((f"S{n:02d}", "station", "C") for n in range(11, 21)))
    try:
        yield environment
    finally:
        environment.close()


def wait_for(
    done: Callable[[], bool], processes: Sequence[RunnerProcess], what: str, timeout: float = 60
) -> None:
    """Poll ``done`` until it holds; fail if a runner process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while not done():
        for process in processes:
            assert process.alive(), process.log()
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def registrations(env: LoopEnv) -> int:
    """How many site registrations the log holds."""
    return int(env.app.store.count_events_by_topic().get(SITE_REGISTERED, 0))


class TestSeparateRunnerProcesses:
    def test_a_slow_and_a_failing_projection_hold_back_no_other_process(
        self, env: LoopEnv, store_url: str, tmp_path: Path
    ) -> None:
        fail_position = env.app.last_position() - 10  # FAIL-1, then S11..S20 one batch
        slow = RunnerProcess(
            store_url,
            tmp_path / "slow.log",
            "--only",
            "test_slow",
            "--batch-size",
            "1",
            slow_seconds=SLOW_SECONDS,
        )
        fast = RunnerProcess(
            store_url,
            tmp_path / "fast.log",
            "--only",
            "network,test_tally,test_failing",
            slow_seconds=SLOW_SECONDS,
        )
        twin = RunnerProcess(
            store_url, tmp_path / "twin.log", "--only", "test_tally", "--batch-size", "3",
            slow_seconds=SLOW_SECONDS,
        )  # fmt: skip
        processes = [slow, fast, twin]
        try:
            wait_for(
                lambda: env.views.positions().get("test_slow", {}).get("position", 0) > 0,
                processes,
                "the slow projection to start",
            )
            # Events keep arriving while the runners work, one transaction each.
            for n in range(21, 31):
                env.sites((f"S{n:02d}", "station", "C"))
                time.sleep(0.05)
            head = env.app.last_position()

            def others_done() -> bool:
                tracked = env.views.positions()
                return (
                    all(
                        tracked.get(name, {}).get("position", 0) >= head
                        for name in ("network", "test_tally")
                    )
                    and tracked.get("test_failing", {}).get("failed_at") is not None
                )

            wait_for(others_done, processes, "the other projections to reach the head")
            tracked = env.views.positions()
            slow_position = int(tracked.get("test_slow", {}).get("position", 0))
            failing = tracked.get("test_failing", {})
            for process in processes:
                assert process.alive(), process.log()
        finally:
            codes = [p.stop() for p in processes]

        total = registrations(env)
        assert total == 32  # the centre, 30 stations and FAIL-1
        # The slow projection was still on its way (slow, not stuck) when the others were done.
        with env.views.read() as tx:
            slow_rows = int(tx.scalar("SELECT COUNT(*) FROM test_slow_sites"))
        assert 0 < slow_rows < total, (slow_rows, slow_position, head)
        assert slow_position < head
        # The failing projection stopped at FAIL-1 and recorded why.
        assert failing.get("failed_at") == fail_position, failing
        assert "cannot project FAIL-1" in str(failing.get("error"))
        # Both owners of the tally applied each registration once between them.
        with env.views.read() as tx:
            tally = tx.query("SELECT COUNT(*) AS n, MAX(applied) AS most FROM test_tally_counts")
            sites = int(tx.scalar("SELECT COUNT(*) FROM network_sites"))
        assert (tally[0]["n"], tally[0]["most"]) == (total, 1)
        assert sites == total
        assert codes == [0, 0, 0], [p.log() for p in processes]
