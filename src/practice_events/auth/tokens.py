"""API tokens: issued once, stored hashed, bound to a role, expiring and revocable.

A token is ``pe_`` followed by 32 random bytes in URL-safe base64 (256 bits
of entropy). Only its SHA-256 digest is stored. A slow password hash (bcrypt,
argon2) exists to make guessing *low-entropy* secrets expensive; a 256-bit
random secret cannot be guessed whatever the hash, so a fast hash loses
nothing and lets every request find its token with one indexed lookup. The
secret is shown once, when it is created, and never logged: logs and listings
name a token by its id (``tok_…``) and a short hint (its first characters).

Roles (the later query API builds on them):

========================  ==========================================================
``district_supervisor``   reads everything under its unit (the district centre)
``institute_supervisor``  reads its institute, its stations and their sites
``station_supervisor``    reads its own station's sites
``producer``              posts events whose CloudEvents ``source`` it is bound to
``auditor``               reads everything, replays, exports
========================  ==========================================================

Supervisor tokens need a unit; producer tokens need at least one source
pattern: an exact ``source`` value, or a prefix ending in ``*``
(``urn:app:checkin:*`` allows every source starting with ``urn:app:checkin:``).

Tokens live in table ``api_tokens`` of the event store's database (SQLite file
or PostgreSQL schema), written through the recorder's own datastore so that no
second set of connection settings exists.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, get_args

import orjson

from practice_events.errors import PracticeEventsError

if TYPE_CHECKING:
    from practice_events.application import PracticeEvents

Role = Literal[
    "district_supervisor", "institute_supervisor", "station_supervisor", "producer", "auditor"
]
"""Who a token speaks for."""

ROLES: tuple[Role, ...] = get_args(Role)
"""Every role, in the order they are documented."""

SUPERVISOR_ROLES: frozenset[str] = frozenset(
    {"district_supervisor", "institute_supervisor", "station_supervisor"}
)
"""Roles that read the data of one unit and need ``unit``."""

TOKEN_PREFIX = "pe_"  # noqa: S105 - a public prefix, not a password
"""Every secret starts with this, so leaked tokens are easy to recognise (and to scan for)."""

DEFAULT_LIFETIME = timedelta(days=90)
"""How long a token is valid unless told otherwise."""

HINT_LENGTH = 7
"""Characters of the secret kept in clear as a hint (``pe_`` plus 4 of 43 random ones)."""

_SECRET_SHAPE = re.compile(r"^pe_[A-Za-z0-9_-]{43}$")
_SOURCE_PATTERN = re.compile(r"^[^\s*]*\*?$")
MAX_SOURCE_LENGTH = 256

TokenStatus = Literal["active", "expired", "revoked"]


class AuthenticationError(PracticeEventsError):
    """The request carries no usable credential (missing, malformed, unknown, expired, revoked).

    Codes: ``UNAUTHENTICATED`` (no bearer token), ``INVALID_TOKEN`` (not a
    token we issued, or altered), ``TOKEN_EXPIRED``, ``TOKEN_REVOKED``. All
    map to HTTP 401.
    """

    code = "UNAUTHENTICATED"


class InvalidGrantError(PracticeEventsError):
    """A token was asked for with a role, unit or sources that do not fit together."""

    code = "INVALID_GRANT"


class UnknownTokenError(PracticeEventsError):
    """No token has the given id."""

    code = "UNKNOWN_TOKEN"


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A stored token: who it speaks for and until when (never the secret)."""

    token_id: str
    role: Role
    unit: str | None
    sources: tuple[str, ...]
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None
    hint: str = ""

    def status(self, now: datetime) -> TokenStatus:
        """Return whether the token is active, expired or revoked at ``now``."""
        if self.revoked_at is not None and self.revoked_at <= now:
            return "revoked"
        if self.expires_at <= now:
            return "expired"
        return "active"

    def allows_source(self, source: str) -> bool:
        """Tell whether this token may post events with this CloudEvents ``source``."""
        for pattern in self.sources:
            if pattern.endswith("*"):
                if source.startswith(pattern[:-1]):
                    return True
            elif source == pattern:
                return True
        return False

    def as_dict(self, now: datetime | None = None) -> dict[str, Any]:
        """Return the token's public description as JSON-ready data."""
        out: dict[str, Any] = {
            "id": self.token_id,
            "role": self.role,
            "unit": self.unit,
            "sources": list(self.sources),
            "hint": self.hint,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }
        if now is not None:
            out["status"] = self.status(now)
        return out


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A freshly created token together with its secret (the only time it is known)."""

    secret: str
    token: ApiToken

    def __repr__(self) -> str:
        """Keep the secret out of reprs, tracebacks and logs."""
        return f"IssuedToken(token={self.token!r}, secret='{self.token.hint}…')"


def hash_secret(secret: str) -> str:
    """Return the stored form of a secret (SHA-256, hex)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def validate_grant(role: str, unit: str | None, sources: Sequence[str]) -> tuple[str, ...]:
    """Check that role, unit and sources fit together; return the normalised sources."""
    if role not in ROLES:
        msg = f"unknown role {role!r}; choose one of {', '.join(ROLES)}"
        raise InvalidGrantError(msg)
    if role in SUPERVISOR_ROLES and not unit:
        msg = f"a {role} token needs --unit (the unit it supervises)"
        raise InvalidGrantError(msg)
    if role not in SUPERVISOR_ROLES and unit:
        msg = f"a {role} token is not bound to a unit; drop --unit"
        raise InvalidGrantError(msg)
    if role == "producer" and not sources:
        msg = (
            "a producer token needs at least one --source (an exact source or a prefix ending in *)"
        )
        raise InvalidGrantError(msg)
    if role != "producer" and sources:
        msg = f"only producer tokens are bound to sources; a {role} token takes no --source"
        raise InvalidGrantError(msg)
    normalised: list[str] = []
    for source in sources:
        if not source or len(source) > MAX_SOURCE_LENGTH or not _SOURCE_PATTERN.match(source):
            msg = (
                f"bad source pattern {source!r}: use an exact CloudEvents source, or a "
                "prefix ending in * (no spaces, * only at the end)"
            )
            raise InvalidGrantError(msg)
        if source not in normalised:
            normalised.append(source)
    return tuple(normalised)


