"""Assessment: versioned scoring models and each unit's assessment per period.

Practice centres assess their institutes and stations by month, quarter,
half-year and year, and are themselves assessed on a reporting rhythm that
practice networks spell in three phrases:

* **一月一通报** ("a bulletin every month"): after each month the results are
  published in a bulletin; on-time publication is itself an indicator;
* **一季一讲评** ("a review every quarter"): each quarter a review meeting
  ranks the units and agrees improvements;
* **半年一总结** ("a summary every half-year"): a written summary of the
  half-year's work.

Two aggregates:

:class:`ScoringModel` (kind ``scoring_model``, subject: the model id)
    formulas and weights, versioned. Weights change often, so a model is
    never edited: a revision adds version n+1 with the month it applies
    from. Old versions stay in the history so that any published scorecard
    can be recomputed with the version it names.

:class:`Assessment` (kind ``assessment``, subject ``<unit_id>:<period>``)
    one unit's assessment of one period (``2024-03``, ``2024-Q1``,
    ``2024-H1``, ``2024``). Rules it enforces:

    * the subject must be ``<unit_id>:<period>`` of the opening event;
    * bonuses and deductions are recorded with approver and reason; the
      bonuses of a period total at most +5 points (deductions are not
      capped; the composite never goes below 0); none once the period is
      closed;
    * a scorecard is a frozen snapshot naming the model version and log
      position; the same model version is never published twice for a
      period, and a republication must use a newer version of the same
      model;
    * a bulletin only for a month, a quarterly review only for a quarter
      (once), a half-year summary only for a half-year; publishing a
      bulletin or summary again is a correction and must name the document
      it corrects;
    * nothing is reported on a period before it starts, and a period is
      closed only after it ends. Period bounds are computed in the
      network's time zone when the period is opened and written into the
      opening event, so a replay never depends on the configured zone.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from practice_events.domain.base import (
    DomainContext,
    Meta,
    PracticeAggregate,
    aggregate_id,
    format_time,
    parse_time,
)
from practice_events.errors import ConfigurationError, DomainError

TIMEZONE_SERVICE = "assessment.timezone"
"""Name of the service holding the network's time zone (a ``tzinfo``)."""

DEFAULT_TIMEZONE = "Asia/Shanghai"
"""The time zone used when the configuration names none."""

BONUS_CAP = 5.0
"""The most that recorded bonuses may add to a unit's composite in one period
(research §(c): "bonus ≤ +5"). The contract of ``score_adjusted`` uses the same value."""

_EPSILON = 1e-9
"""Tolerance for sums of decimal points (2.1 + 2.9 must equal 5)."""


