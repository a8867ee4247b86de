"""The routing rule: which event store (shard) an event belongs to, from the event alone.

A sharded deployment keeps one event store per district (or per group of
districts) and routes every event by the district of the aggregate it is
about. The rule is a pure function of the event and the shard map, with no
lookup and no I/O, so every ingestion process (HTTP, Kafka, ``ingest-file``)
routes the same event to the same shard, today and after a restart:

1. Events of **reference data** shared by a whole province (the six-haves
   ``checklist`` and the ``scoring_model``: :data:`BROADCAST_KINDS`) go to
   *every* shard, so that an assessment or a scorecard always finds them in
   its own store. Each shard deduplicates them by ``(source, id)`` on its own.
2. Every other event goes to the shard of its **district**: the CloudEvents
   extension attribute ``district`` (:data:`DISTRICT_ATTRIBUTE`) that the
   producer sets, or, without one, the district code that prefixes the
   subject (``WLY-ZHAN-02``, ``WLY:2025-01`` and ``WLY-SUO-01:2025-01`` belong
   to ``WLY``) when that code is in the shard map.
3. Anything else (a district that has no shard of its own, or no district at
   all) goes to the **default** shard, the store named by
   ``PRACTICE_EVENTS_STORE``.

One aggregate stays in one shard because its district never changes: site,
team and period ids carry it, and producers set ``district`` on the events of
aggregates whose ids do not (volunteers, activities, needs, meetings,
findings). An event whose subject or references name a district of *another*
shard is refused with ``CROSS_SHARD_REFERENCE`` (:meth:`ShardMap.check`),
so a mis-set attribute is caught at once instead of splitting a history.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from practice_events.errors import ConfigurationError, ContractError

if TYPE_CHECKING:
    from practice_events.config import Settings
    from practice_events.contracts.envelope import IncomingEvent

DISTRICT_ATTRIBUTE = "district"
"""The CloudEvents extension attribute naming the district an event belongs to."""

BROADCAST_KINDS = frozenset({"checklist", "scoring_model"})
"""Aggregate kinds that are province-wide reference data, copied to every shard."""

DEFAULT_SHARD = "default"
"""Name of the default shard when its store is not also a district's."""

DISTRICT_CODE = re.compile(r"^[A-Z][A-Z0-9]{1,15}$")
"""A district code: 2-16 upper-case letters or digits, starting with a letter (``WLY``)."""

_PREFIX = re.compile(r"^([^-:]+)[-:]")


class CrossShardReferenceError(ContractError):
    """The event names an aggregate of a district that lives in another shard."""

    code = "CROSS_SHARD_REFERENCE"


def check_shard_map(shards: Mapping[str, str]) -> None:
    """Refuse a shard map with a bad district code or store URL (ConfigurationError)."""
    from practice_events.config import store_env

    for code, url in shards.items():
        if not DISTRICT_CODE.match(code):
            msg = (
                f"shard district code {code!r} must be 2-16 upper-case letters or digits "
                "starting with a letter (e.g. WLY)"
            )
            raise ConfigurationError(msg)
        try:
            store_env(url)
        except ConfigurationError as exc:
            msg = f"shard {code}: {exc.reason}"
            raise ConfigurationError(msg) from None


def id_prefix(identifier: str) -> str | None:
    """Return the part of an id before its first ``-`` or ``:`` (``WLY-ZHAN-02`` -> ``WLY``)."""
    found = _PREFIX.match(identifier)
    return found.group(1) if found else None


@dataclass(frozen=True, slots=True)
class Shard:
    """One event store of a sharded deployment and the districts routed to it."""

    name: str
    url: str
    districts: tuple[str, ...]
    default: bool = False


