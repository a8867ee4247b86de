"""Several demo districts in one history: input for sharding demos, tests and benchmarks.

The generator simulates one district, Wulingyuan (``WLY``, administrative
code 430811). A province has many; :func:`province_history` generates one
history per district with its own seed and relabels every district after
the first, so that their ids never collide:

* the district code in site, team, period and producer ids (``WLY-ZHAN-02``
  -> ``CLX-ZHAN-02``, ``urn:wly:admin`` -> ``urn:clx:admin``, the scoring
  model ``wly-district`` -> ``clx-district``) and the administrative code in
  volunteer numbers (``V430811…`` -> ``V430812…``);
* ids the generator numbers without a district (activities ``A-…``, needs
  ``N-…``, meetings ``M-…``, findings ``F-…``, inspections ``INSP-…``,
  sessions ``S…``) get the district code in front (``CLX-A-202501-000001``).

Every event also gets the CloudEvents extension attribute ``district``, as a
producer of a sharded deployment sets it (see ``docs/sharding.md``). The
six-haves checklist is province-wide reference data, so only the first
district publishes it. The histories are merged by event time; each
district's own order is kept. The same arguments always give the same events.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from typing import Any

import orjson

from practice_events.demo.generator import generate
from practice_events.demo.network import DISTRICT, DISTRICT_CODE
from practice_events.shards.routing import DISTRICT_ATTRIBUTE
from practice_events.shards.routing import DISTRICT_CODE as CODE_PATTERN

_NUMBERED = re.compile(r"(?<![A-Za-z0-9-])((?:[AFMN]|INSP)-\d{6}-\d+|S\d{8})(?![0-9])")
_CHECKLIST_TYPES = ("practice.site.checklist_published.v1", "practice.site.checklist_revised.v1")


def relabel(event: dict[str, Any], code: str, admin_code: str) -> dict[str, Any]:
    """Return ``event`` as district ``code`` (admin code ``admin_code``) would have sent it.

    For the generator's own district (``WLY``) only the ``district``
    attribute is added.
    """
    if code != DISTRICT:
        text = orjson.dumps(event).decode()
        text = text.replace(DISTRICT, code).replace(DISTRICT.lower(), code.lower())
        text = text.replace(DISTRICT_CODE, admin_code)
        text = _NUMBERED.sub(lambda m: f"{code}-{m.group(1)}", text)
        event = orjson.loads(text)
    else:
        event = dict(event)
    event[DISTRICT_ATTRIBUTE] = code
    return event


def district_history(
    code: str,
    admin_code: str,
    *,
    seed: int,
    events: int | None = None,
    days: int | None = None,
    start: date | None = None,
    checklist: bool = True,
) -> Iterator[dict[str, Any]]:
    """Yield one district's demo history, relabelled as ``code`` (see the module docstring)."""
    if not CODE_PATTERN.match(code) or not re.fullmatch(r"\d{6}", admin_code):
        msg = f"bad district {code!r} / administrative code {admin_code!r}"
        raise ValueError(msg)
    for event in generate(seed=seed, events=events, days=days, start=start):
        if not checklist and event.get("type") in _CHECKLIST_TYPES:
            continue
        yield relabel(event, code, admin_code)


def province_history(
    codes: Sequence[str],
    *,
    seed: int = 7,
    events_per_district: int | None = None,
    days: int | None = None,
    start: date | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield the histories of several districts merged by time.

    District ``i`` uses seed ``seed + i`` and administrative code
    ``430811 + i``; the first code should be ``WLY`` (the generator's own) but
    need not be.
    """
    streams = [
        district_history(
            code,
            str(int(DISTRICT_CODE) + index),
            seed=seed + index,
            events=events_per_district,
            days=days,
            start=start,
            checklist=index == 0,
        )
        for index, code in enumerate(codes)
    ]
    yield from heapq.merge(*streams, key=_time)


def _time(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(event["time"]))
