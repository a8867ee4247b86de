"""CloudEvents 1.0 envelopes: strict parsing into :class:`IncomingEvent`.

Producers send structured-mode JSON (``application/cloudevents+json``) or, on
Kafka, binary mode (``ce_*`` headers, the value is ``data``). Both end up
here. Validation is strict and every refusal carries a stable code:

=====================  =========================================================
code                   when
=====================  =========================================================
``MALFORMED_JSON``     not UTF-8, not JSON, or not a JSON object
``MISSING_ATTRIBUTE``  a required attribute (id, source, specversion, type,
                       subject, time, data) is absent or empty
``INVALID_ATTRIBUTE``  an attribute has the wrong type or form (specversion not
                       1.0, a bad extension name, data_base64, a content type
                       other than JSON)
``NAIVE_DATETIME``     a time without an offset (periods need a time zone)
``UNKNOWN_TYPE``       the type is not in the catalogue
``SYSTEM_EVENT_TYPE``  the type is emitted by practice-events only
``OUT_OF_RANGE``       a number or time outside its allowed range
``SCHEMA_VIOLATION``   any other mismatch with the type's data schema
=====================  =========================================================

The checks of the envelope are written out by hand rather than as a pydantic
model: they run for every event, and hand-written checks give the exact code
and reason above at a fraction of the cost.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError

from practice_events.contracts.base import CATALOGUE, EventData
from practice_events.errors import (
    ContractError,
    MalformedInputError,
    SystemEventTypeError,
    UnknownTypeError,
)

SPECVERSION = "1.0"
REQUIRED = ("specversion", "id", "source", "type", "subject", "time")
CONTEXT_ATTRIBUTES = frozenset({*REQUIRED, "datacontenttype", "dataschema", "data", "data_base64"})
EXTENSION_NAME = re.compile(r"^[a-z0-9]{1,20}$")
KNOWN_EXTENSIONS = frozenset(
    {"actor", "traceparent", "tracestate", "correlationid", "partitionkey"}
)
JSON_CONTENT_TYPES = ("application/json", "text/json")
MAX_ATTRIBUTE_LENGTH = 256

_OUT_OF_RANGE_ERRORS = frozenset(
    {
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
        "out_of_range",
        "finite_number",
        "multiple_of",
    }
)
_NAIVE_ERRORS = frozenset({"timezone_aware"})


@dataclass(frozen=True, slots=True)
class IncomingEvent:
    """A CloudEvent that passed the contract: envelope and validated data.

    ``data_json`` is the payload in JSON-native form (what gets stored);
    ``digest`` fingerprints type, subject, time and data so that a retry with
    the same ``(source, id)`` can be told from a conflicting reuse of the id.
    """

    id: str
    source: str
    type: str
    subject: str
    time: datetime
    data: EventData
    data_json: dict[str, Any]
    extensions: Mapping[str, str] = field(default_factory=dict)
    digest: str = ""

    @property
    def key(self) -> tuple[str, str]:
        """The idempotency key: the same pair twice is stored once."""
        return (self.source, self.id)

    def meta(self) -> dict[str, Any]:
        """Provenance stored with the domain event (see ``domain.base``)."""
        meta: dict[str, Any] = {
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": self.time.isoformat(),
            "subject": self.subject,
        }
        actor = self.extensions.get("actor")
        if actor:
            meta["actor"] = actor
        return meta

    def to_structured(self) -> dict[str, Any]:
        """Return the event as a structured-mode CloudEvents JSON object."""
        out: dict[str, Any] = {
            "specversion": SPECVERSION,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "subject": self.subject,
            "time": self.time.isoformat(),
            "datacontenttype": "application/json",
        }
        out.update(self.extensions)
        out["data"] = self.data_json
        return out


def decode_json(raw: bytes | str) -> Any:
    """Decode bytes as JSON, refusing invalid UTF-8 and bad JSON with MALFORMED_JSON."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        msg = f"not valid JSON: {exc}"
        raise MalformedInputError(msg) from None


