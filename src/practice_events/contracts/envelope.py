"""CloudEvents 1.0 envelopes: strict parsing into :class:`IncomingEvent`.

Producers send structured-mode JSON (``application/cloudevents+json``) or, on
Kafka, binary mode (``ce_*`` headers, the value is ``data``). Both end up
here. Validation is strict and every refusal carries a stable code:

=====================  =========================================================
code                   when
=====================  =========================================================
``MALFORMED_JSON``     not UTF-8, not JSON, or not a JSON object
``NESTING_TOO_DEEP``   arrays and objects nested more than 32 levels deep
``DUPLICATE_ATTRIBUTE``  an attribute given twice: two members of the same name
                       at the top of a structured event, two ``ce_*`` headers
                       naming the same attribute, two content types
``DUPLICATE_KEY``      an object inside ``data`` names a member twice
``MISSING_ATTRIBUTE``  a required attribute (id, source, specversion, type,
                       subject, time, data) is absent or empty
``INVALID_ATTRIBUTE``  an attribute has the wrong type or form (specversion not
                       1.0, a time that is not RFC 3339, a bad extension name,
                       data_base64, a content type other than JSON, a
                       ``dataschema`` that is not a string, control characters
                       or bytes that are not UTF-8 in a value, a value longer
                       than 256 characters, a ``ce_data`` header)
``NAIVE_DATETIME``     a time without an offset (periods need a time zone)
``UNKNOWN_TYPE``       the type (or that version of it) is not in the catalogue
``SYSTEM_EVENT_TYPE``  the type is emitted by practice-events only
``OUT_OF_RANGE``       a number or time outside its allowed range
``SCHEMA_VIOLATION``   any other mismatch with the type's data schema (U+0000
                       in a string included: PostgreSQL text cannot hold it)
=====================  =========================================================

Duplicates, depth and U+0000 are checked by :mod:`practice_events.contracts.strictjson`
(orjson accepts all three). Checks of time against the clock (``TIME_IN_FUTURE``,
``TIME_TOO_OLD``) need the time of receipt and are made by the ingest pipeline.

The checks of the envelope are written out by hand rather than as a pydantic
model: they run for every event, and hand-written checks give the exact code
and reason above at a fraction of the cost.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError

from practice_events.contracts import strictjson
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
RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})?$"
)
"""An RFC 3339 date-time (the offset is checked apart, for its own code)."""
_UNSTORABLE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
"""Control characters, and lone surrogates (bytes that were not UTF-8, see ``decode_headers``)."""
BINARY_ONLY_IN_VALUE = frozenset({"data", "data_base64"})
"""Attributes that binary mode carries in the record's value, never in a header."""

Headers = Mapping[str, str] | Sequence[tuple[str, str]]
"""Binary-mode headers: a mapping, or (name, value) pairs when names may repeat (Kafka)."""

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


def decode_json(raw: bytes | str, *, envelope: bool = True) -> Any:
    """Decode bytes as strict JSON (see :mod:`~practice_events.contracts.strictjson`).

    Invalid UTF-8 and bad JSON are ``MALFORMED_JSON``; a member named twice is
    ``DUPLICATE_ATTRIBUTE`` at the top of a CloudEvent (``envelope``) and
    ``DUPLICATE_KEY`` below it; too deep is ``NESTING_TOO_DEEP``.
    """
    if isinstance(raw, str):
        try:
            raw = raw.encode("utf-8")
        except UnicodeEncodeError:
            msg = "not valid JSON: the text holds lone surrogates (not UTF-8)"
            raise MalformedInputError(msg) from None
    return strictjson.loads(raw, envelope=envelope)


def header_items(headers: Headers | None) -> Iterable[tuple[str, str]]:
    """Return binary-mode headers as (name, value) pairs, repeats included."""
    if not headers:
        return ()
    if type(headers) is list:  # what the Kafka worker passes: skip the ABC check
        return headers
    if isinstance(headers, Mapping):
        return headers.items()
    return headers


def parse_structured(raw: bytes | str | Mapping[str, Any]) -> IncomingEvent:
    """Parse one structured-mode CloudEvent (bytes, text or an already-decoded object)."""
    obj = raw if isinstance(raw, Mapping) else decode_json(raw)
    if not isinstance(obj, Mapping):
        msg = f"a CloudEvent must be a JSON object, got {type(obj).__name__}"
        raise MalformedInputError(msg)
    return validate_envelope(obj)


