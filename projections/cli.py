"""``practice-events projections …`` and ``practice-events scheduler …``: run the read side.

Installed into the ``practice-events`` command through the
``practice_events.cli`` entry point (the core package never imports this
package). Commands:

``projections run``
    run every projection (one thread each) until SIGTERM or SIGINT, then
    finish the batch in hand and exit 0; ``--with-scheduler`` also runs the
    overdue scheduler in the same process. ``--only``/``--exclude`` split the
    projections between runner processes (each with its own tracking, so a
    slow or failing one never holds back another's); ``--plugin MODULE`` adds
    a deployment's own projections.
``projections rebuild NAME|all``
    rebuild views beside the live ones and swap them in (blue/green), with a
    progress bar; the live views keep serving meanwhile. ``all`` reads the
    log once for every projection; ``--jobs N`` splits them into N groups of
    about equal size, each rebuilt in a process of its own.
``projections status [--json]``
    each projection's position, the log head, how far behind it is (events,
    and seconds the oldest unprocessed event has waited) and its failure.
``scheduler run [--once]``
    emit overdue and escalation events (exactly once per due time).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from practice_events.application import PracticeEvents
    from practice_events.config import Settings
    from projections.base import Projection
    from projections.health import RunnerHealthServer
    from projections.scheduler import OverdueScheduler
    from projections.viewstore import ViewStore

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

PROJECTIONS_EPILOG = """\
examples:
  practice-events projections run
  practice-events projections run --with-scheduler --scheduler-interval 60
  practice-events projections run --only ledger                 # its own process
  practice-events projections run --exclude ledger --with-scheduler
  practice-events projections run --health-port 8082 --health-host 0.0.0.0
  practice-events projections rebuild closed_loop
  practice-events projections rebuild all --jobs 2
  practice-events projections status --json

views live in <store>.views.db beside a SQLite store, or in the schema
practice_views of the PostgreSQL store (override with --views).
exit codes: 0 ok (run: stopped by SIGTERM/SIGINT), 1 a projection failed,
2 bad usage or configuration, 3 store unavailable.
"""

SCHEDULER_EPILOG = """\
examples:
  practice-events scheduler run --once
  practice-events scheduler run --interval 60

