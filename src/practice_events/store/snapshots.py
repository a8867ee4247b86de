"""Aggregate snapshots: a cache of an aggregate's state at a version.

The ingest pipeline rebuilds an aggregate it does not hold in memory from its
whole history. A volunteer who checks in every week has hundreds of events
after a few years, so a worker that starts cold (after a deploy or a crash)
spends most of its time replaying old check-ins: on a 275k-event demo store
the first 10,000 inputs after a restart replayed 127,000 stored events. A
snapshot holds the aggregate's state at a version; loading reads it and only
the events after it.

Snapshots are a cache, never a record:

* they live in their own table, one row per aggregate (the latest), outside
  the log, the hash chain, exports and replays, which read events only;
* a snapshot is written in the same transaction as the events that reach its
  version, so it never describes state that was rolled back;
* each carries the *fingerprint* of the code that made it (the domain
  package's source and the eventsourcing version). A snapshot whose
  fingerprint differs from the running code's, or that cannot be read, is
  ignored and the aggregate is rebuilt from its events, as before; the next
  batch that touches it writes a fresh one;
* the state is tagged JSON (:func:`pack`), not pickle: reading a row can only
  build plain values and this package's own dataclasses and aggregates. It is
  compressed and encrypted like event state when the store is.

Aggregate state holds no personal details (those are sealed under per-person
keys; a volunteer keeps only the key id), so crypto-shredding is unaffected.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import Enum
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import orjson
from eventsourcing.domain import BaseAggregate

if TYPE_CHECKING:
    from eventsourcing.persistence import Mapper

    from practice_events.domain.base import PracticeAggregate

SNAPSHOT_FORMAT = 1
"""Version of the encoding below; part of the fingerprint."""

_OWN_PACKAGE = "practice_events."
_SKIPPED = frozenset({"_pending_events"})


class UnsnapshottableError(TypeError):
    """The aggregate holds a value that the snapshot encoding does not know."""


@dataclass(frozen=True, slots=True)
class SnapshotRow:
    """A stored snapshot: aggregate id, version, code fingerprint and the sealed state."""

    originator_id: UUID
    version: int
    fingerprint: str
    state: bytes


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """Hash of what decides how events build state and how it is encoded.

    It covers the domain package's source, this module's and the eventsourcing
    version: any change to a domain module (an apply method, a new attribute)
    changes it, so snapshots made by other code are ignored rather than trusted.
    """
    from practice_events import domain

    digest = hashlib.sha256(f"format {SNAPSHOT_FORMAT}\n".encode())
    digest.update(f"eventsourcing {metadata.version('eventsourcing')}\n".encode())
    paths = [Path(__file__), *sorted(Path(domain.__file__).parent.glob("*.py"))]
    for path in paths:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:32]


# -- tagged JSON ---------------------------------------------------------------------------
#
# JSON-native values stay as they are. Everything else becomes a dict with exactly one key
# starting with "$"; a plain dict that would look like that, or that has keys other than
# strings, is written as {"$map": [[key, value], ...]}.


_SCALARS = frozenset({type(None), str, bool, int})


def _pack_float(value: float) -> float:
    if not math.isfinite(value):
        msg = f"non-finite float {value!r}"
        raise UnsnapshottableError(msg)
    return value


_PACKERS: dict[type[Any], Callable[[Any], Any]] = {
    float: _pack_float,
    tuple: lambda v: {"$tuple": [pack(x) for x in v]},
    set: lambda v: {"$set": [pack(x) for x in v]},
    frozenset: lambda v: {"$frozenset": [pack(x) for x in v]},
    datetime: lambda v: {"$datetime": v.isoformat()},
    date: lambda v: {"$date": v.isoformat()},
    timedelta: lambda v: {"$timedelta": [v.days, v.seconds, v.microseconds]},
    UUID: lambda v: {"$uuid": v.hex},
}

_UNPACKERS: dict[str, Callable[[Any], Any]] = {
    "$map": lambda inner: {unpack(k): unpack(v) for k, v in inner},
    "$tuple": lambda inner: tuple(unpack(v) for v in inner),
    "$set": lambda inner: {unpack(v) for v in inner},
    "$frozenset": lambda inner: frozenset(unpack(v) for v in inner),
    "$datetime": datetime.fromisoformat,
    "$date": date.fromisoformat,
    "$timedelta": lambda inner: timedelta(days=inner[0], seconds=inner[1], microseconds=inner[2]),
    "$uuid": lambda inner: UUID(hex=inner),
}


def pack(value: Any) -> Any:
    """Turn ``value`` into JSON-native data that :func:`unpack` turns back into an equal value.

    Raises :class:`UnsnapshottableError` for a type it does not know (rather than
    guessing), and for floats that JSON cannot hold.
    """
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is list:
        return [pack(v) for v in value]
    if kind is dict:
        if all(type(k) is str for k in value) and not (
            len(value) == 1 and next(iter(value)).startswith("$")
        ):
            return {k: pack(v) for k, v in value.items()}
        return {"$map": [[pack(k), pack(v)] for k, v in value.items()]}
    packer = _PACKERS.get(kind)
    if packer is not None:
        return packer(value)
    return _pack_object(kind, value)


def _pack_object(kind: type[Any], value: Any) -> Any:
    """An enumeration member or a dataclass instance of this package, by class path."""
    path = f"{kind.__module__}:{kind.__qualname__}"
    if issubclass(kind, Enum) and kind.__module__.startswith(_OWN_PACKAGE):
        return {"$enum": [path, pack(value.value)]}
    if _plain_dataclass_cached(kind):
        return {"$dataclass": [path, [pack(getattr(value, n)) for n in _field_names(kind)]]}
    msg = f"cannot snapshot a {kind.__module__}.{kind.__qualname__}"
    raise UnsnapshottableError(msg)


def unpack(value: Any) -> Any:
    """Turn what :func:`pack` produced back into the original value."""
    kind = type(value)
    if kind is list:
        return [unpack(v) for v in value]
    if kind is not dict:
        return value
    if len(value) == 1:
        ((tag, inner),) = value.items()
        if tag.startswith("$"):
            if tag == "$dataclass":
                return _unpack_dataclass(*inner)
            if tag == "$enum":
                return _unpack_enum(*inner)
            unpacker = _UNPACKERS.get(tag)
            if unpacker is None:
                msg = f"unknown snapshot tag {tag!r}"
                raise ValueError(msg)
            return unpacker(inner)
    return {k: unpack(v) for k, v in value.items()}


def _unpack_dataclass(topic: str, values: list[Any]) -> Any:
    cls = _own_class(topic)
    if not _plain_dataclass(cls):
        msg = f"{topic} is not a plain dataclass"
        raise ValueError(msg)
    names = _field_names(cls)
    if len(names) != len(values):
        msg = f"{topic}: {len(values)} values for {len(names)} fields"
        raise ValueError(msg)
    obj = object.__new__(cls)
    for name, raw in zip(names, values, strict=True):
        object.__setattr__(obj, name, unpack(raw))
    return obj


_PLAIN: dict[type[Any], bool] = {}
_FIELDS: dict[type[Any], tuple[str, ...]] = {}


def _plain_dataclass_cached(cls: type[Any]) -> bool:
    known = _PLAIN.get(cls)
    if known is None:
        known = _PLAIN[cls] = _plain_dataclass(cls)
    return known


def _field_names(cls: type[Any]) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def _unpack_enum(topic: str, raw: Any) -> Any:
    cls = _own_class(topic)
    if not issubclass(cls, Enum):
        msg = f"{topic} is not an enumeration"
        raise ValueError(msg)
    return cls(unpack(raw))


def _plain_dataclass(cls: type[Any]) -> bool:
    """A dataclass of this package that is not an aggregate (those are dataclasses too)."""
    return (
        dataclasses.is_dataclass(cls)
        and cls.__module__.startswith(_OWN_PACKAGE)
        and not issubclass(cls, BaseAggregate)
    )


def _own_class(topic: str) -> type[Any]:
    """Resolve ``module:qualname`` to a class of this package (never anything else a row names)."""
    module_name, _, qualname = topic.partition(":")
    if not module_name.startswith(_OWN_PACKAGE) or not qualname:
        msg = f"snapshot names a foreign class {topic!r}"
        raise ValueError(msg)
    try:
        found: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        msg = f"snapshot names a missing class {topic!r}"
        raise ValueError(msg) from exc
    if not isinstance(found, type):
        msg = f"{topic} is not a class"
        raise ValueError(msg)
    return found


# -- aggregates ----------------------------------------------------------------------------


class SnapshotCodec:
    """Encodes aggregates into sealed snapshot bytes and back, with the store's at-rest settings.

    ``mapper`` is the application's: its compressor and cipher (if any) seal
    the snapshot exactly as they seal event state.
    """

    def __init__(self, mapper: Mapper[UUID], fingerprint: str | None = None) -> None:
        self.compressor = mapper.compressor
        self.cipher = mapper.cipher
        self.fingerprint = fingerprint or code_fingerprint()

    def take(self, aggregate: PracticeAggregate) -> SnapshotRow:
        """Return the snapshot row of ``aggregate`` as it is now (raises if it cannot encode it)."""
        state = {k: v for k, v in aggregate.__dict__.items() if k not in _SKIPPED}
        body = orjson.dumps({"kind": aggregate.KIND, "state": pack(state)})
        if self.compressor is not None:
            body = self.compressor.compress(body)
        if self.cipher is not None:
            body = self.cipher.encrypt(body)
        return SnapshotRow(aggregate.id, aggregate.version, self.fingerprint, body)

    def restore(self, row: SnapshotRow) -> PracticeAggregate:
        """Rebuild the aggregate a row describes (raises ``ValueError`` when it does not fit)."""
        from practice_events.domain import kinds

        if row.fingerprint != self.fingerprint:
            msg = "snapshot made by other code"
            raise ValueError(msg)
        body = row.state
        if self.cipher is not None:
            body = self.cipher.decrypt(body)
        if self.compressor is not None:
            body = self.compressor.decompress(body)
        decoded = orjson.loads(body)
        cls = kinds().get(decoded["kind"])
        if cls is None:
            msg = f"unknown aggregate kind {decoded['kind']!r}"
            raise ValueError(msg)
        state = unpack(decoded["state"])
        if not isinstance(state, dict):
            msg = "snapshot state is not a mapping"
            raise ValueError(msg)
        aggregate = object.__new__(cls)
        aggregate.__dict__.update(state)
        aggregate.__dict__["_pending_events"] = []
        if aggregate.id != row.originator_id or aggregate.version != row.version:
            msg = "snapshot state does not match its row"
            raise ValueError(msg)
        return aggregate
