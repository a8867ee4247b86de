"""Settings: store URLs, defaults, masking and clear errors."""

from __future__ import annotations

import pytest

from practice_events.config import Settings, load_settings, mask_url, store_env
from practice_events.errors import ConfigurationError


class TestStoreUrl:
    def test_relative_sqlite_path(self) -> None:
        env = store_env("sqlite:///var/x.db")
        assert env["SQLITE_DBNAME"] == "var/x.db"
        assert env["PERSISTENCE_MODULE"].endswith("sqlite:Factory")

    def test_absolute_sqlite_path(self) -> None:
        assert store_env("sqlite:////srv/data/x.db")["SQLITE_DBNAME"] == "/srv/data/x.db"

    def test_postgres_url(self) -> None:
        env = store_env("postgresql://pe:secret@db.local:6543/practice?schema=wly")
        assert env["POSTGRES_HOST"] == "db.local"
        assert env["POSTGRES_PORT"] == "6543"
        assert env["POSTGRES_USER"] == "pe"
        assert env["POSTGRES_PASSWORD"] == "secret"
        assert env["POSTGRES_DBNAME"] == "practice"
        assert env["POSTGRES_SCHEMA"] == "wly"

    @pytest.mark.parametrize("url", ["mysql://x/y", "sqlite://", "postgresql://host/", "nonsense"])
    def test_bad_urls_are_refused_with_a_reason(self, url: str) -> None:
        with pytest.raises(ConfigurationError) as info:
            store_env(url)
        assert info.value.reason

    def test_password_is_masked(self) -> None:
        assert mask_url("postgresql://u:pw@h/d") == "postgresql://u:********@h/d"


class TestSettings:
    def test_defaults(self) -> None:
        settings = Settings()
        assert settings.timezone == "Asia/Shanghai"
        assert settings.store.startswith("sqlite:///")
        assert settings.dlq_topic == "practice.events.v1.dlq"

    def test_environment_wins(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("PRACTICE_EVENTS_BATCH_SIZE", "250")
        assert load_settings().batch_size == 250

    def test_toml_file(self, monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
        from pathlib import Path

        path = Path(str(tmp_path)) / "pe.toml"
        path.write_text('timezone = "Asia/Urumqi"\nbatch_size = 10\n', encoding="utf-8")
        monkeypatch.setenv("PRACTICE_EVENTS_CONFIG", str(path))
        monkeypatch.setenv("PRACTICE_EVENTS_BATCH_SIZE", "20")
        settings = load_settings()
        assert settings.timezone == "Asia/Urumqi"
        assert settings.batch_size == 20

    def test_bad_value_is_one_clear_line(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("PRACTICE_EVENTS_TIMEZONE", "Mars/Olympus")
        with pytest.raises(ConfigurationError) as info:
            load_settings()
        assert "timezone" in info.value.reason
        assert "\n" not in info.value.reason

    def test_bad_store_url(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("PRACTICE_EVENTS_STORE", "oracle://x")
        with pytest.raises(ConfigurationError):
            load_settings()

    def test_secrets_are_masked(self) -> None:
        settings = Settings(
            cipher_key="c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", store="postgresql://u:pw@h/d"
        )
        shown = settings.masked()
        assert shown["cipher_key"] == "********"
        assert "pw" not in shown["store"]
