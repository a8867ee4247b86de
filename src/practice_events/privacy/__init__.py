"""Personal data: sealed per person at ingest, shown on read, erased by destroying a key.

Volunteers are known by their volunteer number; their personal details
(name, phone, resident ID number) arrive in one event type,
``practice.volunteer.personal_details_recorded.v1``. The ingest pipeline
seals those fields with the person's own data key (AES-256-GCM) before the
event reaches the aggregate, so the stored event holds only ciphertext and
the key's id. The keys live in the ``person_keys`` table of the event store,
wrapped with the store's cipher key when one is configured.

``practice-events privacy erase VOLUNTEER_NO`` records
``practice.volunteer.personal_data_erased.v1`` (no personal data in it)
and, in the same transaction, destroys the person's keys: every sealed copy
of their details, in every event and every backup of the log, becomes
unreadable (crypto-shredding) while the log itself, its hash chain and all
hours and scores stay exactly as they were. See ``docs/privacy.md``.

Modules: :mod:`.crypto` (keys and AES-GCM), :mod:`.keys` (the key table on
SQLite and PostgreSQL), :mod:`.guard` (what the pipeline calls),
:mod:`.reveal` (decryption where details are shown), :mod:`.redact`
(refused inputs and dead letters), :mod:`.erase` and :mod:`.cli`.
"""

from __future__ import annotations

PERSONAL_DETAILS_RECORDED = "practice.volunteer.personal_details_recorded.v1"
"""The one event type that carries personal details (sealed before it is stored)."""

PERSONAL_DATA_ERASED = "practice.volunteer.personal_data_erased.v1"
"""The system event recording that a person's keys were destroyed."""

PERSONAL_FIELDS = ("name", "phone", "id_number")
"""The fields of :data:`PERSONAL_DETAILS_RECORDED` that are sealed, redacted and erased."""

SEALED_FIELD = "sealed"
"""The field of a stored personal-details event holding the ciphertext and key id."""

ERASED = "[erased]"
"""What is shown in place of a detail whose key was destroyed."""

REDACTED = "[redacted]"
"""What replaces a personal detail in a refused input, a dead letter or a rejections file."""
