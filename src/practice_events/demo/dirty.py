"""Realistic bad input mixed into a clean history, each line tagged with its expected fate.

Producers get things wrong in a small number of ways, and the ingest
pipeline must answer each with a stable code (``errors.py``,
``contracts/envelope.py``). :class:`DirtyMixer` adds, after clean events and
in a share ``P`` of all lines, bad lines of these kinds:

=======================  ==============================================================
expected code            the bad line
=======================  ==============================================================
``MALFORMED_JSON``       a line cut off mid-object, or a JSON array instead of an object
``UNKNOWN_TYPE``         a misspelt or unpublished event type
``SYSTEM_EVENT_TYPE``    a producer trying to send ``points_awarded`` itself
``SCHEMA_VIOLATION``     personal data in an extra field; ``data`` that is not an object
``OUT_OF_RANGE``         a rating of 6, a latitude of 123
``NAIVE_DATETIME``       a time without its offset
``MISSING_ATTRIBUTE``    no ``source``
``INVALID_ATTRIBUTE``    ``specversion`` 0.3
``TIME_IN_FUTURE``       a device clock eighty years ahead
``UNKNOWN_REFERENCE``    a check-in at a site that does not exist
``UNKNOWN_AGGREGATE``    accepting a need nobody submitted
``AGGREGATE_EXISTS``     a creation event sent again under a new id
``ILLEGAL_TRANSITION``   a step, completion, acceptance or rating sent twice
``RULE_VIOLATION``       a second check-in while a session is open; redeeming more
                         points than the balance
``DUPLICATE_CONFLICT``   an earlier (source, id) reused with a changed time
(duplicate)              an earlier line sent again unchanged: a duplicate, not a
                         rejection
=======================  ==============================================================

Every bad line that is a JSON object carries the extension attribute
``pedirty`` naming the expected code (``DUPLICATE`` for plain duplicates), so
a rejection file can be checked line by line; :attr:`DirtyMixer.expected`
counts them all (written as ``<out>.expected.json`` by ``write_jsonl``). Bad
lines never change state when refused, so the clean events around them are
all still accepted. Each kind is built only where it is certain to get its
code: a repeated step is illegal forever, a second check-in is sent right
after a check-in, before its check-out.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from practice_events.demo.network import DISTRICT, Network

Event = dict[str, Any]

RAW_LINE = "__raw__"
"""Key of the one-entry dict that carries a line which is not a JSON object."""

DUPLICATE = "DUPLICATE"
"""The ``pedirty`` tag of a plain duplicate (accepted as a duplicate, not rejected)."""

KINDS: tuple[tuple[str, int], ...] = (
    ("MALFORMED_JSON", 8),
    ("UNKNOWN_TYPE", 6),
    ("SYSTEM_EVENT_TYPE", 3),
    ("SCHEMA_VIOLATION", 14),
    ("OUT_OF_RANGE", 8),
    ("NAIVE_DATETIME", 8),
    ("MISSING_ATTRIBUTE", 4),
    ("INVALID_ATTRIBUTE", 3),
    ("TIME_IN_FUTURE", 3),
    ("UNKNOWN_REFERENCE", 6),
    ("UNKNOWN_AGGREGATE", 6),
    ("AGGREGATE_EXISTS", 4),
    ("ILLEGAL_TRANSITION", 10),
    ("RULE_VIOLATION", 6),
    ("DUPLICATE_CONFLICT", 5),
    (DUPLICATE, 6),
)
"""Kinds of bad input and their relative frequency (schema mistakes are the commonest)."""

CREATIONS = frozenset(
    {
        "practice.volunteer.registered.v1",
        "practice.activity.planned.v1",
        "practice.meeting.held.v1",
        "practice.need.submitted.v1",
        "practice.finding.recorded.v1",
    }
)
"""Creation events that a confused producer re-sends under a new id."""

REPEATS_ILLEGAL = frozenset(
    {
        "practice.meeting.step_logged.v1",
        "practice.activity.completed.v1",
        "practice.need.accepted.v1",
        "practice.need.rated.v1",
    }
)
"""Events that can never be applied a second time to the same aggregate."""

MAX_SHARE = 0.5
"""At most half the lines may be bad."""

GHOST_SITE = f"{DISTRICT}-GONE-404"
"""A site id that no district ever registers (ids are ``WLY-ZHAN-07`` and the like)."""


@dataclass
class Expectation:
    """What ingesting a mixed file must report: clean lines, duplicates, rejections by code."""

    clean: int = 0
    duplicates: int = 0
    rejections: Counter[str] = field(default_factory=Counter)

    @property
    def dirty(self) -> int:
        """Bad lines added (duplicates included)."""
        return self.duplicates + sum(self.rejections.values())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the ``.expected.json`` sidecar)."""
        return {
            "lines": self.clean + self.dirty,
            "clean": self.clean,
            "dirty": self.dirty,
            "expected_accepted": self.clean,
            "expected_duplicates": self.duplicates,
            "expected_rejected": sum(self.rejections.values()),
            "expected_rejections_by_code": dict(sorted(self.rejections.items())),
        }


