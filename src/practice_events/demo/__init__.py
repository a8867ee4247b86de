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

from practice_events.demo.generator import Generation, Plan, Summary, generate, plan, write_jsonl

__all__ = ["Generation", "Plan", "Summary", "generate", "plan", "write_jsonl"]
