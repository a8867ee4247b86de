"""Pages of the notification log, as projections read them, on real SQLite and PostgreSQL.

A page is "up to n events of these types after position p, in order". The
reader answers it with its own SQL (``projections.logrows``): the pages must
be exactly the log filtered by type, and each page must walk the primary key
from p and stop after n matches. A plan that uses the topic index sorts all
of the rest of the log for every page; on a log of a million events that
made a rebuild quadratic (the ledger took minutes), so the plan is checked
here, on a store that was just filled and never analysed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from practice_events.application import PracticeEvents
from practice_events.bootstrap import build_app, build_pipeline
from practice_events.config import Settings
from projections.ledger import LedgerProjection
from projections.logrows import PostgresLogRows, SqliteLogRows, log_rows
from projections.network import NetworkProjection
from projections.runner import LogReader
from tests.factories_audit import demo_events, ingest

pytestmark = pytest.mark.postgres


@pytest.fixture
def app(store_url: str) -> Iterator[PracticeEvents]:
    """A store holding a small demo history (about 600 events of some 40 types)."""
    settings = Settings(store=store_url)
    application = build_app(settings)
    try:
        ingest(build_pipeline(settings, application), demo_events(600))
        yield application
    finally:
        application.close()


def plan_of(app: PracticeEvents, topics: tuple[str, ...]) -> str:
    """The database's plan for a page of ``topics`` after position 10 (EXPLAIN text).

    On PostgreSQL with index reads made to look a thousand times dearer, so
    that only the reader's own settings keep the plan on the primary key.
    """
    rows = log_rows(app)
    if isinstance(rows, SqliteLogRows):
        statement, params = rows.query(10, 50, None, topics)
        with rows.datastore.transaction(commit=False) as c:
            c.execute(f"EXPLAIN QUERY PLAN {statement}", params)
            return "\n".join(str(r[3]) for r in c.fetchall())
    assert isinstance(rows, PostgresLogRows)
    composed, args = rows.query(10, 50, None, topics)
    with rows.datastore.get_connection() as conn, conn.transaction():
        # Costs that make a full scan and a sort look cheap (as missing statistics
        # can): the page must walk the primary key all the same.
        conn.execute("SET LOCAL random_page_cost = 1000")
        conn.execute(rows.walk_only)
        explained = conn.execute(b"EXPLAIN " + composed.as_bytes(conn), args).fetchall()
        return "\n".join(str(next(iter(r.values()))) for r in explained)


def test_pages_are_the_log_filtered_in_order_and_walk_the_primary_key(
    app: PracticeEvents,
) -> None:
    reader = LogReader(app)
    head = reader.head()
    everything = reader.read(0, head + 1)
    assert [e.position for e in everything] == sorted(e.position for e in everything)
    assert len(everything) == head > 500
    by_type: dict[str, Any] = {}
    for event in everything:
        by_type.setdefault(event.type, event)
    assert len(by_type) > 20, "the history is too uniform to test filters"
    for projection in (LedgerProjection, NetworkProjection):
        wanted = [e.position for e in everything if e.type in projection.TOPICS]
        assert wanted, projection.NAME
        # Pages of 7 from the start, and a window that stops before the head.
        paged: list[int] = []
        after = 0
        while page := reader.read(after, 7, projection.TOPICS):
            assert len(page) <= 7
            paged += [e.position for e in page]
            after = page[-1].position
        assert paged == wanted, projection.NAME
        stop = everything[len(everything) // 2].position
        window = reader.read(wanted[0], 1000, projection.TOPICS, stop=stop)
        assert [e.position for e in window] == [p for p in wanted if wanted[0] < p <= stop]
    # The decoded event: ids and times converted only when asked, equal to the store's.
    first = everything[0]
    assert first.aggregate_id == app.recorder.select_notifications(1, 1)[0].originator_id
    assert first.recorded_at.tzinfo is not None
    assert first.time.tzinfo is not None

    for topics in ((), LedgerProjection.TOPICS, NetworkProjection.TOPICS):
        plan = plan_of(app, topics)
        if isinstance(log_rows(app), PostgresLogRows):
            assert "Index Scan" in plan, plan
            for detour in ("Sort", "Bitmap", "Seq Scan"):
                assert detour not in plan, plan
        else:
            assert "TEMP B-TREE" not in plan, plan
            assert "stored_events_topic" not in plan, plan