class TokenStore(ABC):
    """Issues, finds, lists and revokes tokens in table ``api_tokens``."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.clock = clock or (lambda: datetime.now(UTC))

    # -- storage (one implementation per database) --------------------------------------

    @abstractmethod
    def create_table(self) -> None:
        """Create ``api_tokens`` if it does not exist."""

    @abstractmethod
    def _insert(self, token: ApiToken, token_hash: str) -> None:
        """Store a new token row."""

    @abstractmethod
    def _find_by_hash(self, token_hash: str) -> ApiToken | None:
        """Return the token whose secret hashes to ``token_hash``."""

    @abstractmethod
    def _find_by_id(self, token_id: str) -> ApiToken | None:
        """Return the token with this id."""

    @abstractmethod
    def _select_all(self) -> list[ApiToken]:
        """Return every token, oldest first."""

    @abstractmethod
    def _set_revoked(self, token_id: str, when: datetime) -> None:
        """Mark a token revoked at ``when`` unless it already is."""

    # -- use cases ----------------------------------------------------------------------

    def issue(
        self,
        role: str,
        *,
        unit: str | None = None,
        sources: Iterable[str] = (),
        lifetime: timedelta = DEFAULT_LIFETIME,
        now: datetime | None = None,
    ) -> IssuedToken:
        """Create a token and return it with its secret, which is not stored anywhere."""
        checked = validate_grant(role, unit, list(sources))
        if lifetime <= timedelta(0):
            msg = "a token's lifetime must be positive"
            raise InvalidGrantError(msg)
        created = now or self.clock()
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = ApiToken(
            token_id="tok_" + secrets.token_hex(8),
            role=role,  # type: ignore[arg-type]  # checked against ROLES by validate_grant
            unit=unit or None,
            sources=checked,
            created_at=created,
            expires_at=created + lifetime,
            revoked_at=None,
            hint=secret[:HINT_LENGTH],
        )
        self._insert(token, hash_secret(secret))
        return IssuedToken(secret=secret, token=token)

    def lookup(self, secret: str) -> ApiToken | None:
        """Return the token a secret belongs to, whatever its status (None if unknown)."""
        if not _SECRET_SHAPE.match(secret):
            return None
        return self._find_by_hash(hash_secret(secret))

    def authenticate(self, secret: str, now: datetime | None = None) -> ApiToken:
        """Return the active token for ``secret``; raise :class:`AuthenticationError` otherwise."""
        return check_active(self.lookup(secret), now or self.clock())

    def list_tokens(self) -> list[ApiToken]:
        """Return every token, oldest first (secrets are never stored, so never listed)."""
        return self._select_all()

    def revoke(self, token_id: str, now: datetime | None = None) -> ApiToken:
        """Revoke a token (idempotent: revoking twice keeps the first time)."""
        if self._find_by_id(token_id) is None:
            msg = f"no token has id {token_id!r}; `practice-events tokens list` shows them"
            raise UnknownTokenError(msg)
        self._set_revoked(token_id, now or self.clock())
        token = self._find_by_id(token_id)
        assert token is not None
        return token


def check_active(token: ApiToken | None, now: datetime) -> ApiToken:
    """Return ``token`` if it is usable at ``now``; raise :class:`AuthenticationError` otherwise."""
    if token is None:
        msg = "the bearer token is not one this service issued (or it was altered)"
        raise AuthenticationError(msg, code="INVALID_TOKEN")
    status = token.status(now)
    if status == "revoked":
        msg = f"token {token.token_id} was revoked; ask for a new one"
        raise AuthenticationError(msg, code="TOKEN_REVOKED")
    if status == "expired":
        msg = f"token {token.token_id} expired at {token.expires_at.isoformat()}; ask for a new one"
        raise AuthenticationError(msg, code="TOKEN_EXPIRED")
    return token


class TokenVerifier:
    """Authenticates secrets, remembering found tokens for a few seconds.

    Without the cache every request would cost a database round trip. Expiry
    is checked on every call against the cached row; a revocation made by
    another process (``tokens revoke``) takes effect within ``ttl`` seconds.
    Unknown secrets are not cached, so a token created a moment ago works at
    once. The cache holds token rows, never secrets (keys are their digests).
    """

    def __init__(self, store: TokenStore, *, ttl: float = 5.0, max_entries: int = 10_000) -> None:
        self.store = store
        self.ttl = ttl
        self.max_entries = max_entries
        self._cache: dict[str, tuple[float, ApiToken]] = {}
        self._lock = threading.Lock()

    def cached(self, secret: str) -> ApiToken | None:
        """Return the cached token for ``secret`` if it is fresh (no I/O)."""
        if self.ttl <= 0:
            return None
        entry = self._cache.get(hash_secret(secret))
        if entry is None or time.monotonic() - entry[0] > self.ttl:
            return None
        return entry[1]

    def fetch(self, secret: str) -> ApiToken | None:
        """Look the secret up in the store (I/O) and cache what was found."""
        token = self.store.lookup(secret)
        if token is not None and self.ttl > 0:
            with self._lock:
                if len(self._cache) >= self.max_entries:
                    self._cache.clear()
                self._cache[hash_secret(secret)] = (time.monotonic(), token)
        return token

    def verify(self, secret: str, now: datetime | None = None) -> ApiToken:
        """Return the active token for ``secret`` (cache first, then the store)."""
        token = self.cached(secret)
        if token is None:
            token = self.fetch(secret)
        return check_active(token, now or self.store.clock())


# -- SQLite ---------------------------------------------------------------------------------


def _row_token(row: Any, parse: Callable[[Any], datetime]) -> ApiToken:
    return ApiToken(
        token_id=row["token_id"],
        role=row["role"],
        unit=row["unit"],
        sources=tuple(orjson.loads(row["sources"])),
        created_at=parse(row["created_at"]),
        expires_at=parse(row["expires_at"]),
        revoked_at=parse(row["revoked_at"]) if row["revoked_at"] is not None else None,
        hint=row["hint"],
    )


def _parse_iso(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


_COLUMNS = "token_id, role, unit, sources, created_at, expires_at, revoked_at, hint"


class SQLiteTokenStore(TokenStore):
    """Tokens in the event store's SQLite file (times as ISO 8601 text, UTC)."""

    def __init__(self, datastore: Any, clock: Callable[[], datetime] | None = None) -> None:
        super().__init__(clock)
        self.datastore = datastore

    def create_table(self) -> None:
        """Create ``api_tokens`` and its index on the secret's digest."""
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                "CREATE TABLE IF NOT EXISTS api_tokens ("
                "token_id TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE, "
                "role TEXT NOT NULL, unit TEXT, sources TEXT NOT NULL, "
                "created_at TEXT NOT NULL, expires_at TEXT NOT NULL, revoked_at TEXT, "
                "hint TEXT NOT NULL)"
            )

    def _insert(self, token: ApiToken, token_hash: str) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                "INSERT INTO api_tokens (token_hash, token_id, role, unit, sources, created_at, "
                "expires_at, revoked_at, hint) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    token_hash,
                    token.token_id,
                    token.role,
                    token.unit,
                    orjson.dumps(list(token.sources)).decode(),
                    _utc_text(token.created_at),
                    _utc_text(token.expires_at),
                    None,
                    token.hint,
                ),
            )

    def _one(self, where: str, value: str) -> ApiToken | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT {_COLUMNS} FROM api_tokens WHERE {where} = ?", (value,))  # noqa: S608 - fixed column names
            row = c.fetchone()
        return _row_token(row, _parse_iso) if row is not None else None

    def _find_by_hash(self, token_hash: str) -> ApiToken | None:
        return self._one("token_hash", token_hash)

    def _find_by_id(self, token_id: str) -> ApiToken | None:
        return self._one("token_id", token_id)

    def _select_all(self) -> list[ApiToken]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT {_COLUMNS} FROM api_tokens ORDER BY created_at, token_id")  # noqa: S608 - fixed column names
            rows = c.fetchall()
        return [_row_token(row, _parse_iso) for row in rows]

    def _set_revoked(self, token_id: str, when: datetime) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                "UPDATE api_tokens SET revoked_at = ? WHERE token_id = ? AND revoked_at IS NULL",
                (_utc_text(when), token_id),
            )


