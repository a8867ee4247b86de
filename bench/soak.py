"""Soak: steady ingestion through HTTP and Kafka for minutes while clients query the API.

Not a test: it prints figures (issue 9, "Load"). In one run it

1. starts a Tansu broker, a fresh store (a SQLite file, or a fresh PostgreSQL
   database) and the service in one of two ``--topology`` shapes:

   * ``split`` (the default, because it is the production topology of
     ``infra/k8s``: api.yaml, ingest.yaml, projections.yaml): the HTTP API
     (``practice-events api --workers N``, ``--api-workers``, default 1: HTTP
     ingestion and the query API), a Kafka ingestion worker
     (``practice-events ingest``) and one projection-runner process
     (``practice-events projections run --with-scheduler``: every projection
     and the overdue scheduler, the only scheduler of the run, as in
     production; production gives the ledger a runner process of its own),
     each its own process, so each has its own interpreter lock;
   * ``all-in-one``: the all-in-one server (``practice-events serve``: HTTP
     ingestion, the projection runners, the overdue scheduler and the query
     API in one process) and a Kafka ingestion worker (``practice-events
     ingest``), as runs 1 to 6 did;

2. ingests, at a steady ``--rate`` events/s (default 2,000) for ``--minutes``
   (default 10), half through HTTP (``POST /v1/events:batch``, batches of
   ``--http-batch`` events, default 250, one producer posting in order) and half through
   Kafka (a one-partition topic the worker consumes). The two halves are
   two demo districts (the generator's Wulingyuan over HTTP, a copy with
   every id relabelled over Kafka), so that neither stream refers to the
   other's aggregates and every event is accepted;
3. meanwhile ``--clients`` (default 16) query clients, in a separate process,
   read the dashboard's questions (units, scorecard, closed loop, findings,
   volunteers, needs) with ``--think-ms`` between requests (default 1 s, so
   at most 16 requests/s: people reading dashboards, not a load generator;
   ``bench/api.py`` measures the read API's own capacity);
4. stops producing, waits for everything to be stored and projected, and
   reports:

   * **rates**: events sent per second (``rate_achieved``: the producers keep
     their schedule whatever the service does) and events *stored* per
     second while sending (``rate_stored``: HTTP answers come after the
     commit; the Kafka half counts up to the worker's tracked offset when
     sending stopped), the Kafka backlog then, and how long the drain took
     (at most ``--drain-limit`` seconds);
   * **ingest-to-view lag** (p50/p99/max): from the moment an HTTP batch was
     sent (or a Kafka record produced) until every projection has processed
     its log position. A tracker polls, every 50 ms, the worker's tracking
     row (the Kafka offset stored), the log head and the lowest projection
     position; an HTTP batch's position is in its answer, a Kafka record's
     is bounded by the log head read once its offset is tracked (so the
     Kafka figure is an upper bound, within one poll);
   * **query latency** (p50/p99/max, and per endpoint) and requests/s;
   * **memory**: resident set size of each service process (with its
     children: the workers of ``api --workers N``) at the start of the load
     and at its end (sampled every 5 s in between), and readiness
     (``/readyz``) of each, sampled with it;
   * **CPU** (``cpu``): user + system CPU seconds, from ``/proc``, of each
     service process (with its children), of the PostgreSQL server (every
     process named ``postgres``: the whole cluster, other databases
     included; the soak database's own backends apart), of the Tansu
     broker, of the soak's own process (its producers, by thread, and its
     tracker) and of the query process, over the sending phase, as cores
     used (a short table on stderr), beside the machine's busy cores from
     ``/proc/stat`` (what is left is other processes' share; the busiest are
     named): where the cores go;
   * **errors**: HTTP ingest answers other than 200, events not accepted,
     query answers other than 200, Kafka produce failures, dead letters,
     events missing from the store at the end, non-zero exit codes and
     lines any service process logged at level error. All must be 0.

Results go to ``bench/results/soak-<store>.json`` (whatever the topology, which
is among the figures; ``--out`` to write elsewhere) and one line of JSON is
printed on stdout (``{"bench": "soak", "figures": …, "targets": …, "targets_met": …}``).

    .venv/bin/python bench/soak.py --store postgres                 # 10 minutes, 2,000/s
    .venv/bin/python bench/soak.py --store sqlite --minutes 1 --rate 500 --out /tmp/look.json
    .venv/bin/python bench/soak.py --store postgres --topology all-in-one  # runs 1-6's shape
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the Tansu launcher lives in tests/kafka_broker.py

CLI = (sys.executable, "-m", "practice_events.cli")
TARGETS = {"errors": 0, "p99_lag_ms": 5000.0, "p99_query_ms": 500.0, "rss_growth_percent": 25.0}
"""What the run must show: no error at all; the rest are this machine's bounds (2 vCPUs)."""

SCHEDULER_TYPES = ("practice.finding.overdue.v1", "practice.finding.escalated.v1")
"""What the overdue scheduler emits (producers may not: ``SYSTEM_EVENT_TYPE``)."""

KAFKA_DISTRICT = ("SKB", "430899")
"""The relabelled district sent over Kafka: its code and administrative code."""

_NUMBERED = re.compile(r"(?<![A-Za-z0-9-])((?:[AFMN]|INSP)-\d{6}-\d+|S\d{8})(?![0-9])")


# -- input -------------------------------------------------------------------------------------


def http_stream(events: int, seed: int) -> Iterator[dict[str, Any]]:
    """The demo district's history (Wulingyuan), as its producers would post it."""
    from practice_events.demo.generator import generate

    return generate(seed=seed, events=events)


def kafka_stream(events: int, seed: int) -> Iterator[bytes]:
    """Another district's history: the generator's, with every id relabelled.

    The district code in site, team and producer ids, the administrative code
    in volunteer numbers, and a district prefix on the ids the generator
    numbers (activities, needs, meetings, findings, inspections, sessions),
    so that nothing collides with the HTTP half. The six-haves checklist is
    reference data that the HTTP half publishes, so it is left out here.
    """
    from practice_events.demo.generator import generate
    from practice_events.demo.network import DISTRICT, DISTRICT_CODE

    code, admin = KAFKA_DISTRICT
    for event in generate(seed=seed, events=events):
        if event["type"].startswith("practice.site.checklist_"):
            continue
        text = orjson.dumps(event).decode()
        text = text.replace(DISTRICT, code).replace(DISTRICT.lower(), code.lower())
        text = text.replace(DISTRICT_CODE, admin)
        text = _NUMBERED.sub(lambda m: f"{code}-{m.group(1)}", text)
        yield text.encode()


