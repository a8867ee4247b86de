"""The closed-loop view: every finding, its SLA clocks and its timeline, and the loop's figures.

Supervision "finds problems, feeds them back and gets them fixed as a closed
loop" (DESIGN.md §5). This projection turns the finding events into three
tables:

``closed_loop_findings``
    one row per finding: stage, cycle, responsible and original unit, the
    due times of the current clocks (effective, i.e. after granted
    extensions), when each target was met, closure, counts of reopens,
    returns and extensions, and ``sla_ack`` / ``sla_rectify`` /
    ``sla_verify`` as stored facts: ``met``, ``met_late``, ``open`` or
    ``cancelled`` (NULL: not started). Whether an open clock is *running* or
    *breached* depends on the time you ask, so the query functions decide it
    against ``now`` (or a period's end), never the projection.
``closed_loop_clocks``
    one row per SLA clock (acknowledgement, rectification, verification):
    the unit it ran for, when it started, its original and effective due
    time, when and how it was met, or when it was superseded (a ruling that
    restarted it for another unit) or cancelled (closed without a fix,
    voided); for rectification clocks whether that cycle's fix was then
    verified; the overdue mark and escalation level the scheduler recorded.
    Keeping every clock (not just the current ones) makes figures of past
    periods stable: a reopen in April does not rewrite March.
``closed_loop_timeline``
    every event of every finding, with its business time, local date,
    source, actor, the responsible unit after it, and its data (JSON).

Attribution: a clock counts for the unit it ran for (a return does not stop
the acknowledgement clock of the unit that returned it; a ruling that
transfers the finding starts new clocks for the new unit); a finding counts
for its current responsible unit (its site before it is fed back); an event
for the responsible unit after it (a return: the returning unit). Voided
findings (recorded in error) are left out of every figure.

The figures per unit (the unit and everything under it) and period (local
dates in the network's zone) are computed at query time by
:func:`closed_loop_summary`; each declares its window, numerator,
denominator and minimum sample in :data:`INDICATORS`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import orjson

from practice_events.domain.calendar import WorkingCalendar, load_calendar
from practice_events.scoring.periods import Period
from projections.base import LoggedEvent, Projection
from projections.network import (
    live_tables,
    marks,
    reading,
    select_in,
    units_under,
)
from projections.rows import (
    bad_request,
    check_limit,
    decode_cursor,
    encode_cursor,
    insert_rows,
    median,
    parse_period,
    percentile,
    rate,
    upsert_rows,
    utc_text,
)
from projections.viewstore import Tx, ViewStore

P = "practice.finding."
RECORDED = P + "recorded.v1"
FED_BACK = P + "fed_back.v1"
ACKNOWLEDGED = P + "acknowledged.v1"
RETURNED = P + "returned.v1"
REASSIGNED = P + "reassigned.v1"
PLAN = P + "rectification_plan_submitted.v1"
EXT_REQUESTED = P + "extension_requested.v1"
EXT_GRANTED = P + "extension_granted.v1"
EXT_DENIED = P + "extension_denied.v1"
REPORTED = P + "rectification_reported.v1"
PASSED = P + "verification_passed.v1"
FAILED = P + "verification_failed.v1"
CALLBACK = P + "resident_callback_recorded.v1"
REOPENED = P + "reopened.v1"
CLOSED = P + "closed.v1"
VOIDED = P + "voided.v1"
OVERDUE = P + "overdue.v1"
ESCALATED = P + "escalated.v1"

OPEN_STAGES = (
    "FOUND",
    "FED_BACK",
    "DISPUTED",
    "ACKNOWLEDGED",
    "IN_RECTIFICATION",
    "PENDING_VERIFICATION",
)
"""Stages of a finding that is neither closed nor voided."""

STAGE_TARGET: Mapping[str, str] = {
    "FED_BACK": "acknowledgement",
    "DISPUTED": "acknowledgement",
    "ACKNOWLEDGED": "rectification",
    "IN_RECTIFICATION": "rectification",
    "PENDING_VERIFICATION": "verification",
}
"""The stage target whose clock a finding in each stage is working against."""

POINTER: Mapping[str, str] = {
    "acknowledgement": "clock_ack",
    "rectification": "clock_rectify",
    "verification": "clock_verify",
}
"""SLA stage -> the findings column pointing at its current clock."""

ACTOR_FIELDS = (
    "by",
    "reported_by",
    "submitted_by",
    "requested_by",
    "approver",
    "verifier_id",
    "ruling_by",
)
"""Data fields naming who acted, when the CloudEvent has no ``actor`` extension."""

MIN_SAMPLE_RATE = 5
"""Rates need at least this many cases in their denominator, else "insufficient data"."""

MIN_SAMPLE_MEDIAN = 5
"""The median time to close needs at least this many closed findings."""

MIN_SAMPLE_P90 = 10
"""The p90 time to close needs at least this many (with fewer it is just the maximum)."""

INDICATORS: Mapping[str, Mapping[str, Any]] = {
    "found": {
        "window": "findings recorded in P",
        "numerator": "count (voided excluded)",
        "denominator": None,
        "min_sample": 0,
    },
    "fed_back": {
        "window": "acknowledgement clocks started in P (feed-backs and rulings that restart them)",
        "numerator": "count",
        "denominator": None,
        "min_sample": 0,
    },
    "acknowledged_on_time": {
        "window": "cohort: fed back to the unit in P",
        "numerator": "acknowledged by the acknowledgement due time",
        "denominator": "the cohort, minus clocks superseded by a ruling or cancelled, minus "
        "those still running at evaluation time (pending)",
        "min_sample": MIN_SAMPLE_RATE,
    },
    "rectified_on_time": {
        "window": "due-date cohort: rectification clocks whose effective due date is in P",
        "numerator": "rectification reported by the effective due time and that cycle then "
        "verified (closed fixed_verified)",
        "denominator": "the cohort, minus superseded or cancelled clocks, minus pending ones "
        "(still running, or reported on time and awaiting verification)",
        "min_sample": MIN_SAMPLE_RATE,
    },
    "verified_first_pass": {
        "window": "verifications passed (fixed_verified closures) in P",
        "numerator": "closures with reopen_count = 0",
        "denominator": "closures",
        "min_sample": MIN_SAMPLE_RATE,
    },
    "reopened": {
        "window": "reopens in P",
        "numerator": "reopens (verification failed, recurrence, callback)",
        "denominator": "fixed_verified closures in the previous period and P",
        "min_sample": MIN_SAMPLE_RATE,
    },
    "returned": {
        "window": "returns in P, against the returning unit",
        "numerator": "returns",
        "denominator": "feed-backs to the unit in P (fed_back)",
        "min_sample": MIN_SAMPLE_RATE,
    },
    "overdue_backlog": {
        "window": "at the end of P (or now, for a period not yet over)",
        "numerator": "open findings with an unmet clock past its effective due time, and the "
        "working days each is overdue (its most overdue clock)",
        "denominator": None,
        "min_sample": 0,
    },
    "time_to_close": {
        "window": "findings whose final closure is in P",
        "numerator": "hours from recorded (first found) to the final closure; median and p90 "
        "(nearest rank)",
        "denominator": "closed findings",
        "min_sample": MIN_SAMPLE_MEDIAN,
        "min_sample_p90": MIN_SAMPLE_P90,
    },
}
"""Window, numerator, denominator and minimum sample of every closed-loop figure."""


FINDING_COLUMNS = (
    "finding_id",
    "site_id",
    "unit_id",
    "responsible_unit_id",
    "original_unit_id",
    "severity",
    "category",
    "source",
    "description",
    "inspection_id",
    "related_to",
    "stage",
    "cycle",
    "reopen_count",
    "return_count",
    "reassign_count",
    "extension_count",
    "extension_pending",
    "plan_count",
    "callback_count",
    "last_callback",
    "recorded_at",
    "recorded_date",
    "fed_back_at",
    "fed_back_date",
    "ack_due_at",
    "acknowledged_at",
    "rectify_due_at",
    "rectify_original_due_at",
    "rectify_due_date",
    "rectified_at",
    "verify_due_at",
    "verified_at",
    "closed_at",
    "closed_date",
    "closure",
    "closed_on_time",
    "first_pass",
    "voided_at",
    "voided_date",
    "reopened_at",
    "sla_ack",
    "sla_rectify",
    "sla_verify",
    "current_target",
    "current_due_at",
    "overdue_stage",
    "overdue_marked_at",
    "escalation_level",
    "clock_ack",
    "clock_rectify",
    "clock_verify",
    "clock_count",
    "last_event_at",
    "last_position",
)

CLOCK_COLUMNS = (
    "finding_id",
    "clock_no",
    "stage",
    "cycle",
    "unit_id",
    "started_at",
    "started_date",
    "budget",
    "original_due_at",
    "due_at",
    "due_date",
    "extensions",
    "met_at",
    "outcome",
    "ended_at",
    "end_reason",
    "verified",
    "overdue_due_at",
    "overdue_at",
    "escalation_level",
)

TIMELINE_COLUMNS = (
    "finding_id",
    "position",
    "type",
    "time",
    "local_date",
    "recorded_at",
    "source",
    "event_id",
    "actor",
    "unit_id",
    "cycle",
    "data",
)


class ClosedLoopProjection(Projection):
    """Findings, their SLA clocks and timelines (see the module docstring)."""

    NAME: ClassVar[str] = "closed_loop"
    VERSION: ClassVar[int] = 1
    TOPICS: ClassVar[tuple[str, ...]] = (
        RECORDED,
        FED_BACK,
        ACKNOWLEDGED,
        RETURNED,
        REASSIGNED,
        PLAN,
        EXT_REQUESTED,
        EXT_GRANTED,
        EXT_DENIED,
        REPORTED,
        PASSED,
        FAILED,
        CALLBACK,
        REOPENED,
        CLOSED,
        VOIDED,
        OVERDUE,
        ESCALATED,
    )
    TABLES: ClassVar[Mapping[str, str]] = {
        "findings": (
            "CREATE TABLE IF NOT EXISTS {name} ("
            "finding_id TEXT PRIMARY KEY, site_id TEXT NOT NULL, unit_id TEXT NOT NULL, "
            "responsible_unit_id TEXT, original_unit_id TEXT, severity TEXT NOT NULL, "
            "category TEXT NOT NULL, source TEXT NOT NULL, description TEXT, inspection_id TEXT, "
            "related_to TEXT, stage TEXT NOT NULL, cycle INTEGER NOT NULL, "
            "reopen_count INTEGER NOT NULL, return_count INTEGER NOT NULL, "
            "reassign_count INTEGER NOT NULL, extension_count INTEGER NOT NULL, "
            "extension_pending INTEGER NOT NULL, plan_count INTEGER NOT NULL, "
            "callback_count INTEGER NOT NULL, last_callback TEXT, recorded_at TEXT NOT NULL, "
            "recorded_date TEXT NOT NULL, fed_back_at TEXT, fed_back_date TEXT, ack_due_at TEXT, "
            "acknowledged_at TEXT, rectify_due_at TEXT, rectify_original_due_at TEXT, "
            "rectify_due_date TEXT, rectified_at TEXT, verify_due_at TEXT, verified_at TEXT, "
            "closed_at TEXT, closed_date TEXT, closure TEXT, closed_on_time INTEGER, "
            "first_pass INTEGER, voided_at TEXT, voided_date TEXT, reopened_at TEXT, "
            "sla_ack TEXT, sla_rectify TEXT, sla_verify TEXT, current_target TEXT, "
            "current_due_at TEXT, overdue_stage TEXT, overdue_marked_at TEXT, "
            "escalation_level INTEGER NOT NULL, clock_ack INTEGER, clock_rectify INTEGER, "
            "clock_verify INTEGER, clock_count INTEGER NOT NULL, last_event_at TEXT NOT NULL, "
            "last_position BIGINT NOT NULL)"
        ),
        "clocks": (
            "CREATE TABLE IF NOT EXISTS {name} ("
            "finding_id TEXT NOT NULL, clock_no INTEGER NOT NULL, stage TEXT NOT NULL, "
            "cycle INTEGER NOT NULL, unit_id TEXT NOT NULL, started_at TEXT NOT NULL, "
            "started_date TEXT NOT NULL, budget TEXT, original_due_at TEXT NOT NULL, "
            "due_at TEXT NOT NULL, due_date TEXT NOT NULL, extensions INTEGER NOT NULL, "
            "met_at TEXT, outcome TEXT, ended_at TEXT, end_reason TEXT, verified INTEGER, "
            "overdue_due_at TEXT, overdue_at TEXT, escalation_level INTEGER NOT NULL, "
            "PRIMARY KEY (finding_id, clock_no))"
        ),
        "timeline": (
            "CREATE TABLE IF NOT EXISTS {name} ("
            "finding_id TEXT NOT NULL, position BIGINT NOT NULL, type TEXT NOT NULL, "
            "time TEXT NOT NULL, local_date TEXT NOT NULL, recorded_at TEXT NOT NULL, "
            "source TEXT, event_id TEXT, actor TEXT, unit_id TEXT, cycle INTEGER, "
            "data TEXT NOT NULL, PRIMARY KEY (finding_id, position))"
        ),
    }
    REBUILD_INDEXES = ()  # batches read findings and clocks by primary key only
    INDEXES: ClassVar[Mapping[str, str]] = {
        "findings_unit": "CREATE INDEX IF NOT EXISTS {index} ON {findings} (unit_id, stage)",
        "findings_recorded": (
            "CREATE INDEX IF NOT EXISTS {index} ON {findings} (recorded_date, finding_id)"
        ),
        "findings_closed": "CREATE INDEX IF NOT EXISTS {index} ON {findings} (closed_date)",
        "clocks_due": "CREATE INDEX IF NOT EXISTS {index} ON {clocks} (stage, due_date)",
        "clocks_started": "CREATE INDEX IF NOT EXISTS {index} ON {clocks} (stage, started_date)",
        "clocks_open": (
            "CREATE INDEX IF NOT EXISTS {index} ON {clocks} (due_at) WHERE ended_at IS NULL"
        ),
        "timeline_type": "CREATE INDEX IF NOT EXISTS {index} ON {timeline} (type, local_date)",
    }

    def apply(self, tx: Tx, events: Sequence[LoggedEvent], tables: Mapping[str, str]) -> None:
        """Apply a batch: load the findings and clocks it touches, update, write each once."""
        batch = _Batch(self.zone, tx, tables, events)
        for event in events:
            batch.handle(event)
        batch.flush()


class _Batch:
    """The rows one batch touches (module docstring: load once, change, write once)."""

    def __init__(
        self,
        zone: tzinfo,
        tx: Tx,
        tables: Mapping[str, str],
        events: Sequence[LoggedEvent],
    ) -> None:
        self.zone = zone
        self.tx = tx
        self.tables = tables
        subjects = {e.subject for e in events}
        self.findings: dict[str, dict[str, Any]] = {
            r["finding_id"]: r for r in select_in(tx, tables["findings"], "finding_id", subjects)
        }
        self.clocks: dict[tuple[str, int], dict[str, Any]] = {
            (r["finding_id"], int(r["clock_no"])): r
            for r in select_in(tx, tables["clocks"], "finding_id", subjects)
        }
        self.touched: set[str] = set()
        self.touched_clocks: set[tuple[str, int]] = set()
        self.timeline: list[list[Any]] = []
        self.at = ""
        """The event being handled: its business time as UTC text ..."""
        self.local = ""
        """... and its local date."""

    # -- helpers -------------------------------------------------------------------------

    def day(self, moment: datetime) -> str:
        """Return the local date of ``moment`` in the network's zone."""
        return moment.astimezone(self.zone).date().isoformat()

    def clock(self, f: Mapping[str, Any], stage: str) -> dict[str, Any] | None:
        """Return the current clock of ``stage`` (marked touched), or None."""
        number = f[POINTER[stage]]
        if number is None:
            return None
        key = (f["finding_id"], int(number))
        self.touched_clocks.add(key)
        return self.clocks[key]

    def start_clock(self, f: dict[str, Any], stage: str, due: str, budget: Any) -> None:
        """Start a new clock of ``stage`` for the finding's responsible unit."""
        number = int(f["clock_count"]) + 1
        f["clock_count"] = number
        due_utc, due_date = _due_texts(due, self.zone)
        key = (f["finding_id"], number)
        self.clocks[key] = {
            "finding_id": f["finding_id"],
            "clock_no": number,
            "stage": stage,
            "cycle": f["cycle"],
            "unit_id": f["unit_id"],
            "started_at": self.at,
            "started_date": self.local,
            "budget": None if budget is None else str(budget),
            "original_due_at": due_utc,
            "due_at": due_utc,
            "due_date": due_date,
            "extensions": 0,
            "met_at": None,
            "outcome": None,
            "ended_at": None,
            "end_reason": None,
            "verified": None,
            "overdue_due_at": None,
            "overdue_at": None,
            "escalation_level": 0,
        }
        self.touched_clocks.add(key)
        f[POINTER[stage]] = number

    def end_clock(self, f: Mapping[str, Any], stage: str, reason: str, outcome: Any = None) -> None:
        """End the current clock of ``stage`` if it is still open (met, superseded, cancelled)."""
        clock = self.clock(f, stage)
        if clock is None or clock["ended_at"] is not None:
            return
        at = self.at
        clock["ended_at"] = at
        clock["end_reason"] = reason
        if reason == "met":
            clock["met_at"] = at
            clock["outcome"] = outcome

    # -- events --------------------------------------------------------------------------

    def handle(self, event: LoggedEvent) -> None:
        """Apply one event to its finding and add it to the timeline."""
        self.at = utc_text(event.time)
        self.local = self.day(event.time)
        if event.type == RECORDED:
            f = self.record(event)
        else:
            found = self.findings.get(event.subject)
            if found is None:  # pragma: no cover - the pipeline refuses events of unknown findings
                return
            f = found
            self.change(f, event)
        at = self.at
        f["last_event_at"] = at
        f["last_position"] = event.position
        self.touched.add(event.subject)
        meta = event.meta
        data = event.data
        actor = meta.get("actor") or next(
            (str(data[k]) for k in ACTOR_FIELDS if isinstance(data.get(k), str)), None
        )
        self.timeline.append(
            [
                event.subject,
                event.position,
                event.type,
                at,
                self.local,
                utc_text(event.recorded_at),
                meta.get("source"),
                meta.get("id"),
                actor,
                f["unit_id"],
                f["cycle"],
                orjson.dumps(data).decode(),
            ]
        )

    def record(self, event: LoggedEvent) -> dict[str, Any]:
        """A new finding (FOUND)."""
        d = event.data
        responsible = d.get("responsible_unit_id")
        f: dict[str, Any] = dict.fromkeys(FINDING_COLUMNS)
        f.update(
            finding_id=event.subject,
            site_id=d["site_id"],
            unit_id=responsible or d["site_id"],
            responsible_unit_id=responsible,
            original_unit_id=responsible,
            severity=d["severity"],
            category=d["category"],
            source=d["source"],
            description=d.get("description"),
            inspection_id=d.get("inspection_id"),
            related_to=d.get("related_to"),
            stage="FOUND",
            cycle=1,
            reopen_count=0,
            return_count=0,
            reassign_count=0,
            extension_count=0,
            extension_pending=0,
            plan_count=0,
            callback_count=0,
            recorded_at=self.at,
            recorded_date=self.local,
            escalation_level=0,
            clock_count=0,
        )
        self.findings[event.subject] = f
        return f

    def change(self, f: dict[str, Any], event: LoggedEvent) -> None:  # noqa: PLR0912, PLR0915 - one branch per event type reads best
        """Apply a non-creating event (see the module docstring for the rules)."""
        d = event.data
        kind = event.type
        if kind == FED_BACK:
            f["stage"] = "FED_BACK"
            f["responsible_unit_id"] = f["unit_id"] = d["responsible_unit_id"]
            if f["fed_back_at"] is None:
                f["fed_back_at"] = self.at
                f["fed_back_date"] = self.local
                f["original_unit_id"] = d["responsible_unit_id"]
            self.start_clock(f, "acknowledgement", d["ack_due_at"], d.get("ack_budget"))
            self.start_clock(f, "rectification", d["rectify_due_at"], d.get("rectify_budget"))
        elif kind == ACKNOWLEDGED:
            f["stage"] = "ACKNOWLEDGED"
            self.end_clock(f, "acknowledgement", "met", d.get("ack_outcome"))
        elif kind == RETURNED:
            f["stage"] = "DISPUTED"
            f["return_count"] = int(d.get("return_count") or int(f["return_count"]) + 1)
        elif kind == REASSIGNED:
            f["stage"] = "FED_BACK"
            f["reassign_count"] = int(f["reassign_count"]) + 1
            f["responsible_unit_id"] = f["unit_id"] = d["to_unit_id"]
            if d.get("clock_restarted"):
                self.end_clock(f, "acknowledgement", "superseded")
                self.end_clock(f, "rectification", "superseded")
                self.start_clock(f, "acknowledgement", d["ack_due_at"], d.get("ack_budget"))
                self.start_clock(f, "rectification", d["rectify_due_at"], d.get("rectify_budget"))
        elif kind == PLAN:
            f["stage"] = "IN_RECTIFICATION"
            f["plan_count"] = int(f["plan_count"]) + 1
        elif kind == EXT_REQUESTED:
            f["extension_pending"] = 1
        elif kind == EXT_GRANTED:
            f["extension_pending"] = 0
            f["extension_count"] = int(f["extension_count"]) + 1
            clock = self.clock(f, str(d["stage"]))
            if clock is not None:
                clock["due_at"], clock["due_date"] = _due_texts(d["new_due_at"], self.zone)
                clock["extensions"] = int(clock["extensions"]) + 1
        elif kind == EXT_DENIED:
            f["extension_pending"] = 0
        elif kind == REPORTED:
            f["stage"] = "PENDING_VERIFICATION"
            f["extension_pending"] = 0
            self.end_clock(f, "rectification", "met", d.get("rectify_outcome"))
            self.start_clock(f, "verification", d["verify_due_at"], d.get("verify_budget"))
        elif kind in (PASSED, FAILED):
            f["extension_pending"] = 0
            self.end_clock(f, "verification", "met", d.get("verify_outcome"))
            rectify = self.clock(f, "rectification")
            if rectify is not None:
                rectify["verified"] = int(kind == PASSED)
            if kind == PASSED:
                f["stage"] = "CLOSED"
                f["closure"] = d.get("closure", "fixed_verified")
                f["closed_at"] = f["verified_at"] = self.at
                f["closed_date"] = self.local
                f["closed_on_time"] = int(bool(d.get("closed_on_time")))
                f["first_pass"] = int(int(d.get("reopen_count", f["reopen_count"])) == 0)
        elif kind == CALLBACK:
            f["callback_count"] = int(f["callback_count"]) + 1
            f["last_callback"] = d.get("satisfied")
        elif kind == REOPENED:
            f["stage"] = "IN_RECTIFICATION"
            f["extension_pending"] = 0
            f["cycle"] = int(d["cycle"])
            f["reopen_count"] = int(d["reopen_count"])
            f["reopened_at"] = self.at
            for column in ("closure", "closed_at", "closed_date", "closed_on_time", "first_pass"):
                f[column] = None
            f["verified_at"] = None
            f["clock_verify"] = None
            self.start_clock(f, "rectification", d["rectify_due_at"], d.get("rectify_budget"))
        elif kind in (CLOSED, VOIDED):
            f["extension_pending"] = 0
            for stage in POINTER:
                self.end_clock(f, stage, "cancelled")
            if kind == CLOSED:
                f["stage"] = "CLOSED"
                f["closure"] = d.get("closure")
                f["closed_at"] = self.at
                f["closed_date"] = self.local
            else:
                f["stage"] = "VOIDED"
                f["voided_at"] = self.at
                f["voided_date"] = self.local
        elif kind == OVERDUE:
            clock = self.clock(f, str(d["stage"]))
            if clock is not None:
                clock["overdue_due_at"] = utc_text(datetime.fromisoformat(d["due_at"]))
                clock["overdue_at"] = self.at
        elif kind == ESCALATED:
            clock = self.clock(f, str(d["stage"]))
            if clock is not None:
                clock["escalation_level"] = max(int(clock["escalation_level"]), int(d["level"]))

    # -- writing -------------------------------------------------------------------------

    def derive(self, f: dict[str, Any]) -> None:
        """Set the columns that follow from the current clocks (due times, SLA facts)."""
        current: dict[str, dict[str, Any] | None] = {}
        for stage, pointer in POINTER.items():
            number = f[pointer]
            current[stage] = None if number is None else self.clocks[(f["finding_id"], int(number))]
        ack, rectify, verify = (current[s] for s in POINTER)
        f["ack_due_at"] = ack["due_at"] if ack else None
        f["acknowledged_at"] = ack["met_at"] if ack else None
        f["rectify_due_at"] = rectify["due_at"] if rectify else None
        f["rectify_original_due_at"] = rectify["original_due_at"] if rectify else None
        f["rectify_due_date"] = rectify["due_date"] if rectify else None
        f["rectified_at"] = rectify["met_at"] if rectify else None
        f["verify_due_at"] = verify["due_at"] if verify else None
        f["sla_ack"] = _fact(ack)
        f["sla_rectify"] = _fact(rectify)
        f["sla_verify"] = _fact(verify)
        target = STAGE_TARGET.get(str(f["stage"]))
        clock = current.get(target) if target else None
        is_open = clock is not None and clock["ended_at"] is None
        f["current_target"] = target if is_open else None
        f["current_due_at"] = clock["due_at"] if is_open and clock else None
        f["overdue_stage"] = None
        f["overdue_marked_at"] = None
        level = 0
        for stage, each in current.items():
            if each is None or each["ended_at"] is not None:
                continue
            level = max(level, int(each["escalation_level"]))
            if f["overdue_stage"] is None and each["overdue_due_at"] == each["due_at"]:
                f["overdue_stage"] = stage
                f["overdue_marked_at"] = each["overdue_at"]
        f["escalation_level"] = level

    def flush(self) -> None:
        """Write every touched finding and clock once, and the new timeline rows."""
        tx, tables = self.tx, self.tables
        for finding_id in self.touched:
            self.derive(self.findings[finding_id])
        # One statement per table on PostgreSQL (unnest of typed arrays), not a
        # round trip per row: a rebuild flushes thousands of rows a page.
        upsert_rows(
            tx,
            tables["findings"],
            FINDING_COLUMNS,
            ("finding_id",),
            [self.findings[k] for k in sorted(self.touched)],
        )
        upsert_rows(
            tx,
            tables["clocks"],
            CLOCK_COLUMNS,
            ("finding_id", "clock_no"),
            [self.clocks[k] for k in sorted(self.touched_clocks)],
        )
        insert_rows(tx, tables["timeline"], TIMELINE_COLUMNS, self.timeline)


