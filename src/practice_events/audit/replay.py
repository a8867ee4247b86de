"""Replay projections as they were: as of a position, a recording time or a business time.

Three ways to say "as of":

``--position N``
    the log up to position N (a published scorecard stores its position);
``--as-of T --basis recorded`` (default) — "as known on date T"
    the events the store had recorded by T: a cut of the log at the last
    position whose recording time is ≤ T (found by binary search; recording
    times grow with positions, to the millisecond across concurrent writers);
``--as-of T --basis occurred`` — "as happened by date T"
    every event recorded up to now whose business time (CloudEvents
    ``time``) is ≤ T, late-recorded ones included, applied in log order.
    This is a projection-runner variant that skips the events after T.
    Projections are written for log order; an event whose business time is
    after T is skipped even when a later-recorded event of the same
    aggregate happened before T (rare: producers send an aggregate's events
    in time order), so views see a consistent prefix of each aggregate in
    the common case.

The chosen projections are rebuilt from position 0 into a **scratch view
store** (a fresh SQLite file; never the live views), with the live table
names so that the query functions (``projections.scorecards.scorecard``,
closed-loop and ledger queries) read them unchanged. Time-dependent figures
are evaluated at T (or, for ``--position``, at the recording time of that
position). With ``jobs`` > 1 the projections are split into process groups
(:mod:`practice_events.audit.replay_jobs`) whose tables end up in the same
scratch store, row for row what one process builds.

Import direction: the core package never imports ``projections`` at module
import time (``projections`` imports ``practice_events``). This module is
the one documented exception: it imports ``projections`` lazily, inside its
functions, because replaying *is* running projections, and the auditors'
CLI lives with the other audit commands. Importing this module alone does
not import ``projections``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson

from practice_events.application import PracticeEvents
from practice_events.audit.history import state_decoder
from practice_events.audit.integrity import LogStore, log_store
from practice_events.config import Settings
from practice_events.errors import ConfigurationError, PracticeEventsError

if TYPE_CHECKING:
    from projections.base import LoggedEvent, Projection
    from projections.viewstore import ViewStore

Basis = Literal["recorded", "occurred"]

SCORECARD_PUBLISHED = "practice.assessment.scorecard_published.v1"
PERIOD_OPENED = "practice.assessment.period_opened.v1"


# --- what to replay -------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplayPlan:
    """Where the replay stops and at what time its figures are evaluated."""

    basis: Basis
    position: int
    evaluated_at: datetime
    as_of: datetime | None = None

    @property
    def occurred_by(self) -> datetime | None:
        """The business-time bound of an ``occurred`` replay (None otherwise)."""
        return self.as_of if self.basis == "occurred" else None

    def as_dict(self) -> dict[str, Any]:
        """Return the plan as JSON-ready data."""
        return {
            "basis": self.basis,
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "position": self.position,
            "evaluated_at": self.evaluated_at.isoformat(),
        }


def position_recorded_by(
    app: PracticeEvents, moment: datetime, store: LogStore | None = None
) -> int:
    """Return the last log position recorded at or before ``moment`` (0 if none).

    A binary search over positions, reading one event per step: recording
    times grow with positions (the store assigns both while holding its
    write lock, up to the clock's resolution).
    """
    store = store or log_store(app)
    decode = state_decoder(app)
    low, high = 0, store.log_head()
    while low < high:
        middle = (low + high + 1) // 2
        rows = store.read_log(middle - 1, 1, high)
        if not rows:
            high = middle - 1
            continue
        position = rows[0][0]
        stamp = datetime.fromisoformat(str(decode(rows[0][4])["timestamp"]))
        if stamp <= moment:
            low = position
        else:
            high = middle - 1
    return low


def plan_replay(
    app: PracticeEvents,
    *,
    as_of: datetime | None = None,
    position: int | None = None,
    basis: Basis = "recorded",
    store: LogStore | None = None,
) -> ReplayPlan:
    """Resolve ``--as-of``/``--position``/``--basis`` into a :class:`ReplayPlan`."""
    if (as_of is None) == (position is None):
        msg = "give exactly one of --as-of TIME or --position N"
        raise ConfigurationError(msg)
    store = store or log_store(app)
    if position is not None:
        if basis != "recorded":
            msg = "--position cuts the log as recorded; --basis occurred needs --as-of"
            raise ConfigurationError(msg)
        head = store.log_head()
        if position < 0 or position > head:
            msg = f"position {position} is outside the log (0..{head})"
            raise ConfigurationError(msg)
        last = last_at_or_before(store, position)
        evaluated = (
            datetime.fromisoformat(str(state_decoder(app)(last[4])["timestamp"]))
            if last is not None
            else datetime.now(UTC)
        )
        return ReplayPlan("recorded", position, evaluated)
    assert as_of is not None
    if as_of.tzinfo is None:
        msg = "--as-of needs a time with an offset, e.g. 2025-06-30T23:59:59+08:00"
        raise ConfigurationError(msg)
    if basis == "recorded":
        return ReplayPlan("recorded", position_recorded_by(app, as_of, store), as_of, as_of)
    return ReplayPlan("occurred", store.log_head(), as_of, as_of)


def last_at_or_before(store: LogStore, position: int) -> tuple[int, bytes, int, str, bytes] | None:
    """Return the log row at ``position`` or the last one before it (positions may have gaps)."""
    step = 1
    while position > 0:
        start = max(0, position - step)
        rows = store.read_log(start, step, position)
        if rows:
            return rows[-1]
        if start == 0:
            return None
        step *= 16
    return None


# --- running projections into a scratch store ------------------------------------------------


@dataclass
class ReplayResult:
    """What a replay built."""

    plan: ReplayPlan
    views_url: str
    projections: dict[str, dict[str, Any]] = field(default_factory=dict)
    events_read: int = 0
    events_applied: int = 0
    skipped_after: int = 0
    seconds: float = 0.0
    scorecards: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Log events read per second."""
        return self.events_read / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Return the result as JSON-ready data."""
        out = {
            **self.plan.as_dict(),
            "views": self.views_url,
            "events_read": self.events_read,
            "events_applied": self.events_applied,
            "skipped_after_as_of": self.skipped_after,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.rate, 1),
            "projections": self.projections,
        }
        if self.scorecards:
            out["scorecards"] = self.scorecards
        return out


class ScratchReplay:
    """Builds projections into a scratch view store from position 0, incrementally.

    :meth:`advance` applies the log up to a position (one view transaction
    per page for all projections: the scratch store has no other writer);
    :meth:`settle` sets every projection's tracking position and runs the
    time-driven hooks, so that queries see views "caught up to" that position.
    Advancing again continues where it stopped, which lets an auditor check
    several publications in one pass over the log.

    ``by_type=True`` also counts the events read and skipped per type
    (:attr:`read_by_type`, :attr:`skipped_by_type`): a replay split into
    process groups adds up its groups' counts from them (each group reads
    every event of its types, so a type read by two groups counts once).

    Each projection applies its pages through its rebuilder
    (``Projection.rebuilder``), as a rebuild does: the scratch tables start
    empty, so rows may stay in memory across pages; :meth:`advance` writes
    them before it returns, so the tables are complete whenever it is
    queried.
    """

    def __init__(
        self,
        app: PracticeEvents,
        views: ViewStore,
        projections: Sequence[Projection],
        *,
        occurred_by: datetime | None = None,
        batch_size: int = 2000,
        by_type: bool = False,
    ) -> None:
        from projections.runner import LogReader, PageRouter

        self.app = app
        self.views = views
        self.projections = list(projections)
        self.reader = LogReader(app)
        self.occurred_by = occurred_by
        self.batch_size = batch_size
        self.position = 0
        self.events_read = 0
        self.events_applied = 0
        self.skipped_after = 0
        self.read_by_type: Counter[str] | None = Counter() if by_type else None
        self.skipped_by_type: Counter[str] | None = Counter() if by_type else None
        # Pages of the types some projection reads (all when one reads every
        # type), split by type once: the reader filters in the database.
        self.router = PageRouter(self.projections)
        with views.transaction() as tx:
            for projection in self.projections:
                projection.drop(tx)
                # The other indexes come with the first settle (before anything queries).
                projection.create(tx, indexes=projection.REBUILD_INDEXES)
                views.set_position(tx, projection.NAME, 0, datetime.now(UTC).isoformat())
        self.builders = {p.NAME: p.rebuilder(p.table_names()) for p in self.projections}

    def advance(self, stop: int, progress: Callable[[int], None] | None = None) -> None:
        """Apply the log from the current position up to ``stop`` (tables complete after)."""
        from projections.runner import scratch_transaction

        while self.position < stop:
            page = self.reader.read(self.position, self.batch_size, self.router.topics, stop=stop)
            if not page:
                if progress is not None:
                    progress(stop - self.position)
                self.position = stop
                break
            last = page[-1].position
            self.events_read += len(page)
            if self.read_by_type is not None:
                self.read_by_type.update(map(_TYPE, page))
            events = self._in_time(page)
            routed = self.router.route(events)
            with self.views.transaction() as tx:
                scratch_transaction(tx)
                for projection in self.projections:
                    mine = routed[projection.NAME]
                    if mine:
                        self.builders[projection.NAME].apply(tx, mine)
                        self.events_applied += len(mine)
            if progress is not None:
                progress(last - self.position)
            self.position = last
            if len(page) < self.batch_size:
                if progress is not None and stop > last:
                    progress(stop - last)
                self.position = stop
        with self.views.transaction() as tx:
            scratch_transaction(tx)
            for builder in self.builders.values():
                builder.flush(tx)

    def _in_time(self, page: list[LoggedEvent]) -> list[LoggedEvent]:
        bound = self.occurred_by
        if bound is None:
            return page
        kept = [e for e in page if e.time <= bound]
        self.skipped_after += len(page) - len(kept)
        if self.skipped_by_type is not None and len(kept) < len(page):
            self.skipped_by_type.update(e.type for e in page if e.time > bound)
        return kept

    def settle(self, now: datetime) -> None:
        """Set every projection's position to the current one and run its idle hook at ``now``.

        The indexes a rebuild leaves out while the tables fill are created
        here, once (``IF NOT EXISTS`` afterwards).
        """
        with self.views.transaction() as tx:
            for projection in self.projections:
                projection.create_indexes(tx, "", projection.table_names())
                projection.on_idle(tx, projection.table_names(), now)
                self.views.set_position(tx, projection.NAME, self.position, now.isoformat())


_TYPE = attrgetter("type")


def choose_projections(settings: Settings, names: Iterable[str] | None) -> list[Projection]:
    """Return the deployment's projections, or those named (BAD_CONFIGURATION if unknown)."""
    from projections.registry import all_projections

    available = all_projections(settings)
    wanted = list(names or [])
    if not wanted or "all" in wanted:
        return available
    by_name = {p.NAME: p for p in available}
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        msg = (
            f"no projection named {', '.join(unknown)}; known: {', '.join(sorted(by_name))}, or all"
        )
        raise ConfigurationError(msg)
    return [by_name[n] for n in wanted]


