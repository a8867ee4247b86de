"""``practice-events shards status | verify``: every shard of a sharded deployment at once.

``status`` prints, per shard, the districts routed to it, its log position,
events, accepted CloudEvents, rejections and Kafka input positions, and the
province's totals (reference data, which every shard holds, counted once).
``verify`` walks each shard's integrity chain (``audit verify`` per shard,
optionally sealing first) and exits 5 if any shard's log is broken.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import orjson

from practice_events.application import PracticeEvents
from practice_events.config import Settings, mask_url
from practice_events.errors import ConfigurationError
from practice_events.shards.routing import BROADCAST_KINDS, ShardMap

EXIT_OK = 0
EXIT_INTEGRITY = 5

EPILOG = """\
examples:
  PRACTICE_EVENTS_SHARDS='{"WLY": "postgresql://pe@db/practice?schema=wly",
                           "CLX": "postgresql://pe@db/practice?schema=clx"}' \\
  PRACTICE_EVENTS_STORE='postgresql://pe@db/practice?schema=wly' practice-events shards status
  practice-events shards status --json
  practice-events shards verify --seal

the shards are PRACTICE_EVENTS_SHARDS (district code -> store URL) plus the
default store PRACTICE_EVENTS_STORE; see docs/sharding.md.
exit codes: 0 ok, 2 no shards configured, 3 a store unavailable, 5 an integrity break.
"""


def install(sub: Any) -> None:
    """Add the ``shards`` command group to the CLI's sub-parsers."""
    shards = sub.add_parser(
        "shards",
        help="Inspect and verify the shards of a sharded deployment.",
        description="Per-shard positions, counts and integrity of a deployment sharded by "
        "district (PRACTICE_EVENTS_SHARDS).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    shards_sub = shards.add_subparsers(dest="shards_command", metavar="COMMAND", required=True)
    p = shards_sub.add_parser(
        "status",
        help="Per-shard districts, log positions, counts and Kafka positions; province totals.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=cmd_status)
    p = shards_sub.add_parser(
        "verify",
        help="Walk every shard's integrity chain; exit 5 on the first broken shard.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--seal", action="store_true", help="extend each shard's chain to its log head first"
    )
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=cmd_verify)


def _settings() -> Settings:
    from practice_events.config import load_settings
    from practice_events.logging import configure_logging

    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    if not settings.shards:
        msg = "PRACTICE_EVENTS_SHARDS is not set: this deployment has one store (see store stats)"
        raise ConfigurationError(msg)
    return settings


@contextmanager
def open_shards(settings: Settings) -> Iterator[dict[str, PracticeEvents]]:
    """Open every shard's event store (default first); close them all afterwards."""
    from practice_events.bootstrap import build_app

    shard_map = ShardMap.from_settings(settings)
    apps: dict[str, PracticeEvents] = {}
    try:
        for name in shard_map.names:
            url = shard_map.shard(name).url
            apps[name] = build_app(settings.model_copy(update={"store": url}))
        yield apps
    finally:
        for app in apps.values():
            app.close()


def shard_status(settings: Settings) -> dict[str, Any]:
    """Return each shard's figures and the province's totals (reference data once)."""
    from practice_events.store.stats import store_stats

    shard_map = ShardMap.from_settings(settings)
    shards: list[dict[str, Any]] = []
    with open_shards(settings) as apps:
        for name, app in apps.items():
            shard = shard_map.shard(name)
            stats = store_stats(app)
            shards.append(
                {
                    "shard": name,
                    "districts": list(shard.districts),
                    "default": shard.default,
                    "store": mask_url(shard.url),
                    "last_position": stats["last_position"],
                    "events": stats["events"],
                    "accepted_cloudevents": stats["accepted_cloudevents"],
                    "aggregates_by_kind": stats["aggregates_by_kind"],
                    "events_by_type": stats["events_by_type"],
                    "rejections_by_code": stats["rejections_by_code"],
                    "kafka_positions": app.store.select_trackings("kafka:"),
                }
            )
    return {"shards": shards, "province": province_totals(shards)}


def province_totals(shards: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Sum the shards' counts, counting reference data (in every shard) once."""
    from practice_events.domain import aggregate_classes

    broadcast_types = {
        event_type
        for cls in aggregate_classes()
        if cls.KIND in BROADCAST_KINDS
        for event_type in (cls.CREATED_BY, *cls.HANDLES)
        if event_type
    }
    kinds: Counter[str] = Counter()
    types: Counter[str] = Counter()
    for shard in shards:
        for kind, count in shard["aggregates_by_kind"].items():
            if kind in BROADCAST_KINDS:
                kinds[kind] = max(kinds[kind], count)
            else:
                kinds[kind] += count
        for event_type, count in shard["events_by_type"].items():
            if event_type in broadcast_types:
                types[event_type] = max(types[event_type], count)
            else:
                types[event_type] += count
    return {
        "events": sum(types.values()),
        "aggregates_by_kind": dict(sorted(kinds.items())),
        "events_by_type": dict(sorted(types.items())),
    }


def cmd_status(args: argparse.Namespace) -> int:
    """Print every shard's position and counts, and the province's totals."""
    status = shard_status(_settings())
    if args.json:
        _print_json(status)
        return EXIT_OK
    for shard in status["shards"]:
        districts = ", ".join(shard["districts"]) or "(districts without a shard of their own)"
        default = " [default]" if shard["default"] else ""
        print(f"shard {shard['shard']}{default}: {districts}")
        print(f"  store {shard['store']}")
        print(
            f"  log position {shard['last_position']:,}, {shard['events']:,} events, "
            f"{shard['accepted_cloudevents']:,} accepted CloudEvents, "
            f"{sum(shard['rejections_by_code'].values()):,} rejections"
        )
        for name, offset in sorted(shard["kafka_positions"].items()):
            print(f"  {name} at offset {offset:,}")
    province = status["province"]
    print(f"province: {province['events']:,} events (reference data counted once)")
    for kind, count in province["aggregates_by_kind"].items():
        print(f"  {kind:<16} {count:>10,}")
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    """Verify every shard's hash chain (sealing first with --seal); exit 5 on a break."""
    from practice_events.audit.integrity import Sealer, log_store, verify

    settings = _settings()
    results: list[dict[str, Any]] = []
    with open_shards(settings) as apps:
        for name, app in apps.items():
            store = log_store(app)
            sealed = Sealer(app, store=store).seal().sealed if args.seal else 0
            report = verify(app, store=store)
            results.append({"shard": name, "sealed_now": sealed, **report.as_dict()})
    ok = all(r["ok"] for r in results)
    if args.json:
        _print_json({"ok": ok, "shards": results})
    else:
        for r in results:
            if r["ok"]:
                state, tail = "OK", f", chain head {r['chain_hash']}"
            else:
                brk = r["first_break"]
                state, tail = f"BROKEN at {brk['position']:,}", f" ({brk['kind']}: {brk['detail']})"
            print(
                f"shard {r['shard']}: {state}: {r['events_checked']:,} events checked, "
                f"log head {r['log_head']:,}, sealed up to {r['sealed_head']:,}{tail}"
            )
    return EXIT_OK if ok else EXIT_INTEGRITY


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")
