"""One TOML file for every setting, and `config show` listing them all, secrets masked.

Settings that live beside their code (the HTTP limits, the read API's) are
sections registered under the ``practice_events.settings`` entry points;
their keys are accepted in the TOML file, the environment still wins, and an
unknown key is refused in one line.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from practice_events.config import Settings, effective_settings, load_settings
from practice_events.errors import ConfigurationError

SECTION_VARIABLES = (
    "PRACTICE_EVENTS_HTTP_MAX_BATCH_EVENTS",
    "PRACTICE_EVENTS_API_WAIT_SECONDS",
    "PRACTICE_EVENTS_API_VIEWS",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a test hands to the environment is undone afterwards."""
    for name in SECTION_VARIABLES:
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)


def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> Path:
    path = tmp_path / "practice-events.toml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("PRACTICE_EVENTS_CONFIG", str(path))
    return path


class TestTomlFile:
    def test_a_sections_key_reaches_that_section(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from practice_events.api.app import HttpLimits

        config_file(tmp_path, monkeypatch, "http_max_batch_events = 123\napi_wait_seconds = 0.5\n")
        load_settings()
        assert HttpLimits().max_batch_events == 123
        from projections.http.context import ReadApiSettings

        assert ReadApiSettings().wait_seconds == 0.5

    def test_the_environment_wins_over_the_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from practice_events.api.app import HttpLimits

        config_file(tmp_path, monkeypatch, "http_max_batch_events = 123\ndemo_events = 5000\n")
        monkeypatch.setenv("PRACTICE_EVENTS_HTTP_MAX_BATCH_EVENTS", "77")
        monkeypatch.setenv("PRACTICE_EVENTS_DEMO_EVENTS", "6000")
        settings = load_settings()
        assert HttpLimits().max_batch_events == 77
        assert settings.demo_events == 6000

    def test_an_unknown_key_is_refused_in_one_line(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        config_file(tmp_path, monkeypatch, "http_max_batch_event = 10\n")
        with pytest.raises(ConfigurationError) as info:
            load_settings()
        assert "unknown setting 'http_max_batch_event'" in info.value.reason
        assert "\n" not in info.value.reason

    def test_a_bad_demo_size_is_refused(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        config_file(tmp_path, monkeypatch, "demo_days = 3\n")
        with pytest.raises(ConfigurationError) as info:
            load_settings()
        assert "demo_days" in info.value.reason


class TestConfigShow:
    def test_lists_every_setting_of_every_section(self) -> None:
        shown = effective_settings(Settings())
        for key in ("store", "demo_events", "http_max_batch_events", "api_wait_seconds"):
            assert key in shown
        assert shown["demo_events"] == 90_000
        assert shown["scheduler_interval_seconds"] == 60.0

    def test_masks_keys_and_passwords_in_every_section(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("PRACTICE_EVENTS_API_VIEWS", "postgresql://viewer:hunter2@db/views")
        settings = Settings(
            cipher_key="c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0",
            store="postgresql://pe:s3cret@db/practice",
        )
        text = orjson.dumps(effective_settings(settings)).decode()
        assert "hunter2" not in text
        assert "s3cret" not in text
        assert "c2VjcmV0" not in text
        assert "postgresql://viewer:********@db/views" in text

    def test_the_command_prints_toml_names_as_json(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        from practice_events.cli import main

        assert main(["config", "show", "--json"]) == 0
        shown = orjson.loads(capsys.readouterr().out)
        assert shown["http_port"] == 8000
        assert "http_max_pending_events" in shown
