"""Contracts of the site area: the practice network, its sites and the six-haves standard.

A district's new-era civilization practice network is a tree of sites: one
practice *centre* (中心), *institutes* (所) in the townships, *stations* (站) in
the villages and communities, plus *bases* (基地), volunteer service *posts*
(岗) and *house-meeting sites* (屋场, where 屋场会 house meetings are held).

Every site should meet the "six-haves" standard (六有): 有场所、有计划、有队伍、
有项目、有制度、有记录 (a site, a plan, a team, projects, rules, records).
Counties word the six items differently (Zoucheng has 有管理 instead of
有计划), so the standard is *data*: a versioned checklist
(``checklist_published`` / ``checklist_revised``) whose items carry weights.
An assessment (``standard_assessed``) rates each item on the state scale of
the national civilization assessments, A / B / C / C# (worth 1 / 0.66 / 0.33 /
0 of the item's weight).
"""

from __future__ import annotations

import math
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator
from pydantic_core import PydanticCustomError

from practice_events.contracts.base import (
    Code,
    EventData,
    Evidence,
    GeoPoint,
    Identifier,
    ShortText,
    Text,
    contract,
)

SiteLevel = Literal["centre", "institute", "station", "base", "post", "house_meeting_site"]
"""The levels of the network, from the district centre down to a house-meeting site."""

StateRating = Literal["A", "B", "C", "C#"]
"""The state scale of civilization assessments: A fully met ... C# not met."""

AssessmentMethod = Literal["onsite", "document", "photo", "survey"]
"""How an assessment was made: 实地考察, 材料审核, 图片资料, 问卷调查."""

Version = Annotated[int, Field(ge=1, le=1_000_000)]
"""A checklist version: 1, 2, 3 ..."""

WEIGHT_TOLERANCE = 0.001
"""How far the item weights of a checklist may sum away from 1 (rounding in spreadsheets)."""

MAX_ITEMS = 100
"""At most this many items in a checklist or an assessment."""

MAX_EVIDENCE = 50
"""At most this many pieces of evidence per item or per event."""


