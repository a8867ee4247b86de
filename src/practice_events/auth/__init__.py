"""Credentials: bearer tokens bound to a role and, for producers, to CloudEvents sources.

Tokens are issued by ``practice-events tokens create``, stored hashed in the
event store's database (table ``api_tokens``), expire, and can be revoked.
The HTTP layer (:mod:`practice_events.api.auth`) turns them into principals.
"""

from practice_events.auth.tokens import (
    ROLES,
    ApiToken,
    AuthenticationError,
    InvalidGrantError,
    IssuedToken,
    Role,
    TokenStore,
    TokenVerifier,
    UnknownTokenError,
    token_store,
)

__all__ = [
    "ROLES",
    "ApiToken",
    "AuthenticationError",
    "InvalidGrantError",
    "IssuedToken",
    "Role",
    "TokenStore",
    "TokenVerifier",
    "UnknownTokenError",
    "token_store",
]