def scratch_views(directory: Path) -> ViewStore:
    """Open a fresh scratch view store (a new SQLite file) in ``directory``."""
    from projections.viewstore import ViewStore

    directory.mkdir(parents=True, exist_ok=True)
    path = (directory / "replay.views.db").resolve()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return ViewStore(f"sqlite:///{path}")


def replay(
    app: PracticeEvents,
    settings: Settings,
    plan: ReplayPlan,
    views: ViewStore,
    *,
    names: Iterable[str] | None = None,
    batch_size: int = 2000,
    progress: Callable[[int], None] | None = None,
    jobs: int = 1,
) -> ReplayResult:
    """Rebuild the chosen projections as of ``plan`` into the scratch store ``views``.

    ``jobs`` > 1 splits the projections into that many process groups of
    about equal work, each reading the log up to the cut by itself
    (:func:`practice_events.audit.replay_jobs.replay_in_groups`); the
    tables, tracking rows and counts come out the same as with one process.
    ``progress`` is told of log positions passed (with groups: by the
    slowest one).
    """
    from practice_events.audit import replay_jobs  # it imports this module: here, not above

    if jobs < 1:
        msg = f"--jobs must be at least 1 (got {jobs})"
        raise ConfigurationError(msg)
    projections = choose_projections(settings, names)
    started = time.perf_counter()
    result = ReplayResult(plan=plan, views_url=views.url)
    if jobs > 1 and replay_jobs.can_split(views, projections):
        totals = replay_jobs.replay_in_groups(
            app,
            settings,
            plan,
            views,
            projections,
            jobs=jobs,
            batch_size=batch_size,
            progress=progress,
        )
        result.events_read, result.events_applied, result.skipped_after = totals
    else:
        run = ScratchReplay(
            app, views, projections, occurred_by=plan.occurred_by, batch_size=batch_size
        )
        run.advance(plan.position, progress)
        run.settle(plan.evaluated_at)
        result.events_read = run.events_read
        result.events_applied = run.events_applied
        result.skipped_after = run.skipped_after
    with views.read() as tx:
        for projection in projections:
            counts = {
                physical: int(tx.scalar(f"SELECT COUNT(*) FROM {physical}") or 0)  # noqa: S608 - table names from code
                for physical in projection.table_names().values()
            }
            result.projections[projection.NAME] = {
                "version": projection.VERSION,
                "tables": counts,
            }
    result.seconds = time.perf_counter() - started
    return result


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError


