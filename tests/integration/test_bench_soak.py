"""``bench/soak.py`` on real processes: ``/proc`` accounting, and a short soak (split topology).

The accounting must follow a service into its children (the workers of
``api --workers N``) and keep the time of processes that have ended (a
closed PostgreSQL connection's backend, a worker restarted): both are
checked on processes started here that burn a known amount of CPU. The
short soak runs the production topology with two API workers on a SQLite
store and a Tansu broker, so that the script cannot rot.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import psycopg
import pytest

from bench import soak

BURN = "import time\nend = time.process_time() + 0.6\nwhile time.process_time() < end: pass\n"
"""A child that uses 0.6 s of CPU."""

PARENT = f"""
import subprocess, sys, time
burn = {BURN!r}
live = subprocess.Popen(
    [sys.executable, "-c", burn + "print('burnt', flush=True)\\ntime.sleep(120)"],
    stdout=subprocess.PIPE, text=True,
)
live.stdout.readline()
subprocess.run([sys.executable, "-c", burn], check=True)  # ends and is waited for
print(live.pid, flush=True)
time.sleep(120)
"""
"""A parent with two children that each used 0.6 s: one still alive, one ended and reaped."""


@pytest.fixture
def family() -> Iterator[tuple[int, int]]:
    """The parent's and its live child's process ids, once both children have burnt."""
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    try:
        yield parent.pid, child
    finally:
        os.kill(child, signal.SIGKILL)
        parent.kill()
        parent.wait(10)


class TestAProcessTree:
    def test_counts_its_live_children_and_those_that_ended(self, family: tuple[int, int]) -> None:
        parent, child = family

        table = soak.process_table()
        used = soak.tree_cpu_s(table, parent)

        assert soak.descendants(table, parent) == [parent, child]
        assert table[parent].reaped_s >= 0.55  # the child that ended
        assert used is not None
        assert used >= 1.15  # both children's 0.6 s (and three interpreters starting)
        assert used >= table[parent].own_s + table[child].own_s + 0.55

    def test_memory_is_the_sum_over_the_tree(self, family: tuple[int, int]) -> None:
        parent, child = family

        whole = soak.tree_rss_mb(parent)
        alone, below = soak.rss_mb(parent), soak.rss_mb(child)

        assert whole is not None
        assert alone is not None
        assert below is not None
        assert abs(whole - (alone + below)) <= 1.0  # read a moment apart

    def test_a_process_that_has_ended_has_no_figure(self) -> None:
        ended = subprocess.Popen([sys.executable, "-c", "pass"])
        ended.wait(10)

        assert soak.descendants(soak.process_table(), ended.pid) == []
        assert soak.tree_cpu_s(soak.process_table(), ended.pid) is None
        assert soak.tree_rss_mb(ended.pid) is None
        assert soak.read_stat(f"/proc/{ended.pid}/stat") is None


@pytest.mark.postgres
class TestThePostgresServer:
    def test_keeps_the_time_of_a_connection_that_has_closed(self, pg_url: str) -> None:
        before = soak.postgres_cpu_s(soak.process_table())
        with psycopg.connect(pg_url) as conn:
            row = conn.execute("SELECT pg_backend_pid()").fetchone()
            assert row is not None
            backend = int(row[0])
            conn.execute("SELECT count(*) FROM generate_series(1, 10000000)").fetchone()
            spent = soak.read_stat(f"/proc/{backend}/stat")
        deadline = time.monotonic() + 5
        while Path(f"/proc/{backend}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # until the postmaster has waited for the backend that ended
        after = soak.postgres_cpu_s(soak.process_table())

        assert before is not None
        assert after is not None
        assert spent is not None
        assert spent.own_s >= 0.3
        assert not Path(f"/proc/{backend}").exists()
        # gone, yet counted (in the postmaster's reaped time); other sessions only add to it
        assert after - before >= spent.own_s


@pytest.mark.kafka
@pytest.mark.slow
class TestAShortSoak:
    def test_the_split_topology_is_measured_process_by_process(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        args = soak.parse_args(
            [
                *("--store", "sqlite", "--api-workers", "2"),
                *("--minutes", "0.3", "--warmup", "4", "--rate", "300"),
                *("--clients", "2", "--think-ms", "200", "--drain-limit", "60"),
                *("--work", str(tmp_path / "work")),
            ]
        )

        figures = soak.run(args)
        result = soak.report(figures, tmp_path / "soak-sqlite.json")
        table = soak.cpu_table(figures["cpu"])

        assert orjson.loads((tmp_path / "soak-sqlite.json").read_bytes()) == result
        assert figures["topology"] == "split"
        assert figures["api_workers"] == 2
        names = ["projections", "api", "worker"]
        assert figures["processes"] == names
        assert figures["error_count"] == 0, figures["errors"]
        assert figures["errors"]["exit_codes"] == dict.fromkeys(names, 0)
        assert figures["errors"]["logged_errors"] == {name: {} for name in names}
        assert figures["drain"]["complete"]
        assert set(figures["readiness_failures"]) == set(names)
        for name in names:
            assert figures["rss"][f"{name}_start_mb"] > 20
            assert figures["rss"][f"{name}_end_mb"] > 20
        # a supervisor and two workers, each with the app loaded: more than one process's worth
        assert figures["rss"]["api_start_mb"] > 1.5 * figures["rss"]["worker_start_mb"]
        parts = figures["cpu"]["parts"]
        assert list(parts) == [*names, "tansu", "soak", "queries"]
        for name in (*names, "tansu", "soak", "queries"):
            assert parts[name]["cores"] > 0, name
            assert f"\n  {name} " in table
        threads = parts["soak"]["threads"]
        assert threads["http_producer"] > 0
        assert threads["kafka_producer"] > 0
        assert figures["cpu"]["attributed_cores"] <= figures["cpu"]["machine_busy_cores"] + 0.1
        assert capsys.readouterr().out.count("\n") == 1  # stdout: the one line of JSON