the scheduler emits practice.finding.overdue.v1 and practice.finding.escalated.v1
with deterministic ids, so several copies and restarts never emit one twice.
"""


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", help="event store URL (overrides PRACTICE_EVENTS_STORE)")
    parser.add_argument(
        "--views", help="view store URL (default: derived from the event store URL)"
    )


def _plugins(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plugin",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE's projections too (repeatable; see projections.registry)",
    )


def install(subparsers: Any) -> None:
    """Add the ``projections`` and ``scheduler`` commands to ``practice-events``."""
    projections = subparsers.add_parser(
        "projections",
        help="Run, rebuild and inspect the read models (projections).",
        description="Run, rebuild and inspect the read models (projections).",
        epilog=PROJECTIONS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = projections.add_subparsers(dest="projections_command", metavar="COMMAND", required=True)

    p = sub.add_parser("run", help="Run every projection until SIGTERM/SIGINT.")
    _common(p)
    p.add_argument(
        "--only", metavar="NAME[,NAME...]", help="run only these projections (default: all)"
    )
    p.add_argument("--exclude", metavar="NAME[,NAME...]", help="run every projection except these")
    _plugins(p)
    p.add_argument("--batch-size", type=int, default=2000, help="events per view transaction")
    p.add_argument("--with-scheduler", action="store_true", help="also run the overdue scheduler")
    p.add_argument(
        "--scheduler-interval", type=float, default=60.0, help="seconds between scheduler scans"
    )
    p.add_argument(
        "--health-port",
        type=int,
        help="serve /healthz (alive) and /readyz (every projection running) on this port",
    )
    p.add_argument(
        "--health-host",
        default="127.0.0.1",
        help="address the health port listens on (default 127.0.0.1; 0.0.0.0 in a container)",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("rebuild", help="Rebuild a view (or all) beside the live one, then swap.")
    _common(p)
    p.add_argument("name", help="projection name, or all")
    p.add_argument("--batch-size", type=int, default=2000, help="events per view transaction")
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="split the projections into this many groups, rebuilt at once in separate processes",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_rebuild)

    p = sub.add_parser("status", help="Positions, lag and failures of every projection.")
    _common(p)
    _plugins(p)
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=cmd_status)

    scheduler = subparsers.add_parser(
        "scheduler",
        help="Emit overdue and escalation events for findings.",
        description="Emit overdue and escalation events for findings (exactly once).",
        epilog=SCHEDULER_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ssub = scheduler.add_subparsers(dest="scheduler_command", metavar="COMMAND", required=True)
    p = ssub.add_parser("run", help="Scan for overdue findings (every --interval s, or --once).")
    _common(p)
    p.add_argument("--once", action="store_true", help="scan once and exit")
    p.add_argument("--interval", type=float, default=60.0, help="seconds between scans")
    p.add_argument("--json", action="store_true", help="with --once: print the result as JSON")
    p.set_defaults(func=cmd_scheduler)


# -- building blocks ---------------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> Settings:
    from practice_events.config import load_settings
    from practice_events.logging import configure_logging

    settings = load_settings(store=getattr(args, "store", None))
    configure_logging(settings.log_format, settings.log_level)
    return settings


def _views(settings: Settings, args: argparse.Namespace) -> ViewStore:
    return _views_at(settings, getattr(args, "views", None))


def _views_at(settings: Settings, url: str | None) -> ViewStore:
    from projections.viewstore import ViewStore, default_view_url

    return ViewStore(url or default_view_url(settings.store))


def build_scheduler(
    settings: Settings, app: PracticeEvents, views: ViewStore, *, catch_up: bool = True
) -> OverdueScheduler:
    """Build the overdue scheduler over ``app`` (its pipeline keeps no aggregate cache).

    ``catch_up=False`` when a runner in the same process already keeps the
    closed-loop view current (the scheduler then scans it as it is; the
    finding aggregates remain the authority on what is due).
    """
    from practice_events.bootstrap import build_context
    from practice_events.ingest.pipeline import Pipeline
    from projections.scheduler import OverdueScheduler

    ctx = build_context(settings)
    # No cache: the aggregates change in other processes; always load them fresh.
    pipeline = Pipeline(app, ctx, cache_size=0)
    return OverdueScheduler(
        app,
        pipeline,
        views,
        calendar=ctx.service("calendar"),
        policy=ctx.service("sla"),
        catch_up=catch_up,
        timezone=settings.timezone,
    )


def _stop_on_signals(stop: threading.Event) -> None:
    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


# -- commands ----------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    """Run every projection until a signal stops the process (graceful)."""
    import structlog

    from practice_events.bootstrap import build_app
    from projections.registry import all_projections, names_list, select
    from projections.runner import BatchedRunner

    log = structlog.get_logger("projections.run")
    settings = _settings(args)
    owned = select(
        all_projections(settings, args.plugin),
        only=names_list(args.only),
        exclude=names_list(args.exclude),
    )
    app = build_app(settings)
    views = _views(settings, args)
    stop = threading.Event()
    _stop_on_signals(stop)
    scheduler_thread: threading.Thread | None = None
    health: RunnerHealthServer | None = None
    try:
        runner = BatchedRunner(app, views, owned, batch_size=args.batch_size)
        runner.start()
        log.info("projections_started", projections=sorted(runner.projections))
        if getattr(args, "health_port", None) is not None:
            from projections.health import RunnerHealthServer

            health = RunnerHealthServer(runner, args.health_port, host=args.health_host)
            health.start()
            log.info("health_serving", host=args.health_host, port=health.port)
        if args.with_scheduler:
            scheduler = build_scheduler(settings, app, views, catch_up=False)
            scheduler_thread = threading.Thread(
                target=scheduler.run,
                args=(stop, args.scheduler_interval),
                name="overdue-scheduler",
                daemon=True,
            )
            scheduler_thread.start()
        reported: set[str] = set()
        while not stop.wait(1.0):
            for name, state in runner.states.items():
                if state.status == "failed" and name not in reported:
                    reported.add(name)
                    log.error(
                        "projection_stopped",
                        projection=name,
                        position=state.failed_position,
                        error=state.error,
                    )
        log.info("projections_stopping")
        runner.stop()
        if scheduler_thread is not None:
            scheduler_thread.join(10.0)
    finally:
        if health is not None:
            health.close()
        views.close()
        app.close()
    return EXIT_OK


def cmd_rebuild(args: argparse.Namespace) -> int:
    """Rebuild one projection or all, blue/green, with a progress bar."""
    from practice_events.errors import ConfigurationError
    from projections.registry import all_projections

    settings = _settings(args)
    known = [p.NAME for p in all_projections(settings)]
    names = known if args.name == "all" else [n for n in known if n == args.name]
    if not names:
        msg = f"no projection named {args.name!r}; known: {', '.join(known)}, or all"
        raise ConfigurationError(msg)
    results = rebuild_projections(
        settings,
        names,
        views_url=args.views,
        batch_size=args.batch_size,
        jobs=args.jobs,
        progress=not args.no_progress and not args.json,
    )
    if args.json:
        sys.stdout.write(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        for r in results:
            print(
                f"rebuilt {r['projection']}: {r['events']:,} events in {r['seconds']:.1f} s "
                f"({r['events_per_second'] or 0:,}/s), position {r['position']:,}"
            )
    return EXIT_OK


def rebuild_projections(
    settings: Settings,
    names: list[str],
    *,
    views_url: str | None = None,
    batch_size: int = 2000,
    jobs: int = 1,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Rebuild the named projections blue/green; return what each took.

    The projections are rebuilt together, with one pass over the log
    (:func:`projections.runner.rebuild_together`: each page is read and
    decoded once for all of them). With ``jobs`` > 1 they are split into
    that many groups of about as many events each (the largest first), and
    each group is rebuilt together in a process of its own (they write
    different tables, so they contend only for the databases); the progress
    bar then advances as each group finishes.
    """
    from practice_events.bootstrap import build_app
    from practice_events.progress import Progress
    from projections.registry import all_projections
    from projections.runner import BatchedRunner

    chosen = [p for p in all_projections(settings) if p.NAME in names]
    app = build_app(settings)
    views = _views_at(settings, views_url)
    try:
        BatchedRunner(app, views, chosen)  # creates missing tables and version rows
        counts = app.store.count_events_by_topic()
    finally:
        views.close()
        app.close()
    totals = {p.NAME: _topic_total(p, counts) for p in chosen}
    groups = balanced_groups(totals, jobs)
    if len(groups) <= 1:
        with Progress("rebuild", sum(totals.values()), enabled=progress) as bar:
            return _rebuild_group(settings, list(totals), views_url, batch_size, bar.advance)
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    done: dict[str, dict[str, Any]] = {}
    with (
        Progress("rebuild", sum(totals.values()), enabled=progress) as bar,
        ProcessPoolExecutor(max_workers=len(groups), mp_context=get_context("spawn")) as pool,
    ):
        futures = [
            pool.submit(_rebuild_group, settings, group, views_url, batch_size) for group in groups
        ]
        for future in as_completed(futures):
            for result in future.result():
                done[result["projection"]] = result
                bar.advance(result["events"])
    return [done[p.NAME] for p in chosen]


