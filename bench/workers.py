"""Benchmark: 1, 2 and 4 ingestion worker processes in one consumer group, into PostgreSQL.

Not a test: it prints figures. For each scenario and each worker count
(``--workers 1,2,4``) it creates a fresh ``--partitions`` topic (8) on a
Tansu broker and a fresh PostgreSQL database, starts that many ``python -m
consumers.worker`` processes in one group, waits until the group is stable
(every worker owns partitions and together they own them all), then produces
the demo events (CloudEvents binary mode) and times from the first record
produced until the store tracks the last offset of every partition. It
samples CPU time from ``/proc`` over that window (the worker processes, the
PostgreSQL backends serving the bench's database, PostgreSQL's background
processes, the broker, the whole machine), checks in the store that accepted
keys + rejections = records produced, and counts dead letters by code.

Scenarios (``--scenarios``), the two partitionings of docs/operations.md:

``district``
    ``--districts`` (8) demo districts (``practice_events.demo.districts``,
    ``--events`` in all), each district's events keyed by its code into a
    partition of its own (district *i* -> partition *i* mod ``--partitions``):
    every reference but the province-wide checklist stays in its partition;
``subject``
    one demo district keyed by subject (what ``practice-events demo publish``
    sends): aggregates spread evenly, but an event often names an aggregate
    created in another partition, which the worker may not have stored yet;
    it then holds that partition back (``--reference-wait-ms``, the worker's
    default unless given) and counts a ``reference_hold``.

Prints events/s, CPU per event, the ratio against one worker and one line of
JSON (also written to ``bench/results/workers.json``).

    .venv/bin/python bench/workers.py                       # 100k events, both scenarios
    .venv/bin/python bench/workers.py --events 20000        # a quick run
    .venv/bin/python bench/workers.py --scenarios subject --reference-wait-ms 0
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the Tansu launcher lives in tests/kafka_broker.py

Header = tuple[str, bytes]
Message = tuple[bytes | None, bytes, list[Header], int | None]
"""Key, value, headers and the partition the producer chose (None: by the key's hash)."""

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- input and partition keys ------------------------------------------------------------


def district_codes(count: int) -> list[str]:
    """``WLY`` (the generator's own district) and ``D02``, ``D03`` ... after it."""
    return ["WLY", *(f"D{i:02d}" for i in range(2, count + 1))]


def scenario_messages(
    scenario: str, events: int, seed: int, districts: int, partitions: int
) -> list[Message]:
    """The scenario's demo events as binary-mode Kafka messages with their keys and partitions."""
    from practice_events.demo.cli import binary_message

    if scenario == "subject":
        from practice_events.demo.generator import generate

        return [(*binary_message(e), None) for e in generate(seed=seed, events=events)]
    if scenario != "district":
        msg = f"unknown scenario {scenario!r}"
        raise ValueError(msg)
    from practice_events.demo.districts import province_history

    codes = district_codes(districts)
    partition_of = {code: index % partitions for index, code in enumerate(codes)}
    out: list[Message] = []
    for event in province_history(codes, seed=seed, events_per_district=events // districts):
        _, value, headers = binary_message(event)
        code = str(event["district"])
        out.append((code.encode(), value, headers, partition_of[code]))
    return out


def produce(bootstrap: str, topic: str, messages: Sequence[Message]) -> dict[int, int]:
    """Produce in order with confluent-kafka; return the last offset of each partition."""
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "linger.ms": 20,
            "enable.idempotence": False,
            "queue.buffering.max.messages": 500_000,
            # The Java client's partitioner (murmur2), as kafka-python producers use.
            "partitioner": "murmur2_random",
        }
    )
    last: dict[int, int] = {}
    failures: list[str] = []

    def delivered(error: Any, msg: Any) -> None:
        if error is not None:
            failures.append(str(error))
        else:
            last[msg.partition()] = max(last.get(msg.partition(), -1), msg.offset())

    for key, value, raw_headers, partition in messages:
        headers: list[tuple[str, str | bytes | None]] = list(raw_headers)
        where = {} if partition is None else {"partition": partition}
        while True:
            try:
                producer.produce(
                    topic, value=value, key=key, headers=headers, on_delivery=delivered, **where
                )
                break
            except BufferError:
                producer.poll(0.1)
    remaining = producer.flush(120)
    if remaining or failures:
        msg = f"produce failed: {failures[:1] or remaining}"
        raise RuntimeError(msg)
    return last


