"""Benchmark: the same two-district input into 1 shard vs 2 shards on PostgreSQL.

Not a test: it prints figures. In one run it

1. generates N events of two demo districts (``WLY`` and ``CLX``,
   ``practice_events.demo.districts.province_history``, N/2 each, with the
   ``district`` attribute set as producers of a sharded deployment do);
2. ingests them, as ``ingest-file`` does (structured CloudEvents, batches of
   ``--batch-size``), into fresh PostgreSQL schemas of one database:

   ``one_shard``       one process, one pipeline, one store (the baseline);
   ``router``          one process, the shard router over two stores (each
                       batch split, one transaction per shard, one after the
                       other): what ``ingest-file``/HTTP do with two shards;
   ``two_processes``   two processes at once, one per shard, each with that
                       shard's pipeline and the inputs the routing rule sends
                       to it: what one ingestion worker per shard (one Kafka
                       partition range per shard) does;

3. prints events/s (input events over wall time, from when every process is
   ready until the last commits) and the ratios to ``one_shard``, and writes
   one line of JSON to ``bench/results/shards.json``.

The machine matters: with 2 cores, the two ingest processes and PostgreSQL
share them, so two shards cannot be twice as fast here; the figure shows
what is left once the single store's lock and the pipeline's CPU time are
spread. The load average at the start is recorded beside the figures.

    .venv/bin/python bench/shards.py                  # 40,000 events
    .venv/bin/python bench/shards.py --events 10000   # a quick run
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DISTRICTS = ("WLY", "CLX")


# -- input ------------------------------------------------------------------------------


def province_lines(events: int, seed: int) -> list[bytes]:
    """The two districts' histories, merged by time, as JSON lines."""
    from practice_events.demo.districts import province_history

    per_district = max(100, events // len(DISTRICTS))
    return [
        orjson.dumps(e)
        for e in province_history(DISTRICTS, seed=seed, events_per_district=per_district)
    ]


def split_by_shard(lines: Sequence[bytes], urls: dict[str, str]) -> dict[str, list[bytes]]:
    """The lines each shard's pipeline gets under the routing rule (reference data: both)."""
    from practice_events.contracts.base import catalogue
    from practice_events.shards.routing import DISTRICT_ATTRIBUTE, ShardMap

    kinds = {name: model.AGGREGATE for name, model in catalogue().items()}
    shard_map = ShardMap.build(urls, urls[DISTRICTS[0]])
    parts: dict[str, list[bytes]] = {name: [] for name in shard_map.names}
    for line in lines:
        event = orjson.loads(line)
        shard = shard_map.route(
            kinds.get(event["type"]), event.get(DISTRICT_ATTRIBUTE), event["subject"]
        )
        for name in parts if shard is None else [shard]:
            parts[name].append(line)
    return parts


def route_cost(lines: Sequence[bytes]) -> float:
    """CPU microseconds per input of ``ShardRouter.route`` (reading the district), no store."""
    from practice_events.ingest.pipeline import RawInput
    from practice_events.shards.router import ShardRouter
    from practice_events.shards.routing import ShardMap

    urls = {code: f"postgresql://bench@127.0.0.1/bench?schema={code.lower()}" for code in DISTRICTS}
    shard_map = ShardMap.build(urls, urls[DISTRICTS[0]])
    # Routing reads only the shard map: no pipeline (no store) is needed to time it.
    router = ShardRouter(shard_map, dict.fromkeys(shard_map.names))  # type: ignore[arg-type]
    inputs = [RawInput(payload=line, channel="file") for line in lines]
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        for item in inputs:
            router.route(item)
        best = min(best, time.process_time() - started)
    return best * 1e6 / len(inputs)


# -- stores -----------------------------------------------------------------------------


@contextmanager
def fresh_schemas(admin_url: str, names: Sequence[str]) -> Iterator[dict[str, str]]:
    """A fresh database with one schema per name; yield store URLs; drop it afterwards."""
    import psycopg

    database = f"pe_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    base = f"{admin_url.rsplit('/', 1)[0]}/{database}"
    try:
        with psycopg.connect(base, autocommit=True) as conn:
            for name in names:
                conn.execute(f'CREATE SCHEMA "{name}"')
        yield {name: f"{base}?schema={name}" for name in names}
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


# -- runs -------------------------------------------------------------------------------


def _ingest(processor: Any, lines: Sequence[bytes], batch_size: int) -> dict[str, int]:
    from practice_events.ingest.pipeline import RawInput

    counts = {"accepted": 0, "duplicate": 0, "rejected": 0, "stored": 0}
    for start in range(0, len(lines), batch_size):
        batch = [
            RawInput(payload=line, channel="file", position=f"bench:{start + i}")
            for i, line in enumerate(lines[start : start + batch_size])
        ]
        result = processor.process(batch)
        counts["stored"] += result.events_stored
        for outcome in result.outcomes:
            counts[outcome.status] += 1
    return counts


@dataclass(frozen=True)
class Job:
    """One ingest process: its settings, the shard it writes (None: all, by the router), input."""

    settings: dict[str, Any]
    shard: str | None
    lines: list[bytes]
    batch_size: int
    shard_urls: dict[str, str] = field(default_factory=dict)


def _worker(job: Job, ready: Any, go: Any, out: Any) -> None:
    """One ingest process: open its store(s), wait for the start, ingest, report."""
    from practice_events.bootstrap import build_app, build_ingest, build_pipeline
    from practice_events.config import Settings
    from practice_events.logging import configure_logging

    configure_logging("console", "warning")
    settings = Settings(**job.settings)
    app = build_app(settings)
    if job.shard is not None:
        from practice_events.bootstrap import build_context, pipeline_options
        from practice_events.shards.router import ShardPipeline
        from practice_events.shards.routing import ShardMap

        processor: Any = ShardPipeline(
            app,
            build_context(settings),
            shard_map=ShardMap.build(job.shard_urls, settings.store),
            shard=job.shard,
            **pipeline_options(settings),
        )
    elif settings.shards:
        processor = build_ingest(settings, app)
    else:
        processor = build_pipeline(settings, app)
    try:
        ready.set()
        go.wait()
        cpu = time.process_time()
        counts = _ingest(processor, job.lines, job.batch_size)
        out.put({"done_at": time.perf_counter(), "cpu_s": time.process_time() - cpu, **counts})
    finally:
        processor.close()
        app.close()


def run(label: str, jobs: list[Job]) -> dict[str, Any]:
    """Run ingest processes together from one start signal; return wall time and counts."""
    ctx = mp.get_context("spawn")
    go = ctx.Event()
    out = ctx.Queue()
    procs = []
    readies = []
    for job in jobs:
        ready = ctx.Event()
        proc = ctx.Process(target=_worker, args=(job, ready, go, out))
        proc.start()
        procs.append(proc)
        readies.append(ready)
    for ready in readies:
        if not ready.wait(120):
            msg = f"{label}: a process did not open its store within 120 s"
            raise RuntimeError(msg)
    started = time.perf_counter()
    go.set()
    reports = [out.get(timeout=1800) for _ in procs]
    for proc in procs:
        proc.join(60)
        if proc.exitcode != 0:
            msg = f"{label}: an ingest process failed (exit {proc.exitcode})"
            raise RuntimeError(msg)
    return {
        "inputs": sum(len(job.lines) for job in jobs),
        "seconds": max(r["done_at"] for r in reports) - started,
        "cpu_s": sum(r["cpu_s"] for r in reports),
        "accepted": sum(r["accepted"] for r in reports),
        "rejected": sum(r["rejected"] for r in reports),
        "events_stored": sum(r["stored"] for r in reports),
    }


CONFIGURATIONS = ("one_shard", "router", "two_processes")


def measure_one(name: str, lines: list[bytes], args: argparse.Namespace) -> dict[str, Any]:
    """One configuration on fresh schemas."""
    size = args.batch_size
    if name == "one_shard":
        with fresh_schemas(args.pg_admin, ["one"]) as urls:
            figures = run(name, [Job({"store": urls["one"]}, None, lines, size)])
    else:
        with fresh_schemas(args.pg_admin, ["wly", "clx"]) as urls:
            shards = {"WLY": urls["wly"], "CLX": urls["clx"]}
            if name == "router":
                settings = {"store": shards["WLY"], "shards": shards}
                figures = run(name, [Job(settings, None, lines, size)])
            else:
                parts = split_by_shard(lines, shards)
                jobs = [
                    Job({"store": shards[shard]}, shard, part, size, shards)
                    for shard, part in parts.items()
                ]
                figures = run(name, jobs)
                figures["per_shard_inputs"] = {shard: len(p) for shard, p in parts.items()}
    # Reference data goes to both shards: count each input once.
    figures["inputs"] = len(lines)
    figures["events_per_second"] = len(lines) / figures["seconds"]
    figures["cpu_us_per_event"] = figures["cpu_s"] * 1e6 / len(lines)
    return figures


def measure(lines: list[bytes], args: argparse.Namespace, round_no: int) -> dict[str, Any]:
    """One round of the three configurations, in an order rotated each round.

    Rotating spreads a drift in the machine's load (other processes) over
    every configuration instead of always favouring the one that runs first.
    """
    shift = round_no % len(CONFIGURATIONS)
    order = CONFIGURATIONS[shift:] + CONFIGURATIONS[:shift]
    return {name: measure_one(name, lines, args) for name in order}


# -- main -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The benchmark's options."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=40_000, help="input events (both districts)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=1, help="rounds; the median is reported")
    parser.add_argument(
        "--pg-admin",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL URL allowed to create databases",
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "shards.json"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print figures and the JSON line."""
    from practice_events.logging import configure_logging

    args = parse_args(argv)
    configure_logging("console", "warning")
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    lines = province_lines(args.events, args.seed)
    print(
        f"generated {len(lines):,} events of {len(DISTRICTS)} districts "
        f"in {time.perf_counter() - started:.1f} s"
    )
    route_us = route_cost(lines)
    print(f"routing (ShardRouter.route): {route_us:.1f} µs CPU per event")
    rounds = [measure(lines, args, n) for n in range(args.repeat)]
    figures: dict[str, Any] = {
        "events": len(lines),
        "batch_size": args.batch_size,
        "cpus": os.cpu_count(),
        "load_average_1m_before": round(load_before, 2),
        "rounds": args.repeat,
        "route_us_per_event": route_us,
    }
    for name in CONFIGURATIONS:
        rates = [r[name]["events_per_second"] for r in rounds]
        cpu = [r[name]["cpu_us_per_event"] for r in rounds]
        figures[name] = {
            **rounds[-1][name],
            "events_per_second": statistics.median(rates),
            "events_per_second_runs": rates,
            "cpu_us_per_event": statistics.median(cpu),
        }
        f = figures[name]
        print(
            f"{name:<14} {f['events_per_second']:>8,.0f} events/s (median of {len(rates)}; "
            f"{f['cpu_us_per_event']:.0f} µs CPU/event in the ingest process(es), "
            f"{f['accepted']:,} accepted)"
        )
    base = figures["one_shard"]["events_per_second"]
    ratios = {
        "router_vs_one_shard": figures["router"]["events_per_second"] / base,
        "two_processes_vs_one_shard": figures["two_processes"]["events_per_second"] / base,
    }
    for name, value in ratios.items():
        print(f"ratio {name}: {value:.2f}")
    targets = {"router_vs_one_shard": 0.85, "two_processes_vs_one_shard": 1.0}
    met = all(ratios[k] >= v for k, v in targets.items())
    print(f"targets met: {met} (router costs at most 15 %; two processes are not slower)")
    result = {
        "bench": "shards",
        "figures": _rounded(figures),
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "targets": targets,
        "targets_met": met,
    }
    line = orjson.dumps(result).decode()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(line + "\n", encoding="utf-8")
    print(line)
    return 0


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 2)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


if __name__ == "__main__":
    raise SystemExit(main())