def table_rows(views: ViewStore, table: str) -> list[dict[str, Any]]:
    """Return every row of a view table in a stable order (sorted by its JSON)."""
    with views.read() as tx:
        rows = tx.query(f"SELECT * FROM {table}")  # noqa: S608 - table names from code
    keyed = [(orjson.dumps(r, default=_json_default, option=orjson.OPT_SORT_KEYS), r) for r in rows]
    keyed.sort(key=lambda pair: pair[0])
    return [r for _, r in keyed]


def dump_views(views: ViewStore, projections: Sequence[Projection], out: Path) -> dict[str, int]:
    """Write every table of ``projections`` as ``OUT/<table>.jsonl``; return rows per table."""
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, int] = {}
    for projection in projections:
        for physical in projection.table_names().values():
            rows = table_rows(views, physical)
            with (out / f"{physical}.jsonl").open("wb") as stream:
                for row in rows:
                    stream.write(
                        orjson.dumps(row, default=_json_default, option=orjson.OPT_SORT_KEYS)
                        + b"\n"
                    )
            written[physical] = len(rows)
    return written


def scorecards_as_of(
    views: ViewStore,
    settings: Settings,
    units: Iterable[str],
    period: str,
    now: datetime,
    *,
    model_version: int | None = None,
) -> list[dict[str, Any]]:
    """Compute the scorecards of ``units`` for ``period`` on a replayed view store."""
    from projections.scorecards import ScorecardSettings, scorecard

    tuning = ScorecardSettings(timezone=settings.timezone)
    return [
        scorecard(views, unit, period, model_version, settings=tuning, now=now) for unit in units
    ]


