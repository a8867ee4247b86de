"""Settings: every knob from the environment (``PRACTICE_EVENTS_*``) or a TOML file.

Nothing here does I/O at import time; :func:`load_settings` reads the
environment and, if ``PRACTICE_EVENTS_CONFIG`` names one, a TOML file whose
keys are the field names below (environment variables win over the file).

Settings sections
-----------------
Some parts keep their own settings class beside their code (the HTTP limits
``PRACTICE_EVENTS_HTTP_*``, the read API's ``PRACTICE_EVENTS_API_*``). They
register it under the entry-point group ``practice_events.settings`` (a
pydantic ``BaseSettings`` class whose ``env_prefix`` starts with
``PRACTICE_EVENTS_``), so that one TOML file configures everything and
``practice-events config show`` prints every setting. A key of the TOML file
that is not a field of :class:`Settings` but names a section's setting
(``http_max_batch_events`` for ``PRACTICE_EVENTS_HTTP_MAX_BATCH_EVENTS``) is
handed to that section through the environment, unless the environment
already sets it (the environment wins there too); any other key is refused.
"""

from __future__ import annotations

import os
import tomllib
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AwareDatetime,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from practice_events.errors import ConfigurationError

DEFAULT_STORE = "sqlite:///var/practice-events.db"

EARLIEST_EVENT_TIME = datetime(2000, 1, 1, tzinfo=timezone(timedelta(hours=8)))
"""Default of ``earliest_event_time``: the periods of the scorecards begin in 2000."""


