"""The working-day calendar and SLA budgets: due times across weekends, holidays, make-up days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from practice_events.domain.calendar import (
    WorkingCalendar,
    calendar_from_mapping,
    load_calendar,
)
from practice_events.domain.finding import services
from practice_events.domain.sla import (
    DEFAULT_BUDGETS,
    Budget,
    SlaPolicy,
    clock_status,
    new_clock,
    outcome,
)
from practice_events.errors import ConfigurationError
from tests.factories_finding import SHANGHAI, TEST_CALENDAR, at, end_of

PLAIN = WorkingCalendar(tz=SHANGHAI)
"""Weekends only."""


class TestWorkingDays:
    def test_weekdays_work_and_weekends_rest(self) -> None:
        assert PLAIN.is_working_day(date(2024, 3, 4))  # Monday
        assert not PLAIN.is_working_day(date(2024, 3, 9))  # Saturday
        assert not PLAIN.is_working_day(date(2024, 3, 10))  # Sunday

    def test_a_holiday_rests_and_a_make_up_day_works(self) -> None:
        assert not TEST_CALENDAR.is_working_day(date(2024, 3, 8))
        assert TEST_CALENDAR.is_working_day(date(2024, 3, 16))
        assert not TEST_CALENDAR.is_working_day(date(2024, 3, 17))

    def test_the_local_date_decides_not_utc(self) -> None:
        # 23:30 on Friday 15 March in Beijing is 15:30 UTC the same day; 00:30 on
        # Saturday 16 March in Beijing is still Friday in UTC.
        saturday_early = datetime(2024, 3, 15, 16, 30, tzinfo=UTC)
        assert TEST_CALENDAR.local_date(saturday_early) == date(2024, 3, 16)


class TestAddWorkingDays:
    def test_counts_from_the_day_after_and_ends_at_the_end_of_the_day(self) -> None:
        assert TEST_CALENDAR.add_working_days(at(4, 16), 1) == end_of(5)

    def test_skips_the_weekend(self) -> None:
        assert PLAIN.add_working_days(at(1, 10), 1) == end_of(4)  # Friday → Monday

    def test_starting_on_a_weekend_counts_from_monday(self) -> None:
        assert PLAIN.add_working_days(at(2, 10), 1) == end_of(4)  # Saturday → Monday

    def test_skips_a_holiday(self) -> None:
        # Thursday 7th + 1 wd: Friday 8th is a holiday → Monday 11th.
        assert TEST_CALENDAR.add_working_days(at(7, 10), 1) == end_of(11)

    def test_counts_a_make_up_saturday(self) -> None:
        # Friday 15th + 1 wd: Saturday 16th is a make-up working day.
        assert TEST_CALENDAR.add_working_days(at(15, 10), 1) == end_of(16)
        assert PLAIN.add_working_days(at(15, 10), 1) == end_of(18)

    def test_fifteen_working_days_across_holiday_and_make_up_day(self) -> None:
        # 5,6,7 | 8H | 11..15 | 16W | 18..22 | 25
        assert TEST_CALENDAR.add_working_days(at(4, 10), 15) == end_of(25)
        assert PLAIN.add_working_days(at(4, 10), 15) == end_of(25)
        assert TEST_CALENDAR.add_working_days(at(4, 10), 4) == end_of(11)

    def test_zero_means_the_end_of_the_same_day(self) -> None:
        assert PLAIN.add_working_days(at(9, 10), 0) == end_of(9)

    def test_a_late_evening_start_belongs_to_its_local_day(self) -> None:
        late_friday = datetime(2024, 3, 1, 15, 30, tzinfo=UTC)  # 23:30 Friday in Beijing
        assert PLAIN.add_working_days(late_friday, 1) == end_of(4)

    def test_refuses_naive_times_and_negative_counts(self) -> None:
        with pytest.raises(ValueError, match="offset-aware"):
            PLAIN.add_working_days(datetime(2024, 3, 4, 9), 1)
        with pytest.raises(ValueError, match="negative"):
            PLAIN.add_working_days(at(4), -1)

    def test_a_calendar_without_working_days_fails_clearly(self) -> None:
        every_day = frozenset(date(2024, 1, 1) + timedelta(days=i) for i in range(4000))
        idle = WorkingCalendar(tz=SHANGHAI, holidays=every_day)
        with pytest.raises(ValueError, match="check the calendar"):
            idle.add_working_days(at(4), 1)


class TestAddHours:
    def test_adds_calendar_hours_through_the_night_and_weekend(self) -> None:
        assert TEST_CALENDAR.add_hours(at(8, 23), 2) == at(9, 1)
        assert TEST_CALENDAR.add_hours(at(9, 10), 24) == at(10, 10)

    def test_returns_the_calendar_zone(self) -> None:
        due = PLAIN.add_hours(datetime(2024, 3, 4, 1, 0, tzinfo=UTC), 2)
        assert due.utcoffset() == timedelta(hours=8)
        assert due == at(4, 11)


class TestWorkingDaysBetween:
    def test_is_the_inverse_of_add_working_days(self) -> None:
        start = at(1, 10)
        for n in range(0, 40):
            due = TEST_CALENDAR.add_working_days(start, n)
            assert TEST_CALENDAR.working_days_between(start, due) == n

    def test_matches_a_day_by_day_count_over_two_years(self) -> None:
        holidays = frozenset({date(2024, 3, 8), date(2024, 10, 1), date(2025, 1, 1)})
        workdays = frozenset({date(2024, 3, 16), date(2024, 9, 29)})
        cal = WorkingCalendar(tz=SHANGHAI, holidays=holidays, workdays=workdays)
        start = date(2024, 1, 1)
        for span in (0, 1, 5, 6, 7, 30, 200, 731):
            end = start + timedelta(days=span)
            expected = sum(
                cal.is_working_day(start + timedelta(days=i)) for i in range(1, span + 1)
            )
            assert cal.count_working_days(start, end) == expected, span

    def test_is_zero_backwards_and_on_the_same_day(self) -> None:
        assert PLAIN.working_days_between(at(5), at(4)) == 0
        assert PLAIN.working_days_between(at(4, 9), at(4, 18)) == 0

    def test_a_holiday_on_a_weekend_is_not_subtracted_twice(self) -> None:
        cal = WorkingCalendar(tz=SHANGHAI, holidays=frozenset({date(2024, 3, 9)}))
        assert cal.count_working_days(date(2024, 3, 8), date(2024, 3, 11)) == 1


class TestLoadCalendar:
    def test_reads_lists_and_tables(self, tmp_path: Path) -> None:
        path = tmp_path / "cal.toml"
        path.write_text(
            'holidays = ["2024-03-08"]\n'
            'workdays = ["2024-03-16"]\n'
            "[[holiday]]\n"
            'name = "test"\n'
            'from = "2024-04-04"\n'
            'to = "2024-04-06"\n'
            "[[workday]]\n"
            'date = "2024-04-07"\n',
            encoding="utf-8",
        )
        cal = load_calendar(path, "Asia/Shanghai")
        assert cal.holidays == {
            date(2024, 3, 8),
            date(2024, 4, 4),
            date(2024, 4, 5),
            date(2024, 4, 6),
        }
        assert cal.workdays == {date(2024, 3, 16), date(2024, 4, 7)}
        assert cal.tz == SHANGHAI

    def test_refuses_a_date_both_holiday_and_workday(self) -> None:
        doc = {"holidays": ["2024-03-16"], "workdays": ["2024-03-16"]}
        with pytest.raises(ConfigurationError, match="both"):
            calendar_from_mapping(doc, "Asia/Shanghai")

    def test_refuses_a_make_up_day_that_is_a_weekday(self) -> None:
        with pytest.raises(ConfigurationError, match="weekday"):
            calendar_from_mapping({"workdays": ["2024-03-15"]}, "Asia/Shanghai")

    @pytest.mark.parametrize(
        "doc",
        [
            {"holidays": ["15/03/2024"]},
            {"holidays": "2024-03-08"},
            {"holiday": [{"name": "no date"}]},
            {"holiday": [{"from": "2024-03-09", "to": "2024-03-08"}]},
            {"holiday": ["2024-03-08"]},
            {"holiday": {"date": "2024-03-08"}},
            {"holiday": [{"from": "2024-01-01", "to": "2025-06-01"}]},
            {"vacations": ["2024-03-08"]},
        ],
    )
    def test_refuses_malformed_entries(self, doc: dict[str, object]) -> None:
        with pytest.raises(ConfigurationError):
            calendar_from_mapping(doc, "Asia/Shanghai")

    def test_refuses_an_unknown_zone(self) -> None:
        with pytest.raises(ConfigurationError, match="time zone"):
            calendar_from_mapping({}, "Mars/Olympus")

    def test_refuses_a_missing_or_broken_file(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigurationError, match="cannot read"):
            load_calendar(tmp_path / "absent.toml", "Asia/Shanghai")
        broken = tmp_path / "broken.toml"
        broken.write_text("holidays = [", encoding="utf-8")
        with pytest.raises(ConfigurationError, match="TOML"):
            load_calendar(broken, "Asia/Shanghai")

    def test_the_built_in_calendar_loads_and_is_consistent(self) -> None:
        # Only structural checks: the dates themselves are the notices' business.
        cal = load_calendar(None, "Asia/Shanghai")
        assert {d.year for d in cal.holidays} >= set(range(2021, 2027))
        assert all(d.weekday() >= 5 for d in cal.workdays)
        assert not cal.holidays & cal.workdays

    def test_services_use_the_configured_file_and_zone(self, tmp_path: Path) -> None:
        path = tmp_path / "cal.toml"
        path.write_text('holidays = ["2024-03-08"]\n', encoding="utf-8")
        built = services({"timezone": "Asia/Urumqi", "calendar_file": str(path)})
        assert built["calendar"].holidays == {date(2024, 3, 8)}
        assert str(built["calendar"].tz) == "Asia/Urumqi"
        assert isinstance(built["sla"], SlaPolicy)


class TestBudgets:
    def test_parse_and_print(self) -> None:
        assert Budget.parse("24h") == Budget(24, "h")
        assert Budget.parse(" 5wd ") == Budget(5, "wd")
        assert str(Budget(15, "wd")) == "15wd"

    @pytest.mark.parametrize("text", ["", "5", "wd", "5d", "-1wd", "1.5h"])
    def test_refuses_malformed_budgets(self, text: str) -> None:
        with pytest.raises(ValueError, match="budget"):
            Budget.parse(text)

    def test_refuses_zero(self) -> None:
        with pytest.raises(ValueError, match=r"1\.\.10000"):
            Budget(0, "wd")

    def test_the_defaults_of_the_design(self) -> None:
        table = {s: tuple(str(b) for b in row.values()) for s, row in DEFAULT_BUDGETS.items()}
        assert table == {
            "critical": ("2h", "24h", "1wd"),
            "high": ("1wd", "5wd", "2wd"),
            "normal": ("2wd", "15wd", "5wd"),
            "low": ("5wd", "30wd", "10wd"),
        }

    def test_due_by_unit(self) -> None:
        assert Budget(2, "h").due(at(8, 23), TEST_CALENDAR) == at(9, 1)
        assert Budget(1, "wd").due(at(7, 10), TEST_CALENDAR) == end_of(11)

    @pytest.mark.parametrize(
        ("original", "shorter"),
        [("15wd", "7wd"), ("5wd", "2wd"), ("1wd", "1wd"), ("30wd", "15wd"), ("24h", "12h")],
    )
    def test_reopen_budget_is_half_rounded_down_at_least_one(
        self, original: str, shorter: str
    ) -> None:
        assert str(SlaPolicy().reopen_budget(Budget.parse(original))) == shorter


class TestPolicy:
    def test_refuses_a_missing_budget(self) -> None:
        with pytest.raises(ValueError, match="no verification budget for low"):
            SlaPolicy(
                budgets={
                    s: {k: v for k, v in row.items() if s != "low" or k != "verification"}
                    for s, row in DEFAULT_BUDGETS.items()
                }
            )

    def test_refuses_an_impossible_reopen_ratio(self) -> None:
        with pytest.raises(ValueError, match="reopen_ratio"):
            SlaPolicy(reopen_ratio=0)

    @pytest.mark.parametrize(("days", "level"), [(0, 0), (1, 1), (4, 1), (5, 2), (14, 2), (15, 3)])
    def test_escalation_ladder(self, days: int, level: int) -> None:
        assert SlaPolicy().escalation_level(days) == level


class TestClockStatus:
    def test_statuses(self) -> None:
        clock = new_clock(at(4).isoformat(), end_of(6).isoformat(), "2wd")
        assert clock_status(None, at(5)) == "not_started"
        assert clock_status(clock, at(6, 23)) == "running"
        assert clock_status(clock, at(7, 0)) == "breached"
        assert clock_status({**clock, "outcome": "met"}, at(20)) == "met"
        assert clock_status({**clock, "outcome": "met_late"}, at(20)) == "met_late"
        assert clock_status({**clock, "cancelled": True}, at(20)) == "cancelled"

    def test_met_exactly_at_the_due_time_is_met(self) -> None:
        assert outcome(end_of(6), end_of(6)) == "met"
        assert outcome(end_of(6) + timedelta(microseconds=1), end_of(6)) == "met_late"
