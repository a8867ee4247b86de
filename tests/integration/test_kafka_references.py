"""References across partitions: a record whose reference is in another partition waits for it.

A station names its parent site. When the parent's registration sits in
another partition that the worker has not stored yet, the worker holds the
station's partition back (later records of that partition wait behind it)
while the other partitions go on, and stores the station once its parent is
there. A reference that never arrives is dead-lettered as
``UNKNOWN_REFERENCE`` after ``reference_wait_ms``. Either way every record
ends exactly once: stored, or refused and dead-lettered.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest

from tests.kafka_broker import TansuBroker
from tests.kafka_fixtures import (
    Message,
    Topics,
    binary,
    centre,
    dead_letters,
    event,
    fresh_topics,
    open_app,
    renamed,
    running_worker,
    structured,
    tracked_offsets,
    wait_until,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

WAIT_MS = 4000
"""The worker's reference wait in this test: long enough for a parent produced on cue."""


def station(subject: str, parent: str) -> Message:
    """A station registration naming ``parent``."""
    return structured(
        event(
            "practice.site.registered.v1",
            subject,
            {"level": "station", "parent_id": parent, "name": subject},
        )
    )


def produce_to(topics: Topics, partition: int, messages: Sequence[Message]) -> list[int]:
    """Produce ``messages`` in order into one partition; return their offsets."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=topics.bootstrap, acks="all", linger_ms=5)
    try:
        futures = [
            producer.send(
                topics.topic, key=m.key, value=m.value, headers=m.headers, partition=partition
            )
            for m in messages
        ]
        producer.flush()
        return [f.get(timeout=30).offset for f in futures]
    finally:
        producer.close()


class TestReferencesAcrossPartitions:
    def test_a_partition_waits_for_a_reference_from_another_and_gives_up_in_time(
        self, kafka_broker: TansuBroker, sqlite_url: str
    ) -> None:
        topics = fresh_topics(kafka_broker, partitions=2)
        with running_worker(sqlite_url, topics, reference_wait_ms=WAIT_MS) as running:
            stats = running.worker.stats
            # The station and its rename reach partition 1 before the parent exists anywhere.
            held = produce_to(topics, 1, [station("S-1", "C-1"), binary(renamed("S-1", "站一"))])
            wait_until(lambda: stats.reference_holds >= 1, what="partition 1 to be held")
            # Partition 0 keeps flowing meanwhile.
            other = produce_to(topics, 0, [structured(centre("C-0"))])
            wait_until(
                lambda: tracked_offsets(running.app, topics.topic).get(0, -1) >= other[0],
                what="partition 0 to be stored while partition 1 waits",
            )
            assert tracked_offsets(running.app, topics.topic).get(1, -1) < held[0]
            # The parent arrives in partition 0: the station, then its rename, are stored.
            produce_to(topics, 0, [structured(centre("C-1"))])
            wait_until(
                lambda: tracked_offsets(running.app, topics.topic).get(1, -1) >= held[1],
                timeout=WAIT_MS / 1000 + 20,
                what="the held station to be stored",
            )
            # A parent that never comes: the station waits WAIT_MS, then is dead-lettered;
            # the record behind it in its partition follows.
            started = time.monotonic()
            lost = produce_to(topics, 1, [station("S-2", "NOWHERE"), structured(centre("C-2"))])
            wait_until(
                lambda: tracked_offsets(running.app, topics.topic).get(1, -1) >= lost[1],
                timeout=WAIT_MS / 1000 + 30,
                what="the unresolved station to be dead-lettered",
            )
            waited = time.monotonic() - started
            accepted, rejected = stats.accepted, dict(stats.rejected)

        assert accepted == 5  # C-0, C-1, S-1, its rename and C-2, each once
        assert rejected == {"UNKNOWN_REFERENCE": 1}
        assert waited >= WAIT_MS / 1000
        letters = dead_letters(topics.bootstrap, topics.dlq, 1)
        assert set(letters) == {(1, lost[0])}
        app = open_app(sqlite_url)
        try:
            assert app.store.count_ingested_keys() == 5
            assert app.store.count_rejections() == {"UNKNOWN_REFERENCE": 1}
        finally:
            app.close()

    @pytest.mark.xfail(
        strict=True,
        reason="known bug (issue 4, session 4): a valid record whose reference sits behind a "
        "dangling one in another partition times out with it and is dead-lettered",
    )
    def test_a_reference_queued_behind_a_dangling_one_is_not_lost(
        self, kafka_broker: TansuBroker, sqlite_url: str
    ) -> None:
        wait_ms = 2000
        topics = fresh_topics(kafka_broker, partitions=2)
        with running_worker(sqlite_url, topics, reference_wait_ms=wait_ms) as running:
            stats = running.worker.stats
            # Partition 0: a valid station naming C-3, whose registration comes later.
            waiting = produce_to(topics, 0, [station("S-3", "C-3")])
            wait_until(lambda: stats.reference_holds >= 1, what="partition 0 to be held")
            time.sleep(0.3)
            # Partition 1: a station naming a parent that never exists, then C-3 behind it.
            behind = produce_to(topics, 1, [station("S-2", "NOWHERE"), structured(centre("C-3"))])

            def settled() -> bool:
                offsets = tracked_offsets(running.app, topics.topic)
                return offsets.get(1, -1) >= behind[1] and offsets.get(0, -1) >= waiting[0]

            wait_until(settled, timeout=wait_ms / 1000 + 40, what="both partitions to settle")
            accepted, rejected = stats.accepted, dict(stats.rejected)
        # Only S-2 names an aggregate that never exists; S-3 and C-3 are valid.
        assert (accepted, rejected) == (2, {"UNKNOWN_REFERENCE": 1})