@lru_cache(maxsize=65_536)
def _due_texts(due: str, zone: tzinfo) -> tuple[str, str]:
    """A stored due time as (UTC text, local date); cached, as due times repeat a lot.

    Working-day budgets end at the end of a local day, so thousands of
    findings share a few hundred distinct due times.
    """
    moment = datetime.fromisoformat(due)
    return utc_text(moment), moment.astimezone(zone).date().isoformat()


def _fact(clock: Mapping[str, Any] | None) -> str | None:
    """The stored SLA fact of a clock: met, met_late, open, cancelled (None: not started)."""
    if clock is None:
        return None
    if clock["end_reason"] == "met":
        return str(clock["outcome"])
    if clock["ended_at"] is None:
        return "open"
    return "cancelled" if clock["end_reason"] == "cancelled" else "superseded"


# --- queries ----------------------------------------------------------------------------------

TABLES = live_tables(ClosedLoopProjection)
"""Live table names of this projection (what the query functions read)."""

DEFAULT_ZONE = ZoneInfo("Asia/Shanghai")

SORTS: Mapping[str, str] = {
    "recorded_at": "recorded_at",
    "due_at": "COALESCE(current_due_at, '')",
    "closed_at": "COALESCE(closed_at, '')",
    "last_event_at": "last_event_at",
}
"""Sort keys of :func:`list_findings` -> the SQL expression sorted on (NULLs as '')."""

