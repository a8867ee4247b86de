"""Applying a versioned scoring model: normalise, weigh, redistribute, adjust.

A scoring model (``scoring_model_published`` / ``_revised``) gives each
indicator an area, a weight in points out of 100, a minimum sample, a
direction and optionally a floor and a cap. Scoring one unit's indicators
for one period goes:

1. **Normalise** each ``ok`` indicator to 0..1 (:func:`normalise`):

   a. map the raw value onto 0..1 by the indicator's scale
      (:mod:`practice_events.scoring.indicators`): a share as is; a
      quantity with a target as ``min(1, value / target)``; a duration with
      a ceiling as ``min(value, ceiling) / ceiling``; a count as its share
      of the denominator (0 when the denominator is 0);
   b. apply the direction: ``higher_better`` keeps x, ``lower_better``
      takes ``1 − x``;
   c. apply floor and cap exactly as the contract words them: below the
      floor the indicator scores 0, at or above the cap it scores 1,
      in between it keeps its value (a threshold, as in the 12345
      bulletins, not a rescaling).

2. **Weigh and redistribute.** An indicator with insufficient data has no
   score, and its weight is **redistributed proportionally**, first within
   its area (the area keeps its points, shared by its indicators that have
   data), and if no indicator of an area has data, across the other areas
   (each scored area grows in proportion to its weight). So a month's
   reporting area, where no quarterly review or half-year summary can be
   due, is scored on the bulletin alone, and a unit with no findings at all
   is scored on its other areas. The composite says so: ``covered_weight``
   is the model weight that had data, and every indicator reports the
   ``effective_weight`` it was given. Below :data:`MIN_COVERED_WEIGHT`
   points of data the composite itself is ``insufficient_data``: a score
   built on a sliver of the model is not a score.

3. **Adjust.** ``composite = base + min(bonuses, 5) − deductions``, kept
   within 0..105 (bonuses are capped at +5 per period; deductions are not
   capped, but the composite never goes below 0).

The version used for a period is the latest whose ``effective_from`` month
is not after the period's **first** month: rules in force when the period
began (:func:`version_for`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from practice_events.contracts.assessment import BONUS_CAP, MAX_COMPOSITE
from practice_events.scoring.indicators import (
    DEFINITIONS,
    Direction,
    IndicatorDefinition,
    IndicatorResult,
    insufficient,
)

MIN_COVERED_WEIGHT = 50.0
"""Points of the model (out of 100) that must have data for a composite to be reported."""


@dataclass(frozen=True, slots=True)
class ModelIndicator:
    """One indicator as a model version weighs it."""

    code: str
    area: str
    weight: float
    min_sample: int = 0
    floor: float | None = None
    cap: float | None = None
    direction: Direction = "higher_better"
    window: str | None = None
    description: str | None = None

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> ModelIndicator:
        """Build from the stored event data of one indicator."""
        direction: Direction = (
            "lower_better" if data.get("direction") == "lower_better" else "higher_better"
        )
        return cls(
            code=str(data["code"]),
            area=str(data["area"]),
            weight=float(data["weight"]),
            min_sample=int(data.get("min_sample") or 0),
            floor=_opt_float(data.get("floor")),
            cap=_opt_float(data.get("cap")),
            direction=direction,
            window=data.get("window"),
            description=data.get("description"),
        )

    def effective_min_sample(self) -> int:
        """The model's minimum if it sets one (> 0), else the formula's own default."""
        if self.min_sample > 0:
            return self.min_sample
        found = DEFINITIONS.get(self.code)
        return found.min_sample if found is not None else 1


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class ScoringModel:
    """One version of a scoring model."""

    model_id: str
    version: int
    title: str
    effective_from: str
    area_weights: Mapping[str, float]
    indicators: tuple[ModelIndicator, ...]
    published_at: str | None = None
    position: int | None = None

    @classmethod
    def from_data(
        cls,
        model_id: str,
        data: Mapping[str, Any],
        *,
        published_at: str | None = None,
        position: int | None = None,
    ) -> ScoringModel:
        """Build from a ``scoring_model_published``/``_revised`` event's data."""
        return cls(
            model_id=model_id,
            version=int(data["version"]),
            title=str(data.get("title", "")),
            effective_from=str(data["effective_from"]),
            area_weights={str(k): float(v) for k, v in dict(data["area_weights"]).items()},
            indicators=tuple(ModelIndicator.from_data(i) for i in data["indicators"]),
            published_at=published_at,
            position=position,
        )

    def indicator(self, code: str) -> ModelIndicator | None:
        """The model's entry for ``code``, if it weighs that indicator."""
        for item in self.indicators:
            if item.code == code:
                return item
        return None

    def warnings(self) -> list[str]:
        """Where the model departs from the formulas' own sense (shown, not enforced)."""
        out: list[str] = []
        for item in self.indicators:
            found = DEFINITIONS.get(item.code)
            if found is None:
                out.append(f"{item.code}: no formula computes this code; it has no data")
            elif found.direction != item.direction:
                out.append(
                    f"{item.code}: the model scores it {item.direction}, "
                    f"but a {'lower' if found.direction == 'lower_better' else 'higher'} "
                    "value is better"
                )
        return out

    def as_dict(self) -> dict[str, Any]:
        """The version as JSON-ready data."""
        return {
            "model_id": self.model_id,
            "version": self.version,
            "title": self.title,
            "effective_from": self.effective_from,
            "area_weights": dict(self.area_weights),
            "indicators": [
                {
                    "code": i.code,
                    "area": i.area,
                    "weight": i.weight,
                    "min_sample": i.min_sample,
                    "floor": i.floor,
                    "cap": i.cap,
                    "direction": i.direction,
                    "window": i.window,
                    "description": i.description,
                }
                for i in self.indicators
            ],
            "published_at": self.published_at,
            "position": self.position,
        }


