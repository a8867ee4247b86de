"""How a replay split into process groups reports what one process would.

Two groups may read the same event type (the ledger and the meetings view
both read ``meeting.held``): each reads all its events, so the report must
count them once. Progress is that of the slowest group: the bar may only
say "position P" when every projection has passed it.
"""

from __future__ import annotations

from practice_events.audit.replay_jobs import GroupProgress, GroupTally, combine

HELD = "practice.meeting.held.v1"
HOURS = "practice.volunteer.hours_recorded.v1"
NEED = "practice.need.raised.v1"


class TestCombine:
    def test_a_type_read_by_two_groups_counts_once(self) -> None:
        ledger = GroupTally(("ledger",), 130, {HOURS: 100, HELD: 30}, {HOURS: 7, HELD: 2})
        rest = GroupTally(("meetings", "needs"), 50, {HELD: 30, NEED: 20}, {HELD: 2, NEED: 1})
        assert combine([ledger, rest]) == (150, 180, 10)

    def test_one_group_is_its_own_count(self) -> None:
        only = GroupTally(("network",), 12, {NEED: 12}, {})
        assert combine([only]) == (12, 12, 0)


class TestGroupProgress:
    def test_the_bar_moves_with_the_slowest_group(self) -> None:
        told: list[int] = []
        relay = GroupProgress(2, told.append)
        relay.add(0, 500)
        assert told == []  # group 1 has not started
        relay.add(1, 200)
        relay.add(1, 600)
        relay.add(0, 100)
        assert told == [200, 300, 100]
        relay.finish(1000)
        assert sum(told) == 1000

    def test_finishing_twice_reports_nothing_more(self) -> None:
        told: list[int] = []
        relay = GroupProgress(2, told.append)
        relay.add(0, 1000)
        relay.add(1, 1000)
        relay.finish(1000)
        relay.finish(1000)
        assert told == [1000]
