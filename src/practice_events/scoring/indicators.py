"""Scorecard indicators (DESIGN.md §6, research §(c)) as pure functions over fact rows.

Every indicator declares its **window** (which events count), its
**numerator** and **denominator** (what is counted over what) and its
**minimum sample** (how many cases it needs). Below the minimum it reports
``insufficient_data`` with no value: never a fake 0 % or 100 % (the
FixMyStreet #1957 lesson). A ratio whose denominator is 0 is always
insufficient, whatever the minimum.

The functions here take what the read models already aggregated (counts per
unit and month, lists of durations ...) and return an
:class:`IndicatorResult`; they do no I/O, so the formulas are unit-tested on
hand-computed cases and the projection decides only *which rows* count. The
definitions (:data:`DEFINITIONS`) are the documentation the API shows next to
each figure.

How a raw value becomes a 0..1 score (:mod:`practice_events.scoring.model`)
is described by each definition's ``scale``:

``fraction``
    the value is already a share in 0..1 (most indicators);
``target``
    a quantity that is full marks at ``details["target"]`` (hours per active
    volunteer: 8 hours per month of the period, Sahana's "active" bar);
``ceiling``
    a duration that scores nothing at ``reference`` and above (time to
    serve: 168 hours, the 12345 hotline's seven days for ordinary matters);
``share``
    a count scored by its share of ``denominator`` (overdue backlog: overdue
    findings among the findings still open at the period end).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["ok", "insufficient_data"]
"""``ok``, or ``insufficient_data`` when the sample is below the minimum."""

Direction = Literal["higher_better", "lower_better"]
"""Whether a higher raw value is better."""

Scale = Literal["fraction", "target", "ceiling", "share"]
"""How a raw value maps onto 0..1 before direction, floor and cap (module docstring)."""

HOURS_PER_ACTIVE_MONTH = 8.0
"""Approved hours per month that make an active volunteer's contribution full marks."""

SERVE_CEILING_HOURS = 168.0
"""Median time to serve (hours) at and above which the indicator scores nothing (7 days)."""

FULFILMENT_GRACE_DAYS = 30
"""Needs accepted in a period may be closed up to this many days after it and still count."""

ACTIVE_WINDOW_DAYS = 90
"""A volunteer is active with at least one approved service in this many days before the end."""

SIX_HAVES_WINDOW_MONTHS = 12
"""A site's latest six-haves assessment counts if made in this many months before the end."""

DEFAULT_BULLETIN_DAY = 5
"""The monthly bulletin is on time when first published by this day of the next month."""


@dataclass(frozen=True, slots=True)
class IndicatorDefinition:
    """What an indicator measures, in words and in the parameters of its scoring."""

    code: str
    area: str
    title: str
    window: str
    numerator: str
    denominator: str
    min_sample: int
    direction: Direction
    scale: Scale = "fraction"
    unit: str = "ratio"
    reference: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The definition as JSON-ready data (for the API and the scorecard)."""
        return {
            "code": self.code,
            "area": self.area,
            "title": self.title,
            "window": self.window,
            "numerator": self.numerator,
            "denominator": self.denominator,
            "min_sample": self.min_sample,
            "direction": self.direction,
            "scale": self.scale,
            "unit": self.unit,
            "reference": self.reference,
        }


@dataclass(frozen=True, slots=True)
class IndicatorResult:
    """One indicator's figure for one unit and period.

    ``value`` is None exactly when ``status`` is ``insufficient_data``;
    ``numerator`` and ``denominator`` are reported either way, so a reader
    sees *why* the data were insufficient. ``details`` holds secondary
    figures (the p90 beside the median, the mean rating ...).
    """

    code: str
    status: Status
    value: float | None
    numerator: float | None
    denominator: float | None
    min_sample: int
    window: str
    details: Mapping[str, Any] = field(default_factory=dict)
    note: str | None = None

    @property
    def ok(self) -> bool:
        """True when the indicator has a value."""
        return self.status == "ok"

    def as_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data."""
        return {
            "code": self.code,
            "status": self.status,
            "value": _round(self.value),
            "numerator": _round(self.numerator),
            "denominator": _round(self.denominator),
            "min_sample": self.min_sample,
            "window": self.window,
            "details": {
                k: _round(v) if isinstance(v, float) else v for k, v in self.details.items()
            },
            "note": self.note,
        }


