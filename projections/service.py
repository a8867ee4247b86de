"""The projection runners inside ``practice-events serve``: an HTTP plugin of the app.

Registered under the entry-point group ``practice_events.http`` as
``runners`` (see "Plugins" in :mod:`practice_events.api.app`), so that the
core package never imports this one. ``serve`` installs it; ``practice-events
api`` leaves it out (production runs the runners as their own process,
``practice-events projections run``).

While the server runs, :class:`EmbeddedProjections`:

* runs every projection of :func:`projections.registry.all_projections` on a
  :class:`~projections.runner.BatchedRunner` (one thread each), published as
  ``runtime.services["projections.runner"]`` so that the read API waits on
  its condition variable for ``min_position`` and reads its lag in memory;
* pokes the runner after every HTTP ingest commit, so a posted event is in
  the views within one batch instead of one poll interval;
* rebuilds a view whose tracking position lies beyond the end of the log (a
  store deleted or replaced under views that outlived it): such a view
  would otherwise wait for positions that belong to other events;
* shows a progress bar while the views catch up with a large log (the first
  start after ``serve --demo`` loaded the demo district);
* once the views have caught up, runs the overdue scheduler every
  ``scheduler_interval_seconds`` (0 turns it off): it emits
  ``finding.overdue`` / ``finding.escalated`` exactly once per due time.

On shutdown it stops the scheduler and the runner threads after their
current batch, then closes its view store connections.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from fastapi import FastAPI

    from practice_events.api.app import Runtime
    from practice_events.application import PracticeEvents
    from practice_events.config import Settings
    from projections.runner import BatchedRunner
    from projections.viewstore import ViewStore

log = structlog.get_logger(__name__)

RUNNER_SERVICE = "projections.runner"
"""The ``runtime.services`` key of the in-process runner (read by the read API)."""

PROGRESS_THRESHOLD = 5_000
"""Show a catch-up progress bar when the views start this many events behind the log."""


def install(app: FastAPI, settings: Settings) -> EmbeddedProjections:
    """Return the hooks that run the projections while the server runs (no routes)."""
    return EmbeddedProjections(settings)


class EmbeddedProjections:
    """Start/stop hooks running the projection runners in the server's process."""

    def __init__(self, settings: Settings, *, batch_size: int | None = None) -> None:
        self.settings = settings
        self.batch_size = batch_size
        self.runner: BatchedRunner | None = None
        self.views: ViewStore | None = None
        self.caught_up = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- lifespan -----------------------------------------------------------------------

    def start(self, runtime: Runtime) -> None:
        """Open the view store, repair stale views, start the runner and its helpers."""
        from projections.registry import all_projections
        from projections.runner import DEFAULT_BATCH, BatchedRunner
        from projections.viewstore import ViewStore

        self.views = ViewStore(self.view_url())
        runner = BatchedRunner(
            runtime.store,
            self.views,
            all_projections(self.settings),
            batch_size=self.batch_size or DEFAULT_BATCH,
        )
        self.runner = runner
        head = runtime.store.last_position()
        self._rebuild_views_ahead_of(runtime.store, head)
        runner.start()
        runtime.services[RUNNER_SERVICE] = runner
        runtime.ingest.on_commit(lambda _position: runner.poke())
        behind = head - min((s.position for s in runner.states.values()), default=head)
        log.info(
            "embedded_projections_started",
            projections=sorted(runner.projections),
            log_head=head,
            events_behind=behind,
        )
        self._spawn(self._watch_catch_up, "projections-catch-up", head)
        if self.settings.scheduler_interval_seconds > 0:
            self._spawn(self._run_scheduler, "overdue-scheduler", runtime.store)

    def stop(self) -> None:
        """Stop the helpers and the runner threads, then close the view store."""
        self._stop.set()
        for thread in self._threads:
            thread.join(15.0)
        self._threads.clear()
        if self.runner is not None:
            self.runner.stop()
            log.info("embedded_projections_stopped", positions=self.positions())
        if self.views is not None:
            self.views.close()
            self.views = None

    # -- helpers ------------------------------------------------------------------------

    def view_url(self) -> str:
        """The view store URL: the read API's (``PRACTICE_EVENTS_API_VIEWS``) or the default."""
        from projections.http.context import ReadApiSettings
        from projections.viewstore import default_view_url

        return ReadApiSettings().views or default_view_url(self.settings.store)

    def positions(self) -> dict[str, int]:
        """Each projection's position in this process."""
        if self.runner is None:
            return {}
        return {name: state.position for name, state in self.runner.states.items()}

    def _spawn(self, target: Any, name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _rebuild_views_ahead_of(self, app: PracticeEvents, head: int) -> None:
        """Rebuild every view that claims positions the log does not have."""
        from projections.runner import rebuild

        assert self.runner is not None
        assert self.views is not None
        for name, state in self.runner.states.items():
            if state.position <= head:
                continue
            log.warning(
                "view_ahead_of_log_rebuilt",
                projection=name,
                view_position=state.position,
                log_head=head,
                hint="the event store was replaced under older views",
            )
            rebuild(app, self.views, self.runner.projections[name], stop=head)
            state.position = self.views.position(name)

    def _watch_catch_up(self, head: int) -> None:
        """Show progress until every projection reached ``head``; then set :attr:`caught_up`."""
        from practice_events.progress import Progress

        runner = self.runner
        assert runner is not None
        started = time.monotonic()
        first = min((s.position for s in runner.states.values()), default=head)
        if head - first < PROGRESS_THRESHOLD:
            self._wait_until(head)
            self.caught_up.set()
            return
        with Progress("projections", head - first) as bar:
            done = 0
            while not self._stop.is_set():
                lowest = min(self._lowest_live(), head)
                if lowest - first > done:
                    bar.advance(lowest - first - done)
                    done = lowest - first
                if lowest >= head:
                    break
                self._stop.wait(0.2)
        if not self._stop.is_set():
            self.caught_up.set()
            log.info(
                "projections_caught_up",
                log_head=head,
                seconds=round(time.monotonic() - started, 1),
            )

    def _lowest_live(self) -> int:
        """The lowest position among projections that have not failed."""
        assert self.runner is not None
        live = [s.position for s in self.runner.states.values() if s.status != "failed"]
        return min(live, default=0) if live else 2**62

    def _wait_until(self, head: int) -> None:
        while not self._stop.is_set() and self._lowest_live() < head:
            self._stop.wait(0.1)

    def _run_scheduler(self, app: PracticeEvents) -> None:
        """Run the overdue scheduler once the views have caught up (until stopped)."""
        from projections.cli import build_scheduler

        while not self.caught_up.wait(0.5):
            if self._stop.is_set():
                return
        assert self.views is not None
        scheduler = build_scheduler(self.settings, app, self.views)
        log.info("overdue_scheduler_started", interval=self.settings.scheduler_interval_seconds)
        scheduler.run(self._stop, self.settings.scheduler_interval_seconds)
