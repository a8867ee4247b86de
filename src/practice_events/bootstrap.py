"""The composition root: the only place that builds stores, contexts and pipelines.

Entry points (CLI, HTTP app, Kafka worker, projection runners) call these
builders with :class:`~practice_events.config.Settings`; nothing else reads
settings or opens connections.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from practice_events.application import PracticeEvents
from practice_events.config import Settings, store_env
from practice_events.domain import AREAS
from practice_events.domain.base import DomainContext

if TYPE_CHECKING:
    from practice_events.ingest.pipeline import Pipeline
    from practice_events.ingest.processor import BatchProcessor


def domain_config(settings: Settings) -> dict[str, Any]:
    """The plain settings that domain areas may use to build their services."""
    return {
        "timezone": settings.timezone,
        "calendar_file": settings.calendar_file,
    }


def build_context(settings: Settings) -> DomainContext:
    """Collect the domain services every area declares (calendar, SLA policies, points rule ...).

    An area module may define ``services(config) -> dict``; their union is the
    context aggregates consult.
    """
    config = domain_config(settings)
    services: dict[str, Any] = {}
    for area in AREAS:
        module = importlib.import_module(f"practice_events.domain.{area}")
        factory = getattr(module, "services", None)
        if factory is not None:
            services.update(factory(config))
    return DomainContext(services=services)


def application_env(settings: Settings) -> dict[str, str]:
    """The eventsourcing environment for the configured store."""
    env = store_env(settings.store)
    if settings.cipher_key is not None:
        env["CIPHER_TOPIC"] = "eventsourcing.cryptography:AESCipher"
        env["CIPHER_KEY"] = settings.cipher_key.get_secret_value()
    if settings.compress:
        env["COMPRESSOR_TOPIC"] = "eventsourcing.compressor:ZlibCompressor"
    return env


def build_app(settings: Settings) -> PracticeEvents:
    """Open the event store (creating its tables if needed).

    A store whose events the configured cipher key and compression cannot
    read is refused here, with the setting to change (see ``store.at_rest``).
    """
    from pathlib import Path

    from practice_events.contracts import load_all as load_contracts
    from practice_events.domain import load_all as load_domain

    load_contracts()
    load_domain()
    env = application_env(settings)
    db = env.get("SQLITE_DBNAME")
    if db and not db.startswith("file:"):
        Path(db).parent.mkdir(parents=True, exist_ok=True)
    import time

    from eventsourcing.persistence import IntegrityError, InternalError, ProgrammingError

    from practice_events.store.at_rest import check_at_rest

    for attempt in range(3):
        try:
            app = PracticeEvents(env=env)
        except (IntegrityError, ProgrammingError, InternalError):
            # Several processes creating the tables at once race on PostgreSQL's
            # CREATE TYPE (it has no IF NOT EXISTS); the loser simply tries again.
            # ("tuple concurrently updated" is the catalog's version of the same race.)
            if attempt == 2:
                raise
            time.sleep(0.1 * (attempt + 1))
            continue
        try:
            check_at_rest(app)
        except BaseException:
            app.close()
            raise
        return app
    raise AssertionError("unreachable")  # pragma: no cover


def pipeline_options(settings: Settings) -> dict[str, Any]:
    """The settings a pipeline takes (shared by :func:`build_pipeline` and shard pipelines)."""
    from datetime import timedelta

    return {
        "cache_size": settings.aggregate_cache_size,
        "snapshot_interval": settings.snapshot_interval,
        "max_future_skew": timedelta(seconds=settings.max_future_skew_seconds),
        "max_past_skew": timedelta(seconds=settings.max_past_skew_seconds),
        "earliest_time": settings.earliest_event_time,
    }


def build_pipeline(settings: Settings, app: PracticeEvents | None = None) -> Pipeline:
    """Build the ingest pipeline over ``app`` (opened from settings if not given)."""
    from practice_events.ingest.pipeline import Pipeline

    return Pipeline(
        app or build_app(settings), build_context(settings), **pipeline_options(settings)
    )


def build_ingest(settings: Settings, app: PracticeEvents | None = None) -> BatchProcessor:
    """Build what the ingestion channels write through: one pipeline, or a shard router.

    Without ``PRACTICE_EVENTS_SHARDS`` this is :func:`build_pipeline`. With it,
    each shard gets its own store and pipeline (``app``, when given, is the
    default shard's store, the one ``PRACTICE_EVENTS_STORE`` names); the router
    opens the others and closes them in ``close()``.
    """
    if not settings.shards:
        return build_pipeline(settings, app)
    from practice_events.shards.router import ShardPipeline, ShardRouter
    from practice_events.shards.routing import ShardMap

    shard_map = ShardMap.from_settings(settings)
    ctx = build_context(settings)
    pipelines: dict[str, Pipeline] = {}
    owned: list[PracticeEvents] = []
    try:
        for shard in shard_map.shards:
            if shard.default and app is not None:
                shard_app = app
            else:
                shard_app = build_app(settings.model_copy(update={"store": shard.url}))
                owned.append(shard_app)
            pipelines[shard.name] = ShardPipeline(
                shard_app,
                ctx,
                shard_map=shard_map,
                shard=shard.name,
                **pipeline_options(settings),
            )
    except BaseException:
        for opened in owned:
            opened.close()
        raise
    return ShardRouter(shard_map, pipelines, owned=owned)
