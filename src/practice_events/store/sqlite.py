"""SQLite event store (the embedded default): events, keys, tracking, rejections, snapshots.

The library's SQLite recorders keep fixed table names (``stored_events``,
``tracking``), so one practice-events store is one SQLite file. This module
adds ``ingested_keys``, ``rejections`` and ``aggregate_snapshots`` (see
:mod:`practice_events.store.snapshots`) to that file and writes them in the
same transaction as the events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent, Tracking
from eventsourcing.sqlite import SQLiteCursor, SQLiteFactory, SQLiteProcessRecorder

from practice_events.privacy.keys import SQLITE_DDL as PERSON_KEYS_DDL
from practice_events.privacy.keys import KeyChanges
from practice_events.store.records import REJECTION_COLUMNS, IngestKey, PayloadCodec, Rejection
from practice_events.store.snapshots import SnapshotRow

_KEY_CHUNK = 400


class StoreRecorder(SQLiteProcessRecorder):
    """A process recorder that also records idempotency keys, rejections and person keys."""

    payload_codec: PayloadCodec | None = None
    """Set by the application: encrypts refused payloads like event state."""

    def construct_create_table_statements(self) -> list[str]:
        """Add the ingest tables to the library's statements."""
        statements = super().construct_create_table_statements()
        statements += [
            "CREATE TABLE IF NOT EXISTS ingested_keys ("
            "source TEXT NOT NULL, event_id TEXT NOT NULL, digest TEXT NOT NULL, "
            "PRIMARY KEY (source, event_id)) WITHOUT ROWID",
            "CREATE TABLE IF NOT EXISTS rejections ("
            "seq INTEGER PRIMARY KEY AUTOINCREMENT, "
            "rejection_id TEXT NOT NULL UNIQUE, received_at TEXT NOT NULL, "
            "channel TEXT NOT NULL, code TEXT NOT NULL, reason TEXT NOT NULL, "
            "payload BLOB, source TEXT, event_id TEXT, event_type TEXT, subject TEXT, "
            "headers TEXT, position TEXT)",
            "CREATE INDEX IF NOT EXISTS rejections_source ON rejections (source, seq)",
            "CREATE INDEX IF NOT EXISTS stored_events_topic ON stored_events (topic)",
            "CREATE TABLE IF NOT EXISTS aggregate_snapshots ("
            "originator_id TEXT PRIMARY KEY, originator_version INTEGER NOT NULL, "
            "fingerprint TEXT NOT NULL, state BLOB NOT NULL) WITHOUT ROWID",
            *PERSON_KEYS_DDL,
        ]
        return statements

    def _insert_events(
        self,
        c: SQLiteCursor,
        stored_events: Sequence[StoredEvent],
        **kwargs: Any,
    ) -> Sequence[int] | None:
        returning = self._insert_stored(c, stored_events)
        tracking: Tracking | None = kwargs.get("tracking")
        if tracking is not None:
            self._insert_tracking(c, tracking)
        trackings: Iterable[Tracking] = kwargs.get("trackings") or ()
        for tracking in trackings:
            self._insert_tracking(c, tracking)
        keys: Sequence[IngestKey] = kwargs.get("ingest_keys") or ()
        if keys:
            c.executemany(
                "INSERT INTO ingested_keys (source, event_id, digest) VALUES (?, ?, ?)",
                [(k.source, k.event_id, k.digest) for k in keys],
            )
        rejections: Sequence[Rejection] = kwargs.get("rejections") or ()
        if rejections:
            columns = ", ".join(REJECTION_COLUMNS)
            marks = ", ".join("?" for _ in REJECTION_COLUMNS)
            c.executemany(
                f"INSERT INTO rejections ({columns}) VALUES ({marks}) "
                "ON CONFLICT (rejection_id) DO NOTHING",
                [self._rejection_row(r) for r in rejections],
            )
        person_keys: KeyChanges | None = kwargs.get("person_keys")
        if person_keys:
            person_keys.write_sqlite(c)
        snapshots: Sequence[SnapshotRow] = kwargs.get("snapshots") or ()
        if snapshots:
            # Newer wins: a late writer holding an older state never replaces a newer snapshot.
            c.executemany(
                "INSERT INTO aggregate_snapshots "
                "(originator_id, originator_version, fingerprint, state) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (originator_id) DO UPDATE SET "
                "originator_version = excluded.originator_version, "
                "fingerprint = excluded.fingerprint, state = excluded.state "
                "WHERE excluded.originator_version >= aggregate_snapshots.originator_version "
                "OR excluded.fingerprint != aggregate_snapshots.fingerprint",
                [(r.originator_id.hex, r.version, r.fingerprint, r.state) for r in snapshots],
            )
        return returning

    def _rejection_row(self, rejection: Rejection) -> tuple[Any, ...]:
        row = rejection.as_row()
        if self.payload_codec is not None:
            row["payload"] = self.payload_codec.seal(row["payload"])
        return tuple(row[col] for col in REJECTION_COLUMNS)

    def _insert_stored(self, c: SQLiteCursor, stored_events: Sequence[StoredEvent]) -> list[int]:
        """Insert events with one ``executemany`` and derive their notification ids.

        The library inserts row by row to read each ``lastrowid``. Inside one
        write transaction SQLite gives consecutive inserts consecutive rowids
        (max + 1 each time), and a concurrent writer would make this
        transaction fail rather than interleave, so the ids are the
        ``len(stored_events)`` rowids ending at ``last_insert_rowid()``.
        """
        if not stored_events:
            return []
        c.executemany(
            self.insert_events_statement,
            [
                (
                    s.originator_id.hex if isinstance(s.originator_id, UUID) else s.originator_id,
                    s.originator_version,
                    s.topic,
                    s.state,
                )
                for s in stored_events
            ],
        )
        c.execute("SELECT last_insert_rowid()")
        last = int(c.fetchone()[0])
        return list(range(last - len(stored_events) + 1, last + 1))

    # -- queries used by the pipeline and the CLI -------------------------------------

    def select_digests(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """Return the stored digest of each key that was already ingested."""
        found: dict[tuple[str, str], str] = {}
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(keys), _KEY_CHUNK):
                chunk = keys[start : start + _KEY_CHUNK]
                values = ", ".join("(?, ?)" for _ in chunk)
                params = [part for key in chunk for part in key]
                # Join on the VALUES list: "(a, b) IN (VALUES ...)" makes SQLite
                # scan the whole table, the join uses the primary key.
                c.execute(
                    f"SELECT k.source, k.event_id, k.digest FROM (VALUES {values}) AS q "
                    "JOIN ingested_keys AS k ON k.source = q.column1 AND k.event_id = q.column2",
                    params,
                )
                for row in c.fetchall():
                    found[(row["source"], row["event_id"])] = row["digest"]
        return found

    def select_events_of(
        self, ids: Sequence[UUID], after: Mapping[UUID, int] | None = None
    ) -> dict[UUID, list[StoredEvent]]:
        """Return the stored events of each given aggregate, in version order.

        ``after`` maps some of the ids to a version (a snapshot's): only their
        later events are returned.
        """
        found: dict[UUID, list[StoredEvent]] = {}
        after = after or {}
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(ids), _KEY_CHUNK):
                chunk = ids[start : start + _KEY_CHUNK]
                marks = ", ".join("(?, ?)" for _ in chunk)
                params: list[Any] = []
                for i in chunk:
                    params += [i.hex, after.get(i, 0)]
                c.execute(
                    f"WITH q(id, after) AS (VALUES {marks}) "
                    f"SELECT e.* FROM q JOIN {self.events_table_name} AS e "
                    "ON e.originator_id = q.id AND e.originator_version > q.after "
                    "ORDER BY e.originator_id, e.originator_version",
                    params,
                )
                for row in c.fetchall():
                    agg_id = UUID(row["originator_id"])
                    found.setdefault(agg_id, []).append(
                        StoredEvent(
                            originator_id=agg_id,
                            originator_version=row["originator_version"],
                            topic=row["topic"],
                            state=row["state"],
                        )
                    )
        return found

    def select_snapshots(self, ids: Sequence[UUID]) -> dict[UUID, SnapshotRow]:
        """Return the stored snapshot of each given aggregate that has one."""
        found: dict[UUID, SnapshotRow] = {}
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(ids), _KEY_CHUNK):
                chunk = ids[start : start + _KEY_CHUNK]
                marks = ", ".join("?" for _ in chunk)
                c.execute(
                    "SELECT originator_id, originator_version, fingerprint, state "
                    f"FROM aggregate_snapshots WHERE originator_id IN ({marks})",
                    [i.hex for i in chunk],
                )
                for row in c.fetchall():
                    agg_id = UUID(row["originator_id"])
                    found[agg_id] = SnapshotRow(
                        agg_id, row["originator_version"], row["fingerprint"], bytes(row["state"])
                    )
        return found

    def select_trackings(self, prefix: str) -> dict[str, int]:
        """Return every tracking position whose name starts with ``prefix``."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT application_name, notification_id FROM tracking "
                "WHERE application_name LIKE ? ESCAPE '\\'",
                [prefix.replace("%", "\\%").replace("_", "\\_") + "%"],
            )
            return {row["application_name"]: row["notification_id"] for row in c.fetchall()}

    def select_rejections(
        self,
        *,
        source: str | None = None,
        code: str | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Return rejections in the order they were recorded, optionally filtered."""
        clauses = ["seq > ?"]
        params: list[Any] = [after]
        if source is not None:
            clauses.append("source = ?")
            params.append(source)
        if code is not None:
            clauses.append("code = ?")
            params.append(code)
        params.append(limit)
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT * FROM rejections WHERE " + " AND ".join(clauses) + " ORDER BY seq LIMIT ?",
                params,
            )
            rows = [dict(zip(row.keys(), tuple(row), strict=True)) for row in c.fetchall()]
        if self.payload_codec is not None:
            for item in rows:
                item["payload"] = self.payload_codec.open(item.get("payload"))
        return rows

    def count_rejections(self) -> dict[str, int]:
        """Return the number of rejections by code."""
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT code, COUNT(*) AS n FROM rejections GROUP BY code")
            return {row["code"]: row["n"] for row in c.fetchall()}

    def count_events_by_topic(self) -> dict[str, int]:
        """Return the number of stored events by topic (the CloudEvents type)."""
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT topic, COUNT(*) AS n FROM stored_events GROUP BY topic")
            return {row["topic"]: row["n"] for row in c.fetchall()}

    def count_ingested_keys(self) -> int:
        """Return how many distinct CloudEvents were accepted."""
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT COUNT(*) FROM ingested_keys")
            return int(c.fetchone()[0])


class Factory(SQLiteFactory):
    """Infrastructure factory that builds :class:`StoreRecorder`."""

    process_recorder_class = StoreRecorder
