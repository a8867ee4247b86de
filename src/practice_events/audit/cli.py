"""``practice-events audit …``: the auditors' commands.

Installed through the ``practice_events.cli`` entry point (``audit =
practice_events.audit.cli:install``). Each command parses, builds what it
needs from the settings through the composition root, calls one function of
:mod:`practice_events.audit` and prints (``--json`` for machines). Long
commands show a progress bar on a terminal and log lines otherwise.

Exit codes are those of ``practice-events`` (0 ok, 1 bug, 2 bad usage or
configuration, 3 store unavailable) plus **5**: ``verify`` found a break or
a checkpoint that does not match, or ``reproduce`` found a published
scorecard that does not recompute to the same figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import threading
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import orjson

from practice_events.errors import ConfigurationError

if TYPE_CHECKING:
    from practice_events.application import PracticeEvents
    from practice_events.config import Settings

EXIT_OK = 0
EXIT_INTEGRITY = 5

KEY_ENV = "PRACTICE_EVENTS_AUDIT_KEY_FILE"
"""Environment variable naming the signing key file when ``--key`` is not given."""

EPILOG = """\
examples:
  practice-events audit seal --follow
  practice-events audit verify --json
  practice-events audit checkpoint --out checkpoints/2025-06-30.json
  practice-events audit verify --checkpoint checkpoints/2025-06-30.json
  practice-events audit history finding F-2025-0007
  practice-events audit replay --as-of 2025-06-30T23:59:59+08:00 --out replay-h1/
  practice-events audit replay --as-of 2025-06-30T23:59:59+08:00 --basis occurred \\
      --projection closed_loop --json
  practice-events audit replay --position 812345 --scorecard WLY-SUO-01 --period 2025-06
  practice-events audit replay --as-of 2025-06-30T23:59:59+08:00 --jobs 2
  practice-events audit reproduce --period 2025-06
  practice-events audit export --unit WLY-SUO-01 --from 2025-01-01T00:00:00+08:00 \\
      --out wly-suo-01.jsonl.gz
  practice-events audit import wly-suo-01.jsonl.gz
  practice-events audit certificate V4308110000253 --as-of 2025-12-31T23:59:59+08:00

--as-of and --from/--to take RFC 3339 times with an offset. The signing key
(Ed25519 PEM, or hmac-sha256:<base64>) comes from --key or ${env}.
exit codes: 0 ok, 1 bug, 2 bad usage or configuration, 3 store unavailable,
5 integrity break / checkpoint mismatch / publication not reproduced.
""".replace("${env}", KEY_ENV)


# --- helpers -----------------------------------------------------------------------------------


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def _settings(args: argparse.Namespace) -> Settings:
    from practice_events.config import load_settings
    from practice_events.logging import configure_logging

    settings = load_settings(store=getattr(args, "store", None))
    configure_logging(settings.log_format, settings.log_level)
    return settings


def _app(settings: Settings, *, create: bool = False) -> PracticeEvents:
    """Open the store; only ``import`` may create one (the others read what is there)."""
    from practice_events.bootstrap import build_app
    from practice_events.config import require_existing_store

    if not create:
        require_existing_store(settings.store)
    return build_app(settings)


def _time(value: str | None, option: str) -> datetime | None:
    """Parse an RFC 3339 time with an offset (BAD_CONFIGURATION otherwise)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        msg = f"{option} must be an RFC 3339 time such as 2025-06-30T23:59:59+08:00"
        raise ConfigurationError(msg) from None
    if parsed.tzinfo is None:
        msg = f"{option} needs an offset, e.g. {value}+08:00"
        raise ConfigurationError(msg)
    return parsed


def _progress(args: argparse.Namespace, label: str, total: int | None) -> Any:
    from practice_events.progress import Progress

    enabled = not getattr(args, "json", False) and not getattr(args, "no_progress", False)
    return Progress(label, total, enabled=enabled)


def _signer(path: str | None, *, required: bool) -> Any:
    from practice_events.audit.integrity import Signer

    chosen = path or os.environ.get(KEY_ENV)
    if not chosen:
        if required:
            msg = f"a signing key is needed: give --key FILE or set {KEY_ENV}"
            raise ConfigurationError(msg)
        return None
    return Signer.from_file(Path(chosen))


# --- commands ----------------------------------------------------------------------------------