# -- CPU accounting from /proc -------------------------------------------------------------


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from ``/proc/stat``."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # without guest time, which user already counts
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


BACKGROUND = frozenset(
    {
        "checkpointer",
        "background",
        "walwriter",
        "autovacuum",
        "logical",
        "stats",
        "archiver",
        "startup",
        "walsender",
        "walreceiver",
    }
)
"""First words of the titles of PostgreSQL's shared background processes."""


def postgres_processes(database: str) -> tuple[list[int], list[int]]:
    """PIDs of the processes serving ``database`` and of PostgreSQL's background processes.

    Read from process titles: ``postgres: 15/main: USER DB HOST(PORT) STATE``
    for a backend, ``postgres: 15/main: autovacuum worker DB`` for a vacuum
    of it, ``postgres: 15/main: walwriter`` for the shared background
    processes. Other databases' backends (other people's tests on the shared
    server) are left out.
    """
    backends: list[int] = []
    background: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        words = title.split()
        if len(words) < 3 or words[0] != "postgres:" or not words[1].endswith(":"):
            continue
        if database in words[3:]:
            backends.append(int(entry.name))
        elif words[2] in BACKGROUND and not (words[2] == "autovacuum" and len(words) > 4):
            background.append(int(entry.name))
    return backends, background


@dataclass
class CpuSample:
    """CPU seconds used so far by each watched process and by the machine."""

    by_pid: dict[int, float]
    machine_busy: float
    machine_total: float
    at: float

    @classmethod
    def take(cls, pids: Sequence[int]) -> CpuSample:
        """Sample now."""
        busy, total = machine_cpu()
        return cls({p: process_cpu(p) for p in pids}, busy, total, time.perf_counter())


def cpu_between(start: CpuSample, end: CpuSample, pids: Sequence[int]) -> float:
    """CPU seconds the given processes used between two samples (new ones from 0)."""
    return sum(end.by_pid.get(p, 0.0) - start.by_pid.get(p, 0.0) for p in pids)


# -- worker processes ------------------------------------------------------------------


