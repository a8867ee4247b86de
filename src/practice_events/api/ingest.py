"""HTTP ingestion: ``POST /v1/events`` and ``POST /v1/events:batch`` on the shared pipeline.

Requests never touch the pipeline themselves. One :class:`IngestThread` owns
it (the pipeline is not thread-safe) and takes requests from a queue; while
it commits one group, new requests queue up, and it then takes them all in
one ``Pipeline.process`` call: one transaction for many concurrent requests
(group commit). Each request is answered with its own outcomes. A request is
never split across transactions, so a batch request is stored atomically
(per shard when the store is sharded by district: see ``docs/sharding.md``).

Answers
-------
``POST /v1/events`` takes one CloudEvent, structured (``Content-Type:
application/cloudevents+json``) or binary (``ce-*`` headers, ``Content-Type:
application/json``, the body is ``data``; header values are percent-decoded
as the CloudEvents HTTP binding says):

* 202 with ``{"status": "accepted"|"duplicate", "id", "source", "type",
  "subject", "position"}``. ``position`` is the log position of the event (for
  a duplicate, a position at or after the original's), to pass to the query
  API as ``min_position`` for read-your-writes.
  An event whose time lies more than ``max_past_skew_seconds`` before its
  receipt is accepted with ``"flags": ["BACKDATED"]`` (see the clock rules of
  :class:`~practice_events.ingest.pipeline.Pipeline`).
* a problem document for a refused event, with the event's ``code`` and
  ``reason`` and the outcome under ``event``: 400 ``MALFORMED_JSON``, 403
  ``SOURCE_NOT_ALLOWED``, 409 ``DUPLICATE_CONFLICT``, 413 ``PAYLOAD_TOO_LARGE``,
  422 for every other code (``DUPLICATE_ATTRIBUTE``, ``NESTING_TOO_DEEP``,
  ``TIME_TOO_OLD`` …: see :mod:`practice_events.contracts.envelope`).

``POST /v1/events:batch`` takes a JSON array (``application/cloudevents-
batch+json``) of structured CloudEvents and answers **200** whenever the
request itself was readable, whatever became of its events (HTTP 207 is a
WebDAV status and would tell a client nothing more). The body counts the
outcomes and lists one result per event, in request order::

    {"accepted": 98, "duplicate": 1, "rejected": 1, "last_position": 1234,
     "results": [{"status": "accepted", "id": "…", "position": 1133, …},
                 {"status": "rejected", "code": "SCHEMA_VIOLATION", "reason": "…", …}]}

Whole-request errors are problem documents: 400 (not JSON, not an array), 401/403
(token), 413 (too many bytes or events), 415 (content type), 422
``NESTING_TOO_DEEP`` (an array too deep to be split into events), 503 (store
down, with ``Retry-After``; nothing was stored and the request can be repeated
as is).

Each event of a batch reaches the pipeline as the bytes of its item, so that
it is judged as it would be alone: an item naming a member twice is refused
with ``DUPLICATE_ATTRIBUTE`` (or ``DUPLICATE_KEY``), not stored with whichever
of the two the batch parser kept (see :func:`batch_items`).

An event whose ``source`` the token is not bound to is refused with
``SOURCE_NOT_ALLOWED`` before it reaches the pipeline and is not written to
the rejections store: that store is read per source, and a producer must not
be able to add rows to another producer's list.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import orjson
import structlog
from eventsourcing.persistence import InterfaceError, OperationalError
from fastapi import APIRouter, Request
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from practice_events.api.auth import ProducerToken, runtime_of
from practice_events.api.problems import (
    PROBLEM_RESPONSE_SCHEMA,
    JsonResponse,
    Problem,
    problem_response,
    status_for,
)
from practice_events.auth.tokens import ApiToken
from practice_events.contracts import strictjson
from practice_events.errors import ContractError, TransientError
from practice_events.ingest.pipeline import Outcome, RawInput
from practice_events.ingest.processor import BatchProcessor

log = structlog.get_logger(__name__)

CLOUDEVENTS_JSON = "application/cloudevents+json"
CLOUDEVENTS_BATCH_JSON = "application/cloudevents-batch+json"
JSON = "application/json"
DRAIN_FACTOR = 4
"""An oversize body up to this many times the limit is read (and dropped) before the 413
answer, so that the client, still sending, gets to read it; beyond that the connection is
closed."""


# -- the ingest thread ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """What became of one request's inputs, and the log position after their transaction."""

    outcomes: list[Outcome]
    last_position: int