def cmd_seal(args: argparse.Namespace) -> int:
    """Seal the log up to its head; with --follow keep sealing until SIGTERM/SIGINT."""
    from practice_events.audit.integrity import Sealer, log_store

    settings = _settings(args)
    app = _app(settings)
    try:
        store = log_store(app)
        sealer = Sealer(app, store=store)
        head = store.log_head()
        sealed = store.seal_head()
        todo = head - (sealed[0] if sealed else 0)
        with _progress(args, "seal", max(todo, 0)) as bar:
            result = sealer.seal(progress=bar.advance)
        if not args.follow:
            if args.json:
                _print_json(result.as_dict())
            else:
                print(
                    f"sealed {result.sealed:,} events ({result.rate:,.0f}/s); chain head at "
                    f"position {result.position:,}: {result.chain_hash}"
                )
            return EXIT_OK
        stop = threading.Event()
        _stop_on_signals(stop)
        print(f"sealing new events every {args.interval:g} s until SIGTERM/SIGINT", flush=True)
        total = sealer.follow(stop.is_set, interval=args.interval, wait=stop.wait)
        print(f"stopped; sealed {result.sealed + total:,} events in this run")
        return EXIT_OK
    finally:
        app.close()


def _stop_on_signals(stop: threading.Event) -> None:
    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def cmd_verify(args: argparse.Namespace) -> int:
    """Walk the log and the seals; report the first break; check a checkpoint if given."""
    from practice_events.audit.integrity import log_store, verify, verify_checkpoint

    settings = _settings(args)
    app = _app(settings)
    try:
        store = log_store(app)
        with _progress(args, "verify", store.log_head()) as bar:
            report = verify(app, store=store, progress=bar.advance, workers=args.workers)
        if args.checkpoint:
            path = Path(args.checkpoint)
            try:
                doc = orjson.loads(path.read_bytes())
            except (OSError, orjson.JSONDecodeError) as exc:
                msg = f"cannot read checkpoint {path}: {exc}"
                raise ConfigurationError(msg) from None
            secret = _signer(args.key, required=False)
            with _progress(args, "checkpoint", int(doc.get("position", 0))) as bar:
                report.checkpoint = verify_checkpoint(
                    app, doc, secret=secret, store=store, progress=bar.advance
                )
    finally:
        app.close()
    ok = report.ok and (report.checkpoint is None or report.checkpoint["ok"])
    if args.json:
        _print_json({**report.as_dict(), "ok": ok})
    else:
        _print_verify(report)
    return EXIT_OK if ok else EXIT_INTEGRITY


def _print_verify(report: Any) -> None:
    print(
        f"checked {report.events_checked:,} events ({report.rate:,.0f}/s); log head "
        f"{report.log_head:,}, sealed up to {report.sealed_head:,}, unsealed {report.unsealed:,}"
    )
    if report.first_break is None:
        print(f"OK: the log matches its seals; chain head {report.chain_hash}")
    else:
        b = report.first_break
        print(f"BROKEN at position {b.position:,}: {b.kind} — {b.detail}")
    if report.checkpoint is not None:
        c = report.checkpoint
        state = "OK" if c["ok"] else "FAILED"
        print(f"checkpoint at position {c['position']:,}: {state} — {c['reason']}")


def cmd_checkpoint(args: argparse.Namespace) -> int:
    """Seal to the head and write a signed checkpoint of the chain head."""
    from practice_events.audit.integrity import make_checkpoint

    signer = _signer(args.key, required=True)
    settings = _settings(args)
    app = _app(settings)
    try:
        doc = make_checkpoint(app, signer, label=args.label)
    finally:
        app.close()
    text = orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n"
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(text)
        if not args.json:
            print(f"checkpoint at position {doc['position']:,} written to {out}")
    if args.json or not args.out:
        sys.stdout.write(text.decode())
    return EXIT_OK


