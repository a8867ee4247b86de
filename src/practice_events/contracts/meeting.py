"""Contracts of the meeting area: house meetings (屋场会) and the concerns they raise.

A 屋场会 ("courtyard meeting") is an informal meeting of a hamlet's residents,
held at one of the network's house-meeting sites, often with officials who
have reported to the community. Wulingyuan runs them with a five-step method,
讲、听、演、评、办:

``explain`` (讲)
    explain policies and teach skills;
``listen`` (听)
    listen to residents' opinions and needs;
``perform`` (演)
    perform: short plays, songs, stories that carry the message;
``evaluate`` (评)
    evaluate: residents comment on local matters and on good and bad examples;
``resolve`` (办)
    resolve: answer what can be answered on the spot, take on the rest.

Every concern raised is either resolved on the spot or converted into a
resident need (the wishes loop) or an inspection finding (the closed loop),
which is how a meeting's problem list becomes a responsibility list.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from practice_events.contracts.base import (
    Code,
    EventData,
    Evidence,
    GeoPoint,
    Identifier,
    NonNegativeInt,
    ShortText,
    Text,
    Timestamp,
    contract,
)

Step = Literal["explain", "listen", "perform", "evaluate", "resolve"]
"""The five steps 讲听演评办, in their usual order."""

ConversionTarget = Literal["need", "finding"]
"""Where an unresolved concern goes: the needs loop or the findings loop."""

MAX_PEOPLE = 500
"""At most this many officials or hosts listed for one meeting."""

MAX_TOPICS = 50
"""At most this many topics for one meeting."""

MAX_EVIDENCE = 50
"""At most this many pieces of evidence per event."""


@contract
class MeetingHeld(EventData):
    """A house meeting (屋场会) was held at a house-meeting site (the meeting's first event).

    Sent by the house-meeting app after the meeting. ``officials_present``
    lists the volunteer numbers of officials who attended (dual check-in
    credit needs them registered). That ``site_id`` is a house-meeting site
    needs the site's state and is checked by the network views; the
    reference check makes sure the site exists.
    """

    TYPE: ClassVar[str] = "practice.meeting.held.v1"
    AGGREGATE: ClassVar[str] = "meeting"
    CREATES: ClassVar[bool] = True
    REFERENCES: ClassVar[dict[str, str]] = {"site_id": "site", "officials_present": "volunteer"}

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "site_id": "WLY-WC-118",
                    "started_at": "2024-03-08T19:30:00+08:00",
                    "ended_at": "2024-03-08T21:00:00+08:00",
                    "attendees_count": 46,
                    "officials_present": ["V430811199"],
                    "topics": ["人居环境整治", "防溺水"],
                }
            ]
        }
    )

    site_id: Identifier = Field(description="The house-meeting site (屋场) where it was held.")
    started_at: Timestamp = Field(description="When the meeting started (RFC 3339 with offset).")
    ended_at: Timestamp = Field(description="When it ended; after started_at.")
    attendees_count: NonNegativeInt = Field(description="How many residents attended.")
    officials_present: list[Identifier] = Field(
        default_factory=list,
        max_length=MAX_PEOPLE,
        description="Volunteer numbers of officials present (each must be registered).",
    )
    hosts: list[Identifier] = Field(
        default_factory=list,
        max_length=MAX_PEOPLE,
        description="Volunteer numbers or staff ids of the hosts (ids, never names).",
    )
    topics: list[ShortText] = Field(
        default_factory=list, max_length=MAX_TOPICS, description="Topics on the agenda."
    )
    geo: GeoPoint | None = Field(default=None, description="Where the meeting took place.")
    evidence: list[Evidence] = Field(
        default_factory=list,
        max_length=MAX_EVIDENCE,
        description="Photos or minutes kept elsewhere (where they are and their hash).",
    )

    @model_validator(mode="after")
    def _valid(self) -> MeetingHeld:
        if self.ended_at <= self.started_at:
            raise PydanticCustomError("out_of_range", "ended_at must be later than started_at")
        if len(set(self.officials_present)) != len(self.officials_present):
            raise PydanticCustomError(
                "value_error", "officials_present lists a volunteer number twice"
            )
        return self


@contract
class MeetingStepLogged(EventData):
    """One of the five steps (讲听演评办) was carried out at a house meeting.

    Each step is logged at most once per meeting; a meeting with all five is
    complete for the method-completeness indicator.
    """

    TYPE: ClassVar[str] = "practice.meeting.step_logged.v1"
    AGGREGATE: ClassVar[str] = "meeting"

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"step": "explain", "summary": "讲解春耕补贴政策", "speaker_role": "cadre"}
            ]
        }
    )

    step: Step = Field(
        description="explain (讲), listen (听), perform (演), evaluate (评) or resolve (办)."
    )
    summary: Text = Field(description="What was done in this step (no personal data).")
    speaker_role: Code | None = Field(
        default=None, description="Role of who led the step (cadre, volunteer ...), not a name."
    )


@contract
class ConcernRaised(EventData):
    """A resident raised a concern at a house meeting.

    The concern is known by an id unique within the meeting and described
    without personal data; it must end resolved on the spot or converted into
    a need or a finding.
    """

    TYPE: ClassVar[str] = "practice.meeting.concern_raised.v1"
    AGGREGATE: ClassVar[str] = "meeting"

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"concern_id": "C1", "category": "road_repair", "summary": "组道路面破损"}]
        }
    )

    concern_id: Identifier = Field(description="Id of the concern, unique within the meeting.")
    category: Code = Field(description="Category of the concern (service-menu code).")
    summary: Text = Field(description="The concern (no names, phone numbers or ID numbers).")


@contract
class ConcernResolvedOnSpot(EventData):
    """A concern raised at a house meeting was answered or settled there and then (办)."""

    TYPE: ClassVar[str] = "practice.meeting.concern_resolved_on_spot.v1"
    AGGREGATE: ClassVar[str] = "meeting"

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"concern_id": "C1", "resolution": "村委当场答复：本月内修复"}]
        }
    )

    concern_id: Identifier = Field(description="The concern, as raised at this meeting.")
    resolution: Text = Field(description="How it was resolved.")


@contract
class ConcernConverted(EventData):
    """A concern from a house meeting was handed on as a resident need or a finding.

    ``target_id`` names the need or finding. It is not checked for existence:
    producers usually send the conversion and the creation of the target
    together, in either order.
    """

    TYPE: ClassVar[str] = "practice.meeting.concern_converted.v1"
    AGGREGATE: ClassVar[str] = "meeting"

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"concern_id": "C2", "to": "need", "target_id": "N-2024-0311"}]
        }
    )

    concern_id: Identifier = Field(description="The concern, as raised at this meeting.")
    to: ConversionTarget = Field(description="need (wishes loop) or finding (closed loop).")
    target_id: Identifier = Field(description="Id of the need or finding it became.")
