"""Fixtures shared by every suite: stores on real SQLite files and real PostgreSQL.

PostgreSQL tests start the local server if it is down and use an empty
database of their own, dropped afterwards (recycled: see "recycled databases"
below). Kafka fixtures (a real Tansu broker started by the suite) live in
``tests/kafka_fixtures.py``.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def _admin() -> Any:
    """An autocommit connection to the ``postgres`` database, starting the server if it is down.

    Connecting is the check: the script (a shell and ``pg_isready``) only runs when it fails.
    """
    import psycopg

    try:
        return _admin_connect()
    except psycopg.OperationalError:
        ensure_postgres()
        return _admin_connect()


def _url(name: str) -> str:
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


# -- recycled databases ----------------------------------------------------------------------
#
# CREATE DATABASE copies template1 through the WAL and DROP DATABASE removes its files: with
# fsync, a few hundred milliseconds per PostgreSQL test, more than most of those tests take.
# drop_database() therefore empties a database the way a fresh one is empty (every schema
# dropped, ``public`` created again as template1 has it), renames it out of the way and keeps
# it; create_database() renames a kept one to the name asked for. The name dropped is gone at
# once, as with DROP (so a test may still "drop the store under a running server"), sessions
# left on it are ended first, and a database holding anything outside its schemas (an
# extension elsewhere, a publication, a setting, a prepared transaction, a large object) is
# dropped for real. tests/integration/test_pg_fixtures.py checks that a recycled database
# looks exactly like a new one.

_SPARE_PREFIX = f"pe_spare_{os.getpid()}_{uuid.uuid4().hex[:6]}_"
_spares: list[str] = []
_spares_lock = threading.Lock()
_orphans_dropped = False

_USER_SCHEMAS = (
    "SELECT nspname FROM pg_namespace "
    "WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'"
)
_DATABASE_WIDE = """
SELECT (SELECT count(*) FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
        WHERE n.nspname IN ('pg_catalog', 'information_schema') AND e.extname <> 'plpgsql')
     + (SELECT count(*) FROM pg_publication)
     + (SELECT count(*) FROM pg_event_trigger)
     + (SELECT count(*) FROM pg_largeobject_metadata)
     + (SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database())
     + (SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
        WHERE d.datname = current_database())
"""
"""Objects that dropping every schema would leave behind (0 in a database fit to recycle)."""


def _end_sessions(admin: Any, name: str) -> None:
    """End every other session on database ``name``; wait (up to 5 s) until they are gone."""
    admin.execute(
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
        "WHERE datname = %s AND pid <> pg_backend_pid()",
        (name,),
    )


def _empty(name: str) -> bool:
    """Drop every schema of ``name`` and create ``public`` as template1 has it; False if unfit."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(_url(name), autocommit=True) as conn:
        # A session that came back and holds a lock: give up, drop the database instead.
        conn.execute("SET lock_timeout = '5s'")
        row = conn.execute(_DATABASE_WIDE).fetchone()
        if row is None or row[0] != 0:
            return False
        with conn.transaction():
            for (schema,) in conn.execute(_USER_SCHEMAS).fetchall():
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
            conn.execute("CREATE SCHEMA public AUTHORIZATION pg_database_owner")
            conn.execute("COMMENT ON SCHEMA public IS 'standard public schema'")
            conn.execute("GRANT USAGE ON SCHEMA public TO PUBLIC")
    return True


def _rename(admin: Any, old: str, new: str) -> bool:
    """Rename a database nobody else uses (its sessions ended first); False if that failed."""
    import psycopg

    for _ in range(20):
        _end_sessions(admin, old)
        try:
            admin.execute(f'ALTER DATABASE "{old}" RENAME TO "{new}"')
        except psycopg.errors.ObjectInUse:
            time.sleep(0.05)  # a session reconnected or is still on its way out: end it again
        else:
            return True
    return False


