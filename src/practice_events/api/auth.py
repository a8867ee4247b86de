"""Bearer-token authentication for the HTTP API, as FastAPI dependencies.

``Authorization: Bearer pe_…`` is checked against the token store (through a
short-lived cache, see :class:`~practice_events.auth.tokens.TokenVerifier`).
Failures are problem documents: 401 for a missing, unknown, altered, expired
or revoked token (with ``WWW-Authenticate: Bearer``), 403 for a token whose
role may not use the endpoint. Secrets are never logged; the token id is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, cast

import anyio.to_thread
import structlog
from eventsourcing.persistence import PersistenceError
from fastapi import Depends, Request

from practice_events.auth.tokens import ApiToken, AuthenticationError, check_active
from practice_events.errors import AuthorizationError, TransientError

if TYPE_CHECKING:
    from practice_events.api.app import Runtime

log = structlog.get_logger(__name__)


def runtime_of(request: Request) -> Runtime:
    """Return the resources the lifespan opened (store, token verifier, ingest thread)."""
    return cast("Runtime", request.state.runtime)


TOKEN_LOOKUP = "practice_events.token_lookup"  # noqa: S105 - a state key, not a secret
"""Request-state key of ``(secret, token or None)``: the rate limiter's lookup of the secret.

:class:`~practice_events.api.ratelimit.RateLimitMiddleware` looks the bearer
token up before the route runs (its bucket is keyed by the token id);
:func:`authenticate` reuses that answer instead of asking the store again.
"""


def bearer_secret_of(header: str | None) -> str | None:
    """The secret of an ``Authorization: Bearer <secret>`` header value (None if it is not one)."""
    if not header:
        return None
    scheme, _, secret = header.strip().partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        return None
    return secret


def bearer_secret(request: Request) -> str:
    """Return the secret of the ``Authorization: Bearer`` header; 401 if there is none."""
    header = request.headers.get("authorization")
    if not header:
        msg = (
            "this endpoint needs a bearer token: send 'Authorization: Bearer <token>' "
            "(tokens are issued by `practice-events tokens create`)"
        )
        raise AuthenticationError(msg, code="UNAUTHENTICATED")
    scheme, _, secret = header.strip().partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        msg = "the Authorization header must read 'Bearer <token>'"
        raise AuthenticationError(msg, code="UNAUTHENTICATED")
    return secret


async def authenticate(request: Request) -> ApiToken:
    """Return the active token of the request (401 otherwise)."""
    secret = bearer_secret(request)
    verifier = runtime_of(request).verifier
    looked_up = getattr(request.state, TOKEN_LOOKUP, None)
    if looked_up is not None and looked_up[0] == secret:
        return check_active(looked_up[1], verifier.store.clock())
    token = verifier.cached(secret)
    if token is None:
        try:
            token = await anyio.to_thread.run_sync(verifier.fetch, secret)
        except PersistenceError as exc:
            msg = f"cannot check the token: event store unavailable ({exc})"
            raise TransientError(msg) from exc
    return check_active(token, verifier.store.clock())


def require_role(*roles: str) -> Callable[[Request], Awaitable[ApiToken]]:
    """Return a dependency that admits active tokens of one of ``roles`` (403 for others)."""

    async def dependency(request: Request) -> ApiToken:
        token = await authenticate(request)
        if token.role not in roles:
            log.info("http_forbidden_role", token_id=token.token_id, role=token.role)
            msg = (
                f"a {token.role} token may not use this endpoint; it needs a "
                f"{' or '.join(roles)} token"
            )
            raise AuthorizationError(msg)
        return token

    return dependency


ProducerToken = Annotated[ApiToken, Depends(require_role("producer"))]
"""A route parameter that is the caller's active producer token."""
