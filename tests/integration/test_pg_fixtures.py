"""The PostgreSQL test fixtures: a recycled database is indistinguishable from a new one.

``drop_database`` keeps a test's database for the next one (emptied and renamed,
see ``tests/conftest.py``) instead of dropping it. These tests hold that to what
the PostgreSQL tests rely on: the dropped name is gone at once, sessions left on
it are ended, and the database handed out next has exactly what a database made
by ``CREATE DATABASE`` has: the same schemas (owner, privileges, comment), no
table, sequence, type or function of a previous test, no setting of its own.
Spare databases of a session killed before its clean-up do not pile up.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from typing import Any

import psycopg
import pytest

from practice_events.bootstrap import build_app
from practice_events.config import Settings
from tests import conftest
from tests.conftest import PG_HOST, PG_PORT, PG_USER, _admin, create_database, drop_database

pytestmark = pytest.mark.postgres

SHAPE = """
SELECT 'database', datallowconn::text, datconnlimit::text, datistemplate::text,
       pg_get_userbyid(datdba)
  FROM pg_database WHERE datname = current_database()
UNION ALL
SELECT 'schema', n.nspname, pg_get_userbyid(n.nspowner), coalesce(n.nspacl::text, ''),
       coalesce(obj_description(n.oid, 'pg_namespace'), '')
  FROM pg_namespace n WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
UNION ALL
SELECT 'relation', n.nspname, c.relname, c.relkind::text, ''
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
UNION ALL
SELECT 'type', n.nspname, t.typname, '', ''
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
UNION ALL
SELECT 'function', n.nspname, p.proname, '', ''
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
UNION ALL
SELECT 'extension', e.extname, '', '', '' FROM pg_extension e
UNION ALL
SELECT 'setting', array_to_string(s.setconfig, ','), '', '', ''
  FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
 WHERE d.datname = current_database()
ORDER BY 1, 2, 3
"""
"""Everything a test could have left in a database, and what a new database starts with."""


def url(name: str) -> str:
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


def shape(name: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url(name)) as conn:
        return conn.execute(SHAPE).fetchall()


def oid(name: str) -> int | None:
    with _admin() as conn:
        row = conn.execute("SELECT oid FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return None if row is None else int(row[0])


def fill(name: str) -> None:
    """What tests leave behind: the store's tables, another schema, odd objects, changed rights."""
    build_app(Settings(store=url(name))).close()
    with psycopg.connect(url(name), autocommit=True) as conn:
        conn.execute("CREATE SCHEMA shard_x")
        conn.execute("CREATE TABLE shard_x.t (id serial PRIMARY KEY)")
        conn.execute("CREATE TYPE mood AS ENUM ('ok')")
        conn.execute("CREATE FUNCTION one() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        conn.execute("REVOKE USAGE ON SCHEMA public FROM PUBLIC")
        conn.execute("COMMENT ON SCHEMA public IS 'changed'")


@pytest.fixture(scope="module")
def new_shape() -> list[tuple[Any, ...]]:
    """The shape of a database made by CREATE DATABASE (never a recycled one)."""
    name = f"pe_test_fx_new_{uuid.uuid4().hex[:10]}"
    with _admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        return shape(name)
    finally:
        with _admin() as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def names() -> Any:
    made = [f"pe_test_fx_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    yield made
    for name in made:
        drop_database(name)


def test_a_recycled_database_is_exactly_as_empty_as_a_new_one(
    names: list[str], new_shape: list[tuple[Any, ...]]
) -> None:
    used, recycled = names
    create_database(used)
    fill(used)
    assert shape(used) != new_shape
    kept = oid(used)
    lingering = psycopg.connect(url(used), autocommit=True)
    try:
        drop_database(used)
        assert oid(used) is None, "the dropped name is gone at once"
        with pytest.raises(psycopg.OperationalError):
            lingering.execute("SELECT 1")
    finally:
        lingering.close()
    create_database(recycled)
    assert oid(recycled) == kept, "the next database is the recycled one"
    assert shape(recycled) == new_shape


@pytest.mark.parametrize(
    ("statement", "inside"),
    [
        ("ALTER DATABASE {name} SET work_mem = '8MB'", False),
        ("ALTER DATABASE {name} CONNECTION LIMIT 5", False),
        ("CREATE PUBLICATION everything FOR ALL TABLES", True),
    ],
    ids=["setting", "connection-limit", "publication"],
)
def test_a_database_changed_beyond_its_schemas_is_dropped_not_recycled(
    names: list[str], new_shape: list[tuple[Any, ...]], statement: str, inside: bool
) -> None:
    used, following = names
    create_database(used)
    sql = statement.format(name=f'"{used}"')
    if inside:
        with psycopg.connect(url(used), autocommit=True) as conn:
            conn.execute(sql)
    else:
        with _admin() as conn:
            conn.execute(sql)
    kept = oid(used)
    drop_database(used)
    assert oid(used) is None
    create_database(following)
    assert oid(following) != kept
    assert shape(following) == new_shape


def test_spares_left_by_a_killed_session_are_dropped(
    names: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    orphan = f"pe_spare_{gone.pid}_000000_{uuid.uuid4().hex[:8]}"
    mine = f"pe_spare_{os.getpid()}_000000_{uuid.uuid4().hex[:8]}"
    with _admin() as conn:
        conn.execute(f'CREATE DATABASE "{orphan}"')
        conn.execute(f'CREATE DATABASE "{mine}"')
    try:
        monkeypatch.setattr(conftest, "_orphans_dropped", False)
        create_database(names[0])
        assert oid(orphan) is None, "the spare of a process that is gone is dropped"
        assert oid(mine) is not None, "the spare of a live process is kept"
    finally:
        with _admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{orphan}"')
            conn.execute(f'DROP DATABASE IF EXISTS "{mine}"')
