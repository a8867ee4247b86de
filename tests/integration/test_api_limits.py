"""Access at the edges: bad credentials, other producers' sources, request-rate limits, headers.

Real HTTP against the served demo district of ``tests.factories_read_api``
(SQLite; the rules under test do not depend on the store). What the access
matrix (``test_api_access_matrix.py``) does not cover:

* expired, revoked, altered and malformed tokens on the read endpoints
  (401 with the right code, the secret never echoed);
* a producer posting events for a source it is not bound to: refused, and
  nothing lands in the other producer's rejections;
* per-token request-rate limits (``practice_events.api.ratelimit``): a spent
  burst answers 429 ``RATE_LIMITED`` with a ``Retry-After`` that is enough
  to wait; one token's flood leaves other tokens alone; requests without a
  valid token count against their client address; probes are never limited;
* the dashboard's security headers and a page with no inline script or style.

The rate tests swap the running server's limiter for one with small limits
(and put the generous one back afterwards), so the session's shared server
is reused rather than built again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import httpx
import orjson
import pytest

from practice_events.api.ratelimit import RateLimiter, RatePolicy
from tests.factories_read_api import (
    INSTITUTE,
    OTHER_SOURCE,
    PERIOD,
    PRODUCER_SOURCE,
    ReadApiEnv,
    read_api_env,
)

__all__ = ["read_api_env"]

SQLITE_ONLY = pytest.mark.parametrize("read_api_env", ["sqlite"], indirect=True)
"""The served district on SQLite only: none of this depends on the store."""

READ_PATHS = (
    f"/v1/units/{INSTITUTE}/scorecard?period={PERIOD}",
    "/v1/findings?limit=5",
    "/v1/findings?format=csv&limit=5",
)
"""A unit endpoint, a list and an export."""


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Check an RFC 9457 answer with this status and code; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert (body["status"], body["code"]) == (status, code), body
    assert body["detail"]
    return body


def get(env: ReadApiEnv, path: str, secret: str | None = None, **headers: str) -> httpx.Response:
    """GET ``path`` with a raw bearer secret (or none)."""
    if secret is not None:
        headers["Authorization"] = f"Bearer {secret}"
    return httpx.get(env.url + path, headers=headers, timeout=30)


@SQLITE_ONLY
class TestCredentialsOnReads:
    @pytest.mark.parametrize("path", READ_PATHS)
    def test_an_altered_token_is_invalid_and_never_echoed(
        self, read_api_env: ReadApiEnv, path: str
    ) -> None:
        genuine = read_api_env.tokens["district"]
        altered = genuine[:-1] + ("A" if genuine[-1] != "A" else "B")
        response = get(read_api_env, path, altered)
        problem(response, 401, "INVALID_TOKEN")
        assert altered not in response.text
        assert genuine not in response.text
        assert 'error="invalid_token"' in response.headers["www-authenticate"]

    @pytest.mark.parametrize("path", READ_PATHS)
    def test_an_expired_token_says_so(self, read_api_env: ReadApiEnv, path: str) -> None:
        tokens = read_api_env.server.runtime_or_fail().tokens
        long_ago = datetime.now(UTC) - timedelta(days=91)
        expired = tokens.issue("district_supervisor", unit="WLY", now=long_ago)
        body = problem(get(read_api_env, path, expired.secret), 401, "TOKEN_EXPIRED")
        assert expired.token.token_id in body["detail"]

    def test_a_revoked_token_stops_working_at_once(self, read_api_env: ReadApiEnv) -> None:
        tokens = read_api_env.server.runtime_or_fail().tokens
        issued = tokens.issue("institute_supervisor", unit=INSTITUTE)
        for path in READ_PATHS:
            assert get(read_api_env, path, issued.secret).status_code == 200, path
        tokens.revoke(issued.token.token_id)
        for path in READ_PATHS:
            problem(get(read_api_env, path, issued.secret), 401, "TOKEN_REVOKED")

    @pytest.mark.parametrize(
        "header", ["", "Bearer", "Token pe_abc", "Basic dXNlcjpwYXNz", "pe_notbearer"]
    )
    def test_a_missing_or_malformed_header_is_unauthenticated(
        self, read_api_env: ReadApiEnv, header: str
    ) -> None:
        headers = {"Authorization": header} if header else {}
        response = get(read_api_env, READ_PATHS[0], **headers)
        problem(response, 401, "UNAUTHENTICATED")
        assert response.headers["www-authenticate"].startswith("Bearer")


@SQLITE_ONLY
class TestForeignSources:
    def test_a_producer_cannot_post_for_a_source_it_does_not_own(
        self, read_api_env: ReadApiEnv
    ) -> None:
        env = read_api_env
        before = env.get("other_producer", "/v1/rejections?limit=500").json()["items"]
        foreign = {
            "specversion": "1.0",
            "id": "foreign-1",
            "source": OTHER_SOURCE,
            "type": "practice.site.registered.v1",
            "subject": "X-FOREIGN",
            "time": "2025-01-05T09:00:00+08:00",
            "data": {"level": "castle"},
        }
        answer = env.post_events("producer", [foreign])
        assert [(r["status"], r.get("code")) for r in answer["results"]] == [
            ("rejected", "SOURCE_NOT_ALLOWED")
        ]
        assert PRODUCER_SOURCE in answer["results"][0]["reason"]
        with env.client("producer", **{"content-type": "application/cloudevents+json"}) as http:
            single = http.post("/v1/events", content=orjson.dumps({**foreign, "id": "foreign-2"}))
        problem(single, 403, "SOURCE_NOT_ALLOWED")
        after = env.get("other_producer", "/v1/rejections?limit=500").json()["items"]
        assert after == before, "another producer's rejections must not be writable"
        assert env.get("producer", f"/v1/rejections?source={OTHER_SOURCE}").status_code == 403


@contextmanager
def limits(
    env: ReadApiEnv, *, query: tuple[float, int], ingest: tuple[float, int] = (0, 1)
) -> Iterator[RateLimiter]:
    """Serve with these (per second, burst) limits until the block ends."""
    runtime = env.server.runtime_or_fail()
    generous = runtime.limiter
    small = RateLimiter({"query": RatePolicy(*query), "ingest": RatePolicy(*ingest)})
    runtime.limiter = small
    try:
        yield small
    finally:
        runtime.limiter = generous


def spend(call: Any, most: int) -> tuple[list[int], httpx.Response]:
    """Call until the first 429 (at most ``most`` times); the statuses before it and the 429."""
    statuses: list[int] = []
    for _ in range(most):
        response = call()
        if response.status_code == 429:
            return statuses, response
        statuses.append(response.status_code)
    pytest.fail(f"no 429 within {most} requests: {statuses}")


def retry_after(response: httpx.Response) -> int:
    """The 429's Retry-After (whole seconds), checked against its problem document."""
    body = problem(response, 429, "RATE_LIMITED")
    seconds = int(response.headers["retry-after"])
    assert seconds >= 1
    assert body["retry_after_seconds"] == seconds
    return seconds


