"""Assessment scorecards: the facts they need, the indicators, the composite and ranks.

DESIGN.md §6: per unit (each site, rolled up station → institute → centre)
and period (month, quarter, half-year, year in the network's zone) the
indicators of :mod:`practice_events.scoring.indicators`, the composite
under a versioned scoring model (:mod:`practice_events.scoring.model`) and
the rank among peer units. Published scorecards and bulletins are kept
frozen, exactly as sent.

**The projection** (``ScorecardsProjection``, name ``scorecards``) keeps the
facts no other view owns, one row per thing, with the local dates the
periods need (computed in Python in the network's zone, never in SQL):

``scorecards_activities``
    one row per activity: site, month of its start (written into the event
    by the aggregate), theme code, completed, people served.
``scorecards_themes``
    one row per (unit, month) theme, with its current code.
``scorecards_meetings``
    one row per house meeting: site, local start date, steps logged,
    complete (all five), concerns raised / resolved on the spot / converted.
``scorecards_needs``
    one row per need: site, acceptance, rejection, first assignment,
    assignments and re-dispatches, first delivery with the hours from
    acceptance to it, closure outcome, rating, each with its local date.
``scorecards_reports``
    one row per assessment (unit and period): bonuses and deductions, the
    first bulletin, the quarterly review, the first half-year summary.
``scorecards_adjustments`` / ``scorecards_documents``
    every bonus or deduction, and every bulletin, review and summary, as
    recorded (one row per event).
``scorecards_models``
    every version of every scoring model, as published.
``scorecards_published``
    every published scorecard, frozen as sent, with its log position.
``scorecards_changes``
    per area (activities, themes, meetings, needs, reports, models) the
    position of the last event that changed it: the cache keys on these,
    not on the tracking position, which moves with every event of the log.

Six-haves assessments and the tree of sites come from the network view
(``projections.network``), the closed loop from ``projections.closed_loop``
and volunteers from ``projections.ledger``: the query functions read those
views' tables, scoped to the unit's sites.

**The queries** (:func:`scorecard`, :func:`rankings`, :func:`trend`,
:func:`published`, :func:`scoring_models`, :func:`compute_for_publication`)
compute each group of indicators (:data:`PARTS`) with a few grouped SQL
aggregates, indexed by site and local date, for a unit *and its peers at
once* (their subtrees are disjoint, so one pass grouped by site serves them
all: a scorecard with its rank costs one computation, not one per peer).
Each group's counts are cached in memory keyed by the unit set, the period
and the **markers** of what the group reads: the latest change of each
area of this view (``scorecards_changes``), of the sites and checklists,
of the findings; the ledger's tracking position. A check-in therefore
invalidates only the volunteer figures, and a repeated request costs the
snapshot's few marker queries. The composite is recomputed from the cached
counts (pure Python) under the model asked for.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any, ClassVar, Protocol
from zoneinfo import ZoneInfo

import orjson

from practice_events.contracts.assessment import BONUS_CAP
from practice_events.errors import AuthorizationError, PracticeEventsError, TransientError
from practice_events.scoring import indicators as ind
from practice_events.scoring.model import (
    Composite,
    ScoringModel,
    published_indicators,
    rank,
    score,
    version_for,
)
from practice_events.scoring.periods import Period, PeriodKind
from projections.base import LoggedEvent, Projection
from projections.rows import upsert_rows, utc_text
from projections.viewstore import Tx, ViewStore

# --- event types ---------------------------------------------------------------------------

THEME_SET = "practice.activity.theme_set.v1"
THEME_REVISED = "practice.activity.theme_revised.v1"
ACTIVITY_PLANNED = "practice.activity.planned.v1"
ACTIVITY_CANCELLED = "practice.activity.cancelled.v1"
ACTIVITY_COMPLETED = "practice.activity.completed.v1"
MEETING_HELD = "practice.meeting.held.v1"
STEP_LOGGED = "practice.meeting.step_logged.v1"
CONCERN_RAISED = "practice.meeting.concern_raised.v1"
CONCERN_RESOLVED = "practice.meeting.concern_resolved_on_spot.v1"
CONCERN_CONVERTED = "practice.meeting.concern_converted.v1"
NEED_SUBMITTED = "practice.need.submitted.v1"
NEED_ACCEPTED = "practice.need.accepted.v1"
NEED_REJECTED = "practice.need.rejected.v1"
NEED_DISPATCHED = "practice.need.dispatched.v1"
NEED_CLAIMED = "practice.need.claimed.v1"
NEED_REDISPATCHED = "practice.need.redispatched.v1"
NEED_DELIVERED = "practice.need.service_delivered.v1"
NEED_CLOSED = "practice.need.closed.v1"
NEED_RATED = "practice.need.rated.v1"
MODEL_PUBLISHED = "practice.assessment.scoring_model_published.v1"
MODEL_REVISED = "practice.assessment.scoring_model_revised.v1"
PERIOD_OPENED = "practice.assessment.period_opened.v1"
SCORE_ADJUSTED = "practice.assessment.score_adjusted.v1"
SCORECARD_PUBLISHED = "practice.assessment.scorecard_published.v1"
BULLETIN_PUBLISHED = "practice.assessment.bulletin_published.v1"
REVIEW_HELD = "practice.assessment.quarterly_review_held.v1"
SUMMARY_PUBLISHED = "practice.assessment.half_year_summary_published.v1"
PERIOD_CLOSED = "practice.assessment.period_closed.v1"

ACTIVITY_TYPES = frozenset({ACTIVITY_PLANNED, ACTIVITY_CANCELLED, ACTIVITY_COMPLETED})
THEME_TYPES = frozenset({THEME_SET, THEME_REVISED})
MEETING_TYPES = frozenset(
    {MEETING_HELD, STEP_LOGGED, CONCERN_RAISED, CONCERN_RESOLVED, CONCERN_CONVERTED}
)
NEED_TYPES = frozenset(
    {
        NEED_SUBMITTED,
        NEED_ACCEPTED,
        NEED_REJECTED,
        NEED_DISPATCHED,
        NEED_CLAIMED,
        NEED_REDISPATCHED,
        NEED_DELIVERED,
        NEED_CLOSED,
        NEED_RATED,
    }
)
MODEL_TYPES = frozenset({MODEL_PUBLISHED, MODEL_REVISED})
REPORT_TYPES = frozenset(
    {
        PERIOD_OPENED,
        SCORE_ADJUSTED,
        SCORECARD_PUBLISHED,
        BULLETIN_PUBLISHED,
        REVIEW_HELD,
        SUMMARY_PUBLISHED,
        PERIOD_CLOSED,
    }
)

STEPS = ("explain", "listen", "perform", "evaluate", "resolve")
"""The five steps 讲听演评办 (practice_events.domain.meeting.STEPS)."""

ASSESSED_LEVELS = frozenset({"centre", "institute", "station"})
"""Levels that run activities themselves (activity frequency counts per such unit)."""

MAX_PARAMS = 900
"""Ids per ``IN (...)`` list: far below SQLite's and PostgreSQL's limits."""


# --- small helpers ------------------------------------------------------------------------


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def _chunks(values: Sequence[Any], size: int = MAX_PARAMS) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _upsert_sql(table: str, columns: Sequence[str], key: Sequence[str]) -> str:
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({_marks(len(columns))}) "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
    )


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


# --- the projection -----------------------------------------------------------------------

ACTIVITY_COLUMNS = (
    "activity_id",
    "site_id",
    "month",
    "start_date",
    "starts_at",
    "theme_code",
    "category",
    "team_id",
    "status",
    "completed",
    "served_count",
    "beneficiaries_count",
    "completed_at",
    "completed_date",
    "cancelled_at",
    "last_position",
)
THEME_COLUMNS = (
    "theme_id",
    "unit_id",
    "month",
    "theme_code",
    "title",
    "set_at",
    "revision_count",
    "last_position",
)
MEETING_COLUMNS = (
    "meeting_id",
    "site_id",
    "started_at",
    "start_date",
    "attendees_count",
    "officials_count",
    "steps",
    "step_count",
    "complete",
    "concerns_raised",
    "concerns_resolved",
    "concerns_converted",
    "converted_to_need",
    "converted_to_finding",
    "last_position",
)
NEED_COLUMNS = (
    "need_id",
    "site_id",
    "channel",
    "category",
    "urgency",
    "stage",
    "submitted_at",
    "submitted_date",
    "accepted_at",
    "accepted_date",
    "rejected_at",
    "rejected_date",
    "first_assigned_at",
    "first_assigned_date",
    "assignment_count",
    "redispatch_count",
    "first_delivered_at",
    "first_delivered_date",
    "serve_hours",
    "delivery_count",
    "hours_delivered",
    "closed_at",
    "closed_date",
    "outcome",
    "rating",
    "rated_at",
    "rated_date",
    "last_position",
)
REPORT_COLUMNS = (
    "assessment_id",
    "unit_id",
    "period",
    "kind",
    "opened_at",
    "closed_at",
    "bonus_total",
    "deduction_total",
    "adjustment_count",
    "scorecard_count",
    "bulletin_first_at",
    "bulletin_first_date",
    "bulletin_count",
    "review_held_at",
    "review_date",
    "summary_first_at",
    "summary_first_date",
    "summary_count",
    "last_position",
)
ADJUSTMENT_COLUMNS = (
    "position",
    "unit_id",
    "period",
    "kind",
    "delta",
    "indicator_code",
    "reason",
    "approver",
    "recorded_at",
    "event_id",
)
DOCUMENT_COLUMNS = (
    "position",
    "unit_id",
    "period",
    "kind",
    "document_ref",
    "correction_of",
    "as_of_position",
    "data",
    "published_at",
    "published_date",
    "event_id",
)
MODEL_COLUMNS = (
    "model_id",
    "version",
    "title",
    "effective_from",
    "data",
    "published_at",
    "position",
)
PUBLISHED_COLUMNS = (
    "unit_id",
    "period",
    "model_id",
    "model_version",
    "as_of_position",
    "composite",
    "bonus_total",
    "deduction_total",
    "data",
    "published_at",
    "event_id",
    "position",
)


class ScorecardsProjection(Projection):
    """The facts scorecards need that no other view keeps (module docstring)."""

    NAME: ClassVar[str] = "scorecards"
    VERSION: ClassVar[int] = 1
    TOPICS: ClassVar[tuple[str, ...]] = tuple(
        sorted(
            ACTIVITY_TYPES | THEME_TYPES | MEETING_TYPES | NEED_TYPES | MODEL_TYPES | REPORT_TYPES
        )
    )
    TABLES: ClassVar[Mapping[str, str]] = {
        "activities": (
            "CREATE TABLE IF NOT EXISTS {name} ("
            "activity_id TEXT PRIMARY KEY, site_id TEXT NOT NULL, month TEXT NOT NULL, "
            "start_date TEXT NOT NULL, starts_at TEXT NOT NULL, theme_code TEXT, category TEXT, "
            "team_id TEXT, status TEXT NOT NULL, completed INTEGER NOT NULL, "
            "served_count INTEGER, beneficiaries_count INTEGER, completed_at TEXT, "
            "completed_date TEXT, cancelled_at TEXT, last_position BIGINT NOT NULL)"
        ),
        "themes": (
            "CREATE TABLE IF NOT EXISTS {name} ("
            "theme_id TEXT PRIMARY KEY, unit_id TEXT NOT NULL, month TEXT NOT NULL, "
            "theme_code TEXT NOT NULL, title TEXT NOT NULL, set_at TEXT NOT NULL, "
            "revision_count INTEGER NOT NULL, last_position BIGINT NOT NULL)"
        ),
        "meetings": (
            "CREATE TABLE IF NOT EXISTS {name} ("
            "meeting_id TEXT PRIMARY KEY, site_id TEXT NOT NULL, started_at TEXT NOT NULL, "
            "start_date TEXT NOT NULL, attendees_count INTEGER NOT NULL, "
            "officials_count INTEGER NOT NULL, steps TEXT NOT NULL, step_count INTEGER NOT NULL, "
            "complete INTEGER NOT NULL, concerns_raised INTEGER NOT NULL, "
            "concerns_resolved INTEGER NOT NULL, concerns_converted INTEGER NOT NULL, "
            "converted_to_need INTEGER NOT NULL, converted_to_finding INTEGER NOT NULL, "
            "last_position BIGINT NOT NULL)"
        ),
        "needs": (
            "CREATE TABLE IF NOT EXISTS {name} ("
            "need_id TEXT PRIMARY KEY, site_id TEXT NOT NULL, channel TEXT, category TEXT, "
            "urgency TEXT, stage TEXT NOT NULL, submitted_at TEXT NOT NULL, "
            "submitted_date TEXT NOT NULL, accepted_at TEXT, accepted_date TEXT, "
            "rejected_at TEXT, rejected_date TEXT, first_assigned_at TEXT, "
            "first_assigned_date TEXT, assignment_count INTEGER NOT NULL, "
            "redispatch_count INTEGER NOT NULL, first_delivered_at TEXT, "
            "first_delivered_date TEXT, serve_hours DOUBLE PRECISION, "
            "delivery_count INTEGER NOT NULL, hours_delivered DOUBLE PRECISION NOT NULL, "
            "closed_at TEXT, closed_date TEXT, outcome TEXT, rating INTEGER, rated_at TEXT, "
            "rated_date TEXT, last_position BIGINT NOT NULL)"
        ),
        "reports": (
            "CREATE TABLE IF NOT EXISTS {name} ("
            "assessment_id TEXT PRIMARY KEY, unit_id TEXT NOT NULL, period TEXT NOT NULL, "
            "kind TEXT NOT NULL, opened_at TEXT NOT NULL, closed_at TEXT, "
            "bonus_total DOUBLE PRECISION NOT NULL, deduction_total DOUBLE PRECISION NOT NULL, "
            "adjustment_count INTEGER NOT NULL, scorecard_count INTEGER NOT NULL, "
            "bulletin_first_at TEXT, bulletin_first_date TEXT, bulletin_count INTEGER NOT NULL, "
            "review_held_at TEXT, review_date TEXT, summary_first_at TEXT, "
            "summary_first_date TEXT, summary_count INTEGER NOT NULL, "
            "last_position BIGINT NOT NULL)"
        ),
        "adjustments": (
            "CREATE TABLE IF NOT EXISTS {name} ("
            "position BIGINT PRIMARY KEY, unit_id TEXT NOT NULL, period TEXT NOT NULL, "
            "kind TEXT NOT NULL, delta DOUBLE PRECISION NOT NULL, indicator_code TEXT, "
            "reason TEXT NOT NULL, approver TEXT NOT NULL, recorded_at TEXT NOT NULL, "
            "event_id TEXT)"
        ),
        "documents": (
            "CREATE TABLE IF NOT EXISTS {name} ("
            "position BIGINT PRIMARY KEY, unit_id TEXT NOT NULL, period TEXT NOT NULL, "
            "kind TEXT NOT NULL, document_ref TEXT, correction_of TEXT, as_of_position BIGINT, "
            "data TEXT NOT NULL, published_at TEXT NOT NULL, published_date TEXT NOT NULL, "
            "event_id TEXT)"
        ),
        "models": (
            "CREATE TABLE IF NOT EXISTS {name} ("
            "model_id TEXT NOT NULL, version INTEGER NOT NULL, title TEXT NOT NULL, "
            "effective_from TEXT NOT NULL, data TEXT NOT NULL, published_at TEXT NOT NULL, "
            "position BIGINT NOT NULL, PRIMARY KEY (model_id, version))"
        ),
        "changes": (
            "CREATE TABLE IF NOT EXISTS {name} (area TEXT PRIMARY KEY, position BIGINT NOT NULL)"
        ),
        "published": (
            "CREATE TABLE IF NOT EXISTS {name} ("
            "unit_id TEXT NOT NULL, period TEXT NOT NULL, model_id TEXT NOT NULL, "
            "model_version INTEGER NOT NULL, as_of_position BIGINT NOT NULL, "
            "composite DOUBLE PRECISION NOT NULL, bonus_total DOUBLE PRECISION NOT NULL, "
            "deduction_total DOUBLE PRECISION NOT NULL, data TEXT NOT NULL, "
            "published_at TEXT NOT NULL, event_id TEXT, position BIGINT NOT NULL, "
            "PRIMARY KEY (unit_id, period, model_id, model_version))"
        ),
    }
    REBUILD_INDEXES = ()  # batches read rows by primary key only
    INDEXES: ClassVar[Mapping[str, str]] = {
        "activities_site_month": (
            "CREATE INDEX IF NOT EXISTS {index} ON {activities} (site_id, month)"
        ),
        "themes_month": "CREATE INDEX IF NOT EXISTS {index} ON {themes} (month, unit_id)",
        "meetings_site_date": (
            "CREATE INDEX IF NOT EXISTS {index} ON {meetings} (site_id, start_date)"
        ),
        "needs_site_accepted": (
            "CREATE INDEX IF NOT EXISTS {index} ON {needs} (site_id, accepted_date)"
        ),
        "needs_site_assigned": (
            "CREATE INDEX IF NOT EXISTS {index} ON {needs} (site_id, first_assigned_date)"
        ),
        "needs_site_delivered": (
            "CREATE INDEX IF NOT EXISTS {index} ON {needs} (site_id, first_delivered_date)"
        ),
        "needs_site_rated": "CREATE INDEX IF NOT EXISTS {index} ON {needs} (site_id, rated_date)",
        "reports_unit": "CREATE INDEX IF NOT EXISTS {index} ON {reports} (unit_id, period)",
        "adjustments_unit": (
            "CREATE INDEX IF NOT EXISTS {index} ON {adjustments} (unit_id, period)"
        ),
        "documents_unit": "CREATE INDEX IF NOT EXISTS {index} ON {documents} (unit_id, period)",
    }

    def apply(self, tx: Tx, events: Sequence[LoggedEvent], tables: Mapping[str, str]) -> None:
        """Apply a batch: load the rows it touches, change them in memory, write each once."""
        batch = _Batch(self.zone, tx, tables)
        batch.preload(events)
        for event in events:
            batch.handle(event)
        batch.flush()


class _Rows:
    """Rows of one keyed table touched by a batch: loaded with one query, written once."""

    def __init__(self, tx: Tx, table: str, key: str, columns: Sequence[str]) -> None:
        self.tx = tx
        self.table = table
        self.key = key
        self.columns = tuple(columns)
        self.rows: dict[str, dict[str, Any]] = {}
        self.dirty: set[str] = set()

    def preload(self, keys: Collection[str]) -> None:
        """Load the stored rows of ``keys`` (one query per chunk of ids)."""
        wanted = sorted(set(keys) - set(self.rows))
        for part in _chunks(wanted):
            for row in self.tx.query(
                f"SELECT * FROM {self.table} WHERE {self.key} IN ({_marks(len(part))})", part
            ):
                self.rows[str(row[self.key])] = dict(row)

    def get(self, key: str) -> dict[str, Any] | None:
        """The row of ``key`` for changing (marked for writing), or None if unknown."""
        row = self.rows.get(key)
        if row is not None:
            self.dirty.add(key)
        return row

    def create(self, key: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """Create the row of ``key`` (columns not given are NULL)."""
        row = {column: values.get(column) for column in self.columns}
        row[self.key] = key
        self.rows[key] = row
        self.dirty.add(key)
        return row

    def flush(self) -> None:
        """Upsert every changed row once, in key order (one statement on PostgreSQL)."""
        upsert_rows(
            self.tx,
            self.table,
            self.columns,
            (self.key,),
            [self.rows[k] for k in sorted(self.dirty)],
        )
        self.dirty.clear()


class _Batch:
    """What one batch of events changes (see :meth:`ScorecardsProjection.apply`)."""

    def __init__(self, zone: tzinfo, tx: Tx, tables: Mapping[str, str]) -> None:
        self.zone = zone
        self.tx = tx
        self.tables = tables
        self.activities = _Rows(tx, tables["activities"], "activity_id", ACTIVITY_COLUMNS)
        self.themes = _Rows(tx, tables["themes"], "theme_id", THEME_COLUMNS)
        self.meetings = _Rows(tx, tables["meetings"], "meeting_id", MEETING_COLUMNS)
        self.needs = _Rows(tx, tables["needs"], "need_id", NEED_COLUMNS)
        self.reports = _Rows(tx, tables["reports"], "assessment_id", REPORT_COLUMNS)
        self.adjustments: list[dict[str, Any]] = []
        self.documents: list[dict[str, Any]] = []
        self.models: list[dict[str, Any]] = []
        self.published: list[dict[str, Any]] = []
        self.changed: dict[str, int] = {}

    def preload(self, events: Sequence[LoggedEvent]) -> None:
        """Load every stored row the batch will touch: one query per table (per chunk)."""
        keys: dict[str, set[str]] = {"a": set(), "t": set(), "m": set(), "n": set(), "r": set()}
        for event in events:
            kind = event.type
            if kind in ACTIVITY_TYPES and kind != ACTIVITY_PLANNED:
                keys["a"].add(event.subject)
            elif kind == THEME_REVISED:
                keys["t"].add(event.subject)
            elif kind in MEETING_TYPES and kind != MEETING_HELD:
                keys["m"].add(event.subject)
            elif kind in NEED_TYPES and kind != NEED_SUBMITTED:
                keys["n"].add(event.subject)
            elif kind in REPORT_TYPES and kind != PERIOD_OPENED:
                keys["r"].add(event.subject)
        self.activities.preload(keys["a"])
        self.themes.preload(keys["t"])
        self.meetings.preload(keys["m"])
        self.needs.preload(keys["n"])
        self.reports.preload(keys["r"])

    def local_date(self, moment: datetime) -> str:
        """The local date of ``moment`` in the network's zone (``YYYY-MM-DD``)."""
        return moment.astimezone(self.zone).date().isoformat()

    def handle(self, event: LoggedEvent) -> None:
        """Route one event to its table, and note the area it changed (see ``changes``)."""
        kind = event.type
        if kind in ACTIVITY_TYPES:
            self.activity(event)
            area = "activities"
        elif kind in THEME_TYPES:
            self.theme(event)
            area = "themes"
        elif kind in MEETING_TYPES:
            self.meeting(event)
            area = "meetings"
        elif kind in NEED_TYPES:
            self.need(event)
            area = "needs"
        elif kind in MODEL_TYPES:
            self.model(event)
            area = "models"
        elif kind in REPORT_TYPES:
            self.report(event)
            area = "reports"
        else:  # pragma: no cover - the runner only passes this projection's topics
            return
        self.changed[area] = event.position

    # -- activities and themes ------------------------------------------------------------

    def activity(self, event: LoggedEvent) -> None:
        """Planned → a row; cancelled or completed → its status."""
        d = event.data
        if event.type == ACTIVITY_PLANNED:
            starts = datetime.fromisoformat(str(d["starts_at"]))
            self.activities.create(
                event.subject,
                {
                    "site_id": d["site_id"],
                    "month": d.get("month") or starts.astimezone(self.zone).strftime("%Y-%m"),
                    "start_date": self.local_date(starts),
                    "starts_at": utc_text(starts),
                    "theme_code": d.get("theme_code"),
                    "category": d.get("category"),
                    "team_id": d.get("team_id"),
                    "status": "planned",
                    "completed": 0,
                    "last_position": event.position,
                },
            )
            return
        row = self.activities.get(event.subject)
        if row is None:  # pragma: no cover - the aggregate exists before its later events
            return
        if event.type == ACTIVITY_CANCELLED:
            row["status"] = "cancelled"
            row["cancelled_at"] = utc_text(event.time)
        else:
            row["status"] = "completed"
            row["completed"] = 1
            row["served_count"] = d.get("served_count")
            row["beneficiaries_count"] = d.get("beneficiaries_count")
            row["completed_at"] = utc_text(event.time)
            row["completed_date"] = self.local_date(event.time)
        row["last_position"] = event.position

    def theme(self, event: LoggedEvent) -> None:
        """Set → a row; revised → its new title or code."""
        d = event.data
        if event.type == THEME_SET:
            self.themes.create(
                event.subject,
                {
                    "unit_id": d["unit_id"],
                    "month": d["month"],
                    "theme_code": d["theme_code"],
                    "title": d["title"],
                    "set_at": utc_text(event.time),
                    "revision_count": 0,
                    "last_position": event.position,
                },
            )
            return
        row = self.themes.get(event.subject)
        if row is None:  # pragma: no cover - the aggregate exists before its later events
            return
        if d.get("title") is not None:
            row["title"] = d["title"]
        if d.get("theme_code") is not None:
            row["theme_code"] = d["theme_code"]
        row["revision_count"] = int(row["revision_count"]) + 1
        row["last_position"] = event.position

    # -- house meetings -------------------------------------------------------------------

    def meeting(self, event: LoggedEvent) -> None:
        """Held → a row; steps and concerns → its counters."""
        d = event.data
        if event.type == MEETING_HELD:
            started = datetime.fromisoformat(str(d["started_at"]))
            self.meetings.create(
                event.subject,
                {
                    "site_id": d["site_id"],
                    "started_at": utc_text(started),
                    "start_date": self.local_date(started),
                    "attendees_count": int(d.get("attendees_count") or 0),
                    "officials_count": len(d.get("officials_present") or ()),
                    "steps": "[]",
                    "step_count": 0,
                    "complete": 0,
                    "concerns_raised": 0,
                    "concerns_resolved": 0,
                    "concerns_converted": 0,
                    "converted_to_need": 0,
                    "converted_to_finding": 0,
                    "last_position": event.position,
                },
            )
            return
        row = self.meetings.get(event.subject)
        if row is None:  # pragma: no cover - the aggregate exists before its later events
            return
        if event.type == STEP_LOGGED:
            logged = set(orjson.loads(row["steps"])) | {str(d["step"])}
            ordered = [step for step in STEPS if step in logged]
            row["steps"] = orjson.dumps(ordered).decode()
            row["step_count"] = len(ordered)
            row["complete"] = int(len(ordered) == len(STEPS))
        elif event.type == CONCERN_RAISED:
            row["concerns_raised"] = int(row["concerns_raised"]) + 1
        elif event.type == CONCERN_RESOLVED:
            row["concerns_resolved"] = int(row["concerns_resolved"]) + 1
        else:
            row["concerns_converted"] = int(row["concerns_converted"]) + 1
            target = "converted_to_need" if d.get("to") == "need" else "converted_to_finding"
            row[target] = int(row[target]) + 1
        row["last_position"] = event.position

    # -- needs ----------------------------------------------------------------------------

    def need(self, event: LoggedEvent) -> None:
        """Submitted → a row; each later step → its time, date and counters."""
        d = event.data
        at = utc_text(event.time)
        day = self.local_date(event.time)
        if event.type == NEED_SUBMITTED:
            self.needs.create(
                event.subject,
                {
                    "site_id": d["site_id"],
                    "channel": d.get("channel"),
                    "category": d.get("category"),
                    "urgency": d.get("urgency", "normal"),
                    "stage": "submitted",
                    "submitted_at": at,
                    "submitted_date": day,
                    "assignment_count": 0,
                    "redispatch_count": 0,
                    "delivery_count": 0,
                    "hours_delivered": 0.0,
                    "last_position": event.position,
                },
            )
            return
        row = self.needs.get(event.subject)
        if row is None:  # pragma: no cover - the aggregate exists before its later events
            return
        kind = event.type
        if kind == NEED_ACCEPTED:
            row.update(stage="accepted", accepted_at=at, accepted_date=day)
        elif kind == NEED_REJECTED:
            row.update(stage="rejected", rejected_at=at, rejected_date=day)
        elif kind in (NEED_DISPATCHED, NEED_CLAIMED, NEED_REDISPATCHED):
            if row["first_assigned_at"] is None:
                row.update(first_assigned_at=at, first_assigned_date=day)
            row["assignment_count"] = int(row["assignment_count"]) + 1
            if kind == NEED_REDISPATCHED:
                row["redispatch_count"] = int(
                    d.get("redispatch_count") or int(row["redispatch_count"]) + 1
                )
            row["stage"] = "claimed" if kind == NEED_CLAIMED else "dispatched"
        elif kind == NEED_DELIVERED:
            row["delivery_count"] = int(row["delivery_count"]) + 1
            row["hours_delivered"] = float(row["hours_delivered"]) + float(d.get("hours") or 0)
            if row["first_delivered_at"] is None:
                row.update(first_delivered_at=at, first_delivered_date=day)
                if row["accepted_at"] is not None:
                    accepted = datetime.fromisoformat(str(row["accepted_at"]))
                    seconds = (event.time - accepted).total_seconds()
                    row["serve_hours"] = round(seconds / 3600, 6)
        elif kind == NEED_CLOSED:
            row.update(stage="closed", closed_at=at, closed_date=day, outcome=d.get("outcome"))
        elif kind == NEED_RATED:
            row.update(rating=int(d["rating"]), rated_at=at, rated_date=day)
        row["last_position"] = event.position

    # -- assessment -----------------------------------------------------------------------

    def model(self, event: LoggedEvent) -> None:
        """Keep the model version as published."""
        d = event.data
        self.models.append(
            {
                "model_id": event.subject,
                "version": int(d["version"]),
                "title": str(d.get("title", "")),
                "effective_from": str(d["effective_from"]),
                "data": _dumps(dict(d)),
                "published_at": utc_text(event.time),
                "position": event.position,
            }
        )

    def report(self, event: LoggedEvent) -> None:
        """Opened → a row; adjustments, scorecards and documents → the row and their own rows."""
        d = event.data
        if event.type == PERIOD_OPENED:
            self.reports.create(
                event.subject,
                {
                    "unit_id": d["unit_id"],
                    "period": d["period"],
                    "kind": d["kind"],
                    "opened_at": utc_text(event.time),
                    "bonus_total": 0.0,
                    "deduction_total": 0.0,
                    "adjustment_count": 0,
                    "scorecard_count": 0,
                    "bulletin_count": 0,
                    "summary_count": 0,
                    "last_position": event.position,
                },
            )
            return
        row = self.reports.get(event.subject)
        if row is None:  # pragma: no cover - the aggregate exists before its later events
            return
        unit_id, period = str(row["unit_id"]), str(row["period"])
        at = utc_text(event.time)
        day = self.local_date(event.time)
        kind = event.type
        if kind == SCORE_ADJUSTED:
            delta = float(d["delta"])
            if delta > 0:
                row["bonus_total"] = round(float(row["bonus_total"]) + delta, 6)
            else:
                row["deduction_total"] = round(float(row["deduction_total"]) - delta, 6)
            row["adjustment_count"] = int(row["adjustment_count"]) + 1
            self.adjustments.append(
                {
                    "position": event.position,
                    "unit_id": unit_id,
                    "period": period,
                    "kind": d["kind"],
                    "delta": delta,
                    "indicator_code": d.get("indicator_code"),
                    "reason": d["reason"],
                    "approver": d["approver"],
                    "recorded_at": at,
                    "event_id": event.meta.get("id"),
                }
            )
        elif kind == SCORECARD_PUBLISHED:
            row["scorecard_count"] = int(row["scorecard_count"]) + 1
            self.published.append(
                {
                    "unit_id": unit_id,
                    "period": period,
                    "model_id": d["model_id"],
                    "model_version": int(d["model_version"]),
                    "as_of_position": int(d["as_of_position"]),
                    "composite": float(d["composite"]),
                    "bonus_total": float(d.get("bonus_total") or 0),
                    "deduction_total": float(d.get("deduction_total") or 0),
                    "data": _dumps(dict(d)),
                    "published_at": at,
                    "event_id": event.meta.get("id"),
                    "position": event.position,
                }
            )
        elif kind == PERIOD_CLOSED:
            row["closed_at"] = at
        else:
            self.document(row, event, at, day)
        row["last_position"] = event.position

    def document(self, row: dict[str, Any], event: LoggedEvent, at: str, day: str) -> None:
        """A bulletin, review or summary: the first one's time on the row, each one kept."""
        kind = event.type
        d = event.data
        if kind == BULLETIN_PUBLISHED:
            label = "bulletin"
            if row["bulletin_first_at"] is None:
                row.update(bulletin_first_at=at, bulletin_first_date=day)
            row["bulletin_count"] = int(row["bulletin_count"]) + 1
        elif kind == REVIEW_HELD:
            label = "quarterly_review"
            row.update(review_held_at=at, review_date=day)
        else:
            label = "half_year_summary"
            if row["summary_first_at"] is None:
                row.update(summary_first_at=at, summary_first_date=day)
            row["summary_count"] = int(row["summary_count"]) + 1
        self.documents.append(
            {
                "position": event.position,
                "unit_id": row["unit_id"],
                "period": row["period"],
                "kind": label,
                "document_ref": d.get("document_ref"),
                "correction_of": d.get("correction_of"),
                "as_of_position": d.get("as_of_position"),
                "data": _dumps(dict(d)),
                "published_at": at,
                "published_date": day,
                "event_id": event.meta.get("id"),
            }
        )

    # -- writing --------------------------------------------------------------------------

    def flush(self) -> None:
        """Write every touched row once."""
        for keyed in (self.activities, self.themes, self.meetings, self.needs, self.reports):
            keyed.flush()
        tables = self.tables
        appended: tuple[tuple[str, Sequence[str], Sequence[str], list[dict[str, Any]]], ...] = (
            (tables["adjustments"], ADJUSTMENT_COLUMNS, ("position",), self.adjustments),
            (tables["documents"], DOCUMENT_COLUMNS, ("position",), self.documents),
            (tables["models"], MODEL_COLUMNS, ("model_id", "version"), self.models),
            (
                tables["published"],
                PUBLISHED_COLUMNS,
                ("unit_id", "period", "model_id", "model_version"),
                self.published,
            ),
        )
        for table, columns, key, rows in appended:
            if rows:
                self.tx.executemany(
                    _upsert_sql(table, columns, key), [[r[c] for c in columns] for r in rows]
                )
        if self.changed:
            self.tx.executemany(
                _upsert_sql(tables["changes"], ("area", "position"), ("area",)),
                sorted(self.changed.items()),
            )


