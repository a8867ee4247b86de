"""``bench/soak.py``'s accounting: where the CPU went, from two readings of the counters.

The readings here are built by hand (``tests/integration/test_bench_soak.py``
reads real ones from ``/proc`` and runs a short soak), so that each rule of
the accounting is checked with figures whose right answer is known.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import soak

NOTHING = soak.CpuReading(
    t=0.0,
    services={},
    broker=None,
    postgres=None,
    soak=0.0,
    threads={},
    machine_busy=0.0,
    machine_steal=0.0,
)


def reading(t: float, **counters: Any) -> soak.CpuReading:
    """A reading at ``t`` with every counter at zero (or not measured) but those given."""
    return dataclasses.replace(NOTHING, t=t, **counters)


class TestCoresUsed:
    def test_each_part_is_its_cpu_seconds_over_the_wall_seconds_between_the_readings(
        self,
    ) -> None:
        first = reading(
            100.0,
            services={"api": 10.0, "worker": 4.0, "projections": 1.0},
            broker=2.0,
            postgres=50.0,
            soak=3.0,
            machine_busy=1000.0,
            machine_steal=5.0,
        )
        last = reading(
            110.0,
            services={"api": 18.0, "worker": 9.0, "projections": 4.0},
            broker=2.5,
            postgres=54.0,
            soak=4.0,
            machine_busy=1019.0,
            machine_steal=5.5,
        )

        cpu = soak.cpu_figures(first, last, {}, queries_s=0.5, postgres_database_s=3.0)

        parts = cpu["parts"]
        assert cpu["seconds"] == 10.0
        assert parts["api"] == {"cpu_s": 8.0, "cores": 0.8}
        assert parts["worker"]["cores"] == 0.5
        assert parts["projections"]["cores"] == 0.3
        assert parts["postgres"]["cores"] == 0.4
        assert parts["tansu"]["cores"] == 0.05
        assert parts["soak"]["cores"] == 0.1
        assert parts["queries"] == {"cpu_s": 0.5, "cores": 0.05}
        assert cpu["postgres_soak_database"]["cores"] == 0.3
        # the soak database's backends are a part of postgres: not counted twice
        assert cpu["attributed_cores"] == 2.2
        assert cpu["machine_busy_cores"] == 1.9
        assert cpu["other_cores"] == -0.3
        assert cpu["machine_steal_cores"] == 0.05

    def test_a_process_gone_at_either_reading_has_no_figure_and_no_share(self) -> None:
        first = reading(0.0, services={"api": 1.0, "worker": None}, machine_busy=0.0)
        last = reading(2.0, services={"api": None, "worker": 3.0}, machine_busy=4.0)

        cpu = soak.cpu_figures(first, last, {}, queries_s=None, postgres_database_s=None)

        assert cpu["parts"]["api"] == {"cpu_s": None, "cores": None}
        assert cpu["parts"]["worker"] == {"cpu_s": None, "cores": None}
        assert cpu["parts"]["queries"]["cores"] is None
        assert "postgres" not in cpu["parts"]  # not measured on SQLite
        assert cpu["attributed_cores"] == 0.0
        assert cpu["other_cores"] == 2.0


class TestTheSoaksOwnThreads:
    def test_named_threads_librdkafkas_and_the_rest_add_up_to_the_process(self) -> None:
        first = reading(
            0.0,
            soak=10.0,
            threads={1: ("python", 6.0), 7: ("python", 1.0), 9: ("python", 0.5)},
        )
        last = reading(
            4.0,
            soak=18.0,
            threads={
                1: ("python", 7.0),  # the main thread: harness
                7: ("python", 3.0),  # the HTTP producer, running at the first reading
                8: ("python", 1.2),  # the Kafka producer, started after it
                11: ("rdk:main", 0.4),  # its client's threads
                12: ("rdk:broker-1", 0.6),
                9: ("python", 0.9),  # the tracker
            },
        )

        cpu = soak.cpu_figures(
            first,
            last,
            {"http_producer": 7, "kafka_producer": 8, "tracker": 9},
            queries_s=None,
            postgres_database_s=None,
        )

        threads = cpu["parts"]["soak"]["threads"]
        assert threads == {
            "http_producer": 0.5,
            "kafka_producer": 0.55,
            "tracker": 0.1,
            # 8 s in all: 1 s of the main thread and 2.4 s of threads that ended in between
            "harness": 0.85,
        }
        assert round(sum(threads.values()), 3) == cpu["parts"]["soak"]["cores"] == 2.0

    def test_a_thread_id_reused_by_another_thread_counts_from_zero(self) -> None:
        first = reading(0.0, soak=5.0, threads={7: ("rdk:main", 4.0)})
        last = reading(1.0, soak=5.5, threads={7: ("python", 0.5)})

        cpu = soak.cpu_figures(
            first, last, {"http_producer": 7}, queries_s=None, postgres_database_s=None
        )

        assert cpu["parts"]["soak"]["threads"] == {"http_producer": 0.5, "harness": 0.0}


class TestTheOtherProcesses:
    def test_the_busiest_outside_the_parts_are_named_by_their_own_cpu(self) -> None:
        def stat(comm: str, own: float, reaped: float = 0.0) -> soak.ProcStat:
            return soak.ProcStat(ppid=1, comm=comm, own_s=own, reaped_s=reaped)

        first = reading(
            0.0,
            table={10: stat("pytest", 5.0, 1.0), 11: stat("api", 1.0), 12: stat("rg", 9.0)},
            claimed=frozenset({11}),
        )
        last = reading(
            10.0,
            table={
                # 1 s itself; 3 s of a child that ended, from before the first reading perhaps
                10: stat("pytest", 6.0, 4.0),
                11: stat("api", 9.0),  # a part: not an other
                12: stat("make", 0.5),  # the pid of a process that ended, reused
                13: stat("ruff", 2.0),  # started in between
                14: stat("idle", 0.01),  # too little to name
                15: stat("soak-child", 7.0),  # claimed at the last reading only
            },
            claimed=frozenset({15}),
            commands={10: "python -m pytest", 13: "ruff check"},
        )

        cpu = soak.cpu_figures(first, last, {}, queries_s=None, postgres_database_s=None)

        assert cpu["other_top"] == [
            {"pid": 13, "comm": "ruff", "cores": 0.2, "command": "ruff check"},
            {"pid": 10, "comm": "pytest", "cores": 0.1, "command": "python -m pytest"},
            {"pid": 12, "comm": "make", "cores": 0.05},
        ]
        assert "    pytest (10)" in soak.cpu_table(cpu)
        assert soak.cpu_table(cpu).count("python -m pytest") == 1


class TestReadingProcStat:
    def test_a_command_line_is_shortened_to_one_line_without_credentials(self) -> None:
        code = "import time\ntime.sleep(20)  # //soak:secret@db"
        other = subprocess.Popen([sys.executable, "-c", code, "more", "words"])
        try:
            deadline = time.monotonic() + 10
            while "sleep" not in (line := soak.command_line(other.pid)):
                assert time.monotonic() < deadline, line  # until the child has started python
                time.sleep(0.01)
        finally:
            other.kill()
            other.wait(10)

        assert line == "python -c import time time.sleep(20) # //***@db"
        assert soak.command_line(other.pid) == ""

    def test_a_name_with_spaces_and_parentheses_does_not_shift_the_fields(
        self, tmp_path: Path
    ) -> None:
        ticks = soak.CLOCK_TICKS
        stat = tmp_path / "stat"
        fields = ["S", "41", *["0"] * 9, str(3 * ticks), str(ticks), str(2 * ticks), "0", "20"]
        stat.write_text(f"1234 (uvicorn (worker) 2) {' '.join(fields)} 0 1\n")

        parsed = soak.read_stat(str(stat))

        assert parsed == soak.ProcStat(ppid=41, comm="uvicorn (worker) 2", own_s=4.0, reaped_s=2.0)
        assert soak.read_stat(str(tmp_path / "gone")) is None


class TestTheTable:
    def test_every_part_and_thread_has_a_line_and_a_missing_figure_shows_as_a_dash(self) -> None:
        first = reading(0.0, services={"api": 1.0, "worker": 1.0}, postgres=0.0, soak=0.0)
        last = reading(
            2.0,
            services={"api": 2.0, "worker": None},
            postgres=1.0,
            soak=1.0,
            machine_busy=3.0,
        )
        cpu = soak.cpu_figures(
            first, last, {"tracker": None}, queries_s=0.2, postgres_database_s=0.8
        )

        lines = soak.cpu_table(cpu).splitlines()

        assert lines[0] == "CPU over the sending phase: 2.0 s, " + f"{cpu['cpus']} CPUs"
        named = {line.split()[0]: line.split()[1:] for line in lines[2:]}
        assert named["api"] == ["1.0", "0.50"]
        assert named["worker"] == ["-", "-"]
        assert named["postgres"] == ["1.0", "0.50"]
        assert named["tracker"] == ["0.00"]
        assert named["harness"] == ["0.50"]
        assert named["queries"] == ["0.2", "0.10"]
        assert any(line.split()[:2] == ["of", "which"] and "0.40" in line for line in lines)
        assert [line.split()[-1] for line in lines[-4:]] == ["1.60", "1.50", "-0.10", "0.00"]


class TestTheCommandLine:
    def test_the_production_topology_is_the_default(self) -> None:
        args = soak.parse_args([])

        assert args.topology == "split"
        assert args.api_workers == 1

    def test_all_in_one_is_there_to_compare_with(self) -> None:
        args = soak.parse_args(["--topology", "all-in-one", "--store", "postgres"])

        assert args.topology == "all-in-one"
