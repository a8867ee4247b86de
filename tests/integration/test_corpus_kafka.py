"""The bad-input corpus over Kafka: a real broker (Tansu), the worker, the dead-letter topic.

Every case of ``tests/corpus/manifest.toml`` that applies to Kafka is
produced to a one-partition topic (so the setup events come first), each
followed by a valid event; one worker session takes them all, on PostgreSQL
(the store whose text columns refuse what SQLite keeps, such as U+0000).
Each refused record must be in the dead-letter topic, byte for byte, with
``dlq_code`` equal to the case's code and a ``dlq_reason``, and in the
rejections table; every valid event must be stored; and the accounting
holds: produced = stored + duplicates + dead-lettered. A last valid record,
produced after the corpus was taken, shows the worker still runs.
"""

from __future__ import annotations

from collections import Counter

import orjson
import pytest

from consumers.dlq import read_dead_letter
from tests.corpus import Case, Limits, canary, load
from tests.kafka_broker import TansuBroker
from tests.kafka_fixtures import (
    Message,
    RunningWorker,
    dead_letters,
    fresh_topics,
    open_app,
    produce_kafka_python,
    wait_for_offsets,
)

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

LIMITS = Limits(max_event_bytes=64 * 1024)
"""The worker's pipeline reads at most this much per record in this test (default 1 MiB)."""


def message(case: Case) -> Message:
    """The Kafka record of a corpus case, expecting the case's outcome."""
    sent = case.input("kafka", LIMITS)
    if sent.mode == "binary":
        headers = list(sent.headers)
    elif sent.content_type:
        headers = [("content-type", sent.content_type.encode())]
    else:
        headers = []
    value = sent.body if sent.body or sent.content_type else None  # no body, no type: a tombstone
    return Message(key=b"corpus", value=value, headers=headers, expect=case.expected("kafka"))


def good(body: bytes) -> Message:
    """A valid structured-mode record that must be stored."""
    event = orjson.loads(body)
    headers = [("content-type", b"application/cloudevents+json")]
    return Message(b"corpus", body, headers, "accepted", event["id"], event["source"])


@pytest.mark.slow
def test_dead_letters_every_kind_of_bad_input_with_its_code_and_keeps_going(
    kafka_broker: TansuBroker, pg_url: str
) -> None:
    corpus = load()
    cases = corpus.for_transport("kafka")
    assert len(cases) >= 50
    topics = fresh_topics(kafka_broker, partitions=1, prefix="corpus")
    messages = [good(body) for _, body in corpus.setup_for(cases)]
    for number, case in enumerate(cases):
        messages.append(message(case))
        messages.append(good(canary(number)))
    produced = produce_kafka_python(topics.bootstrap, topics.topic, messages)

    running = RunningWorker(pg_url, topics)
    running.pipeline.max_event_bytes = LIMITS.max_event_bytes
    running.start()
    try:
        wait_for_offsets(running.app, topics.topic, produced.last_offsets, timeout=60)
        # Nothing stopped: a record produced after the corpus is taken too.
        last = produce_kafka_python(topics.bootstrap, topics.topic, [good(canary(10_000))])
        wait_for_offsets(running.app, topics.topic, last.last_offsets, timeout=60)
        assert running.worker.ready
        stats = running.worker.stats
    finally:
        running.stop()
    produced.extend(last)

    # produced = stored + duplicates + dead-lettered, each as the corpus says.
    expected_codes = Counter(
        m.expect for m in produced.messages if m.expect not in ("accepted", "duplicate")
    )
    assert dict(stats.rejected) == dict(expected_codes)
    assert stats.accepted == produced.expected("accepted")
    assert stats.duplicate == produced.expected("duplicate")
    assert stats.dead_lettered == stats.rejected_total == sum(expected_codes.values())
    assert len(produced.messages) == stats.accepted + stats.duplicate + stats.dead_lettered
    assert stats.backdated == stats.accepted  # every event of the corpus is timed in 2024

    # Each refusal is a dead letter: the record byte for byte, its code, a reason.
    letters = dead_letters(topics.bootstrap, topics.dlq, stats.dead_lettered)
    assert set(letters) == produced.invalid_positions
    by_position = dict(zip(produced.positions, produced.messages, strict=True))
    for position, record in letters.items():
        original = by_position[position]
        info = read_dead_letter(record.headers)
        assert info["code"] == original.expect, (info, original)
        assert info["reason"], info
        assert (record.key, record.value) == (original.key, original.value)
        kept = [(n, v) for n, v in record.headers if not n.startswith("dlq_")]
        assert kept == [(n, v) for n, v in original.headers if not n.startswith("dlq_")]
        assert [n for n, _ in record.headers].count("dlq_code") == 1  # replaced, not repeated

    app = open_app(pg_url)
    try:
        rows = app.store.select_rejections(limit=1000)
        assert Counter(r["code"] for r in rows) == expected_codes
        assert {r["position"] for r in rows} == {
            f"{topics.topic}:{p}:{o}" for p, o in produced.invalid_positions
        }
        assert app.store.count_ingested_keys() == produced.expected("accepted")
        stored = app.store.select_digests(sorted(produced.valid_keys))
        assert len(stored) == produced.expected("accepted")
    finally:
        app.close()
