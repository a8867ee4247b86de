"""``bench/cold_start.py`` at tiny sizes on real SQLite files, so that the script cannot rot.

The benchmark's core runs as ``make bench`` runs it, with fresh ingesting
processes, a snapshot every 5 events (at the default 100 a store this small
would hold few snapshots) and batches of 100; the check that stops the
benchmark when the copies differ is fed copies that do differ.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from bench import cold_start, report

HISTORY = 1_200
ASIDE = 300


@pytest.fixture(scope="module")
def payloads() -> tuple[list[bytes], list[bytes]]:
    """A small demo history and the inputs kept aside from it."""
    everything = cold_start.demo_payloads(HISTORY + ASIDE, seed=7)
    return everything[:-ASIDE], everything[-ASIDE:]


class TestAColdStart:
    def test_snapshots_cut_what_a_fresh_process_loads_and_change_no_outcome(
        self, payloads: tuple[list[bytes], list[bytes]], tmp_path: Path
    ) -> None:
        history, aside = payloads
        stores = cold_start.SqliteStores(tmp_path)
        figures = cold_start.measure_store(
            stores, history, aside, tmp_path, interval=5, batch=100, rounds=1, top=5
        )

        assert figures["inputs_built"] == len(history)
        assert sum(figures["outcomes_aside"].values()) == ASIDE
        assert figures["order"] == "A,B"
        with_, without = figures["with"], figures["without"]
        assert with_["snapshots_loaded"] > 0
        assert without["snapshots_loaded"] == without["snapshots_written"] == 0
        assert 0 < with_["events_loaded_per_input"] < without["events_loaded_per_input"]
        rebuild = figures["rebuild_top"]
        assert rebuild["aggregates"] == 5
        assert rebuild["with_stored_snapshot"] > 0
        assert rebuild["snapshot_table"]["rows"] > 0
        assert rebuild["restore_ms_mean"] > 0

        out = tmp_path / "cold_start.json"
        result = cold_start.report({"sqlite": figures, "inputs_built": len(history)}, out)
        assert orjson.loads(out.read_bytes()) == result
        assert result["ratios"]["events_loaded_per_input_sqlite_with_vs_without"] < 1
        assert len(report.flatten(result["figures"])) <= report.MAX_GENERIC_ROWS


class TestTheCheck:
    def test_copies_that_ended_differently_stop_the_benchmark(
        self, payloads: tuple[list[bytes], list[bytes]], tmp_path: Path
    ) -> None:
        history, aside = payloads
        stores = cold_start.SqliteStores(tmp_path)
        head = cold_start.ingest(stores.base_url, history, 5, 200)["log_events"]
        a, b = stores.copy("a"), stores.copy("b")
        cold_start.ingest(a, aside[:50], 5, 50)
        cold_start.ingest(b, aside[:49], 0, 50)
        same = {"outcomes": {"accepted": 50}, "outcomes_digest": "x"}

        with pytest.raises(cold_start.CopiesDifferError, match="only with snapshots"):
            cold_start.compare_copies(a, b, head, same, same)
        other = {"outcomes": {"accepted": 49}, "outcomes_digest": "y"}
        with pytest.raises(cold_start.CopiesDifferError, match="outcome counts"):
            cold_start.compare_copies(a, a, head, same, other)
        assert cold_start.compare_copies(a, a, head, same, same) > 0
