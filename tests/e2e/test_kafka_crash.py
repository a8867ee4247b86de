"""The worker as a process: a signal stops it cleanly; kill -9 and database restarts lose nothing.

The worker runs as ``python -m consumers.worker`` against the suite's Tansu
broker. Records are produced in waves; the worker is killed with SIGKILL at
random moments while it ingests and started again, or PostgreSQL is
restarted under it. At the end the stored set equals the valid inputs
exactly (no loss, no duplicate) and every invalid input is in the
dead-letter topic.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

import orjson
import pytest

from tests.faults import assert_views_equal_rebuild
from tests.kafka_broker import TansuBroker, free_port
from tests.kafka_fixtures import (
    Produced,
    Topics,
    bad_messages,
    dead_letters,
    duplicate_of,
    fresh_topics,
    open_app,
    produce_kafka_python,
    tracked_offsets,
    valid_stream,
    wait_for_offsets,
    wait_until,
)

pytestmark = [pytest.mark.kafka]

ROOT = Path(__file__).resolve().parents[2]

KILLS = 3
"""kill -9 rounds per store (each costs a group rejoin, ~8 s with Tansu)."""


class WorkerProcess:
    """``python -m consumers.worker`` as a child process with its log in a file."""

    def __init__(
        self,
        store_url: str,
        topics: Topics,
        log_path: Path,
        batch_size: int = 50,
        health_port: int | None = None,
    ) -> None:
        self.log_path = log_path
        self.health_port = health_port
        extra = ["--health-port", str(health_port)] if health_port is not None else []
        env = dict(os.environ)
        env["PRACTICE_EVENTS_LOG_FORMAT"] = "json"
        env.pop("PRACTICE_EVENTS_CONFIG", None)
        self._log: IO[bytes] = log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "consumers.worker",
                "--kafka",
                topics.bootstrap,
                "--topic",
                topics.topic,
                "--group",
                topics.group,
                "--dlq-topic",
                topics.dlq,
                "--batch-size",
                str(batch_size),
                "--max-wait-ms",
                "50",
                "--session-timeout-ms",
                "3000",  # a killed member is evicted sooner, so restarts rejoin sooner
                "--store",
                store_url,
                *extra,
            ],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=self._log,
            start_new_session=True,
        )

    def kill(self) -> None:
        """kill -9: no clean-up of any kind."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self._log.close()

    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send ``sig`` and return the exit code."""
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        finally:
            self._log.close()

    def ensure_dead(self) -> None:
        """Kill the process if a failed test left it running."""
        if self.process.poll() is None:
            self.kill()

    def log(self) -> str:
        """The process's log so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def readiness(self) -> int | None:
        """HTTP status of ``/readyz`` (None while the server is not up)."""
        assert self.health_port is not None
        url = f"http://127.0.0.1:{self.health_port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return None


