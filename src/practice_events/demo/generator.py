"""A realistic, deterministic history of a district, as structured CloudEvents.

:func:`generate` simulates the district of :mod:`practice_events.demo.network`
day by day and yields the CloudEvents its producer services would have sent,
in time order: registrations first, then check-ins and hours, activities
under the monthly theme, house meetings and their concerns, wishes from
submission to rating, six-haves assessments, inspections and findings
through every path of the closed loop, and the reporting rhythm
(一月一通报、一季一讲评、半年一总结). Rates and their sources are documented in
``docs/demo-data.md``.

How it stays valid and fast:

* **Lifecycles are decided when they start.** A need, a finding, an
  activity, a session: all its events are drawn at once, with their times,
  and put into per-day buckets; each day's bucket is sorted and yielded once
  the day has been simulated. Every event is scheduled at or after the
  moment it is decided, so a bucket is complete when it is flushed, and
  cutting the history at the window's end only drops a suffix of each
  lifecycle (a prefix of a valid history is valid).
* **The domain's own rules decide the times.** Due times of findings come
  from the same working calendar and SLA policy the finding aggregate uses
  (``domain.finding.services``), so "on time", "late" and "extension asked
  before the deadline" mean what the aggregate will compute. Points follow
  ``domain.attendance.points_at`` so redemptions never exceed a balance.
* **Cross-aggregate rules are kept conservatively.** A volunteer serves one
  session at a time (sessions are staffed in start order against a
  busy-until time), people registered during the window serve from the next
  day, and a redemption only spends points whose sessions are final.
* **No pydantic, no datetime in the hot path.** Times are integer seconds,
  formatted from precomputed day prefixes and clock strings; ids come from a
  counter under a per-seed prefix; events are plain dicts. Only ``random.Random(seed)``
  is used, never the global generator or the wall clock, so the same
  arguments give the same bytes.
"""

from __future__ import annotations

import gc
import math
import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from itertools import islice
from pathlib import Path
from typing import IO, Any, Final

import orjson

from practice_events.demo import texts
from practice_events.demo.network import (
    DISTRICT,
    Network,
    Person,
    Site,
    Team,
    build_network,
    home_sites,
    new_person,
)
from practice_events.domain.calendar import WorkingCalendar
from practice_events.domain.sla import SlaPolicy

Event = dict[str, Any]
"""A structured-mode CloudEvent as a plain dict."""

CST: Final = timezone(timedelta(hours=8))
"""The network's zone (Asia/Shanghai has had no daylight saving since 1991)."""

OFFSET_SECONDS: Final = 8 * 3600
DAY: Final = 86_400
HOUR: Final = 3_600
MINUTE: Final = 60

DEFAULT_START: Final = date(2025, 1, 1)
"""The default window: the calendar year 2025 (it must end before today)."""

DEFAULT_DAYS: Final = 365
DEFAULT_END: Final = DEFAULT_START + timedelta(days=DEFAULT_DAYS)
"""Windows scaled with ``events`` (and no explicit start) end here."""

MIN_SCALE: Final = 0.002
"""The smallest district scale (every count then sits at its minimum)."""

MIN_DAYS: Final = 30
MAX_DAYS: Final = 1_095
"""Bounds of a window whose length is derived from ``events`` (the built-in calendar
covers 2021-2026)."""

SETUP_EVENTS_PER_UNIT: Final = 49_500
"""Calibration: events of the initial registrations of a district of scale 1."""

EVENTS_PER_UNIT_DAY: Final = 735.0
"""Calibration: events per simulated day that grow with the district (a year's average)."""

FIXED_EVENTS_PER_DAY: Final = 25.0
"""Calibration: events per day that do not grow with the district (reporting, minimum sizes)."""

ADMIN: Final = "urn:wly:admin"
CHECKIN_APP: Final = "urn:wly:checkin-app"
MEETING_APP: Final = "urn:wly:house-meeting-app"
WISH_WALL: Final = "urn:wly:wish-wall"
INSPECTION_APP: Final = "urn:wly:inspection-app"
SOURCES: Final = (ADMIN, CHECKIN_APP, MEETING_APP, WISH_WALL, INSPECTION_APP)
"""The producer services of the demo district."""

CHECKLIST_ID: Final = "six-haves"
SCORING_MODEL_ID: Final = "wly-district"

SIX_HAVES_V1: Final = (
    ("has_site", "有场所", 0.2),
    ("has_plan", "有计划", 0.15),
    ("has_team", "有队伍", 0.2),
    ("has_project", "有项目", 0.15),
    ("has_rules", "有制度", 0.1),
    ("has_records", "有记录", 0.2),
)
"""The six-haves checklist as the article words it (六有标准), version 1."""

SIX_HAVES_V2: Final = (
    ("has_site", "有场所", 0.15),
    ("has_plan", "有计划（管理）", 0.15),
    ("has_team", "有队伍", 0.2),
    ("has_project", "有项目", 0.2),
    ("has_rules", "有制度", 0.1),
    ("has_records", "有记录", 0.2),
)
"""Version 2 (published each July): projects weigh more, the site itself less."""

# Event types, spelled once.
SITE_REGISTERED = "practice.site.registered.v1"
SITE_UPDATED = "practice.site.updated.v1"
SITE_DEACTIVATED = "practice.site.deactivated.v1"
CHECKLIST_PUBLISHED = "practice.site.checklist_published.v1"
CHECKLIST_REVISED = "practice.site.checklist_revised.v1"
STANDARD_ASSESSED = "practice.site.standard_assessed.v1"
VOLUNTEER_REGISTERED = "practice.volunteer.registered.v1"
STATUS_CHANGED = "practice.volunteer.status_changed.v1"
SKILLS_UPDATED = "practice.volunteer.skills_updated.v1"
JOINED_TEAM = "practice.volunteer.joined_team.v1"
LEFT_TEAM = "practice.volunteer.left_team.v1"
TRAINING_COMPLETED = "practice.volunteer.training_completed.v1"
INSURANCE_RECORDED = "practice.volunteer.insurance_recorded.v1"
REPORTED_TO_COMMUNITY = "practice.volunteer.official_reported_to_community.v1"
REPORTED_TO_POST = "practice.volunteer.official_reported_to_post.v1"
QUOTA_SET = "practice.volunteer.official_quota_set.v1"
POINTS_REDEEMED = "practice.volunteer.points_redeemed.v1"
TEAM_REGISTERED = "practice.volunteer.team_registered.v1"
CHECKED_IN = "practice.attendance.checked_in.v1"
CHECKED_OUT = "practice.attendance.checked_out.v1"
AUTO_CLOSED = "practice.attendance.checkout_auto_closed.v1"
HOURS_RECORDED = "practice.attendance.hours_recorded.v1"
HOURS_APPROVED = "practice.attendance.hours_approved.v1"
HOURS_REJECTED = "practice.attendance.hours_rejected.v1"
HOURS_CORRECTED = "practice.attendance.hours_corrected.v1"
THEME_SET = "practice.activity.theme_set.v1"
THEME_REVISED = "practice.activity.theme_revised.v1"
ACTIVITY_PLANNED = "practice.activity.planned.v1"
ACTIVITY_CANCELLED = "practice.activity.cancelled.v1"
ACTIVITY_COMPLETED = "practice.activity.completed.v1"
ACTIVITY_FEEDBACK = "practice.activity.feedback_given.v1"
MEETING_HELD = "practice.meeting.held.v1"
STEP_LOGGED = "practice.meeting.step_logged.v1"
CONCERN_RAISED = "practice.meeting.concern_raised.v1"
CONCERN_RESOLVED = "practice.meeting.concern_resolved_on_spot.v1"
CONCERN_CONVERTED = "practice.meeting.concern_converted.v1"
NEED_SUBMITTED = "practice.need.submitted.v1"
NEED_ACCEPTED = "practice.need.accepted.v1"
NEED_REJECTED = "practice.need.rejected.v1"
NEED_LISTED = "practice.need.listed_on_wish_wall.v1"
NEED_DISPATCHED = "practice.need.dispatched.v1"
NEED_CLAIMED = "practice.need.claimed.v1"
NEED_REDISPATCHED = "practice.need.redispatched.v1"
SERVICE_DELIVERED = "practice.need.service_delivered.v1"
NEED_CLOSED = "practice.need.closed.v1"
NEED_RATED = "practice.need.rated.v1"
INSPECTION_CONDUCTED = "practice.finding.inspection_conducted.v1"
FINDING_RECORDED = "practice.finding.recorded.v1"
FINDING_FED_BACK = "practice.finding.fed_back.v1"
FINDING_ACKNOWLEDGED = "practice.finding.acknowledged.v1"
FINDING_RETURNED = "practice.finding.returned.v1"
FINDING_REASSIGNED = "practice.finding.reassigned.v1"
PLAN_SUBMITTED = "practice.finding.rectification_plan_submitted.v1"
EXTENSION_REQUESTED = "practice.finding.extension_requested.v1"
EXTENSION_GRANTED = "practice.finding.extension_granted.v1"
EXTENSION_DENIED = "practice.finding.extension_denied.v1"
RECTIFICATION_REPORTED = "practice.finding.rectification_reported.v1"
VERIFICATION_PASSED = "practice.finding.verification_passed.v1"
VERIFICATION_FAILED = "practice.finding.verification_failed.v1"
CALLBACK_RECORDED = "practice.finding.resident_callback_recorded.v1"
FINDING_REOPENED = "practice.finding.reopened.v1"
FINDING_CLOSED = "practice.finding.closed.v1"
FINDING_VOIDED = "practice.finding.voided.v1"
MODEL_PUBLISHED = "practice.assessment.scoring_model_published.v1"
MODEL_REVISED = "practice.assessment.scoring_model_revised.v1"
PERIOD_OPENED = "practice.assessment.period_opened.v1"
SCORE_ADJUSTED = "practice.assessment.score_adjusted.v1"
BULLETIN_PUBLISHED = "practice.assessment.bulletin_published.v1"
REVIEW_HELD = "practice.assessment.quarterly_review_held.v1"
SUMMARY_PUBLISHED = "practice.assessment.half_year_summary_published.v1"
PERIOD_CLOSED = "practice.assessment.period_closed.v1"

CALLCENTER: Final = "WLY-CALLCENTER"
"""The account of the district's callback desk (回访)."""

ACTIVITY_SLOTS: Final = {
    "station": (5, 14),
    "institute": (10, 20),
    "centre": (20, 45),
    "base": (6, 14),
}
"""Volunteers an ordinary activity asks for, by site (twice as many at March's centre events)."""

ACTIVITY_WORK, WALK_IN, OFFICIAL_DUTY = 0, 1, 2
"""Kinds of the day's work, in the order they are staffed when they start together."""

SERVED: Final = {
    "tourist_service": (60, 600),
    "civility_persuasion": (40, 300),
    "emergency_rescue": (20, 150),
    "flood_patrol": (10, 60),
    "theory_lecture": (20, 120),
    "culture_arts": (50, 400),
}
"""People served by one activity, by category (others: 8-60)."""

CHECKIN_METHODS: Final = ("qr",) * 11 + ("face",) * 4 + ("gps",) * 3 + ("kiosk",) * 1 + ("manual",)
"""How volunteers check in: mostly QR codes, then face recognition and geofences."""


@dataclass(frozen=True, slots=True)
class Plan:
    """The window and size of a history: what ``days``/``events``/``start`` resolve to."""

    start: date
    days: int
    scale: float

    @property
    def end(self) -> date:
        """The first day after the window."""
        return self.start + timedelta(days=self.days)


def expected_events(scale: float, days: int) -> float:
    """Roughly how many events a district of ``scale`` produces in ``days`` (calibrated)."""
    return (
        scale * (SETUP_EVENTS_PER_UNIT + EVENTS_PER_UNIT_DAY * days) + FIXED_EVENTS_PER_DAY * days
    )


def scale_for(events: int, days: int) -> float:
    """The district scale whose history of ``days`` has about ``events`` events."""
    fixed = FIXED_EVENTS_PER_DAY * days
    per_unit = SETUP_EVENTS_PER_UNIT + EVENTS_PER_UNIT_DAY * days
    return max(MIN_SCALE, (events - fixed) / per_unit)


