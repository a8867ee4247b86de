"""The domain: aggregates by area and the rules they enforce.

Imports nothing but the standard library and ``eventsourcing.domain``.
:func:`handlers` maps every producer event type to the aggregate and command
that handles it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache

from practice_events.domain.base import PracticeAggregate

AREAS = ("site", "volunteer", "attendance", "activity", "meeting", "need", "finding", "assessment")


@dataclass(frozen=True, slots=True)
class Handler:
    """Which aggregate handles an event type, and how.

    ``method`` is None for the creation event (handled by ``aggregate.create``).
    """

    aggregate: type[PracticeAggregate]
    method: str | None

    @property
    def creates(self) -> bool:
        """True when this event type creates its aggregate."""
        return self.method is None


def load_all() -> None:
    """Import every area module so that all aggregates and event topics are registered."""
    for area in AREAS:
        importlib.import_module(f"practice_events.domain.{area}")


def aggregate_classes() -> list[type[PracticeAggregate]]:
    """Return every concrete aggregate class (those with a ``KIND``)."""
    load_all()
    found: list[type[PracticeAggregate]] = []
    pending = list(PracticeAggregate.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.KIND and cls not in found:
            found.append(cls)
    return sorted(found, key=lambda c: c.KIND)


@cache
def handlers() -> dict[str, Handler]:
    """Return event type -> :class:`Handler` for every type producers may send."""
    table: dict[str, Handler] = {}
    for cls in aggregate_classes():
        entries: list[tuple[str, str | None]] = [(cls.CREATED_BY, None)] if cls.CREATED_BY else []
        entries += list(cls.HANDLES.items())
        for event_type, method in entries:
            if event_type in table:
                msg = f"{event_type} handled by both {table[event_type].aggregate} and {cls}"
                raise RuntimeError(msg)
            if method is not None and not callable(getattr(cls, method, None)):
                msg = f"{cls.__name__}.HANDLES names missing method {method!r}"
                raise RuntimeError(msg)
            table[event_type] = Handler(cls, method)
    return table


@cache
def kinds() -> dict[str, type[PracticeAggregate]]:
    """Return aggregate kind -> class."""
    return {cls.KIND: cls for cls in aggregate_classes()}
