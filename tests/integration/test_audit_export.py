"""Export to CloudEvents JSON Lines and import back: the record can be taken away whole.

The round trip is the proof: the demo district's history (plus scheduler
events) is ingested into one store, exported, imported into an empty
store, and both stores' logs and every projection's rows are compared. Runs
on a real SQLite file and a real PostgreSQL database.
"""

from __future__ import annotations

import gzip
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from practice_events.audit.export import export_events, import_events
from practice_events.audit.history import state_decoder
from practice_events.audit.integrity import log_store
from practice_events.contracts.base import CATALOGUE
from practice_events.contracts.envelope import parse_structured
from practice_events.errors import PracticeEventsError
from projections.registry import all_projections
from projections.runner import BatchedRunner
from projections.viewstore import ViewStore
from tests import factories_finding as ff
from tests.conftest import create_database, drop_database
from tests.factories_audit import Store, demo_events
from tests.factories_volunteer import CENTRE, STATION
from tests.harness import CST, cloud_event

pytestmark = pytest.mark.postgres

SCHEDULED_AT = datetime(2026, 1, 10, 9, 0, tzinfo=CST)
"""When the overdue scheduler runs over the demo history (after its last day)."""

IGNORED_COLUMNS = frozenset({"recorded_at", "position", "last_position", "updated_at"})
"""Columns holding log positions or recording times: properties of a store, not of the record."""


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def source_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The store the history is exported from (one per backend for the whole module)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('source') / 'store.db'}"
        return
    name = f"pe_test_{uuid.uuid4().hex[:12]}"
    url = create_database(name)
    try:
        yield url
    finally:
        drop_database(name)


@pytest.fixture
def other_url(source_url: str, tmp_path: Path) -> Iterator[str]:
    """A second, empty store on the same backend."""
    if source_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'imported.db'}"
        return
    name = f"pe_test_{uuid.uuid4().hex[:12]}"
    url = create_database(name)
    try:
        yield url
    finally:
        drop_database(name)


