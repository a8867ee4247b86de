"""kill -9 of the all-in-one server while producers post: every acknowledged event stays, once.

``practice-events serve`` runs on a SQLite store in a working directory;
four producers post batches of registrations over HTTP, each retrying a
batch that got no answer (the server died) or a 503 until it is answered
200, as the API asks producers to. The server is killed with SIGKILL at
random moments (in the middle of requests, group commits and projection
batches) and started again on the same store. In the end:

* every event of every batch is stored exactly once: produced = stored +
  duplicates, with no refusals in this input;
* an event answered ``duplicate`` belongs to a batch that was sent again
  after an attempt without answer, whose transaction had committed before
  the kill: a retry is a duplicate, never a double;
* the views the embedded runners built across the kills equal a rebuild.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e.browser import Server, start_server
from tests.faults import assert_views_equal_rebuild
from tests.harness import cloud_event
from tests.kafka_fixtures import open_app, wait_until

pytestmark = pytest.mark.slow

SOURCE = "urn:crash:producer"
SITE_REGISTERED = "practice.site.registered.v1"
PRODUCERS = 4
BATCH = 40
KILLS = 2
ENV = {"PRACTICE_EVENTS_HTTP_RATE_INGEST_PER_SECOND": "0"}


class Current:
    """The URL of the server now running (it changes with each restart: ``--port 0``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.lock = threading.Lock()


class Producer:
    """Posts batches of registrations under its own centre until stopped; retries until 200."""

    def __init__(self, number: int, current: Current, token: str) -> None:
        self.number = number
        self.current = current
        self.token = token
        self.batches: list[list[dict[str, Any]]] = []
        self.outcomes: dict[str, str] = {}
        self.retried: set[int] = set()  # batches sent more than once
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            centre = f"C-{self.number}"
            self._until_answered(
                [
                    cloud_event(
                        SITE_REGISTERED, centre, {"level": "centre", "name": centre}, source=SOURCE
                    )
                ]
            )
            n = 0
            while not self._stop.is_set():
                batch = [
                    cloud_event(
                        SITE_REGISTERED,
                        f"I-{self.number}-{n + i:05d}",
                        {"level": "institute", "parent_id": centre, "name": f"所 {n + i}"},
                        source=SOURCE,
                    )
                    for i in range(BATCH)
                ]
                n += BATCH
                self._until_answered(batch)
        except BaseException as exc:  # noqa: BLE001 - re-raised by stop()
            self.error = exc

    def _until_answered(self, batch: list[dict[str, Any]]) -> None:
        index = len(self.batches)
        attempts = 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            attempts += 1
            with self.current.lock:
                url = self.current.url
            try:
                answer = httpx.post(
                    url + "/v1/events:batch",
                    content=orjson.dumps(batch),
                    headers={
                        "Authorization": f"Bearer {self.token}",
                        "Content-Type": "application/cloudevents-batch+json",
                    },
                    timeout=30,
                )
            except httpx.HTTPError:
                answer = None
            if answer is not None and answer.status_code == 200:
                for result in answer.json()["results"]:
                    self.outcomes[result["id"]] = result["status"]
                self.batches.append(batch)
                if attempts > 1:
                    self.retried.add(index)
                return
            assert answer is None or answer.status_code == 503, answer.text
            time.sleep(0.2)
        msg = f"producer {self.number}: a batch got no answer for 120 s"
        raise AssertionError(msg)

    def start(self) -> Producer:
        """Start posting."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop after the batch in hand is answered."""
        self._stop.set()
        self._thread.join(150)
        assert not self._thread.is_alive()
        if self.error is not None:
            raise self.error

    def sent(self) -> list[dict[str, Any]]:
        """Every event this producer had answered, in order."""
        return [event for batch in self.batches for event in batch]


def kill_9(server: Server) -> None:
    """SIGKILL the server and reap it."""
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(10)


class TestServeCrash:
    def test_kill_9_of_serve_while_posting_stores_every_acknowledged_event_once(
        self, tmp_path: Path
    ) -> None:
        rng = random.Random(os.environ.get("PRACTICE_EVENTS_TEST_SEED", "serve-kill-9"))
        workdir = tmp_path / "serve"
        server = start_server(workdir, demo=False, env=ENV)
        store_url = f"sqlite:///{workdir / 'var' / 'practice-events.db'}"
        created = server.cli("tokens", "create", "--role", "producer", "--source", "urn:crash:*")
        assert created.returncode == 0, created.stderr
        token = created.stdout.strip()
        current = Current(server.url)
        producers = [Producer(n, current, token).start() for n in range(PRODUCERS)]
        try:
            for _ in range(KILLS):
                before = sum(len(p.batches) for p in producers)
                wait_until(
                    lambda before=before: sum(len(p.batches) for p in producers) >= before + 8,
                    timeout=60,
                    what="producers to get answers from the server",
                )
                time.sleep(rng.uniform(0.0, 1.0))  # a random moment of the traffic
                kill_9(server)
                server = start_server(workdir, demo=False, env=ENV)
                with current.lock:
                    current.url = server.url
            before = sum(len(p.batches) for p in producers)
            wait_until(
                lambda: sum(len(p.batches) for p in producers) >= before + 8,
                timeout=60,
                what="producers to go on after the last restart",
            )
        finally:
            for producer in producers:
                producer.stop()
        try:
            head = server.json("/readyz")["checks"]["store"]["last_position"]
            wait_until(
                lambda: all(
                    p["position"] >= head
                    for p in server.json("/readyz")["checks"]["projections"]["projections"].values()
                ),
                timeout=60,
                what="the embedded projections to reach the log head",
            )
        finally:
            assert server.stop() == 0, server.log_text()[-3000:]

        sent = [event for p in producers for event in p.sent()]
        ids = [str(event["id"]) for event in sent]
        assert len(set(ids)) == len(ids) >= BATCH * 8 * (KILLS + 1)
        outcomes = {i: s for p in producers for i, s in p.outcomes.items()}
        assert set(outcomes) == set(ids)
        assert set(outcomes.values()) <= {"accepted", "duplicate"}
        for producer in producers:
            for index, batch in enumerate(producer.batches):
                statuses = {producer.outcomes[str(e["id"])] for e in batch}
                if "duplicate" in statuses:
                    # a batch stored by an attempt whose answer the kill swallowed
                    assert index in producer.retried, (producer.number, index)
                    assert statuses == {"duplicate"}, "a batch is stored atomically"
        assert any(p.retried for p in producers), "no kill met a request in flight"
        accepted = sum(1 for s in outcomes.values() if s == "accepted")
        duplicates = sum(1 for s in outcomes.values() if s == "duplicate")

        app = open_app(store_url)
        try:
            keys = [(SOURCE, i) for i in ids]
            assert set(app.store.select_digests(keys)) == set(keys)
            # produced = stored + duplicates (nothing refused here); each stored once
            stored = app.store.count_ingested_keys()
            assert stored == accepted + duplicates == len(ids)
            assert sum(app.store.count_events_by_topic().values()) == stored
        finally:
            app.close()
        assert_views_equal_rebuild(store_url, tmp_path)
