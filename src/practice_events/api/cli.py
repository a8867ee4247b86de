"""``practice-events serve``, ``practice-events api`` and ``practice-events tokens …``.

Installed through the ``practice_events.cli`` entry point (``api``). Entry
points stay thin: read settings, open through the composition root, call,
print. Bad usage, a port in use or an unreachable store at start-up are one
line on stderr and exit code 2; no traceback.

``serve`` runs the app with every HTTP plugin (the read API and dashboard,
the projection runners, the Kafka worker when configured: see "Plugins" in
:mod:`practice_events.api.app`); ``api`` leaves out the in-process workers
(:data:`EMBEDDED_PLUGINS`) and may run several server processes on one port
(``--workers N``, see :func:`run_workers`). ``serve --demo`` first loads the demo district
into an empty store (:mod:`practice_events.demo.load`) and hands its
supervisor token to the dashboard through ``app.state.demo_token``.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import socket
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from practice_events.errors import ConfigurationError, TransientError

if TYPE_CHECKING:
    from practice_events.application import PracticeEvents
    from practice_events.auth.tokens import ApiToken, TokenStore
    from practice_events.config import Settings

EXIT_OK = 0
EXIT_BUG = 1


def _settings(args: argparse.Namespace) -> Settings:
    from practice_events.config import load_settings
    from practice_events.logging import configure_logging

    settings = load_settings(store=getattr(args, "store", None))
    configure_logging(settings.log_format, settings.log_level)
    return settings


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


# -- serve --------------------------------------------------------------------------------


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind a listening socket now, so that a port in use is a clear error before start-up."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        msg = f"cannot listen on {host}:{port}: unknown host ({exc.strerror})"
        raise ConfigurationError(msg) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            msg = f"port {port} on {host} is already in use; stop the other server or pass --port"
        else:
            msg = f"cannot listen on {host}:{port}: {exc.strerror}"
        raise ConfigurationError(msg) from None
    return sock


EMBEDDED_PLUGINS = ("kafka", "runners")
"""HTTP plugins that run workers in-process (Kafka ingestion, projection runners).