OPEN_LIST = ", ".join(f"'{stage}'" for stage in OPEN_STAGES)
NOW = object()
"""Placeholder for the evaluation time in :data:`SLA_CLAUSES`."""

SLA_CLAUSES: Mapping[str, tuple[str, tuple[Any, ...]]] = {
    "breached": (f" AND stage IN ({OPEN_LIST}) AND current_due_at < ?", (NOW,)),
    "running": (
        f" AND stage IN ({OPEN_LIST}) AND (current_due_at IS NULL OR current_due_at >= ?)",
        (NOW,),
    ),
    "met": (" AND stage = 'CLOSED' AND closure = 'fixed_verified' AND closed_on_time = ?", (1,)),
    "met_late": (
        " AND stage = 'CLOSED' AND closure = 'fixed_verified' AND closed_on_time = ?",
        (0,),
    ),
    "cancelled": (
        " AND (stage = 'VOIDED' OR (stage = 'CLOSED' AND closure <> 'fixed_verified'))",
        (),
    ),
}
"""The ``sla`` filter of :func:`list_findings`: SQL and parameters per status."""

SLA_FILTERS = tuple(SLA_CLAUSES)
"""Values of the ``sla`` filter of :func:`list_findings` (see there)."""


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


def _calendar(calendar: WorkingCalendar | None, zone: tzinfo) -> WorkingCalendar:
    if calendar is not None:
        return calendar
    return load_calendar(None, zone if isinstance(zone, ZoneInfo) else DEFAULT_ZONE)


