"""Benchmark: the read API under load, beside a /healthz baseline, on SQLite and PostgreSQL.

Not a test: it prints figures. In one run, for each backend it

1. generates the demo district's history (``--events``, default 1,000,000;
   ``practice_events.demo.generator``) and ingests it through the real
   pipeline into a fresh store, then builds every projection (skipped with
   ``--reuse DIR`` when that directory already holds a loaded SQLite store);
2. starts the server (``practice-events api``, the real command, with
   ``--workers N`` server processes, default 1; request-rate limits set far
   above the load) and issues a district-supervisor token and an
   institute-supervisor one;
3. from a **separate load process**, ``--duration`` seconds per step after a
   warm-up, measures p50 and p99 latency and requests/s at 1, 8 and
   32 concurrent clients (keep-alive connections) for:

   * ``healthz``: ``GET /healthz`` (no I/O: the baseline of the stack),
   * ``scorecard``: ``GET /v1/units/{unit}/scorecard?period=…``,
   * ``closed_loop``: ``GET /v1/units/{unit}/closed-loop?period=…``,
   * ``findings``: ``GET /v1/findings?unit={unit}&limit=50``,

   cycling through the centre, every institute and the first stations, with
   the institute token for its own units and the district token for the rest;

and the server's CPU time per request (user + system of every server
process, from ``/proc``): the figure that moves least when other work
shares the machine. Then it prints a table, ratios to the baseline, and one
line of JSON (also written to ``--out``, default ``bench/results/api.json``).
Target (issue 6): p99 < 50 ms at 32 clients for the three query endpoints.

The load process (``--load-generator``, recorded in the JSON beside every figure):

* ``wrk`` (the default when installed; ``scripts/ensure-wrk.sh`` installs
  Debian's): one wrk thread (C, epoll) with ``-c`` clients, driven by a small
  Lua script (:data:`WRK_SCRIPT`) that cycles through the same planned
  requests with each one's bearer token and counts responses per status, so
  any answer but 200 counts as an error. wrk's ``--latency`` percentiles (50,
  75, 90, 99) are kept as ``wrk_latency_ms``, but they include samples wrk
  adds for coordinated omission (it models clients arriving at a fixed
  rate); ``p50_ms``/``p99_ms`` are those of the latencies measured, taken
  from wrk's histogram with those samples removed (:func:`uncorrected`), so
  they mean what the Python generator's mean. Each step is warmed up by the
  Python generator's warm-up (below) alone, on at least four connections per
  server process (each process keeps its own answers), and ``--duration`` is
  rounded to whole seconds. On a 2-core machine wrk takes far less of the CPU
  the server needs than
* ``python``: threads with keep-alive ``http.client`` connections, in a
  separate Python process, each warming up with one round of the planned
  requests (waiting for every answer); its own GIL-bound work adds to the
  latency it measures (the fallback when wrk is missing).

Reusing stores: ``--reuse DIR`` keeps the SQLite store in ``DIR`` (loaded by
the first run); ``--pg-database NAME`` keeps the PostgreSQL store in database
``NAME`` (marked as loaded once its load finished, reused after that).

    .venv/bin/python bench/api.py                        # 1,000,000 events, both backends
    .venv/bin/python bench/api.py --events 100000 --backends sqlite --duration 3
    .venv/bin/python bench/api.py --backends sqlite --reuse var/bench-api --cache-seconds 0
    .venv/bin/python bench/api.py --backends sqlite --reuse var/bench-api --workers 2
    .venv/bin/python bench/api.py --backends postgres --pg-database pe_bench_api_1m
    .venv/bin/python bench/api.py --backends sqlite --reuse var/bench-api --load-generator python
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONCURRENCY = (1, 8, 32)
ENDPOINTS = ("healthz", "scorecard", "closed_loop", "findings")
TARGET_P99_MS = 50.0
SERVER_ENV = {
    "PRACTICE_EVENTS_LOG_LEVEL": "warning",
    # Far above what the load sends: the limiter runs, but never refuses.
    "PRACTICE_EVENTS_HTTP_RATE_QUERY_PER_SECOND": "1000000",
    "PRACTICE_EVENTS_HTTP_RATE_INGEST_PER_SECOND": "1000000",
}
"""The server's settings beside the store (the rest are the defaults)."""


# -- loading -------------------------------------------------------------------------------


