"""Pure rules of attendance: session hours, auto-close limits, points and star levels.

No aggregate lives here: attendance, hours and points are kept on the
volunteer aggregate (:mod:`practice_events.domain.volunteer`), which is the
ledger of one person. This module holds the rules that aggregate applies,
as plain functions and small frozen policies, so they can be tested and
documented on their own and swapped by configuration (the points rule is a
domain service, ``ctx.service("points")``).

Decisions taken with these rules (hours of a session, points, star levels)
are written into the emitted events, so a replay never recomputes them
under a different rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

QUARTER_HOUR_SECONDS = 900
"""Hours are credited in completed units of this many seconds (15 minutes)."""

MAX_SESSION = timedelta(hours=24)
"""The longest session that can be credited; longer ones must be auto-closed."""

MAX_SESSION_HOURS = 24.0
"""The same limit in hours, for approved hours after corrections."""

STAR_RULE_VERSION = "mca-2012"
"""The star rule: MCA 《志愿服务记录办法》 (2012), still used by most provinces."""

STAR_THRESHOLDS: tuple[float, ...] = (100.0, 300.0, 600.0, 1000.0, 1500.0)
"""Approved hours needed for ★ … ★★★★★ (index 0 is level 1)."""

DEFAULT_TIMEZONE = "Asia/Shanghai"
"""The network's time zone when the configuration does not name one."""


def credited_hours(started_at: datetime, ended_at: datetime) -> float:
    """Return the hours credited for a session: completed quarter hours, rounded down.

    Rounding down (1 h 14 min → 1.0 h) credits only service actually given,
    as MCA Order 67 asks ("actual service time"), and stops a check-in/out a
    few minutes apart from earning a quarter hour. Quarter hours are exact in
    binary floating point, so sums of credited hours never drift. The
    difference of two aware datetimes is absolute time, so a session across
    midnight or a daylight-saving change is counted correctly.
    """
    seconds = int((ended_at - started_at).total_seconds())
    if seconds < 0:
        msg = "a session cannot end before it starts"
        raise ValueError(msg)
    return (seconds // QUARTER_HOUR_SECONDS) / 4


def star_level_for(approved_hours: float) -> int:
    """Return the star level (0 … 5) that ``approved_hours`` qualify for."""
    level = 0
    for threshold in STAR_THRESHOLDS:
        if approved_hours >= threshold:
            level += 1
    return level


def levels_reached(current_level: int, approved_hours: float) -> list[tuple[int, float]]:
    """Return ``(level, threshold)`` of each level above ``current_level`` now reached.

    Levels are attained once each: the aggregate remembers the highest level
    attained and asks only about those above it.
    """
    return [
        (level, threshold)
        for level, threshold in enumerate(STAR_THRESHOLDS, start=1)
        if level > current_level and approved_hours >= threshold
    ]


def points_at(hours: float, rate: float) -> int:
    """Return ``hours × rate`` rounded half up to whole points (exact decimal arithmetic)."""
    exact = Decimal(str(hours)) * Decimal(str(rate))
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True, slots=True)
class PointsRule:
    """How approved hours turn into points: a rate per hour, under a named version.

    The default, 10 points per approved hour, is the rate of the Qufu (曲阜)
    practice centre ("4020 points = 402 hours"). A network with another rate
    configures its own rule with a new ``rule_version``; every award records
    the version and rate it used, and corrections of a session keep using the
    rate it was approved under.
    """

    points_per_hour: float = 10.0
    rule_version: str = "qufu-10-per-hour-v1"

    def __post_init__(self) -> None:
        """Refuse a rate that would award no or negative points."""
        if not self.points_per_hour > 0:
            msg = f"points_per_hour must be positive, got {self.points_per_hour}"
            raise ValueError(msg)

    def points_for(self, hours: float) -> int:
        """Return the points earned by ``hours`` approved hours under this rule."""
        return points_at(hours, self.points_per_hour)


@dataclass(frozen=True, slots=True)
class AttendancePolicy:
    """Time-zone-aware rules of attendance: local days and auto-close limits.

    Business days are days in the network's time zone (23:30 in Beijing on
    31 March is 31 March, whatever the producer's offset), so "midnight" and
    "the year of a report" are computed here, never in UTC.
    """

    zone: tzinfo

    @classmethod
    def for_timezone(cls, name: str | None) -> AttendancePolicy:
        """Build the policy for an IANA time-zone name (default Asia/Shanghai)."""
        return cls(ZoneInfo(name or DEFAULT_TIMEZONE))

    def local_date(self, moment: datetime) -> date:
        """Return the calendar day of ``moment`` in the network's time zone."""
        return moment.astimezone(self.zone).date()

    def midnight_after(self, moment: datetime) -> datetime:
        """Return the local midnight that ends the local day of ``moment``."""
        next_day = self.local_date(moment) + timedelta(days=1)
        return datetime.combine(next_day, time(0), tzinfo=self.zone)

    def auto_close_refusal(
        self, rule: str, checked_in_at: datetime, credited_until: datetime
    ) -> str | None:
        """Return why ``credited_until`` is out of range for an auto-close, or None if fine.

        Every rule credits between the check-in and 24 h after it; under
        ``midnight`` the credit also stops at the local midnight ending the
        check-in day. ``shift_end`` and ``default_duration`` depend on the
        activity, which the check-in system knows, so only the common limits
        apply to them.
        """
        if credited_until < checked_in_at:
            return (
                f"credited_until {credited_until.isoformat()} is before the check-in at "
                f"{checked_in_at.isoformat()}"
            )
        if credited_until - checked_in_at > MAX_SESSION:
            return (
                f"credited_until {credited_until.isoformat()} is more than 24 h after the "
                f"check-in at {checked_in_at.isoformat()}"
            )
        if rule == "midnight":
            midnight = self.midnight_after(checked_in_at)
            if credited_until > midnight:
                return (
                    f"under the midnight rule credited_until may not be after "
                    f"{midnight.isoformat()}, the local midnight ending the check-in day"
                )
        return None