def _utc_text(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


# -- PostgreSQL -----------------------------------------------------------------------------


class PostgresTokenStore(TokenStore):
    """Tokens in the event store's PostgreSQL schema (times as ``timestamptz``)."""

    def __init__(self, datastore: Any, clock: Callable[[], datetime] | None = None) -> None:
        from psycopg.sql import SQL, Identifier

        super().__init__(clock)
        self.datastore = datastore
        table = SQL("{0}.{1}").format(Identifier(datastore.schema), Identifier("api_tokens"))
        columns = SQL(_COLUMNS)
        self._create = [
            SQL(
                "CREATE TABLE IF NOT EXISTS {0} ("
                "token_id text PRIMARY KEY, token_hash text NOT NULL UNIQUE, "
                "role text NOT NULL, unit text, sources text NOT NULL, "
                "created_at timestamptz NOT NULL, expires_at timestamptz NOT NULL, "
                "revoked_at timestamptz, hint text NOT NULL)"
            ).format(table),
        ]
        self._insert_sql = SQL(
            "INSERT INTO {0} (token_hash, token_id, role, unit, sources, created_at, "
            "expires_at, revoked_at, hint) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
        ).format(table)
        self._by_hash = SQL("SELECT {0} FROM {1} WHERE token_hash = %s").format(columns, table)
        self._by_id = SQL("SELECT {0} FROM {1} WHERE token_id = %s").format(columns, table)
        self._all = SQL("SELECT {0} FROM {1} ORDER BY created_at, token_id").format(columns, table)
        self._revoke = SQL(
            "UPDATE {0} SET revoked_at = %s WHERE token_id = %s AND revoked_at IS NULL"
        ).format(table)

    def create_table(self) -> None:
        """Create ``api_tokens`` (tolerating another process creating it at the same time)."""
        import psycopg

        with self.datastore.get_connection() as conn:
            for statement in self._create:
                try:
                    with conn.transaction():
                        conn.execute(statement, prepare=False)
                except psycopg.errors.UniqueViolation:  # pragma: no cover - a creation race
                    continue

    def _insert(self, token: ApiToken, token_hash: str) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                self._insert_sql,
                (
                    token_hash,
                    token.token_id,
                    token.role,
                    token.unit,
                    orjson.dumps(list(token.sources)).decode(),
                    token.created_at,
                    token.expires_at,
                    None,
                    token.hint,
                ),
                prepare=False,
            )

    def _one(self, query: Any, value: str) -> ApiToken | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(query, (value,))
            row = curs.fetchone()
        return _row_token(row, _parse_iso) if row is not None else None

    def _find_by_hash(self, token_hash: str) -> ApiToken | None:
        return self._one(self._by_hash, token_hash)

    def _find_by_id(self, token_id: str) -> ApiToken | None:
        return self._one(self._by_id, token_id)

    def _select_all(self) -> list[ApiToken]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._all, prepare=False)
            rows = curs.fetchall()
        return [_row_token(row, _parse_iso) for row in rows]

    def _set_revoked(self, token_id: str, when: datetime) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(self._revoke, (when, token_id), prepare=False)


def token_store(app: PracticeEvents, clock: Callable[[], datetime] | None = None) -> TokenStore:
    """Return the token store living beside ``app``'s events (same database, same connections).

    The table is created if it does not exist yet.
    """
    datastore = app.recorder.datastore  # type: ignore[attr-defined]  # both our recorders have one
    from eventsourcing.sqlite import SQLiteDatastore

    store: TokenStore
    if isinstance(datastore, SQLiteDatastore):
        store = SQLiteTokenStore(datastore, clock)
    else:
        store = PostgresTokenStore(datastore, clock)
    store.create_table()
    return store


__all__ = [
    "DEFAULT_LIFETIME",
    "ROLES",
    "SUPERVISOR_ROLES",
    "ApiToken",
    "AuthenticationError",
    "InvalidGrantError",
    "IssuedToken",
    "PostgresTokenStore",
    "Role",
    "SQLiteTokenStore",
    "TokenStore",
    "TokenVerifier",
    "UnknownTokenError",
    "check_active",
    "hash_secret",
    "token_store",
    "validate_grant",
]
