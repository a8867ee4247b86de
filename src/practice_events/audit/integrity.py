"""Integrity of the event log: a hash chain, the sealing follower, verification, checkpoints.

The chain
---------
Every stored event is hashed as it sits in the store, and the hashes are
chained in notification (log) order::

    row_hash(e)  = SHA-256(originator_id[16] ‖ version[8] ‖ len(topic)[2] ‖ topic ‖ state)
    chain(p)     = SHA-256(chain(previous position) ‖ p[8] ‖ row_hash)      chain(0) = 0³²

``state`` is the stored bytes (after compression and encryption, if on), so
the chain proves what the store holds, not what a decoder makes of it. The
position is inside the chain and the content hash is not, so a row moved to
another position is told apart from a changed row.

Sealing
-------
The :class:`Sealer` trails the log: it reads the events after the last sealed
position, computes their hashes and writes them to the ``seals`` table
(``practiceevents_seals`` on PostgreSQL) in one transaction per batch. The
seals table is its own tracking (the last sealed position and chain head), so
ingestion never waits for hashing: writes are not slowed. Two sealers at once
collide on the primary key and one of them retries. PostgreSQL assigns
notification ids under a table lock in commit order, so reading "after the
last sealed position" never skips an event that commits late.

Verification
------------
:func:`verify` walks the log and the seals side by side and reports the first
break in position order:

``modified``       the event at a sealed position has other bytes than sealed;
``reordered``      the bytes at this position were sealed at another position
                   (rows swapped or renumbered);
``deleted``        a sealed position has no event any more;
``inserted``       an event sits at a position the sealer never saw although
                   later positions were sealed;
``seal_modified``  the seals table itself is not a chain any more.

Up to the sealed head each check is local, so :func:`verify` checks ranges of
positions independently and at once (worker processes on SQLite, connections
on PostgreSQL; see :mod:`practice_events.audit.ranges`) and reports what the
sequential walk (:func:`verify_walk`) reports.

Someone with write access could rewrite events *and* recompute every seal
after them. Signed checkpoints close that gap: :func:`make_checkpoint` signs
the chain head at a position (Ed25519, or HMAC-SHA-256 for a shared secret)
into a JSON document that a third party keeps; :func:`verify_checkpoint`
later recomputes the chain from the log alone, without trusting the seals,
and compares it with the signed head.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import itertools
import os
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol
from uuid import UUID

import orjson
import structlog
from eventsourcing.persistence import IntegrityError

from practice_events.application import PracticeEvents
from practice_events.audit import ranges
from practice_events.audit.ranges import (
    SQLITE_READ_LOG,
    RangeOutcome,
    RawBreak,
    check_range,
    hash_rows,
    sqlite_range,
)
from practice_events.audit.ranges import id_bytes as _id_bytes
from practice_events.errors import ConfigurationError, PracticeEventsError

log = structlog.get_logger(__name__)

GENESIS = ranges.GENESIS
"""The chain value before the first event."""


CHECKPOINT_FORMAT = "practice-events/checkpoint/v1"
"""The ``format`` of checkpoint documents; bump it if the signed fields change."""

PAGE = 5000
"""Rows per read while sealing or verifying."""

BreakKind = Literal["modified", "reordered", "deleted", "inserted", "seal_modified"]

LogRow = tuple[int, bytes, int, str, bytes]
"""(position, originator id as 16 bytes, version, topic, stored state)."""

SealRow = tuple[int, bytes, bytes]
"""(position, row hash, chain hash)."""

HashRow = tuple[int, bytes]
"""(position, row hash of the stored event)."""


# --- hashing -------------------------------------------------------------------------------


def row_hash(originator: bytes, version: int, topic: str, state: bytes) -> bytes:
    """Return the content hash of one stored event (see the module docstring)."""
    encoded = topic.encode()
    return hashlib.sha256(
        b"".join(
            (
                originator,
                version.to_bytes(8, "big"),
                len(encoded).to_bytes(2, "big"),
                encoded,
                state,
            )
        )
    ).digest()


def link(previous: bytes, position: int, content: bytes) -> bytes:
    """Return the chain value at ``position`` from the previous one and the row hash."""
    return hashlib.sha256(previous + position.to_bytes(8, "big") + content).digest()


# --- store access ----------------------------------------------------------------------------


class LogStore(Protocol):
    """Raw access to the log and the seal tables (SQLite and PostgreSQL implement it)."""

    dialect: str

    def ensure_tables(self) -> None:
        """Create the seal tables if missing."""

    def log_head(self) -> int:
        """Return the last position of the log (0 when empty)."""

    def read_log(self, after: int, limit: int, stop: int | None = None) -> list[LogRow]:
        """Return up to ``limit`` stored events after ``after`` (up to ``stop``), in order."""

    def read_hashes(self, after: int, limit: int, stop: int | None = None) -> list[HashRow]:
        """Return (position, row hash) of up to ``limit`` events after ``after``, in order."""

    def read_seals(self, after: int, limit: int, stop: int | None = None) -> list[SealRow]:
        """Return up to ``limit`` seals after ``after`` (up to ``stop``), in order."""

    def seal_head(self) -> tuple[int, bytes, str] | None:
        """Return the last seal (position, chain hash, sealed_at), or None."""

    def seal_at(self, position: int) -> SealRow | None:
        """Return the seal of ``position``, if any."""

    def last_seal_chain(self, position: int) -> bytes:
        """Return the chain of the last seal at or before ``position`` (GENESIS when none)."""

    def count_seals(self) -> int:
        """Return how many positions are sealed."""

    def insert_seals(self, rows: list[tuple[int, bytes, bytes, str]]) -> None:
        """Insert seals in one transaction (IntegrityError if a position is sealed already)."""

    def positions_sealed_with(self, content: bytes) -> list[int]:
        """Return the sealed positions whose row hash is ``content`` (slow: breaks only)."""

    def insert_checkpoint(self, position: int, chain: bytes, created_at: str, doc: str) -> None:
        """Remember a checkpoint that was issued."""

    def events_of(self, originator: UUID) -> list[tuple[int, int, str, bytes]]:
        """Return (position, version, topic, state) of one aggregate's events, in order."""


