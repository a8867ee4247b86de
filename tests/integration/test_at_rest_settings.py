"""A store opened with at-rest settings that cannot read its events is refused at open, clearly.

Encryption and compression are chosen by settings when events are written;
opening the store later with another key, no key, or compression the other
way must say which setting is wrong, before anything reads an event, instead
of failing deep inside a projection or an audit command with a decode error.
"""

from __future__ import annotations

import base64
import os

import orjson
import pytest

from practice_events.bootstrap import build_app, build_pipeline
from practice_events.config import Settings
from practice_events.errors import ConfigurationError
from practice_events.ingest.pipeline import RawInput
from tests.harness import cloud_event


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def _write(url: str, **at_rest: object) -> None:
    settings = Settings(store=url, **at_rest)
    app = build_app(settings)
    try:
        event = cloud_event(
            "practice.site.registered.v1",
            "WLY",
            {"level": "centre", "name": "武陵源区新时代文明实践中心"},
            event_id="c-1",
            source="urn:wly:admin",
        )
        result = build_pipeline(settings, app).process([RawInput(orjson.dumps(event))])
        assert [o.status for o in result.outcomes] == ["accepted"]
    finally:
        app.close()


def _open(url: str, **at_rest: object) -> str | None:
    """Open the store with these settings; the error's reason, or None when it opened."""
    try:
        build_app(Settings(store=url, **at_rest)).close()
    except ConfigurationError as exc:
        return exc.reason
    return None


KEY = _key()

CASES = [
    pytest.param(
        {"compress": True},
        {},
        "they are compressed: set PRACTICE_EVENTS_COMPRESS=true",
        id="compressed-opened-plain",
    ),
    pytest.param(
        {},
        {"compress": True},
        "they are not compressed: set PRACTICE_EVENTS_COMPRESS=false",
        id="plain-opened-compressed",
    ),
    pytest.param(
        {"cipher_key": KEY},
        {},
        "they are encrypted: set PRACTICE_EVENTS_CIPHER_KEY",
        id="encrypted-opened-without-key",
    ),
    pytest.param(
        {"cipher_key": KEY, "compress": True},
        {"compress": True},
        "they are encrypted: set PRACTICE_EVENTS_CIPHER_KEY",
        id="encrypted-compressed-opened-without-key",
    ),
    pytest.param(
        {"cipher_key": KEY},
        {"cipher_key": _key()},
        "PRACTICE_EVENTS_CIPHER_KEY does not decrypt them",
        id="wrong-key",
    ),
    pytest.param(
        {},
        {"cipher_key": KEY},
        "PRACTICE_EVENTS_CIPHER_KEY does not decrypt them",
        id="plain-opened-with-key",
    ),
]


@pytest.mark.parametrize(("written", "opened", "reason"), CASES)
def test_a_mismatch_is_refused_with_the_setting_to_change(
    store_url: str, written: dict[str, object], opened: dict[str, object], reason: str
) -> None:
    _write(store_url, **written)
    problem = _open(store_url, **opened)
    assert problem is not None
    assert problem.startswith("cannot read the store's events (position 1): ")
    assert reason in problem
    assert KEY not in problem
    assert _open(store_url, **written) is None, "the right settings still open it"


def test_an_empty_store_opens_with_any_settings(store_url: str) -> None:
    assert _open(store_url, cipher_key=KEY, compress=True) is None
    assert _open(store_url) is None
