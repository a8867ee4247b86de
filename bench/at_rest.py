"""Benchmark: what encryption at rest and compression cost, in bytes and in ingest time.

Not a test: it prints figures. For each setting (plain, compressed,
encrypted, compressed and encrypted) it ingests the same demo history
(``--events``, default 20,000 CloudEvents, seed 11) through the real pipeline
into a fresh SQLite file and reports the bytes of stored event state per
event (deterministic) and the ingest rate as a ratio to the plain run of the
same invocation (noisy on a shared machine: run it on a quiet one). The
last line is JSON, also written to ``bench/results/at_rest.json``.

    .venv/bin/python bench/at_rest.py
    .venv/bin/python bench/at_rest.py --events 5000
"""

from __future__ import annotations

import argparse
import base64
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SETTINGS: dict[str, dict[str, Any]] = {
    "plain": {},
    "compressed": {"compress": True},
    "encrypted": {"cipher_key": "KEY"},
    "compressed+encrypted": {"compress": True, "cipher_key": "KEY"},
}


def run(events: list[bytes], settings: dict[str, Any], where: Path) -> dict[str, float]:
    """Ingest ``events`` into a fresh SQLite store with ``settings``; return its figures."""
    from practice_events.bootstrap import build_app, build_pipeline
    from practice_events.config import Settings
    from practice_events.ingest.pipeline import RawInput

    config = Settings(store=f"sqlite:///{where}", **settings)
    app = build_app(config)
    pipeline = build_pipeline(config, app)
    started = time.perf_counter()
    for start in range(0, len(events), 1000):
        pipeline.process([RawInput(e, channel="bench") for e in events[start : start + 1000]])
    seconds = time.perf_counter() - started
    app.close()
    conn = sqlite3.connect(where)
    count, size = conn.execute("SELECT COUNT(*), SUM(LENGTH(state)) FROM stored_events").fetchone()
    conn.close()
    return {"events": count, "bytes_per_event": size / count, "seconds": seconds}


def main() -> None:
    """Run every setting on the same history and print the figures."""
    from practice_events.demo.generator import generate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "at_rest.json"))
    args = parser.parse_args()
    key = base64.b64encode(os.urandom(32)).decode()
    events = [orjson.dumps(e) for e in generate(seed=11, events=args.events)]
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, settings in SETTINGS.items():
            chosen = {k: (key if v == "KEY" else v) for k, v in settings.items()}
            results[name] = run(events, chosen, Path(tmp) / f"{name}.db")
    plain = results["plain"]
    print(f"{len(events):,} CloudEvents, {int(plain['events']):,} stored events")
    for name, figures in results.items():
        print(
            f"{name:<22} {figures['bytes_per_event']:7.0f} bytes/event"
            f"   ingest {plain['seconds'] / figures['seconds']:.2f}x the plain rate"
            f"   ({figures['events'] / figures['seconds']:,.0f} events/s)"
        )
    # The shape every bench writes (bench/report.py): figures, ratios, targets.
    ratios = {
        f"{name}_ingest_vs_plain": round(plain["seconds"] / figures["seconds"], 3)
        for name, figures in results.items()
        if name != "plain"
    }
    line = orjson.dumps(
        {
            "bench": "at_rest",
            "figures": {"cloudevents": len(events), **results},
            "ratios": ratios,
            "targets": {},
            "targets_met": None,
        }
    )
    print(line.decode())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(line + b"\n")


if __name__ == "__main__":
    main()