# --- queries ------------------------------------------------------------------------------

TABLES: Mapping[str, str] = {
    logical: f"{ScorecardsProjection.NAME}_{logical}" for logical in ScorecardsProjection.TABLES
}
"""Live table names of this projection (what the query functions read)."""

NETWORK_SITES = "network_sites"
NETWORK_ASSESSMENTS = "network_assessments"
NETWORK_CHECKLISTS = "network_checklists"
LEDGER_VOLUNTEERS = "ledger_volunteers"
LEDGER_SESSIONS = "ledger_sessions"
LEDGER_OFFICIALS = "ledger_officials"
CLOSED_LOOP_CLOCKS = "closed_loop_clocks"
CLOSED_LOOP_FINDINGS = "closed_loop_findings"
CLOSED_LOOP_TIMELINE = "closed_loop_timeline"
"""Tables of the other views that scorecards read (their modules document the columns)."""

SOURCES = ("scorecards", "network", "closed_loop", "ledger")
"""The views a scorecard reads (all must have reached the same position to publish)."""

PATH_SEPARATOR = " > "
"""How ``network_sites.path`` joins the ids from the root down to a site."""

SETTLED_AFTER = timedelta(days=60)
"""After a period's end plus this, no closed-loop figure of it still depends on the clock."""

FINDING_PASSED = "practice.finding.verification_passed.v1"
FINDING_REOPENED = "practice.finding.reopened.v1"
FINDING_RETURNED = "practice.finding.returned.v1"

