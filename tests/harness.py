"""An in-memory stand-in for the store, for domain tests without I/O.

:class:`DomainHarness` runs CloudEvents through the real contracts and the
real :func:`~practice_events.ingest.apply.apply_event`, keeping aggregates in
a dict. Tests read as scenarios: ``h.send(...)`` and ``h.refused(...)``.
"""

from __future__ import annotations

import copy
import itertools
import ssl
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from practice_events.contracts import load_all as load_contracts
from practice_events.contracts.envelope import parse_structured
from practice_events.domain import kinds
from practice_events.domain.base import DomainContext, PracticeAggregate, aggregate_id
from practice_events.errors import PracticeEventsError
from practice_events.ingest.apply import apply_event

CST = timezone(timedelta(hours=8))
_counter = itertools.count(1)

PLAIN_HTTP = ssl.create_default_context()
"""The ``verify`` for test HTTP clients: ``httpx.Client(..., verify=PLAIN_HTTP)``.

Left to itself, httpx builds a new TLS context for every client and loads a CA
bundle into it (20-60 ms of CPU each: most of a one-request test's time). The
servers under test speak plain HTTP, so sharing one default context changes
nothing but the cost.
"""


def cloud_event(
    event_type: str,
    subject: str,
    data: Mapping[str, Any],
    *,
    time: datetime | str | None = None,
    source: str = "urn:test:producer",
    event_id: str | None = None,
    **extensions: str,
) -> dict[str, Any]:
    """Build a structured-mode CloudEvent as a producer would send it."""
    if time is None:
        time = datetime(2024, 3, 4, 9, 0, tzinfo=CST)
    return {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": source,
        "type": event_type,
        "subject": subject,
        "time": time if isinstance(time, str) else time.isoformat(),
        "datacontenttype": "application/json",
        "data": dict(data),
        **extensions,
    }


class DomainHarness:
    """Aggregates in a dict, driven by CloudEvents through contracts and domain rules."""

    def __init__(self, ctx: DomainContext | None = None) -> None:
        from practice_events.bootstrap import build_context
        from practice_events.config import Settings

        load_contracts()
        self.ctx = ctx or build_context(Settings(store="sqlite:///:memory:"))
        self.aggregates: dict[uuid.UUID, PracticeAggregate] = {}
        self.emitted: list[Any] = []

    def lookup(self, kind: str, subject: str) -> PracticeAggregate | None:
        """Return the aggregate of ``kind`` named ``subject``, or None."""
        return self.aggregates.get(aggregate_id(kind, subject))

    def exists(self, kind: str, subject: str) -> bool:
        """Tell whether that aggregate exists."""
        return aggregate_id(kind, subject) in self.aggregates

    def get(self, kind: str, subject: str) -> Any:
        """Return the aggregate (fails the test if it does not exist)."""
        agg = self.lookup(kind, subject)
        assert agg is not None, f"{kind} {subject} does not exist"
        assert kind in kinds()
        return agg

    def send(self, event_type: str, subject: str, data: Mapping[str, Any], **kw: Any) -> list[Any]:
        """Send one event; return the domain events it produced (fails on refusal)."""
        incoming = parse_structured(cloud_event(event_type, subject, data, **kw))
        agg = apply_event(incoming, self.lookup, self.exists, self.ctx)
        self.aggregates[agg.id] = agg
        new = list(agg.collect_events())
        self.emitted.extend(new)
        return new

    def refused(
        self, event_type: str, subject: str, data: Mapping[str, Any], code: str, **kw: Any
    ) -> PracticeEventsError:
        """Send one event that must be refused with ``code``; check nothing changed."""
        agg = self.lookup_for(event_type, subject)
        before = (agg.version, copy.deepcopy(dict(vars(agg)))) if agg is not None else None
        raw = cloud_event(event_type, subject, data, **kw)
        with pytest.raises(PracticeEventsError) as info:
            apply_event(parse_structured(raw), self.lookup, self.exists, self.ctx)
        assert info.value.code == code, f"expected {code}, got {info.value.code}: {info.value}"
        if agg is not None and before is not None:
            assert agg.version == before[0], "a refused event changed the aggregate's version"
            assert not agg.pending_events, "a refused event left pending events"
            assert dict(vars(agg)) == before[1], "a refused event changed the aggregate's state"
        return info.value

    def lookup_for(self, event_type: str, subject: str) -> PracticeAggregate | None:
        """Return the aggregate an event type would be applied to, if it exists."""
        from practice_events.domain import handlers

        handler = handlers().get(event_type)
        if handler is None:
            return None
        return self.lookup(handler.aggregate.KIND, subject)


def next_id(prefix: str) -> str:
    """Return a fresh, readable id such as ``F-0007``."""
    return f"{prefix}-{next(_counter):04d}"
