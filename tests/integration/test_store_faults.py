"""The event store misbehaves under a running service; it says so, retries and loses nothing.

The whole service runs in-process as ``serve`` runs it (the app with every
plugin: HTTP ingestion, the Kafka worker, the projection runners and the
read API) on a real socket, over a real SQLite file or a real PostgreSQL
database, with records on the suite's Tansu broker. The faults are real
(``tests/faults.py``):

* a full disk on SQLite (``SQLITE_FULL`` from a page cap) and a lock held on
  PostgreSQL's event table past the writers' ``lock_timeout``: HTTP answers
  503 ``TRANSIENT`` with ``Retry-After``, the Kafka worker backs off,
  ``/readyz`` says 503 with the failing checks; once the fault is gone the
  client's retry is accepted, the worker catches up, ``/readyz`` is 200;
* PostgreSQL unreachable (every session terminated, connections refused)
  while events stream in over HTTP and the projections follow them: the
  projections report ``retrying`` (not failed), ``/readyz`` is 503, and both
  sides resume by themselves when the database is back.

Each scenario ends with the accounting equation (produced = stored +
duplicates + dead-lettered, every stored input exactly once) and with
views equal to a rebuild from the log.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from practice_events.api.app import HttpLimits
from practice_events.config import Settings
from tests.factories_api import CE_BATCH, TEST_LIMITS, LiveServer, centre, institute, live_server
from tests.faults import DatabaseOutage, DiskQuota, TableLock, assert_views_equal_rebuild
from tests.integration.test_kafka_worker import assert_accounting
from tests.kafka_broker import TansuBroker
from tests.kafka_fixtures import (
    Produced,
    Topics,
    bad_messages,
    dead_letters,
    fresh_topics,
    open_app,
    produce_kafka_python,
    valid_stream,
    wait_for_offsets,
    wait_until,
)

SOURCE = "urn:test:faults"
LIMITS = HttpLimits(**{**TEST_LIMITS.model_dump(), "readiness_timeout_seconds": 1.0})
"""The test limits, with ``/readyz`` giving up on a silent store after 1 s (default 5 s)."""


def producer(live: LiveServer) -> httpx.Client:
    """An HTTP client with a producer token for ``urn:test:*``."""
    runtime = live.runtime_or_fail()
    secret = runtime.tokens.issue("producer", sources=["urn:test:*"]).secret
    return httpx.Client(
        base_url=live.url, headers={"Authorization": f"Bearer {secret}"}, timeout=60
    )


def post_batch(http: httpx.Client, events: list[dict[str, Any]]) -> httpx.Response:
    """POST a batch of CloudEvents."""
    return http.post(
        "/v1/events:batch", content=orjson.dumps(events), headers={"Content-Type": CE_BATCH}
    )


def institutes(first: int, last: int, parent: str = "C-1") -> list[dict[str, Any]]:
    """Registrations of institutes ``I-first`` … ``I-last`` under ``parent``."""
    return [institute(f"I-{n:05d}", parent, source=SOURCE) for n in range(first, last + 1)]


def readiness(http: httpx.Client) -> tuple[int, dict[str, Any]]:
    """``/readyz``: status and the checks."""
    answer = http.get("/readyz")
    body = answer.json()
    return answer.status_code, body.get("checks", {})


def kafka_settings(store_url: str, topics: Topics) -> Settings:
    """``serve``'s settings with Kafka ingestion on ``topics`` (no overdue scheduler)."""
    return Settings(
        store=store_url,
        kafka_bootstrap=topics.bootstrap,
        kafka_topic=topics.topic,
        kafka_group=topics.group,
        kafka_dlq_topic=topics.dlq,
        scheduler_interval_seconds=0,
    )


def assert_stored_exactly_with(app: Any, produced: Produced, extra: int) -> None:
    """Every valid Kafka input stored once, beside ``extra`` inputs that came over HTTP."""
    found = app.store.select_digests(produced.all_keys)
    assert set(found) == produced.valid_keys
    assert app.store.count_ingested_keys() == len(produced.valid_keys) + extra
    assert sum(app.store.count_events_by_topic().values()) == len(produced.valid_keys) + extra


class Fault:
    """A fault a test turns on and off around the same scenario."""

    def __init__(self, on: Callable[[], None], off: Callable[[], None]) -> None:
        self.on = on
        self.off = off