class SqliteLogStore:
    """The log and seals in the SQLite store file (tables ``seals``, ``seal_checkpoints``)."""

    dialect = "sqlite"

    def __init__(self, app: PracticeEvents) -> None:
        recorder: Any = app.recorder
        self.datastore = recorder.datastore
        self.events = recorder.events_table_name
        self.read_log_sql = SQLITE_READ_LOG.format(self.events)
        pool = self.datastore.pool
        name = str(pool.db_name)
        plain_file = not pool.is_sqlite_memory_mode and not name.startswith("file:")
        self.path: str | None = name if plain_file else None
        """The database file, for worker processes (None for in-memory or URI names)."""

    def ensure_tables(self) -> None:
        """Create the seal tables if missing."""
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                "CREATE TABLE IF NOT EXISTS seals (position INTEGER PRIMARY KEY, "
                "row_hash BLOB NOT NULL, chain_hash BLOB NOT NULL, sealed_at TEXT NOT NULL)"
            )
            c.execute(
                "CREATE TABLE IF NOT EXISTS seal_checkpoints (position INTEGER NOT NULL, "
                "chain_hash BLOB NOT NULL, created_at TEXT NOT NULL, document TEXT NOT NULL)"
            )

    def log_head(self) -> int:
        """Return the last position of the log (0 when empty)."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT MAX(rowid) FROM {self.events}")  # noqa: S608 - table name from code
            return int(c.fetchone()[0] or 0)

    def _rows(self, statement: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Run a query and return plain tuples (the pool's ``sqlite3.Row`` costs more)."""
        with self.datastore.transaction(commit=False) as c:
            cursor = c.sqlite_cursor
            cursor.row_factory = None
            cursor.execute(statement, params)
            rows: list[tuple[Any, ...]] = cursor.fetchall()
            return rows

    def read_log(self, after: int, limit: int, stop: int | None = None) -> list[LogRow]:
        """Return up to ``limit`` stored events after ``after`` (up to ``stop``), in order."""
        bound = stop if stop is not None else 2**63 - 1
        rows = self._rows(self.read_log_sql, (after, bound, limit))
        return [(r[0], _id_bytes(r[1]), r[2], r[3], r[4]) for r in rows]

    def read_raw(self, after: int, limit: int, stop: int | None = None) -> list[tuple[Any, ...]]:
        """Return up to ``limit`` stored rows as SQLite holds them (originator as hex text)."""
        bound = stop if stop is not None else 2**63 - 1
        return self._rows(self.read_log_sql, (after, bound, limit))

    def read_hashes(self, after: int, limit: int, stop: int | None = None) -> list[HashRow]:
        """Return (position, row hash) of up to ``limit`` events (hashed here, in Python)."""
        bound = stop if stop is not None else 2**63 - 1
        return hash_rows(self._rows(self.read_log_sql, (after, bound, limit)))

    def read_seals(self, after: int, limit: int, stop: int | None = None) -> list[SealRow]:
        """Return up to ``limit`` seals after ``after`` (up to ``stop``), in order."""
        bound = stop if stop is not None else 2**63 - 1
        return self._rows(
            "SELECT position, row_hash, chain_hash FROM seals "
            "WHERE position > ? AND position <= ? ORDER BY position LIMIT ?",
            (after, bound, limit),
        )

    def seal_head(self) -> tuple[int, bytes, str] | None:
        """Return the last seal (position, chain hash, sealed_at), or None."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT position, chain_hash, sealed_at FROM seals ORDER BY position DESC LIMIT 1"
            )
            row = c.fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]), str(row[2]))

    def last_seal_chain(self, position: int) -> bytes:
        """Return the chain of the last seal at or before ``position`` (GENESIS when none)."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT chain_hash FROM seals WHERE position <= ? ORDER BY position DESC LIMIT 1",
                (position,),
            )
            row = c.fetchone()
        return GENESIS if row is None else bytes(row[0])

    def seal_at(self, position: int) -> SealRow | None:
        """Return the seal of ``position``, if any."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT position, row_hash, chain_hash FROM seals WHERE position = ?", (position,)
            )
            row = c.fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]), bytes(row[2]))

    def count_seals(self) -> int:
        """Return how many positions are sealed."""
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT COUNT(*) FROM seals")
            return int(c.fetchone()[0])

    def insert_seals(self, rows: list[tuple[int, bytes, bytes, str]]) -> None:
        """Insert seals in one transaction (IntegrityError if a position is sealed already)."""
        with self.datastore.transaction(commit=True) as c:
            c.executemany(
                "INSERT INTO seals (position, row_hash, chain_hash, sealed_at) VALUES (?, ?, ?, ?)",
                rows,
            )

    def positions_sealed_with(self, content: bytes) -> list[int]:
        """Return the sealed positions whose row hash is ``content`` (a full scan)."""
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT position FROM seals WHERE row_hash = ? ORDER BY position", (content,))
            return [int(r[0]) for r in c.fetchall()]

    def insert_checkpoint(self, position: int, chain: bytes, created_at: str, doc: str) -> None:
        """Remember a checkpoint that was issued."""
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                "INSERT INTO seal_checkpoints (position, chain_hash, created_at, document) "
                "VALUES (?, ?, ?, ?)",
                (position, chain, created_at, doc),
            )

    def events_of(self, originator: UUID) -> list[tuple[int, int, str, bytes]]:
        """Return (position, version, topic, state) of one aggregate's events, in order."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT rowid, originator_version, topic, state FROM "  # noqa: S608 - table name from code
                f"{self.events} WHERE originator_id = ? ORDER BY originator_version",
                (originator.hex,),
            )
            return [(int(r[0]), int(r[1]), str(r[2]), bytes(r[3])) for r in c.fetchall()]


