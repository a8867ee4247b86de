"""What the ingest pipeline refused, by producer and code: "why was my event refused?".

No projection is needed: the pipeline writes every refusal into the event
store's rejections table in the same transaction as the accepted events of
its batch, so these functions read that table through the store
(``app.store.select_rejections`` and ``count_rejections``). Supervisors see
every producer; a producer's API token is scoped to its own ``source``.

Rejected payloads are returned as the producer sent them (parsed JSON when it
was JSON, otherwise a bounded text preview), so the producer can see exactly
what was refused next to the stable ``code`` and the ``reason``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import orjson

from practice_events.application import PracticeEvents
from projections.rows import check_limit, loads

SCAN_PAGE = 1000
"""Rejections read per store query when grouping."""

PREVIEW_BYTES = 4096
"""At most this many bytes of a payload that is not JSON are shown (as text)."""


def _payload(raw: Any) -> Any:
    """Return a stored payload as JSON data if it parses, else as a bounded text preview."""
    if raw is None:
        return None
    data = bytes(raw) if not isinstance(raw, bytes | str) else raw
    if isinstance(data, str):
        data = data.encode()
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return {"not_json": data[:PREVIEW_BYTES].decode("utf-8", errors="replace")}


def _rejection_out(row: Mapping[str, Any], *, with_payload: bool = True) -> dict[str, Any]:
    """Shape a stored rejection row for the API."""
    headers = row.get("headers")
    out: dict[str, Any] = {
        "seq": int(row["seq"]),
        "rejection_id": row["rejection_id"],
        "received_at": row["received_at"],
        "channel": row["channel"],
        "code": row["code"],
        "reason": row["reason"],
        "source": row.get("source"),
        "event_id": row.get("event_id"),
        "event_type": row.get("event_type"),
        "subject": row.get("subject"),
        "position": row.get("position"),
        "headers": loads(headers, {}) if isinstance(headers, str) else (headers or {}),
    }
    if with_payload:
        out["payload"] = _payload(row.get("payload"))
    return out


def _scan(app: PracticeEvents, source: str | None) -> list[dict[str, Any]]:
    """Read every rejection (of ``source``) in pages, oldest first."""
    rows: list[dict[str, Any]] = []
    after = 0
    while True:
        page = app.store.select_rejections(source=source, after=after, limit=SCAN_PAGE)
        rows.extend(page)
        if len(page) < SCAN_PAGE:
            return rows
        after = int(page[-1]["seq"])


def rejections_by_producer(app: PracticeEvents, source: str | None = None) -> dict[str, Any]:
    """Return refusals grouped by producer (CloudEvents ``source``) and code.

    For each producer: the total, the count per code, the first and last
    refusal times and the latest refusal (code, reason, event id and type)
    — what a producer needs to fix its sender. Inputs so malformed that no
    source could be read are grouped under ``source: null``. ``totals_by_code``
    comes from the store's own count (all producers) or, with ``source``,
    from that producer's refusals. Producers are listed most refused first.

    Cost: one pass over the rejections (pages of 1,000); refusals are rare
    next to events, so this stays small.
    """
    rows = _scan(app, source)
    groups: dict[str | None, dict[str, Any]] = {}
    for row in rows:
        producer = row.get("source")
        group = groups.get(producer)
        if group is None:
            group = groups[producer] = {
                "source": producer,
                "total": 0,
                "by_code": Counter(),
                "first_received_at": row["received_at"],
                "last_received_at": row["received_at"],
                "latest": None,
            }
        group["total"] += 1
        group["by_code"][row["code"]] += 1
        group["last_received_at"] = row["received_at"]
        group["latest"] = _rejection_out(row, with_payload=False)
    producers = sorted(groups.values(), key=lambda g: (-g["total"], str(g["source"] or "")))
    for group in producers:
        group["by_code"] = dict(sorted(group["by_code"].items(), key=lambda kv: (-kv[1], kv[0])))
    if source is None:
        totals = app.store.count_rejections()
    else:
        totals = dict(Counter(row["code"] for row in rows))
    return {
        "source": source,
        "total": sum(totals.values()),
        "totals_by_code": dict(sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))),
        "producers": producers,
    }


def list_rejections(
    app: PracticeEvents,
    *,
    source: str | None = None,
    code: str | None = None,
    after: int = 0,
    limit: int = 100,
) -> dict[str, Any]:
    """Return a page of refusals, oldest first, each with its payload as sent.

    Page with ``after`` = the ``next_after`` of the previous page (the store's
    sequence number; stable because refusals are only ever appended).
    """
    check_limit(limit, 1000)
    rows = app.store.select_rejections(source=source, code=code, after=after, limit=limit + 1)
    page = rows[:limit]
    return {
        "items": [_rejection_out(r) for r in page],
        "next_after": int(page[-1]["seq"]) if len(rows) > limit else None,
    }


def why_refused(app: PracticeEvents, source: str, event_id: str) -> list[dict[str, Any]]:
    """Return every refusal of one event (by its CloudEvents ``source`` and ``id``).

    A producer retrying a refused event without fixing it is refused again,
    so there may be several, oldest first. Empty when the event was never
    refused (it may have been accepted, or never arrived).
    """
    return [_rejection_out(r) for r in _scan(app, source) if r.get("event_id") == event_id]
