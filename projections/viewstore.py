"""Where read models live: a SQLite file or a PostgreSQL schema, behind one small API.

Projections write portable SQL with ``?`` placeholders; :class:`ViewStore`
rewrites them to ``%s`` for PostgreSQL. Each projection batch is one
transaction that also moves the projection's tracking position, so a view
and its position can never disagree.

Where views are kept, by default:

* SQLite store ``sqlite:///var/pe.db`` -> views in ``var/pe.views.db`` (a
  separate file, so projection writes never wait for ingest writes);
* PostgreSQL -> schema ``practice_views`` of the same database (``<schema>_views``
  for a store in a schema of its own, ``?schema=NAME``).

On SQLite every write transaction first takes an exclusive ``flock`` on
``<views file>.lock``, then SQLite's own write lock. SQLite's busy handler
polls (up to 100 ms between attempts), so a runner that commits batch after
batch back to back (a slow projection, a long catch-up) can starve the
writers of other threads and processes until their 30 s timeout ends in
"database is locked". The kernel wakes ``flock`` waiters as soon as the lock
is released, so each waiting writer gets its turn after at most one batch
of the busy one.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlparse

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: SQLite's busy handler alone
    fcntl = None  # type: ignore[assignment]

_PLACEHOLDER = re.compile(r"\?")


class Cursor(Protocol):
    """The DB-API cursor subset that projections use."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement."""

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any:
        """Run one statement for many parameter rows."""

    def fetchall(self) -> list[Any]:
        """Return all rows of the last query."""

    def fetchone(self) -> Any:
        """Return one row of the last query."""


