"""Contracts of the activity area: monthly themes and practice activities.

一月一主题 ("one theme a month"): each unit of the practice network sets a theme
for the month (civility campaigns, "our festivals", care for left-behind
children ...), and its sites organise activities under it. Scorecards then
ask, per month, whether at least one completed activity carried that month's
theme, and how often a site held activities at all.

An activity is planned at a site, then completed (with the number of people
served and evidence) or cancelled; residents, beneficiaries and supervisors
may rate a completed activity.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from practice_events.contracts.base import (
    Code,
    EventData,
    Evidence,
    Identifier,
    Month,
    NonNegativeInt,
    Rating,
    ShortText,
    Text,
    Timestamp,
    contract,
)

RaterKind = Literal["beneficiary", "resident", "supervisor"]
"""Who rated an activity."""

Slots = Annotated[int, Field(ge=1, le=100_000)]
"""How many volunteers an activity asks for."""

MAX_EVIDENCE = 50
"""At most this many pieces of evidence per event."""


@contract
class ThemeSet(EventData):
    """A unit set its theme for a month (一月一主题).

    Sent by the centre, an institute or a station when it announces the
    month's theme; the subject names the unit and month, e.g. ``WLY:2024-03``.
    Activities carry the theme's code so that monthly-theme compliance can be
    counted.
    """

    TYPE: ClassVar[str] = "practice.activity.theme_set.v1"
    AGGREGATE: ClassVar[str] = "theme"
    CREATES: ClassVar[bool] = True
    REFERENCES: ClassVar[dict[str, str]] = {"unit_id": "site"}

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "unit_id": "WLY",
                    "month": "2024-03",
                    "theme_code": "learn_from_lei_feng",
                    "title": "学雷锋志愿服务月",
                }
            ]
        }
    )

    unit_id: Identifier = Field(description="The site (centre, institute, station) setting it.")
    month: Month = Field(description="The month the theme is for, YYYY-MM (network time zone).")
    theme_code: Code = Field(description="Code of the theme; activities under it carry this code.")
    title: ShortText = Field(description="The theme as announced, e.g. 学雷锋志愿服务月.")


@contract
class ThemeRevised(EventData):
    """A month's theme was renamed or re-coded before or during that month.

    Once the month is over the theme is history: scorecards for that month
    have been counted against it, so it can no longer change.
    """

    TYPE: ClassVar[str] = "practice.activity.theme_revised.v1"
    AGGREGATE: ClassVar[str] = "theme"

    model_config = ConfigDict(json_schema_extra={"examples": [{"title": "学雷锋·文明实践月"}]})

    title: ShortText | None = Field(default=None, description="New title of the theme.")
    theme_code: Code | None = Field(default=None, description="New code of the theme.")

    @model_validator(mode="after")
    def _something_changes(self) -> ThemeRevised:
        if self.title is None and self.theme_code is None:
            raise PydanticCustomError(
                "value_error", "send a new title or theme_code (or both) to revise a theme"
            )
        return self


@contract
class ActivityPlanned(EventData):
    """A practice activity was planned at a site (the activity's first event).

    Sent when a site or team publishes an activity. The month of ``starts_at``
    in the network's time zone is stored with it (as ``month``), so monthly
    counts never shift if the zone setting changes later.
    """

    TYPE: ClassVar[str] = "practice.activity.planned.v1"
    AGGREGATE: ClassVar[str] = "activity"
    CREATES: ClassVar[bool] = True
    REFERENCES: ClassVar[dict[str, str]] = {"site_id": "site", "team_id": "team"}

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "site_id": "WLY-ZHAN-03",
                    "theme_code": "learn_from_lei_feng",
                    "category": "civility_persuasion",
                    "title": "景区文明劝导",
                    "starts_at": "2024-03-05T09:00:00+08:00",
                    "ends_at": "2024-03-05T12:00:00+08:00",
                    "slots": 20,
                }
            ]
        }
    )

    site_id: Identifier = Field(description="The site where the activity takes place.")
    theme_code: Code | None = Field(
        default=None, description="Code of the monthly theme the activity serves, if any."
    )
    category: Code = Field(description="Kind of activity from the service menu.")
    title: ShortText = Field(description="Title of the activity.")
    starts_at: Timestamp = Field(description="When it starts (RFC 3339 with offset).")
    ends_at: Timestamp = Field(description="When it ends; after starts_at.")
    slots: Slots | None = Field(default=None, description="How many volunteers it asks for.")
    team_id: Identifier | None = Field(
        default=None, description="The volunteer team that runs it, if one does."
    )
    description: Text | None = Field(default=None, description="What will be done (no names).")

    @model_validator(mode="after")
    def _starts_before_it_ends(self) -> ActivityPlanned:
        if self.ends_at <= self.starts_at:
            raise PydanticCustomError("out_of_range", "ends_at must be later than starts_at")
        return self


@contract
class ActivityCancelled(EventData):
    """A planned activity was called off before it was completed."""

    TYPE: ClassVar[str] = "practice.activity.cancelled.v1"
    AGGREGATE: ClassVar[str] = "activity"

    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "heavy rain warning"}]})

    reason: Text = Field(description="Why it was cancelled.")


@contract
class ActivityCompleted(EventData):
    """A planned activity took place and is complete.

    Sent once, after the activity; counts toward activity frequency and
    monthly-theme compliance. Evidence (photos, sign-in sheets kept elsewhere)
    makes the record credible for assessments.
    """

    TYPE: ClassVar[str] = "practice.activity.completed.v1"
    AGGREGATE: ClassVar[str] = "activity"

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "served_count": 320,
                    "beneficiaries_count": 300,
                    "summary": "劝导不文明行为 41 起",
                    "evidence": [{"uri": "https://files.example/a/123.jpg", "kind": "photo"}],
                }
            ]
        }
    )

    served_count: NonNegativeInt = Field(description="People served (visitors, residents).")
    beneficiaries_count: NonNegativeInt | None = Field(
        default=None, description="Of those, direct beneficiaries, if counted."
    )
    summary: Text | None = Field(default=None, description="What was done (no personal data).")
    evidence: list[Evidence] = Field(
        default_factory=list,
        max_length=MAX_EVIDENCE,
        description="Photos or documents kept elsewhere (where they are and their hash).",
    )

    @model_validator(mode="after")
    def _beneficiaries_among_served(self) -> ActivityCompleted:
        if self.beneficiaries_count is not None and self.beneficiaries_count > self.served_count:
            raise PydanticCustomError(
                "out_of_range",
                "beneficiaries_count ({b}) cannot exceed served_count ({s})",
                {"b": self.beneficiaries_count, "s": self.served_count},
            )
        return self


@contract
class ActivityFeedbackGiven(EventData):
    """Someone rated a completed activity (1..5).

    Beneficiaries, residents and supervisors may each rate; a rating is only
    meaningful once the activity has taken place.
    """

    TYPE: ClassVar[str] = "practice.activity.feedback_given.v1"
    AGGREGATE: ClassVar[str] = "activity"

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"rater_kind": "beneficiary", "rating": 5}]}
    )

    rater_kind: RaterKind = Field(description="Who rated: beneficiary, resident or supervisor.")
    rating: Rating = Field(description="Satisfaction from 1 (poor) to 5 (excellent).")
    comment: Text | None = Field(default=None, description="Free comment (no personal data).")