def plan(days: int | None = None, events: int | None = None, start: date | None = None) -> Plan:
    """Resolve the arguments of :func:`generate` into a window and a district size.

    Without ``events`` the district is the reference one (scale 1) and the
    window is ``days`` (default 365) from ``start`` (default 2025-01-01).
    With ``events`` the history grows or shrinks to about that many events
    while keeping its shape: when ``days`` is given only the district scales
    (more or fewer sites, teams and volunteers); when it is not, the window
    scales too (with the cube root of the factor, between 30 days and 3
    years) and, unless ``start`` is given, ends on 2025-12-31 so that every
    time stays in the past.
    """
    if events is not None and events < 1:
        msg = f"events must be positive, got {events}"
        raise ValueError(msg)
    if days is not None and days < 1:
        msg = f"days must be positive, got {days}"
        raise ValueError(msg)
    if events is None:
        window = days or DEFAULT_DAYS
        return Plan(start or DEFAULT_START, window, 1.0)
    if days is None:
        factor = events / expected_events(1.0, DEFAULT_DAYS)
        days = max(MIN_DAYS, min(MAX_DAYS, round(DEFAULT_DAYS * factor ** (1 / 3))))
        if start is None:
            start = DEFAULT_END - timedelta(days=days)
    return Plan(start or DEFAULT_START, days, scale_for(events, days))


def generate(
    seed: int = 7,
    days: int | None = None,
    events: int | None = None,
    dirty: float = 0.0,
    start: date | None = None,
) -> Iterator[Event]:
    """Yield a district's history as structured CloudEvent dicts, in time order.

    ``days`` defaults to 365 and ``start`` to 2025-01-01 (see :func:`plan`
    for how ``events`` scales the history). ``dirty`` mixes that share of
    bad input in (see :mod:`practice_events.demo.dirty`); lines that are not
    JSON objects are yielded as ``{RAW_LINE: text}``. The same arguments
    always give the same events.
    """
    return Generation(seed=seed, days=days, events=events, dirty=dirty, start=start).events()


class Generation:
    """One run of the generator: the history, its bad input and what was produced.

    :func:`generate` is the plain iterator; this object also keeps counts by
    type and, with ``dirty``, the :class:`~practice_events.demo.dirty.Expectation`
    that ingesting the output must meet.
    """

    def __init__(
        self,
        *,
        seed: int = 7,
        days: int | None = None,
        events: int | None = None,
        dirty: float = 0.0,
        start: date | None = None,
    ) -> None:
        """Resolve the window and build the district (no event is generated yet)."""
        from practice_events.demo.dirty import DirtyMixer, Expectation

        self.plan = plan(days, events, start)
        self.history = History(seed=seed, plan=self.plan)
        self.mixer: DirtyMixer | None = None
        if dirty > 0:
            self.mixer = DirtyMixer(
                seed=seed, share=dirty, network=self.history.network, end=self.history.t_end
            )
        self.expected: Expectation | None = self.mixer.expected if self.mixer else None
        self.estimate = round(expected_events(self.plan.scale, self.plan.days) * (1 + dirty))

    def events(self) -> Iterator[Event]:
        """Yield the events (clean, or mixed with bad lines)."""
        clean = self.history.events()
        return self.mixer.mix(clean) if self.mixer is not None else clean


@dataclass
class Summary:
    """What :func:`write_jsonl` wrote."""

    lines: int
    seconds: float
    plan: Plan
    by_type: dict[str, int]
    expected: dict[str, Any] | None = None
    expected_path: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (printed by ``demo generate --json``)."""
        return {
            "lines": self.lines,
            "seconds": round(self.seconds, 3),
            "lines_per_second": round(self.lines / self.seconds) if self.seconds else None,
            "start": self.plan.start.isoformat(),
            "days": self.plan.days,
            "scale": round(self.plan.scale, 4),
            "by_type": self.by_type,
            "expected": self.expected,
            "expected_path": self.expected_path,
        }


def write_jsonl(
    out: str | Path | IO[bytes],
    *,
    seed: int = 7,
    days: int | None = None,
    events: int | None = None,
    dirty: float = 0.0,
    start: date | None = None,
    progress: bool = False,
) -> Summary:
    """Write the history as CloudEvents JSON Lines to a path or a binary stream.

    Lines are serialised with orjson and written in blocks. With ``dirty``
    and a path, the expected outcome of ingesting the file is written beside
    it as ``<out>.expected.json``.
    """
    import time

    from practice_events.demo.dirty import RAW_LINE
    from practice_events.progress import Progress

    started = time.perf_counter()
    run = Generation(seed=seed, days=days, events=events, dirty=dirty, start=start)
    stream: IO[bytes]
    path: Path | None = None
    if isinstance(out, str | Path):
        path = Path(out)
        stream = path.open("wb")
    else:
        path, stream = None, out
    dumps = orjson.dumps
    newline = orjson.OPT_APPEND_NEWLINE
    lines = 0
    events_iter = run.events()
    try:
        with relaxed_gc(), Progress("demo", run.estimate, enabled=progress) as bar:
            while True:
                chunk = list(islice(events_iter, BLOCK_LINES))
                if not chunk:
                    break
                if run.mixer is None:
                    stream.write(b"".join([dumps(e, option=newline) for e in chunk]))
                else:
                    stream.write(
                        b"".join(
                            [
                                e[RAW_LINE].encode() + b"\n"
                                if RAW_LINE in e
                                else dumps(e, option=newline)
                                for e in chunk
                            ]
                        )
                    )
                lines += len(chunk)
                bar.advance(len(chunk))
        stream.flush()
    finally:
        if path is not None:
            stream.close()
    summary = Summary(
        lines=lines,
        seconds=time.perf_counter() - started,
        plan=run.plan,
        by_type=dict(sorted(run.history.by_type.items())),
    )
    if run.expected is not None:
        summary.expected = run.expected.as_dict()
        if path is not None:
            sidecar = path.with_name(path.name + ".expected.json")
            sidecar.write_bytes(orjson.dumps(summary.expected, option=orjson.OPT_INDENT_2))
            summary.expected_path = str(sidecar)
    return summary


BLOCK_LINES: Final = 4096
"""Lines serialised before each write."""


@contextmanager
def relaxed_gc() -> Iterator[None]:
    """Run the block with the cyclic garbage collector mostly out of the way.

    The generator allocates millions of short-lived dicts and no reference
    cycles; with the default thresholds the collector repeatedly walks every
    live object (the district, the scheduled days) and costs about a third
    of the run. Objects that exist on entry are frozen (never walked) and
    young collections run 100 times less often; both are undone on exit.
    """
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


# --- Simulation ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Activity:
    """An activity to be staffed on its day."""

    id: str
    site: Site
    starts: int
    ends: int
    slots: int
    night: bool = False


@dataclass(slots=True)
class _Session:
    """One person's session while its events are drawn."""

    index: int
    id: str
    subject: str
    site: Site
    activity: _Activity | None
    t_in: int
    t_out: int
    method: str = ""


@dataclass(slots=True)
class _Case:
    """A finding while its path through the closed loop is drawn.

    ``t`` is the time of its latest event; ``ack_due`` and ``rect_due`` are
    the effective due times the finding aggregate will compute.
    """

    id: str
    severity: str
    unit: str
    above: str
    verifier_unit: str
    leader: str
    t: int
    ack_due: int = 0
    rect_due: int = 0
    cycle: int = 1

    @property
    def critical(self) -> bool:
        """A safety problem: hours, not working days."""
        return self.severity == "critical"

    @property
    def staff(self) -> str:
        """The account of the responsible unit's handler."""
        return f"STAFF-{self.unit.removeprefix(DISTRICT + '-')}"

    def start_clocks(self, history: History, t: int) -> None:
        """Acknowledgement and rectification due times from a feed-back (or a transfer) at ``t``."""
        self.ack_due = history.due(self.severity, "acknowledgement", t)
        self.rect_due = history.due(self.severity, "rectification", t)


