"""What did the views say then? Replay as of a position, a recording time, a business time.

Each replay is checked against an independent construction of the same
moment: the live runner stopped at the same position ("as known"), or a
store that was only ever fed the events that had happened by then ("as
happened"). Published scorecards are recomputed at their stored position
and model version and must come out identical. A replay split into two
process groups (``jobs=2``) must build exactly what one process builds.
Real SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from practice_events.audit.replay import (
    ReplayPlan,
    ReplayResult,
    dump_views,
    plan_replay,
    position_recorded_by,
    replay,
    reproduce_publications,
    scratch_views,
)
from practice_events.errors import ConfigurationError
from projections import scorecards as sc
from projections.registry import all_projections
from projections.runner import BatchedRunner
from projections.viewstore import ViewStore
from tests.factories_audit import Store, demo_events, split_at
from tests.harness import CST, cloud_event

pytestmark = pytest.mark.postgres

MIDPOINT = datetime(2025, 12, 3, 10, 0, tzinfo=CST)
"""Where the demo history is cut in two (its first publication is made here)."""

LATE_TYPES = frozenset(
    {
        "practice.need.rated.v1",
        "practice.activity.feedback_given.v1",
        "practice.volunteer.skills_updated.v1",
    }
)
"""Events nothing else depends on: they can be recorded late without a refusal."""

IGNORED_COLUMNS = frozenset({"recorded_at", "position", "last_position", "updated_at"})
"""Log positions and recording times: they differ between stores holding the same record."""


def rows_of(views: ViewStore, *, ignore: frozenset[str] = frozenset()) -> dict[str, list[bytes]]:
    """Every projection table's rows, comparable (sorted JSON, some columns left out)."""
    out: dict[str, list[bytes]] = {}
    with views.read() as tx:
        for projection in all_projections_default():
            for table in projection.table_names().values():
                out[table] = sorted(
                    orjson.dumps(
                        {k: v for k, v in row.items() if k not in ignore},
                        option=orjson.OPT_SORT_KEYS,
                    )
                    for row in tx.query(f"SELECT * FROM {table}")
                )
    return out