``serve`` installs every plugin; ``api`` leaves these out, for deployments
that run ``practice-events ingest`` and ``practice-events projections run``
as their own processes.
"""


def api_plugins() -> list[str]:
    """The installed HTTP plugins ``practice-events api`` uses (all but the embedded ones)."""
    from importlib.metadata import entry_points

    from practice_events.api.app import PLUGIN_GROUP

    names = {ep.name for ep in entry_points(group=PLUGIN_GROUP)}
    return sorted(names - set(EMBEDDED_PLUGINS))


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _prepare_demo(settings: Settings, *, progress: bool) -> str:
    """Load the demo district into an empty store (or finish an interrupted load).

    Returns the demo district-supervisor token (issued once, kept beside the store).
    """
    import structlog
    from eventsourcing.persistence import PersistenceError

    from practice_events.bootstrap import build_app, build_pipeline
    from practice_events.config import mask_url
    from practice_events.demo.load import ensure_demo_token, prepare_demo

    log = structlog.get_logger("practice_events.serve")
    try:
        app = build_app(settings)
    except PersistenceError as exc:
        msg = f"cannot open the event store {mask_url(settings.store)}: {exc}"
        raise ConfigurationError(msg) from None
    try:
        loaded = prepare_demo(settings, app, build_pipeline(settings, app), progress=progress)
        if loaded is None:
            log.info("demo_already_loaded", last_position=app.last_position())
        elif loaded.rejected:
            log.warning("demo_inputs_rejected", by_code=loaded.rejected_by_code)
        return ensure_demo_token(settings, app)
    finally:
        app.close()


def _announce(args: argparse.Namespace, settings: Settings, url: str, token: str | None) -> None:
    """Say where the service is: a banner for people, one JSON line with ``--json`` (stdout)."""
    store = settings.masked()["store"]
    if args.json:
        _print_json({"url": url, "store": store, "demo_token": token, "pid": os.getpid()})
        sys.stdout.flush()
        return
    token_file = None
    if token is not None:
        from practice_events.demo.load import demo_token_path

        token_file = str(demo_token_path(settings))
    _banner(url, store, token, token_file)


def _banner(url: str, store: str, token: str | None, token_file: str | None) -> None:
    """Tell a person where the service is (stdout; logs go to stderr)."""
    print(f"practice-events {_version()} serving {url} (store {store})")
    print(f"  dashboard: {url}/")
    print(f"  API:       {url}/openapi.json   health: {url}/healthz   ready: {url}/readyz")
    if token is not None:
        print(f"  demo token (district supervisor, unit WLY): {token}")
        print(f"    kept in {token_file}; the dashboard at this address uses it by itself")
    sys.stdout.flush()


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("practice-events")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0+unknown"


def run_server(
    args: argparse.Namespace, *, plugins: list[str] | None, demo: bool, workers: int = 1
) -> int:
    """Run the HTTP app with ``plugins`` (None: all) until SIGINT/SIGTERM; stop gracefully.

    ``workers`` > 1 runs that many server processes instead (:func:`run_workers`).

    Shutdown order: uvicorn stops accepting and lets requests in flight end;
    the lifespan then stops the plugins in reverse order (runners after their
    batch, the Kafka worker after its batch), the ingest thread stores what it
    took, and the store is closed.
    """
    import structlog
    import uvicorn

    from practice_events.api.app import create_app, open_runtime

    log = structlog.get_logger("practice_events.serve")
    settings = _settings(args)
    host = args.host or settings.http_host
    port = settings.http_port if args.port is None else args.port
    sock = bind_socket(host, port)
    try:
        token: str | None = None
        if demo:
            if not _is_loopback(host):
                log.warning(
                    "demo_on_public_address",
                    host=host,
                    hint="the demo token is handed only to browsers on this machine, but "
                    "anyone holding it reads every unit; never use --demo in production",
                )
            token = _prepare_demo(settings, progress=not args.json)
        try:
            runtime = open_runtime(settings)
        except TransientError as exc:
            raise ConfigurationError(exc.reason) from None
        if workers > 1:
            # Opened once here to report a bad store before listening and to create the
            # tables before the workers race to; each worker opens its own.
            runtime.close()
            return run_workers(args, settings, sock, plugins or [], workers)
        app = create_app(settings, runtime=runtime, plugins=plugins)
        app.state.demo_token = token
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=args.access_log,
            lifespan="on",
            server_header=False,
            timeout_graceful_shutdown=30,
        )
        server = uvicorn.Server(config)
        shown_host = f"[{host}]" if ":" in host else host
        url = f"http://{shown_host}:{sock.getsockname()[1]}"
        log.info("serving", url=url, plugins=plugins or "all", demo=demo)
        _announce(args, settings, url, token)
        # uvicorn shuts down gracefully on SIGINT/SIGTERM and then re-raises the signal
        # to the handler that was in place before it; record it there so that a
        # requested stop ends with exit code 0 instead of death by signal.
        received: list[int] = []

        def remember(sig: int, _frame: object) -> None:
            received.append(sig)

        previous = {sig: signal.signal(sig, remember) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            server.run(sockets=[sock])
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    finally:
        sock.close()
    if received:
        log.info("stopped", signal=signal.Signals(received[0]).name)
    return EXIT_OK if server.started else EXIT_BUG


WORKER_PLUGINS_ENV = "_PRACTICE_EVENTS_WORKER_PLUGINS"
"""How the parent of ``api --workers N`` tells its workers which HTTP plugins to install."""


def worker_app() -> Any:
    """Build the app inside one worker process of ``api --workers N`` (uvicorn calls this).

    Settings come from the environment (and config file) the parent had, with
    the parent's ``--store`` already exported; the plugins from
    :data:`WORKER_PLUGINS_ENV`. The worker's lifespan opens its own runtime:
    event store, token cache, ingest thread, view store and answer cache,
    request-rate buckets.
    """
    from practice_events.api.app import create_app
    from practice_events.config import load_settings
    from practice_events.logging import configure_logging

    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    names = [name for name in os.environ.get(WORKER_PLUGINS_ENV, "").split(",") if name]
    return create_app(settings, plugins=names)


def run_workers(
    args: argparse.Namespace,
    settings: Settings,
    sock: socket.socket,
    plugins: list[str],
    workers: int,
) -> int:
    """Serve ``sock`` from ``workers`` processes (uvicorn's supervisor) until SIGINT/SIGTERM.

    Every worker is a whole server of the ``api`` kind: the same plugins, its
    own connections and ingest thread; the kernel hands each new connection
    to one of them. That is safe because nothing a request needs lives in one
    process only: ingestion from several processes commits or retries like
    several Kafka workers do (see docs/architecture.md), the read API's
    answer cache is a per-process cache of the shared views, and the
    request-rate limits are per process (a client may get up to ``workers``
    times the configured rate; see :mod:`practice_events.api.ratelimit`).
    ``serve`` keeps one process: its projection runners, Kafka consumer and
    scheduler must not run once per worker. The supervisor restarts a worker
    that dies; SIGINT/SIGTERM stop every worker gracefully (each finishes its
    requests and closes its runtime).
    """
    import structlog
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    log = structlog.get_logger("practice_events.serve")
    os.environ["PRACTICE_EVENTS_STORE"] = settings.store  # the workers read the same store
    os.environ[WORKER_PLUGINS_ENV] = ",".join(plugins)
    config = uvicorn.Config(
        "practice_events.api.cli:worker_app",
        factory=True,
        workers=workers,
        log_config=None,
        access_log=args.access_log,
        lifespan="on",
        server_header=False,
        timeout_graceful_shutdown=30,
    )
    host, port = sock.getsockname()[:2]
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{port}"
    log.info("serving", url=url, plugins=plugins, workers=workers)
    _announce(args, settings, url, None)
    supervisor = Multiprocess(config, sockets=[sock])
    supervisor.run()
    failed = [p.pid for p in supervisor.processes if p.exitcode == STARTUP_FAILURE]
    if failed:
        log.error("worker_start_failed", pids=failed)
        return EXIT_BUG
    log.info("stopped", workers=workers)
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    """Run everything in one process: ingestion, projection runners, API and dashboard."""
    return run_server(args, plugins=None, demo=args.demo)


def cmd_api(args: argparse.Namespace) -> int:
    """Run the HTTP API alone (ingestion and queries), without in-process workers."""
    return run_server(args, plugins=api_plugins(), demo=False, workers=args.workers)


# -- tokens -------------------------------------------------------------------------------


def _open_tokens(args: argparse.Namespace) -> tuple[PracticeEvents, TokenStore]:
    from eventsourcing.persistence import PersistenceError

    from practice_events.auth.tokens import token_store
    from practice_events.bootstrap import build_app
    from practice_events.config import mask_url

    settings = _settings(args)
    try:
        app = build_app(settings)
    except PersistenceError as exc:
        msg = f"cannot open the event store {mask_url(settings.store)}: {exc}"
        raise TransientError(msg) from None
    try:
        return app, token_store(app)
    except BaseException:
        app.close()
        raise


def _describe(token: ApiToken) -> str:
    if token.sources:
        return "sources " + ", ".join(token.sources)
    if token.unit:
        return f"unit {token.unit}"
    return "all units"


def cmd_tokens_create(args: argparse.Namespace) -> int:
    """Issue a token and print its secret (the only time it is ever shown)."""
    from practice_events.auth.tokens import InvalidGrantError

    app, tokens = _open_tokens(args)
    try:
        issued = tokens.issue(
            args.role,
            unit=args.unit,
            sources=args.source or (),
            lifetime=timedelta(days=args.expires_in),
        )
    except InvalidGrantError as exc:
        raise ConfigurationError(exc.reason) from None
    finally:
        app.close()
    token = issued.token
    if args.json:
        _print_json({"token": issued.secret, **token.as_dict()})
        return EXIT_OK
    print(
        f"created {token.token_id}: {token.role}, {_describe(token)}, "
        f"expires {token.expires_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC",
        file=sys.stderr,
    )
    print(issued.secret)
    print(
        "copy the token now: it is shown only this once and stored only as a hash",
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_tokens_list(args: argparse.Namespace) -> int:
    """List every token with its status (never the secrets, which are not stored)."""
    app, tokens = _open_tokens(args)
    try:
        found = tokens.list_tokens()
    finally:
        app.close()
    now = datetime.now(UTC)
    if args.json:
        _print_json([token.as_dict(now) for token in found])
        return EXIT_OK
    if not found:
        print("no tokens; create one with `practice-events tokens create --role …`")
        return EXIT_OK
    print(f"{'ID':<21} {'ROLE':<21} {'STATUS':<8} {'EXPIRES (UTC)':<17} {'HINT':<8} GRANT")
    for token in found:
        print(
            f"{token.token_id:<21} {token.role:<21} {token.status(now):<8} "
            f"{token.expires_at.astimezone(UTC):%Y-%m-%d %H:%M} {token.hint + '…':<8} "
            f"{_describe(token)}"
        )
    return EXIT_OK


def cmd_tokens_revoke(args: argparse.Namespace) -> int:
    """Revoke a token by id (its secret stops working within seconds)."""
    from practice_events.auth.tokens import UnknownTokenError

    app, tokens = _open_tokens(args)
    try:
        token = tokens.revoke(args.token_id)
    except UnknownTokenError as exc:
        raise ConfigurationError(exc.reason) from None
    finally:
        app.close()
    if args.json:
        _print_json(token.as_dict(datetime.now(UTC)))
        return EXIT_OK
    assert token.revoked_at is not None
    print(f"revoked {token.token_id} ({token.role}) at {token.revoked_at.isoformat()}")
    return EXIT_OK


# -- parser -------------------------------------------------------------------------------


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        msg = f"not a port number: {value!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if not 0 <= port <= 65535:
        msg = f"port {port} is outside 0-65535"
        raise argparse.ArgumentTypeError(msg)
    return port


def _workers(value: str) -> int:
    try:
        workers = int(value)
    except ValueError:
        msg = f"not a whole number of worker processes: {value!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if not 1 <= workers <= 64:
        msg = f"{workers} workers is outside 1-64"
        raise argparse.ArgumentTypeError(msg)
    return workers


def _days(value: str) -> int:
    try:
        days = int(value)
    except ValueError:
        msg = f"not a whole number of days: {value!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if not 1 <= days <= 3650:
        msg = f"{days} days is outside 1-3650"
        raise argparse.ArgumentTypeError(msg)
    return days


def _server_arguments(p: argparse.ArgumentParser, store_help: str) -> None:
    p.add_argument("--host", help="address to listen on (default from settings: 127.0.0.1)")
    p.add_argument("--port", type=_port, help="port to listen on (default from settings: 8000)")
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON line (url, store, demo_token, pid) instead of the banner",
    )
    p.add_argument("--store", help=store_help)


def install(sub: Any) -> None:
    """Add ``serve`` and ``tokens`` to the ``practice-events`` sub-commands."""
    from practice_events.auth.tokens import ROLES

    def parser(parent: Any, name: str, help_text: str, epilog: str = "") -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        return p

    store_help = "event store URL (overrides PRACTICE_EVENTS_STORE)"

    p = parser(
        sub,
        "serve",
        "Run the whole service in one process: ingestion, projections, API and dashboard.",
        "examples:\n"
        "  practice-events serve --demo                # what `make run` does\n"
        "  practice-events serve\n"
        "  practice-events serve --host 0.0.0.0 --port 8080\n"
        "  PRACTICE_EVENTS_KAFKA_BOOTSTRAP=127.0.0.1:9092 practice-events serve\n"
        "  PRACTICE_EVENTS_DEMO_EVENTS=5000 practice-events serve --demo --json\n\n"
        "runs HTTP ingestion (POST /v1/events), Kafka ingestion when\n"
        "PRACTICE_EVENTS_KAFKA_BOOTSTRAP is set, every projection runner, the overdue\n"
        "scheduler, the query API (/v1/...) and the dashboard (/).\n"
        "--demo loads the demo district first when the store is empty (about\n"
        "PRACTICE_EVENTS_DEMO_EVENTS events over PRACTICE_EVENTS_DEMO_DAYS days, ending\n"
        "yesterday) and prints a district-supervisor demo token; never use it in production.\n"
        "default address: PRACTICE_EVENTS_HTTP_HOST:PRACTICE_EVENTS_HTTP_PORT (127.0.0.1:8000).\n"
        "SIGINT/SIGTERM stop it gracefully. exit codes: 0 stopped by a signal, 1 bug,\n"
        "2 bad configuration (port in use, store unreachable or misnamed).\n"
        "post an event:\n"
        "  curl -H 'Authorization: Bearer pe_…' "
        "-H 'Content-Type: application/cloudevents+json' \\\n"
        "       --data @event.json http://127.0.0.1:8000/v1/events",
    )
    p.set_defaults(func=cmd_serve)
    _server_arguments(p, store_help)
    p.add_argument(
        "--demo",
        action="store_true",
        help="load the demo district into an empty store first and print a demo token",
    )

    p = parser(
        sub,
        "api",
        "Run the HTTP API alone: ingestion and queries, no in-process workers.",
        "examples:\n"
        "  practice-events api --host 0.0.0.0 --port 8080\n"
        "  PRACTICE_EVENTS_STORE=postgresql://practice@db/practice practice-events api\n\n"
        "  practice-events api --workers 2   # two server processes on one port\n\n"
        "for deployments that run the other parts as their own processes:\n"
        "  practice-events ingest            (Kafka ingestion workers)\n"
        "  practice-events projections run   (projection runners, --with-scheduler once)\n"
        "the query endpoints then read the views those runners keep.\n"
        "with --workers N each process has its own caches and request-rate buckets\n"
        "(a client may get up to N times PRACTICE_EVENTS_HTTP_RATE_*_PER_SECOND).\n"
        "exit codes: 0 stopped by a signal, 1 bug, 2 bad configuration.",
    )
    p.set_defaults(func=cmd_api)
    _server_arguments(p, store_help)
    p.add_argument(
        "--workers",
        type=_workers,
        default=1,
        metavar="N",
        help="server processes sharing the port (default 1; about one per CPU core)",
    )

    tokens = sub.add_parser(
        "tokens",
        help="Issue, list and revoke API tokens.",
        description="Issue, list and revoke API tokens (stored hashed in the event store).",
    )
    tokens_sub = tokens.add_subparsers(dest="tokens_command", metavar="COMMAND", required=True)

    p = parser(
        tokens_sub,
        "create",
        "Issue a token and print it (shown once; only its hash is stored).",
        "examples:\n"
        "  practice-events tokens create --role producer --source urn:app:checkin:*\n"
        "  practice-events tokens create --role station_supervisor --unit WLY-ZHAN-03 --json\n"
        "  TOKEN=$(practice-events tokens create --role producer --source urn:wishwall)\n\n"
        "roles: district_supervisor, institute_supervisor, station_supervisor (need --unit),\n"
        "producer (needs --source: an exact CloudEvents source, or a prefix ending in *),\n"
        "auditor. The secret goes to stdout, the explanation to stderr.",
    )
    p.set_defaults(func=cmd_tokens_create)
    p.add_argument("--role", required=True, choices=ROLES, help="who the token speaks for")
    p.add_argument("--unit", help="the unit a supervisor token is bound to")
    p.add_argument(
        "--source",
        action="extend",
        nargs="+",
        metavar="SRC",
        help="CloudEvents source a producer may use (repeatable; a trailing * matches a prefix)",
    )
    p.add_argument(
        "--expires-in", type=_days, default=90, metavar="DAYS", help="lifetime (default 90 days)"
    )
    p.add_argument("--json", action="store_true", help="print the token and its grant as JSON")
    p.add_argument("--store", help=store_help)

    p = parser(
        tokens_sub,
        "list",
        "List tokens with their status (secrets are never shown).",
        "example:\n  practice-events tokens list --json",
    )
    p.set_defaults(func=cmd_tokens_list)
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.add_argument("--store", help=store_help)

    p = parser(
        tokens_sub,
        "revoke",
        "Revoke a token by id (it stops working within seconds).",
        "example:\n  practice-events tokens revoke tok_3f9a0c1d2e4b5a69",
    )
    p.set_defaults(func=cmd_tokens_revoke)
    p.add_argument("token_id", metavar="TOKEN_ID", help="the token's id, as `tokens list` shows")
    p.add_argument("--json", action="store_true", help="print the revoked token as JSON")
    p.add_argument("--store", help=store_help)