def wave(size: int) -> list[Any]:
    """A wave of valid records with bad ones and a producer retry mixed in."""
    messages = valid_stream(size)
    bad = bad_messages()
    step = max(1, len(messages) // len(bad))
    for index, message in enumerate(bad):
        messages.insert(min(len(messages), index * step + index), message)
    messages.append(duplicate_of(messages[-1]))
    return messages


def progress(app: Any, topic: str) -> int:
    """Total tracked offsets of the topic (grows as the worker commits)."""
    return sum(off + 1 for off in tracked_offsets(app, topic).values())


def assert_exact(store_url: str, topics: Topics, produced: Produced) -> None:
    """Stored set == valid inputs, each once; every invalid input in the DLQ."""
    app = open_app(store_url)
    try:
        wait_for_offsets(app, topics.topic, produced.last_offsets, timeout=60)
        found = app.store.select_digests(produced.all_keys)
        assert set(found) == produced.valid_keys
        assert app.store.count_ingested_keys() == len(produced.valid_keys)
        assert sum(app.store.count_events_by_topic().values()) == len(produced.valid_keys)
        rejected = app.store.count_rejections()
        assert sum(rejected.values()) == produced.expected("rejected")
    finally:
        app.close()
    letters = dead_letters(topics.bootstrap, topics.dlq, produced.expected("rejected"))
    assert set(letters) == produced.invalid_positions
    assert len(produced.messages) == (
        len(produced.valid_keys) + produced.expected("duplicate") + len(letters)
    )


class TestShutdown:
    @pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
    def test_a_signal_stops_the_worker_cleanly_with_exit_0(
        self, kafka_broker: TansuBroker, sqlite_url: str, tmp_path: Path, sig: int
    ) -> None:
        topics = fresh_topics(kafka_broker)
        produced = produce_kafka_python(topics.bootstrap, topics.topic, wave(150))
        worker = WorkerProcess(sqlite_url, topics, tmp_path / "worker.log")
        try:
            app = open_app(sqlite_url)
            try:
                wait_for_offsets(app, topics.topic, produced.last_offsets, timeout=60)
            finally:
                app.close()
            assert worker.terminate(sig) == 0, worker.log()
        finally:
            worker.ensure_dead()
        log = worker.log()
        assert '"worker_stopped"' in log
        assert "Traceback" not in log
        assert_exact(sqlite_url, topics, produced)


@pytest.mark.slow
class TestCrashes:
    def test_kill_9_at_random_moments_loses_and_repeats_nothing(
        self, kafka_broker: TansuBroker, store_url: str, tmp_path: Path
    ) -> None:
        rng = random.Random(os.environ.get("PRACTICE_EVENTS_TEST_SEED", "kill-9"))
        topics = fresh_topics(kafka_broker)
        produced = Produced()
        app = open_app(store_url)
        kills = 0
        try:
            for round_no in range(KILLS):
                produced.extend(produce_kafka_python(topics.bootstrap, topics.topic, wave(1500)))
                before = progress(app, topics.topic)
                worker = WorkerProcess(store_url, topics, tmp_path / f"worker-{round_no}.log")
                try:

                    def moved(before: int = before) -> bool:
                        return progress(app, topics.topic) > before

                    wait_until(moved, timeout=60, what="the restarted worker to make progress")
                    time.sleep(rng.uniform(0.0, 0.4))  # a random point inside the ingestion
                    worker.kill()
                    kills += 1
                finally:
                    worker.ensure_dead()
            produced.extend(produce_kafka_python(topics.bootstrap, topics.topic, wave(300)))
            final = WorkerProcess(store_url, topics, tmp_path / "worker-final.log")
            try:
                wait_for_offsets(app, topics.topic, produced.last_offsets, timeout=90)
                assert final.terminate() == 0, final.log()
            finally:
                final.ensure_dead()
        finally:
            app.close()
        assert kills == KILLS
        assert_exact(store_url, topics, produced)

    @pytest.mark.serial  # stops the whole PostgreSQL cluster: never beside another test
    def test_a_postgresql_restart_mid_run_loses_and_repeats_nothing(
        self, kafka_broker: TansuBroker, pg_url: str, tmp_path: Path
    ) -> None:
        topics = fresh_topics(kafka_broker)
        produced = produce_kafka_python(topics.bootstrap, topics.topic, wave(3000))
        worker = WorkerProcess(
            pg_url, topics, tmp_path / "worker.log", batch_size=20, health_port=free_port()
        )
        try:
            app = open_app(pg_url)
            try:
                wait_until(lambda: progress(app, topics.topic) > 200, timeout=60, what="progress")
            finally:
                app.close()
            postgresql("stop")
            try:
                # Records keep coming while the store is down.
                produced.extend(produce_kafka_python(topics.bootstrap, topics.topic, wave(300)))
                wait_until(
                    lambda: worker.readiness() == 503 or '"worker_transient_fault"' in worker.log(),
                    timeout=30,
                    what="the worker to notice the outage",
                )
            finally:
                postgresql("start")
            app = open_app(pg_url)
            try:
                wait_for_offsets(app, topics.topic, produced.last_offsets, timeout=120)
            finally:
                app.close()
            wait_until(lambda: worker.readiness() == 200, what="the worker to be ready again")
            assert worker.terminate() == 0, worker.log()
        finally:
            worker.ensure_dead()
        assert_exact(pg_url, topics, produced)


def postgresql(action: str) -> None:
    """Stop the local PostgreSQL cluster (dropping every connection), or start it if down."""
    if action == "start":
        subprocess.run(["bash", str(ROOT / "scripts" / "ensure-postgres.sh")], check=True)
        return
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action],
        check=True,
        capture_output=True,
    )


# -- a long run: 200,000 demo events, ten kill points, projections killed too ----------------

