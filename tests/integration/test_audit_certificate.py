"""Volunteer service-record certificates: true, accurate, complete, and the same every time.

A volunteer serves across two years (back-filled sessions approved, one
rejected, one corrected, one still pending), completes a training and
reaches the first star level; certificates are issued from a real SQLite
file and a real PostgreSQL database.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from practice_events.audit.certificate import volunteer_certificate
from practice_events.errors import ConfigurationError, PracticeEventsError
from tests import factories_volunteer as fv
from tests.factories_audit import Store
from tests.harness import CST, cloud_event

pytestmark = pytest.mark.postgres

VOLUNTEER = "V-430802-000101"
CENTRE = "WLY"
STATION = "WLY-ZHAN-07"


def served(session: str, start: datetime, hours: float) -> list[dict[str, Any]]:
    """A back-filled session (补录) of ``hours``, recorded the next day."""
    return [
        cloud_event(
            fv.HOURS_RECORDED,
            VOLUNTEER,
            fv.back_fill(session, start=start, end=start + timedelta(hours=hours), site_id=STATION),
            time=start + timedelta(days=1),
        )
    ]


def approved(session: str, when: datetime) -> dict[str, Any]:
    """The station approves a session's hours."""
    return cloud_event(fv.HOURS_APPROVED, VOLUNTEER, fv.approve(session), time=when)


def year_2024() -> list[dict[str, Any]]:
    """Registration, and three sessions of 2024: 4 h approved, 3 h rejected, 5 h corrected."""
    t = datetime(2024, 5, 4, 9, 0, tzinfo=CST)
    events = [
        cloud_event(fv.SITE_REGISTERED, CENTRE, {"level": "centre", "name": "武陵源区实践中心"}),
        cloud_event(
            fv.SITE_REGISTERED, STATION, {"level": "station", "parent_id": CENTRE, "name": "站"}
        ),
        cloud_event(fv.REGISTERED, VOLUNTEER, fv.volunteer(home_site_id=STATION), time=t),
    ]
    events += served("S-2024-1", t + timedelta(days=1), 4)
    events += served("S-2024-2", t + timedelta(days=2), 3)
    events += served("S-2024-3", t + timedelta(days=3), 5)
    events += [
        approved("S-2024-1", t + timedelta(days=10)),
        cloud_event(fv.HOURS_REJECTED, VOLUNTEER, fv.reject("S-2024-2"), time=t + timedelta(10)),
        approved("S-2024-3", t + timedelta(days=10)),
        cloud_event(
            fv.HOURS_CORRECTED, VOLUNTEER, fv.correct("S-2024-3", -0.5), time=t + timedelta(11)
        ),
        cloud_event(
            fv.TRAINING_COMPLETED,
            VOLUNTEER,
            {"course_id": "FIRST-AID-2024", "hours": 6, "certificate_ref": "RC-2024-00871"},
            time=t + timedelta(days=20),
        ),
    ]
    return events


def year_2025() -> list[dict[str, Any]]:
    """Five 20-hour sessions of 2025, approved (100 h: the first star), one still pending."""
    t = datetime(2025, 3, 1, 8, 0, tzinfo=CST)
    events: list[dict[str, Any]] = []
    for n in range(5):
        events += served(f"S-2025-{n}", t + timedelta(days=2 * n), 20)
    events += [approved(f"S-2025-{n}", t + timedelta(days=20)) for n in range(5)]
    events += served("S-2025-9", t + timedelta(days=30), 2)
    return events


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A store with the volunteer's 2024 history only."""
    s = Store(store_url)
    s.ingest(year_2024())
    try:
        yield s
    finally:
        s.close()


