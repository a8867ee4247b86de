"""Decryption where personal details are shown: audit history, export, certificates, the API.

Nothing derived from the log keeps personal details: views never hold them
(not even sealed), answers that show them are not cached. They are read
from the event that recorded them and decrypted with the person's key at
the moment they are shown, so an erasure takes effect everywhere at once,
with nothing to purge. After an erasure every detail reads ``"[erased]"``.

A :class:`Revealer` is made per command or request: it remembers the keys
it unwrapped only for its own lifetime.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from practice_events.domain.base import aggregate_id
from practice_events.privacy import (
    ERASED,
    PERSONAL_DETAILS_RECORDED,
    PERSONAL_FIELDS,
    SEALED_FIELD,
)
from practice_events.privacy.crypto import KeyWrapper, digest_key_id, keyed_digest, open_details
from practice_events.privacy.keys import KeyStore, key_store

if TYPE_CHECKING:
    from practice_events.application import PracticeEvents


@dataclass(frozen=True, slots=True)
class PersonalDetails:
    """A volunteer's details as shown: ``status`` is ``recorded``, ``erased`` or ``none``."""

    volunteer_no: str
    status: str
    name: str | None = None
    phone: str | None = None
    id_number: str | None = None
    recorded_at: str | None = None
    position: int | None = None
    key_id: str | None = None
    erased_at: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Return the details as JSON-ready data."""
        return {
            "volunteer_no": self.volunteer_no,
            "status": self.status,
            "name": self.name,
            "phone": self.phone,
            "id_number": self.id_number,
            "recorded_at": self.recorded_at,
            "position": self.position,
            "key_id": self.key_id,
            "erased_at": self.erased_at,
        }


class Revealer:
    """Opens sealed personal details with the person's key (see the module docstring)."""

    def __init__(self, app: PracticeEvents, keys: KeyStore | None = None) -> None:
        self.app = app
        self.keys = keys or key_store(app)
        self.wrapper = KeyWrapper.from_cipher_key(app.env.get("CIPHER_KEY"))
        self._keys: dict[str, tuple[bytes | None, str | None]] = {}

    def _key(self, key_id: str) -> tuple[bytes | None, str | None]:
        """Return (data key or None when destroyed, erased_at)."""
        if key_id not in self._keys:
            row = self.keys.get([key_id]).get(key_id)
            if row is None or row.wrapped is None:
                self._keys[key_id] = (None, row.erased_at if row is not None else None)
            else:
                data_key = self.wrapper.unwrap(row.wrapped, key_id, row.volunteer_no)
                self._keys[key_id] = (data_key, None)
        return self._keys[key_id]

    def details(self, subject: str, data: Mapping[str, Any]) -> dict[str, Any] | None:
        """Return the clear details of a stored personal-details event (None once erased)."""
        sealed = data.get(SEALED_FIELD)
        if not isinstance(sealed, Mapping):
            return None
        data_key, _ = self._key(str(sealed.get("key_id", "")))
        if data_key is None:
            return None
        return open_details(data_key, sealed, subject)

    def digest_matches(self, stored_digest: str, plain_digest: str) -> bool:
        """Tell whether a plain fingerprint is the one a keyed digest was made from."""
        key_id = digest_key_id(stored_digest)
        data_key = self._key(key_id)[0] if key_id else None
        return data_key is not None and keyed_digest(data_key, str(key_id), plain_digest) == (
            stored_digest
        )

    def reveal(self, topic: str, subject: str, data: Mapping[str, Any]) -> dict[str, Any]:
        """Return stored event data as it is shown: details decrypted, or ``"[erased]"``.

        Events of other types are returned unchanged.
        """
        if topic != PERSONAL_DETAILS_RECORDED:
            return dict(data)
        sealed = data.get(SEALED_FIELD)
        out = {k: v for k, v in data.items() if k != SEALED_FIELD}
        details = self.details(subject, data)
        if details is None:
            out.update(dict.fromkeys(PERSONAL_FIELDS, ERASED))
            out["erased"] = True
        else:
            out.update(details)
        if isinstance(sealed, Mapping):
            out["key_id"] = sealed.get("key_id")
        return out

    def current(self, volunteer_no: str, *, upto: int | None = None) -> PersonalDetails:
        """Return the volunteer's latest recorded details (at or before log position ``upto``)."""
        found = last_details_event(self.app, volunteer_no, upto=upto)
        if found is None:
            return PersonalDetails(volunteer_no=volunteer_no, status="none")
        position, obj = found
        data = obj.get("data") or {}
        sealed = data.get(SEALED_FIELD) or {}
        key_id = str(sealed.get("key_id", ""))
        recorded_at = (obj.get("meta") or {}).get("time")
        details = self.details(volunteer_no, data)
        if details is None:
            return PersonalDetails(
                volunteer_no=volunteer_no,
                status="erased",
                name=ERASED,
                phone=ERASED,
                id_number=ERASED,
                recorded_at=recorded_at,
                position=position,
                key_id=key_id,
                erased_at=self._key(key_id)[1],
            )
        return PersonalDetails(
            volunteer_no=volunteer_no,
            status="recorded",
            name=details.get("name"),
            phone=details.get("phone"),
            id_number=details.get("id_number"),
            recorded_at=recorded_at,
            position=position,
            key_id=key_id,
        )


def last_details_event(
    app: PracticeEvents, volunteer_no: str, *, upto: int | None = None
) -> tuple[int, dict[str, Any]] | None:
    """Return (position, decoded state) of the volunteer's latest personal-details event."""
    from practice_events.audit.history import state_decoder
    from practice_events.audit.integrity import log_store

    decode: Callable[[bytes], dict[str, Any]] = state_decoder(app)
    last: tuple[int, dict[str, Any]] | None = None
    for position, _version, topic, state in log_store(app, create=False).events_of(
        aggregate_id("volunteer", volunteer_no)
    ):
        if upto is not None and position > upto:
            break
        if topic == PERSONAL_DETAILS_RECORDED:
            last = (position, decode(state))
    return last