class PostgresLogStore:
    """The log and seals in PostgreSQL (``<prefix>_seals``, ``<prefix>_seal_checkpoints``)."""

    dialect = "postgres"

    def __init__(self, app: PracticeEvents) -> None:
        from psycopg.sql import SQL, Identifier

        recorder: Any = app.recorder
        self.datastore = recorder.datastore
        schema = Identifier(self.datastore.schema)
        prefix = recorder.events_table_name.removesuffix("_events")
        self.seals_name = f"{prefix}_seals"
        events = SQL("{0}.{1}").format(schema, Identifier(recorder.events_table_name))
        seals = SQL("{0}.{1}").format(schema, Identifier(self.seals_name))
        checkpoints = SQL("{0}.{1}").format(schema, Identifier(f"{prefix}_seal_checkpoints"))
        self.sql = {
            "create_seals": SQL(
                "CREATE TABLE IF NOT EXISTS {0} (position bigint PRIMARY KEY, "
                "row_hash bytea NOT NULL, chain_hash bytea NOT NULL, sealed_at text NOT NULL)"
            ).format(seals),
            "create_checkpoints": SQL(
                "CREATE TABLE IF NOT EXISTS {0} (position bigint NOT NULL, "
                "chain_hash bytea NOT NULL, created_at text NOT NULL, document text NOT NULL)"
            ).format(checkpoints),
            "log_head": SQL("SELECT MAX(notification_id) FROM {0}").format(events),
            "read_log": SQL(
                "SELECT notification_id, originator_id, originator_version, topic, state "
                "FROM {0} WHERE notification_id > %s AND notification_id <= %s "
                "ORDER BY notification_id LIMIT %s"
            ).format(events),
            "read_hashes": SQL(
                # The row hash of the module docstring, computed by the server from
                # the same bytes: only 40 bytes a row cross the wire instead of the state.
                "SELECT notification_id, sha256(uuid_send(originator_id) || "
                "int8send(originator_version) || int2send(octet_length(topic)::int2) || "
                "convert_to(topic, 'UTF8') || state) "
                "FROM {0} WHERE notification_id > %s AND notification_id <= %s "
                "ORDER BY notification_id LIMIT %s"
            ).format(events),
            "check_range": SQL(
                # Log rows and seals of one position range, joined by position; only
                # the rows that are not "sealed and matching" come back (see verify()).
                # MATERIALIZED: each row is hashed once (inlined, the filter hashed it twice)
                # and the join holds (position, hash) pairs, not the stored bytes.
                "WITH e AS MATERIALIZED (SELECT notification_id AS p, "
                "sha256(uuid_send(originator_id) || "
                "int8send(originator_version) || int2send(octet_length(topic)::int2) || "
                "convert_to(topic, 'UTF8') || state) AS h FROM {0} "
                "WHERE notification_id > %(a)s AND notification_id <= %(b)s), "
                "s AS (SELECT position AS p, row_hash, chain_hash, "
                "lag(chain_hash) OVER (ORDER BY position) AS prev FROM {1} "
                "WHERE position > %(a)s AND position <= %(sb)s), "
                "j AS (SELECT coalesce(e.p, s.p) AS p, e.h, s.row_hash, s.chain_hash, "
                "CASE WHEN s.p IS NULL THEN NULL ELSE sha256(coalesce(s.prev, %(prev)s) || "
                "int8send(s.p) || s.row_hash) END AS expect FROM e FULL JOIN s ON e.p = s.p) "
                "SELECT p, h, row_hash, chain_hash, expect FROM j WHERE h IS NULL "
                "OR row_hash IS NULL OR h <> row_hash OR chain_hash <> expect ORDER BY p"
            ).format(events, seals),
            "range_summary": SQL(
                "SELECT (SELECT count(*) FROM {0} WHERE notification_id > %(a)s "
                "AND notification_id <= %(b)s), s.position, s.chain_hash FROM "
                "(SELECT 1) AS one LEFT JOIN (SELECT position, chain_hash FROM {1} "
                "WHERE position > %(a)s AND position <= %(sb)s ORDER BY position DESC LIMIT 1) "
                "AS s ON true"
            ).format(events, seals),
            "read_seals": SQL(
                "SELECT position, row_hash, chain_hash FROM {0} "
                "WHERE position > %s AND position <= %s ORDER BY position LIMIT %s"
            ).format(seals),
            "seal_head": SQL(
                "SELECT position, chain_hash, sealed_at FROM {0} ORDER BY position DESC LIMIT 1"
            ).format(seals),
            "seal_at": SQL(
                "SELECT position, row_hash, chain_hash FROM {0} WHERE position = %s"
            ).format(seals),
            "last_seal_chain": SQL(
                "SELECT chain_hash FROM {0} WHERE position <= %s ORDER BY position DESC LIMIT 1"
            ).format(seals),
            "count_log": SQL(
                "SELECT count(*) FROM {0} WHERE notification_id > %s AND notification_id <= %s"
            ).format(events),
            "count_seals": SQL("SELECT COUNT(*) FROM {0}").format(seals),
            "copy_seals": SQL(
                "COPY {0} (position, row_hash, chain_hash, sealed_at) FROM STDIN"
            ).format(seals),
            "sealed_with": SQL(
                "SELECT position FROM {0} WHERE row_hash = %s ORDER BY position"
            ).format(seals),
            "insert_checkpoint": SQL(
                "INSERT INTO {0} (position, chain_hash, created_at, document) "
                "VALUES (%s, %s, %s, %s)"
            ).format(checkpoints),
            "events_of": SQL(
                "SELECT notification_id, originator_version, topic, state FROM {0} "
                "WHERE originator_id = %s ORDER BY originator_version"
            ).format(events),
        }

    def check_range(
        self,
        after: int,
        upper: int,
        sealed_head: int,
        previous: bytes,
        log_stop: int | None = None,
    ) -> tuple[int, list[tuple[Any, ...]], tuple[int, bytes] | None]:
        """Check positions in (after, upper] on the server (log rows up to ``log_stop`` too).

        ``previous`` is the chain before the range's first seal. Returns the
        number of log rows in the range, the rows that are not
        sealed-and-matching as (position, row hash | None, sealed row hash |
        None, sealed chain | None, expected chain | None) in position order,
        and the last seal in the range (position, chain), if any.
        """
        from psycopg.rows import tuple_row

        rows_upper = upper if log_stop is None else min(upper, log_stop)
        params = {"a": after, "b": rows_upper, "sb": min(upper, sealed_head), "prev": previous}
        with self.datastore.get_connection() as conn, conn.transaction():
            cur = conn.cursor(binary=True, row_factory=tuple_row)
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute(self.sql["check_range"], params)
            odd = [
                tuple(_bytes(v) if isinstance(v, memoryview) else v for v in row)
                for row in cur.fetchall()
            ]
            cur.execute(self.sql["range_summary"], params)
            count, last, chain = cur.fetchone() or (0, None, None)
        return int(count), odd, (int(last), _bytes(chain)) if last is not None else None

    def _query(self, name: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        from psycopg.rows import tuple_row

        with self.datastore.get_connection() as conn:
            cur = conn.cursor(binary=True, row_factory=tuple_row)
            cur.execute(self.sql[name], params)
            rows: list[tuple[Any, ...]] = cur.fetchall()
            conn.commit()
            return rows

    def ensure_tables(self) -> None:
        """Create the seal tables if missing (tolerating a concurrent creator)."""
        import psycopg

        for attempt in range(3):
            try:
                with self.datastore.get_connection() as conn, conn.transaction():
                    conn.execute(self.sql["create_seals"])
                    conn.execute(self.sql["create_checkpoints"])
                return
            except (psycopg.errors.UniqueViolation, IntegrityError):
                # Two processes creating the table at once race on its row type.
                if attempt == 2:
                    raise

    def log_head(self) -> int:
        """Return the last position of the log (0 when empty)."""
        return int(self._query("log_head")[0][0] or 0)

    def read_log(self, after: int, limit: int, stop: int | None = None) -> list[LogRow]:
        """Return up to ``limit`` stored events after ``after`` (up to ``stop``), in order."""
        bound = stop if stop is not None else 2**63 - 1
        rows = self._query("read_log", (after, bound, limit))
        return [(r[0], _id_bytes(r[1]), r[2], r[3], _bytes(r[4])) for r in rows]

    def read_hashes(self, after: int, limit: int, stop: int | None = None) -> list[HashRow]:
        """Return (position, row hash) of up to ``limit`` events, hashed by the server."""
        bound = stop if stop is not None else 2**63 - 1
        rows = self._query("read_hashes", (after, bound, limit))
        return [(r[0], _bytes(r[1])) for r in rows]

    def read_seals(self, after: int, limit: int, stop: int | None = None) -> list[SealRow]:
        """Return up to ``limit`` seals after ``after`` (up to ``stop``), in order."""
        bound = stop if stop is not None else 2**63 - 1
        rows = self._query("read_seals", (after, bound, limit))
        return [(r[0], _bytes(r[1]), _bytes(r[2])) for r in rows]

    def seal_head(self) -> tuple[int, bytes, str] | None:
        """Return the last seal (position, chain hash, sealed_at), or None."""
        rows = self._query("seal_head")
        return None if not rows else (int(rows[0][0]), _bytes(rows[0][1]), str(rows[0][2]))

    def seal_at(self, position: int) -> SealRow | None:
        """Return the seal of ``position``, if any."""
        rows = self._query("seal_at", (position,))
        return None if not rows else (int(rows[0][0]), _bytes(rows[0][1]), _bytes(rows[0][2]))

    def last_seal_chain(self, position: int) -> bytes:
        """Return the chain of the last seal at or before ``position`` (GENESIS when none)."""
        rows = self._query("last_seal_chain", (position,))
        return GENESIS if not rows else _bytes(rows[0][0])

    def count_log(self, after: int, upper: int) -> int:
        """Return how many log rows sit in (after, upper]."""
        return int(self._query("count_log", (after, upper))[0][0])

    def count_seals(self) -> int:
        """Return how many positions are sealed."""
        return int(self._query("count_seals")[0][0])

    def insert_seals(self, rows: list[tuple[int, bytes, bytes, str]]) -> None:
        """COPY seals in one transaction (IntegrityError if a position is sealed already)."""
        import psycopg

        try:
            with self.datastore.get_connection() as conn, conn.transaction():
                cur = conn.cursor()
                with cur.copy(self.sql["copy_seals"]) as copy:
                    for row in rows:
                        copy.write_row(row)
        except psycopg.errors.UniqueViolation as exc:
            raise IntegrityError(str(exc)) from exc

    def positions_sealed_with(self, content: bytes) -> list[int]:
        """Return the sealed positions whose row hash is ``content`` (a full scan)."""
        return [int(r[0]) for r in self._query("sealed_with", (content,))]

    def insert_checkpoint(self, position: int, chain: bytes, created_at: str, doc: str) -> None:
        """Remember a checkpoint that was issued."""
        with self.datastore.get_connection() as conn, conn.transaction():
            conn.execute(self.sql["insert_checkpoint"], (position, chain, created_at, doc))

    def events_of(self, originator: UUID) -> list[tuple[int, int, str, bytes]]:
        """Return (position, version, topic, state) of one aggregate's events, in order."""
        rows = self._query("events_of", (originator,))
        return [(int(r[0]), int(r[1]), str(r[2]), _bytes(r[3])) for r in rows]


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else bytes(value)


def log_store(app: PracticeEvents, *, create: bool = True) -> LogStore:
    """Return the raw log access for the app's store (creating the seal tables)."""
    from eventsourcing.postgres import PostgresApplicationRecorder
    from eventsourcing.sqlite import SQLiteApplicationRecorder

    recorder = app.recorder
    store: LogStore
    if isinstance(recorder, PostgresApplicationRecorder):
        store = PostgresLogStore(app)
    elif isinstance(recorder, SQLiteApplicationRecorder):
        store = SqliteLogStore(app)
    else:  # pragma: no cover - the POPO recorder is not a supported store
        msg = f"audit needs a SQLite or PostgreSQL store, not {type(recorder).__name__}"
        raise ConfigurationError(msg)
    if create:
        store.ensure_tables()
    return store


# --- sealing ---------------------------------------------------------------------------------


@dataclass
class SealResult:
    """What a sealing pass did."""

    sealed: int = 0
    position: int = 0
    chain_hash: str = ""
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        """Events sealed per second."""
        return self.sealed / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Return the result as JSON-ready data."""
        return {**asdict(self), "events_per_second": round(self.rate, 1)}


class Sealer:
    """The sealing follower: extends the chain over events the seals do not cover yet."""

    def __init__(
        self,
        app: PracticeEvents,
        *,
        batch_size: int = PAGE,
        clock: Callable[[], datetime] | None = None,
        store: LogStore | None = None,
    ) -> None:
        self.store = store or log_store(app)
        self.batch_size = batch_size
        self.clock = clock or (lambda: datetime.now(UTC))

    def seal_once(self, stop: int | None = None) -> int:
        """Seal one batch after the current seal head; return how many events it sealed.

        A concurrent sealer that sealed the same positions first makes this
        batch fail on the primary key; it is dropped (the other one did the
        work) and 0 is returned.
        """
        head = self.store.seal_head()
        position, chain = (head[0], head[1]) if head else (0, GENESIS)
        rows = self.store.read_hashes(position, self.batch_size, stop)
        if not rows:
            return 0
        sealed_at = self.clock().isoformat()
        seals: list[tuple[int, bytes, bytes, str]] = []
        for pos, content in rows:
            chain = link(chain, pos, content)
            seals.append((pos, content, chain, sealed_at))
        try:
            self.store.insert_seals(seals)
        except IntegrityError:
            log.info("seal_batch_conflict", after=position)
            return 0
        return len(seals)

    def seal(
        self, stop: int | None = None, progress: Callable[[int], None] | None = None
    ) -> SealResult:
        """Seal everything up to the log head (or ``stop``) and return what was done."""
        started = time.perf_counter()
        result = SealResult()
        target = stop if stop is not None else self.store.log_head()
        while True:
            count = self.seal_once(target)
            if count:
                result.sealed += count
                if progress is not None:
                    progress(count)
                continue
            # Nothing sealed: either done, or a concurrent sealer won this batch.
            head = self.store.seal_head()
            if not self.store.read_hashes(head[0] if head else 0, 1, target):
                break
        head = self.store.seal_head()
        if head is not None:
            result.position = head[0]
            result.chain_hash = head[1].hex()
        result.seconds = time.perf_counter() - started
        return result

    def follow(
        self,
        should_stop: Callable[[], bool],
        *,
        interval: float = 0.5,
        wait: Callable[[float], Any] = time.sleep,
    ) -> int:
        """Seal new events as they arrive until ``should_stop()``; return how many it sealed."""
        total = 0
        while not should_stop():
            count = self.seal_once()
            total += count
            if count:
                log.debug("sealed", events=count)
            else:
                wait(interval)
        return total


# --- verification ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Break:
    """The first place where the log and its seals disagree."""

    position: int
    kind: BreakKind
    detail: str
    moved_from: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return the break as JSON-ready data."""
        out: dict[str, Any] = {"position": self.position, "kind": self.kind, "detail": self.detail}
        if self.moved_from is not None:
            out["moved_from"] = self.moved_from
        return out


@dataclass
class VerifyReport:
    """The outcome of :func:`verify`."""

    ok: bool = True
    events_checked: int = 0
    log_head: int = 0
    sealed_head: int = 0
    unsealed: int = 0
    chain_hash: str = ""
    first_break: Break | None = None
    seconds: float = 0.0
    checkpoint: dict[str, Any] | None = field(default=None)

    @property
    def rate(self) -> float:
        """Events verified per second."""
        return self.events_checked / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        return {
            "ok": self.ok,
            "events_checked": self.events_checked,
            "log_head": self.log_head,
            "sealed_head": self.sealed_head,
            "unsealed": self.unsealed,
            "chain_hash": self.chain_hash,
            "first_break": self.first_break.as_dict() if self.first_break else None,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.rate, 1),
            "checkpoint": self.checkpoint,
        }


