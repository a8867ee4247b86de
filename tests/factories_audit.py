"""Builders for the audit tests: a district history, stores, and tampering done by hand.

The history is the deterministic demo generator's (registrations, sessions
and hours with their derived credits and points, activities, meetings,
needs, findings through the closed loop, assessments), so export, replay
and certificates are exercised on every event type the service knows.

:class:`Tamper` changes the store *behind the application's back*, with
plain SQL on the SQLite file or the PostgreSQL database, as an attacker or
a careless administrator would: update a row's bytes, delete a row, swap
two rows' positions or contents, forge a row.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import orjson

from practice_events.application import PracticeEvents
from practice_events.bootstrap import build_app, build_pipeline
from practice_events.config import Settings, store_env
from practice_events.ingest.pipeline import Pipeline, RawInput

DEMO_SEED = 11


@functools.cache
def demo_events(events: int = 2500) -> tuple[dict[str, Any], ...]:
    """The demo district's history (about ``events`` CloudEvents, Oct-Dec 2025)."""
    from practice_events.demo.generator import generate

    return tuple(generate(seed=DEMO_SEED, events=events))


def ingest(pipeline: Pipeline, events: Iterable[dict[str, Any]], batch_size: int = 500) -> int:
    """Send CloudEvents through the pipeline in batches; all must be accepted or duplicate."""
    batch: list[RawInput] = []
    last = 0

    def flush() -> int:
        result = pipeline.process(batch)
        refused = [o.as_dict() for o in result.outcomes if o.status == "rejected"]
        assert not refused, refused[:3]
        return result.last_position

    for event in events:
        batch.append(RawInput(payload=orjson.dumps(event), channel="test"))
        if len(batch) >= batch_size:
            last = flush()
            batch = []
    if batch:
        last = flush()
    return last


def split_at(
    events: Sequence[dict[str, Any]], moment: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split a time-ordered history into what happened up to ``moment`` and after."""
    before = [e for e in events if datetime.fromisoformat(e["time"]) <= moment]
    after = [e for e in events if datetime.fromisoformat(e["time"]) > moment]
    return before, after


class Store:
    """One store of a test: settings, the application and its pipeline."""

    def __init__(self, url: str, **settings: Any) -> None:
        self.url = url
        self.settings = Settings(store=url, **settings)
        self.app: PracticeEvents = build_app(self.settings)
        self.pipeline = build_pipeline(self.settings, self.app)

    def ingest(self, events: Iterable[dict[str, Any]], batch_size: int = 500) -> int:
        """Ingest ``events``; return the log position after them."""
        return ingest(self.pipeline, events, batch_size)

    def close(self) -> None:
        """Release the store's connections."""
        self.app.close()


class Tamper:
    """Direct SQL on a store's tables, bypassing the application (see module docstring)."""

    def __init__(self, url: str) -> None:
        self.env = store_env(url)
        self.sqlite = self.env["PERSISTENCE_MODULE"].endswith("sqlite:Factory")
        self.events = "stored_events" if self.sqlite else "practiceevents_events"
        self.seals = "seals" if self.sqlite else "practiceevents_seals"
        self.position = "rowid" if self.sqlite else "notification_id"
        self.mark = "?" if self.sqlite else "%s"

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        if self.sqlite:
            lite = sqlite3.connect(self.env["SQLITE_DBNAME"])
            try:
                yield lite.cursor()
                lite.commit()
            finally:
                lite.close()
            return
        import psycopg

        with (
            psycopg.connect(
                host=self.env["POSTGRES_HOST"],
                port=int(self.env["POSTGRES_PORT"]),
                user=self.env["POSTGRES_USER"],
                password=self.env["POSTGRES_PASSWORD"] or None,
                dbname=self.env["POSTGRES_DBNAME"],
            ) as conn,
            conn.cursor() as cur,
        ):
            yield cur

    def _sql(self, statement: str) -> str:
        return statement.replace("?", self.mark)

    def state(self, position: int) -> bytes:
        """Return the stored bytes at ``position``."""
        with self._cursor() as cur:
            cur.execute(
                self._sql(f"SELECT state FROM {self.events} WHERE {self.position} = ?"),
                (position,),
            )
            return bytes(cur.fetchone()[0])

    def update_state(self, position: int, state: bytes) -> None:
        """Overwrite the stored bytes of one event (a quiet edit)."""
        with self._cursor() as cur:
            cur.execute(
                self._sql(f"UPDATE {self.events} SET state = ? WHERE {self.position} = ?"),
                (state, position),
            )

    def edit_data(self, position: int, **changes: Any) -> None:
        """Change fields of one event's stored ``data`` (plain JSON stores only)."""
        obj = orjson.loads(self.state(position))
        obj["data"].update(changes)
        self.update_state(position, orjson.dumps(obj))

    def delete(self, position: int) -> None:
        """Delete one event row."""
        with self._cursor() as cur:
            cur.execute(
                self._sql(f"DELETE FROM {self.events} WHERE {self.position} = ?"), (position,)
            )

    def swap_positions(self, first: int, second: int) -> None:
        """Give two rows each other's log positions (their bytes stay as they were)."""
        with self._cursor() as cur:
            for old, new in ((first, -1), (second, first), (-1, second)):
                cur.execute(
                    self._sql(
                        f"UPDATE {self.events} SET {self.position} = ? WHERE {self.position} = ?"
                    ),
                    (new, old),
                )

    def swap_states(self, first: int, second: int) -> None:
        """Exchange the stored bytes of two rows (each keeps its position and id)."""
        a, b = self.state(first), self.state(second)
        self.update_state(first, b)
        self.update_state(second, a)

    def forge(self, position: int, like: int) -> None:
        """Insert a copy of row ``like`` under a new aggregate id at ``position``."""
        import uuid

        with self._cursor() as cur:
            cur.execute(
                self._sql(
                    f"SELECT originator_version, topic, state FROM {self.events} "
                    f"WHERE {self.position} = ?"
                ),
                (like,),
            )
            version, topic, state = cur.fetchone()
            forged = uuid.uuid4()
            cur.execute(
                self._sql(
                    f"INSERT INTO {self.events} (originator_id, originator_version, topic, "
                    f"state, {self.position}) VALUES (?, ?, ?, ?, ?)"
                ),
                (forged.hex if self.sqlite else forged, version, topic, bytes(state), position),
            )

    def delete_seals_from(self, position: int) -> None:
        """Forget the seals from ``position`` on (to re-seal a rewritten log)."""
        with self._cursor() as cur:
            cur.execute(self._sql(f"DELETE FROM {self.seals} WHERE position >= ?"), (position,))

    def corrupt_seal(self, position: int) -> None:
        """Overwrite one seal's row hash."""
        with self._cursor() as cur:
            cur.execute(
                self._sql(f"UPDATE {self.seals} SET row_hash = ? WHERE position = ?"),
                (b"\x00" * 32, position),
            )

    def corrupt_seal_chain(self, position: int) -> None:
        """Overwrite one seal's chain hash (its row hash stays right)."""
        with self._cursor() as cur:
            cur.execute(
                self._sql(f"UPDATE {self.seals} SET chain_hash = ? WHERE position = ?"),
                (b"\x01" * 32, position),
            )
