"""Replay in process groups: the projections split between processes, one scratch store.

A replay spends most of its time in the projections' own Python (the
ledger alone is about two thirds of it), so one process uses one core.
:func:`replay_in_groups` splits the projections into groups of about as
many events each (:func:`projections.cli.balanced_groups`, as ``projections
rebuild all --jobs``), and each group reads the log up to the cut by itself
and replays its projections:

* the largest group in this process, straight into the scratch store (it
  has everything imported and the store open: no start-up on the critical
  path);
* each other group in a process of its own (``spawn``: this process holds
  database connections and threads, which a fork would copy).

Where the other groups write depends on the scratch store:

* **SQLite** (a scratch file, what ``audit replay`` uses): each worker
  builds its tables in a file of its own beside the scratch file
  (``replay.views.part1.db`` …), so that no group waits for another's write
  lock while it replays. When its replay is done, the worker copies its
  tables, their indexes and its tracking rows into the scratch file in one
  transaction (``ATTACH`` and ``INSERT … SELECT``, under the same ``flock``
  as every view-store writer) and deletes its file. It copies while the
  largest group is still replaying, and that group holds most of its rows
  in memory until its last page (the ledger's rebuilder writes them when its
  row cache fills), so the copy rarely waits for it.
* **PostgreSQL** (a view store passed by a caller): every group writes its
  own tables in the same schema; tables of different projections never
  share a lock.

The result is the one-process replay's, row for row: the same projections
apply the same events in log order (each group reads every event of its
types; projections do not depend on how the log is paged), the same
time-driven hooks run at the same time, and the tracking rows carry the
same position and time. The counts are added up per event type (a type two
groups read is counted once), so the report is the same too.

Progress is reported as the one-process replay reports it, log positions
passed, by the slowest group: when the bar says position *P*, every
projection has replayed the log up to *P*.
"""

from __future__ import annotations

import os
import queue as queues
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from practice_events.application import PracticeEvents
from practice_events.audit.replay import ReplayPlan, ScratchReplay, choose_projections
from practice_events.config import Settings

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: SQLite's busy handler alone
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from projections.base import Projection
    from projections.viewstore import ViewStore

log = structlog.get_logger(__name__)

ProgressQueue = Any
"""A ``multiprocessing`` queue of ``(group, positions)`` pairs (untyped in typeshed)."""

_progress_queue: ProgressQueue = None
"""In a worker process: where its group reports progress (set by :func:`_start_worker`)."""


@dataclass(frozen=True)
class GroupJob:
    """One group's part of a replay, as a worker process receives it."""

    settings: Settings
    plan: ReplayPlan
    names: tuple[str, ...]
    views_url: str
    """Where the group writes: its own SQLite file, or the PostgreSQL scratch schema."""
    target: str | None
    """The SQLite scratch file its tables are copied into afterwards (None: written in place)."""
    batch_size: int
    group: int
    """The group's number (1, 2 …; 0 is the replaying process), for progress reports."""


@dataclass(frozen=True)
class GroupTally:
    """What one group read, skipped and applied (per event type where groups overlap)."""

    names: tuple[str, ...]
    events_applied: int
    read_by_type: Mapping[str, int]
    skipped_by_type: Mapping[str, int]
    seconds: float = 0.0
    """How long the group took, from its start (a worker's: after its imports) to its end."""
    merge_seconds: float = 0.0
    """Of which copying its tables into the scratch file."""

    @classmethod
    def of(cls, run: ScratchReplay, seconds: float = 0.0, merge_seconds: float = 0.0) -> GroupTally:
        """The tally of a finished :class:`ScratchReplay` (built with ``by_type=True``)."""
        assert run.read_by_type is not None
        assert run.skipped_by_type is not None
        return cls(
            names=tuple(p.NAME for p in run.projections),
            events_applied=run.events_applied,
            read_by_type=dict(run.read_by_type),
            skipped_by_type=dict(run.skipped_by_type),
            seconds=seconds,
            merge_seconds=merge_seconds,
        )


def combine(tallies: Sequence[GroupTally]) -> tuple[int, int, int]:
    """Return events read, applied and skipped by all groups, as one process counts them.

    Every group that reads a type reads all its events up to the cut, so
    the groups agree on each type's count: the largest one is taken (not
    the sum), and a type read by two groups counts once, as it does when
    one process reads the log for all of them.
    """
    read: dict[str, int] = {}
    skipped: dict[str, int] = {}
    for tally in tallies:
        for kind, n in tally.read_by_type.items():
            read[kind] = max(read.get(kind, 0), n)
        for kind, n in tally.skipped_by_type.items():
            skipped[kind] = max(skipped.get(kind, 0), n)
    applied = sum(t.events_applied for t in tallies)
    return sum(read.values()), applied, sum(skipped.values())


def can_split(views: ViewStore, projections: Sequence[Projection]) -> bool:
    """Tell whether a replay into ``views`` can be split (several projections, not in memory)."""
    return len(projections) > 1 and not (views.dialect == "sqlite" and views.path == ":memory:")