@SQLITE_ONLY
class TestRateLimits:
    def test_a_spent_burst_answers_429_until_retry_after_has_passed(
        self, read_api_env: ReadApiEnv
    ) -> None:
        env = read_api_env
        path, secret = READ_PATHS[0], env.tokens["district"]
        with limits(env, query=(1.0, 3)) as limiter:
            started = time.monotonic()
            allowed, refused = spend(lambda: get(env, path, secret), 20)
            elapsed = time.monotonic() - started
            # The burst, plus what refilled while the requests ran; never less than the burst.
            assert set(allowed) == {200}
            assert 3 <= len(allowed) <= 3 + int(elapsed * 1.0) + 1
            seconds = retry_after(refused)
            body = refused.json()
            assert (body["bucket"], body["limited_by"], body["burst"]) == ("query", "token", 3)
            assert seconds <= 1, "one unit refills in 1 s at 1 a second"
            assert secret not in refused.text
            time.sleep(seconds)
            assert get(env, path, secret).status_code == 200
            assert limiter.refused >= 1

    def test_retry_after_grows_with_a_slower_rate_and_is_enough(
        self, read_api_env: ReadApiEnv
    ) -> None:
        env = read_api_env
        path, secret = READ_PATHS[1], env.tokens["auditor"]
        with limits(env, query=(0.4, 1)):
            assert get(env, path, secret).status_code == 200
            first = retry_after(get(env, path, secret))
            assert 2 <= first <= 3, "a unit takes 2.5 s at 0.4 a second"
            time.sleep(1.0)
            later = retry_after(get(env, path, secret))  # refused requests take nothing
            assert later < first
            time.sleep(later)
            assert get(env, path, secret).status_code == 200

    def test_one_tokens_flood_leaves_other_tokens_alone(self, read_api_env: ReadApiEnv) -> None:
        env = read_api_env
        with limits(env, query=(0.5, 2), ingest=(0.5, 2)):
            spend(lambda: get(env, READ_PATHS[0], env.tokens["district"]), 20)
            assert get(env, READ_PATHS[0], env.tokens["district"]).status_code == 429
            for role in ("institute", "auditor"):
                assert get(env, READ_PATHS[0], env.tokens[role]).status_code == 200, role
            # A producer's posts draw on its own ingest bucket, not on the readers'.
            answer = env.post_events("producer", [])
            assert answer["accepted"] == 0
            # ... and its flood of posts leaves the other producer posting.
            batch = {"content-type": "application/cloudevents-batch+json"}
            with env.client("producer", **batch) as http:
                _, refused = spend(lambda: http.post("/v1/events:batch", content=b"[]"), 20)
            assert refused.json()["bucket"] == "ingest"
            with env.client("other_producer", **batch) as http:
                assert http.post("/v1/events:batch", content=b"[]").status_code == 200

    def test_a_refused_post_is_not_read_or_stored(self, read_api_env: ReadApiEnv) -> None:
        env = read_api_env
        store = env.server.runtime_or_fail().store
        event = {
            "specversion": "1.0",
            "source": PRODUCER_SOURCE,
            "type": "practice.site.registered.v1",
            "subject": "X-LIMITED",
            "time": "2025-01-05T09:00:00+08:00",
            "data": {"level": "castle"},
        }
        headers = {"content-type": "application/cloudevents+json"}
        with limits(env, query=(0, 1), ingest=(0.1, 1)), env.client("producer", **headers) as http:
            spent = http.post("/v1/events", content=b"x", headers={"content-type": "text/plain"})
            assert spent.status_code == 415  # took the one unit, stored nothing
            head = store.last_position()
            refused = http.post("/v1/events", content=orjson.dumps({**event, "id": "limited-1"}))
            assert retry_after(refused) >= 5, "a unit takes 10 s at 0.1 a second"
            assert store.last_position() == head
        why = env.get("producer", "/v1/rejections/why?event_id=limited-1").json()
        assert why["refusals"] == [], "a 429 is not a rejection of the event"

    def test_requests_without_a_valid_token_count_against_their_address(
        self, read_api_env: ReadApiEnv
    ) -> None:
        env = read_api_env
        genuine = env.tokens["station"]
        altered = genuine[:-1] + ("A" if genuine[-1] != "A" else "B")
        guesser = {"X-Forwarded-For": "203.0.113.7"}  # uvicorn trusts it from 127.0.0.1
        with limits(env, query=(0.5, 3)):
            statuses, refused = spend(lambda: get(env, READ_PATHS[0], altered, **guesser), 20)
            assert set(statuses) == {401}
            assert refused.json()["limited_by"] == "address"
            retry_after(refused)
            # The guesser's address is spent for everything without a valid token ...
            assert get(env, "/", **guesser).status_code == 429
            assert get(env, READ_PATHS[0], **guesser).status_code == 429
            # ... but a valid token from the same address has its own bucket,
            assert get(env, READ_PATHS[1], genuine, **guesser).status_code == 200
            # another address is not affected,
            problem(get(env, READ_PATHS[0], altered), 401, "INVALID_TOKEN")
            # and probes are never limited.
            for probe in ("/healthz", "/readyz", "/metrics"):
                assert get(env, probe, **guesser).status_code == 200, probe


