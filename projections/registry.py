"""Which projections a deployment runs: one list, built from the settings.

The network and closed-loop views are always there. The other read models
(scorecards, volunteer ledgers, needs, house meetings) live in their own
modules, written separately; each is included when its module exists. A
module contributes either through a ``projections(settings)`` function
returning its projections, or by defining :class:`~projections.base.Projection`
subclasses (with a ``NAME``), which are built with the network's time zone.

Plugin modules (``practice-events projections run --plugin MODULE``) contribute
the same way: a deployment's own read models, run by the same runner beside
the built-in ones. :func:`select` picks the projections one runner process
owns (``--only``/``--exclude``), so that separate processes can split them.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence
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


def all_projections(settings: Settings, plugins: Sequence[str] = ()) -> list[Projection]:
    """Return every projection this deployment runs, each once, network first.

    ``plugins`` are importable module names whose projections come after the
    built-in ones; a plugin projection may not reuse a built-in name (it would
    write into another view's tracking row), so that is a configuration error.
    """
    from practice_events.errors import ConfigurationError

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
    for plugin in plugins:
        try:
            module = importlib.import_module(plugin)
        except ImportError as exc:
            msg = f"cannot import projection plugin {plugin!r}: {exc}"
            raise ConfigurationError(msg) from exc
        found = _from_module(module, settings)
        if not found:
            msg = f"projection plugin {plugin!r} defines no projection"
            raise ConfigurationError(msg)
        for projection in found:
            if projection.NAME in unique:
                msg = f"projection plugin {plugin!r} reuses the name {projection.NAME!r}"
                raise ConfigurationError(msg)
            unique[projection.NAME] = projection
    return list(unique.values())


def names_list(text: str | None) -> list[str]:
    """Split ``"a,b, c"`` into names (None or blanks: none)."""
    return [name.strip() for name in (text or "").split(",") if name.strip()]


def select(
    projections: Sequence[Projection],
    only: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> list[Projection]:
    """Return the projections one runner process owns: ``only`` these, minus ``exclude``.

    Runner processes that split the projections between them (each its own
    threads and tracking rows) are independent: a slow or failing projection
    in one never holds back another's. An unknown name is a configuration
    error (a typo would otherwise leave a view without a runner), and so is a
    selection that leaves nothing to run.
    """
    from practice_events.errors import ConfigurationError

    known = [p.NAME for p in projections]
    unknown = [n for n in (*only, *exclude) if n not in known]
    if unknown:
        msg = f"no projection named {', '.join(map(repr, unknown))}; known: {', '.join(known)}"
        raise ConfigurationError(msg)
    chosen = [p for p in projections if (not only or p.NAME in only) and p.NAME not in exclude]
    if not chosen:
        msg = "the selection leaves no projection to run"
        raise ConfigurationError(msg)
    return chosen


def projection_named(settings: Settings, name: str) -> Projection:
    """Return the projection called ``name`` (KeyError listing the known names)."""
    for projection in all_projections(settings):
        if name == projection.NAME:
            return projection
    known = ", ".join(p.NAME for p in all_projections(settings))
    msg = f"no projection named {name!r}; known: {known}"
    raise KeyError(msg)