def split(
    app: PracticeEvents, projections: Sequence[Projection], jobs: int
) -> list[list[Projection]]:
    """Split ``projections`` into at most ``jobs`` groups of about as many events, largest first.

    Sizes come from the log's count of events per type (the whole log: a
    cut keeps roughly its proportions).
    """
    from projections.cli import balanced_groups

    counts = app.store.count_events_by_topic()
    totals = {
        p.NAME: sum(counts.values()) if not p.TOPICS else sum(counts.get(t, 0) for t in p.TOPICS)
        for p in projections
    }
    groups = balanced_groups(totals, jobs)
    groups.sort(key=lambda names: -sum(totals[n] for n in names))
    by_name = {p.NAME: p for p in projections}
    return [[by_name[n] for n in names] for names in groups]


class GroupProgress:
    """Relays the positions passed by several groups as those of the slowest one."""

    def __init__(self, groups: int, progress: Callable[[int], None] | None) -> None:
        self.passed = [0] * groups
        self.reported = 0
        self.progress = progress

    def add(self, group: int, positions: int) -> None:
        """Record that ``group`` passed ``positions`` more log positions."""
        self.passed[group] += positions
        slowest = min(self.passed)
        if slowest > self.reported:
            if self.progress is not None:
                self.progress(slowest - self.reported)
            self.reported = slowest

    def drain(self, source: ProgressQueue, timeout: float = 0.0) -> None:
        """Take every report waiting in ``source`` (waiting up to ``timeout`` for the first)."""
        try:
            group, positions = source.get(timeout=timeout) if timeout else source.get_nowait()
            self.add(group, positions)
            while True:
                group, positions = source.get_nowait()
                self.add(group, positions)
        except queues.Empty:
            return

    def finish(self, stop: int) -> None:
        """Report the rest up to ``stop`` (every group has finished)."""
        if self.progress is not None and stop > self.reported:
            self.progress(stop - self.reported)
        self.reported = max(self.reported, stop)


def replay_in_groups(
    app: PracticeEvents,
    settings: Settings,
    plan: ReplayPlan,
    views: ViewStore,
    projections: Sequence[Projection],
    *,
    jobs: int,
    batch_size: int = 2000,
    progress: Callable[[int], None] | None = None,
) -> tuple[int, int, int]:
    """Replay ``projections`` as of ``plan`` into ``views`` in up to ``jobs`` process groups.

    Returns events read, applied and skipped after the as-of time, as
    :func:`~practice_events.audit.replay.replay` reports them. An error in
    any group is raised here once every group has stopped; the scratch
    store is then incomplete (a replay starts again from empty tables).
    When the split leaves one group (a log without events of the other
    groups' types), it is replayed here, without a worker process.
    """
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    groups = split(app, projections, jobs)
    if len(groups) == 1:
        return combine(
            [_replay_here(app, views, groups[0], plan, batch_size=batch_size, progress=progress)]
        )
    context = get_context("spawn")
    reports: ProgressQueue = context.Queue()
    relay = GroupProgress(len(groups), progress)
    parts = [_part_url(views, index) for index in range(1, len(groups))]
    target = views.path if views.dialect == "sqlite" else None
    if target is not None:
        for part in parts:
            _remove_sqlite(_sqlite_path(part))  # left by a replay that did not finish
    try:
        with ProcessPoolExecutor(
            max_workers=len(groups) - 1,
            mp_context=context,
            initializer=_start_worker,
            initargs=(reports,),
        ) as pool:
            futures = [
                pool.submit(
                    replay_group,
                    GroupJob(
                        settings=settings,
                        plan=plan,
                        names=tuple(p.NAME for p in group),
                        views_url=part,
                        target=target,
                        batch_size=batch_size,
                        group=index,
                    ),
                )
                for index, (group, part) in enumerate(zip(groups[1:], parts, strict=True), 1)
            ]

            def advance(positions: int) -> None:
                relay.add(0, positions)
                relay.drain(reports)

            started = time.perf_counter()
            tallies = [
                _replay_here(app, views, groups[0], plan, batch_size=batch_size, progress=advance)
            ]
            while not all(f.done() for f in futures):
                relay.drain(reports, timeout=0.1)
            tallies.extend(f.result() for f in futures)
            waited = time.perf_counter() - started - tallies[0].seconds
        relay.drain(reports)
        relay.finish(plan.position)
        for index, tally in enumerate(tallies):
            log.debug(
                "replay_group_finished",
                group=index,
                projections=list(tally.names),
                seconds=round(tally.seconds, 3),
                merge_seconds=round(tally.merge_seconds, 3),
                waited_for_workers=round(waited, 3) if index == 0 else None,
            )
    finally:
        if target is not None:
            for part in parts:
                _remove_sqlite(_sqlite_path(part))
        reports.close()
        reports.join_thread()
    return combine(tallies)


