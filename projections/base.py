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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from projections.viewstore import Tx


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """One event of the notification log, decoded for projections.

    ``time`` is the business time (CloudEvents ``time``: when it happened);
    ``recorded_at`` is when the store recorded it. ``data`` and ``meta`` are the
    stored JSON (see ``practice_events.domain.base``).
    """

    position: int
    type: str
    aggregate_id: UUID
    version: int
    subject: str
    time: datetime
    recorded_at: datetime
    data: Mapping[str, Any]
    meta: Mapping[str, Any]


class Projection:
    """Base class of read-model projections (see the module docstring)."""

    NAME: ClassVar[str] = ""
    TOPICS: ClassVar[tuple[str, ...]] = ()
    TABLES: ClassVar[Mapping[str, str]] = {}
    INDEXES: ClassVar[Mapping[str, str]] = {}
    """Index name -> CREATE INDEX statement with ``{index}`` and table placeholders."""
    VERSION: ClassVar[int] = 1
    """Bump when the tables or the logic change: the runner then rebuilds the view."""

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

    def create(self, tx: Tx, suffix: str = "") -> None:
        """Create this projection's tables and indexes (for ``suffix``) if missing."""
        tables = self.table_names(suffix)
        for logical, statement in self.TABLES.items():
            tx.execute(statement.format(name=tables[logical], **tables))
        self.create_indexes(tx, suffix, self.table_names(suffix))

    def create_indexes(self, tx: Tx, suffix: str, tables: Mapping[str, str]) -> None:
        """Create the indexes named for ``suffix`` on ``tables``."""
        for logical, index in self.index_names(suffix).items():
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


def to_float(value: Any) -> float | None:
    """Return a float or None (for optional numeric fields)."""
    if value is None:
        return None
    return float(value)