# -- processes ---------------------------------------------------------------------------------


def free_port() -> int:
    """A free TCP port on localhost."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_mb(pid: int) -> float | None:
    """Resident set size of ``pid`` in MiB (None once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def child_env(store_url: str) -> dict[str, str]:
    """The environment of the service processes: no project settings but these."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRACTICE_EVENTS_")}
    env.update(
        {
            "PRACTICE_EVENTS_STORE": store_url,
            "PRACTICE_EVENTS_LOG_LEVEL": "warning",
            "PRACTICE_EVENTS_LOG_FORMAT": "json",
            # A soak measures the service, not the per-token request quotas.
            "PRACTICE_EVENTS_HTTP_RATE_INGEST_PER_SECOND": "0",
            "PRACTICE_EVENTS_HTTP_RATE_QUERY_PER_SECOND": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


TOPOLOGIES = ("split", "all-in-one")
"""``split``: the parts as production runs them (infra/k8s); ``all-in-one``: ``serve``."""


@dataclass
class Service:
    """One service process of the topology: its name in the figures, its readiness, its log."""

    name: str
    proc: subprocess.Popen[bytes]
    health: str
    log: IO[bytes]


@dataclass
class Processes:
    """The service processes of one topology, in start order, and where the HTTP API is."""

    url: str = ""
    services: list[Service] = field(default_factory=list)

    def pids(self) -> dict[str, int]:
        """Each service's process id, by name."""
        return {s.name: s.proc.pid for s in self.services}

    def exited(self) -> list[str]:
        """The services whose process has ended."""
        return [s.name for s in self.services if s.proc.poll() is not None]

    def stop(self) -> dict[str, int | None]:
        """SIGTERM each, the last started first (the runners last); return their exit codes."""
        codes: dict[str, int | None] = {}
        for service in reversed(self.services):
            proc = service.proc
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
            codes[service.name] = proc.returncode
            service.log.close()
        return codes


def start_processes(
    store_url: str, bootstrap: str, topic: str, work: Path, *, topology: str, api_workers: int
) -> Processes:
    """Start the topology's processes (see the module docstring); wait until each says ready.

    ``split`` starts the runners first and waits until they are ready: they
    create the views, which the API reads, and two processes creating the
    same schema at once may race (PostgreSQL's ``IF NOT EXISTS`` is no lock).
    """
    env = child_env(store_url)
    procs = Processes()

    def launch(name: str, args: list[str], health: str) -> None:
        log = (work / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [*CLI, *args], cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        procs.services.append(Service(name, proc, health, log))

    try:
        port = free_port()
        procs.url = f"http://127.0.0.1:{port}"
        if topology == "split":
            runners = free_port()
            launch(
                "projections",
                ["projections", "run", "--with-scheduler", "--health-port", str(runners)],
                f"http://127.0.0.1:{runners}",
            )
            wait_ready(procs, work)
            api = ["api", "--port", str(port), "--workers", str(api_workers)]
            launch("api", api, procs.url)
        else:
            launch("server", ["serve", "--port", str(port)], procs.url)
        health = free_port()
        ingest = ["ingest", "--kafka", bootstrap, "--topic", topic, "--group", f"soak-{topic}"]
        ingest += ["--dlq-topic", f"{topic}.dlq", "--health-port", str(health)]
        launch("worker", ingest, f"http://127.0.0.1:{health}")
        wait_ready(procs, work)
    except BaseException:
        procs.stop()
        raise
    return procs


def wait_ready(procs: Processes, work: Path, limit: float = 180.0) -> None:
    """Wait until every service answers ``/readyz`` with 200 (at most ``limit`` seconds)."""
    import httpx

    deadline = time.monotonic() + limit
    for service in procs.services:
        while True:
            if procs.exited():
                msg = f"{', '.join(procs.exited())} exited during start-up; see {work}/*.log"
                raise RuntimeError(msg)
            try:
                if httpx.get(service.health + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                msg = f"{service.name} ({service.health}/readyz) not ready within {limit} s"
                raise RuntimeError(msg)
            time.sleep(0.2)


def cli(store_url: str, work: Path, *args: str) -> str:
    """Run a ``practice-events`` command on the store; return its output."""
    done = subprocess.run(
        [*CLI, *args],
        cwd=work,
        env=child_env(store_url),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return done.stdout.strip()


# -- producers ---------------------------------------------------------------------------------


class Stop:
    """A shared stop flag and the clock every thread paces itself by."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.t0 = time.monotonic()


class HttpProducer(threading.Thread):
    """Posts the HTTP half in order, batch by batch, on schedule; retries a failed batch."""

    def __init__(self, url: str, token: str, rate: float, batch: int, stream: Iterator[Any]):
        super().__init__(name="http-producer", daemon=True)
        self.url, self.token, self.rate, self.size = url, token, rate, batch
        self.stream = stream
        self.stop = Stop()
        self.sent: list[tuple[float, int]] = []  # (send time, last position) per batch
        self.outcomes = {"accepted": 0, "duplicate": 0, "rejected": 0}
        self.errors: dict[str, int] = {}
        self.posted = 0
        self.behind_s = 0.0
        self.error: BaseException | None = None

    def run(self) -> None:
        import httpx

        headers = {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/cloudevents-batch+json",
        }
        stream = self.stream
        try:
            with httpx.Client(base_url=self.url, headers=headers, timeout=60) as http:
                number = 0
                while not self.stop.event.is_set():
                    batch = [e for _, e in zip(range(self.size), stream, strict=False)]
                    if not batch:
                        break
                    due = self.stop.t0 + number * self.size / self.rate
                    number += 1
                    wait = due - time.monotonic()
                    if wait > 0:
                        self.stop.event.wait(wait)
                    else:
                        self.behind_s = max(self.behind_s, -wait)
                    self._post(http, orjson.dumps(batch), len(batch))
        except BaseException as exc:  # noqa: BLE001 - reported by the run
            self.error = exc

    def _post(self, http: Any, body: bytes, count: int) -> None:
        while True:
            sent = time.monotonic()
            try:
                answer = http.post("/v1/events:batch", content=body)
            except Exception as exc:  # noqa: BLE001 - a transport error is an error of the run
                self.errors[type(exc).__name__] = self.errors.get(type(exc).__name__, 0) + 1
                time.sleep(0.5)
                continue
            if answer.status_code != 200:
                key = f"http_{answer.status_code}"
                self.errors[key] = self.errors.get(key, 0) + 1
                time.sleep(0.5)
                continue
            result = answer.json()
            for status in self.outcomes:
                self.outcomes[status] += int(result[status])
            self.sent.append((sent, int(result["last_position"])))
            self.posted += count
            return


class KafkaProducerThread(threading.Thread):
    """Produces the Kafka half on schedule, in chunks every 20 ms, to partition 0."""

    def __init__(self, bootstrap: str, topic: str, rate: float, events: int, seed: int):
        super().__init__(name="kafka-producer", daemon=True)
        self.bootstrap, self.topic, self.rate = bootstrap, topic, rate
        self.events, self.seed = events, seed
        self.stop = Stop()
        self.produced_at: list[float] = []  # by offset (one partition, in order)
        self.failures = 0
        self.delivered = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        from confluent_kafka import Producer

        producer = Producer(
            {"bootstrap.servers": self.bootstrap, "acks": "all", "linger.ms": 5}
            | {"enable.idempotence": True}
        )
        headers: list[tuple[str, str | bytes | None]] = [
            ("content-type", b"application/cloudevents+json")
        ]

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                self.failures += 1
            else:
                self.delivered += 1

        stream = kafka_stream(self.events, self.seed)
        try:
            while not self.stop.event.is_set():
                due = int((time.monotonic() - self.stop.t0) * self.rate)
                while len(self.produced_at) < due:
                    value = next(stream, None)
                    if value is None:
                        self.stop.event.set()
                        break
                    producer.produce(
                        self.topic, value=value, partition=0, headers=headers, on_delivery=delivered
                    )
                    self.produced_at.append(time.monotonic())
                producer.poll(0)
                self.stop.event.wait(0.02)
            producer.flush(60)
        except BaseException as exc:  # noqa: BLE001 - reported by the run
            self.error = exc


# -- observation ---------------------------------------------------------------------------------


class Tracker(threading.Thread):
    """Every 50 ms: the Kafka offset stored, the log head, the lowest projection position."""

    def __init__(self, store_url: str, topic: str) -> None:
        super().__init__(name="tracker", daemon=True)
        self.store_url, self.topic = store_url, topic
        self.ticks: list[tuple[float, int, int, int]] = []  # (t, kafka offset, head, views)
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        from practice_events.bootstrap import build_app
        from practice_events.config import Settings
        from projections.viewstore import ViewStore, default_view_url

        app = build_app(Settings(store=self.store_url))
        views = ViewStore(default_view_url(self.store_url))
        name = f"kafka:{self.topic}:0"
        try:
            while not self.halt.wait(0.05):
                try:
                    offset = app.store.select_trackings(name).get(name, -1)
                    head = app.last_position()
                    rows = views.positions()
                except Exception:  # noqa: BLE001 - a slow moment: try again next tick
                    continue
                lowest = min((int(r["position"]) for r in rows.values()), default=0)
                self.ticks.append((time.monotonic(), int(offset), int(head), lowest))
        except BaseException as exc:  # noqa: BLE001 - reported by the run
            self.error = exc
        finally:
            views.close()
            app.close()

    def latest(self) -> tuple[float, int, int, int]:
        """The last tick (zeros before the first)."""
        return self.ticks[-1] if self.ticks else (0.0, -1, 0, 0)


class Sampler(threading.Thread):
    """Every 5 s: RSS of each service process (with its children) and each one's readiness."""

    def __init__(self, procs: Processes) -> None:
        super().__init__(name="sampler", daemon=True)
        self.procs = procs
        self.samples: list[dict[str, Any]] = []
        self.not_ready = {s.name: 0 for s in procs.services}
        self.halt = threading.Event()

    def sample(self) -> dict[str, Any]:
        """Take one sample now."""
        import httpx

        row: dict[str, Any] = {"t": round(time.monotonic(), 1)}
        for service in self.procs.services:
            row[f"{service.name}_rss_mb"] = tree_rss_mb(service.proc.pid)
        for service in self.procs.services:
            try:
                ok = httpx.get(service.health + "/readyz", timeout=10).status_code == 200
            except httpx.HTTPError:
                ok = False
            if not ok:
                self.not_ready[service.name] += 1
        self.samples.append(row)
        return row

    def run(self) -> None:
        while not self.halt.wait(5.0):
            self.sample()


# -- CPU -----------------------------------------------------------------------------------------


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
"""Units of the CPU times in ``/proc`` per second."""


@dataclass(frozen=True)
class ProcStat:
    """What ``/proc/<pid>/stat`` says of one process (or thread), CPU times in seconds."""

    ppid: int
    comm: str
    own_s: float
    """utime + stime: its own threads, those that ended included."""
    reaped_s: float
    """cutime + cstime: its children that have ended and been waited for."""


def read_stat(path: str) -> ProcStat | None:
    """Parse one ``stat`` file (None when the process is gone)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            text = file.read()
    except OSError:
        return None
    head, _, rest = text.rpartition(")")  # the name may hold spaces and parentheses
    fields = rest.split()  # state ppid ... utime (11) stime (12) cutime (13) cstime (14)
    return ProcStat(
        ppid=int(fields[1]),
        comm=head.partition("(")[2],
        own_s=(int(fields[11]) + int(fields[12])) / CLOCK_TICKS,
        reaped_s=(int(fields[13]) + int(fields[14])) / CLOCK_TICKS,
    )


def process_table() -> dict[int, ProcStat]:
    """Every process of the machine now, by process id."""
    table: dict[int, ProcStat] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = read_stat(f"/proc/{entry.name}/stat")
            if stat is not None:
                table[int(entry.name)] = stat
    return table


def descendants(table: dict[int, ProcStat], root: int) -> list[int]:
    """``root`` and every process below it (empty once ``root`` is gone)."""
    if root not in table:
        return []
    children: dict[int, list[int]] = {}
    for pid, stat in table.items():
        children.setdefault(stat.ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def tree_cpu_s(table: dict[int, ProcStat], root: int) -> float | None:
    """CPU seconds of ``root`` and its descendants, ended ones included (None once it is gone).

    A live process counts its own time; one that has ended counts in its
    parent's reaped time once waited for, so nothing is counted twice.
    """
    pids = descendants(table, root)
    if not pids:
        return None
    return sum(table[pid].own_s + table[pid].reaped_s for pid in pids)


def tree_rss_mb(pid: int) -> float | None:
    """Resident set size of ``pid`` and its descendants (``api --workers N``'s workers), MiB."""
    sizes = [rss_mb(p) for p in descendants(process_table(), pid)]
    known = [size for size in sizes if size is not None]
    return round(sum(known), 1) if known else None


def postgres_cpu_s(table: dict[int, ProcStat]) -> float | None:
    """CPU seconds of every process named ``postgres`` (None when none is visible here).

    The postmaster's reaped time holds its backends that ended, so closed
    connections count too; background processes (WAL writer, checkpointer)
    are included, and so are other databases' backends on a shared server.
    """
    used = [s.own_s + s.reaped_s for s in table.values() if s.comm == "postgres"]
    return sum(used) if used else None


def machine_cpu_s() -> tuple[float, float]:
    """Busy and stolen CPU seconds of the whole machine since boot (``/proc/stat``)."""
    first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in first[1:9])
    return (user + nice + system + irq + softirq) / CLOCK_TICKS, steal / CLOCK_TICKS


def thread_cpu_s() -> dict[int, tuple[str, float]]:
    """CPU seconds of each live thread of this process, by thread id, with its name."""
    threads: dict[int, tuple[str, float]] = {}
    for entry in os.scandir("/proc/self/task"):
        stat = read_stat(f"/proc/self/task/{entry.name}/stat")
        if stat is not None:
            threads[int(entry.name)] = (stat.comm, stat.own_s)
    return threads


@dataclass(frozen=True)
class CpuReading:
    """Every CPU counter the soak reports, read at one moment (seconds since each began)."""

    t: float
    services: dict[str, float | None]
    broker: float | None
    postgres: float | None
    soak: float
    threads: dict[int, tuple[str, float]]
    machine_busy: float
    machine_steal: float
    table: dict[int, ProcStat] = field(default_factory=dict)
    """Every process of the machine (to name the others that used CPU)."""
    claimed: frozenset[int] = frozenset()
    """The processes the parts above count: the soak and what it started, PostgreSQL's."""
    commands: dict[int, str] = field(default_factory=dict)
    """The others' command lines, shortened (to tell one ``python`` from another)."""


def read_cpu(services: dict[str, int], broker: int | None, *, postgres: bool) -> CpuReading:
    """Read the counters of the service processes (by name: pid), the broker and the rest."""
    table = process_table()
    me = read_stat("/proc/self/stat")
    assert me is not None
    busy, steal = machine_cpu_s()
    claimed = set(descendants(table, os.getpid()))
    if postgres:
        claimed.update(pid for pid, stat in table.items() if stat.comm == "postgres")
    commands = {pid: command_line(pid) for pid in table if pid not in claimed}
    return CpuReading(
        t=time.monotonic(),
        services={name: tree_cpu_s(table, pid) for name, pid in services.items()},
        broker=tree_cpu_s(table, broker) if broker is not None else None,
        postgres=postgres_cpu_s(table) if postgres else None,
        # its own threads only: the children it waited for (commands run before) are not it
        soak=me.own_s,
        threads=thread_cpu_s(),
        machine_busy=busy,
        machine_steal=steal,
        table=table,
        claimed=frozenset(claimed),
        commands={pid: line for pid, line in commands.items() if line},
    )


_CREDENTIALS = re.compile(r"//[^/@\s]*@")


def command_line(pid: int) -> str:
    """The program and its first two arguments, at most 60 characters, credentials masked."""
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return ""
    shown = [os.path.basename(words[0].decode(errors="replace"))]
    shown += [w.decode(errors="replace") for w in words[1:3] if w]
    return _CREDENTIALS.sub("//***@", " ".join(" ".join(shown).split()))[:60]


RDKAFKA_THREAD = "rdk:"
"""How librdkafka names its threads (the Kafka producer's client)."""


def cpu_figures(
    first: CpuReading,
    last: CpuReading,
    threads: dict[str, int | None],
    *,
    queries_s: float | None,
    postgres_database_s: float | None,
) -> dict[str, Any]:
    """Cores used by each part between two readings (CPU seconds / wall seconds).

    ``threads`` names the soak's own threads worth a row (by native id);
    librdkafka's threads count with ``kafka_producer`` and the rest (the main
    thread, the samplers, threads that ended) as ``harness``. ``queries_s``
    is what the query process reported of itself (it lives within the
    sending phase); ``postgres_database_s`` is the soak database's backends,
    a part of ``postgres``. ``other`` is the machine's busy time that no part
    accounts for: other processes (the busiest are named in ``other_top``), the
    kernel.
    """
    seconds = last.t - first.t

    def row(used: float | None) -> dict[str, float | None]:
        if used is None:
            return {"cpu_s": None, "cores": None}
        return {"cpu_s": round(used, 2), "cores": round(used / seconds, 3)}

    def delta(before: float | None, after: float | None) -> float | None:
        return None if before is None or after is None else after - before

    parts: dict[str, dict[str, Any]] = {
        name: row(delta(first.services.get(name), used)) for name, used in last.services.items()
    }
    if last.postgres is not None:
        parts["postgres"] = row(delta(first.postgres, last.postgres))
    parts["tansu"] = row(delta(first.broker, last.broker))
    soak = last.soak - first.soak
    by_thread: dict[str, float] = dict.fromkeys(threads, 0.0)
    named = {tid: name for name, tid in threads.items() if tid is not None}
    for tid, (comm, used) in last.threads.items():
        before = first.threads.get(tid)
        spent = used - (before[1] if before is not None and before[0] == comm else 0.0)
        name = named.get(tid)
        if name is None and comm.startswith(RDKAFKA_THREAD) and "kafka_producer" in by_thread:
            name = "kafka_producer"
        if name is not None:
            by_thread[name] += spent
    by_thread["harness"] = soak - sum(by_thread.values())
    parts["soak"] = row(soak) | {
        "threads": {name: round(used / seconds, 3) for name, used in by_thread.items()}
    }
    parts["queries"] = row(queries_s)
    attributed = sum(p["cores"] for p in parts.values() if p["cores"] is not None)
    busy = (last.machine_busy - first.machine_busy) / seconds
    return {
        "seconds": round(seconds, 1),
        "cpus": os.cpu_count(),
        "parts": parts,
        "postgres_soak_database": row(postgres_database_s),
        "attributed_cores": round(attributed, 3),
        "machine_busy_cores": round(busy, 3),
        "other_cores": round(busy - attributed, 3),
        "other_top": busiest_others(first, last, seconds),
        "machine_steal_cores": round((last.machine_steal - first.machine_steal) / seconds, 3),
    }


def busiest_others(first: CpuReading, last: CpuReading, seconds: float) -> list[dict[str, Any]]:
    """The five processes outside the parts that used the most CPU between the readings.

    Each counts its own threads only: a child that ended in between brings
    its parent all the CPU of its life, much of it perhaps from before the
    first reading (a long benchmark of another session ending), so reaped
    time says nothing about the phase unless the whole tree is read twice,
    as the parts are. A process started in between counts from zero; one
    that ended in between is missing here (it is in ``other_cores``).
    """
    used: list[tuple[float, int, str]] = []
    for pid, stat in last.table.items():
        if pid in last.claimed or pid in first.claimed:
            continue
        before = first.table.get(pid)
        start = before.own_s if before is not None and before.comm == stat.comm else 0.0
        used.append((stat.own_s - start, pid, stat.comm))
    used.sort(reverse=True)
    return [
        {"pid": pid, "comm": comm, "cores": round(spent / seconds, 3)}
        | ({"command": last.commands[pid]} if pid in last.commands else {})
        for spent, pid, comm in used[:5]
        if spent / seconds >= 0.005
    ]


def cpu_table(cpu: dict[str, Any]) -> str:
    """The CPU figures as a short table for people (cores = CPU seconds / wall seconds)."""

    def line(name: str, part: dict[str, Any]) -> str:
        used, cores = part.get("cpu_s"), part.get("cores")
        shown = ("-", "-") if cores is None else (f"{used:.1f}", f"{cores:.2f}")
        return f"  {name:<34}{shown[0]:>9}{shown[1]:>8}"

    lines = [
        f"CPU over the sending phase: {cpu['seconds']} s, {cpu['cpus']} CPUs",
        f"  {'part':<34}{'CPU s':>9}{'cores':>8}",
    ]
    for name, part in cpu["parts"].items():
        lines.append(line(name, part))
        for thread, cores in part.get("threads", {}).items():
            lines.append(f"    {thread:<32}{'':>9}{cores:>8.2f}")
        if name == "postgres":
            lines.append(line("  of which the soak's database", cpu["postgres_soak_database"]))
    for label, key in (
        ("all the above", "attributed_cores"),
        ("machine busy (/proc/stat)", "machine_busy_cores"),
        ("other processes, kernel", "other_cores"),
    ):
        lines.append(f"  {label:<34}{'':>9}{cpu[key]:>8.2f}")
    for other in cpu["other_top"]:
        name = f"{other['comm'][:22]} ({other['pid']})"
        command = f"  {other['command']}" if "command" in other else ""
        lines.append(f"    {name:<32}{'':>9}{other['cores']:>8.2f}{command}")
    steal = "stolen by the hypervisor"
    lines.append(f"  {steal:<34}{'':>9}{cpu['machine_steal_cores']:>8.2f}")
    return "\n".join(lines)


# -- the query process ---------------------------------------------------------------------------


def query_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Run in the query process: ``clients`` threads, each one keep-alive connection."""
    import http.client
    from urllib.parse import urlparse

    target = urlparse(spec["url"])
    requests: list[dict[str, Any]] = spec["requests"]
    think = spec["think_ms"] / 1000
    stop_at = time.monotonic() + spec["seconds"]
    latencies: dict[str, list[float]] = {item["name"]: [] for item in requests}
    errors: dict[str, int] = {}
    lock = threading.Lock()

    def client(index: int) -> None:
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
        n = index
        mine: list[tuple[str, float]] = []
        try:
            while time.monotonic() < stop_at:
                item = requests[n % len(requests)]
                n += 1
                started = time.perf_counter()
                try:
                    conn.request("GET", item["path"], headers=item["headers"])
                    response = conn.getresponse()
                    response.read()
                    status = response.status
                except (OSError, http.client.HTTPException):
                    conn.close()
                    conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                    status = 0
                elapsed = time.perf_counter() - started
                if status != 200:
                    with lock:
                        key = f"{item['name']}:{status}"
                        errors[key] = errors.get(key, 0) + 1
                else:
                    mine.append((item["name"], elapsed))
                time.sleep(think)
        finally:
            conn.close()
            with lock:
                for name, elapsed in mine:
                    latencies[name].append(elapsed)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(spec["clients"])]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - began
    every = sorted(x for series in latencies.values() for x in series)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "clients": spec["clients"],
        "think_ms": spec["think_ms"],
        "requests": len(every),
        "requests_per_second": round(len(every) / seconds, 1),
        "errors": errors,
        **summary_ms(every),
        "by_endpoint": {name: summary_ms(sorted(s)) for name, s in latencies.items()},
        # this process's whole life, all within the sending phase but its last think pause
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
    }


def summary_ms(ordered: list[float]) -> dict[str, float | None]:
    """p50, p99 and max of sorted seconds, in milliseconds."""
    return {
        "p50_ms": round(percentile(ordered, 0.50) * 1000, 2),
        "p99_ms": round(percentile(ordered, 0.99) * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2) if ordered else None,
    }


def percentile(ordered: list[float], share: float) -> float:
    """Nearest-rank percentile of sorted values (0 for none)."""
    if not ordered:
        return 0.0
    rank = max(1, int(-(-share * len(ordered) // 1)))
    return ordered[min(rank, len(ordered)) - 1]


def start_queries(spec: dict[str, Any]) -> subprocess.Popen[bytes]:
    """Start :func:`query_worker` in its own process (the spec on stdin)."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--query-worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    assert proc.stdin is not None
    proc.stdin.write(orjson.dumps(spec))
    proc.stdin.close()
    return proc


def query_requests(url: str, token: str) -> list[dict[str, Any]]:
    """The dashboard's questions, each checked once (an endpoint that fails is an error)."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    months = [f"2025-{m:02d}" for m in range(1, 7)]
    paths = [("units", "/v1/units")]
    for month in months:
        paths += [
            ("scorecard", f"/v1/units/WLY/scorecard?period={month}"),
            ("closed_loop", f"/v1/units/WLY/closed-loop?period={month}"),
        ]
    paths += [
        ("findings", "/v1/findings?unit=WLY&limit=50"),
        ("volunteers", "/v1/units/WLY/volunteers?period=2025-03&limit=50"),
        ("needs", "/v1/needs?unit=WLY&limit=50"),
    ]
    out = []
    for name, path in paths:
        answer = httpx.get(url + path, headers=headers, timeout=60)
        if answer.status_code != 200:
            msg = f"{path} answered {answer.status_code}: {answer.text[:300]}"
            raise RuntimeError(msg)
        out.append({"name": name, "path": path, "headers": headers})
    return out


# -- lag ---------------------------------------------------------------------------------------


def lags(
    ticks: list[tuple[float, int, int, int]],
    http_sent: list[tuple[float, int]],
    kafka_produced: list[float],
) -> dict[str, Any]:
    """Ingest-to-view lag of every HTTP batch and of every 50th Kafka record."""
    views = _monotone(ticks, 3)
    offsets = _monotone(ticks, 1)
    http: list[float] = []
    for sent, position in http_sent:
        i = bisect.bisect_left(views, position)
        if i < len(ticks):
            http.append(max(0.0, ticks[i][0] - sent))
    kafka: list[float] = []
    for offset in range(0, len(kafka_produced), 50):
        i = bisect.bisect_left(offsets, offset)
        if i >= len(ticks):
            continue
        head = ticks[i][2]
        j = bisect.bisect_left(views, head, lo=i)
        if j < len(ticks):
            kafka.append(max(0.0, ticks[j][0] - kafka_produced[offset]))
    both = sorted(http + kafka)
    return {
        "samples": {"http_batches": len(http), "kafka_records": len(kafka)},
        "all": summary_ms(both),
        "http": summary_ms(sorted(http)),
        "kafka": summary_ms(sorted(kafka)),
    }


def _monotone(ticks: list[tuple[float, int, int, int]], column: int) -> list[int]:
    """The column as a running maximum (so that it can be bisected)."""
    out: list[int] = []
    best = -(2**62)
    for tick in ticks:
        best = max(best, int(tick[column]))
        out.append(best)
    return out


# -- the run -----------------------------------------------------------------------------------


def pg_database(admin_url: str) -> str:
    """Create a fresh database for the soak; return its URL."""
    import psycopg

    name = f"pe_soak_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def drop_pg_database(admin_url: str, store_url: str) -> None:
    """Drop the soak's database."""
    import psycopg

    name = store_url.rsplit("/", 1)[1]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Run:
    """What one soak holds while it runs, and what it measured."""

    args: argparse.Namespace
    work: Path
    store_url: str
    topic: str
    broker: Any
    procs: Processes | None = None
    names: list[str] = field(default_factory=list)
    tracker: Tracker | None = None
    sampler: Sampler | None = None
    http: HttpProducer | None = None
    kafka: KafkaProducerThread | None = None
    measured: dict[str, Any] = field(default_factory=dict)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Set up, soak, drain and measure (see the module docstring)."""
    from kafka.admin import KafkaAdminClient, NewTopic

    from tests.kafka_broker import TansuBroker

    work = Path(args.work or tempfile.mkdtemp(prefix="pe-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    store_url = (
        f"sqlite:///{work / 'soak.db'}" if args.store == "sqlite" else pg_database(args.pg_admin)
    )
    broker = TansuBroker(log_path=work / "tansu.log")
    broker.start()
    topic = f"soak-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1), NewTopic(f"{topic}.dlq", 1, 1)])
    admin.close()
    state = Run(args, work, store_url, topic, broker)
    try:
        # the tables before any service starts, as production's set-up job (db-init) does
        cli(store_url, work, "store", "init")
        state.procs = start_processes(
            store_url,
            broker.bootstrap,
            topic,
            work,
            topology=args.topology,
            api_workers=args.api_workers,
        )
        state.names = [s.name for s in state.procs.services]
        soak(state)
        drain(state)
    finally:
        if state.procs is not None:
            state.measured.setdefault("exit_codes", state.procs.stop())
        broker.stop()
    figures = measure(state)
    if args.store == "postgres" and not args.keep:
        drop_pg_database(args.pg_admin, store_url)
    if not args.keep and not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return figures


def soak(state: Run) -> None:
    """Produce on schedule for the whole duration, queries running after the warm-up.

    The CPU counters are read just before the producers start and just
    before they stop: the sending phase (see :func:`cpu_figures`).
    """
    args, procs = state.args, state.procs
    assert procs is not None
    seconds = args.minutes * 60
    half = args.rate / 2
    events_per_half = int(half * seconds * 1.15) + 10_000
    producer_token = cli(
        state.store_url,
        state.work,
        "tokens",
        "create",
        "--role",
        "producer",
        "--source",
        "urn:wly:*",
    )
    reader_token = cli(
        state.store_url,
        state.work,
        "tokens",
        "create",
        "--role",
        "district_supervisor",
        "--unit",
        "WLY",
    )
    state.tracker = Tracker(state.store_url, state.topic)
    state.tracker.start()
    state.http = HttpProducer(
        procs.url, producer_token, half, args.http_batch, http_stream(events_per_half, args.seed)
    )
    state.kafka = KafkaProducerThread(
        state.broker.bootstrap, state.topic, half, events_per_half, args.seed + 1
    )
    with contextlib.ExitStack() as stack:
        database = None
        if args.store == "postgres":
            from bench.projections import ServerCpu

            database = stack.enter_context(ServerCpu(state.store_url))
        pids = procs.pids()
        broker = state.broker.process.pid if state.broker.process is not None else None
        postgres = args.store == "postgres"
        state.measured["cpu_first"] = read_cpu(pids, broker, postgres=postgres)
        queries = send(state, reader_token)
        state.measured["cpu_last"] = read_cpu(pids, broker, postgres=postgres)
        state.measured["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
        state.measured["stopped_at"] = time.monotonic()
        if database is not None:
            state.measured["postgres_database_cpu_s"] = database.seconds
    assert state.http is not None
    assert state.kafka is not None
    assert state.sampler is not None
    state.http.stop.event.set()
    state.kafka.stop.event.set()
    state.http.join(120)
    state.kafka.join(120)
    state.sampler.halt.set()
    assert queries.stdout is not None
    out = queries.stdout.read()
    queries.wait(300)
    state.measured["queries"] = orjson.loads(out.splitlines()[-1])


def send(state: Run, reader_token: str) -> subprocess.Popen[bytes]:
    """The sending phase: producers on schedule, queries after the warm-up; the query process.

    Returns when the duration is over (or a service process ended), with the
    producers still sending, so that the CPU read then covers this phase.
    """
    args, procs, http, kafka = state.args, state.procs, state.http, state.kafka
    assert procs is not None
    assert http is not None
    assert kafka is not None
    # A short warm-up at full rate, so that the district's first data exist for the queries.
    http.start()
    kafka.start()
    time.sleep(args.warmup)
    load_seconds = args.minutes * 60 - args.warmup
    queries = start_queries(
        {
            "url": procs.url,
            "requests": query_requests(procs.url, reader_token),
            "clients": args.clients,
            "think_ms": args.think_ms,
            "seconds": load_seconds,
        }
    )
    started = time.monotonic()
    sampler = Sampler(procs)
    state.sampler = sampler
    state.measured["load_average_start"] = [round(x, 2) for x in os.getloadavg()]
    state.measured["rss_first"] = sampler.sample()
    sampler.start()
    while time.monotonic() - started < load_seconds:
        time.sleep(1.0)
        if procs.exited():
            break
    state.measured["rss_last"] = sampler.sample()
    return queries


def drain(state: Run) -> None:
    """Wait until everything produced is stored and projected; then count what is where."""
    from tests.kafka_fixtures import read_topic

    tracker, kafka, procs = state.tracker, state.kafka, state.procs
    assert tracker is not None
    assert kafka is not None
    assert procs is not None
    produced = len(kafka.produced_at)
    started = time.monotonic()
    drained = False
    while time.monotonic() < started + state.args.drain_limit:
        _, offset, head, views = tracker.latest()
        if offset >= produced - 1 and views >= head > 0:
            drained = True
            break
        time.sleep(0.2)
    seconds = round(time.monotonic() - started, 1)
    time.sleep(0.3)
    tracker.halt.set()
    tracker.join(30)
    # Stop every process (a worker finishes its batch) before counting, so that the
    # counts and the Kafka offset tracked are read from a store nobody writes to.
    state.measured["exit_codes"] = procs.stop()
    state.procs = None
    counts = store_counts(state.store_url, state.topic)
    _, _, head, views = tracker.latest()
    state.measured["drain"] = {
        "seconds": seconds,
        "complete": drained,
        "kafka_records_left": produced - counts["kafka_stored"],
        "view_events_left": max(0, head - views),
    }
    topic = f"{state.topic}.dlq"
    state.measured["dead_letters"] = len(read_topic(state.broker.bootstrap, topic, 0, timeout=2.0))
    state.measured["store"] = counts
    state.measured["log_errors"] = {
        name: logged_errors(state.work / f"{name}.log") for name in state.names
    }


def logged_errors(path: Path) -> dict[str, int]:
    """Lines a process logged at level error or above, by event name."""
    found: dict[str, int] = {}
    for line in path.read_bytes().splitlines():
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # the server's start-up banner
        if isinstance(entry, dict) and entry.get("level") in ("error", "critical"):
            name = str(entry.get("event"))
            found[name] = found.get(name, 0) + 1
    return found


def measure(state: Run) -> dict[str, Any]:
    """The figures of a finished run."""
    http, kafka, tracker, sampler = state.http, state.kafka, state.tracker, state.sampler
    assert http is not None
    assert kafka is not None
    assert tracker is not None
    assert sampler is not None
    m = state.measured
    stats, queries, codes = m["store"], m["queries"], m["exit_codes"]
    produced = len(kafka.produced_at)
    errors: dict[str, Any] = {
        "http_ingest": dict(http.errors),
        "http_events_not_accepted": http.outcomes["duplicate"] + http.outcomes["rejected"],
        "kafka_produce_failures": kafka.failures,
        "dead_letters": m["dead_letters"],
        "rejections_stored": stats["rejections"],
        "scheduler_refusals_not_errors": stats["scheduler_refusals"],
        "scheduler_emitted": stats["scheduler_emitted"],
        # Every HTTP event answered "accepted" and every Kafka record up to the offset the
        # worker tracked must be stored once: stored keys short (or beyond) that are lost
        # (or doubled). A backlog still in Kafka at the drain limit is under "drain".
        "missing_from_store": http.outcomes["accepted"]
        + stats["kafka_stored"]
        + stats["scheduler_emitted"]
        - stats["ingested"],
        "queries": queries["errors"],
        "logged_errors": m["log_errors"],
        "exit_codes": codes,
        "thread_errors": [repr(e) for e in (http.error, kafka.error, tracker.error) if e],
    }
    error_count = (
        sum(http.errors.values())
        + errors["http_events_not_accepted"]
        + kafka.failures
        + m["dead_letters"]
        + stats["rejections"]
        + abs(errors["missing_from_store"])
        + sum(queries["errors"].values())
        + sum(1 for c in codes.values() if c != 0)
        + len(errors["thread_errors"])
        + sum(n for logged in m["log_errors"].values() for n in logged.values())
    )
    first, last = m["rss_first"], m["rss_last"]
    rss: dict[str, Any] = {}
    for name in state.names:
        rss[f"{name}_start_mb"] = first[f"{name}_rss_mb"]
        rss[f"{name}_end_mb"] = last[f"{name}_rss_mb"]
    rss["series"] = sampler.samples
    growth = {
        name: round(100 * (rss[f"{name}_end_mb"] / rss[f"{name}_start_mb"] - 1), 1)
        for name in state.names
        if rss[f"{name}_start_mb"] and rss[f"{name}_end_mb"]
    }
    cpu = cpu_figures(
        m["cpu_first"],
        m["cpu_last"],
        {
            "http_producer": http.native_id,
            "kafka_producer": kafka.native_id,
            "tracker": tracker.native_id,
        },
        queries_s=queries.get("cpu_s"),
        postgres_database_s=m.get("postgres_database_cpu_s"),
    )
    elapsed = m["stopped_at"] - http.stop.t0
    achieved = (http.posted + produced) / elapsed
    # What was stored by the time producing stopped: HTTP answers come after the commit;
    # the Kafka half is the worker's tracked offset at that moment.
    at_stop = [t for t in tracker.ticks if t[0] <= m["stopped_at"]]
    kafka_stored = at_stop[-1][1] + 1 if at_stop else 0
    stored_rate = (http.posted + kafka_stored) / elapsed
    return {
        "store": state.args.store,
        "topology": state.args.topology,
        "api_workers": state.args.api_workers if state.args.topology == "split" else None,
        "processes": state.names,
        "minutes": state.args.minutes,
        "rate_target": state.args.rate,
        "events_ingested": {"http": http.posted, "kafka": produced},
        "rate_achieved": round(achieved, 1),
        "rate_stored": round(stored_rate, 1),
        "kafka_backlog_at_stop": produced - kafka_stored,
        "http_schedule_slip_max_s": round(http.behind_s, 2),
        "log_events": stats["log_events"],
        "drain": m["drain"],
        "lag": lags(tracker.ticks, http.sent, kafka.produced_at),
        "queries": queries,
        "rss": rss,
        "rss_growth_percent": growth,
        "cpu": cpu,
        "errors": errors,
        "error_count": error_count,
        "readiness_failures": sampler.not_ready,
        "cpus": os.cpu_count(),
        "load_average_start": m["load_average_start"],
        "load_average_end": m["load_average_end"],
        "work": str(state.work),
    }


def store_counts(store_url: str, topic: str) -> dict[str, int]:
    """Accepted keys, producers' rejections, the scheduler's refusals and the log length.

    The overdue scheduler's events refused by a finding (a producer's event
    met the target between the scheduler's check and its commit) are the
    aggregate having the last word, as designed; they are counted apart.
    """
    from practice_events.bootstrap import build_app
    from practice_events.config import Settings
    from practice_events.domain.base import SYSTEM_SOURCE

    app = build_app(Settings(store=store_url))
    try:
        internal = len(app.store.select_rejections(source=SYSTEM_SOURCE, limit=10**7))
        name = f"kafka:{topic}:0"
        tracked = app.store.select_trackings(name).get(name, -1)
        topics = app.store.count_events_by_topic()
        return {
            "kafka_stored": int(tracked) + 1,
            # the scheduler's own inputs: one key and one event each, of these types only
            "scheduler_emitted": sum(topics.get(t, 0) for t in SCHEDULER_TYPES),
            "ingested": app.store.count_ingested_keys(),
            "rejections": sum(app.store.count_rejections().values()) - internal,
            "scheduler_refusals": internal,
            "log_events": app.last_position(),
        }
    finally:
        app.close()


def report(figures: dict[str, Any], out: Path) -> dict[str, Any]:
    """Judge the figures against the targets, write and print the result line."""
    lag_p99 = figures["lag"]["all"]["p99_ms"]
    query_p99 = figures["queries"]["p99_ms"]
    growth = max(figures["rss_growth_percent"].values(), default=0.0)
    detail = {
        "errors": figures["error_count"] == TARGETS["errors"],
        "p99_lag_ms": lag_p99 <= TARGETS["p99_lag_ms"],
        "p99_query_ms": query_p99 <= TARGETS["p99_query_ms"],
        "rss_growth_percent": growth <= TARGETS["rss_growth_percent"],
        "rate": figures["rate_stored"] >= 0.95 * figures["rate_target"],
        "drained": figures["drain"]["complete"],
    }
    result = {
        "bench": "soak",
        "figures": figures,
        "ratios": {
            "rate_stored_vs_target": round(figures["rate_stored"] / figures["rate_target"], 3),
            "p99_lag_vs_target": round(lag_p99 / TARGETS["p99_lag_ms"], 3),
            "p99_query_vs_target": round(query_p99 / TARGETS["p99_query_ms"], 3),
        },
        "targets": TARGETS,
        "targets_met": all(detail.values()),
        "targets_detail": detail,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    print(orjson.dumps(result).decode())
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--topology",
        choices=TOPOLOGIES,
        default="split",
        help="split: api, ingest and projections run as their own processes, as infra/k8s "
        "deploys them (default); all-in-one: serve and ingest",
    )
    parser.add_argument(
        "--api-workers",
        type=int,
        default=1,
        help="server processes of `practice-events api --workers N` (split only; default 1)",
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="soak duration (default 10)")
    parser.add_argument("--rate", type=float, default=2000.0, help="events/s in total")
    parser.add_argument("--clients", type=int, default=16, help="query clients (default 16)")
    parser.add_argument(
        "--think-ms",
        type=float,
        default=1000.0,
        help="pause of each client between requests (default 1000: a dashboard user)",
    )
    parser.add_argument("--http-batch", type=int, default=250, help="events per HTTP request")
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds before queries start")
    parser.add_argument("--seed", type=int, default=7, help="demo generator seed")
    parser.add_argument(
        "--drain-limit", type=float, default=600.0, help="longest wait for the backlog at the end"
    )
    parser.add_argument(
        "--pg-admin",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL URL to create the soak's database with",
    )
    parser.add_argument("--work", help="working directory (default: a fresh temporary one)")
    parser.add_argument(
        "--out",
        type=Path,
        help="results file (default bench/results/soak-<store>.json; a quick look may keep "
        "the recorded run's file as it is)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the store and the logs")
    parser.add_argument("--query-worker", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the soak and report; exit 1 when a target was missed."""
    args = parse_args(argv)
    if args.query_worker:
        spec = orjson.loads(sys.stdin.buffer.read())
        sys.stdout.write(orjson.dumps(query_worker(spec)).decode() + "\n")
        return 0
    figures = run(args)
    out = args.out or ROOT / "bench" / "results" / f"soak-{args.store}.json"
    result = report(figures, out)
    print(cpu_table(figures["cpu"]), file=sys.stderr)
    return 0 if result["targets_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
