"""HTTP ingestion over a real socket, on a real SQLite file and on real PostgreSQL.

A producer posts CloudEvents to ``/v1/events`` and ``/v1/events:batch`` with
its bearer token and gets, per event, accepted / duplicate / rejected with a
code, and the log position for read-your-writes. These scenarios run the
real app under uvicorn and talk to it with httpx.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from eventsourcing.persistence import OperationalError

from practice_events.api.app import HttpLimits
from practice_events.api.ingest import IngestThread
from practice_events.config import Settings
from practice_events.errors import TransientError
from practice_events.ingest.pipeline import BatchResult, Outcome, RawInput
from tests.conftest import create_database, drop_database
from tests.factories_api import (
    CE_BATCH,
    CE_JSON,
    SITE_DEACTIVATED,
    TEST_LIMITS,
    LiveServer,
    centre,
    institute,
    live_server,
)
from tests.harness import PLAIN_HTTP, cloud_event

SOURCE = "urn:test:checkin"


@pytest.fixture
def server(store_url: str) -> Iterator[LiveServer]:
    """The app on a free port over a fresh store."""
    with live_server(Settings(store=store_url)) as live:
        yield live


@pytest.fixture
def token(server: LiveServer) -> str:
    """A producer token bound to every source under ``urn:test:``."""
    return server.runtime_or_fail().tokens.issue("producer", sources=["urn:test:*"]).secret


@pytest.fixture
def client(server: LiveServer, token: str) -> Iterator[httpx.Client]:
    """An HTTP client that presents the producer token."""
    with httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
        verify=PLAIN_HTTP,
    ) as http:
        yield http


def post(client: httpx.Client, event: Any, content_type: str = CE_JSON) -> httpx.Response:
    """Post one structured-mode event."""
    return client.post(
        "/v1/events", content=orjson.dumps(event), headers={"content-type": content_type}
    )


def post_batch(client: httpx.Client, events: list[Any]) -> httpx.Response:
    """Post a batch of structured-mode events."""
    return client.post(
        "/v1/events:batch", content=orjson.dumps(events), headers={"content-type": CE_BATCH}
    )


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Check that the answer is a problem document with this status and code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code, body
    assert body["detail"]
    assert body["type"].startswith("urn:practice-events:problem:")
    return body


def stored_keys(server: LiveServer) -> int:
    """How many CloudEvents the store has accepted."""
    return server.runtime_or_fail().store.store.count_ingested_keys()


class TestSingleEvent:
    def test_accepts_a_structured_event_and_tells_its_position(
        self, client: httpx.Client, server: LiveServer
    ) -> None:
        response = post(client, centre(source=SOURCE, event_id="e-1"))
        assert response.status_code == 202, response.text
        body = response.json()
        assert body["status"] == "accepted"
        assert (body["id"], body["source"], body["subject"]) == ("e-1", SOURCE, "C-1")
        assert body["position"] == server.runtime_or_fail().store.last_position()
        site: Any = server.runtime_or_fail().store.get_aggregate("site", "C-1")
        assert site.level == "centre"

    def test_answers_a_retry_as_duplicate_at_or_after_the_original_position(
        self, client: httpx.Client, server: LiveServer
    ) -> None:
        event = centre(source=SOURCE)
        first = post(client, event).json()
        again = post(client, event)
        assert again.status_code == 202
        assert again.json()["status"] == "duplicate"
        assert again.json()["position"] >= first["position"]
        assert stored_keys(server) == 1

    def test_refuses_a_reused_id_with_changed_content_as_a_conflict(
        self, client: httpx.Client, server: LiveServer
    ) -> None:
        post(client, centre(source=SOURCE, event_id="same"))
        changed = centre(source=SOURCE, event_id="same")
        changed["data"]["name"] = "另一个中心"
        body = assert_problem(post(client, changed), 409, "DUPLICATE_CONFLICT")
        assert body["event"]["id"] == "same"
        assert stored_keys(server) == 1

    def test_accepts_a_binary_mode_event_with_percent_encoded_headers(
        self, client: httpx.Client, server: LiveServer
    ) -> None:
        post(client, centre(source=SOURCE))
        headers = {
            "content-type": "application/json; charset=utf-8",
            "ce-specversion": "1.0",
            "ce-id": "bin-1",
            "ce-source": "urn:test:app%3Aone",
            "ce-type": "practice.site.registered.v1",
            "ce-subject": "I-1",
            "ce-time": "2024-03-04T09:00:00+08:00",
        }
        data = {"level": "institute", "parent_id": "C-1", "name": "索溪峪街道文明实践所"}
        response = client.post("/v1/events", content=orjson.dumps(data), headers=headers)
        assert response.status_code == 202, response.text
        assert response.json()["source"] == "urn:test:app:one"
        site: Any = server.runtime_or_fail().store.get_aggregate("site", "I-1")
        assert site.parent_id == "C-1"

    def test_refuses_an_event_that_breaks_its_contract_and_records_why(
        self, client: httpx.Client, server: LiveServer
    ) -> None:
        event = centre(source=SOURCE, event_id="bad-1")
        event["data"]["level"] = "planet"
        body = assert_problem(post(client, event), 422, "SCHEMA_VIOLATION")
        assert "data.level" in body["detail"]
        assert body["event"]["status"] == "rejected"
        rows = server.runtime_or_fail().store.store.select_rejections(source=SOURCE)
        assert [(r["event_id"], r["code"], r["channel"]) for r in rows] == [
            ("bad-1", "SCHEMA_VIOLATION", "http")
        ]
        assert stored_keys(server) == 0

    def test_refuses_an_event_naming_an_unknown_site(self, client: httpx.Client) -> None:
        response = post(client, institute("I-9", parent="NO-SUCH-CENTRE", source=SOURCE))
        assert_problem(response, 422, "UNKNOWN_REFERENCE")

    def test_refuses_an_illegal_transition_with_its_code(self, client: httpx.Client) -> None:
        post(client, centre(source=SOURCE))
        deactivate = {"reason": "merged into another centre"}
        first = post(client, cloud_event(SITE_DEACTIVATED, "C-1", deactivate, source=SOURCE))
        assert first.status_code == 202, first.text
        again = post(client, cloud_event(SITE_DEACTIVATED, "C-1", deactivate, source=SOURCE))
        assert_problem(again, 422, "ILLEGAL_TRANSITION")

    def test_refuses_malformed_json_with_400(self, client: httpx.Client) -> None:
        response = client.post(
            "/v1/events", content=b'{"specversion": "1.0", ', headers={"content-type": CE_JSON}
        )
        assert_problem(response, 400, "MALFORMED_JSON")

    def test_refuses_bytes_that_are_not_utf8_with_400(self, client: httpx.Client) -> None:
        response = client.post(
            "/v1/events", content=b"\xff\xfe{}", headers={"content-type": CE_JSON}
        )
        assert_problem(response, 400, "MALFORMED_JSON")

    @pytest.mark.parametrize(
        "content_type", ["text/plain", "application/json", CE_BATCH, "application/xml", ""]
    )
    def test_refuses_other_content_types_with_415(
        self, client: httpx.Client, server: LiveServer, content_type: str
    ) -> None:
        response = post(client, centre(source=SOURCE), content_type=content_type)
        assert_problem(response, 415, "UNSUPPORTED_MEDIA_TYPE")
        assert stored_keys(server) == 0

    def test_refuses_a_compressed_body_with_415(self, client: httpx.Client) -> None:
        response = client.post(
            "/v1/events",
            content=orjson.dumps(centre(source=SOURCE)),
            headers={"content-type": CE_JSON, "content-encoding": "gzip"},
        )
        assert_problem(response, 415, "UNSUPPORTED_MEDIA_TYPE")

    def test_refuses_an_oversize_event_with_413_without_storing_it(
        self, client: httpx.Client, server: LiveServer
    ) -> None:
        event = centre(source=SOURCE)
        event["padding"] = "x" * (TEST_LIMITS.max_event_bytes + 1)
        body = assert_problem(post(client, event), 413, "PAYLOAD_TOO_LARGE")
        assert body["limit_bytes"] == TEST_LIMITS.max_event_bytes
        assert stored_keys(server) == 0
        assert server.runtime_or_fail().store.store.count_rejections() == {}

    def test_refuses_an_oversize_body_sent_without_a_length(self, client: httpx.Client) -> None:
        chunk = b"x" * 4096

        def chunks() -> Iterator[bytes]:
            for _ in range(TEST_LIMITS.max_event_bytes // len(chunk) + 2):
                yield chunk

        response = client.post("/v1/events", content=chunks(), headers={"content-type": CE_JSON})
        assert_problem(response, 413, "PAYLOAD_TOO_LARGE")

    def test_refuses_a_source_the_token_is_not_bound_to(
        self, client: httpx.Client, server: LiveServer
    ) -> None:
        body = assert_problem(
            post(client, centre(source="urn:other:app")), 403, "SOURCE_NOT_ALLOWED"
        )
        assert "urn:test:*" in body["detail"]
        assert stored_keys(server) == 0
        assert server.runtime_or_fail().store.store.select_rejections() == []

    def test_refuses_a_binary_mode_source_the_token_is_not_bound_to(
        self, client: httpx.Client
    ) -> None:
        headers = {
            "content-type": "application/json",
            "ce-specversion": "1.0",
            "ce-id": "bin-2",
            "ce-source": "urn:other:app",
            "ce-type": "practice.site.registered.v1",
            "ce-subject": "C-2",
            "ce-time": "2024-03-04T09:00:00+08:00",
        }
        data = orjson.dumps({"level": "centre", "name": "中心"})
        response = client.post("/v1/events", content=data, headers=headers)
        assert_problem(response, 403, "SOURCE_NOT_ALLOWED")

    def test_refuses_an_event_from_the_future(self, client: httpx.Client) -> None:
        later = datetime.now(UTC) + timedelta(hours=2)
        assert_problem(post(client, centre(source=SOURCE, time=later)), 422, "TIME_IN_FUTURE")


class TestBatch:
    def test_answers_each_event_in_request_order(
        self, client: httpx.Client, server: LiveServer
    ) -> None:
        first = centre(source=SOURCE, event_id="b-1")
        bad = institute("I-2", source=SOURCE, event_id="b-3")
        bad["data"]["level"] = "planet"
        events: list[Any] = [
            first,
            institute("I-1", source=SOURCE, event_id="b-2"),
            bad,
            first,  # the same event twice in one batch
            institute("I-3", source="urn:elsewhere", event_id="b-5"),
            "not an event",
        ]
        response = post_batch(client, events)
        assert response.status_code == 200, response.text
        body = response.json()
        statuses = [(r["status"], r.get("code")) for r in body["results"]]
        assert statuses == [
            ("accepted", None),
            ("accepted", None),
            ("rejected", "SCHEMA_VIOLATION"),
            ("duplicate", None),
            ("rejected", "SOURCE_NOT_ALLOWED"),
            ("rejected", "MALFORMED_JSON"),
        ]
        assert (body["accepted"], body["duplicate"], body["rejected"]) == (2, 1, 3)
        assert [r["id"] for r in body["results"][:5]] == ["b-1", "b-2", "b-3", "b-1", "b-5"]
        positions = [r["position"] for r in body["results"][:2]]
        assert positions[0] < positions[1] <= body["last_position"]
        assert stored_keys(server) == 2

    def test_stores_a_batch_once_when_it_is_sent_again(
        self, client: httpx.Client, server: LiveServer
    ) -> None:
        events = [centre(source=SOURCE)] + [institute(f"I-{n}", source=SOURCE) for n in range(20)]
        assert post_batch(client, events).json()["accepted"] == 21
        again = post_batch(client, events).json()
        assert (again["accepted"], again["duplicate"]) == (0, 21)
        assert stored_keys(server) == 21

    def test_accepts_an_empty_batch(self, client: httpx.Client) -> None:
        response = post_batch(client, [])
        assert response.status_code == 200
        assert response.json()["results"] == []

    def test_refuses_more_events_than_the_limit_with_413(
        self, client: httpx.Client, server: LiveServer
    ) -> None:
        events = [
            institute(f"I-{n}", source=SOURCE) for n in range(TEST_LIMITS.max_batch_events + 1)
        ]
        assert_problem(post_batch(client, events), 413, "BATCH_TOO_LARGE")
        assert stored_keys(server) == 0

    def test_refuses_a_body_over_the_byte_limit_with_413(self, client: httpx.Client) -> None:
        event = centre(source=SOURCE)
        event["data"]["name"] = "x" * 200
        events = [event] * (TEST_LIMITS.max_batch_bytes // 300 + 1)
        events = events[: TEST_LIMITS.max_batch_events]
        padded = orjson.dumps(events) + b" " * TEST_LIMITS.max_batch_bytes
        response = client.post(
            "/v1/events:batch", content=padded, headers={"content-type": CE_BATCH}
        )
        assert_problem(response, 413, "PAYLOAD_TOO_LARGE")

    def test_refuses_a_body_far_over_the_limit_without_reading_it(
        self, client: httpx.Client
    ) -> None:
        huge = b"[" + b" " * (TEST_LIMITS.max_batch_bytes * 8) + b"]"
        try:
            response = client.post(
                "/v1/events:batch", content=huge, headers={"content-type": CE_BATCH}
            )
        except httpx.TransportError:
            # The server answered and closed before the client finished sending: also right.
            return
        assert_problem(response, 413, "PAYLOAD_TOO_LARGE")

    def test_refuses_malformed_json_with_400(self, client: httpx.Client) -> None:
        response = client.post(
            "/v1/events:batch", content=b"[{]", headers={"content-type": CE_BATCH}
        )
        assert_problem(response, 400, "MALFORMED_JSON")

    def test_refuses_a_body_that_is_not_an_array(self, client: httpx.Client) -> None:
        assert_problem(post_batch(client, centre(source=SOURCE)), 400, "INVALID_BATCH")  # type: ignore[arg-type]  # deliberately not a list

    def test_refuses_a_single_event_content_type_with_415(self, client: httpx.Client) -> None:
        response = client.post(
            "/v1/events:batch",
            content=orjson.dumps([centre(source=SOURCE)]),
            headers={"content-type": CE_JSON},
        )
        assert_problem(response, 415, "UNSUPPORTED_MEDIA_TYPE")


class TestCredentials:
    def test_refuses_a_request_without_a_token(self, server: LiveServer) -> None:
        response = httpx.post(
            f"{server.url}/v1/events",
            content=orjson.dumps(centre(source=SOURCE)),
            headers={"content-type": CE_JSON},
        )
        assert_problem(response, 401, "UNAUTHENTICATED")
        assert response.headers["www-authenticate"].startswith("Bearer")

    def test_refuses_another_authorization_scheme(self, server: LiveServer, token: str) -> None:
        response = httpx.post(
            f"{server.url}/v1/events",
            content=orjson.dumps(centre(source=SOURCE)),
            headers={"content-type": CE_JSON, "authorization": f"Basic {token}"},
        )
        assert_problem(response, 401, "UNAUTHENTICATED")

    def test_refuses_a_tampered_token(self, server: LiveServer, token: str) -> None:
        tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
        response = httpx.post(
            f"{server.url}/v1/events",
            content=orjson.dumps(centre(source=SOURCE)),
            headers={"content-type": CE_JSON, "authorization": f"Bearer {tampered}"},
        )
        body = assert_problem(response, 401, "INVALID_TOKEN")
        assert tampered not in response.text
        assert 'error="invalid_token"' in response.headers["www-authenticate"]
        assert body["detail"]

    def test_refuses_an_expired_token(self, server: LiveServer) -> None:
        tokens = server.runtime_or_fail().tokens
        long_ago = datetime.now(UTC) - timedelta(days=91)
        expired = tokens.issue("producer", sources=["urn:test:*"], now=long_ago).secret
        response = httpx.post(
            f"{server.url}/v1/events",
            content=orjson.dumps(centre(source=SOURCE)),
            headers={"content-type": CE_JSON, "authorization": f"Bearer {expired}"},
        )
        assert_problem(response, 401, "TOKEN_EXPIRED")

    def test_refuses_a_revoked_token(self, server: LiveServer, client: httpx.Client) -> None:
        tokens = server.runtime_or_fail().tokens
        issued = tokens.issue("producer", sources=["urn:test:*"])
        headers = {"content-type": CE_JSON, "authorization": f"Bearer {issued.secret}"}
        url = f"{server.url}/v1/events"
        assert (
            httpx.post(
                url, content=orjson.dumps(centre(source=SOURCE)), headers=headers
            ).status_code
            == 202
        )
        tokens.revoke(issued.token.token_id)
        response = httpx.post(url, content=orjson.dumps(centre(source=SOURCE)), headers=headers)
        assert_problem(response, 401, "TOKEN_REVOKED")

    @pytest.mark.parametrize("role", ["auditor", "station_supervisor"])
    def test_refuses_a_token_of_another_role(self, server: LiveServer, role: str) -> None:
        unit = "S-1" if role == "station_supervisor" else None
        secret = server.runtime_or_fail().tokens.issue(role, unit=unit).secret
        response = httpx.post(
            f"{server.url}/v1/events:batch",
            content=orjson.dumps([centre(source=SOURCE)]),
            headers={"content-type": CE_BATCH, "authorization": f"Bearer {secret}"},
        )
        assert_problem(response, 403, "FORBIDDEN")
        assert stored_keys(server) == 0

    def test_checks_the_token_before_reading_the_body(self, server: LiveServer) -> None:
        response = httpx.post(
            f"{server.url}/v1/events", content=b"{not json", headers={"content-type": CE_JSON}
        )
        assert_problem(response, 401, "UNAUTHENTICATED")
        assert server.runtime_or_fail().store.store.count_rejections() == {}


class TestHealth:
    def test_says_alive_and_ready(self, server: LiveServer) -> None:
        assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
        ready = httpx.get(f"{server.url}/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"]["store"]["ok"] is True

    def test_answers_unknown_paths_and_methods_with_problems(self, server: LiveServer) -> None:
        assert_problem(httpx.get(f"{server.url}/v1/nothing"), 404, "NOT_FOUND")
        assert_problem(httpx.get(f"{server.url}/v1/events"), 405, "METHOD_NOT_ALLOWED")

    def test_publishes_the_openapi_document(self, server: LiveServer) -> None:
        paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
        assert {"/v1/events", "/v1/events:batch", "/healthz", "/readyz"} <= set(paths)


@pytest.mark.postgres
class TestStoreOutage:
    @pytest.fixture
    def database(self) -> Iterator[tuple[str, str]]:
        """A database this test may drop under the running server."""
        name = f"pe_test_outage_{os.getpid()}_{random.randrange(10**6)}"
        url = create_database(name)
        try:
            yield name, url
        finally:
            drop_database(name)

    def test_answers_503_with_retry_after_when_the_store_is_gone(
        self, database: tuple[str, str]
    ) -> None:
        name, url = database
        limits = HttpLimits(**{**TEST_LIMITS.model_dump(), "token_cache_seconds": 600})
        with live_server(Settings(store=url), limits=limits) as live:
            secret = live.runtime_or_fail().tokens.issue("producer", sources=["urn:test:*"]).secret
            with httpx.Client(
                base_url=live.url, headers={"Authorization": f"Bearer {secret}"}, timeout=60
            ) as http:
                assert post(http, centre(source=SOURCE)).status_code == 202  # token now cached
                drop_database(name)
                response = post(http, institute("I-1", source=SOURCE))
                body = assert_problem(response, 503, "TRANSIENT")
                assert response.headers["retry-after"]
                assert "unavailable" in body["detail"]
                ready = http.get("/readyz")
                problem = assert_problem(ready, 503, "NOT_READY")
                assert problem["checks"]["store"]["ok"] is False
                assert http.get("/healthz").status_code == 200


class TestConcurrency:
    def test_stores_every_event_once_when_many_clients_post_at_once(
        self, server: LiveServer, token: str
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=server.url, headers=headers) as http:
            assert post(http, centre(source=SOURCE)).status_code == 202
        events = [institute(f"I-{n}", source=SOURCE, event_id=f"i-{n}") for n in range(120)]
        answers: list[list[str]] = []
        errors: list[BaseException] = []
        lock = threading.Lock()

        def producer(seed: int) -> None:
            rng = random.Random(seed)
            mine = events[:]
            rng.shuffle(mine)
            statuses: list[str] = []
            try:
                with httpx.Client(base_url=server.url, headers=headers, timeout=120) as http:
                    singles, rest = mine[:40], mine[40:]
                    for event in singles:
                        response = post(http, event)
                        assert response.status_code == 202, response.text
                        statuses.append(response.json()["status"] + ":" + event["id"])
                    for start in range(0, len(rest), 20):
                        response = post_batch(http, rest[start : start + 20])
                        assert response.status_code == 200, response.text
                        statuses += [
                            r["status"] + ":" + r["id"] for r in response.json()["results"]
                        ]
            except BaseException as exc:  # noqa: BLE001 - reported to the test thread below
                errors.append(exc)
            with lock:
                answers.append(statuses)

        threads = [threading.Thread(target=producer, args=(seed,)) for seed in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        assert not errors, errors
        accepted = Counter(
            s.split(":", 1)[1] for a in answers for s in a if s.startswith("accepted")
        )
        duplicates = sum(1 for a in answers for s in a if s.startswith("duplicate"))
        assert set(accepted) == {e["id"] for e in events}
        assert set(accepted.values()) == {1}, "an event was accepted twice"
        assert duplicates == 7 * len(events)
        assert stored_keys(server) == len(events) + 1
        by_type = server.runtime_or_fail().store.store.count_events_by_topic()
        assert by_type["practice.site.registered.v1"] == len(events) + 1


class TestLifespan:
    def test_opens_and_closes_its_own_store(self, sqlite_url: str) -> None:
        settings = Settings(store=sqlite_url)
        with live_server(settings, open_early=False) as live:
            assert httpx.get(f"{live.url}/readyz").status_code == 200
            response = httpx.post(
                f"{live.url}/v1/events",
                content=orjson.dumps(centre(source=SOURCE)),
                headers={"content-type": CE_JSON},
            )
            assert_problem(response, 401, "UNAUTHENTICATED")


# -- the serve command ---------------------------------------------------------------------


def _cli_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PRACTICE_EVENTS_")}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


CLI = [sys.executable, "-m", "practice_events.cli"]


class TestServeCommand:
    def test_says_in_one_line_that_the_port_is_in_use(self, tmp_path: Path) -> None:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            done = subprocess.run(
                [*CLI, "serve", "--port", str(port), "--store", f"sqlite:///{tmp_path}/s.db"],
                capture_output=True,
                text=True,
                env=_cli_env(),
                timeout=60,
                check=False,
            )
        assert done.returncode == 2
        assert done.stderr.strip().splitlines()[-1] == (
            f"practice-events: port {port} on 127.0.0.1 is already in use; "
            "stop the other server or pass --port"
        )
        assert "Traceback" not in done.stderr

    def test_says_in_one_line_that_the_store_is_unreachable(self) -> None:
        done = subprocess.run(
            [
                *CLI,
                "serve",
                "--port",
                str(_free_port()),
                "--store",
                "postgresql://postgres@127.0.0.1:1/none?connect_timeout=2",
            ],
            capture_output=True,
            text=True,
            env=_cli_env(),
            timeout=60,
            check=False,
        )
        assert done.returncode == 2
        assert "Traceback" not in done.stderr
        assert (
            done.stderr.strip()
            .splitlines()[-1]
            .startswith(
                "practice-events: cannot open the event store postgresql://postgres@127.0.0.1:1/none"
            )
        )

    def test_serves_events_and_stops_gracefully_on_sigterm(self, tmp_path: Path) -> None:
        store = f"sqlite:///{tmp_path}/s.db"
        created = subprocess.run(
            [
                *CLI,
                "tokens",
                "create",
                "--role",
                "producer",
                "--source",
                "urn:test:*",
                "--store",
                store,
            ],
            capture_output=True,
            text=True,
            env=_cli_env(),
            timeout=60,
            check=True,
        )
        secret = created.stdout.strip()
        port = _free_port()
        proc = subprocess.Popen(
            [*CLI, "serve", "--port", str(port), "--store", store],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_cli_env(),
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                assert proc.poll() is None, proc.communicate()[1]
                try:
                    if httpx.get(f"{url}/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "serve did not become ready"
                time.sleep(0.05)
            response = httpx.post(
                f"{url}/v1/events",
                content=orjson.dumps(centre(source=SOURCE)),
                headers={"content-type": CE_JSON, "authorization": f"Bearer {secret}"},
            )
            assert response.status_code == 202, response.text
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, stderr
        assert secret.encode() not in stderr
        stats = subprocess.run(
            [*CLI, "store", "stats", "--json", "--store", store],
            capture_output=True,
            env=_cli_env(),
            timeout=60,
            check=True,
        )
        assert orjson.loads(stats.stdout)["accepted_cloudevents"] == 1


# -- the ingest thread, on a stand-in pipeline (no I/O) ---------------------------------------


class SlowPipeline:
    """Stands in for the pipeline: records each call, can hold it, can fail on b"boom"."""

    def __init__(self, *, fail_with: Exception | None = None) -> None:
        self.calls: list[list[bytes]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.fail_with = fail_with
        self.invalidated = 0

    def process(self, inputs: list[RawInput]) -> BatchResult:
        payloads = [item.payload or b"" for item in inputs]
        self.calls.append(payloads)
        self.entered.set()
        assert self.release.wait(10)
        if self.fail_with is not None:
            raise self.fail_with
        if b"boom" in payloads:
            msg = "a domain bug"
            raise RuntimeError(msg)
        outcomes = [
            Outcome("accepted", item, event_id=(item.payload or b"").decode()) for item in inputs
        ]
        return BatchResult(outcomes, last_position=len(self.calls))

    def invalidate(self) -> None:
        self.invalidated += 1


def _thread(pipeline: SlowPipeline, **kw: int) -> IngestThread:
    options = {"max_group": 1000, "max_pending": 1000, **kw}
    thread = IngestThread(pipeline, **options)  # type: ignore[arg-type]  # a stand-in pipeline
    thread.start()
    return thread


def _raw(*payloads: bytes) -> list[RawInput]:
    return [RawInput(payload, channel="http") for payload in payloads]


class TestIngestThread:
    def test_groups_the_requests_that_queued_while_it_was_busy(self) -> None:
        pipeline = SlowPipeline()
        pipeline.release.clear()
        ingest = _thread(pipeline)
        try:
            first = ingest.submit(_raw(b"a"))
            assert pipeline.entered.wait(10)
            queued = [
                ingest.submit(_raw(b"b")),
                ingest.submit(_raw(b"c", b"d")),
                ingest.submit(_raw(b"e")),
            ]
            pipeline.release.set()
            answers = [f.result(10) for f in [first, *queued]]
        finally:
            ingest.stop()
        assert pipeline.calls == [[b"a"], [b"b", b"c", b"d", b"e"]]
        assert [[o.event_id for o in a.outcomes] for a in answers] == [
            ["a"],
            ["b"],
            ["c", "d"],
            ["e"],
        ]
        assert [a.last_position for a in answers] == [1, 2, 2, 2]
        assert ingest.pending == 0

    def test_keeps_a_group_within_its_size_without_splitting_a_request(self) -> None:
        pipeline = SlowPipeline()
        pipeline.release.clear()
        ingest = _thread(pipeline, max_group=3)
        try:
            first = ingest.submit(_raw(b"a"))
            assert pipeline.entered.wait(10)
            rest = [
                ingest.submit(_raw(b"b", b"c")),
                ingest.submit(_raw(b"d", b"e")),
                ingest.submit(_raw(b"f")),
            ]
            pipeline.release.set()
            for future in [first, *rest]:
                future.result(10)
        finally:
            ingest.stop()
        assert pipeline.calls == [[b"a"], [b"b", b"c", b"d", b"e"], [b"f"]]

    def test_answers_the_other_requests_when_one_breaks_the_group(self) -> None:
        pipeline = SlowPipeline()
        pipeline.release.clear()
        ingest = _thread(pipeline)
        try:
            first = ingest.submit(_raw(b"a"))
            assert pipeline.entered.wait(10)
            good, bad, other = (ingest.submit(_raw(p)) for p in (b"b", b"boom", b"c"))
            pipeline.release.set()
            assert first.result(10).outcomes[0].event_id == "a"
            assert good.result(10).outcomes[0].event_id == "b"
            assert other.result(10).outcomes[0].event_id == "c"
            with pytest.raises(RuntimeError, match="a domain bug"):
                bad.result(10)
        finally:
            ingest.stop()
        assert pipeline.invalidated >= 1

    def test_turns_a_store_failure_into_a_transient_error(self) -> None:
        pipeline = SlowPipeline(fail_with=OperationalError("connection refused"))
        ingest = _thread(pipeline)
        try:
            with pytest.raises(TransientError, match="event store unavailable"):
                ingest.submit(_raw(b"a")).result(10)
        finally:
            ingest.stop()
        assert pipeline.invalidated == 1

    def test_refuses_requests_beyond_the_pending_limit(self) -> None:
        pipeline = SlowPipeline()
        pipeline.release.clear()
        ingest = _thread(pipeline, max_pending=2)
        try:
            first = ingest.submit(_raw(b"a"))
            assert pipeline.entered.wait(10)
            with pytest.raises(TransientError) as info:
                ingest.submit(_raw(b"b", b"c"))
            assert info.value.code == "OVERLOADED"
            second = ingest.submit(_raw(b"d"))
            pipeline.release.set()
            first.result(10)
            second.result(10)
        finally:
            ingest.stop()

    def test_finishes_queued_requests_then_refuses_new_ones_when_stopped(self) -> None:
        pipeline = SlowPipeline()
        pipeline.release.clear()
        ingest = _thread(pipeline)
        first = ingest.submit(_raw(b"a"))
        assert pipeline.entered.wait(10)
        queued = ingest.submit(_raw(b"b"))
        stopper = threading.Thread(target=ingest.stop)
        stopper.start()
        pipeline.release.set()
        stopper.join(10)
        assert first.result(10).outcomes
        assert queued.result(10).outcomes
        assert not ingest.alive
        with pytest.raises(TransientError, match="shutting down"):
            ingest.submit(_raw(b"c"))
