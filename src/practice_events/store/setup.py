"""Create the event store's schema and tables ahead of the processes that use them.

Every process creates the tables it needs on start (``CREATE TABLE IF NOT
EXISTS``), so this is not required for correctness. It exists for
deployments: a set-up job (``practice-events store init``, see ``infra/``)
runs once before the API, the ingestion workers and the projection runners
start, so that

* a PostgreSQL schema named in the store URL (``?schema=NAME``, e.g. one per
  shard) exists: eventsourcing creates tables but never schemas, and a
  process started against a missing schema fails with ``schema … does not
  exist``;
* the first start of many replicas does not race on PostgreSQL's
  ``CREATE TYPE`` (``bootstrap.build_app`` retries that race, but a job that
  ran first avoids it);
* the job can wait for the database to accept connections (``wait_seconds``),
  which an orchestrator's start ordering does not guarantee;
* a deployment sharded by district gets every shard's store prepared
  (:func:`init_stores`).

Only the core package's tables are created here: the event store (events,
tracking, idempotency keys, rejections), API tokens and the integrity chain's
seals. The views belong to the projection runners, which create theirs on start.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from practice_events.config import Settings, mask_url, store_env
from practice_events.errors import ConfigurationError, TransientError

RETRY_SECONDS = 1.0
"""Pause between attempts while waiting for the database."""


@dataclass
class StoreInitResult:
    """What ``store init`` found and did."""

    store: str
    backend: str
    schema: str | None
    schema_created: bool
    tables: list[str] = field(default_factory=list)
    last_position: int = 0
    attempts: int = 1
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """Return the result as plain JSON values."""
        return {
            "store": self.store,
            "backend": self.backend,
            "schema": self.schema,
            "schema_created": self.schema_created,
            "tables": self.tables,
            "last_position": self.last_position,
            "attempts": self.attempts,
            "seconds": round(self.seconds, 3),
        }


def init_store(
    settings: Settings,
    *,
    wait_seconds: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
) -> StoreInitResult:
    """Create the store's schema (PostgreSQL) and tables; return what exists afterwards.

    Idempotent: running it again changes nothing. While the database refuses
    connections it tries again every second for up to ``wait_seconds``, then
    raises :class:`TransientError` (the CLI's exit code 3).
    """
    started = time.monotonic()
    deadline = started + max(0.0, wait_seconds)
    attempts = 0
    while True:
        attempts += 1
        try:
            result = _init_once(settings)
        except TransientError:
            if time.monotonic() + RETRY_SECONDS > deadline:
                raise
            sleep(RETRY_SECONDS)
            continue
        result.attempts = attempts
        result.seconds = time.monotonic() - started
        return result


def store_urls(settings: Settings) -> list[str]:
    """The stores a deployment writes to: the default store, then each shard's, once each.

    A deployment sharded by district (``PRACTICE_EVENTS_SHARDS``, see
    ``docs/sharding.md``) keeps one event store per shard, typically a schema
    each in one PostgreSQL database; the set-up job prepares all of them.
    """
    shards: dict[str, str] = dict(getattr(settings, "shards", None) or {})
    urls = [settings.store]
    for url in shards.values():
        if url not in urls:
            urls.append(url)
    return urls


def init_stores(
    settings: Settings,
    *,
    wait_seconds: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
) -> list[StoreInitResult]:
    """Run :func:`init_store` for the default store and every shard's store, in that order."""
    results = []
    for url in store_urls(settings):
        one = settings.model_copy(update={"store": url})
        results.append(init_store(one, wait_seconds=wait_seconds, sleep=sleep))
    return results


def _init_once(settings: Settings) -> StoreInitResult:
    from eventsourcing.persistence import PersistenceError

    from practice_events.audit.integrity import log_store
    from practice_events.auth.tokens import token_store
    from practice_events.bootstrap import build_app

    env = store_env(settings.store)
    postgres = env["PERSISTENCE_MODULE"].endswith("postgres:Factory")
    schema = env.get("POSTGRES_SCHEMA") if postgres else None
    created = _create_schema(env) if postgres else False
    try:
        app = build_app(settings)
    except PersistenceError as exc:
        msg = f"cannot open the event store {mask_url(settings.store)}: {exc}"
        raise TransientError(msg) from None
    try:
        token_store(app)
        log_store(app, create=True)
        tables = _tables(app, schema)
        position = int(app.recorder.max_notification_id() or 0)
    except PersistenceError as exc:
        msg = f"the event store {mask_url(settings.store)} failed during set-up: {exc}"
        raise TransientError(msg) from None
    finally:
        app.close()
    return StoreInitResult(
        store=mask_url(settings.store),
        backend="postgresql" if postgres else "sqlite",
        schema=schema,
        schema_created=created,
        tables=tables,
        last_position=position,
    )


def _create_schema(env: dict[str, str]) -> bool:
    """Create the PostgreSQL schema of the store URL if missing; return whether it was."""
    import psycopg
    from psycopg import sql

    schema = env["POSTGRES_SCHEMA"]
    try:
        with psycopg.connect(
            host=env["POSTGRES_HOST"],
            port=int(env["POSTGRES_PORT"]),
            dbname=env["POSTGRES_DBNAME"],
            user=env["POSTGRES_USER"],
            password=env["POSTGRES_PASSWORD"] or None,
            connect_timeout=int(env["POSTGRES_CONNECT_TIMEOUT"]),
            autocommit=True,
        ) as conn:
            found = conn.execute(
                "SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)
            ).fetchone()
            if found is not None:
                return False
            try:
                conn.execute(sql.SQL("CREATE SCHEMA {0}").format(sql.Identifier(schema)))
            except psycopg.errors.DuplicateSchema:
                return False  # another job created it in the meantime
            except psycopg.errors.UniqueViolation:
                return False  # the same race, seen in the catalogue
            return True
    except psycopg.OperationalError as exc:
        text = " ".join(str(exc).split())
        first = text or type(exc).__name__
        where = f"PostgreSQL at {env['POSTGRES_HOST']}:{env['POSTGRES_PORT']}"
        if any(words in text for words in _NOT_TRANSIENT):
            # Waiting will not help: the URL names something that does not exist or is refused.
            msg = f"{where} refused the store URL: {first}"
            raise ConfigurationError(msg) from None
        msg = f"{where} unavailable: {first}"
        raise TransientError(msg) from None


_NOT_TRANSIENT = ("does not exist", "authentication failed", "no password supplied")


def _tables(app: Any, schema: str | None) -> list[str]:
    """Return the names of the tables in the store (its schema on PostgreSQL), sorted."""
    datastore = app.recorder.datastore
    with datastore.transaction(commit=False) as cursor:
        if schema is None:
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            rows = cursor.fetchall()
            return sorted(str(row[0]) for row in rows)
        cursor.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (schema,),
        )
        rows = cursor.fetchall()
    return sorted(str(row["table_name"] if isinstance(row, dict) else row[0]) for row in rows)