def sla_status(fact: str | None, due_at: str | None, now: datetime) -> str:
    """Return a clock's status at ``now`` from its stored fact and due time.

    ``open`` becomes ``running`` (due time not passed) or ``breached``;
    ``met``, ``met_late``, ``cancelled``, ``superseded`` stay; no clock is
    ``not_started``.
    """
    if fact is None:
        return "not_started"
    if fact != "open":
        return fact
    if due_at is not None and due_at < utc_text(now):
        return "breached"
    return "running"


def finding_status(row: Mapping[str, Any], now: datetime) -> str:
    """Return a finding's SLA status at ``now`` (what the ``sla`` filter selects).

    Open findings: the status of the clock of the target they work on
    (``running`` or ``breached``; ``running`` before feed-back). Closed
    fixed: ``met`` or ``met_late`` (the last cycle's rectification). Closed
    without a fix or voided: ``cancelled``.
    """
    stage = row["stage"]
    if stage in OPEN_STAGES:
        due = row["current_due_at"]
        return "breached" if due is not None and due < utc_text(now) else "running"
    if stage == "CLOSED" and row["closure"] == "fixed_verified":
        return "met" if row["closed_on_time"] else "met_late"
    return "cancelled"


def _finding_out(
    row: Mapping[str, Any], now: datetime, calendar: WorkingCalendar | None
) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if not k.startswith("clock_")}
    for name in ("closed_on_time", "first_pass", "extension_pending"):
        if out.get(name) is not None:
            out[name] = bool(out[name])
    out["sla_ack"] = sla_status(row["sla_ack"], row["ack_due_at"], now)
    out["sla_rectify"] = sla_status(row["sla_rectify"], row["rectify_due_at"], now)
    out["sla_verify"] = sla_status(row["sla_verify"], row["verify_due_at"], now)
    out["sla_status"] = status = finding_status(row, now)
    out["overdue"] = status == "breached"
    days = None
    if status == "breached" and calendar is not None and row["current_due_at"]:
        days = calendar.working_days_between(datetime.fromisoformat(row["current_due_at"]), now)
    out["overdue_working_days"] = days
    return out