class DirtyMixer:
    """Mix bad lines into a stream of clean events (see the module docstring)."""

    def __init__(self, *, seed: int, share: float, network: Network, end: int) -> None:
        """Prepare a mixer adding bad lines as ``share`` of all lines (0 < share ≤ 0.5)."""
        if not 0 < share <= MAX_SHARE:
            msg = f"dirty share must be in (0, {MAX_SHARE}], got {share}"
            raise ValueError(msg)
        self.rng = random.Random(seed * 104_729 + 17)  # noqa: S311 - reproducible, not cryptography
        self.per_clean = share / (1 - share)
        self.network = network
        self.end = end
        self.expected = Expectation()
        self._prefix = str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:wly:demo:dirty:{seed}"))[:24]
        self._count = 0
        self._kinds = [k for k, _ in KINDS]
        self._weights = [w for _, w in KINDS]
        self._recent: deque[Event] = deque(maxlen=512)
        self._creations: deque[Event] = deque(maxlen=64)
        self._repeatable: deque[Event] = deque(maxlen=64)
        self._volunteers: deque[str] = deque(maxlen=256)
        self._needs: deque[str] = deque(maxlen=64)

    def mix(self, clean: Iterator[Event]) -> Iterator[Event]:
        """Yield every clean event, each possibly followed by bad lines."""
        rng = self.rng
        per_clean = self.per_clean
        for event in clean:
            yield event
            self.expected.clean += 1
            self._remember(event)
            budget = per_clean
            while budget > 0:
                if budget < 1 and rng.random() >= budget:
                    break
                budget -= 1
                bad = self._bad(event)
                if bad is not None:
                    yield bad

    # -- memory of what was sent -------------------------------------------------------------

    def _remember(self, event: Event) -> None:
        kind = event["type"]
        self._recent.append(event)
        if kind in CREATIONS:
            self._creations.append(event)
            if kind == "practice.volunteer.registered.v1":
                self._volunteers.append(event["subject"])
            elif kind == "practice.need.submitted.v1":
                self._needs.append(event["subject"])
        elif kind in REPEATS_ILLEGAL:
            self._repeatable.append(event)

    def _new_id(self) -> str:
        self._count += 1
        return f"{self._prefix}{self._count:012x}"

    def _copy(self, event: Event, code: str, *, new_id: bool = True) -> Event:
        """A deep copy of ``event`` (its data is shared with the clean line) tagged ``code``."""
        bad: Event = orjson.loads(orjson.dumps(event))
        if new_id:
            bad["id"] = self._new_id()
        bad["pedirty"] = code
        return bad

    def _expect(self, code: str) -> None:
        if code == DUPLICATE:
            self.expected.duplicates += 1
        else:
            self.expected.rejections[code] += 1

    # -- the bad lines ---------------------------------------------------------------------------

    def _bad(self, event: Event) -> Event | None:
        code = self.rng.choices(self._kinds, self._weights)[0]
        bad = self._build(code, event)
        if bad is None:
            code = "SCHEMA_VIOLATION"
            bad = self._build(code, event)
        assert bad is not None
        self._expect(code)
        return bad

    def _build(self, code: str, event: Event) -> Event | None:  # noqa: PLR0911, PLR0912 - one branch per kind reads best
        rng = self.rng
        if code == "MALFORMED_JSON":
            if rng.random() < 0.8:
                text = orjson.dumps(event).decode()
                return {RAW_LINE: text[: rng.randint(10, len(text) - 2)]}
            return {RAW_LINE: orjson.dumps([event["type"], event["subject"]]).decode()}
        if code == "UNKNOWN_TYPE":
            bad = self._copy(event, code)
            bad["type"] = rng.choice(
                (
                    "practice.attendance.check_in.v1",
                    "practice.need.submitted.v2",
                    "practice.volunteer.registerd.v1",
                    "practice.meeting.minutes_uploaded.v1",
                )
            )
            return bad
        if code == "SYSTEM_EVENT_TYPE":
            bad = self._copy(event, code)
            bad["type"] = "practice.attendance.points_awarded.v1"
            bad["data"] = {"session_id": "S-SELF-AWARD", "points": 100}
            return bad
        if code == "SCHEMA_VIOLATION":
            bad = self._copy(event, code)
            if rng.random() < 0.7:
                bad["data"]["real_name"] = "张三"
            else:
                bad["data"] = "see attachment"
            return bad
        if code == "OUT_OF_RANGE":
            return self._out_of_range(event, code)
        if code == "NAIVE_DATETIME":
            bad = self._copy(event, code)
            bad["time"] = bad["time"][:19]
            return bad
        if code == "MISSING_ATTRIBUTE":
            bad = self._copy(event, code)
            del bad["source"]
            return bad
        if code == "INVALID_ATTRIBUTE":
            bad = self._copy(event, code)
            bad["specversion"] = "0.3"
            return bad
        if code == "TIME_IN_FUTURE":
            bad = self._copy(event, code)
            bad["time"] = f"{int(bad['time'][:4]) + 80}{bad['time'][4:]}"
            return bad
        if code == "UNKNOWN_REFERENCE":
            if not self._volunteers:
                return None
            return self._event(
                code,
                "practice.attendance.checked_in.v1",
                rng.choice(self._volunteers),
                event["time"],
                {"session_id": f"S-GHOST-{self._count}", "site_id": GHOST_SITE, "method": "qr"},
            )
        if code == "UNKNOWN_AGGREGATE":
            return self._event(
                code,
                "practice.need.accepted.v1",
                f"N-000000-{self._count:06d}",
                event["time"],
                {"by": f"{DISTRICT}-ZHAN-01"},
            )
        if code == "AGGREGATE_EXISTS":
            if not self._creations:
                return None
            bad = self._copy(rng.choice(self._creations), code)
            bad["time"] = event["time"]
            return bad
        if code == "ILLEGAL_TRANSITION":
            if not self._repeatable:
                return None
            bad = self._copy(rng.choice(self._repeatable), code)
            bad["time"] = event["time"]
            return bad
        if code == "RULE_VIOLATION":
            return self._rule_violation(event, code)
        if code == "DUPLICATE_CONFLICT":
            if len(self._recent) < 2:
                return None
            bad = self._copy(rng.choice(self._recent), code, new_id=False)
            bad["time"] = _later(bad["time"])
            return bad
        if code == DUPLICATE:
            if len(self._recent) < 2:
                return None
            return self._copy(rng.choice(self._recent), code, new_id=False)
        msg = f"unknown dirty kind {code}"  # pragma: no cover - KINDS and branches agree
        raise ValueError(msg)

    def _event(self, code: str, kind: str, subject: str, time: str, data: dict[str, Any]) -> Event:
        return {
            "specversion": "1.0",
            "id": self._new_id(),
            "source": "urn:wly:checkin-app" if "attendance" in kind else "urn:wly:wish-wall",
            "type": kind,
            "subject": subject,
            "time": time,
            "datacontenttype": "application/json",
            "pedirty": code,
            "data": data,
        }

    def _out_of_range(self, event: Event, code: str) -> Event:
        if self._needs and self.rng.random() < 0.5:
            rating = self.rng.choice((0, 6, 10))
            return self._event(
                code,
                "practice.need.rated.v1",
                self.rng.choice(self._needs),
                event["time"],
                {"rating": rating},
            )
        subject = self._volunteers[-1] if self._volunteers else f"V{self._count}"
        return self._event(
            code,
            "practice.attendance.checked_in.v1",
            subject,
            event["time"],
            {
                "session_id": f"S-GEO-{self._count}",
                "site_id": f"{DISTRICT}-ZHAN-01",
                "method": "gps",
                "geo": {"lat": 123.4, "lon": 110.5},
            },
        )

    def _rule_violation(self, event: Event, code: str) -> Event | None:
        if event["type"] == "practice.attendance.checked_in.v1":
            # Right after a check-in, before its check-out: the session is certainly open.
            bad = self._copy(event, code)
            bad["data"]["session_id"] = f"{bad['data']['session_id']}-again"
            return bad
        if not self._volunteers:
            return None
        return self._event(
            code,
            "practice.volunteer.points_redeemed.v1",
            self.rng.choice(self._volunteers),
            event["time"],
            {"points": 900_000, "item": "电动自行车", "outlet": f"{DISTRICT}-KIOSK-01"},
        )


def _later(time: str) -> str:
    """The same RFC 3339 time with its minute moved by one (a different time, still valid)."""
    minute = int(time[14:16])
    return f"{time[:14]}{(minute + 1) % 60:02d}{time[16:]}"
