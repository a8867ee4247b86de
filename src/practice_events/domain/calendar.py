"""The working-day calendar that SLA due times are counted on.

Time limits in Chinese administrative practice are counted in *working days*
(工作日): Monday to Friday, minus the public holidays (法定节假日) that the
State Council General Office announces each year, plus the weekend days that
the same notice turns into working days (调休上班, "make-up working days").
A finding fed back on the Friday before the Spring Festival has far fewer
working hours in its first week than one fed back in March, and a supervisor
who compared them in calendar days would be unfair to the unit.

Conventions (the 12345 hotline's rule, "N working days from the day after
receipt", 自受理之日的次日起计算):

* :meth:`WorkingCalendar.add_working_days` counts working days starting from
  the day *after* the local date of ``start`` and returns the **end** of the
  n-th one (23:59:59.999999 local time). A finding fed back at 16:00 on a
  Monday with a budget of 1 working day is due at the end of Tuesday; fed
  back on a Saturday, it is due at the end of Monday. ``n = 0`` means the end
  of the start's own local day ("same day").
* :meth:`WorkingCalendar.working_days_between` is its inverse: the number of
  working days ``d`` with ``local_date(a) < d <= local_date(b)``.
* :meth:`WorkingCalendar.add_hours` adds calendar (not working) hours; it is
  used for the critical severity, where a safety problem cannot wait for
  Monday.

Dates are taken in the calendar's time zone (by default the network's,
``Asia/Shanghai``), never in UTC: 23:30 on a Friday in Beijing is Friday.

The holiday data is a TOML file (see :func:`load_calendar`); a built-in one
with China's official arrangements for 2021-2026 ships in ``domain/data``.
"""

from __future__ import annotations

import tomllib
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from practice_events.errors import ConfigurationError

END_OF_DAY = time(23, 59, 59, 999_999)
"""A due time counted in working days falls at the very end of its local day."""

BUILTIN_CALENDAR = "cn_public_holidays.toml"
"""The file name of the built-in calendar inside ``practice_events.domain.data``."""

_ONE_DAY = timedelta(days=1)
_MAX_SEARCH_DAYS = 3660
"""Give up looking for the n-th working day after ten years (a calendar without working days)."""