def _scope_sql(columns: Sequence[str], units: Collection[str] | None, params: list[Any]) -> str:
    """SQL restricting rows to ``units`` on any of ``columns`` (None: no restriction).

    An empty set matches nothing: a caller with no units sees no rows, not all.
    """
    if units is None:
        return ""
    ids = sorted(set(units))
    if not ids:
        return " AND 1 = 0"
    tests = []
    for column in columns:
        tests.append(f"{column} IN ({marks(len(ids))})")
        params.extend(ids)
    return f" AND ({' OR '.join(tests)})"


def _finding_filters(
    source: ViewStore | Tx,
    now_text: str,
    *,
    scope: Collection[str] | None,
    unit_id: str | None,
    site_id: str | None,
    stage: str | Collection[str] | None,
    sla: str | None,
    severity: str | None,
    overdue: bool | None,
    period: str | Period | None,
    text: str | None,
) -> tuple[str, list[Any]]:
    """Return the WHERE clause and parameters of :func:`list_findings`' filters."""
    if sla is not None and sla not in SLA_FILTERS:
        raise bad_request(f"sla must be one of {', '.join(SLA_FILTERS)}, got {sla!r}")
    params: list[Any] = []
    where = "1 = 1" + _scope_sql(("unit_id", "site_id"), scope, params)
    if unit_id is not None:
        where += _scope_sql(("unit_id",), units_under(source, unit_id), params)
    for column, value in (("site_id", site_id), ("severity", severity)):
        if value is not None:
            where += f" AND {column} = ?"
            params.append(value)
    if stage is not None:
        stages = [stage] if isinstance(stage, str) else sorted(stage)
        where += f" AND stage IN ({marks(len(stages))})"
        params.extend(stages)
    if overdue is True and sla is None:
        sla = "breached"
    elif overdue is False:
        where += f" AND NOT (stage IN ({OPEN_LIST}) AND current_due_at IS NOT NULL "
        where += "AND current_due_at < ?)"
        params.append(now_text)
    if sla is not None:
        clause, values = SLA_CLAUSES[sla]
        where += clause
        params.extend(now_text if v is NOW else v for v in values)
    if period is not None:
        p = parse_period(period)
        where += " AND recorded_date >= ? AND recorded_date < ?"
        params.extend([p.first.isoformat(), p.end.isoformat()])
    if text:
        escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        needle = f"%{escaped}%"
        where += (
            " AND (LOWER(finding_id) LIKE ? ESCAPE '\\' OR LOWER(category) LIKE ? ESCAPE '\\' "
            "OR LOWER(COALESCE(description, '')) LIKE ? ESCAPE '\\')"
        )
        params.extend([needle, needle, needle])
    return where, params


