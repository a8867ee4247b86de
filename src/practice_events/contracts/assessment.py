"""Contracts of assessment: scoring models, assessment periods, scorecards and reports.

Practice centres assess their institutes and stations per month, quarter,
half-year and year. Two aggregates carry it:

``scoring_model`` (subject: the model id, e.g. ``wly-district``)
    the versioned formulas and weights. Weights change often, so a model is
    never edited in place: ``scoring_model_published`` creates version 1 and
    each ``scoring_model_revised`` adds the next version. Every scorecard
    names the model version it was computed with.

``assessment`` (subject: ``<unit_id>:<period>``, e.g. ``S-HT:2024-03``)
    one unit's assessment for one period: opened, adjusted by recorded
    bonuses and deductions, scored by frozen scorecards, reported on, closed.

The reporting rhythm of practice networks is itself assessed:

* **一月一通报** (a bulletin every month): each month's results are published
  as a bulletin early in the next month (``bulletin_published``; month
  periods only);
* **一季一讲评** (a review every quarter): each quarter, a meeting reviews and
  ranks the units and agrees actions (``quarterly_review_held``; quarter
  periods only);
* **半年一总结** (a summary every half-year): a written half-year summary
  (``half_year_summary_published``; half-year periods only).

Periods are spelled ``2024-03`` (month), ``2024-Q1`` (quarter), ``2024-H1``
(half-year) or ``2024`` (year) and are reckoned in the network's time zone.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from practice_events.contracts.base import (
    Code,
    EventData,
    Evidence,
    Identifier,
    Month,
    ShortText,
    Text,
    contract,
)

WEIGHT_TOLERANCE = 0.01
"""How far a sum of weights may stray from its target (rounding in spreadsheets)."""

BONUS_CAP = 5.0
"""The most that recorded bonuses may add to one unit's composite in one period."""

MAX_COMPOSITE = 100.0 + BONUS_CAP
"""The highest composite score: full marks plus the bonus cap."""

PeriodKind = Literal["month", "quarter", "half_year", "year"]
"""The length of an assessment period."""

PERIOD_PATTERNS: dict[str, re.Pattern[str]] = {
    "month": re.compile(r"^\d{4}-(0[1-9]|1[0-2])$"),
    "quarter": re.compile(r"^\d{4}-Q[1-4]$"),
    "half_year": re.compile(r"^\d{4}-H[12]$"),
    "year": re.compile(r"^\d{4}$"),
}
"""How a period of each kind is spelled."""

PERIOD_EXAMPLES: dict[str, str] = {
    "month": "2024-03",
    "quarter": "2024-Q1",
    "half_year": "2024-H1",
    "year": "2024",
}
"""One correctly spelled period of each kind, for error messages."""


def period_kind(period: str) -> str | None:
    """Return the kind of a period spelled as above, or None if it matches none."""
    for kind, pattern in PERIOD_PATTERNS.items():
        if pattern.match(period):
            return kind
    return None


Position = Annotated[int, Field(ge=0, le=2**63 - 1)]
"""A position in the event store's notification log."""

DocumentRef = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)
]
"""Where a document is kept: a URI or a document number."""

Weight = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]
"""A weight in points out of 100."""

Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
"""A normalised value between 0 and 1."""


# --- Scoring models ------------------------------------------------------------------


