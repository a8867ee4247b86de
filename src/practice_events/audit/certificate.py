"""Volunteer service-record certificates (志愿服务记录证明), reproducible from the log.

MCA Order No. 67 (《志愿服务记录与证明出具办法》, 2020) asks that a service
record certificate be true, accurate and complete, and that it be issued from
the records the organisation keeps. Here the record is the event log, and a
certificate is a pure function of the log up to one position:

* **as of**: ``--as-of T`` means "as recorded by T" (a cut of the log at the
  last position recorded at or before T, as in ``audit replay``); events
  recorded later, even about earlier service, belong to a later certificate.
  The document names the position and the recording time of the event there
  (``recorded_through``), not T itself, so every T that cuts the log at the
  same place gives the same certificate;
* **number**: ``<CENTRE>-CERT-<volunteer>-<position>``, the issuing centre
  (the root of the volunteer's home site) and the log position, so the same
  number always means the same content;
* **content**: approved service hours by calendar year of the session's
  start in the network's time zone (after rejections and corrections, as the
  volunteer aggregate computes them: the domain's own code replays the
  volunteer's events), sessions per year, trainings completed, star levels
  attained, and the registration. Pending hours are shown but not certified;
* **reproducible**: nothing in it depends on when it is produced; its
  ``content_sha256`` is the hash of its canonical JSON, so a copy can be
  checked against a later re-issue with the same volunteer and position.

The holder: personal details are in the log only sealed under the
person's key (``docs/privacy.md``). ``holder`` carries the name and the
masked ID number of the latest details recorded at or before the cut,
decrypted when the certificate is made, or ``"[erased]"`` once the person's
key was destroyed. Because an erasure changes it, two hashes are given:
``record_sha256`` covers the service record (everything but ``holder``
and the hashes) and stays the same across an erasure; ``content_sha256``
covers the whole document as issued.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

import orjson
from eventsourcing.persistence import StoredEvent

from practice_events.application import PracticeEvents
from practice_events.audit.history import state_decoder
from practice_events.audit.integrity import LogStore, log_store
from practice_events.audit.replay import position_recorded_by
from practice_events.domain.base import aggregate_id
from practice_events.domain.volunteer import (
    STAR_LEVEL_ATTAINED,
    TRAINING_COMPLETED,
    Volunteer,
)
from practice_events.errors import ConfigurationError, PracticeEventsError

CERTIFICATE_FORMAT = "practice-events/volunteer-certificate/v1"
"""The ``format`` of certificate documents."""


def certificate_number(issuer: str, volunteer_no: str, position: int) -> str:
    """Return the certificate number ``<issuer>-CERT-<volunteer>-<position>``."""
    return f"{issuer}-CERT-{volunteer_no}-{position}"


def _issuer(app: PracticeEvents, home_site_id: str) -> str:
    """Return the root of the site tree above ``home_site_id`` (the issuing centre)."""
    site_id = home_site_id
    seen: set[str] = set()
    while site_id not in seen:
        seen.add(site_id)
        try:
            site: Any = app.get_aggregate("site", site_id)
        except Exception:  # noqa: BLE001 - any lookup failure: the last known id issues
            return site_id
        parent = getattr(site, "parent_id", None)
        if not parent:
            return site_id
        site_id = str(parent)
    return site_id


def _recorded_time(app: PracticeEvents, store: LogStore, position: int) -> str | None:
    """Return the recording time of the last event at or before ``position``."""
    from practice_events.audit.replay import last_at_or_before

    row = last_at_or_before(store, position)
    if row is None:
        return None
    return str(state_decoder(app)(row[4]).get("timestamp"))


def volunteer_certificate(
    app: PracticeEvents,
    volunteer_no: str,
    *,
    timezone: str = "Asia/Shanghai",
    as_of: datetime | None = None,
    position: int | None = None,
    store: LogStore | None = None,
) -> dict[str, Any]:
    """Return the service-record certificate of ``volunteer_no`` (see the module docstring).

    Give ``as_of`` (a time with an offset) or ``position``. Raises
    ``NOT_FOUND`` when the volunteer had no events by then.
    """
    if (as_of is None) == (position is None):
        msg = "give exactly one of --as-of TIME or --position N"
        raise ConfigurationError(msg)
    if as_of is not None and as_of.tzinfo is None:
        msg = "--as-of needs a time with an offset, e.g. 2025-12-31T23:59:59+08:00"
        raise ConfigurationError(msg)
    store = store or log_store(app)
    cut = position if position is not None else position_recorded_by(app, cast(datetime, as_of))
    zone = ZoneInfo(timezone)
    agg_id = aggregate_id("volunteer", volunteer_no)
    rows = [row for row in store.events_of(agg_id) if row[0] <= cut]
    if not rows:
        msg = f"no volunteer {volunteer_no!r} was recorded at or before position {cut}"
        raise PracticeEventsError(msg, code="NOT_FOUND")
    decode = state_decoder(app)
    volunteer: Any = None
    trainings: list[dict[str, Any]] = []
    stars: list[dict[str, Any]] = []
    registered: dict[str, Any] = {}
    last_position = 0
    for pos, version, topic, state in rows:
        volunteer = app.mapper.to_domain_event(
            StoredEvent(originator_id=agg_id, originator_version=version, topic=topic, state=state)
        ).mutate(volunteer)  # type: ignore[attr-defined]  # every stored event here is a PracticeAggregate event
        last_position = pos
        if version == 1 or topic in (TRAINING_COMPLETED, STAR_LEVEL_ATTAINED):
            obj = decode(state)
            data, meta = obj.get("data") or {}, obj.get("meta") or {}
            if version == 1:
                registered = {
                    "registered_on": data.get("registered_on") or meta.get("time", "")[:10],
                    "home_site_id": data.get("home_site_id"),
                    "is_official": bool(data.get("is_official", False)),
                }
            elif topic == TRAINING_COMPLETED:
                trainings.append(
                    {
                        "course_id": data.get("course_id"),
                        "hours": data.get("hours"),
                        "completed_at": meta.get("time"),
                        "certificate_ref": data.get("certificate_ref"),
                        "expires_on": data.get("expires_on"),
                    }
                )
            else:
                stars.append(
                    {
                        "level": data.get("level"),
                        "threshold_hours": data.get("threshold_hours"),
                        "attained_at": meta.get("time"),
                        "rule_version": data.get("rule_version"),
                    }
                )
    assert isinstance(volunteer, Volunteer)
    by_year: dict[int, dict[str, float]] = defaultdict(lambda: {"hours": 0.0, "sessions": 0})
    pending = 0.0
    for session in volunteer.sessions.values():
        if session.credit == "approved":
            year = session.started_at.astimezone(zone).year
            by_year[year]["hours"] += session.hours
            by_year[year]["sessions"] += 1
        elif session.credit == "pending":
            pending += session.hours
    years = [
        {"year": year, "approved_hours": round(v["hours"], 2), "sessions": int(v["sessions"])}
        for year, v in sorted(by_year.items())
    ]
    issuer = _issuer(app, volunteer.home_site_id)
    recorded_through = _recorded_time(app, store, cut)
    body: dict[str, Any] = {
        "format": CERTIFICATE_FORMAT,
        "number": certificate_number(issuer, volunteer_no, cut),
        "issuer": issuer,
        "volunteer_no": volunteer_no,
        "position": cut,
        "recorded_through": recorded_through,
        "last_event_position": last_position,
        "registration": registered,
        "status": volunteer.status,
        "approved_hours_total": round(volunteer.approved_hours(), 2),
        "hours_by_year": years,
        "pending_hours_not_certified": round(pending, 2),
        "trainings": trainings,
        "awards": {
            "star_level": volunteer.star_level(),
            "star_levels_attained": stars,
        },
        "basis": (
            "Approved service hours recorded in the practice-events log at or before the "
            "position above (MCA Order No. 67); hours are counted in the year the session began."
        ),
    }
    body["record_sha256"] = hashlib.sha256(
        orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    ).hexdigest()
    body["holder"] = _holder(app, volunteer_no, cut)
    body["content_sha256"] = hashlib.sha256(
        orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    ).hexdigest()
    return body


def _holder(app: PracticeEvents, volunteer_no: str, cut: int) -> dict[str, Any]:
    """Name and masked ID number of the holder as recorded by ``cut`` (decrypted now)."""
    from practice_events.privacy import ERASED
    from practice_events.privacy.reveal import Revealer

    details = Revealer(app).current(volunteer_no, upto=cut)
    id_number = details.id_number
    if id_number and id_number != ERASED:
        id_number = id_number[:6] + "*" * 8 + id_number[-4:]
    return {"details": details.status, "name": details.name, "id_number": id_number}
