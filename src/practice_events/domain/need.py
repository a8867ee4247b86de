"""Residents' needs and micro-wishes (微心愿): from the order to the rating.

A need is what a resident asks the practice network for. Platforms of the
practice centres run it as **点单 → 派单/抢单 → 接单 → 评单**:

* **点单** (ordering): the need is submitted (``need.submitted``) through a
  channel: a house meeting, a micro-wish, the app, the hotline, a visit or
  the service menu. The station then accepts it (``need.accepted``) or
  rejects it with a reason (``need.rejected``, 已拒绝).
* **派单** (dispatching): the station assigns an accepted need to one team
  or one volunteer (``need.dispatched``).
* **抢单** (grabbing): alternatively, a micro-wish (微心愿: a small, concrete
  wish of a resident, e.g. a school bag for a left-behind child or a visit
  to an elderly person living alone) is posted on the wish wall
  (``need.listed_on_wish_wall``, 心愿墙) and the first volunteer or team to
  claim it takes it (``need.claimed``).
* **接单** (taking the order): the assignee serves, in one or several visits
  (``need.service_delivered``). A need may be handed to someone else on the
  way (``need.redispatched``, 改派); re-dispatches are counted because the
  re-dispatch rate is an assessment indicator.
* **评单** (rating the order): the need is closed (``need.closed``) as
  fulfilled, withdrawn or unfulfillable, and a fulfilled need may be rated
  once by the beneficiary (``need.rated``, 1..5).

Stages and the events that leave them:

=============  ==================================================================
stage          allowed events
=============  ==================================================================
SUBMITTED      accepted → ACCEPTED; rejected → REJECTED; closed(withdrawn)
ACCEPTED       listed_on_wish_wall (stays ACCEPTED, now claimable);
               dispatched → DISPATCHED; claimed (only if listed) → CLAIMED;
               closed(withdrawn | unfulfillable)
DISPATCHED     service_delivered (any number); redispatched → DISPATCHED;
CLAIMED        closed(fulfilled needs ≥ 1 delivery | withdrawn | unfulfillable)
REJECTED       nothing (final)
CLOSED         rated, once, and only if the outcome is fulfilled
=============  ==================================================================

The aggregate keeps the times the projections need (accepted, dispatched,
first delivery, closed) and the counts (deliveries, re-dispatches, hours);
time-to-serve and the rates are computed by projections from the events'
times, so event data says only what happened, plus the previous assignee
and the running count on a re-dispatch.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, ClassVar

from practice_events.domain.base import DomainContext, Meta, PracticeAggregate, parse_time
from practice_events.errors import DomainError


class Stage(StrEnum):
    """Where a need is in its life."""

    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    DISPATCHED = "dispatched"
    CLAIMED = "claimed"
    CLOSED = "closed"


OPEN_STAGES = frozenset({Stage.SUBMITTED, Stage.ACCEPTED, Stage.DISPATCHED, Stage.CLAIMED})
"""Stages from which a need can still be withdrawn."""

IN_SERVICE = frozenset({Stage.DISPATCHED, Stage.CLAIMED})
"""Stages in which someone is serving the need (接单): deliveries and re-dispatches."""


def assignee_of(data: Mapping[str, Any]) -> tuple[str, str]:
    """Return ``("team", id)`` or ``("volunteer", number)`` from a payload with one assignee."""
    team = data.get("team_id")
    if team is not None:
        return ("team", str(team))
    return ("volunteer", str(data["volunteer_no"]))


def describe(assignee: tuple[str, str] | None) -> str:
    """Return ``team T-1`` or ``volunteer V-7`` for reasons."""
    if assignee is None:
        return "nobody"
    return f"{assignee[0]} {assignee[1]}"


class Need(PracticeAggregate):
    """A resident's need or micro-wish, from submission to rating (subject: the need id)."""

    TOPIC = "practice.aggregate.need"
    KIND = "need"
    CREATED_BY = "practice.need.submitted.v1"
    HANDLES: ClassVar[Mapping[str, str]] = {
        "practice.need.accepted.v1": "accept",
        "practice.need.rejected.v1": "reject",
        "practice.need.listed_on_wish_wall.v1": "list_on_wish_wall",
        "practice.need.dispatched.v1": "dispatch",
        "practice.need.claimed.v1": "claim",
        "practice.need.redispatched.v1": "redispatch",
        "practice.need.service_delivered.v1": "deliver_service",
        "practice.need.closed.v1": "close",
        "practice.need.rated.v1": "rate",
    }

    def __init__(self) -> None:
        """Declare the state; the submission fills it in."""
        self.stage = Stage.SUBMITTED
        self.site_id = ""
        self.channel = ""
        self.category = ""
        self.urgency = "normal"
        self.meeting_id: str | None = None
        self.submitted_at: str | None = None
        self.accepted_at: str | None = None
        self.rejected_at: str | None = None
        self.listed_on_wish_wall = False
        self.assignee: tuple[str, str] | None = None
        self.assigned_at: str | None = None
        self.due_at: str | None = None
        self.redispatch_count = 0
        self.delivery_count = 0
        self.hours_delivered = 0.0
        self.first_delivered_at: str | None = None
        self.closed_at: str | None = None
        self.outcome: str | None = None
        self.rating: int | None = None

    # --- events ----------------------------------------------------------------------

    class Created(PracticeAggregate.Created):
        """The need was submitted (点单)."""

        TOPIC = "practice.need.submitted.v1"

        def init(self, agg: Need) -> None:
            """Take site, channel, category and urgency from the submission."""
            agg.site_id = self.data["site_id"]
            agg.channel = self.data["channel"]
            agg.category = self.data["category"]
            agg.urgency = self.data.get("urgency", "normal")
            agg.meeting_id = self.data.get("meeting_id")
            agg.submitted_at = self.meta.get("time")

    class Accepted(PracticeAggregate.Event):
        """The station accepted the need."""

        TOPIC = "practice.need.accepted.v1"

        def apply(self, agg: Need) -> None:
            """Move to ACCEPTED; the acceptance time starts the time-to-serve clock."""
            agg.stage = Stage.ACCEPTED
            agg.accepted_at = self.meta.get("time")

    class Rejected(PracticeAggregate.Event):
        """The station rejected the need (已拒绝)."""

        TOPIC = "practice.need.rejected.v1"

        def apply(self, agg: Need) -> None:
            """Move to REJECTED, a final stage."""
            agg.stage = Stage.REJECTED
            agg.rejected_at = self.meta.get("time")

    class ListedOnWishWall(PracticeAggregate.Event):
        """The need was posted on the wish wall (心愿墙)."""

        TOPIC = "practice.need.listed_on_wish_wall.v1"

        def apply(self, agg: Need) -> None:
            """Make the need claimable."""
            agg.listed_on_wish_wall = True

    class Dispatched(PracticeAggregate.Event):
        """The need was assigned to a team or volunteer (派单)."""

        TOPIC = "practice.need.dispatched.v1"

        def apply(self, agg: Need) -> None:
            """Move to DISPATCHED with the assignee; take it off the wish wall."""
            agg.stage = Stage.DISPATCHED
            agg.assignee = assignee_of(self.data)
            agg.assigned_at = self.meta.get("time")
            agg.due_at = self.data.get("due_at")
            agg.listed_on_wish_wall = False

    class Claimed(PracticeAggregate.Event):
        """A team or volunteer claimed the need from the wish wall (抢单)."""

        TOPIC = "practice.need.claimed.v1"

        def apply(self, agg: Need) -> None:
            """Move to CLAIMED with the claimant; take it off the wish wall."""
            agg.stage = Stage.CLAIMED
            agg.assignee = assignee_of(self.data)
            agg.assigned_at = self.meta.get("time")
            agg.listed_on_wish_wall = False

    class Redispatched(PracticeAggregate.Event):
        """The need was handed to another team or volunteer (改派)."""

        TOPIC = "practice.need.redispatched.v1"

        def apply(self, agg: Need) -> None:
            """Move to DISPATCHED with the new assignee; count the re-dispatch."""
            agg.stage = Stage.DISPATCHED
            agg.assignee = assignee_of(self.data)
            agg.assigned_at = self.meta.get("time")
            agg.redispatch_count = self.data["redispatch_count"]
            if "due_at" in self.data:
                agg.due_at = self.data["due_at"]

    class ServiceDelivered(PracticeAggregate.Event):
        """A delivery of the service was recorded (接单)."""

        TOPIC = "practice.need.service_delivered.v1"

        def apply(self, agg: Need) -> None:
            """Count the delivery and its hours; keep the first delivery's time."""
            agg.delivery_count += 1
            agg.hours_delivered += float(self.data["hours"])
            if agg.first_delivered_at is None:
                agg.first_delivered_at = self.meta.get("time")

    class Closed(PracticeAggregate.Event):
        """The need ended (fulfilled, withdrawn or unfulfillable)."""

        TOPIC = "practice.need.closed.v1"

        def apply(self, agg: Need) -> None:
            """Move to CLOSED with the outcome."""
            agg.stage = Stage.CLOSED
            agg.outcome = self.data["outcome"]
            agg.closed_at = self.meta.get("time")
            agg.listed_on_wish_wall = False

    class Rated(PracticeAggregate.Event):
        """The beneficiary rated a fulfilled need (评单)."""

        TOPIC = "practice.need.rated.v1"

        def apply(self, agg: Need) -> None:
            """Keep the rating."""
            agg.rating = self.data["rating"]

    # --- commands --------------------------------------------------------------------

    def accept(self, data: dict[str, Any], meta: Meta, ctx: DomainContext) -> None:
        """Accept a submitted need."""
        if self.stage is not Stage.SUBMITTED:
            self.refuse(f"only a submitted need can be accepted; this one is {self.stage}")
        self.emit(self.Accepted, data, meta)

    def reject(self, data: dict[str, Any], meta: Meta, ctx: DomainContext) -> None:
        """Reject a submitted need; an accepted need ends by being closed instead."""
        if self.stage is not Stage.SUBMITTED:
            self.refuse(
                f"only a submitted need can be rejected; this one is {self.stage} "
                "(close an accepted need as unfulfillable or withdrawn instead)"
            )
        self.emit(self.Rejected, data, meta)

    def list_on_wish_wall(self, data: dict[str, Any], meta: Meta, ctx: DomainContext) -> None:
        """Post an accepted, not yet assigned need on the wish wall."""
        if self.stage is not Stage.ACCEPTED:
            self.refuse(
                f"only an accepted, unassigned need can go on the wish wall; this one is "
                f"{self.stage}"
            )
        if self.listed_on_wish_wall:
            self.refuse("is already on the wish wall")
        self.emit(self.ListedOnWishWall, data, meta)

    def dispatch(self, data: dict[str, Any], meta: Meta, ctx: DomainContext) -> None:
        """Assign an accepted need to one team or volunteer (it may be on the wish wall)."""
        if self.stage is not Stage.ACCEPTED:
            self.refuse(
                f"only an accepted need can be dispatched; this one is {self.stage}"
                + self._assigned_hint()
            )
        self._check_due(data, meta)
        self.emit(self.Dispatched, data, meta)

    def claim(self, data: dict[str, Any], meta: Meta, ctx: DomainContext) -> None:
        """Let a team or volunteer claim a need listed on the wish wall; the first claim wins."""
        if self.stage is not Stage.ACCEPTED:
            self.refuse(
                f"only an accepted need on the wish wall can be claimed; this one is "
                f"{self.stage}" + self._assigned_hint()
            )
        if not self.listed_on_wish_wall:
            self.refuse("is not on the wish wall, so it cannot be claimed (dispatch it instead)")
        self.emit(self.Claimed, data, meta)

    def redispatch(self, data: dict[str, Any], meta: Meta, ctx: DomainContext) -> None:
        """Hand a need in service to a different team or volunteer, counting the re-dispatch.

        The previous assignee and the running count go into the stored data,
        so that projections can charge the re-dispatch without replaying.
        """
        if self.stage not in IN_SERVICE:
            self.refuse(
                f"only a dispatched or claimed need can be re-dispatched; this one is {self.stage}"
            )
        new = assignee_of(data)
        if new == self.assignee:
            msg = (
                f"need {self.subject}: is already with {describe(new)}; a re-dispatch must name "
                "a different team or volunteer"
            )
            raise DomainError(msg)
        self._check_due(data, meta)
        assert self.assignee is not None  # set by every transition into IN_SERVICE
        enriched = dict(data)
        enriched["from_team_id" if self.assignee[0] == "team" else "from_volunteer_no"] = (
            self.assignee[1]
        )
        enriched["redispatch_count"] = self.redispatch_count + 1
        self.emit(self.Redispatched, enriched, meta)

    def deliver_service(self, data: dict[str, Any], meta: Meta, ctx: DomainContext) -> None:
        """Record a delivery of the service while the need is dispatched or claimed."""
        if self.stage not in IN_SERVICE:
            self.refuse(
                "a service can only be delivered for a dispatched or claimed need; this one is "
                f"{self.stage}"
            )
        self.emit(self.ServiceDelivered, data, meta)

    def close(self, data: dict[str, Any], meta: Meta, ctx: DomainContext) -> None:
        """Close the need with its outcome.

        ``withdrawn`` from any open stage; ``unfulfillable`` once accepted
        (a submitted need is rejected instead); ``fulfilled`` only while in
        service and after at least one delivery.
        """
        outcome = data["outcome"]
        if self.stage not in OPEN_STAGES:
            self.refuse(f"is {self.stage} and can no longer be closed")
        if outcome == "unfulfillable" and self.stage is Stage.SUBMITTED:
            self.refuse("has not been accepted; reject it instead of closing it as unfulfillable")
        if outcome == "fulfilled":
            if self.stage not in IN_SERVICE:
                self.refuse(f"is {self.stage}; only a dispatched or claimed need can be fulfilled")
            if self.delivery_count == 0:
                msg = (
                    f"need {self.subject}: cannot be closed as fulfilled without a delivery; "
                    "send need.service_delivered first"
                )
                raise DomainError(msg)
        self.emit(self.Closed, data, meta)

    def rate(self, data: dict[str, Any], meta: Meta, ctx: DomainContext) -> None:
        """Record the beneficiary's rating of a fulfilled need, once."""
        if self.stage is not Stage.CLOSED or self.outcome != "fulfilled":
            shown = f"closed as {self.outcome}" if self.stage is Stage.CLOSED else self.stage
            self.refuse(f"only a need closed as fulfilled can be rated; this one is {shown}")
        if self.rating is not None:
            self.refuse(f"was already rated ({self.rating}); a need is rated once")
        self.emit(self.Rated, data, meta)

    def _check_due(self, data: Mapping[str, Any], meta: Meta) -> None:
        due = data.get("due_at")
        if due is not None and "time" in meta and parse_time(due) <= parse_time(meta["time"]):
            msg = f"need {self.subject}: due_at {due} is not after the event's time {meta['time']}"
            raise DomainError(msg, code="OUT_OF_RANGE")

    def _assigned_hint(self) -> str:
        if self.stage in IN_SERVICE:
            return f" (with {describe(self.assignee)}; use need.redispatched to hand it over)"
        return ""

    # --- queries ---------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """True until the need is rejected or closed."""
        return self.stage in OPEN_STAGES

    @property
    def delivered(self) -> bool:
        """True once at least one delivery was recorded."""
        return self.delivery_count > 0