_OTHER, _CE, _CONTENT_TYPE = 0, 1, 2
_MAX_REMEMBERED_NAMES = 256
_header_names: dict[str, tuple[int, str]] = {}
"""Header name -> (what it is, the attribute it names): the few names producers use, remembered."""


def _header_kind(name: str) -> tuple[int, str]:
    """Say whether a header names an attribute (``ce_*``/``ce-*``, any case) or the content type."""
    known = _header_names.get(name)
    if known is not None:
        return known
    lower = name.lower()
    if lower.startswith(("ce_", "ce-")):
        known = (_CE, lower[3:])
    elif lower == "content-type":
        known = (_CONTENT_TYPE, "")
    else:
        known = (_OTHER, "")
    if len(_header_names) < _MAX_REMEMBERED_NAMES:  # names are the producer's: bounded
        _header_names[name] = known
    return known


def parse_binary(headers: Headers, value: bytes | None) -> IncomingEvent:
    """Parse a binary-mode CloudEvent: ``ce_*`` headers plus the data as the value.

    Header names are matched case-insensitively and may use ``ce_`` (Kafka) or
    ``ce-`` (HTTP) prefixes. Kafka lets a record repeat a header: two headers
    naming the same attribute (``ce_id`` twice, or ``ce_id`` and ``CE-ID``)
    are refused with ``DUPLICATE_ATTRIBUTE`` rather than one silently winning.
    """
    attributes: dict[str, Any] = {}
    content_type: str | None = None
    for name, header_value in header_items(headers):
        kind, attribute = _header_kind(name)
        if kind == _CE:
            if attribute in BINARY_ONLY_IN_VALUE:
                msg = f"header {name!r}: in binary mode the data is the value, never a header"
                raise ContractError(msg, code="INVALID_ATTRIBUTE", attribute=attribute)
            if attribute in attributes:
                first = next(
                    n for n, _ in header_items(headers) if _header_kind(n) == (_CE, attribute)
                )
                msg = (
                    f"attribute '{attribute}' is given twice (headers {first!r} "
                    f"and {name!r}); send each attribute once"
                )
                raise ContractError(msg, code="DUPLICATE_ATTRIBUTE", attribute=attribute)
            attributes[attribute] = header_value
        elif kind == _CONTENT_TYPE:
            if content_type is not None:
                msg = "the content type is given twice; send one content-type header"
                raise ContractError(msg, code="DUPLICATE_ATTRIBUTE", attribute="datacontenttype")
            content_type = header_value
    if content_type is not None:
        attributes["datacontenttype"] = content_type
    if value is None or value == b"":
        msg = "binary-mode event has no value (data is required)"
        raise ContractError(msg, code="MISSING_ATTRIBUTE")
    attributes["data"] = decode_json(value, envelope=False)
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
    _check_characters(name, value)
    return value


def _check_characters(name: str, value: str) -> None:
    """Refuse control characters and bytes that were not UTF-8 in an attribute's value."""
    bad = _UNSTORABLE.search(value)
    if bad is None:
        return
    char = bad.group()
    if "\ud800" <= char <= "\udfff":
        msg = f"attribute '{name}' is not valid UTF-8"
    else:
        msg = f"attribute '{name}' contains the control character U+{ord(char):04X}"
    raise ContractError(msg, code="INVALID_ATTRIBUTE", attribute=name)


def parse_time(value: str, *, where: str = "time") -> datetime:
    """Parse an RFC 3339 time; refuse naive times with NAIVE_DATETIME.

    Only RFC 3339 is accepted (``2024-03-05T09:30:00+08:00``, ``…Z``, with
    fractions of a second), not the other ISO 8601 forms Python would read
    (week dates, basic format, no seconds): producers in other languages must
    be able to produce and check the same text.
    """
    if not RFC3339.match(value):
        msg = (
            f"'{where}' must be an RFC 3339 date-time such as 2024-03-05T09:30:00+08:00, "
            f"got {value!r}"
        )
        raise ContractError(msg, code="INVALID_ATTRIBUTE", attribute=where)
    try:
        parsed = datetime.fromisoformat(value.upper())
    except ValueError:
        msg = f"'{where}' is not an RFC 3339 date-time: {value!r}"
        raise ContractError(msg, code="INVALID_ATTRIBUTE", attribute=where) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        msg = f"'{where}' has no UTC offset ({value!r}); send e.g. 2024-03-05T09:30:00+08:00"
        raise ContractError(msg, code="NAIVE_DATETIME", attribute=where)
    return parsed


