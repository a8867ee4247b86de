"""Capacity model inputs: what a registered volunteer generates, its peaks, and bytes per event.

Not a test: it prints the figures behind ``docs/scaling.md``. In one run it

1. generates two years of the demo district (``practice-events demo generate
   --start 2024-01-01 --days 731``): the first year holds the migration of the
   existing register, so the model uses the **second** one;
2. counts the second year's inputs, the registered volunteers on its 1 July,
   inputs per registered volunteer, sessions per volunteer, and the peaks
   (busiest minute, hour and day; the busiest hour of the day; the annual
   insurance batch left out as an administrative bulk load);
3. with ``--pg-admin``: ingests the file into a fresh PostgreSQL database
   (``practice-events ingest-file``), rebuilds every view (``projections
   rebuild all``), and measures stored events per business year, bytes per
   stored event (events, idempotency keys, views: ``pg_total_relation_size``)
   and the rebuild rate; the database is dropped afterwards;

then prints one line of JSON, also written to ``bench/results/capacity.json``.

    .venv/bin/python bench/capacity.py                                   # rates and peaks (~30 s)
    .venv/bin/python bench/capacity.py --events 40000 --pg-admin URL --out /tmp/c.json   # smoke
    .venv/bin/python bench/capacity.py --pg-admin postgresql://postgres@127.0.0.1/postgres
                                                       # + sizes (~10 min on a quiet machine)
"""

from __future__ import annotations

import argparse
import bisect
import collections
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
PE = [sys.executable, "-m", "practice_events.cli"]
SECONDS_PER_YEAR = 365 * 86400
BATCH_TYPES = {"practice.volunteer.insurance_recorded.v1"}
"""Administrative bulk loads (the 1 January insurance renewal), left out of the peaks."""


def run(argv: list[str], env: dict[str, str] | None = None) -> Any:
    """Run a practice-events command; return its JSON output (its stderr if it fails)."""
    done = subprocess.run([*PE, *argv], capture_output=True, env=env, cwd=ROOT, check=False)
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace")[-3000:]
        msg = f"practice-events {' '.join(argv[:3])} exited {done.returncode}:\n{tail}"
        raise RuntimeError(msg)
    return orjson.loads(done.stdout)


def generate(path: Path, seed: int, events: int | None) -> dict[str, Any]:
    """Write two years of the demo district (scaled to about ``events``); return a summary."""
    started = time.perf_counter()
    window = ["--start", "2024-01-01", "--days", "731"]
    if events:
        window += ["--events", str(events)]
    summary = run(["demo", "generate", "--seed", str(seed), *window, "--out", str(path), "--json"])
    return {"lines": summary["lines"], "seconds": round(time.perf_counter() - started, 1)}


def rates(path: Path, year: str = "2025") -> dict[str, Any]:
    """Inputs per registered volunteer in ``year``, and the peaks of that year."""
    registered: list[str] = []
    inputs = sessions = batch = 0
    line_bytes = 0
    minute: collections.Counter[str] = collections.Counter()
    hour: collections.Counter[str] = collections.Counter()
    day: collections.Counter[str] = collections.Counter()
    hour_of_day: collections.Counter[str] = collections.Counter()
    with path.open("rb") as f:
        for line in f:
            event = orjson.loads(line)
            when = event["time"]
            if event["type"] == "practice.volunteer.registered.v1":
                registered.append(when[:10])
            if when[:4] != year:
                continue
            inputs += 1
            line_bytes += len(line)
            if event["type"] == "practice.attendance.checked_in.v1":
                sessions += 1
            if event["type"] in BATCH_TYPES:
                batch += 1
                continue
            minute[when[:16]] += 1
            hour[when[:13]] += 1
            day[when[:10]] += 1
            hour_of_day[when[11:13]] += 1
    registered.sort()
    volunteers = bisect.bisect_right(registered, f"{year}-07-01")
    organic = inputs - batch
    average = organic / SECONDS_PER_YEAR
    busiest_day, day_count = day.most_common(1)[0]
    busiest_hour, hour_share = hour_of_day.most_common(1)[0]
    day_factor = day_count / (organic / 365)
    hour_factor = hour_share / organic * 24
    peak_minute = minute.most_common(1)[0]
    return {
        "year": year,
        "inputs": inputs,
        "registered_volunteers_mid_year": volunteers,
        "inputs_per_volunteer_year": round(inputs / volunteers, 2),
        "sessions_per_volunteer_year": round(sessions / volunteers, 2),
        "bytes_per_input": round(line_bytes / inputs),
        "bulk_load_inputs": batch,
        "average_inputs_per_second": round(average, 5),
        "busiest_day": busiest_day,
        "busiest_day_factor": round(day_factor, 2),
        "busiest_hour_of_day": f"{busiest_hour}:00",
        "busiest_hour_of_day_factor": round(hour_factor, 2),
        "aggregate_peak_factor": round(day_factor * hour_factor, 1),
        "district_peak_minute": peak_minute[0],
        "district_peak_minute_factor": round(peak_minute[1] / 60 / average, 1),
        "district_peak_hour_factor": round(hour.most_common(1)[0][1] / 3600 / average, 1),
    }


