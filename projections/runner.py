"""The batched projection runner: many events per view transaction, tracked.

eventsourcing's ``ProjectionRunner`` commits one transaction per event (about
40x slower here). This runner reads the notification log in pages, decodes
the stored JSON directly (no domain objects), hands a whole page to the
projection and commits the view rows and the new tracking position together.

* Each projection runs on its own thread with its own tracking: a slow or
  failing one never holds back another. A failing projection stops alone,
  records the failing event's position and error, and resumes from its
  tracking position when restarted after a fix.
* On PostgreSQL it wakes on LISTEN/NOTIFY; on SQLite (no notifications) it
  polls the log head, which is one cheap ``MAX(rowid)``.
* Positions advance to the log head even when the projection's topics skip
  the last events, so waiting for any position terminates (unlike the
  library's ``wait()`` with topic filters).
* :meth:`BatchedRunner.wait` is a condition-variable wait in-process (no
  100 ms sleep), with a short polling fallback across processes.
* A store that is away (PostgreSQL restarting or unreachable, a lock or
  disk-full error) is not a failure: the projection reports ``retrying``
  with the error, backs off (capped, doubling) and resumes from its tracking
  position once the store answers, so nothing is skipped or applied twice.
  Only other errors (a bug met on one event) stop it (see :func:`is_transient`).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from eventsourcing.persistence import InterfaceError, Notification, OperationalError

from practice_events.application import PracticeEvents
from practice_events.errors import TransientError
from projections.base import LoggedEvent, Projection, Rebuilder
from projections.logrows import LogRow, log_rows
from projections.viewstore import Tx, ViewStore

log = structlog.get_logger(__name__)

DEFAULT_BATCH = 2000

RETRY_INITIAL_SECONDS = 0.1
"""First pause before a projection tries again after a transient store error."""

RETRY_MAX_SECONDS = 5.0
"""Longest pause between attempts while the store stays away."""

SQLITE_TRANSIENT = (
    "database is locked",
    "database table is locked",
    "database or disk is full",
    "disk i/o error",
    "unable to open database file",
)
"""SQLite ``OperationalError`` messages that describe the file or the disk, not the SQL."""


def is_transient(exc: BaseException) -> bool:
    """Tell whether ``exc`` means "the store is away for now" (retry) rather than a bug (stop).

    Connection-level errors of PostgreSQL (``psycopg.OperationalError`` and
    ``InterfaceError``: refused or dropped connections, administrator
    shutdown, lock timeouts, a full disk, pool time-outs) and their
    eventsourcing wrappers are transient. SQLite raises ``OperationalError``
    for a locked or full database and for bad SQL alike, so only the
    messages of :data:`SQLITE_TRANSIENT` count there: a projection whose SQL
    is wrong must stop with its failing event, not retry forever.
    """
    import psycopg

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, TransientError | psycopg.OperationalError | psycopg.InterfaceError):
            return True
        if isinstance(current, sqlite3.OperationalError):
            text = str(current).lower()
            return any(message in text for message in SQLITE_TRANSIENT)
        if isinstance(current, sqlite3.InterfaceError):
            return False
        nxt = current.__cause__ or current.__context__
        if nxt is None and isinstance(current, OperationalError | InterfaceError):
            return True  # raised by the library itself (a pool time-out), not by a driver
        current = nxt
    return False


class LogReader:
    """Reads the notification log and decodes stored JSON into :class:`LoggedEvent`.

    Pages come from :mod:`projections.logrows` (our own SQL: a walk of the
    primary key, plain tuples); each state is decrypted and decompressed
    when the application's cipher and compressor are on, then decoded with
    ``orjson``.
    """

    def __init__(self, app: PracticeEvents) -> None:
        self.app = app
        self.recorder = app.recorder
        self.cipher = app.mapper.cipher
        self.compressor = app.mapper.compressor
        self.rows = log_rows(app)

    def head(self) -> int:
        """Return the last position of the log (0 when empty)."""
        return self.app.last_position()

    def decode(self, n: Notification) -> LoggedEvent:
        """Decode one library notification (decrypting and decompressing if configured)."""
        return self.decode_rows([(n.id, n.originator_id, n.originator_version, n.topic, n.state)])[
            0
        ]

    def decode_rows(self, rows: Iterable[LogRow]) -> list[LoggedEvent]:
        """Decode rows of the log (decrypting and decompressing if configured).

        One loop with its names bound locally: it runs for every event a
        projection or a replay reads. Events of a page with the same time
        text share one ``datetime``: about half the events of a history
        happen at the same second as another, and a shared object is parsed
        once, and hashed and formatted (:func:`~projections.rows.utc_text`)
        once, where a fresh aware ``datetime`` costs microseconds each time.
        Each event is built with ``tuple.__new__`` (what the named tuple's own
        ``__new__`` calls, minus its Python frame).
        """
        cipher, compressor = self.cipher, self.compressor
        loads, parse, new, event = orjson.loads, datetime.fromisoformat, tuple.__new__, LoggedEvent
        out: list[LoggedEvent] = []
        append = out.append
        times: dict[str, datetime] = {}
        known = times.get
        for position, originator, version, topic, stored in rows:
            state = stored if cipher is None else cipher.decrypt(stored)
            if compressor is not None:
                state = compressor.decompress(state)
            obj = loads(state)
            meta = obj.get("meta") or {}
            stamp = obj["timestamp"]
            text = meta.get("time") or stamp
            moment = known(text)
            if moment is None:
                moment = times[text] = parse(text)
            append(
                new(
                    event,
                    (
                        position,
                        topic,
                        originator,
                        version,
                        str(meta.get("subject", "")),
                        moment,
                        stamp,
                        obj.get("data") or {},
                        meta,
                    ),
                )
            )
        return out

    def read(
        self,
        after: int,
        limit: int,
        topics: Sequence[str] = (),
        stop: int | None = None,
    ) -> list[LoggedEvent]:
        """Return up to ``limit`` events after position ``after`` (up to ``stop``)."""
        return self.decode_rows(self.rows.page(after, limit, stop, topics))


@dataclass
class ProjectionState:
    """Live status of one projection in this process."""

    name: str
    position: int = 0
    head_seen: int = 0
    status: str = "starting"
    error: str | None = None
    failed_position: int | None = None
    retries: int = 0
    """Attempts that met a transient store error since the last success."""
    last_batch_at: float = field(default_factory=time.monotonic)
    caught_up_at: float | None = None


class BatchedRunner:
    """Runs projections over the event store into a view store (see module docstring)."""

    def __init__(
        self,
        app: PracticeEvents,
        views: ViewStore,
        projections: Iterable[Projection],
        *,
        batch_size: int = DEFAULT_BATCH,
        poll_interval: float = 0.05,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.app = app
        self.views = views
        self.reader = LogReader(app)
        self.projections = {p.NAME: p for p in projections}
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.clock = clock or (lambda: datetime.now(UTC))
        self.states = {name: ProjectionState(name) for name in self.projections}
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listener: threading.Thread | None = None
        for projection in self.projections.values():
            self._prepare(projection)

    # -- set-up --------------------------------------------------------------------------

    def _prepare(self, projection: Projection) -> None:
        """Create tables; rebuild if the stored view was built by another VERSION."""
        with self.views.transaction() as tx:
            tx.execute(
                "CREATE TABLE IF NOT EXISTS projection_versions ("
                "name TEXT PRIMARY KEY, version INTEGER NOT NULL)"
            )
            stored = tx.scalar(
                "SELECT version FROM projection_versions WHERE name = ?", [projection.NAME]
            )
            if stored is not None and int(stored) != projection.VERSION:
                log.info(
                    "projection_version_changed",
                    projection=projection.NAME,
                    stored=stored,
                    current=projection.VERSION,
                )
                projection.drop(tx)
                self.views.set_position(tx, projection.NAME, 0, self.clock().isoformat())
            projection.create(tx)
            tx.execute(
                "INSERT INTO projection_versions (name, version) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET version = excluded.version",
                [projection.NAME, projection.VERSION],
            )
            # The tracking row must exist before the first batch: lock_position's
            # SELECT ... FOR UPDATE has nothing to lock otherwise, and two runners
            # of a fresh projection would both apply its first page.
            tx.execute(
                f"INSERT INTO {self.views.TRACKING} (name, position, updated_at) "
                "VALUES (?, 0, ?) ON CONFLICT (name) DO NOTHING",
                [projection.NAME, self.clock().isoformat()],
            )
        self.states[projection.NAME].position = self.views.position(projection.NAME)

    # -- processing ----------------------------------------------------------------------

    def run_once(self, name: str, stop: int | None = None) -> int:
        """Process one page for projection ``name``; return how many events it applied.

        The position moves to the page's last event, or to the observed log head
        (or ``stop``) when the page was the last one, so skipped topics never
        leave it behind.
        """
        projection = self.projections[name]
        state = self.states[name]
        start = self.views.position(name)
        if start != state.position:
            self._advance(state, start)  # moved by a rebuild or another runner
        head = self.reader.head() if stop is None else stop
        state.head_seen = max(state.head_seen, head)
        if start >= head:
            return 0
        events = self.reader.read(start, self.batch_size, projection.TOPICS, stop=head)
        full_page = len(events) >= self.batch_size
        new_position = events[-1].position if full_page else head
        tables = projection.table_names()
        now = self.clock()
        with self.views.transaction() as tx:
            if self.views.lock_position(tx, name) != start:
                return 0  # someone else applied this page meanwhile: re-read next time
            if events:
                projection.apply(tx, events, tables)
            self.views.set_position(tx, name, new_position, now.isoformat())
        self._advance(state, new_position)
        state.last_batch_at = time.monotonic()
        if not full_page:
            state.caught_up_at = time.monotonic()
        return len(events)

    def catch_up(self, name: str | None = None, stop: int | None = None) -> dict[str, int]:
        """Process until each projection reaches the log head (or ``stop``); return counts."""
        names = [name] if name else list(self.projections)
        counts: dict[str, int] = {}
        for each in names:
            total = 0
            while True:
                applied = self.run_once(each, stop=stop)
                total += applied
                target = stop if stop is not None else self.reader.head()
                if self.states[each].position >= target:
                    break
            counts[each] = total
        return counts

    def _advance(self, state: ProjectionState, position: int) -> None:
        with self._cond:
            state.position = position
            self._cond.notify_all()

    # -- threads -------------------------------------------------------------------------

    def start(self) -> None:
        """Start one thread per projection and the change listener."""
        self._stop.clear()
        for name in self.projections:
            thread = threading.Thread(
                target=self._loop, args=(name,), name=f"projection-{name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        self._listener = threading.Thread(target=self._listen, name="log-listener", daemon=True)
        self._listener.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the threads after their current batch."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        if self._listener is not None:
            self._listener.join(timeout)
        self._threads.clear()

    def poke(self) -> None:
        """Wake the projections now (called by in-process ingestion after a commit)."""
        self._wake.set()

    def _loop(self, name: str) -> None:
        state = self.states[name]
        state.status = "running"
        delay = RETRY_INITIAL_SECONDS
        bound = structlog.contextvars.bound_contextvars(projection=name)
        with bound:
            while not self._stop.is_set():
                try:
                    applied = self.run_once(name)
                except Exception as exc:  # noqa: BLE001 - a failing projection stops alone
                    if not is_transient(exc):
                        self._fail(name, exc)
                        return
                    self._retry_later(state, exc, delay)
                    delay = min(delay * 2, RETRY_MAX_SECONDS)
                    continue
                if state.status == "retrying":
                    self._recovered(state)
                delay = RETRY_INITIAL_SECONDS
                if applied == 0 and state.position >= state.head_seen:
                    self._wake.wait(self.poll_interval)
                    self._wake.clear()
        state.status = "stopped"

    def _retry_later(self, state: ProjectionState, exc: Exception, delay: float) -> None:
        """Report ``retrying`` with the store's error and pause (interruptibly) before retrying.

        Nothing of the failed batch was committed (its view transaction rolled
        back), so the next attempt starts again from the tracking position.
        """
        with self._cond:
            state.status = "retrying"
            state.error = f"{type(exc).__name__}: {exc}".strip()
            state.retries += 1
            self._cond.notify_all()
        if state.retries == 1 or state.retries % 20 == 0:
            log.warning(
                "projection_store_unavailable",
                projection=state.name,
                position=state.position,
                attempt=state.retries,
                retry_in_s=round(delay, 2),
                error=state.error,
            )
        self._stop.wait(delay)

    def _recovered(self, state: ProjectionState) -> None:
        """Back to ``running`` after the store answered again."""
        log.info(
            "projection_store_recovered",
            projection=state.name,
            position=state.position,
            attempts=state.retries,
        )
        with self._cond:
            state.status = "running"
            state.error = None
            state.retries = 0
            self._cond.notify_all()

    def _fail(self, name: str, exc: Exception) -> None:
        """Find the failing event (one by one), record it, and stop this projection."""
        state = self.states[name]
        projection = self.projections[name]
        failing = state.position + 1
        try:
            events = self.reader.read(state.position, self.batch_size, projection.TOPICS)
            for event in events:
                try:
                    with self.views.transaction() as tx:
                        projection.apply(tx, [event], projection.table_names())
                        self.views.set_position(tx, name, event.position, self.clock().isoformat())
                    self._advance(state, event.position)
                except Exception as inner:  # noqa: BLE001 - isolate the failing event
                    failing = event.position
                    exc = inner
                    break
        except Exception as reread:  # noqa: BLE001 - the store itself failed
            exc = reread
        state.status = "failed"
        state.error = f"{type(exc).__name__}: {exc}"
        state.failed_position = failing
        log.error("projection_failed", projection=name, position=failing, error=state.error)
        try:
            self.views.record_failure(name, failing, state.error)
        except Exception:
            log.exception("projection_failure_not_recorded", projection=name)

    def _listen(self) -> None:
        """Wake projections on PostgreSQL NOTIFY; poll the head on SQLite."""
        env = self.app.env
        if env.get("PERSISTENCE_MODULE", "").startswith("practice_events.store.postgres"):
            self._listen_postgres()
            return
        last = -1
        while not self._stop.is_set():
            try:
                head = self.reader.head()
            except Exception:  # noqa: BLE001 - transient store errors: keep polling
                head = last
            if head != last:
                last = head
                self._wake.set()
            self._stop.wait(self.poll_interval)

    def _listen_postgres(self) -> None:
        import psycopg

        env = self.app.env
        channel = "practiceevents_events"
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    host=env.get("POSTGRES_HOST"),
                    port=int(env.get("POSTGRES_PORT") or 5432),
                    user=env.get("POSTGRES_USER"),
                    password=env.get("POSTGRES_PASSWORD") or None,
                    dbname=env.get("POSTGRES_DBNAME"),
                    autocommit=True,
                ) as conn:
                    conn.execute(f'LISTEN "{channel}"')
                    self._wake.set()
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=0.5, stop_after=1):
                            self._wake.set()
            except Exception:  # noqa: BLE001 - reconnect after a database restart
                log.warning("log_listener_reconnecting")
                self._wake.set()
                self._stop.wait(1.0)

    # -- queries -------------------------------------------------------------------------

    def wait(self, position: int, names: Sequence[str] | None = None, timeout: float = 5.0) -> bool:
        """Wait until every named projection has processed ``position``; False on timeout."""
        targets = [self.states[n] for n in (names or list(self.projections))]
        deadline = time.monotonic() + timeout
        self.poke()
        with self._cond:
            while True:
                if all(s.position >= position for s in targets):
                    return True
                if any(s.status == "failed" for s in targets):
                    return False
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))

    def lag(self) -> dict[str, dict[str, Any]]:
        """Events and seconds behind the log head, per projection."""
        head = self.reader.head()
        now = time.monotonic()
        out: dict[str, dict[str, Any]] = {}
        for name, state in self.states.items():
            behind = max(0, head - state.position)
            seconds = (
                0.0 if behind == 0 else round(now - (state.caught_up_at or state.last_batch_at), 3)
            )
            out[name] = {
                "position": state.position,
                "head": head,
                "events_behind": behind,
                "seconds_behind": seconds,
                "status": state.status,
                "error": state.error,
                "failed_position": state.failed_position,
            }
        return out


def rebuild(
    app: PracticeEvents,
    views: ViewStore,
    projection: Projection,
    *,
    batch_size: int = DEFAULT_BATCH,
    stop: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Rebuild a projection beside the live view and swap it in when caught up.

    The new tables are built with the suffix ``__rebuild`` while the live ones
    keep serving; at the end, in one transaction, the live tables are dropped,
    the new ones renamed, and the tracking position set. Returns the position
    the rebuilt view reached (see :func:`rebuild_together`).
    """
    done = rebuild_together(
        app, views, [projection], batch_size=batch_size, stop=stop, progress=progress
    )
    return done[0].position