def list_findings(
    source: ViewStore | Tx,
    *,
    scope: Collection[str] | None = None,
    unit_id: str | None = None,
    site_id: str | None = None,
    stage: str | Collection[str] | None = None,
    sla: str | None = None,
    severity: str | None = None,
    overdue: bool | None = None,
    period: str | Period | None = None,
    text: str | None = None,
    sort: str = "recorded_at",
    descending: bool = True,
    limit: int = 50,
    cursor: str | None = None,
    now: datetime | None = None,
    zone: tzinfo = DEFAULT_ZONE,
    calendar: WorkingCalendar | None = None,
) -> dict[str, Any]:
    """Return a page of findings, filtered, with a keyset cursor for the next page.

    ``scope``: the unit/site ids the caller may see (None: all); ``unit_id``:
    a unit and everything under it (:func:`~projections.network.units_under`);
    both restrict the finding's accountable unit. ``stage``: one or several
    stages. ``sla`` (at ``now``): ``running`` / ``breached`` (open findings,
    by the clock of the target they work on), ``met`` / ``met_late`` (closed
    fixed and verified, by the last cycle's rectification), ``cancelled``
    (closed without a fix, voided). ``overdue``: the same as ``breached``
    (or its negation). ``period``: recorded in that period (local dates).
    ``text``: in the id, category or description. ``sort``: one of
    :data:`SORTS`; pages follow ``(sort value, finding_id)``, so rows never
    repeat or vanish between pages while the view changes.

    Returns ``{"items": [...], "next_cursor": str | None}``.
    """
    if sort not in SORTS:
        raise bad_request(f"sort must be one of {', '.join(SORTS)}, got {sort!r}")
    limit = check_limit(limit)
    moment = _now(now)
    where, params = _finding_filters(
        source,
        utc_text(moment),
        scope=scope,
        unit_id=unit_id,
        site_id=site_id,
        stage=stage,
        sla=sla,
        severity=severity,
        overdue=overdue,
        period=period,
        text=text,
    )
    expression = SORTS[sort]
    direction = "DESC" if descending else "ASC"
    if cursor is not None:
        after_value, after_id = decode_cursor(cursor, 2)
        op = "<" if descending else ">"
        where += f" AND ({expression} {op} ? OR ({expression} = ? AND finding_id {op} ?))"
        params.extend([after_value, after_value, after_id])
    statement = (
        f"SELECT *, {expression} AS sort_key FROM {TABLES['findings']} WHERE {where} "
        f"ORDER BY {expression} {direction}, finding_id {direction} LIMIT ?"
    )
    items: list[dict[str, Any]] = []
    next_cursor: str | None = None
    with reading(source) as tx:
        rows = tx.query(statement, [*params, limit + 1])
    cal = _calendar(calendar, zone)
    for row in rows[:limit]:
        key = row.pop("sort_key")
        items.append(_finding_out(row, moment, cal))
        next_cursor = encode_cursor([key, row["finding_id"]])
    if len(rows) <= limit:
        next_cursor = None
    return {"items": items, "next_cursor": next_cursor}


