"""Test-only projections for ``projections run --plugin tests.projection_plugins``.

They read site registrations (the cheapest events to ingest) and exist to
show how runner processes behave beside each other:

* :class:`SlowSites` takes ``PE_TEST_SLOW_SECONDS`` (default 0.5) per event,
  inside its view transaction, as a projection busy computing would (on
  SQLite that transaction holds the views file's one write lock meanwhile);
* :class:`FailingSites` raises on a site whose id starts with ``FAIL``;
* :class:`TallySites` counts how often each registration was applied, so
  that two processes running it show any double application as a count of 2.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from projections.base import LoggedEvent, Projection
from projections.viewstore import Tx

SITE_REGISTERED = "practice.site.registered.v1"


class SlowSites(Projection):
    """Writes one row per registration after a deliberate delay per event."""

    NAME: ClassVar[str] = "test_slow"
    TOPICS: ClassVar[tuple[str, ...]] = (SITE_REGISTERED,)
    TABLES: ClassVar[Mapping[str, str]] = {
        "sites": "CREATE TABLE IF NOT EXISTS {name} (position BIGINT PRIMARY KEY, site TEXT)"
    }

    def apply(self, tx: Tx, events: Sequence[LoggedEvent], tables: Mapping[str, str]) -> None:
        """Sleep per event, then insert the batch's rows."""
        time.sleep(float(os.environ.get("PE_TEST_SLOW_SECONDS", "0.5")) * len(events))
        tx.executemany(
            f"INSERT INTO {tables['sites']} (position, site) VALUES (?, ?)",
            [(e.position, e.subject) for e in events],
        )


class FailingSites(SlowSites):
    """Writes one row per registration and raises on a site id starting with ``FAIL``."""

    NAME: ClassVar[str] = "test_failing"

    def apply(self, tx: Tx, events: Sequence[LoggedEvent], tables: Mapping[str, str]) -> None:
        """Insert the rows; refuse the batch if a site id starts with ``FAIL``."""
        for event in events:
            if event.subject.startswith("FAIL"):
                msg = f"cannot project {event.subject}"
                raise RuntimeError(msg)
        tx.executemany(
            f"INSERT INTO {tables['sites']} (position, site) VALUES (?, ?)",
            [(e.position, e.subject) for e in events],
        )


class TallySites(Projection):
    """Counts the applications of each registration (1 each, unless applied twice)."""

    NAME: ClassVar[str] = "test_tally"
    TOPICS: ClassVar[tuple[str, ...]] = (SITE_REGISTERED,)
    TABLES: ClassVar[Mapping[str, str]] = {
        "counts": (
            "CREATE TABLE IF NOT EXISTS {name} (position BIGINT PRIMARY KEY, applied INTEGER)"
        )
    }

    def apply(self, tx: Tx, events: Sequence[LoggedEvent], tables: Mapping[str, str]) -> None:
        """Add one to each event's count."""
        tx.executemany(
            f"INSERT INTO {tables['counts']} (position, applied) VALUES (?, 1) "
            "ON CONFLICT (position) DO UPDATE SET "
            f"applied = {tables['counts']}.applied + 1",
            [(e.position,) for e in events],
        )


def projections(settings: Any) -> list[Projection]:
    """The plugin's projections (the registry calls this with the process settings)."""
    zone = str(getattr(settings, "timezone", "Asia/Shanghai"))
    return [SlowSites(timezone=zone), FailingSites(timezone=zone), TallySites(timezone=zone)]