class Part(BaseModel):
    """Base of the objects nested in event payloads: frozen, no unknown fields."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _unique(codes: list[str], what: str) -> None:
    """Refuse a list of item codes that names one code twice."""
    seen: set[str] = set()
    for code in codes:
        if code in seen:
            raise PydanticCustomError(
                "value_error",
                "item code {code} appears twice in {what}",
                {"code": code, "what": what},
            )
        seen.add(code)


@contract
class SiteRegistered(EventData):
    """A site of the practice network was registered (the site's first event).

    Sent when a centre, institute, station, base, post or house-meeting site is
    set up, so that activities, meetings, volunteers and findings can name it.
    Every site except the centre hangs under a parent site. The parent must
    already exist (the reference check); that its level is the right one
    (institute under centre, station under institute, base/post under station
    or institute, house-meeting site under station) needs the parent's state,
    which a command does not read, so it is checked by the network views, not
    here.
    """

    TYPE: ClassVar[str] = "practice.site.registered.v1"
    AGGREGATE: ClassVar[str] = "site"
    CREATES: ClassVar[bool] = True
    REFERENCES: ClassVar[dict[str, str]] = {"parent_id": "site"}

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "level": "station",
                    "parent_id": "WLY-SUO-01",
                    "name": "军地坪街道文明实践站",
                    "geo": {"lat": 29.345, "lon": 110.548},
                }
            ]
        }
    )

    level: SiteLevel = Field(description="Level of the site in the network.")
    parent_id: Identifier | None = Field(
        default=None,
        description="The site this one belongs to; required for every level except centre.",
    )
    name: ShortText = Field(description="Official name of the site, e.g. 索溪峪街道文明实践所.")
    geo: GeoPoint | None = Field(
        default=None, description="Position of the site (for geofenced check-ins)."
    )
    address: ShortText | None = Field(default=None, description="Postal address of the site.")

    @model_validator(mode="after")
    def _parent_matches_level(self) -> SiteRegistered:
        if self.level == "centre" and self.parent_id is not None:
            raise PydanticCustomError(
                "value_error", "a centre is the root of the network and has no parent_id"
            )
        if self.level != "centre" and self.parent_id is None:
            raise PydanticCustomError(
                "value_error",
                "parent_id is required for a {level}: name the site it belongs to",
                {"level": self.level},
            )
        return self


@contract
class SiteUpdated(EventData):
    """A site's name, position or address changed.

    Only the fields sent change; at least one must be sent. The level and the
    parent are not changed this way: moving a site in the tree changes every
    roll-up, so it is done by deactivating it and registering a new one.
    """

    TYPE: ClassVar[str] = "practice.site.updated.v1"
    AGGREGATE: ClassVar[str] = "site"

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "军地坪街道新时代文明实践站"}]}
    )

    name: ShortText | None = Field(default=None, description="New name of the site.")
    geo: GeoPoint | None = Field(default=None, description="New position of the site.")
    address: ShortText | None = Field(default=None, description="New postal address.")

    @model_validator(mode="after")
    def _something_changes(self) -> SiteUpdated:
        if self.name is None and self.geo is None and self.address is None:
            raise PydanticCustomError(
                "value_error", "send at least one of name, geo or address to update a site"
            )
        return self


@contract
class SiteDeactivated(EventData):
    """A site stopped operating (merged, closed, moved).

    Its history stays; it can no longer be updated or assessed. There is no
    delete: scorecards of past periods still count it.
    """

    TYPE: ClassVar[str] = "practice.site.deactivated.v1"
    AGGREGATE: ClassVar[str] = "site"

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"reason": "merged into station WLY-ZHAN-07"}]}
    )

    reason: Text = Field(description="Why the site stopped operating.")


class AssessedItem(Part):
    """The rating of one checklist item in a six-haves assessment."""

    code: Code = Field(description="Code of the checklist item, e.g. has_site.")
    rating: StateRating = Field(
        description="State rating: A (met, 1), B (mostly, 0.66), C (partly, 0.33), C# (not met, 0)."
    )
    evidence: list[Evidence] = Field(
        default_factory=list,
        max_length=MAX_EVIDENCE,
        description="Photos or documents supporting the rating (where they are and their hash).",
    )


@contract
class SiteStandardAssessed(EventData):
    """A site was assessed against a version of the six-haves checklist.

    Sent by the inspection app after a visit, a document review, a photo
    review or a survey. Each item of the checklist gets a state rating. The
    stored event adds ``rating_values`` (the scale used, A/B/C/C# = 1/0.66/
    0.33/0) and ``score_unweighted`` (the mean of the items' values); the
    weighted compliance score is computed by the scorecard projections, which
    read the checklist version's weights. That the codes match the items of
    that checklist version is also checked there: a site cannot read the
    checklist.
    """

    TYPE: ClassVar[str] = "practice.site.standard_assessed.v1"
    AGGREGATE: ClassVar[str] = "site"
    REFERENCES: ClassVar[dict[str, str]] = {"checklist_id": "checklist"}

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "checklist_id": "six-haves",
                    "checklist_version": 1,
                    "items": [
                        {"code": "has_site", "rating": "A"},
                        {"code": "has_plan", "rating": "B"},
                        {"code": "has_team", "rating": "A"},
                        {"code": "has_project", "rating": "C"},
                        {"code": "has_rules", "rating": "A"},
                        {"code": "has_records", "rating": "C#"},
                    ],
                    "assessor_id": "INSP-017",
                    "method": "onsite",
                }
            ]
        }
    )

    checklist_id: Identifier = Field(description="The checklist used, e.g. six-haves.")
    checklist_version: Version = Field(description="The version of that checklist used.")
    items: list[AssessedItem] = Field(
        min_length=1, max_length=MAX_ITEMS, description="One rating per checklist item."
    )
    assessor_id: Identifier = Field(
        description="Staff or inspector id of who assessed (an id, never a name)."
    )
    method: AssessmentMethod = Field(
        description="How: onsite visit, document review, photo review or survey."
    )

    @model_validator(mode="after")
    def _codes_unique(self) -> SiteStandardAssessed:
        _unique([item.code for item in self.items], "the assessment")
        return self


class ChecklistItem(Part):
    """One item of a site-standard checklist and its weight."""

    code: Code = Field(description="Stable code of the item, e.g. has_site.")
    label: ShortText = Field(description="The item as the county words it, e.g. 有场所.")
    weight: float = Field(
        gt=0, le=1, allow_inf_nan=False, description="Share of the item in the score (0 < w ≤ 1)."
    )
    evidence_required: bool = Field(
        default=False, description="Whether a rating of this item must come with evidence."
    )


def _check_items(items: list[ChecklistItem]) -> None:
    """Refuse duplicate codes and weights that do not sum to 1."""
    _unique([item.code for item in items], "the checklist")
    total = math.fsum(item.weight for item in items)
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        raise PydanticCustomError(
            "out_of_range",
            "item weights must sum to 1 (±{tolerance}), they sum to {total}",
            {"tolerance": WEIGHT_TOLERANCE, "total": round(total, 6)},
        )


_SIX_HAVES_EXAMPLE: list[JsonValue] = [
    {"code": "has_site", "label": "有场所", "weight": 0.2},
    {"code": "has_plan", "label": "有计划", "weight": 0.15},
    {"code": "has_team", "label": "有队伍", "weight": 0.2},
    {"code": "has_project", "label": "有项目", "weight": 0.15},
    {"code": "has_rules", "label": "有制度", "weight": 0.1},
    {"code": "has_records", "label": "有记录", "weight": 0.2},
]


@contract
class ChecklistPublished(EventData):
    """A site-standard checklist (such as the six-haves) was published at version 1.

    The checklist is data because counties word and weigh the items
    differently. Its weights must sum to 1, so that a fully met checklist
    scores 1.
    """

    TYPE: ClassVar[str] = "practice.site.checklist_published.v1"
    AGGREGATE: ClassVar[str] = "checklist"
    CREATES: ClassVar[bool] = True

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"version": 1, "title": "六有标准", "items": _SIX_HAVES_EXAMPLE}]
        }
    )

    version: Version = Field(description="Always 1: later versions are checklist_revised.")
    title: ShortText = Field(description="Title of the checklist, e.g. 六有标准.")
    items: list[ChecklistItem] = Field(
        min_length=1, max_length=MAX_ITEMS, description="The items and their weights (sum 1)."
    )

    @model_validator(mode="after")
    def _valid(self) -> ChecklistPublished:
        if self.version != 1:
            raise PydanticCustomError(
                "out_of_range",
                "a checklist is published at version 1; send checklist_revised for version {v}",
                {"v": self.version},
            )
        _check_items(self.items)
        return self


@contract
class ChecklistRevised(EventData):
    """A new version of a site-standard checklist was published.

    The version must be the previous one plus one. Earlier assessments keep
    the version they were made against; nothing is rewritten. The stored
    event always carries ``title`` (the previous one when none was sent).
    """

    TYPE: ClassVar[str] = "practice.site.checklist_revised.v1"
    AGGREGATE: ClassVar[str] = "checklist"

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "version": 2,
                    "title": "六有标准（2024年修订）",
                    "items": _SIX_HAVES_EXAMPLE,
                    "note": "weights aligned with the 2024 assessment rules",
                }
            ]
        }
    )

    version: int = Field(ge=2, le=1_000_000, description="The new version: previous + 1.")
    title: ShortText | None = Field(
        default=None, description="New title; the previous title is kept if absent."
    )
    items: list[ChecklistItem] = Field(
        min_length=1,
        max_length=MAX_ITEMS,
        description="The complete item list of the new version (sum of weights 1).",
    )
    note: Text | None = Field(default=None, description="What changed and why.")

    @model_validator(mode="after")
    def _valid(self) -> ChecklistRevised:
        _check_items(self.items)
        return self
