"""Redaction of personal details in refused inputs, dead letters and rejections files.

A refused input is kept whole so nothing is lost (rejections table, Kafka
dead-letter topic, ``ingest-file``'s rejections file), except the personal
fields of a ``personal_details_recorded`` event: they are replaced by
``"[redacted]"`` before the input is written anywhere. The producer still
sees which event was refused, why, and every other field; the details
themselves it still has.

The check is cheap for every other input: a refused input is redacted only
when its type (CloudEvents ``type``, or the ``ce_type`` header in binary
mode) names the personal-details type, in any version or letter case; an
input that cannot even be parsed is replaced by a placeholder when its
bytes name that type anywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from practice_events.privacy import PERSONAL_DETAILS_RECORDED, PERSONAL_FIELDS, REDACTED

_NAME = "personal_details_recorded"
"""Found in every spelling and version of the type name."""

UNPARSEABLE = orjson.dumps(
    {"redacted": "an unparseable input naming " + PERSONAL_DETAILS_RECORDED + " is not kept"}
)
"""What is kept of an input that names the personal-details type but is not JSON."""

Headers = Mapping[str, Any] | Iterable[tuple[str, Any]] | None


def _header_type(headers: Headers) -> str | None:
    if not headers:
        return None
    items = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in items:
        if str(name).lower() in ("ce_type", "ce-type"):
            raw = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            return raw.strip()
    return None


def _scrub(data: Any) -> Any:
    if not isinstance(data, dict):
        return data
    return {k: (REDACTED if k in PERSONAL_FIELDS and v is not None else v) for k, v in data.items()}


def _personal_type(value: Any) -> bool:
    """Any spelling or version of the personal-details type (a refused one may be misspelt)."""
    return isinstance(value, str) and _NAME in value.lower()


def _redact_data(payload: bytes) -> bytes:
    """A binary-mode payload: the data object itself."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return UNPARSEABLE
    return orjson.dumps(_scrub(data))


def _redact_event(payload: bytes) -> bytes:
    """A structured-mode payload naming the type somewhere: redact its data if it is one."""
    try:
        event = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return UNPARSEABLE
    if not isinstance(event, dict):
        return UNPARSEABLE
    if not _personal_type(event.get("type")):
        return payload
    event["data"] = _scrub(event.get("data"))
    return orjson.dumps(event)


def redact_input(payload: bytes | None, headers: Headers = None) -> bytes | None:
    """Return ``payload`` with the personal fields of a personal-details event redacted.

    Binary mode (``ce_type`` in ``headers``): the payload is the data object.
    Structured mode: the payload is the CloudEvent, its ``data`` is redacted.
    Any other input is returned unchanged (the same object).
    """
    if payload is None:
        return None
    header_type = _header_type(headers)
    if header_type is not None:
        return _redact_data(payload) if _personal_type(header_type) else payload
    if _NAME.encode() not in payload.lower():
        return payload
    return _redact_event(payload)


def redact_text(line: str) -> str:
    """Redact one structured-mode CloudEvent given as text (a line of a JSON Lines file)."""
    raw = line.encode()
    out = redact_input(raw)
    return line if out is raw else (out or b"").decode()