@dataclass(frozen=True)
class ShardMap:
    """The shards of a deployment and the routing rule over them (see the module docstring)."""

    shards: tuple[Shard, ...]
    by_district: Mapping[str, str]
    default: str

    @classmethod
    def build(cls, shards: Mapping[str, str], default_url: str) -> ShardMap:
        """Group districts by store URL into shards; the default store is one of them.

        Districts that share a URL share a shard (named after them, ``CLX+SZY``);
        the default store is the shard of the districts whose URL it is, or a
        shard of its own named ``default``.
        """
        check_shard_map(shards)
        urls: dict[str, list[str]] = {}
        for code in sorted(shards):
            urls.setdefault(shards[code], []).append(code)
        built: list[Shard] = []
        if default_url not in urls:
            built.append(Shard(DEFAULT_SHARD, default_url, (), default=True))
        for url, codes in urls.items():
            built.append(Shard("+".join(codes), url, tuple(codes), default=url == default_url))
        by_district = {code: shard.name for shard in built for code in shard.districts}
        default = next(shard.name for shard in built if shard.default)
        return cls(tuple(built), by_district, default)

    @classmethod
    def from_settings(cls, settings: Settings) -> ShardMap:
        """The shard map of ``PRACTICE_EVENTS_SHARDS`` with ``PRACTICE_EVENTS_STORE`` as default."""
        return cls.build(settings.shards, settings.store)

    @property
    def names(self) -> list[str]:
        """Shard names, the default first."""
        return [s.name for s in sorted(self.shards, key=lambda s: not s.default)]

    def shard(self, name: str) -> Shard:
        """Return the shard called ``name`` (KeyError if none)."""
        for shard in self.shards:
            if shard.name == name:
                return shard
        raise KeyError(name)

    def shard_of_district(self, district: str | None) -> str:
        """Return the shard of a district (the default for unmapped or no district)."""
        if district is None:
            return self.default
        return self.by_district.get(district, self.default)

    def district_of_id(self, identifier: str) -> str | None:
        """Return the mapped district an id is prefixed with, if any (``WLY-ZHAN-02`` -> WLY)."""
        prefix = id_prefix(identifier)
        if prefix is not None and prefix in self.by_district:
            return prefix
        return None

    def route(self, kind: str | None, district: str | None, subject: str | None) -> str | None:
        """Return the shard an event goes to, or None for every shard (reference data)."""
        if kind in BROADCAST_KINDS:
            return None
        if not district and subject:
            district = self.district_of_id(subject)
        return self.shard_of_district(district or None)

    def check(self, event: IncomingEvent, shard: str) -> None:
        """Refuse, with ``CROSS_SHARD_REFERENCE``, an event that names another shard's district.

        Called by the shard's pipeline after the contract checks: the event's
        subject and every aggregate it refers to (a site, a team, a period)
        must belong to ``shard`` when their ids carry a district code.
        References to reference data (:data:`BROADCAST_KINDS`) are in every
        shard; ids without a district code (volunteer numbers, activity ids)
        are checked by the usual reference check in this shard.
        """
        from practice_events.contracts.base import CATALOGUE

        model = CATALOGUE.get(event.type)
        if model is None or model.AGGREGATE in BROADCAST_KINDS:
            return
        district = event.extensions.get(DISTRICT_ATTRIBUTE)
        named = self.district_of_id(event.subject)
        if named is not None and self.by_district[named] != shard:
            via = f"its district attribute {district!r}" if district else "the default rule"
            msg = (
                f"{event.subject} belongs to district {named} (shard {self.by_district[named]}) "
                f"but {via} routes this event to shard {shard}; send it with "
                f"district={named!r}"
            )
            raise CrossShardReferenceError(msg, subject=event.subject, district=named)
        for kind, subject in event.data.references():
            if kind in BROADCAST_KINDS:
                continue
            other = self.district_of_id(subject)
            if other is None or self.by_district[other] == shard:
                continue
            msg = (
                f"{event.type} {event.subject} (shard {shard}) refers to {kind} {subject} of "
                f"district {other}, which lives in shard {self.by_district[other]}; events may "
                f"only refer to aggregates of their own shard (for service in another "
                f"district, register the volunteer there and send the event with "
                f"district={other!r})"
            )
            raise CrossShardReferenceError(msg, kind=kind, subject=subject, district=other)