class Indicator(BaseModel):
    """One indicator of a scoring model: its area, weight and how it is normalised."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    code: Code = Field(description="The indicator's code, unique within the model.")
    area: Code = Field(description="The area it belongs to (a key of area_weights).")
    weight: Weight = Field(description="Points out of 100 this indicator is worth.")
    min_sample: int = Field(
        default=0,
        ge=0,
        le=1_000_000,
        description="Below this many cases the indicator reports insufficient data, "
        "never 0 % or 100 %.",
    )
    floor: Fraction | None = Field(
        default=None, description="Below this normalised value the indicator scores 0."
    )
    cap: Fraction | None = Field(
        default=None, description="At or above this normalised value the indicator scores full."
    )
    direction: Literal["higher_better", "lower_better"] = Field(
        default="higher_better", description="Whether a higher raw value is better."
    )
    window: Code | None = Field(
        default=None, description="The window it looks at, e.g. 'period', '90d', '12m'."
    )
    description: Text | None = Field(default=None, description="The formula in words.")

    @model_validator(mode="after")
    def _floor_below_cap(self) -> Self:
        if self.floor is not None and self.cap is not None and self.floor >= self.cap:
            raise PydanticCustomError(
                "out_of_range",
                f"indicator {self.code}: floor {self.floor:g} must be below cap {self.cap:g}",
            )
        return self


def _indicator(code: str, area: str, weight: float, **extra: Any) -> dict[str, Any]:
    """Build one indicator of the documented example model."""
    return {"code": code, "area": area, "weight": weight, **extra}


EXAMPLE_MODEL: dict[str, Any] = {
    "version": 1,
    "title": "District practice network assessment",
    "effective_from": "2024-01",
    "area_weights": {
        "site": 15,
        "activities": 20,
        "needs": 20,
        "volunteers": 15,
        "closed_loop": 20,
        "reporting": 10,
    },
    "indicators": [
        _indicator("six_haves_compliance", "site", 15, window="12m"),
        _indicator("theme_compliance", "activities", 5),
        _indicator("activity_frequency", "activities", 5),
        _indicator("meeting_coverage", "activities", 5),
        _indicator("five_step_completeness", "activities", 5, min_sample=3),
        _indicator("need_fulfilment", "needs", 6, min_sample=5),
        _indicator("time_to_serve", "needs", 5, min_sample=5, direction="lower_better"),
        _indicator("redispatch_rate", "needs", 3, min_sample=5, direction="lower_better"),
        _indicator("satisfaction", "needs", 6, min_sample=10),
        _indicator("active_volunteers", "volunteers", 6, window="90d"),
        _indicator("hours_per_active", "volunteers", 4),
        _indicator("dual_checkin_rate", "volunteers", 5, floor=0.6),
        _indicator("ack_on_time", "closed_loop", 4, min_sample=3, floor=0.8),
        _indicator("rectify_on_time", "closed_loop", 4, min_sample=3),
        _indicator("overdue_backlog", "closed_loop", 3, direction="lower_better"),
        _indicator("first_pass_verification", "closed_loop", 3, min_sample=3),
        _indicator("reopen_rate", "closed_loop", 3, min_sample=3, direction="lower_better"),
        _indicator("return_rate", "closed_loop", 3, min_sample=3, direction="lower_better"),
        _indicator("bulletin_on_time", "reporting", 4),
        _indicator("quarterly_review", "reporting", 3),
        _indicator("half_year_summary", "reporting", 3),
    ],
}
"""The DESIGN.md §6 example model: site 15, activities 20, needs 20, volunteers 15,
closed loop 20, reporting 10, spread over the 21 core indicators."""


class _ScoringModelBody(EventData):
    """The fields and checks shared by a scoring model's publication and revisions.

    Checks: indicator codes are unique; every indicator's area is a key of
    ``area_weights``; the area weights sum to 100; and in each area the
    indicator weights sum to that area's weight (each within ±0.01).
    """

    AGGREGATE: ClassVar[str] = "scoring_model"

    title: ShortText = Field(description="The model's title.")
    effective_from: Month = Field(
        description="The first month (YYYY-MM) whose scorecards use this version."
    )
    area_weights: dict[Code, Weight] = Field(
        min_length=1,
        max_length=50,
        description="Points out of 100 per area; they sum to 100.",
    )
    indicators: list[Indicator] = Field(
        min_length=1, max_length=200, description="The indicators, with weights and normalisation."
    )

    @model_validator(mode="after")
    def _consistent_weights(self) -> Self:
        seen: set[str] = set()
        per_area: dict[str, float] = defaultdict(float)
        for indicator in self.indicators:
            if indicator.code in seen:
                raise PydanticCustomError(
                    "value_error",
                    f"indicator code {indicator.code} appears twice; codes must be unique",
                )
            seen.add(indicator.code)
            if indicator.area not in self.area_weights:
                raise PydanticCustomError(
                    "value_error",
                    f"indicator {indicator.code} names area {indicator.area}, "
                    "which is not in area_weights",
                )
            per_area[indicator.area] += indicator.weight
        total = sum(self.area_weights.values())
        if abs(total - 100) > WEIGHT_TOLERANCE:
            raise PydanticCustomError(
                "out_of_range", f"area weights sum to {round(total, 4):g}, not 100"
            )
        for area, weight in self.area_weights.items():
            if abs(per_area[area] - weight) > WEIGHT_TOLERANCE:
                raise PydanticCustomError(
                    "out_of_range",
                    f"indicators of area {area} weigh {round(per_area[area], 4):g} in total, "
                    f"but the area weighs {weight:g}",
                )
        return self


@contract
class ScoringModelPublished(_ScoringModelBody):
    """A scoring model was published; this creates it at version 1.

    The subject is the model id. Later changes are ``scoring_model_revised``
    with the next version, never an edit: published scorecards name the
    version they used, so old versions stay reproducible.
    """

    TYPE: ClassVar[str] = "practice.assessment.scoring_model_published.v1"
    CREATES: ClassVar[bool] = True

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_MODEL]})

    version: int = Field(ge=1, le=1, description="Always 1: the first version of the model.")


@contract
class ScoringModelRevised(_ScoringModelBody):
    """A new version of a scoring model was published.

    ``version`` must be exactly the previous version plus one, and
    ``effective_from`` must not be earlier than the previous version's.
    """

    TYPE: ClassVar[str] = "practice.assessment.scoring_model_revised.v1"

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{**EXAMPLE_MODEL, "version": 2, "effective_from": "2024-07"}]
        }
    )

    version: int = Field(ge=2, le=10_000, description="The previous version plus one.")


# --- Assessment periods --------------------------------------------------------------


@contract
class PeriodOpened(EventData):
    """A unit's assessment period was opened; this creates the assessment.

    The subject must be ``<unit_id>:<period>``; ``period`` must be spelled as
    its ``kind`` requires (``2024-03``, ``2024-Q1``, ``2024-H1``, ``2024``).
    """

    TYPE: ClassVar[str] = "practice.assessment.period_opened.v1"
    AGGREGATE: ClassVar[str] = "assessment"
    CREATES: ClassVar[bool] = True
    REFERENCES: ClassVar[dict[str, str]] = {"unit_id": "site"}

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"unit_id": "S-HT", "period": "2024-03", "kind": "month"}]}
    )

    unit_id: Identifier = Field(description="The assessed unit (a site of any level).")
    period: Annotated[str, StringConstraints(strip_whitespace=True, max_length=16)] = Field(
        description="The period: YYYY-MM, YYYY-Qn, YYYY-Hn or YYYY."
    )
    kind: PeriodKind = Field(description="month, quarter, half_year or year.")

    @model_validator(mode="after")
    def _period_matches_kind(self) -> Self:
        if not PERIOD_PATTERNS[self.kind].match(self.period):
            raise PydanticCustomError(
                "value_error",
                f"period {self.period!r} is not a {self.kind}; a {self.kind} is spelled like "
                f"{PERIOD_EXAMPLES[self.kind]}",
            )
        return self


@contract
class ScoreAdjusted(EventData):
    """A bonus or a deduction was recorded for the unit in this period.

    ``delta`` is signed: positive for a bonus, negative for a deduction. The
    bonuses of one period add up to at most +5 points; deductions are not
    capped (the composite never goes below 0). Each adjustment names its
    approver and reason; nothing is adjusted once the period is closed.
    """

    TYPE: ClassVar[str] = "practice.assessment.score_adjusted.v1"
    AGGREGATE: ClassVar[str] = "assessment"

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "kind": "bonus",
                    "delta": 2,
                    "reason": "Provincial commendation of the station's elderly-care project.",
                    "approver": "U-DISTRICT-OFFICE",
                    "evidence": [{"uri": "doc://commendations/2024/017", "kind": "document"}],
                }
            ]
        }
    )

    indicator_code: Code | None = Field(
        default=None, description="The indicator the adjustment concerns, if any."
    )
    kind: Literal["bonus", "deduction"] = Field(description="bonus or deduction.")
    delta: float = Field(
        ge=-100,
        le=100,
        allow_inf_nan=False,
        description="Points: positive for a bonus, negative for a deduction.",
    )
    reason: Text = Field(description="Why the points were added or taken.")
    approver: Identifier = Field(description="Who approved the adjustment (a unit or account).")
    evidence: list[Evidence] = Field(
        default_factory=list, max_length=50, description="Documents supporting it."
    )

    @model_validator(mode="after")
    def _sign_matches_kind(self) -> Self:
        if self.kind == "bonus" and self.delta <= 0:
            raise PydanticCustomError("out_of_range", "a bonus must have a positive delta")
        if self.kind == "deduction" and self.delta >= 0:
            raise PydanticCustomError("out_of_range", "a deduction must have a negative delta")
        if self.kind == "bonus" and self.delta > BONUS_CAP:
            raise PydanticCustomError(
                "out_of_range", f"a bonus may add at most {BONUS_CAP:g} points per period"
            )
        return self


class IndicatorValue(BaseModel):
    """One indicator's value in a scorecard, or the admission that data were too few."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    code: Code = Field(description="The indicator's code in the scoring model.")
    status: Literal["ok", "insufficient_data"] = Field(
        description="ok, or insufficient_data when the sample was below the minimum."
    )
    value: float | None = Field(
        default=None, allow_inf_nan=False, description="The raw value; absent when insufficient."
    )
    numerator: float | None = Field(
        default=None, ge=0, allow_inf_nan=False, description="The counted cases, for rates."
    )
    denominator: float | None = Field(
        default=None, ge=0, allow_inf_nan=False, description="The eligible cases, for rates."
    )
    score: float | None = Field(
        default=None,
        ge=0,
        le=100,
        allow_inf_nan=False,
        description="Points this indicator contributed to the composite.",
    )

    @model_validator(mode="after")
    def _value_matches_status(self) -> Self:
        if self.status == "ok" and self.value is None:
            raise PydanticCustomError(
                "value_error", f"indicator {self.code} is ok but has no value"
            )
        if self.status == "insufficient_data" and (self.value is not None or self.score):
            raise PydanticCustomError(
                "value_error",
                f"indicator {self.code} has insufficient data: report no value and no score, "
                "never 0 % or 100 %",
            )
        return self


