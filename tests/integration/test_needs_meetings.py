"""Needs and house-meeting views on SQLite and PostgreSQL, with hand-computed figures.

Everything is ingested for real and projected in batches of 3 events. Times
are Beijing time (UTC+8) unless written in Z; periods are local.

Needs at station ST-1 (N-7 is at ST-2); "served" is the first delivery and the
time to serve (first delivery - acceptance)::

    need  submitted     accepted      assigned             served             closed / rating
    N-1   1 Mar 10:00   1 Mar 11:00   T-1 (due 5 Mar),     2 Mar 15:00 28 h   fulfilled 3 Mar; 5
                                      V-2 on 2 Mar
    N-2   2 Mar 09:00   2 Mar 10:00   wall, claimed V-1    2 Mar 16:00 6 h    fulfilled 2 Mar; 3
    N-3   3 Mar 09:00   rejected 3 Mar 10:00
    N-4   10 Mar 09:00  10 Mar 10:00  -                    -                  withdrawn 11 Mar
    N-5   31 Mar 23:30  1 Apr 00:30   T-2                  1 Apr 08:30 8 h    open
    N-6   20 Mar 09:00  20 Mar 10:00  T-1 (due 21 Mar)     never (overdue)    open
    N-7   5 Mar, ST-2   5 Mar 10:00   T-2                  5 Mar 14:00 4 h    fulfilled 5 Mar
    N-8   25 Mar 09:00  25 Mar 10:00  T-1                  20 Apr 624 h       fulfilled 20 Apr
    N-9   26 Mar 09:00  26 Mar 10:00  T-1                  2 May 888 h        fulfilled 2 May

House-meeting sites under ST-1: WC-1, WC-2, WC-6 (no meetings), WC-3 (deactivated
15 Feb), WC-5 (registered 2 Apr); WC-4 is under ST-2.

    meeting  site  started (local)       steps          concerns
    M-1      WC-1  8 Mar 19:30           all five       C1 on the spot; C2 -> need (37 h);
                                                        C3 -> finding (84 h 50 > 72 h); C4 open
    M-2      WC-1  20 Mar 19:30          explain, listen, perform   C1 on the spot
    M-3      WC-2  31 Mar 23:30          all five       -
    M-4      WC-2  1 Apr 00:30 (= 31 Mar 16:30Z: April locally)
    M-5      WC-4  15 Mar 19:30          all five       -
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest

from projections.meetings import (
    MeetingsProjection,
    get_meeting,
    list_meetings,
    meeting_coverage,
    meetings_summary,
)
from projections.needs import NeedsProjection, get_need, list_needs, needs_summary
from tests.factories_need import (
    ACCEPTED,
    CLAIMED,
    CLOSED,
    DELIVERED,
    DISPATCHED,
    LISTED,
    RATED,
    REDISPATCHED,
    REJECTED,
    SUBMITTED,
    TEAM_REGISTERED,
    VOLUNTEER_REGISTERED,
    closure,
    delivery,
    need,
    rating,
    redispatch,
    rejection,
    to_team,
    to_volunteer,
)
from tests.factories_site import (
    CONCERN_CONVERTED,
    CONCERN_RAISED,
    CONCERN_RESOLVED,
    DEACTIVATED,
    HELD,
    REGISTERED,
    STEP,
    concern,
    meeting,
)
from tests.harness import CST
from tests.integration.viewstack import ViewStack

pytestmark = pytest.mark.postgres

ST1, ST2 = "ST-1", "ST-2"
ST1_SCOPE = {ST1, "WC-1", "WC-2", "WC-3", "WC-5", "WC-6"}
STEPS = ("explain", "listen", "perform", "evaluate", "resolve")


def t(month: int, day: int, hour: int = 9, minute: int = 0) -> datetime:
    """A Beijing time in 2024."""
    return datetime(2024, month, day, hour, minute, tzinfo=CST)


def network(s: ViewStack) -> None:
    """Centre, two stations, house-meeting sites, two teams and two volunteers."""
    s.send(REGISTERED, "WLY", {"level": "centre", "name": "中心"}, t(1, 1))
    for station in (ST1, ST2):
        s.send(
            REGISTERED, station, {"level": "station", "parent_id": "WLY", "name": station}, t(1, 1)
        )
    for site, parent, when in (
        ("WC-1", ST1, t(1, 2)),
        ("WC-2", ST1, t(1, 2)),
        ("WC-3", ST1, t(1, 2)),
        ("WC-6", ST1, t(1, 2)),
        ("WC-4", ST2, t(1, 2)),
        ("WC-5", ST1, t(4, 2)),
    ):
        s.send(
            REGISTERED,
            site,
            {"level": "house_meeting_site", "parent_id": parent, "name": site},
            when,
        )
    s.send(DEACTIVATED, "WC-3", {"reason": "并入 WC-2"}, t(2, 15))
    for volunteer in ("V-1", "V-2"):
        s.send(VOLUNTEER_REGISTERED, volunteer, {"home_site_id": ST1}, t(1, 3))
    for team in ("T-1", "T-2"):
        s.send(
            TEAM_REGISTERED,
            team,
            {"site_id": ST1, "name": team, "category": "home_repair"},
            t(1, 3),
        )


def needs_story(s: ViewStack) -> None:
    """The needs of the module docstring."""
    send = s.send
    # N-1: dispatched, re-dispatched, delivered twice, fulfilled, rated 5.
    send(SUBMITTED, "N-1", need(), t(3, 1, 10))
    send(ACCEPTED, "N-1", {"by": ST1}, t(3, 1, 11))
    send(DISPATCHED, "N-1", to_team("T-1", due_at=t(3, 5, 18).isoformat()), t(3, 1, 12))
    send(REDISPATCHED, "N-1", redispatch("V-2"), t(3, 2, 9))
    send(DELIVERED, "N-1", delivery(volunteer_no="V-2"), t(3, 2, 15))  # 28 h after acceptance
    send(DELIVERED, "N-1", delivery(volunteer_no="V-2", hours=1.0), t(3, 3, 10))
    send(CLOSED, "N-1", closure(), t(3, 3, 12))
    send(RATED, "N-1", rating(5), t(3, 4))
    # N-2: a micro-wish claimed from the wish wall.
    send(SUBMITTED, "N-2", need(), t(3, 2, 9))
    send(ACCEPTED, "N-2", {"by": ST1}, t(3, 2, 10))
    send(LISTED, "N-2", {}, t(3, 2, 10, 30))
    s.catch_up()  # a live view part way
    send(CLAIMED, "N-2", to_volunteer("V-1"), t(3, 2, 14))
    send(DELIVERED, "N-2", delivery(), t(3, 2, 16))  # 6 h
    send(CLOSED, "N-2", closure(), t(3, 2, 17))
    send(RATED, "N-2", rating(3), t(3, 3))
    # N-3 rejected, N-4 withdrawn.
    send(SUBMITTED, "N-3", need(), t(3, 3, 9))
    send(REJECTED, "N-3", rejection(), t(3, 3, 10))
    send(SUBMITTED, "N-4", need(), t(3, 10, 9))
    send(ACCEPTED, "N-4", {"by": ST1}, t(3, 10, 10))
    send(CLOSED, "N-4", closure("withdrawn"), t(3, 11))
    # N-5: submitted 23:30 on 31 March (March), accepted after midnight (April).
    send(SUBMITTED, "N-5", need(), t(3, 31, 23, 30))
    send(ACCEPTED, "N-5", {"by": ST1}, t(4, 1, 0, 30))
    send(DISPATCHED, "N-5", to_team("T-2"), t(4, 1, 1))
    send(DELIVERED, "N-5", delivery(team_id="T-2", volunteer_no=None), t(4, 1, 8, 30))  # 8 h
    # N-6: due 21 March, never delivered.
    send(SUBMITTED, "N-6", need(), t(3, 20, 9))
    send(ACCEPTED, "N-6", {"by": ST1}, t(3, 20, 10))
    send(DISPATCHED, "N-6", to_team("T-1", due_at=t(3, 21, 18).isoformat()), t(3, 20, 11))
    # N-7 at the other station.
    send(SUBMITTED, "N-7", need(site_id=ST2), t(3, 5, 9))
    send(ACCEPTED, "N-7", {"by": ST2}, t(3, 5, 10))
    send(DISPATCHED, "N-7", to_team("T-2"), t(3, 5, 11))
    send(DELIVERED, "N-7", delivery(), t(3, 5, 14))  # 4 h
    send(CLOSED, "N-7", closure(), t(3, 5, 15))
    # N-8 fulfilled within the 30-day grace, N-9 after it.
    send(SUBMITTED, "N-8", need(), t(3, 25, 9))
    send(ACCEPTED, "N-8", {"by": ST1}, t(3, 25, 10))
    send(DISPATCHED, "N-8", to_team("T-1"), t(3, 25, 11))
    send(DELIVERED, "N-8", delivery(), t(4, 20, 10))  # 26 days = 624 h
    send(CLOSED, "N-8", closure(), t(4, 20, 12))
    send(SUBMITTED, "N-9", need(), t(3, 26, 9))
    send(ACCEPTED, "N-9", {"by": ST1}, t(3, 26, 10))
    send(DISPATCHED, "N-9", to_team("T-1"), t(3, 26, 11))
    send(DELIVERED, "N-9", delivery(), t(5, 2, 10))  # 37 days = 888 h
    send(CLOSED, "N-9", closure(), t(5, 2, 12))


def steps(s: ViewStack, meeting_id: str, which: tuple[str, ...], at: datetime) -> None:
    for step in which:
        s.send(STEP, meeting_id, {"step": step, "summary": f"{step} 环节"}, at)


def meetings_story(s: ViewStack) -> None:
    """The house meetings of the module docstring."""
    send = s.send
    send(HELD, "M-1", meeting(site_id="WC-1"), t(3, 8, 21, 30))
    steps(s, "M-1", STEPS, t(3, 8, 21, 30))
    for cid, minute in (("C1", 0), ("C2", 5), ("C3", 10), ("C4", 15)):
        send(CONCERN_RAISED, "M-1", concern(cid), t(3, 8, 20, minute))
    send(CONCERN_RESOLVED, "M-1", {"concern_id": "C1", "resolution": "当场答复"}, t(3, 8, 20, 30))
    send(
        CONCERN_CONVERTED,
        "M-1",
        {"concern_id": "C2", "to": "need", "target_id": "N-10"},
        t(3, 10, 9),  # 36 h 55 min after it was raised
    )
    s.catch_up()
    send(
        CONCERN_CONVERTED,
        "M-1",
        {"concern_id": "C3", "to": "finding", "target_id": "F-1"},
        t(3, 12, 9),  # 84 h 50 min: later than 3 days
    )
    send(
        HELD,
        "M-2",
        meeting(
            site_id="WC-1",
            started_at=t(3, 20, 19, 30).isoformat(),
            ended_at=t(3, 20, 21).isoformat(),
        ),
        t(3, 20, 21, 30),
    )
    steps(s, "M-2", ("explain", "listen", "perform"), t(3, 20, 21, 30))
    send(CONCERN_RAISED, "M-2", concern("C1"), t(3, 20, 20))
    send(CONCERN_RESOLVED, "M-2", {"concern_id": "C1", "resolution": "当场解决"}, t(3, 20, 20, 30))
    send(
        HELD,
        "M-3",
        meeting(site_id="WC-2", started_at="2024-03-31T15:30:00Z", ended_at="2024-03-31T17:00:00Z"),
        t(4, 1, 1, 30),
    )
    steps(s, "M-3", STEPS, t(4, 1, 1, 30))
    send(
        HELD,
        "M-4",
        meeting(site_id="WC-2", started_at="2024-03-31T16:30:00Z", ended_at="2024-03-31T18:00:00Z"),
        t(4, 1, 2, 30),
    )
    send(
        HELD,
        "M-5",
        meeting(
            site_id="WC-4",
            started_at=t(3, 15, 19, 30).isoformat(),
            ended_at=t(3, 15, 21).isoformat(),
        ),
        t(3, 15, 21, 30),
    )
    steps(s, "M-5", STEPS, t(3, 15, 21, 30))


@pytest.fixture
def stack(store_url: str) -> Iterator[ViewStack]:
    s = ViewStack(store_url, [NeedsProjection(), MeetingsProjection()], batch_size=3)
    try:
        network(s)
        needs_story(s)
        meetings_story(s)
        s.catch_up()
        yield s
    finally:
        s.close()


class TestNeedDetail:
    def test_need_has_its_milestones_and_timeline(self, stack: ViewStack) -> None:
        n1 = get_need(stack.views, "N-1")
        assert n1 is not None
        assert (n1["stage"], n1["outcome"], n1["rating"]) == ("closed", "fulfilled", 5)
        assert (n1["assignee_kind"], n1["assignee_id"], n1["assignment"]) == (
            "volunteer",
            "V-2",
            "dispatched",
        )
        assert (n1["redispatch_count"], n1["delivery_count"], n1["hours_delivered"]) == (1, 2, 2.5)
        # accepted 1 Mar 11:00, first delivery 2 Mar 15:00: 28 h
        assert n1["time_to_serve_hours"] == 28.0
        assert n1["first_delivered_on"] == "2024-03-02"
        assert n1["due_at"] == "2024-03-05T10:00:00.000000+00:00"
        assert [e["kind"] for e in n1["timeline"]] == [
            "submitted",
            "accepted",
            "dispatched",
            "redispatched",
            "service_delivered",
            "service_delivered",
            "closed",
            "rated",
        ]
        assert n1["timeline"][3]["detail"]["from_team_id"] == "T-1"
        assert "beneficiary_ref" not in n1["timeline"][0]["detail"]
        n2 = get_need(stack.views, "N-2")
        assert n2 is not None
        assert (n2["assignment"], n2["on_wish_wall"], n2["time_to_serve_hours"]) == (
            "claimed",
            False,
            6.0,
        )

    def test_a_submission_at_2330_on_31_march_is_march(self, stack: ViewStack) -> None:
        n5 = get_need(stack.views, "N-5")
        assert n5 is not None
        assert (n5["submitted_on"], n5["accepted_on"]) == ("2024-03-31", "2024-04-01")
        assert n5["time_to_serve_hours"] == 8.0

    def test_scope_hides_needs_of_other_units(self, stack: ViewStack) -> None:
        assert get_need(stack.views, "N-1", unit_scope={ST2}) is None
        assert get_need(stack.views, "N-7", unit_scope={ST2}) is not None
        assert get_need(stack.views, "N-404") is None


class TestNeedLists:
    def test_pages_newest_first_with_a_cursor(self, stack: ViewStack) -> None:
        pages = []
        cursor = None
        while True:
            page = list_needs(stack.views, {ST1}, limit=3, cursor=cursor)
            pages.append([n["need_id"] for n in page["items"]])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert pages == [["N-5", "N-9", "N-8"], ["N-6", "N-4", "N-3"], ["N-2", "N-1"]]

    def test_filters(self, stack: ViewStack) -> None:
        def ids(**kw: object) -> list[str]:
            return [n["need_id"] for n in list_needs(stack.views, {ST1}, **kw)["items"]]  # type: ignore[arg-type]

        assert ids(stage="rejected") == ["N-3"]
        assert ids(overdue_at=t(3, 22)) == ["N-6"]  # due 21 Mar 18:00, never delivered
        assert ids(overdue_at=t(3, 21, 17)) == []
        assert "N-5" in ids(period="2024-03")
        assert ids(period="2024-04") == []
        assert ids(stage="dispatched") == ["N-5", "N-6"]
        assert list_needs(stack.views, set())["items"] == []

    def test_a_bad_cursor_or_stage_is_a_bad_request(self, stack: ViewStack) -> None:
        from practice_events.errors import PracticeEventsError

        with pytest.raises(PracticeEventsError) as bad:
            list_needs(stack.views, None, cursor="not-a-cursor")
        assert bad.value.code == "BAD_REQUEST"
        with pytest.raises(PracticeEventsError):
            list_needs(stack.views, None, stage="lost")


class TestNeedsSummary:
    def test_march_at_the_station(self, stack: ViewStack) -> None:
        march = needs_summary(stack.views, {ST1}, "2024-03", min_time_to_serve=2, min_ratings=2)
        total = march["total"]
        # Submitted in March: N-1..N-6, N-8, N-9 (N-5 at 23:30 on 31 Mar) = 8.
        assert (total["submitted"], total["accepted"], total["rejected"]) == (8, 6, 1)
        assert total["rejection"]["value"] == 0.125  # 1 / 8
        assert total["by_stage"] == {"closed": 5, "dispatched": 2, "rejected": 1}
        # Accepted in March: N-1, N-2, N-4, N-6, N-8, N-9. Fulfilled by 1 May: N-1, N-2,
        # N-8 (20 Apr); N-9 (2 May) is too late; N-4 withdrawn leaves the denominator.
        fulfilment = total["fulfilment"]
        assert (fulfilment["numerator"], fulfilment["denominator"]) == (3, 5)
        assert (fulfilment["value"], fulfilment["closed_by"]) == (0.6, "2024-05-01")
        # First delivered in March: N-1 28 h, N-2 6 h -> median 17, p90 (rank 2) 28.
        assert total["time_to_serve_hours"] == {
            "status": "ok",
            "count": 2,
            "median": 17.0,
            "p90": 28.0,
            "min_sample": 2,
        }
        # Re-dispatches in March 1 / assignments in March 5 (N-1, N-2 claim, N-6, N-8, N-9).
        assert (total["redispatch"]["value"], total["redispatch"]["assigned"]) == (0.2, 5)
        # Ratings given in March: 5 and 3 -> 1 of 2 at least 4; mean 4.0.
        assert (total["satisfaction"]["value"], total["satisfaction"]["mean"]) == (0.5, 4.0)
        assert total["deliveries"] == 3  # N-1 twice, N-2 once
        assert total["open_now"] == {"dispatched": 2}  # N-5, N-6
        assert [row["site_id"] for row in march["by_site"]] == [ST1]

    def test_minimum_samples_give_insufficient_data(self, stack: ViewStack) -> None:
        march = needs_summary(stack.views, {ST1}, "2024-03")
        total = march["total"]
        assert total["time_to_serve_hours"]["status"] == "insufficient_data"  # 2 < 5
        assert total["time_to_serve_hours"]["median"] is None
        assert total["satisfaction"]["status"] == "insufficient_data"  # 2 < 10
        assert total["satisfaction"]["value"] is None
        assert total["satisfaction"]["mean"] is None
        assert total["fulfilment"]["status"] == "ok"  # 5 >= 5

    def test_half_year_across_stations(self, stack: ViewStack) -> None:
        h1 = needs_summary(stack.views, None, "2024-H1")
        served = h1["total"]["time_to_serve_hours"]
        # First delivered in H1: 4 (N-7), 6, 8, 28, 624, 888 -> median (8 + 28) / 2 = 18,
        # p90 = the ceil(0.9 x 6) = 6th value = 888.
        assert (served["count"], served["median"], served["p90"]) == (6, 18.0, 888.0)
        assert [row["site_id"] for row in h1["by_site"]] == [ST1, ST2]
        st2 = h1["by_site"][1]
        assert st2["fulfilment"]["status"] == "insufficient_data"  # 1 accepted < 5


class TestMeetings:
    def test_coverage_completeness_and_concerns_in_march(self, stack: ViewStack) -> None:
        march = meetings_summary(stack.views, ST1_SCOPE, "2024-03")
        # Operating in March: WC-1, WC-2, WC-6 (WC-3 closed in Feb, WC-5 opened in April).
        # Covered: WC-1 (M-1, M-2) and WC-2 (M-3 at 23:30 on 31 Mar) -> 2 / 3.
        coverage = march["coverage"]
        assert (coverage["numerator"], coverage["denominator"]) == (2, 3)
        assert coverage["value"] == 0.6667
        assert (coverage["covered"], coverage["uncovered"]) == (["WC-1", "WC-2"], ["WC-6"])
        # M-1, M-3 complete, M-2 missing two steps -> 2 / 3.
        assert march["meetings"] == 3
        assert march["five_step_completeness"]["value"] == 0.6667
        assert march["steps"] == {
            "explain": 3,
            "listen": 3,
            "perform": 3,
            "evaluate": 2,
            "resolve": 2,
        }
        # Concerns raised in March: M-1 C1..C4 and M-2 C1 = 5.
        concerns = march["concerns"]
        assert (concerns["raised"], concerns["resolved_on_spot"], concerns["open"]) == (5, 2, 1)
        assert (concerns["converted_to_need"], concerns["converted_to_finding"]) == (1, 1)
        # Within 72 h: M-1 C1, C2 and M-2 C1 (C3 took 84 h 50) -> 3 / 5.
        assert concerns["handled_within_3d"]["value"] == 0.6
        by_site = {row["site_id"]: row for row in march["by_site"]}
        assert by_site["WC-1"]["meetings"] == 2
        assert by_site["WC-1"]["five_step_completeness"]["status"] == "insufficient_data"
        assert (by_site["WC-6"]["covered"], by_site["WC-6"]["meetings"]) == (False, 0)

    def test_a_meeting_after_local_midnight_belongs_to_april(self, stack: ViewStack) -> None:
        april = meetings_summary(stack.views, ST1_SCOPE, "2024-04")
        # Operating in April: WC-1, WC-2, WC-5, WC-6; covered: WC-2 (M-4) -> 1 / 4.
        assert april["coverage"]["value"] == 0.25
        assert april["meetings"] == 1
        assert april["five_step_completeness"]["status"] == "insufficient_data"

    def test_coverage_for_several_units(self, stack: ViewStack) -> None:
        rows = meeting_coverage(
            stack.views, {"ST-1": ST1_SCOPE, "ST-2": {ST2, "WC-4"}, "EMPTY": set()}, "2024-03"
        )
        assert [(r["unit_id"], r["status"], r["value"]) for r in rows] == [
            ("EMPTY", "insufficient_data", None),
            ("ST-1", "ok", 0.6667),
            ("ST-2", "ok", 1.0),
        ]

    def test_lists_and_details(self, stack: ViewStack) -> None:
        incomplete = list_meetings(stack.views, ST1_SCOPE, period="2024-03", complete=False)
        assert [m["meeting_id"] for m in incomplete["items"]] == ["M-2"]
        assert incomplete["items"][0]["missing_steps"] == ["evaluate", "resolve"]
        hanging = list_meetings(stack.views, ST1_SCOPE, with_open_concerns=True)
        assert [m["meeting_id"] for m in hanging["items"]] == ["M-1"]
        first = list_meetings(stack.views, ST1_SCOPE, limit=2)
        assert [m["meeting_id"] for m in first["items"]] == ["M-4", "M-3"]
        rest = list_meetings(stack.views, ST1_SCOPE, limit=2, cursor=first["next_cursor"])
        assert [m["meeting_id"] for m in rest["items"]] == ["M-2", "M-1"]
        m1 = get_meeting(stack.views, "M-1")
        assert m1 is not None
        assert m1["complete"] is True
        assert [(c["concern_id"], c["status"], c["within_3d"]) for c in m1["concerns"]] == [
            ("C1", "resolved_on_spot", True),
            ("C2", "converted", True),
            ("C3", "converted", False),
            ("C4", "open", False),
        ]
        assert get_meeting(stack.views, "M-1", unit_scope={ST2, "WC-4"}) is None


class TestRebuild:
    # Pages of 2 events: a rebuild keeps rows in memory from one page to the next.
    def test_needs_rebuild_equals_incremental(self, stack: ViewStack) -> None:
        stack.assert_rebuild_equals_incremental(stack.projections[0], batch_size=2)

    def test_meetings_rebuild_equals_incremental(self, stack: ViewStack) -> None:
        stack.assert_rebuild_equals_incremental(stack.projections[1], batch_size=2)


class TestBatchedWrites:
    """The batched upsert keeps awkward values exact (PostgreSQL joins columns into text)."""

    AWKWARD = ("", "\\N", "a\x1fb", "普通文本", None)

    def test_awkward_text_and_numbers_round_trip(self, stack: ViewStack) -> None:
        from projections.rows import load_rows, upsert_rows

        columns = ("k", "txt", "n", "x")
        with stack.views.transaction() as tx:
            tx.execute(
                "CREATE TABLE IF NOT EXISTS scratch_rows "
                "(k TEXT PRIMARY KEY, txt TEXT, n BIGINT, x DOUBLE PRECISION)"
            )
            # Each awkward value alone (a lone '' or '\N' must not turn into nothing or NULL) ...
            for i, value in enumerate(self.AWKWARD):
                upsert_rows(tx, "scratch_rows", columns, ["k"], [{"k": f"one-{i}", "txt": value}])
            # ... and all together, with numbers that text must carry exactly.
            upsert_rows(
                tx,
                "scratch_rows",
                columns,
                ["k"],
                [
                    {"k": f"all-{i}", "txt": value, "n": 2**40 + i, "x": 0.1 + i / 3}
                    for i, value in enumerate(self.AWKWARD)
                ],
            )
            rows = load_rows(tx, "scratch_rows", "k", [f"one-{i}" for i in range(5)])
            together = load_rows(tx, "scratch_rows", "k", [f"all-{i}" for i in range(5)])
        assert [rows[f"one-{i}"]["txt"] for i in range(5)] == list(self.AWKWARD)
        assert [together[f"all-{i}"]["txt"] for i in range(5)] == list(self.AWKWARD)
        assert [together[f"all-{i}"]["n"] for i in range(5)] == [2**40 + i for i in range(5)]
        assert [together[f"all-{i}"]["x"] for i in range(5)] == [0.1 + i / 3 for i in range(5)]
