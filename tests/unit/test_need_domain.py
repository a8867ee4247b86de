"""The need aggregate: 点单 → 派单/抢单 → 接单 → 评单, legal and illegal transitions."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from practice_events.domain.need import Need, Stage
from tests import factories_need as f
from tests.harness import DomainHarness

NEED = "N-1"


@pytest.fixture
def h() -> DomainHarness:
    """A harness with the sites, teams, volunteers and meeting of :func:`f.cast`."""
    harness = DomainHarness()
    f.cast(harness)
    return harness


def need(h: DomainHarness) -> Need:
    """Return the need under test."""
    agg: Need = h.get("need", NEED)
    return agg


def submitted(h: DomainHarness, **overrides: Any) -> Need:
    """Submit the micro-wish on 4 March, 09:00."""
    h.send(f.SUBMITTED, NEED, f.need(**overrides), time=f.at(4, 9))
    return need(h)


def accepted(h: DomainHarness) -> Need:
    """Submit and accept it (accepted at 10:00)."""
    submitted(h)
    h.send(f.ACCEPTED, NEED, {"by": "ST-1"}, time=f.at(4, 10))
    return need(h)


def listed(h: DomainHarness) -> Need:
    """Accept it and post it on the wish wall."""
    accepted(h)
    h.send(f.LISTED, NEED, {}, time=f.at(4, 11))
    return need(h)


def dispatched(h: DomainHarness) -> Need:
    """Accept it and dispatch it to team T-1, due on 8 March."""
    accepted(h)
    h.send(f.DISPATCHED, NEED, f.to_team(due_at=f.at(8, 18).isoformat()), time=f.at(4, 12))
    return need(h)


def claimed(h: DomainHarness) -> Need:
    """List it and let volunteer V-1 claim it."""
    listed(h)
    h.send(f.CLAIMED, NEED, f.to_volunteer(), time=f.at(4, 14))
    return need(h)


def delivered(h: DomainHarness) -> Need:
    """Claim it and record one delivery on 5 March."""
    claimed(h)
    h.send(f.DELIVERED, NEED, f.delivery(), time=f.at(5, 16))
    return need(h)


def fulfilled(h: DomainHarness) -> Need:
    """Deliver and close it as fulfilled."""
    delivered(h)
    h.send(f.CLOSED, NEED, f.closure(), time=f.at(5, 17))
    return need(h)


class TestTheWholeLoop:
    def test_a_micro_wish_goes_from_order_to_rating(self, h: DomainHarness) -> None:
        # 点单: a resident's wish is submitted and accepted
        submitted(h)
        h.send(f.ACCEPTED, NEED, {"by": "ST-1"}, time=f.at(4, 10))
        # 抢单: it goes on the wish wall and a volunteer claims it
        h.send(f.LISTED, NEED, {}, time=f.at(4, 11))
        h.send(f.CLAIMED, NEED, f.to_volunteer(), time=f.at(4, 14))
        # 接单: the volunteer serves it in two visits
        h.send(f.DELIVERED, NEED, f.delivery(hours=1), time=f.at(5, 16))
        h.send(f.DELIVERED, NEED, f.delivery(hours=0.5), time=f.at(6, 10))
        # 评单: it is closed as fulfilled and rated
        h.send(f.CLOSED, NEED, f.closure(), time=f.at(6, 11))
        events = h.send(f.RATED, NEED, f.rating(5), time=f.at(6, 20))

        agg = need(h)
        assert agg.stage is Stage.CLOSED
        assert agg.outcome == "fulfilled"
        assert agg.rating == 5
        assert agg.delivery_count == 2
        assert agg.hours_delivered == 1.5
        assert agg.accepted_at == f.at(4, 10).isoformat()
        assert agg.first_delivered_at == f.at(5, 16).isoformat()
        assert not agg.is_open
        assert [type(e).TOPIC for e in events] == [f.RATED]
        assert agg.version == 8


class TestSubmit:
    def test_creates_a_submitted_need_at_its_site(self, h: DomainHarness) -> None:
        agg = submitted(h)
        assert agg.stage is Stage.SUBMITTED
        assert (agg.site_id, agg.channel, agg.category) == ("ST-1", "micro_wish", "home_repair")
        assert agg.submitted_at == f.at(4, 9).isoformat()
        assert agg.is_open

    def test_records_the_meeting_a_concern_was_raised_at(self, h: DomainHarness) -> None:
        agg = submitted(h, channel="house_meeting", meeting_id="M-1", concern_id="C-1")
        assert agg.meeting_id == "M-1"

    def test_refuses_a_need_at_an_unknown_site(self, h: DomainHarness) -> None:
        h.refused(f.SUBMITTED, NEED, f.need(site_id="ST-404"), "UNKNOWN_REFERENCE")

    def test_refuses_a_need_from_an_unknown_meeting(self, h: DomainHarness) -> None:
        data = f.need(channel="house_meeting", meeting_id="M-404")
        h.refused(f.SUBMITTED, NEED, data, "UNKNOWN_REFERENCE")

    def test_refuses_submitting_the_same_need_twice(self, h: DomainHarness) -> None:
        submitted(h)
        h.refused(f.SUBMITTED, NEED, f.need(), "AGGREGATE_EXISTS")

    def test_refuses_events_about_a_need_never_submitted(self, h: DomainHarness) -> None:
        h.refused(f.ACCEPTED, "N-404", {"by": "ST-1"}, "UNKNOWN_AGGREGATE")


class TestAccept:
    def test_accepts_a_submitted_need_and_starts_the_clock(self, h: DomainHarness) -> None:
        agg = accepted(h)
        assert agg.stage is Stage.ACCEPTED
        assert agg.accepted_at == f.at(4, 10).isoformat()

    def test_refuses_accepting_twice(self, h: DomainHarness) -> None:
        accepted(h)
        error = h.refused(f.ACCEPTED, NEED, {"by": "ST-1"}, "ILLEGAL_TRANSITION")
        assert "this one is accepted" in error.reason

    def test_refuses_accepting_a_rejected_need(self, h: DomainHarness) -> None:
        submitted(h)
        h.send(f.REJECTED, NEED, f.rejection())
        h.refused(f.ACCEPTED, NEED, {"by": "ST-1"}, "ILLEGAL_TRANSITION")


class TestReject:
    def test_rejects_a_submitted_need_for_good(self, h: DomainHarness) -> None:
        submitted(h)
        h.send(f.REJECTED, NEED, f.rejection(), time=f.at(4, 10))
        agg = need(h)
        assert agg.stage is Stage.REJECTED
        assert agg.rejected_at == f.at(4, 10).isoformat()
        assert not agg.is_open

    def test_refuses_rejecting_an_accepted_need(self, h: DomainHarness) -> None:
        accepted(h)
        error = h.refused(f.REJECTED, NEED, f.rejection(), "ILLEGAL_TRANSITION")
        assert "close an accepted need" in error.reason

    def test_a_rejected_need_cannot_be_withdrawn(self, h: DomainHarness) -> None:
        submitted(h)
        h.send(f.REJECTED, NEED, f.rejection())
        h.refused(f.CLOSED, NEED, f.closure("withdrawn"), "ILLEGAL_TRANSITION")


class TestListOnWishWall:
    def test_lists_an_accepted_need(self, h: DomainHarness) -> None:
        agg = listed(h)
        assert agg.listed_on_wish_wall
        assert agg.stage is Stage.ACCEPTED

    def test_refuses_listing_a_need_not_yet_accepted(self, h: DomainHarness) -> None:
        submitted(h)
        h.refused(f.LISTED, NEED, {}, "ILLEGAL_TRANSITION")

    def test_refuses_listing_twice(self, h: DomainHarness) -> None:
        listed(h)
        error = h.refused(f.LISTED, NEED, {}, "ILLEGAL_TRANSITION")
        assert "already on the wish wall" in error.reason

    def test_refuses_listing_a_dispatched_need(self, h: DomainHarness) -> None:
        dispatched(h)
        h.refused(f.LISTED, NEED, {}, "ILLEGAL_TRANSITION")


class TestDispatch:
    def test_assigns_an_accepted_need_to_a_team_with_a_due_time(self, h: DomainHarness) -> None:
        agg = dispatched(h)
        assert agg.stage is Stage.DISPATCHED
        assert agg.assignee == ("team", "T-1")
        assert agg.due_at == f.at(8, 18).isoformat()
        assert agg.assigned_at == f.at(4, 12).isoformat()

    def test_dispatching_takes_a_listed_need_off_the_wall(self, h: DomainHarness) -> None:
        listed(h)
        h.send(f.DISPATCHED, NEED, f.to_volunteer())
        agg = need(h)
        assert agg.assignee == ("volunteer", "V-1")
        assert not agg.listed_on_wish_wall

    def test_refuses_dispatching_a_need_not_yet_accepted(self, h: DomainHarness) -> None:
        submitted(h)
        h.refused(f.DISPATCHED, NEED, f.to_team(), "ILLEGAL_TRANSITION")

    def test_refuses_a_second_dispatch_and_points_to_redispatch(self, h: DomainHarness) -> None:
        dispatched(h)
        error = h.refused(f.DISPATCHED, NEED, f.to_team("T-2"), "ILLEGAL_TRANSITION")
        assert "need.redispatched" in error.reason

    def test_refuses_a_due_time_not_after_the_dispatch(self, h: DomainHarness) -> None:
        accepted(h)
        data = f.to_team(due_at=f.at(4, 11).isoformat())
        h.refused(f.DISPATCHED, NEED, data, "OUT_OF_RANGE", time=f.at(4, 12))

    def test_refuses_an_unknown_team(self, h: DomainHarness) -> None:
        accepted(h)
        h.refused(f.DISPATCHED, NEED, f.to_team("T-404"), "UNKNOWN_REFERENCE")


class TestClaim:
    def test_the_first_claim_from_the_wish_wall_wins(self, h: DomainHarness) -> None:
        agg = claimed(h)
        assert agg.stage is Stage.CLAIMED
        assert agg.assignee == ("volunteer", "V-1")
        assert not agg.listed_on_wish_wall

    def test_refuses_a_later_claim(self, h: DomainHarness) -> None:
        claimed(h)
        error = h.refused(f.CLAIMED, NEED, f.to_volunteer("V-2"), "ILLEGAL_TRANSITION")
        assert "volunteer V-1" in error.reason

    def test_refuses_a_claim_of_a_need_not_on_the_wall(self, h: DomainHarness) -> None:
        accepted(h)
        error = h.refused(f.CLAIMED, NEED, f.to_team(), "ILLEGAL_TRANSITION")
        assert "not on the wish wall" in error.reason

    def test_refuses_a_claim_by_an_unknown_volunteer(self, h: DomainHarness) -> None:
        listed(h)
        h.refused(f.CLAIMED, NEED, f.to_volunteer("V-404"), "UNKNOWN_REFERENCE")


class TestRedispatch:
    def test_hands_a_dispatched_need_over_and_records_from_whom(self, h: DomainHarness) -> None:
        dispatched(h)
        events = h.send(f.REDISPATCHED, NEED, f.redispatch("V-2"), time=f.at(5, 9))
        assert events[0].data["from_team_id"] == "T-1"
        assert events[0].data["redispatch_count"] == 1
        agg = need(h)
        assert agg.stage is Stage.DISPATCHED
        assert agg.assignee == ("volunteer", "V-2")
        assert agg.redispatch_count == 1
        assert agg.due_at == f.at(8, 18).isoformat()

    def test_counts_every_redispatch(self, h: DomainHarness) -> None:
        dispatched(h)
        h.send(f.REDISPATCHED, NEED, f.redispatch("V-2"))
        events = h.send(f.REDISPATCHED, NEED, {"team_id": "T-2", "reason": "需要两人"})
        assert events[0].data["from_volunteer_no"] == "V-2"
        assert events[0].data["redispatch_count"] == 2
        assert need(h).assignee == ("team", "T-2")

    def test_hands_a_claimed_need_over_with_a_new_due_time(self, h: DomainHarness) -> None:
        claimed(h)
        data = f.redispatch("V-2", due_at=f.at(9, 18).isoformat())
        h.send(f.REDISPATCHED, NEED, data, time=f.at(5, 9))
        agg = need(h)
        assert agg.stage is Stage.DISPATCHED
        assert agg.due_at == f.at(9, 18).isoformat()

    def test_refuses_handing_over_to_the_same_assignee(self, h: DomainHarness) -> None:
        claimed(h)
        error = h.refused(f.REDISPATCHED, NEED, f.redispatch("V-1"), "RULE_VIOLATION")
        assert "different team or volunteer" in error.reason

    def test_refuses_a_new_due_time_in_the_past(self, h: DomainHarness) -> None:
        dispatched(h)
        data = f.redispatch(due_at=f.at(5, 8).isoformat())
        h.refused(f.REDISPATCHED, NEED, data, "OUT_OF_RANGE", time=f.at(5, 9))

    def test_refuses_redispatching_a_need_nobody_has(self, h: DomainHarness) -> None:
        listed(h)
        h.refused(f.REDISPATCHED, NEED, f.redispatch(), "ILLEGAL_TRANSITION")

    def test_refuses_redispatching_a_closed_need(self, h: DomainHarness) -> None:
        fulfilled(h)
        h.refused(f.REDISPATCHED, NEED, f.redispatch(), "ILLEGAL_TRANSITION")


class TestDeliverService:
    def test_records_several_deliveries_and_the_first_time(self, h: DomainHarness) -> None:
        dispatched(h)
        h.send(f.DELIVERED, NEED, f.delivery(team_id="T-1", hours=2), time=f.at(5, 10))
        h.send(f.DELIVERED, NEED, f.delivery(hours=1.25), time=f.at(6, 10))
        agg = need(h)
        assert agg.delivered
        assert agg.delivery_count == 2
        assert agg.hours_delivered == 3.25
        assert agg.first_delivered_at == f.at(5, 10).isoformat()

    def test_a_need_in_service_may_be_handed_over_after_a_delivery(self, h: DomainHarness) -> None:
        delivered(h)
        h.send(f.REDISPATCHED, NEED, f.redispatch("V-2"))
        h.send(f.DELIVERED, NEED, f.delivery(volunteer_no="V-2"))
        assert need(h).delivery_count == 2

    def test_refuses_a_delivery_before_anyone_took_the_need(self, h: DomainHarness) -> None:
        accepted(h)
        h.refused(f.DELIVERED, NEED, f.delivery(), "ILLEGAL_TRANSITION")

    def test_refuses_a_delivery_after_closure(self, h: DomainHarness) -> None:
        fulfilled(h)
        h.refused(f.DELIVERED, NEED, f.delivery(), "ILLEGAL_TRANSITION")

    def test_refuses_a_delivery_by_an_unknown_volunteer(self, h: DomainHarness) -> None:
        claimed(h)
        h.refused(f.DELIVERED, NEED, f.delivery(volunteer_no="V-404"), "UNKNOWN_REFERENCE")


class TestClose:
    def test_closes_as_fulfilled_after_a_delivery(self, h: DomainHarness) -> None:
        agg = fulfilled(h)
        assert agg.stage is Stage.CLOSED
        assert agg.outcome == "fulfilled"
        assert agg.closed_at == f.at(5, 17).isoformat()

    def test_refuses_fulfilled_without_a_delivery(self, h: DomainHarness) -> None:
        claimed(h)
        error = h.refused(f.CLOSED, NEED, f.closure(), "RULE_VIOLATION")
        assert "without a delivery" in error.reason

    def test_refuses_fulfilled_before_anyone_took_the_need(self, h: DomainHarness) -> None:
        accepted(h)
        h.refused(f.CLOSED, NEED, f.closure(), "ILLEGAL_TRANSITION")

    @pytest.mark.parametrize("stage", ["submitted", "accepted", "listed", "dispatched", "claimed"])
    def test_the_resident_may_withdraw_at_any_open_stage(
        self, h: DomainHarness, stage: str
    ) -> None:
        {
            "submitted": submitted,
            "accepted": accepted,
            "listed": listed,
            "dispatched": dispatched,
            "claimed": claimed,
        }[stage](h)
        h.send(f.CLOSED, NEED, f.closure("withdrawn"))
        agg = need(h)
        assert (agg.stage, agg.outcome) == (Stage.CLOSED, "withdrawn")
        assert not agg.listed_on_wish_wall

    @pytest.mark.parametrize("stage", ["accepted", "dispatched", "claimed"])
    def test_an_accepted_need_may_prove_unfulfillable(self, h: DomainHarness, stage: str) -> None:
        {"accepted": accepted, "dispatched": dispatched, "claimed": claimed}[stage](h)
        h.send(f.CLOSED, NEED, f.closure("unfulfillable"))
        assert need(h).outcome == "unfulfillable"

    def test_refuses_unfulfillable_before_acceptance(self, h: DomainHarness) -> None:
        submitted(h)
        error = h.refused(f.CLOSED, NEED, f.closure("unfulfillable"), "ILLEGAL_TRANSITION")
        assert "reject it instead" in error.reason

    def test_refuses_closing_twice(self, h: DomainHarness) -> None:
        fulfilled(h)
        h.refused(f.CLOSED, NEED, f.closure("withdrawn"), "ILLEGAL_TRANSITION")


class TestRate:
    def test_rates_a_fulfilled_need(self, h: DomainHarness) -> None:
        fulfilled(h)
        h.send(f.RATED, NEED, f.rating(4))
        assert need(h).rating == 4

    def test_refuses_a_second_rating(self, h: DomainHarness) -> None:
        fulfilled(h)
        h.send(f.RATED, NEED, f.rating(4))
        error = h.refused(f.RATED, NEED, f.rating(2), "ILLEGAL_TRANSITION")
        assert "rated once" in error.reason

    def test_refuses_rating_a_withdrawn_need(self, h: DomainHarness) -> None:
        accepted(h)
        h.send(f.CLOSED, NEED, f.closure("withdrawn"))
        error = h.refused(f.RATED, NEED, f.rating(1), "ILLEGAL_TRANSITION")
        assert "closed as withdrawn" in error.reason

    def test_refuses_rating_a_need_still_in_service(self, h: DomainHarness) -> None:
        delivered(h)
        h.refused(f.RATED, NEED, f.rating(5), "ILLEGAL_TRANSITION")


class TestReplay:
    def test_the_stored_events_rebuild_the_same_need(self, h: DomainHarness) -> None:
        fulfilled(h)
        h.send(f.RATED, NEED, f.rating(3))
        live = need(h)
        stored = [
            dataclasses.replace(
                e, data=orjson.loads(orjson.dumps(e.data)), meta=orjson.loads(orjson.dumps(e.meta))
            )
            for e in h.emitted
            if e.originator_id == live.id
        ]
        replayed: Any = None
        for event in stored:
            replayed = event.mutate(replayed)
        assert replayed is not None
        assert vars(replayed) == vars(live)
