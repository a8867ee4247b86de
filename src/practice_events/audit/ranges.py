"""One range of sealed positions checked on its own: what :func:`~.integrity.verify` parallelises.

Why a range can be checked alone: up to the sealed head, the walk makes two
local checks per position, (1) the seal's chain against its predecessor's
*stored* chain and (2) the row's hash against the seal's row hash. Neither
needs the running chain over the log, so a range (a, b] needs only the stored
chain of the last seal at or before a (:data:`GENESIS` when there is none).
The first break of the lowest range that has one is the walk's first break.

This module imports nothing of the application (only the standard library),
so a worker process that checks SQLite ranges starts quickly.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

GENESIS = bytes(32)
"""The chain value before the first event."""

ALL = 2**63 - 1
"""A LIMIT (and a position bound) that no store reaches."""

RawBreak = tuple[int, str, bytes | None]
"""(position, kind, row hash): kind is ``deleted``, ``inserted``, ``seal_modified`` or
``mismatch`` (the row's hash differs from the sealed one; the caller tells ``modified``
from ``reordered``, which needs a look at the whole seals table)."""

RangeOutcome = tuple[int, RawBreak | None]
"""(log rows checked before the range's first break, or all of them; that break or None)."""

Reader = Callable[[int, int, int | None], list[Any]]
"""A keyset-paged reader: ``read(after, limit, stop)`` returns rows in position order."""


def id_bytes(value: Any) -> bytes:
    """Return an originator id (UUID, 32-hex text or dashed text) as 16 bytes."""
    if isinstance(value, UUID):
        return value.bytes
    text = str(value)
    if len(text) == 32:
        return bytes.fromhex(text)
    return UUID(text).bytes


def hash_rows(rows: Iterable[Sequence[Any]]) -> list[tuple[int, bytes]]:
    """Return (position, row hash) of SQLite rows (position, originator, version, topic, state).

    :func:`~.integrity.row_hash` written out inline, with the topic header
    cached: this loop is most of a SQLite ``verify``'s time.
    """
    sha256 = hashlib.sha256
    join = b"".join
    fromhex = bytes.fromhex
    headers: dict[str, tuple[bytes, bytes]] = {}
    out: list[tuple[int, bytes]] = []
    append = out.append
    for position, originator, version, topic, state in rows:
        header = headers.get(topic)
        if header is None:
            encoded = topic.encode()
            header = headers[topic] = (len(encoded).to_bytes(2, "big"), encoded)
        ident = fromhex(originator) if len(originator) == 32 else id_bytes(originator)
        append(
            (
                position,
                sha256(
                    join((ident, version.to_bytes(8, "big"), header[0], header[1], state))
                ).digest(),
            )
        )
    return out


def check_range(
    read_rows: Reader,
    read_seals: Reader,
    *,
    after: int,
    upper: int,
    log_stop: int,
    previous: bytes,
    page: int,
    raw: bool = False,
) -> RangeOutcome:
    """Check the sealed positions in (after, upper]: every row against its seal.

    ``previous`` is the stored chain of the last seal at or before ``after``;
    log rows are read up to ``min(upper, log_stop)`` (the log head when the
    walk started), seals up to ``upper`` (at most the sealed head). Rows and
    seals are read a page at a time over the same positions and merged.
    ``read_rows`` returns (position, row hash) rows, or with ``raw`` the
    stored SQLite rows (position, originator, version, topic, state), hashed
    here: an intact page is then checked in one pass (:func:`_intact`).
    """
    checked = 0
    cursor = after
    row_stop = min(upper, log_stop)
    while True:
        rows = read_rows(cursor, page, row_stop)
        full = len(rows) == page
        seal_stop = rows[-1][0] if full else upper
        seals = read_seals(cursor, ALL, seal_stop)
        if raw and _intact(rows, seals, previous):
            count, found = len(rows), None
            previous = seals[-1][2] if seals else previous
        else:
            count, found, previous = _merge(hash_rows(rows) if raw else rows, seals, previous)
        checked += count
        if found is not None or not full:
            return checked, found
        cursor = seal_stop


def _intact(rows: Sequence[Sequence[Any]], seals: Sequence[Sequence[Any]], previous: bytes) -> bool:
    """Whether raw SQLite rows and their seals match one to one (the common case, in one pass).

    :func:`hash_rows` and :func:`_merge` fused; on False the caller runs them
    to find the first break exactly.
    """
    if len(rows) != len(seals):
        return False
    sha256 = hashlib.sha256
    join = b"".join
    fromhex = bytes.fromhex
    headers: dict[str, bytes] = {}
    for (position, originator, version, topic, state), (sealed_at, sealed, chain) in zip(
        rows, seals, strict=True
    ):
        header = headers.get(topic)
        if header is None:
            encoded = topic.encode()
            header = headers[topic] = len(encoded).to_bytes(2, "big") + encoded
        ident = fromhex(originator) if len(originator) == 32 else id_bytes(originator)
        if (
            position != sealed_at
            or sha256(join((ident, version.to_bytes(8, "big"), header, state))).digest() != sealed
            or sha256(join((previous, position.to_bytes(8, "big"), sealed))).digest() != chain
        ):
            return False
        previous = chain
    return True


def _merge(
    rows: Sequence[tuple[int, bytes]], seals: Sequence[Sequence[Any]], previous: bytes
) -> tuple[int, RawBreak | None, bytes]:
    """Merge rows and seals that cover the same positions; return (checked, break, chain)."""
    sha256 = hashlib.sha256
    n_rows, n_seals = len(rows), len(seals)
    found: RawBreak | None = None
    i = 0
    while i < n_rows or i < n_seals:
        if i == n_seals:
            found = (rows[i][0], "inserted", None)
            break
        seal_position, sealed, chain = seals[i]
        position, content = rows[i] if i < n_rows else (ALL, b"")
        if seal_position != position:
            if seal_position < position:
                found = (seal_position, "deleted", None)
            else:
                found = (position, "inserted", None)
            break
        if chain != sha256(previous + position.to_bytes(8, "big") + sealed).digest():
            found = (position, "seal_modified", None)
            break
        if content != sealed:
            found = (position, "mismatch", content)
            break
        previous = chain
        i += 1
    return i, found, previous


SQLITE_READ_LOG = (
    "SELECT rowid, originator_id, originator_version, topic, state FROM {0} "
    "WHERE rowid > ? AND rowid <= ? ORDER BY rowid LIMIT ?"
)
"""The log rows of a range (the events table's name goes in ``{0}``)."""

SQLITE_READ_SEALS = (
    "SELECT position, row_hash, chain_hash FROM seals "
    "WHERE position > ? AND position <= ? ORDER BY position LIMIT ?"
)
"""The seals of a range."""


def sqlite_range(
    path: str,
    events: str,
    *,
    after: int,
    upper: int,
    log_stop: int,
    previous: bytes,
    page: int,
) -> RangeOutcome:
    """:func:`check_range` on a SQLite file opened read-only (runs in a worker process)."""
    connection = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    try:
        read_log = SQLITE_READ_LOG.format(events)

        def read_rows(a: int, limit: int, stop: int | None) -> list[Any]:
            bound = ALL if stop is None else stop
            return connection.execute(read_log, (a, bound, limit)).fetchall()

        def read_seals(a: int, limit: int, stop: int | None) -> list[Any]:
            bound = ALL if stop is None else stop
            return connection.execute(SQLITE_READ_SEALS, (a, bound, limit)).fetchall()

        connection.execute("BEGIN")  # one snapshot for the whole range
        return check_range(
            read_rows,
            read_seals,
            after=after,
            upper=upper,
            log_stop=log_stop,
            previous=previous,
            page=page,
            raw=True,
        )
    finally:
        connection.close()
