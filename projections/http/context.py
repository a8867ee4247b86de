"""What the read API holds while the server runs: the view store, freshness and lag.

:class:`ReadApi` is the plugin's lifespan hook (see "Plugins" in
:mod:`practice_events.api.app`). On start it opens the view store beside
the event store (``<store>.views.db`` for SQLite, schema ``practice_views``
for PostgreSQL, or ``PRACTICE_EVENTS_API_VIEWS``) and adds the projections'
lag to ``/readyz``; on stop it closes the view store.

Read-your-writes: an ingestion answer carries the event's log position;
a query with ``min_position=N`` waits (at most ``wait_seconds``) until every
projection behind the endpoint has processed N. When a projection runner
runs in this process (published by another plugin as
``runtime.services["projections.runner"]``) the wait is its condition
variable; otherwise the tracking table is polled every few milliseconds.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import anyio.to_thread
import structlog
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.responses import Response

from practice_events.api.problems import Problem
from practice_events.errors import TransientError

if TYPE_CHECKING:
    from practice_events.api.app import Runtime
    from practice_events.config import Settings
    from practice_events.domain.calendar import WorkingCalendar
    from projections.scorecards import ScorecardSettings
    from projections.viewstore import ViewStore

log = structlog.get_logger(__name__)

RUNNER_SERVICE = "projections.runner"
"""The ``runtime.services`` key under which an in-process runner is published."""

POLL_SECONDS = 0.005
"""How often positions are checked while waiting for ``min_position``."""

POSITIONS_POLL_SECONDS = 0.01
"""How often the tracking table is read for picking cached answers (no runner here)."""

TRACKING = "projection_tracking"
"""The view store's tracking table (``ViewStore.TRACKING``)."""

EXPECTED_PROJECTIONS = ("network", "closed_loop", "scorecards", "ledger", "needs", "meetings")
"""The projections the read API serves from (readiness checks each of them)."""