@dataclass
class Rebuilt:
    """What a rebuild did for one projection."""

    name: str
    position: int = 0
    """The position the rebuilt view reached (its tracking position after the swap)."""
    events: int = 0
    """Events of the projection's types applied."""
    seconds: float = 0.0
    """Time spent applying them, writing what was held and swapping, plus a share of the
    time spent reading the log, proportional to the events (all of it when rebuilt alone)."""


def rebuild_together(
    app: PracticeEvents,
    views: ViewStore,
    projections: Sequence[Projection],
    *,
    batch_size: int = DEFAULT_BATCH,
    stop: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[Rebuilt]:
    """Rebuild projections with one pass over the log, then swap each in (blue/green).

    Each projection's new tables are built with the suffix ``__rebuild``
    while the live ones keep serving. The log is read once, in pages of the
    types any of them reads, and each page is decoded once and handed to
    every projection (its own types) in one view transaction: rebuilding
    all six read the log six times, 1.1 times its length, before. Then, one
    projection after the other and each in one transaction: take its
    tracking lock, catch up with what arrived meanwhile, drop its live
    tables, rename the new ones, set its tracking position.

    The batches go through each projection's :meth:`~Projection.rebuilder`,
    which may hold rows in memory across batches (the new tables are empty at
    the start and nobody else writes them); what it holds is written before
    the swaps. On PostgreSQL the transactions that fill the new tables do not
    wait for their commit to reach the disk (:func:`scratch_transaction`).
    """
    reader = LogReader(app)
    suffix = "__rebuild"
    chosen = list(projections)
    done = {p.NAME: Rebuilt(p.NAME) for p in chosen}
    clock = time.perf_counter
    with views.transaction() as tx:
        for projection in chosen:
            projection.drop(tx, suffix)
            projection.create(tx, suffix, indexes=projection.REBUILD_INDEXES)
    builders = {p.NAME: p.rebuilder(p.table_names(suffix)) for p in chosen}
    router = PageRouter(chosen)
    position = 0
    reading = 0.0
    target = stop if stop is not None else reader.head()
    while position < target:
        started = clock()
        page = reader.read(position, batch_size, router.topics, stop=target)
        reading += clock() - started
        if not page:
            break
        applied = 0
        routed = router.route(page)
        with views.transaction() as tx:
            scratch_transaction(tx)
            for name, builder in builders.items():
                mine = routed[name]
                if mine:
                    started = clock()
                    builder.apply(tx, mine)
                    done[name].seconds += clock() - started
                    done[name].events += len(mine)
                    applied += len(mine)
        position = page[-1].position
        if progress is not None:
            progress(applied)
    position = target
    # What the rebuilders hold, written before the swaps take the tracking locks.
    with views.transaction() as tx:
        scratch_transaction(tx)
        for name, builder in builders.items():
            started = clock()
            builder.flush(tx)
            done[name].seconds += clock() - started
    for projection in chosen:
        started = clock()
        done[projection.NAME].position = _swap(
            reader,
            views,
            projection,
            builders[projection.NAME],
            position=position,
            batch_size=batch_size,
            stop=stop,
        )
        done[projection.NAME].seconds += clock() - started
    applied_in_all = sum(r.events for r in done.values())
    for result in done.values():
        share = result.events / applied_in_all if applied_in_all else 1 / len(done)
        result.seconds += reading * share
    return [done[p.NAME] for p in chosen]


class PageRouter:
    """Hands each event of a page to the projections that read its type, in one pass.

    For several projections fed by one read of the log (a rebuild of all, a
    replay): the page is read with :attr:`topics` (every type any of them
    reads; none, i.e. all types, when one of them reads every type), and
    :meth:`route` splits it by type once instead of filtering it once per
    projection.
    """

    def __init__(self, projections: Sequence[Projection]) -> None:
        self.names = [p.NAME for p in projections]
        self.every = [p.NAME for p in projections if not p.TOPICS]
        self.by_type: dict[str, list[str]] = {}
        for projection in projections:
            for topic in dict.fromkeys(projection.TOPICS):
                self.by_type.setdefault(topic, []).append(projection.NAME)
        self.topics: tuple[str, ...] = () if self.every else tuple(sorted(self.by_type))

    def route(self, page: Sequence[LoggedEvent]) -> dict[str, list[LoggedEvent]]:
        """Return each projection's events of ``page`` (in log order; empty lists too)."""
        if len(self.names) == 1:
            return {self.names[0]: list(page)}  # the page was read with its own types
        out: dict[str, list[LoggedEvent]] = {name: [] for name in self.names}
        every = [out[name] for name in self.every]
        targets = {topic: [out[n] for n in names] for topic, names in self.by_type.items()}
        none: list[list[LoggedEvent]] = []
        for event in page:
            for events in targets.get(event.type, none):
                events.append(event)
            for events in every:
                events.append(event)
        return out


def _swap(
    reader: LogReader,
    views: ViewStore,
    projection: Projection,
    builder: Rebuilder,
    *,
    position: int,
    batch_size: int,
    stop: int | None,
) -> int:
    """Catch a rebuilt projection up with what arrived meanwhile and swap it in; its position."""
    suffix = "__rebuild"
    live = projection.table_names()
    scratch = projection.table_names(suffix)
    with views.transaction() as tx:
        views.lock_position(tx, projection.NAME)
        head = stop if stop is not None else reader.head()
        while position < head:
            events = reader.read(position, batch_size, projection.TOPICS, stop=head)
            if not events:
                break
            builder.apply(tx, events)
            position = events[-1].position
        builder.flush(tx)
        position = max(position, head)
        projection.drop(tx)
        for index in projection.index_names(suffix).values():
            tx.execute(f"DROP INDEX IF EXISTS {index}")
        for logical, physical in scratch.items():
            tx.execute(f"ALTER TABLE {physical} RENAME TO {live[logical]}")
        projection.create_indexes(tx, "", live)
        views.set_position(tx, projection.NAME, position, datetime.now(UTC).isoformat())
    return position


def scratch_transaction(tx: Tx) -> None:
    """Let a transaction that only fills scratch tables commit without waiting for the disk.

    PostgreSQL: ``synchronous_commit = off`` for this transaction alone. A
    crash can then lose the last few hundred milliseconds of acknowledged
    commits, never consistency (WAL still orders everything). Scratch tables
    are safe to lose: nobody reads them until the swap, which commits
    synchronously (and thereby flushes all the WAL written before it), and a
    rebuild or replay that did not finish starts again from empty tables.
    SQLite views already commit with ``synchronous=NORMAL``: nothing to do.
    """
    if tx.dialect == "postgres":
        tx.execute("SET LOCAL synchronous_commit = off")


def runner_projection_names(runner: BatchedRunner) -> list[str]:
    """Return the names of the projections a runner owns."""
    return list(runner.projections)


def positions_by_name(views: ViewStore) -> Mapping[str, int]:
    """Return the tracking position of every projection in a view store."""
    return {name: int(row["position"]) for name, row in views.positions().items()}
