"""A real store, the real ingest pipeline and a view store, for projection scenarios.

:class:`ViewStack` ingests CloudEvents exactly as producers send them (bytes
through :class:`~practice_events.ingest.pipeline.Pipeline`), runs projections
with the batched runner, and snapshots their tables so that a rebuilt view can
be compared with the incrementally built one, row for row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

from practice_events.bootstrap import build_app, build_pipeline
from practice_events.config import Settings
from practice_events.ingest.pipeline import BatchResult, RawInput
from projections.base import Projection
from projections.runner import DEFAULT_BATCH, BatchedRunner, rebuild
from projections.viewstore import ViewStore, default_view_url
from tests.harness import cloud_event


class ViewStack:
    """Store + pipeline + view store + runner for one test (close it at the end)."""

    def __init__(self, store_url: str, projections: Sequence[Projection], batch_size: int = 3):
        settings = Settings(store=store_url)
        self.app = build_app(settings)
        self.pipeline = build_pipeline(settings, self.app)
        self.views = ViewStore(default_view_url(store_url))
        self.projections = list(projections)
        self.runner = BatchedRunner(self.app, self.views, self.projections, batch_size=batch_size)
        self.sent = 0

    def close(self) -> None:
        """Close the view store and the event store."""
        self.views.close()
        self.app.close()

    def send(
        self,
        event_type: str,
        subject: str,
        data: Mapping[str, Any],
        time: datetime | str,
        **kw: Any,
    ) -> BatchResult:
        """Ingest one event for real; fail the test if it is not accepted."""
        result = self.raw([cloud_event(event_type, subject, data, time=time, **kw)])
        outcome = result.outcomes[0]
        assert outcome.status == "accepted", f"{event_type} {subject}: {outcome.as_dict()}"
        return result

    def raw(self, events: Sequence[Mapping[str, Any]]) -> BatchResult:
        """Ingest CloudEvents (dicts) in one batch, whatever their outcome."""
        inputs = []
        for event in events:
            self.sent += 1
            inputs.append(
                RawInput(payload=orjson.dumps(event), channel="test", position=f"t:{self.sent}")
            )
        return self.pipeline.process(inputs)

    def catch_up(self) -> None:
        """Run every projection up to the log head."""
        self.runner.catch_up()

    def snapshot(self, projection: Projection) -> dict[str, list[dict[str, Any]]]:
        """Return every row of the projection's live tables, sorted (for comparisons)."""
        out: dict[str, list[dict[str, Any]]] = {}
        with self.views.read() as tx:
            for logical, physical in projection.table_names().items():
                rows = tx.query(f"SELECT * FROM {physical}")
                out[logical] = sorted(rows, key=lambda r: orjson.dumps(r, default=str))
        return out

    def assert_rebuild_equals_incremental(
        self, projection: Projection, *, batch_size: int = DEFAULT_BATCH
    ) -> None:
        """Rebuild ``projection`` from the log and compare it with the live view, row for row.

        ``projection`` may be another instance of a live one (the same name and
        tables), e.g. with a smaller rebuild cache; ``batch_size`` is the
        rebuild's page size.
        """
        self.catch_up()
        incremental = self.snapshot(projection)
        assert any(incremental.values()), "the scenario built an empty view"
        rebuild(self.app, self.views, projection, batch_size=batch_size)
        rebuilt = self.snapshot(projection)
        for table, rows in incremental.items():
            assert rebuilt[table] == rows, f"{projection.NAME}.{table} differs after rebuild"