@contract
class ScorecardPublished(EventData):
    """A frozen scorecard of the unit for the period was published.

    The scorecard names the scoring model version and the log position it
    was computed at, so an auditor can recompute it exactly. The same model
    version cannot be published twice for one period; a republication must
    use a newer model version than every earlier scorecard of the period.
    """

    TYPE: ClassVar[str] = "practice.assessment.scorecard_published.v1"
    AGGREGATE: ClassVar[str] = "assessment"
    REFERENCES: ClassVar[dict[str, str]] = {"model_id": "scoring_model"}

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "model_id": "wly-district",
                    "model_version": 1,
                    "as_of_position": 1834022,
                    "composite": 82.4,
                    "bonus_total": 2,
                    "indicators": [
                        {
                            "code": "need_fulfilment",
                            "status": "ok",
                            "value": 0.91,
                            "numerator": 41,
                            "denominator": 45,
                            "score": 5.46,
                        },
                        {"code": "satisfaction", "status": "insufficient_data", "denominator": 6},
                    ],
                }
            ]
        }
    )

    model_id: Identifier = Field(description="The scoring model used.")
    model_version: int = Field(ge=1, le=10_000, description="The version of that model used.")
    as_of_position: Position = Field(description="The log position the scorecard reflects.")
    composite: float = Field(
        ge=0,
        le=MAX_COMPOSITE,
        allow_inf_nan=False,
        description="The composite score: weighted indicators plus bonuses minus deductions.",
    )
    bonus_total: float = Field(
        default=0, ge=0, le=BONUS_CAP, allow_inf_nan=False, description="Bonuses included."
    )
    deduction_total: float = Field(
        default=0, ge=0, allow_inf_nan=False, description="Deductions included (as points)."
    )
    indicators: list[IndicatorValue] = Field(
        min_length=1, max_length=200, description="Every indicator of the model, with its value."
    )

    @model_validator(mode="after")
    def _unique_codes(self) -> Self:
        codes = [indicator.code for indicator in self.indicators]
        if len(set(codes)) != len(codes):
            raise PydanticCustomError(
                "value_error", "each indicator may appear only once in a scorecard"
            )
        return self


