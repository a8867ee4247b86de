"""The Kafka worker against a real broker (Tansu) and real stores (SQLite and PostgreSQL).

Each scenario produces records whose fate is known in advance and checks the
accounting: produced = accepted + duplicates + dead-lettered, with the
stored set equal to the valid inputs and each refused input in the
dead-letter topic and the rejections table.
"""

from __future__ import annotations

from typing import Any

import pytest

from consumers.dlq import read_dead_letter
from consumers.worker import tracking_name
from tests.kafka_broker import TansuBroker
from tests.kafka_fixtures import (
    Produced,
    Topics,
    bad_messages,
    dead_letters,
    duplicate_of,
    open_app,
    produce_confluent,
    produce_kafka_python,
    running_worker,
    tracked_offsets,
    valid_stream,
    wait_for_offsets,
)

pytestmark = [pytest.mark.kafka]


def assert_accounting(produced: Produced, stats: Any) -> None:
    """produced = accepted + duplicates + dead-lettered, each as expected."""
    assert stats.accepted == produced.expected("accepted")
    assert stats.duplicate == produced.expected("duplicate")
    assert stats.rejected_total == produced.expected("rejected")
    assert stats.dead_lettered == produced.expected("rejected")
    assert len(produced.messages) == stats.accepted + stats.duplicate + stats.dead_lettered


def assert_stored_exactly(app: Any, produced: Produced) -> None:
    """The store holds every valid input once and nothing else."""
    found = app.store.select_digests(produced.all_keys)
    assert set(found) == produced.valid_keys
    assert app.store.count_ingested_keys() == len(produced.valid_keys)
    assert sum(app.store.count_events_by_topic().values()) == len(produced.valid_keys)


class TestIngestion:
    def test_stores_binary_and_structured_records_once_with_tracking(
        self, kafka_broker: TansuBroker, topics: Topics, store_url: str
    ) -> None:
        produced = produce_kafka_python(topics.bootstrap, topics.topic, valid_stream(300))
        with running_worker(store_url, topics) as running:
            wait_for_offsets(running.app, topics.topic, produced.last_offsets)
            stats = running.worker.stats
            assert running.worker.ready
        assert_accounting(produced, stats)
        app = open_app(store_url)
        try:
            assert_stored_exactly(app, produced)
            names = app.store.select_trackings("kafka:")
            assert set(names) == {tracking_name(topics.topic, p) for p in produced.last_offsets}
            assert tracked_offsets(app, topics.topic) == produced.last_offsets
        finally:
            app.close()

    def test_counts_a_producer_retry_as_a_duplicate(
        self, kafka_broker: TansuBroker, topics: Topics, sqlite_url: str
    ) -> None:
        messages = valid_stream(20)
        messages += [duplicate_of(messages[0]), duplicate_of(messages[7])]
        produced = produce_kafka_python(topics.bootstrap, topics.topic, messages)
        with running_worker(sqlite_url, topics) as running:
            wait_for_offsets(running.app, topics.topic, produced.last_offsets)
            stats = running.worker.stats
        assert stats.duplicate == 2
        assert_accounting(produced, stats)

    def test_takes_records_from_an_independent_client(
        self, kafka_broker: TansuBroker, topics: Topics, pg_url: str
    ) -> None:
        messages = valid_stream(100, mode="binary") + valid_stream(100, mode="structured")
        messages += bad_messages()
        produced = produce_confluent(topics.bootstrap, topics.topic, messages)
        with running_worker(pg_url, topics) as running:
            wait_for_offsets(running.app, topics.topic, produced.last_offsets)
            stats = running.worker.stats
        assert_accounting(produced, stats)
        app = open_app(pg_url)
        try:
            assert_stored_exactly(app, produced)
        finally:
            app.close()