@dataclass(frozen=True, slots=True)
class _Job:
    inputs: list[RawInput]
    future: Future[Answer]


class IngestThread:
    """Owns the pipeline; group-commits the requests queued while it was busy.

    ``max_group`` bounds the inputs of one transaction (a request is never
    split, so one large request may exceed it); ``max_pending`` bounds the
    inputs waiting, beyond which :meth:`submit` refuses with ``OVERLOADED``
    (HTTP 503) instead of letting memory and latency grow without limit.

    A group the store could not take (unreachable, a lock timeout, a full
    disk) is answered 503 and remembered as :attr:`store_fault` until a
    later group is stored, or for ``fault_hold_seconds`` without another
    attempt: ``/readyz`` then says "not ready" while writes fail, although
    the store still answers reads. The hold lapses by itself so that an
    instance taken out of rotation is offered requests again (a half-open
    circuit): one that still fails marks the fault again.
    """

    def __init__(
        self,
        pipeline: BatchProcessor,
        *,
        max_group: int,
        max_pending: int,
        fault_hold_seconds: float = 10.0,
    ) -> None:
        self.pipeline = pipeline
        self.max_group = max_group
        self.max_pending = max_pending
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pending = 0
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="http-ingest", daemon=True)
        self.groups = 0
        self.inputs_done = 0
        self.fault_hold_seconds = fault_hold_seconds
        self._fault: tuple[str, float] | None = None  # (reason, when) of the last failed group
        self._listeners: list[Callable[[int], None]] = []

    # -- control ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start taking requests."""
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the requests already queued, then stop (new ones are refused with 503)."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def on_commit(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(last_position)`` on the ingest thread after each stored group.

        The in-process projection runner of ``serve`` wakes up this way instead of
        waiting for its next poll. Listeners must be quick and must not raise.
        """
        self._listeners.append(listener)

    @property
    def alive(self) -> bool:
        """True while the thread runs and takes requests."""
        return self._thread.is_alive() and not self._stopping

    @property
    def pending(self) -> int:
        """Inputs queued or being processed."""
        return self._pending

    @property
    def store_fault(self) -> str | None:
        """Why the last group could not be stored, while that is recent (see the class doc)."""
        fault = self._fault
        if fault is None or time.monotonic() - fault[1] > self.fault_hold_seconds:
            return None
        return fault[0]

    def submit(self, inputs: list[RawInput]) -> Future[Answer]:
        """Queue a request's inputs; the future resolves to their :class:`Answer`.

        Raises :class:`TransientError` (HTTP 503) when shutting down or overloaded.
        """
        future: Future[Answer] = Future()
        count = len(inputs)
        with self._lock:
            if self._stopping or not self._thread.is_alive():
                msg = "the server is shutting down; send the request again in a moment"
                raise TransientError(msg)
            if self._pending and self._pending + count > self.max_pending:
                msg = (
                    f"{self._pending} events are waiting to be stored; "
                    "send the request again in a moment"
                )
                raise TransientError(msg, code="OVERLOADED")
            self._pending += count
            self._queue.put(_Job(inputs, future))
        return future

    async def ingest(self, inputs: list[RawInput]) -> Answer:
        """Submit and wait for the answer without blocking the event loop."""
        return await asyncio.wrap_future(self.submit(inputs))

    # -- the thread -----------------------------------------------------------------------

    def _run(self) -> None:
        log.info("http_ingest_started", max_group=self.max_group)
        while True:
            job = self._queue.get()
            if job is None:
                break
            group = [job]
            size = len(job.inputs)
            stop = False
            while size < self.max_group:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                group.append(more)
                size += len(more.inputs)
            self._run_group(group)
            if stop:
                break
        log.info("http_ingest_stopped", groups=self.groups, inputs=self.inputs_done)

    def _run_group(self, group: list[_Job]) -> None:
        live = [job for job in group if job.future.set_running_or_notify_cancel()]
        try:
            if live:
                self._process(live)
        finally:
            done = sum(len(job.inputs) for job in group)
            with self._lock:
                self._pending -= done
            self.groups += 1
            self.inputs_done += done

    def _process(self, jobs: list[_Job]) -> None:
        inputs = [item for job in jobs for item in job.inputs]
        try:
            result = self.pipeline.process(inputs)
        except (TransientError, OperationalError, InterfaceError) as exc:
            if not isinstance(exc, TransientError):
                # The store failed while the batch was being prepared (reading keys or
                # aggregates), outside the part the pipeline guards: cached aggregates may
                # hold uncommitted changes, so forget them all.
                self.pipeline.invalidate()
                exc = TransientError(f"event store unavailable: {exc}")
            log.warning("http_ingest_store_unavailable", requests=len(jobs), reason=exc.reason)
            self._fault = (exc.reason, time.monotonic())
            for job in jobs:
                job.future.set_exception(exc)
            return
        except Exception as exc:
            self.pipeline.invalidate()
            if len(jobs) > 1:
                # Find the request that fails and answer the others normally.
                for job in jobs:
                    self._process([job])
                return
            log.exception("http_ingest_failed", inputs=len(inputs))
            jobs[0].future.set_exception(exc)
            return
        self._fault = None  # the store takes writes again
        start = 0
        for job in jobs:
            end = start + len(job.inputs)
            job.future.set_result(Answer(result.outcomes[start:end], result.last_position))
            start = end
        for listener in self._listeners:
            try:
                listener(result.last_position)
            except Exception:
                log.exception("http_ingest_listener_failed")


# -- request helpers ------------------------------------------------------------------------


def media_type(request: Request) -> str:
    """Return the request's media type without parameters, lower-cased."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _check_encoding(request: Request) -> None:
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        msg = f"Content-Encoding {encoding!r} is not supported; send the body uncompressed"
        raise Problem(415, "UNSUPPORTED_MEDIA_TYPE", msg)


