"""``practice-events serve`` and ``practice-events tokens …``.

Installed through the ``practice_events.cli`` entry point (``api``). Entry
points stay thin: read settings, open through the composition root, call,
print. Bad usage, a port in use or an unreachable store at start-up are one
line on stderr and exit code 2; no traceback.
"""

from __future__ import annotations

import argparse
import errno
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


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the HTTP server until SIGINT/SIGTERM, then stop gracefully."""
    import structlog
    import uvicorn

    from practice_events.api.app import create_app, open_runtime

    log = structlog.get_logger("practice_events.serve")
    settings = _settings(args)
    host = args.host or settings.http_host
    port = settings.http_port if args.port is None else args.port
    sock = bind_socket(host, port)
    try:
        try:
            runtime = open_runtime(settings)
        except TransientError as exc:
            raise ConfigurationError(exc.reason) from None
        config = uvicorn.Config(
            create_app(settings, runtime=runtime),
            log_config=None,
            access_log=args.access_log,
            lifespan="on",
            server_header=False,
            timeout_graceful_shutdown=30,
        )
        server = uvicorn.Server(config)
        bound = sock.getsockname()
        store = runtime.settings.masked()["store"]
        log.info("serving", url=f"http://{host}:{bound[1]}", store=store)
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
        "Run the HTTP server: event ingestion, /healthz and /readyz.",
        "examples:\n"
        "  practice-events serve\n"
        "  practice-events serve --host 0.0.0.0 --port 8080\n\n"
        "default address: PRACTICE_EVENTS_HTTP_HOST:PRACTICE_EVENTS_HTTP_PORT "
        "(127.0.0.1:8000).\n"
        "limits: PRACTICE_EVENTS_HTTP_MAX_BATCH_EVENTS (1000), "
        "PRACTICE_EVENTS_HTTP_MAX_BATCH_BYTES (5 MiB),\n"
        "PRACTICE_EVENTS_HTTP_MAX_EVENT_BYTES (1 MiB). SIGINT/SIGTERM stop it gracefully.\n"
        "post an event:\n"
        "  curl -H 'Authorization: Bearer pe_…' "
        "-H 'Content-Type: application/cloudevents+json' \\\n"
        "       --data @event.json http://127.0.0.1:8000/v1/events",
    )
    p.set_defaults(func=cmd_serve)
    p.add_argument("--host", help="address to listen on (default from settings: 127.0.0.1)")
    p.add_argument("--port", type=_port, help="port to listen on (default from settings: 8000)")
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.add_argument("--store", help=store_help)

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
