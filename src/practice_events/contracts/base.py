"""The contract machinery: the base of every event payload and the catalogue.

Each event type is a frozen pydantic model (``extra="forbid"``: a field a
producer invents is an error, not silently dropped) registered under its
stable CloudEvents type name ``practice.<area>.<event>.v1``. Class variables
say which aggregate the event's ``subject`` names and which other aggregates
its fields refer to, so the ingest pipeline can check references without
knowing the areas.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)

TYPE_PATTERN = re.compile(r"^practice\.[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*\.v[1-9][0-9]*$")
"""Every type name has this shape; the version is part of the name."""

Identifier = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$",
    ),
]
"""An id of a site, volunteer, finding ... as producers spell it (no spaces)."""

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
"""Free text (a reason, a description); never empty, at most 4,000 characters."""

ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
"""A name or a title."""

Code = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[a-z0-9_.-]+$"
    ),
]
"""A lower-case code from a controlled list (a category, a theme code)."""

Timestamp = AwareDatetime
"""An RFC 3339 time *with* offset; naive times are refused (periods need a zone)."""

Hours = Annotated[float, Field(ge=0, le=24, allow_inf_nan=False)]
"""Hours of one session: 0..24."""

Rating = Annotated[int, Field(ge=1, le=5)]
"""A 1..5 satisfaction rating."""

NonNegativeInt = Annotated[int, Field(ge=0, le=1_000_000)]
"""A count (people served, attendees)."""


def _month(value: str) -> str:
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", value):
        msg = "must be a month as YYYY-MM"
        raise ValueError(msg)
    return value


Month = Annotated[str, AfterValidator(_month)]
"""A calendar month ``YYYY-MM`` in the network's time zone."""


class GeoPoint(BaseModel):
    """A WGS-84 position with its accuracy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    accuracy_m: float | None = Field(default=None, ge=0, le=100_000)


class Evidence(BaseModel):
    """A piece of evidence kept elsewhere: where it is and its hash."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    uri: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None = None
    kind: Code | None = None


class EventData(BaseModel):
    """Base of every event payload (the CloudEvents ``data``).

    Class variables (set on each subclass):

    ``TYPE``
        the stable CloudEvents type, ``practice.<area>.<event>.v1``;
    ``AGGREGATE``
        the kind of aggregate that ``subject`` names (``"finding"``);
    ``CREATES``
        True for the event that creates that aggregate;
    ``SYSTEM``
        True for events practice-events emits itself (points, overdue ...):
        they are documented and have schemas, but producers may not send them;
    ``REFERENCES``
        field name -> aggregate kind, for fields naming other aggregates that
        must already exist (``{"site_id": "site"}``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    TYPE: ClassVar[str] = ""
    AGGREGATE: ClassVar[str] = ""
    CREATES: ClassVar[bool] = False
    SYSTEM: ClassVar[bool] = False
    REFERENCES: ClassVar[Mapping[str, str]] = {}

    def references(self) -> list[tuple[str, str]]:
        """Return ``(kind, subject)`` of every other aggregate this event names."""
        refs: list[tuple[str, str]] = []
        for name, kind in self.REFERENCES.items():
            value = getattr(self, name, None)
            if value is None:
                continue
            if isinstance(value, list | tuple):
                refs.extend((kind, str(v)) for v in value)
            else:
                refs.append((kind, str(value)))
        return refs


CATALOGUE: dict[str, type[EventData]] = {}
"""Every registered event type, by CloudEvents type name."""


def contract(cls: type[EventData]) -> type[EventData]:
    """Register an :class:`EventData` subclass in the catalogue (class decorator)."""
    if not TYPE_PATTERN.match(cls.TYPE):
        msg = f"{cls.__name__}.TYPE {cls.TYPE!r} is not practice.<area>.<event>.vN"
        raise ValueError(msg)
    if not cls.AGGREGATE:
        msg = f"{cls.__name__} does not say which aggregate its subject names"
        raise ValueError(msg)
    if cls.TYPE in CATALOGUE and CATALOGUE[cls.TYPE] is not cls:
        msg = f"event type {cls.TYPE} registered twice"
        raise ValueError(msg)
    for name in cls.REFERENCES:
        if name not in cls.model_fields:
            msg = f"{cls.__name__}.REFERENCES names unknown field {name!r}"
            raise ValueError(msg)
    CATALOGUE[cls.TYPE] = cls
    return cls


def catalogue() -> Mapping[str, type[EventData]]:
    """Return the full catalogue, importing every area module first."""
    from practice_events.contracts import load_all

    load_all()
    return CATALOGUE


def example_payload(model: type[EventData]) -> Any:  # pragma: no cover - docs helper
    """Return the first ``examples`` entry of a model's JSON schema, if any."""
    examples = model.model_config.get("json_schema_extra") or {}
    if isinstance(examples, Mapping):
        values = examples.get("examples")
        if isinstance(values, list) and values:
            return values[0]
    return None
