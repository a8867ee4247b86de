"""Check, when a store is opened, that its events can be read with the configured at-rest settings.

Events are written encrypted (``PRACTICE_EVENTS_CIPHER_KEY``) and/or
compressed (``PRACTICE_EVENTS_COMPRESS``) as the settings say at the time, and
the event store library reads them back with whatever the settings say when
it reads. A store opened with another key, without its key, or with
compression switched the other way would fail deep inside the first read
(a JSON decode error, "Invalid cipher tag") in a projection, an audit command
or a request. Reading the first and the last stored event at open turns that
into one clear configuration error that says which setting is wrong.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

import orjson

from practice_events.errors import ConfigurationError

if TYPE_CHECKING:
    from practice_events.application import PracticeEvents


def check_at_rest(app: PracticeEvents) -> None:
    """Raise :class:`ConfigurationError` if the stored events cannot be read with these settings.

    Reads the first and the last event of the log (two small queries; nothing
    on an empty store) and decodes them as the application will.
    """
    recorder = app.recorder
    last = recorder.max_notification_id()
    if not last:
        return
    first = recorder.select_notifications(start=None, limit=1)
    samples = list(first)
    if not samples or samples[0].id != last:
        samples += list(recorder.select_notifications(start=last, limit=1))
    for notification in samples:
        problem = _problem(app, notification.state)
        if problem is not None:
            msg = f"cannot read the store's events (position {notification.id}): {problem}"
            raise ConfigurationError(msg)


def _problem(app: PracticeEvents, stored: bytes) -> str | None:
    """Why ``stored`` cannot be decoded with the application's cipher and compressor, or None."""
    cipher = app.mapper.cipher
    compressor = app.mapper.compressor
    state = bytes(stored)
    if cipher is not None:
        try:
            state = cipher.decrypt(state)
        except ValueError:
            return (
                "PRACTICE_EVENTS_CIPHER_KEY does not decrypt them: it is not the key they were "
                "written with, or they were not encrypted (then unset it)"
            )
    form = _form(state)
    if form == "compressed" and compressor is None:
        return "they are compressed: set PRACTICE_EVENTS_COMPRESS=true"
    if form == "plain" and compressor is not None:
        return "they are not compressed: set PRACTICE_EVENTS_COMPRESS=false"
    if form == "unknown" and cipher is None:
        return (
            "they are encrypted: set PRACTICE_EVENTS_CIPHER_KEY to the key they were written with"
        )
    if form == "unknown":
        return "they are not in the format these settings expect (cipher key and compression)"
    return None


def _form(state: bytes) -> str:
    """``plain`` (JSON), ``compressed`` (zlib of JSON) or ``unknown`` (encrypted, or damaged)."""
    try:
        orjson.loads(state)
    except orjson.JSONDecodeError:
        pass
    else:
        return "plain"
    try:
        orjson.loads(zlib.decompress(state))
    except (zlib.error, orjson.JSONDecodeError):
        return "unknown"
    return "compressed"
