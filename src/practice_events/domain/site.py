"""Sites of the practice network and the six-haves standard they are assessed against.

The network is a tree: the district practice centre (中心), institutes (所),
stations (站), bases (基地), volunteer service posts (岗) and house-meeting
sites (屋场). Every site should meet the "six-haves" standard (六有: 有场所、
有计划、有队伍、有项目、有制度、有记录 — a site, a plan, a team, projects,
rules, records). Counties word and weigh the items differently, so the
standard is a versioned :class:`Checklist` aggregate; a :class:`Site` records
each assessment against a checklist version on the A / B / C / C# state scale
of national civilization assessments (1 / 0.66 / 0.33 / 0 of an item's
weight).

What a command can and cannot check: an aggregate sees only its own history.
So a site checks that it is active, but not that its parent has the right
level (institute under centre, station under institute ...) and an
assessment is not matched against the checklist's items; the ingest pipeline
checks that the parent and the checklist exist, and the network and
scorecard projections, which see everything, check the rest.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

from practice_events.domain.base import DomainContext, Meta, PracticeAggregate
from practice_events.errors import DomainError

RATING_VALUES: Mapping[str, float] = {"A": 1.0, "B": 0.66, "C": 0.33, "C#": 0.0}
"""Share of an item's weight that each state rating earns (文明测评 A/B/C/C#)."""


class Site(PracticeAggregate):
    """A site of the network: its place in the tree, whether it operates, its assessments."""

    TOPIC = "practice.aggregate.site"
    KIND = "site"
    CREATED_BY = "practice.site.registered.v1"
    HANDLES: ClassVar[Mapping[str, str]] = {
        "practice.site.updated.v1": "update",
        "practice.site.deactivated.v1": "deactivate",
        "practice.site.standard_assessed.v1": "assess_standard",
    }

    def __init__(self) -> None:
        """Declare the state; the creation event fills it in."""
        self.level = ""
        self.parent_id: str | None = None
        self.name = ""
        self.geo: dict[str, Any] | None = None
        self.address: str | None = None
        self.active = True
        self.deactivated_at: str | None = None
        self.deactivation_reason: str | None = None
        self.last_assessment: dict[str, Any] | None = None
        self.assessment_count = 0

    class Created(PracticeAggregate.Created):
        """The site was registered."""

        TOPIC = "practice.site.registered.v1"

        def init(self, agg: Site) -> None:
            """Take level, parent, name and place from the registration."""
            agg.level = self.data["level"]
            agg.parent_id = self.data.get("parent_id")
            agg.name = self.data["name"]
            agg.geo = self.data.get("geo")
            agg.address = self.data.get("address")

    class Updated(PracticeAggregate.Event):
        """The site's name, position or address changed."""

        TOPIC = "practice.site.updated.v1"

        def apply(self, agg: Site) -> None:
            """Overwrite the fields that were sent."""
            if "name" in self.data:
                agg.name = self.data["name"]
            if "geo" in self.data:
                agg.geo = self.data["geo"]
            if "address" in self.data:
                agg.address = self.data["address"]

    class Deactivated(PracticeAggregate.Event):
        """The site stopped operating."""

        TOPIC = "practice.site.deactivated.v1"

        def apply(self, agg: Site) -> None:
            """Mark the site inactive, keeping when and why."""
            agg.active = False
            agg.deactivated_at = self.meta.get("time")
            agg.deactivation_reason = self.data["reason"]

    class StandardAssessed(PracticeAggregate.Event):
        """The site was assessed against a checklist version."""

        TOPIC = "practice.site.standard_assessed.v1"

        def apply(self, agg: Site) -> None:
            """Keep the latest assessment (the scorecards use the latest within 12 months)."""
            agg.last_assessment = {
                "checklist_id": self.data["checklist_id"],
                "checklist_version": self.data["checklist_version"],
                "assessed_at": self.meta.get("time"),
                "ratings": {item["code"]: item["rating"] for item in self.data["items"]},
                "score_unweighted": self.data["score_unweighted"],
            }
            agg.assessment_count += 1

    # --- commands ------------------------------------------------------------------

    def update(self, data: dict[str, Any], meta: Meta, ctx: DomainContext) -> None:
        """Change name, position or address of an operating site."""
        self._require_active("updated")
        self.emit(self.Updated, data, meta)

    def deactivate(self, data: dict[str, Any], meta: Meta, ctx: DomainContext) -> None:
        """Record that the site stopped operating (once)."""
        if not self.active:
            self.refuse(f"was already deactivated at {self.deactivated_at}")
        self.emit(self.Deactivated, data, meta)

    def assess_standard(self, data: dict[str, Any], meta: Meta, ctx: DomainContext) -> None:
        """Record a six-haves assessment with the scale used and the unweighted mean.

        The checklist's weights live in the checklist aggregate, which a
        command does not read; the projections weight the ratings by the
        checklist version named in the event. The scale and the unweighted
        mean are written into the event so that a replay never depends on
        the constants of this module.
        """
        self._require_active("assessed")
        values = [RATING_VALUES[item["rating"]] for item in data["items"]]
        enriched = dict(data)
        enriched["rating_values"] = dict(RATING_VALUES)
        enriched["score_unweighted"] = round(math.fsum(values) / len(values), 4)
        self.emit(self.StandardAssessed, enriched, meta)

    def _require_active(self, verb: str) -> None:
        if not self.active:
            self.refuse(
                f"is deactivated (since {self.deactivated_at}) and cannot be {verb}; "
                "register a new site if it operates again"
            )

    # --- queries -------------------------------------------------------------------

    @property
    def is_centre(self) -> bool:
        """True for the root of the network."""
        return self.level == "centre"