def load_store(store_url: str, events: int, seed: int, work: Path) -> dict[str, Any]:
    """Generate and ingest the demo history, then build every projection."""
    from practice_events.bootstrap import build_app, build_pipeline
    from practice_events.config import Settings
    from practice_events.demo.generator import write_jsonl
    from practice_events.ingest.files import ingest_file
    from projections.registry import all_projections
    from projections.runner import BatchedRunner
    from projections.viewstore import ViewStore, default_view_url

    started = time.perf_counter()
    path = work / "demo.jsonl"
    if not path.exists():
        write_jsonl(path, seed=seed, events=events, progress=True)
    settings = Settings(store=store_url)
    app = build_app(settings)
    try:
        summary = ingest_file(build_pipeline(settings, app), path, progress=True)
        views = ViewStore(default_view_url(store_url))
        try:
            BatchedRunner(app, views, all_projections(settings), batch_size=5000).catch_up()
        finally:
            views.close()
        head = app.last_position()
    finally:
        app.close()
    return {
        "inputs": summary.accepted + summary.rejected,
        "log_events": head,
        "load_seconds": round(time.perf_counter() - started, 1),
    }


def issue_tokens(store_url: str, institute: str) -> dict[str, str]:
    """A district-supervisor and an institute-supervisor token."""
    from practice_events.auth.tokens import token_store
    from practice_events.bootstrap import build_app
    from practice_events.config import Settings

    app = build_app(Settings(store=store_url))
    try:
        tokens = token_store(app)
        return {
            "district": tokens.issue("district_supervisor", unit="WLY").secret,
            "institute": tokens.issue("institute_supervisor", unit=institute).secret,
        }
    finally:
        app.close()


def network_units(store_url: str) -> tuple[list[str], list[str], str]:
    """(institutes, stations, the last month with data) of the loaded district."""
    from projections.network import list_sites
    from projections.viewstore import ViewStore, default_view_url

    views = ViewStore(default_view_url(store_url))
    try:
        institutes = [s["site_id"] for s in list_sites(views, level="institute")]
        stations = [s["site_id"] for s in list_sites(views, level="station")]
        with views.read() as tx:
            last = tx.scalar("SELECT MAX(recorded_date) FROM closed_loop_findings")
    finally:
        views.close()
    return institutes, stations, str(last)[:7]


# -- the server ----------------------------------------------------------------------------


def free_port() -> int:
    """A free TCP port on localhost."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the workers of ``api --workers N``), from ``/proc``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, ()))
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its descendants so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


@dataclass
class Served:
    """A running server: its base URL and process id."""

    url: str
    pid: int


@contextmanager
def server(
    store_url: str, cache_seconds: float | None = None, workers: int = 1
) -> Iterator[Served]:
    """Run ``practice-events api`` in its own process until the block ends."""
    import httpx

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRACTICE_EVENTS_")}
    env.update(SERVER_ENV)
    if cache_seconds is not None:
        env["PRACTICE_EVENTS_API_CACHE_SECONDS"] = str(cache_seconds)
    command = [sys.executable, "-m", "practice_events.cli", "api", "--store", store_url]
    command += ["--port", str(port), "--json"]
    if workers > 1:
        command += ["--workers", str(workers)]
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                msg = "the server exited during start-up"
                raise RuntimeError(msg)
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                msg = "the server did not start within 120 s"
                raise RuntimeError(msg)
            time.sleep(0.1)
        while len(process_tree(proc.pid)) < 1 + (workers + 1 if workers > 1 else 0):
            time.sleep(0.1)  # every worker (and the supervisor's resource tracker) is up
        settled = cpu_seconds(proc.pid)
        while time.monotonic() < deadline:  # until the workers' start-up stops using CPU
            time.sleep(0.5)
            now = cpu_seconds(proc.pid)
            if now - settled < 0.05:
                break
            settled = now
        yield Served(url, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


# -- the load process ----------------------------------------------------------------------


def load_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Run in the load process: ``clients`` threads requesting for ``duration`` seconds.

    Each thread keeps one HTTP/1.1 connection (``http.client``: the lightest
    client in the standard library, so the load process spends as little
    of the shared CPUs as it can).
    """
    import http.client
    from urllib.parse import urlparse

    target = urlparse(spec["url"])
    requests: list[dict[str, Any]] = spec["requests"]
    latencies: list[list[float]] = [[] for _ in range(spec["clients"])]
    errors = [0] * spec["clients"]
    stop_at = [0.0]
    began = [0.0]

    def go() -> None:
        """Run by the barrier once every client is ready, before any is released."""
        began[0] = time.perf_counter()
        stop_at[0] = began[0] + spec["duration"]

    start = threading.Barrier(spec["clients"] + 1, action=go)

    def client(index: int) -> None:
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)

        def get(item: dict[str, Any]) -> int:
            conn.request("GET", item["path"], headers=item["headers"])
            response = conn.getresponse()
            response.read()
            return response.status

        try:
            for n in range(spec["warmup"]):
                get(requests[(index + n) % len(requests)])
            start.wait()
            n = index
            mine = latencies[index]
            while True:
                item = requests[n % len(requests)]
                n += 1
                t0 = time.perf_counter()
                status = get(item)
                elapsed = time.perf_counter() - t0
                if t0 >= stop_at[0]:
                    return
                if status != 200:
                    errors[index] += 1
                mine.append(elapsed)
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(spec["clients"])]
    for thread in threads:
        thread.start()
    start.wait()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began[0]
    every = sorted(x for series in latencies for x in series)
    return {
        "requests": len(every),
        "errors": sum(errors),
        "requests_per_second": round(len(every) / seconds, 1),
        "p50_ms": round(percentile(every, 0.50) * 1000, 2),
        "p99_ms": round(percentile(every, 0.99) * 1000, 2),
        "max_ms": round(every[-1] * 1000, 2) if every else None,
    }


