"""The parts `serve` is made of, on a real SQLite store: demo loading, the demo token,
the in-process projection runners and which plugins `api` leaves out.

The whole process (signals, restart, the browser) is tested in
``tests/e2e/test_first_run.py``; these scenarios look at each part alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from practice_events.application import PracticeEvents
from practice_events.bootstrap import build_app, build_pipeline
from practice_events.config import Settings
from practice_events.demo.load import (
    demo_marker_path,
    demo_token_path,
    ensure_demo_token,
    load_demo,
    prepare_demo,
)
from practice_events.ingest.pipeline import BatchResult, Pipeline

TODAY = date(2026, 3, 15)


def settings_for(tmp_path: Path, **values: Any) -> Settings:
    return Settings(store=f"sqlite:///{tmp_path}/pe.db", demo_events=1500, demo_days=30, **values)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return settings_for(tmp_path)


@pytest.fixture
def app(settings: Settings) -> Iterator[PracticeEvents]:
    opened = build_app(settings)
    try:
        yield opened
    finally:
        opened.close()


class StopAfter:
    """A pipeline that is interrupted (as by Ctrl-C) after ``batches`` batches."""

    def __init__(self, pipeline: Pipeline, batches: int) -> None:
        self.pipeline = pipeline
        self.left = batches

    def process(self, inputs: Any, **kwargs: Any) -> BatchResult:
        if self.left == 0:
            raise KeyboardInterrupt
        self.left -= 1
        return self.pipeline.process(inputs, **kwargs)


class TestDemoLoad:
    def test_loads_an_empty_store_once(self, settings: Settings, app: PracticeEvents) -> None:
        pipeline = build_pipeline(settings, app)
        loaded = prepare_demo(settings, app, pipeline, progress=False, today=TODAY)
        assert loaded is not None
        assert loaded.rejected == 0
        assert loaded.accepted == loaded.inputs > 1000
        assert loaded.start == date(2026, 2, 13)
        assert loaded.days == 30
        assert app.last_position() == loaded.last_position == loaded.events_stored
        assert prepare_demo(settings, app, pipeline, progress=False, today=TODAY) is None
        assert app.last_position() == loaded.last_position

    def test_nothing_in_the_demo_lies_in_the_future(
        self, settings: Settings, app: PracticeEvents
    ) -> None:
        loaded = prepare_demo(settings, app, build_pipeline(settings, app), progress=False)
        assert loaded is not None
        assert loaded.rejected_by_code.get("TIME_IN_FUTURE") is None
        assert loaded.start.toordinal() + loaded.days == date.today().toordinal()

    def test_an_interrupted_load_is_finished_on_the_next_start(
        self, tmp_path: Path, settings: Settings, app: PracticeEvents
    ) -> None:
        pipeline = build_pipeline(settings, app)
        with pytest.raises(KeyboardInterrupt):
            prepare_demo(settings, app, StopAfter(pipeline, 1), progress=False, today=TODAY)  # type: ignore[arg-type]  # a stand-in pipeline
        partial = app.last_position()
        assert partial > 0
        resumed = prepare_demo(settings, app, pipeline, progress=False, today=TODAY)
        assert resumed is not None
        assert resumed.duplicate == settings.batch_size
        assert resumed.rejected == 0
        clean = settings_for(tmp_path / "clean")
        other = build_app(clean)
        try:
            reference = load_demo(
                clean, build_pipeline(clean, other), progress=False, start=resumed.start, days=30
            )
        finally:
            other.close()
        assert app.last_position() == reference.events_stored
        assert demo_marker_path(settings).read_text(encoding="utf-8").count('"complete": true')

    def test_a_store_with_other_data_is_left_alone(
        self, settings: Settings, app: PracticeEvents
    ) -> None:
        pipeline = build_pipeline(settings, app)
        load_demo(settings, pipeline, progress=False, start=date(2026, 1, 1), days=30)
        demo_marker_path(settings).unlink(missing_ok=True)
        before = app.last_position()
        assert prepare_demo(settings, app, pipeline, progress=False) is None
        assert app.last_position() == before


class TestDemoToken:
    def test_is_issued_once_and_kept_private(self, settings: Settings, app: PracticeEvents) -> None:
        from practice_events.auth.tokens import token_store

        first = ensure_demo_token(settings, app)
        assert ensure_demo_token(settings, app) == first
        path = demo_token_path(settings)
        assert path.name == "pe.demo-token"
        assert path.stat().st_mode & 0o777 == 0o600
        token = token_store(app).lookup(first)
        assert token is not None
        assert (token.role, token.unit) == ("district_supervisor", "WLY")

    def test_is_replaced_when_revoked(self, settings: Settings, app: PracticeEvents) -> None:
        from practice_events.auth.tokens import token_store

        first = ensure_demo_token(settings, app)
        tokens = token_store(app)
        found = tokens.lookup(first)
        assert found is not None
        tokens.revoke(found.token_id)
        second = ensure_demo_token(settings, app)
        assert second != first
        assert demo_token_path(settings).read_text(encoding="utf-8").strip() == second


class TestEmbeddedProjections:
    def test_runners_follow_http_ingestion_and_stop(self, settings: Settings) -> None:
        from practice_events.api.app import HttpLimits, open_runtime
        from projections.service import RUNNER_SERVICE, EmbeddedProjections

        app = build_app(settings)
        try:
            load_demo(settings, build_pipeline(settings, app), progress=False, start=TODAY, days=30)
        finally:
            app.close()
        runtime = open_runtime(settings, HttpLimits())
        hooks = EmbeddedProjections(settings)
        try:
            hooks.start(runtime)
            runner = runtime.services[RUNNER_SERVICE]
            head = runtime.store.last_position()
            assert runner.wait(head, timeout=60)
            assert hooks.caught_up.wait(10)
            assert set(hooks.positions().values()) == {head}
        finally:
            hooks.stop()
            runtime.close()
        assert all(state.status == "stopped" for state in runner.states.values())

    def test_views_ahead_of_a_replaced_store_are_rebuilt(
        self, tmp_path: Path, settings: Settings
    ) -> None:
        from practice_events.api.app import HttpLimits, open_runtime
        from projections.service import EmbeddedProjections
        from projections.viewstore import ViewStore, default_view_url

        app = build_app(settings)
        try:
            load_demo(settings, build_pipeline(settings, app), progress=False, start=TODAY, days=30)
        finally:
            app.close()
        runtime = open_runtime(settings, HttpLimits())
        hooks = EmbeddedProjections(settings)
        try:
            hooks.start(runtime)
            assert hooks.caught_up.wait(60)
        finally:
            hooks.stop()
            runtime.close()
        for stored in tmp_path.glob("pe.db*"):
            stored.unlink()  # the store goes; the views file (pe.views.db) stays
        runtime = open_runtime(settings, HttpLimits())
        hooks = EmbeddedProjections(settings)
        try:
            hooks.start(runtime)
            assert set(hooks.positions().values()) == {0}
        finally:
            hooks.stop()
            runtime.close()
        views = ViewStore(default_view_url(settings.store))
        try:
            assert {row["position"] for row in views.positions().values()} == {0}
        finally:
            views.close()


class TestPlugins:
    def test_api_leaves_the_in_process_workers_out(self) -> None:
        from practice_events.api.cli import EMBEDDED_PLUGINS, api_plugins

        chosen = api_plugins()
        assert "projections" in chosen
        assert not set(EMBEDDED_PLUGINS) & set(chosen)

    def test_kafka_runs_in_serve_only_when_configured(self, settings: Settings) -> None:
        from consumers.service import EmbeddedKafka, install

        assert install(None, settings) is None  # type: ignore[arg-type]  # no routes are added
        configured = settings.model_copy(update={"kafka_bootstrap": "127.0.0.1:9"})
        assert isinstance(install(None, configured), EmbeddedKafka)  # type: ignore[arg-type]  # no routes are added
