"""Who may read what: roles, the units each caller sees, and answers that never leak.

Every read goes through a :class:`Caller` (the active token) and its
**scope**, the set of unit ids it may see:

=========================  =====================================================
``district_supervisor``    its unit (the centre) and everything under it
``institute_supervisor``   its institute, its stations and their sites
``station_supervisor``     its station and its sites
``auditor``                everything (scope ``None``: unrestricted)
``producer``               no unit data; only its own sources' rejections
=========================  =====================================================

Rules the routes follow:

* A unit, finding, need, meeting, volunteer or team outside the scope is
  answered exactly like one that does not exist: 404 ``NOT_FOUND`` with the
  same detail (:func:`not_found`), so a probe cannot learn that it exists.
* Lists and summaries are computed over the scope only (the query
  functions take it), never filtered after the fact.
* Rankings list a unit's peers with their names and ranks (a bulletin
  shows those); the composite and figures of a peer outside the scope are
  withheld (:func:`redact_ranking`).
* Rejections belong to producers: a producer token reads the rejections of
  the sources it is bound to; the district supervisor and auditors read all.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping
from typing import Annotated, Any

import structlog
from fastapi import Depends, Request

from practice_events.api.auth import authenticate
from practice_events.auth.tokens import ApiToken
from practice_events.errors import AuthorizationError, PracticeEventsError
from projections.viewstore import ViewStore

log = structlog.get_logger(__name__)

READER_ROLES = ("district_supervisor", "institute_supervisor", "station_supervisor", "auditor")
"""Roles that read the views (each within its scope)."""

REJECTION_READERS = ("producer", "district_supervisor", "auditor")
"""Roles that may read rejections (producers only their own sources')."""

Scope = frozenset[str] | None
"""The unit ids a caller may see; ``None`` means every unit."""


class NetworkSnapshot:
    """The tree of sites as of one change of the network view: who is under whom.

    Loaded once per change of the sites (its ``marker``: their count and the
    last position that changed one) and shared by every request until the
    next change, so scoping a request costs one tiny query instead of
    walking the tree. Sites never move (moving is deactivate + register
    anew), so a unit's subtree only ever grows.
    """

    def __init__(self, marker: tuple[int, int], rows: list[dict[str, Any]]) -> None:
        self.marker = marker
        self.below: dict[str, set[str]] = {}
        for row in rows:
            self.below.setdefault(str(row["ancestor_id"]), set()).add(str(row["site_id"]))
        self.sites = frozenset(self.below)
        self._subtrees: dict[str, frozenset[str]] = {}

    def subtree(self, unit_id: str) -> frozenset[str]:
        """``unit_id`` and every site under it (just itself when unknown)."""
        found = self._subtrees.get(unit_id)
        if found is None:
            found = frozenset(self.below.get(unit_id, ())) | {unit_id}
            self._subtrees[unit_id] = found
        return found


_SNAPSHOTS: dict[str, NetworkSnapshot] = {}
_SNAPSHOT_LOCK = threading.Lock()


def network_snapshot(views: ViewStore) -> NetworkSnapshot:
    """The current :class:`NetworkSnapshot` of a view store (one marker query when cached)."""
    from projections.network import TABLES

    with views.read() as tx:
        row = tx.query(f"SELECT COUNT(*) AS n, MAX(last_position) AS last FROM {TABLES['sites']}")[
            0
        ]
        marker = (int(row["n"] or 0), int(row["last"] or 0))
        cached = _SNAPSHOTS.get(views.url)
        if cached is not None and cached.marker == marker:
            return cached
        rows = tx.query(f"SELECT ancestor_id, site_id FROM {TABLES['ancestors']}")
    snapshot = NetworkSnapshot(marker, rows)
    with _SNAPSHOT_LOCK:
        _SNAPSHOTS[views.url] = snapshot
    return snapshot


class Caller:
    """The authenticated caller of a read endpoint (one per request)."""

    __slots__ = ("_network", "token")

    def __init__(self, token: ApiToken) -> None:
        self.token = token
        self._network: NetworkSnapshot | None = None

    @property
    def role(self) -> str:
        """The token's role."""
        return self.token.role

    @property
    def unit(self) -> str | None:
        """The unit a supervisor token is bound to."""
        return self.token.unit

    @property
    def unrestricted(self) -> bool:
        """True for callers who read every unit (auditors)."""
        return self.token.role == "auditor"

    @property
    def visibility(self) -> str:
        """What decides the rows this caller sees: tokens with equal values see the same."""
        if self.unrestricted:
            return "all"
        return f"{self.role}:{self.unit}"

    def network(self, views: ViewStore) -> NetworkSnapshot:
        """The network as this request sees it (read once per request)."""
        if self._network is None:
            self._network = network_snapshot(views)
        return self._network

    def scope(self, views: ViewStore) -> Scope:
        """Return the unit ids this caller may see (``None``: all of them).

        A district supervisor whose unit covers the whole network gets
        ``None`` too (same rows, cheaper queries): every unit a view names
        is a registered site, so "all sites under the root" is "all".
        """
        if self.unrestricted:
            return None
        if self.unit is None:  # pragma: no cover - supervisor tokens always have a unit
            return frozenset()
        network = self.network(views)
        units = network.subtree(self.unit)
        if (
            self.role == "district_supervisor"
            and self.unit in network.sites
            and units >= network.sites
        ):
            return None
        return units

    def check_unit(self, views: ViewStore, unit_id: str, within: Scope = None) -> None:
        """404 unless ``unit_id`` is a registered site the caller may see (and in ``within``)."""
        scope = self.scope(views)
        if (
            unit_id not in self.network(views).sites
            or (scope is not None and unit_id not in scope)
            or (within is not None and unit_id not in within)
        ):
            raise not_found("unit", unit_id)

    def narrow(self, views: ViewStore, unit_id: str | None) -> Scope:
        """The caller's scope narrowed to ``unit_id`` and what is under it (404 if not theirs)."""
        scope = self.scope(views)
        if unit_id is None:
            return scope
        self.check_unit(views, unit_id)
        units = self.network(views).subtree(unit_id)
        return units if scope is None else units & scope

    def allows_source(self, source: str) -> bool:
        """Tell whether this caller may read the rejections of ``source``."""
        if self.role == "producer":
            return self.token.allows_source(source)
        return self.role in REJECTION_READERS


def _role_dependency(*roles: str) -> Any:
    """A dependency admitting active tokens of ``roles`` (401/403 otherwise)."""

    async def dependency(request: Request) -> Caller:
        token = await authenticate(request)
        if token.role not in roles:
            log.info("http_forbidden_role", token_id=token.token_id, role=token.role)
            msg = (
                f"a {token.role} token may not use this endpoint; it needs a "
                f"{' or '.join(roles)} token"
            )
            raise AuthorizationError(msg)
        return Caller(token)

    return dependency


Reader = Annotated[Caller, Depends(_role_dependency(*READER_ROLES))]
"""A supervisor or auditor (403 for producers)."""

RejectionReader = Annotated[Caller, Depends(_role_dependency(*REJECTION_READERS))]
"""A producer, the district supervisor or an auditor."""


def not_found(kind: str, ident: str) -> PracticeEventsError:
    """The one answer for "unknown" and "not yours": 404 with the same detail."""
    return PracticeEventsError(f"no {kind} {ident!r} among those you may see", code="NOT_FOUND")


def in_scope(scope: Scope, *units: str | None) -> bool:
    """Tell whether any of ``units`` is visible within ``scope``."""
    return scope is None or any(u is not None and u in scope for u in units)


RANKING_DETAILS = ("composite", "status", "covered_weight", "model_id", "model_version")
"""Fields of a ranking row withheld for peers outside the caller's scope."""


def redact_ranking(rows: Collection[Mapping[str, Any]], scope: Scope) -> list[dict[str, Any]]:
    """Rankings rows with the details of units outside ``scope`` withheld.

    A peer's id, name and rank stay (what a published bulletin shows); its
    composite, status and model are set to None and ``visible`` is False.
    """
    out = []
    for row in rows:
        item = dict(row)
        visible = scope is None or item["unit_id"] in scope
        if not visible:
            for key in RANKING_DETAILS:
                item[key] = None
        item["visible"] = visible
        out.append(item)
    return out
