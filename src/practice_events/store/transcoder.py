"""A JSON transcoder for stored events, built on orjson.

Stored event state is JSON-native by construction (see
:mod:`practice_events.domain.base`): ``data`` and ``meta`` dicts plus the
library's ``timestamp`` (recording time) and, on creation events,
``originator_topic``. This transcoder writes it with orjson and turns
``timestamp`` back into a ``datetime`` on the way in; nothing else needs
special handling, so projections can read the same bytes with a bare
``orjson.loads``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from eventsourcing.persistence import Transcoder


class OrjsonTranscoder(Transcoder):
    """Encode event state as compact JSON; decode it, restoring ``timestamp``."""

    def encode(self, obj: Any) -> bytes:
        """Serialise a JSON-native mapping (datetimes become RFC 3339 strings)."""
        return orjson.dumps(obj)

    def decode(self, data: bytes) -> Any:
        """Deserialise, turning the library's ``timestamp`` back into a datetime."""
        state = orjson.loads(data)
        timestamp = state.get("timestamp") if isinstance(state, dict) else None
        if isinstance(timestamp, str):
            state["timestamp"] = datetime.fromisoformat(timestamp)
        return state