def _replay_here(
    app: PracticeEvents,
    views: ViewStore,
    projections: Sequence[Projection],
    plan: ReplayPlan,
    *,
    batch_size: int,
    progress: Callable[[int], None] | None,
) -> GroupTally:
    """Replay one group in this process, straight into ``views``; its tally."""
    started = time.perf_counter()
    run = ScratchReplay(
        app,
        views,
        projections,
        occurred_by=plan.occurred_by,
        batch_size=batch_size,
        by_type=True,
    )
    run.advance(plan.position, progress)
    run.settle(plan.evaluated_at)
    return GroupTally.of(run, time.perf_counter() - started)


def replay_group(job: GroupJob) -> GroupTally:
    """Replay one group's projections (in a worker process); its tally.

    With a ``target`` (the SQLite scratch file), the group replays into a
    file of its own, whose tables are then copied into ``target``
    (:func:`merge_into`) before the file is deleted.
    """
    from practice_events.bootstrap import build_app
    from practice_events.logging import configure_logging
    from projections.viewstore import ViewStore

    settings, plan = job.settings, job.plan
    configure_logging(settings.log_format, settings.log_level)
    reports = _progress_queue

    def advance(positions: int) -> None:
        if reports is not None:
            reports.put((job.group, positions))

    started = time.perf_counter()
    app = build_app(settings)
    views = ViewStore(job.views_url)
    try:
        projections = choose_projections(settings, job.names)
        run = ScratchReplay(
            app,
            views,
            projections,
            occurred_by=plan.occurred_by,
            batch_size=job.batch_size,
            by_type=True,
        )
        run.advance(plan.position, advance)
        run.settle(plan.evaluated_at)
    finally:
        views.close()
        app.close()
    merging = time.perf_counter()
    if job.target is not None:
        merge_into(job.target, views.path, projections)
        _remove_sqlite(views.path)
    ended = time.perf_counter()
    return GroupTally.of(run, ended - started, ended - merging)


def merge_into(target: str, part: str, projections: Sequence[Projection]) -> None:
    """Copy the tables and tracking rows of ``projections`` from SQLite file ``part`` to ``target``.

    The tables are created in ``target`` with all their indexes first,
    before ``part`` is attached (an unqualified ``CREATE`` or ``DROP``
    could otherwise find the attached file's table), then filled with
    ``INSERT … SELECT`` in one transaction: SQLite copies the records (and
    index entries) of an empty table with the same schema as they are,
    without decoding them. ``target`` is written under its view-store lock
    (``<target>.lock``, see :mod:`projections.viewstore`), so other writers
    of the scratch file take turns with the copy.
    """
    from projections.viewstore import ViewStore

    tracking = ViewStore.TRACKING
    with _write_lock(target):
        connection = sqlite3.connect(target, timeout=30, isolation_level=None)
        try:
            connection.execute("PRAGMA synchronous=NORMAL")  # as the view store's (WAL)
            _in_transaction(connection, lambda tx: _create(tx, projections))
            connection.execute("ATTACH DATABASE ? AS part", (part,))
            try:

                def copy(tx: Any) -> None:
                    for projection in projections:
                        for table in projection.table_names().values():
                            tx.execute(f"INSERT INTO main.{table} SELECT * FROM part.{table}")  # noqa: S608 - names from code
                    names = [p.NAME for p in projections]
                    marks = ", ".join("?" * len(names))
                    tx.execute(
                        f"INSERT OR REPLACE INTO main.{tracking} "  # noqa: S608 - names from code
                        f"SELECT * FROM part.{tracking} WHERE name IN ({marks})",
                        names,
                    )

                _in_transaction(connection, copy)
            finally:
                connection.execute("DETACH DATABASE part")
        finally:
            connection.close()


def _create(tx: Any, projections: Sequence[Projection]) -> None:
    for projection in projections:
        projection.drop(tx)
        projection.create(tx)


def _in_transaction(connection: sqlite3.Connection, work: Callable[[Any], None]) -> None:
    """Run ``work`` on a view-store transaction of ``connection`` (committed, or rolled back)."""
    from projections.viewstore import Tx

    cursor = connection.cursor()
    cursor.execute("BEGIN IMMEDIATE")
    try:
        work(Tx(cursor, "sqlite"))
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    else:
        connection.execute("COMMIT")
    finally:
        cursor.close()


@contextmanager
def _write_lock(path: str) -> Iterator[None]:
    """Hold the view-store write lock of the SQLite file ``path`` (``<path>.lock``)."""
    if fcntl is None:  # pragma: no cover - not POSIX
        yield
        return
    descriptor = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        os.close(descriptor)


def _start_worker(reports: ProgressQueue) -> None:
    """Keep the progress queue in a worker process (the pool's initializer)."""
    global _progress_queue  # noqa: PLW0603 - one per worker process, set once at its start
    _progress_queue = reports


def _part_url(views: ViewStore, group: int) -> str:
    """Where group ``group`` (1, 2 …) writes: a file beside a SQLite scratch file, or ``views``."""
    if views.dialect != "sqlite":
        return views.url
    path = Path(views.path)
    return f"sqlite:///{path.with_name(f'{path.stem}.part{group}{path.suffix}').resolve()}"


def _sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def _remove_sqlite(path: str) -> None:
    """Delete a SQLite file and its companions (WAL, shared memory, lock file)."""
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
