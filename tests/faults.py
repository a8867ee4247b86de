"""Fault injection and the two checks every fault test ends with.

The faults are real, injected from outside the code under test:

* :class:`DatabaseOutage` makes one PostgreSQL database unreachable, as a
  restart does to its clients: every session of that database is terminated
  (``pg_terminate_backend``, the same ``57P01`` error a fast shutdown sends)
  and new connections are refused (``ALLOW_CONNECTIONS false``) until
  :meth:`~DatabaseOutage.end`. Unlike ``pg_ctl restart`` it leaves the other
  databases of the cluster (other test sessions) alone.
* :class:`TableLock` holds a lock on the event table from another session,
  so that writers time out on their own lock (``lock_timeout``).
* :class:`DiskQuota` caps an open SQLite store at its current size with
  ``PRAGMA max_page_count`` on every connection of the store's pool: an
  insert that needs a new page then fails with ``SQLITE_FULL`` ("database or
  disk is full"), exactly as on a full disk, until the cap is raised.

The checks:

* :func:`assert_views_equal_rebuild` rebuilds every projection from the log
  into a scratch view store and compares each table with the live view, row
  for row (in SQL, so that large views are not loaded into memory);
* the accounting equation, produced = stored + duplicates + dead-lettered, is
  asserted by each test with the counts it knows in advance.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from tests.conftest import PG_HOST, PG_PORT, PG_USER

UNCAPPED_PAGES = 1_073_741_823
"""SQLite's default ``max_page_count``."""


def _admin() -> Any:
    import psycopg

    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True
    )


def database_name(url: str) -> str:
    """The database a ``postgresql://`` store URL names."""
    return unquote(urlparse(url).path.strip("/"))


class DatabaseOutage:
    """One PostgreSQL database unreachable for a while (see the module docstring)."""

    def __init__(self, store_url: str) -> None:
        self.name = database_name(store_url)
        self.terminated = 0

    def begin(self) -> None:
        """Refuse new connections, then terminate every session of the database."""
        with _admin() as conn:
            conn.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false')
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                [self.name],
            ).fetchall()
        self.terminated += sum(1 for (done,) in rows if done)

    def end(self) -> None:
        """Accept connections again."""
        with _admin() as conn:
            conn.execute(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')


class TableLock:
    """A lock on the event table held by another session until :meth:`release`.

    ``EXCLUSIVE`` mode conflicts with the ``EXCLUSIVE`` lock every insert
    transaction of the store takes (which serialises the log) but not with
    reads, so writers wait for it (and give up after their ``lock_timeout``)
    while queries and readiness checks go on.
    """

    def __init__(self, store_url: str, table: str = "practiceevents_events") -> None:
        import psycopg

        self.conn = psycopg.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=database_name(store_url)
        )
        self.conn.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")

    def release(self) -> None:
        """End the transaction that holds the lock."""
        self.conn.rollback()
        self.conn.close()


class DiskQuota:
    """Fills an open SQLite store's "disk": inserts that need a new page fail with SQLITE_FULL.

    SQLite's ``max_page_count`` belongs to each connection, so the cap is set
    on every connection the store's pool holds and on each one it opens later
    (this reaches into eventsourcing 9.5's ``SQLiteConnectionPool``: its idle
    and in-use connections and its connection factory). Rows that fit in the
    free space of pages already allocated still go in, as on a real disk with
    a little room left.
    """

    def __init__(self, app: Any) -> None:
        self.pool = app.recorder.datastore.pool
        self.path = str(app.recorder.datastore.pool.db_name)
        self.limit = UNCAPPED_PAGES
        self._lock = threading.Lock()
        create: Callable[[], Any] = self.pool._create_connection

        def capped() -> Any:
            connection = create()
            with self._lock:
                self._apply(connection, self.limit)
            return connection

        self.pool._create_connection = capped

    def pages(self) -> int:
        """The store's size in pages, as a fresh connection sees it (the WAL included)."""
        with sqlite3.connect(self.path) as conn:
            return int(conn.execute("PRAGMA page_count").fetchone()[0])

    def fill(self) -> None:
        """Cap every connection at the current size: the disk is now full."""
        self._set(self.pages())

    def free(self) -> None:
        """Lift the cap: space was freed."""
        self._set(UNCAPPED_PAGES)

    def _set(self, limit: int) -> None:
        with self._lock:
            self.limit = limit
            for connection in self._connections():
                self._apply(connection, limit)

    def _connections(self) -> list[Any]:
        return [*self.pool._pool, *self.pool._in_use.values()]

    @staticmethod
    def _apply(connection: Any, limit: int) -> None:
        connection._sqlite_conn.execute(f"PRAGMA max_page_count = {int(limit)}")


