"""Transient faults: the worker retries, reports itself not ready, and skips or repeats nothing.

Store outages are injected into a real worker on a real broker (the e2e
crash suite restarts the real PostgreSQL); the unreachable broker is real: the
worker starts before any broker listens on its port.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from eventsourcing.persistence import OperationalError

from consumers.worker import HealthServer, kafka_producer
from tests.integration.test_kafka_worker import assert_accounting, assert_stored_exactly
from tests.kafka_broker import TansuBroker, free_port
from tests.kafka_fixtures import (
    Produced,
    Topics,
    bad_messages,
    create_topics,
    dead_letters,
    fresh_topics,
    open_app,
    produce_kafka_python,
    running_worker,
    valid_stream,
    wait_for_offsets,
    wait_until,
)

pytestmark = [pytest.mark.kafka]


class Outage:
    """A switch that makes wrapped store calls fail like an unreachable database."""

    def __init__(self) -> None:
        self.down = threading.Event()
        self.failures = 0

    def wrap(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """Return ``func`` failing with OperationalError while the outage lasts."""

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if self.down.is_set():
                self.failures += 1
                msg = "connection refused (injected outage)"
                raise OperationalError(msg)
            return func(*args, **kwargs)

        return wrapper


def http_get(port: int, path: str) -> tuple[int, dict[str, Any]]:
    """GET a health endpoint; return status and JSON body."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return int(answer.status), orjson.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), orjson.loads(exc.read())


class TestStoreOutage:
    def test_retries_through_an_outage_without_skipping_or_repeating(
        self, kafka_broker: TansuBroker, topics: Topics, store_url: str
    ) -> None:
        outage = Outage()
        before = produce_kafka_python(topics.bootstrap, topics.topic, valid_stream(50))
        with running_worker(store_url, topics, backoff_initial_s=0.05) as running:
            recorder = running.app.recorder
            recorder.select_trackings = outage.wrap(recorder.select_trackings)
            running.pipeline.process = outage.wrap(running.pipeline.process)  # type: ignore[method-assign]
            wait_for_offsets(running.app, topics.topic, before.last_offsets)
            assert running.worker.ready

            outage.down.set()
            during = produce_kafka_python(
                topics.bootstrap, topics.topic, valid_stream(80) + bad_messages()
            )
            wait_until(lambda: outage.failures >= 3, what="the worker to retry")
            assert not running.worker.ready
            assert running.worker.stats.transient_faults >= 3
            outage.down.clear()

            wait_for_offsets(running.app, topics.topic, during.last_offsets)
            wait_until(lambda: running.worker.ready, what="the worker to be ready again")
            stats = running.worker.stats
        produced = Produced()
        produced.extend(before)
        produced.extend(during)
        assert_accounting(produced, stats)
        letters = dead_letters(topics.bootstrap, topics.dlq, produced.expected("rejected"))
        assert set(letters) == produced.invalid_positions
        app = open_app(store_url)
        try:
            assert_stored_exactly(app, produced)
        finally:
            app.close()


class FlakyProducer:
    """A real dead-letter producer whose first ``failures`` sends fail."""

    def __init__(self, real: Any, failures: int) -> None:
        self.real = real
        self.left = failures

    def send(self, *args: Any, **kwargs: Any) -> Any:
        """Fail while failures are left, then send for real."""
        if self.left > 0:
            self.left -= 1
            msg = "broker away (injected)"
            raise ConnectionError(msg)
        return self.real.send(*args, **kwargs)

    def flush(self, timeout: float | None = None) -> None:
        """Flush the real producer."""
        self.real.flush(timeout=timeout)

    def close(self, timeout: float | None = None) -> None:
        """Close the real producer."""
        self.real.close(timeout=timeout)


class TestDeadLetterTopicOutage:
    def test_does_not_commit_a_batch_whose_dead_letters_were_not_delivered(
        self, kafka_broker: TansuBroker, topics: Topics, sqlite_url: str
    ) -> None:
        produced = produce_kafka_python(
            topics.bootstrap, topics.topic, bad_messages() + valid_stream(40)
        )
        producers: list[FlakyProducer] = []

        def flaky(config: Any) -> FlakyProducer:
            producers.append(FlakyProducer(kafka_producer(config), failures=3))
            return producers[-1]

        with running_worker(
            sqlite_url, topics, backoff_initial_s=0.05, producer_factory=flaky
        ) as running:
            wait_for_offsets(running.app, topics.topic, produced.last_offsets)
            stats = running.worker.stats
        assert stats.transient_faults == 3
        assert producers[0].left == 0
        assert_accounting(produced, stats)
        letters = dead_letters(topics.bootstrap, topics.dlq, produced.expected("rejected"))
        assert set(letters) == produced.invalid_positions