LONG_RUN_EVENTS = 200_000
LONG_RUN_KILLS = 10
RUNNER_KILLS = 3
RUNNER_COMMAND = (sys.executable, "-m", "practice_events.cli", "projections", "run")


class RunnerProcess:
    """``practice-events projections run`` as a child process, its log in a file."""

    def __init__(self, store_url: str, log_path: Path) -> None:
        env = dict(os.environ)
        env["PRACTICE_EVENTS_LOG_FORMAT"] = "json"
        env.pop("PRACTICE_EVENTS_CONFIG", None)
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("ab")
        self.process = subprocess.Popen(
            [*RUNNER_COMMAND, "--store", store_url, "--batch-size", "2000"],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=self._log,
            start_new_session=True,
        )

    def kill(self) -> None:
        """kill -9."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self._log.close()

    def terminate(self) -> int:
        """SIGTERM; return the exit code."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(60)
        finally:
            self._log.close()

    def ensure_dead(self) -> None:
        """Kill the process if a failed test left it running."""
        if self.process.poll() is None:
            self.kill()


def produce_lines(bootstrap: str, topic: str, path: Path) -> int:
    """Produce every line of a JSON Lines file, in order, to partition 0; return the count.

    Keyed by subject like a producer would; a line that is not a JSON object
    (the generator's malformed ones) goes as it is. Fails unless line ``i``
    landed at offset ``i``.
    """
    from confluent_kafka import Producer

    producer = Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 20, "enable.idempotence": True}
    )
    landed: list[int] = []
    errors: list[str] = []

    def delivered(err: Any, msg: Any) -> None:
        if err is not None:
            errors.append(str(err))
        else:
            landed.append(int(msg.offset()))

    count = 0
    with path.open("rb") as lines:
        for raw in lines:
            line = raw.rstrip(b"\n")
            try:
                obj = orjson.loads(line)
                key = str(obj.get("subject", "")).encode() if isinstance(obj, dict) else b"junk"
            except orjson.JSONDecodeError:
                key = b"junk"
            while True:
                try:
                    producer.produce(
                        topic,
                        value=line,
                        key=key or None,
                        partition=0,
                        headers=[("content-type", b"application/cloudevents+json")],
                        on_delivery=delivered,
                    )
                    break
                except BufferError:
                    producer.poll(0.05)
            count += 1
            if count % 5000 == 0:
                producer.poll(0)
    producer.flush(120)
    assert not errors, errors[:5]
    assert landed == list(range(count)), "lines did not land in order"
    return count


def expected_fates(path: Path) -> tuple[set[tuple[str, str]], dict[int, str]]:
    """From the generator's tags: the keys that must be stored, and the code of each bad line."""
    from practice_events.demo.dirty import DUPLICATE

    stored: set[tuple[str, str]] = set()
    refused: dict[int, str] = {}
    with path.open("rb") as lines:
        for offset, raw in enumerate(lines):
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                refused[offset] = "MALFORMED_JSON"
                continue
            if not isinstance(obj, dict):
                refused[offset] = "MALFORMED_JSON"
                continue
            tag = obj.get("pedirty")
            if tag is None:
                stored.add((obj["source"], obj["id"]))
            elif tag != DUPLICATE:
                refused[offset] = str(tag)
    return stored, refused


class ViewLag:
    """How far the slowest view is behind the log head, read from both stores."""

    def __init__(self, store_url: str) -> None:
        from projections.viewstore import ViewStore, default_view_url

        self.app = open_app(store_url)
        self.views = ViewStore(default_view_url(store_url))

    def __call__(self) -> int:
        """Events between the log head and the lowest projection position."""
        positions = [int(r["position"]) for r in self.views.positions().values()]
        return int(self.app.last_position()) - min(positions, default=0)

    def wait_behind(self, timeout: float = 30.0) -> int:
        """Wait until some view lags behind the log; return by how many events."""
        deadline = time.monotonic() + timeout
        while (behind := self()) == 0:
            assert time.monotonic() < deadline, "the views never lagged"
            time.sleep(0.01)
        return behind

    def close(self) -> None:
        """Close both stores."""
        self.views.close()
        self.app.close()