def cmd_keygen(args: argparse.Namespace) -> int:
    """Write a new signing key (Ed25519 by default) to a file readable by its owner only."""
    from practice_events.audit.integrity import Signer

    out = Path(args.out)
    if out.exists() and not args.force:
        msg = f"{out} exists; give --force to replace it"
        raise ConfigurationError(msg)
    text = Signer.generate_hmac() if args.hmac else Signer.generate_ed25519()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        stream.write(text.strip() + "\n")
    signer = Signer.from_file(out)
    print(f"wrote a {signer.algorithm} key to {out} (key id {signer.key_id})")
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    """Print the ordered history of one aggregate."""
    from practice_events.audit.history import aggregate_history

    settings = _settings(args)
    app = _app(settings)
    try:
        history = aggregate_history(
            app,
            args.kind,
            args.subject,
            upto=args.upto,
            with_data=args.json or args.data,
            check_seals=args.check_seals,
        )
    finally:
        app.close()
    if args.json:
        _print_json({"kind": args.kind, "subject": args.subject, "events": history})
        return EXIT_OK
    print(f"{args.kind} {args.subject}: {len(history)} events")
    for item in history:
        actor = f" actor={item['actor']}" if item.get("actor") else ""
        cause = f" cause={item['cause']}" if item.get("cause") else ""
        seal = f" seal={item['seal']}" if "seal" in item else ""
        print(
            f"  #{item['position']:<8} v{item['version']:<4} {item['type']:<48} "
            f"occurred {item['occurred_at']}  recorded {item['recorded_at']}  "
            f"by {item['source']}{actor}{cause}{seal}"
        )
        if args.data:
            print(f"      {orjson.dumps(item.get('data')).decode()}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    """Write CloudEvents JSON Lines of the log (or a unit and time range)."""
    from practice_events.audit.export import export_events

    settings = _settings(args)
    app = _app(settings)
    try:
        with _progress(args, "export", args.upto or app.last_position()) as bar:
            summary = export_events(
                app,
                Path(args.out),
                unit=args.unit,
                start=_time(args.start, "--from"),
                end=_time(args.end, "--to"),
                upto=args.upto,
                progress=bar.advance,
            )
    finally:
        app.close()
    if args.json:
        _print_json(summary.as_dict())
    else:
        print(
            f"exported {summary.exported:,} events to {summary.path} "
            f"(read {summary.events_read:,} up to position {summary.last_position:,} at "
            f"{summary.rate:,.0f}/s; derived left out {summary.derived_skipped:,}, "
            f"outside the unit {summary.outside_unit:,}, outside the range "
            f"{summary.outside_range:,})"
        )
        if summary.unverified:
            print(f"  {summary.unverified:,} payloads could not be matched to their fingerprint")
        if summary.unresolved:
            print(f"  {summary.unresolved:,} events refer to aggregates outside the export")
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    """Import an exported file through the ingest pipeline (ids and sources preserved)."""
    from practice_events.audit.export import import_events
    from practice_events.bootstrap import build_pipeline

    settings = _settings(args)
    path = Path(args.file)
    if not path.is_file():
        msg = f"no such file: {path}"
        raise ConfigurationError(msg)
    app = _app(settings, create=True)
    try:
        pipeline = build_pipeline(settings, app)
        with _progress(args, "import", None) as bar:
            summary = import_events(
                pipeline,
                path,
                batch_size=args.batch_size or settings.batch_size,
                progress=bar.advance,
            )
    finally:
        app.close()
    if args.json:
        _print_json(summary.as_dict())
    else:
        print(
            f"{summary.lines:,} events in {summary.seconds:.1f} s: {summary.accepted:,} "
            f"accepted, {summary.duplicate:,} duplicate, {summary.rejected:,} rejected; "
            f"{summary.events_stored:,} events stored, log position {summary.last_position:,}"
        )
        for code, count in sorted(summary.rejected_by_code.items()):
            print(f"  rejected {code}: {count:,} (see `practice-events rejections` or the table)")
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    """Rebuild projections as of a time or position into a scratch store; show or export."""
    from practice_events.audit.replay import (
        choose_projections,
        dump_views,
        plan_replay,
        replay,
        scorecards_as_of,
        scratch_views,
    )
    from practice_events.scoring.periods import Period

    settings = _settings(args)
    app = _app(settings)
    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="pe-replay-"))
    views = None
    try:
        plan = plan_replay(
            app, as_of=_time(args.as_of, "--as-of"), position=args.position, basis=args.basis
        )
        views = scratch_views(work)
        with _progress(args, f"replay ({plan.basis})", plan.position) as bar:
            result = replay(
                app,
                settings,
                plan,
                views,
                names=args.projection,
                progress=bar.advance,
                jobs=args.jobs,
            )
        if args.scorecard:
            period = (
                args.period or Period.containing(plan.evaluated_at, "month", settings.zone).name
            )
            result.scorecards = scorecards_as_of(
                views, settings, args.scorecard, period, plan.evaluated_at
            )
        if args.out:
            dump_views(views, choose_projections(settings, args.projection), work)
            (work / "replay.json").write_bytes(
                orjson.dumps(result.as_dict(), option=orjson.OPT_INDENT_2) + b"\n"
            )
    finally:
        if views is not None:
            views.close()
        app.close()
        if not args.out:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        _print_json(result.as_dict())
        return EXIT_OK
    _print_replay(result, args.out)
    return EXIT_OK


def _print_replay(result: Any, out: str | None) -> None:
    plan = result.plan
    when = f"as of {plan.as_of.isoformat()} ({plan.basis})" if plan.as_of else "as recorded"
    print(
        f"replayed {when} up to position {plan.position:,}: {result.events_read:,} events "
        f"read in {result.seconds:.1f} s ({result.rate:,.0f}/s)"
        + (
            f", {result.skipped_after:,} after the as-of time skipped"
            if result.skipped_after
            else ""
        )
    )
    for name, info in result.projections.items():
        tables = ", ".join(f"{t} {n:,}" for t, n in info["tables"].items())
        print(f"  {name} (v{info['version']}): {tables}")
    for card in result.scorecards:
        composite = card.get("composite", {})
        print(
            f"  scorecard {card.get('unit_id')} {card.get('period', {})}: composite "
            f"{composite.get('value')} ({composite.get('status')})"
        )
    if out:
        print(f"tables written as JSON Lines to {out} (views in {out}/replay.views.db)")


def cmd_reproduce(args: argparse.Namespace) -> int:
    """Recompute every published scorecard at its stored position and model version."""
    from practice_events.audit.replay import reproduce_publications, scratch_views

    settings = _settings(args)
    app = _app(settings)
    work = Path(tempfile.mkdtemp(prefix="pe-reproduce-"))
    views = scratch_views(work)
    try:
        with _progress(args, "reproduce", app.last_position()) as bar:
            results = reproduce_publications(
                app, settings, views, unit=args.unit, period=args.period, progress=bar.advance
            )
    finally:
        views.close()
        app.close()
        shutil.rmtree(work, ignore_errors=True)
    ok = all(r["identical"] for r in results)
    if args.json:
        _print_json({"ok": ok, "publications": results})
    else:
        if not results:
            print("no published scorecards in the log for that selection")
        for r in results:
            state = "identical" if r["identical"] else f"DIFFERS in {', '.join(r['differing'])}"
            print(
                f"  {r['unit_id']} {r['period']} (model {r['model_id']} v{r['model_version']}, "
                f"as of position {r['as_of_position']:,}): {state}"
            )
    return EXIT_OK if ok else EXIT_INTEGRITY


def cmd_certificate(args: argparse.Namespace) -> int:
    """Print a volunteer's service-record certificate as of a time or position."""
    from practice_events.audit.certificate import volunteer_certificate

    settings = _settings(args)
    app = _app(settings)
    try:
        doc = volunteer_certificate(
            app,
            args.volunteer_no,
            timezone=settings.timezone,
            as_of=_time(args.as_of, "--as-of"),
            position=args.position,
        )
    finally:
        app.close()
    if args.json:
        _print_json(doc)
        return EXIT_OK
    print(f"志愿服务记录证明 / Volunteer service record certificate  No. {doc['number']}")
    print(
        f"  volunteer {doc['volunteer_no']} (registered {doc['registration'].get('registered_on')})"
    )
    if doc["holder"]["name"]:
        print(f"  holder: {doc['holder']['name']} {doc['holder']['id_number'] or ''}".rstrip())
    print(f"  recorded through position {doc['position']:,} ({doc['recorded_through']})")
    print(f"  approved service hours: {doc['approved_hours_total']:g}")
    for year in doc["hours_by_year"]:
        print(f"    {year['year']}: {year['approved_hours']:g} h in {year['sessions']} sessions")
    for training in doc["trainings"]:
        print(f"  training {training['course_id']} completed {training['completed_at']}")
    print(f"  star level: {doc['awards']['star_level']}")
    print(f"  content sha256 {doc['content_sha256']}")
    return EXIT_OK


# --- parser ------------------------------------------------------------------------------------


def _common(parser: argparse.ArgumentParser, *, json_flag: bool = True) -> None:
    parser.add_argument("--store", help="event store URL (overrides PRACTICE_EVENTS_STORE)")
    if json_flag:
        parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def install(subparsers: Any) -> None:
    """Add ``practice-events audit …`` to the CLI."""
    audit = subparsers.add_parser(
        "audit",
        help="Auditors: seal/verify the log, history, replay, export/import, certificates.",
        description=(
            "Integrity seals and checkpoints, aggregate histories, point-in-time replay, "
            "export and import, published-scorecard reproduction and volunteer certificates."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = audit.add_subparsers(dest="audit_command", metavar="COMMAND", required=True)
    _install_integrity(sub)
    _install_reading(sub)
    _install_moving(sub)


def _install_integrity(sub: Any) -> None:
    """``seal``, ``verify``, ``checkpoint``, ``keygen``."""
    p = sub.add_parser("seal", help="Extend the hash chain over new events (--follow: keep going).")
    p.add_argument("--follow", action="store_true", help="keep sealing until SIGTERM/SIGINT")
    p.add_argument("--interval", type=float, default=0.5, help="seconds between polls (follow)")
    _common(p)
    p.set_defaults(func=cmd_seal)

    p = sub.add_parser("verify", help="Walk the log and its seals; report the first break.")
    p.add_argument("--checkpoint", help="also check this signed checkpoint against the log")
    p.add_argument("--key", help=f"HMAC secret / expected Ed25519 key (default ${KEY_ENV})")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="ranges of the log checked at once: connections on PostgreSQL, processes on "
        "SQLite (default: the CPU count, at most 4; 1: in this process)",
    )
    _common(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("checkpoint", help="Sign the chain head into a checkpoint document.")
    p.add_argument("--out", help="write the checkpoint to this file (default: print it)")
    p.add_argument("--key", help=f"signing key file (default ${KEY_ENV})")
    p.add_argument("--label", help="a free label kept in the document (e.g. 2025-H1)")
    _common(p)
    p.set_defaults(func=cmd_checkpoint)

    p = sub.add_parser("keygen", help="Write a new Ed25519 (or --hmac) signing key file.")
    p.add_argument("--out", required=True, help="key file to write (mode 600)")
    p.add_argument("--hmac", action="store_true", help="a shared HMAC-SHA-256 secret instead")
    p.add_argument("--force", action="store_true", help="replace an existing file")
    p.set_defaults(func=cmd_keygen)


def _install_reading(sub: Any) -> None:
    """``history``, ``replay``, ``reproduce``, ``certificate``."""
    p = sub.add_parser("history", help="The ordered history of one aggregate.")
    p.add_argument("kind", help="aggregate kind: finding, volunteer, site, need, meeting ...")
    p.add_argument("subject", help="its CloudEvents subject (finding id, volunteer number ...)")
    p.add_argument("--upto", type=int, help="only events at or before this log position")
    p.add_argument("--data", action="store_true", help="also print each event's data")
    p.add_argument("--check-seals", action="store_true", help="check each event against its seal")
    _common(p)
    p.set_defaults(func=cmd_history)

    p = sub.add_parser("replay", help="Rebuild views as of a time or position (scratch store).")
    p.add_argument("--as-of", help="RFC 3339 time with an offset")
    p.add_argument("--position", type=int, help="log position to stop at")
    p.add_argument(
        "--basis",
        choices=("recorded", "occurred"),
        default="recorded",
        help="recorded: as known on that date; occurred: as happened by that date",
    )
    p.add_argument(
        "--projection", action="append", help="projection to replay (repeat; default all)"
    )
    p.add_argument("--out", help="directory for the scratch views and one JSONL per table")
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="split the projections into this many groups, replayed at once in separate "
        "processes (default 1: in this process)",
    )
    p.add_argument("--scorecard", action="append", help="also compute this unit's scorecard")
    p.add_argument("--period", help="period of --scorecard (default: month of the as-of time)")
    _common(p)
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("reproduce", help="Recompute published scorecards; compare with frozen.")
    p.add_argument("--unit", help="only this unit's publications")
    p.add_argument("--period", help="only this period (2025-06, 2025-Q2 ...)")
    _common(p)
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("certificate", help="A volunteer's service-record certificate.")
    p.add_argument("volunteer_no", help="the volunteer number")
    p.add_argument("--as-of", help="as recorded by this time (RFC 3339 with offset)")
    p.add_argument("--position", type=int, help="as recorded up to this log position")
    _common(p)
    p.set_defaults(func=cmd_certificate)


def _install_moving(sub: Any) -> None:
    """``export`` and ``import``."""
    p = sub.add_parser("export", help="CloudEvents JSON Lines of the log, a unit, a time range.")
    p.add_argument("--out", required=True, help="file to write (.gz: gzip)")
    p.add_argument("--unit", help="a site id: that unit and every site under it")
    p.add_argument("--from", dest="start", help="business time from (inclusive, RFC 3339)")
    p.add_argument("--to", dest="end", help="business time to (inclusive, RFC 3339)")
    p.add_argument("--upto", type=int, help="stop at this log position (the log as known then)")
    _common(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("import", help="Import an exported file through the ingest pipeline.")
    p.add_argument("file", help="JSON Lines file (gzip detected)")
    p.add_argument("--batch-size", type=int, help="events per transaction")
    _common(p)
    p.set_defaults(func=cmd_import)
