"""``store stats``: what the event store holds."""

from __future__ import annotations

from typing import Any

from practice_events.application import PracticeEvents
from practice_events.config import mask_url
from practice_events.domain import aggregate_classes


def store_stats(app: PracticeEvents) -> dict[str, Any]:
    """Return events by type, aggregates by kind (counted by creation events), positions."""
    store = app.store
    by_type = dict(sorted(store.count_events_by_topic().items()))
    by_kind = {
        cls.KIND: by_type.get(cls.CREATED_BY, 0) for cls in aggregate_classes() if cls.CREATED_BY
    }
    db = app.env.get("SQLITE_DBNAME") or (
        f"postgresql://{app.env.get('POSTGRES_HOST')}:{app.env.get('POSTGRES_PORT')}/"
        f"{app.env.get('POSTGRES_DBNAME')}"
    )
    return {
        "store": mask_url(str(db)),
        "last_position": app.last_position(),
        "events": sum(by_type.values()),
        "accepted_cloudevents": store.count_ingested_keys(),
        "aggregates_by_kind": dict(sorted(by_kind.items())),
        "events_by_type": by_type,
        "rejections_by_code": dict(sorted(store.count_rejections().items())),
    }