LOWEST = -(2**63) + 1
"""Below every position: a verification walk also sees rows forged at positions ≤ 0."""


def _pages(
    read: Callable[[int, int, int | None], list[Any]],
    stop: int | None,
    page: int,
    after: int = 0,
) -> Iterator[Any]:
    """Yield rows of a keyset-paged reader in position order (after ``after``)."""
    while True:
        rows = read(after, page, stop)
        yield from rows
        if len(rows) < page:
            return
        after = rows[-1][0]


RANGE = 50_000
"""Positions per range that :func:`verify` checks on its own (one server query on PostgreSQL)."""

PARALLEL_FROM = 100_000
"""SQLite: a log with fewer sealed positions is walked in this process (workers cost more)."""


def default_workers() -> int:
    """The ranges :func:`verify` checks at once by default: the CPUs this process may use, ≤ 4."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        count = os.cpu_count() or 1
    return max(1, min(4, count))


def verify(
    app: PracticeEvents,
    *,
    store: LogStore | None = None,
    page: int = PAGE,
    progress: Callable[[int], None] | None = None,
    workers: int | None = None,
    range_size: int = RANGE,
    parallel_from: int = PARALLEL_FROM,
) -> VerifyReport:
    """Walk the log and the seals together and report the first break (see module docstring).

    The walk covers the log as it was when it started. Events after the last
    seal are counted as ``unsealed``: the follower has not reached them yet,
    which is not a break.

    The sealed part is checked in ranges of ``range_size`` positions,
    ``workers`` at once (default :func:`default_workers`): on PostgreSQL on
    that many connections (the server hashes), on a SQLite file in that many
    worker processes once at least ``parallel_from`` positions are sealed
    (smaller logs, in-memory stores and ``workers=1`` check the ranges here,
    one after another). Each range needs only the stored chain of the seal
    before it (see :mod:`practice_events.audit.ranges`); the lowest range's
    break is the walk's first break, and the unsealed tail is chained in
    order afterwards, so the report is the one :func:`verify_walk` gives.
    Progress is reported as ranges finish, in position order.
    """
    store = store or log_store(app)
    workers = default_workers() if workers is None else max(1, workers)
    started = time.perf_counter()
    report = VerifyReport(log_head=store.log_head())
    head = store.seal_head()
    report.sealed_head = head[0] if head else 0
    run: RunRange
    pool: Executor | None = None
    if isinstance(store, PostgresLogStore):
        run = functools.partial(_server_range, store, report)
        if workers > 1:
            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="verify")
    elif (
        isinstance(store, SqliteLogStore)
        and store.path is not None
        and workers > 1
        and report.sealed_head >= parallel_from
    ):
        path = str(Path(store.path).resolve())  # workers may not share this cwd
        run = functools.partial(
            sqlite_range, path, store.events, log_stop=report.log_head, page=page
        )
        pool = _process_pool(workers)
    elif isinstance(store, SqliteLogStore):
        run = functools.partial(
            check_range,
            store.read_raw,
            store.read_seals,
            log_stop=report.log_head,
            page=page,
            raw=True,
        )
    else:  # pragma: no cover - the two stores are above
        run = functools.partial(
            check_range, store.read_hashes, store.read_seals, log_stop=report.log_head, page=page
        )
    try:
        found, chain = _walk_ranges(
            store,
            report,
            run,
            pool,
            size=range_size,
            page=page,
            progress=progress,
            head_chain=head[1] if head else GENESIS,
        )
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return _finish(report, found, chain, started)


def verify_walk(
    app: PracticeEvents,
    *,
    store: LogStore | None = None,
    page: int = PAGE,
    progress: Callable[[int], None] | None = None,
) -> VerifyReport:
    """The sequential walk in this process, one position after another, on either store.

    The reference that :func:`verify`'s ranges agree with (the tests compare
    the two reports on every kind of tampering).
    """
    store = store or log_store(app)
    started = time.perf_counter()
    report = VerifyReport(log_head=store.log_head())
    head = store.seal_head()
    report.sealed_head = head[0] if head else 0
    found, chain = _walk(store, report, page, progress)
    return _finish(report, found, chain, started)


def _finish(
    report: VerifyReport, found: Break | None, chain: bytes, started: float
) -> VerifyReport:
    report.first_break = found
    report.ok = found is None
    report.chain_hash = chain.hex() if found is None else ""
    report.seconds = time.perf_counter() - started
    return report


RunRange = Callable[..., RangeOutcome]
"""Check one range: called with ``after=``, ``upper=``, ``previous=`` (see ranges.check_range)."""


def _process_pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes for SQLite ranges: forkserver (spawn where there is none), never fork.

    Like any such pool, it needs the caller's main module to be safe to import
    (the ``if __name__ == "__main__":`` guard).
    """
    import multiprocessing

    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method))