class _PageAudit(HTMLParser):
    """Collects what a strict CSP would block or what would need 'unsafe-inline'."""

    def __init__(self) -> None:
        super().__init__()
        self.inline_scripts = 0
        self.style_elements = 0
        self.style_attributes: list[str] = []
        self.handlers: list[str] = []
        self.script_urls: list[str] = []
        self.linked: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        for name, value in attrs:
            if name.startswith("on"):
                self.handlers.append(f"<{tag} {name}>")
            if name == "style":
                self.style_attributes.append(f"<{tag}>")
            if value and value.strip().lower().startswith("javascript:"):
                self.script_urls.append(f"<{tag} {name}>")
        if tag == "script":
            if named.get("src"):
                self.linked.append(str(named["src"]))
            else:
                self._in_script = True
        if tag == "style":
            self.style_elements += 1
        if tag == "link" and named.get("href"):
            self.linked.append(str(named["href"]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts += 1


def directives(csp: str) -> dict[str, list[str]]:
    """A Content-Security-Policy header as {directive: sources}."""
    out: dict[str, list[str]] = {}
    for part in csp.split(";"):
        words = part.split()
        if words:
            out[words[0].lower()] = words[1:]
    return out


@SQLITE_ONLY
class TestDashboardHeaders:
    def test_the_page_has_no_inline_code_and_a_policy_that_allows_none(
        self, read_api_env: ReadApiEnv
    ) -> None:
        page = get(read_api_env, "/")
        assert page.status_code == 200
        audit = _PageAudit()
        audit.feed(page.text)
        assert audit.inline_scripts == 0
        assert audit.style_elements == 0
        assert audit.style_attributes == []
        assert audit.handlers == []
        assert audit.script_urls == []
        assert audit.linked, "the page loads its scripts and styles from files"
        assert all(url.startswith("/dashboard/") for url in audit.linked), audit.linked

        csp = page.headers["content-security-policy"]
        assert "unsafe-inline" not in csp
        assert "unsafe-eval" not in csp
        policy = directives(csp)
        assert policy["default-src"] == ["'none'"]
        assert policy["script-src"] == ["'self'"]
        assert policy["style-src"] == ["'self'"]
        assert policy["frame-ancestors"] == ["'none'"]
        assert policy["base-uri"] == ["'none'"]
        for source in (s for sources in policy.values() for s in sources):
            assert source in ("'self'", "'none'", "data:"), f"{source} opens the page up"

    @pytest.mark.parametrize(
        ("path", "status"),
        [
            ("/", 200),
            ("/dashboard/app.js", 200),
            ("/dashboard/app.css", 200),
            ("/dashboard/config.json", 200),
            ("/dashboard/demo-token", 404),
            ("/dashboard/no-such-file.js", 404),
        ],
    )
    def test_every_dashboard_answer_carries_the_security_headers(
        self, read_api_env: ReadApiEnv, path: str, status: int
    ) -> None:
        response = get(read_api_env, path)
        assert response.status_code == status
        page_csp = get(read_api_env, "/").headers["content-security-policy"]
        assert response.headers["content-security-policy"] == page_csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"


def route_count(env: ReadApiEnv, route: str) -> int:
    """Requests /metrics has counted for ``route`` (a template) with status 200."""
    text = get(env, "/metrics").text
    needle = f'practice_events_http_requests_total{{method="GET",route="{route}",status="200"}} '
    for line in text.splitlines():
        if line.startswith(needle):
            return int(line.removeprefix(needle))
    return 0


@SQLITE_ONLY
class TestReusedAnswers:
    """Answers given again before routing (``projections.http.answers``) never cross callers."""

    def test_a_reused_answer_is_the_routes_answer_and_is_counted_under_its_route(
        self, read_api_env: ReadApiEnv
    ) -> None:
        env = read_api_env
        template = "/v1/units/{unit_id}/scorecard"
        path = f"/v1/units/{INSTITUTE}/scorecard?period={PERIOD}&format=csv"
        secret = env.tokens["institute"]
        before = route_count(env, template)
        first = get(env, path, secret, **{"accept-language": "en"})
        again = [get(env, path, secret, **{"accept-language": "en"}) for _ in range(3)]
        assert first.status_code == 200
        for response in again:
            assert response.status_code == 200
            assert response.content == first.content
            for header in ("content-type", "content-language", "content-disposition"):
                assert response.headers.get(header) == first.headers.get(header), header
        assert route_count(env, template) == before + 4
        chinese = get(env, path, secret, **{"accept-language": "zh-CN"})
        assert chinese.content != first.content, "the language is part of the question"

    def test_another_unit_of_the_same_role_gets_its_own_answer(
        self, read_api_env: ReadApiEnv
    ) -> None:
        env = read_api_env
        path = f"/v1/units/{INSTITUTE}/closed-loop?period={PERIOD}"
        for _ in range(2):
            assert get(env, path, env.tokens["institute"]).status_code == 200
        for role in ("station", "other_station"):
            response = get(env, path, env.tokens[role])
            problem(response, 404, "NOT_FOUND")

    def test_a_revoked_or_expired_token_never_gets_a_kept_answer(
        self, read_api_env: ReadApiEnv
    ) -> None:
        env = read_api_env
        tokens = env.server.runtime_or_fail().tokens
        path = f"/v1/findings?unit={INSTITUTE}&limit=7"
        issued = tokens.issue("institute_supervisor", unit=INSTITUTE)
        for _ in range(2):
            assert get(env, path, issued.secret).status_code == 200
        tokens.revoke(issued.token.token_id)
        problem(get(env, path, issued.secret), 401, "TOKEN_REVOKED")
        long_ago = datetime.now(UTC) - timedelta(days=91)
        expired = tokens.issue("institute_supervisor", unit=INSTITUTE, now=long_ago)
        problem(get(env, path, expired.secret), 401, "TOKEN_EXPIRED")
        assert get(env, path, env.tokens["institute"]).status_code == 200

    def test_a_question_with_min_position_always_goes_to_the_route(
        self, read_api_env: ReadApiEnv
    ) -> None:
        env = read_api_env
        path = f"/v1/units/{INSTITUTE}/scorecard?period={PERIOD}"
        secret = env.tokens["district"]
        for _ in range(2):
            assert get(env, path, secret).status_code == 200
        beyond = str(2**40)  # past the log's end: only the route can tell
        problem(get(env, f"{path}&min_position={beyond}", secret), 400, "UNKNOWN_POSITION")
        problem(get(env, f"{path}&min%5Fposition={beyond}", secret), 400, "UNKNOWN_POSITION")
        problem(get(env, path, secret, **{"x-min-position": beyond}), 400, "UNKNOWN_POSITION")
        problem(get(env, path, secret, **{"x-min-position": "soon"}), 422, "SCHEMA_VIOLATION")
        assert get(env, path, secret).status_code == 200
