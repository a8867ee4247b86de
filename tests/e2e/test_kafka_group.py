"""Worker processes joining and leaving one consumer group mid-run store every record once.

Two ``python -m consumers.worker`` processes share a four-partition topic
into one PostgreSQL store while records keep arriving: the second joins the
group mid-run and later leaves it the hard way, killed with SIGKILL in the
middle of its work (a graceful leave is covered by
``tests/integration/test_kafka_rebalance.py``). Partitions move at each
change, and each process positions what it receives from the store, so at
the end the stored set equals the valid inputs exactly and every refusal is
in the dead-letter topic once.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.e2e.test_kafka_crash import WorkerProcess, assert_exact
from tests.integration.test_kafka_rebalance import Stream
from tests.kafka_broker import TansuBroker, free_port
from tests.kafka_fixtures import fresh_topics, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def counters(worker: WorkerProcess) -> dict[str, Any]:
    """The worker's counters from its ``/readyz`` (empty while the server is not up)."""
    url = f"http://127.0.0.1:{worker.health_port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            body: dict[str, Any] = orjson.loads(answer.read())
    except urllib.error.HTTPError as exc:  # 503 while not ready: the same counters
        body = orjson.loads(exc.read())
    except OSError:
        return {}
    return body


def records(worker: WorkerProcess) -> int:
    """How many records the worker has committed so far."""
    return int(counters(worker).get("records", 0))


class TestGroupMembership:
    def test_a_process_joining_then_crashing_mid_run_stores_each_record_once(
        self, kafka_broker: TansuBroker, pg_url: str, tmp_path: Path
    ) -> None:
        topics = fresh_topics(kafka_broker, partitions=4)
        stream = Stream(topics.bootstrap, topics.topic).start()

        def worker(name: str) -> WorkerProcess:
            return WorkerProcess(
                pg_url, topics, tmp_path / f"{name}.log", batch_size=50, health_port=free_port()
            )

        first = worker("first")
        started: list[WorkerProcess] = [first]
        try:
            wait_until(lambda: records(first) > 200, timeout=60, what="the first worker to work")
            second = worker("second")
            started.append(second)
            wait_until(lambda: records(second) > 100, timeout=60, what="the second to join")
            second.kill()  # in the middle of its work: no goodbye, its batch in hand is lost
            before = records(first)
            wait_until(
                lambda: records(first) > before + 200,
                timeout=60,
                what="the first worker to take every partition back",
            )
            produced = stream.stop()
            assert_exact(pg_url, topics, produced)
            assert first.terminate() == 0, first.log()
        finally:
            stream.stop()
            for process in started:
                process.ensure_dead()
        assert "Traceback" not in first.log()
