"""The bad-input corpus over HTTP, against the real app on a real socket and real stores.

Every case of ``tests/corpus/manifest.toml`` that applies to HTTP is posted
as a producer would post it (structured, binary with percent-encoded ``ce-*``
headers, or a batch), each followed by a valid event that must be stored:
a refusal stops nothing. Each answer must carry the case's stable code, the
HTTP status the manifest gives for it and a reason; refusals made by the
pipeline must be in the rejections table with the same code and reason. At
the end the accounting holds: inputs = stored + duplicates + refused.
"""

from __future__ import annotations

from collections import Counter
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from practice_events.config import Settings
from tests.corpus import CANARY_SOURCE, Case, Corpus, Input, Limits, canary, load
from tests.factories_api import CE_JSON, TEST_LIMITS, LiveServer, live_server

LIMITS = Limits(
    max_event_bytes=TEST_LIMITS.max_event_bytes,
    max_batch_events=TEST_LIMITS.max_batch_events,
    max_batch_bytes=TEST_LIMITS.max_batch_bytes,
)
_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in '%"')
"""Printable ASCII but '%' and '"' travels as is in a header; the rest is percent-encoded."""


def send(client: httpx.Client, sent: Input) -> httpx.Response:
    """Post one corpus input the way its mode says."""
    headers: list[tuple[str, str]] = list(sent.http_headers)
    if sent.mode == "binary":
        for name, value in sent.headers:
            if name.lower().startswith("ce_"):
                headers.append(("ce-" + name[3:], quote(value, safe=_SAFE)))
            else:
                headers.append((name, value.decode("latin-1")))
    elif sent.content_type is not None:
        headers.append(("content-type", sent.content_type))
    path = "/v1/events:batch" if sent.mode == "batch" else "/v1/events"
    return client.post(path, content=sent.body or b"", headers=headers)


class Tally:
    """What the answers said: the accounting's right-hand side, and the pipeline's refusals."""

    def __init__(self) -> None:
        self.inputs = 0
        self.outcomes: Counter[str] = Counter()
        self.stored_refusals: Counter[tuple[str, str]] = Counter()

    def single(self, response: httpx.Response) -> dict[str, Any]:
        """Count one single-event answer; return its body."""
        self.inputs += 1
        body: dict[str, Any] = response.json()
        if response.status_code == 202:
            self.outcomes[body["status"]] += 1
        else:
            self.outcomes["rejected"] += 1
            event = body.get("event")
            if event is not None:  # refused by the pipeline, so also in the rejections table
                self.stored_refusals[(body["code"], body["detail"])] += 1
        return body

    def batch(self, response: httpx.Response) -> list[dict[str, Any]]:
        """Count a readable batch's results; return them."""
        results: list[dict[str, Any]] = response.json()["results"]
        for result in results:
            self.inputs += 1
            self.outcomes[result["status"]] += 1
            if result["status"] == "rejected" and result["code"] != "SOURCE_NOT_ALLOWED":
                self.stored_refusals[(result["code"], result["reason"])] += 1
        return results


def check_answer(corpus: Corpus, case: Case, response: httpx.Response, tally: Tally) -> None:
    """The answer to ``case`` carries its expected outcome, code, status and a reason."""
    if case.results is not None:
        assert response.status_code == 200, f"{case.id}: {response.text}"
        results = tally.batch(response)
        got = [r["code"] if r["status"] == "rejected" else r["status"] for r in results]
        assert got == list(case.results), f"{case.id}: {results}"
        assert all(r["reason"] for r in results if r["status"] == "rejected"), case.id
        return
    expected = case.expected("http")
    if expected in ("accepted", "duplicate"):
        assert response.status_code == 202, f"{case.id}: {response.text}"
        assert tally.single(response)["status"] == expected, case.id
        return
    status = corpus.status(expected)
    assert response.status_code == status, f"{case.id}: {response.status_code} {response.text}"
    assert response.headers["content-type"] == "application/problem+json", case.id
    body = tally.single(response)
    assert body["code"] == expected, f"{case.id}: {body}"
    assert body["status"] == status, case.id
    assert body["detail"], f"{case.id}: no reason"
    if "event" in body:
        assert body["event"]["status"] == "rejected", case.id
        assert body["event"]["code"] == expected, case.id


def run_corpus(server: LiveServer, corpus: Corpus) -> tuple[Tally, list[str]]:
    """Post the setup, then every HTTP case followed by a canary; return the tally."""
    runtime = server.runtime_or_fail()
    token = runtime.tokens.issue("producer", sources=["urn:corpus:*"]).secret
    cases = corpus.for_transport("http")
    tally = Tally()
    failures: list[str] = []
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as client:
        for name, body in corpus.setup_for(cases):
            response = client.post("/v1/events", content=body, headers={"content-type": CE_JSON})
            assert response.status_code == 202, f"setup {name}: {response.text}"
            assert tally.single(response)["status"] == "accepted", name
        for number, case in enumerate(cases):
            try:
                check_answer(corpus, case, send(client, case.input("http", LIMITS)), tally)
            except AssertionError as exc:  # report every case that fails, not only the first
                failures.append(f"{case.id}: {exc}")
            after = client.post(
                "/v1/events", content=canary(number), headers={"content-type": CE_JSON}
            )
            assert after.status_code == 202, f"after {case.id}: {after.text}"
            assert tally.single(after)["status"] == "accepted", f"after {case.id}"
    return tally, failures


@pytest.mark.slow
def test_refuses_every_kind_of_bad_input_with_its_code_and_keeps_going(sqlite_url: str) -> None:
    # On SQLite: the Kafka run of the corpus (test_corpus_kafka.py) stores on PostgreSQL.
    corpus = load()
    cases = corpus.for_transport("http")
    assert len(cases) >= 50
    with live_server(Settings(store=sqlite_url)) as server:
        tally, failures = run_corpus(server, corpus)
        store = server.runtime_or_fail().store.store
        rows = store.select_rejections(limit=1000)
        ingested = store.count_ingested_keys()
        canaries = store.select_digests([(CANARY_SOURCE, f"canary-{n}") for n in range(len(cases))])

    assert not failures, "\n".join(failures)
    # inputs = stored + duplicates + refused, and the store agrees.
    assert tally.inputs == sum(tally.outcomes.values())
    assert ingested == tally.outcomes["accepted"]
    assert len(canaries) == len(cases), "a valid event after a bad one was not stored"
    assert tally.outcomes["duplicate"] == sum(
        1 for c in cases if c.results is None and c.expected("http") == "duplicate"
    )
    # The pipeline's refusals are in the rejections table, with the reason the producer got.
    assert Counter((r["code"], r["reason"]) for r in rows) == tally.stored_refusals
    assert all(r["channel"] == "http" for r in rows)
    assert {r["code"] for r in rows} >= {
        "DUPLICATE_ATTRIBUTE",
        "DUPLICATE_KEY",
        "DUPLICATE_CONFLICT",
        "NESTING_TOO_DEEP",
        "TIME_TOO_OLD",
        "ILLEGAL_TRANSITION",
    }