def _server_range(
    store: PostgresLogStore, report: VerifyReport, *, after: int, upper: int, previous: bytes
) -> RangeOutcome:
    """Check one range of PostgreSQL positions on the server (hashing and matching there)."""
    log_stop = report.log_head
    count, odd, _ = store.check_range(after, upper, report.sealed_head, previous, log_stop)
    if not odd:
        return count, None
    position, content, sealed, sealed_chain, expected = odd[0]
    raw: RawBreak
    if content is None:
        raw = (position, "deleted", None)
    elif sealed is None:
        raw = (position, "inserted", None)
    elif sealed_chain != expected:
        raw = (position, "seal_modified", None)
    else:
        raw = (position, "mismatch", content)
    # The rows before the break, as the sequential walk counts them.
    return store.count_log(after, min(position - 1, log_stop)), raw


def _bounds(sealed_head: int, size: int) -> list[int]:
    """Range boundaries over the sealed positions: (LOWEST, 0], then ``size`` at a time."""
    inner = range(size, sealed_head, size) if sealed_head > 0 else range(0)
    return sorted({LOWEST, min(0, sealed_head), *inner, sealed_head})


def _walk_ranges(
    store: LogStore,
    report: VerifyReport,
    run: RunRange,
    pool: Executor | None,
    *,
    size: int,
    page: int,
    progress: Callable[[int], None] | None,
    head_chain: bytes,
) -> tuple[Break | None, bytes]:
    """Check the sealed ranges (on ``pool``, else here, in order), take the lowest break.

    Then chain the unsealed tail after the sealed head, in order, from the
    sealed head's chain ``head_chain``.
    """
    outcomes: list[Callable[[], RangeOutcome]] = []
    for after, upper in itertools.pairwise(_bounds(report.sealed_head, max(1, size))):
        previous = store.last_seal_chain(after)
        if pool is None:
            outcomes.append(functools.partial(run, after=after, upper=upper, previous=previous))
        else:
            outcomes.append(pool.submit(run, after=after, upper=upper, previous=previous).result)
    for outcome in outcomes:
        checked, raw = outcome()
        report.events_checked += checked
        if progress is not None and checked:
            progress(checked)
        if raw is not None:
            return _break_of(store, raw), GENESIS
    chain = head_chain
    counted = 0
    for position, content in _pages(store.read_hashes, report.log_head, page, report.sealed_head):
        chain = link(chain, position, content)
        counted += 1
        if progress is not None and counted % page == 0:
            progress(page)
    if progress is not None and counted % page:
        progress(counted % page)
    report.unsealed += counted
    report.events_checked += counted
    return None, chain


