"""The network view on SQLite and PostgreSQL: the site tree, roll-up ancestors, assessments.

The tree registered below (all in one ingest batch, so the log order of a
batch is exercised too)::

    WLY (centre)
    ├── WLY-SUO-1 (institute)
    │   ├── WLY-POST-1 (post)
    │   └── WLY-ZHAN-1 (station)
    │       └── WLY-WC-1 (house-meeting site)
    └── WLY-ZHAN-X (station, directly under the centre: flagged)

Six-haves weights (tests/factories_site.py, version 1): site .2, plan .15,
team .2, project .15, rules .1, records .2. Version 2: site .3, plan .1,
team .2, project .1, rules .1, records .2.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from projections.network import (
    NetworkProjection,
    get_checklist,
    get_site,
    latest_assessments,
    list_assessments,
    list_sites,
    site_path,
    units_under,
)
from tests.factories_site import (
    ASSESSED,
    CHECKLIST_PUBLISHED,
    CHECKLIST_REVISED,
    DEACTIVATED,
    SIX_HAVES,
    UPDATED,
    assessment,
    checklist,
)
from tests.harness import CST
from tests.integration.loop_env import LoopEnv

pytestmark = pytest.mark.postgres

V2_WEIGHTS = {
    "has_site": 0.3,
    "has_plan": 0.1,
    "has_team": 0.2,
    "has_project": 0.1,
    "has_rules": 0.1,
    "has_records": 0.2,
}
V3_WEIGHTS = {
    "has_site": 0.25,
    "has_plan": 0.15,
    "has_team": 0.15,
    "has_project": 0.15,
    "has_rules": 0.1,
    "has_records": 0.2,
}


def items(weights: dict[str, float]) -> list[dict[str, object]]:
    """The six-haves items with other weights."""
    return [{**item, "weight": weights[str(item["code"])]} for item in SIX_HAVES]


def day(month: int, d: int, year: int = 2024) -> datetime:
    """9:00 Beijing time."""
    return datetime(year, month, d, 9, 0, tzinfo=CST)


@pytest.fixture
def env(store_url: str, tmp_path: Path) -> Iterator[LoopEnv]:
    """The network projection over a fresh store with the tree of the module docstring."""
    environment = LoopEnv(store_url, tmp_path, [NetworkProjection()])
    environment.sites(
        ("WLY", "centre", None),
        ("WLY-SUO-1", "institute", "WLY"),
        ("WLY-ZHAN-1", "station", "WLY-SUO-1"),
        ("WLY-WC-1", "house_meeting_site", "WLY-ZHAN-1"),
        ("WLY-POST-1", "post", "WLY-SUO-1"),
        ("WLY-ZHAN-X", "station", "WLY"),
    )
    try:
        yield environment
    finally:
        environment.close()


class TestTree:
    def test_units_under_each_level(self, env: LoopEnv) -> None:
        env.catch_up()
        everything = {"WLY", "WLY-SUO-1", "WLY-ZHAN-1", "WLY-WC-1", "WLY-POST-1", "WLY-ZHAN-X"}
        assert units_under(env.views, "WLY") == everything
        assert units_under(env.views, "WLY-SUO-1") == {
            "WLY-SUO-1",
            "WLY-ZHAN-1",
            "WLY-WC-1",
            "WLY-POST-1",
        }
        assert units_under(env.views, "WLY-WC-1") == {"WLY-WC-1"}
        assert units_under(env.views, "NO-SUCH-UNIT") == {"NO-SUCH-UNIT"}

    def test_path_and_resolved_ancestors(self, env: LoopEnv) -> None:
        env.catch_up()
        assert [s["site_id"] for s in site_path(env.views, "WLY-WC-1")] == [
            "WLY",
            "WLY-SUO-1",
            "WLY-ZHAN-1",
            "WLY-WC-1",
        ]
        wc = get_site(env.views, "WLY-WC-1")
        assert wc is not None
        assert (wc["station_id"], wc["institute_id"], wc["centre_id"], wc["depth"]) == (
            "WLY-ZHAN-1",
            "WLY-SUO-1",
            "WLY",
            3,
        )
        post = get_site(env.views, "WLY-POST-1")
        assert post is not None
        assert (post["station_id"], post["institute_id"]) == (None, "WLY-SUO-1")
        assert post["hierarchy_issue"] is None
        stray = get_site(env.views, "WLY-ZHAN-X")
        assert stray is not None
        assert stray["institute_id"] is None
        assert stray["hierarchy_issue"] == (
            "a station is expected under institute, not under a centre"
        )

    def test_sites_list_as_a_tree_and_filter(self, env: LoopEnv) -> None:
        env.catch_up()
        scoped = list_sites(env.views, scope=units_under(env.views, "WLY-SUO-1"))
        assert [s["site_id"] for s in scoped] == [
            "WLY-SUO-1",
            "WLY-POST-1",
            "WLY-ZHAN-1",
            "WLY-WC-1",
        ]
        stations = list_sites(env.views, level="station")
        assert [s["site_id"] for s in stations] == ["WLY-ZHAN-1", "WLY-ZHAN-X"]
        assert [s["site_id"] for s in list_sites(env.views, parent_id="WLY")] == [
            "WLY-SUO-1",
            "WLY-ZHAN-X",
        ]

    def test_update_and_deactivation(self, env: LoopEnv) -> None:
        env.send(UPDATED, "WLY-ZHAN-1", {"name": "军地坪新时代文明实践站"}, day(3, 1))
        env.send(DEACTIVATED, "WLY-POST-1", {"reason": "merged into WLY-ZHAN-1"}, day(3, 31))
        env.catch_up()
        zhan = get_site(env.views, "WLY-ZHAN-1")
        post = get_site(env.views, "WLY-POST-1")
        assert zhan is not None
        assert post is not None
        assert zhan["name"] == "军地坪新时代文明实践站"
        assert (post["active"], post["deactivated_date"]) == (False, "2024-03-31")
        active = {s["site_id"] for s in list_sites(env.views, active=True)}
        assert "WLY-POST-1" not in active
        assert "WLY-POST-1" in units_under(env.views, "WLY-SUO-1")  # history still counts

    def test_site_registered_in_a_later_batch_finds_its_ancestors(self, env: LoopEnv) -> None:
        env.catch_up()
        env.sites(("WLY-WC-2", "house_meeting_site", "WLY-ZHAN-1"))
        env.catch_up()
        assert "WLY-WC-2" in units_under(env.views, "WLY")
        wc2 = get_site(env.views, "WLY-WC-2")
        assert wc2 is not None
        assert wc2["path"] == "WLY > WLY-SUO-1 > WLY-ZHAN-1 > WLY-WC-2"


def assessments(env: LoopEnv) -> None:
    """Checklist versions and five assessments (see each step for the hand-computed score)."""
    env.send(CHECKLIST_PUBLISHED, "six-haves", checklist(), day(1, 10))
    # A1 ZHAN-1 on v1: plan B, records C#, the rest A:
    # .2 + .15 × .66 + .2 + .15 + .1 + .2 × 0 = .749
    env.send(
        ASSESSED,
        "WLY-ZHAN-1",
        assessment({"has_plan": "B", "has_records": "C#"}),
        day(3, 5),
    )
    env.send(
        CHECKLIST_REVISED,
        "six-haves",
        {"version": 2, "items": items(V2_WEIGHTS), "note": "site weighs more"},
        day(5, 1),
    )
    # A2 ZHAN-1 on v2: project C, the rest A: .3 + .1 + .2 + .1 × .33 + .1 + .2 = .933
    env.send(
        ASSESSED, "WLY-ZHAN-1", assessment({"has_project": "C"}, checklist_version=2), day(6, 5)
    )
    # A3 WC-1 still on v1, records not rated (counts as C#), plan B, an unknown code:
    # .2 + .15 × .66 + .2 + .15 + .1 + 0 = .749
    a3 = assessment({"has_plan": "B"})
    a3["items"] = [i for i in a3["items"] if i["code"] != "has_records"]
    a3["items"].append({"code": "has_wifi", "rating": "A"})
    env.send(ASSESSED, "WLY-WC-1", a3, day(6, 6))
    # A4 POST-1 on v2: site B, the rest A: .3 × .66 + .1 + .2 + .1 + .1 + .2 = .898
    env.send(ASSESSED, "WLY-POST-1", assessment({"has_site": "B"}, checklist_version=2), day(6, 7))
    env.catch_up()
    # A5 ZHAN-1 on v3, which does not exist yet: no score until it is published
    env.send(ASSESSED, "WLY-ZHAN-1", assessment(checklist_version=3), day(7, 1))
    env.catch_up()


class TestAssessments:
    def test_weighted_scores_use_the_named_version(self, env: LoopEnv) -> None:
        assessments(env)
        rows = {(a["site_id"], a["assessed_date"]): a for a in list_assessments(env.views)}
        a1 = rows[("WLY-ZHAN-1", "2024-03-05")]
        assert (a1["score"], a1["all_at_least_b"]) == (0.749, False)
        a2 = rows[("WLY-ZHAN-1", "2024-06-05")]
        assert (a2["checklist_version"], a2["score"]) == (2, 0.933)
        a3 = rows[("WLY-WC-1", "2024-06-06")]
        assert a3["score"] == 0.749
        assert (a3["missing_items"], a3["unknown_items"]) == (["has_records"], ["has_wifi"])
        assert a3["all_at_least_b"] is False
        assert a3["station_id"] == "WLY-ZHAN-1"  # for roll-ups
        a4 = rows[("WLY-POST-1", "2024-06-07")]
        assert (a4["score"], a4["all_at_least_b"]) == (0.898, True)
        a5 = rows[("WLY-ZHAN-1", "2024-07-01")]
        assert (a5["score"], a5["all_at_least_b"]) == (None, None)

    def test_version_published_later_scores_the_waiting_assessment(self, env: LoopEnv) -> None:
        assessments(env)
        env.send(
            CHECKLIST_REVISED, "six-haves", {"version": 3, "items": items(V3_WEIGHTS)}, day(7, 2)
        )
        env.catch_up()
        a5 = list_assessments(env.views, site_id="WLY-ZHAN-1", since_date="2024-07-01")[0]
        assert (a5["score"], a5["all_at_least_b"]) == (1.0, True)  # all A
        zhan = get_site(env.views, "WLY-ZHAN-1")
        assert zhan is not None
        assert (zhan["assessment_count"], zhan["last_score"]) == (3, 1.0)
        v3 = get_checklist(env.views, "six-haves")
        assert v3 is not None
        assert v3["version"] == 3
        v1 = get_checklist(env.views, "six-haves", 1)
        assert v1 is not None
        assert v1["items"][0]["weight"] == 0.2

    def test_latest_assessment_within_twelve_months(self, env: LoopEnv) -> None:
        assessments(env)
        june = latest_assessments(env.views, datetime(2024, 6, 30, tzinfo=CST))
        assert {site: a["score"] for site, a in june.items()} == {
            "WLY-ZHAN-1": 0.933,
            "WLY-WC-1": 0.749,
            "WLY-POST-1": 0.898,
        }
        # a year on (window 20 Jun 2024 - 20 Jun 2025) only A5 (1 Jul 2024) is recent enough
        later = latest_assessments(env.views, datetime(2025, 6, 20, tzinfo=CST))
        assert set(later) == {"WLY-ZHAN-1"}
        scoped = latest_assessments(
            env.views, datetime(2024, 6, 30, tzinfo=CST), scope={"WLY-POST-1"}
        )
        assert set(scoped) == {"WLY-POST-1"}

    def test_rebuilt_view_equals_incremental(self, env: LoopEnv) -> None:
        assessments(env)
        env.send(
            CHECKLIST_REVISED, "six-haves", {"version": 3, "items": items(V3_WEIGHTS)}, day(7, 2)
        )
        env.send(DEACTIVATED, "WLY-POST-1", {"reason": "merged"}, day(8, 1))
        env.assert_rebuild_equals_incremental(NetworkProjection())