def period_bounds(period: str, zone: tzinfo) -> tuple[datetime, datetime]:
    """Return the start (inclusive) and end (exclusive) of ``period`` in ``zone``.

    ``period`` is ``YYYY-MM``, ``YYYY-Qn``, ``YYYY-Hn`` or ``YYYY`` (the
    contract has checked the spelling).
    """
    year = int(period[:4])
    if len(period) == 4:
        first_month, months = 1, 12
    elif period[5] == "Q":
        first_month, months = 3 * int(period[6]) - 2, 3
    elif period[5] == "H":
        first_month, months = 6 * int(period[6]) - 5, 6
    else:
        first_month, months = int(period[5:7]), 1
    end_index = first_month - 1 + months
    start = datetime(year, first_month, 1, tzinfo=zone)
    end = datetime(year + end_index // 12, end_index % 12 + 1, 1, tzinfo=zone)
    return start, end


class ScoringModel(PracticeAggregate):
    """A versioned scoring model: indicators, their areas, weights and normalisation."""

    TOPIC = "practice.aggregate.scoring_model"
    KIND = "scoring_model"
    CREATED_BY = "practice.assessment.scoring_model_published.v1"
    HANDLES: ClassVar[Mapping[str, str]] = {
        "practice.assessment.scoring_model_revised.v1": "revise",
    }

    def __init__(self) -> None:
        """Declare the state; the publication fills it in."""
        self.version = 0
        self.title = ""
        self.effective_from = ""
        self.area_weights: dict[str, float] = {}
        self.indicators: list[dict[str, Any]] = []
        # version -> first month it applies to, for every version (see version_for)
        self.effective_months: dict[int, str] = {}

    class Created(PracticeAggregate.Created):
        """The model was published at version 1."""

        TOPIC = "practice.assessment.scoring_model_published.v1"

        def init(self, agg: ScoringModel) -> None:
            """Make version 1 current."""
            agg.take(self.data)

    class Revised(PracticeAggregate.Event):
        """A new version of the model was published."""

        TOPIC = "practice.assessment.scoring_model_revised.v1"

        def apply(self, agg: ScoringModel) -> None:
            """Make the new version current."""
            agg.take(self.data)

    def take(self, data: Mapping[str, Any]) -> None:
        """Make the version in ``data`` current (used by the events' apply only)."""
        self.version = data["version"]
        self.title = data["title"]
        self.effective_from = data["effective_from"]
        self.area_weights = data["area_weights"]
        self.indicators = data["indicators"]
        self.effective_months[self.version] = self.effective_from

    # --- commands --------------------------------------------------------------------

    def revise(self, data: dict[str, Any], meta: Meta, ctx: DomainContext) -> None:
        """Publish the next version; it may not apply from an earlier month than the last."""
        if data["version"] != self.version + 1:
            msg = (
                f"scoring_model {self.subject}: version {data['version']} does not follow the "
                f"current version {self.version}; send version {self.version + 1}"
            )
            raise DomainError(msg)
        if data["effective_from"] < self.effective_from:
            msg = (
                f"scoring_model {self.subject}: version {data['version']} would apply from "
                f"{data['effective_from']}, before version {self.version} "
                f"({self.effective_from}); a revision cannot reach back past the current version"
            )
            raise DomainError(msg, code="OUT_OF_RANGE")
        self.emit(self.Revised, data, meta)

    # --- queries ---------------------------------------------------------------------

    def version_for(self, month: str) -> int | None:
        """Return the latest version in effect in ``month`` (``YYYY-MM``), or None if none yet."""
        found: int | None = None
        for version, effective in self.effective_months.items():
            if effective <= month and (found is None or version > found):
                found = version
        return found

    @property
    def indicator_codes(self) -> list[str]:
        """The codes of the current version's indicators."""
        return [indicator["code"] for indicator in self.indicators]


class Assessment(PracticeAggregate):
    """One unit's assessment of one period (subject ``<unit_id>:<period>``)."""

    TOPIC = "practice.aggregate.assessment"
    KIND = "assessment"
    CREATED_BY = "practice.assessment.period_opened.v1"
    HANDLES: ClassVar[Mapping[str, str]] = {
        "practice.assessment.score_adjusted.v1": "adjust_score",
        "practice.assessment.scorecard_published.v1": "publish_scorecard",
        "practice.assessment.bulletin_published.v1": "publish_bulletin",
        "practice.assessment.quarterly_review_held.v1": "hold_quarterly_review",
        "practice.assessment.half_year_summary_published.v1": "publish_half_year_summary",
        "practice.assessment.period_closed.v1": "close_period",
    }

    def __init__(self) -> None:
        """Declare the state; the opening event fills it in."""
        self.unit_id = ""
        self.period = ""
        self.period_kind = ""
        self.starts_at: datetime | None = None
        self.ends_at: datetime | None = None
        self.opened_at: str | None = None
        self.closed_at: str | None = None
        self.bonus_total = 0.0
        self.deduction_total = 0.0
        self.adjustment_count = 0
        self.scorecard_model_id: str | None = None
        self.scorecard_versions: set[int] = set()
        self.latest_scorecard: dict[str, Any] | None = None
        self.bulletin_refs: list[str] = []
        self.first_bulletin_at: str | None = None
        self.review_held_at: str | None = None
        self.summary_refs: list[str] = []
        self.first_summary_at: str | None = None

    # --- events ----------------------------------------------------------------------

    class Created(PracticeAggregate.Created):
        """The unit's period was opened."""

        TOPIC = "practice.assessment.period_opened.v1"

        def init(self, agg: Assessment) -> None:
            """Take unit, period and the period's bounds (computed when it was opened)."""
            agg.unit_id = self.data["unit_id"]
            agg.period = self.data["period"]
            agg.period_kind = self.data["kind"]
            agg.starts_at = parse_time(self.data["starts_at"])
            agg.ends_at = parse_time(self.data["ends_at"])
            agg.opened_at = self.meta.get("time")

    class ScoreAdjusted(PracticeAggregate.Event):
        """A bonus or deduction was recorded."""

        TOPIC = "practice.assessment.score_adjusted.v1"

        def apply(self, agg: Assessment) -> None:
            """Add the delta to the bonus or deduction total."""
            delta = float(self.data["delta"])
            if delta > 0:
                agg.bonus_total = round(agg.bonus_total + delta, 6)
            else:
                agg.deduction_total = round(agg.deduction_total - delta, 6)
            agg.adjustment_count += 1

    class ScorecardPublished(PracticeAggregate.Event):
        """A frozen scorecard was published."""

        TOPIC = "practice.assessment.scorecard_published.v1"

        def apply(self, agg: Assessment) -> None:
            """Remember the model version and the latest scorecard's headline."""
            agg.scorecard_model_id = self.data["model_id"]
            agg.scorecard_versions.add(self.data["model_version"])
            agg.latest_scorecard = {
                "model_id": self.data["model_id"],
                "model_version": self.data["model_version"],
                "as_of_position": self.data["as_of_position"],
                "composite": self.data["composite"],
                "published_at": self.meta.get("time"),
            }

    class BulletinPublished(PracticeAggregate.Event):
        """The monthly bulletin was published (一月一通报)."""

        TOPIC = "practice.assessment.bulletin_published.v1"

        def apply(self, agg: Assessment) -> None:
            """Keep the document; the first publication's time is what counts for timeliness."""
            agg.bulletin_refs.append(self.data["document_ref"])
            if agg.first_bulletin_at is None:
                agg.first_bulletin_at = self.meta.get("time")

    class QuarterlyReviewHeld(PracticeAggregate.Event):
        """The quarterly review was held (一季一讲评)."""

        TOPIC = "practice.assessment.quarterly_review_held.v1"

        def apply(self, agg: Assessment) -> None:
            """Keep when it was held."""
            agg.review_held_at = self.meta.get("time")

    class HalfYearSummaryPublished(PracticeAggregate.Event):
        """The half-year summary was published (半年一总结)."""

        TOPIC = "practice.assessment.half_year_summary_published.v1"

        def apply(self, agg: Assessment) -> None:
            """Keep the document and the first publication's time."""
            agg.summary_refs.append(self.data["document_ref"])
            if agg.first_summary_at is None:
                agg.first_summary_at = self.meta.get("time")

    class PeriodClosed(PracticeAggregate.Event):
        """The period was closed: no more adjustments."""

        TOPIC = "practice.assessment.period_closed.v1"

        def apply(self, agg: Assessment) -> None:
            """Mark the period closed."""
            agg.closed_at = self.meta.get("time")

    # --- commands --------------------------------------------------------------------

    @classmethod
    def create(
        cls, data: Mapping[str, Any], meta: Mapping[str, Any], ctx: DomainContext
    ) -> PracticeAggregate:
        """Open the period after checking that the subject is ``<unit_id>:<period>``.

        The period's bounds in the network's time zone are written into the
        event, so later checks never depend on the configuration.
        """
        subject = str(meta["subject"])
        expected = f"{data['unit_id']}:{data['period']}"
        if subject != expected:
            msg = (
                f"assessment {subject}: the subject must be '<unit_id>:<period>' of the data, "
                f"i.e. {expected!r}"
            )
            raise DomainError(msg)
        zone: tzinfo = ctx.service(TIMEZONE_SERVICE)
        start, end = period_bounds(str(data["period"]), zone)
        enriched = dict(data)
        enriched["starts_at"] = format_time(start)
        enriched["ends_at"] = format_time(end)
        return cls._create(
            cls.Created, id=aggregate_id(cls.KIND, subject), data=enriched, meta=dict(meta)
        )

    def adjust_score(self, data: dict[str, Any], meta: Meta, ctx: DomainContext) -> None:
        """Record a bonus or deduction while the period is open; bonuses total at most +5."""
        if self.closed:
            self.refuse(f"was closed at {self.closed_at}; no bonus or deduction can be added")
        delta = float(data["delta"])
        if delta > 0 and self.bonus_total + delta > BONUS_CAP + _EPSILON:
            msg = (
                f"assessment {self.subject}: this bonus of {delta:g} would bring the period's "
                f"bonuses to {self.bonus_total + delta:g}, above the cap of +{BONUS_CAP:g} "
                f"(already {self.bonus_total:g})"
            )
            raise DomainError(msg, code="OUT_OF_RANGE")
        self.emit(self.ScoreAdjusted, data, meta)

    def publish_scorecard(self, data: dict[str, Any], meta: Meta, ctx: DomainContext) -> None:
        """Record a frozen scorecard; each model version once, republications only newer."""
        self._require_started(meta, "a scorecard")
        model_id = data["model_id"]
        version = data["model_version"]
        if self.scorecard_model_id is not None and model_id != self.scorecard_model_id:
            msg = (
                f"assessment {self.subject}: scorecards of this period use scoring model "
                f"{self.scorecard_model_id}; a scorecard with model {model_id} cannot be mixed in"
            )
            raise DomainError(msg)
        if version in self.scorecard_versions:
            msg = (
                f"assessment {self.subject}: a scorecard with {model_id} version {version} was "
                "already published for this period; publish with a newer model version"
            )
            raise DomainError(msg)
        latest = max(self.scorecard_versions, default=0)
        if version < latest:
            msg = (
                f"assessment {self.subject}: model version {version} is older than version "
                f"{latest}, already published for this period"
            )
            raise DomainError(msg)
        self.emit(self.ScorecardPublished, data, meta)

    def publish_bulletin(self, data: dict[str, Any], meta: Meta, ctx: DomainContext) -> None:
        """Record the monthly bulletin (一月一通报); again only as a correction."""
        self._require_kind("month", "a monthly bulletin (一月一通报)")
        self._require_started(meta, "a bulletin")
        self._check_correction(data, self.bulletin_refs, "bulletin")
        self.emit(self.BulletinPublished, data, meta)

    def hold_quarterly_review(self, data: dict[str, Any], meta: Meta, ctx: DomainContext) -> None:
        """Record the quarterly review (一季一讲评), once per quarter."""
        self._require_kind("quarter", "a quarterly review (一季一讲评)")
        if self.review_held_at is not None:
            self.refuse(f"already had its quarterly review at {self.review_held_at}")
        self._require_started(meta, "a quarterly review")
        self.emit(self.QuarterlyReviewHeld, data, meta)

    def publish_half_year_summary(
        self, data: dict[str, Any], meta: Meta, ctx: DomainContext
    ) -> None:
        """Record the half-year summary (半年一总结); again only as a correction."""
        self._require_kind("half_year", "a half-year summary (半年一总结)")
        self._require_started(meta, "a half-year summary")
        self._check_correction(data, self.summary_refs, "half-year summary")
        self.emit(self.HalfYearSummaryPublished, data, meta)

    def close_period(self, data: dict[str, Any], meta: Meta, ctx: DomainContext) -> None:
        """Close the period once it has ended; after that no adjustments are accepted."""
        if self.closed:
            self.refuse(f"was already closed at {self.closed_at}")
        assert self.ends_at is not None  # set by the opening event
        if "time" in meta and parse_time(meta["time"]) < self.ends_at:
            msg = (
                f"assessment {self.subject}: the period ends at {format_time(self.ends_at)}; "
                f"it cannot be closed at {meta['time']}"
            )
            raise DomainError(msg, code="OUT_OF_RANGE")
        self.emit(self.PeriodClosed, data, meta)

    def _require_kind(self, kind: str, what: str) -> None:
        if self.period_kind != kind:
            msg = (
                f"assessment {self.subject}: {what} belongs to a {kind} period, "
                f"but {self.period} is a {self.period_kind}"
            )
            raise DomainError(msg)

    def _require_started(self, meta: Meta, what: str) -> None:
        assert self.starts_at is not None  # set by the opening event
        if "time" in meta and parse_time(meta["time"]) < self.starts_at:
            msg = (
                f"assessment {self.subject}: {what} for {self.period} cannot be published at "
                f"{meta['time']}, before the period starts ({format_time(self.starts_at)})"
            )
            raise DomainError(msg, code="OUT_OF_RANGE")

    def _check_correction(self, data: Mapping[str, Any], published: list[str], what: str) -> None:
        correction_of = data.get("correction_of")
        if not published:
            if correction_of is not None:
                msg = (
                    f"assessment {self.subject}: no {what} was published for {self.period}, "
                    f"so there is nothing for {data['document_ref']} to correct"
                )
                raise DomainError(msg)
            return
        if correction_of is None:
            msg = (
                f"assessment {self.subject}: a {what} for {self.period} was already published "
                f"({published[-1]}); to publish again, name it in correction_of"
            )
            raise DomainError(msg)
        if correction_of not in published:
            msg = (
                f"assessment {self.subject}: correction_of names {correction_of}, which is not "
                f"a {what} of this period (published: {', '.join(published)})"
            )
            raise DomainError(msg)
        if data["document_ref"] in published:
            msg = (
                f"assessment {self.subject}: {data['document_ref']} was already published; "
                "a correction needs its own document_ref"
            )
            raise DomainError(msg)

    # --- queries ---------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once the period was closed."""
        return self.closed_at is not None

    @property
    def composite_adjustment(self) -> float:
        """Bonuses minus deductions recorded so far."""
        return round(self.bonus_total - self.deduction_total, 6)


def services(config: Mapping[str, Any]) -> dict[str, Any]:
    """Register the network's time zone, which decides where periods start and end."""
    name = config.get("timezone") or DEFAULT_TIMEZONE
    try:
        zone = ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        msg = f"timezone {name!r} is not an IANA time zone name (e.g. Asia/Shanghai)"
        raise ConfigurationError(msg) from None
    return {TIMEZONE_SERVICE: zone}
