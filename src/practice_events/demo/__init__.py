"""The demo district: a realistic, deterministic history for the demo, tests and benchmarks.

``practice-events demo generate`` (see :mod:`practice_events.demo.cli`)
writes it; :func:`generate` yields it as structured CloudEvent dicts and
:func:`write_jsonl` writes it as JSON Lines. The district's shape is in
:mod:`~practice_events.demo.network`, the simulation in
:mod:`~practice_events.demo.generator`, the bad input of ``--dirty`` in
:mod:`~practice_events.demo.dirty`; rates and their sources are documented in
``docs/demo-data.md``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from practice_events.demo.generator import (
        Generation,
        Plan,
        Summary,
        generate,
        plan,
        write_jsonl,
    )

__all__ = ["Generation", "Plan", "Summary", "generate", "plan", "write_jsonl"]


def __getattr__(name: str) -> Any:
    """Import the generator on first use of one of its names.

    Every ``practice-events`` process imports this package (``demo`` adds its
    sub-commands through :mod:`practice_events.demo.cli`), but few commands
    generate anything; importing the generator up front cost each of them ~60 ms.
    """
    if name in __all__:
        return getattr(import_module("practice_events.demo.generator"), name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
