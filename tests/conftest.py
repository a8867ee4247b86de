"""Fixtures shared by every suite: stores on real SQLite files and real PostgreSQL.

PostgreSQL tests start the local server if it is down and use a fresh
database per test module, dropped afterwards. Kafka fixtures (a real Tansu
broker started by the suite) live in ``tests/kafka_fixtures.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["tests.kafka_fixtures"]

PG_HOST = os.environ.get("PRACTICE_EVENTS_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("PRACTICE_EVENTS_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("PRACTICE_EVENTS_TEST_PG_USER", "postgres")
ROOT = Path(__file__).resolve().parent.parent


def ensure_postgres() -> None:
    """Start the local PostgreSQL cluster if it is not accepting connections."""
    subprocess.run(["bash", str(ROOT / "scripts" / "ensure-postgres.sh")], check=True)


def _admin_connect() -> object:
    import psycopg

    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True
    )


def create_database(name: str) -> str:
    """Create an empty database and return its store URL."""
    ensure_postgres()
    with _admin_connect() as conn:  # type: ignore[attr-defined]
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


def drop_database(name: str) -> None:
    """Drop a test database (forcing other sessions off)."""
    with _admin_connect() as conn:  # type: ignore[attr-defined]
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    name = f"pe_test_{uuid.uuid4().hex[:12]}"
    url = create_database(name)
    try:
        yield url
    finally:
        drop_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file for one test."""
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same test on a real SQLite file and on real PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    name = f"pe_test_{uuid.uuid4().hex[:12]}"
    url = create_database(name)
    try:
        yield url
    finally:
        drop_database(name)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests leave screenshots and reports for people to look at."""
    path = ROOT / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


def which(name: str) -> str | None:
    """Locate an executable on PATH."""
    return shutil.which(name)
