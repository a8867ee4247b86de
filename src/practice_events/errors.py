"""The one error family of practice-events.

Every failure that a producer, supervisor or auditor can cause is a
:class:`PracticeEventsError` with a stable ``code`` and a human-readable
``reason``. The ingest layer turns them into dead-letter headers and rejection
rows, the API layer into RFC 9457 problem documents; the same reason text
reaches the producer either way.
"""

from __future__ import annotations

from typing import Any, ClassVar


class PracticeEventsError(Exception):
    """Base class: a failure with a stable machine-readable code.

    ``code`` never changes once published (producers branch on it); ``reason``
    is written for a person and may be improved over time.
    """

    code: ClassVar[str] = "INTERNAL"

    def __init__(self, reason: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        if code is not None:
            self.code = code  # type: ignore[misc]  # instance override of the class default
        self.details = details

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"


# --- Contracts: what producers send -------------------------------------------------


class ContractError(PracticeEventsError):
    """The input does not match the published contract (envelope or data)."""

    code = "SCHEMA_VIOLATION"


class MalformedInputError(ContractError):
    """The bytes are not JSON (or not UTF-8, or not an object)."""

    code = "MALFORMED_JSON"


class UnknownTypeError(ContractError):
    """The CloudEvents ``type`` is not in the catalogue."""

    code = "UNKNOWN_TYPE"


class SystemEventTypeError(ContractError):
    """The type exists but is emitted by practice-events itself, not by producers."""

    code = "SYSTEM_EVENT_TYPE"


# --- Domain: rules that aggregates enforce ------------------------------------------


class DomainError(PracticeEventsError):
    """A domain rule refused the event; nothing was changed."""

    code = "RULE_VIOLATION"


class IllegalTransitionError(DomainError):
    """The aggregate is not in a state that allows this event."""

    code = "ILLEGAL_TRANSITION"


class UnknownAggregateError(DomainError):
    """The event's subject names an aggregate that was never created."""

    code = "UNKNOWN_AGGREGATE"


class AggregateExistsError(DomainError):
    """A creation event names a subject that already exists."""

    code = "AGGREGATE_EXISTS"


class UnknownReferenceError(DomainError):
    """The event refers to another aggregate (a site, a volunteer...) that does not exist."""

    code = "UNKNOWN_REFERENCE"


# --- Ingestion ------------------------------------------------------------------------


class DuplicateConflictError(PracticeEventsError):
    """The same (source, id) arrived again with different content."""

    code = "DUPLICATE_CONFLICT"


class AuthorizationError(PracticeEventsError):
    """The caller may not do this (wrong role, unit or source)."""

    code = "FORBIDDEN"


class ConfigurationError(PracticeEventsError):
    """A setting is missing or wrong; the process cannot start."""

    code = "BAD_CONFIGURATION"


class TransientError(PracticeEventsError):
    """An infrastructure fault that may go away (database restarting, broker away)."""

    code = "TRANSIENT"
