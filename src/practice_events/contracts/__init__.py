"""Contracts: what producers send (CloudEvents envelopes and one model per type).

One module per area; importing :func:`load_all` registers every type in
:data:`practice_events.contracts.base.CATALOGUE`.
"""

from __future__ import annotations

import importlib

AREAS = ("site", "volunteer", "attendance", "activity", "meeting", "need", "finding", "assessment")
"""The areas of the catalogue, in the order the docs present them."""

_loaded = False


def load_all() -> None:
    """Import every area module so that all event types are registered."""
    global _loaded  # noqa: PLW0603 - a process-wide, idempotent registration flag
    if _loaded:
        return
    for area in AREAS:
        importlib.import_module(f"practice_events.contracts.{area}")
    _loaded = True