class TestBrokerUnreachable:
    def test_waits_not_ready_until_the_broker_appears(self, tmp_path: Any, sqlite_url: str) -> None:
        port = free_port()
        topics = Topics(f"127.0.0.1:{port}", "late.events", "late.events.dlq", "late", 2)
        with running_worker(
            sqlite_url, topics, connect_timeout_ms=500, backoff_initial_s=0.1
        ) as running:
            health = HealthServer(running.worker, 0)
            health.start()
            try:
                assert http_get(health.port, "/healthz") == (200, {"status": "alive"})
                wait_until(
                    lambda: running.worker.stats.transient_faults >= 2,
                    what="connection attempts",
                )
                status, body = http_get(health.port, "/readyz")
                assert status == 503
                assert body["ready"] is False

                broker = TansuBroker(port=port, log_path=tmp_path / "late-tansu.log")
                broker.start()
                try:
                    create_topics(topics.bootstrap, [topics.topic], topics.partitions)
                    create_topics(topics.bootstrap, [topics.dlq], 1)
                    produced = produce_kafka_python(
                        topics.bootstrap, topics.topic, valid_stream(30) + bad_messages()
                    )
                    # Generous bound: the worker's back-off after the outage and, with two
                    # partitions, a partition held while a reference is in the other one
                    # (up to 10 s each) can add up on a loaded machine.
                    wait_for_offsets(
                        running.app, topics.topic, produced.last_offsets, timeout=120.0
                    )
                    wait_until(lambda: running.worker.ready, what="readiness")
                    status, body = http_get(health.port, "/readyz")
                    assert status == 200
                    assert body["ready"] is True
                    assert body["accepted"] == produced.expected("accepted")
                    assert body["rejected"] == produced.expected("rejected")
                    stats = running.worker.stats
                    running.stop()
                finally:
                    broker.stop()
            finally:
                health.close()
        assert_accounting(produced, stats)


class TestBrokerAwayMidRun:
    """The broker stops answering while the worker is in the middle of a stream.

    The broker process is frozen with SIGSTOP and thawed with SIGCONT: its
    sockets stay open but nothing answers, as when a broker host hangs or the
    network between them drops packets. (Tansu here keeps its data in memory
    only, so a kill and restart would lose the topic itself, which a real
    Kafka cluster would not.) The broker is this test's own, so freezing it
    disturbs no other test.
    """

    @pytest.mark.slow
    def test_rides_out_a_frozen_broker_and_repeats_nothing(
        self, tmp_path: Any, sqlite_url: str
    ) -> None:
        import os
        import signal

        broker = TansuBroker(log_path=tmp_path / "frozen-tansu.log")
        broker.start()
        try:
            assert broker.process is not None
            pid = broker.process.pid
            topics = fresh_topics(broker)
            produced = produce_kafka_python(
                topics.bootstrap, topics.topic, valid_stream(200) + bad_messages()
            )
            with running_worker(
                sqlite_url,
                topics,
                batch_size=50,
                backoff_initial_s=0.1,
                stall_s=2.0,  # not ready once a batch is stuck this long (default 5 s)
            ) as running:
                health = HealthServer(running.worker, 0)
                health.start()
                try:
                    wait_until(lambda: running.worker.stats.records > 0, what="the worker to work")
                    # Refusals all through, so that every batch publishes dead letters
                    # (waits for the broker) before it commits.
                    more = [m for _ in range(25) for m in valid_stream(80) + bad_messages()]
                    produced.extend(produce_kafka_python(topics.bootstrap, topics.topic, more))
                    os.kill(pid, signal.SIGSTOP)  # mid-stream: a batch's dead letters in flight
                    try:
                        wait_until(
                            lambda: http_get(health.port, "/readyz")[0] == 503,
                            timeout=30,
                            what="the worker to notice the broker is away",
                        )
                        assert http_get(health.port, "/healthz")[0] == 200  # alive all along
                        time.sleep(1.0)  # a while longer: the batch in hand stays stuck
                        assert not running.worker.ready
                    finally:
                        os.kill(pid, signal.SIGCONT)
                    produced.extend(
                        produce_kafka_python(
                            topics.bootstrap, topics.topic, valid_stream(100) + bad_messages()
                        )
                    )
                    wait_for_offsets(running.app, topics.topic, produced.last_offsets, timeout=90)
                    wait_until(lambda: running.worker.ready, timeout=60, what="readiness again")
                    stats = running.worker.stats
                finally:
                    health.close()
            # Thawed within the clients' timeouts, the stuck batch simply completes (a
            # longer outage ends in transient faults: see the broker-late and DLQ tests).
            assert_accounting(produced, stats)
            letters = dead_letters(topics.bootstrap, topics.dlq, produced.expected("rejected"))
            assert set(letters) == produced.invalid_positions
            app = open_app(sqlite_url)
            try:
                assert_stored_exactly(app, produced)
            finally:
                app.close()
        finally:
            broker.stop()