@pytest.fixture(scope="module")
def source(source_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """The demo history, with overdue and escalation events from the scheduler (read only)."""
    from projections.cli import build_scheduler

    s = Store(source_url)
    s.ingest(demo_events())
    s.ingest(overdue_finding())
    views = ViewStore(f"sqlite:///{tmp_path_factory.mktemp('scheduler') / 'views.db'}")
    result = build_scheduler(s.settings, s.app, views).run_once(SCHEDULED_AT)
    views.close()
    assert result.emitted > 0
    try:
        yield s
    finally:
        s.close()


def overdue_finding() -> list[dict[str, Any]]:
    """A finding fed back late in December and never acknowledged: overdue by January."""
    station = next(
        e["subject"]
        for e in demo_events()
        if e["type"] == ff.SITE_REGISTERED and e["data"]["level"] == "station"
    )
    return [
        cloud_event(
            ff.RECORDED,
            "F-AUDIT-0001",
            ff.recorded(site_id=station, responsible_unit_id=station),
            time=datetime(2025, 12, 22, 9, 0, tzinfo=CST),
            event_id="F-AUDIT-0001-recorded",
        ),
        cloud_event(
            ff.FED_BACK,
            "F-AUDIT-0001",
            ff.fed_back(),
            time=datetime(2025, 12, 22, 10, tzinfo=CST),
            event_id="F-AUDIT-0001-fed-back",
        ),
    ]


@pytest.fixture
def target(other_url: str) -> Iterator[Store]:
    """The empty store to import into."""
    s = Store(other_url)
    try:
        yield s
    finally:
        s.close()


def log_by_event(store: Store) -> dict[tuple[uuid.UUID, int], tuple[str, Any, Any]]:
    """Every stored event by (aggregate, version): its type, data and provenance."""
    decode = state_decoder(store.app)
    out = {}
    for _, originator, version, topic, state in log_store(store.app).read_log(0, 10**7):
        obj = decode(state)
        out[(uuid.UUID(bytes=originator), version)] = (topic, obj.get("data"), obj.get("meta"))
    return out


def projected_rows(store: Store, where: Path) -> dict[str, list[bytes]]:
    """Build every projection from the store's log; return each table's rows, comparable."""
    views = ViewStore(f"sqlite:///{where}")
    projections = all_projections(store.settings)
    BatchedRunner(store.app, views, projections).catch_up()
    tables: dict[str, list[bytes]] = {}
    with views.read() as tx:
        for projection in projections:
            for table in projection.table_names().values():
                rows = tx.query(f"SELECT * FROM {table}")
                tables[table] = sorted(
                    orjson.dumps(
                        {k: v for k, v in row.items() if k not in IGNORED_COLUMNS},
                        option=orjson.OPT_SORT_KEYS,
                    )
                    for row in rows
                )
    views.close()
    return tables


def read_lines(path: Path) -> list[dict[str, Any]]:
    """The CloudEvents of an export file (gzip or plain)."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return [orjson.loads(line) for line in raw.splitlines() if line.strip()]


class TestRoundTrip:
    def test_import_into_an_empty_store_reproduces_the_log_and_every_projection(
        self, source: Store, target: Store, tmp_path: Path
    ) -> None:
        out = tmp_path / "district.jsonl.gz"
        summary = export_events(source.app, out)
        assert summary.unverified == 0
        assert summary.unresolved == 0
        result = import_events(target.pipeline, out, batch_size=700)
        assert result.rejected == 0, result.rejected_by_code
        assert result.accepted == summary.exported
        # Same events, same versions, same data and provenance, derived ones re-derived.
        assert log_by_event(target) == log_by_event(source)
        assert projected_rows(target, tmp_path / "b.views.db") == projected_rows(
            source, tmp_path / "a.views.db"
        )

    def test_importing_the_same_file_again_changes_nothing(
        self, source: Store, target: Store, tmp_path: Path
    ) -> None:
        out = tmp_path / "district.jsonl"
        export_events(source.app, out)
        first = import_events(target.pipeline, out)
        head = target.app.last_position()
        again = import_events(target.pipeline, out)
        assert again.duplicate == first.accepted
        assert again.accepted == again.rejected == 0
        assert target.app.last_position() == head

    def test_exporting_into_the_store_it_came_from_is_all_duplicates(
        self, source: Store, tmp_path: Path
    ) -> None:
        out = tmp_path / "district.jsonl"
        summary = export_events(source.app, out)
        again = import_events(source.pipeline, out)
        assert again.duplicate == summary.exported
        assert again.rejected == 0


class TestWhatIsExported:
    def test_lines_are_cloudevents_with_the_original_ids_and_sources(
        self, source: Store, tmp_path: Path
    ) -> None:
        out = tmp_path / "district.jsonl.gz"
        export_events(source.app, out)
        lines = read_lines(out)
        sent = {(e["source"], e["id"]): e for e in [*demo_events(), *overdue_finding()]}
        for line in lines:
            assert line["specversion"] == "1.0"
            original = sent.get((line["source"], line["id"]))
            if original is None:  # a scheduler event
                assert line["source"] == "practice-events"
                assert CATALOGUE[line["type"]].SYSTEM
                continue
            # The data as the contract validated it (numbers and defaults normalised):
            # what the producer's fingerprint was computed over.
            accepted = parse_structured(original)
            assert (line["type"], line["subject"], line["data"]) == (
                accepted.type,
                accepted.subject,
                accepted.data_json,
            )
            assert datetime.fromisoformat(line["time"]) == datetime.fromisoformat(original["time"])

    def test_derived_events_are_left_out_and_counted(self, source: Store, tmp_path: Path) -> None:
        summary = export_events(source.app, tmp_path / "x.jsonl")
        types = {e["type"] for e in read_lines(tmp_path / "x.jsonl")}
        assert "practice.attendance.hours_credited.v1" not in types
        assert "practice.attendance.points_awarded.v1" not in types
        assert "practice.finding.overdue.v1" in types  # the scheduler's own decisions stay
        assert summary.derived_skipped > 0
        assert summary.exported + summary.derived_skipped == source.app.last_position()

    def test_a_time_range_applies_to_business_time(self, source: Store, tmp_path: Path) -> None:
        start = datetime(2025, 11, 1, tzinfo=CST)
        end = datetime(2025, 11, 30, 23, 59, 59, tzinfo=CST)
        summary = export_events(source.app, tmp_path / "nov.jsonl", start=start, end=end)
        lines = read_lines(tmp_path / "nov.jsonl")
        assert lines
        assert all(start <= datetime.fromisoformat(e["time"]) <= end for e in lines)
        assert summary.outside_range > 0
        assert len(lines) == summary.exported

    def test_upto_exports_the_log_as_known_at_a_position(
        self, source: Store, tmp_path: Path
    ) -> None:
        summary = export_events(source.app, tmp_path / "early.jsonl", upto=500)
        assert summary.last_position == 500
        assert summary.events_read == 500


class TestUnitExport:
    UNIT = "WLY-SUO-01"

    def tree(self) -> tuple[set[str], dict[str, str | None]]:
        """The unit's sites and every site's parent, from the demo's registrations."""
        parents: dict[str, str | None] = {}
        for e in demo_events():
            if e["type"] == "practice.site.registered.v1":
                parents[e["subject"]] = e["data"].get("parent_id")
        under = {self.UNIT}
        for site, parent in parents.items():  # registrations come parents first
            if parent in under:
                under.add(site)
        return under, parents

    def test_a_unit_export_holds_its_sites_their_aggregates_and_its_ancestors(
        self, source: Store, tmp_path: Path
    ) -> None:
        under, parents = self.tree()
        summary = export_events(source.app, tmp_path / "unit.jsonl", unit=self.UNIT)
        lines = read_lines(tmp_path / "unit.jsonl")
        registered = {e["subject"] for e in lines if e["type"] == "practice.site.registered.v1"}
        ancestors = {parents[self.UNIT]} - {None}
        assert registered == under | ancestors
        volunteers = {
            e["subject"]: e["data"]["home_site_id"]
            for e in lines
            if e["type"] == "practice.volunteer.registered.v1"
        }
        assert volunteers
        assert set(volunteers.values()) <= under
        assert summary.outside_unit > 0

    def test_a_unit_export_imports_into_an_empty_store(
        self, source: Store, target: Store, tmp_path: Path
    ) -> None:
        out = tmp_path / "unit.jsonl.gz"
        summary = export_events(source.app, out, unit=self.UNIT)
        result = import_events(target.pipeline, out)
        # Events naming aggregates of other units (a team elsewhere) are refused, never lost.
        assert result.accepted + result.rejected == summary.exported
        assert result.accepted > 0.9 * summary.exported

    def test_an_unknown_unit_is_refused_and_leaves_no_file(
        self, source: Store, tmp_path: Path
    ) -> None:
        out = tmp_path / "nowhere.jsonl"
        with pytest.raises(PracticeEventsError) as info:
            export_events(source.app, out, unit="NO-SUCH-SITE")
        assert info.value.code == "NOT_FOUND"
        assert not out.exists()
        assert not list(tmp_path.glob("nowhere*"))


class TestProducerPayloads:
    def test_a_default_the_domain_filled_in_is_not_exported_as_sent(
        self, store_url: str, tmp_path: Path
    ) -> None:
        s = Store(store_url)
        try:
            s.ingest(
                [
                    cloud_event(
                        "practice.site.registered.v1", CENTRE, {"level": "centre", "name": "中心"}
                    ),
                    cloud_event(
                        "practice.site.registered.v1",
                        STATION,
                        {"level": "station", "parent_id": CENTRE, "name": "站"},
                    ),
                    cloud_event(
                        "practice.volunteer.registered.v1", "V-1", {"home_site_id": STATION}
                    ),
                    cloud_event(
                        "practice.attendance.checked_in.v1",
                        "V-1",
                        {"session_id": "S-1", "site_id": STATION, "method": "qr"},
                    ),
                ]
            )
            summary = export_events(s.app, tmp_path / "x.jsonl")
        finally:
            s.close()
        check_in = next(
            e for e in read_lines(tmp_path / "x.jsonl") if e["type"].endswith("checked_in.v1")
        )
        # The aggregate stored participant_kind=volunteer; the producer never sent it.
        assert "participant_kind" not in check_in["data"]
        assert summary.unverified == 0