@pytest.mark.slow
class TestLongRun:
    def test_kill_9_at_ten_points_of_a_200k_event_run_then_views_equal_a_rebuild(
        self, kafka_broker: TansuBroker, sqlite_url: str, tmp_path: Path
    ) -> None:
        """The worker is killed at ten random points and the runners at three; nothing is lost.

        The input is the demo district (``demo generate``) with 1 % bad lines
        whose fates the generator tags, on a one-partition topic (its events
        refer across aggregates, so their order must hold). Each restarted
        worker joins a fresh consumer group: it positions itself from the
        store either way, and a fresh group spares the wait for the killed
        member's eviction (the same-group restart is the test above).
        """
        from practice_events.demo.generator import write_jsonl

        rng = random.Random(os.environ.get("PRACTICE_EVENTS_TEST_SEED", "long-run"))
        path = tmp_path / "demo.jsonl"
        summary = write_jsonl(path, seed=11, events=LONG_RUN_EVENTS, dirty=0.01)
        assert summary.expected is not None
        must_store, must_refuse = expected_fates(path)
        topics = fresh_topics(kafka_broker, partitions=1)
        lines = produce_lines(topics.bootstrap, topics.topic, path)
        assert lines == summary.lines >= LONG_RUN_EVENTS

        targets = sorted(rng.sample(range(lines // 50, lines - lines // 50), LONG_RUN_KILLS))
        runner_kills = set(rng.sample(range(LONG_RUN_KILLS), RUNNER_KILLS))
        runner = RunnerProcess(sqlite_url, tmp_path / "runner-0.log")
        killed_behind: list[int] = []
        app = open_app(sqlite_url)
        lag = ViewLag(sqlite_url)
        try:
            for round_no, target in enumerate(targets):
                group = Topics(
                    topics.bootstrap, topics.topic, topics.dlq, f"{topics.group}-{round_no}", 1
                )
                worker = WorkerProcess(
                    sqlite_url, group, tmp_path / f"worker-{round_no}.log", batch_size=1000
                )
                try:

                    def reached(target: int = target) -> bool:
                        return progress(app, topics.topic) >= target

                    wait_until(reached, timeout=120, what=f"the worker to pass offset {target}")
                    if round_no in runner_kills:
                        # kill -9 the runner while it catches up with what the worker stores
                        behind = lag.wait_behind()
                        runner.kill()
                        killed_behind.append(behind)
                        runner = RunnerProcess(sqlite_url, tmp_path / f"runner-{round_no}.log")
                    time.sleep(rng.uniform(0.0, 0.5))  # somewhere inside the next batch
                    worker.kill()
                finally:
                    worker.ensure_dead()
            final = WorkerProcess(
                sqlite_url,
                Topics(topics.bootstrap, topics.topic, topics.dlq, f"{topics.group}-final", 1),
                tmp_path / "worker-final.log",
                batch_size=1000,
            )
            try:
                wait_for_offsets(app, topics.topic, {0: lines - 1}, timeout=180)
                assert final.terminate() == 0, final.log()[-3000:]
            finally:
                final.ensure_dead()
            wait_until(lambda: lag() == 0, timeout=300, what="the views to catch up")
            assert runner.terminate() == 0
        finally:
            runner.ensure_dead()
            lag.close()
            app.close()
        assert len(killed_behind) == RUNNER_KILLS  # each runner died with work in hand

        # produced = stored + duplicates + dead-lettered, each line with its tagged fate
        expected = summary.expected
        app = open_app(sqlite_url)
        try:
            assert app.store.count_ingested_keys() == len(must_store) == expected["clean"]
            keys = sorted(must_store)
            assert len(app.store.select_digests(keys)) == len(keys)
            assert app.store.count_rejections() == expected["expected_rejections_by_code"]
        finally:
            app.close()
        letters = dead_letters(topics.bootstrap, topics.dlq, len(must_refuse))
        assert {offset: read_code(r) for (_, offset), r in letters.items()} == must_refuse
        assert lines == len(must_store) + expected["expected_duplicates"] + len(letters)

        # projections = rebuild: the views the killed runners built, against a fresh rebuild
        compared = assert_views_equal_rebuild(sqlite_url, tmp_path, jobs=2)
        assert sum(compared.values()) > 0


def read_code(record: Any) -> str:
    """The refusal code a dead letter carries."""
    from consumers.dlq import read_dead_letter

    return str(read_dead_letter(record.headers)["code"])
