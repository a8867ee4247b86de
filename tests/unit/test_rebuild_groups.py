"""How ``projections rebuild all --jobs N`` splits the projections between processes.

Each group is rebuilt with one pass over the log in a process of its own, so
the groups should carry about as many events each (the ledger, four fifths of
the log, alone against the rest), and every projection must be in exactly
one group.
"""

from __future__ import annotations

from projections.cli import balanced_groups

# Events per projection in the demo district's 200,000-input history.
DEMO = {
    "network": 468,
    "closed_loop": 4908,
    "scorecards": 39668,
    "ledger": 231321,
    "needs": 17418,
    "meetings": 14782,
}


def test_two_jobs_put_the_largest_alone_and_the_rest_together() -> None:
    groups = balanced_groups(DEMO, 2)
    assert groups == [["ledger"], ["network", "closed_loop", "scorecards", "needs", "meetings"]]


def test_each_projection_is_in_one_group_in_its_order() -> None:
    for jobs in (1, 2, 3, 4, 6, 9):
        groups = balanced_groups(DEMO, jobs)
        assert len(groups) == min(jobs, len(DEMO))
        assert sorted(n for g in groups for n in g) == sorted(DEMO)
        order = list(DEMO)
        for group in groups:
            assert group == sorted(group, key=order.index)


def test_the_load_is_spread_greedily() -> None:
    sizes = {"a": 50, "b": 40, "c": 30, "d": 20, "e": 10}
    groups = balanced_groups(sizes, 2)
    loads = sorted(sum(sizes[n] for n in g) for g in groups)
    assert loads == [70, 80]  # a+d+e = 80 against b+c = 70 (largest first, to the lightest)
