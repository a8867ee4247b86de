"""Request-rate limits: a token bucket per API token (or client address), 429 with Retry-After.

Every request except the probes (``/healthz``, ``/readyz``, ``/metrics``)
takes one unit from a bucket before it reaches a route:

* the bucket of its **token id** when it carries an active bearer token, so
  one producer's flood never slows another producer or a supervisor;
* otherwise (no token, an unknown, altered, expired or revoked one) the
  bucket of its **client address**, so that guessing tokens or hammering the
  dashboard's files is throttled too.

There are two classes of buckets with their own rate and burst
(:class:`~practice_events.api.app.HttpLimits`): ``ingest`` for ``POST
/v1/events`` and ``POST /v1/events:batch``, ``query`` for everything else.
A bucket holds at most ``burst`` units and refills at ``per_second`` units a
second; a request finding it empty is answered ``429 RATE_LIMITED`` (RFC 9457
problem+json) with ``Retry-After``: the whole seconds until the bucket holds
a unit again. Nothing is read from the request body before that answer.

Limits are **per process**. The buckets live in the server process's memory:
``practice-events api --workers N`` runs N processes, and since the kernel
hands each connection to one of them, a client may get up to N times the
configured rate through N connections. Keeping the buckets in the event store
would make every request wait for a database write, which the read API's
latency budget (issue 6) cannot afford; a limit shared by every process
belongs in front of the service (a reverse proxy or gateway) if it is ever
needed. Client addresses are as uvicorn reports them: behind a reverse proxy,
the proxy's address unless uvicorn trusts its ``X-Forwarded-For``
(uvicorn's ``FORWARDED_ALLOW_IPS`` environment variable; by default only 127.0.0.1).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import anyio.to_thread
import structlog
from eventsourcing.persistence import PersistenceError
from starlette.datastructures import Headers

from practice_events.api.auth import TOKEN_LOOKUP, bearer_secret_of
from practice_events.api.problems import problem_response

if TYPE_CHECKING:
    from practice_events.api.app import Runtime
    from practice_events.auth.tokens import ApiToken

log = structlog.get_logger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

BucketClass = Literal["ingest", "query"]

EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
"""Probes and scrapes are never limited: a throttled probe would restart a healthy server."""

INGEST_PATHS = frozenset({"/v1/events", "/v1/events:batch"})
"""``POST`` to these takes from the ``ingest`` buckets; every other request from ``query``."""

MAX_KEYS = 100_000
"""Most buckets kept; the least recently used is forgotten (it starts full if it comes back)."""


@dataclass(frozen=True, slots=True)
class RatePolicy:
    """How fast one bucket refills (units per second) and how much it holds (burst)."""

    per_second: float
    burst: int

    @property
    def enabled(self) -> bool:
        """False when ``per_second`` is 0: no limit for this class."""
        return self.per_second > 0


@dataclass(frozen=True, slots=True)
class Throttle:
    """A refused request: how long until its bucket holds a unit, and whether it just emptied."""

    wait_seconds: float
    first: bool
    """True for the first refusal after an allowed request (for logging once per episode)."""

    @property
    def retry_after(self) -> int:
        """The ``Retry-After`` value: whole seconds, at least 1 (RFC 9110 delay-seconds)."""
        return max(1, math.ceil(self.wait_seconds))


class _Bucket:
    __slots__ = ("level", "limited", "updated")

    def __init__(self, level: float, updated: float) -> None:
        self.level = level
        self.updated = updated
        self.limited = False


class RateLimiter:
    """Token buckets by (class, key) in this process's memory (see the module docstring).

    ``take`` is a dictionary lookup and a little arithmetic under a lock:
    cheap enough for the event loop on every request.
    """

    def __init__(
        self,
        policies: Mapping[BucketClass, RatePolicy],
        *,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policies = dict(policies)
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[tuple[str, str], _Bucket] = OrderedDict()
        self._lock = threading.Lock()
        self.refused = 0
        """Requests answered 429 since the start (for tests and metrics)."""

    @property
    def enabled(self) -> bool:
        """True when any class has a limit."""
        return any(policy.enabled for policy in self.policies.values())

    def take(self, kind: BucketClass, key: str) -> Throttle | None:
        """Take one unit from the bucket of ``key`` in class ``kind``; None if there was one."""
        policy = self.policies.get(kind)
        if policy is None or not policy.enabled:
            return None
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get((kind, key))
            if bucket is None:
                bucket = _Bucket(float(policy.burst), now)
                self._buckets[(kind, key)] = bucket
                if len(self._buckets) > self.max_keys:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end((kind, key))
                elapsed = max(0.0, now - bucket.updated)
                bucket.level = min(float(policy.burst), bucket.level + elapsed * policy.per_second)
                bucket.updated = now
            if bucket.level >= 1.0:
                bucket.level -= 1.0
                bucket.limited = False
                return None
            first = not bucket.limited
            bucket.limited = True
            self.refused += 1
            return Throttle((1.0 - bucket.level) / policy.per_second, first)


def bucket_class(method: str, path: str) -> BucketClass:
    """``ingest`` for posting events, ``query`` for everything else."""
    return "ingest" if method == "POST" and path in INGEST_PATHS else "query"


class RateLimitMiddleware:
    """Pure ASGI middleware applying the runtime's :class:`RateLimiter` to each request.

    The bucket key needs the token id, so the bearer token is looked up here
    (the verifier's cache first, the token store on a miss); the lookup is
    left in the request state for :func:`practice_events.api.auth.authenticate`,
    which therefore never looks the same secret up twice. A store that cannot
    be reached makes the request count against its client address; the route
    then answers 503 as it always did.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Take a unit from the request's bucket, or answer 429 without calling the app."""
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        state = scope.get("state")
        runtime: Runtime | None = state.get("runtime") if isinstance(state, dict) else None
        limiter = getattr(runtime, "limiter", None)
        if runtime is None or limiter is None or not limiter.enabled:
            await self.app(scope, receive, send)
            return
        assert isinstance(state, dict)
        kind = bucket_class(scope["method"], scope["path"])
        token = await _token_of(scope, state, runtime)
        if token is not None:
            key, by = f"token:{token.token_id}", "token"
        else:
            client = scope.get("client")
            key, by = f"address:{client[0] if client else 'unknown'}", "address"
        throttle = limiter.take(kind, key)
        if throttle is None:
            await self.app(scope, receive, send)
            return
        policy = limiter.policies[kind]
        if throttle.first:
            log.info(
                "http_rate_limited",
                bucket=kind,
                limited_by=by,
                token_id=token.token_id if token is not None else None,
                per_second=policy.per_second,
                burst=policy.burst,
            )
        who = "this token" if token is not None else "this client address without a valid token"
        detail = (
            f"too many {kind} requests from {who}: at most {policy.per_second:g} a second "
            f"(bursts of {policy.burst}); retry after {throttle.retry_after} s"
        )
        response = problem_response(
            429,
            "RATE_LIMITED",
            detail,
            instance=scope["path"],
            headers={"Retry-After": str(throttle.retry_after)},
            bucket=kind,
            limited_by=by,
            limit_per_second=policy.per_second,
            burst=policy.burst,
            retry_after_seconds=throttle.retry_after,
        )
        await response(scope, receive, send)


async def _token_of(scope: Scope, state: dict[str, Any], runtime: Runtime) -> ApiToken | None:
    """The request's active token, or None (no token, not ours, expired, revoked, store away).

    Records what the store said in ``state[TOKEN_LOOKUP]`` for the route's
    authentication to reuse.
    """
    secret = bearer_secret_of(Headers(scope=scope).get("authorization"))
    if secret is None:
        return None
    verifier = runtime.verifier
    token = verifier.cached(secret)
    if token is None:
        try:
            token = await anyio.to_thread.run_sync(verifier.fetch, secret)
        except PersistenceError:
            return None  # the route's own lookup answers 503 TRANSIENT
    state[TOKEN_LOOKUP] = (secret, token)
    if token is None or token.status(verifier.store.clock()) != "active":
        return None
    return token