PARTS: Mapping[str, tuple[str, ...]] = {
    "site_standard": ("network",),
    "activities": ("network", "activities", "themes"),
    "meetings": ("network", "meetings"),
    "needs": ("network", "needs"),
    "volunteers": ("network", "ledger"),
    "closed_loop": ("network", "closed_loop"),
    "reporting": ("reports",),
    "adjustments": ("reports",),
}
"""Each group of indicators and the markers its figures depend on (the cache key).

``network`` is the latest change of the sites and checklists, ``activities``
… ``reports`` the latest change of that area of this view (``changes``),
``closed_loop`` the latest change of a finding, ``ledger`` the ledger's
tracking position (it has no finer marker).
"""


@dataclass(frozen=True, slots=True)
class ScorecardSettings:
    """What a deployment may tune: the network's zone and the bulletin's day."""

    timezone: str = "Asia/Shanghai"
    bulletin_day: int = ind.DEFAULT_BULLETIN_DAY

    @property
    def zone(self) -> ZoneInfo:
        """The network's time zone."""
        return ZoneInfo(self.timezone)


DEFAULT_SETTINGS = ScorecardSettings()


def _bad_request(reason: str) -> PracticeEventsError:
    return PracticeEventsError(reason, code="BAD_REQUEST")


def _not_found(reason: str) -> PracticeEventsError:
    return PracticeEventsError(reason, code="NOT_FOUND")