def all_projections_default() -> list[Any]:
    """The deployment's projections with default settings."""
    from practice_events.config import Settings

    return all_projections(Settings())


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A store that received the demo history in two deliveries, before and after MIDPOINT."""
    s = Store(store_url)
    try:
        yield s
    finally:
        s.close()


def live_views(store: Store, where: Path, stop: int | None = None) -> ViewStore:
    """Views built by the live runner (up to ``stop``)."""
    views = ViewStore(f"sqlite:///{where}")
    BatchedRunner(store.app, views, all_projections(store.settings)).catch_up(stop=stop)
    return views


class TestAsKnown:
    def test_as_of_a_recording_time_is_the_log_cut_at_that_moment(
        self, store: Store, tmp_path: Path
    ) -> None:
        before, after = split_at(demo_events(), MIDPOINT)
        cut = store.ingest(before)
        known_then = datetime.now(UTC)
        store.ingest(after)
        assert position_recorded_by(store.app, known_then) == cut

        plan = plan_replay(store.app, as_of=known_then)
        assert (plan.basis, plan.position, plan.evaluated_at) == ("recorded", cut, known_then)
        scratch = scratch_views(tmp_path / "replay")
        result = replay(store.app, store.settings, plan, scratch)
        assert 0 < result.events_read <= cut  # only the types some projection reads
        reference = live_views(store, tmp_path / "live.views.db", stop=cut)
        assert rows_of(scratch) == rows_of(reference)

    def test_before_the_first_event_nothing_was_known(self, store: Store) -> None:
        store.ingest(demo_events()[:50])
        assert position_recorded_by(store.app, datetime(2020, 1, 1, tzinfo=UTC)) == 0

    def test_a_position_is_evaluated_at_the_time_it_was_recorded(self, store: Store) -> None:
        store.ingest(demo_events()[:200])
        plan = plan_replay(store.app, position=120)
        assert plan.position == 120
        assert position_recorded_by(store.app, plan.evaluated_at) >= 120

    def test_the_live_views_are_never_touched(self, store: Store, tmp_path: Path) -> None:
        store.ingest(demo_events()[:600])
        live = live_views(store, tmp_path / "live.views.db")
        before = rows_of(live)
        positions = live.positions()
        replay(
            store.app,
            store.settings,
            plan_replay(store.app, position=100),
            scratch_views(tmp_path / "replay"),
        )
        assert rows_of(live) == before
        assert live.positions() == positions

    def test_only_the_projections_asked_for_are_built(self, store: Store, tmp_path: Path) -> None:
        store.ingest(demo_events()[:300])
        result = replay(
            store.app,
            store.settings,
            plan_replay(store.app, position=300),
            scratch_views(tmp_path / "replay"),
            names=["closed_loop", "network"],
        )
        assert set(result.projections) == {"closed_loop", "network"}

    def test_an_unknown_projection_is_refused_with_the_known_names(
        self, store: Store, tmp_path: Path
    ) -> None:
        store.ingest(demo_events()[:10])
        with pytest.raises(ConfigurationError, match=r"known: .*closed_loop"):
            replay(
                store.app,
                store.settings,
                plan_replay(store.app, position=5),
                scratch_views(tmp_path / "replay"),
                names=["bulletins"],
            )

    def test_as_of_and_position_are_exclusive(self, store: Store) -> None:
        with pytest.raises(ConfigurationError, match="exactly one"):
            plan_replay(store.app)
        with pytest.raises(ConfigurationError, match="exactly one"):
            plan_replay(store.app, position=1, as_of=MIDPOINT)

    def test_tables_are_dumped_as_json_lines(self, store: Store, tmp_path: Path) -> None:
        store.ingest(demo_events()[:300])
        views = scratch_views(tmp_path / "replay")
        replay(store.app, store.settings, plan_replay(store.app, position=300), views)
        written = dump_views(views, all_projections(store.settings), tmp_path / "out")
        lines = (tmp_path / "out" / "network_sites.jsonl").read_bytes().splitlines()
        assert len(lines) == written["network_sites"] > 0
        assert orjson.loads(lines[0])["site_id"]


class TestAsHappened:
    def test_as_happened_by_a_date_includes_late_recorded_events_and_nothing_after(
        self, store: Store, store_url: str, tmp_path: Path
    ) -> None:
        history = list(demo_events())
        before, _ = split_at(history, MIDPOINT)
        # Ratings and feedback collected on paper are typed in after everything else.
        late = [e for e in before if e["type"] in LATE_TYPES][-40:]
        assert len(late) == 40
        on_time = [e for e in history if e not in late]
        store.ingest(on_time)
        store.ingest(late)  # recorded last, happened before MIDPOINT
        plan = plan_replay(store.app, as_of=MIDPOINT, basis="occurred")
        assert plan.position == store.app.last_position()
        scratch = scratch_views(tmp_path / "replay")
        result = replay(store.app, store.settings, plan, scratch)
        assert result.skipped_after > 0

        # The same moment built independently: a store that only saw what had happened.
        reference = Store(
            store_url.replace("store.db", "reference.db")
            if store_url.startswith("sqlite")
            else _second_database(),
        )
        try:
            reference.ingest(before)
            expected = live_views(reference, tmp_path / "reference.views.db")
            assert rows_of(scratch, ignore=IGNORED_COLUMNS) == rows_of(
                expected, ignore=IGNORED_COLUMNS
            )
        finally:
            reference.close()

    def test_occurred_needs_a_time_not_a_position(self, store: Store) -> None:
        with pytest.raises(ConfigurationError, match="--basis occurred needs --as-of"):
            plan_replay(store.app, position=1, basis="occurred")


_databases: list[str] = []


def _second_database() -> str:
    """A second PostgreSQL database for a reference store (dropped at the end of the module)."""
    import uuid

    from tests.conftest import create_database

    name = f"pe_test_{uuid.uuid4().hex[:12]}"
    _databases.append(name)
    return create_database(name)


@pytest.fixture(autouse=True, scope="module")
def _drop_second_databases() -> Iterator[None]:
    yield
    from tests.conftest import drop_database

    for name in _databases:
        drop_database(name)


def report_of(result: ReplayResult) -> dict[str, Any]:
    """What a replay reports, without its timing and where its views are."""
    timing = {"seconds", "events_per_second", "views"}
    return {k: v for k, v in result.as_dict().items() if k not in timing}


class TestProcessGroups:
    """``jobs=2``: the projections split between two processes, one scratch store as result."""

    def test_as_known_two_groups_build_exactly_what_one_process_builds(
        self, store: Store, tmp_path: Path
    ) -> None:
        before, after = split_at(demo_events(), MIDPOINT)
        store.ingest(before)
        known_then = datetime.now(UTC)
        store.ingest(after)
        plan = plan_replay(store.app, as_of=known_then)
        one, two = scratch_views(tmp_path / "one"), scratch_views(tmp_path / "two")
        single = replay(store.app, store.settings, plan, one)
        passed: list[int] = []
        split = replay(store.app, store.settings, plan, two, jobs=2, progress=passed.append)

        assert rows_of(two) == rows_of(one)
        assert two.positions() == one.positions()
        assert report_of(split) == report_of(single)
        # Progress counts log positions, as with one process, and ends at the cut.
        assert sum(passed) == plan.position
        assert all(n > 0 for n in passed)
        # The second group's own file was copied in and removed.
        assert not [p.name for p in (tmp_path / "two").iterdir() if ".part" in p.name]

    def test_as_happened_two_groups_build_exactly_what_one_process_builds(
        self, store: Store, tmp_path: Path
    ) -> None:
        history = list(demo_events())
        before, _ = split_at(history, MIDPOINT)
        late = [e for e in before if e["type"] in LATE_TYPES][-40:]
        store.ingest([e for e in history if e not in late])
        store.ingest(late)
        plan = plan_replay(store.app, as_of=MIDPOINT, basis="occurred")
        one, two = scratch_views(tmp_path / "one"), scratch_views(tmp_path / "two")
        single = replay(store.app, store.settings, plan, one)
        split = replay(store.app, store.settings, plan, two, jobs=2)

        assert split.skipped_after == single.skipped_after > 0
        assert rows_of(two) == rows_of(one)
        assert two.positions() == one.positions()
        assert report_of(split) == report_of(single)

    def test_a_postgres_scratch_schema_is_written_in_place_by_every_group(
        self, store: Store, store_url: str, tmp_path: Path
    ) -> None:
        if not store_url.startswith("postgresql"):
            pytest.skip("a PostgreSQL scratch schema needs a PostgreSQL database")
        store.ingest(demo_events()[:1200])
        plan = plan_replay(store.app, position=1000)
        one = ViewStore(f"{store_url}?views_schema=replay_one")
        two = ViewStore(f"{store_url}?views_schema=replay_two")
        try:
            single = replay(store.app, store.settings, plan, one)
            split = replay(store.app, store.settings, plan, two, jobs=2)
            assert rows_of(two) == rows_of(one)
            assert two.positions() == one.positions()
            assert report_of(split) == report_of(single)
        finally:
            one.close()
            two.close()

    def test_an_empty_log_leaves_one_group_replayed_in_this_process(
        self, store: Store, tmp_path: Path
    ) -> None:
        views = scratch_views(tmp_path / "two")
        result = replay(
            store.app, store.settings, plan_replay(store.app, position=0), views, jobs=2
        )
        assert (result.events_read, result.events_applied) == (0, 0)
        assert set(result.projections) == {p.NAME for p in all_projections(store.settings)}
        assert set(views.positions()) == set(result.projections)

    def test_jobs_below_one_are_refused(self, store: Store, tmp_path: Path) -> None:
        store.ingest(demo_events()[:10])
        with pytest.raises(ConfigurationError, match="--jobs must be at least 1"):
            replay(
                store.app,
                store.settings,
                plan_replay(store.app, position=5),
                scratch_views(tmp_path / "replay"),
                jobs=0,
            )


class TestPublishedScorecards:
    UNIT = "WLY-SUO-01"
    PERIOD = "2025-11"

    def publish(self, store: Store, tmp_path: Path, *, tamper: float = 0.0) -> dict[str, Any]:
        """Compute the unit's November scorecard on live views and publish it as an event."""
        views = live_views(store, tmp_path / "publisher.views.db")
        sc.clear_cache()
        data = sc.compute_for_publication(store.app, views, self.UNIT, self.PERIOD, now=MIDPOINT)
        views.close()
        published = {**data, "composite": round(data["composite"] + tamper, 4)}
        store.ingest(
            [
                cloud_event(
                    "practice.assessment.scorecard_published.v1",
                    f"{self.UNIT}:{self.PERIOD}",
                    published,
                    time=MIDPOINT,
                    source="urn:wly:bulletin-office",
                )
            ]
        )
        return published

    def test_a_published_scorecard_recomputes_to_exactly_the_frozen_figures(
        self, store: Store, tmp_path: Path
    ) -> None:
        before, after = split_at(demo_events(), MIDPOINT)
        store.ingest(before)
        published = self.publish(store, tmp_path)
        store.ingest(after)  # the world moves on; the bulletin must not
        results = reproduce_publications(
            store.app, store.settings, scratch_views(tmp_path / "replay")
        )
        assert len(results) == 1
        outcome = results[0]
        assert outcome["identical"], outcome["differing"]
        assert outcome["recomputed"]["composite"] == published["composite"]
        assert outcome["recomputed"]["indicators"] == published["indicators"]
        assert (outcome["unit_id"], outcome["period"]) == (self.UNIT, self.PERIOD)

    def test_a_bulletin_whose_figures_were_not_computed_from_the_log_is_exposed(
        self, store: Store, tmp_path: Path
    ) -> None:
        before, _ = split_at(demo_events(), MIDPOINT)
        store.ingest(before)
        self.publish(store, tmp_path, tamper=5.0)
        (outcome,) = reproduce_publications(
            store.app, store.settings, scratch_views(tmp_path / "replay")
        )
        assert not outcome["identical"]
        assert outcome["differing"] == ["composite"]

    @pytest.mark.parametrize("jobs", [1, 2])
    def test_the_scorecard_can_be_shown_as_of_its_position(
        self, store: Store, tmp_path: Path, jobs: int
    ) -> None:
        before, after = split_at(demo_events(), MIDPOINT)
        store.ingest(before)
        published = self.publish(store, tmp_path)
        store.ingest(after)
        views = scratch_views(tmp_path / "replay")
        plan = ReplayPlan("recorded", published["as_of_position"], MIDPOINT)
        replay(store.app, store.settings, plan, views, jobs=jobs)
        card = sc.scorecard(views, self.UNIT, self.PERIOD, now=MIDPOINT)
        assert round(card["composite"]["value"], 4) == published["composite"]
