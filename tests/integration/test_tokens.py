"""API tokens: issued once, stored hashed beside the events, expiring, revocable.

The token store runs on the event store's own database (SQLite file and
PostgreSQL); the ``practice-events tokens`` commands are run as a user would
run them, and their tokens are used against a live server.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from practice_events.application import PracticeEvents
from practice_events.auth.tokens import (
    ApiToken,
    AuthenticationError,
    InvalidGrantError,
    TokenStore,
    TokenVerifier,
    UnknownTokenError,
    hash_secret,
    token_store,
    validate_grant,
)
from practice_events.bootstrap import build_app
from practice_events.config import Settings
from tests.factories_api import CE_JSON, centre, live_server

CLI = [sys.executable, "-m", "practice_events.cli"]


@pytest.fixture
def app(store_url: str) -> Iterator[PracticeEvents]:
    """The event store whose database holds the tokens."""
    opened = build_app(Settings(store=store_url))
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def tokens(app: PracticeEvents) -> TokenStore:
    """The token store beside the events."""
    return token_store(app)


def _token(**kw: Any) -> ApiToken:
    now = datetime(2024, 3, 1, tzinfo=UTC)
    values: dict[str, Any] = {
        "token_id": "tok_x",
        "role": "producer",
        "unit": None,
        "sources": ("urn:app:checkin",),
        "created_at": now,
        "expires_at": now + timedelta(days=90),
    }
    values.update(kw)
    return ApiToken(**values)


class TestIssue:
    def test_issues_a_producer_token_that_authenticates(self, tokens: TokenStore) -> None:
        issued = tokens.issue("producer", sources=["urn:app:checkin:*", "urn:wishwall"])
        assert issued.secret.startswith("pe_")
        assert len(issued.secret) == 46
        found = tokens.authenticate(issued.secret)
        assert found.token_id == issued.token.token_id
        assert found.role == "producer"
        assert found.sources == ("urn:app:checkin:*", "urn:wishwall")
        assert found.expires_at - found.created_at == timedelta(days=90)

    def test_issues_a_supervisor_token_bound_to_its_unit(self, tokens: TokenStore) -> None:
        issued = tokens.issue("institute_supervisor", unit="WLY-SUO-01", lifetime=timedelta(days=7))
        found = tokens.authenticate(issued.secret)
        assert (found.role, found.unit, found.sources) == ("institute_supervisor", "WLY-SUO-01", ())
        assert found.expires_at - found.created_at == timedelta(days=7)

    def test_keeps_only_a_hash_of_the_secret(self, tokens: TokenStore, app: PracticeEvents) -> None:
        issued = tokens.issue("producer", sources=["urn:app:checkin"])
        datastore = app.recorder.datastore  # type: ignore[attr-defined]  # both recorders have one
        with datastore.transaction(commit=False) as cursor:
            cursor.execute("SELECT * FROM api_tokens")
            rows = [
                dict(row)
                if isinstance(row, dict)
                else dict(zip(row.keys(), tuple(row), strict=True))
                for row in cursor.fetchall()
            ]
        assert len(rows) == 1
        assert issued.secret not in repr(rows)
        assert rows[0]["token_hash"] == hash_secret(issued.secret)
        assert rows[0]["hint"] == issued.secret[:7]
        assert issued.secret not in repr(issued)

    def test_gives_every_token_its_own_secret_and_id(self, tokens: TokenStore) -> None:
        issued = [tokens.issue("auditor") for _ in range(20)]
        assert len({i.secret for i in issued}) == 20
        assert len({i.token.token_id for i in issued}) == 20

    def test_keeps_tokens_when_the_store_is_reopened(self, store_url: str) -> None:
        first = build_app(Settings(store=store_url))
        try:
            issued = token_store(first).issue("auditor")
        finally:
            first.close()
        second = build_app(Settings(store=store_url))
        try:
            assert token_store(second).authenticate(issued.secret).role == "auditor"
        finally:
            second.close()


class TestGrants:
    @pytest.mark.parametrize(
        ("role", "unit", "sources", "words"),
        [
            ("producer", None, [], "needs at least one --source"),
            ("station_supervisor", None, [], "needs --unit"),
            ("district_supervisor", None, [], "needs --unit"),
            ("auditor", "S-1", [], "not bound to a unit"),
            ("auditor", None, ["urn:x"], "takes no --source"),
            ("producer", "S-1", ["urn:x"], "not bound to a unit"),
            ("producer", None, ["urn:*:x"], "bad source pattern"),
            ("producer", None, ["urn:x y"], "bad source pattern"),
            ("producer", None, [""], "bad source pattern"),
            ("janitor", None, [], "unknown role"),
        ],
    )
    def test_refuses_grants_that_do_not_fit(
        self, role: str, unit: str | None, sources: list[str], words: str
    ) -> None:
        with pytest.raises(InvalidGrantError, match=words):
            validate_grant(role, unit, sources)

    def test_refuses_a_lifetime_that_is_not_positive(self, tokens: TokenStore) -> None:
        with pytest.raises(InvalidGrantError):
            tokens.issue("auditor", lifetime=timedelta(0))


class TestSourceBinding:
    def test_allows_an_exact_source_only_exactly(self) -> None:
        token = _token(sources=("urn:app:checkin",))
        assert token.allows_source("urn:app:checkin")
        assert not token.allows_source("urn:app:checkin2")
        assert not token.allows_source("urn:app")

    def test_allows_every_source_under_a_prefix(self) -> None:
        token = _token(sources=("urn:app:checkin:*", "urn:wishwall"))
        assert token.allows_source("urn:app:checkin:station-3")
        assert token.allows_source("urn:app:checkin:")
        assert token.allows_source("urn:wishwall")
        assert not token.allows_source("urn:app:checkout:station-3")
        assert not token.allows_source("urn:app:checkin")

    def test_a_lone_star_allows_any_source(self) -> None:
        assert _token(sources=("*",)).allows_source("anything/at/all")


class TestLifecycle:
    def test_refuses_an_expired_token(self, tokens: TokenStore) -> None:
        long_ago = datetime.now(UTC) - timedelta(days=100)
        issued = tokens.issue("auditor", now=long_ago)
        with pytest.raises(AuthenticationError) as info:
            tokens.authenticate(issued.secret)
        assert info.value.code == "TOKEN_EXPIRED"

    def test_refuses_a_revoked_token(self, tokens: TokenStore) -> None:
        issued = tokens.issue("auditor")
        revoked = tokens.revoke(issued.token.token_id)
        assert revoked.revoked_at is not None
        with pytest.raises(AuthenticationError) as info:
            tokens.authenticate(issued.secret)
        assert info.value.code == "TOKEN_REVOKED"

    def test_keeps_the_first_revocation_time(self, tokens: TokenStore) -> None:
        issued = tokens.issue("auditor")
        first = tokens.revoke(issued.token.token_id, now=datetime(2025, 1, 1, tzinfo=UTC))
        second = tokens.revoke(issued.token.token_id)
        assert second.revoked_at == first.revoked_at == datetime(2025, 1, 1, tzinfo=UTC)

    def test_refuses_to_revoke_an_unknown_token(self, tokens: TokenStore) -> None:
        with pytest.raises(UnknownTokenError):
            tokens.revoke("tok_nobody")

    @pytest.mark.parametrize(
        "secret", ["", "pe_", "pe_short", "x" * 46, "pe_" + "A" * 43, "pe_" + "!" * 43]
    )
    def test_refuses_secrets_it_never_issued(self, tokens: TokenStore, secret: str) -> None:
        with pytest.raises(AuthenticationError) as info:
            tokens.authenticate(secret)
        assert info.value.code == "INVALID_TOKEN"

    def test_lists_tokens_with_their_status(self, tokens: TokenStore) -> None:
        active = tokens.issue("auditor").token
        expired = tokens.issue("auditor", now=datetime.now(UTC) - timedelta(days=200)).token
        revoked = tokens.issue("auditor").token
        tokens.revoke(revoked.token_id)
        now = datetime.now(UTC)
        status = {t.token_id: t.status(now) for t in tokens.list_tokens()}
        assert status == {
            active.token_id: "active",
            expired.token_id: "expired",
            revoked.token_id: "revoked",
        }


class TestVerifier:
    def test_trusts_a_found_token_for_its_ttl(self, tokens: TokenStore) -> None:
        issued = tokens.issue("auditor")
        verifier = TokenVerifier(tokens, ttl=600)
        assert verifier.verify(issued.secret).token_id == issued.token.token_id
        tokens.revoke(issued.token.token_id)
        assert verifier.verify(issued.secret).token_id == issued.token.token_id  # cached
        with pytest.raises(AuthenticationError):
            TokenVerifier(tokens, ttl=0).verify(issued.secret)

    def test_still_checks_expiry_of_a_cached_token(self, tokens: TokenStore) -> None:
        issued = tokens.issue("auditor", lifetime=timedelta(days=1))
        verifier = TokenVerifier(tokens, ttl=600)
        verifier.verify(issued.secret)
        with pytest.raises(AuthenticationError) as info:
            verifier.verify(issued.secret, now=datetime.now(UTC) + timedelta(days=2))
        assert info.value.code == "TOKEN_EXPIRED"

    def test_does_not_remember_unknown_secrets(self, tokens: TokenStore) -> None:
        verifier = TokenVerifier(tokens, ttl=600)
        with pytest.raises(AuthenticationError):
            verifier.verify("pe_" + "A" * 43)
        issued = tokens.issue("auditor")
        assert verifier.verify(issued.secret).role == "auditor"


# -- the command line -----------------------------------------------------------------------


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PRACTICE_EVENTS_")}


def tokens_cli(store_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``practice-events tokens …`` against ``store_url``."""
    return subprocess.run(
        [*CLI, "tokens", *args, "--store", store_url],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
        check=False,
    )


