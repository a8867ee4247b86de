"""What a projection is: a named, tracked function from a batch of events to view rows.

A projection declares the event types it reads (``topics``), the tables it
owns (``TABLES``: logical name -> CREATE statement with ``{name}``
placeholders), and ``apply(tx, events, tables)``. The runner calls ``apply``
with many events at once inside one view transaction that also moves the
projection's tracking position; projections therefore write each touched row
once per batch, not once per event.

Table names are passed in (``tables["findings"]`` -> ``findings`` or
``findings__rebuild``) so the same code builds the live view, a blue/green
rebuild beside it, or a point-in-time replay in a scratch store.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar, NamedTuple
from uuid import UUID

from projections.viewstore import Tx


class LoggedEvent(NamedTuple):
    """One event of the notification log, decoded for projections.

    ``time`` is the business time (CloudEvents ``time``: when it happened);
    ``recorded_at`` is when the store recorded it. ``data`` and ``meta`` are the
    stored JSON (see ``practice_events.domain.base``).

    A named tuple, and two fields kept as the store returned them: a rebuild
    decodes every event of the log, and the frozen dataclass this was (its
    ``__init__`` sets each field through ``object.__setattr__``), a ``UUID``
    built from the hex text of every originator id and a second
    ``fromisoformat`` cost as much as the JSON decoding itself, for values that
    almost no projection reads. :attr:`aggregate_id` and :attr:`recorded_at`
    convert them when asked.
    """

    position: int
    type: str
    originator_id: UUID | str
    """The aggregate id as the store returned it (a UUID, or its text on SQLite)."""
    version: int
    subject: str
    time: datetime
    timestamp: str
    """The recording time as stored (RFC 3339 text); see :attr:`recorded_at`."""
    data: Mapping[str, Any]
    meta: Mapping[str, Any]

    @property
    def aggregate_id(self) -> UUID:
        """The id of the aggregate that recorded the event."""
        originator = self.originator_id
        return originator if isinstance(originator, UUID) else UUID(originator)

    @property
    def recorded_at(self) -> datetime:
        """When the store recorded the event."""
        return datetime.fromisoformat(self.timestamp)


class Projection:
    """Base class of read-model projections (see the module docstring)."""

    NAME: ClassVar[str] = ""
    TOPICS: ClassVar[tuple[str, ...]] = ()
    TABLES: ClassVar[Mapping[str, str]] = {}
    INDEXES: ClassVar[Mapping[str, str]] = {}
    """Index name -> CREATE INDEX statement with ``{index}`` and table placeholders."""
    VERSION: ClassVar[int] = 1
    """Bump when the tables or the logic change: the runner then rebuilds the view."""
    REBUILD_INDEXES: ClassVar[tuple[str, ...] | None] = None
    """The indexes (logical names) that a rebuild's new tables need while they fill,
    for the projection's own queries; None: all of them. The others are created
    once, at the swap: kept up to date row by row during the rebuild and then
    created again under their live names, they cost twice."""

    def __init__(self, *, timezone: str = "Asia/Shanghai") -> None:
        from zoneinfo import ZoneInfo

        self.timezone = timezone
        self.zone = ZoneInfo(timezone)

    def table_names(self, suffix: str = "") -> dict[str, str]:
        """Physical table names for a suffix ('' live, '__rebuild' for a rebuild)."""
        return {logical: f"{self.NAME}_{logical}{suffix}" for logical in self.TABLES}

    def index_names(self, suffix: str = "") -> dict[str, str]:
        """Physical index names for a suffix."""
        return {logical: f"{self.NAME}_{logical}_idx{suffix}" for logical in self.INDEXES}

    def create(self, tx: Tx, suffix: str = "", *, indexes: Collection[str] | None = None) -> None:
        """Create this projection's tables and indexes (for ``suffix``) if missing.

        ``indexes``: only these (logical names); None: all.
        """
        tables = self.table_names(suffix)
        for logical, statement in self.TABLES.items():
            tx.execute(statement.format(name=tables[logical], **tables))
        self.create_indexes(tx, suffix, tables, only=indexes)

    def create_indexes(
        self,
        tx: Tx,
        suffix: str,
        tables: Mapping[str, str],
        *,
        only: Collection[str] | None = None,
    ) -> None:
        """Create the indexes named for ``suffix`` on ``tables`` (``only`` these, if given)."""
        for logical, index in self.index_names(suffix).items():
            if only is None or logical in only:
                tx.execute(self.INDEXES[logical].format(index=index, **tables))

    def drop(self, tx: Tx, suffix: str = "") -> None:
        """Drop this projection's tables (and with them their indexes)."""
        for physical in self.table_names(suffix).values():
            tx.execute(f"DROP TABLE IF EXISTS {physical}")

    def apply(self, tx: Tx, events: Sequence[LoggedEvent], tables: Mapping[str, str]) -> None:
        """Update the view for ``events`` (in log order) inside ``tx``."""
        raise NotImplementedError

    def on_idle(self, tx: Tx, tables: Mapping[str, str], now: datetime) -> None:
        """Hook run when caught up (time-driven work such as overdue checks)."""

    def rebuilder(self, tables: Mapping[str, str]) -> Rebuilder:
        """Return what applies the batches of a rebuild (or a replay) into ``tables``.

        Those tables start empty and have no other writer, so a projection
        may keep rows in memory across batches and write them later
        (``projections.rows.RowCache``); by default each batch is applied
        as the live runner applies it.
        """
        return Rebuilder(self, tables)


class Rebuilder:
    """Applies the batches of one rebuild or replay (see :meth:`Projection.rebuilder`).

    The caller calls :meth:`flush` before anything reads the tables or swaps
    them in: rows held in memory are written then.
    """

    def __init__(self, projection: Projection, tables: Mapping[str, str]) -> None:
        self.projection = projection
        self.tables = tables

    def apply(self, tx: Tx, events: Sequence[LoggedEvent]) -> None:
        """Apply a batch of events (in log order) inside ``tx``."""
        self.projection.apply(tx, events, self.tables)

    def flush(self, tx: Tx) -> None:
        """Write whatever this rebuild holds in memory (nothing by default)."""


def to_float(value: Any) -> float | None:
    """Return a float or None (for optional numeric fields)."""
    if value is None:
        return None
    return float(value)
