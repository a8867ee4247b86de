"""``practice-events``: the command line.

Entry points stay thin: parse arguments, load settings, call the composition
root and a service function, print. Exit codes:

== ===============================================================
0  success (ingest-file: the file was processed, rejections included)
1  unexpected failure (a bug: the traceback is printed)
2  bad usage or bad configuration (one line, no traceback)
3  infrastructure unavailable (store unreachable, broker down)
4  ``--strict`` was given and some input was rejected
== ===============================================================
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import orjson

from practice_events.errors import ConfigurationError, PracticeEventsError, TransientError

EXIT_OK = 0
EXIT_BUG = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_REJECTIONS = 4

Command = Callable[[argparse.Namespace], int]


def _version() -> str:
    try:
        return version("practice-events")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def _settings(args: argparse.Namespace) -> Any:
    from practice_events.config import load_settings
    from practice_events.logging import configure_logging

    overrides = {"store": getattr(args, "store", None)}
    settings = load_settings(**overrides)
    configure_logging(settings.log_format, settings.log_level)
    return settings


# -- commands ------------------------------------------------------------------------------


def cmd_schemas(args: argparse.Namespace) -> int:
    """Write one JSON Schema per event type plus index.json."""
    from practice_events.contracts.schemas import write_schemas

    if args.out:
        count = write_schemas(Path(args.out))
        print(f"wrote {count} schemas and index.json to {args.out}")
    if args.markdown:
        from practice_events.contracts.schemas import catalogue_markdown

        Path(args.markdown).write_text(catalogue_markdown(), encoding="utf-8")
        print(f"wrote the event catalogue to {args.markdown}")
    if not args.out and not args.markdown:
        msg = "give --out DIR and/or --markdown FILE"
        raise ConfigurationError(msg)
    return EXIT_OK


def cmd_ingest_file(args: argparse.Namespace) -> int:
    """Ingest a CloudEvents JSON Lines file through the pipeline."""
    from practice_events.bootstrap import build_app, build_ingest
    from practice_events.ingest.files import ingest_file

    settings = _settings(args)
    path = Path(args.file)
    if not path.is_file():
        msg = f"no such file: {path}"
        raise ConfigurationError(msg)
    app = build_app(settings)
    try:
        pipeline = build_ingest(settings, app)  # a shard router when PRACTICE_EVENTS_SHARDS is set
        try:
            summary = ingest_file(
                pipeline,
                path,
                batch_size=args.batch_size or settings.batch_size,
                rejections_path=Path(args.rejections) if args.rejections else None,
                progress=not args.no_progress and not args.json,
            )
        finally:
            pipeline.close()
    finally:
        app.close()
    if args.json:
        _print_json(summary.as_dict())
    else:
        print(
            f"{summary.lines:,} lines in {summary.seconds:.1f} s ({summary.rate:,.0f}/s): "
            f"{summary.accepted:,} accepted, {summary.duplicate:,} duplicate, "
            f"{summary.rejected:,} rejected; {summary.events_stored:,} events stored, "
            f"log position {summary.last_position:,}"
        )
        for shard, position in sorted(summary.shard_positions.items()):
            print(f"  shard {shard}: log position {position:,}")
        for code, count in sorted(summary.rejected_by_code.items()):
            print(f"  rejected {code}: {count:,}")
        if summary.rejections_file:
            print(f"rejected lines with reasons: {summary.rejections_file}")
    if args.strict and summary.rejected:
        return EXIT_REJECTIONS
    return EXIT_OK


def cmd_store_stats(args: argparse.Namespace) -> int:
    """Print what the store holds: events by type, aggregates by kind, last position."""
    from practice_events.bootstrap import build_app
    from practice_events.config import require_existing_store
    from practice_events.store.stats import store_stats

    settings = _settings(args)
    require_existing_store(settings.store)
    app = build_app(settings)
    try:
        stats = store_stats(app)
    finally:
        app.close()
    if args.json:
        _print_json(stats)
        return EXIT_OK
    print(f"store: {stats['store']}")
    print(f"last log position: {stats['last_position']:,}")
    print(f"events: {stats['events']:,}   accepted CloudEvents: {stats['accepted_cloudevents']:,}")
    print("aggregates by kind:")
    for kind, count in stats["aggregates_by_kind"].items():
        print(f"  {kind:<16} {count:>10,}")
    print("events by type:")
    for name, count in stats["events_by_type"].items():
        print(f"  {name:<52} {count:>10,}")
    if stats["rejections_by_code"]:
        print("rejections by code:")
        for code, count in stats["rejections_by_code"].items():
            print(f"  {code:<24} {count:>10,}")
    return EXIT_OK


def cmd_store_init(args: argparse.Namespace) -> int:
    """Create the store's schema and tables (a deployment's set-up job), idempotently."""
    from practice_events.store.setup import init_stores

    settings = _settings(args)
    results = init_stores(settings, wait_seconds=args.wait)
    if args.json:
        _print_json([result.as_dict() for result in results])
        return EXIT_OK
    for result in results:
        where = f" (schema {result.schema}{', created' if result.schema_created else ''})"
        print(f"store {result.store}{where if result.schema else ''} is ready")
        print(f"  tables: {', '.join(result.tables)}")
        print(f"  last log position: {result.last_position:,}")
    return EXIT_OK


def cmd_config_show(args: argparse.Namespace) -> int:
    """Print the effective settings (core and every section) with secrets masked."""
    from practice_events.config import effective_settings

    settings = _settings(args)
    values = effective_settings(settings)
    if args.json:
        _print_json(values)
    else:
        for key, value in values.items():
            # Objects (PRACTICE_EVENTS_SHARDS) as the environment takes them: JSON.
            text = orjson.dumps(value).decode() if isinstance(value, dict | list) else value
            print(f"PRACTICE_EVENTS_{key.upper()}={'' if text is None else text}")
    return EXIT_OK


# -- parser --------------------------------------------------------------------------------

EPILOG = """\
examples:
  practice-events ingest-file demo.jsonl
  practice-events store stats --json
  practice-events schemas --out schemas/
  PRACTICE_EVENTS_STORE=postgresql://postgres@127.0.0.1/practice practice-events store stats

