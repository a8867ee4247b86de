"""The full, ordered history of one aggregate: who recorded what, when it happened, when known.

An aggregate is named by its kind and the CloudEvents subject producers use
(``finding F-2024-0007``); its id is the uuid5 of both, so the history is one
indexed query on the primary key, without any projection. Each entry gives
the log position, the version, the event type, the business time
(``occurred_at``: CloudEvents ``time``), the recording time (``recorded_at``:
when the store wrote it), the producer (``source``), the ``actor`` when the
producer named one, the CloudEvents ``id``, ``cause`` for events the domain
derived from another one, and the stored ``data`` (personal details
decrypted with the person's key, or ``"[erased]"`` once it was destroyed:
see :mod:`practice_events.privacy.reveal`).

:func:`aggregate_history` returns JSON-ready dicts, so the API can serve the
same thing the CLI prints.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from practice_events.application import PracticeEvents
from practice_events.audit.integrity import LogStore, log_store, row_hash
from practice_events.domain import kinds
from practice_events.domain.base import aggregate_id
from practice_events.errors import PracticeEventsError
from practice_events.privacy import PERSONAL_DETAILS_RECORDED
from practice_events.privacy.reveal import Revealer


def state_decoder(app: PracticeEvents) -> Callable[[bytes], dict[str, Any]]:
    """Return a function decoding stored state bytes (decrypting, decompressing if on)."""
    cipher = app.mapper.cipher
    compressor = app.mapper.compressor
    if cipher is None and compressor is None:
        return orjson.loads

    def decode(state: bytes) -> dict[str, Any]:
        if cipher is not None:
            state = cipher.decrypt(state)
        if compressor is not None:
            state = compressor.decompress(state)
        value: dict[str, Any] = orjson.loads(state)
        return value

    return decode


def entry(
    position: int, version: int, topic: str, obj: dict[str, Any], *, with_data: bool = True
) -> dict[str, Any]:
    """Return one history entry from a decoded stored event."""
    meta = obj.get("meta") or {}
    out: dict[str, Any] = {
        "position": position,
        "version": version,
        "type": topic,
        "occurred_at": meta.get("time"),
        "recorded_at": obj.get("timestamp"),
        "source": meta.get("source"),
        "actor": meta.get("actor"),
        "id": meta.get("id"),
    }
    if meta.get("cause"):
        out["cause"] = meta["cause"]
    if with_data:
        out["data"] = obj.get("data") or {}
    return out


def aggregate_history(
    app: PracticeEvents,
    kind: str,
    subject: str,
    *,
    store: LogStore | None = None,
    upto: int | None = None,
    with_data: bool = True,
    check_seals: bool = False,
) -> list[dict[str, Any]]:
    """Return the ordered history of the aggregate ``kind`` named ``subject``.

    ``upto`` limits it to events at or before that log position (the history
    as known then). With ``check_seals`` each entry gets ``seal``: ``ok`` when
    the stored event still matches its seal, ``mismatch`` when it does not,
    ``unsealed`` when the sealer has not reached it yet (this checks each row
    against its own seal; ``verify`` checks the whole chain). Raises
    ``UNKNOWN_KIND`` for a kind that does not exist and ``NOT_FOUND`` when the
    aggregate has no events.
    """
    known = kinds()
    if kind not in known:
        msg = f"unknown aggregate kind {kind!r}; known kinds: {', '.join(sorted(known))}"
        raise PracticeEventsError(msg, code="UNKNOWN_KIND")
    store = store or log_store(app)
    decode = state_decoder(app)
    agg_id = aggregate_id(kind, subject)
    out: list[dict[str, Any]] = []
    revealer: Revealer | None = None
    for position, version, topic, state in store.events_of(agg_id):
        if upto is not None and position > upto:
            break
        obj = decode(state)
        if with_data and topic == PERSONAL_DETAILS_RECORDED:
            revealer = revealer or Revealer(app)
            obj["data"] = revealer.reveal(topic, subject, obj.get("data") or {})
        item = entry(position, version, topic, obj, with_data=with_data)
        if check_seals:
            seal = store.seal_at(position)
            if seal is None:
                item["seal"] = "unsealed"
            else:
                content = row_hash(agg_id.bytes, version, topic, state)
                item["seal"] = "ok" if content == seal[1] else "mismatch"
        out.append(item)
    if not out:
        msg = f"no {kind} named {subject!r} in the log" + (
            f" at or before position {upto}" if upto is not None else ""
        )
        raise PracticeEventsError(msg, code="NOT_FOUND")
    return out