def _too_large(limit: int, what: str) -> Problem:
    return Problem(
        413,
        "PAYLOAD_TOO_LARGE",
        f"{what} is larger than {limit:,} bytes; split it into smaller requests",
        limit_bytes=limit,
    )


async def read_body(request: Request, limit: int, what: str = "the request body") -> bytes:
    """Read the body, refusing with 413 as soon as it is known to exceed ``limit`` bytes.

    Never holds more than ``limit`` bytes: past the limit the rest is read and
    dropped (up to ``DRAIN_FACTOR`` times the limit, so the client can read
    the answer) or not read at all.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            msg = f"Content-Length {declared!r} is not a number"
            raise Problem(400, "BAD_REQUEST", msg) from None
        if length > limit * DRAIN_FACTOR:
            raise _too_large(limit, what)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                if size > limit * DRAIN_FACTOR:
                    break
                continue
            chunks.append(chunk)
    except ClientDisconnect:
        msg = "the client went away before sending the whole body"
        raise Problem(400, "BAD_REQUEST", msg) from None
    if size > limit:
        raise _too_large(limit, what)
    return b"".join(chunks)


def _peek_source(body: bytes) -> str | None:
    """Return the ``source`` of a structured CloudEvent, if it can be read."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(obj, dict):
        source = obj.get("source")
        if isinstance(source, str):
            return source
    return None


def _source_refusal(token: ApiToken, source: str) -> str:
    return (
        f"token {token.token_id} may not post events with source {source!r}; "
        f"it is bound to {', '.join(token.sources)}"
    )


