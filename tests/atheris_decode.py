"""An atheris (libFuzzer) harness for the decode/validate path.

Run by ``tests/integration/test_fuzz_pipeline.py`` for a few seconds, seeded
with the bad-input corpus; by hand for longer::

    .venv/bin/python -m tests.atheris_decode -max_total_time=600 /tmp/seeds

The first byte of each input picks the path: a structured CloudEvent, a
binary-mode one (``name: value`` header lines, a blank line, then the
value), or an HTTP batch body whose items are then parsed one by one. Any
exception but a refusal of the project's error family (or the API's
``Problem``) with a code docs/api.md publishes is a crash: libFuzzer writes
the input under ``-artifact_prefix`` and exits non-zero.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["practice_events"]):
    from practice_events.api.ingest import batch_items
    from practice_events.api.problems import Problem
    from practice_events.contracts import load_all
    from practice_events.contracts.envelope import parse_binary, parse_structured
    from practice_events.errors import PracticeEventsError

from tests.corpus import documented_codes

load_all()
CODES = frozenset(documented_codes())
STRUCTURED, BINARY, BATCH = 0, 1, 2


def headers_of(head: bytes) -> list[tuple[str, str]]:
    """``name: value`` lines as header pairs (bytes that are not UTF-8 kept as Kafka's are)."""
    pairs = []
    for line in head.split(b"\n"):
        name, _, value = line.partition(b":")
        pairs.append(
            (name.decode("utf-8", "replace"), value.strip().decode("utf-8", "surrogateescape"))
        )
    return pairs


def check(data: bytes) -> None:
    """Run one input through the path its first byte picks; only coded refusals may escape."""
    if not data:
        return
    path, rest = data[0] % 3, data[1:]
    try:
        if path == STRUCTURED:
            parse_structured(rest)
        elif path == BINARY:
            head, _, value = rest.partition(b"\n\n")
            parse_binary(headers_of(head), value)
        else:
            _, payloads = batch_items(rest, 50)
            for payload in payloads:
                check(bytes([STRUCTURED]) + payload)
    except PracticeEventsError as exc:
        if exc.code not in CODES or not exc.reason:
            raise AssertionError(f"undocumented refusal {exc.code}: {exc.reason}") from exc
    except Problem as exc:
        if exc.code not in CODES or not exc.detail:
            raise AssertionError(f"undocumented refusal {exc.code}: {exc.detail}") from exc


def main() -> None:
    """Fuzz until libFuzzer's limits (``-max_total_time``, ``-runs``) say stop."""
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