class History:
    """The simulation of one district over one window (see the module docstring)."""

    def __init__(self, *, seed: int, plan: Plan) -> None:
        """Build the district and the calendars; nothing is generated until :meth:`events`."""
        from practice_events.domain.attendance import PointsRule
        from practice_events.domain.finding import services as finding_services

        self.seed = seed
        self.plan = plan
        self.rng = random.Random(seed)  # noqa: S311 - a reproducible simulation, not cryptography
        self._random = self.rng.random
        self._points: dict[float, int] = {}
        self.network: Network = build_network(
            random.Random(seed * 7919 + 1),  # noqa: S311 - reproducible, not cryptography
            plan.scale,
            plan.start,
        )
        domain = finding_services({"timezone": "Asia/Shanghai"})
        self.calendar: WorkingCalendar = domain["calendar"]
        self.sla: SlaPolicy = domain["sla"]
        self.points_rule = PointsRule()

        self.days = plan.days
        start_local = datetime(plan.start.year, plan.start.month, plan.start.day, tzinfo=CST)
        self.t0 = int(start_local.timestamp())
        self.t_end = self.t0 + self.days * DAY
        self._dates = [plan.start + timedelta(days=d) for d in range(self.days + 400)]
        self._prefix = [f"{day.isoformat()}T" for day in self._dates]
        self._clock = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}+08:00" for s in range(DAY)]
        prefix = str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:wly:demo:{seed}"))[:24]
        self._id_prefix = prefix
        self._counter = 0
        """Events scheduled so far: the sequence that orders equal times and numbers the ids."""
        self._buckets: list[list[tuple[int, int, Event]]] = [[] for _ in range(self.days + 1)]
        self.emitted = 0
        self.by_type: dict[str, int] = {}
        """Events emitted so far by type (inside the window)."""

        self._numbers: dict[str, int] = {}
        self._season = [self._season_factor(d) for d in range(self.days + 8)]
        self._flood = self._flood_days()
        self._activities: dict[int, list[_Activity]] = {}
        people = self.network.people
        self._busy = [0] * len(people)
        self._secure: list[list[tuple[int, int]]] = [[] for _ in people]
        self._redeemed = [0] * len(people)
        self._pools: dict[str, tuple[list[int], list[float]]] = {}
        self._targets: dict[str, list[tuple[str, float]]] = {}
        self._joining: list[int] = []
        self._officials_by_post: dict[str, list[int]] = {}
        self._officials_by_station: dict[str, list[str]] = {}
        self._findings_by_site: dict[str, list[tuple[int, str]]] = {}
        self._checklist_version = 1
        self._model_version = 1
        self._themes_set: set[str] = set()
        self._reported: set[tuple[str, int]] = set()
        self._today = 0
        self._build_pools()

    # -- output -------------------------------------------------------------------------

    def fmt(self, t: int) -> str:
        """Format epoch seconds as RFC 3339 in +08:00."""
        day, second = divmod(t - self.t0, DAY)
        if 0 <= day < len(self._prefix):
            return self._prefix[day] + self._clock[second]
        return datetime.fromtimestamp(t, CST).isoformat()

    def emit(self, t: int, source: str, kind: str, subject: str, data: dict[str, Any]) -> None:
        """Schedule one CloudEvent at ``t`` (dropped if it falls after the window).

        Its id is a UUID-shaped string: the seed's prefix and the event's
        sequence number, so ids are deterministic and unique per seed.
        """
        if t >= self.t_end:
            return
        self._counter += 1
        day, second = divmod(t - self.t0, DAY)
        if day < self._today:  # pragma: no cover - a scheduling bug, never silently lost
            msg = f"{kind} for {subject} scheduled on day {day}, already flushed"
            raise RuntimeError(msg)
        counts = self.by_type
        counts[kind] = counts.get(kind, 0) + 1
        self._buckets[day].append(
            (
                t,
                self._counter,
                {
                    "specversion": "1.0",
                    "id": f"{self._id_prefix}{self._counter:012x}",
                    "source": source,
                    "type": kind,
                    "subject": subject,
                    "time": self._prefix[day] + self._clock[second],
                    "datacontenttype": "application/json",
                    "data": data,
                },
            )
        )

    def events(self) -> Iterator[Event]:
        """Simulate the window and yield its events in time order."""
        setup_end = self._setup()
        for target in range(min(7, self.days)):
            self._plan_activities(target, floor=setup_end)
        for day in range(self.days):
            self._today = day
            self._simulate(day)
            bucket = self._buckets[day]
            self._buckets[day] = []
            # (time, sequence) is unique, so tuples sort without comparing the dicts.
            bucket.sort()
            self.emitted += len(bucket)
            yield from [entry[2] for entry in bucket]

    # -- helpers -----------------------------------------------------------------------------

    def ri(self, low: int, high: int) -> int:
        """A random integer in ``low..high`` (both included); cheaper than ``randint``."""
        return low + int(self._random() * (high - low + 1))

    def rr(self, n: int) -> int:
        """A random index below ``n``; cheaper than ``randrange``."""
        return int(self._random() * n)

    def points(self, hours: float) -> int:
        """Points the default rule awards for ``hours`` approved hours (memoised)."""
        cached = self._points.get(hours)
        if cached is None:
            cached = self._points[hours] = self.points_rule.points_for(hours)
        return cached

    def number(self, kind: str) -> int:
        """Return the next number of ``kind`` (activities, needs, findings ...)."""
        value = self._numbers.get(kind, 0) + 1
        self._numbers[kind] = value
        return value

    def day_start(self, day: int) -> int:
        """Epoch seconds of local midnight starting ``day`` of the window."""
        return self.t0 + day * DAY

    def day_of(self, t: int) -> int:
        """Index of the window day that ``t`` falls on."""
        return (t - self.t0) // DAY

    def date_of(self, day: int) -> date:
        """The calendar date of a window day."""
        return self._dates[day] if day < len(self._dates) else self.plan.start + timedelta(day)

    def working_time(self, day: int, *, after: int = 0) -> int:
        """A random office-hours time (08:30-17:30) on ``day``, but after ``after``."""
        t = self.day_start(day) + self.ri(8 * HOUR + 30 * MINUTE, 17 * HOUR + 30 * MINUTE)
        return max(t, after + self.ri(5 * MINUTE, 50 * MINUTE)) if after else t

    def working_day_after(self, t: int, n: int) -> int:
        """The window day index of the n-th working day after the local date of ``t``."""
        local = self.date_of(self.day_of(t))
        target = self.calendar.nth_working_day(local, n)
        return (target - self.plan.start).days

    def due(self, severity: str, stage: str, t: int, *, reopen: bool = False) -> int:
        """The due time the finding aggregate will compute for a clock started at ``t``."""
        budget = self.sla.budget(severity, stage)
        if reopen:
            budget = self.sla.reopen_budget(budget)
        moment = budget.due(datetime.fromtimestamp(t, CST), self.calendar)
        return int(moment.timestamp())

    def sha(self) -> str:
        """A random SHA-256 hex digest (evidence fingerprints)."""
        return f"{self.rng.getrandbits(256):064x}"

    def evidence(self, kind: str, ref: str) -> list[dict[str, str]]:
        """One piece of evidence kept in the district's object store."""
        return [{"uri": f"oss://wly-evidence/{ref}.jpg", "sha256": self.sha(), "kind": kind}]

    def _is_holiday(self, day: int) -> bool:
        return self.date_of(day) in self.calendar.holidays

    def _is_workday(self, day: int) -> bool:
        return bool(self.calendar.is_working_day(self.date_of(day)))

    def _season_factor(self, day: int) -> float:
        """How busy volunteering is on a day, relative to an ordinary one."""
        when = self.date_of(day)
        factor = {
            1: 0.85, 2: 0.8, 3: 1.45, 4: 1.0, 5: 1.1, 6: 1.0,
            7: 1.15, 8: 1.1, 9: 0.95, 10: 1.1, 11: 0.9, 12: 1.0,
        }[when.month]  # fmt: skip
        if when.month == 3 and when.day <= 10:
            factor *= 1.4  # 学雷锋纪念日 (5 March) and the week around it
            if when.day == 5:
                factor *= 1.8
        if when.month == 12 and when.day == 5:
            factor *= 1.8  # International Volunteer Day
        return factor

    def _flood_days(self) -> dict[int, list[str]]:
        """Heavy-rain episodes of each summer: day -> affected institutes."""
        floods: dict[int, list[str]] = {}
        rng = random.Random(self.seed * 31 + 5)  # noqa: S311 - reproducible, not cryptography
        institutes = [s.id for s in self.network.institutes]
        for year in range(self.plan.start.year, self.plan.end.year + 1):
            for _ in range(self.ri(3, 4)):
                first = date(year, 6, 20) + timedelta(days=self.ri(0, 66))
                hit = rng.sample(institutes, max(1, min(len(institutes), self.ri(2, 4))))
                for k in range(self.ri(2, 4)):
                    day = (first + timedelta(days=k) - self.plan.start).days
                    if 0 <= day < self.days:
                        floods.setdefault(day, [])
                        floods[day] = [*floods[day], *[i for i in hit if i not in floods[day]]]
        return floods

    # -- pools -------------------------------------------------------------------------------

    def _build_pools(self) -> None:
        """Who serves where: weighted lists of people per site (officials apart).

        A volunteer serves mostly at their home site; station volunteers also
        turn out, less often, for their institute, its bases, the posts of
        their station and the centre's big events.
        """
        net = self.network
        targets: dict[str, list[tuple[str, float]]] = {}
        for site in net.all_sites():
            if site.level != "house_meeting_site":
                targets[site.id] = [(site.id, 1.0)]
                self._pools[site.id] = ([], [])
        for station in net.stations:
            extra = [(station.institute_id, 0.25), (DISTRICT, 0.1)]
            extra += [(b.id, 0.25) for b in net.bases if b.institute_id == station.institute_id]
            extra += [(p.id, 0.5) for p in net.posts if p.station_id == station.id]
            targets[station.id] += extra
        self._targets = targets
        for index, person in enumerate(net.people):
            if person.official:
                assert person.post_id is not None
                self._officials_by_post.setdefault(person.post_id, []).append(index)
                self._officials_by_station.setdefault(person.home_site_id, []).append(person.no)
            elif person.rate > 0:
                self._add_to_pools(index)

    def _add_to_pools(self, index: int) -> None:
        """Add a person to the pools of every site they serve at (O(1) per pool)."""
        person = self.network.people[index]
        for site_id, factor in self._targets.get(person.home_site_id, ()):
            pool, cumulative = self._pools[site_id]
            pool.append(index)
            cumulative.append((cumulative[-1] if cumulative else 0.0) + person.rate * factor)

    def pick_people(self, site: Site, count: int, at: int) -> list[int]:
        """Pick up to ``count`` distinct people free at ``at`` from the site's pool."""
        pool, cumulative = self._pools.get(site.id) or ([], [])
        if not pool or count <= 0:
            return []
        busy = self._busy
        chosen: list[int] = []
        for index in self.rng.choices(pool, cum_weights=cumulative, k=count + count // 2 + 2):
            if busy[index] <= at and index not in chosen:
                chosen.append(index)
                if len(chosen) == count:
                    break
        return chosen

    def any_person(self, site: Site) -> Person | None:
        """One active person of the site's pool (for needs and team leads), or None."""
        pool, cumulative = self._pools.get(site.id) or ([], [])
        if not pool:
            return None
        return self.network.people[self.rng.choices(pool, cum_weights=cumulative)[0]]

    # -- setup -------------------------------------------------------------------------------

    def _setup(self) -> int:
        """Register the district (sites, checklist, model, people, teams); return its end."""
        net = self.network
        volume = len(net.people) * 2.4 + len(net.sites) + len(net.teams)
        per_second = max(10, math.ceil(volume / (5 * HOUR)))
        clock = [self.t0 + MINUTE, 0]

        def at() -> int:
            clock[1] += 1
            if clock[1] >= per_second:
                clock[0] += 1
                clock[1] = 0
            return clock[0]

        for site in net.all_sites():
            data: dict[str, Any] = {"level": site.level, "name": site.name, "geo": site.geo()}
            if site.parent_id is not None:
                data["parent_id"] = site.parent_id
            self.emit(at(), ADMIN, SITE_REGISTERED, site.id, data)
        self.emit(
            at(),
            ADMIN,
            CHECKLIST_PUBLISHED,
            CHECKLIST_ID,
            {"version": 1, "title": "六有标准", "items": _items(SIX_HAVES_V1)},
        )
        self.emit(at(), ADMIN, MODEL_PUBLISHED, SCORING_MODEL_ID, self._model(1))
        for person in net.people:
            self.emit(at(), ADMIN, VOLUNTEER_REGISTERED, person.no, _registration(person))
        for team in net.teams:
            self.emit(at(), ADMIN, TEAM_REGISTERED, team.id, _team(team))
        year = self.plan.start.year
        for person in net.people:
            self._join_teams(person, at())
            if person.rate > 0:
                self._insure(person, at(), year)
        for person in net.people:
            if person.official:
                self.emit(at(), ADMIN, QUOTA_SET, person.no, {"year": year, "required_hours": 50})
        return at() + MINUTE

    def _model(self, version: int) -> dict[str, Any]:
        """The DESIGN.md §6 scoring model; version 2 weighs the closed loop's timeliness more."""
        from practice_events.contracts.assessment import EXAMPLE_MODEL

        model = {**EXAMPLE_MODEL, "indicators": [dict(i) for i in EXAMPLE_MODEL["indicators"]]}
        model["version"] = version
        model["effective_from"] = self.plan.start.strftime("%Y-%m")
        if version > 1:
            weights = {
                "ack_on_time": 5,
                "rectify_on_time": 5,
                "overdue_backlog": 2,
                "first_pass_verification": 3,
                "reopen_rate": 2,
                "return_rate": 3,
            }
            for indicator in model["indicators"]:
                indicator["weight"] = weights.get(indicator["code"], indicator["weight"])
            model["title"] = "District practice network assessment (closed loop reweighted)"
        return model

    def _join_teams(self, person: Person, t: int) -> None:
        """Every volunteer joins the team of their site; active ones often a second team."""
        net = self.network
        site = net.sites[person.home_site_id]
        local = net.teams_by_site.get(site.id) or net.teams_by_site.get(site.institute_id) or []
        choices: list[Team] = []
        if local:
            choices.append(local[self.rr(len(local))])
        if person.rate > 0.3 and self.rng.random() < 0.4:
            extra = net.teams_by_site.get(DISTRICT, []) + net.teams_by_site.get(site.id, [])
            if extra:
                team = extra[self.rr(len(extra))]
                if team not in choices:
                    choices.append(team)
        for team in choices:
            role = "captain" if team.lead == person.no else "member"
            self.emit(t, ADMIN, JOINED_TEAM, person.no, {"team_id": team.id, "role": role})
            person.teams.append(team.id)

    def _insure(self, person: Person, t: int, year: int) -> None:
        """Record the group accident policy bought for active volunteers (志愿者保险)."""
        team = person.teams[0] if person.teams else DISTRICT
        self.emit(
            t,
            ADMIN,
            INSURANCE_RECORDED,
            person.no,
            {
                "policy_no": f"PICC-{year}-{team}",
                "insurer": "中国人民财产保险股份有限公司张家界分公司",
                "covered_from": f"{year}-01-01",
                "covered_to": f"{year}-12-31",
                "scope": "志愿服务期间意外伤害",
            },
        )

    # -- one day -----------------------------------------------------------------------------

    def _simulate(self, day: int) -> None:
        """Everything decided on ``day``: its events and the lifecycles they start."""
        when = self.date_of(day)
        if self._joining:
            self._admit_new_people()
        self._reporting(day, when)
        self._sites_admin(day)
        self._yearly(day, when)
        if day + 7 < self.days:
            self._plan_activities(day + 7, floor=self.day_start(day))
        self._staff(day)
        self._meetings(day)
        self._needs(day)
        self._inspections(day, when)
        self._assessments(day, when)
        self._people_admin(day, when)

    def _sites_admin(self, day: int) -> None:
        """Now and then a station moves (site updated) or a house-meeting site merges (deactivated).

        Runs before the day's meetings, inspections and assessments, and at
        18:00, after office hours: a deactivated site is then never assessed
        again (the site aggregate would refuse it).
        """
        rng = self.rng
        net = self.network
        if self._is_workday(day) and rng.random() < 1 / 90:
            station = net.stations[self.rr(len(net.stations))]
            lat, lon = station.lat + 0.002, station.lon - 0.001
            self.emit(
                self.working_time(day),
                ADMIN,
                SITE_UPDATED,
                station.id,
                {
                    "address": f"{station.name.split('新时代')[0]}综合服务中心二楼",
                    "geo": {"lat": round(lat, 5), "lon": round(lon, 5)},
                },
            )
        if rng.random() < 1 / 120 and len(net.meeting_sites) > len(net.stations):
            site = net.meeting_sites.pop(self.rr(len(net.meeting_sites)))
            self.emit(
                self.day_start(day) + 18 * HOUR,
                ADMIN,
                SITE_DEACTIVATED,
                site.id,
                {"reason": "屋场合并：并入相邻屋场，原屋场停止使用"},
            )

    # -- reporting rhythm: themes, periods, bulletins, reviews, summaries -------------------

    def _units(self) -> list[str]:
        return [DISTRICT, *[s.id for s in self.network.institutes]]

    def _reporting(self, day: int, when: date) -> None:
        """Open periods on the 1st, set next month's theme on the 25th, report on last month."""
        if day == 0 or when.day == 1:
            self._open_periods(day, when)
            self._set_themes(when.year, when.month, self.day_start(day) + 20 * MINUTE)
        if when.day == 25:
            following = (when.replace(day=1) + timedelta(days=32)).replace(day=1)
            self._set_themes(following.year, following.month, self.working_time(day))
        if when.day == 27 and self.rng.random() < 0.25:
            following = (when.replace(day=1) + timedelta(days=32)).replace(day=1)
            stamp = f"{following:%Y-%m}"
            if stamp in self._themes_set:
                title = texts.MONTHLY_THEMES[following.month][1]
                self.emit(
                    self.working_time(day),
                    ADMIN,
                    THEME_REVISED,
                    f"{DISTRICT}:{stamp}",
                    {"title": f"{title}（修订）"},
                )
        if when.day == 1 and day > 0:
            previous = (when - timedelta(days=1)).replace(day=1)
            self._month_reports(day, previous)

    def _set_themes(self, year: int, month: int, t: int) -> None:
        """一月一主题: the centre sets the month's theme and every institute adopts it."""
        code, title = texts.MONTHLY_THEMES[month]
        stamp = f"{year}-{month:02d}"
        if stamp in self._themes_set:
            return
        self._themes_set.add(stamp)
        for unit in self._units():
            self.emit(
                t,
                ADMIN,
                THEME_SET,
                f"{unit}:{stamp}",
                {"unit_id": unit, "month": stamp, "theme_code": code, "title": title},
            )
            t += self.ri(MINUTE, 2 * HOUR)

    def _open_periods(self, day: int, when: date) -> None:
        """Open the month (quarter, half-year, year) assessments of the centre and institutes."""
        t = self.day_start(day) + 10 * MINUTE
        periods = [(f"{when:%Y-%m}", "month")]
        first_of_quarter = when.month in (1, 4, 7, 10)
        if (when.day == 1 and first_of_quarter) or day == 0:
            periods.append((f"{when.year}-Q{(when.month - 1) // 3 + 1}", "quarter"))
        if (when.day == 1 and when.month in (1, 7)) or day == 0:
            periods.append((f"{when.year}-H{1 if when.month <= 6 else 2}", "half_year"))
        if (when.day == 1 and when.month == 1) or day == 0:
            periods.append((f"{when.year}", "year"))
        for period, kind in periods:
            units = self._units() if kind == "month" else [DISTRICT]
            for unit in units:
                self.emit(
                    t,
                    ADMIN,
                    PERIOD_OPENED,
                    f"{unit}:{period}",
                    {"unit_id": unit, "period": period, "kind": kind},
                )
                t += 1
        if when.month == 7 and when.day == 1 and day > 0:
            self._revise_standards(day)

    def _revise_standards(self, day: int) -> None:
        """Each July: the next checklist and scoring model versions (data, not code)."""
        self._checklist_version += 1
        self.emit(
            self.working_time(day),
            ADMIN,
            CHECKLIST_REVISED,
            CHECKLIST_ID,
            {
                "version": self._checklist_version,
                "title": "六有标准（年中修订）",
                "items": _items(SIX_HAVES_V2),
                "note": "提高有项目权重，对齐年度考核细则",
            },
        )
        self._model_version += 1
        model = self._model(2)
        model["version"] = self._model_version
        model["effective_from"] = self.date_of(day).strftime("%Y-%m")
        self.emit(self.working_time(day), ADMIN, MODEL_REVISED, SCORING_MODEL_ID, model)

    def _month_reports(self, day: int, month: date) -> None:
        """Bulletin, adjustments, quarterly review, half-year summary and closing of last month."""
        stamp = f"{month:%Y-%m}"
        rng = self.rng
        # 一月一通报: most bulletins by the 5th working day, some late.
        late = rng.random() < 0.12
        bulletin_day = day + (self.ri(7, 11) if late else self.ri(2, 4))
        t_bulletin = self.working_time(min(bulletin_day, self.days + 30))
        for unit in self._units()[1:]:
            if rng.random() < 0.3:
                bonus = rng.random() < 0.5
                delta = round(rng.uniform(0.5, 2.5), 1) if bonus else -round(rng.uniform(0.5, 3), 1)
                self.emit(
                    self.working_time(day),
                    ADMIN,
                    SCORE_ADJUSTED,
                    f"{unit}:{stamp}",
                    {
                        "kind": "bonus" if bonus else "deduction",
                        "delta": delta,
                        "indicator_code": "need_fulfilment" if bonus else "overdue_backlog",
                        "reason": "微心愿项目获市级表彰" if bonus else "逾期未整改问题被督办通报",
                        "approver": f"{DISTRICT}-OFFICE",
                    },
                )
        self.emit(
            t_bulletin,
            ADMIN,
            BULLETIN_PUBLISHED,
            f"{DISTRICT}:{stamp}",
            {"document_ref": f"WLY-TB-{stamp}", "as_of_position": self.emitted},
        )
        for offset, unit in enumerate(self._units()):
            self.emit(
                t_bulletin + HOUR + offset,
                ADMIN,
                PERIOD_CLOSED,
                f"{unit}:{stamp}",
                {"note": "月度考核结束"},
            )
        if month.month in (3, 6, 9, 12):
            quarter = f"{month.year}-Q{(month.month - 1) // 3 + 1}"
            ranked = [s.id for s in self.network.institutes]
            rng.shuffle(ranked)
            self.emit(
                self.working_time(day + self.ri(8, 16)),
                ADMIN,
                REVIEW_HELD,
                f"{DISTRICT}:{quarter}",
                {
                    "attendees_count": self.ri(18, 40),
                    "ranked_units": ranked,
                    "actions": [f"{ranked[-1]} 限期清零逾期整改问题", "推广微心愿认领经验"],
                    "document_ref": f"WLY-JP-{quarter}",
                },
            )
        if month.month in (6, 12):
            half = f"{month.year}-H{1 if month.month == 6 else 2}"
            self.emit(
                self.working_time(day + self.ri(12, 22)),
                ADMIN,
                SUMMARY_PUBLISHED,
                f"{DISTRICT}:{half}",
                {
                    "document_ref": f"WLY-ZJ-{half}",
                    "summary": "半年工作总结：阵地、队伍、项目、闭环整改",
                },
            )

    def _yearly(self, day: int, when: date) -> None:
        """The officials' dual check-in (双报到) early each year; renewals on 1 January."""
        if day > 0 and when.month == 1 and when.day == 1:
            self._renew_year(day, when.year)
        if not (when.month == 1 or day < 31) or not self._is_workday(day):
            return
        # Each official reports once a year to a community and to a post, most in January.
        rng = self.rng
        year_end = int(datetime(when.year, 12, 31, 20, tzinfo=CST).timestamp())
        for person in self.network.people:
            if not person.official or (person.no, when.year) in self._reported:
                continue
            if rng.random() >= 1 / 7:
                continue
            self._reported.add((person.no, when.year))
            t = self.working_time(day)
            if rng.random() < 0.97:
                data = {"community_site_id": person.home_site_id}
                self.emit(t, ADMIN, REPORTED_TO_COMMUNITY, person.no, data)
            if rng.random() < 0.99:
                t_post = min(t + self.ri(HOUR, 3 * DAY), year_end)
                self.emit(
                    t_post, ADMIN, REPORTED_TO_POST, person.no, {"post_site_id": person.post_id}
                )

    def _renew_year(self, day: int, year: int) -> None:
        """On 1 January: renew insurance for active volunteers and set officials' quotas."""
        t = self.day_start(day) + 9 * HOUR
        for person in self.network.people:
            if person.rate > 0:
                self._insure(person, t, year)
                t += 1
            if person.official:
                self.emit(t, ADMIN, QUOTA_SET, person.no, {"year": year, "required_hours": 50})

    # -- activities --------------------------------------------------------------------------

    def _plan_activities(self, target: int, *, floor: int) -> None:
        """Plan the activities starting on day ``target`` (published 1-7 days ahead)."""
        net = self.network
        rng = self.rng
        season = self._season[target]
        weekend = not self._is_workday(target)
        holiday = self._is_holiday(target)
        when = self.date_of(target)
        tourist = 4 <= when.month <= 10
        flood = self._flood.get(target, [])
        planned: list[_Activity] = []
        for station in net.stations:
            rate = 0.18 * season * (1.5 if weekend else 0.85) * (0.6 if holiday else 1.0)
            if rng.random() < rate:
                planned.append(self._new_activity(target, station, "station", floor))
            if station.institute_id in flood and rng.random() < 0.8:
                planned.append(self._new_activity(target, station, "flood", floor))
                if rng.random() < 0.5:
                    planned.append(self._new_activity(target, station, "patrol", floor))
        for post in net.posts:
            chance = 0.95 if weekend or holiday else (0.45 if tourist else 0.2)
            if rng.random() < chance * min(1.0, season):
                planned.append(self._new_activity(target, post, "post", floor, holiday=holiday))
        for institute in net.institutes:
            if rng.random() < 0.09 * season:
                planned.append(self._new_activity(target, institute, "institute", floor))
        for base in net.bases:
            if rng.random() < 0.05 * season:
                planned.append(self._new_activity(target, base, "base", floor))
        centre_chance = 0.07 * season * (3 if when.month == 3 and when.day == 5 else 1)
        if rng.random() < centre_chance:
            planned.append(self._new_activity(target, net.centre, "centre", floor))
        self._activities[target] = [a for a in planned if a.slots > 0]

    def _new_activity(
        self, target: int, site: Site, kind: str, floor: int, *, holiday: bool = False
    ) -> _Activity:
        """Plan one activity; decide its cancellation, completion and feedback now."""
        starts, length, slots, category = self._activity_shape(target, kind, holiday=holiday)
        ends = starts + length
        when = self.date_of(target)
        activity_id = f"A-{when:%Y%m}-{self.number('activity'):06d}"
        data: dict[str, Any] = {
            "site_id": site.id,
            "category": category,
            "title": texts.ACTIVITY_TITLES[category],
            "starts_at": self.fmt(starts),
            "ends_at": self.fmt(ends),
            "slots": slots,
        }
        # 一月一主题: most activities carry the month's theme, nearly all in March.
        theme_code, theme_title = texts.MONTHLY_THEMES[when.month]
        if kind != "patrol" and self.rng.random() < (0.9 if when.month == 3 else 0.7):
            data["theme_code"] = theme_code
            data["title"] = f"{data['title']}·{theme_title.split('：')[0]}"
        teams = self.network.teams_by_site.get(site.id)
        if teams:
            data["team_id"] = teams[0].id
        urgent = kind in ("flood", "patrol")
        if urgent:
            planned_at = starts - self.ri(HOUR, 3 * HOUR)
        else:
            planned_at = starts - self.ri(1, 7) * DAY - self.ri(HOUR, 6 * HOUR)
        planned_at = min(max(floor, planned_at), starts - 10 * MINUTE)
        self.emit(planned_at, ADMIN, ACTIVITY_PLANNED, activity_id, data)
        flood_day = target in self._flood
        if not urgent and self.rng.random() < (0.10 if flood_day else 0.03):
            cancelled_at = max(planned_at + 10 * MINUTE, starts - self.ri(HOUR, 20 * HOUR))
            reason = texts.CANCEL_REASONS[0 if flood_day else self.rr(len(texts.CANCEL_REASONS))]
            self.emit(cancelled_at, ADMIN, ACTIVITY_CANCELLED, activity_id, {"reason": reason})
            return _Activity(activity_id, site, starts, ends, 0)
        self._complete_activity(activity_id, category, ends)
        return _Activity(activity_id, site, starts, ends, slots, night=kind == "patrol")

    def _activity_shape(
        self, target: int, kind: str, *, holiday: bool
    ) -> tuple[int, int, int, str]:
        """When an activity of ``kind`` starts, how long it lasts, its slots and category."""
        rng = self.rng
        day0 = self.day_start(target)
        if kind == "post":
            # Tourist posts run half-day shifts, busier on holidays.
            starts = day0 + (8 * HOUR if rng.random() < 0.55 else 13 * HOUR)
            slots = self.ri(8, 14) if holiday else self.ri(3, 8)
            return starts, 4 * HOUR, slots, rng.choice(texts.ACTIVITY_CATEGORIES["post"])
        if kind == "flood":
            starts = day0 + rng.choice((7, 8, 9)) * HOUR
            return starts, self.ri(16, 28) * 15 * MINUTE, self.ri(10, 25), "emergency_rescue"
        if kind == "patrol":
            starts = day0 + 20 * HOUR + rng.choice((0, 30)) * MINUTE
            return starts, 6 * HOUR, self.ri(4, 8), "flood_patrol"
        slot = rng.random()
        if slot < 0.5:
            starts = day0 + rng.choice((8 * HOUR + 30 * MINUTE, 9 * HOUR))
        elif slot < 0.85:
            starts = day0 + rng.choice((14 * HOUR + 30 * MINUTE, 15 * HOUR))
        else:  # evenings: culture nights (文化夜市), lectures after work
            starts = day0 + rng.choice((19 * HOUR, 19 * HOUR + 30 * MINUTE))
        low, high = ACTIVITY_SLOTS[kind]
        slots = self.ri(low, high)
        if kind == "centre" and self.date_of(target).month == 3:
            slots *= 2
        category = rng.choice(texts.ACTIVITY_CATEGORIES[kind])
        return starts, self.ri(6, 14) * 15 * MINUTE, slots, category

    def _complete_activity(self, activity_id: str, category: str, ends: int) -> None:
        """Completion with the people served, and ratings for about a third."""
        rng = self.rng
        completed_at = ends + self.ri(10 * MINUTE, 20 * HOUR)
        low, high = SERVED.get(category, (8, 60))
        served = self.ri(low, high)
        completed: dict[str, Any] = {
            "served_count": served,
            "beneficiaries_count": self.ri(served // 2, served),
            "evidence": self.evidence("photo", f"activity/{activity_id}"),
        }
        self.emit(completed_at, ADMIN, ACTIVITY_COMPLETED, activity_id, completed)
        if rng.random() < 0.3:
            t = completed_at
            for _ in range(self.ri(1, 3)):
                t += self.ri(10 * MINUTE, 30 * HOUR)
                feedback = {
                    "rater_kind": rng.choice(("beneficiary", "resident", "supervisor")),
                    "rating": rng.choices((5, 4, 3, 2, 1), (55, 30, 10, 3, 2))[0],
                }
                self.emit(t, ADMIN, ACTIVITY_FEEDBACK, activity_id, feedback)

    # -- sessions ----------------------------------------------------------------------------

    def _staff(self, day: int) -> None:
        """Check people in and out of today's activities, post duty and walk-in service.

        Work is staffed in start order, so "free at the start" against each
        person's busy-until time is enough to keep one session at a time.
        """
        rng = self.rng
        for starts, kind, activity, site, count in self._todays_work(day):
            if kind == OFFICIAL_DUTY:
                if self._busy[count] <= starts:
                    length = self.ri(8, 16) * 15 * MINUTE
                    self._session(count, site, None, starts, starts + length)
            elif activity is not None:
                fill = count if rng.random() < 0.6 else max(1, round(count * rng.uniform(0.6, 1.0)))
                for index in self.pick_people(site, fill, activity.starts - 20 * MINUTE):
                    self._session(index, site, activity, activity.starts, activity.ends)
            else:
                length = self.ri(4, 12) * 15 * MINUTE
                for index in self.pick_people(site, count, starts):
                    self._session(index, site, None, starts, starts + length)

    def _todays_work(self, day: int) -> list[tuple[int, int, _Activity | None, Site, int]]:
        """(start, kind, activity, site, slots or person) of the day, in start order.

        Activities planned for the day; walk-in service at stations (no
        activity); officials' duty at their post (双服务), mostly at weekends
        and on holidays, when the scenic area is busiest.
        """
        rng = self.rng
        work: list[tuple[int, int, _Activity | None, Site, int]] = [
            (a.starts, ACTIVITY_WORK, a, a.site, a.slots) for a in self._activities.pop(day, [])
        ]
        start = self.day_start(day)
        season = self._season[day]
        for station in self.network.stations:
            if rng.random() < 0.45 * season:
                t = start + self.ri(8 * HOUR, 17 * HOUR)
                work.append((t, WALK_IN, None, station, self.ri(1, 2)))
        if not self._is_workday(day) or self._is_holiday(day) or rng.random() < 0.15:
            for post_id, officials in self._officials_by_post.items():
                post = self.network.sites[post_id]
                for index in officials:
                    if rng.random() < 0.14 and self._busy[index] <= start:
                        t = start + rng.choice((8, 9, 13, 14)) * HOUR
                        work.append((t, OFFICIAL_DUTY, None, post, index))
        work.sort(key=lambda w: (w[0], w[1]))
        return work

    def _session(
        self, index: int, site: Site, activity: _Activity | None, starts: int, ends: int
    ) -> None:
        """One person's session: check-in and out (or a back-fill), then approval and after."""
        rng = self.rng
        t_in = max(starts + self.ri(-15 * MINUTE, 15 * MINUTE), self._busy[index])
        if rng.random() < 0.08:  # left early
            t_out = t_in + int((ends - t_in) * rng.uniform(0.45, 0.85))
        else:
            t_out = ends + self.ri(-15 * MINUTE, 20 * MINUTE)
        session = _Session(
            index=index,
            id=f"S{self.number('session'):08d}",
            subject=self.network.people[index].no,
            site=site,
            activity=activity,
            t_in=t_in,
            t_out=max(t_out, t_in + 35 * MINUTE),
        )
        night = activity is not None and activity.night
        if not night and rng.random() < 0.02:
            self._back_fill(session)
            return
        self._check_in(session)
        if rng.random() < (0.35 if night else 0.045):
            self._auto_close(session, night=night)
            return
        self.emit(
            session.t_out,
            CHECKIN_APP,
            CHECKED_OUT,
            session.subject,
            {"session_id": session.id, "method": session.method},
        )
        self._busy[index] = session.t_out + 5 * MINUTE
        self._settle(session, session.t_out, session.t_out)

    def _check_in(self, session: _Session) -> None:
        rng = self.rng
        site = session.site
        session.method = CHECKIN_METHODS[self.rr(len(CHECKIN_METHODS))]
        data: dict[str, Any] = {"session_id": session.id, "site_id": site.id}
        if session.activity is not None:
            data["activity_id"] = session.activity.id
        data["method"] = session.method
        if session.method == "gps":
            data["geo"] = {
                "lat": round(site.lat + rng.uniform(-0.0005, 0.0005), 6),
                "lon": round(site.lon + rng.uniform(-0.0005, 0.0005), 6),
                "accuracy_m": self.ri(5, 40),
            }
        self.emit(session.t_in, CHECKIN_APP, CHECKED_IN, session.subject, data)

    def _back_fill(self, session: _Session) -> None:
        """A paper sign-in sheet at a village without signal, back-filled (补录) days later."""
        t_record = self.working_time(
            self.day_of(session.t_out) + self.ri(1, 5), after=session.t_out
        )
        data: dict[str, Any] = {
            "session_id": session.id,
            "site_id": session.site.id,
            "started_at": self.fmt(session.t_in),
            "ended_at": self.fmt(session.t_out),
            "evidence": self.evidence("document", f"signin/{session.id}"),
            "reason": self.rng.choice(("纸质签到表补录", "现场无网络信号，事后补录")),
        }
        if session.activity is not None:
            data["activity_id"] = session.activity.id
        self.emit(t_record, CHECKIN_APP, HOURS_RECORDED, session.subject, data)
        self._busy[session.index] = session.t_out + 10 * MINUTE
        self._settle(session, session.t_out, t_record)

    def _auto_close(self, session: _Session, *, night: bool) -> None:
        """The check-in system's scheduler closes a missed check-out after local midnight.

        Shift end for activities, a default two hours for walk-in service,
        local midnight for night patrols, half of which check out late
        afterwards (the late check-out replaces the pending credit).
        """
        midnight = self.day_start(self.day_of(session.t_in) + 1)
        t_close = midnight + self.ri(5 * MINUTE, 40 * MINUTE)
        if night:
            rule, until = "midnight", midnight
        elif session.activity is not None:
            rule, until = "shift_end", max(session.activity.ends, session.t_in + 15 * MINUTE)
        else:
            rule, until = "default_duration", session.t_in + 2 * HOUR
        data = {"session_id": session.id, "rule": rule, "credited_until": self.fmt(until)}
        self.emit(t_close, CHECKIN_APP, AUTO_CLOSED, session.subject, data)
        if night and self.rng.random() < 0.5:
            closed_at = max(session.t_out, t_close + 5 * MINUTE)
            data = {"session_id": session.id}
            self.emit(closed_at, CHECKIN_APP, CHECKED_OUT, session.subject, data)
            self._busy[session.index] = closed_at + 5 * MINUTE
            self._settle(session, closed_at, closed_at)
            return
        self._busy[session.index] = t_close + 5 * MINUTE
        self._settle(session, until, t_close, under_credited=night)

    def _settle(
        self, session: _Session, t_end: int, closed_at: int, *, under_credited: bool = False
    ) -> None:
        """Approve (mostly), reject or correct the credited hours, days after the session.

        ``under_credited`` marks a night patrol cut at midnight: its approved
        hours are corrected upwards afterwards.
        """
        rng = self.rng
        subject = session.subject
        hours = ((t_end - session.t_in) // 900) / 4
        approver = f"STAFF-{session.site.id.removeprefix(DISTRICT + '-')}"
        # Hours are reviewed in office hours within a week (Galaxy Digital advises 1-2x a week).
        t_decide = self.working_time(self.day_of(closed_at) + self.ri(1, 6), after=closed_at)
        decision = {"session_id": session.id, "approver": approver}
        roll = rng.random()
        if roll < 0.025:
            reason = texts.REJECT_HOURS_REASONS[self.rr(len(texts.REJECT_HOURS_REASONS))]
            self.emit(t_decide, ADMIN, HOURS_REJECTED, subject, {**decision, "reason": reason})
            return
        self.emit(t_decide, ADMIN, HOURS_APPROVED, subject, decision)
        final_t, final_hours = t_decide, hours
        if roll < 0.028:
            final_t = t_decide + self.ri(3 * DAY, 30 * DAY)
            final_hours = 0.0
            rejected = {**decision, "reason": "复核发现代签到"}
            self.emit(final_t, ADMIN, HOURS_REJECTED, subject, rejected)
        elif under_credited or roll < 0.045:
            up = under_credited or rng.random() < 0.4
            delta = rng.choice((0.5, 1.0, 1.5)) if up else -min(hours, rng.choice((0.25, 0.5, 1.0)))
            if delta != 0 and 0 <= hours + delta <= 24:
                final_t = t_decide + self.ri(HOUR, 10 * DAY)
                final_hours = hours + delta
                reasons = texts.CORRECTION_REASONS_UP if up else texts.CORRECTION_REASONS_DOWN
                corrected = {
                    **decision,
                    "delta_hours": delta,
                    "reason": reasons[1 if under_credited else 0],
                }
                self.emit(final_t, ADMIN, HOURS_CORRECTED, subject, corrected)
        points = self.points(final_hours)
        if points:
            self._secure[session.index].append((final_t, points))

    # -- house meetings ----------------------------------------------------------------------

    def _meetings(self, day: int) -> None:
        """屋场会 at house-meeting sites, about ten a year each, more before Spring Festival."""
        rng = self.rng
        when = self.date_of(day)
        month_factor = {1: 1.4, 2: 0.9, 3: 1.1, 4: 0.8, 5: 0.8, 6: 1.2, 7: 1.2, 8: 1.1}.get(
            when.month, 1.0
        )
        if self._is_holiday(day) and when.month in (1, 2):
            month_factor *= 0.2
        rate = 10 / 365 * month_factor * (1.3 if not self._is_workday(day) else 0.9)
        for site in self.network.meeting_sites:
            if rng.random() < rate:
                self._meeting(day, site, when)

    def _meeting(self, day: int, site: Site, when: date) -> None:
        """One 屋场会: held, its steps (some missing), its concerns and what became of them."""
        rng = self.rng
        evening = rng.random() < 0.7
        starts = self.day_start(day) + (
            19 * HOUR + rng.choice((0, 15, 30)) * MINUTE if evening else 14 * HOUR + 30 * MINUTE
        )
        ends = starts + self.ri(5, 10) * 15 * MINUTE
        meeting_id = f"M-{when:%Y%m}-{self.number('meeting'):05d}"
        station = site.station_id or site.parent_id or DISTRICT
        officials = self._officials_by_station.get(station, [])
        present = rng.sample(officials, min(len(officials), rng.choice((0, 1, 1, 2, 3))))
        data: dict[str, Any] = {
            "site_id": site.id,
            "started_at": self.fmt(starts),
            "ended_at": self.fmt(ends),
            "attendees_count": self.ri(15, 80),
            "officials_present": present,
            "hosts": [f"STAFF-{station.removeprefix(DISTRICT + '-')}"],
            "topics": rng.sample(texts.MEETING_TOPICS[when.month], self.ri(1, 3)),
            "geo": site.geo(),
            "evidence": self.evidence("photo", f"meeting/{meeting_id}"),
        }
        t = ends + self.ri(5 * MINUTE, 40 * MINUTE)
        self.emit(t, MEETING_APP, MEETING_HELD, meeting_id, data)
        steps = ["explain", "listen", "perform", "evaluate", "resolve"]
        if rng.random() < 0.16:
            # Incomplete meetings most often skip the performance (演), then the evaluation.
            steps.remove(rng.choices(("perform", "evaluate", "resolve", "listen"), (6, 3, 1, 1))[0])
            if rng.random() < 0.3 and "perform" in steps:
                steps.remove("perform")
        for step in steps:
            t += self.ri(20, 3 * MINUTE)
            logged = {
                "step": step,
                "summary": rng.choice(texts.STEP_SUMMARIES[step]),
                "speaker_role": "cadre" if step in ("explain", "resolve") else "volunteer",
            }
            self.emit(t, MEETING_APP, STEP_LOGGED, meeting_id, logged)
        station_site = self.network.sites.get(station, self.network.centre)
        for k in range(rng.choices((0, 1, 2, 3, 4, 5), (12, 22, 28, 20, 12, 6))[0]):
            t += self.ri(30, 4 * MINUTE)
            self._concern(meeting_id, f"C{k + 1}", t, site, station_site)

    def _concern(self, meeting_id: str, concern_id: str, t: int, site: Site, station: Site) -> None:
        """A concern raised, then resolved on the spot, converted, or left open."""
        rng = self.rng
        category, summary = texts.CONCERNS[self.rr(len(texts.CONCERNS))]
        raised = {"concern_id": concern_id, "category": category, "summary": summary}
        self.emit(t, MEETING_APP, CONCERN_RAISED, meeting_id, raised)
        fate = rng.random()
        if fate < 0.45:
            resolved = {"concern_id": concern_id, "resolution": "村委当场答复并明确办理人"}
            self.emit(
                t + self.ri(MINUTE, 20 * MINUTE),
                MEETING_APP,
                CONCERN_RESOLVED,
                meeting_id,
                resolved,
            )
            return
        if fate >= 0.93:
            return  # left open: a hanging concern the scorecards show
        # 办: the concern joins the responsibility list within three days.
        t_conv = t + self.ri(HOUR, 3 * DAY)
        origin = f"{meeting_id}:{concern_id}"
        if fate >= 0.88 or category == "landslide_risk":
            high = category == "landslide_risk" and rng.random() < 0.5
            target = self._finding(
                t_conv,
                site,
                source="house_meeting",
                severity="high" if high else "normal",
                category=category,
                description=summary,
                origin_ref=origin,
            )
            to = "finding"
        else:
            target = self._need(
                t_conv,
                station,
                channel="house_meeting",
                category=category,
                summary=summary,
                meeting=(meeting_id, concern_id),
            )
            to = "need"
        converted = {"concern_id": concern_id, "to": to, "target_id": target}
        self.emit(
            t_conv + self.ri(20, 5 * MINUTE), MEETING_APP, CONCERN_CONVERTED, meeting_id, converted
        )

    # -- needs (微心愿 and the service menu) --------------------------------------------------

    def _needs(self, day: int) -> None:
        """Needs submitted through the wish wall, the app, the hotline and door-to-door visits."""
        rng = self.rng
        when = self.date_of(day)
        factor = {1: 1.6, 6: 1.2, 7: 1.3, 8: 1.3, 9: 1.1}.get(when.month, 1.0)
        flood = self._flood.get(day, [])
        for station in self.network.stations:
            rate = 0.21 * factor
            if station.institute_id in flood:
                rate += 0.5
            if rng.random() >= rate:
                continue
            t = self.day_start(day) + self.ri(7 * HOUR, 21 * HOUR)
            if station.institute_id in flood and rng.random() < 0.7:
                category, _, summary = texts.FLOOD_NEEDS[self.rr(len(texts.FLOOD_NEEDS))]
                self._need(
                    t,
                    station,
                    channel="hotline",
                    category=category,
                    summary=summary,
                    urgency="high",
                )
                continue
            channel = rng.choices(
                ("micro_wish", "app", "hotline", "visit", "service_menu"), (40, 20, 10, 15, 15)
            )[0]
            if channel == "micro_wish":
                summary = rng.choice(texts.WISH_ITEMS)
                category = "daily_goods" if "书包" not in summary else "school_supplies"
            else:
                category, _, summary = texts.NEED_CATEGORIES[self.rr(len(texts.NEED_CATEGORIES))]
            urgency = rng.choices(("low", "normal", "high"), (20, 70, 10))[0]
            self._need(
                t, station, channel=channel, category=category, summary=summary, urgency=urgency
            )

    def _need(
        self,
        t: int,
        station: Site,
        *,
        channel: str,
        category: str,
        summary: str,
        urgency: str = "normal",
        meeting: tuple[str, str] | None = None,
    ) -> str:
        """A need from submission through acceptance or rejection, service and rating."""
        rng = self.rng
        need_id = f"N-{self.date_of(self.day_of(t)):%Y%m}-{self.number('need'):06d}"
        data: dict[str, Any] = {
            "site_id": station.id,
            "channel": channel,
            "category": category,
            "summary": summary,
            "urgency": urgency,
            "beneficiary_ref": f"BR-{rng.getrandbits(32):08x}",
        }
        if meeting is not None:
            data["meeting_id"], data["concern_id"] = meeting
        self.emit(t, WISH_WALL, NEED_SUBMITTED, need_id, data)
        fast = urgency == "high"
        roll = rng.random()
        if roll < 0.07:
            rejected = {
                "reason": rng.choice(texts.NEED_REJECT_REASONS),
                "visible_to_requester": True,
            }
            self.emit(t + self.ri(2 * HOUR, 3 * DAY), WISH_WALL, NEED_REJECTED, need_id, rejected)
            return need_id
        if roll < 0.08:
            withdrawn = {"outcome": "withdrawn"}
            self.emit(t + self.ri(HOUR, DAY), WISH_WALL, NEED_CLOSED, need_id, withdrawn)
            return need_id
        t += self.ri(20 * MINUTE, 4 * HOUR) if fast else self.ri(HOUR, 2 * DAY)
        self.emit(t, WISH_WALL, NEED_ACCEPTED, need_id, {"by": station.id})
        handed = self._hand_out(need_id, station, t, wish=channel == "micro_wish", urgency=urgency)
        if handed is not None:
            self._serve(need_id, *handed, fast=fast)
        return need_id

    def _hand_out(
        self, need_id: str, station: Site, t: int, *, wish: bool, urgency: str
    ) -> tuple[dict[str, str], int] | None:
        """派单 or 抢单: a wish goes on the wall to be claimed, other needs are dispatched.

        Returns the final assignee (after any re-dispatch) and the time.
        """
        rng = self.rng
        net = self.network
        teams = net.teams_by_site.get(station.id) or net.teams_by_site.get(station.institute_id, [])
        fast = urgency == "high"
        assignee = self._assignee(station, teams, prefer_team=fast)
        if assignee is None:
            return None
        if wish:
            t += self.ri(10 * MINUTE, 2 * HOUR)
            self.emit(t, WISH_WALL, NEED_LISTED, need_id, {"note": "欢迎爱心人士认领"})
            if rng.random() < 0.75:
                t += self.ri(HOUR, 5 * DAY)
                self.emit(t, WISH_WALL, NEED_CLAIMED, need_id, assignee)
            else:  # nobody claimed it within five days: the station dispatches it
                t += self.ri(5 * DAY, 8 * DAY)
                self.emit(t, WISH_WALL, NEED_DISPATCHED, need_id, {**assignee, "mode": "assign"})
        else:
            t += self.ri(10 * MINUTE, 3 * HOUR) if fast else self.ri(HOUR, DAY)
            within = DAY if fast else (10 * DAY if urgency == "low" else 5 * DAY)
            dispatched = {**assignee, "mode": "assign", "due_at": self.fmt(t + within)}
            self.emit(t, WISH_WALL, NEED_DISPATCHED, need_id, dispatched)
        if rng.random() < 0.07:
            other = self._assignee(station, teams, prefer_team=fast, avoid=assignee)
            if other is not None:
                t += self.ri(DAY, 3 * DAY)
                reason = rng.choice(texts.REDISPATCH_REASONS)
                self.emit(t, WISH_WALL, NEED_REDISPATCHED, need_id, {**other, "reason": reason})
                assignee = other
        return assignee, t

    def _serve(self, need_id: str, assignee: dict[str, str], t: int, *, fast: bool) -> None:
        """接单 and 评单: one to three visits, closure, and usually a rating."""
        rng = self.rng
        fate = rng.random()
        if fate < 0.05:
            closed: dict[str, Any] = {"outcome": "withdrawn"}
            if fate < 0.03:
                closed = {"outcome": "unfulfillable", "reason": "所需物资无法筹集，已向群众说明"}
            self.emit(t + self.ri(DAY, 10 * DAY), WISH_WALL, NEED_CLOSED, need_id, closed)
            return
        median = 0.4 * DAY if fast else 2.5 * DAY
        for visit in range(rng.choices((1, 2, 3), (80, 15, 5))[0]):
            if visit == 0:
                gap = rng.lognormvariate(math.log(median), 0.8)
            else:
                gap = rng.uniform(DAY, 7 * DAY)
            t += max(30 * MINUTE, int(gap))
            delivered: dict[str, Any] = {
                **assignee,
                "hours": rng.choice((0.5, 1.0, 1.0, 1.5, 2.0, 3.0)),
                "summary": "已上门服务并拍照留档",
                "evidence": self.evidence("photo", f"need/{need_id}/{visit + 1}"),
            }
            self.emit(t, WISH_WALL, SERVICE_DELIVERED, need_id, delivered)
        t += self.ri(HOUR, 2 * DAY)
        self.emit(t, WISH_WALL, NEED_CLOSED, need_id, {"outcome": "fulfilled"})
        if rng.random() < 0.75:
            rating = rng.choices((5, 4, 3, 2, 1), (62, 24, 9, 3, 2))[0]
            rated: dict[str, Any] = {"rating": rating}
            if rating >= 4 and rng.random() < 0.4:
                rated["comment"] = "志愿者服务热情周到"
            elif rating <= 2:
                rated["comment"] = "上门时间一再推迟"
            self.emit(t + self.ri(HOUR, 5 * DAY), WISH_WALL, NEED_RATED, need_id, rated)

    def _assignee(
        self,
        station: Site,
        teams: list[Team],
        *,
        prefer_team: bool,
        avoid: dict[str, str] | None = None,
    ) -> dict[str, str] | None:
        """A team of the station or one of its volunteers (never ``avoid``)."""
        for _ in range(4):
            if teams and (prefer_team or self.rng.random() < 0.6):
                choice = {"team_id": teams[self.rr(len(teams))].id}
            else:
                person = self.any_person(station)
                if person is None:
                    if not teams:
                        return None
                    continue
                choice = {"volunteer_no": person.no}
            if choice != avoid:
                return choice
        return None

    # -- inspections and findings (the closed loop) -------------------------------------------

    def _inspections(self, day: int, when: date) -> None:
        """督查: stations every two months or so, posts monthly in the season, and the hotline."""
        rng = self.rng
        if not self._is_workday(day):
            return
        flood = self._flood.get(day, [])
        net = self.network
        for station in net.stations:
            if rng.random() < 1 / 45:
                self._inspection(day, station)
        tourist = 4 <= when.month <= 10
        for post in net.posts:
            if rng.random() < (1 / 22 if tourist else 1 / 60):
                self._inspection(day, post)
        for base in net.bases:
            if rng.random() < 1 / 70:
                self._inspection(day, base)
        for site in net.meeting_sites:
            if rng.random() < 1 / 400:
                self._inspection(day, site)
        # Findings that come from the hotline, self-checks and supervision.
        for station in net.stations:
            if rng.random() < (0.15 if station.institute_id in flood else 0.011):
                source = rng.choices(("hotline", "self_check", "supervision"), (5, 3, 2))[0]
                category, item, description = rng.choice(
                    texts.SAFETY_FINDINGS
                    if station.institute_id in flood
                    else texts.FINDING_CATEGORIES
                )
                severity = (
                    rng.choices(("critical", "high"), (1, 2))[0]
                    if station.institute_id in flood
                    else rng.choices(("high", "normal", "low"), (10, 60, 30))[0]
                )
                self._finding(
                    self.working_time(day),
                    station,
                    source=source,
                    severity=severity,
                    category=category,
                    description=description,
                    checklist_item=item,
                    origin_ref=f"HOTLINE-{self.number('ticket'):06d}"
                    if source == "hotline"
                    else None,
                )

    def _inspection(self, day: int, site: Site) -> None:
        rng = self.rng
        number = self.number("inspection")
        inspection_id = f"INSP-{self.date_of(day):%Y%m}-{number:05d}"
        starts = self.day_start(day) + self.ri(9 * HOUR, 15 * HOUR)
        ends = starts + self.ri(2, 6) * 15 * MINUTE
        failures = rng.choices((0, 1, 2, 3), (35, 35, 20, 10))[0]
        picked = rng.sample(texts.FINDING_CATEGORIES, failures)
        flood = self.day_of(starts) in self._flood
        if rng.random() < (0.5 if flood else 0.06):
            # Fire and electrical hazards all year; flood damage and landslides in the rains.
            picked.append(rng.choice(texts.SAFETY_FINDINGS if flood else texts.SAFETY_FINDINGS[:2]))
        failed_items = {item for _, item, _ in picked}
        results = [
            {"code": code, "result": "fail" if code in failed_items else "pass"}
            for code, _, _ in SIX_HAVES_V1
        ]
        inspectors = [f"INSP-{n:02d}" for n in rng.sample(range(1, 13), 2)]
        self.emit(
            ends + self.ri(5 * MINUTE, 2 * HOUR),
            INSPECTION_APP,
            INSPECTION_CONDUCTED,
            inspection_id,
            {
                "site_id": site.id,
                "inspector_ids": inspectors,
                "checklist_id": CHECKLIST_ID,
                "checklist_version": self._checklist_version,
                "started_at": self.fmt(starts),
                "ended_at": self.fmt(ends),
                "summary": f"督查发现问题{len(picked)}个" if picked else "未发现问题",
                "item_results": results,
                "geo": site.geo(),
            },
        )
        t = ends + 2 * HOUR + self.ri(0, 2 * HOUR)
        for category, item, description in picked:
            safety = category in {c for c, _, _ in texts.SAFETY_FINDINGS}
            severity = (
                rng.choices(("critical", "high"), (1, 2))[0]
                if safety
                else rng.choices(("high", "normal", "low"), (8, 62, 30))[0]
            )
            self._finding(
                t,
                site,
                source="inspection",
                severity=severity,
                category=category,
                description=description,
                checklist_item=item,
                inspection_id=inspection_id,
            )
            t += self.ri(MINUTE, 10 * MINUTE)

    def _units_for(self, site: Site) -> tuple[str, str, str]:
        """(responsible unit, the unit above it, an independent verifier unit) for a site."""
        net = self.network
        if site.level == "centre":
            return DISTRICT, DISTRICT, net.institutes[0].id
        if site.level in ("institute", "base"):
            return site.institute_id, DISTRICT, DISTRICT
        station = site.station_id or site.id
        return station, site.institute_id, site.institute_id

    def _finding(
        self,
        t: int,
        site: Site,
        *,
        source: str,
        severity: str,
        category: str,
        description: str,
        checklist_item: str | None = None,
        inspection_id: str | None = None,
        origin_ref: str | None = None,
    ) -> str:
        """A finding through the closed loop; the path is drawn, the due times are the domain's."""
        rng = self.rng
        finding_id = f"F-{self.date_of(self.day_of(t)):%Y%m}-{self.number('finding'):05d}"
        responsible, above, verifier_unit = self._units_for(site)
        data: dict[str, Any] = {
            "source": source,
            "site_id": site.id,
            "severity": severity,
            "category": category,
            "description": description,
            "responsible_unit_id": responsible,
            "evidence": self.evidence("photo", f"finding/{finding_id}"),
        }
        optional = {
            "inspection_id": inspection_id,
            "checklist_item": checklist_item,
            "origin_ref": origin_ref,
        }
        data.update({key: value for key, value in optional.items() if value is not None})
        earlier = [f for at, f in self._findings_by_site.get(site.id, []) if at < t - HOUR]
        if earlier and rng.random() < 0.05:
            data["related_to"] = earlier[-1]  # a recurrence after its reopen window
        self._findings_by_site.setdefault(site.id, []).append((t, finding_id))
        self.emit(t, INSPECTION_APP, FINDING_RECORDED, finding_id, data)
        leader = (
            "LEADER-WLY" if above == DISTRICT else f"LEADER-{above.removeprefix(DISTRICT + '-')}"
        )
        case = _Case(
            id=finding_id,
            severity=severity,
            unit=responsible,
            above=above,
            verifier_unit=verifier_unit,
            leader=leader,
            t=t,
        )
        if self._ends_unfixed(case, earlier[-1] if earlier else None):
            return finding_id
        self._feed_back(case)
        if not case.critical and rng.random() < 0.06:
            self._dispute(case)
        if rng.random() < 0.01:
            voided = {"reason": "上级通知该问题另案处理", "approver": leader}
            self.emit(
                case.t + self.ri(HOUR, DAY), INSPECTION_APP, FINDING_VOIDED, finding_id, voided
            )
            return finding_id
        # Acknowledgement (签收): mostly within its budget.
        case.t = self._on_time(
            case.t, case.ack_due, late=rng.random() < 0.1, critical=case.critical
        )
        self.emit(case.t, INSPECTION_APP, FINDING_ACKNOWLEDGED, finding_id, {"by": case.staff})
        if severity in ("critical", "high") or rng.random() < 0.5:
            self._plan(case)
        if not case.critical and rng.random() < 0.08 and case.rect_due - case.t > 2 * DAY:
            self._extension(case)
        self._rectify_and_verify(case)
        return finding_id

    def _ends_unfixed(self, case: _Case, earlier: str | None) -> bool:
        """Voided as recorded in error (2 %), or closed as not applicable or a duplicate (2 %)."""
        roll = self.rng.random()
        if roll >= 0.04:
            return False
        t = case.t + self.ri(HOUR, 2 * DAY)
        if roll < 0.02:
            voided = {"reason": "录入错误：问题不属于该阵地", "approver": case.leader}
            self.emit(t, INSPECTION_APP, FINDING_VOIDED, case.id, voided)
            return True
        closure: dict[str, Any] = {
            "closure": "not_applicable",
            "approver": case.leader,
            "reason": "经核实问题已于督查前自行整改",
        }
        if earlier is not None:
            closure = {
                "closure": "duplicate",
                "approver": case.leader,
                "reason": "与已记录问题重复",
                "related_finding_id": earlier,
            }
        self.emit(t, INSPECTION_APP, FINDING_CLOSED, case.id, closure)
        return True

    def _feed_back(self, case: _Case) -> None:
        """反馈: at once for a critical finding, the same or next working day otherwise."""
        if case.critical:
            case.t += self.ri(10 * MINUTE, 40 * MINUTE)
        else:
            case.t += self.ri(30 * MINUTE, 20 * HOUR)
        self.emit(case.t, INSPECTION_APP, FINDING_FED_BACK, case.id, {"channel": "platform"})
        case.start_clocks(self, case.t)

    def _dispute(self, case: _Case) -> None:
        """退单 before acknowledgement, then a ruling (审定) that moves it up or keeps it."""
        rng = self.rng
        returned_at = case.t + self.ri(HOUR, max(2 * HOUR, (case.ack_due - case.t) // 2))
        reason = rng.choice(tuple(texts.RETURN_BASES))
        returned = {"reason_code": reason, "basis": texts.RETURN_BASES[reason], "by": case.staff}
        self.emit(returned_at, INSPECTION_APP, FINDING_RETURNED, case.id, returned)
        ruled_at = self.working_time(
            self.working_day_after(returned_at, self.ri(1, 2)), after=returned_at
        )
        transfer = case.above != case.unit and rng.random() < 0.6
        ruling = {
            "to_unit_id": case.above if transfer else case.unit,
            "ruling_by": f"{DISTRICT}-SUPERVISION",
            "ruling": "改由上级单位负责整改" if transfer else "经审定维持原责任单位",
        }
        self.emit(ruled_at, INSPECTION_APP, FINDING_REASSIGNED, case.id, ruling)
        case.t = ruled_at
        if transfer:
            # A new unit: the clocks restart for it (the aggregate decides the same).
            case.unit = case.above
            case.verifier_unit = (
                DISTRICT if case.unit != DISTRICT else self.network.institutes[0].id
            )
            case.start_clocks(self, ruled_at)

    def _plan(self, case: _Case) -> None:
        """Root cause and actions: required for high and critical findings, common otherwise."""
        if case.critical:
            planned_at = case.t + self.ri(20 * MINUTE, 3 * HOUR)
        else:
            planned_at = case.t + self.ri(HOUR, 2 * DAY)
        planned_at = min(planned_at, max(case.t + 10 * MINUTE, case.rect_due - 2 * HOUR))
        action = {
            "description": "明确专人整改并建立台账",
            "owner": case.staff,
            "due_at": self.fmt(max(case.rect_due - DAY, planned_at + HOUR)),
        }
        plan_data: dict[str, Any] = {
            "root_cause": "日常管理责任落实不到位",
            "actions": [action],
            "submitted_by": case.staff,
        }
        if case.critical:
            plan_data["containment"] = "已设置警示并暂停使用相关设施"
        self.emit(planned_at, INSPECTION_APP, PLAN_SUBMITTED, case.id, plan_data)
        case.t = planned_at

    def _extension(self, case: _Case) -> None:
        """延期: asked before the deadline, then granted (3 in 4) or denied by supervision."""
        asked_at = case.t + self.ri(HOUR, (case.rect_due - case.t) - DAY)
        due = datetime.fromtimestamp(case.rect_due, CST)
        asked = self.calendar.add_working_days(due, self.ri(5, 10)).isoformat()
        request = {
            "requested_due_at": asked,
            "reason": "需采购材料，施工周期较长",
            "requested_by": case.staff,
        }
        self.emit(asked_at, INSPECTION_APP, EXTENSION_REQUESTED, case.id, request)
        case.t = asked_at + self.ri(2 * HOUR, 2 * DAY)
        approver = f"{DISTRICT}-SUPERVISION"
        if self.rng.random() < 0.75:
            granted = {"approver": approver, "new_due_at": asked}
            self.emit(case.t, INSPECTION_APP, EXTENSION_GRANTED, case.id, granted)
            case.rect_due = int(datetime.fromisoformat(asked).timestamp())
        else:
            denied = {"approver": approver, "reason": "整改内容不复杂，不予延期"}
            self.emit(case.t, INSPECTION_APP, EXTENSION_DENIED, case.id, denied)

    def _on_time(self, after: int, due: int, *, late: bool, critical: bool) -> int:
        """A time after ``after`` and before ``due`` (or after it when ``late``)."""
        rng = self.rng
        if late:
            return max(after, due) + self.ri(HOUR, (6 if critical else 72) * HOUR)
        room = due - after
        if room <= 20 * MINUTE:
            return after + max(60, room // 2)
        if critical:
            return after + self.ri(10 * MINUTE, room - 5 * MINUTE)
        share = rng.betavariate(1.5, 3.0)
        return after + 5 * MINUTE + int((room - 15 * MINUTE) * share)

    def _rectify_and_verify(self, case: _Case) -> None:
        """整改 and independent verification; a failed verification starts another cycle."""
        rng = self.rng
        late = rng.random() < (0.22 if case.cycle == 1 else 0.15)
        reported_at = self._on_time(case.t, case.rect_due, late=late, critical=case.critical)
        report = {
            "reported_by": case.staff,
            "actions_done": ["已完成整改并补齐台账"],
            "evidence": self.evidence("photo", f"finding/{case.id}/rectified-{case.cycle}"),
        }
        self.emit(reported_at, INSPECTION_APP, RECTIFICATION_REPORTED, case.id, report)
        verify_due = self.due(case.severity, "verification", reported_at)
        ready = reported_at
        if rng.random() < 0.25:
            # Some verifications start with a callback to the resident (回访).
            answer = {"satisfied": "yes", "comment": "群众对整改结果表示满意", "by": CALLCENTER}
            self.emit(
                reported_at + self.ri(2 * HOUR, DAY),
                INSPECTION_APP,
                CALLBACK_RECORDED,
                case.id,
                answer,
            )
            ready = reported_at + DAY
        case.t = self._on_time(ready, verify_due, late=rng.random() < 0.05, critical=False)
        verifier = {
            "verifier_id": f"INSP-{self.ri(1, 12):02d}",
            "verifier_unit_id": case.verifier_unit,
        }
        if case.cycle < 3 and rng.random() < (0.15 if case.cycle == 1 else 0.1):
            failed = {**verifier, "reason": "现场复核整改不彻底，台账仍缺失", "method": "onsite"}
            self.emit(case.t, INSPECTION_APP, VERIFICATION_FAILED, case.id, failed)
            # The aggregate reopens it at once, with a shorter rectification deadline.
            self._next_cycle(case, case.t)
            return
        passed = {**verifier, "method": "onsite", "acceptance_criteria": "问题整改到位，台账齐全"}
        self.emit(case.t, INSPECTION_APP, VERIFICATION_PASSED, case.id, passed)
        self._after_closure(case)

    def _after_closure(self, case: _Case) -> None:
        """A third get a callback; an unsatisfied one the handler caused reopens; a few recur."""
        rng = self.rng
        if case.cycle >= 3:
            return
        if rng.random() >= 0.35:
            if rng.random() < 0.01:
                self._reopen(case, case.t + self.ri(10 * DAY, 80 * DAY), "recurrence")
            return
        called_at = case.t + self.ri(DAY, 10 * DAY)
        answer = rng.choices(("yes", "no", "unreachable"), (88, 7, 5))[0]
        attributable = answer == "no" and rng.random() < 0.6
        callback: dict[str, Any] = {
            "satisfied": answer,
            "attributable_to_handler": attributable,
            "by": CALLCENTER,
        }
        if answer == "no":
            callback["comment"] = "群众反映问题仍未解决" if attributable else "群众希望进一步改善"
        self.emit(called_at, INSPECTION_APP, CALLBACK_RECORDED, case.id, callback)
        if attributable:
            self._reopen(case, called_at + self.ri(HOUR, 3 * DAY), "callback_unsatisfied")

    def _reopen(self, case: _Case, t: int, cause: str) -> None:
        """重办 within the 90-day window, with the explanation the aggregate requires."""
        explanation = {
            "callback_unsatisfied": "回访群众不满意：整改未达到群众要求，责任在承办单位",
            "recurrence": "同一问题在整改验收后再次出现",
        }[cause]
        self.emit(
            t,
            INSPECTION_APP,
            FINDING_REOPENED,
            case.id,
            {"cause": cause, "explanation": explanation},
        )
        self._next_cycle(case, t)

    def _next_cycle(self, case: _Case, t: int) -> None:
        case.cycle += 1
        case.t = t
        case.rect_due = self.due(case.severity, "rectification", t, reopen=True)
        self._rectify_and_verify(case)

    # -- six-haves assessments -----------------------------------------------------------------

    def _assessments(self, day: int, when: date) -> None:
        """六有 assessments: stations, posts, bases, institutes in June and December; house-meeting
        sites once a year in the autumn."""
        if not self._is_workday(day):
            return
        rng = self.rng
        net = self.network
        campaign = when.month in (6, 12)
        if campaign:
            for site in [*net.institutes, *net.stations, *net.posts, *net.bases]:
                if rng.random() < 1 / 18:
                    self._assess(day, site, when)
        if when.month in (10, 11):
            for site in net.meeting_sites:
                if rng.random() < 1 / 42:
                    self._assess(day, site, when)

    def _assess(self, day: int, site: Site, when: date) -> None:
        rng = self.rng
        improve = 6 if when.month >= 7 else 0
        weights = (50 + improve, 30, 14 - improve // 2, 6 - improve // 2)
        items = []
        for code, _, _ in SIX_HAVES_V1:
            rating = rng.choices(("A", "B", "C", "C#"), weights)[0]
            item: dict[str, Any] = {"code": code, "rating": rating}
            if rating in ("A", "B") and rng.random() < 0.3:
                item["evidence"] = self.evidence("photo", f"six-haves/{site.id}/{code}")
            items.append(item)
        method = (
            "survey"
            if site.level == "house_meeting_site"
            else rng.choice(("onsite", "onsite", "document", "photo"))
        )
        self.emit(
            self.working_time(day),
            INSPECTION_APP,
            STANDARD_ASSESSED,
            site.id,
            {
                "checklist_id": CHECKLIST_ID,
                "checklist_version": self._checklist_version,
                "items": items,
                "assessor_id": f"INSP-{self.ri(1, 12):02d}",
                "method": method,
            },
        )

    # -- people: new registrations, trainings, redemptions, status -------------------------------

    def _admit_new_people(self) -> None:
        """People registered yesterday or earlier may now serve (their aggregate exists)."""
        for index in self._joining:
            self._add_to_pools(index)
        self._joining = []

    def _people_admin(self, day: int, when: date) -> None:
        """Trainings, redemptions, status and skill changes, then the day's new registrations.

        The changes pick among people registered before today, so none can
        precede its volunteer's registration; newcomers register last.
        """
        rng = self.rng
        net = self.network
        known = len(net.people)
        # Trainings: a few courses a month, a flood-rescue course every June.
        if self._is_workday(day) and rng.random() < 0.12:
            course = (
                texts.FLOOD_COURSE
                if when.month == 6 and rng.random() < 0.5
                else rng.choice(texts.TRAINING_COURSES)
            )
            self._training(day, when, course)
        # 文明银行: volunteers exchange points at kiosks, mostly at weekends.
        if not self._is_workday(day):
            self._redemptions(day)
        # Status changes only ever touch people who never serve (so no check-in is refused).
        if rng.random() < 0.6:
            person = net.people[self.rr(known)]
            if person.rate == 0 and not person.official and person.tier != "archived":
                person.tier = "archived"
                status = rng.choices(("archived", "suspended"), (9, 1))[0]
                reason = (
                    "本人申请注销（已迁出本区）" if status == "archived" else "连续五次无故缺席"
                )
                self.emit(
                    self.working_time(day),
                    ADMIN,
                    STATUS_CHANGED,
                    person.no,
                    {"status": status, "reason": reason},
                )
        if rng.random() < 0.5:
            person = net.people[self.rr(known)]
            if person.tier != "archived":
                skills = sorted({*person.skills, rng.choice(("first_aid", "tour_guide", "rescue"))})
                person.skills = skills
                self.emit(
                    self.working_time(day), ADMIN, SKILLS_UPDATED, person.no, {"skills": skills}
                )
        if rng.random() < 0.3:
            person = net.people[self.rr(known)]
            if len(person.teams) > 1:
                team = person.teams.pop()
                self.emit(
                    self.working_time(day),
                    ADMIN,
                    LEFT_TEAM,
                    person.no,
                    {"team_id": team, "reason": "工作调动，时间冲突"},
                )
        # New registrations: about 8 % a year, peaking in March and on Volunteer Day.
        scale_people = known
        rate = 0.08 / 365 * (3.0 if when.month == 3 else 2.0 if when.month == 12 else 0.85)
        newcomers = _poisson(rng, scale_people * rate)
        if newcomers:
            sites, cumulative = home_sites(net.centre, net.institutes, net.stations, net.posts)
            for _ in range(newcomers):
                home = rng.choices(sites, cum_weights=cumulative)[0]
                number = len(net.people) + 1
                person = new_person(rng, number, home, when, boost=0.2)
                net.people.append(person)
                self._busy.append(0)
                self._secure.append([])
                self._redeemed.append(0)
                t = self.working_time(day)
                data = _registration(person)
                data["registered_on"] = when.isoformat()
                self.emit(t, ADMIN, VOLUNTEER_REGISTERED, person.no, data)
                self._join_teams(person, t + self.ri(MINUTE, 3 * HOUR))
                if person.rate > 0:
                    self._insure(person, t + 4 * HOUR, when.year)
                    self._joining.append(len(net.people) - 1)

    def _training(self, day: int, when: date, course: tuple[str, float, int | None]) -> None:
        rng = self.rng
        prefix, hours, years = course
        site = rng.choice([self.network.centre, *self.network.institutes])
        t = self.day_start(day) + self.ri(15 * HOUR, 17 * HOUR)
        course_id = f"{prefix}-{when.year}"
        for index in self.pick_people(site, self.ri(15, 35), self.t_end):
            person = self.network.people[index]
            data: dict[str, Any] = {
                "course_id": course_id,
                "hours": hours,
                "certificate_ref": f"RC-{when.year}-{self.number('certificate'):05d}",
            }
            if years:
                data["expires_on"] = (when + timedelta(days=365 * years)).isoformat()
            self.emit(t, ADMIN, TRAINING_COMPLETED, person.no, data)
            t += self.ri(5, 90)

    def _redemptions(self, day: int) -> None:
        rng = self.rng
        now = self.day_start(day)
        people = self.network.people
        for _ in range(max(1, len(people) // 300)):
            index = self.rr(len(people))
            if people[index].rate < 0.45:
                continue
            secure = sum(points for at, points in self._secure[index] if at < now)
            balance = secure - self._redeemed[index]
            item, cost = rng.choice(texts.REDEMPTION_ITEMS)
            if balance < cost:
                continue
            self._redeemed[index] += cost
            self.emit(
                now + self.ri(9 * HOUR, 18 * HOUR),
                ADMIN,
                POINTS_REDEEMED,
                people[index].no,
                {"points": cost, "item": item, "outlet": f"WLY-KIOSK-{self.ri(1, 12):02d}"},
            )


def _items(spec: tuple[tuple[str, str, float], ...]) -> list[dict[str, Any]]:
    return [
        {"code": code, "label": label, "weight": weight, "evidence_required": code == "has_records"}
        for code, label, weight in spec
    ]


def _registration(person: Person) -> dict[str, Any]:
    data: dict[str, Any] = {
        "home_site_id": person.home_site_id,
        "skills": list(person.skills),
        "registered_on": person.registered_on.isoformat(),
    }
    if person.official:
        data["is_official"] = True
        data["home_unit_id"] = person.home_unit_id
    return data


def _team(team: Team) -> dict[str, Any]:
    data: dict[str, Any] = {"site_id": team.site_id, "name": team.name, "category": team.category}
    if team.lead is not None:
        data["lead_volunteer_no"] = team.lead
    return data


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (Knuth's method; means here are small)."""
    if mean <= 0:
        return 0
    limit = math.exp(-mean)
    count, product = 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count
