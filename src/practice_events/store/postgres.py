"""PostgreSQL event store (production): events, keys, tracking, rejections, snapshots.

Tables are prefixed with the application name (``practiceevents_events``,
``practiceevents_tracking`` from the library; ``practiceevents_ingested_keys``,
``practiceevents_rejections`` and ``practiceevents_aggregate_snapshots`` from
here). The extra rows are written in
the library's insert transaction, before it takes its table lock, so they
commit or roll back with the events.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast
from uuid import UUID

from eventsourcing.persistence import (
    InterfaceError,
    OperationalError,
    ProgrammingError,
    StoredEvent,
    Tracking,
)
from eventsourcing.postgres import PostgresDatastore, PostgresFactory, PostgresProcessRecorder
from psycopg import Cursor
from psycopg.errors import LockNotAvailable
from psycopg.rows import DictRow, tuple_row
from psycopg.sql import SQL, Identifier

from practice_events.privacy.keys import KeyChanges, postgres_ddl, postgres_table
from practice_events.store.records import REJECTION_COLUMNS, IngestKey, PayloadCodec, Rejection
from practice_events.store.snapshots import SnapshotRow

INSERT_ATTEMPTS = 10
"""Attempts of one insert after connection errors (the library's count); lock timeouts: one."""


class StoreRecorder(PostgresProcessRecorder):
    """A process recorder that also records idempotency keys, rejections and person keys."""

    payload_codec: PayloadCodec | None = None
    """Set by the application: encrypts refused payloads like event state."""

    def __init__(
        self,
        datastore: PostgresDatastore,
        *,
        events_table_name: str = "stored_events",
        tracking_table_name: str = "notification_tracking",
    ) -> None:
        super().__init__(
            datastore,
            events_table_name=events_table_name,
            tracking_table_name=tracking_table_name,
        )
        prefix = events_table_name.removesuffix("_events")
        self.keys_table = f"{prefix}_ingested_keys"
        self.rejections_table = f"{prefix}_rejections"
        self.person_keys_table = postgres_table(events_table_name)
        self.snapshots_table = f"{prefix}_aggregate_snapshots"
        schema = Identifier(self.datastore.schema)
        snapshots = Identifier(self.snapshots_table)
        keys = Identifier(self.keys_table)
        rejections = Identifier(self.rejections_table)
        events = Identifier(self.events_table_name)
        self.sql_create_statements += [
            SQL(
                "CREATE TABLE IF NOT EXISTS {0}.{1} ("
                "source text NOT NULL, event_id text NOT NULL, digest text NOT NULL, "
                "PRIMARY KEY (source, event_id))"
            ).format(schema, keys),
            SQL(
                "CREATE TABLE IF NOT EXISTS {0}.{1} ("
                "seq bigserial PRIMARY KEY, rejection_id text NOT NULL UNIQUE, "
                "received_at text NOT NULL, channel text NOT NULL, code text NOT NULL, "
                "reason text NOT NULL, payload bytea, source text, event_id text, "
                "event_type text, subject text, headers text, position text)"
            ).format(schema, rejections),
            SQL("CREATE INDEX IF NOT EXISTS {0} ON {1}.{2} (source, seq)").format(
                Identifier(f"{self.rejections_table}_source_idx"), schema, rejections
            ),
            SQL("CREATE INDEX IF NOT EXISTS {0} ON {1}.{2} (topic)").format(
                Identifier(f"{self.events_table_name}_topic_idx"), schema, events
            ),
            SQL(
                "CREATE TABLE IF NOT EXISTS {0}.{1} ("
                "originator_id uuid PRIMARY KEY, originator_version bigint NOT NULL, "
                "fingerprint text NOT NULL, state bytea NOT NULL)"
            ).format(schema, snapshots),
            *postgres_ddl(self.datastore.schema, self.person_keys_table),
        ]
        # Newer wins: a late writer holding an older state never replaces a newer snapshot.
        self._upsert_snapshots_sql = SQL(
            "INSERT INTO {0}.{1} AS s (originator_id, originator_version, fingerprint, state) "
            "SELECT * FROM unnest(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[]) "
            "ON CONFLICT (originator_id) DO UPDATE SET "
            "originator_version = excluded.originator_version, "
            "fingerprint = excluded.fingerprint, state = excluded.state "
            "WHERE excluded.originator_version >= s.originator_version "
            "OR excluded.fingerprint <> s.fingerprint"
        ).format(schema, snapshots)
        # One statement per batch: executemany costs a round trip per key.
        self._insert_key_sql = SQL(
            "INSERT INTO {0}.{1} (source, event_id, digest) "
            "SELECT * FROM unnest(%b::text[], %b::text[], %b::text[])"
        ).format(schema, keys)
        columns = SQL(", ").join(Identifier(c) for c in REJECTION_COLUMNS)
        marks = SQL(", ").join(SQL("%s") for _ in REJECTION_COLUMNS)
        self._insert_rejection_sql = SQL(
            "INSERT INTO {0}.{1} ({2}) VALUES ({3}) ON CONFLICT (rejection_id) DO NOTHING"
        ).format(schema, rejections, columns, marks)
        # The events as four arrays in binary format: the library's array of a
        # composite type is written as text, field by field in Python (~20 µs an event).
        self._insert_stored_sql = SQL(
            "INSERT INTO {0}.{1} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::{2}[], %b::bigint[], %b::text[], %b::bytea[]) "
            "RETURNING notification_id"
        ).format(
            schema, events, SQL("text" if self.datastore.originator_id_type == "text" else "uuid")
        )

    def _insert_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        **kwargs: Any,
    ) -> None:
        super()._insert_events(curs, stored_events, **kwargs)
        trackings: Iterable[Tracking] = kwargs.get("trackings") or ()
        for tracking in trackings:
            self._insert_tracking(curs, tracking)
        keys: Sequence[IngestKey] = kwargs.get("ingest_keys") or ()
        if keys:
            curs.execute(
                self._insert_key_sql,
                (
                    [k.source for k in keys],
                    [k.event_id for k in keys],
                    [k.digest for k in keys],
                ),
            )
        rejections: Sequence[Rejection] = kwargs.get("rejections") or ()
        if rejections:
            curs.executemany(
                self._insert_rejection_sql, [self._rejection_row(r) for r in rejections]
            )
        person_keys: KeyChanges | None = kwargs.get("person_keys")
        if person_keys:
            person_keys.write_postgres(curs, self.datastore.schema, self.person_keys_table)
        snapshots: Sequence[SnapshotRow] = kwargs.get("snapshots") or ()
        if snapshots:
            curs.execute(
                self._upsert_snapshots_sql,
                (
                    [r.originator_id for r in snapshots],
                    [r.version for r in snapshots],
                    [r.fingerprint for r in snapshots],
                    [r.state for r in snapshots],
                ),
            )

    def _insert_stored_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        **kwargs: Any,
    ) -> None:
        """Lock and notify as the library does, then insert the events as binary arrays.

        The same rows, in the same order and the same transaction, as the
        library's ``unnest`` of an array of its composite type; only the
        encoding of the parameters differs (binary arrays are dumped in C).
        """
        self._lock_table(curs)
        self._notify_channel(curs)
        # The returned ids as plain tuples: a dict per row cost ~5 µs an event.
        curs.row_factory = tuple_row  # type: ignore[assignment]
        curs.execute(
            self._insert_stored_sql,
            (
                [s.originator_id for s in stored_events],
                [s.originator_version for s in stored_events],
                [s.topic for s in stored_events],
                [s.state for s in stored_events],
            ),
        )

    def _fetch_ids_after_insert_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        **_: Any,
    ) -> Sequence[int] | None:
        """The notification ids the insert returned, read from tuple rows (see above)."""
        ids = [row[0] for row in cast("list[tuple[int]]", curs.fetchall())]
        if len(ids) != len(stored_events):  # pragma: no cover - the library checks this too
            msg = f"got {len(ids)} notification ids for {len(stored_events)} events"
            raise ProgrammingError(msg)
        return ids

    def _rejection_row(self, rejection: Rejection) -> tuple[Any, ...]:
        row = rejection.as_row()
        if self.payload_codec is not None:
            row["payload"] = self.payload_codec.seal(row["payload"])
        return tuple(row[col] for col in REJECTION_COLUMNS)

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Insert, without the library's ten attempts when the table lock timed out.

        eventsourcing retries an insert that met an operational error ten times,
        0.2 s apart. For a dropped connection that is a short grace; for a lock
        held by another session it multiplies the wait: with ``lock_timeout`` at
        its default 10 s an HTTP request waited over 100 s before its 503 (and
        held the ingest thread all along). The callers retry by themselves (the
        Kafka worker with back-off, HTTP clients after ``Retry-After``), so a lock
        timeout is reported after one wait; other operational errors are tried
        again up to :data:`INSERT_ATTEMPTS` times, as before.
        """
        insert = super().insert_events.__wrapped__  # the library's, without its retry
        attempt = 0
        while True:
            attempt += 1
            try:
                return cast("Sequence[int] | None", insert(self, stored_events, **kwargs))
            except (InterfaceError, OperationalError) as exc:
                if attempt >= INSERT_ATTEMPTS or isinstance(exc.__cause__, LockNotAvailable):
                    raise
                time.sleep(0.2)

    # -- queries used by the pipeline and the CLI -------------------------------------

    def _fetch(self, query: SQL | Any, params: Sequence[Any] = ()) -> list[DictRow]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(query, params, prepare=False)
            return curs.fetchall()

    def select_digests(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """Return the stored digest of each key that was already ingested."""
        if not keys:
            return {}
        query = SQL(
            "SELECT k.source, k.event_id, k.digest FROM {0}.{1} k "
            "JOIN unnest(%b::text[], %b::text[]) AS q(source, event_id) "
            "ON k.source = q.source AND k.event_id = q.event_id"
        ).format(Identifier(self.datastore.schema), Identifier(self.keys_table))
        rows = self._fetch(query, ([k[0] for k in keys], [k[1] for k in keys]))
        return {(r["source"], r["event_id"]): r["digest"] for r in rows}

    def select_events_of(
        self, ids: Sequence[UUID], after: Mapping[UUID, int] | None = None
    ) -> dict[UUID, list[StoredEvent]]:
        """Return the stored events of each given aggregate, in version order, in one query.

        ``after`` maps some of the ids to a version (a snapshot's): only their
        later events are returned.
        """
        if not ids:
            return {}
        after = after or {}
        query = SQL(
            # A lateral subquery per id, fenced by OFFSET 0: joined plainly, the planner
            # hashes the ids and scans the whole events table (115 ms at 136k events).
            "SELECT e.originator_id, e.originator_version, e.topic, e.state "
            "FROM unnest(%b::uuid[], %b::bigint[]) AS q(id, after) CROSS JOIN LATERAL ("
            "SELECT originator_id, originator_version, topic, state FROM {0}.{1} "
            "WHERE originator_id = q.id AND originator_version > q.after "
            "ORDER BY originator_version OFFSET 0) AS e"
        ).format(Identifier(self.datastore.schema), Identifier(self.events_table_name))
        found: dict[UUID, list[StoredEvent]] = {}
        for row in self._fetch(query, (list(ids), [after.get(i, 0) for i in ids])):
            agg_id = row["originator_id"]
            found.setdefault(agg_id, []).append(
                StoredEvent(
                    originator_id=agg_id,
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
            )
        return found

    def select_snapshots(self, ids: Sequence[UUID]) -> dict[UUID, SnapshotRow]:
        """Return the stored snapshot of each given aggregate that has one, in one query."""
        if not ids:
            return {}
        query = SQL(
            "SELECT originator_id, originator_version, fingerprint, state FROM {0}.{1} "
            "WHERE originator_id = ANY(%b::uuid[])"
        ).format(Identifier(self.datastore.schema), Identifier(self.snapshots_table))
        return {
            row["originator_id"]: SnapshotRow(
                row["originator_id"],
                row["originator_version"],
                row["fingerprint"],
                bytes(row["state"]),
            )
            for row in self._fetch(query, (list(ids),))
        }

    def select_trackings(self, prefix: str) -> dict[str, int]:
        """Return every tracking position whose name starts with ``prefix``."""
        query = SQL(
            "SELECT application_name, notification_id FROM {0}.{1} "
            "WHERE starts_with(application_name, %s)"
        ).format(Identifier(self.datastore.schema), Identifier(self.tracking_table_name))
        return {r["application_name"]: r["notification_id"] for r in self._fetch(query, (prefix,))}

    def select_rejections(
        self,
        *,
        source: str | None = None,
        code: str | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Return rejections in the order they were recorded, optionally filtered."""
        clauses = [SQL("seq > %s")]
        params: list[Any] = [after]
        if source is not None:
            clauses.append(SQL("source = %s"))
            params.append(source)
        if code is not None:
            clauses.append(SQL("code = %s"))
            params.append(code)
        params.append(limit)
        query = SQL("SELECT * FROM {0}.{1} WHERE {2} ORDER BY seq LIMIT %s").format(
            Identifier(self.datastore.schema),
            Identifier(self.rejections_table),
            SQL(" AND ").join(clauses),
        )
        rows = self._fetch(query, params)
        out = []
        for row in rows:
            item = dict(row)
            if isinstance(item.get("payload"), memoryview):
                item["payload"] = bytes(item["payload"])
            if self.payload_codec is not None:
                item["payload"] = self.payload_codec.open(item["payload"])
            out.append(item)
        return out

    def count_rejections(self) -> dict[str, int]:
        """Return the number of rejections by code."""
        query = SQL("SELECT code, COUNT(*) AS n FROM {0}.{1} GROUP BY code").format(
            Identifier(self.datastore.schema), Identifier(self.rejections_table)
        )
        return {r["code"]: int(r["n"]) for r in self._fetch(query)}

    def count_events_by_topic(self) -> dict[str, int]:
        """Return the number of stored events by topic (the CloudEvents type)."""
        query = SQL("SELECT topic, COUNT(*) AS n FROM {0}.{1} GROUP BY topic").format(
            Identifier(self.datastore.schema), Identifier(self.events_table_name)
        )
        return {r["topic"]: int(r["n"]) for r in self._fetch(query)}

    def count_ingested_keys(self) -> int:
        """Return how many distinct CloudEvents were accepted."""
        query = SQL("SELECT COUNT(*) AS n FROM {0}.{1}").format(
            Identifier(self.datastore.schema), Identifier(self.keys_table)
        )
        return int(self._fetch(query)[0]["n"])


class Factory(PostgresFactory):
    """Infrastructure factory that builds :class:`StoreRecorder`."""

    process_recorder_class = StoreRecorder