def parse_period(period: str | Period) -> Period:
    """Return a :class:`Period` from its name; BAD_REQUEST for a malformed one."""
    if isinstance(period, Period):
        return period
    try:
        return Period.parse(period)
    except ValueError as exc:
        raise _bad_request(str(exc)) from None


class _Memo:
    """A small thread-safe LRU of computed values."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.data: OrderedDict[Any, Any] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self.lock:
            if key not in self.data:
                return None
            self.data.move_to_end(key)
            return self.data[key]

    def put(self, key: Any, value: Any) -> None:
        with self.lock:
            self.data[key] = value
            self.data.move_to_end(key)
            while len(self.data) > self.size:
                self.data.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.data.clear()


_FACTS = _Memo(8192)
_CARDS = _Memo(4096)
_SITES = _Memo(16)
_MODELS = _Memo(16)
_CALENDARS = _Memo(8)


def clear_cache() -> None:
    """Forget everything cached in this process (tests; stale entries are never served)."""
    for memo in (_FACTS, _CARDS, _SITES, _MODELS, _CALENDARS):
        memo.clear()


@dataclass(frozen=True, slots=True)
class ModelSelection:
    """Which scoring model to use: a model id and version, or the defaults (None)."""

    model_id: str | None = None
    version: int | None = None


@dataclass(frozen=True, slots=True)
class _Request:
    """What one scorecard computation is asked for."""

    period: Period
    selection: ModelSelection
    settings: ScorecardSettings
    now: datetime


class _Snapshot:
    """One consistent read of the views: positions, change markers, sites and models."""

    def __init__(self, tx: Tx, namespace: str | None) -> None:
        self.tx = tx
        self.namespace = namespace
        self.positions: dict[str, int] = {
            str(r["name"]): int(r["position"])
            for r in tx.query(f"SELECT name, position FROM {ViewStore.TRACKING}")
        }
        self.markers: dict[str, int] = self._load_markers()
        self.sites = self._load_sites()
        self.models = self._load_models()

    def has(self, source: str) -> bool:
        """Tell whether the view ``source`` is built in this store."""
        return source in self.positions

    def _load_markers(self) -> dict[str, int]:
        """The latest change of each area the scorecards read (see :data:`PARTS`)."""
        markers: dict[str, int] = {}
        if self.has("scorecards"):
            for row in self.tx.query(f"SELECT area, position FROM {TABLES['changes']}"):
                markers[str(row["area"])] = int(row["position"])
        probes: list[str] = []
        if self.has("network"):
            probes.append(
                f"(SELECT MAX(last_position) FROM {NETWORK_SITES}) AS sites, "
                f"(SELECT MAX(position) FROM {NETWORK_CHECKLISTS}) AS checklists"
            )
        if self.has("closed_loop"):
            probes.append(f"(SELECT MAX(last_position) FROM {CLOSED_LOOP_FINDINGS}) AS findings")
        if probes:
            row = self.tx.query(f"SELECT {', '.join(probes)}")[0]
            if self.has("network"):
                markers["network"] = max(int(row["sites"] or 0), int(row["checklists"] or 0))
            if self.has("closed_loop"):
                markers["closed_loop"] = int(row["findings"] or 0)
        if self.has("ledger"):
            markers["ledger"] = self.positions["ledger"]
        return markers

    def marker(self, part: str) -> tuple[int, ...]:
        """The markers a group of indicators depends on (-1 for a view not built)."""
        return tuple(self.markers.get(name, -1) for name in PARTS[part])

    def _load_sites(self) -> dict[str, dict[str, Any]]:
        if not self.has("network"):
            return {}
        memo_key = (self.namespace, self.markers.get("network"))
        if self.namespace is not None:
            cached = _SITES.get(memo_key)
            if cached is not None:
                return dict(cached)
        rows = self.tx.query(
            "SELECT site_id, level, parent_id, name, active, registered_date, deactivated_date, "
            f"path FROM {NETWORK_SITES}"
        )
        sites = {str(r["site_id"]): dict(r) for r in rows}
        for site in sites.values():
            site["ancestors"] = str(site["path"]).split(PATH_SEPARATOR)
            site["subtree"] = []
        for site_id, site in sites.items():
            for ancestor in site["ancestors"]:
                if ancestor in sites:
                    sites[ancestor]["subtree"].append(site_id)
        for site in sites.values():
            site["subtree"].sort()
        if self.namespace is not None:
            _SITES.put(memo_key, sites)
        return sites

    def _load_models(self) -> dict[str, list[ScoringModel]]:
        if not self.has("scorecards"):
            return {}
        memo_key = (self.namespace, self.markers.get("models", -1))
        if self.namespace is not None:
            cached = _MODELS.get(memo_key)
            if cached is not None:
                return dict(cached)
        models: dict[str, list[ScoringModel]] = {}
        for row in self.tx.query(
            f"SELECT model_id, version, data, published_at, position FROM {TABLES['models']} "
            "ORDER BY model_id, version"
        ):
            models.setdefault(str(row["model_id"]), []).append(
                ScoringModel.from_data(
                    str(row["model_id"]),
                    orjson.loads(row["data"]),
                    published_at=row["published_at"],
                    position=int(row["position"]),
                )
            )
        if self.namespace is not None:
            _MODELS.put(memo_key, models)
        return models

    def subtree(self, unit_id: str) -> list[str]:
        """The unit and every site under it (just the unit when the tree is unknown)."""
        row = self.sites.get(unit_id)
        if row is None:
            return [unit_id]
        return list(row["subtree"])

    def operating(self, site_ids: Iterable[str], period: Period) -> list[str]:
        """The sites registered before the period ends and not deactivated before it starts."""
        first, end = period.first.isoformat(), period.end.isoformat()
        out = []
        for site_id in site_ids:
            row = self.sites.get(site_id)
            if row is None:
                continue
            if str(row["registered_date"]) >= end:
                continue
            if row["deactivated_date"] is not None and str(row["deactivated_date"]) < first:
                continue
            out.append(site_id)
        return out

    def level(self, site_id: str) -> str | None:
        """The level of a site, or None if unknown."""
        row = self.sites.get(site_id)
        return None if row is None else str(row["level"])

    def select_model(self, period: Period, selection: ModelSelection) -> ScoringModel | None:
        """The model version for ``period`` (module docstring of scoring.model), or None.

        Without a model id: the model published most recently (by log
        position) if there are several. Without a version: the latest in
        effect in the period's first month. A named id or version that does
        not exist is NOT_FOUND.
        """
        if selection.model_id is not None:
            versions = self.models.get(selection.model_id)
            if not versions:
                raise _not_found(f"no scoring model {selection.model_id!r} was published")
        elif self.models:
            latest = max(self.models, key=lambda m: max(v.position or 0 for v in self.models[m]))
            versions = self.models[latest]
        else:
            if selection.version is not None:
                raise _not_found("no scoring model was published yet")
            return None
        if selection.version is not None:
            for model in versions:
                if model.version == selection.version:
                    return model
            raise _not_found(
                f"scoring model {versions[0].model_id!r} has no version {selection.version}"
            )
        return version_for(versions, period.first.strftime("%Y-%m"))


def _grouped_query(
    tx: Tx, sql: str, params: Sequence[Any], ids: Sequence[str]
) -> list[dict[str, Any]]:
    """Run ``sql`` (with ``{ids}`` for an ``IN`` list) once per chunk of ``ids``."""
    rows: list[dict[str, Any]] = []
    for part in _chunks(list(ids)):
        rows.extend(tx.query(sql.replace("{ids}", _marks(len(part))), [*params, *part]))
    return rows


def _calendar(zone: ZoneInfo) -> Any:
    cached = _CALENDARS.get(zone.key)
    if cached is None:
        from practice_events.domain.calendar import load_calendar

        cached = load_calendar(None, zone)
        _CALENDARS.put(zone.key, cached)
    return cached


def _num(value: Any) -> float:
    return float(value or 0)


Facts = dict[str, Any]
"""Raw counts of one group of indicators for one unit (before minimum samples apply)."""


class _Family:
    """The facts of several units with disjoint subtrees (a unit and its peers).

    Facts are computed **per site** with grouped SQL and cached per site
    (:data:`_FACTS`, keyed by the part, the period and the part's markers),
    then summed into the units: a request computes only the sites no earlier
    request of the same period has computed, so the station scorecards of a
    period together cost one pass over the district, and a repeated request
    costs none. Volunteers count for their home site, findings for the unit
    a clock ran for, reports and adjustments for the unit itself.
    """

    def __init__(self, snap: _Snapshot, targets: Sequence[str], request: _Request) -> None:
        self.snap = snap
        self.tx = snap.tx
        self.targets = list(targets)
        self.request = request
        self.period = period = request.period
        self.zone = request.settings.zone
        self.first = period.first.isoformat()
        self.end = period.end.isoformat()
        self.months = [m.name for m in period.months()]
        self.subtrees = {target: snap.subtree(target) for target in self.targets}
        self.operating = set(snap.operating({s for t in self.subtrees.values() for s in t}, period))

    # -- per-site facts, cached ---------------------------------------------------------------

    def site_facts(self, part: str, sites: Iterable[str]) -> dict[str, Facts]:
        """Facts of ``part`` for each of ``sites`` (computing only those not cached)."""
        wanted = set(sites)
        key = (
            self.snap.namespace,
            part,
            self.period.name,
            self.request.settings,
            self.snap.marker(part),
            _now_key(self.period, self.zone, self.request.now) if part == "closed_loop" else None,
        )
        entry: dict[str, Facts] = {}
        if self.snap.namespace is not None:
            entry = _FACTS.get(key) or {}
        missing = sorted(wanted - set(entry))
        if missing:
            computed: dict[str, Facts] = getattr(self, f"_{part}")(missing)
            entry = {**entry, **{site: computed.get(site) or {} for site in missing}}
            if self.snap.namespace is not None:
                _FACTS.put(key, entry)
        return {site: entry[site] for site in wanted}

    def facts(self, part: str) -> dict[str, Facts]:
        """The facts of ``part`` per target unit."""
        own = part in ("reporting", "adjustments")
        sites = self.targets if own else [s for t in self.targets for s in self.subtrees[t]]
        per_site = self.site_facts(part, sites)
        return {t: getattr(self, f"_sum_{part}")(t, per_site) for t in self.targets}

    def _mine(self, target: str, per_site: Mapping[str, Facts]) -> list[Facts]:
        return [per_site[s] for s in self.subtrees[target] if per_site.get(s)]

    def _add(self, target: str, per_site: Mapping[str, Facts], names: Sequence[str]) -> Facts:
        out: Facts = dict.fromkeys(names, 0)
        for facts in self._mine(target, per_site):
            for name in names:
                out[name] += facts.get(name, 0)
        return out

    # -- site standard ----------------------------------------------------------------------

    def _site_standard(self, sites: Sequence[str]) -> dict[str, Facts]:
        """Each site's latest scored assessment in the 365 days before the period end."""
        if not self.snap.has("network"):
            return {}
        end_at = self.period.end_at(self.zone)
        rows = _grouped_query(
            self.tx,
            f"SELECT site_id, assessed_at, position, score FROM {NETWORK_ASSESSMENTS} "
            "WHERE assessed_at >= ? AND assessed_at < ? AND site_id IN ({ids}) "
            "ORDER BY assessed_at, position",
            [utc_text(end_at - timedelta(days=365)), utc_text(end_at)],
            sites,
        )
        out: dict[str, Facts] = {}
        for row in rows:
            out[str(row["site_id"])] = {"score": row["score"]}
        return out

    def _sum_site_standard(self, target: str, per_site: Mapping[str, Facts]) -> Facts:
        scope = [s for s in self.subtrees[target] if s in self.operating]
        scores = [
            float(per_site[s]["score"])
            for s in scope
            if per_site.get(s) and per_site[s].get("score") is not None
        ]
        return {"available": self.snap.has("network"), "scores": scores, "in_scope": len(scope)}

    # -- activities and themes -----------------------------------------------------------

    def _themes(self) -> tuple[dict[tuple[str, str], set[str]], dict[str, set[str]]]:
        """Theme codes by (unit, month) and months with a theme by unit, for the period."""
        codes: dict[tuple[str, str], set[str]] = {}
        months: dict[str, set[str]] = {}
        for theme in self.tx.query(
            f"SELECT unit_id, month, theme_code FROM {TABLES['themes']} "
            "WHERE month >= ? AND month <= ?",
            [self.months[0], self.months[-1]],
        ):
            unit, month = str(theme["unit_id"]), str(theme["month"])
            codes.setdefault((unit, month), set()).add(str(theme["theme_code"]))
            months.setdefault(unit, set()).add(month)
        return codes, months

    def _activities(self, sites: Sequence[str]) -> dict[str, Facts]:
        """Per site: months with a completed activity, and those with one on the month's theme.

        An activity is on theme when its code is a theme set for its month by
        its own site or one of that site's ancestors.
        """
        codes, _ = self.theme_units
        out: dict[str, Facts] = {}
        for row in _grouped_query(
            self.tx,
            f"SELECT site_id, month, theme_code, COUNT(*) AS n FROM {TABLES['activities']} "
            "WHERE completed = 1 AND month >= ? AND month <= ? AND site_id IN ({ids}) "
            "GROUP BY site_id, month, theme_code",
            [self.months[0], self.months[-1]],
            sites,
        ):
            site_id, month = str(row["site_id"]), str(row["month"])
            facts = out.setdefault(site_id, {"months": [], "on_theme": []})
            if month not in facts["months"]:
                facts["months"].append(month)
            code = row["theme_code"]
            if code is None or month in facts["on_theme"]:
                continue
            site = self.snap.sites.get(site_id)
            chain = site["ancestors"] if site is not None else [site_id]
            if any(code in codes.get((str(a), month), ()) for a in chain):
                facts["on_theme"].append(month)
        return out

    def _assessed_unit(self, target: str, site_id: str) -> str:
        """The unit an activity at ``site_id`` counts for (nearest centre/institute/station)."""
        if self.snap.level(target) not in ASSESSED_LEVELS:
            return target
        row = self.snap.sites.get(site_id)
        if row is None:
            return site_id
        for ancestor in reversed(row["ancestors"]):
            if self.snap.level(str(ancestor)) in ASSESSED_LEVELS:
                return str(ancestor)
        return site_id

    def _sum_activities(self, target: str, per_site: Mapping[str, Facts]) -> Facts:
        _, theme_units = self.theme_units
        own = self.snap.sites.get(target)
        relevant = set(self.subtrees[target]) | set(
            own["ancestors"] if own is not None else [target]
        )
        theme_months: set[str] = set()
        for unit in relevant & set(theme_units):
            theme_months |= theme_units[unit]
        on_theme: set[str] = set()
        active: set[tuple[str, str]] = set()
        for site in self.subtrees[target]:
            facts = per_site.get(site)
            if not facts:
                continue
            on_theme.update(facts["on_theme"])
            unit = self._assessed_unit(target, site)
            active.update((unit, month) for month in facts["months"])
        if own is not None and own["level"] in ASSESSED_LEVELS:
            units = sorted(
                s
                for s in self.subtrees[target]
                if s in self.operating and self.snap.level(s) in ASSESSED_LEVELS
            )
        else:
            units = [target]
        return {
            "theme_months": sorted(theme_months),
            "on_theme": sorted(on_theme),
            "units": units,
            "active": sorted(active),
        }

    @property
    def theme_units(self) -> tuple[dict[tuple[str, str], set[str]], dict[str, set[str]]]:
        """The period's themes (read once per computation)."""
        cached: tuple[dict[tuple[str, str], set[str]], dict[str, set[str]]] | None = getattr(
            self, "_theme_cache", None
        )
        if cached is None:
            cached = self._themes()
            self._theme_cache = cached
        return cached

    # -- house meetings -------------------------------------------------------------------

    MEETING_SUMS = ("held", "complete", "raised", "resolved", "converted")

    def _meetings(self, sites: Sequence[str]) -> dict[str, Facts]:
        """Per site: meetings starting in the period, complete ones and their concerns."""
        rows = _grouped_query(
            self.tx,
            "SELECT site_id, COUNT(*) AS held, SUM(complete) AS complete, "
            "SUM(concerns_raised) AS raised, SUM(concerns_resolved) AS resolved, "
            f"SUM(concerns_converted) AS converted FROM {TABLES['meetings']} "
            "WHERE start_date >= ? AND start_date < ? AND site_id IN ({ids}) GROUP BY site_id",
            [self.first, self.end],
            sites,
        )
        return {
            str(r["site_id"]): {name: int(r[name] or 0) for name in self.MEETING_SUMS} for r in rows
        }

    def _sum_meetings(self, target: str, per_site: Mapping[str, Facts]) -> Facts:
        out = self._add(target, per_site, self.MEETING_SUMS)
        out["house_sites"] = [
            s
            for s in self.subtrees[target]
            if s in self.operating and self.snap.level(s) == "house_meeting_site"
        ]
        out["with_meeting"] = [
            s for s in self.subtrees[target] if (per_site.get(s) or {}).get("held", 0) > 0
        ]
        return out

    # -- needs ----------------------------------------------------------------------------

    NEED_SUMS = (
        "accepted",
        "withdrawn",
        "fulfilled",
        "assigned",
        "redispatched",
        "ratings",
        "good",
        "rating_sum",
    )

    def _needs(self, sites: Sequence[str]) -> dict[str, Facts]:
        """Per site: fulfilment, time to serve, re-dispatch and ratings of its needs."""
        table = TABLES["needs"]
        grace = (self.period.end + timedelta(days=ind.FULFILMENT_GRACE_DAYS)).isoformat()
        window = [self.first, self.end]
        out: dict[str, Facts] = {}

        def facts(site_id: Any) -> Facts:
            return out.setdefault(
                str(site_id), {**dict.fromkeys(self.NEED_SUMS, 0), "serve_hours": []}
            )

        for row in _grouped_query(
            self.tx,
            "SELECT site_id, COUNT(*) AS n, "
            "SUM(CASE WHEN outcome = 'withdrawn' AND closed_date < ? THEN 1 ELSE 0 END) AS w, "
            "SUM(CASE WHEN outcome = 'fulfilled' AND closed_date < ? THEN 1 ELSE 0 END) AS f "
            f"FROM {table} WHERE accepted_date >= ? AND accepted_date < ? "
            "AND site_id IN ({ids}) GROUP BY site_id",
            [grace, grace, *window],
            sites,
        ):
            f = facts(row["site_id"])
            f.update(accepted=int(row["n"] or 0), withdrawn=int(row["w"] or 0))
            f["fulfilled"] = int(row["f"] or 0)
        for row in _grouped_query(
            self.tx,
            f"SELECT site_id, serve_hours FROM {table} WHERE first_delivered_date >= ? "
            "AND first_delivered_date < ? AND serve_hours IS NOT NULL AND site_id IN ({ids})",
            window,
            sites,
        ):
            facts(row["site_id"])["serve_hours"].append(float(row["serve_hours"]))
        for row in _grouped_query(
            self.tx,
            "SELECT site_id, COUNT(*) AS n, "
            "SUM(CASE WHEN redispatch_count > 0 THEN 1 ELSE 0 END) AS r "
            f"FROM {table} WHERE first_assigned_date >= ? AND first_assigned_date < ? "
            "AND site_id IN ({ids}) GROUP BY site_id",
            window,
            sites,
        ):
            facts(row["site_id"]).update(
                assigned=int(row["n"] or 0), redispatched=int(row["r"] or 0)
            )
        for row in _grouped_query(
            self.tx,
            "SELECT site_id, COUNT(*) AS n, SUM(CASE WHEN rating >= 4 THEN 1 ELSE 0 END) AS good, "
            f"SUM(rating) AS total FROM {table} WHERE rated_date >= ? AND rated_date < ? "
            "AND site_id IN ({ids}) GROUP BY site_id",
            window,
            sites,
        ):
            facts(row["site_id"]).update(
                ratings=int(row["n"] or 0),
                good=int(row["good"] or 0),
                rating_sum=_num(row["total"]),
            )
        return out

    def _sum_needs(self, target: str, per_site: Mapping[str, Facts]) -> Facts:
        out = self._add(target, per_site, self.NEED_SUMS)
        out["serve_hours"] = [h for f in self._mine(target, per_site) for h in f["serve_hours"]]
        return out

    # -- volunteers -----------------------------------------------------------------------

    VOLUNTEER_SUMS = ("registered", "officials", "active", "hours", "both")

    def _volunteers(self, sites: Sequence[str]) -> dict[str, Facts]:
        """Per home site: registered, active, approved hours, officials (ledger view).

        Same definitions as ``projections.ledger.volunteers_summary`` (active:
        an approved session with hours in the 90 days ending on the period's
        last day; hours: approved after corrections, service dated in the
        period) and officials as in ``officials_dual_checkin`` (reported to
        both a community and a post in the period's year, by its end).
        """
        if not self.snap.has("ledger"):
            return {}
        out: dict[str, Facts] = {}

        def facts(site_id: Any) -> Facts:
            return out.setdefault(str(site_id), dict.fromkeys(self.VOLUNTEER_SUMS, 0))

        window_start = (self.period.end - timedelta(days=ind.ACTIVE_WINDOW_DAYS)).isoformat()
        for row in _grouped_query(
            self.tx,
            "SELECT home_site_id AS site_id, COUNT(*) AS n, "
            "SUM(CASE WHEN is_official = 1 THEN 1 ELSE 0 END) AS officials "
            f"FROM {LEDGER_VOLUNTEERS} WHERE registered_on < ? AND home_site_id IN ({{ids}}) "
            "GROUP BY home_site_id",
            [self.end],
            sites,
        ):
            facts(row["site_id"]).update(
                registered=int(row["n"] or 0), officials=int(row["officials"] or 0)
            )
        for row in _grouped_query(
            self.tx,
            "SELECT v.home_site_id AS site_id, COUNT(DISTINCT CASE WHEN s.approved_hours > 0 "
            "AND s.service_date >= ? THEN s.volunteer_no END) AS active, "
            "SUM(CASE WHEN s.service_date >= ? THEN s.approved_hours ELSE 0 END) AS hours "
            f"FROM {LEDGER_SESSIONS} s JOIN {LEDGER_VOLUNTEERS} v "
            "ON v.volunteer_no = s.volunteer_no WHERE s.status = 'approved' "
            "AND s.service_date >= ? AND s.service_date < ? AND v.registered_on < ? "
            "AND v.home_site_id IN ({ids}) GROUP BY v.home_site_id",
            [window_start, self.first, min(window_start, self.first), self.end, self.end],
            sites,
        ):
            facts(row["site_id"]).update(active=int(row["active"] or 0), hours=_num(row["hours"]))
        end_at = utc_text(self.period.end_at(self.zone))
        for row in _grouped_query(
            self.tx,
            "SELECT v.home_site_id AS site_id, COUNT(*) AS n "
            f"FROM {LEDGER_VOLUNTEERS} v JOIN {LEDGER_OFFICIALS} o "
            "ON o.volunteer_no = v.volunteer_no AND o.year = ? "
            "WHERE v.is_official = 1 AND v.registered_on < ? AND o.community_reported_at < ? "
            "AND o.post_reported_at < ? AND v.home_site_id IN ({ids}) GROUP BY v.home_site_id",
            [self.period.first.year, self.end, end_at, end_at],
            sites,
        ):
            facts(row["site_id"])["both"] = int(row["n"] or 0)
        return out

    def _sum_volunteers(self, target: str, per_site: Mapping[str, Facts]) -> Facts:
        out = self._add(target, per_site, self.VOLUNTEER_SUMS)
        out["available"] = self.snap.has("ledger")
        return out

    # -- closed loop ----------------------------------------------------------------------

    LOOP_SUMS = (
        "fed_back",
        "ack_on_time",
        "ack_late",
        "ack_pending",
        "rect_on_time",
        "rect_late",
        "rect_pending",
        "passes",
        "first_pass",
        "closures_two",
        "reopens",
        "returns",
        "open",
        "overdue",
        "overdue_days",
    )

    def _closed_loop(self, sites: Sequence[str]) -> dict[str, Facts]:
        """Per unit a clock ran for: the closed-loop counts of ``projections.closed_loop``.

        Computed with aggregate SQL on that view's tables (``clocks``,
        ``timeline``, ``findings``) so that a district's year costs a few
        grouped queries. The classification is that of
        :func:`projections.closed_loop.closed_loop_summary` (its
        ``INDICATORS``): clocks count for the unit they ran for, voided
        findings count nowhere, superseded or cancelled clocks leave the
        cohorts, clocks still running at the evaluation time are pending; a
        verification passed in cycle 1 is a first pass (every reopen starts
        the next cycle); the backlog is evaluated at the period's end (or
        ``now`` if earlier).
        """
        if not self.snap.has("closed_loop"):
            return {}
        out: dict[str, Facts] = {}

        def facts(site_id: Any) -> Facts:
            return out.setdefault(str(site_id), dict.fromkeys(self.LOOP_SUMS, 0))

        now = self.request.now
        now_text = utc_text(now)
        as_of = min(self.period.end_at(self.zone), now)
        t = utc_text(as_of)
        c, f, tl = CLOSED_LOOP_CLOCKS, CLOSED_LOOP_FINDINGS, CLOSED_LOOP_TIMELINE
        kept = "(c.end_reason IS NULL OR c.end_reason NOT IN ('superseded', 'cancelled'))"
        running = "(c.end_reason IS NULL OR c.end_reason NOT IN ('met', 'superseded', 'cancelled'))"
        for row in _grouped_query(
            self.tx,
            "SELECT c.unit_id AS site_id, COUNT(*) AS n, "
            "SUM(CASE WHEN c.end_reason = 'met' AND c.outcome = 'met' THEN 1 ELSE 0 END) AS ok, "
            "SUM(CASE WHEN c.end_reason = 'met' AND COALESCE(c.outcome, '') <> 'met' THEN 1 "
            f"WHEN {running} AND c.due_at < ? THEN 1 ELSE 0 END) AS late, "
            f"SUM(CASE WHEN {running} AND c.due_at >= ? THEN 1 ELSE 0 END) AS pending "
            f"FROM {c} c JOIN {f} f ON f.finding_id = c.finding_id "
            "WHERE c.stage = 'acknowledgement' AND c.started_date >= ? AND c.started_date < ? "
            "AND f.stage <> 'VOIDED' AND c.unit_id IN ({ids}) GROUP BY c.unit_id",
            [now_text, now_text, self.first, self.end],
            sites,
        ):
            facts(row["site_id"]).update(
                fed_back=int(row["n"] or 0),
                ack_on_time=int(row["ok"] or 0),
                ack_late=int(row["late"] or 0),
                ack_pending=int(row["pending"] or 0),
            )
        for row in _grouped_query(
            self.tx,
            "SELECT c.unit_id AS site_id, "
            "SUM(CASE WHEN c.end_reason = 'met' AND c.outcome = 'met' AND c.verified IS NOT NULL "
            "AND c.verified <> 0 THEN 1 ELSE 0 END) AS ok, "
            "SUM(CASE WHEN c.end_reason = 'met' AND (COALESCE(c.outcome, '') <> 'met' "
            f"OR c.verified = 0) THEN 1 WHEN {running} AND c.due_at < ? THEN 1 ELSE 0 END) "
            "AS late, "
            "SUM(CASE WHEN c.end_reason = 'met' AND c.outcome = 'met' AND c.verified IS NULL "
            f"THEN 1 WHEN {running} AND c.due_at >= ? THEN 1 ELSE 0 END) AS pending "
            f"FROM {c} c JOIN {f} f ON f.finding_id = c.finding_id "
            "WHERE c.stage = 'rectification' AND c.due_date >= ? AND c.due_date < ? "
            f"AND f.stage <> 'VOIDED' AND {kept} AND c.unit_id IN ({{ids}}) "
            "GROUP BY c.unit_id",
            [now_text, now_text, self.first, self.end],
            sites,
        ):
            facts(row["site_id"]).update(
                rect_on_time=int(row["ok"] or 0),
                rect_late=int(row["late"] or 0),
                rect_pending=int(row["pending"] or 0),
            )
        previous = self.period.previous().first.isoformat()
        for row in _grouped_query(
            self.tx,
            "SELECT t.unit_id AS site_id, t.type, "
            "SUM(CASE WHEN t.local_date >= ? THEN 1 ELSE 0 END) AS in_period, "
            "SUM(CASE WHEN t.local_date >= ? AND t.cycle = 1 THEN 1 ELSE 0 END) AS cycle_one, "
            f"COUNT(*) AS n FROM {tl} t JOIN {f} f ON f.finding_id = t.finding_id "
            "WHERE t.type IN (?, ?, ?) AND t.local_date >= ? AND t.local_date < ? "
            "AND f.stage <> 'VOIDED' AND t.unit_id IN ({ids}) GROUP BY t.unit_id, t.type",
            [
                self.first,
                self.first,
                FINDING_PASSED,
                FINDING_REOPENED,
                FINDING_RETURNED,
                previous,
                self.end,
            ],
            sites,
        ):
            found = facts(row["site_id"])
            if row["type"] == FINDING_PASSED:
                found["passes"] += int(row["in_period"] or 0)
                found["first_pass"] += int(row["cycle_one"] or 0)
                found["closures_two"] += int(row["n"] or 0)
            elif row["type"] == FINDING_REOPENED:
                found["reopens"] += int(row["in_period"] or 0)
            else:
                found["returns"] += int(row["in_period"] or 0)
        for row in _grouped_query(
            self.tx,
            "SELECT c.unit_id AS site_id, COUNT(DISTINCT c.finding_id) AS n "
            f"FROM {c} c JOIN {f} f ON f.finding_id = c.finding_id "
            "WHERE c.started_at < ? AND (c.ended_at IS NULL OR c.ended_at >= ?) "
            "AND f.stage <> 'VOIDED' AND c.unit_id IN ({ids}) GROUP BY c.unit_id",
            [t, t],
            sites,
        ):
            facts(row["site_id"])["open"] = int(row["n"] or 0)
        overdue = _grouped_query(
            self.tx,
            f"SELECT c.finding_id, c.unit_id AS site_id, c.due_at FROM {c} c "
            f"JOIN {f} f ON f.finding_id = c.finding_id WHERE c.started_at < ? AND c.due_at < ? "
            "AND (c.ended_at IS NULL OR c.ended_at >= ?) AND f.stage <> 'VOIDED' "
            "AND c.unit_id IN ({ids})",
            [t, t, t],
            sites,
        )
        if overdue:
            calendar = _calendar(self.zone)
            last_instant = as_of - timedelta(microseconds=1)
            worst: dict[tuple[str, str], int] = {}
            for row in overdue:
                key = (str(row["site_id"]), str(row["finding_id"]))
                days = calendar.working_days_between(
                    datetime.fromisoformat(str(row["due_at"])), last_instant
                )
                worst[key] = max(days, worst.get(key, 0))
            for (site_id, _finding), days in worst.items():
                found = facts(site_id)
                found["overdue"] += 1
                found["overdue_days"] += days
        return out

    def _sum_closed_loop(self, target: str, per_site: Mapping[str, Facts]) -> Facts:
        out = self._add(target, per_site, self.LOOP_SUMS)
        out["available"] = self.snap.has("closed_loop")
        return out

    # -- adjustments ----------------------------------------------------------------------

    def _adjustments(self, units: Sequence[str]) -> dict[str, Facts]:
        """Bonuses and deductions recorded for each unit's own assessment of the period."""
        out: dict[str, Facts] = {
            u: {"bonus_total": 0.0, "deduction_total": 0.0, "items": []} for u in units
        }
        for row in _grouped_query(
            self.tx,
            f"SELECT unit_id, bonus_total, deduction_total FROM {TABLES['reports']} "
            "WHERE period = ? AND unit_id IN ({ids})",
            [self.period.name],
            units,
        ):
            found = out[str(row["unit_id"])]
            found["bonus_total"] = _num(row["bonus_total"])
            found["deduction_total"] = _num(row["deduction_total"])
        for row in _grouped_query(
            self.tx,
            "SELECT unit_id, position, kind, delta, indicator_code, reason, approver, "
            f"recorded_at FROM {TABLES['adjustments']} WHERE period = ? AND unit_id IN ({{ids}}) "
            "ORDER BY position",
            [self.period.name],
            units,
        ):
            item = dict(row)
            out[str(item.pop("unit_id"))]["items"].append(item)
        return out

    def _sum_adjustments(self, target: str, per_site: Mapping[str, Facts]) -> Facts:
        return per_site[target]

    # -- reporting ------------------------------------------------------------------------

    def _reporting(self, units: Sequence[str]) -> dict[str, Facts]:
        """Bulletins on time, reviews held and summaries published, by each unit itself."""
        quarters = _inner_periods(self.period, "quarter")
        halves = _inner_periods(self.period, "half_year")
        names = [*self.months, *quarters, *halves]
        rows = _grouped_query(
            self.tx,
            "SELECT unit_id, period, bulletin_first_date, review_date, summary_first_date "
            f"FROM {TABLES['reports']} WHERE period IN ({_marks(len(names))}) "
            "AND unit_id IN ({ids})",
            names,
            units,
        )
        found = {(str(r["unit_id"]), str(r["period"])): r for r in rows}
        day = self.request.settings.bulletin_day
        out: dict[str, Facts] = {}
        for unit in units:
            on_time = []
            for month in self.months:
                row = found.get((unit, month))
                if row is None or row["bulletin_first_date"] is None:
                    continue
                if str(row["bulletin_first_date"]) <= _bulletin_deadline(Period.parse(month), day):
                    on_time.append(month)
            out[unit] = {
                "months": self.months,
                "quarters": quarters,
                "halves": halves,
                "on_time": on_time,
                "held": [q for q in quarters if (found.get((unit, q)) or {}).get("review_date")],
                "summarised": [
                    h for h in halves if (found.get((unit, h)) or {}).get("summary_first_date")
                ],
            }
        return out

    def _sum_reporting(self, target: str, per_site: Mapping[str, Facts]) -> Facts:
        return per_site[target]


def _inner_periods(period: Period, kind: PeriodKind) -> list[str]:
    """Names of the periods of ``kind`` lying wholly inside ``period``."""
    out: list[str] = []
    current = Period.of_date(period.first, kind)
    while current.end <= period.end:
        if current.first >= period.first:
            out.append(current.name)
        current = Period.of_date(current.end, kind)
    return out


def _bulletin_deadline(month: Period, day: int) -> str:
    """The last local date on which a month's bulletin is on time (day ``day`` of the next)."""
    following = month.end
    deadline = date(following.year, following.month, min(max(day, 1), 28))
    return deadline.isoformat()


def _now_key(period: Period, zone: ZoneInfo, now: datetime) -> str | None:
    """The part of a closed-loop cache key that depends on the clock.

    Cohorts (a finding fed back on the last day, acknowledged days later)
    depend on the evaluation time until their clocks are all due;
    :data:`SETTLED_AFTER` the period's end they no longer do.
    """
    if now >= period.end_at(zone) + SETTLED_AFTER:
        return None
    return now.astimezone(UTC).replace(second=0, microsecond=0).isoformat()


def _results(
    facts: Mapping[str, Facts], min_samples: Mapping[str, int]
) -> dict[str, ind.IndicatorResult]:
    """Every indicator of one unit from its facts, under the model's minimum samples."""

    def ms(code: str) -> int:
        if code in min_samples:
            return min_samples[code]
        found = ind.definition(code)
        return found.min_sample if found is not None else 1

    out: list[ind.IndicatorResult] = []
    site = facts["site_standard"]
    if site["available"]:
        out.append(
            ind.six_haves_compliance(
                site["scores"],
                min_sample=ms("six_haves_compliance"),
                sites_in_scope=site["in_scope"],
            )
        )
    else:
        out.append(ind.insufficient("six_haves_compliance", note="the network view is not built"))
    a = facts["activities"]
    out.append(
        ind.theme_compliance(a["theme_months"], a["on_theme"], min_sample=ms("theme_compliance"))
    )
    out.append(
        ind.activity_frequency(
            a["units"],
            list(facts["reporting"]["months"]),
            [tuple(pair) for pair in a["active"]],
            min_sample=ms("activity_frequency"),
        )
    )
    m = facts["meetings"]
    out.append(
        ind.meeting_coverage(m["house_sites"], m["with_meeting"], min_sample=ms("meeting_coverage"))
    )
    out.append(
        ind.five_step_completeness(
            m["held"], m["complete"], min_sample=ms("five_step_completeness")
        )
    )
    out.append(
        ind.concern_settlement(
            m["raised"], m["resolved"], m["converted"], min_sample=ms("concern_settlement")
        )
    )
    n = facts["needs"]
    out.append(
        ind.need_fulfilment(
            n["accepted"], n["withdrawn"], n["fulfilled"], min_sample=ms("need_fulfilment")
        )
    )
    out.append(ind.time_to_serve(n["serve_hours"], min_sample=ms("time_to_serve")))
    out.append(
        ind.redispatch_rate(n["assigned"], n["redispatched"], min_sample=ms("redispatch_rate"))
    )
    out.append(
        ind.satisfaction(n["ratings"], n["good"], n["rating_sum"], min_sample=ms("satisfaction"))
    )
    v = facts["volunteers"]
    if v["available"]:
        months = len(facts["reporting"]["months"])
        out.append(
            ind.active_volunteers(v["registered"], v["active"], min_sample=ms("active_volunteers"))
        )
        out.append(
            ind.hours_per_active(
                round(v["hours"], 6), v["active"], months, min_sample=ms("hours_per_active")
            )
        )
        out.append(
            ind.dual_checkin_rate(v["officials"], v["both"], min_sample=ms("dual_checkin_rate"))
        )
    else:
        for code in ("active_volunteers", "hours_per_active", "dual_checkin_rate"):
            out.append(
                ind.insufficient(code, min_sample=ms(code), note="the ledger view is not built")
            )
    c = facts["closed_loop"]
    if c["available"]:
        out.extend(
            [
                ind.ack_on_time(
                    c["ack_on_time"] + c["ack_late"], c["ack_on_time"], min_sample=ms("ack_on_time")
                ),
                ind.rectify_on_time(
                    c["rect_on_time"] + c["rect_late"],
                    c["rect_on_time"],
                    min_sample=ms("rectify_on_time"),
                ),
                ind.overdue_backlog(
                    max(c["open"], c["overdue"]),
                    c["overdue"],
                    float(c["overdue_days"]),
                    min_sample=ms("overdue_backlog"),
                ),
                ind.first_pass_verification(
                    c["passes"], c["first_pass"], min_sample=ms("first_pass_verification")
                ),
                ind.reopen_rate(c["reopens"], c["closures_two"], min_sample=ms("reopen_rate")),
                ind.return_rate(c["fed_back"], c["returns"], min_sample=ms("return_rate")),
            ]
        )
    else:
        for code in (
            "ack_on_time",
            "rectify_on_time",
            "overdue_backlog",
            "first_pass_verification",
            "reopen_rate",
            "return_rate",
        ):
            out.append(
                ind.insufficient(
                    code, min_sample=ms(code), note="the closed-loop view is not built"
                )
            )
    r = facts["reporting"]
    out.append(ind.bulletin_on_time(r["months"], r["on_time"], min_sample=ms("bulletin_on_time")))
    out.append(ind.quarterly_review(r["quarters"], r["held"], min_sample=ms("quarterly_review")))
    out.append(
        ind.half_year_summary(r["halves"], r["summarised"], min_sample=ms("half_year_summary"))
    )
    return {result.code: result for result in out}


# --- scorecards ---------------------------------------------------------------------------


def _family_cards(
    snap: _Snapshot, targets: Sequence[str], request: _Request
) -> dict[str, dict[str, Any]]:
    """The scorecards (without rank) of units with disjoint subtrees, computed together.

    Cached whole, keyed by every marker the figures depend on; the cached
    cards are shared, so callers hand out copies (:func:`_public`).
    """
    for target in targets:
        if snap.sites and target not in snap.sites:
            raise _not_found(f"no site {target!r} in the network")
    key = (
        snap.namespace,
        tuple(targets),
        request.period.name,
        request.selection,
        request.settings,
        tuple(snap.marker(part) for part in PARTS),
        snap.markers.get("models", -1),
        _now_key(request.period, request.settings.zone, request.now),
    )
    if snap.namespace is not None:
        cached: dict[str, dict[str, Any]] | None = _CARDS.get(key)
        if cached is not None:
            return cached
    cards = _compute_cards(snap, targets, request)
    if snap.namespace is not None:
        _CARDS.put(key, cards)
    return cards


def _compute_cards(
    snap: _Snapshot, targets: Sequence[str], request: _Request
) -> dict[str, dict[str, Any]]:
    family = _Family(snap, targets, request)
    facts = {part: family.facts(part) for part in PARTS}
    model = snap.select_model(request.period, request.selection)
    min_samples = (
        {item.code: item.effective_min_sample() for item in model.indicators} if model else {}
    )
    return {
        target: _card(
            snap,
            target,
            request,
            model,
            results=_results({part: facts[part][target] for part in PARTS}, min_samples),
            adjustments=facts["adjustments"][target],
        )
        for target in targets
    }


def _card(
    snap: _Snapshot,
    unit_id: str,
    request: _Request,
    model: ScoringModel | None,
    *,
    results: Mapping[str, ind.IndicatorResult],
    adjustments: Facts,
) -> dict[str, Any]:
    """One unit's scorecard from its indicator results and adjustments."""
    period, settings = request.period, request.settings
    site = snap.sites.get(unit_id)
    bonuses = float(adjustments["bonus_total"])
    deductions = float(adjustments["deduction_total"])
    indicators: list[dict[str, Any]] = []
    composite: Composite | None = None
    scored_codes: set[str] = set()
    if model is None:
        headline: dict[str, Any] = {
            "status": "insufficient_data",
            "value": None,
            "base": None,
            "bonus_total": min(bonuses, BONUS_CAP),
            "deduction_total": deductions,
            "covered_weight": 0.0,
            "note": "no scoring model is in effect for this period",
        }
        model_out: dict[str, Any] | None = None
    else:
        composite = score(model, results, bonuses=bonuses, deductions=deductions)
        headline = composite.as_dict()
        model_out = {
            "model_id": model.model_id,
            "version": model.version,
            "title": model.title,
            "effective_from": model.effective_from,
            "warnings": model.warnings(),
        }
        for item in composite.indicators:
            scored_codes.add(item.result.code)
            indicators.append(item.as_dict(ind.definition(item.result.code)))
    for code, result in results.items():
        if code in scored_codes:
            continue
        found = ind.definition(code)
        out = result.as_dict()
        out.update(
            area=found.area if found else None,
            weight=0.0,
            effective_weight=0.0,
            normalised=None,
            score=None,
            in_model=False,
            definition=found.as_dict() if found else None,
        )
        indicators.append(out)
    return {
        "unit_id": unit_id,
        "name": site["name"] if site else None,
        "level": site["level"] if site else None,
        "parent_id": site["parent_id"] if site else None,
        "units": len(snap.subtree(unit_id)),
        "period": period.name,
        "kind": period.kind,
        "first_date": period.first.isoformat(),
        "end_date": period.end.isoformat(),
        "timezone": settings.timezone,
        "model": model_out,
        "composite": headline,
        "indicators": indicators,
        "adjustments": copy.deepcopy(adjustments["items"]),
        "_composite": composite,
        "_model": model,
    }


def _public(card: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of the scorecard without its internal objects (cached cards stay intact)."""
    out: dict[str, Any] = orjson.loads(
        orjson.dumps({k: v for k, v in card.items() if not k.startswith("_")})
    )
    return out


def _check_scope(unit_id: str, scope: Collection[str] | None) -> None:
    if scope is not None and unit_id not in scope:
        msg = f"unit {unit_id!r} is outside the units you may see"
        raise AuthorizationError(msg)


def _peers(snap: _Snapshot, unit_id: str, period: Period) -> list[str]:
    """The unit and its peers (same level, same parent) operating in the period."""
    site = snap.sites.get(unit_id)
    if site is None:
        return [unit_id]
    peers = [
        s
        for s, row in snap.sites.items()
        if row["level"] == site["level"] and row["parent_id"] == site["parent_id"]
    ]
    return sorted(set(snap.operating(peers, period)) | {unit_id})


def _ranks(cards: Mapping[str, Mapping[str, Any]]) -> dict[str, int | None]:
    return rank({unit: card["composite"].get("value") for unit, card in cards.items()})


def scorecard(
    views: ViewStore,
    unit_id: str,
    period: str | Period,
    model_version: int | None = None,
    *,
    model_id: str | None = None,
    scope: Collection[str] | None = None,
    settings: ScorecardSettings = DEFAULT_SETTINGS,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The scorecard of a unit (and everything under it) for a period.

    Returns the unit, the period's local dates, the model version used,
    every indicator (value, numerator, denominator, minimum sample, status,
    window, its definition, weight, effective weight after redistribution,
    normalised level and points), the composite with bonuses and
    deductions, the adjustments recorded, and ``rank`` among peer units
    (same level, same parent, operating in the period): ``{"position",
    "of", "peers", "level", "parent_id"}``, position None when the
    composite has insufficient data. Indicators the model does not weigh
    are listed with ``in_model: false``. ``positions`` are the tracking
    positions of the views read, ``evaluated_at`` the evaluation time.

    ``scope`` (the site ids the caller may see) must contain ``unit_id``
    (FORBIDDEN otherwise). ``now`` is the evaluation time of closed-loop
    figures that still depend on the clock (default: now).
    """
    p = parse_period(period)
    _check_scope(unit_id, scope)
    request = _Request(p, ModelSelection(model_id, model_version), settings, now or _utcnow())
    with views.read() as tx:
        snap = _Snapshot(tx, views.url)
        cards = _family_cards(snap, _peers(snap, unit_id, p), request)
        positions = {name: snap.positions.get(name) for name in SOURCES}
    ranks = _ranks(cards)
    out = _public(cards[unit_id])
    out["positions"] = positions
    out["evaluated_at"] = utc_text(request.now)
    out["rank"] = {
        "position": ranks.get(unit_id),
        "of": sum(1 for value in ranks.values() if value is not None),
        "peers": len(ranks),
        "level": out["level"],
        "parent_id": out["parent_id"],
    }
    return out


def _utcnow() -> datetime:
    return datetime.now(UTC)


def rankings(
    views: ViewStore,
    level: str,
    parent_id: str | None,
    period: str | Period,
    *,
    model_version: int | None = None,
    model_id: str | None = None,
    scope: Collection[str] | None = None,
    settings: ScorecardSettings = DEFAULT_SETTINGS,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The peer units of ``level`` under ``parent_id``, ranked by composite (best first).

    Peers are the units of that level and parent operating in the period.
    Competition ranking: ties share a rank and the next rank skips
    ("1224"); units whose composite has insufficient data are listed last,
    unranked. Ranks are computed over all peers; ``scope`` only hides the
    rows the caller may not see.
    """
    p = parse_period(period)
    request = _Request(p, ModelSelection(model_id, model_version), settings, now or _utcnow())
    with views.read() as tx:
        snap = _Snapshot(tx, views.url)
        peers = snap.operating(
            sorted(
                s
                for s, row in snap.sites.items()
                if row["level"] == level and row["parent_id"] == parent_id
            ),
            p,
        )
        cards = _family_cards(snap, peers, request) if peers else {}
    ranks = _ranks(cards)
    rows = []
    for unit, card in cards.items():
        if scope is not None and unit not in scope:
            continue
        model = card["model"]
        rows.append(
            {
                "unit_id": unit,
                "name": card["name"],
                "rank": ranks.get(unit),
                "composite": card["composite"].get("value"),
                "status": card["composite"]["status"],
                "covered_weight": card["composite"].get("covered_weight"),
                "model_id": model["model_id"] if model else None,
                "model_version": model["version"] if model else None,
            }
        )
    rows.sort(key=lambda r: (r["rank"] is None, r["rank"] or 0, r["unit_id"]))
    return {
        "level": level,
        "parent_id": parent_id,
        "period": p.name,
        "ranked": sum(1 for r in ranks.values() if r is not None),
        "units": rows,
    }


def trend(
    views: ViewStore,
    unit_id: str,
    kind: PeriodKind,
    last: int = 12,
    *,
    until: str | Period | None = None,
    model_version: int | None = None,
    model_id: str | None = None,
    scope: Collection[str] | None = None,
    settings: ScorecardSettings = DEFAULT_SETTINGS,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The unit's composite and indicator values over the last ``last`` periods of ``kind``.

    The periods end with ``until`` (default: the period of ``kind`` that
    contains ``now`` in the network's zone), oldest first. Each point has the
    composite (value and status), the model version and each indicator's
    value and status.
    """
    if kind not in ("month", "quarter", "half_year", "year"):
        raise _bad_request(f"kind must be month, quarter, half_year or year, not {kind!r}")
    if not 1 <= last <= 60:
        raise _bad_request(f"last must be between 1 and 60, got {last}")
    _check_scope(unit_id, scope)
    moment = now or _utcnow()
    final = (
        parse_period(until) if until is not None else Period.containing(moment, kind, settings.zone)
    )
    if final.kind != kind:
        raise _bad_request(f"until {final.name} is not a {kind}")
    selection = ModelSelection(model_id, model_version)
    points = []
    with views.read() as tx:
        snap = _Snapshot(tx, views.url)
        for p in final.trailing(last):
            card = _family_cards(snap, [unit_id], _Request(p, selection, settings, moment))[unit_id]
            model = card["model"]
            points.append(
                {
                    "period": p.name,
                    "composite": card["composite"].get("value"),
                    "status": card["composite"]["status"],
                    "model_version": model["version"] if model else None,
                    "indicators": {
                        i["code"]: {"value": i["value"], "status": i["status"]}
                        for i in card["indicators"]
                    },
                }
            )
    return {"unit_id": unit_id, "kind": kind, "points": points}


def published(
    views: ViewStore,
    unit_id: str,
    period: str | Period,
    *,
    scope: Collection[str] | None = None,
) -> dict[str, Any]:
    """The scorecards, bulletins, reviews and summaries published for the unit and period.

    Each as it was sent (the event's data, untouched), with the log
    position and time of its publication: what the bulletin said, not what
    a recomputation would say today.
    """
    p = parse_period(period)
    _check_scope(unit_id, scope)
    with views.read() as tx:
        cards = tx.query(
            f"SELECT model_id, model_version, as_of_position, data, published_at, event_id, "
            f"position FROM {TABLES['published']} WHERE unit_id = ? AND period = ? "
            "ORDER BY position",
            [unit_id, p.name],
        )
        documents = tx.query(
            f"SELECT kind, document_ref, correction_of, as_of_position, data, published_at, "
            f"event_id, position FROM {TABLES['documents']} WHERE unit_id = ? AND period = ? "
            "ORDER BY position",
            [unit_id, p.name],
        )
    return {
        "unit_id": unit_id,
        "period": p.name,
        "scorecards": [_frozen(row) for row in cards],
        "documents": [_frozen(row) for row in documents],
    }


def _frozen(row: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k != "data"}
    out["data"] = orjson.loads(row["data"])
    return out


def scoring_models(views: ViewStore) -> list[dict[str, Any]]:
    """Every version of every scoring model, as published, oldest first per model."""
    with views.read() as tx:
        snap = _Snapshot(tx, views.url)
        return [
            model.as_dict() for model_id in sorted(snap.models) for model in snap.models[model_id]
        ]


class _Log(Protocol):
    """What :func:`compute_for_publication` needs of the application: the log head."""

    def last_position(self) -> int:
        """The last position of the notification log."""


def compute_for_publication(
    app: _Log,
    views: ViewStore,
    unit: str,
    period: str | Period,
    model: str | None = None,
    *,
    model_version: int | None = None,
    settings: ScorecardSettings = DEFAULT_SETTINGS,
    now: datetime | None = None,
    wait: Callable[[int], bool] | None = None,
    attempts: int = 5,
) -> dict[str, Any]:
    """The data of a ``scorecard_published`` event for the unit and period, as of now.

    ``model`` is a scoring model id (default: the one published last) and
    ``model_version`` a version (default: the one in effect when the period
    began). Every view the scorecard reads must have processed the log up
    to the same position, at least the log head when called; that position
    is the scorecard's ``as_of_position``, so an auditor replaying the log
    to it (and evaluating at the publication's time, ``now``) recomputes
    exactly these figures. ``wait(position)`` (e.g. ``BatchedRunner.wait``)
    lets the views catch up; views that still lag after ``attempts`` raise
    TRANSIENT. A composite with insufficient data cannot be published
    (INSUFFICIENT_DATA): a published 0 would be a fake score. The data is
    checked against the ``scorecard_published`` contract before it is
    returned. Nothing is cached: the figures are computed afresh.
    """
    from practice_events.contracts.assessment import ScorecardPublished

    p = parse_period(period)
    request = _Request(p, ModelSelection(model, model_version), settings, now or _utcnow())
    for _ in range(max(1, attempts)):
        head = app.last_position()
        if wait is not None:
            wait(head)
        with views.read() as tx:
            snap = _Snapshot(tx, None)
            reached = {snap.positions[name] for name in SOURCES if snap.has(name)}
            if len(reached) != 1 or min(reached) < head:
                continue
            card = _family_cards(snap, [unit], request)[unit]
        composite: Composite | None = card["_composite"]
        if composite is None:
            raise _not_found(f"no scoring model is in effect for {p.name}; publish one first")
        if composite.status != "ok" or composite.value is None:
            raise PracticeEventsError(
                f"the composite of {unit} for {p.name} has insufficient data "
                f"({composite.covered_weight:g} of 100 points have data); it cannot be published",
                code="INSUFFICIENT_DATA",
            )
        chosen: ScoringModel = card["_model"]
        data = {
            "model_id": chosen.model_id,
            "model_version": chosen.version,
            "as_of_position": next(iter(reached)),
            "composite": round(composite.value, 4),
            "bonus_total": round(composite.bonus_total, 4),
            "deduction_total": round(composite.deduction_total, 4),
            "indicators": published_indicators(composite),
        }
        ScorecardPublished.model_validate(data)
        return data
    msg = "the views have not all caught up with the log; retry when the projections report no lag"
    raise TransientError(msg)


def warm_cache(
    views: ViewStore,
    periods: Sequence[str | Period] | None = None,
    *,
    settings: ScorecardSettings = DEFAULT_SETTINGS,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Compute and cache the scorecards of every unit for ``periods`` (in this process).

    By default: the current and previous month, and the current quarter,
    half-year and year in the network's zone. Meant to run in the
    background (at API start, or after a projection catches up) so that the
    first request for a district-wide scorecard does not pay for the
    volunteer and closed-loop aggregates over the whole network. Returns how
    many unit scorecards were computed and how long it took, per period.
    """
    moment = now or _utcnow()
    if periods is None:
        month = Period.containing(moment, "month", settings.zone)
        chosen: list[Period] = [
            month,
            month.previous(),
            Period.containing(moment, "quarter", settings.zone),
            Period.containing(moment, "half_year", settings.zone),
            Period.containing(moment, "year", settings.zone),
        ]
    else:
        chosen = [parse_period(p) for p in periods]
    report: dict[str, Any] = {}
    for p in chosen:
        started = time.perf_counter()
        request = _Request(p, ModelSelection(), settings, moment)
        with views.read() as tx:
            snap = _Snapshot(tx, views.url)
            groups: dict[tuple[str, str | None], list[str]] = {}
            for site_id, row in snap.sites.items():
                groups.setdefault((str(row["level"]), row["parent_id"]), []).append(site_id)
            count = 0
            for members in groups.values():
                peers = snap.operating(sorted(members), p)
                if peers:
                    count += len(_family_cards(snap, peers, request))
        report[p.name] = {"units": count, "seconds": round(time.perf_counter() - started, 3)}
    return report
