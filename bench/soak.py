"""Soak: steady ingestion through HTTP and Kafka for minutes while clients query the API.

Not a test: it prints figures (issue 9, "Load"). In one run it

1. starts a Tansu broker, a fresh store (a SQLite file, or a fresh PostgreSQL
   database), the all-in-one server (``practice-events serve``: HTTP
   ingestion, the projection runners, the query API) and a Kafka ingestion
   worker (``practice-events ingest``, its own process);
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
   * **memory**: resident set size of the server and of the worker at the
     start of the load and at its end (sampled every 5 s in between);
   * **errors**: HTTP ingest answers other than 200, events not accepted,
     query answers other than 200, Kafka produce failures, dead letters,
     events missing from the store at the end, and lines the server or the
     worker logged at level error. All must be 0.

Results go to ``bench/results/soak-<store>.json`` and one line of JSON is
printed (``{"bench": "soak", "figures": …, "targets": …, "targets_met": …}``).

    .venv/bin/python bench/soak.py --store postgres                 # 10 minutes, 2,000/s
    .venv/bin/python bench/soak.py --store sqlite --minutes 1 --rate 500   # a quick look
"""

from __future__ import annotations

import argparse
import bisect
import os
import re
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
from typing import Any

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
    """The environment of the server and the worker: no project settings but these."""
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


@dataclass
class Processes:
    """The server and the worker, with their logs."""

    server: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes]
    url: str
    worker_health: str
    logs: list[Any] = field(default_factory=list)

    def stop(self) -> dict[str, int | None]:
        """SIGTERM both; return their exit codes."""
        codes: dict[str, int | None] = {}
        for name, proc in (("worker", self.worker), ("server", self.server)):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
            codes[name] = proc.returncode
        for log in self.logs:
            log.close()
        return codes


def start_processes(store_url: str, bootstrap: str, topic: str, work: Path) -> Processes:
    """Start ``serve`` and ``ingest``; wait until both say ready."""
    import httpx

    env = child_env(store_url)
    port, health = free_port(), free_port()
    server_log = (work / "server.log").open("wb")
    worker_log = (work / "worker.log").open("wb")
    server = subprocess.Popen(
        [*CLI, "serve", "--port", str(port)],
        cwd=work,
        env=env,
        stdout=server_log,
        stderr=subprocess.STDOUT,
    )
    ingest = ["ingest", "--kafka", bootstrap, "--topic", topic, "--group", f"soak-{topic}"]
    worker = subprocess.Popen(
        [*CLI, *ingest, "--dlq-topic", f"{topic}.dlq", "--health-port", str(health)],
        cwd=work,
        env=env,
        stdout=worker_log,
        stderr=subprocess.STDOUT,
    )
    procs = Processes(
        server,
        worker,
        f"http://127.0.0.1:{port}",
        f"http://127.0.0.1:{health}",
        [server_log, worker_log],
    )
    deadline = time.monotonic() + 180
    for url in (procs.url + "/readyz", procs.worker_health + "/readyz"):
        while True:
            if server.poll() is not None or worker.poll() is not None:
                procs.stop()
                msg = f"a process exited during start-up; see {work}/*.log"
                raise RuntimeError(msg)
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                procs.stop()
                msg = f"{url} not ready within 180 s"
                raise RuntimeError(msg)
            time.sleep(0.2)
    return procs


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
    """Every 5 s: RSS of the server and the worker, and both readiness answers."""

    def __init__(self, procs: Processes) -> None:
        super().__init__(name="sampler", daemon=True)
        self.procs = procs
        self.samples: list[dict[str, Any]] = []
        self.not_ready = {"server": 0, "worker": 0}
        self.halt = threading.Event()

    def sample(self) -> dict[str, Any]:
        """Take one sample now."""
        import httpx

        row: dict[str, Any] = {
            "t": round(time.monotonic(), 1),
            "server_rss_mb": rss_mb(self.procs.server.pid),
            "worker_rss_mb": rss_mb(self.procs.worker.pid),
        }
        for name, url in (("server", self.procs.url), ("worker", self.procs.worker_health)):
            try:
                ok = httpx.get(url + "/readyz", timeout=10).status_code == 200
            except httpx.HTTPError:
                ok = False
            if not ok:
                self.not_ready[name] += 1
        self.samples.append(row)
        return row

    def run(self) -> None:
        while not self.halt.wait(5.0):
            self.sample()


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
    return {
        "clients": spec["clients"],
        "think_ms": spec["think_ms"],
        "requests": len(every),
        "requests_per_second": round(len(every) / seconds, 1),
        "errors": errors,
        **summary_ms(every),
        "by_endpoint": {name: summary_ms(sorted(s)) for name, s in latencies.items()},
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
        cli(store_url, work, "store", "stats")  # creates the tables before both processes start
        state.procs = start_processes(store_url, broker.bootstrap, topic, work)
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
    """Produce on schedule for the whole duration, queries running after the warm-up."""
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
    state.sampler = Sampler(procs)
    state.http = HttpProducer(
        procs.url, producer_token, half, args.http_batch, http_stream(events_per_half, args.seed)
    )
    state.kafka = KafkaProducerThread(
        state.broker.bootstrap, state.topic, half, events_per_half, args.seed + 1
    )
    # A short warm-up at full rate, so that the district's first data exist for the queries.
    state.http.start()
    state.kafka.start()
    time.sleep(args.warmup)
    load_seconds = seconds - args.warmup
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
    state.measured["load_average_start"] = [round(x, 2) for x in os.getloadavg()]
    state.measured["rss_first"] = state.sampler.sample()
    state.sampler.start()
    while time.monotonic() - started < load_seconds:
        time.sleep(1.0)
        if procs.server.poll() is not None or procs.worker.poll() is not None:
            break
    state.measured["rss_last"] = state.sampler.sample()
    state.measured["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    state.measured["stopped_at"] = time.monotonic()
    state.http.stop.event.set()
    state.kafka.stop.event.set()
    state.http.join(120)
    state.kafka.join(120)
    state.sampler.halt.set()
    assert queries.stdout is not None
    out = queries.stdout.read()
    queries.wait(300)
    state.measured["queries"] = orjson.loads(out.splitlines()[-1])


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
    # Stop both processes (a worker finishes its batch) before counting, so that the
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
        name: logged_errors(state.work / f"{name}.log") for name in ("server", "worker")
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
    rss = {
        "server_start_mb": first["server_rss_mb"],
        "server_end_mb": last["server_rss_mb"],
        "worker_start_mb": first["worker_rss_mb"],
        "worker_end_mb": last["worker_rss_mb"],
        "series": sampler.samples,
    }
    growth = {
        name: round(100 * (rss[f"{name}_end_mb"] / rss[f"{name}_start_mb"] - 1), 1)
        for name in ("server", "worker")
        if rss[f"{name}_start_mb"] and rss[f"{name}_end_mb"]
    }
    elapsed = m["stopped_at"] - http.stop.t0
    achieved = (http.posted + produced) / elapsed
    # What was stored by the time producing stopped: HTTP answers come after the commit;
    # the Kafka half is the worker's tracked offset at that moment.
    at_stop = [t for t in tracker.ticks if t[0] <= m["stopped_at"]]
    kafka_stored = at_stop[-1][1] + 1 if at_stop else 0
    stored_rate = (http.posted + kafka_stored) / elapsed
    return {
        "store": state.args.store,
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
    result = report(figures, ROOT / "bench" / "results" / f"soak-{args.store}.json")
    return 0 if result["targets_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