def parse_structured(raw: bytes | str | Mapping[str, Any]) -> IncomingEvent:
    """Parse one structured-mode CloudEvent (bytes, text or an already-decoded object)."""
    obj = raw if isinstance(raw, Mapping) else decode_json(raw)
    if not isinstance(obj, Mapping):
        msg = f"a CloudEvent must be a JSON object, got {type(obj).__name__}"
        raise MalformedInputError(msg)
    return validate_envelope(obj)


def parse_binary(headers: Mapping[str, str], value: bytes | None) -> IncomingEvent:
    """Parse a binary-mode CloudEvent: ``ce_*`` headers plus the data as the value.

    Header names are matched case-insensitively and may use ``ce_`` (Kafka) or
    ``ce-`` (HTTP) prefixes.
    """
    attributes: dict[str, Any] = {}
    content_type: str | None = None
    for name, header_value in headers.items():
        lower = name.lower()
        if lower.startswith(("ce_", "ce-")):
            attributes[lower[3:]] = header_value
        elif lower == "content-type":
            content_type = header_value
    if content_type is not None:
        attributes["datacontenttype"] = content_type
    if value is None or value == b"":
        msg = "binary-mode event has no value (data is required)"
        raise ContractError(msg, code="MISSING_ATTRIBUTE")
    attributes["data"] = decode_json(value)
    return validate_envelope(attributes)


def _attribute(obj: Mapping[str, Any], name: str) -> str:
    value = obj.get(name)
    if value is None or value == "":
        msg = f"required CloudEvents attribute '{name}' is missing"
        raise ContractError(msg, code="MISSING_ATTRIBUTE", attribute=name)
    if not isinstance(value, str):
        msg = f"attribute '{name}' must be a string, got {type(value).__name__}"
        raise ContractError(msg, code="INVALID_ATTRIBUTE", attribute=name)
    if len(value) > MAX_ATTRIBUTE_LENGTH:
        msg = f"attribute '{name}' is longer than {MAX_ATTRIBUTE_LENGTH} characters"
        raise ContractError(msg, code="INVALID_ATTRIBUTE", attribute=name)
    if value != value.strip():
        msg = f"attribute '{name}' has leading or trailing whitespace"
        raise ContractError(msg, code="INVALID_ATTRIBUTE", attribute=name)
    return value


def parse_time(value: str, *, where: str = "time") -> datetime:
    """Parse an RFC 3339 time; refuse naive times with NAIVE_DATETIME."""
    if "T" not in value and " " not in value:
        msg = f"'{where}' must be an RFC 3339 date-time, got {value!r}"
        raise ContractError(msg, code="INVALID_ATTRIBUTE", attribute=where)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        msg = f"'{where}' is not an RFC 3339 date-time: {value!r}"
        raise ContractError(msg, code="INVALID_ATTRIBUTE", attribute=where) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        msg = f"'{where}' has no UTC offset ({value!r}); send e.g. 2024-03-05T09:30:00+08:00"
        raise ContractError(msg, code="NAIVE_DATETIME", attribute=where)
    return parsed


def _check_content(obj: Mapping[str, Any]) -> None:
    content_type = obj.get("datacontenttype")
    if content_type is not None and (
        not isinstance(content_type, str)
        or content_type.split(";")[0].strip().lower() not in JSON_CONTENT_TYPES
    ):
        msg = f"datacontenttype must be application/json, got {content_type!r}"
        raise ContractError(msg, code="INVALID_ATTRIBUTE", attribute="datacontenttype")
    if "data_base64" in obj:
        msg = "data_base64 is not accepted: send the data as a JSON object"
        raise ContractError(msg, code="INVALID_ATTRIBUTE", attribute="data_base64")


