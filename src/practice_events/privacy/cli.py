"""``practice-events privacy …`` and ``practice-events keys generate``.

Installed through the ``practice_events.cli`` entry point (``privacy =
practice_events.privacy.cli:install``). ``privacy erase`` destroys a
volunteer's keys (crypto-shredding, see ``docs/privacy.md``), ``privacy
status`` says which keys a volunteer has and when any were destroyed (never
the details), ``keys generate`` prints a new cipher key for
``PRACTICE_EVENTS_CIPHER_KEY``.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
from datetime import datetime
from typing import Any

import orjson

EXIT_OK = 0

ERASE_EPILOG = """\
examples:
  practice-events privacy erase V4308110000253
  practice-events privacy erase V4308110000253 --request-ref PIPL-2025-0042 --actor DPO-01 --json
  practice-events privacy status V4308110000253

Destroys the volunteer's person keys and records practice.volunteer.personal_data_erased.v1
(no personal data in it) in one transaction. Afterwards no view, history, export, replay,
certificate or table shows their name, phone or ID number; hours, points, scores and the
integrity chain are unchanged. Copies outside the store (backups of the key table, exports
written before) are not reached: see docs/privacy.md.
exit codes: 0 erased or nothing to erase, 2 unknown volunteer or bad configuration,
3 store unavailable.
"""

KEYS_EPILOG = """\
examples:
  practice-events keys generate
  export PRACTICE_EVENTS_CIPHER_KEY=$(practice-events keys generate)

Prints a random AES key (base64) for PRACTICE_EVENTS_CIPHER_KEY. Keep it in a secret store:
without it the events and person keys of a store created with it cannot be read.
"""


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def cmd_erase(args: argparse.Namespace) -> int:
    """Destroy a volunteer's keys and record the erasure."""
    from practice_events.bootstrap import build_app, build_pipeline
    from practice_events.config import load_settings
    from practice_events.logging import configure_logging
    from practice_events.privacy.erase import erase_personal_data

    settings = load_settings(store=args.store)
    configure_logging(settings.log_format, settings.log_level)
    app = build_app(settings)
    try:
        result = erase_personal_data(
            build_pipeline(settings, app),
            args.volunteer_no,
            now=datetime.now(settings.zone),
            reason=args.reason,
            request_ref=args.request_ref,
            actor=args.actor,
        )
    finally:
        app.close()
    if args.json:
        _print_json(result.as_dict())
    elif result.status == "erased":
        print(
            f"erased the personal details of {result.volunteer_no}: "
            f"{len(result.key_ids)} key(s) destroyed, recorded at log position {result.position}"
        )
    else:
        print(f"{result.volunteer_no} has no personal details to erase")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    """Print a volunteer's keys: live or destroyed, and when (never the details)."""
    from practice_events.bootstrap import build_app
    from practice_events.config import load_settings
    from practice_events.logging import configure_logging
    from practice_events.privacy.keys import key_store

    settings = load_settings(store=args.store)
    configure_logging(settings.log_format, settings.log_level)
    app = build_app(settings)
    try:
        keys = key_store(app).keys_of(args.volunteer_no)
    finally:
        app.close()
    rows = [
        {
            "key_id": k.key_id,
            "created_at": k.created_at,
            "state": "erased" if k.erased_at else "live",
            "erased_at": k.erased_at,
        }
        for k in keys
    ]
    if args.json:
        _print_json({"volunteer_no": args.volunteer_no, "keys": rows})
        return EXIT_OK
    if not rows:
        print(f"{args.volunteer_no}: no personal details were ever recorded")
    for row in rows:
        when = f" (erased {row['erased_at']})" if row["erased_at"] else ""
        created = f"created {row['created_at']}"
        print(f"{args.volunteer_no}: key {row['key_id']} {created}, {row['state']}{when}")
    return EXIT_OK


def cmd_generate(args: argparse.Namespace) -> int:
    """Print a new random cipher key, base64."""
    print(base64.b64encode(os.urandom(args.bytes)).decode())
    return EXIT_OK


def install(subparsers: Any) -> None:
    """Add ``practice-events privacy …`` and ``practice-events keys …`` to the CLI."""
    privacy = subparsers.add_parser(
        "privacy",
        help="Personal data: erase a volunteer's details (crypto-shredding), key status.",
        description="Personal details are sealed per person; erasing destroys the keys.",
        epilog=ERASE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = privacy.add_subparsers(dest="privacy_command", metavar="COMMAND", required=True)
    p = sub.add_parser(
        "erase",
        help="Destroy a volunteer's keys and record the erasure.",
        description="Destroy a volunteer's person keys and record the erasure (one transaction).",
        epilog=ERASE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("volunteer_no", help="the volunteer number")
    p.add_argument(
        "--reason",
        default="data_subject_request",
        help="why (a code: data_subject_request, retention_expired, consent_withdrawn ...)",
    )
    p.add_argument("--request-ref", help="reference of the erasure request (kept in the event)")
    p.add_argument("--actor", help="who carried it out (an operator id; kept in the event)")
    p.add_argument("--store", help="event store URL (overrides PRACTICE_EVENTS_STORE)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_erase)

    p = sub.add_parser("status", help="A volunteer's keys: live or destroyed, and when.")
    p.add_argument("volunteer_no", help="the volunteer number")
    p.add_argument("--store", help="event store URL (overrides PRACTICE_EVENTS_STORE)")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=cmd_status)

    keys = subparsers.add_parser(
        "keys",
        help="Generate the cipher key that encrypts the store at rest.",
        description="Cipher keys for PRACTICE_EVENTS_CIPHER_KEY (see docs/operations.md).",
        epilog=KEYS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="COMMAND", required=True)
    p = keys_sub.add_parser(
        "generate",
        help="Print a new random AES key, base64.",
        epilog=KEYS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--bytes", type=int, choices=(16, 24, 32), default=32, help="key length (default 32)"
    )
    p.set_defaults(func=cmd_generate)
