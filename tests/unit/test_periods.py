"""Assessment periods in the network's time zone (Asia/Shanghai unless told otherwise).

The edges that matter: 23:30 on the last day of a month in Beijing is still
that month although UTC has not reached the evening yet, and 00:30 on the
first of a month in Beijing is already the new month although UTC is still
on the previous day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from practice_events.scoring.periods import Period

SHANGHAI = ZoneInfo("Asia/Shanghai")
CST = timezone(timedelta(hours=8))


class TestParse:
    @pytest.mark.parametrize(
        ("name", "kind", "first", "end"),
        [
            ("2024-03", "month", date(2024, 3, 1), date(2024, 4, 1)),
            ("2024-12", "month", date(2024, 12, 1), date(2025, 1, 1)),
            ("2024-02", "month", date(2024, 2, 1), date(2024, 3, 1)),
            ("2024-Q1", "quarter", date(2024, 1, 1), date(2024, 4, 1)),
            ("2024-Q4", "quarter", date(2024, 10, 1), date(2025, 1, 1)),
            ("2024-H1", "half_year", date(2024, 1, 1), date(2024, 7, 1)),
            ("2024-H2", "half_year", date(2024, 7, 1), date(2025, 1, 1)),
            ("2024", "year", date(2024, 1, 1), date(2025, 1, 1)),
        ],
    )
    def test_parses_each_kind_as_a_half_open_range(
        self, name: str, kind: str, first: date, end: date
    ) -> None:
        period = Period.parse(name)
        assert (period.first, period.end, period.name, period.kind) == (first, end, name, kind)

    @pytest.mark.parametrize(
        "name", ["2024-3", "2024-13", "2024-00", "2024-Q5", "2024-Q0", "2024-H3", "24", "", "march"]
    )
    def test_refuses_names_that_are_not_periods(self, name: str) -> None:
        with pytest.raises(ValueError, match="not a period"):
            Period.parse(name)

    def test_february_of_a_leap_year_has_29_days(self) -> None:
        period = Period.parse("2024-02")
        assert (period.end - period.first).days == 29


class TestContaining:
    def test_half_past_eleven_on_the_last_evening_of_march_in_beijing_is_march(self) -> None:
        # 23:30 on 31 March in Beijing = 15:30 UTC on 31 March: March in both, but the
        # Beijing date decides.
        moment = datetime(2024, 3, 31, 23, 30, tzinfo=SHANGHAI)
        assert Period.containing(moment, "month", SHANGHAI).name == "2024-03"
        assert Period.containing(moment, "quarter", SHANGHAI).name == "2024-Q1"

    def test_half_past_midnight_on_the_first_of_april_in_beijing_is_april_though_utc_says_march(
        self,
    ) -> None:
        # 00:30 on 1 April in Beijing = 16:30 UTC on 31 March.
        moment = datetime(2024, 3, 31, 16, 30, tzinfo=UTC)
        assert Period.containing(moment, "month", SHANGHAI).name == "2024-04"
        assert Period.containing(moment, "quarter", SHANGHAI).name == "2024-Q2"
        assert Period.containing(moment, "month", UTC).name == "2024-03"

    def test_the_last_evening_of_the_year_is_that_year_in_every_kind(self) -> None:
        moment = datetime(2024, 12, 31, 23, 30, tzinfo=CST)
        names = [
            Period.containing(moment, kind, SHANGHAI).name
            for kind in ("month", "quarter", "half_year", "year")
        ]
        assert names == ["2024-12", "2024-Q4", "2024-H2", "2024"]

    def test_midnight_starting_the_new_year_belongs_to_it(self) -> None:
        moment = datetime(2025, 1, 1, 0, 0, tzinfo=CST)
        assert Period.containing(moment, "year", SHANGHAI).name == "2025"
        assert Period.containing(moment, "half_year", SHANGHAI).name == "2025-H1"

    def test_refuses_a_naive_time_instead_of_guessing_its_zone(self) -> None:
        with pytest.raises(ValueError, match="naive"):
            Period.containing(datetime(2024, 3, 31, 23, 30), "month", SHANGHAI)
        with pytest.raises(ValueError, match="naive"):
            Period.parse("2024-03").contains(datetime(2024, 3, 31, 23, 30), SHANGHAI)

    def test_of_date_maps_a_local_date_to_its_period(self) -> None:
        assert Period.of_date(date(2024, 6, 30), "half_year").name == "2024-H1"
        assert Period.of_date(date(2024, 7, 1), "half_year").name == "2024-H2"
        assert Period.of_date(date(2024, 9, 30), "quarter").name == "2024-Q3"


class TestBounds:
    def test_start_and_end_instants_are_local_midnights(self) -> None:
        march = Period.parse("2024-03")
        assert march.start_at(SHANGHAI) == datetime(2024, 2, 29, 16, 0, tzinfo=UTC)
        assert march.end_at(SHANGHAI) == datetime(2024, 3, 31, 16, 0, tzinfo=UTC)

    def test_contains_is_half_open(self) -> None:
        march = Period.parse("2024-03")
        last_minute = datetime(2024, 3, 31, 23, 59, tzinfo=SHANGHAI)
        next_midnight = datetime(2024, 4, 1, 0, 0, tzinfo=SHANGHAI)
        first_midnight = datetime(2024, 3, 1, 0, 0, tzinfo=SHANGHAI)
        assert march.contains(last_minute, SHANGHAI)
        assert march.contains(first_midnight, SHANGHAI)
        assert not march.contains(next_midnight, SHANGHAI)


class TestSequences:
    def test_months_of_a_quarter_a_half_and_a_year(self) -> None:
        assert [m.name for m in Period.parse("2024-Q3").months()] == [
            "2024-07",
            "2024-08",
            "2024-09",
        ]
        assert len(Period.parse("2024-H2").months()) == 6
        assert [m.name for m in Period.parse("2024").months()][::11] == ["2024-01", "2024-12"]
        assert [m.name for m in Period.parse("2024-05").months()] == ["2024-05"]

    @pytest.mark.parametrize(
        ("name", "previous"),
        [
            ("2024-01", "2023-12"),
            ("2024-03", "2024-02"),
            ("2024-Q1", "2023-Q4"),
            ("2024-Q3", "2024-Q2"),
            ("2024-H1", "2023-H2"),
            ("2024-H2", "2024-H1"),
            ("2024", "2023"),
        ],
    )
    def test_previous_crosses_year_ends(self, name: str, previous: str) -> None:
        assert Period.parse(name).previous().name == previous

    def test_trailing_lists_oldest_first_and_ends_with_itself(self) -> None:
        names = [p.name for p in Period.parse("2024-02").trailing(4)]
        assert names == ["2023-11", "2023-12", "2024-01", "2024-02"]
        assert [p.name for p in Period.parse("2024-Q2").trailing(3)] == [
            "2023-Q4",
            "2024-Q1",
            "2024-Q2",
        ]
        assert [p.name for p in Period.parse("2024").trailing(1)] == ["2024"]

    def test_periods_order_by_their_first_day(self) -> None:
        periods = sorted(Period.parse(n) for n in ("2024-04", "2023-12", "2024-01"))
        assert [p.name for p in periods] == ["2023-12", "2024-01", "2024-04"]