class _Document(EventData):
    """A published document: where it is, and which earlier one it corrects."""

    document_ref: DocumentRef = Field(description="The document's URI or number.")
    correction_of: DocumentRef | None = Field(
        default=None,
        description="The document_ref of the earlier publication this one corrects; required "
        "to publish a second time for the same period.",
    )


@contract
class BulletinPublished(_Document):
    """The monthly bulletin of the unit was published (一月一通报).

    Only for a month period. A second bulletin for the same month is a
    correction and must name the document it corrects in ``correction_of``.
    """

    TYPE: ClassVar[str] = "practice.assessment.bulletin_published.v1"
    AGGREGATE: ClassVar[str] = "assessment"

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"document_ref": "WLY-TB-2024-03", "as_of_position": 1834022}]
        }
    )

    as_of_position: Position = Field(description="The log position the bulletin reflects.")


@contract
class QuarterlyReviewHeld(EventData):
    """The quarterly review meeting was held (一季一讲评).

    Only for a quarter period, and once per quarter. ``ranked_units`` lists
    the units from best to worst; ``actions`` the improvements agreed.
    """

    TYPE: ClassVar[str] = "practice.assessment.quarterly_review_held.v1"
    AGGREGATE: ClassVar[str] = "assessment"
    REFERENCES: ClassVar[dict[str, str]] = {"ranked_units": "site"}

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "attendees_count": 24,
                    "ranked_units": ["S-HT-03", "S-HT-01", "S-HT-02"],
                    "actions": ["S-HT-02 to clear its overdue findings by 15 April."],
                }
            ]
        }
    )

    attendees_count: int = Field(ge=1, le=100_000, description="How many people attended.")
    ranked_units: list[Identifier] = Field(
        default_factory=list, max_length=1000, description="Units from best to worst."
    )
    actions: list[Text] = Field(
        default_factory=list, max_length=200, description="Improvements agreed at the review."
    )
    document_ref: DocumentRef | None = Field(
        default=None, description="The minutes of the review, if kept as a document."
    )

    @model_validator(mode="after")
    def _units_ranked_once(self) -> Self:
        if len(set(self.ranked_units)) != len(self.ranked_units):
            raise PydanticCustomError("value_error", "a unit may appear only once in the ranking")
        return self


@contract
class HalfYearSummaryPublished(_Document):
    """The half-year summary of the unit was published (半年一总结).

    Only for a half-year period. A second summary for the same half-year is
    a correction and must name the document it corrects in ``correction_of``.
    """

    TYPE: ClassVar[str] = "practice.assessment.half_year_summary_published.v1"
    AGGREGATE: ClassVar[str] = "assessment"

    model_config = ConfigDict(json_schema_extra={"examples": [{"document_ref": "WLY-ZJ-2024-H1"}]})

    summary: Text | None = Field(default=None, description="A short abstract of the summary.")


@contract
class PeriodClosed(EventData):
    """The unit's assessment period was closed: no more bonuses or deductions.

    Scorecards, bulletins, reviews and summaries may still be published for
    a closed period (they usually follow its end); closing twice is refused.
    """

    TYPE: ClassVar[str] = "practice.assessment.period_closed.v1"
    AGGREGATE: ClassVar[str] = "assessment"

    model_config = ConfigDict(json_schema_extra={"examples": [{}]})

    note: Text | None = Field(default=None, description="Why or how the period was closed.")