@dataclass(frozen=True)
class WorkingCalendar:
    """Which local dates are working days, and due-time arithmetic on them.

    ``holidays`` are days off (public holidays and the days moved next to
    them); ``workdays`` are weekend days that are working days (调休上班). A
    date in ``workdays`` is a working day even if it is also listed as a
    holiday, but :func:`load_calendar` refuses such a contradiction.
    """

    tz: ZoneInfo
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()
    _off_weekdays: tuple[date, ...] = field(init=False, repr=False, compare=False)
    _working_weekends: tuple[date, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Pre-sort the exceptions to the Monday-Friday rule for O(log n) counting."""
        off = tuple(sorted(d for d in self.holidays if d.weekday() < 5 and d not in self.workdays))
        extra = tuple(sorted(d for d in self.workdays if d.weekday() >= 5))
        object.__setattr__(self, "_off_weekdays", off)
        object.__setattr__(self, "_working_weekends", extra)

    def local_date(self, moment: datetime) -> date:
        """Return the date of ``moment`` in the calendar's time zone."""
        return moment.astimezone(self.tz).date()

    def is_working_day(self, day: date) -> bool:
        """Tell whether ``day`` is a working day."""
        if day in self.workdays:
            return True
        if day in self.holidays:
            return False
        return day.weekday() < 5

    def end_of_day(self, day: date) -> datetime:
        """Return the last instant of ``day`` in the calendar's time zone."""
        return datetime.combine(day, END_OF_DAY, tzinfo=self.tz)

    def nth_working_day(self, start: date, n: int) -> date:
        """Return the n-th working day after ``start`` (``start`` itself when n is 0)."""
        if n < 0:
            msg = f"a number of working days cannot be negative, got {n}"
            raise ValueError(msg)
        return _nth_working_day(self, start, n)

    def add_working_days(self, start: datetime, n: int) -> datetime:
        """Return the end of the n-th working day after the local date of ``start``.

        ``start`` must be offset-aware. See the module docstring for the
        convention.
        """
        _require_aware(start)
        return self.end_of_day(self.nth_working_day(self.local_date(start), n))

    def add_hours(self, start: datetime, hours: float) -> datetime:
        """Return ``start`` plus ``hours`` calendar hours, in the calendar's time zone."""
        _require_aware(start)
        return (start + timedelta(hours=hours)).astimezone(self.tz)

    def working_days_between(self, a: datetime, b: datetime) -> int:
        """Return the number of working days after ``a``'s local date up to ``b``'s.

        0 when ``b`` is on or before ``a``'s local date. Counting is O(log h)
        in the number of holidays, so spans of years are cheap.
        """
        _require_aware(a)
        _require_aware(b)
        return self.count_working_days(self.local_date(a), self.local_date(b))

    def count_working_days(self, after: date, until: date) -> int:
        """Return the number of working days ``d`` with ``after < d <= until``."""
        if until <= after:
            return 0
        count = _weekdays_through(until) - _weekdays_through(after)
        count -= bisect_right(self._off_weekdays, until) - bisect_right(self._off_weekdays, after)
        count += bisect_right(self._working_weekends, until) - bisect_left(
            self._working_weekends, after + _ONE_DAY
        )
        return count


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        msg = f"due-time arithmetic needs an offset-aware time, got {moment!r}"
        raise ValueError(msg)


def _weekdays_through(day: date) -> int:
    """Return the number of Monday-Friday dates from an epoch Monday up to ``day``."""
    ordinal = day.toordinal() - 1  # date(1, 1, 1) is a Monday: ordinal 0
    weeks, rest = divmod(ordinal, 7)
    return weeks * 5 + min(rest + 1, 5)


@lru_cache(maxsize=8192)
def _nth_working_day(calendar: WorkingCalendar, start: date, n: int) -> date:
    """Walk forward from ``start`` to its n-th working day (cached: feed-backs repeat dates)."""
    day = start
    remaining = n
    steps = 0
    while remaining > 0:
        day += _ONE_DAY
        steps += 1
        if steps > _MAX_SEARCH_DAYS:
            msg = f"no {n} working days within ten years after {start}: check the calendar"
            raise ValueError(msg)
        if calendar.is_working_day(day):
            remaining -= 1
    return day


# --- Loading ----------------------------------------------------------------------------


def zone(name: str | ZoneInfo) -> ZoneInfo:
    """Return the time zone named ``name`` (ConfigurationError if unknown)."""
    if isinstance(name, ZoneInfo):
        return name
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        msg = f"unknown time zone {name!r} (use an IANA name such as Asia/Shanghai)"
        raise ConfigurationError(msg) from None


def load_calendar(path: str | Path | None, tz: str | ZoneInfo) -> WorkingCalendar:
    """Load a working calendar from a TOML file, or the built-in one when ``path`` is None.

    The file may use either or both forms::

        holidays = ["2024-01-01", "2024-02-10"]      # days off
        workdays = ["2024-02-04"]                    # weekend days that are worked

        [[holiday]]
        name = "春节"
        from = "2024-02-10"                          # or: date = "2024-02-10"
        to = "2024-02-17"                            # inclusive

        [[workday]]
        date = "2024-02-18"

    Raises :class:`~practice_events.errors.ConfigurationError` with a clear
    reason when the file cannot be read or says something impossible.
    """
    if path is None:
        text = resources.files("practice_events.domain.data").joinpath(BUILTIN_CALENDAR)
        where = f"built-in calendar {BUILTIN_CALENDAR}"
        raw = text.read_text(encoding="utf-8")
    else:
        where = f"calendar file {path}"
        try:
            raw = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            msg = f"cannot read {where}: {exc}"
            raise ConfigurationError(msg) from None
    try:
        document = tomllib.loads(raw)
    except tomllib.TOMLDecodeError as exc:
        msg = f"{where} is not valid TOML: {exc}"
        raise ConfigurationError(msg) from None
    return calendar_from_mapping(document, tz, where=where)


def calendar_from_mapping(
    document: Mapping[str, Any], tz: str | ZoneInfo, *, where: str = "calendar"
) -> WorkingCalendar:
    """Build a calendar from an already-parsed TOML document (see :func:`load_calendar`)."""
    unknown = set(document) - {"holidays", "workdays", "holiday", "workday", "source", "notes"}
    if unknown:
        msg = (
            f"{where}: unknown keys {sorted(unknown)} "
            "(expected holidays, workdays, [[holiday]], [[workday]])"
        )
        raise ConfigurationError(msg)
    holidays = set(_dates(document.get("holidays", []), where, "holidays"))
    workdays = set(_dates(document.get("workdays", []), where, "workdays"))
    holidays.update(_entries(document.get("holiday", []), where, "holiday"))
    workdays.update(_entries(document.get("workday", []), where, "workday"))
    both = sorted(holidays & workdays)
    if both:
        msg = f"{where}: {both[0].isoformat()} is listed both as a holiday and as a working day"
        raise ConfigurationError(msg)
    weekday_workdays = sorted(d for d in workdays if d.weekday() < 5)
    if weekday_workdays:
        msg = (
            f"{where}: make-up working day {weekday_workdays[0].isoformat()} is a weekday; "
            "list only weekend days under workdays"
        )
        raise ConfigurationError(msg)
    return WorkingCalendar(tz=zone(tz), holidays=frozenset(holidays), workdays=frozenset(workdays))


def _parse_date(value: Any, where: str, what: str) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    msg = f"{where}: {what} has {value!r}, which is not a date like 2024-02-10"
    raise ConfigurationError(msg)


def _dates(values: Any, where: str, what: str) -> Iterable[date]:
    if not isinstance(values, list):
        msg = f"{where}: {what} must be a list of dates"
        raise ConfigurationError(msg)
    return [_parse_date(v, where, what) for v in values]


def _entries(entries: Any, where: str, what: str) -> Iterable[date]:
    if not isinstance(entries, list):
        msg = f"{where}: [[{what}]] must be an array of tables"
        raise ConfigurationError(msg)
    days: list[date] = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            msg = f"{where}: each [[{what}]] must be a table"
            raise ConfigurationError(msg)
        if "date" in entry:
            first = last = _parse_date(entry["date"], where, what)
        elif "from" in entry:
            first = _parse_date(entry["from"], where, what)
            last = _parse_date(entry.get("to", entry["from"]), where, what)
        else:
            msg = f"{where}: [[{what}]] {dict(entry)!r} needs date = ... or from = ... to = ..."
            raise ConfigurationError(msg)
        if last < first:
            msg = f"{where}: [[{what}]] ends ({last}) before it starts ({first})"
            raise ConfigurationError(msg)
        if (last - first).days > 366:
            msg = f"{where}: [[{what}]] from {first} to {last} is longer than a year"
            raise ConfigurationError(msg)
        day = first
        while day <= last:
            days.append(day)
            day += _ONE_DAY
    return days