# --- published scorecards are reproducible ---------------------------------------------------


@dataclass(frozen=True)
class Publication:
    """A ``scorecard_published`` event of the log and what it was about."""

    position: int
    assessment: str
    unit_id: str
    period: str
    published_at: datetime
    data: Mapping[str, Any]

    @property
    def as_of_position(self) -> int:
        """The log position the published figures were computed at."""
        return int(self.data["as_of_position"])


def publications(
    app: PracticeEvents, *, unit: str | None = None, period: str | None = None
) -> list[Publication]:
    """Return the scorecards published in the log (optionally for one unit / period)."""
    from practice_events.audit.history import aggregate_history

    decode = state_decoder(app)
    found: list[Publication] = []
    after = 0
    openings: dict[str, Mapping[str, Any]] = {}
    while True:
        page = app.recorder.select_notifications(
            after, 1000, topics=[SCORECARD_PUBLISHED], inclusive_of_start=False
        )
        for n in page:
            obj = decode(n.state)
            meta = obj.get("meta") or {}
            subject = str(meta.get("subject", ""))
            if subject not in openings:
                history = aggregate_history(app, "assessment", subject, with_data=True)
                openings[subject] = history[0]["data"]
            opened = openings[subject]
            publication = Publication(
                position=n.id,
                assessment=subject,
                unit_id=str(opened.get("unit_id", "")),
                period=str(opened.get("period", "")),
                published_at=datetime.fromisoformat(str(meta["time"])),
                data=obj.get("data") or {},
            )
            if (unit is None or publication.unit_id == unit) and (
                period is None or publication.period == period
            ):
                found.append(publication)
        if len(page) < 1000:
            return found
        after = page[-1].id