def version_for(versions: Iterable[ScoringModel], first_month: str) -> ScoringModel | None:
    """The latest version whose ``effective_from`` is not after ``first_month`` (``YYYY-MM``)."""
    found: ScoringModel | None = None
    for model in versions:
        if model.effective_from <= first_month and (found is None or model.version > found.version):
            found = model
    return found


def normalise(
    result: IndicatorResult,
    direction: Direction,
    *,
    floor: float | None = None,
    cap: float | None = None,
    definition: IndicatorDefinition | None = None,
) -> float | None:
    """Map an ``ok`` result onto 0..1 (module docstring, step 1); None without data."""
    if not result.ok or result.value is None:
        return None
    found = definition or DEFINITIONS.get(result.code)
    scale = found.scale if found is not None else "fraction"
    value = result.value
    if scale == "target":
        target = float(result.details.get("target") or (found.reference if found else 0) or 0)
        level = 1.0 if target <= 0 else min(1.0, value / target)
    elif scale == "ceiling":
        ceiling = float(found.reference or 0) if found is not None else 0.0
        level = 0.0 if ceiling <= 0 else min(value, ceiling) / ceiling
    elif scale == "share":
        denominator = result.denominator or 0.0
        level = 0.0 if denominator <= 0 else (result.numerator or 0.0) / denominator
    else:
        level = value
    level = min(1.0, max(0.0, level))
    if direction == "lower_better":
        level = 1.0 - level
    if floor is not None and level < floor:
        return 0.0
    if cap is not None and level >= cap:
        return 1.0
    return level


@dataclass(frozen=True, slots=True)
class ScoredIndicator:
    """An indicator's result with what the model made of it."""

    result: IndicatorResult
    area: str
    weight: float
    effective_weight: float
    normalised: float | None
    score: float | None
    in_model: bool = True

    def as_dict(self, definition: IndicatorDefinition | None = None) -> dict[str, Any]:
        """JSON-ready: the result, its weights, its 0..1 level and the points it earned."""
        out = self.result.as_dict()
        out.update(
            {
                "area": self.area,
                "weight": self.weight,
                "effective_weight": _round(self.effective_weight),
                "normalised": _round(self.normalised),
                "score": _round(self.score),
                "in_model": self.in_model,
            }
        )
        if definition is not None:
            out["definition"] = definition.as_dict()
        return out