class Checklist(PracticeAggregate):
    """A site-standard checklist (the six-haves) and its versions.

    The aggregate keeps the current version; the item lists of earlier
    versions stay in its events, where the projections read them.
    """

    TOPIC = "practice.aggregate.checklist"
    KIND = "checklist"
    CREATED_BY = "practice.site.checklist_published.v1"
    HANDLES: ClassVar[Mapping[str, str]] = {
        "practice.site.checklist_revised.v1": "revise",
    }

    def __init__(self) -> None:
        """Declare the state; the publication event fills it in."""
        self.version = 0
        self.title = ""
        self.items: list[dict[str, Any]] = []
        self.published_at: str | None = None
        self.revised_at: str | None = None

    class Created(PracticeAggregate.Created):
        """The checklist was published at version 1."""

        TOPIC = "practice.site.checklist_published.v1"

        def init(self, agg: Checklist) -> None:
            """Take version, title and items from the publication."""
            agg.version = self.data["version"]
            agg.title = self.data["title"]
            agg.items = self.data["items"]
            agg.published_at = self.meta.get("time")

    class Revised(PracticeAggregate.Event):
        """A new version of the checklist was published."""

        TOPIC = "practice.site.checklist_revised.v1"

        def apply(self, agg: Checklist) -> None:
            """Make the new version current."""
            agg.version = self.data["version"]
            agg.title = self.data["title"]
            agg.items = self.data["items"]
            agg.revised_at = self.meta.get("time")

    def revise(self, data: dict[str, Any], meta: Meta, ctx: DomainContext) -> None:
        """Publish the next version (previous + 1); keep the title unless a new one is sent."""
        expected = self.version + 1
        if data["version"] != expected:
            msg = (
                f"checklist {self.subject}: version {data['version']} cannot follow version "
                f"{self.version}; the next version is {expected}"
            )
            raise DomainError(msg, code="OUT_OF_RANGE")
        enriched = dict(data)
        enriched.setdefault("title", self.title)
        self.emit(self.Revised, enriched, meta)

    # --- queries -------------------------------------------------------------------

    @property
    def weights(self) -> dict[str, float]:
        """Item code -> weight of the current version."""
        return {item["code"]: item["weight"] for item in self.items}

    def score(self, ratings: Mapping[str, str]) -> float:
        """Weighted six-haves score Σ wᵢ·rᵢ of ``ratings`` (code -> A|B|C|C#) on this version.

        Items without a rating count as C# (not met): an assessment that
        skips an item must not score higher than one that rates it.
        """
        return math.fsum(
            item["weight"] * RATING_VALUES.get(ratings.get(item["code"], "C#"), 0.0)
            for item in self.items
        )