def batch_items(body: bytes, max_events: int) -> tuple[list[Any], list[bytes]]:
    """Split a batch body into its items (decoded) and each item's bytes for the pipeline.

    The bytes are the item written back by orjson, which is exact unless an
    item named a member twice (the parse kept one of the two) or nests too
    deeply to be written back: then, and only then, the body is split again
    by the standard library into each item's bytes as sent, so that the
    pipeline refuses such an item on its own and stores it as it was. Raises
    :class:`~practice_events.api.problems.Problem` for a body that is not a
    JSON array of at most ``max_events`` items.
    """
    try:
        items = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):
            msg = f"the batch nests arrays and objects more than {strictjson.MAX_DEPTH} levels deep"
            raise Problem(status_for("NESTING_TOO_DEEP"), "NESTING_TOO_DEEP", msg) from None
        raise Problem(400, "MALFORMED_JSON", f"the batch is not valid JSON: {exc}") from None
    if not isinstance(items, list):
        msg = f"a batch must be a JSON array of CloudEvents, got {type(items).__name__}"
        raise Problem(400, "INVALID_BATCH", msg)
    if len(items) > max_events:
        msg = f"the batch has {len(items):,} events; at most {max_events:,} are taken per request"
        raise Problem(413, "BATCH_TOO_LARGE", msg, limit_events=max_events)
    try:
        payloads = [orjson.dumps(item) for item in items]
        exact = strictjson.quotes(body) == sum(strictjson.quotes(p) for p in payloads)
    except orjson.JSONEncodeError:  # nested beyond what orjson writes
        exact = False
    if not exact:
        try:
            payloads = strictjson.split_array(body)
        except ContractError as exc:
            raise Problem(status_for(exc.code), exc.code, exc.reason) from None
    return items, payloads


def _result(outcome: Outcome, last_position: int) -> dict[str, Any]:
    out = outcome.as_dict()
    if outcome.status != "rejected" and "position" not in out:
        out["position"] = last_position
    return out


def _attribute(obj: Any, name: str) -> str | None:
    if isinstance(obj, dict):
        value = obj.get(name)
        if isinstance(value, str):
            return value[:256]
    return None


# -- routes ---------------------------------------------------------------------------------

router = APIRouter(tags=["ingestion"])

_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A CloudEvents 1.0 event of a type from GET /v1/schemas",
    "required": ["specversion", "id", "source", "type", "subject", "time", "data"],
    "properties": {
        "specversion": {"type": "string", "const": "1.0"},
        "id": {"type": "string"},
        "source": {"type": "string"},
        "type": {"type": "string"},
        "subject": {"type": "string"},
        "time": {"type": "string", "format": "date-time"},
        "datacontenttype": {"type": "string"},
        "data": {"type": "object"},
    },
}
_RESULT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["status"],
    "properties": {
        "status": {"type": "string", "enum": ["accepted", "duplicate", "rejected"]},
        "id": {"type": ["string", "null"]},
        "source": {"type": ["string", "null"]},
        "type": {"type": "string"},
        "subject": {"type": "string"},
        "position": {"type": "integer"},
        "shard": {
            "type": "string",
            "description": "the store that holds it, when sharded by district (`*`: every shard)",
        },
        "code": {"type": "string"},
        "reason": {"type": "string"},
        "flags": {
            "type": "array",
            "items": {"type": "string", "enum": ["BACKDATED"]},
            "description": "Remarks on an accepted event: BACKDATED (its time is long past)",
        },
    },
}
_ERRORS: dict[int | str, dict[str, Any]] = dict.fromkeys(
    (400, 401, 403, 409, 413, 415, 422, 429, 503), PROBLEM_RESPONSE_SCHEMA
)