class Settings(BaseSettings):
    """The effective configuration of one practice-events process."""

    model_config = SettingsConfigDict(env_prefix="PRACTICE_EVENTS_", extra="forbid")

    store: str = Field(
        default=DEFAULT_STORE,
        description="Event store URL: sqlite:///relative/path.db, sqlite:////absolute/path.db "
        "or postgresql://user:password@host:port/database[?schema=NAME]",
    )
    shards: dict[str, str] = Field(
        default_factory=dict,
        description="Sharding by district: a JSON object (a TOML table) of district code -> "
        "store URL; events of other districts go to `store` (see docs/sharding.md)",
    )
    timezone: str = Field(
        default="Asia/Shanghai", description="The network's time zone for periods and due times"
    )
    profile: Literal["embedded", "production"] = Field(
        default="embedded",
        description="production: a cipher key is required and payloads are compressed "
        "(embedded: the simple demo default)",
    )
    cipher_key: SecretStr | None = Field(
        default=None,
        description="AES key (base64, 16/24/32 bytes; `practice-events keys generate`) to "
        "encrypt event payloads, refused inputs and person keys at rest",
    )
    compress: bool | None = Field(
        default=None,
        description="zlib-compress event payloads at rest (default: on in the production profile)",
    )
    batch_size: int = Field(
        default=1000, ge=1, le=50_000, description="Events per ingest transaction"
    )
    aggregate_cache_size: int = Field(
        default=50_000, ge=0, description="Aggregates kept in memory by an ingest process"
    )
    snapshot_interval: int = Field(
        default=100,
        ge=0,
        description="Events an aggregate gains between two snapshots of its state, which let an "
        "ingest process that starts cold load long histories fast (0: no snapshots)",
    )
    max_future_skew_seconds: int = Field(
        default=300,
        ge=0,
        description="Events whose time is further than this in the future are rejected",
    )
    max_past_skew_seconds: int = Field(
        default=7 * 24 * 3600,
        ge=0,
        description="Events whose time is further than this in the past when received are "
        "accepted and flagged BACKDATED",
    )
    earliest_event_time: AwareDatetime = Field(
        default=EARLIEST_EVENT_TIME,
        description="Events timed before this are rejected (TIME_TOO_OLD): a broken clock, "
        "not a fact of the network",
    )
    calendar_file: str | None = Field(
        default=None,
        description="TOML file of public holidays and make-up working days "
        "(default: the built-in calendar)",
    )
    log_format: Literal["console", "json"] = Field(
        default="console", description="console for people, json for production log shipping"
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8000, ge=1, le=65535)
    kafka_bootstrap: str | None = Field(
        default=None, description="Kafka bootstrap servers; unset means no Kafka ingestion"
    )
    kafka_topic: str = "practice.events.v1"
    kafka_group: str = "practice-events"
    kafka_dlq_topic: str | None = Field(
        default=None, description="Dead-letter topic (default: <topic>.dlq)"
    )
    demo_events: int = Field(
        default=90_000,
        ge=100,
        le=5_000_000,
        description="About how many events `serve --demo` loads into an empty store",
    )
    demo_days: int = Field(
        default=365,
        ge=30,
        le=1095,
        description="Days of history `serve --demo` loads, ending yesterday in the network's "
        "time zone",
    )
    demo_seed: int = Field(default=7, description="Random seed of the demo district")
    scheduler_interval_seconds: float = Field(
        default=60.0,
        ge=0,
        description="How often `serve` scans for overdue findings (0: no scheduler in serve)",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            msg = f"unknown time zone {value!r} (use an IANA name such as Asia/Shanghai)"
            raise ValueError(msg) from None
        return value

    @field_validator("store")
    @classmethod
    def _known_store(cls, value: str) -> str:
        store_env(value)  # raises ConfigurationError with a clear reason
        return value

    @field_validator("shards")
    @classmethod
    def _known_shards(cls, value: dict[str, str]) -> dict[str, str]:
        from practice_events.shards.routing import check_shard_map

        check_shard_map(value)  # raises ConfigurationError with a clear reason
        return value

    @model_validator(mode="after")
    def _profile(self) -> Settings:
        """Production needs a cipher key (a clear error at start) and compresses by default."""
        if self.cipher_key is not None:
            check_cipher_key(self.cipher_key.get_secret_value())
        elif self.profile == "production":
            msg = (
                "the production profile needs PRACTICE_EVENTS_CIPHER_KEY (encryption at rest); "
                "make one with `practice-events keys generate` and keep it in a secret store"
            )
            raise ConfigurationError(msg)
        if self.compress is None:
            self.compress = self.profile == "production"
        return self

    @property
    def zone(self) -> ZoneInfo:
        """The network's time zone as a tzinfo."""
        return ZoneInfo(self.timezone)

    @property
    def dlq_topic(self) -> str:
        """The dead-letter topic, defaulting to ``<topic>.dlq``."""
        return self.kafka_dlq_topic or f"{self.kafka_topic}.dlq"

    def masked(self) -> dict[str, Any]:
        """Return the settings as plain values with secrets and passwords masked."""
        out = self.model_dump(mode="json")
        if self.cipher_key is not None:
            out["cipher_key"] = "********"
        out["store"] = mask_url(self.store)
        out["shards"] = {code: mask_url(url) for code, url in self.shards.items()}
        return out


def check_cipher_key(value: str) -> None:
    """Refuse a cipher key that is not base64 of 16, 24 or 32 bytes (never echoing it)."""
    import base64
    import binascii

    try:
        size = len(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        size = -1
    if size not in (16, 24, 32):
        msg = (
            "PRACTICE_EVENTS_CIPHER_KEY must be base64 of 16, 24 or 32 bytes "
            "(`practice-events keys generate` makes one)"
        )
        raise ConfigurationError(msg)


def mask_url(url: str) -> str:
    """Replace the password in a URL with asterisks."""
    parsed = urlparse(url)
    if parsed.password:
        netloc = parsed.netloc.replace(f":{parsed.password}@", ":********@")
        return parsed._replace(netloc=netloc).geturl()
    return url


def store_env(url: str) -> dict[str, str]:
    """Translate a store URL into the eventsourcing environment for it.

    ``sqlite:///var/x.db`` is relative to the working directory,
    ``sqlite:////srv/x.db`` absolute; ``sqlite:///:memory:`` is for tests.
    """
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = unquote(parsed.path)
        if path.startswith("/"):
            path = path[1:]
        if not path:
            msg = f"store URL {url!r} names no SQLite file"
            raise ConfigurationError(msg)
        if path == ":memory:":
            path = "file:practice-events?mode=memory&cache=shared"
        return {
            "PERSISTENCE_MODULE": "practice_events.store.sqlite:Factory",
            "SQLITE_DBNAME": path,
            "SQLITE_LOCK_TIMEOUT": "30",
        }
    if parsed.scheme in ("postgresql", "postgres"):
        if not parsed.path.strip("/"):
            msg = f"store URL {mask_url(url)!r} names no database"
            raise ConfigurationError(msg)
        query = parse_qs(parsed.query)
        return {
            "PERSISTENCE_MODULE": "practice_events.store.postgres:Factory",
            "POSTGRES_DBNAME": unquote(parsed.path.strip("/")),
            "POSTGRES_HOST": parsed.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parsed.port or 5432),
            "POSTGRES_USER": unquote(parsed.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parsed.password or ""),
            "POSTGRES_SCHEMA": query.get("schema", ["public"])[0],
            "POSTGRES_CONNECT_TIMEOUT": query.get("connect_timeout", ["10"])[0],
            "POSTGRES_LOCK_TIMEOUT": query.get("lock_timeout", ["10"])[0],
            "POSTGRES_POOL_SIZE": query.get("pool_size", ["4"])[0],
            "POSTGRES_MAX_OVERFLOW": query.get("max_overflow", ["8"])[0],
            "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "30",
            "POSTGRES_PRE_PING": "y",
        }
    msg = (
        f"unsupported store URL {mask_url(url)!r}: use sqlite:///path.db or "
        "postgresql://user@host:5432/database"
    )
    raise ConfigurationError(msg)


def require_existing_store(url: str) -> None:
    """Refuse a SQLite store file that does not exist, for commands that only read a store.

    Opening a SQLite URL creates the file, so a mistyped path would otherwise
    be answered with an empty store (0 events, a clean verify) instead of an
    error. PostgreSQL databases are never created by opening them.
    """
    env = store_env(url)
    path = env.get("SQLITE_DBNAME")
    if path is None or path.startswith("file:"):
        return
    if not Path(path).is_file():
        msg = (
            f"no event store at {path}: this command reads a store and does not create one "
            "(ingestion or `practice-events store init` creates it)"
        )
        raise ConfigurationError(msg)


SECTION_GROUP = "practice_events.settings"
"""Entry-point group of the settings sections (see the module docstring)."""

ENV_PREFIX = "PRACTICE_EVENTS_"


def settings_sections() -> dict[str, type[BaseSettings]]:
    """Return the registered settings sections by entry-point name, in name order."""
    from importlib.metadata import entry_points

    found = sorted(entry_points(group=SECTION_GROUP), key=lambda ep: ep.name)
    return {ep.name: ep.load() for ep in found}


def section_env_names(section: type[BaseSettings]) -> dict[str, str]:
    """Map each field of a section to its environment variable name."""
    prefix = str(section.model_config.get("env_prefix") or "")
    return {name: f"{prefix}{name}".upper() for name in section.model_fields}


def _export_section_keys(keys: dict[str, Any], path: str) -> None:
    """Hand TOML keys that belong to settings sections to them through the environment."""
    if not keys:
        return
    known: dict[str, str] = {}
    for section in settings_sections().values():
        for env_name in section_env_names(section).values():
            if env_name.startswith(ENV_PREFIX):
                known[env_name[len(ENV_PREFIX) :].lower()] = env_name
    for key, value in keys.items():
        found = known.get(key)
        if found is None:
            msg = (
                f"unknown setting {key!r} in config file {path} "
                "(`practice-events config show` lists every setting)"
            )
            raise ConfigurationError(msg)
        text = str(value).lower() if isinstance(value, bool) else str(value)
        os.environ.setdefault(found, text)


def _masked_value(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return "********"
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    return value


def effective_settings(settings: Settings) -> dict[str, Any]:
    """Every setting in effect, core and sections, by its TOML key, secrets masked.

    The keys are the TOML names (the environment variable without the
    ``PRACTICE_EVENTS_`` prefix, in lower case), so the output of
    ``config show --json`` can be pasted into a config file.
    """
    out = settings.masked()
    for section in settings_sections().values():
        try:
            values = section()
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            msg = f"bad setting {where or '?'}: {first.get('msg')}"
            raise ConfigurationError(msg) from None
        for name, env_name in section_env_names(section).items():
            key = env_name.removeprefix(ENV_PREFIX).lower()
            out[key] = _masked_value(getattr(values, name))
    return out


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the TOML file (if any), the environment and ``overrides``.

    Keys of the file that belong to a settings section are handed to it (see
    the module docstring). Raises :class:`ConfigurationError` with a one-line
    reason on bad values.
    """
    file_values: dict[str, Any] = {}
    path = os.environ.get("PRACTICE_EVENTS_CONFIG")
    if path:
        try:
            file_values = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            msg = f"cannot read config file {path}: {exc}"
            raise ConfigurationError(msg) from None
        _export_section_keys(
            {k: v for k, v in file_values.items() if k not in Settings.model_fields}, path
        )
        file_values = {k: v for k, v in file_values.items() if k in Settings.model_fields}
    env_names = {
        name for name in Settings.model_fields if f"PRACTICE_EVENTS_{name.upper()}" in os.environ
    }
    values = {k: v for k, v in file_values.items() if k not in env_names}
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**values)
    except ConfigurationError:
        raise
    except SettingsError as exc:  # e.g. PRACTICE_EVENTS_SHARDS that is not JSON
        msg = f"bad setting: {exc} (it takes a JSON object)"
        raise ConfigurationError(msg) from None
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        msg = f"bad setting {where or '?'}: {first.get('msg')}"
        raise ConfigurationError(msg) from None
