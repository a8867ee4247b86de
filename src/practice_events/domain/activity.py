"""Monthly themes (一月一主题) and the practice activities held under them.

一月一主题 ("one theme a month"): each unit of the network announces a theme
for the month (learning from Lei Feng in March, "our festivals", care for
left-behind children ...), and its sites hold activities under it. The
scorecards count, per unit and month, whether at least one completed
activity carried the month's theme, and how often activities took place.

Months are calendar months in the network's time zone (Asia/Shanghai by
default): 00:30 on 1 April in Beijing is April, although it is still 31 March
in UTC. The month of an activity is
decided when it is planned and written into the event, so that a later change
of the zone setting never moves history from one month to another.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import tzinfo
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from practice_events.domain.base import (
    DomainContext,
    Meta,
    PracticeAggregate,
    aggregate_id,
    parse_time,
)
from practice_events.errors import ConfigurationError, DomainError

TIMEZONE_SERVICE = "activity.timezone"
"""Name of the service holding the network's time zone (a ``tzinfo``)."""

DEFAULT_TIMEZONE = "Asia/Shanghai"
"""The time zone used when the configuration names none."""


def month_of(value: str, zone: tzinfo) -> str:
    """Return the month ``YYYY-MM`` in which the stored time ``value`` falls in ``zone``."""
    return parse_time(value).astimezone(zone).strftime("%Y-%m")


def _zone(ctx: DomainContext) -> tzinfo:
    zone: tzinfo = ctx.service(TIMEZONE_SERVICE)
    return zone


class Theme(PracticeAggregate):
    """The theme a unit set for one month; the subject names unit and month (``WLY:2024-03``)."""

    TOPIC = "practice.aggregate.theme"
    KIND = "theme"
    CREATED_BY = "practice.activity.theme_set.v1"
    HANDLES: ClassVar[Mapping[str, str]] = {
        "practice.activity.theme_revised.v1": "revise",
    }

    def __init__(self) -> None:
        """Declare the state; the creation event fills it in."""
        self.unit_id = ""
        self.month = ""
        self.theme_code = ""
        self.title = ""
        self.revision_count = 0

    class Created(PracticeAggregate.Created):
        """The unit set its theme for the month."""

        TOPIC = "practice.activity.theme_set.v1"

        def init(self, agg: Theme) -> None:
            """Take unit, month, code and title from the event."""
            agg.unit_id = self.data["unit_id"]
            agg.month = self.data["month"]
            agg.theme_code = self.data["theme_code"]
            agg.title = self.data["title"]

    class Revised(PracticeAggregate.Event):
        """The theme's title or code changed."""

        TOPIC = "practice.activity.theme_revised.v1"

        def apply(self, agg: Theme) -> None:
            """Overwrite the fields that were sent."""
            if "title" in self.data:
                agg.title = self.data["title"]
            if "theme_code" in self.data:
                agg.theme_code = self.data["theme_code"]
            agg.revision_count += 1

    def revise(self, data: dict[str, Any], meta: Meta, ctx: DomainContext) -> None:
        """Change title or code, but only before the month is over.

        After the month its compliance has been counted against the theme,
        so changing it would rewrite a published bulletin.
        """
        sent_in = month_of(meta["time"], _zone(ctx))
        if sent_in > self.month:
            self.refuse(
                f"the month {self.month} is over (the revision is dated {meta['time']}, "
                f"in {sent_in}); a theme can only be revised before or during its month"
            )
        self.emit(self.Revised, data, meta)