def sizes(path: Path, admin_url: str, year: str = "2025") -> dict[str, Any]:
    """Ingest into a fresh PostgreSQL database, rebuild the views, measure; drop it."""
    import psycopg

    name = f"pe_capacity_{uuid.uuid4().hex[:8]}"
    base = admin_url.rsplit("/", 1)[0]
    url = f"{base}/{name}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    env = {**os.environ, "PRACTICE_EVENTS_STORE": url}
    try:
        started = time.perf_counter()
        ingest = run(["ingest-file", str(path), "--json", "--no-progress"], env)
        ingest_seconds = time.perf_counter() - started
        rebuilt = run(["projections", "rebuild", "all", "--json", "--no-progress"], env)
        with psycopg.connect(url) as conn:
            by_year = dict(
                conn.execute(
                    "SELECT substr(convert_from(state, 'UTF8')::jsonb->'meta'->>'time', 1, 4), "
                    "count(*) FROM practiceevents_events GROUP BY 1"
                ).fetchall()
            )
            schema_bytes = dict(
                conn.execute(
                    "SELECT n.nspname, sum(pg_total_relation_size(c.oid))::bigint "
                    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE c.relkind = 'r' AND n.nspname IN ('public', 'practice_views') "
                    "GROUP BY 1"
                ).fetchall()
            )
            table_bytes = dict(
                conn.execute(
                    "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE c.relkind = 'r' AND n.nspname = 'public'"
                ).fetchall()
            )
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    stored = int(ingest["events_stored"])
    rebuild_seconds = sum(r["seconds"] for r in rebuilt)
    return {
        "stored_events": stored,
        "stored_events_by_year": by_year,
        "ingest_lines_per_second": round(ingest["lines"] / ingest_seconds),
        "bytes_per_stored_event_events_table": round(
            table_bytes.get("practiceevents_events", 0) / stored
        ),
        "bytes_per_stored_event_keys": round(
            table_bytes.get("practiceevents_ingested_keys", 0) / stored
        ),
        "bytes_per_stored_event_store": round(schema_bytes.get("public", 0) / stored),
        "bytes_per_stored_event_views": round(schema_bytes.get("practice_views", 0) / stored),
        "rebuild_seconds": round(rebuild_seconds, 1),
        "rebuild_events_per_second": round(stored / rebuild_seconds) if rebuild_seconds else None,
        "rebuild_by_projection": {r["projection"]: r["seconds"] for r in rebuilt},
    }


def main(argv: list[str] | None = None) -> int:
    """Run the measurements and print one line of JSON."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--events", type=int, help="scale the district to about this many events (smoke runs)"
    )
    parser.add_argument("--pg-admin", help="PostgreSQL admin URL: also measure sizes")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "capacity.json"))
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "demo2y.jsonl"
        figures: dict[str, Any] = {"generate": generate(path, args.seed, args.events)}
        figures["rates"] = rates(path)
        if args.pg_admin:
            figures["sizes"] = sizes(path, args.pg_admin)
            stored = figures["sizes"]["stored_events_by_year"].get("2025", 0)
            volunteers = figures["rates"]["registered_volunteers_mid_year"]
            figures["rates"]["stored_per_volunteer_year"] = round(stored / volunteers, 2)
            figures["rates"]["stored_per_input"] = round(stored / figures["rates"]["inputs"], 3)
    figures["load_average_start"] = round(load, 2)
    figures["load_average_end"] = round(os.getloadavg()[0], 2)
    # No target: these are the model's inputs, not a performance goal.
    result = {"bench": "capacity", "figures": figures, "ratios": {}, "targets": {}}
    result["targets_met"] = None
    line = orjson.dumps(result).decode()
    Path(args.out).write_text(line + "\n", encoding="utf-8")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