class ReadApiSettings(BaseSettings):
    """Settings of the read API, from ``PRACTICE_EVENTS_API_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="PRACTICE_EVENTS_API_", extra="ignore")

    views: str | None = Field(
        default=None,
        description="View store URL (default: derived from the event store URL: "
        "<store>.views.db beside SQLite, schema practice_views in PostgreSQL)",
    )
    wait_seconds: float = Field(
        default=2.0,
        ge=0,
        le=30,
        description="Longest wait for ?min_position before answering 503 NOT_CAUGHT_UP",
    )
    ready_max_lag_events: int = Field(
        default=1000,
        ge=0,
        description="/readyz fails when a projection is more events than this behind the log",
    )
    ready_max_stall_seconds: float = Field(
        default=30.0,
        gt=0,
        description="/readyz fails when a projection behind the log has not moved for this long",
    )
    export_max_rows: int = Field(
        default=100_000, ge=1, description="Most rows one CSV export of a list returns"
    )
    cache_seconds: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="How long an answer is reused while the views behind it have not moved "
        "(0: never); bounds how stale time-dependent figures (overdue, running) may be",
    )
    cache_entries: int = Field(
        default=512, ge=1, description="Most answers kept by the answer cache"
    )


class RunnerLike(Protocol):
    """What the read API uses of an in-process ``projections.runner.BatchedRunner``."""

    projections: Mapping[str, Any]

    def wait(self, position: int, names: Sequence[str] | None = None, timeout: float = 5.0) -> bool:
        """Wait until the named projections have processed ``position``."""

    def lag(self) -> dict[str, dict[str, Any]]:
        """Position, head and lag of every projection."""

    def poke(self) -> None:
        """Wake the projections now."""


@dataclass(frozen=True, slots=True)
class Origin:
    """How an answer was made, so that it can be given (and refreshed) before any route runs.

    See :class:`projections.http.answers.AnswerMiddleware`: the views the
    answer read (to check their positions), the route that answered (for the
    metrics' route label) and the computation to run again when it is stale.
    """

    names: tuple[str, ...]
    route: Any
    compute: Callable[[], Response]


@dataclass
class _Entry:
    """One cached answer, or the promise of one while it is being computed."""

    markers: tuple[int, ...]
    created: float
    response: Response | None = None
    ready: threading.Event = field(default_factory=threading.Event)
    origin: Origin | None = None


class AnswerCache:
    """Answers reused while the views behind them have not moved.

    Dashboards ask the same questions over and over; an answer depends only
    on the question (path, parameters, language, format), on what the
    caller may see (role and unit), on the views it reads and on the clock
    (figures such as "overdue" change as due times pass). Entries are keyed
    by the first two and carry the tracking positions (``markers``) of the
    views read *before* computing, so an entry is never newer than its
    markers say:

    * markers moved (the views processed events): computed again before
      answering, so a write is visible as soon as its views have it
      (``min_position`` keeps its promise);
    * markers unchanged but older than ``ttl`` seconds: answered from the
      entry while one request computes it again in the background, so time
      dependent figures are at most ``ttl`` (plus one computation) old and
      no caller waits for the refresh;
    * concurrent misses of one key compute it once; the others wait for it.

    Only 200 answers are kept.
    """

    def __init__(self, ttl: float, size: int) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._refreshing: set[Hashable] = set()
        # Few, long-lived threads: each keeps its own view-store connection.
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="answer-refresh")
        self.hits = 0
        self.misses = 0

    def get_or_compute(
        self,
        key: Hashable,
        markers: tuple[int, ...],
        compute: Callable[[], Response],
        origin: Origin | None = None,
    ) -> Response:
        """The cached answer for ``key`` at ``markers``, or ``compute()``'s (then cached).

        ``origin``: how the answer is made, kept with it so that
        :meth:`reuse` can give it before the route runs.
        """
        if self.ttl <= 0:
            return compute()
        now = time.monotonic()
        refresh = False
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.markers != markers:
                entry = self._put(key, _Entry(markers, now, origin=origin))
                mine = True
            else:
                mine = False
                stale = now - entry.created >= self.ttl
                if stale and entry.response is not None and key not in self._refreshing:
                    self._refreshing.add(key)
                    refresh = True
        if mine:
            return self._compute(key, entry, compute)
        if not entry.ready.wait(30) or entry.response is None:
            return compute()  # the first one failed or answered an error: do it ourselves
        self.hits += 1
        if refresh:
            self._refresh(key, markers, compute, entry.origin)
        return entry.response

    def reuse(
        self, key: Hashable, markers_of: Callable[[Sequence[str]], tuple[int, ...] | None]
    ) -> tuple[Response, Origin] | None:
        """The ready answer for ``key`` and its origin if its views have not moved (or None).

        For giving an answer before the route runs: ``markers_of(names)``
        gives the current positions of the views the answer read (None: not
        known without I/O). Only answers kept with an :class:`Origin`
        qualify; a stale one is given and refreshed as in :meth:`lookup`.
        """
        if self.ttl <= 0:
            return None
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or entry.origin is None or entry.response is None:
            return None
        origin = entry.origin
        markers = markers_of(origin.names)
        if markers is None:
            return None
        response = self.lookup(key, markers, origin.compute)
        return None if response is None else (response, origin)

    def lookup(
        self, key: Hashable, markers: tuple[int, ...], compute: Callable[[], Response]
    ) -> Response | None:
        """The ready answer for ``key`` at ``markers`` without waiting (None: compute it).

        Cheap enough for the event loop: a dict lookup; a stale entry is
        still answered and its refresh handed to the refresh threads.
        """
        if self.ttl <= 0:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.markers != markers or entry.response is None:
                return None
            stale = time.monotonic() - entry.created >= self.ttl
            refresh = stale and key not in self._refreshing
            if refresh:
                self._refreshing.add(key)
        self.hits += 1
        if refresh:
            self._refresh(key, markers, compute, entry.origin)
        return entry.response

    def _put(self, key: Hashable, entry: _Entry) -> _Entry:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return entry

    def _compute(self, key: Hashable, entry: _Entry, compute: Callable[[], Response]) -> Response:
        self.misses += 1
        try:
            response = compute()
        except BaseException:
            self._drop(key, entry)
            entry.ready.set()
            raise
        if response.status_code == 200:
            entry.response = response
        else:
            self._drop(key, entry)
        entry.ready.set()
        return response

    def _drop(self, key: Hashable, entry: _Entry) -> None:
        with self._lock:
            if self._entries.get(key) is entry:
                del self._entries[key]

    def _refresh(
        self,
        key: Hashable,
        markers: tuple[int, ...],
        compute: Callable[[], Response],
        origin: Origin | None,
    ) -> None:
        """Compute a stale entry again on a thread of its own; swap it in when done."""

        def work() -> None:
            try:
                response = compute()
                if response.status_code == 200:
                    fresh = _Entry(markers, time.monotonic(), response, origin=origin)
                    fresh.ready.set()
                    with self._lock:
                        current = self._entries.get(key)
                        if current is None or current.markers == markers:
                            self._put(key, fresh)
            except Exception:  # the next request computes it in the open
                log.debug("answer_refresh_failed", exc_info=True)
            finally:
                with self._lock:
                    self._refreshing.discard(key)

        self._pool.submit(work)

    def close(self) -> None:
        """Stop the refresh threads (after what they are doing)."""
        self._pool.shutdown(wait=True, cancel_futures=True)


class ReadApi:
    """The read API's resources and its start/stop hooks (see the module docstring)."""

    def __init__(self, settings: Settings, api_settings: ReadApiSettings | None = None) -> None:
        self.settings = settings
        self.api = api_settings or ReadApiSettings()
        self.runtime: Runtime | None = None
        self._views: ViewStore | None = None
        self._lock = threading.Lock()
        self._stalls: dict[str, tuple[int, float]] = {}
        self._calendar: WorkingCalendar | None = None
        self.answers = AnswerCache(self.api.cache_seconds, self.api.cache_entries)
        self._recent: dict[str, int] = {}
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    @property
    def calendar(self) -> WorkingCalendar:
        """The working-day calendar (built once: loading it parses a file)."""
        if self._calendar is None:
            from practice_events.domain.calendar import load_calendar

            self._calendar = load_calendar(self.settings.calendar_file, self.settings.zone)
        return self._calendar

    @property
    def scorecard_settings(self) -> ScorecardSettings:
        """The scorecards' settings for this network (its time zone)."""
        from projections.scorecards import ScorecardSettings

        return ScorecardSettings(timezone=self.settings.timezone)

    # -- lifespan -----------------------------------------------------------------------

    def start(self, runtime: Runtime) -> None:
        """Open the view store and add the projections to ``/readyz``."""
        self.runtime = runtime
        self.views()
        self._stop.clear()
        self._poller = threading.Thread(
            target=self._poll_positions, name="read-api-positions", daemon=True
        )
        self._poller.start()
        checks = getattr(runtime, "checks", None)
        if isinstance(checks, dict):
            checks["projections"] = self.readiness

    def stop(self) -> None:
        """Stop refreshing answers and close the view store this plugin opened."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join(5)
            self._poller = None
        self.answers.close()
        with self._lock:
            views, self._views = self._views, None
        if views is not None:
            views.close()

    # -- resources ----------------------------------------------------------------------

    def view_url(self) -> str:
        """The view store URL in effect."""
        from projections.viewstore import default_view_url

        return self.api.views or default_view_url(self.settings.store)

    def views(self) -> ViewStore:
        """Return the view store (opened on first use; TRANSIENT if it cannot be)."""
        views = self._views
        if views is not None:
            return views
        from projections.viewstore import ViewStore

        with self._lock:
            if self._views is None:
                try:
                    self._views = ViewStore(self.view_url())
                except Exception as exc:  # any driver error means "unreachable"
                    msg = f"the view store is unreachable: {type(exc).__name__}"
                    raise TransientError(msg) from exc
                log.info("read_api_views_opened", dialect=self._views.dialect)
            return self._views

    def runner(self) -> RunnerLike | None:
        """The projection runner of this process, if a plugin runs one."""
        if self.runtime is None:
            return None
        runner = self.runtime.services.get(RUNNER_SERVICE)
        return runner if runner is not None and hasattr(runner, "wait") else None

    def head(self) -> int:
        """The log head (the last position of the event store)."""
        if self.runtime is None:
            msg = "the read API has not started"
            raise TransientError(msg)
        return self.runtime.store.last_position()

    # -- positions ----------------------------------------------------------------------

    def markers(self, names: Sequence[str]) -> tuple[int, ...]:
        """The positions of ``names`` (from memory with an in-process runner)."""
        runner = self.runner()
        states = getattr(runner, "states", None)
        if isinstance(states, Mapping) and all(name in states for name in names):
            return tuple(int(states[name].position) for name in names)
        with self.views().read() as tx:
            rows = tx.query(f"SELECT name, position FROM {TRACKING}")
        found = {str(r["name"]): int(r["position"]) for r in rows}
        return tuple(found.get(name, -1) for name in names)

    def recent_markers(self, names: Sequence[str]) -> tuple[int, ...] | None:
        """The positions of ``names`` without I/O (None: not known yet).

        From the in-process runner's memory, or from the tracking table as
        read by the poller thread at most ``POSITIONS_POLL_SECONDS`` ago:
        good enough to pick a cached answer, never for ``min_position``
        (which reads the table itself, see :meth:`markers`).
        """
        runner = self.runner()
        states = getattr(runner, "states", None)
        if isinstance(states, Mapping) and all(name in states for name in names):
            return tuple(int(states[name].position) for name in names)
        recent = self._recent
        if not recent:
            return None
        return tuple(recent.get(name, -1) for name in names)

    def _poll_positions(self) -> None:
        """Keep :attr:`_recent` close to the tracking table (when no runner runs here)."""
        while not self._stop.wait(POSITIONS_POLL_SECONDS):
            if self.runner() is not None:
                continue
            try:
                with self.views().read() as tx:
                    rows = tx.query(f"SELECT name, position FROM {TRACKING}")
                self._recent = {str(r["name"]): int(r["position"]) for r in rows}
            except Exception:  # noqa: BLE001 - the store may be away; requests read it themselves
                self._recent = {}

    def positions(self) -> dict[str, int]:
        """Each projection's position (the runner's in-process, else the tracking table)."""
        runner = self.runner()
        if runner is not None:
            return {name: int(row["position"]) for name, row in runner.lag().items()}
        return {name: int(row["position"]) for name, row in self.views().positions().items()}

    async def wait_for(self, position: int, names: Sequence[str]) -> None:
        """Return once every projection of ``names`` has processed ``position``.

        400 ``UNKNOWN_POSITION`` for a position beyond the log's end (it cannot
        come from an ingestion answer); 503 ``NOT_CAUGHT_UP`` with the current
        positions when the wait bound passes first. Waits asleep (no thread
        is held): an in-process runner's positions are read from memory,
        otherwise the tracking table every few milliseconds.
        """
        if position <= 0 or not names:
            return
        head = await anyio.to_thread.run_sync(self.head)
        if position > head:
            raise Problem(
                400,
                "UNKNOWN_POSITION",
                f"min_position {position} is beyond the end of the log ({head}); pass the "
                "position an ingestion answer gave",
                log_head=head,
            )
        timeout = self.api.wait_seconds
        deadline = time.monotonic() + timeout
        runner = self.runner()
        states = getattr(runner, "states", None)
        in_memory = isinstance(states, Mapping) and all(name in states for name in names)
        if runner is not None and in_memory:
            runner.poke()
        while True:
            if in_memory:
                assert isinstance(states, Mapping)
                current = {name: int(states[name].position) for name in names}
            else:
                current = await anyio.to_thread.run_sync(self.positions)
            if all(current.get(name, 0) >= position for name in names):
                return
            if time.monotonic() >= deadline:
                break
            await anyio.sleep(POLL_SECONDS)
        behind = {name: current.get(name, 0) for name in names}
        raise Problem(
            503,
            "NOT_CAUGHT_UP",
            f"the views behind this endpoint have not reached position {position} within "
            f"{timeout:g} s (they are at {min(behind.values())}); retry shortly",
            headers={"Retry-After": "1"},
            min_position=position,
            positions=behind,
        )

    # -- lag and readiness --------------------------------------------------------------

    def lag(self) -> dict[str, dict[str, Any]]:
        """Position, log head, events behind, status and error of each projection."""
        runner = self.runner()
        head = self.head()
        if runner is not None:
            out = {name: dict(row) for name, row in runner.lag().items()}
        else:
            rows = self.views().positions()
            out = {}
            for name, row in rows.items():
                position = int(row["position"])
                failed = row.get("failed_at") is not None
                out[name] = {
                    "position": position,
                    "head": head,
                    "events_behind": max(0, head - position),
                    "status": "failed" if failed else "tracked",
                    "error": row.get("error"),
                    "failed_position": row.get("failed_at"),
                    "updated_at": row.get("updated_at"),
                }
        for name in EXPECTED_PROJECTIONS:
            # Never run: behind by the whole log (nothing, for an empty store).
            out.setdefault(
                name,
                {"position": 0, "events_behind": head, "status": "not_started", "error": None},
            )
        now = time.monotonic()
        for name, row in out.items():
            row["stalled_seconds"] = self._stalled(name, row, now)
        return out

    def _stalled(self, name: str, row: Mapping[str, Any], now: float) -> float:
        """Seconds this projection has been behind the log without moving (0 if not behind)."""
        behind = row.get("events_behind")
        position = int(row.get("position") or 0)
        if not behind:
            self._stalls.pop(name, None)
            return 0.0
        seen = self._stalls.get(name)
        if seen is None or seen[0] != position:
            self._stalls[name] = (position, now)
            return 0.0
        return round(now - seen[1], 3)

    def readiness(self) -> dict[str, Any]:
        """The ``/readyz`` check: every projection runs, is not failed, and is not lagging."""
        try:
            lag = self.lag()
        except Exception as exc:  # noqa: BLE001 - an unreachable view store is "not ready"
            return {"ok": False, "error": f"view store unreachable: {type(exc).__name__}: {exc}"}
        problems: list[str] = []
        for name, row in sorted(lag.items()):
            behind = row.get("events_behind")
            if row.get("status") in ("failed", "retrying"):
                # retrying: the store is away for now (the runner tries again by itself)
                problems.append(f"{name} {row['status']}")
            elif behind is not None and behind > self.api.ready_max_lag_events:
                problems.append(f"{name} {behind} events behind")
            elif row["stalled_seconds"] > self.api.ready_max_stall_seconds:
                problems.append(f"{name} stalled for {row['stalled_seconds']:g} s")
        out: dict[str, Any] = {
            "ok": not problems,
            "max_lag_events": self.api.ready_max_lag_events,
            "projections": {
                name: {
                    key: row.get(key)
                    for key in ("position", "events_behind", "status", "stalled_seconds", "error")
                }
                for name, row in sorted(lag.items())
            },
        }
        if problems:
            out["error"] = "; ".join(problems)
        return out