class TestTokensCommand:
    def test_creates_lists_and_revokes_tokens_that_a_live_server_honours(
        self, store_url: str
    ) -> None:
        created = tokens_cli(
            store_url, "create", "--role", "producer", "--source", "urn:app:*", "--json"
        )
        assert created.returncode == 0, created.stderr
        token = orjson.loads(created.stdout)
        assert token["role"] == "producer"
        assert token["sources"] == ["urn:app:*"]
        secret = token["token"]

        listed = tokens_cli(store_url, "list", "--json")
        assert listed.returncode == 0, listed.stderr
        assert secret not in listed.stdout
        [row] = orjson.loads(listed.stdout)
        assert (row["id"], row["status"]) == (token["id"], "active")

        with live_server(Settings(store=store_url), open_early=False) as live:
            url = f"{live.url}/v1/events"
            headers = {"content-type": CE_JSON, "authorization": f"Bearer {secret}"}
            event = orjson.dumps(centre(source="urn:app:checkin"))
            assert httpx.post(url, content=event, headers=headers).status_code == 202

            revoked = tokens_cli(store_url, "revoke", token["id"])
            assert revoked.returncode == 0, revoked.stderr
            assert revoked.stdout.startswith(f"revoked {token['id']} (producer) at ")

            refused = httpx.post(url, content=event, headers=headers)
            assert refused.status_code == 401
            assert refused.json()["code"] == "TOKEN_REVOKED"

        listed = orjson.loads(tokens_cli(store_url, "list", "--json").stdout)
        assert [r["status"] for r in listed] == ["revoked"]

    def test_prints_only_the_secret_on_stdout(self, sqlite_url: str) -> None:
        created = tokens_cli(sqlite_url, "create", "--role", "station_supervisor", "--unit", "S-1")
        assert created.returncode == 0, created.stderr
        secret = created.stdout.strip()
        assert secret.startswith("pe_")
        assert len(secret) == 46
        assert "shown only this once" in created.stderr
        assert "station_supervisor, unit S-1" in created.stderr

    def test_lists_tokens_as_a_table(self, sqlite_url: str) -> None:
        tokens_cli(sqlite_url, "create", "--role", "auditor")
        listed = tokens_cli(sqlite_url, "list")
        lines = listed.stdout.strip().splitlines()
        assert lines[0].split()[:3] == ["ID", "ROLE", "STATUS"]
        assert "auditor" in lines[1]
        assert "active" in lines[1]

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["create", "--role", "producer"], "needs at least one --source"),
            (["create", "--role", "station_supervisor"], "needs --unit"),
            (["create", "--role", "auditor", "--source", "urn:x"], "takes no --source"),
            (["revoke", "tok_nobody"], "no token has id 'tok_nobody'"),
        ],
    )
    def test_explains_bad_usage_in_one_line_with_exit_code_2(
        self, sqlite_url: str, args: list[str], message: str
    ) -> None:
        done = tokens_cli(sqlite_url, *args)
        assert done.returncode == 2
        assert "Traceback" not in done.stderr
        [line] = done.stderr.strip().splitlines()
        assert line.startswith("practice-events: ")
        assert message in line

    @pytest.mark.parametrize(
        "args",
        [
            ["create", "--role", "janitor"],
            ["create", "--role", "auditor", "--expires-in", "0"],
            ["create", "--role", "auditor", "--expires-in", "soon"],
        ],
    )
    def test_refuses_bad_arguments_with_exit_code_2(self, sqlite_url: str, args: list[str]) -> None:
        done = tokens_cli(sqlite_url, *args)
        assert done.returncode == 2
        assert "Traceback" not in done.stderr

    def test_accepts_several_sources_and_a_lifetime(self, sqlite_url: str) -> None:
        created = tokens_cli(
            sqlite_url,
            "create",
            "--role",
            "producer",
            "--source",
            "urn:a",
            "urn:b:*",
            "--source",
            "urn:c",
            "--expires-in",
            "30",
            "--json",
        )
        token = orjson.loads(created.stdout)
        assert token["sources"] == ["urn:a", "urn:b:*", "urn:c"]
        lifetime = datetime.fromisoformat(token["expires_at"]) - datetime.fromisoformat(
            token["created_at"]
        )
        assert lifetime == timedelta(days=30)
