"""Export the log as CloudEvents JSON Lines (optionally gzip), and import such a file back.

What is exported
----------------
Every event a producer (or the scheduler) sent, as the structured-mode
CloudEvent it arrived as: the original ``id``, ``source``, ``type``,
``subject``, ``time``, the ``actor`` extension, and ``data``. Three rules:

* **Derived events are left out.** Events the domain emitted *because of*
  another event in the same command (``meta.cause`` is set: hours credited,
  points, star levels, an automatic reopen) are re-derived on import, with
  the same uuid5 ids, by the same rules. Scheduler events (overdue,
  escalation; source ``practice-events`` without a cause) depend on the
  clock, so they are exported and imported as they were.
* **Personal details are exported decrypted** (the file then holds personal
  data: keep it like the store). Those of a person whose keys were
  destroyed (``privacy erase``) are left out and counted as ``erased``;
  the erasure event itself is exported, and importing it destroys the keys
  in the target store too.
* **Data is the producer's data.** Stored data may carry decisions the
  aggregate added (due times, hours, a filled-in default). Only the fields
  of the type's contract are kept, and the result is checked against the
  fingerprint recorded when the event was first accepted
  (``ingested_keys``); when a default was filled into an optional field the
  field is dropped again until the fingerprint matches. An event whose
  payload cannot be matched is exported with its contract fields and counted
  as ``unverified``.
* **Unit filter** (``--unit U``). A unit is a site and every site registered
  under it. An *aggregate* belongs to the export when it is one of those
  sites, or when its creating event names one of them in a site field (the
  contract's ``REFERENCES`` of kind ``site``: ``site_id``, ``unit_id``,
  ``home_site_id``, ``responsible_unit_id`` ...). All events of a member
  aggregate are exported, whichever site later events name. The unit's
  ancestors (their site events) and unit-less reference data (checklists,
  scoring models) are included so the file can be imported on its own.
  Aggregates created elsewhere (a volunteer of another station who served
  here) are not: their events belong to their own unit's export.
* **Time range** (``--from``/``--to``, both inclusive) applies to business
  time (CloudEvents ``time``). A ranged export is for reading and archiving;
  to restore a store, export without ``--from`` so creations are included.

Events are written in log order, so importing a file replays them in the
order they were originally applied.

Import
------
:func:`import_events` feeds a file through the ingest pipeline in batches:
ids and sources are preserved, a second import of the same file is all
duplicates, and refused lines are recorded as rejections like any other
input. Scheduler (system) events in the file are trusted as the auditor's
own export and applied without the producer-side ``SYSTEM_EVENT_TYPE``
refusal; the domain still checks them.
"""

from __future__ import annotations

import gzip
import io
import itertools
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson

from practice_events.application import PracticeEvents
from practice_events.audit.history import state_decoder
from practice_events.audit.integrity import PAGE, LogStore, log_store
from practice_events.contracts import load_all as load_contracts
from practice_events.contracts.base import CATALOGUE, EventData
from practice_events.contracts.envelope import (
    SPECVERSION,
    IncomingEvent,
    fingerprint,
)
from practice_events.domain.base import aggregate_id
from practice_events.errors import PracticeEventsError
from practice_events.ingest.files import IngestSummary
from practice_events.ingest.pipeline import Pipeline, RawInput
from practice_events.privacy import PERSONAL_DETAILS_RECORDED
from practice_events.privacy.crypto import digest_key_id
from practice_events.privacy.reveal import Revealer

MAX_OPTIONAL_FIELDS = 10
"""Optional fields tried when matching a payload to its fingerprint (2^10 tries at most)."""


@dataclass
class ExportSummary:
    """What an export wrote and what it left out."""

    path: str = ""
    unit: str | None = None
    start: str | None = None
    end: str | None = None
    events_read: int = 0
    exported: int = 0
    derived_skipped: int = 0
    outside_unit: int = 0
    outside_range: int = 0
    unverified: int = 0
    unresolved: int = 0
    erased: int = 0
    last_position: int = 0
    seconds: float = 0.0
    by_type: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Events read per second."""
        return self.events_read / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Return the summary as JSON-ready data."""
        return {
            "path": self.path,
            "unit": self.unit,
            "from": self.start,
            "to": self.end,
            "events_read": self.events_read,
            "exported": self.exported,
            "derived_skipped": self.derived_skipped,
            "outside_unit": self.outside_unit,
            "outside_range": self.outside_range,
            "unverified": self.unverified,
            "unresolved": self.unresolved,
            "erased": self.erased,
            "last_position": self.last_position,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.rate, 1),
            "by_type": dict(sorted(self.by_type.items())),
        }