def balanced_groups(totals: dict[str, int], jobs: int) -> list[list[str]]:
    """Split projections into at most ``jobs`` groups of about equal events (largest first).

    Each name keeps the order of ``totals`` within its group.
    """
    count = max(1, min(jobs, len(totals)))
    load = [0] * count
    member: dict[str, int] = {}
    for name in sorted(totals, key=lambda n: -totals[n]):
        lightest = load.index(min(load))
        member[name] = lightest
        load[lightest] += totals[name]
    groups = [[n for n in totals if member[n] == index] for index in range(count)]
    return [g for g in groups if g]


def _rebuild_group(
    settings: Settings,
    names: list[str],
    views_url: str | None,
    batch_size: int,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Rebuild projections together (in this process or a worker process); their figures."""
    from practice_events.bootstrap import build_app
    from projections.registry import projection_named
    from projections.runner import rebuild_together

    projections = [projection_named(settings, name) for name in names]
    app = build_app(settings)
    views = _views_at(settings, views_url)
    try:
        done = rebuild_together(app, views, projections, batch_size=batch_size, progress=progress)
    finally:
        views.close()
        app.close()
    return [
        {
            "projection": r.name,
            "events": r.events,
            "position": r.position,
            "seconds": round(r.seconds, 3),
            "events_per_second": round(r.events / r.seconds) if r.seconds > 0 else None,
        }
        for r in done
    ]


def _topic_total(projection: Projection, counts: dict[str, int]) -> int:
    if not projection.TOPICS:
        return sum(counts.values())
    return sum(counts.get(topic, 0) for topic in projection.TOPICS)


def projection_status(
    app: PracticeEvents, views: ViewStore, projections: list[Projection]
) -> list[dict[str, Any]]:
    """Return each projection's position, lag and failure, as seen from the stores.

    ``seconds_behind`` is how long the oldest event the projection has not
    processed has been in the log (0 when caught up), so it means the same
    in any process, unlike a runner's in-memory state.
    """
    from projections.runner import LogReader

    reader = LogReader(app)
    head = reader.head()
    tracked = views.positions()
    now = datetime.now(UTC)
    out: list[dict[str, Any]] = []
    for projection in projections:
        row = tracked.get(projection.NAME) or {}
        position = int(row.get("position") or 0)
        waiting = reader.read(position, 1, projection.TOPICS, stop=head) if position < head else []
        seconds = round((now - waiting[0].recorded_at).total_seconds(), 3) if waiting else 0.0
        out.append(
            {
                "projection": projection.NAME,
                "version": projection.VERSION,
                "position": position,
                "head": head,
                "events_behind": max(0, head - position),
                "seconds_behind": max(0.0, seconds),
                "updated_at": row.get("updated_at"),
                "failed_position": row.get("failed_at"),
                "error": row.get("error"),
                "status": "failed" if row.get("error") else "ok",
            }
        )
    return out


def cmd_status(args: argparse.Namespace) -> int:
    """Print positions, lag and failures (exit 1 when a projection has failed)."""
    from practice_events.bootstrap import build_app
    from projections.registry import all_projections

    settings = _settings(args)
    app = build_app(settings)
    views = _views(settings, args)
    try:
        rows = projection_status(app, views, all_projections(settings, args.plugin))
    finally:
        views.close()
        app.close()
    if args.json:
        sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(f"{'projection':<14} {'position':>10} {'behind':>9} {'seconds':>9}  status")
        for r in rows:
            line = (
                f"{r['projection']:<14} {r['position']:>10,} {r['events_behind']:>9,} "
                f"{r['seconds_behind']:>9.1f}  {r['status']}"
            )
            if r["error"]:
                line += f" at {r['failed_position']}: {r['error']}"
            print(line)
    return EXIT_FAILED if any(r["error"] for r in rows) else EXIT_OK


def cmd_scheduler(args: argparse.Namespace) -> int:
    """Run the overdue scheduler once or until a signal stops it."""
    import structlog

    from practice_events.bootstrap import build_app

    settings = _settings(args)
    app = build_app(settings)
    views = _views(settings, args)
    try:
        scheduler = build_scheduler(settings, app, views)
        if args.once:
            result = scheduler.run_once()
            if args.json:
                sys.stdout.write(orjson.dumps(result.as_dict()).decode() + "\n")
            else:
                print(
                    f"{result.candidates} overdue finding(s): {result.emitted} event(s) emitted, "
                    f"{result.duplicates} already emitted, {result.rejected} refused"
                )
            return EXIT_OK
        stop = threading.Event()
        _stop_on_signals(stop)
        structlog.get_logger("projections.scheduler").info(
            "overdue_scheduler_started", interval=args.interval
        )
        scheduler.run(stop, args.interval)
    finally:
        views.close()
        app.close()
    return EXIT_OK
