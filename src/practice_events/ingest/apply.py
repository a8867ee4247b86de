"""Applying one validated CloudEvent to its aggregate.

Shared by the ingest pipeline (with the store behind ``lookup``) and by the
domain tests (with a dict behind it), so the tests exercise the very code
that runs in production.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from practice_events.contracts.envelope import IncomingEvent
from practice_events.domain import Handler, handlers, kinds
from practice_events.domain.base import DomainContext, PracticeAggregate
from practice_events.errors import (
    AggregateExistsError,
    UnknownAggregateError,
    UnknownReferenceError,
    UnknownTypeError,
)

Lookup = Callable[[str, str], PracticeAggregate | None]
"""(kind, subject) -> the aggregate, or None if it does not exist."""

Exists = Callable[[str, str], bool]
"""(kind, subject) -> whether that aggregate exists."""


def handler_for(event_type: str) -> Handler:
    """Return the handler of ``event_type`` (UnknownTypeError if none)."""
    try:
        return handlers()[event_type]
    except KeyError:
        msg = f"no aggregate handles {event_type!r}"
        raise UnknownTypeError(msg) from None


def check_references(event: IncomingEvent, exists: Exists) -> None:
    """Refuse an event naming another aggregate (a site, a volunteer ...) that does not exist."""
    known = kinds()
    for kind, subject in event.data.references():
        if kind not in known:  # pragma: no cover - a contract/domain wiring mistake
            msg = f"{event.type} refers to unknown aggregate kind {kind!r}"
            raise RuntimeError(msg)
        if not exists(kind, subject):
            msg = f"{event.type} refers to {kind} {subject!r}, which does not exist"
            raise UnknownReferenceError(msg, kind=kind, subject=subject)


def apply_event(
    event: IncomingEvent,
    lookup: Lookup,
    exists: Exists,
    ctx: DomainContext,
    *,
    data: Mapping[str, Any] | None = None,
) -> PracticeAggregate:
    """Apply ``event`` to its aggregate and return the aggregate with new pending events.

    Raises a :class:`~practice_events.errors.DomainError` subclass, and changes
    nothing, when a rule refuses the event.
    """
    handler = handler_for(event.type)
    kind = handler.aggregate.KIND
    check_references(event, exists)
    payload = dict(data if data is not None else event.data_json)
    meta = event.meta()
    if handler.creates:
        if lookup(kind, event.subject) is not None:
            msg = f"{kind} {event.subject!r} already exists; {event.type} creates a new one"
            raise AggregateExistsError(msg)
        return handler.aggregate.create(payload, meta, ctx)
    aggregate = lookup(kind, event.subject)
    if aggregate is None:
        msg = f"{kind} {event.subject!r} does not exist (send its creation event first)"
        raise UnknownAggregateError(msg)
    assert handler.method is not None
    getattr(aggregate, handler.method)(payload, meta, ctx)
    return aggregate
