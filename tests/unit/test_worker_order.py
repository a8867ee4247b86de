"""The order a worker gives a batch's records across partitions (no broker needed).

Within a partition the offset order must hold whatever the times say (one
aggregate's events); across partitions the worker interleaves by the time
the events tell, so that a creation comes before the references to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kafka import TopicPartition

from consumers.worker import merge_by_time, tails_last


@dataclass(frozen=True)
class Record:
    """The parts of a kafka-python ConsumerRecord the ordering reads."""

    partition: int
    offset: int
    time: str | None = None
    timestamp: int = 0
    topic: str = "t"
    headers: list[tuple[str, bytes]] = field(default_factory=list)

    @classmethod
    def at(cls, partition: int, offset: int, time: str | None, timestamp: int = 0) -> Record:
        """A binary-mode record whose ``ce_time`` is ``time`` (None: no such header)."""
        headers = [("ce_time", time.encode())] if time else []
        return cls(partition, offset, time, timestamp, headers=headers)


def positions(records: list[Record]) -> list[tuple[int, int]]:
    """(partition, offset) of each record, in order."""
    return [(r.partition, r.offset) for r in records]


class TestMergeByTime:
    def test_a_creation_in_another_partition_comes_before_what_names_it(self) -> None:
        check_in = Record.at(0, 7, "2025-01-02T09:00:00+08:00")
        site = Record.at(1, 3, "2025-01-02T08:00:00+08:00")
        assert positions(merge_by_time([check_in, site])) == [(1, 3), (0, 7)]

    def test_times_in_other_zones_compare_as_instants(self) -> None:
        later = Record.at(0, 0, "2025-01-02T09:00:00+08:00")  # 01:00 UTC
        earlier = Record.at(1, 0, "2025-01-02T00:30:00Z")
        assert positions(merge_by_time([later, earlier])) == [(1, 0), (0, 0)]

    def test_a_partition_keeps_its_offset_order_even_when_its_times_go_back(self) -> None:
        records = [
            Record.at(0, 0, "2025-01-02T10:00:00+08:00"),
            Record.at(0, 1, "2025-01-01T10:00:00+08:00"),  # a late entry, same aggregate
            Record.at(1, 0, "2025-01-01T12:00:00+08:00"),
        ]
        merged = positions(merge_by_time(records))
        assert merged.index((0, 0)) < merged.index((0, 1))
        assert sorted(merged) == sorted(positions(records))

    def test_records_without_a_time_header_go_by_their_kafka_timestamp(self) -> None:
        a = Record.at(0, 0, None, timestamp=2_000)
        b = Record.at(1, 0, None, timestamp=1_000)
        assert positions(merge_by_time([a, b])) == [(1, 0), (0, 0)]

    def test_one_partition_is_left_as_it_came(self) -> None:
        records = [Record.at(0, 0, "2025-01-03T00:00:00Z"), Record.at(0, 1, "2025-01-01T00:00:00Z")]
        assert positions(merge_by_time(records)) == [(0, 0), (0, 1)]


class TestTailsLast:
    def test_moves_a_partition_from_its_offset_on_behind_the_rest(self) -> None:
        records = [Record.at(0, n, None) for n in range(3)] + [
            Record.at(1, n, None) for n in range(2)
        ]
        moved = tails_last(records, {TopicPartition("t", 0): 1})
        assert positions(moved) == [(0, 0), (1, 0), (1, 1), (0, 1), (0, 2)]