# -- projections = rebuild -------------------------------------------------------------------


def scratch_views_url(store_url: str, directory: Path) -> str:
    """A fresh, empty view store beside the test's stores, for a rebuild to compare with."""
    tag = uuid.uuid4().hex[:8]
    if store_url.startswith("sqlite"):
        return f"sqlite:///{directory / f'rebuilt-{tag}.views.db'}"
    separator = "&" if "?" in store_url else "?"
    return f"{store_url}{separator}views_schema=rebuilt_{tag}"


def assert_views_equal_rebuild(
    store_url: str,
    directory: Path,
    *,
    names: Sequence[str] | None = None,
    views_url: str | None = None,
    jobs: int = 1,
) -> dict[str, int]:
    """Rebuild the projections from the log into a scratch store; compare each table with the live.

    Returns the number of rows compared per projection. The live views must
    have caught up with the log (the caller stops their runner first).
    """
    from practice_events.config import Settings
    from projections.cli import rebuild_projections
    from projections.registry import all_projections
    from projections.viewstore import ViewStore, default_view_url

    settings = Settings(store=store_url)
    projections = [p for p in all_projections(settings) if names is None or p.NAME in names]
    live_url = views_url or default_view_url(store_url)
    scratch_url = scratch_views_url(store_url, directory)
    chosen = [p.NAME for p in projections]
    rebuild_projections(settings, chosen, views_url=scratch_url, batch_size=5000, jobs=jobs)
    live, scratch = ViewStore(live_url), ViewStore(scratch_url)
    compared: dict[str, int] = {}
    try:
        positions = live.positions()
        head = scratch.positions()
        for projection in projections:
            assert int(positions[projection.NAME]["position"]) == int(
                head[projection.NAME]["position"]
            ), f"{projection.NAME}: the live view is not at the log head"
            rows = 0
            for physical in projection.table_names().values():
                rows += _assert_same_table(live, scratch, physical)
            compared[projection.NAME] = rows
    finally:
        if scratch.dialect == "postgres":
            with scratch.transaction() as tx:
                tx.execute(f'DROP SCHEMA IF EXISTS "{scratch.schema}" CASCADE')
        live.close()
        scratch.close()
    return compared


def _assert_same_table(live: Any, scratch: Any, table: str) -> int:
    """Compare one table of two view stores in SQL; return its row count."""
    if live.dialect == "sqlite":
        conn = sqlite3.connect(live.path)
        try:
            conn.execute("ATTACH DATABASE ? AS rebuilt", [scratch.path])
            count = _compare(conn.execute, f"main.{table}", f"rebuilt.{table}", table)
        finally:
            conn.close()
        return count
    with live.transaction() as tx:

        def run(sql: str) -> Any:
            rows = tx.query(sql)
            return _Rows([tuple(r.values()) for r in rows])

        return _compare(run, f'"{live.schema}".{table}', f'"{scratch.schema}".{table}', table)


class _Rows:
    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows = rows

    def fetchone(self) -> tuple[Any, ...]:
        return self.rows[0]


def _compare(execute: Callable[..., Any], left: str, right: str, table: str) -> int:
    count_left = int(execute(f"SELECT COUNT(*) FROM {left}").fetchone()[0])
    count_right = int(execute(f"SELECT COUNT(*) FROM {right}").fetchone()[0])
    assert count_left == count_right, f"{table}: {count_left} live rows, {count_right} rebuilt"
    for a, b in ((left, right), (right, left)):
        extra = int(
            execute(
                f"SELECT COUNT(*) FROM (SELECT * FROM {a} EXCEPT SELECT * FROM {b}) AS d"
            ).fetchone()[0]
        )
        assert extra == 0, f"{table}: {extra} rows of {a} are not in {b}"
    return count_left
