"""House meetings (屋场会), their five steps and the concerns residents raise.

A 屋场会 ("courtyard meeting") gathers a hamlet's residents at one of the
network's house-meeting sites (Wulingyuan has 238), often with officials who
have reported to the community. It follows five steps, 讲、听、演、评、办:
explain policies (讲), listen to residents (听), perform (演: short plays,
songs, stories), evaluate local matters and examples (评), and resolve what
can be resolved (办).

Each concern a resident raises must end in one of two ways: resolved on the
spot, or converted into a resident need (the wishes loop) or an inspection
finding (the closed loop). The meeting keeps each concern's status so that
supervisors can see which concerns were left hanging, and the scorecards can
count method completeness (all five steps logged) and conversion.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from practice_events.domain.base import DomainContext, Meta, PracticeAggregate
from practice_events.errors import DomainError

STEPS = ("explain", "listen", "perform", "evaluate", "resolve")
"""The five steps 讲听演评办, in their usual order."""

STEP_NAMES: Mapping[str, str] = {
    "explain": "讲",
    "listen": "听",
    "perform": "演",
    "evaluate": "评",
    "resolve": "办",
}
"""The Chinese character of each step, for reasons and displays."""

ConcernStatus = Literal["open", "resolved_on_spot", "converted"]
"""Where a concern stands: still open, resolved at the meeting, or handed on."""


class Meeting(PracticeAggregate):
    """One house meeting: when and where, which steps it went through, its concerns.

    ``steps`` maps each logged step to the time it was logged; ``concerns``
    maps each concern id to a small dict with ``category``, ``status`` and,
    once converted, ``to`` and ``target_id``.
    """

    TOPIC = "practice.aggregate.meeting"
    KIND = "meeting"
    CREATED_BY = "practice.meeting.held.v1"
    HANDLES: ClassVar[Mapping[str, str]] = {
        "practice.meeting.step_logged.v1": "log_step",
        "practice.meeting.concern_raised.v1": "raise_concern",
        "practice.meeting.concern_resolved_on_spot.v1": "resolve_concern_on_spot",
        "practice.meeting.concern_converted.v1": "convert_concern",
    }

    def __init__(self) -> None:
        """Declare the state; the creation event fills it in."""
        self.site_id = ""
        self.started_at = ""
        self.ended_at = ""
        self.attendees_count = 0
        self.officials_present: list[str] = []
        self.steps: dict[str, str] = {}
        self.concerns: dict[str, dict[str, Any]] = {}

    class Created(PracticeAggregate.Created):
        """The house meeting was held."""

        TOPIC = "practice.meeting.held.v1"

        def init(self, agg: Meeting) -> None:
            """Take site, times, attendance and officials from the event."""
            agg.site_id = self.data["site_id"]
            agg.started_at = self.data["started_at"]
            agg.ended_at = self.data["ended_at"]
            agg.attendees_count = self.data["attendees_count"]
            agg.officials_present = list(self.data.get("officials_present", ()))

    class StepLogged(PracticeAggregate.Event):
        """One of the five steps was carried out."""

        TOPIC = "practice.meeting.step_logged.v1"

        def apply(self, agg: Meeting) -> None:
            """Remember the step and when it was logged."""
            agg.steps[self.data["step"]] = str(self.meta.get("time", ""))

    class ConcernRaised(PracticeAggregate.Event):
        """A resident raised a concern."""

        TOPIC = "practice.meeting.concern_raised.v1"

        def apply(self, agg: Meeting) -> None:
            """Add the concern as open."""
            agg.concerns[self.data["concern_id"]] = {
                "category": self.data["category"],
                "status": "open",
                "raised_at": self.meta.get("time"),
            }

    class ConcernResolvedOnSpot(PracticeAggregate.Event):
        """A concern was resolved at the meeting."""

        TOPIC = "practice.meeting.concern_resolved_on_spot.v1"

        def apply(self, agg: Meeting) -> None:
            """Mark the concern resolved on the spot."""
            concern = agg.concerns[self.data["concern_id"]]
            concern["status"] = "resolved_on_spot"
            concern["settled_at"] = self.meta.get("time")

    class ConcernConverted(PracticeAggregate.Event):
        """A concern was handed on as a need or a finding."""

        TOPIC = "practice.meeting.concern_converted.v1"

        def apply(self, agg: Meeting) -> None:
            """Mark the concern converted and link its target."""
            concern = agg.concerns[self.data["concern_id"]]
            concern["status"] = "converted"
            concern["to"] = self.data["to"]
            concern["target_id"] = self.data["target_id"]
            concern["settled_at"] = self.meta.get("time")

    # --- commands ------------------------------------------------------------------

    def log_step(self, data: dict[str, Any], meta: Meta, ctx: DomainContext) -> None:
        """Log one of the five steps; each step at most once per meeting."""
        step = data["step"]
        if step in self.steps:
            self.refuse(
                f"step {step} ({STEP_NAMES[step]}) was already logged at {self.steps[step]}; "
                "each step is logged once per meeting"
            )
        self.emit(self.StepLogged, data, meta)

    def raise_concern(self, data: dict[str, Any], meta: Meta, ctx: DomainContext) -> None:
        """Record a resident's concern under an id not yet used at this meeting."""
        concern_id = data["concern_id"]
        if concern_id in self.concerns:
            msg = (
                f"meeting {self.subject}: concern {concern_id!r} was already raised at this "
                "meeting; give each concern its own concern_id"
            )
            raise DomainError(msg)
        self.emit(self.ConcernRaised, data, meta)

    def resolve_concern_on_spot(self, data: dict[str, Any], meta: Meta, ctx: DomainContext) -> None:
        """Record that an open concern was resolved at the meeting."""
        self._require_open(data["concern_id"])
        self.emit(self.ConcernResolvedOnSpot, data, meta)

    def convert_concern(self, data: dict[str, Any], meta: Meta, ctx: DomainContext) -> None:
        """Record that an open concern became a need or a finding.

        The target is not checked for existence: the need or finding is
        often created right after the conversion is sent.
        """
        self._require_open(data["concern_id"])
        self.emit(self.ConcernConverted, data, meta)

    def _require_open(self, concern_id: str) -> None:
        concern = self.concerns.get(concern_id)
        if concern is None:
            msg = (
                f"meeting {self.subject} has no concern {concern_id!r}; "
                "send concern_raised for it first"
            )
            raise DomainError(msg)
        if concern["status"] == "resolved_on_spot":
            self.refuse(f"concern {concern_id!r} was already resolved on the spot")
        if concern["status"] == "converted":
            self.refuse(
                f"concern {concern_id!r} was already converted to {concern['to']} "
                f"{concern['target_id']!r}"
            )

    # --- queries -------------------------------------------------------------------

    @property
    def steps_logged(self) -> tuple[str, ...]:
        """The steps logged so far, in the order 讲听演评办."""
        return tuple(step for step in STEPS if step in self.steps)

    @property
    def missing_steps(self) -> tuple[str, ...]:
        """The steps not logged yet, in the order 讲听演评办."""
        return tuple(step for step in STEPS if step not in self.steps)

    @property
    def is_complete(self) -> bool:
        """True when all five steps were logged (the method-completeness indicator)."""
        return len(self.steps) == len(STEPS)

    def concerns_by_status(self, status: ConcernStatus) -> list[str]:
        """Ids of the concerns in ``status`` (open, resolved_on_spot, converted), as raised."""
        return [cid for cid, concern in self.concerns.items() if concern["status"] == status]

    @property
    def open_concerns(self) -> list[str]:
        """Ids of the concerns neither resolved on the spot nor converted."""
        return self.concerns_by_status("open")
