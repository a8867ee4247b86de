"""Contracts of the needs loop: residents' needs, micro-wishes and the service menu.

A *need* is something a resident or household asks the practice network for:
a repair, a visit, help with a form, a lesson. Needs arrive through several
channels: raised at a house meeting (屋场会), posted as a **micro-wish**
(微心愿), entered in the app, phoned to the hotline, noted on a door-to-door
visit, or ordered from the station's **service menu** (服务菜单).

微心愿 (micro-wishes) are small, concrete wishes of residents (often elderly
people, left-behind children, families in difficulty) that a station posts on
a *wish wall* (心愿墙) where volunteers and teams can claim them. Practice
platforms describe the whole loop in four words:

* **点单** (ordering): the resident submits the need;
* **派单 / 抢单** (dispatching / grabbing): the station assigns it to a team or
  volunteer, or lists it on the wish wall where a volunteer claims it;
* **接单** (taking the order): the team or volunteer delivers the service,
  possibly over several visits;
* **评单** (rating the order): the need is closed and the resident rates it.

The events below record each step; the ``need`` aggregate enforces their
order. The resident is never named: ``beneficiary_ref`` is an opaque reference
into a separate, erasable store.
"""

from __future__ import annotations

from typing import ClassVar, Literal, Self

from pydantic import ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from practice_events.contracts.base import (
    Code,
    EventData,
    Evidence,
    Hours,
    Identifier,
    Rating,
    Text,
    Timestamp,
    contract,
)

Channel = Literal["house_meeting", "micro_wish", "app", "hotline", "visit", "service_menu"]
"""How a need reached the network."""

Urgency = Literal["low", "normal", "high"]
"""How soon the need should be served."""

Outcome = Literal["fulfilled", "withdrawn", "unfulfillable"]
"""How a need ended."""

_TEAM = Field(
    default=None, description="The team that takes the need (exactly one of team_id, volunteer_no)."
)
_VOLUNTEER = Field(
    default=None,
    description="The volunteer number of the volunteer who takes the need "
    "(exactly one of team_id, volunteer_no).",
)


class _OneAssignee(EventData):
    """A payload naming exactly one assignee: a team or a volunteer."""

    team_id: Identifier | None = _TEAM
    volunteer_no: Identifier | None = _VOLUNTEER

    @model_validator(mode="after")
    def _exactly_one_assignee(self) -> Self:
        if (self.team_id is None) == (self.volunteer_no is None):
            raise PydanticCustomError(
                "value_error",
                "name exactly one assignee: either team_id or volunteer_no, not both or neither",
            )
        return self


@contract
class NeedSubmitted(EventData):
    """A resident's need was submitted (点单); this creates the need.

    The subject is the need id. A need converted from a house-meeting concern
    names the meeting (and the concern); it then must come through the
    ``house_meeting`` channel. The need waits in SUBMITTED until the station
    accepts or rejects it.
    """

    TYPE: ClassVar[str] = "practice.need.submitted.v1"
    AGGREGATE: ClassVar[str] = "need"
    CREATES: ClassVar[bool] = True
    REFERENCES: ClassVar[dict[str, str]] = {"site_id": "site", "meeting_id": "meeting"}

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "site_id": "S-HT-03",
                    "channel": "micro_wish",
                    "category": "home_repair",
                    "summary": "Replace the broken kitchen light of an elderly resident.",
                    "urgency": "normal",
                    "beneficiary_ref": "BR-7f3a21",
                }
            ]
        }
    )

    site_id: Identifier = Field(
        description="The site (station, post ...) responsible for the need."
    )
    channel: Channel = Field(
        description="How the need arrived: house_meeting, micro_wish (wish wall), app, "
        "hotline, visit (door-to-door) or service_menu."
    )
    category: Code = Field(description="The kind of service needed, from the controlled list.")
    summary: Text = Field(description="What is needed, without personal data.")
    urgency: Urgency = Field(default="normal", description="low, normal or high.")
    beneficiary_ref: Identifier | None = Field(
        default=None,
        description="An opaque reference to the beneficiary in the erasable personal-data "
        "store; never a name, phone or ID number.",
    )
    meeting_id: Identifier | None = Field(
        default=None,
        description="The house meeting at which the need was raised, when converted from a "
        "meeting concern.",
    )
    concern_id: Identifier | None = Field(
        default=None,
        description="The concern (within meeting_id) this need was converted from.",
    )

    @model_validator(mode="after")
    def _meeting_link(self) -> Self:
        if self.concern_id is not None and self.meeting_id is None:
            raise PydanticCustomError(
                "value_error",
                "concern_id needs meeting_id: name the meeting the concern was raised at",
            )
        if self.meeting_id is not None and self.channel != "house_meeting":
            raise PydanticCustomError(
                "value_error",
                "a need converted from a house meeting (meeting_id set) must use channel "
                "'house_meeting'",
            )
        return self