def _round(value: float | None) -> float | None:
    if value is None:
        return None
    return round(value, 6)


def _definitions() -> dict[str, IndicatorDefinition]:
    period = "the period (local dates in the network's zone)"
    items = [
        IndicatorDefinition(
            "six_haves_compliance",
            "site",
            "Six-haves compliance (六有)",
            f"each site's latest assessment in the {SIX_HAVES_WINDOW_MONTHS} months before "
            "the period end",
            "sum over assessed sites of the weighted score Σwᵢrᵢ/Σwᵢ, with A/B/C/C# = "
            "1/0.66/0.33/0 and the weights of the checklist version used",
            "sites of the unit with such an assessment",
            1,
            "higher_better",
        ),
        IndicatorDefinition(
            "theme_compliance",
            "activities",
            "Monthly-theme compliance (一月一主题)",
            "months of the period; an activity counts in the month it starts",
            "months with at least one completed activity carrying a theme code set for that "
            "month by the activity's site or one of its ancestors",
            "months of the period for which the unit, an ancestor or a descendant set a theme",
            1,
            "higher_better",
        ),
        IndicatorDefinition(
            "activity_frequency",
            "activities",
            "Activity frequency",
            "months of the period; an activity counts in the month it starts",
            "(unit, month) pairs with at least one completed activity; activities at bases, "
            "posts and house-meeting sites count for their nearest station, institute or centre",
            "assessed units (the centre, institutes and stations within the unit) × months",
            1,
            "higher_better",
        ),
        IndicatorDefinition(
            "meeting_coverage",
            "activities",
            "House-meeting coverage (屋场会)",
            f"meetings starting in {period}",
            "house-meeting sites with at least one meeting",
            "house-meeting sites of the unit operating during the period",
            1,
            "higher_better",
        ),
        IndicatorDefinition(
            "five_step_completeness",
            "activities",
            "Five-step completeness (讲听演评办)",
            f"meetings starting in {period}",
            "meetings with all five steps logged",
            "meetings held",
            3,
            "higher_better",
        ),
        IndicatorDefinition(
            "concern_settlement",
            "activities",
            "Concerns settled (resolved on the spot or converted)",
            f"concerns raised at meetings starting in {period}",
            "concerns resolved on the spot or converted into a need or a finding",
            "concerns raised",
            1,
            "higher_better",
        ),
        IndicatorDefinition(
            "need_fulfilment",
            "needs",
            "Need fulfilment rate",
            f"needs accepted in {period}, closed up to {FULFILMENT_GRACE_DAYS} days after it",
            "those closed as fulfilled",
            "those accepted, less those withdrawn",
            5,
            "higher_better",
        ),
        IndicatorDefinition(
            "time_to_serve",
            "needs",
            "Time to serve (median; p90 in details)",
            f"needs whose first delivery falls in {period}",
            "median hours from acceptance to first delivery",
            "needs served",
            5,
            "lower_better",
            scale="ceiling",
            unit="hours",
            reference=SERVE_CEILING_HOURS,
        ),
        IndicatorDefinition(
            "redispatch_rate",
            "needs",
            "Re-dispatch rate (改派)",
            f"needs first dispatched or claimed in {period}",
            "those re-dispatched at least once",
            "needs first dispatched or claimed",
            5,
            "lower_better",
        ),
        IndicatorDefinition(
            "satisfaction",
            "needs",
            "Beneficiary satisfaction (评单)",
            f"ratings given in {period}",
            "ratings of 4 or 5",
            "ratings",
            10,
            "higher_better",
        ),
        IndicatorDefinition(
            "active_volunteers",
            "volunteers",
            "Active volunteers",
            f"approved services dated in the {ACTIVE_WINDOW_DAYS} days before the period end",
            "registered volunteers of the unit with at least one such service",
            "volunteers of the unit registered before the period end",
            1,
            "higher_better",
        ),
        IndicatorDefinition(
            "hours_per_active",
            "volunteers",
            "Approved hours per active volunteer",
            f"services dated in {period}; hours net of corrections",
            "approved hours of the unit's volunteers",
            "active volunteers (as in active_volunteers)",
            1,
            "higher_better",
            scale="target",
            unit="hours",
            reference=HOURS_PER_ACTIVE_MONTH,
        ),
        IndicatorDefinition(
            "dual_checkin_rate",
            "volunteers",
            "Officials' dual check-in rate (双报到)",
            "reports to a community made in the calendar year of the period end, up to it",
            "officials of the unit who reported to a community",
            "officials of the unit registered before the period end",
            1,
            "higher_better",
        ),
        IndicatorDefinition(
            "ack_on_time",
            "closed_loop",
            "On-time acknowledgement (及时签收率)",
            f"findings first fed back in {period} (voided ones excluded)",
            "those acknowledged by their acknowledgement due time",
            "those fed back",
            3,
            "higher_better",
        ),
        IndicatorDefinition(
            "rectify_on_time",
            "closed_loop",
            "On-time rectification (按时办结率), due-date cohort",
            f"findings whose effective rectification due time falls in {period}",
            "those rectified by it",
            "those due",
            3,
            "higher_better",
        ),
        IndicatorDefinition(
            "overdue_backlog",
            "closed_loop",
            "Overdue backlog at the period end",
            "open findings at the first instant after the period",
            "open findings past a stage's effective due time",
            "open findings",
            1,
            "lower_better",
            scale="share",
            unit="count",
        ),
        IndicatorDefinition(
            "first_pass_verification",
            "closed_loop",
            "First-pass verification",
            f"findings closed as fixed in {period}",
            "those never reopened",
            "those closed",
            3,
            "higher_better",
        ),
        IndicatorDefinition(
            "reopen_rate",
            "closed_loop",
            "Reopen rate (重办率)",
            f"reopens in {period}; closures in the period and the one before",
            "findings reopened in the period",
            "findings closed as fixed in the previous and this period",
            3,
            "lower_better",
        ),
        IndicatorDefinition(
            "return_rate",
            "closed_loop",
            "Return rate (回退率)",
            f"feed-backs and returns in {period}",
            "returns",
            "feed-backs",
            3,
            "lower_better",
        ),
        IndicatorDefinition(
            "bulletin_on_time",
            "reporting",
            "Monthly bulletin on time (一月一通报)",
            "months of the period",
            f"months whose bulletin was first published by day {DEFAULT_BULLETIN_DAY} "
            "(configurable) of the next month",
            "months of the period",
            1,
            "higher_better",
        ),
        IndicatorDefinition(
            "quarterly_review",
            "reporting",
            "Quarterly review held (一季一讲评)",
            "quarters wholly inside the period",
            "quarters with a review held",
            "quarters wholly inside the period (none in a month)",
            1,
            "higher_better",
        ),
        IndicatorDefinition(
            "half_year_summary",
            "reporting",
            "Half-year summary published (半年一总结)",
            "half-years wholly inside the period",
            "half-years with a summary published",
            "half-years wholly inside the period (none in a month or quarter)",
            1,
            "higher_better",
        ),
    ]
    return {item.code: item for item in items}