@dataclass
class WorkerProcess:
    """One ``python -m consumers.worker`` process with its log and health port."""

    process: subprocess.Popen[bytes]
    log_path: Path
    health_port: int
    log_file: IO[bytes]

    def log_lines(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far."""
        out = []
        for line in self.log_path.read_bytes().splitlines():
            try:
                out.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue
        return out

    def assignment(self) -> set[int] | None:
        """The partitions assigned to it by the latest rebalance (None mid-rebalance)."""
        current: set[int] | None = None
        for line in self.log_lines():
            if line.get("event") == "partitions_assigned":
                current = set(line.get("partitions") or [])
            elif line.get("event") == "partitions_revoked":
                current = None
        return current

    def stats(self) -> dict[str, Any]:
        """The worker's counters from its ``/readyz``."""
        url = f"http://127.0.0.1:{self.health_port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                body: dict[str, Any] = orjson.loads(answer.read())
        except urllib.error.HTTPError as exc:  # 503 while not ready: same counters
            body = orjson.loads(exc.read())
        return body

    def failure(self) -> str:
        """Why the process ended: its exit code and the end of its log."""
        tail = self.log_path.read_text(errors="replace")[-3000:]
        return f"a worker exited with {self.process.returncode}:\n{tail}"

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait; return the exit code (kill -9 if it does not stop)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log_file.close()
        return int(self.process.returncode)


def start_worker(
    index: int,
    *,
    bootstrap: str,
    topic: str,
    group: str,
    store_url: str,
    logs: Path,
    args: argparse.Namespace,
    run: int = 0,
) -> WorkerProcess:
    """Start one worker process in ``group``."""
    from tests.kafka_broker import free_port

    port = free_port()
    log_path = logs / f"run-{run}-worker-{index}.log"
    log_file = log_path.open("wb")
    env = {
        **os.environ,
        "PRACTICE_EVENTS_LOG_FORMAT": "json",
        "PRACTICE_EVENTS_LOG_LEVEL": "info",
    }
    env.pop("PRACTICE_EVENTS_CONFIG", None)
    command = [
        sys.executable,
        "-m",
        "consumers.worker",
        "--kafka",
        bootstrap,
        "--topic",
        topic,
        "--group",
        group,
        "--dlq-topic",
        f"{topic}.dlq",
        "--batch-size",
        str(args.batch_size),
        "--session-timeout-ms",
        "6000",
        "--store",
        store_url,
        "--health-port",
        str(port),
    ]
    if args.reference_wait_ms is not None:
        command += ["--reference-wait-ms", str(args.reference_wait_ms)]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return WorkerProcess(process, log_path, port, log_file)


def wait_for_stable_group(
    workers: Sequence[WorkerProcess], partitions: int, timeout: float = 120.0
) -> float:
    """Wait until every worker owns partitions and together they own each once; return s."""
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for worker in workers:
            if worker.process.poll() is not None:
                raise RuntimeError(worker.failure())
        owned = [w.assignment() for w in workers]
        if all(owned):
            sets = [o for o in owned if o]
            union = set().union(*sets)
            if union == set(range(partitions)) and sum(len(s) for s in sets) == partitions:
                return time.perf_counter() - started
        time.sleep(0.2)
    msg = f"the group did not settle within {timeout} s"
    raise RuntimeError(msg)


# -- one run ---------------------------------------------------------------------------------


@contextmanager
def fresh_database(admin_url: str) -> Iterator[tuple[str, str]]:
    """Create a fresh PostgreSQL database; yield (store URL, name); drop it afterwards."""
    import psycopg

    name = f"pe_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}", name
    finally:
        # Other sessions may be restarting the shared server: try for a minute.
        for attempt in range(12):
            try:
                with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                break
            except psycopg.OperationalError:
                if attempt == 11:
                    print(f"could not drop the scratch database {name}", file=sys.stderr)
                time.sleep(5)


@dataclass
class RunResult:
    """What one run with a given number of workers measured."""

    workers: int
    records: int
    seconds: float
    group_settle_seconds: float
    cpu_seconds: dict[str, float]
    machine_busy_cores: float
    accepted: int
    rejected_by_code: dict[str, int]
    events_stored: int
    records_by_worker: list[int]
    holds_by_worker: list[int]
    batches_by_worker: list[int]
    exit_codes: list[int]
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready figures of the run."""
        per_event = {
            name: round(seconds * 1e6 / self.records, 1)
            for name, seconds in self.cpu_seconds.items()
        }
        return {
            "workers": self.workers,
            "records": self.records,
            "seconds": round(self.seconds, 2),
            "events_per_second": round(self.records / self.seconds, 1),
            "group_settle_seconds": round(self.group_settle_seconds, 1),
            "cpu_seconds": {k: round(v, 2) for k, v in self.cpu_seconds.items()},
            "cpu_us_per_event": per_event,
            "cpu_cores_used": {k: round(v / self.seconds, 2) for k, v in self.cpu_seconds.items()},
            "machine_busy_cores": round(self.machine_busy_cores, 2),
            "accepted": self.accepted,
            "dead_lettered": sum(self.rejected_by_code.values()),
            "rejected_by_code": dict(sorted(self.rejected_by_code.items())),
            "events_stored": self.events_stored,
            "records_by_worker": self.records_by_worker,
            "reference_holds": sum(self.holds_by_worker),
            "batches": sum(self.batches_by_worker),
            "exit_codes": self.exit_codes,
            **self.extra,
        }


def run_once(
    count: int,
    messages: Sequence[Message],
    bootstrap: str,
    broker_pid: int | None,
    args: argparse.Namespace,
) -> RunResult:
    """Ingest ``messages`` with ``count`` worker processes into a fresh database."""
    from kafka.admin import KafkaAdminClient, NewTopic

    from practice_events.bootstrap import build_app
    from practice_events.config import Settings

    topic = f"bench-workers-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, args.partitions, 1), NewTopic(f"{topic}.dlq", 1, 1)])
    finally:
        admin.close()
    with (
        fresh_database(args.pg_admin) as (store_url, database),
        tempfile.TemporaryDirectory() as scratch,
    ):
        tmp = args.keep_logs or scratch
        Path(tmp).mkdir(parents=True, exist_ok=True)
        app = build_app(Settings(store=store_url))  # tables exist before the workers start
        workers: list[WorkerProcess] = []
        try:
            group = f"bench-{uuid.uuid4().hex[:8]}"
            workers = [
                start_worker(
                    i,
                    bootstrap=bootstrap,
                    topic=topic,
                    group=group,
                    store_url=store_url,
                    logs=Path(tmp),
                    args=args,
                    run=count,
                )
                for i in range(count)
            ]
            settle = wait_for_stable_group(workers, args.partitions)
            worker_pids = [w.process.pid for w in workers]
            backends, background = postgres_processes(database)
            watched = [*worker_pids, *backends, *background, *([broker_pid] if broker_pid else [])]
            before = CpuSample.take(watched)
            last = produce(bootstrap, topic, messages)
            produced_at = time.perf_counter()
            wait_until_stored(app, topic, last, workers, timeout=args.timeout)
            # Backends opened during the run count from zero.
            backends = sorted(set(backends) | set(postgres_processes(database)[0]))
            after = CpuSample.take([*watched, *backends])
            seconds = after.at - before.at
            stats = settled_stats(workers, len(messages))
            rejected = app.store.count_rejections()
            accepted = app.store.count_ingested_keys()
            stored = sum(app.store.count_events_by_topic().values())
        finally:
            codes = [w.stop() for w in workers]
            app.close()
    if accepted + sum(rejected.values()) != len(messages):
        msg = (
            f"accounting broken with {count} workers: {accepted} accepted + "
            f"{sum(rejected.values())} rejected != {len(messages)} produced"
        )
        raise RuntimeError(msg)
    cpu = {
        "workers": cpu_between(before, after, worker_pids),
        "postgres_backends": cpu_between(before, after, backends),
        "postgres_background": cpu_between(before, after, background),
        "broker": cpu_between(before, after, [broker_pid]) if broker_pid else 0.0,
    }
    return RunResult(
        workers=count,
        records=len(messages),
        seconds=seconds,
        group_settle_seconds=settle,
        cpu_seconds=cpu,
        machine_busy_cores=(after.machine_busy - before.machine_busy) / seconds,
        accepted=accepted,
        rejected_by_code=dict(rejected),
        events_stored=stored,
        records_by_worker=[int(s.get("records", 0)) for s in stats],
        holds_by_worker=[int(s.get("reference_holds", 0)) for s in stats],
        batches_by_worker=[int(s.get("batches", 0)) for s in stats],
        exit_codes=codes,
        extra={
            "produce_seconds": round(produced_at - before.at, 2),
            "messages_per_partition": [last.get(p, -1) + 1 for p in range(args.partitions)],
        },
    )


def settled_stats(workers: Sequence[WorkerProcess], records: int) -> list[dict[str, Any]]:
    """The workers' counters once they account for every record (a commit's counters follow
    it by a moment), or as they are after 10 s."""
    deadline = time.monotonic() + 10
    while True:
        stats = [w.stats() for w in workers]
        if sum(int(s.get("records", 0)) for s in stats) >= records or time.monotonic() > deadline:
            return stats
        time.sleep(0.05)


def wait_until_stored(
    app: Any,
    topic: str,
    last: dict[int, int],
    workers: Sequence[WorkerProcess],
    timeout: float,
) -> None:
    """Wait until the store tracks every partition up to its last produced offset."""
    prefix = f"kafka:{topic}:"
    deadline = time.monotonic() + timeout
    while True:
        tracked = {
            int(name.rsplit(":", 1)[1]): offset
            for name, offset in app.store.select_trackings(prefix).items()
        }
        if all(tracked.get(p, -1) >= off for p, off in last.items()):
            return
        for worker in workers:
            if worker.process.poll() is not None:
                raise RuntimeError(worker.failure())
        if time.monotonic() > deadline:
            msg = f"not all stored within {timeout} s: tracked {tracked}, produced {last}"
            raise RuntimeError(msg)
        time.sleep(0.05)


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The benchmark's options."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="events to generate")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", default="1,2,4", help="worker counts to measure")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument(
        "--scenarios", default="district,subject", help="district and/or subject (module doc)"
    )
    parser.add_argument("--districts", type=int, default=8, help="districts of that scenario")
    parser.add_argument(
        "--reference-wait-ms",
        type=int,
        default=None,
        help="passed to the workers (default: theirs)",
    )
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per run at most")
    parser.add_argument("--kafka", help="bootstrap servers (default: start a Tansu broker)")
    parser.add_argument(
        "--pg-admin",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL URL allowed to create databases",
    )
    parser.add_argument("--keep-logs", help="write the workers' JSON logs into this directory")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "workers.json"))
    return parser.parse_args(argv)


def print_run(run: dict[str, Any], base: float) -> None:
    """One line per run."""
    cpu = run["cpu_us_per_event"]
    print(
        f"{run['workers']} worker(s): {run['events_per_second']:>8,.0f} events/s "
        f"({run['events_per_second'] / base:.2f} x 1 worker) in {run['seconds']:.1f} s; "
        f"CPU µs/event: workers {cpu['workers']:.0f}, PostgreSQL "
        f"{cpu['postgres_backends'] + cpu['postgres_background']:.0f}, broker {cpu['broker']:.0f}; "
        f"machine busy {run['machine_busy_cores']:.2f} of {os.cpu_count()} cores; "
        f"dead letters {run['dead_lettered']} {run['rejected_by_code']}; "
        f"records by worker {run['records_by_worker']}; "
        f"{run['batches']} batches, {run['reference_holds']} reference holds"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print figures and the JSON line."""
    from practice_events.logging import configure_logging

    args = parse_args(argv)
    configure_logging("console", "warning")
    # SIGTERM (make bench stopped, a CI timeout): unwind, so that the worker processes,
    # the broker and the scratch databases are stopped and dropped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    counts = [int(c) for c in args.workers.split(",") if c.strip()]
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    load_before = os.getloadavg()
    broker = None
    bootstrap = args.kafka
    if bootstrap is None:
        from tests.kafka_broker import TansuBroker

        broker = TansuBroker(log_path=Path(tempfile.gettempdir()) / "bench-workers-tansu.log")
        broker.start()
        bootstrap = broker.bootstrap
    scenarios: dict[str, dict[str, Any]] = {}
    ratios: dict[str, float] = {}
    try:
        broker_pid = broker.process.pid if broker is not None and broker.process else None
        for name in names:
            t0 = time.perf_counter()
            messages = scenario_messages(
                name, args.events, args.seed, args.districts, args.partitions
            )
            print(
                f"scenario {name}: {len(messages):,} messages generated "
                f"in {time.perf_counter() - t0:.1f} s"
            )
            runs: list[dict[str, Any]] = []
            for count in counts:
                run = run_once(count, messages, bootstrap, broker_pid, args).as_dict()
                runs.append(run)
                print_run(run, runs[0]["events_per_second"])
                if count != counts[0]:
                    ratios[f"{name}_workers_{count}_vs_{counts[0]}"] = round(
                        run["events_per_second"] / runs[0]["events_per_second"], 3
                    )
            scenarios[name] = {
                "events": len(messages),
                "key": "district code, one partition per district" if name == "district" else name,
                "districts": args.districts if name == "district" else 1,
                "messages_per_partition": runs[0]["messages_per_partition"],
                "runs": {str(r["workers"]): r for r in runs},
            }
    finally:
        if broker is not None:
            broker.stop()
    result = {
        "bench": "workers",
        "figures": {
            "command": " ".join(["bench/workers.py", *(sys.argv[1:] if argv is None else argv)]),
            "events": args.events,
            "partitions": args.partitions,
            "batch_size": args.batch_size,
            "reference_wait_ms": args.reference_wait_ms,
            "cpus": os.cpu_count(),
            "load_average_before": [round(x, 2) for x in load_before],
            "scenarios": scenarios,
        },
        "ratios": ratios,
        "targets": {},
        "targets_met": None,
    }
    line = orjson.dumps(result).decode()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(line + "\n", encoding="utf-8")
    print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
