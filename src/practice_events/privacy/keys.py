"""The person-key table on SQLite and PostgreSQL: created, written and read here.

One row per data key: ``key_id``, ``volunteer_no``, ``wrapped`` (the key as
stored, see :class:`~practice_events.privacy.crypto.KeyWrapper`),
``created_at`` and ``erased_at``. Erasing a person's keys sets ``wrapped``
to NULL and stamps ``erased_at``: the row stays as the record that a key
existed and when it was destroyed, the key material does not. A partial
unique index allows one live key per person, so two writers sealing the
first details of the same person at once cannot both create one (the loser's
batch fails with an integrity error and is retried, seeing the winner's key).

Writes happen inside the event store's insert transaction (the store
recorders call :meth:`KeyChanges.write_sqlite` / :meth:`KeyChanges.write_postgres`
with their cursor), so a key exists exactly when the events sealed with it
do, and an erasure event commits with the destruction of the keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from psycopg.sql import Composed

    from practice_events.application import PracticeEvents

SQLITE_TABLE = "person_keys"
"""The table's name in a SQLite store."""

SQLITE_DDL = [
    "CREATE TABLE IF NOT EXISTS person_keys ("
    "key_id TEXT PRIMARY KEY, volunteer_no TEXT NOT NULL, wrapped BLOB, "
    "created_at TEXT NOT NULL, erased_at TEXT)",
    "CREATE UNIQUE INDEX IF NOT EXISTS person_keys_live ON person_keys (volunteer_no) "
    "WHERE erased_at IS NULL",
]
"""Statements creating the table in a SQLite store (run by the store recorder)."""


def postgres_table(events_table_name: str) -> str:
    """The table's name in PostgreSQL: ``<prefix>_person_keys`` beside ``<prefix>_events``."""
    return f"{events_table_name.removesuffix('_events')}_person_keys"


def postgres_ddl(schema: str, table: str) -> list[Composed]:
    """Statements creating the table in PostgreSQL (run by the store recorder)."""
    from psycopg.sql import SQL, Identifier

    return [
        SQL(
            "CREATE TABLE IF NOT EXISTS {0}.{1} ("
            "key_id text PRIMARY KEY, volunteer_no text NOT NULL, wrapped bytea, "
            "created_at text NOT NULL, erased_at text)"
        ).format(Identifier(schema), Identifier(table)),
        SQL("CREATE UNIQUE INDEX IF NOT EXISTS {0} ON {1}.{2} (volunteer_no) "
            "WHERE erased_at IS NULL").format(
            Identifier(f"{table}_live"), Identifier(schema), Identifier(table)
        ),
    ]  # fmt: skip