def _recycle(admin: Any, name: str) -> bool:
    """Empty database ``name`` and keep it under a spare name; False if it must be dropped."""
    import psycopg

    row = admin.execute(
        "SELECT datallowconn AND datconnlimit = -1 AND NOT datistemplate"
        " AND datdba = (SELECT oid FROM pg_roles WHERE rolname = current_user)"
        " FROM pg_database WHERE datname = %s",
        (name,),
    ).fetchone()
    if row is None:
        return True  # nothing to drop
    if not row[0]:
        return False  # connections refused or limited, a template, another owner: drop it
    spare = f"{_SPARE_PREFIX}{uuid.uuid4().hex[:8]}"
    try:
        _end_sessions(admin, name)
        if not _empty(name) or not _rename(admin, name, spare):
            return False
    except psycopg.Error:
        return False
    with _spares_lock:
        _spares.append(spare)
    return True


def _drop_orphaned_spares(admin: Any) -> None:
    """Drop spare databases of test processes that are gone (killed before their clean-up).

    Only for a server on this machine: the process id in a spare's name means nothing elsewhere.
    """
    global _orphans_dropped  # noqa: PLW0603 - once per process
    if _orphans_dropped or PG_HOST not in ("127.0.0.1", "localhost", "::1"):
        return
    _orphans_dropped = True
    rows = admin.execute(
        "SELECT datname FROM pg_database WHERE datname LIKE 'pe\\_spare\\_%'"
    ).fetchall()
    for (spare,) in rows:
        pid = spare.split("_")[2]
        if pid.isdigit() and not _alive(int(pid)):
            admin.execute(f'DROP DATABASE IF EXISTS "{spare}" WITH (FORCE)')


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def create_database(name: str) -> str:
    """Create an empty database and return its store URL (a recycled one when there is one)."""
    with _admin() as conn:
        _drop_orphaned_spares(conn)
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        with _spares_lock:
            spare = _spares.pop() if _spares else None
        if spare is None or not _rename(conn, spare, name):
            if spare is not None:
                conn.execute(f'DROP DATABASE IF EXISTS "{spare}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    return _url(name)


def drop_database(name: str) -> None:
    """Drop a test database (forcing other sessions off): the name is gone when this returns."""
    with _admin() as conn:
        if not _recycle(conn, name):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def drop_spare_databases() -> None:
    """Drop the databases kept for recycling (at the end of the session)."""
    with _spares_lock:
        spares = list(_spares)
        _spares.clear()
    if not spares:
        return
    with _admin() as conn:
        for spare in spares:
            conn.execute(f'DROP DATABASE IF EXISTS "{spare}" WITH (FORCE)')


def pytest_configure(config: pytest.Config) -> None:
    """Drop spare databases last (closing session-wide stores recycles theirs first).

    With pytest-xdist, also schedule whole files (see :class:`FilesTogether`).
    """
    config.add_cleanup(drop_spare_databases)
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(FilesTogether(), "practice-events-files-together")


SHARED_ENVIRONMENTS = ("read_api_env",)
"""Session fixtures worth building once per run, not once per worker: every test file that
uses one of them is scheduled with the others that do (one work unit)."""


@functools.cache
def work_unit(path: str) -> str:
    """The scheduling unit of a test file: its path, or the shared environment it uses."""
    try:
        text = (ROOT / path).read_text(encoding="utf-8")
    except OSError:
        return path
    return next((name for name in SHARED_ENVIRONMENTS if name in text), path)


class FilesTogether:
    """``-n N --dist loadfile`` (``make test``): whole files, and files sharing an environment.

    pytest-xdist's ``loadfile`` keeps each file on one worker, so module-scoped
    fixtures (a dashboard server, a loaded store) are built once; this adds that
    the files using a session environment of :data:`SHARED_ENVIRONMENTS` (the
    served demo district of the read-API tests) go to the same worker, so that
    it is built once in all rather than once per worker.
    """

    @pytest.hookimpl
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        """Return the scheduler for ``--dist loadfile`` (None: xdist's own for other modes)."""
        if config.getvalue("dist") != "loadfile":
            return None
        from xdist.scheduler import LoadScopeScheduling

        class ByWorkUnit(LoadScopeScheduling):
            def _split_scope(self, nodeid: str) -> str:
                return work_unit(nodeid.split("::", 1)[0])

        return ByWorkUnit(config, log)


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
