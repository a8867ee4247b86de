"""The token buckets behind 429 RATE_LIMITED, on a clock the tests move (no I/O, no sleeping)."""

from __future__ import annotations

import pytest

from practice_events.api.ratelimit import RateLimiter, RatePolicy, Throttle, bucket_class


class Clock:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def limiter(clock: Clock, query: tuple[float, int] = (2.0, 3), **kw: int) -> RateLimiter:
    return RateLimiter({"query": RatePolicy(*query), "ingest": RatePolicy(0, 1)}, clock=clock, **kw)


class TestTokenBucket:
    def test_admits_the_burst_then_refuses_with_the_time_to_the_next_unit(self) -> None:
        clock = Clock()
        limits = limiter(clock)
        assert [limits.take("query", "a") for _ in range(3)] == [None, None, None]
        refused = limits.take("query", "a")
        assert isinstance(refused, Throttle)
        assert refused.wait_seconds == pytest.approx(0.5)
        assert refused.retry_after == 1
        assert refused.first is True

    def test_refills_at_the_rate_and_never_beyond_the_burst(self) -> None:
        clock = Clock()
        limits = limiter(clock)
        for _ in range(3):
            limits.take("query", "a")
        clock.now += 0.5  # one unit back at 2 a second
        assert limits.take("query", "a") is None
        assert limits.take("query", "a") is not None
        clock.now += 3600  # an hour idle refills the burst, not 7,200 units
        assert [limits.take("query", "a") is None for _ in range(4)] == [True] * 3 + [False]

    def test_refusals_take_nothing_and_say_first_only_once(self) -> None:
        clock = Clock()
        limits = limiter(clock, query=(0.25, 1))
        assert limits.take("query", "a") is None
        first = limits.take("query", "a")
        clock.now += 1.0
        again = limits.take("query", "a")
        assert first is not None
        assert again is not None
        assert (first.first, again.first) == (True, False)
        assert first.retry_after == 4
        assert again.retry_after == 3
        clock.now += again.wait_seconds
        assert limits.take("query", "a") is None, "Retry-After is long enough"
        assert limits.refused == 2

    def test_keys_and_classes_have_their_own_buckets(self) -> None:
        clock = Clock()
        limits = RateLimiter({"query": RatePolicy(1, 1), "ingest": RatePolicy(1, 1)}, clock=clock)
        assert limits.take("query", "token:a") is None
        assert limits.take("query", "token:a") is not None
        assert limits.take("query", "token:b") is None
        assert limits.take("ingest", "token:a") is None

    def test_a_rate_of_zero_means_no_limit(self) -> None:
        limits = limiter(Clock())
        assert all(limits.take("ingest", "a") is None for _ in range(10_000))
        assert RateLimiter({"query": RatePolicy(0, 1), "ingest": RatePolicy(0, 1)}).enabled is False

    def test_forgets_the_least_recently_used_bucket_beyond_its_size(self) -> None:
        clock = Clock()
        limits = limiter(clock, query=(1, 1), max_keys=2)
        limits.take("query", "a")
        limits.take("query", "b")
        limits.take("query", "a")  # refused, but used most recently
        limits.take("query", "c")  # pushes "b" out
        assert limits.take("query", "a") is not None, "a is still remembered as spent"
        assert limits.take("query", "b") is None, "b starts afresh"


class TestBucketClass:
    @pytest.mark.parametrize(
        ("method", "path", "kind"),
        [
            ("POST", "/v1/events", "ingest"),
            ("POST", "/v1/events:batch", "ingest"),
            ("GET", "/v1/events", "query"),
            ("GET", "/v1/findings", "query"),
            ("GET", "/", "query"),
        ],
    )
    def test_posting_events_is_ingest_and_the_rest_query(
        self, method: str, path: str, kind: str
    ) -> None:
        assert bucket_class(method, path) == kind


class TestSettings:
    def test_limits_come_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from practice_events.api.app import HttpLimits

        monkeypatch.setenv("PRACTICE_EVENTS_HTTP_RATE_QUERY_PER_SECOND", "7.5")
        monkeypatch.setenv("PRACTICE_EVENTS_HTTP_RATE_QUERY_BURST", "9")
        monkeypatch.setenv("PRACTICE_EVENTS_HTTP_RATE_INGEST_PER_SECOND", "0")
        limits = HttpLimits().rate_limiter()
        assert limits.policies["query"] == RatePolicy(7.5, 9)
        assert not limits.policies["ingest"].enabled
        assert [limits.take("query", "x") is None for _ in range(10)] == [True] * 9 + [False]

    def test_defaults_limit_both_classes(self) -> None:
        from practice_events.api.app import HttpLimits

        limits = HttpLimits().rate_limiter()
        assert limits.policies["query"].enabled
        assert limits.policies["ingest"].enabled
