"""The SLA clock of findings: budgets per severity and stage, and the status of a clock.

The clock is separate from a finding's stage (DESIGN.md §5). Each of the three
stage targets has its own clock:

=================  =====================================  ==========================
stage              starts at                              is met by
=================  =====================================  ==========================
acknowledgement    feed-back (or a reassignment that      ``acknowledged``
                   restarts it)
rectification      feed-back; a reopen starts a new one   ``rectification_reported``
verification       ``rectification_reported``             ``verification_passed`` or
                                                          ``verification_failed``
=================  =====================================  ==========================

Its due time comes from the severity's :class:`Budget` on the working-day
calendar; a granted extension moves the *effective* due time. The aggregate
writes every due time it computes into the event that started the clock, so a
replay under a changed policy or calendar reproduces the original decisions.

A clock is a small JSON-native dict (see :func:`new_clock`) so that aggregate
state stays cheap to copy and projections can evaluate the same functions on
stored event data. Statuses (:data:`SlaStatus`): ``not_started``, ``running``
(due time not passed), ``breached`` (due time passed, target not met; always
relative to a given ``now``), ``met`` (target met by the effective due time),
``met_late`` (met after it: late work is never "met"), ``cancelled`` (the
finding was closed without a fix or voided before the target was met).
Pausing the clock (``sla_paused``/``sla_resumed``) is not implemented.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Final, Literal, get_args

from practice_events.domain.calendar import WorkingCalendar

Stage = Literal["acknowledgement", "rectification", "verification"]
"""The three stage targets that have a clock (also the ``stage`` of ``overdue``)."""

STAGES: Final[tuple[Stage, ...]] = get_args(Stage)

Severity = Literal["critical", "high", "normal", "low"]
"""How serious a finding is; decides its budgets."""

SEVERITIES: Final[tuple[Severity, ...]] = get_args(Severity)

SlaStatus = Literal["not_started", "running", "met", "met_late", "breached", "cancelled"]
"""The status of one clock (see the module docstring)."""

Outcome = Literal["met", "met_late"]
"""How a target was met: by the effective due time, or after it."""

BudgetUnit = Literal["h", "wd"]
"""Calendar hours, or working days on the calendar."""


@dataclass(frozen=True, slots=True)
class Budget:
    """A time allowance: ``amount`` calendar hours (``h``) or working days (``wd``).

    Written as text in events and policies: ``"2h"``, ``"24h"``, ``"5wd"``.
    """

    amount: int
    unit: BudgetUnit

    def __post_init__(self) -> None:
        """Refuse budgets that cannot be meant (zero or negative, absurdly long)."""
        if not 1 <= self.amount <= 10_000:
            msg = f"a budget must be 1..10000 {self.unit}, got {self.amount}"
            raise ValueError(msg)
        if self.unit not in ("h", "wd"):
            msg = f"a budget's unit is h (calendar hours) or wd (working days), got {self.unit!r}"
            raise ValueError(msg)

    @classmethod
    def parse(cls, text: str) -> Budget:
        """Read a budget written as ``"24h"`` or ``"5wd"``."""
        value = text.strip()
        for unit in ("wd", "h"):
            if value.endswith(unit) and value[: -len(unit)].isdigit():
                return cls(int(value[: -len(unit)]), unit)
        msg = f"a budget is written like 24h or 5wd, got {text!r}"
        raise ValueError(msg)

    def __str__(self) -> str:
        """Return the budget as text, e.g. ``5wd``."""
        return f"{self.amount}{self.unit}"

    def due(self, start: datetime, calendar: WorkingCalendar) -> datetime:
        """Return the due time of a clock started at ``start`` with this budget."""
        if self.unit == "h":
            return calendar.add_hours(start, self.amount)
        return calendar.add_working_days(start, self.amount)

    def scaled(self, ratio: float) -> Budget:
        """Return ``ratio`` of this budget, rounded down, at least 1 of the same unit.

        Used for the shorter deadline of a reopened finding: 15wd at 50% is
        7wd; 1wd stays 1wd; 24h becomes 12h.
        """
        return Budget(max(1, math.floor(self.amount * ratio)), self.unit)


def _budgets(table: Mapping[str, tuple[str, str, str]]) -> Mapping[str, Mapping[str, Budget]]:
    return MappingProxyType(
        {
            severity: MappingProxyType(
                {stage: Budget.parse(text) for stage, text in zip(STAGES, row, strict=True)}
            )
            for severity, row in table.items()
        }
    )


DEFAULT_BUDGETS: Final = _budgets(
    {
        # severity: (acknowledgement, rectification, verification)
        "critical": ("2h", "24h", "1wd"),
        "high": ("1wd", "5wd", "2wd"),
        "normal": ("2wd", "15wd", "5wd"),
        "low": ("5wd", "30wd", "10wd"),
    }
)
"""DESIGN.md §5 defaults, modelled on 12345 practice (emergency 2 h, complex 15 working days)."""

DEFAULT_POLICY_VERSION: Final = "sla-default-1"
"""The version recorded in events decided by the default policy. Change it with the budgets."""


@dataclass(frozen=True)
class SlaPolicy:
    """Budgets per severity and stage, plus the reopen and escalation rules.

    ``version`` is written into every event whose due times the policy
    decided, so auditors can tell which rules were in force.
    ``escalation_ladder`` lists ``(level, working days after the due time)``:
    T+1 → level 1 (unit leader), T+5 → level 2 (督办, named in the monthly
    bulletin), T+15 → level 3 (public criticism or leadership).
    """

    version: str = DEFAULT_POLICY_VERSION
    budgets: Mapping[str, Mapping[str, Budget]] = field(default_factory=lambda: DEFAULT_BUDGETS)
    reopen_ratio: float = 0.5
    reopen_window: timedelta = timedelta(days=90)
    escalation_ladder: tuple[tuple[int, int], ...] = ((1, 1), (2, 5), (3, 15))

    def __post_init__(self) -> None:
        """Refuse a policy with a missing budget or an impossible ratio."""
        for severity in SEVERITIES:
            for stage in STAGES:
                if stage not in self.budgets.get(severity, {}):
                    msg = f"SLA policy {self.version} has no {stage} budget for {severity}"
                    raise ValueError(msg)
        if not 0 < self.reopen_ratio <= 1:
            msg = f"reopen_ratio must be in (0, 1], got {self.reopen_ratio}"
            raise ValueError(msg)

    def budget(self, severity: str, stage: str) -> Budget:
        """Return the budget of ``stage`` for a finding of ``severity``."""
        return self.budgets[severity][stage]

    def reopen_budget(self, original: Budget) -> Budget:
        """Return the shorter rectification budget of a reopened cycle."""
        return original.scaled(self.reopen_ratio)

    def escalation_level(self, overdue_working_days: int) -> int:
        """Return the escalation level a clock this many working days overdue has reached."""
        level = 0
        for candidate, after in self.escalation_ladder:
            if overdue_working_days >= after:
                level = max(level, candidate)
        return level


# --- Clocks -------------------------------------------------------------------------------


def new_clock(started_at: str, due_at: str, budget: str) -> dict[str, Any]:
    """Return a running clock (JSON-native) started at ``started_at``, due at ``due_at``."""
    return {
        "started_at": started_at,
        "budget": budget,
        "original_due_at": due_at,
        "due_at": due_at,
        "extensions": 0,
        "met_at": None,
        "outcome": None,
        "cancelled": False,
    }


def outcome(met_at: datetime, due_at: datetime) -> Outcome:
    """Return ``met`` when the target was reached by the due time, else ``met_late``."""
    return "met" if met_at <= due_at else "met_late"


def is_running(clock: Mapping[str, Any] | None) -> bool:
    """Tell whether a clock is started, not met and not cancelled."""
    return clock is not None and clock["outcome"] is None and not clock["cancelled"]


def clock_status(clock: Mapping[str, Any] | None, now: datetime) -> SlaStatus:
    """Return the status of ``clock`` as seen at ``now``."""
    if clock is None:
        return "not_started"
    done: Outcome | None = clock["outcome"]
    if done is not None:
        return done
    if clock["cancelled"]:
        return "cancelled"
    if now > datetime.fromisoformat(clock["due_at"]):
        return "breached"
    return "running"