def get_finding(
    source: ViewStore | Tx,
    finding_id: str,
    *,
    scope: Collection[str] | None = None,
    now: datetime | None = None,
    zone: tzinfo = DEFAULT_ZONE,
    calendar: WorkingCalendar | None = None,
) -> dict[str, Any] | None:
    """Return one finding with its clocks and full timeline (None: unknown or out of scope).

    The finding is in scope when its accountable unit or its site is in
    ``scope``: a station sees findings at its site even once another unit
    is responsible for them.
    """
    moment = _now(now)
    with reading(source) as tx:
        rows = tx.query(f"SELECT * FROM {TABLES['findings']} WHERE finding_id = ?", [finding_id])
        if not rows:
            return None
        row = rows[0]
        if scope is not None and row["unit_id"] not in scope and row["site_id"] not in scope:
            return None
        clocks = tx.query(
            f"SELECT * FROM {TABLES['clocks']} WHERE finding_id = ? ORDER BY clock_no",
            [finding_id],
        )
        events = tx.query(
            f"SELECT * FROM {TABLES['timeline']} WHERE finding_id = ? ORDER BY position",
            [finding_id],
        )
    out = _finding_out(row, moment, _calendar(calendar, zone))
    out["clocks"] = [
        {
            **{k: v for k, v in c.items() if k != "finding_id"},
            "status": sla_status(_fact(c), c["due_at"], moment),
            "verified": None if c["verified"] is None else bool(c["verified"]),
        }
        for c in clocks
    ]
    out["timeline"] = [
        {
            **{k: v for k, v in e.items() if k not in ("finding_id", "data")},
            "data": orjson.loads(e["data"]),
        }
        for e in events
    ]
    return out


def _count(value: int) -> dict[str, Any]:
    return {"status": "ok", "value": value}


def _units_for(source: ViewStore | Tx, unit_id: str, scope: Collection[str] | None) -> set[str]:
    units = units_under(source, unit_id)
    if scope is not None:
        units &= set(scope)
    return units


def _rows(
    tx: Tx, sql: str, params: list[Any], column: str, units: set[str]
) -> list[dict[str, Any]]:
    """Run a query with ``{units}`` replaced by the unit restriction on ``column``."""
    extra: list[Any] = []
    clause = _scope_sql((column,), units, extra)
    return tx.query(sql.replace("{units}", clause), [*params, *extra])


def closed_loop_summary(
    source: ViewStore | Tx,
    unit_id: str,
    period: str | Period,
    *,
    scope: Collection[str] | None = None,
    now: datetime | None = None,
    zone: tzinfo = DEFAULT_ZONE,
    calendar: WorkingCalendar | None = None,
) -> dict[str, Any]:
    """Return the closed-loop figures of a unit (and everything under it) for a period.

    ``period`` is ``2024-03``, ``2024-Q1``, ``2024-H1`` or ``2024`` in the
    network's zone (``zone``); ``scope`` further restricts the units (the
    caller's access). Figures whose outcome depends on time are evaluated at
    ``now``; the overdue backlog at the period's end (or ``now`` if earlier).
    Every figure carries its numerator, denominator and minimum sample; a
    rate below its minimum sample is ``insufficient_data`` with no value.
    Definitions: :data:`INDICATORS`.
    """
    p = parse_period(period)
    moment = _now(now)
    cal = _calendar(calendar, zone)
    first, end = p.first.isoformat(), p.end.isoformat()
    end_at = datetime.combine(p.end, datetime.min.time(), tzinfo=zone)
    as_of = min(end_at, moment)
    now_text = utc_text(moment)
    t = utc_text(as_of)
    previous = p.previous()
    f, c, tl = TABLES["findings"], TABLES["clocks"], TABLES["timeline"]
    with reading(source) as tx:
        units = _units_for(tx, unit_id, scope)
        found = _rows(
            tx,
            f"SELECT unit_id FROM {f} WHERE recorded_date >= ? AND recorded_date < ? "
            "AND stage <> 'VOIDED'{units}",
            [first, end],
            "unit_id",
            units,
        )
        ack = _rows(
            tx,
            f"SELECT c.unit_id, c.due_at, c.outcome, c.end_reason, c.ended_at FROM {c} c "
            f"JOIN {f} f ON f.finding_id = c.finding_id WHERE c.stage = 'acknowledgement' "
            "AND c.started_date >= ? AND c.started_date < ? AND f.stage <> 'VOIDED'{units}",
            [first, end],
            "c.unit_id",
            units,
        )
        rectify = _rows(
            tx,
            f"SELECT c.unit_id, c.due_at, c.outcome, c.end_reason, c.ended_at, c.verified "
            f"FROM {c} c JOIN {f} f ON f.finding_id = c.finding_id "
            "WHERE c.stage = 'rectification' AND c.due_date >= ? AND c.due_date < ? "
            "AND f.stage <> 'VOIDED'{units}",
            [first, end],
            "c.unit_id",
            units,
        )
        events = _rows(
            tx,
            f"SELECT t.type, t.unit_id, t.local_date, t.data FROM {tl} t "
            f"JOIN {f} f ON f.finding_id = t.finding_id WHERE t.type IN (?, ?, ?) "
            "AND t.local_date >= ? AND t.local_date < ? AND f.stage <> 'VOIDED'{units}",
            [PASSED, REOPENED, RETURNED, previous.first.isoformat(), end],
            "t.unit_id",
            units,
        )
        backlog = _rows(
            tx,
            f"SELECT c.finding_id, c.unit_id, c.due_at FROM {c} c "
            f"JOIN {f} f ON f.finding_id = c.finding_id WHERE c.started_at < ? AND c.due_at < ? "
            "AND (c.ended_at IS NULL OR c.ended_at >= ?) AND f.stage <> 'VOIDED'{units}",
            [t, t, t],
            "c.unit_id",
            units,
        )
        closed = _rows(
            tx,
            f"SELECT unit_id, recorded_at, closed_at FROM {f} WHERE stage = 'CLOSED' "
            "AND closed_date >= ? AND closed_date < ?{units}",
            [first, end],
            "unit_id",
            units,
        )

    in_period = [e for e in events if e["local_date"] >= first]
    passes = [e for e in in_period if e["type"] == PASSED]
    first_pass = sum(1 for e in passes if int(orjson.loads(e["data"]).get("reopen_count", 0)) == 0)
    reopens = sum(1 for e in in_period if e["type"] == REOPENED)
    returns = sum(1 for e in in_period if e["type"] == RETURNED)
    closures_two_periods = sum(1 for e in events if e["type"] == PASSED)
    fed_back = len(ack)
    reopened = _count(reopens)
    reopened["rate"] = rate(reopens, closures_two_periods, MIN_SAMPLE_RATE)
    returned = _count(returns)
    returned["rate"] = rate(returns, fed_back, MIN_SAMPLE_RATE)
    overdue = _backlog(backlog, cal, as_of)
    if moment < datetime.combine(p.first, datetime.min.time(), tzinfo=zone):
        # a period that has not begun has no backlog at its end yet
        overdue = {"status": "not_started", "value": None, "as_of": None}
    return {
        "unit_id": unit_id,
        "units": len(units),
        "period": p.name,
        "first_date": first,
        "end_date": end,
        "evaluated_at": now_text,
        "indicators": {
            "found": _count(len(found)),
            "fed_back": _count(fed_back),
            "acknowledged_on_time": _acknowledged_on_time(ack, now_text),
            "rectified_on_time": _rectified_on_time(rectify, now_text),
            "verified_first_pass": rate(first_pass, len(passes), MIN_SAMPLE_RATE),
            "reopened": reopened,
            "returned": returned,
            "overdue_backlog": overdue,
            "time_to_close": _time_to_close(closed),
        },
    }


