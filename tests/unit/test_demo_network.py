"""The demo district's shape: the reference district of DESIGN.md §1, and how it scales."""

from __future__ import annotations

import random
from datetime import date

import pytest

from practice_events.demo.network import (
    BASE_COUNTS,
    MINIMUM_COUNTS,
    Network,
    build_network,
    scaled_count,
)

START = date(2025, 1, 1)


@pytest.fixture(scope="module")
def reference() -> Network:
    """The reference district (scale 1), built once for the module."""
    return build_network(random.Random(1), 1.0, START)


class TestReferenceDistrict:
    def test_has_the_shape_the_article_describes(self, reference: Network) -> None:
        assert reference.counts() == {
            "institute": 6,
            "station": 33,
            "post": 20,
            "base": 8,
            "house_meeting_site": 238,
            "team": 225,
            "volunteer": 20_000,
            "official": 400,
        }

    def test_registers_parents_before_children(self, reference: Network) -> None:
        seen: set[str] = set()
        for site in reference.all_sites():
            assert site.parent_id is None or site.parent_id in seen, site
            seen.add(site.id)
        assert reference.centre.parent_id is None

    def test_hangs_each_level_under_the_right_parent(self, reference: Network) -> None:
        levels = {site.id: site.level for site in reference.all_sites()}
        assert {levels[s.parent_id or ""] for s in reference.institutes} == {"centre"}
        assert {levels[s.parent_id or ""] for s in reference.stations} == {"institute"}
        assert {levels[s.parent_id or ""] for s in reference.posts} == {"station"}
        assert {levels[s.parent_id or ""] for s in reference.bases} == {"institute"}
        assert {levels[s.parent_id or ""] for s in reference.meeting_sites} == {"station"}

    def test_gives_every_site_team_and_person_a_unique_id(self, reference: Network) -> None:
        sites = [s.id for s in reference.all_sites()]
        teams = [t.id for t in reference.teams]
        people = [p.no for p in reference.people]
        assert len(set(sites)) == len(sites)
        assert len(set(teams)) == len(teams)
        assert len(set(people)) == len(people)

    def test_knows_volunteers_by_unified_number_only(self, reference: Network) -> None:
        person = reference.people[0]
        assert person.no.startswith("V430811")
        assert len(person.no) == 14
        assert not hasattr(person, "name")

    def test_keeps_the_active_volunteers_a_realistic_minority(self, reference: Network) -> None:
        volunteers = [p for p in reference.people if not p.official]
        active = sum(1 for p in volunteers if p.rate > 0)
        assert 0.2 < active / len(volunteers) < 0.4

    def test_sends_officials_to_a_community_and_a_post(self, reference: Network) -> None:
        posts = {s.id for s in reference.posts}
        stations = {s.id for s in reference.stations}
        for official in reference.officials:
            assert official.post_id in posts
            assert official.home_site_id in stations
            assert official.home_unit_id in reference.departments

    def test_builds_the_1_6_20_33_team_system_first(self, reference: Network) -> None:
        levels = {s.id: s.level for s in reference.all_sites()}
        first = [levels[t.site_id] for t in reference.teams[:60]]
        assert first == ["centre"] + ["institute"] * 6 + ["post"] * 20 + ["station"] * 33

    def test_registered_everyone_before_the_window(self, reference: Network) -> None:
        assert all(p.registered_on < START for p in reference.people)


class TestScaling:
    def test_is_deterministic_for_a_seed(self) -> None:
        one = build_network(random.Random(5), 0.3, START)
        two = build_network(random.Random(5), 0.3, START)
        assert [p.no for p in one.people] == [p.no for p in two.people]
        assert [(p.home_site_id, p.rate) for p in one.people] == [
            (p.home_site_id, p.rate) for p in two.people
        ]

    def test_shrinks_to_the_minimum_district(self) -> None:
        tiny = build_network(random.Random(1), 0.0001, START)
        counts = tiny.counts()
        for kind in ("institute", "station", "post", "base", "house_meeting_site", "team"):
            assert counts[kind] == MINIMUM_COUNTS[kind]

    def test_grows_every_count_with_the_scale(self) -> None:
        assert scaled_count("station", 3.0) == 3 * BASE_COUNTS["station"]
        assert scaled_count("volunteer", 0.5) == 10_000
        assert scaled_count("institute", 0.01) == 1
