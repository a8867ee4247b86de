"""Erasing a person's details by destroying their keys (crypto-shredding).

:func:`erase_personal_data` sends one ``personal_data_erased`` event (a
system event, carrying no personal data) through the ingest pipeline; the
pipeline destroys the volunteer's live keys in the transaction that stores
it, then asks the store to drop old copies of the key rows (SQLite: the WAL
is folded in and truncated, freed space was zeroed; PostgreSQL: the key
table is vacuumed). Nothing in the log is rewritten: its hash chain,
hours, points and scores are exactly what they were.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from practice_events.contracts.base import CATALOGUE
from practice_events.contracts.envelope import IncomingEvent, fingerprint
from practice_events.domain.base import SYSTEM_SOURCE
from practice_events.errors import PracticeEventsError
from practice_events.privacy import PERSONAL_DATA_ERASED
from practice_events.privacy.keys import key_store

if TYPE_CHECKING:
    from practice_events.ingest.pipeline import Pipeline


@dataclass
class ErasureResult:
    """What an erasure did: ``erased``, or ``nothing_to_erase`` (no live key)."""

    volunteer_no: str
    status: str
    key_ids: list[str] = field(default_factory=list)
    erased_before: list[str] = field(default_factory=list)
    event_id: str | None = None
    position: int | None = None
    erased_at: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return the result as JSON-ready data."""
        return {
            "volunteer_no": self.volunteer_no,
            "status": self.status,
            "key_ids": self.key_ids,
            "erased_before": self.erased_before,
            "event_id": self.event_id,
            "position": self.position,
            "erased_at": self.erased_at,
        }


def erase_personal_data(
    pipeline: Pipeline,
    volunteer_no: str,
    *,
    now: datetime,
    reason: str = "data_subject_request",
    request_ref: str | None = None,
    actor: str | None = None,
) -> ErasureResult:
    """Destroy ``volunteer_no``'s keys and record that it happened (see the module docstring).

    Raises ``NOT_FOUND`` for a volunteer number that was never registered.
    A volunteer without a live key (never any details, or erased already)
    is left alone: ``status`` is ``nothing_to_erase``.
    """
    app = pipeline.app
    if not app.aggregate_exists("volunteer", volunteer_no):
        msg = f"no volunteer {volunteer_no!r} in the store"
        raise PracticeEventsError(msg, code="NOT_FOUND")
    keys = key_store(app).keys_of(volunteer_no)
    live = [k.key_id for k in keys if k.erased_at is None]
    before = [k.key_id for k in keys if k.erased_at is not None]
    if not live:
        return ErasureResult(volunteer_no, "nothing_to_erase", erased_before=before)
    model = CATALOGUE[PERSONAL_DATA_ERASED]
    payload: dict[str, Any] = {"key_ids": live, "reason": reason}
    if request_ref is not None:
        payload["request_ref"] = request_ref
    data = model.model_validate(payload)
    data_json = data.model_dump(mode="json", exclude_none=True)
    incoming = IncomingEvent(
        id=str(uuid.uuid4()),
        source=SYSTEM_SOURCE,
        type=PERSONAL_DATA_ERASED,
        subject=volunteer_no,
        time=now,
        data=data,
        data_json=data_json,
        extensions={"actor": actor} if actor else {},
        digest=fingerprint(PERSONAL_DATA_ERASED, volunteer_no, now, data_json),
    )
    outcome = pipeline.process([incoming]).outcomes[0]
    if outcome.status != "accepted":
        msg = f"the erasure was not recorded: {outcome.reason}"
        raise PracticeEventsError(msg, code=outcome.code or "INTERNAL")
    return ErasureResult(
        volunteer_no,
        "erased",
        key_ids=live,
        erased_before=before,
        event_id=incoming.id,
        position=outcome.position,
        erased_at=now.isoformat(),
    )
