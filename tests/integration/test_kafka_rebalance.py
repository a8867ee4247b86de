"""Rebalances: a second worker joins the group mid-stream and later leaves; nothing is stored twice.

Partitions move between the workers while records keep arriving. Each worker
positions the partitions it receives from the store, so the handover neither
repeats nor skips a record: the two workers' counts add up to exactly what was
produced, and the dead-letter topic holds each refusal once.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.integration.test_kafka_worker import assert_stored_exactly
from tests.kafka_broker import TansuBroker
from tests.kafka_fixtures import (
    Produced,
    RunningWorker,
    bad_messages,
    duplicate_of,
    fresh_topics,
    open_app,
    produce_kafka_python,
    read_topic,
    valid_stream,
    wait_for_offsets,
    wait_until,
)

pytestmark = [pytest.mark.kafka]


class Stream:
    """Produces chunks of records on a thread until stopped, remembering where each landed."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.produced = Produced()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                messages = valid_stream(60) + bad_messages()
                messages.append(duplicate_of(messages[3]))
                self.produced.extend(produce_kafka_python(self.bootstrap, self.topic, messages))
                time.sleep(0.05)  # a steady trickle, not a burst
        except BaseException as exc:  # noqa: BLE001 - re-raised by stop()
            self.error = exc

    def start(self) -> Stream:
        """Start producing."""
        self._thread.start()
        return self

    def stop(self) -> Produced:
        """Stop producing; return everything produced."""
        self._stop.set()
        self._thread.join(60)
        if self.error is not None:
            raise self.error
        return self.produced


class TestRebalance:
    def test_a_worker_joining_and_leaving_stores_nothing_twice(
        self, kafka_broker: TansuBroker, store_url: str
    ) -> None:
        topics = fresh_topics(kafka_broker, partitions=4)
        first = RunningWorker(store_url, topics).start()
        second: RunningWorker | None = None
        stream = Stream(topics.bootstrap, topics.topic).start()
        try:
            wait_until(lambda: first.worker.stats.records > 200, what="the first worker to work")

            second = RunningWorker(store_url, topics).start()
            wait_until(
                lambda: second is not None and second.worker.stats.records > 100,
                timeout=40,
                what="the second worker to receive partitions and work",
            )
            assert first.worker.positions, "the first worker kept some partitions"
            assert len(first.worker.positions) < topics.partitions
            second.stop()

            wait_until(
                lambda: len(first.worker.positions) == topics.partitions,
                timeout=40,
                what="the first worker to take every partition back",
            )
            produced = stream.stop()
            wait_for_offsets(first.app, topics.topic, produced.last_offsets, timeout=60)
        finally:
            stream.stop()
            first.stop()
            if second is not None:
                second.stop()

        a, b = first.worker.stats, second.worker.stats
        assert a.rebalances >= 2
        assert b.records > 0
        assert a.accepted + b.accepted == produced.expected("accepted")
        assert a.duplicate + b.duplicate == produced.expected("duplicate")
        assert a.dead_lettered + b.dead_lettered == produced.expected("rejected")
        assert len(produced.messages) == (
            a.accepted + b.accepted + a.duplicate + b.duplicate + a.dead_lettered + b.dead_lettered
        )

        letters = read_topic(topics.bootstrap, topics.dlq, produced.expected("rejected"))
        assert len(letters) == produced.expected("rejected"), "each refusal dead-lettered once"
        app = open_app(store_url)
        try:
            assert_stored_exactly(app, produced)
        finally:
            app.close()