@dataclass(slots=True)
class KeyChanges:
    """The key rows a batch writes with its events, in the order the events were applied.

    Order matters: an import may erase a person's key and record new details
    (under a new key) in one batch.
    """

    ops: list[tuple[Any, ...]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.ops)

    def add_key(self, key_id: str, volunteer_no: str, wrapped: bytes, created_at: str) -> None:
        """Store a new key."""
        self.ops.append(("insert", key_id, volunteer_no, wrapped, created_at))

    def erase(self, volunteer_no: str, erased_at: str) -> None:
        """Destroy every live key of ``volunteer_no``."""
        self.ops.append(("erase", volunteer_no, erased_at))

    @property
    def erasures(self) -> list[str]:
        """The volunteer numbers whose keys this batch destroys."""
        return [op[1] for op in self.ops if op[0] == "erase"]

    def write_sqlite(self, cursor: Any) -> None:
        """Apply the changes with a SQLite cursor of the insert transaction."""
        if self.erasures:
            # Overwrite freed space with zeros, so the destroyed key is not left in
            # the file's free pages (the WAL is truncated after commit, see scrub()).
            cursor.execute("PRAGMA secure_delete = ON")
        for op in self.ops:
            if op[0] == "insert":
                cursor.execute(
                    "INSERT INTO person_keys (key_id, volunteer_no, wrapped, created_at) "
                    "VALUES (?, ?, ?, ?)",
                    list(op[1:]),
                )
            else:
                cursor.execute(
                    "UPDATE person_keys SET wrapped = NULL, erased_at = ? "
                    "WHERE volunteer_no = ? AND erased_at IS NULL",
                    [op[2], op[1]],
                )

    def write_postgres(self, cursor: Any, schema: str, table: str) -> None:
        """Apply the changes with a PostgreSQL cursor of the insert transaction."""
        from psycopg.sql import SQL, Identifier

        target = SQL("{0}.{1}").format(Identifier(schema), Identifier(table))
        for op in self.ops:
            if op[0] == "insert":
                cursor.execute(
                    SQL(
                        "INSERT INTO {0} (key_id, volunteer_no, wrapped, created_at) "
                        "VALUES (%s, %s, %s, %s)"
                    ).format(target),
                    op[1:],
                )
            else:
                cursor.execute(
                    SQL(
                        "UPDATE {0} SET wrapped = NULL, erased_at = %s "
                        "WHERE volunteer_no = %s AND erased_at IS NULL"
                    ).format(target),
                    (op[2], op[1]),
                )


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A row of the key table (``wrapped`` is None once the key was destroyed)."""

    key_id: str
    volunteer_no: str
    wrapped: bytes | None
    created_at: str
    erased_at: str | None


class KeyStore(Protocol):
    """Reads of the key table (SQLite and PostgreSQL implement it)."""

    def live_keys(self, volunteer_nos: Sequence[str]) -> dict[str, StoredKey]:
        """Return the live key of each volunteer that has one."""

    def get(self, key_ids: Sequence[str]) -> dict[str, StoredKey]:
        """Return the rows of the given key ids (destroyed ones included)."""

    def keys_of(self, volunteer_no: str) -> list[StoredKey]:
        """Return every key row of a volunteer, oldest first."""

    def scrub(self) -> None:
        """After an erasure: make the store drop what it still keeps of old rows."""


_COLUMNS = "key_id, volunteer_no, wrapped, created_at, erased_at"


def _row(row: Any) -> StoredKey:
    wrapped = row["wrapped"]
    return StoredKey(
        key_id=str(row["key_id"]),
        volunteer_no=str(row["volunteer_no"]),
        wrapped=bytes(wrapped) if wrapped is not None else None,
        created_at=str(row["created_at"]),
        erased_at=row["erased_at"],
    )


class SqliteKeyStore:
    """The key table in the SQLite store file."""

    def __init__(self, app: PracticeEvents) -> None:
        recorder: Any = app.recorder
        self.datastore = recorder.datastore

    def _select(self, where: str, params: Sequence[Any]) -> list[StoredKey]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT {_COLUMNS} FROM person_keys WHERE {where}", list(params))  # noqa: S608 - fixed clauses, bound values
            return [_row(r) for r in c.fetchall()]

    def live_keys(self, volunteer_nos: Sequence[str]) -> dict[str, StoredKey]:
        """Return the live key of each volunteer that has one."""
        if not volunteer_nos:
            return {}
        marks = ", ".join("?" for _ in volunteer_nos)
        rows = self._select(f"volunteer_no IN ({marks}) AND erased_at IS NULL", volunteer_nos)
        return {r.volunteer_no: r for r in rows}

    def get(self, key_ids: Sequence[str]) -> dict[str, StoredKey]:
        """Return the rows of the given key ids."""
        if not key_ids:
            return {}
        marks = ", ".join("?" for _ in key_ids)
        return {r.key_id: r for r in self._select(f"key_id IN ({marks})", key_ids)}

    def keys_of(self, volunteer_no: str) -> list[StoredKey]:
        """Return every key row of a volunteer, oldest first."""
        rows = self._select("volunteer_no = ?", [volunteer_no])
        return sorted(rows, key=lambda r: r.created_at)

    def scrub(self) -> None:
        """Fold the WAL into the file and truncate it (the destroyed key was in old pages)."""
        with self.datastore.get_connection(commit=True) as conn:  # the writer's connection
            conn.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")


class PostgresKeyStore:
    """The key table in PostgreSQL (``<prefix>_person_keys``)."""

    def __init__(self, app: PracticeEvents) -> None:
        recorder: Any = app.recorder
        self.datastore = recorder.datastore
        self.table = postgres_table(recorder.events_table_name)

    def _select(self, where: str, params: Sequence[Any]) -> list[StoredKey]:
        from psycopg.sql import SQL, Identifier

        query = SQL(
            "SELECT key_id, volunteer_no, wrapped, created_at, erased_at FROM {0}.{1} WHERE "  # noqa: S608 - fixed clauses, bound values
            + where
        ).format(Identifier(self.datastore.schema), Identifier(self.table))
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(query, params, prepare=False)
            return [_row(r) for r in curs.fetchall()]

    def live_keys(self, volunteer_nos: Sequence[str]) -> dict[str, StoredKey]:
        """Return the live key of each volunteer that has one."""
        if not volunteer_nos:
            return {}
        rows = self._select("volunteer_no = ANY(%s) AND erased_at IS NULL", (list(volunteer_nos),))
        return {r.volunteer_no: r for r in rows}

    def get(self, key_ids: Sequence[str]) -> dict[str, StoredKey]:
        """Return the rows of the given key ids."""
        if not key_ids:
            return {}
        return {r.key_id: r for r in self._select("key_id = ANY(%s)", (list(key_ids),))}

    def keys_of(self, volunteer_no: str) -> list[StoredKey]:
        """Return every key row of a volunteer, oldest first."""
        return sorted(
            self._select("volunteer_no = %s", (volunteer_no,)), key=lambda r: r.created_at
        )

    def scrub(self) -> None:
        """VACUUM the key table, so the destroyed keys' dead row versions are removed."""
        from psycopg.sql import SQL, Identifier

        with self.datastore.get_connection() as conn:  # pool connections autocommit
            conn.execute(
                SQL("VACUUM {0}.{1}").format(
                    Identifier(self.datastore.schema), Identifier(self.table)
                )
            )


def key_store(app: PracticeEvents) -> KeyStore:
    """Return the key table access for the app's store."""
    from eventsourcing.postgres import PostgresApplicationRecorder

    if isinstance(app.recorder, PostgresApplicationRecorder):
        return PostgresKeyStore(app)
    return SqliteKeyStore(app)