@contract
class NeedAccepted(EventData):
    """The station accepted the need: it is valid and the network will serve it.

    Only a SUBMITTED need can be accepted. Acceptance starts the clock of
    "time to serve".
    """

    TYPE: ClassVar[str] = "practice.need.accepted.v1"
    AGGREGATE: ClassVar[str] = "need"

    model_config = ConfigDict(json_schema_extra={"examples": [{"by": "S-HT-03"}]})

    by: Identifier = Field(
        description="The unit (or staff account reference) that accepted the need; not a name."
    )


@contract
class NeedRejected(EventData):
    """The station rejected the need, with a reason (已拒绝); this ends it.

    Only a SUBMITTED need can be rejected. ``visible_to_requester`` says
    whether the reason is shown to the resident (it usually is; a reason
    naming a third party may be kept internal).
    """

    TYPE: ClassVar[str] = "practice.need.rejected.v1"
    AGGREGATE: ClassVar[str] = "need"

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"reason": "Outside the station's service area.", "visible_to_requester": True}
            ]
        }
    )

    reason: Text = Field(description="Why the need was rejected, in words a resident understands.")
    visible_to_requester: bool = Field(
        default=True, description="Whether the reason is shown to the requester."
    )


@contract
class NeedListedOnWishWall(EventData):
    """An accepted need was posted on the wish wall (心愿墙), where it can be claimed.

    Only an ACCEPTED need that is not yet on the wall can be listed. Listing
    is what makes a need claimable (抢单).
    """

    TYPE: ClassVar[str] = "practice.need.listed_on_wish_wall.v1"
    AGGREGATE: ClassVar[str] = "need"

    model_config = ConfigDict(json_schema_extra={"examples": [{}]})

    note: Text | None = Field(
        default=None, description="Optional text shown with the wish (no personal data)."
    )


@contract
class NeedDispatched(_OneAssignee):
    """The station assigned an accepted need to one team or one volunteer (派单).

    Only an ACCEPTED need can be dispatched (listed on the wish wall or not:
    dispatching takes it off the wall). ``due_at``, if given, must lie after
    the event's time.
    """

    TYPE: ClassVar[str] = "practice.need.dispatched.v1"
    AGGREGATE: ClassVar[str] = "need"
    REFERENCES: ClassVar[dict[str, str]] = {"team_id": "team", "volunteer_no": "volunteer"}

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"team_id": "T-REPAIR-01", "mode": "assign", "due_at": "2024-03-08T18:00:00+08:00"}
            ]
        }
    )

    mode: Literal["assign"] = Field(
        default="assign",
        description="How the need was handed out; 'assign' (claims use need.claimed).",
    )
    due_at: Timestamp | None = Field(
        default=None, description="When the service should be delivered by (with offset)."
    )


@contract
class NeedClaimed(_OneAssignee):
    """A team or volunteer claimed a need from the wish wall (抢单).

    Only an ACCEPTED need that is listed on the wish wall can be claimed;
    the first claim wins and later claims are refused.
    """

    TYPE: ClassVar[str] = "practice.need.claimed.v1"
    AGGREGATE: ClassVar[str] = "need"
    REFERENCES: ClassVar[dict[str, str]] = {"team_id": "team", "volunteer_no": "volunteer"}

    model_config = ConfigDict(json_schema_extra={"examples": [{"volunteer_no": "V3301020001"}]})


