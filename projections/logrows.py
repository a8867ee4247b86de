"""Pages of the notification log as plain rows, read with our own SQL (SQLite and PostgreSQL).

Projections read the log in pages of a few thousand events, always in
position order, usually for a subset of the event types. eventsourcing's
``select_notifications`` answers that, but at a cost that grew with the log:

* **The plan.** ``topic IN (...) ... ORDER BY position LIMIT n`` lets both
  databases use the topic index: SQLite collects every matching entry up
  to the end of the range and sorts them in a temporary B-tree, PostgreSQL
  a bitmap heap scan of every matching row of the range followed by a
  top-N sort. Each page therefore read all of the rest of the log, and a
  rebuild of a projection that wants most event types (the ledger: 80 %)
  was quadratic in the log's length. Here the topic condition cannot use
  the index (``+topic`` on SQLite; ``topic || ''`` on PostgreSQL), so both
  walk the primary key from the page's start and stop after ``n`` matches:
  a rebuild reads each row once.
* **The rows.** The library builds a ``Notification`` per row and converts
  every originator id to a ``UUID`` (SQLite stores hex text). Here rows are
  plain tuples ``(position, originator id, version, topic, state)`` with the
  id as the store returns it (text on SQLite, a ``UUID`` on PostgreSQL);
  :class:`~projections.base.LoggedEvent` converts it only when asked.
  PostgreSQL sends them in binary (``bytea`` as raw bytes, not hex text).

The state is returned as stored (encrypted and compressed when the
application's cipher or compressor are on); :class:`~projections.runner.LogReader`
decodes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from eventsourcing.persistence import InterfaceError, OperationalError
from eventsourcing.utils import retry

if TYPE_CHECKING:
    from psycopg.sql import Composed

LogRow = tuple[int, UUID | str, int, str, bytes]
"""(position, originator id, originator version, topic, stored state)."""


class LogRows(Protocol):
    """Reads pages of the notification log (see the module docstring)."""

    def page(self, after: int, limit: int, stop: int | None, topics: Sequence[str]) -> list[LogRow]:
        """Return up to ``limit`` rows after ``after`` (up to ``stop``) of ``topics`` (all: ())."""


class SqliteLogRows:
    """Pages of a SQLite store's ``stored_events`` (positions are rowids)."""

    def __init__(self, recorder: Any) -> None:
        self.datastore = recorder.datastore
        self.table = str(recorder.events_table_name)

    def query(
        self, after: int, limit: int, stop: int | None, topics: Sequence[str]
    ) -> tuple[str, list[Any]]:
        """Return the statement and parameters of a page (see :meth:`page`)."""
        statement = (
            "SELECT rowid, originator_id, originator_version, topic, state "
            f"FROM {self.table} WHERE rowid > ? AND rowid <= ?"
        )
        params: list[Any] = [after, stop if stop is not None else 2**63 - 1]
        if topics:
            # "+topic": a condition the topic index cannot serve (module docstring).
            statement += f" AND +topic IN ({', '.join('?' for _ in topics)})"
            params.extend(topics)
        statement += " ORDER BY rowid LIMIT ?"
        params.append(limit)
        return statement, params

    def page(self, after: int, limit: int, stop: int | None, topics: Sequence[str]) -> list[LogRow]:
        """Return up to ``limit`` rows after ``after`` (up to ``stop``) of ``topics``."""
        statement, params = self.query(after, limit, stop, topics)
        with self.datastore.transaction(commit=False) as c:
            cursor = c.sqlite_cursor
            cursor.row_factory = None  # plain tuples: sqlite3.Row costs more
            cursor.execute(statement, params)
            rows: list[LogRow] = cursor.fetchall()
        return rows


class PostgresLogRows:
    """Pages of a PostgreSQL store's events table (positions are ``notification_id``)."""

    def __init__(self, recorder: Any) -> None:
        from psycopg.sql import SQL, Identifier

        self.datastore = recorder.datastore
        table = SQL("{0}.{1}").format(
            Identifier(self.datastore.schema), Identifier(recorder.events_table_name)
        )
        head = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state FROM {0} "
            "WHERE notification_id > %s AND notification_id <= %s"
        ).format(table)
        tail = SQL(" ORDER BY notification_id LIMIT %s")
        self.all_topics = head + tail
        # "topic || ''": a condition the topic index cannot serve (module docstring).
        self.some_topics = head + SQL(" AND topic || '' = ANY(%s)") + tail
        self.walk_only = SQL(  # SET LOCAL of both, in one statement (one round trip)
            "SELECT set_config('enable_seqscan', 'off', true), "
            "set_config('enable_bitmapscan', 'off', true)"
        )

    def query(
        self, after: int, limit: int, stop: int | None, topics: Sequence[str]
    ) -> tuple[Composed, tuple[Any, ...]]:
        """Return the statement and parameters of a page (run after :attr:`walk_only`)."""
        bound = stop if stop is not None else 2**63 - 1
        if topics:
            return self.some_topics, (after, bound, list(topics), limit)
        return self.all_topics, (after, bound, limit)

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def page(self, after: int, limit: int, stop: int | None, topics: Sequence[str]) -> list[LogRow]:
        """Return up to ``limit`` rows after ``after`` (up to ``stop``) of ``topics``.

        Retried like the library's ``select_notifications`` (ten attempts,
        0.2 s apart) when the connection fails.
        """
        from psycopg.rows import tuple_row

        statement, params = self.query(after, limit, stop, topics)
        with self.datastore.get_connection() as conn, conn.transaction():
            cursor = conn.cursor(binary=True, row_factory=tuple_row)
            cursor.execute(self.walk_only)
            cursor.execute(statement, params, prepare=True)
            rows: list[LogRow] = cursor.fetchall()
        return rows


def log_rows(app: Any) -> LogRows:
    """Return the page reader for the application's store (SQLite or PostgreSQL)."""
    from eventsourcing.postgres import PostgresApplicationRecorder

    recorder = app.recorder
    if isinstance(recorder, PostgresApplicationRecorder):
        return PostgresLogRows(recorder)
    return SqliteLogRows(recorder)