def disk_full(live: LiveServer, store_url: str) -> Fault:
    """SQLite: the disk is full until the fault is turned off."""
    quota = DiskQuota(live.runtime_or_fail().store)
    return Fault(quota.fill, quota.free)


def table_locked(live: LiveServer, store_url: str) -> Fault:
    """PostgreSQL: another session holds the event table past the writers' lock timeout."""
    held: list[TableLock] = []
    return Fault(lambda: held.append(TableLock(store_url)), lambda: held.pop().release())


@pytest.fixture
def fault_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The store URL of the parametrised fault: a SQLite file, or PostgreSQL with 1 s locks."""
    if request.param == "sqlite-disk-full":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    pg_url: str = request.getfixturevalue("pg_url")
    yield f"{pg_url}?lock_timeout=1"


@pytest.mark.kafka
@pytest.mark.slow
class TestWriteFaults:
    @pytest.mark.parametrize(
        ("fault_store", "make_fault"),
        [("sqlite-disk-full", disk_full), ("postgres-lock-timeout", table_locked)],
        indirect=["fault_store"],
        ids=["sqlite-disk-full", "postgres-lock-timeout"],
    )
    def test_not_ready_while_writes_fail_then_resumes_without_loss(
        self,
        kafka_broker: TansuBroker,
        fault_store: str,
        make_fault: Callable[[LiveServer, str], Fault],
        tmp_path: Path,
    ) -> None:
        topics = fresh_topics(kafka_broker)
        produced = Produced()
        with live_server(kafka_settings(fault_store, topics), limits=LIMITS, plugins=None) as live:
            runtime = live.runtime_or_fail()
            worker = runtime.services["consumers.worker"]
            fault = make_fault(live, fault_store)
            with producer(live) as http:
                produced.extend(
                    produce_kafka_python(topics.bootstrap, topics.topic, valid_stream(60))
                )
                posted = [centre(source=SOURCE), *institutes(1, 30)]
                first = post_batch(http, posted)
                assert first.status_code == 200, first.text
                assert first.json()["accepted"] == 31
                wait_for_offsets(runtime.store, topics.topic, produced.last_offsets)
                wait_until(lambda: readiness(http)[0] == 200, what="ready before the fault")

                fault.on()
                try:
                    batch = institutes(31, 70)
                    refused = post_batch(http, batch)
                    assert refused.status_code == 503, refused.text
                    assert refused.json()["code"] == "TRANSIENT"
                    assert int(refused.headers["retry-after"]) >= 1
                    faults_before = worker.stats.transient_faults
                    during = valid_stream(80) + bad_messages()
                    produced.extend(produce_kafka_python(topics.bootstrap, topics.topic, during))
                    wait_until(
                        lambda: worker.stats.transient_faults >= faults_before + 2,
                        what="the Kafka worker to meet the fault and retry",
                    )
                    status, checks = readiness(http)
                    assert status == 503, checks
                    assert checks["ingest"]["ok"] is False, checks["ingest"]
                    assert "error" in checks["ingest"]
                finally:
                    fault.off()

                again = post_batch(http, batch)  # the client's retry, as Retry-After says
                assert again.status_code == 200, again.text
                assert again.json()["accepted"] == len(batch)
                posted += batch
                wait_for_offsets(runtime.store, topics.topic, produced.last_offsets, timeout=60)
                wait_until(
                    lambda: readiness(http)[0] == 200, timeout=60, what="ready after the fault"
                )
                stats = worker.stats
                assert stats.transient_faults >= 2
        assert_accounting(produced, stats)
        letters = dead_letters(topics.bootstrap, topics.dlq, produced.expected("rejected"))
        assert set(letters) == produced.invalid_positions
        app = open_app(fault_store)
        try:
            http_keys = [(SOURCE, str(e["id"])) for e in posted]
            assert set(app.store.select_digests(http_keys)) == set(http_keys)
            assert_stored_exactly_with(app, produced, extra=len(http_keys))
        finally:
            app.close()
        assert_views_equal_rebuild(fault_store, tmp_path)


class Stream:
    """One producer posting batches of registrations until stopped, retrying each until stored.

    A batch answered 503 (or not answered at all) is sent again unchanged,
    as a producer must; its events come back ``duplicate`` if an earlier
    attempt was stored after all, never stored twice.
    """

    def __init__(self, http: httpx.Client, size: int = 25) -> None:
        self.http = http
        self.size = size
        self.sent: list[dict[str, Any]] = []
        self.outcomes: dict[str, str] = {}
        self.retries = 0
        self.refusals = 0
        self.slowest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            number = 1
            while not self._stop.is_set():
                batch = institutes(number, number + self.size - 1)
                number += self.size
                self._until_stored(batch)
                time.sleep(0.02)
        except BaseException as exc:  # noqa: BLE001 - re-raised by stop()
            self.error = exc

    def _until_stored(self, batch: list[dict[str, Any]]) -> None:
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            try:
                answer = post_batch(self.http, batch)
            except httpx.HTTPError:
                answer = None
            self.slowest = max(self.slowest, time.monotonic() - started)
            if answer is not None and answer.status_code == 200:
                for result in answer.json()["results"]:
                    self.outcomes[result["id"]] = result["status"]
                self.sent += batch
                self.retries += attempt - 1
                return
            assert answer is None or answer.status_code == 503, answer.text
            self.refusals += 1
            time.sleep(0.1)

    def start(self) -> Stream:
        """Start posting."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop after the batch in hand is stored."""
        self._stop.set()
        self._thread.join(120)
        assert not self._thread.is_alive(), "the producer did not finish its last batch"
        if self.error is not None:
            raise self.error


