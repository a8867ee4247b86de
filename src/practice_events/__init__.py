"""practice-events: event-sourced activity tracking for civilization practice networks.

Every volunteer check-in, house meeting, resident wish, site assessment and
inspection finding is an immutable event; projections build the closed loop,
the scorecards and the ledgers that supervisors and auditors read.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