def percentile(ordered: list[float], share: float) -> float:
    """Nearest-rank percentile of sorted values (0 for none)."""
    if not ordered:
        return 0.0
    rank = max(1, int(-(-share * len(ordered) // 1)))
    return ordered[min(rank, len(ordered)) - 1]


def run_load(spec: dict[str, Any]) -> dict[str, Any]:
    """Run :func:`load_worker` in a separate process and return its figures."""
    out = subprocess.run(
        [sys.executable, __file__, "--load-worker"],
        input=orjson.dumps(spec),
        capture_output=True,
        check=True,
        cwd=ROOT,
    )
    result: dict[str, Any] = orjson.loads(out.stdout.splitlines()[-1])
    return result


WRK_SCRIPT = """
-- Written by bench/api.py for one step: cycle through the planned requests (each with
-- its own bearer token), count responses per status, and print the figures as JSON.
local planned = {%(requests)s}
local prepared = {}
local next_index = 0
statuses = {}  -- a global: done() reads it with thread:get()
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  for i, item in ipairs(planned) do
    prepared[i] = wrk.format("GET", item[1], item[2])
  end
end

function request()
  next_index = next_index %% #prepared + 1
  return prepared[next_index]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local parts = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      table.insert(parts, string.format('"%%d": %%d', status, count))
    end
  end
  -- The latency histogram as wrk holds it (microseconds, count): wrk has already added
  -- its coordinated-omission samples to it, which parse_wrk takes out again.
  local histogram = {}
  local i = 1
  while true do
    local value, count = latency(i)  -- the i-th value recorded; 0 past the last one
    if value == 0 then break end
    table.insert(histogram, string.format("[%%d, %%d]", value, count))
    i = i + 1
  end
  local errors = summary.errors
  io.write(string.format(
    'WRK-JSON {"requests": %%d, "duration_us": %%d, "statuses": {%%s}, '
      .. '"socket_errors": {"connect": %%d, "read": %%d, "write": %%d, "timeout": %%d}, '
      .. '"max_us": %%d, "histogram": [%%s]}\\n',
    summary.requests, summary.duration, table.concat(parts, ", "),
    errors.connect, errors.read, errors.write, errors.timeout, latency.max,
    table.concat(histogram, ", ")))
end
"""
"""The Lua script given to ``wrk -s`` (``%%(requests)s``: the planned requests as Lua tables)."""

WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
"""Milliseconds per unit of wrk's printed latencies."""


def lua_string(text: str) -> str:
    """``text`` as a Lua string literal (ASCII only: paths and tokens are)."""
    if not text.isascii():
        msg = f"not ASCII: {text!r}"
        raise ValueError(msg)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def wrk_script(requests: list[dict[str, Any]]) -> str:
    """The Lua script of one wrk step: :data:`WRK_SCRIPT` with ``requests`` in it."""
    items = []
    for item in requests:
        headers = ", ".join(
            f"[{lua_string(name)}] = {lua_string(value)}" for name, value in item["headers"].items()
        )
        items.append(f"{{{lua_string(item['path'])}, {{{headers}}}}}")
    return WRK_SCRIPT % {"requests": ", ".join(items)}


def uncorrected(
    histogram: list[list[int]], requests: int, duration_us: int, clients: int
) -> dict[int, int]:
    """wrk's latency histogram (µs -> count) without its coordinated-omission samples.

    wrk 4 "corrects" its histogram before it prints or hands it to the script
    (``stats_correct``): for every latency of at least twice the mean interval
    between one connection's requests, it adds samples at that latency minus one,
    two, … intervals. That models clients arriving at a fixed rate; the closed
    loop this benchmark runs (and its Python generator measures) has no such
    requests, so the figures are taken from the latencies measured. The
    correction only adds below the latency that caused it, so undoing it from the
    top down recovers the measured counts exactly (their sum is the request count).
    """
    data = {int(value): int(count) for value, count in histogram}
    per_connection = requests // max(1, clients)
    if per_connection == 0:
        return data
    expected = duration_us // per_connection
    added: dict[int, int] = {}
    measured: dict[int, int] = {}
    for value in sorted(data, reverse=True):
        count = data[value] - added.get(value, 0)
        if count:
            measured[value] = count
        if expected > 0 and value >= 2 * expected and count:
            lower = value - expected
            while lower > expected:
                added[lower] = added.get(lower, 0) + count
                lower -= expected
    return measured


def histogram_percentile(counts: dict[int, int], share: float) -> float:
    """Nearest-rank percentile of a histogram (value -> count), as :func:`percentile`."""
    total = sum(counts.values())
    if not total:
        return 0.0
    rank = max(1, int(-(-share * total // 1)))
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        if seen >= rank:
            return float(value)
    return float(max(counts))


def parse_wrk(output: str, clients: int) -> dict[str, Any]:
    """Figures from wrk's output: the script's JSON line and ``--latency``'s percentiles.

    ``p50_ms``/``p99_ms`` are the measured latencies' (:func:`uncorrected`), as the
    Python generator reports them; ``wrk_latency_ms`` holds what ``--latency``
    printed (50, 75, 90, 99 %, with wrk's coordinated-omission correction).
    """
    import re

    printed: dict[str, float] = {}
    pattern = r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$"
    for share, number, unit in re.findall(pattern, output, re.MULTILINE):
        printed[share] = round(float(number) * WRK_UNITS[unit], 2)
    marker = next(line for line in output.splitlines() if line.startswith("WRK-JSON "))
    data = orjson.loads(marker.removeprefix("WRK-JSON "))
    statuses = {str(k): int(v) for k, v in sorted(data["statuses"].items())}
    errors = sum(v for k, v in statuses.items() if k != "200")
    errors += sum(data["socket_errors"].values())
    seconds = data["duration_us"] / 1e6
    measured = uncorrected(data["histogram"], data["requests"], data["duration_us"], clients)
    return {
        "seconds": round(seconds, 2),
        "requests": data["requests"],
        "errors": errors,
        "requests_per_second": round(data["requests"] / seconds, 1) if seconds else 0.0,
        "p50_ms": round(histogram_percentile(measured, 0.50) / 1000, 2),
        "p75_ms": round(histogram_percentile(measured, 0.75) / 1000, 2),
        "p90_ms": round(histogram_percentile(measured, 0.90) / 1000, 2),
        "p99_ms": round(histogram_percentile(measured, 0.99) / 1000, 2),
        "max_ms": round(data["max_us"] / 1000, 2),
        "latencies_measured": sum(measured.values()),
        "wrk_latency_ms": printed,
        "statuses": statuses,
        "socket_errors": data["socket_errors"],
    }


def run_wrk(
    url: str, requests: list[dict[str, Any]], clients: int, seconds: float, work: Path
) -> dict[str, Any]:
    """One wrk run: one thread, ``clients`` keep-alive connections, for ``seconds``."""
    script = work / "step.lua"
    script.write_text(wrk_script(requests), encoding="ascii")
    command = ["wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "30s"]
    command += ["--latency", "-s", str(script), url]
    out = subprocess.run(command, capture_output=True, check=False, text=True)
    if out.returncode != 0:
        msg = f"wrk failed ({out.returncode}): {out.stderr.strip()} {out.stdout.strip()}"
        raise RuntimeError(msg)
    return parse_wrk(out.stdout, clients)


def plan_requests(
    endpoint: str,
    tokens: dict[str, str],
    institutes: list[str],
    stations: list[str],
    period: str,
) -> list[dict[str, Any]]:
    """The requests one step cycles through (units of the district and of one institute)."""
    if endpoint == "healthz":
        return [{"path": "/healthz", "headers": {}}]
    own = institutes[0]
    units = ["WLY", *institutes, *stations[:8]]
    paths = {
        "scorecard": "/v1/units/{unit}/scorecard?period=" + period,
        "closed_loop": "/v1/units/{unit}/closed-loop?period=" + period,
        "findings": "/v1/findings?unit={unit}&limit=50",
    }
    out = []
    for unit in units:
        role = "institute" if unit == own else "district"
        out.append(
            {
                "path": paths[endpoint].format(unit=unit),
                "headers": {"Authorization": f"Bearer {tokens[role]}"},
            }
        )
    return out


def measure(store_url: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Every endpoint at every concurrency against one loaded store."""
    institutes, stations, period = network_units(store_url)
    tokens = issue_tokens(store_url, institutes[0])
    figures: dict[str, Any] = {"period": period, "load_generator": args.load_generator}
    with server(store_url, args.cache_seconds, args.workers) as served:
        for endpoint in ENDPOINTS:
            requests = plan_requests(endpoint, tokens, institutes, stations, period)
            figures[endpoint] = {}
            for clients in args.clients:
                spec = {
                    "url": served.url,
                    "requests": requests,
                    "clients": clients,
                    "duration": args.duration,
                    "warmup": max(2, len(requests)),
                }
                if args.load_generator == "wrk":
                    # The Python generator's warm-up alone (every client asks every
                    # question and waits for its answer, even a slow first one), on at
                    # least four connections per server process so that every process
                    # is likely to get some (the kernel picks which one accepts), then
                    # the measured wrk run: the CPU window holds the measured requests only.
                    warm_clients = max(clients, 4 * args.workers)
                    run_load({**spec, "clients": warm_clients, "duration": 0})
                    cpu_before = cpu_seconds(served.pid)
                    result = run_wrk(served.url, requests, clients, args.duration, work)
                    cpu = cpu_seconds(served.pid) - cpu_before
                    served_requests = result["requests"]
                else:
                    # The load process's start-up and warm-up fall inside the CPU window
                    # too, but they are the load's, not the server's; the server's warm-up
                    # requests are few against thousands measured.
                    cpu_before = cpu_seconds(served.pid)
                    result = run_load(spec)
                    cpu = cpu_seconds(served.pid) - cpu_before
                    served_requests = result["requests"] + clients * spec["warmup"]
                result["load_generator"] = args.load_generator
                result["server_cpu_ms_per_request"] = round(1000 * cpu / max(1, served_requests), 3)
                figures[endpoint][str(clients)] = result
                print(
                    f"  {endpoint:<12} {clients:>3} clients: p50 {result['p50_ms']:>7.2f} ms  "
                    f"p99 {result['p99_ms']:>7.2f} ms  {result['requests_per_second']:>8,.0f} "
                    f"req/s  {result['server_cpu_ms_per_request']:>6.3f} ms CPU/req  "
                    f"({result['errors']} errors, {args.load_generator})",
                    flush=True,
                )
    return figures


# -- stores --------------------------------------------------------------------------------


LOADED_COMMENT = "pe-bench-api loaded: "
"""The start of the comment a fully loaded, kept bench database carries (then its load's JSON)."""


@contextmanager
def pg_store(admin: str, keep: bool, name: str | None = None) -> Iterator[tuple[str, bool]]:
    """A PostgreSQL database for the run, and whether it already holds a loaded store.

    Without ``name``: a fresh database, dropped afterwards unless ``keep``. With
    ``name`` (``--pg-database``): that database, reused when an earlier run loaded
    it completely (it marks it with :data:`LOADED_COMMENT`), else created afresh;
    it is kept either way, like ``--reuse``'s SQLite directory.
    """
    import psycopg

    keep = keep or name is not None
    name = name or f"pe_bench_api_{uuid.uuid4().hex[:8]}"
    loaded = False
    with psycopg.connect(admin, autocommit=True) as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            (name,),
        ).fetchone()
        if row is not None and (row[0] or "").startswith(LOADED_COMMENT):
            loaded = True
        else:
            if row is not None:  # a load that did not finish: start again
                conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    base = admin.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}", loaded
    finally:
        if not keep:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def mark_loaded(admin: str, url: str, loaded: dict[str, Any]) -> None:
    """Mark a kept PostgreSQL bench database as completely loaded (for ``--pg-database``)."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    comment = LOADED_COMMENT + orjson.dumps(loaded).decode()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"COMMENT ON DATABASE \"{name}\" IS '{comment}'")


def run_backend(backend: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Load (or reuse) one backend's store and measure it."""
    print(f"{backend}:", flush=True)
    if backend == "sqlite":
        where = Path(args.reuse) if args.reuse else work
        where.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{where / 'store.db'}"
        loaded: dict[str, Any] = {"reused": True}
        if not (where / "store.views.db").exists():
            loaded = load_store(url, args.events, args.seed, work)
            print(f"  loaded {loaded}", flush=True)
        return {"load": loaded, **measure(url, args, work)}
    subprocess.run(["bash", str(ROOT / "scripts" / "ensure-postgres.sh")], check=True)
    with pg_store(args.pg_admin, args.keep, args.pg_database) as (url, reused):
        if reused:
            loaded = {"reused": True}
        else:
            loaded = load_store(url, args.events, args.seed, work)
            print(f"  loaded {loaded}", flush=True)
            if args.pg_database:
                mark_loaded(args.pg_admin, url, loaded)
        return {"load": loaded, **measure(url, args, work)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The benchmark's options."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the history")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--backends", default="sqlite,postgres", help="comma-separated: sqlite, postgres"
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per step")
    parser.add_argument(
        "--clients",
        type=lambda text: [int(x) for x in text.split(",")],
        default=list(CONCURRENCY),
        help="concurrent clients per step, comma-separated (default 1,8,32)",
    )
    parser.add_argument("--reuse", help="a directory holding (or to hold) the SQLite store")
    parser.add_argument(
        "--workers", type=int, default=1, help="server processes (practice-events api --workers)"
    )
    parser.add_argument(
        "--cache-seconds",
        type=float,
        help="the server's PRACTICE_EVENTS_API_CACHE_SECONDS (0: compute every answer)",
    )
    parser.add_argument(
        "--pg-admin",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL URL allowed to create databases",
    )
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    parser.add_argument(
        "--pg-database",
        help="a PostgreSQL database to hold the store and keep (reused once fully loaded)",
    )
    parser.add_argument(
        "--load-generator",
        choices=("wrk", "python"),
        default="wrk" if shutil.which("wrk") else "python",
        help="wrk (default when installed: scripts/ensure-wrk.sh) or Python threads",
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "api.json"))
    parser.add_argument("--load-worker", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def report(figures: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Ratios to the /healthz baseline, targets, the JSON line and file."""
    ratios: dict[str, float] = {}
    met: dict[str, bool] = {}
    top = str(max(args.clients))
    for backend, measured in figures["backends"].items():
        base = measured["healthz"][top]["p99_ms"] or 1e-9
        for endpoint in ENDPOINTS[1:]:
            step = measured[endpoint][top]
            ratios[f"{backend}_{endpoint}_p99_vs_healthz_at_{top}"] = round(
                step["p99_ms"] / base, 2
            )
            met[f"{backend}_{endpoint}_p99_ms_at_{top}"] = (
                step["p99_ms"] < TARGET_P99_MS and step["errors"] == 0
            )
    for name, ok in met.items():
        print(f"target {name} < {TARGET_P99_MS:g} ms: {'met' if ok else 'NOT met'}")
    result = {
        "bench": "api",
        "figures": figures,
        "ratios": ratios,
        "targets": {"p99_ms_at_max_clients": TARGET_P99_MS, "max_clients": int(top)},
        "targets_met": bool(met) and all(met.values()),
        "targets_detail": met,
    }
    line = orjson.dumps(result).decode()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(line + "\n", encoding="utf-8")
    print(line)
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with --load-worker, one load step from stdin)."""
    args = parse_args(argv)
    if args.load_worker:
        spec = orjson.loads(sys.stdin.buffer.read())
        print(orjson.dumps(load_worker(spec)).decode())
        return 0
    from practice_events.logging import configure_logging

    configure_logging("console", "warning")
    figures: dict[str, Any] = {
        "events": args.events,
        "cpus": os.cpu_count(),
        "duration_seconds": args.duration,
        "answer_cache_seconds": args.cache_seconds,
        "workers": args.workers,
        "load_generator": args.load_generator,
        "backends": {},
    }
    work = Path(tempfile.mkdtemp(prefix="pe-bench-api-"))
    try:
        for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
            figures["backends"][backend] = run_backend(backend, args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(figures, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