_BREAKS: dict[str, tuple[BreakKind, str]] = {
    "deleted": ("deleted", "a sealed position has no event in the log"),
    "inserted": ("inserted", "an event sits at a position that was never sealed"),
    "seal_modified": ("seal_modified", "the seals table is not a hash chain here"),
}


def _break_of(store: LogStore, raw: RawBreak) -> Break:
    """The :class:`Break` of a range's raw break (a mismatch is classified here)."""
    position, kind, content = raw
    if kind == "mismatch" and content is not None:
        return _classify(store, position, content)
    found, detail = _BREAKS[kind]
    return Break(position, found, detail)


def _walk(
    store: LogStore,
    report: VerifyReport,
    page: int,
    progress: Callable[[int], None] | None,
) -> tuple[Break | None, bytes]:
    """Merge the log and the seals by position; return the first break and the chain."""
    sealed_head = report.sealed_head
    logs = _pages(store.read_hashes, report.log_head, page, LOWEST)
    seals = _pages(store.read_seals, sealed_head, page, LOWEST)
    row = next(logs, None)
    seal = next(seals, None)
    chain = GENESIS  # the chain over the log's own bytes
    seal_chain = GENESIS  # the previous chain value recorded in the seals
    checked = reported = 0
    found: Break | None = None
    while row is not None or seal is not None:
        if seal is not None and (row is None or seal[0] < row[0]):
            found = Break(seal[0], "deleted", "a sealed position has no event in the log")
            break
        assert row is not None
        pos, content = row
        if seal is None or seal[0] > pos:
            if pos <= sealed_head:
                found = Break(pos, "inserted", "an event sits at a position that was never sealed")
                break
            chain = link(chain, pos, content)
            report.unsealed += 1
        else:
            _, sealed_content, sealed_chain = seal
            if sealed_chain != link(seal_chain, pos, sealed_content):
                found = Break(pos, "seal_modified", "the seals table is not a hash chain here")
                break
            if content != sealed_content:
                found = _classify(store, pos, content)
                break
            chain = seal_chain = sealed_chain
            seal = next(seals, None)
        checked += 1
        row = next(logs, None)
        if progress is not None and checked - reported >= page:
            progress(checked - reported)
            reported = checked
    if progress is not None and checked > reported:
        progress(checked - reported)
    report.events_checked = checked
    return found, chain