DEFINITIONS: Mapping[str, IndicatorDefinition] = _definitions()
"""Every indicator this service computes, by code (DESIGN.md §6 plus concern settlement)."""


def definition(code: str) -> IndicatorDefinition | None:
    """Return the definition of ``code``, or None for a code no formula computes."""
    return DEFINITIONS.get(code)


# --- building blocks -------------------------------------------------------------------


def _min_sample(code: str, min_sample: int | None) -> int:
    if min_sample is not None:
        return min_sample
    found = DEFINITIONS.get(code)
    return found.min_sample if found is not None else 1


def _window(code: str) -> str:
    found = DEFINITIONS.get(code)
    return found.window if found is not None else ""


def insufficient(
    code: str,
    *,
    numerator: float | None = None,
    denominator: float | None = None,
    min_sample: int | None = None,
    note: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> IndicatorResult:
    """An ``insufficient_data`` result: no value, with whatever counts are known."""
    return IndicatorResult(
        code=code,
        status="insufficient_data",
        value=None,
        numerator=numerator,
        denominator=denominator,
        min_sample=_min_sample(code, min_sample),
        window=_window(code),
        details=details or {},
        note=note,
    )


def ratio(
    code: str,
    numerator: float,
    denominator: float,
    *,
    min_sample: int | None = None,
    details: Mapping[str, Any] | None = None,
    note: str | None = None,
) -> IndicatorResult:
    """``numerator ÷ denominator``, or insufficient data below the minimum sample.

    The sample is the denominator. A denominator of 0 is insufficient even
    when the minimum is 0: a share of nothing is not 0 % or 100 %.
    """
    need = _min_sample(code, min_sample)
    if denominator <= 0 or denominator < need:
        return insufficient(
            code,
            numerator=numerator,
            denominator=denominator,
            min_sample=need,
            details=details,
            note=note or f"{_fmt(denominator)} case(s), fewer than the minimum of {max(need, 1)}",
        )
    return IndicatorResult(
        code=code,
        status="ok",
        value=numerator / denominator,
        numerator=numerator,
        denominator=denominator,
        min_sample=need,
        window=_window(code),
        details=details or {},
        note=note,
    )


def _fmt(value: float) -> str:
    return f"{value:g}"


def median(values: Sequence[float]) -> float:
    """The median: the middle value, or the mean of the two middle values."""
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        msg = "median of no values"
        raise ValueError(msg)
    mid = n // 2
    if n % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile: the smallest value with ``share`` of values at or below it.

    For ``share = 0.9`` and 10 values that is the 9th smallest; for 11
    values, the 10th (rank ⌈0.9 × 11⌉ = 10). No interpolation, so the p90
    is always a time that actually occurred.
    """
    ordered = sorted(values)
    if not ordered:
        msg = "percentile of no values"
        raise ValueError(msg)
    rank = max(1, math.ceil(share * len(ordered) - 1e-9))
    return ordered[rank - 1]


# --- site standard -----------------------------------------------------------------------


def six_haves_compliance(
    site_scores: Sequence[float], *, min_sample: int | None = None, sites_in_scope: int = 0
) -> IndicatorResult:
    """Mean weighted six-haves score of the unit's assessed sites.

    ``site_scores`` holds one 0..1 score per site with an assessment in the
    window (its latest one). Sites never assessed, or last assessed more
    than 12 months before the period end, are left out of both numerator
    and denominator: assessing is the inspectors' job, so a missing
    assessment says nothing about the site. ``sites_in_scope`` is reported
    as the coverage detail.
    """
    total = math.fsum(site_scores)
    details = {"sites_in_scope": sites_in_scope, "sites_assessed": len(site_scores)}
    return ratio(
        "six_haves_compliance",
        total,
        float(len(site_scores)),
        min_sample=min_sample,
        details=details,
    )


# --- activities ------------------------------------------------------------------------


def theme_compliance(
    theme_months: Collection[str],
    on_theme_months: Collection[str],
    *,
    min_sample: int | None = None,
) -> IndicatorResult:
    """Months with an on-theme completed activity ÷ months of the period with a theme.

    ``theme_months`` are the months (``YYYY-MM``) of the period for which a
    theme applies to the unit; ``on_theme_months`` the months with at least
    one completed activity carrying the theme. Only months with a theme
    count: a month nobody set a theme for cannot be missed.
    """
    months = set(theme_months)
    hits = months & set(on_theme_months)
    return ratio(
        "theme_compliance",
        float(len(hits)),
        float(len(months)),
        min_sample=min_sample,
        details={"months_missed": sorted(months - hits)},
    )


def activity_frequency(
    units: Collection[str],
    months: Collection[str],
    active_unit_months: Iterable[tuple[str, str]],
    *,
    min_sample: int | None = None,
) -> IndicatorResult:
    """Share of (assessed unit, month) pairs with at least one completed activity.

    The XX district rule asks stations and institutes for an activity at
    least every month; rolled up, a unit's frequency is the share of its
    assessed units' months that met the rule.
    """
    scope = {(u, m) for u in units for m in months}
    hits = scope & set(active_unit_months)
    return ratio(
        "activity_frequency",
        float(len(hits)),
        float(len(scope)),
        min_sample=min_sample,
        details={"units": len(units), "months": len(months)},
    )


def meeting_coverage(
    house_meeting_sites: Collection[str],
    sites_with_meeting: Collection[str],
    *,
    min_sample: int | None = None,
) -> IndicatorResult:
    """House-meeting sites with at least one meeting in the period ÷ house-meeting sites."""
    scope = set(house_meeting_sites)
    hits = scope & set(sites_with_meeting)
    return ratio("meeting_coverage", float(len(hits)), float(len(scope)), min_sample=min_sample)


def five_step_completeness(
    meetings_held: int, meetings_complete: int, *, min_sample: int | None = None
) -> IndicatorResult:
    """Meetings with all five steps (讲听演评办) logged ÷ meetings held in the period."""
    return ratio(
        "five_step_completeness",
        float(meetings_complete),
        float(meetings_held),
        min_sample=min_sample,
    )


def concern_settlement(
    raised: int, resolved_on_spot: int, converted: int, *, min_sample: int | None = None
) -> IndicatorResult:
    """Concerns resolved on the spot or converted ÷ concerns raised at the period's meetings."""
    return ratio(
        "concern_settlement",
        float(resolved_on_spot + converted),
        float(raised),
        min_sample=min_sample,
        details={"resolved_on_spot": resolved_on_spot, "converted": converted},
    )


# --- needs -----------------------------------------------------------------------------


def need_fulfilment(
    accepted: int, withdrawn: int, fulfilled: int, *, min_sample: int | None = None
) -> IndicatorResult:
    """Fulfilled ÷ (accepted − withdrawn) for the needs accepted in the period.

    Withdrawn needs leave the denominator (nobody could fulfil them); needs
    still open or closed as unfulfillable stay in it.
    """
    return ratio(
        "need_fulfilment",
        float(fulfilled),
        float(accepted - withdrawn),
        min_sample=min_sample,
        details={"accepted": accepted, "withdrawn": withdrawn},
    )


def time_to_serve(hours: Sequence[float], *, min_sample: int | None = None) -> IndicatorResult:
    """Median hours from acceptance to first delivery; the p90 and mean in details."""
    need = _min_sample("time_to_serve", min_sample)
    count = len(hours)
    if count == 0 or count < need:
        return insufficient(
            "time_to_serve",
            denominator=float(count),
            min_sample=need,
            note=f"{count} need(s) served, fewer than the minimum of {max(need, 1)}",
        )
    return IndicatorResult(
        code="time_to_serve",
        status="ok",
        value=median(hours),
        numerator=None,
        denominator=float(count),
        min_sample=need,
        window=_window("time_to_serve"),
        details={"p90": percentile(hours, 0.9), "mean": math.fsum(hours) / count},
    )


def redispatch_rate(
    assigned: int, redispatched: int, *, min_sample: int | None = None
) -> IndicatorResult:
    """Needs re-dispatched at least once ÷ needs first dispatched or claimed in the period."""
    return ratio("redispatch_rate", float(redispatched), float(assigned), min_sample=min_sample)


def satisfaction(
    ratings: int, good: int, rating_sum: float = 0.0, *, min_sample: int | None = None
) -> IndicatorResult:
    """Ratings of 4 or 5 ÷ ratings given in the period (at least 10); the mean in details."""
    details = {"mean": rating_sum / ratings} if ratings else {}
    return ratio(
        "satisfaction", float(good), float(ratings), min_sample=min_sample, details=details
    )


# --- volunteers ------------------------------------------------------------------------


def active_volunteers(
    registered: int, active: int, *, min_sample: int | None = None
) -> IndicatorResult:
    """Volunteers with an approved service in the 90 days before the end ÷ registered."""
    return ratio("active_volunteers", float(active), float(registered), min_sample=min_sample)


def hours_per_active(
    approved_hours: float, active: int, months: int, *, min_sample: int | None = None
) -> IndicatorResult:
    """Approved hours in the period ÷ active volunteers; full marks at 8 h × months."""
    return ratio(
        "hours_per_active",
        approved_hours,
        float(active),
        min_sample=min_sample,
        details={"target": HOURS_PER_ACTIVE_MONTH * months},
    )


def dual_checkin_rate(
    officials: int, reported: int, *, min_sample: int | None = None
) -> IndicatorResult:
    """Officials who reported to a community (双报到) this year ÷ officials of the unit."""
    return ratio("dual_checkin_rate", float(reported), float(officials), min_sample=min_sample)


# --- closed loop -----------------------------------------------------------------------


def ack_on_time(fed_back: int, on_time: int, *, min_sample: int | None = None) -> IndicatorResult:
    """Findings acknowledged by their due time ÷ findings first fed back in the period."""
    return ratio("ack_on_time", float(on_time), float(fed_back), min_sample=min_sample)


def rectify_on_time(due: int, on_time: int, *, min_sample: int | None = None) -> IndicatorResult:
    """Findings rectified by their effective due time ÷ findings due in the period."""
    return ratio("rectify_on_time", float(on_time), float(due), min_sample=min_sample)


def overdue_backlog(
    open_at_end: int,
    overdue_at_end: int,
    overdue_working_days: float | None = None,
    *,
    min_sample: int | None = None,
) -> IndicatorResult:
    """Open findings past a due time at the period end (a count; scored by its share).

    The value is the count; it is scored by the share of the findings open
    at the period end that are overdue. The sample is the open findings:
    with none open (and a minimum of 1, the default) the backlog is 0 but
    ``insufficient_data``, because "nothing to be late with" says nothing
    about timeliness and must not carry the closed-loop area's whole weight
    when its other indicators lack data too. The counts stay in the result.
    """
    need = _min_sample("overdue_backlog", min_sample)
    details: dict[str, Any] = {"open_at_end": open_at_end}
    if overdue_working_days is not None:
        details["overdue_working_days"] = overdue_working_days
    if open_at_end <= 0 or open_at_end < need:
        return insufficient(
            "overdue_backlog",
            numerator=float(overdue_at_end),
            denominator=float(open_at_end),
            min_sample=need,
            details=details,
            note=f"{open_at_end} open finding(s) at the period end, fewer than the minimum of "
            f"{max(need, 1)}",
        )
    return IndicatorResult(
        code="overdue_backlog",
        status="ok",
        value=float(overdue_at_end),
        numerator=float(overdue_at_end),
        denominator=float(open_at_end),
        min_sample=need,
        window=_window("overdue_backlog"),
        details=details,
    )


def first_pass_verification(
    closed: int, first_pass: int, *, min_sample: int | None = None
) -> IndicatorResult:
    """Findings closed as fixed in the period and never reopened ÷ findings closed as fixed."""
    return ratio("first_pass_verification", float(first_pass), float(closed), min_sample=min_sample)


def reopen_rate(
    reopened: int, closed_in_window: int, *, min_sample: int | None = None
) -> IndicatorResult:
    """Reopens in the period ÷ closures as fixed in the previous and this period."""
    return ratio("reopen_rate", float(reopened), float(closed_in_window), min_sample=min_sample)


def return_rate(fed_back: int, returned: int, *, min_sample: int | None = None) -> IndicatorResult:
    """Returns (退单) in the period ÷ feed-backs in the period."""
    return ratio("return_rate", float(returned), float(fed_back), min_sample=min_sample)


# --- reporting -------------------------------------------------------------------------


def bulletin_on_time(
    months: Collection[str], on_time_months: Collection[str], *, min_sample: int | None = None
) -> IndicatorResult:
    """Months whose bulletin appeared by day D of the next month ÷ months of the period."""
    scope = set(months)
    hits = scope & set(on_time_months)
    return ratio(
        "bulletin_on_time",
        float(len(hits)),
        float(len(scope)),
        min_sample=min_sample,
        details={"months_late_or_missing": sorted(scope - hits)},
    )


def quarterly_review(
    quarters: Collection[str], held: Collection[str], *, min_sample: int | None = None
) -> IndicatorResult:
    """Quarters with a review held ÷ quarters wholly inside the period (none in a month)."""
    scope = set(quarters)
    if not scope:
        return insufficient(
            "quarterly_review",
            numerator=0.0,
            denominator=0.0,
            min_sample=min_sample,
            note="no quarter lies wholly inside this period",
        )
    return ratio(
        "quarterly_review", float(len(scope & set(held))), float(len(scope)), min_sample=min_sample
    )


def half_year_summary(
    halves: Collection[str], published: Collection[str], *, min_sample: int | None = None
) -> IndicatorResult:
    """Half-years with a summary published ÷ half-years wholly inside the period."""
    scope = set(halves)
    if not scope:
        return insufficient(
            "half_year_summary",
            numerator=0.0,
            denominator=0.0,
            min_sample=min_sample,
            note="no half-year lies wholly inside this period",
        )
    return ratio(
        "half_year_summary",
        float(len(scope & set(published))),
        float(len(scope)),
        min_sample=min_sample,
    )