@dataclass(frozen=True, slots=True)
class Composite:
    """The composite score of one unit and period under one model version."""

    status: Literal["ok", "insufficient_data"]
    value: float | None
    base: float | None
    bonus_total: float
    deduction_total: float
    covered_weight: float
    indicators: tuple[ScoredIndicator, ...]
    redistributed: Mapping[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready headline (the indicators are reported separately)."""
        return {
            "status": self.status,
            "value": _round(self.value),
            "base": _round(self.base),
            "bonus_total": _round(self.bonus_total),
            "deduction_total": _round(self.deduction_total),
            "covered_weight": _round(self.covered_weight),
            "min_covered_weight": MIN_COVERED_WEIGHT,
            "redistributed": dict(self.redistributed),
            "rule": (
                "weights of indicators with insufficient data are redistributed "
                "proportionally within their area, and of areas with no data across the "
                "other areas; bonuses are capped at +5, the composite stays within 0..105"
            ),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def score(
    model: ScoringModel,
    results: Mapping[str, IndicatorResult],
    *,
    bonuses: float = 0.0,
    deductions: float = 0.0,
) -> Composite:
    """Score ``results`` under ``model`` (module docstring, steps 1-3).

    ``results`` should hold a result for every code of the model; a code
    without a result counts as insufficient data. ``deductions`` is a
    positive number of points.
    """
    levels: dict[str, float | None] = {}
    for item in model.indicators:
        result = results.get(item.code)
        levels[item.code] = (
            None
            if result is None
            else normalise(result, item.direction, floor=item.floor, cap=item.cap)
        )

    area_of_items: dict[str, list[ModelIndicator]] = {}
    for item in model.indicators:
        area_of_items.setdefault(item.area, []).append(item)

    # Within each area: indicators with data share the area's weight in proportion.
    effective: dict[str, float] = {item.code: 0.0 for item in model.indicators}
    scored_area_weight = 0.0
    redistributed: dict[str, str] = {}
    for area, items in area_of_items.items():
        area_weight = float(model.area_weights.get(area, math.fsum(i.weight for i in items)))
        with_data = [i for i in items if levels[i.code] is not None]
        data_weight = math.fsum(i.weight for i in with_data)
        if data_weight <= 0:
            if area_weight > 0:
                redistributed[area] = "no indicator of this area has data: weight spread over areas"
            continue
        scored_area_weight += area_weight
        missing = [i.code for i in items if levels[i.code] is None and i.weight > 0]
        if missing:
            redistributed[area] = (
                f"{', '.join(missing)} without data: weight shared within the area"
            )
        for item in with_data:
            effective[item.code] = item.weight * area_weight / data_weight

    total_weight = math.fsum(model.area_weights.values()) or 100.0
    covered = math.fsum(i.weight for i in model.indicators if levels[i.code] is not None)
    spread = total_weight / scored_area_weight if scored_area_weight > 0 else 0.0
    scored: list[ScoredIndicator] = []
    base = 0.0
    for item in model.indicators:
        level = levels[item.code]
        weight = effective[item.code] * spread * 100.0 / total_weight
        points = None if level is None else level * weight
        if points is not None:
            base += points
        result = results.get(item.code)
        if result is None:
            result = insufficient(item.code, note="no formula computes this code")
        scored.append(
            ScoredIndicator(
                result=result,
                area=item.area,
                weight=item.weight,
                effective_weight=weight if level is not None else 0.0,
                normalised=level,
                score=points,
            )
        )

    bonus_total = min(max(bonuses, 0.0), BONUS_CAP)
    deduction_total = max(deductions, 0.0)
    covered_points = covered * 100.0 / total_weight
    if covered_points + 1e-9 < MIN_COVERED_WEIGHT:
        return Composite(
            status="insufficient_data",
            value=None,
            base=None,
            bonus_total=bonus_total,
            deduction_total=deduction_total,
            covered_weight=covered_points,
            indicators=tuple(scored),
            redistributed=redistributed,
        )
    value = min(MAX_COMPOSITE, max(0.0, base + bonus_total - deduction_total))
    return Composite(
        status="ok",
        value=value,
        base=base,
        bonus_total=bonus_total,
        deduction_total=deduction_total,
        covered_weight=covered_points,
        indicators=tuple(scored),
        redistributed=redistributed,
    )


def rank(composites: Mapping[str, float | None]) -> dict[str, int | None]:
    """Competition ranking ("1224") by composite, best first; None for no composite.

    Ties share a rank and the next rank skips (two units at 90 are both 1st,
    the next is 3rd). Scores are compared rounded to 6 decimals so that
    float noise never splits a tie.
    """
    ranked = sorted(
        ((round(v, 6), unit) for unit, v in composites.items() if v is not None),
        key=lambda pair: (-pair[0], pair[1]),
    )
    out: dict[str, int | None] = dict.fromkeys(composites)
    previous: float | None = None
    current_rank = 0
    for index, (value, unit) in enumerate(ranked, start=1):
        if value != previous:
            current_rank = index
            previous = value
        out[unit] = current_rank
    return out


def published_indicators(composite: Composite) -> list[dict[str, Any]]:
    """The indicators as a ``scorecard_published`` event carries them (IndicatorValue)."""
    out: list[dict[str, Any]] = []
    for item in composite.indicators:
        result = item.result
        entry: dict[str, Any] = {"code": result.code, "status": result.status}
        if result.ok:
            entry["value"] = _round(result.value)
            entry["score"] = _round(item.score) if item.score is not None else 0.0
        if result.numerator is not None:
            entry["numerator"] = _round(max(0.0, result.numerator))
        if result.denominator is not None:
            entry["denominator"] = _round(max(0.0, result.denominator))
        out.append(entry)
    return out


def effective_weights(composite: Composite) -> Sequence[tuple[str, float]]:
    """(code, effective weight) pairs: what each indicator was finally worth."""
    return [(i.result.code, i.effective_weight) for i in composite.indicators]