def _classify(store: LogStore, position: int, content: bytes) -> Break:
    """Tell a changed row from a row moved from another position."""
    elsewhere = [p for p in store.positions_sealed_with(content) if p != position]
    if elsewhere:
        return Break(
            position,
            "reordered",
            f"the event now at {position} was sealed at position {elsewhere[0]}",
            moved_from=elsewhere[0],
        )
    return Break(position, "modified", "the stored event differs from what was sealed")


def chain_at(
    store: LogStore,
    position: int,
    *,
    page: int = PAGE,
    progress: Callable[[int], None] | None = None,
) -> tuple[bytes, int, int]:
    """Recompute the chain from the log's bytes alone up to ``position``.

    Returns (chain value, last position seen, events hashed). The seals are
    not read: this is what a third party holding a checkpoint relies on.
    """
    chain = GENESIS
    last = 0
    count = 0
    for pos, content in _pages(store.read_hashes, position, page, LOWEST):
        chain = link(chain, pos, content)
        last = pos
        count += 1
        if progress is not None and count % page == 0:
            progress(page)
    if progress is not None and count % page:
        progress(count % page)
    return chain, last, count


# --- signing and checkpoints ------------------------------------------------------------------


class Signer:
    """A signing key: Ed25519 (private key PEM) or HMAC-SHA-256 (shared secret).

    Key files: an Ed25519 private key in PEM (``practice-events audit keygen``
    writes one), or one line ``hmac-sha256:<base64 secret>``.
    """

    def __init__(self, algorithm: str, secret: Any, public: bytes | None) -> None:
        self.algorithm = algorithm
        self._secret = secret
        self.public_key = public

    @property
    def key_id(self) -> str:
        """A short fingerprint naming the key (of the public key, or of the secret)."""
        material = self.public_key if self.public_key is not None else self._secret
        return hashlib.sha256(material).hexdigest()[:16]

    @classmethod
    def from_file(cls, path: Path) -> Signer:
        """Load a key file (see the class docstring)."""
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            msg = f"cannot read signing key {path}: {exc.strerror or exc}"
            raise ConfigurationError(msg) from None
        return cls.from_text(text, where=str(path))

    @classmethod
    def from_text(cls, text: str, *, where: str = "key") -> Signer:
        """Parse key text (PEM Ed25519 private key or ``hmac-sha256:<base64>``)."""
        if text.startswith("hmac-sha256:"):
            try:
                secret = base64.b64decode(text.split(":", 1)[1], validate=True)
            except ValueError:
                msg = f"{where}: the HMAC secret is not valid base64"
                raise ConfigurationError(msg) from None
            if len(secret) < 16:
                msg = f"{where}: the HMAC secret must be at least 16 bytes"
                raise ConfigurationError(msg)
            return cls("hmac-sha256", secret, None)
        from Crypto.PublicKey import ECC

        try:
            key = ECC.import_key(text)
        except (ValueError, IndexError, TypeError):
            msg = f"{where}: not an Ed25519 private key in PEM nor an hmac-sha256: secret"
            raise ConfigurationError(msg) from None
        if key.curve != "Ed25519" or not key.has_private():
            msg = f"{where}: the key must be an Ed25519 private key"
            raise ConfigurationError(msg)
        return cls("ed25519", key, key.public_key().export_key(format="raw"))

    @staticmethod
    def generate_ed25519() -> str:
        """Return a new Ed25519 private key as PEM text."""
        from Crypto.PublicKey import ECC

        return str(ECC.generate(curve="ed25519").export_key(format="PEM"))

    @staticmethod
    def generate_hmac() -> str:
        """Return a new 32-byte HMAC secret as key-file text."""
        import secrets

        return "hmac-sha256:" + base64.b64encode(secrets.token_bytes(32)).decode()

    def sign(self, message: bytes) -> bytes:
        """Return the signature of ``message``."""
        if self.algorithm == "hmac-sha256":
            return hmac.new(self._secret, message, hashlib.sha256).digest()
        from Crypto.Signature import eddsa

        return bytes(eddsa.new(self._secret, "rfc8032").sign(message))