@pytest.mark.postgres
@pytest.mark.slow
class TestDatabaseOutage:
    def test_projections_retry_through_an_outage_and_equal_a_rebuild(
        self, pg_url: str, tmp_path: Path
    ) -> None:
        # The store's pool gives up on a connection after 2 s (default 10 s, tried ten
        # times by the library): a runner blocked in it reports the outage sooner.
        store_url = f"{pg_url}?connect_timeout=2"
        settings = Settings(store=store_url, scheduler_interval_seconds=0)
        outage = DatabaseOutage(store_url)
        with live_server(settings, limits=LIMITS, plugins=None) as live:
            runtime = live.runtime_or_fail()
            runner = runtime.services["projections.runner"]
            with producer(live) as http:
                assert post_batch(http, [centre(source=SOURCE)]).status_code == 200
                stream = Stream(http).start()
                try:
                    wait_until(lambda: len(stream.sent) >= 200, what="events before the outage")
                    outage.begin()
                    try:
                        # A runner in the middle of a query fails at once; one waiting for
                        # a connection, when its pool gives up (the views' pool: 30 s).
                        wait_until(
                            lambda: any(s.status == "retrying" for s in runner.states.values()),
                            timeout=60,
                            what="a projection to report the outage",
                        )
                        status, checks = readiness(http)
                        assert status == 503, checks
                        assert not all(s.status == "failed" for s in runner.states.values())
                        time.sleep(2.0)  # a while longer: producers and runners keep trying
                    finally:
                        outage.end()
                    sent = len(stream.sent)
                    wait_until(
                        lambda: len(stream.sent) >= sent + 200,
                        timeout=60,
                        what="ingestion to resume",
                    )
                finally:
                    stream.stop()
                head = runtime.store.last_position()
                wait_until(
                    lambda: all(
                        s.status == "running" and s.position >= head for s in runner.states.values()
                    ),
                    timeout=60,
                    what="every projection to resume and catch up",
                )
                wait_until(lambda: readiness(http)[0] == 200, what="ready after the outage")
        assert outage.terminated >= 1
        # The producer met the outage too: refused (503), or held while the store's
        # pool waited for the database (up to its connect timeout per attempt).
        assert stream.refusals >= 1 or stream.slowest >= 2.0, (stream.refusals, stream.slowest)
        # produced = stored + duplicates (nothing here is refused): each event once.
        ids = [e["id"] for e in stream.sent]
        assert len(set(ids)) == len(ids)
        assert set(stream.outcomes) == set(ids)
        assert set(stream.outcomes.values()) <= {"accepted", "duplicate"}
        duplicates = sum(1 for s in stream.outcomes.values() if s == "duplicate")
        assert duplicates <= stream.retries * stream.size
        app = open_app(store_url)
        try:
            keys = [(SOURCE, i) for i in ids]
            assert set(app.store.select_digests(keys)) == set(keys)
            assert app.store.count_ingested_keys() == len(ids) + 1
            assert sum(app.store.count_events_by_topic().values()) == len(ids) + 1
        finally:
            app.close()
        rows = assert_views_equal_rebuild(store_url, tmp_path)
        assert rows["network"] >= len(ids) + 1  # a row per site at least