@router.post(
    "/v1/events",
    status_code=202,
    response_model=None,
    summary="Post one CloudEvent",
    responses={
        202: {
            "description": "Accepted (or a duplicate of an event already stored)",
            "content": {JSON: {"schema": _RESULT_SCHEMA}},
        },
        **_ERRORS,
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                CLOUDEVENTS_JSON: {"schema": _EVENT_SCHEMA},
                JSON: {"schema": {"type": "object", "description": "data (binary mode)"}},
            },
        }
    },
)
async def post_event(request: Request, token: ProducerToken) -> Response:
    """Store one event (structured or binary mode) and answer with its outcome."""
    runtime = runtime_of(request)
    _check_encoding(request)
    kind = media_type(request)
    # Pairs, not a dict: a repeated ce-* header must reach the envelope, which refuses it.
    ce_headers = [(k, v) for k, v in request.headers.items() if k.startswith("ce-")]
    if kind == CLOUDEVENTS_JSON:
        binary = False
    elif kind == JSON and ce_headers:
        binary = True
    else:
        hint = " (batches go to POST /v1/events:batch)" if kind == CLOUDEVENTS_BATCH_JSON else ""
        msg = (
            f"Content-Type {kind or 'missing'!r} is not accepted here{hint}: send "
            f"{CLOUDEVENTS_JSON}, or {JSON} with ce-* headers (binary mode)"
        )
        raise Problem(415, "UNSUPPORTED_MEDIA_TYPE", msg)
    body = await read_body(request, runtime.limits.max_event_bytes, "the event")
    if binary:
        # Percent-decoded as the HTTP binding says; bytes that are not UTF-8 stay lone
        # surrogates, which the envelope refuses ("not valid UTF-8") instead of guessing.
        headers = [(name, unquote(value, errors="surrogateescape")) for name, value in ce_headers]
        headers += [("content-type", value) for value in request.headers.getlist("content-type")]
        raw = RawInput(payload=body, headers=headers, channel="http")
        sources = [value for name, value in headers if name == "ce-source"]
    else:
        raw = RawInput(payload=body, channel="http")
        peeked = _peek_source(body)
        sources = [peeked] if peeked is not None else []
    for source in sources:
        if not token.allows_source(source):
            log.info("http_source_not_allowed", token_id=token.token_id, source=source)
            raise Problem(403, "SOURCE_NOT_ALLOWED", _source_refusal(token, source))
    answer = await runtime.ingest.ingest([raw])
    outcome = answer.outcomes[0]
    result = _result(outcome, answer.last_position)
    if outcome.status == "rejected":
        code = outcome.code or "SCHEMA_VIOLATION"
        return problem_response(
            status_for(code),
            code,
            outcome.reason or "the event was refused",
            instance=request.url.path,
            event=result,
        )
    return JsonResponse(result, status_code=202)


@router.post(
    "/v1/events:batch",
    status_code=200,
    response_model=None,
    summary="Post a batch of CloudEvents",
    responses={
        200: {
            "description": "The batch was read; one result per event, in request order",
            "content": {
                JSON: {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "accepted": {"type": "integer"},
                            "duplicate": {"type": "integer"},
                            "rejected": {"type": "integer"},
                            "last_position": {"type": ["integer", "null"]},
                            "results": {"type": "array", "items": _RESULT_SCHEMA},
                        },
                    }
                }
            },
        },
        **_ERRORS,
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                CLOUDEVENTS_BATCH_JSON: {"schema": {"type": "array", "items": _EVENT_SCHEMA}}
            },
        }
    },
)
async def post_batch(request: Request, token: ProducerToken) -> Response:
    """Store a batch of structured events; answer with one result per event."""
    runtime = runtime_of(request)
    limits = runtime.limits
    _check_encoding(request)
    kind = media_type(request)
    if kind != CLOUDEVENTS_BATCH_JSON:
        msg = (
            f"Content-Type {kind or 'missing'!r} is not accepted here: "
            f"send {CLOUDEVENTS_BATCH_JSON}"
        )
        raise Problem(415, "UNSUPPORTED_MEDIA_TYPE", msg)
    body = await read_body(request, limits.max_batch_bytes, "the batch")
    items, payloads = batch_items(body, limits.max_batch_events)
    results: list[dict[str, Any]] = [{} for _ in items]
    inputs: list[RawInput] = []
    slots: list[int] = []
    for index, item in enumerate(items):
        source = _attribute(item, "source")
        if source is not None and not token.allows_source(source):
            results[index] = {
                "status": "rejected",
                "id": _attribute(item, "id"),
                "source": source,
                "type": _attribute(item, "type"),
                "subject": _attribute(item, "subject"),
                "code": "SOURCE_NOT_ALLOWED",
                "reason": _source_refusal(token, source),
            }
            continue
        inputs.append(RawInput(payload=payloads[index], channel="http"))
        slots.append(index)
    if len(slots) < len(items):
        log.info("http_source_not_allowed", token_id=token.token_id, events=len(items) - len(slots))
    last_position: int | None = None
    if inputs:
        answer = await runtime.ingest.ingest(inputs)
        last_position = answer.last_position
        for slot, outcome in zip(slots, answer.outcomes, strict=True):
            results[slot] = _result(outcome, answer.last_position)
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    for result in results:
        counts[result["status"]] += 1
    return JsonResponse({**counts, "last_position": last_position, "results": results})


__all__ = [
    "CLOUDEVENTS_BATCH_JSON",
    "CLOUDEVENTS_JSON",
    "Answer",
    "IngestThread",
    "batch_items",
    "read_body",
    "router",
]