def _signed_bytes(doc: Mapping[str, Any]) -> bytes:
    """The canonical bytes a checkpoint's signature covers (every field but ``signature``)."""
    body = {k: v for k, v in doc.items() if k != "signature"}
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def make_checkpoint(
    app: PracticeEvents,
    signer: Signer,
    *,
    now: datetime | None = None,
    store: LogStore | None = None,
    label: str | None = None,
) -> dict[str, Any]:
    """Seal up to the log head, then sign the chain head into a checkpoint document.

    The document is kept in ``seal_checkpoints`` too, so operators can list
    what was handed out.
    """
    store = store or log_store(app)
    Sealer(app, store=store).seal()
    head = store.seal_head()
    if head is None:
        msg = "the log is empty: there is nothing to checkpoint yet"
        raise PracticeEventsError(msg, code="NOTHING_TO_CHECKPOINT")
    position, chain, sealed_at = head
    created = (now or datetime.now(UTC)).isoformat()
    doc: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "position": position,
        "chain_hash": chain.hex(),
        "sealed_events": store.count_seals(),
        "sealed_at": sealed_at,
        "created_at": created,
        "algorithm": signer.algorithm,
        "key_id": signer.key_id,
        "chain_definition": (
            "chain(p) = SHA-256(chain(prev) || p as 8-byte big-endian || row_hash); "
            "row_hash = SHA-256(originator_id 16 bytes || version 8 bytes || "
            "len(topic) 2 bytes || topic || state); chain(0) = 32 zero bytes"
        ),
    }
    if label:
        doc["label"] = label
    if signer.public_key is not None:
        doc["public_key"] = signer.public_key.hex()
    doc["signature"] = signer.sign(_signed_bytes(doc)).hex()
    store.insert_checkpoint(position, chain, created, orjson.dumps(doc).decode())
    return doc


def check_signature(doc: Mapping[str, Any], *, secret: Signer | None = None) -> str | None:
    """Return None if the document's signature is valid, else the reason it is not.

    Ed25519 documents carry their public key (compare its ``key_id`` with
    the one you were given out of band); HMAC documents need ``secret``.
    """
    try:
        signature = bytes.fromhex(str(doc["signature"]))
        algorithm = doc["algorithm"]
    except (KeyError, ValueError):
        return "the document has no valid signature field"
    message = _signed_bytes(doc)
    if algorithm == "hmac-sha256":
        if secret is None or secret.algorithm != "hmac-sha256":
            return "an HMAC checkpoint needs the shared secret (--key FILE) to be checked"
        expected = secret.sign(message)
        return None if hmac.compare_digest(expected, signature) else "bad HMAC signature"
    if algorithm == "ed25519":
        return _check_ed25519(doc, message, signature, secret)
    return f"unknown signature algorithm {algorithm!r}"


def _check_ed25519(
    doc: Mapping[str, Any], message: bytes, signature: bytes, secret: Signer | None
) -> str | None:
    from Crypto.Signature import eddsa

    try:
        public = bytes.fromhex(str(doc["public_key"]))
        key = eddsa.import_public_key(public)
        eddsa.new(key, "rfc8032").verify(message, signature)
    except (KeyError, ValueError):
        return "bad Ed25519 signature"
    if hashlib.sha256(public).hexdigest()[:16] != doc.get("key_id"):
        return "the key_id does not match the public key"
    if secret is not None and secret.public_key is not None and secret.public_key != public:
        return "the checkpoint was signed by another key than the one given"
    return None


def verify_checkpoint(
    app: PracticeEvents,
    doc: Mapping[str, Any],
    *,
    secret: Signer | None = None,
    store: LogStore | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Check a checkpoint's signature and that the log still hashes to its chain head.

    The chain is recomputed from the log's own bytes (the seals are not
    trusted), so a rewrite of events *and* seals before the checkpoint's
    position is found.
    """
    if doc.get("format") != CHECKPOINT_FORMAT:
        return {"ok": False, "reason": f"not a {CHECKPOINT_FORMAT} document"}
    problem = check_signature(doc, secret=secret)
    position = int(doc.get("position", 0))
    out: dict[str, Any] = {
        "position": position,
        "key_id": doc.get("key_id"),
        "created_at": doc.get("created_at"),
        "signature_ok": problem is None,
    }
    if problem is not None:
        return {**out, "ok": False, "reason": problem}
    store = store or log_store(app)
    chain, last, count = chain_at(store, position, progress=progress)
    out["events_hashed"] = count
    if last != position:
        return {
            **out,
            "ok": False,
            "reason": f"the log has no event at the checkpoint's position {position} "
            f"(last event at or before it: {last})",
        }
    if chain.hex() != doc.get("chain_hash"):
        return {
            **out,
            "ok": False,
            "reason": f"the log up to position {position} no longer hashes to the signed "
            "chain head: it was rewritten",
        }
    return {**out, "ok": True, "reason": "the log up to the checkpoint is unchanged"}