class TestDeadLetters:
    def test_dead_letters_every_kind_of_bad_input_and_keeps_going(
        self, kafka_broker: TansuBroker, topics: Topics, store_url: str
    ) -> None:
        messages = bad_messages() + valid_stream(10)
        produced = produce_kafka_python(topics.bootstrap, topics.topic, messages)
        with running_worker(store_url, topics) as running:
            wait_for_offsets(running.app, topics.topic, produced.last_offsets)
            stats = running.worker.stats
        assert_accounting(produced, stats)
        assert dict(stats.rejected) == {
            "MALFORMED_JSON": 2,
            "UNKNOWN_TYPE": 1,
            "SCHEMA_VIOLATION": 1,
            "UNKNOWN_AGGREGATE": 1,
            "ILLEGAL_TRANSITION": 1,
        }

        letters = dead_letters(topics.bootstrap, topics.dlq, produced.expected("rejected"))
        assert set(letters) == produced.invalid_positions
        by_position = dict(zip(produced.positions, produced.messages, strict=True))
        for position, record in letters.items():
            original = by_position[position]
            info = read_dead_letter(record.headers)
            assert record.key == original.key
            assert record.value == original.value
            assert [h for h in record.headers if not h[0].startswith("dlq_")] == original.headers
            assert info["code"] == original.expect
            assert info["reason"]
            assert info["source_topic"] == topics.topic
            assert (info["source_partition"], info["source_offset"]) == position
            assert info["time"].endswith("Z")

        app = open_app(store_url)
        try:
            assert_stored_exactly(app, produced)
            rows = app.store.select_rejections(limit=100)
            assert sorted(r["code"] for r in rows) == sorted(
                m.expect for m in produced.messages if m.expect not in ("accepted", "duplicate")
            )
            assert {r["position"] for r in rows} == {
                f"{topics.topic}:{p}:{o}" for p, o in produced.invalid_positions
            }
            assert all(r["channel"] == "kafka" for r in rows)
        finally:
            app.close()


class TestPositions:
    def test_resumes_from_the_store_not_from_kafkas_committed_offsets(
        self, kafka_broker: TansuBroker, topics: Topics, sqlite_url: str, tmp_path: Any
    ) -> None:
        first = produce_kafka_python(topics.bootstrap, topics.topic, valid_stream(60))
        with running_worker(sqlite_url, topics) as running:
            wait_for_offsets(running.app, topics.topic, first.last_offsets)
            first_stats = running.worker.stats
        assert_accounting(first, first_stats)

        # Rewind the group's committed offsets to 0, as if Kafka had lost them.
        rewind_group(topics, first.last_offsets)
        second = produce_kafka_python(
            topics.bootstrap, topics.topic, valid_stream(30) + bad_messages()
        )
        with running_worker(sqlite_url, topics) as running:
            wait_for_offsets(running.app, topics.topic, second.last_offsets)
            second_stats = running.worker.stats
        # Nothing of the first run was read again: it would count as duplicates.
        assert_accounting(second, second_stats)

        # A fresh store with the same group: Kafka says "all done", the store
        # says "nothing yet"; the store wins and everything is ingested.
        fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
        everything = Produced()
        everything.extend(first)
        everything.extend(second)
        with running_worker(fresh, topics) as running:
            wait_for_offsets(running.app, topics.topic, everything.last_offsets)
            fresh_stats = running.worker.stats
        assert_accounting(everything, fresh_stats)
        app = open_app(fresh)
        try:
            assert_stored_exactly(app, everything)
        finally:
            app.close()


def rewind_group(topics: Topics, partitions: dict[int, int]) -> None:
    """Commit offset 0 for every partition of the group (as a lost or reset commit would)."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    consumer = KafkaConsumer(
        bootstrap_servers=topics.bootstrap,
        group_id=topics.group,
        enable_auto_commit=False,
    )
    try:
        tps = [TopicPartition(topics.topic, p) for p in range(topics.partitions)]
        consumer.assign(tps)
        consumer.commit({tp: OffsetAndMetadata(0, "", -1) for tp in tps})
        assert all(consumer.committed(tp) == 0 for tp in tps)
    finally:
        consumer.close(autocommit=False)
