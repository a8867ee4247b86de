"""Which errors make a projection retry (the store is away) and which stop it (a bug).

The errors are the real ones the drivers raise, wrapped the way eventsourcing
wraps them; the runner's behaviour under a real outage is in
``tests/integration/test_store_faults.py``.
"""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
from eventsourcing.persistence import InterfaceError, OperationalError, ProgrammingError

from practice_events.errors import TransientError
from projections.runner import is_transient


def wrapped(cause: Exception, wrapper: type[Exception] = OperationalError) -> Exception:
    """``cause`` re-raised as eventsourcing raises it (``raise Wrapper(...) from cause``)."""
    try:
        try:
            raise cause
        except Exception as exc:
            raise wrapper(str(exc)) from exc
    except Exception as outer:  # noqa: BLE001 - the test wants the raised object
        return outer
    raise AssertionError("unreachable")  # pragma: no cover


class TestTransient:
    @pytest.mark.parametrize(
        "error",
        [
            psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
            psycopg.OperationalError("connection refused"),
            psycopg.errors.LockNotAvailable("canceling statement due to lock timeout"),
            psycopg.errors.DiskFull("could not extend file"),
            wrapped(psycopg.OperationalError("server closed the connection unexpectedly")),
            wrapped(psycopg.InterfaceError("the connection is closed"), InterfaceError),
            wrapped(sqlite3.OperationalError("database or disk is full")),
            wrapped(sqlite3.OperationalError("database is locked")),
            sqlite3.OperationalError("disk I/O error"),
            OperationalError("connection pool exhausted"),
            TransientError("event store unavailable"),
        ],
        ids=lambda e: f"{type(e).__name__}:{str(e)[:30]}",
    )
    def test_the_store_away_is_retried(self, error: Exception) -> None:
        assert is_transient(error)

    @pytest.mark.parametrize(
        "error",
        [
            RuntimeError("cannot project BAD"),
            KeyError("site_id"),
            sqlite3.OperationalError("no such table: closed_loop_findings"),
            wrapped(sqlite3.OperationalError("near 'SELEC': syntax error")),
            psycopg.errors.UndefinedColumn('column "stage" does not exist'),
            wrapped(psycopg.errors.UniqueViolation("duplicate key"), ProgrammingError),
        ],
        ids=lambda e: f"{type(e).__name__}:{str(e)[:30]}",
    )
    def test_a_bug_stops_the_projection(self, error: Exception) -> None:
        assert not is_transient(error)