# --- producer payloads -----------------------------------------------------------------------


def producer_data(event_type: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """Return the stored data restricted to the fields of the type's contract."""
    model = CATALOGUE.get(event_type)
    if model is None:
        return dict(data)
    fields = model.model_fields
    return {k: v for k, v in data.items() if k in fields}


def match_fingerprint(
    event_type: str,
    subject: str,
    when: datetime,
    data: dict[str, Any],
    digest: str,
    *,
    matches: Callable[[str], bool] | None = None,
) -> dict[str, Any] | None:
    """Return ``data`` (or it minus filled-in optional fields) matching ``digest``, or None.

    ``matches`` compares a plain fingerprint with the stored digest when that
    is not a plain equality (personal details: the stored digest is keyed).
    """
    same = matches or digest.__eq__
    if same(fingerprint(event_type, subject, when, data)):
        return data
    model = CATALOGUE.get(event_type)
    if model is None:
        return None
    optional = [k for k in data if not model.model_fields[k].is_required()]
    for size in range(1, min(len(optional), MAX_OPTIONAL_FIELDS) + 1):
        for dropped in itertools.combinations(optional, size):
            trial = {k: v for k, v in data.items() if k not in dropped}
            if same(fingerprint(event_type, subject, when, trial)):
                return trial
    return None


def _site_refs(model: type[EventData], data: Mapping[str, Any]) -> list[str]:
    """Return the site ids a payload names in its site-reference fields."""
    refs: list[str] = []
    for name, kind in model.REFERENCES.items():
        if kind != "site":
            continue
        value = data.get(name)
        if isinstance(value, list | tuple):
            refs.extend(str(v) for v in value)
        elif value is not None:
            refs.append(str(value))
    return refs


class UnitFilter:
    """Decides, in one pass in log order, which aggregates belong to a unit's export."""

    def __init__(self, unit: str) -> None:
        self.unit = unit
        self.tree: set[str] = set()
        self.parent_of: dict[str, str | None] = {}
        self.members: set[UUID] = set()
        self.found = False
        self.ancestors: list[str] = []

    def on_creation(self, event_type: str, subject: str, data: Mapping[str, Any]) -> None:
        """Decide membership of the aggregate this creation event creates."""
        model = CATALOGUE.get(event_type)
        if model is None:
            return
        kind = model.AGGREGATE
        if kind == "site":
            parent = data.get("parent_id")
            self.parent_of[subject] = str(parent) if parent is not None else None
            if subject == self.unit or (parent is not None and parent in self.tree):
                self.tree.add(subject)
                self.members.add(aggregate_id("site", subject))
                if subject == self.unit:
                    self._found()
            return
        refs = _site_refs(model, data)
        has_site_fields = any(k == "site" for k in model.REFERENCES.values())
        if (refs and any(r in self.tree for r in refs)) or not has_site_fields:
            self.members.add(aggregate_id(kind, subject))

    def _found(self) -> None:
        self.found = True
        parent = self.parent_of.get(self.unit)
        while parent is not None and parent not in self.ancestors:
            self.ancestors.append(parent)
            self.members.add(aggregate_id("site", parent))
            parent = self.parent_of.get(parent)

    def belongs(self, originator: UUID) -> bool:
        """Tell whether an event of aggregate ``originator`` is exported."""
        return originator in self.members


# --- export ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Candidate:
    position: int
    originator: UUID
    version: int
    event_type: str
    subject: str
    source: str
    event_id: str
    time_text: str
    when: datetime
    actor: str | None
    data: dict[str, Any]


def _open_out(path: Path, *, compress: bool) -> io.BufferedIOBase:
    if compress:
        return gzip.open(path, "wb", compresslevel=6)
    return path.open("wb")


class _Orderer:
    """Puts events in an order the pipeline can apply: references before use.

    The log is not quite the order events were applied in: one ingest batch
    is saved aggregate by aggregate, so a volunteer's ``joined_team`` can sit
    before the ``team_registered`` that came first in the same batch. Events
    are emitted in log order unless an aggregate they refer to is created
    only later in the log (or its creation is still waiting itself); such an
    event, and the later events of its own aggregate, wait until that
    creation is written. Only references checked at ingest matter (the
    contract's ``REFERENCES``): commands see no other aggregate.
    """

    def __init__(self) -> None:
        self.seen: set[UUID] = set()
        self.waiting_creations: set[UUID] = set()
        self.pending: list[_Candidate] = []
        self.blocked: set[UUID] = set()  # aggregates with a waiting event
        self.needed: set[UUID] = set()  # creations some waiting event refers to
        self.dirty = False

    def saw_creation(self, originator: UUID) -> None:
        """Note that the log created this aggregate here (exported or not)."""
        self.seen.add(originator)
        if originator in self.needed:
            self.dirty = True

    def _missing(self, c: _Candidate) -> UUID | None:
        """Return an aggregate ``c`` refers to that is not written yet, or None."""
        model = CATALOGUE.get(c.event_type)
        if model is None or not model.REFERENCES:
            return None
        for name, kind in model.REFERENCES.items():
            value = c.data.get(name)
            values = value if isinstance(value, list | tuple) else (value,)
            for subject in values:
                if subject is None:
                    continue
                ref = aggregate_id(kind, str(subject))
                if ref not in self.seen or ref in self.waiting_creations:
                    return ref
        return None

    def push(self, c: _Candidate) -> list[_Candidate]:
        """Add the next exported event (in log order); return those that can be written now."""
        out: list[_Candidate] = []
        missing = None if c.originator in self.blocked else self._missing(c)
        if c.originator in self.blocked or missing is not None:
            self.pending.append(c)
            self.blocked.add(c.originator)
            if missing is not None:
                self.needed.add(missing)
            if c.version == 1:
                self.waiting_creations.add(c.originator)
        else:
            out.append(c)
            if c.originator in self.needed:
                self.dirty = True
        if self.dirty:
            out.extend(self._drain())
        return out

    def _drain(self) -> list[_Candidate]:
        """Write every waiting event whose references are now written, keeping order."""
        out: list[_Candidate] = []
        progress = True
        while progress and self.pending:
            progress = False
            kept: list[_Candidate] = []
            self.blocked = set()
            self.needed = set()
            for item in self.pending:
                missing = None if item.originator in self.blocked else self._missing(item)
                if item.originator in self.blocked or missing is not None:
                    self.blocked.add(item.originator)
                    if missing is not None:
                        self.needed.add(missing)
                    kept.append(item)
                    continue
                out.append(item)
                self.waiting_creations.discard(item.originator)
                progress = True
            self.pending = kept
        self.dirty = False
        return out

    def flush(self) -> list[_Candidate]:
        """Return what still waits (its references were never created): the import refuses it."""
        out, self.pending = self.pending, []
        self.waiting_creations.clear()
        self.blocked.clear()
        self.needed.clear()
        return out


class _Exporter:
    """One export run: selects events page by page and writes them."""

    def __init__(
        self,
        app: PracticeEvents,
        summary: ExportSummary,
        unit: str | None,
        start: datetime | None,
        end: datetime | None,
    ) -> None:
        self.app = app
        self.decode = state_decoder(app)
        self.summary = summary
        self.members = UnitFilter(unit) if unit else None
        self.held: list[_Candidate] = []  # events seen before the unit's own registration
        self.start = start
        self.end = end
        self.order = _Orderer()
        self.revealer: Revealer | None = None

    def select(self, rows: Sequence[tuple[int, bytes, int, str, bytes]]) -> list[_Candidate]:
        """Return the events of a page to write now, in an order the pipeline can apply."""
        out: list[_Candidate] = []
        members = self.members
        for row in rows:
            _, originator, version, topic, state = row
            if version == 1:
                self.order.saw_creation(UUID(bytes=originator))
            obj = self.decode(state)
            meta = obj.get("meta") or {}
            if meta.get("cause"):
                self.summary.derived_skipped += 1
                continue
            if topic == PERSONAL_DETAILS_RECORDED:
                self.revealer = self.revealer or Revealer(self.app)
                shown = self.revealer.reveal(topic, str(meta.get("subject", "")), obj["data"])
                if shown.get("erased"):
                    self.summary.erased += 1
                    continue
                obj["data"] = shown
            candidate = _candidate(row, meta, obj)
            if members is not None:
                if version == 1:
                    members.on_creation(topic, candidate.subject, candidate.data)
                if not members.found:
                    self.held.append(candidate)
                    continue
                if self.held:
                    for kept in self._release():
                        out.extend(self._offer(kept))
                if not members.belongs(candidate.originator):
                    self.summary.outside_unit += 1
                    continue
            out.extend(self._offer(candidate))
        return out

    def _offer(self, c: _Candidate) -> list[_Candidate]:
        """Apply the time range, then the ordering."""
        if (self.start is not None and c.when < self.start) or (
            self.end is not None and c.when > self.end
        ):
            self.summary.outside_range += 1
            return []
        return self.order.push(c)

    def _release(self) -> list[_Candidate]:
        """Once the unit is known: keep the held events of its ancestors and reference data."""
        assert self.members is not None
        kept = [c for c in self.held if self.members.belongs(c.originator)]
        self.summary.outside_unit += len(self.held) - len(kept)
        self.held = []
        return kept

    def write(self, stream: io.BufferedIOBase, chosen: Sequence[_Candidate]) -> None:
        """Check payloads against their recorded fingerprints and write the lines."""
        summary = self.summary
        if not chosen:
            return
        digests = self.app.store.select_digests(list({(c.source, c.event_id) for c in chosen}))
        lines: list[bytes] = []
        for c in chosen:
            data: dict[str, Any] = c.data
            digest = digests.get((c.source, c.event_id))
            matched = (
                match_fingerprint(
                    c.event_type,
                    c.subject,
                    c.when,
                    c.data,
                    digest,
                    matches=self._matcher(digest),
                )
                if digest
                else None
            )
            if matched is None:
                summary.unverified += 1
            else:
                data = matched
            event: dict[str, Any] = {
                "specversion": SPECVERSION,
                "id": c.event_id,
                "source": c.source,
                "type": c.event_type,
                "subject": c.subject,
                "time": c.time_text,
                "datacontenttype": "application/json",
            }
            if c.actor:
                event["actor"] = c.actor
            event["data"] = data
            lines.append(orjson.dumps(event))
            summary.by_type[c.event_type] = summary.by_type.get(c.event_type, 0) + 1
        stream.write(b"\n".join(lines) + b"\n")
        summary.exported += len(lines)

    def _matcher(self, digest: str) -> Callable[[str], bool] | None:
        """How to compare plain fingerprints with a keyed (personal-details) digest."""
        if digest_key_id(digest) is None:
            return None
        self.revealer = self.revealer or Revealer(self.app)
        revealer = self.revealer
        return lambda plain: revealer.digest_matches(digest, plain)


def export_events(
    app: PracticeEvents,
    out: Path,
    *,
    unit: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    upto: int | None = None,
    store: LogStore | None = None,
    page: int = PAGE,
    progress: Callable[[int], None] | None = None,
) -> ExportSummary:
    """Write the log (or a unit's part of it, in a time range) as CloudEvents JSON Lines.

    The file is written beside ``out`` and renamed when complete, so a failed
    export never leaves a truncated file under the final name. ``upto``
    stops at that log position (the log as known then).
    """
    load_contracts()
    store = store or log_store(app)
    summary = ExportSummary(
        path=str(out),
        unit=unit,
        start=start.isoformat() if start else None,
        end=end.isoformat() if end else None,
    )
    started = time.perf_counter()
    exporter = _Exporter(app, summary, unit, start, end)
    tmp = out.with_name(out.name + ".partial")
    stop = upto if upto is not None else store.log_head()
    try:
        with _open_out(tmp, compress=out.name.endswith(".gz")) as stream:
            after = 0
            while rows := store.read_log(after, page, stop):
                after = rows[-1][0]
                summary.events_read += len(rows)
                summary.last_position = after
                exporter.write(stream, exporter.select(rows))
                if progress is not None:
                    progress(len(rows))
            unresolved = exporter.order.flush()
            summary.unresolved = len(unresolved)
            exporter.write(stream, unresolved)
        if exporter.members is not None and not exporter.members.found:
            msg = f"no site {unit!r} was registered in the log; nothing to export for it"
            raise PracticeEventsError(msg, code="NOT_FOUND")
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    summary.seconds = time.perf_counter() - started
    return summary


def _candidate(
    row: tuple[int, bytes, int, str, bytes], meta: Mapping[str, Any], obj: Mapping[str, Any]
) -> _Candidate:
    position, originator, version, topic, _ = row
    time_text = str(meta.get("time", ""))
    return _Candidate(
        position=position,
        originator=UUID(bytes=originator),
        version=version,
        event_type=topic,
        subject=str(meta.get("subject", "")),
        source=str(meta.get("source", "")),
        event_id=str(meta.get("id", "")),
        time_text=time_text,
        when=datetime.fromisoformat(time_text),
        actor=meta.get("actor"),
        data=producer_data(topic, obj.get("data") or {}),
    )


# --- import ----------------------------------------------------------------------------------


def _open_in(path: Path) -> io.BufferedIOBase:
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rb")
    return path.open("rb")


def trusted_system_event(obj: Mapping[str, Any]) -> IncomingEvent | None:
    """Build an IncomingEvent for a scheduler event from an export, or None if it is not one.

    Producers may not send system types; an auditor's own export may carry
    them (see the module docstring). Anything malformed returns None and goes
    through the normal path, which records the refusal.
    """
    event_type = obj.get("type")
    model = CATALOGUE.get(event_type) if isinstance(event_type, str) else None
    if model is None or not model.SYSTEM:
        return None
    try:
        data = model.model_validate(obj["data"])
        when = datetime.fromisoformat(str(obj["time"]))
        if when.tzinfo is None:
            return None
        subject = str(obj["subject"])
        data_json = data.model_dump(mode="json", exclude_none=True)
        actor = obj.get("actor")
        return IncomingEvent(
            id=str(obj["id"]),
            source=str(obj["source"]),
            type=str(event_type),
            subject=subject,
            time=when,
            data=data,
            data_json=data_json,
            extensions={"actor": str(actor)} if actor else {},
            digest=fingerprint(str(event_type), subject, when, data_json),
        )
    except (KeyError, ValueError, TypeError):
        return None


def _inputs(stream: io.BufferedIOBase, name: str) -> Iterator[RawInput | IncomingEvent]:
    for lineno, raw in enumerate(stream, start=1):
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            obj = None  # the pipeline records the refusal with its reason
        trusted = trusted_system_event(obj) if isinstance(obj, dict) else None
        if trusted is not None:
            yield trusted
            continue
        yield RawInput(payload=line, channel="import", position=f"{name}:{lineno}")


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def import_events(
    pipeline: Pipeline,
    path: Path,
    *,
    batch_size: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> IngestSummary:
    """Feed an exported file through the pipeline; return accepted/duplicate/rejected counts."""
    load_contracts()
    if not path.is_file():
        msg = f"no such file: {path}"
        raise PracticeEventsError(msg, code="NOT_FOUND")
    summary = IngestSummary()
    started = time.perf_counter()
    with _open_in(path) as stream:
        for batch in _chunks(_inputs(stream, path.name), batch_size):
            result = pipeline.process(batch)
            summary.lines += len(batch)
            summary.events_stored += result.events_stored
            summary.last_position = result.last_position
            for outcome in result.outcomes:
                if outcome.status == "accepted":
                    summary.accepted += 1
                elif outcome.status == "duplicate":
                    summary.duplicate += 1
                else:
                    summary.rejected += 1
                    summary.rejected_by_code[outcome.code or "UNKNOWN"] += 1
            if progress is not None:
                progress(len(batch))
    summary.seconds = time.perf_counter() - started
    return summary