settings come from PRACTICE_EVENTS_* variables or the TOML file named by
PRACTICE_EVENTS_CONFIG; `practice-events config show` prints them.
exit codes: 0 ok, 1 bug, 2 bad usage or configuration, 3 infrastructure
unavailable, 4 rejections with --strict.
"""


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="practice-events",
        description="Event-sourced activity tracking for civilization practice networks.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, func: Command, help_text: str, epilog: str = "") -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(func=func)
        return p

    p = add(
        "schemas",
        cmd_schemas,
        "Write the JSON Schema of every event type and an index.",
        "examples:\n  practice-events schemas --out schemas/\n"
        "  practice-events schemas --markdown docs/event-catalogue.md",
    )
    p.add_argument("--out", help="directory to write the schemas into (created if missing)")
    p.add_argument("--markdown", help="also write the catalogue as Markdown to this file")

    p = add(
        "ingest-file",
        cmd_ingest_file,
        "Ingest CloudEvents JSON Lines (one event per line) without Kafka or HTTP.",
        "examples:\n  practice-events ingest-file events.jsonl\n"
        "  practice-events ingest-file events.jsonl --json --rejections bad.jsonl",
    )
    p.add_argument("file", help="JSON Lines file of structured-mode CloudEvents")
    p.add_argument(
        "--rejections", help="where to write refused lines (default FILE.rejections.jsonl)"
    )
    p.add_argument("--batch-size", type=int, default=None, help="events per transaction")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--strict", action="store_true", help="exit 4 if any line was rejected")
    p.add_argument("--store", help="event store URL (overrides PRACTICE_EVENTS_STORE)")

    store = sub.add_parser("store", help="Inspect the event store.")
    store_sub = store.add_subparsers(dest="store_command", metavar="COMMAND", required=True)
    p = store_sub.add_parser(
        "stats",
        help="Events by type, aggregates by kind, the last log position.",
        epilog="example:\n  practice-events store stats --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=cmd_store_stats)
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.add_argument("--store", help="event store URL (overrides PRACTICE_EVENTS_STORE)")
    p = store_sub.add_parser(
        "init",
        help="Create the store's schema and tables (idempotent; for set-up jobs).",
        description="Create the event store's PostgreSQL schema (from ?schema=NAME) and its "
        "tables: events, tracking, idempotency keys, rejections, API tokens and integrity "
        "seals; with PRACTICE_EVENTS_SHARDS, every shard's store too. Every process also "
        "creates them on start; a set-up job runs this first so that replicas do not race "
        "and missing schemas are created. Views are created by the projection runners.",
        epilog="examples:\n  practice-events store init\n"
        "  practice-events store init --wait 120 --json\n"
        "  practice-events store init --store 'postgresql://practice@db/practice?schema=d01'\n\n"
        "exit codes: 0 ready, 2 bad store URL or refused credentials, 3 the database did not "
        "answer within --wait seconds.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=cmd_store_init)
    p.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="keep trying while the database does not answer, up to this long (default 0)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--store", help="event store URL (overrides PRACTICE_EVENTS_STORE)")

    config = sub.add_parser("config", help="Show the effective configuration.")
    config_sub = config.add_subparsers(dest="config_command", metavar="COMMAND", required=True)
    p = config_sub.add_parser(
        "show",
        help="Print the effective settings, secrets masked.",
        description="Print every effective setting (environment, then the TOML file named by "
        "PRACTICE_EVENTS_CONFIG, then the default), with passwords and keys masked.",
        epilog="examples:\n  practice-events config show\n  practice-events config show --json\n"
        "  PRACTICE_EVENTS_CONFIG=pe.toml practice-events config show\n\n"
        "the --json keys are the names a TOML config file uses.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=cmd_config_show)
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.add_argument("--store", help="event store URL (overrides PRACTICE_EVENTS_STORE)")

    from practice_events.shards.cli import install as install_shards

    install_shards(sub)
    for extra in _EXTENSIONS:
        extra(sub)
    return parser


_EXTENSIONS: list[Callable[[Any], None]] = []
"""Sub-command installers added by other modules (demo, serve, ingest, ...)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the process exit code."""
    _load_extensions()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("practice-events: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - _failure re-raises what it does not know
        code, message = _failure(exc)
        print(f"practice-events: {message}", file=sys.stderr)
        return code


def _failure(exc: Exception) -> tuple[int, str]:
    """Map an expected failure to its exit code and one line; re-raise a bug (exit 1).

    Besides the project's own errors, the event store library's
    ``OperationalError`` / ``InterfaceError`` (PostgreSQL refusing or timing
    out a connection) mean the store is unavailable: exit 3, not a traceback.
    """
    from eventsourcing.persistence import InterfaceError, OperationalError

    if isinstance(exc, ConfigurationError):
        return EXIT_USAGE, exc.reason
    if isinstance(exc, TransientError):
        return EXIT_UNAVAILABLE, f"unavailable: {exc.reason}"
    if isinstance(exc, PracticeEventsError):
        return EXIT_USAGE, str(exc)
    if isinstance(exc, OperationalError | InterfaceError):
        lines = str(exc).strip().splitlines()
        return EXIT_UNAVAILABLE, f"unavailable: {lines[0] if lines else type(exc).__name__}"
    raise exc


def _load_extensions() -> None:
    """Collect sub-command installers from the ``practice_events.cli`` entry points.

    Other packages of the project (``consumers``, ``projections``) add their
    commands this way, so the core package never imports them.
    """
    from importlib.metadata import entry_points

    if _EXTENSIONS:
        return
    for entry in sorted(entry_points(group="practice_events.cli"), key=lambda e: e.name):
        _EXTENSIONS.append(entry.load())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
