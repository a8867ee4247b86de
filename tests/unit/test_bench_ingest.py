"""``bench/ingest.py``'s bookkeeping: the accounting against the generator, and the group's state.

Figures whose right answer is known, built by hand; the integration test
(``tests/integration/test_bench_ingest.py``) runs worker processes for real.
"""

from __future__ import annotations

import pytest

from bench import ingest

EXPECTED = ingest.Expected(
    records=110, accepted=100, duplicates=2, rejections={"MALFORMED_JSON": 5, "UNKNOWN_TYPE": 3}
)


class TestTheAccounting:
    def test_holds_when_keys_dead_letters_and_duplicates_are_what_the_generator_made(
        self,
    ) -> None:
        account = ingest.accounting(EXPECTED, 100, {"MALFORMED_JSON": 5, "UNKNOWN_TYPE": 3}, 2)

        assert account["holds"] is True
        assert account["dead_letters"] == account["bad_inputs"] == 8
        assert account["dead_letters_minus_expected_by_code"] == {}

    def test_a_valid_input_dead_lettered_for_a_reference_is_reported_by_code(self) -> None:
        rejections = {"MALFORMED_JSON": 5, "UNKNOWN_TYPE": 3, "UNKNOWN_REFERENCE": 1}

        account = ingest.accounting(EXPECTED, 99, rejections, 2)

        assert account["holds"] is False
        assert account["stored_keys"] == 99
        assert account["valid_inputs"] == 100
        assert account["dead_letters_minus_expected_by_code"] == {"UNKNOWN_REFERENCE": 1}

    def test_the_same_totals_with_other_codes_do_not_hold(self) -> None:
        account = ingest.accounting(EXPECTED, 100, {"MALFORMED_JSON": 6, "UNKNOWN_TYPE": 2}, 2)

        assert account["holds"] is False
        assert account["dead_letters_minus_expected_by_code"] == {
            "MALFORMED_JSON": 1,
            "UNKNOWN_TYPE": -1,
        }

    def test_a_record_lost_or_counted_twice_stops_the_run(self) -> None:
        with pytest.raises(RuntimeError, match="lost or counted twice"):
            ingest.accounting(EXPECTED, 99, {"MALFORMED_JSON": 5, "UNKNOWN_TYPE": 3}, 2)
        with pytest.raises(RuntimeError, match="lost or counted twice"):
            ingest.accounting(EXPECTED, 100, {"MALFORMED_JSON": 5, "UNKNOWN_TYPE": 3}, 3)


def log(event: str, **fields: object) -> dict[str, object]:
    """One line of a worker's JSON log."""
    return {"event": event, **fields}


class TestAWorkersPartitions:
    def test_counts_once_the_latest_assignment_is_positioned_from_the_store(self) -> None:
        lines = [
            log("partitions_revoked", partitions=[]),
            log("partitions_assigned", partitions=[0, 1]),
            log("partitions_positioned_from_store", tracked={"0": None, "1": None}),
            log("partitions_revoked", partitions=[0, 1]),
            log("partitions_assigned", partitions=[1]),
        ]

        assert ingest.positioned_partitions(lines) is None  # reassigned, not positioned yet
        lines.append(log("partitions_positioned_from_store", tracked={"1": None}))
        assert ingest.positioned_partitions(lines) == {1}

    def test_has_none_in_the_middle_of_a_rebalance(self) -> None:
        lines = [
            log("partitions_assigned", partitions=[0]),
            log("partitions_positioned_from_store", tracked={"0": None}),
            log("partitions_revoked", partitions=[0]),
        ]

        assert ingest.positioned_partitions(lines) is None


class TestTheOptions:
    def test_the_defaults_are_one_partition_one_worker_on_a_thread(self) -> None:
        args = ingest.parse_args([])

        assert (args.partitions, args.workers, ingest.scaled(args)) == (1, 1, False)
        assert args.out.endswith("bench/results/ingest.json")
        assert args.stores == ["postgres", "sqlite"]

    def test_several_workers_run_as_processes_and_write_a_file_of_their_own(self) -> None:
        args = ingest.parse_args(["--partitions", "4", "--workers", "2", "--stores", "postgres"])

        assert ingest.scaled(args)
        assert args.out.endswith("bench/results/ingest-p4-w2.json")
        assert args.stores == ["postgres"]

    def test_refuses_more_workers_than_partitions(self) -> None:
        with pytest.raises(SystemExit):
            ingest.parse_args(["--partitions", "2", "--workers", "3"])