@contract
class NeedRedispatched(_OneAssignee):
    """A dispatched or claimed need was handed to another team or volunteer (改派).

    Only a DISPATCHED or CLAIMED need can be re-dispatched, only to a
    different assignee, and only with a reason. The aggregate records the
    previous assignee (``from_team_id`` / ``from_volunteer_no``) and the
    running ``redispatch_count`` in the stored data, so projections can
    charge the re-dispatch rate to the right party without replaying.
    """

    TYPE: ClassVar[str] = "practice.need.redispatched.v1"
    AGGREGATE: ClassVar[str] = "need"
    REFERENCES: ClassVar[dict[str, str]] = {"team_id": "team", "volunteer_no": "volunteer"}

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "volunteer_no": "V3301020002",
                    "reason": "The first volunteer is ill this week.",
                }
            ]
        }
    )

    reason: Text = Field(description="Why the need was handed to someone else.")
    due_at: Timestamp | None = Field(
        default=None, description="A new due time for the service, if it changed."
    )


@contract
class ServiceDelivered(EventData):
    """A team or volunteer delivered (part of) the service for a need (接单 done).

    Allowed while the need is DISPATCHED or CLAIMED; a need may take several
    deliveries (visits). At least one of ``volunteer_no`` and ``team_id``
    says who served. The hours are what this delivery took; crediting them
    to a volunteer's record is the attendance area's business.
    """

    TYPE: ClassVar[str] = "practice.need.service_delivered.v1"
    AGGREGATE: ClassVar[str] = "need"
    REFERENCES: ClassVar[dict[str, str]] = {"team_id": "team", "volunteer_no": "volunteer"}

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "volunteer_no": "V3301020001",
                    "hours": 1.5,
                    "summary": "Replaced the kitchen light and checked the wiring.",
                    "evidence": [
                        {"uri": "oss://evidence/2024/03/need-118-after.jpg", "kind": "photo"}
                    ],
                }
            ]
        }
    )

    volunteer_no: Identifier | None = Field(
        default=None, description="The volunteer number of the volunteer who served."
    )
    team_id: Identifier | None = Field(default=None, description="The team that served.")
    hours: Hours = Field(description="Hours this delivery took (0..24).")
    summary: Text | None = Field(default=None, description="What was done (no personal data).")
    evidence: list[Evidence] = Field(
        default_factory=list, max_length=50, description="Photos or documents of the service."
    )

    @model_validator(mode="after")
    def _someone_served(self) -> Self:
        if self.volunteer_no is None and self.team_id is None:
            raise PydanticCustomError(
                "value_error", "name who served: volunteer_no, team_id or both"
            )
        return self


@contract
class NeedClosed(EventData):
    """The need ended with an outcome: fulfilled, withdrawn or unfulfillable.

    ``fulfilled`` needs at least one recorded delivery; ``withdrawn`` (the
    resident no longer needs it) is allowed from any open stage;
    ``unfulfillable`` is allowed once the need was accepted and needs a
    reason. Rejected and closed needs cannot be closed again.
    """

    TYPE: ClassVar[str] = "practice.need.closed.v1"
    AGGREGATE: ClassVar[str] = "need"

    model_config = ConfigDict(json_schema_extra={"examples": [{"outcome": "fulfilled"}]})

    outcome: Outcome = Field(description="fulfilled, withdrawn or unfulfillable.")
    reason: Text | None = Field(
        default=None, description="Why; required when the outcome is unfulfillable."
    )

    @model_validator(mode="after")
    def _reason_when_unfulfillable(self) -> Self:
        if self.outcome == "unfulfillable" and self.reason is None:
            raise PydanticCustomError(
                "value_error", "an unfulfillable need must say why (reason is required)"
            )
        return self


@contract
class NeedRated(EventData):
    """The beneficiary rated the service of a fulfilled need (评单).

    Only a need closed as fulfilled can be rated, and only once.
    """

    TYPE: ClassVar[str] = "practice.need.rated.v1"
    AGGREGATE: ClassVar[str] = "need"

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"rating": 5, "comment": "Quick and friendly."}]}
    )

    rating: Rating = Field(
        description="Satisfaction from 1 (very dissatisfied) to 5 (very satisfied)."
    )
    comment: Text | None = Field(default=None, description="Free comment (no personal data).")
