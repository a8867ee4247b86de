"""``bench/report.py``: docs/performance.md regenerated from the committed results files.

The document is its own template: the generated blocks are rebuilt from
``bench/results/*.json`` and everything else stays as written. These tests
render the real document from the real results files (no benchmark runs:
``make bench`` does that) and check the figures against the files.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

from bench import report

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "performance.md"
RESULTS = ROOT / "bench" / "results"


def outside_blocks(text: str) -> str:
    """The text with every generated block's body removed (the hand-written part)."""
    return report.BLOCK.sub(lambda m: m.group("open") + m.group("close"), text)


def block(text: str, name: str) -> str:
    """The body of one generated block."""
    for match in report.BLOCK.finditer(text):
        if match.group("name") == name:
            return match.group("body")
    raise AssertionError(f"no block {name!r}")


def load(name: str) -> dict[str, Any]:
    """A committed results file."""
    data: dict[str, Any] = orjson.loads((RESULTS / f"{name}.json").read_bytes())
    return data


@pytest.fixture(scope="module")
def rendered() -> str:
    """The document rendered from the committed results (no run recorded)."""
    return report.render_document(DOC.read_text(encoding="utf-8"), report.load_results(RESULTS))


class TestTheDocument:
    def test_only_the_blocks_change_and_a_second_pass_changes_nothing(self, rendered: str) -> None:
        text = DOC.read_text(encoding="utf-8")
        assert outside_blocks(rendered) == outside_blocks(text)
        again = report.render_document(rendered, report.load_results(RESULTS))
        assert again == rendered

    def test_every_results_file_is_shown_once(self, rendered: str) -> None:
        names = {m.group("name") for m in report.BLOCK.finditer(rendered)}
        others = block(rendered, "others")
        for path in RESULTS.glob("*.json"):
            if path.name == report.RUN_FILE:
                continue
            if path.stem in names:
                assert f"`{path.relative_to(ROOT)}`" in block(rendered, path.stem)
                assert f"#### `{path.stem}`" not in others
            else:
                assert f"#### `{path.stem}`" in others

    def test_ingest_figures_and_ratios_come_from_its_file(self, rendered: str) -> None:
        data = load("ingest")
        body = block(rendered, "ingest")
        figures, ratios = data["figures"], data["ratios"]
        assert report.number(figures["ingest_postgres"]) in body
        assert report.number(figures["save_batched_sqlite"]) in body
        cpu = figures["ingest_postgres_outcomes"]["cpu_us_per_event"]
        assert f"{report.number(cpu)} µs CPU/event" in body
        assert f"{report.number(ratios['ingest_postgres_vs_save_batched'], 2)} × save" in body
        assert ("all targets met: **no**" in body) is (data["targets_met"] is False)

    def test_workers_table_has_a_row_per_worker_count_and_scenario(self, rendered: str) -> None:
        data = load("workers")
        body = block(rendered, "workers")
        for name, scenario in data["figures"]["scenarios"].items():
            assert f"**{name}**" in body
            base = scenario["runs"]["1"]["events_per_second"]
            for count, run in scenario["runs"].items():
                row = (
                    f"| {count} | {report.number(run['events_per_second'])} | "
                    f"{report.number(run['events_per_second'] / base, 2)} |"
                )
                assert row in body

    def test_projection_rebuild_times_come_from_its_file(self, rendered: str) -> None:
        data = load("projections")
        body = block(rendered, "projections")
        for name, one in data["figures"]["rebuild_postgres"]["projections"].items():
            assert f"— {name} ({report.number(one['events'])} events)" in body
            assert f"| {report.number(one['seconds'], 1)} s |" in body


class TestARecordedRun:
    def test_says_what_ran_where_and_which_benchmark_failed(self, tmp_path: Path) -> None:
        results = tmp_path / "results"
        shutil.copytree(RESULTS, results)
        (results / "brand_new.json").write_bytes(
            orjson.dumps({"bench": "brand_new", "figures": {"rate": {"events_per_second": 12.5}}})
        )
        run = {
            "command": "bench/run_all.py",
            "mode": "full",
            "started": "2026-01-02T03:04:05+08:00",
            "finished": "2026-01-02T07:00:00+08:00",
            "commit": "abc1234",
            "dirty": False,
            "machine": {"nproc": 2, "load_before": [1.5, 1.2, 1.0], "load_after": [2.0, 1.0, 0.5]},
            "benches": {
                "ingest": {
                    "command": ".venv/bin/python bench/ingest.py",
                    "seconds": 321.0,
                    "exit_code": 0,
                    "status": "ok",
                    "results": [str(results / "ingest.json")],
                },
                "replay": {
                    "command": ".venv/bin/python bench/replay.py",
                    "seconds": 9.0,
                    "exit_code": 1,
                    "status": "failed (exit 1)",
                    "results": [],
                },
            },
        }
        (results / report.RUN_FILE).write_bytes(orjson.dumps(run))
        template = tmp_path / "template.md"
        template.write_text(
            "# Perf\n\n<!-- bench:run -->\n<!-- /bench:run -->\n\nHand-written.\n\n"
            "<!-- bench:ingest -->\nold figures\n<!-- /bench:ingest -->\n\n"
            "<!-- bench:missing -->\n<!-- /bench:missing -->\n\n"
            "<!-- bench:others -->\n<!-- /bench:others -->\n",
            encoding="utf-8",
        )
        out = tmp_path / "performance.md"
        text = report.regenerate(results, out, template)

        assert out.read_text(encoding="utf-8") == text
        assert "Hand-written." in text
        assert "old figures" not in text
        head = block(text, "run")
        assert "commit `abc1234`" in head
        assert "load average before the run 1.50, 1.20, 1.00" in head
        assert "| ingest | `.venv/bin/python bench/ingest.py` | 321 | ok |" in head
        assert "measured in this run (`.venv/bin/python bench/ingest.py`, 321 s)" in block(
            text, "ingest"
        )
        assert "Not measured: no `bench/results/missing.json`" in block(text, "missing")
        others = block(text, "others")
        assert "#### `brand_new`" in others
        assert f"| `rate.events_per_second` | {report.number(12.5)} |" in others
        replay = others.split("#### `replay`", 1)[1].split("#### ", 1)[0]
        assert "**the run above failed** (exit 1" in replay
