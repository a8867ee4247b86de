"""Assessment periods (month, quarter, half-year, year) in the network's time zone.

一月一通报、一季一讲评、半年一总结: bulletins are monthly, reviews quarterly,
summaries half-yearly, and the year closes it all. Periods are always
computed in the network's zone (Asia/Shanghai by default), never in UTC:
23:30 on 31 March in Beijing belongs to March even though it is 15:30 UTC.

Period names: ``2024-03`` (month), ``2024-Q1`` (quarter), ``2024-H1``
(half-year), ``2024`` (year).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, tzinfo
from typing import Literal

PeriodKind = Literal["month", "quarter", "half_year", "year"]

_PATTERNS: tuple[tuple[PeriodKind, re.Pattern[str]], ...] = (
    ("month", re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")),
    ("quarter", re.compile(r"^(\d{4})-Q([1-4])$")),
    ("half_year", re.compile(r"^(\d{4})-H([12])$")),
    ("year", re.compile(r"^(\d{4})$")),
)


@dataclass(frozen=True, order=True)
class Period:
    """A half-open local-date range ``[first, end)`` with its name and kind."""

    first: date
    end: date
    name: str
    kind: PeriodKind

    @classmethod
    def parse(cls, name: str) -> Period:
        """Parse ``2024-03``, ``2024-Q1``, ``2024-H1`` or ``2024`` (ValueError otherwise)."""
        for kind, pattern in _PATTERNS:
            match = pattern.match(name)
            if not match:
                continue
            year = int(match.group(1))
            if kind == "month":
                month = int(match.group(2))
                return cls(date(year, month, 1), _add_months(date(year, month, 1), 1), name, kind)
            if kind == "quarter":
                start = date(year, 3 * (int(match.group(2)) - 1) + 1, 1)
                return cls(start, _add_months(start, 3), name, kind)
            if kind == "half_year":
                start = date(year, 6 * (int(match.group(2)) - 1) + 1, 1)
                return cls(start, _add_months(start, 6), name, kind)
            return cls(date(year, 1, 1), date(year + 1, 1, 1), name, kind)
        msg = f"not a period: {name!r} (use 2024-03, 2024-Q1, 2024-H1 or 2024)"
        raise ValueError(msg)

    @classmethod
    def containing(cls, moment: datetime, kind: PeriodKind, zone: tzinfo) -> Period:
        """Return the period of ``kind`` that contains ``moment`` in ``zone``.

        ``moment`` must be offset-aware: ``astimezone`` would read a naive
        time in the machine's own zone, silently (ValueError instead).
        """
        return cls.of_date(_local_date(moment, zone), kind)

    @classmethod
    def of_date(cls, local: date, kind: PeriodKind) -> Period:
        """Return the period of ``kind`` that contains the local date ``local``."""
        if kind == "month":
            return cls.parse(f"{local.year:04d}-{local.month:02d}")
        if kind == "quarter":
            return cls.parse(f"{local.year:04d}-Q{(local.month - 1) // 3 + 1}")
        if kind == "half_year":
            return cls.parse(f"{local.year:04d}-H{1 if local.month <= 6 else 2}")
        return cls.parse(f"{local.year:04d}")

    def start_at(self, zone: tzinfo) -> datetime:
        """The first instant of the period in ``zone``."""
        return datetime.combine(self.first, time.min, tzinfo=zone)

    def end_at(self, zone: tzinfo) -> datetime:
        """The first instant after the period in ``zone``."""
        return datetime.combine(self.end, time.min, tzinfo=zone)

    def contains(self, moment: datetime, zone: tzinfo) -> bool:
        """Tell whether ``moment`` (offset-aware) falls in this period, in ``zone``."""
        return self.first <= _local_date(moment, zone) < self.end

    def months(self) -> list[Period]:
        """The months of this period, in order."""
        out = []
        current = self.first
        while current < self.end:
            out.append(Period.parse(f"{current.year:04d}-{current.month:02d}"))
            current = _add_months(current, 1)
        return out

    def previous(self) -> Period:
        """The period of the same kind just before this one."""
        step = {"month": 1, "quarter": 3, "half_year": 6, "year": 12}[self.kind]
        return Period.of_date(_add_months(self.first, -step), self.kind)

    def trailing(self, count: int) -> list[Period]:
        """This period and the ``count - 1`` before it, oldest first."""
        periods = [self]
        for _ in range(count - 1):
            periods.append(periods[-1].previous())
        return list(reversed(periods))


def _local_date(moment: datetime, zone: tzinfo) -> date:
    """The local date of an offset-aware ``moment`` in ``zone`` (ValueError if naive)."""
    if moment.utcoffset() is None:
        msg = f"naive time {moment.isoformat()}: periods need a time with an offset"
        raise ValueError(msg)
    return moment.astimezone(zone).date()


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + (day.month - 1) + months
    return date(index // 12, index % 12 + 1, 1)