def _extensions(obj: Mapping[str, Any]) -> dict[str, str]:
    extensions: dict[str, str] = {}
    for name, value in obj.items():
        if name in CONTEXT_ATTRIBUTES:
            continue
        if not isinstance(name, str) or not EXTENSION_NAME.match(name):
            msg = f"extension attribute name {name!r} must be 1-20 lower-case letters or digits"
            raise ContractError(msg, code="INVALID_ATTRIBUTE", attribute=str(name))
        if isinstance(value, float) or not isinstance(value, str | int | bool):
            msg = f"extension attribute '{name}' must be a string, integer or boolean"
            raise ContractError(msg, code="INVALID_ATTRIBUTE", attribute=name)
        extensions[name] = str(value)
    return extensions


def validate_envelope(obj: Mapping[str, Any]) -> IncomingEvent:
    """Check the CloudEvents attributes and the type's data contract."""
    specversion = _attribute(obj, "specversion")
    if specversion != SPECVERSION:
        msg = f"specversion must be '{SPECVERSION}', got {specversion!r}"
        raise ContractError(msg, code="INVALID_ATTRIBUTE", attribute="specversion")
    event_id = _attribute(obj, "id")
    source = _attribute(obj, "source")
    event_type = _attribute(obj, "type")
    subject = _attribute(obj, "subject")
    time = parse_time(_attribute(obj, "time"))

    _check_content(obj)
    extensions = _extensions(obj)

    model = CATALOGUE.get(event_type)
    if model is None:
        msg = f"unknown event type {event_type!r}; see GET /v1/schemas for the catalogue"
        raise UnknownTypeError(msg, attribute="type")
    if model.SYSTEM:
        msg = f"{event_type} is emitted by practice-events itself and cannot be sent"
        raise SystemEventTypeError(msg, attribute="type")

    if "data" not in obj or obj["data"] is None:
        msg = "required CloudEvents attribute 'data' is missing"
        raise ContractError(msg, code="MISSING_ATTRIBUTE", attribute="data")
    raw_data = obj["data"]
    if not isinstance(raw_data, Mapping):
        msg = f"data must be a JSON object, got {type(raw_data).__name__}"
        raise ContractError(msg, code="SCHEMA_VIOLATION", attribute="data")

    try:
        data = model.model_validate(raw_data)
    except ValidationError as exc:
        raise contract_error_from(exc, event_type) from None

    data_json = data.model_dump(mode="json", exclude_none=True)
    digest = fingerprint(event_type, subject, time, data_json)
    return IncomingEvent(
        id=event_id,
        source=source,
        type=event_type,
        subject=subject,
        time=time,
        data=data,
        data_json=data_json,
        extensions=extensions,
        digest=digest,
    )


def fingerprint(event_type: str, subject: str, time: datetime, data_json: Mapping[str, Any]) -> str:
    """Return a stable hash of what an event says (not of how it was spelled)."""
    canonical = orjson.dumps(
        [event_type, subject, time.isoformat(), data_json], option=orjson.OPT_SORT_KEYS
    )
    return hashlib.sha256(canonical).hexdigest()[:32]


def contract_error_from(exc: ValidationError, event_type: str) -> ContractError:
    """Turn a pydantic error into one ContractError with a stable code.

    The first error decides the code; the reason lists up to three errors with
    their field paths so the producer can fix them all at once.
    """
    errors = exc.errors(include_url=False)
    first = errors[0]
    kind = str(first.get("type", ""))
    if kind in _OUT_OF_RANGE_ERRORS:
        code = "OUT_OF_RANGE"
    elif kind in _NAIVE_ERRORS:
        code = "NAIVE_DATETIME"
    else:
        code = "SCHEMA_VIOLATION"
    parts = []
    for error in errors[:3]:
        path = ".".join(str(p) for p in error.get("loc", ()))
        where = f"data.{path}" if path else "data"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    reason = f"{event_type}: " + "; ".join(parts) + more
    return ContractError(
        reason, code=code, fields=[".".join(map(str, e.get("loc", ()))) for e in errors]
    )