class Tx:
    """A transaction on the view store: portable ``?`` SQL, one commit."""

    def __init__(self, cursor: Any, dialect: str) -> None:
        self.cursor = cursor
        self.dialect = dialect

    def sql(self, statement: str) -> str:
        """Adapt a portable statement to this dialect."""
        if self.dialect == "postgres":
            return _PLACEHOLDER.sub("%s", statement.replace("%", "%%"))
        return statement

    def execute(self, statement: str, params: Sequence[Any] = ()) -> Tx:
        """Run one statement."""
        self.cursor.execute(self.sql(statement), tuple(params))
        return self

    def executemany(self, statement: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for many rows (nothing to do for no rows)."""
        if rows:
            self.cursor.executemany(self.sql(statement), [tuple(r) for r in rows])

    def query(self, statement: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run a query and return rows as dicts."""
        self.cursor.execute(self.sql(statement), tuple(params))
        rows = self.cursor.fetchall()
        if not rows:
            return []
        if self.dialect == "sqlite":
            names = [d[0] for d in self.cursor.description]
            return [dict(zip(names, row, strict=True)) for row in rows]
        return [dict(row) for row in rows]

    def scalar(self, statement: str, params: Sequence[Any] = ()) -> Any:
        """Run a query returning one value (or None)."""
        rows = self.query(statement, params)
        if not rows:
            return None
        return next(iter(rows[0].values()))


class ViewStore:
    """Connections to the view database, with tracking of projection positions."""

    TRACKING = "projection_tracking"

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = urlparse(url)
        self._local = threading.local()
        self._pg_pool: Any = None
        if parsed.scheme == "sqlite":
            self.dialect = "sqlite"
            path = unquote(parsed.path)
            self.path = path[1:] if path.startswith("/") else path
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self.schema = ""
        elif parsed.scheme in ("postgresql", "postgres"):
            self.dialect = "postgres"
            query = parse_qs(parsed.query)
            self.schema = query.get("views_schema", ["practice_views"])[0]
            self.conninfo: dict[str, Any] = {
                "host": parsed.hostname or "127.0.0.1",
                "port": parsed.port or 5432,
                "user": unquote(parsed.username or "postgres"),
                "password": unquote(parsed.password or ""),
                "dbname": unquote(parsed.path.strip("/")),
            }
        else:  # pragma: no cover - validated by settings
            msg = f"unsupported view store {url!r}"
            raise ValueError(msg)
        self._ensure_tracking()

    # -- connections -------------------------------------------------------------------

    def _sqlite(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def _pool(self) -> Any:
        if self._pg_pool is None:
            from psycopg.rows import dict_row
            from psycopg_pool import ConnectionPool

            schema = self.schema

            def configure(conn: Any) -> None:
                conn.execute(f'SET search_path TO "{schema}", public')
                conn.commit()

            self._pg_pool = ConnectionPool(
                kwargs={**self.conninfo, "row_factory": dict_row},
                min_size=1,
                max_size=8,
                configure=configure,
                open=True,
                timeout=30,
            )
        return self._pg_pool

    def _write_lock(self) -> int | None:
        """This thread's descriptor of ``<views file>.lock`` (None in memory or off POSIX).

        One descriptor per thread: ``flock`` locks belong to an open file
        description, so threads of one process exclude each other too.
        """
        if fcntl is None or self.path == ":memory:":
            return None
        fd: int | None = getattr(self._local, "lock_fd", None)
        if fd is None:
            fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            self._local.lock_fd = fd
        return fd

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """Open a read-write transaction; commit on success, roll back on error."""
        if self.dialect == "sqlite":
            conn = self._sqlite()
            lock = self._write_lock()
            if lock is not None:
                fcntl.flock(lock, fcntl.LOCK_EX)  # fair turns between writers (module doc)
            cur = conn.cursor()
            try:
                cur.execute("BEGIN IMMEDIATE")
                try:
                    yield Tx(cur, "sqlite")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                else:
                    conn.execute("COMMIT")
            finally:
                cur.close()
                if lock is not None:
                    fcntl.flock(lock, fcntl.LOCK_UN)
            return
        with self._pool().connection() as conn, conn.transaction(), conn.cursor() as cur:
            yield Tx(cur, "postgres")

    @contextmanager
    def read(self) -> Iterator[Tx]:
        """Open a read-only snapshot (for queries: one consistent view)."""
        if self.dialect == "sqlite":
            conn = self._sqlite()
            cur = conn.cursor()
            cur.execute("BEGIN")
            try:
                yield Tx(cur, "sqlite")
            finally:
                conn.execute("COMMIT")
                cur.close()
            return
        with self._pool().connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield Tx(cur, "postgres")

    def close(self) -> None:
        """Close pooled connections."""
        if self._pg_pool is not None:
            self._pg_pool.close()
            self._pg_pool = None
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
        lock_fd = getattr(self._local, "lock_fd", None)
        if lock_fd is not None:
            os.close(lock_fd)
            self._local.lock_fd = None

    # -- tracking ------------------------------------------------------------------------

    def _ensure_tracking(self) -> None:
        if self.dialect == "postgres":
            import psycopg

            with psycopg.connect(**self.conninfo, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        with self.transaction() as tx:
            tx.execute(
                f"CREATE TABLE IF NOT EXISTS {self.TRACKING} ("
                "name TEXT PRIMARY KEY, position BIGINT NOT NULL, updated_at TEXT NOT NULL, "
                "failed_at BIGINT, error TEXT)"
            )

    def position(self, name: str) -> int:
        """Return the last log position a projection has processed (0 if none)."""
        with self.read() as tx:
            value = tx.scalar(f"SELECT position FROM {self.TRACKING} WHERE name = ?", [name])
        return int(value or 0)

    def positions(self) -> dict[str, dict[str, Any]]:
        """Return every projection's tracking row."""
        with self.read() as tx:
            rows = tx.query(f"SELECT * FROM {self.TRACKING} ORDER BY name")
        return {r["name"]: r for r in rows}

    def lock_position(self, tx: Tx, name: str) -> int:
        """Read a projection's position inside ``tx``, locking it against other writers.

        Two runners of the same projection (two processes, or a rebuild swapping
        tables) therefore never apply the same events twice: each compares the
        position it started from with the locked one before writing.
        """
        lock = " FOR UPDATE" if self.dialect == "postgres" else ""
        value = tx.scalar(f"SELECT position FROM {self.TRACKING} WHERE name = ?{lock}", [name])
        return int(value or 0)

    def set_position(self, tx: Tx, name: str, position: int, now: str) -> None:
        """Move a projection's position inside the caller's transaction."""
        tx.execute(
            f"INSERT INTO {self.TRACKING} (name, position, updated_at, failed_at, error) "
            "VALUES (?, ?, ?, NULL, NULL) ON CONFLICT (name) DO UPDATE SET "
            "position = excluded.position, updated_at = excluded.updated_at, "
            "failed_at = NULL, error = NULL",
            [name, position, now],
        )

    def record_failure(self, name: str, position: int, error: str) -> None:
        """Record that a projection stopped at an event it could not process."""
        with self.transaction() as tx:
            tx.execute(
                f"UPDATE {self.TRACKING} SET failed_at = ?, error = ? WHERE name = ?",
                [position, error[:2000], name],
            )

    def table_exists(self, tx: Tx, table: str) -> bool:
        """Tell whether a table exists in the view store."""
        if self.dialect == "sqlite":
            return bool(
                tx.scalar("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", [table])
            )
        return bool(
            tx.scalar(
                "SELECT 1 FROM information_schema.tables WHERE table_schema=? AND table_name=?",
                [self.schema, table],
            )
        )


def default_view_url(store_url: str) -> str:
    """Derive the view store URL from the event store URL (see the module docstring).

    A store in its own PostgreSQL schema (``?schema=wly``, one per shard of a
    deployment sharded by district) keeps its views in ``<schema>_views``, so
    that the shards of one database never share, and overwrite, each other's
    views.
    """
    parsed = urlparse(store_url)
    if parsed.scheme == "sqlite":
        path = parsed.path
        base = path[:-3] if path.endswith(".db") else path
        return f"sqlite://{base}.views.db"
    query = parse_qs(parsed.query)
    schema = query.get("schema", ["public"])[0]
    if schema != "public" and "views_schema" not in query:
        extra = f"views_schema={schema}_views"
        return parsed._replace(query=f"{parsed.query}&{extra}" if parsed.query else extra).geturl()
    return store_url