class _At:
    """The application as it was at a position (what ``compute_for_publication`` asks of it)."""

    def __init__(self, position: int) -> None:
        self.position = position

    def last_position(self) -> int:
        """The log head as the publisher saw it."""
        return self.position


COMPARED = (
    "model_id",
    "model_version",
    "as_of_position",
    "composite",
    "bonus_total",
    "deduction_total",
    "indicators",
)
"""The published fields a recomputation must reproduce exactly."""


def reproduce_publications(
    app: PracticeEvents,
    settings: Settings,
    views: ViewStore,
    *,
    unit: str | None = None,
    period: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Recompute every published scorecard at its stored position and model version.

    One pass over the log: publications are taken in the order of their
    ``as_of_position``, the scratch views are advanced to each and the
    scorecard is computed with the model version it names, evaluated at its
    publication time (the event's CloudEvents ``time``). Each result says
    whether every published figure came out identical, and which differ.
    """
    from projections.scorecards import SOURCES, ScorecardSettings, compute_for_publication

    found = sorted(publications(app, unit=unit, period=period), key=lambda p: p.as_of_position)
    if not found:
        return []
    available = {p.NAME for p in choose_projections(settings, None)}
    names = [name for name in SOURCES if name in available]
    run = ScratchReplay(app, views, choose_projections(settings, names))
    tuning = ScorecardSettings(timezone=settings.timezone)
    results: list[dict[str, Any]] = []
    for publication in found:
        run.advance(publication.as_of_position, progress)
        run.settle(publication.published_at)
        try:
            again = compute_for_publication(
                _At(publication.as_of_position),
                views,
                publication.unit_id,
                publication.period,
                str(publication.data.get("model_id")),
                model_version=int(publication.data["model_version"]),
                settings=tuning,
                now=publication.published_at,
                attempts=1,
            )
        except PracticeEventsError as exc:
            again = {"error": exc.reason, "code": exc.code}
        differing = [k for k in COMPARED if again.get(k) != publication.data.get(k)]
        results.append(
            {
                "position": publication.position,
                "assessment": publication.assessment,
                "unit_id": publication.unit_id,
                "period": publication.period,
                "as_of_position": publication.as_of_position,
                "published_at": publication.published_at.isoformat(),
                "model_id": publication.data.get("model_id"),
                "model_version": publication.data.get("model_version"),
                "identical": not differing,
                "differing": differing,
                "published": {k: publication.data.get(k) for k in COMPARED},
                "recomputed": {k: again.get(k) for k in (*COMPARED, "error", "code") if k in again},
            }
        )
    return results