class TestContent:
    def test_hours_are_certified_by_year_after_rejections_and_corrections(
        self, store: Store
    ) -> None:
        store.ingest(year_2025())
        doc = volunteer_certificate(store.app, VOLUNTEER, position=store.app.last_position())
        assert doc["hours_by_year"] == [
            {"year": 2024, "approved_hours": 8.5, "sessions": 2},  # 4 + (5 - 0.5); 3 h rejected
            {"year": 2025, "approved_hours": 100.0, "sessions": 5},
        ]
        assert doc["approved_hours_total"] == 108.5
        assert doc["pending_hours_not_certified"] == 2.0

    def test_trainings_and_star_levels_are_listed(self, store: Store) -> None:
        store.ingest(year_2025())
        doc = volunteer_certificate(store.app, VOLUNTEER, position=store.app.last_position())
        assert [t["course_id"] for t in doc["trainings"]] == ["FIRST-AID-2024"]
        assert doc["trainings"][0]["hours"] == 6
        assert doc["awards"]["star_level"] == 1
        (star,) = doc["awards"]["star_levels_attained"]
        assert (star["level"], star["threshold_hours"]) == (1, 100.0)

    def test_the_number_names_the_issuing_centre_the_volunteer_and_the_position(
        self, store: Store
    ) -> None:
        position = store.app.last_position()
        doc = volunteer_certificate(store.app, VOLUNTEER, position=position)
        assert doc["number"] == f"WLY-CERT-{VOLUNTEER}-{position}"
        assert doc["issuer"] == CENTRE
        assert doc["registration"]["home_site_id"] == STATION

    def test_no_personal_data_only_the_volunteer_number(self, store: Store) -> None:
        doc = volunteer_certificate(store.app, VOLUNTEER, position=store.app.last_position())
        assert doc["volunteer_no"] == VOLUNTEER
        assert "name" not in doc


class TestReproducible:
    def test_the_same_position_gives_the_same_document_later(self, store: Store) -> None:
        position = store.app.last_position()
        first = volunteer_certificate(store.app, VOLUNTEER, position=position)
        store.ingest(year_2025())  # later service does not change an earlier certificate
        again = volunteer_certificate(store.app, VOLUNTEER, position=position)
        assert again == first
        assert again["content_sha256"] == first["content_sha256"]
        newer = volunteer_certificate(store.app, VOLUNTEER, position=store.app.last_position())
        assert newer["content_sha256"] != first["content_sha256"]

    def test_as_of_a_time_is_the_log_as_recorded_then(self, store: Store) -> None:
        known_then = datetime.now(UTC)
        cut = store.app.last_position()
        store.ingest(year_2025())
        by_time = volunteer_certificate(store.app, VOLUNTEER, as_of=known_then)
        by_position = volunteer_certificate(store.app, VOLUNTEER, position=cut)
        assert by_time == by_position
        assert by_time["position"] == cut

    def test_the_content_hash_covers_the_whole_document(self, store: Store) -> None:
        import hashlib

        import orjson

        doc = volunteer_certificate(store.app, VOLUNTEER, position=store.app.last_position())
        body = {k: v for k, v in doc.items() if k != "content_sha256"}
        digest = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
        assert doc["content_sha256"] == digest


class TestRefusals:
    def test_a_volunteer_not_recorded_by_then_is_not_found(self, store: Store) -> None:
        with pytest.raises(PracticeEventsError) as info:
            volunteer_certificate(store.app, VOLUNTEER, position=1)
        assert info.value.code == "NOT_FOUND"
        with pytest.raises(PracticeEventsError) as unknown:
            volunteer_certificate(store.app, "V-NOBODY", position=store.app.last_position())
        assert unknown.value.code == "NOT_FOUND"

    def test_as_of_needs_an_offset_and_excludes_position(self, store: Store) -> None:
        with pytest.raises(ConfigurationError, match="offset"):
            volunteer_certificate(store.app, VOLUNTEER, as_of=datetime(2025, 1, 1))
        with pytest.raises(ConfigurationError, match="exactly one"):
            volunteer_certificate(store.app, VOLUNTEER)
