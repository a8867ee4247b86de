"""``bench/ingest.py --partitions 2 --workers 2`` at a tiny size, on both stores, for real.

Two ``python -m consumers.worker`` processes share a two-partition topic on
the suite's Tansu broker, keyed by subject, so the demo history's references
cross partitions. The input (seed 2, 1,000 events, 1 % bad) is one whose bad
lines name no missing aggregate: every ``UNKNOWN_REFERENCE`` would then be a
valid input that the workers failed to wait for. The accounting must hold on
both stores: stored keys = valid inputs, dead letters by code = bad inputs by
code, duplicates = repeated inputs.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from bench import ingest
from tests.kafka_broker import TansuBroker

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]

OPTIONS = ["--events", "1000", "--seed", "2", "--dirty", "0.01"]


class TestTwoWorkerProcessesOverTwoPartitions:
    def test_every_input_is_stored_or_dead_lettered_as_the_generator_says(
        self, kafka_broker: TansuBroker, tmp_path: Path
    ) -> None:
        out = tmp_path / "ingest.json"
        args = [*OPTIONS, "--partitions", "2", "--workers", "2", "--reference-wait-ms", "5000"]
        _, expected = ingest.demo_input(1000, 2, 0.01)

        code = ingest.main([*args, "--kafka", kafka_broker.bootstrap, "--out", str(out)])

        figures = orjson.loads(out.read_bytes())["figures"]
        assert code == 0  # the accounting held in both runs
        assert figures["accounting_holds"] is True
        assert (figures["partitions"], figures["workers"]) == (2, 2)
        assert figures["worker_mode"] == "processes"
        assert "UNKNOWN_REFERENCE" not in expected.rejections
        assert expected.rejections  # bad lines of several kinds
        for store in ("postgres", "sqlite"):
            run = figures[f"ingest_{store}_outcomes"]
            account = run["accounting"]
            assert account["holds"] is True, (store, account)
            assert account["stored_keys"] == expected.accepted
            assert account["dead_letters_by_code"] == expected.rejections
            assert account["duplicates"] == expected.duplicates
            # both workers worked, each partition got records, and references that
            # crossed partitions were waited for rather than dead-lettered
            assert len(run["records_by_worker"]) == 2
            assert all(records > 0 for records in run["records_by_worker"])
            assert sum(run["records_by_worker"]) == expected.records
            assert all(n > 0 for n in run["messages_per_partition"])
            assert run["reference_holds"] > 0
            assert run["exit_codes"] == [0, 0]
            assert run["cpu_seconds"]["workers"] > 0
            assert run["events_per_second"] > 0
        assert figures["ingest_postgres_outcomes"]["cpu_seconds"]["postgres_backends"] > 0
        assert figures["ingest_sqlite_outcomes"]["cpu_seconds"]["postgres_backends"] is None