class Activity(PracticeAggregate):
    """A practice activity: planned, then completed or cancelled, then rated.

    ``status`` is ``planned``, ``completed`` or ``cancelled``; completion and
    cancellation are final.
    """

    TOPIC = "practice.aggregate.activity"
    KIND = "activity"
    CREATED_BY = "practice.activity.planned.v1"
    HANDLES: ClassVar[Mapping[str, str]] = {
        "practice.activity.cancelled.v1": "cancel",
        "practice.activity.completed.v1": "complete",
        "practice.activity.feedback_given.v1": "give_feedback",
    }

    def __init__(self) -> None:
        """Declare the state; the creation event fills it in."""
        self.site_id = ""
        self.theme_code: str | None = None
        self.category = ""
        self.title = ""
        self.starts_at = ""
        self.ends_at = ""
        self.month = ""
        self.team_id: str | None = None
        self.slots: int | None = None
        self.status = "planned"
        self.cancelled_at: str | None = None
        self.cancel_reason: str | None = None
        self.completed_at: str | None = None
        self.served_count = 0
        self.beneficiaries_count: int | None = None
        self.feedback_count = 0
        self.rating_sum = 0

    @classmethod
    def create(
        cls, data: Mapping[str, Any], meta: Mapping[str, Any], ctx: DomainContext
    ) -> PracticeAggregate:
        """Plan the activity, recording the month of its start in the network's zone."""
        enriched = dict(data)
        enriched["month"] = month_of(data["starts_at"], _zone(ctx))
        return cls._create(
            cls.Created,
            id=aggregate_id(cls.KIND, str(meta["subject"])),
            data=enriched,
            meta=dict(meta),
        )

    class Created(PracticeAggregate.Created):
        """The activity was planned."""

        TOPIC = "practice.activity.planned.v1"

        def init(self, agg: Activity) -> None:
            """Take site, theme, category, times and month from the event."""
            data = self.data
            agg.site_id = data["site_id"]
            agg.theme_code = data.get("theme_code")
            agg.category = data["category"]
            agg.title = data["title"]
            agg.starts_at = data["starts_at"]
            agg.ends_at = data["ends_at"]
            agg.month = data["month"]
            agg.team_id = data.get("team_id")
            agg.slots = data.get("slots")

    class Cancelled(PracticeAggregate.Event):
        """The activity was called off."""

        TOPIC = "practice.activity.cancelled.v1"

        def apply(self, agg: Activity) -> None:
            """Mark it cancelled, keeping when and why."""
            agg.status = "cancelled"
            agg.cancelled_at = self.meta.get("time")
            agg.cancel_reason = self.data["reason"]

    class Completed(PracticeAggregate.Event):
        """The activity took place."""

        TOPIC = "practice.activity.completed.v1"

        def apply(self, agg: Activity) -> None:
            """Mark it completed with the counts reported."""
            agg.status = "completed"
            agg.completed_at = self.meta.get("time")
            agg.served_count = self.data["served_count"]
            agg.beneficiaries_count = self.data.get("beneficiaries_count")

    class FeedbackGiven(PracticeAggregate.Event):
        """Someone rated the completed activity."""

        TOPIC = "practice.activity.feedback_given.v1"

        def apply(self, agg: Activity) -> None:
            """Count the rating."""
            agg.feedback_count += 1
            agg.rating_sum += self.data["rating"]

    # --- commands ------------------------------------------------------------------

    def cancel(self, data: dict[str, Any], meta: Meta, ctx: DomainContext) -> None:
        """Call the activity off; only a planned (not completed) activity can be."""
        if self.status == "completed":
            self.refuse(f"was completed at {self.completed_at}; a completed activity stays")
        if self.status == "cancelled":
            self.refuse(f"was already cancelled at {self.cancelled_at}")
        self.emit(self.Cancelled, data, meta)

    def complete(self, data: dict[str, Any], meta: Meta, ctx: DomainContext) -> None:
        """Record that the activity took place: once, not after cancelling, not before it starts."""
        if self.status == "cancelled":
            self.refuse(
                f"was cancelled at {self.cancelled_at}; "
                "plan a new activity instead of completing this one"
            )
        if self.status == "completed":
            self.refuse(f"was already completed at {self.completed_at}")
        if parse_time(meta["time"]) < parse_time(self.starts_at):
            msg = (
                f"activity {self.subject}: completion dated {meta['time']} is before the "
                f"activity starts ({self.starts_at}); send it after the activity took place"
            )
            raise DomainError(msg, code="OUT_OF_RANGE")
        self.emit(self.Completed, data, meta)

    def give_feedback(self, data: dict[str, Any], meta: Meta, ctx: DomainContext) -> None:
        """Record a rating; only a completed activity can be rated."""
        if self.status != "completed":
            self.refuse(f"is {self.status}; only a completed activity can be rated")
        self.emit(self.FeedbackGiven, data, meta)

    # --- queries -------------------------------------------------------------------

    @property
    def is_completed(self) -> bool:
        """True once the activity took place."""
        return self.status == "completed"

    @property
    def mean_rating(self) -> float | None:
        """Mean of the ratings given, or None when nobody rated it."""
        if not self.feedback_count:
            return None
        return self.rating_sum / self.feedback_count


def services(config: Mapping[str, Any]) -> dict[str, Any]:
    """Register the network's time zone, which decides the month of themes and activities."""
    name = config.get("timezone") or DEFAULT_TIMEZONE
    try:
        zone = ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        msg = f"timezone {name!r} is not an IANA time zone name (e.g. Asia/Shanghai)"
        raise ConfigurationError(msg) from None
    return {TIMEZONE_SERVICE: zone}