def _check_content(obj: Mapping[str, Any]) -> None:
    content_type = obj.get("datacontenttype")
    if (
        content_type is not None
        and content_type != "application/json"  # the usual one, spelled as is
        and (
            not isinstance(content_type, str)
            or content_type.split(";")[0].strip().lower() not in JSON_CONTENT_TYPES
        )
    ):
        msg = f"datacontenttype must be application/json, got {content_type!r}"
        raise ContractError(msg, code="INVALID_ATTRIBUTE", attribute="datacontenttype")
    if "data_base64" in obj:
        msg = "data_base64 is not accepted: send the data as a JSON object"
        raise ContractError(msg, code="INVALID_ATTRIBUTE", attribute="data_base64")
    schema = obj.get("dataschema")
    if schema is not None:
        if not isinstance(schema, str) or not schema or len(schema) > 2 * MAX_ATTRIBUTE_LENGTH:
            msg = "dataschema must be a URI (a non-empty string of at most 512 characters)"
            raise ContractError(msg, code="INVALID_ATTRIBUTE", attribute="dataschema")
        _check_characters("dataschema", schema)


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
        text = str(value)
        if len(text) > MAX_ATTRIBUTE_LENGTH:
            msg = f"extension attribute '{name}' is longer than {MAX_ATTRIBUTE_LENGTH} characters"
            raise ContractError(msg, code="INVALID_ATTRIBUTE", attribute=name)
        _check_characters(name, text)
        extensions[name] = text
    return extensions


def _required(obj: Mapping[str, Any]) -> tuple[str, str, str, str, str]:
    """Return id, source, type, subject and time once every required attribute passed.

    The checks and their order are those of :func:`_attribute` (specversion
    first, then ``1.0``, then the others in :data:`REQUIRED` order). Nearly
    every event passes them all, so they are first made together, cheaply;
    only an event that fails one is checked again attribute by attribute,
    which raises the error the first failing check gives.
    """
    get = obj.get
    values: tuple[Any, ...] = (
        get("specversion"),
        get("id"),
        get("source"),
        get("type"),
        get("subject"),
    )
    time: Any = get("time")
    for value in (*values, time):
        if (
            type(value) is not str
            or not value
            or len(value) > MAX_ATTRIBUTE_LENGTH
            or value != value.strip()
        ):
            break
    else:
        # A space never matches _UNSTORABLE, so the joined text matches only where a value does.
        if values[0] == SPECVERSION and _UNSTORABLE.search(" ".join((*values, time))) is None:
            return values[1], values[2], values[3], values[4], time
    specversion = _attribute(obj, "specversion")
    if specversion != SPECVERSION:
        msg = f"specversion must be '{SPECVERSION}', got {specversion!r}"
        raise ContractError(msg, code="INVALID_ATTRIBUTE", attribute="specversion")
    return (
        _attribute(obj, "id"),
        _attribute(obj, "source"),
        _attribute(obj, "type"),
        _attribute(obj, "subject"),
        _attribute(obj, "time"),
    )


def validate_envelope(obj: Mapping[str, Any]) -> IncomingEvent:
    """Check the CloudEvents attributes and the type's data contract."""
    event_id, source, event_type, subject, time_text = _required(obj)
    time = parse_time(time_text)

    _check_content(obj)
    extensions = _extensions(obj)

    model = CATALOGUE.get(event_type)
    if model is None:
        raise UnknownTypeError(_unknown_type_reason(event_type), attribute="type")
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


def _unknown_type_reason(event_type: str) -> str:
    """Say what is unknown: the type, or only this version of it (then name the known ones)."""
    stem, _, version = event_type.rpartition(".")
    known = sorted(
        name.rpartition(".")[2] for name in CATALOGUE if stem and name.rpartition(".")[0] == stem
    )
    if known and version not in known:
        return (
            f"unknown version {version!r} of {stem}; this service knows {', '.join(known)} "
            "(see GET /v1/schemas)"
        )
    return f"unknown event type {event_type!r}; see GET /v1/schemas for the catalogue"


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
