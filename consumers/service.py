"""The Kafka ingestion worker inside ``practice-events serve``: an HTTP plugin of the app.

Registered under the entry-point group ``practice_events.http`` as ``kafka``
(see "Plugins" in :mod:`practice_events.api.app`). It does something only
when ``PRACTICE_EVENTS_KAFKA_BOOTSTRAP`` is set: then ``serve`` consumes the
topic in-process, on the same event store, with the same exactly-once
guarantees as ``practice-events ingest`` (positions tracked in the store,
refused records to the dead-letter topic). ``practice-events api`` leaves it
out; production runs workers as their own processes (``practice-events
ingest``), one per partition group.

While the server runs the worker is published as
``runtime.services["consumers.worker"]`` and adds a ``kafka`` readiness
check (connected, positioned, free of transient faults). On shutdown the
worker finishes or abandons the batch in hand, leaves the consumer group and
closes its clients before the event store is closed.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import structlog

if TYPE_CHECKING:
    from fastapi import FastAPI

    from consumers.worker import Worker
    from practice_events.api.app import Runtime
    from practice_events.config import Settings

log = structlog.get_logger(__name__)

WORKER_SERVICE = "consumers.worker"
"""The ``runtime.services`` key of the in-process Kafka worker."""

STOP_TIMEOUT_SECONDS = 30.0
"""How long shutdown waits for the worker to finish its batch and leave the group."""


def install(app: FastAPI, settings: Settings) -> EmbeddedKafka | None:
    """Return the worker's hooks when Kafka is configured; nothing otherwise (no routes)."""
    if not settings.kafka_bootstrap:
        return None
    return EmbeddedKafka(settings)


class EmbeddedKafka:
    """Start/stop hooks running one Kafka ingestion worker in the server's process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.worker: Worker | None = None
        self._thread: threading.Thread | None = None

    def start(self, runtime: Runtime) -> None:
        """Build the worker on its own pipeline over the runtime's store and start it."""
        from consumers.worker import Worker, WorkerConfig
        from practice_events.bootstrap import build_ingest

        config = WorkerConfig.from_settings(self.settings)
        # The pipeline is not thread-safe: the worker gets its own, beside HTTP's
        # (a shard router of its own when PRACTICE_EVENTS_SHARDS is set).
        worker = Worker(build_ingest(self.settings, runtime.store), config)
        self.worker = worker
        self._thread = threading.Thread(target=self._run, name="kafka-ingest", daemon=True)
        self._thread.start()
        runtime.services[WORKER_SERVICE] = worker
        runtime.checks["kafka"] = self.readiness
        log.info("embedded_kafka_started", topic=config.topic, group=config.group)

    def stop(self) -> None:
        """Ask the worker to stop after its batch and wait for it to leave the group."""
        if self.worker is None or self._thread is None:
            return
        self.worker.stop()
        self._thread.join(STOP_TIMEOUT_SECONDS)
        if self._thread.is_alive():
            log.warning("embedded_kafka_stop_timed_out", seconds=STOP_TIMEOUT_SECONDS)
        else:
            self.worker.pipeline.close()  # a shard router's other stores (nothing otherwise)

    def readiness(self) -> dict[str, Any]:
        """The ``/readyz`` check: the worker runs, is connected and positioned."""
        worker = self.worker
        alive = self._thread is not None and self._thread.is_alive()
        ready = bool(worker is not None and alive and worker.ready)
        out: dict[str, Any] = {"ok": ready}
        if worker is not None:
            out.update(worker.stats.as_dict())
        if not alive:
            out["error"] = "the Kafka worker is not running"
        elif not ready:
            out["error"] = "the Kafka worker is connecting or recovering from a fault"
        return out

    def _run(self) -> None:
        assert self.worker is not None
        try:
            self.worker.run()
        except Exception:  # noqa: BLE001 - Worker.run logged it; readiness now says "stopped"
            log.error("embedded_kafka_worker_ended")