def _acknowledged_on_time(clocks: Sequence[Mapping[str, Any]], now_text: str) -> dict[str, Any]:
    """On-time acknowledgement of a cohort of acknowledgement clocks (see INDICATORS)."""
    on_time = late = pending = excluded = 0
    for row in clocks:
        if row["end_reason"] in ("superseded", "cancelled"):
            excluded += 1
        elif row["end_reason"] == "met":
            if row["outcome"] == "met":
                on_time += 1
            else:
                late += 1
        elif row["due_at"] >= now_text:
            pending += 1
        else:
            late += 1
    figure = rate(on_time, on_time + late, MIN_SAMPLE_RATE)
    figure.update(pending=pending, excluded=excluded)
    return figure


def _rectified_on_time(clocks: Sequence[Mapping[str, Any]], now_text: str) -> dict[str, Any]:
    """On-time rectification of a due-date cohort of rectification clocks (see INDICATORS)."""
    on_time = late = pending = excluded = 0
    for row in clocks:
        reason = row["end_reason"]
        if reason in ("superseded", "cancelled"):
            excluded += 1
        elif reason == "met":
            if row["outcome"] != "met" or row["verified"] == 0:
                late += 1
            elif row["verified"] is None:
                pending += 1
            else:
                on_time += 1
        elif row["due_at"] >= now_text:
            pending += 1
        else:
            late += 1
    figure = rate(on_time, on_time + late, MIN_SAMPLE_RATE)
    figure.update(pending=pending, excluded=excluded)
    return figure


def _backlog(
    clocks: Sequence[Mapping[str, Any]], calendar: WorkingCalendar, as_of: datetime
) -> dict[str, Any]:
    """Overdue findings at ``as_of`` and their working days overdue (most overdue clock)."""
    last_instant = as_of - timedelta(microseconds=1)
    worst: dict[str, int] = {}
    for row in clocks:
        days = calendar.working_days_between(datetime.fromisoformat(row["due_at"]), last_instant)
        worst[row["finding_id"]] = max(days, worst.get(row["finding_id"], 0))
    ages = list(worst.values())
    figure = _count(len(worst))
    figure.update(
        as_of=utc_text(as_of),
        overdue_working_days={
            "total": sum(ages),
            "max": max(ages) if ages else None,
            "mean": round(sum(ages) / len(ages), 2) if ages else None,
        },
    )
    return figure


def _time_to_close(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Median and p90 hours from recorded to final closure (see INDICATORS)."""
    hours = [
        round(
            (
                datetime.fromisoformat(r["closed_at"]) - datetime.fromisoformat(r["recorded_at"])
            ).total_seconds()
            / 3600,
            3,
        )
        for r in rows
    ]
    n = len(hours)
    return {
        "status": "ok" if n >= MIN_SAMPLE_MEDIAN else "insufficient_data",
        "n": n,
        "median_hours": median(hours) if n >= MIN_SAMPLE_MEDIAN else None,
        "p90_hours": percentile(hours, 0.9) if n >= MIN_SAMPLE_P90 else None,
        "p90_status": "ok" if n >= MIN_SAMPLE_P90 else "insufficient_data",
        "min_sample": MIN_SAMPLE_MEDIAN,
        "min_sample_p90": MIN_SAMPLE_P90,
    }


def overdue_candidates(source: ViewStore | Tx, now: datetime) -> list[dict[str, Any]]:
    """Return the open clocks past their effective due time at ``now`` (for the scheduler).

    Each row: ``finding_id``, ``stage``, ``cycle``, ``due_at``,
    ``overdue_due_at`` (the due time already marked overdue, if any) and
    ``escalation_level``; oldest due first. Findings closed or voided have no
    open clocks.
    """
    with reading(source) as tx:
        return tx.query(
            f"SELECT finding_id, clock_no, stage, cycle, due_at, overdue_due_at, "
            f"escalation_level FROM {TABLES['clocks']} WHERE ended_at IS NULL AND due_at < ? "
            "ORDER BY due_at, finding_id, clock_no",
            [utc_text(now)],
        )


__all__ = [
    "INDICATORS",
    "ClosedLoopProjection",
    "closed_loop_summary",
    "finding_status",
    "get_finding",
    "list_findings",
    "overdue_candidates",
    "sla_status",
]
