"""The bad-input corpus: every kind of bad input a producer can send, and its stable code.

``manifest.toml`` lists the kinds (``[[case]]``), the valid events some of
them need first (``[[setup]]``) and the HTTP status of each code
(``[statuses]``, as docs/api.md publishes them). It carries a ``version``:
bump it whenever a case is removed or its expected code changes, so that a
producer team that replays the corpus against its own client knows the
expectations moved. Adding cases does not need a new version.

A case says what to send and what must become of it:

``id``, ``kind``, ``description``
    a stable name, the family it belongs to (json, encoding, envelope ...),
    and what is wrong with it;
``transports``
    ``["http", "kafka"]`` or one of them;
``mode``
    ``structured`` (default: the body is the whole CloudEvent), ``binary``
    (``headers`` carry ``ce_*`` attributes and the content type, the body is
    ``data``) or ``batch`` (HTTP ``/v1/events:batch``);
``body`` or ``generate``
    the bytes as a TOML literal string (sent byte for byte, UTF-8), or the
    name of a generator in :mod:`tests.corpus.generate` for what TOML cannot
    hold or should not (invalid UTF-8, megabytes, 2,000 levels of nesting);
``headers``
    ``[[name, value], ...]``: Kafka headers as written (``ce_id``); over HTTP
    they become ``ce-id`` with the value percent-encoded, as the CloudEvents
    HTTP binding says;
``content_type``, ``http_headers``
    the HTTP content type of a structured or batch body (default the
    CloudEvents one; ``""`` sends none) and extra HTTP headers;
``setup``
    names of ``[[setup]]`` events that must be stored before the case;
``code`` / ``expect``
    the stable code it must be refused with on every transport, or
    ``expect = "duplicate"`` for inputs that must be recognised as a
    retry and stored once; ``http_code`` / ``kafka_code`` where the
    transports differ (a wrong content type is HTTP 415, a dead letter on Kafka);
``results``
    for a readable HTTP batch: the outcome of each item (``accepted``,
    ``duplicate`` or a code).

Every refusal must reach the producer with that code and a reason (the HTTP
answer, or the dead-letter topic's ``dlq_code``/``dlq_reason`` headers and
the rejections table) and must stop nothing: the runners send a valid event
after every case and check that it is stored.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.corpus import generate

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "manifest.toml"
TRANSPORTS = ("http", "kafka")
MODES = ("structured", "binary", "batch")
OUTCOMES = ("accepted", "duplicate")


@dataclass(frozen=True)
class Limits:
    """The size limits of the transport a corpus run talks to (generators size inputs by them)."""

    max_event_bytes: int
    max_batch_events: int = 0
    max_batch_bytes: int = 0


@dataclass(frozen=True)
class Input:
    """One input as a transport sends it: the body and the headers (Kafka spelling)."""

    body: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    mode: str = "structured"
    content_type: str | None = "application/cloudevents+json"
    http_headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Case:
    """One kind of bad input and what must become of it."""

    id: str
    kind: str
    description: str
    transports: tuple[str, ...]
    mode: str
    setup: tuple[str, ...]
    code: str | None
    expect: str | None
    http_code: str | None
    kafka_code: str | None
    results: tuple[str, ...] | None
    raw: dict[str, Any]

    def expected(self, transport: str) -> str:
        """The code (or ``duplicate``/``accepted``) expected on ``transport``."""
        override = self.http_code if transport == "http" else self.kafka_code
        found = override or self.code or self.expect
        assert found is not None, f"{self.id}: no expectation"
        return found

    def input(self, transport: str, limits: Limits) -> Input:
        """Build the bytes to send over ``transport``."""
        name = self.raw.get("generate")
        if name is not None:
            built: Input = getattr(generate, name)(transport, limits)
            return built
        body = self.raw.get("body")
        default_type = (
            "application/cloudevents-batch+json"
            if self.mode == "batch"
            else "application/cloudevents+json"
        )
        content_type = self.raw.get("content_type", default_type)
        return Input(
            body=None if body is None else body.encode("utf-8"),
            headers=[(str(n), str(v).encode("utf-8")) for n, v in self.raw.get("headers", [])],
            mode=self.mode,
            content_type=content_type or None,
            http_headers=[(str(n), str(v)) for n, v in self.raw.get("http_headers", [])],
        )


@dataclass(frozen=True)
class Corpus:
    """The manifest, loaded and checked."""

    version: int
    statuses: dict[str, int]
    setup: dict[str, bytes]
    cases: list[Case]

    def for_transport(self, transport: str) -> list[Case]:
        """The cases that apply to ``transport``, in manifest order."""
        return [case for case in self.cases if transport in case.transports]

    def setup_for(self, cases: list[Case]) -> list[tuple[str, bytes]]:
        """The setup events ``cases`` need, in manifest order."""
        needed = {name for case in cases for name in case.setup}
        return [(name, body) for name, body in self.setup.items() if name in needed]

    def status(self, code: str) -> int:
        """The HTTP status of a refusal with ``code`` (422 unless listed)."""
        return self.statuses.get(code, 422)


def documented_codes() -> dict[str, int]:
    """The refusal codes docs/api.md publishes for ingestion, with their HTTP status."""
    text = (HERE.parent.parent / "docs" / "api.md").read_text(encoding="utf-8")
    section = text.split("## Ingestion: refusal codes", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([A-Z_]+)` \| (\d{3}) \|", section, re.MULTILINE)
    return {code: int(status) for code, status in rows}


CANARY_SOURCE = "urn:corpus:canary"


def canary(number: int) -> bytes:
    """A valid structured CloudEvent (a new centre) sent after a case: it must be stored."""
    return (
        f'{{"specversion": "1.0", "id": "canary-{number}", "source": "{CANARY_SOURCE}", '
        f'"type": "practice.site.registered.v1", "subject": "C-CANARY-{number}", '
        '"time": "2024-03-04T09:00:00+08:00", "data": {"level": "centre", "name": "哨兵"}}'
    ).encode()


def load(path: Path = MANIFEST) -> Corpus:
    """Read and check the manifest (unique ids, known modes and transports, one expectation)."""
    with path.open("rb") as handle:
        doc = tomllib.load(handle)
    setup = {str(s["name"]): str(s["body"]).encode("utf-8") for s in doc.get("setup", [])}
    cases: list[Case] = []
    seen: set[str] = set()
    for raw in doc["case"]:
        case_id = str(raw["id"])
        assert case_id not in seen, f"case {case_id} appears twice"
        seen.add(case_id)
        transports = tuple(raw.get("transports", TRANSPORTS))
        mode = str(raw.get("mode", "structured"))
        assert set(transports) <= set(TRANSPORTS), case_id
        assert mode in MODES, case_id
        assert ("body" in raw) != ("generate" in raw), f"{case_id}: body or generate, not both"
        assert ("code" in raw) != ("expect" in raw) or "results" in raw, case_id
        assert raw.get("expect") in (None, *OUTCOMES), case_id
        for name in raw.get("setup", []):
            assert name in setup, f"{case_id}: unknown setup {name!r}"
        if "generate" in raw:
            assert hasattr(generate, raw["generate"]), f"{case_id}: no generator {raw['generate']}"
        results = raw.get("results")
        cases.append(
            Case(
                id=case_id,
                kind=str(raw["kind"]),
                description=str(raw["description"]),
                transports=transports,
                mode=mode,
                setup=tuple(raw.get("setup", [])),
                code=raw.get("code"),
                expect=raw.get("expect"),
                http_code=raw.get("http_code"),
                kafka_code=raw.get("kafka_code"),
                results=tuple(results) if results is not None else None,
                raw=raw,
            )
        )
    return Corpus(
        version=int(doc["version"]),
        statuses={str(k): int(v) for k, v in doc.get("statuses", {}).items()},
        setup=setup,
        cases=cases,
    )
