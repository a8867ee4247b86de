"""Which projections a deployment runs: one list, built from the settings.

The network and closed-loop views are always there. The other read models
(scorecards, volunteer ledgers, needs, house meetings) live in their own
modules, written separately; each is included when its module exists. A
module contributes either through a ``projections(settings)`` function
returning its projections, or by defining :class:`~projections.base.Projection`
subclasses (with a ``NAME``), which are built with the network's time zone.
"""

from __future__ import annotations

import importlib
import inspect
from types import ModuleType
from typing import TYPE_CHECKING

from projections.base import Projection
from projections.closed_loop import ClosedLoopProjection
from projections.network import NetworkProjection

if TYPE_CHECKING:
    from practice_events.config import Settings

OPTIONAL_MODULES = (
    "projections.scorecards",
    "projections.ledger",
    "projections.needs",
    "projections.meetings",
)
"""Modules of the other read models, included when present."""


def _optional(name: str) -> ModuleType | None:
    """Import ``name`` if it exists (a missing module is not an error; a broken one is)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            return None
        raise


def _from_module(module: ModuleType, settings: Settings) -> list[Projection]:
    factory = getattr(module, "projections", None)
    if callable(factory):
        built = list(factory(settings))
        return [p for p in built if isinstance(p, Projection)]
    found: list[Projection] = []
    for _, cls in inspect.getmembers(module, inspect.isclass):
        if (
            issubclass(cls, Projection)
            and cls is not Projection
            and cls.__module__ == module.__name__
            and cls.NAME
            and not inspect.isabstract(cls)
        ):
            found.append(cls(timezone=settings.timezone))
    return found


def all_projections(settings: Settings) -> list[Projection]:
    """Return every projection this deployment runs, each once, network first."""
    chosen: list[Projection] = [
        NetworkProjection(timezone=settings.timezone),
        ClosedLoopProjection(timezone=settings.timezone),
    ]
    for name in OPTIONAL_MODULES:
        module = _optional(name)
        if module is not None:
            chosen.extend(_from_module(module, settings))
    unique: dict[str, Projection] = {}
    for projection in chosen:
        unique.setdefault(projection.NAME, projection)
    return list(unique.values())


def projection_named(settings: Settings, name: str) -> Projection:
    """Return the projection called ``name`` (KeyError listing the known names)."""
    for projection in all_projections(settings):
        if name == projection.NAME:
            return projection
    known = ", ".join(p.NAME for p in all_projections(settings))
    msg = f"no projection named {name!r}; known: {known}"
    raise KeyError(msg)
