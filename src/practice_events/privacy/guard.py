"""What the ingest pipeline calls so that no path stores personal details in clear.

Per batch (:class:`BatchPrivacy`), in the order events are applied:

1. **dedupe**: a personal-details event's stored idempotency digest is keyed
   with the person's key (:func:`~practice_events.privacy.crypto.keyed_digest`);
   :meth:`PersonalDataGuard.same_content` recognises a retry while the key
   lives, and calls every retry a duplicate once the key is destroyed (the
   content is gone, and storing it again would undo the erasure);
2. **seal** (:meth:`BatchPrivacy.prepare`): the details are encrypted with
   the person's live key, or a new one, and replaced by ``sealed``;
3. **keep** (:meth:`BatchPrivacy.applied`): once the aggregate accepted the
   event, a new key joins the batch's :class:`~.keys.KeyChanges`; an
   accepted ``personal_data_erased`` destroys the person's keys. The
   changes commit in the events' transaction.

Keys are read from the store for each batch that needs them and never
cached across batches: an erasure by another process takes effect at once.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import TYPE_CHECKING

import structlog

from practice_events.privacy import (
    PERSONAL_DATA_ERASED,
    PERSONAL_DETAILS_RECORDED,
    PERSONAL_FIELDS,
    SEALED_FIELD,
)
from practice_events.privacy.crypto import (
    KeyWrapper,
    digest_key_id,
    keyed_digest,
    new_data_key,
    new_key_id,
    seal_details,
)
from practice_events.privacy.keys import KeyChanges, KeyStore, key_store

if TYPE_CHECKING:
    from practice_events.application import PracticeEvents
    from practice_events.contracts.envelope import IncomingEvent

log = structlog.get_logger(__name__)

GUARDED_TYPES = frozenset({PERSONAL_DETAILS_RECORDED, PERSONAL_DATA_ERASED})
"""The event types the pipeline hands to the guard (every other type passes by)."""


class PersonalDataGuard:
    """The pipeline's access to person keys (one per pipeline)."""

    def __init__(self, app: PracticeEvents) -> None:
        self.keys: KeyStore = key_store(app)
        self.wrapper = KeyWrapper.from_cipher_key(app.env.get("CIPHER_KEY"))

    def batch(self) -> BatchPrivacy:
        """Start the key bookkeeping of one batch."""
        return BatchPrivacy(self)

    def same_content(self, stored_digest: str, incoming: IncomingEvent) -> bool:
        """Tell whether a personal-details event repeats the one stored under its key.

        Only called when the plain digests differ (the stored one is keyed).
        """
        key_id = digest_key_id(stored_digest)
        if key_id is None:
            return False
        row = self.keys.get([key_id]).get(key_id)
        if row is None or row.wrapped is None:
            return True  # destroyed: nothing to compare with, and nothing may come back
        data_key = self.wrapper.unwrap(row.wrapped, key_id, row.volunteer_no)
        return keyed_digest(data_key, key_id, incoming.digest) == stored_digest

    def scrub(self) -> None:
        """After erasures committed: make the store drop old copies of the keys (best effort)."""
        try:
            self.keys.scrub()
        except Exception as exc:  # noqa: BLE001 - the erasure itself is committed; report only
            log.warning("person_keys_scrub_failed", error=type(exc).__name__)


@dataclasses.dataclass
class _Key:
    key_id: str
    data_key: bytes


class BatchPrivacy:
    """The key bookkeeping of one batch (see the module docstring)."""

    def __init__(self, guard: PersonalDataGuard) -> None:
        self.guard = guard
        self.changes = KeyChanges()
        self._live: dict[str, _Key | None] = {}  # None: no live key (erased in this batch)
        self._pending: tuple[str, _Key] | None = None

    def _live_key(self, volunteer_no: str) -> _Key | None:
        if volunteer_no in self._live:
            return self._live[volunteer_no]
        row = self.guard.keys.live_keys([volunteer_no]).get(volunteer_no)
        key = None
        if row is not None and row.wrapped is not None:
            key = _Key(row.key_id, self.guard.wrapper.unwrap(row.wrapped, row.key_id, volunteer_no))
        self._live[volunteer_no] = key
        return key

    def prepare(self, incoming: IncomingEvent) -> IncomingEvent:
        """Return the event to apply: a personal-details event sealed, any other unchanged."""
        self._pending = None
        if incoming.type != PERSONAL_DETAILS_RECORDED:
            return incoming
        volunteer_no = incoming.subject
        key = self._live_key(volunteer_no)
        if key is None:
            key = _Key(new_key_id(), new_data_key())
            self._pending = (volunteer_no, key)
        details = {k: v for k, v in incoming.data_json.items() if k in PERSONAL_FIELDS}
        data = {k: v for k, v in incoming.data_json.items() if k not in PERSONAL_FIELDS}
        data[SEALED_FIELD] = seal_details(key.data_key, key.key_id, volunteer_no, details)
        return dataclasses.replace(
            incoming,
            data_json=data,
            digest=keyed_digest(key.data_key, key.key_id, incoming.digest),
        )

    def applied(self, incoming: IncomingEvent, received_at: datetime) -> None:
        """The aggregate accepted ``incoming``: keep its new key, or destroy keys on erasure."""
        if incoming.type == PERSONAL_DETAILS_RECORDED and self._pending is not None:
            volunteer_no, key = self._pending
            wrapped = self.guard.wrapper.wrap(key.data_key, key.key_id, volunteer_no)
            self.changes.add_key(key.key_id, volunteer_no, wrapped, received_at.isoformat())
            self._live[volunteer_no] = key
        elif incoming.type == PERSONAL_DATA_ERASED:
            self.changes.erase(incoming.subject, received_at.isoformat())
            self._live[incoming.subject] = None
        self._pending = None
