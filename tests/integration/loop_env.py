"""A real store, pipeline, view store and runner on a small, visible working calendar.

The closed-loop, network, scheduler and runner tests ingest CloudEvents for
real (bytes through the pipeline) into SQLite or PostgreSQL and run the
projections with the batched runner. Due times depend on the calendar, so
:class:`LoopEnv` writes :data:`CALENDAR_TOML` (the calendar of
``tests/factories_finding.py``: Friday 8 March 2024 is a holiday, Saturday 16
March a make-up working day) and configures the store with it::

    Mo Tu We Th Fr Sa Su
              1  2  3
     4  5  6  7  8H 9 10
    11 12 13 14 15 16W 17
    18 19 20 21 22 23 24
    25 26 27 28 29 30 31
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from practice_events.bootstrap import build_app, build_context, build_pipeline
from practice_events.config import Settings
from practice_events.ingest.pipeline import BatchResult, RawInput
from projections.base import Projection
from projections.runner import BatchedRunner, rebuild
from projections.viewstore import ViewStore, default_view_url
from tests.harness import cloud_event

CALENDAR_TOML = 'holidays = ["2024-03-08"]\nworkdays = ["2024-03-16"]\n'

SITE_REGISTERED = "practice.site.registered.v1"


class LoopEnv:
    """Store + pipeline + views + runner for one test (``close()`` it at the end)."""

    def __init__(
        self,
        store_url: str,
        tmp_path: Path,
        projections: Sequence[Projection],
        *,
        batch_size: int = 3,
    ) -> None:
        calendar = tmp_path / "calendar.toml"
        calendar.write_text(CALENDAR_TOML, encoding="utf-8")
        self.settings = Settings(store=store_url, calendar_file=str(calendar))
        self.app = build_app(self.settings)
        self.ctx = build_context(self.settings)
        self.pipeline = build_pipeline(self.settings, self.app)
        self.views = ViewStore(default_view_url(store_url))
        self.projections = list(projections)
        self.runner = BatchedRunner(self.app, self.views, self.projections, batch_size=batch_size)
        self.sent = 0

    @property
    def calendar(self) -> Any:
        """The working calendar the aggregates use."""
        return self.ctx.service("calendar")

    def close(self) -> None:
        """Stop the runner's threads (if started) and close both stores."""
        self.runner.stop()
        self.views.close()
        self.app.close()

    def send(
        self, event_type: str, subject: str, data: Mapping[str, Any], time: datetime | str
    ) -> int:
        """Ingest one event; fail the test unless it is accepted; return its log position."""
        result = self.raw([cloud_event(event_type, subject, data, time=time)])
        outcome = result.outcomes[0]
        assert outcome.status == "accepted", f"{event_type} {subject}: {outcome.as_dict()}"
        assert outcome.position is not None
        return outcome.position

    def raw(self, events: Sequence[Mapping[str, Any]]) -> BatchResult:
        """Ingest CloudEvents (dicts) in one batch, whatever their outcome."""
        inputs = []
        for event in events:
            self.sent += 1
            inputs.append(
                RawInput(payload=orjson.dumps(event), channel="test", position=f"t:{self.sent}")
            )
        return self.pipeline.process(inputs)

    def sites(self, *entries: tuple[str, str, str | None]) -> None:
        """Register sites given as (id, level, parent id)."""
        self.raw(
            [
                cloud_event(
                    SITE_REGISTERED,
                    site_id,
                    {"level": level, "name": f"{site_id} 实践{level}"}
                    | ({"parent_id": parent} if parent else {}),
                    time="2024-01-02T09:00:00+08:00",
                )
                for site_id, level, parent in entries
            ]
        )

    def catch_up(self) -> dict[str, int]:
        """Run every projection up to the log head."""
        return self.runner.catch_up()

    def rows(self, projection: Projection) -> dict[str, list[dict[str, Any]]]:
        """Every row of the projection's live tables, in a stable order."""
        out: dict[str, list[dict[str, Any]]] = {}
        with self.views.read() as tx:
            for logical, physical in projection.table_names().items():
                rows = tx.query(f"SELECT * FROM {physical}")
                out[logical] = sorted(rows, key=lambda r: orjson.dumps(r, default=str))
        return out

    def assert_rebuild_equals_incremental(self, projection: Projection) -> None:
        """Rebuild ``projection`` in one go and compare it with the live view, row for row."""
        self.catch_up()
        incremental = self.rows(projection)
        assert any(incremental.values()), "the scenario built an empty view"
        position = rebuild(self.app, self.views, projection)
        assert position == self.app.last_position()
        rebuilt = self.rows(projection)
        for table, rows in incremental.items():
            assert rebuilt[table] == rows, f"{projection.NAME}.{table} differs after rebuild"
