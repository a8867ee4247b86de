"""House meetings (屋场会) for supervisors: coverage of sites, five-step completeness, concerns.

The :class:`MeetingsProjection` keeps three tables (prefixed ``meetings_``):

``sites``
    every registered site with its level and whether (and since when) it is
    deactivated: the denominator of coverage is the house-meeting sites
    (屋场) of a scope that operated during the period.
``meetings``
    one row per meeting: site, start and end, local date held, attendance,
    officials present, the time each of the five steps 讲听演评办 was logged
    (NULL when missing), how many were logged and whether all five were,
    and the counts of its concerns by outcome.
``concerns``
    one row per concern: category, summary, status (open, resolved on the
    spot, converted to a need or a finding, with the target id), raised and
    settled times, and whether it was settled within 3 days (72 h).

Query functions: :func:`list_meetings`, :func:`get_meeting`,
:func:`meetings_summary` (one scope and period, per site) and
:func:`meeting_coverage` (several units at once, for tables of units).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from datetime import timedelta
from typing import Any, ClassVar

from practice_events.domain.meeting import STEPS
from practice_events.scoring.periods import Period
from projections.base import LoggedEvent, Projection, Rebuilder
from projections.rows import (
    CachingRebuilder,
    RowCache,
    RowSet,
    check_limit,
    decode_cursor,
    dumps,
    encode_cursor,
    in_scope,
    key,
    loads,
    local_day,
    parse_period,
    parse_utc,
    period_bounds,
    rate,
    reading,
    scope_clause,
    utc_text,
)
from projections.viewstore import Tx, ViewStore

SITE_REGISTERED = "practice.site.registered.v1"
SITE_DEACTIVATED = "practice.site.deactivated.v1"
HELD = "practice.meeting.held.v1"
STEP_LOGGED = "practice.meeting.step_logged.v1"
CONCERN_RAISED = "practice.meeting.concern_raised.v1"
CONCERN_RESOLVED = "practice.meeting.concern_resolved_on_spot.v1"
CONCERN_CONVERTED = "practice.meeting.concern_converted.v1"

HOUSE_MEETING_SITE = "house_meeting_site"
"""The site level of a 屋场, the unit of house-meeting coverage."""

SETTLE_WITHIN = timedelta(days=3)
"""A concern counts as handled when resolved on the spot or converted within 72 hours."""

SITE_COLUMNS = (
    "site_id",
    "level",
    "parent_id",
    "name",
    "registered_at",
    "registered_on",
    "active",
    "deactivated_at",
    "deactivated_on",
)

MEETING_COLUMNS = (
    "meeting_id",
    "site_id",
    "started_at",
    "ended_at",
    "held_on",
    "attendees_count",
    "officials_present",
    "officials_count",
    "hosts_count",
    "topics",
    *(f"{step}_at" for step in STEPS),
    "steps_logged",
    "complete",
    "concerns_raised",
    "resolved_on_spot",
    "converted_to_need",
    "converted_to_finding",
    "concerns_open",
    "settled_within_3d",
    "recorded_at",
)

CONCERN_COLUMNS = (
    "concern_key",
    "meeting_id",
    "concern_id",
    "site_id",
    "category",
    "summary",
    "status",
    "raised_at",
    "raised_on",
    "settled_at",
    "resolution",
    "converted_to",
    "target_id",
    "within_3d",
)


class MeetingsProjection(Projection):
    """Builds the house-meeting, concern and site tables (see the module docstring)."""

    NAME = "meetings"
    VERSION = 1
    TOPICS = (
        SITE_REGISTERED,
        SITE_DEACTIVATED,
        HELD,
        STEP_LOGGED,
        CONCERN_RAISED,
        CONCERN_RESOLVED,
        CONCERN_CONVERTED,
    )
    TABLES: ClassVar[Mapping[str, str]] = {
        "sites": (
            "CREATE TABLE IF NOT EXISTS {name} ("
            "site_id TEXT PRIMARY KEY, level TEXT, parent_id TEXT, name TEXT, "
            "registered_at TEXT, registered_on TEXT, active INTEGER NOT NULL, "
            "deactivated_at TEXT, deactivated_on TEXT)"
        ),
        "meetings": (
            "CREATE TABLE IF NOT EXISTS {name} ("
            "meeting_id TEXT PRIMARY KEY, site_id TEXT, started_at TEXT, ended_at TEXT, "
            "held_on TEXT, attendees_count INTEGER, officials_present TEXT, "
            "officials_count INTEGER NOT NULL, hosts_count INTEGER NOT NULL, topics TEXT, "
            + "".join(f"{step}_at TEXT, " for step in STEPS)
            + "steps_logged INTEGER NOT NULL, complete INTEGER NOT NULL, "
            "concerns_raised INTEGER NOT NULL, resolved_on_spot INTEGER NOT NULL, "
            "converted_to_need INTEGER NOT NULL, converted_to_finding INTEGER NOT NULL, "
            "concerns_open INTEGER NOT NULL, settled_within_3d INTEGER NOT NULL, "
            "recorded_at TEXT)"
        ),
        "concerns": (
            "CREATE TABLE IF NOT EXISTS {name} ("
            "concern_key TEXT PRIMARY KEY, meeting_id TEXT NOT NULL, concern_id TEXT NOT NULL, "
            "site_id TEXT, category TEXT, summary TEXT, status TEXT NOT NULL, raised_at TEXT, "
            "raised_on TEXT, settled_at TEXT, resolution TEXT, converted_to TEXT, "
            "target_id TEXT, within_3d INTEGER NOT NULL)"
        ),
    }
    REBUILD_INDEXES = ()  # batches read rows by primary key only
    INDEXES: ClassVar[Mapping[str, str]] = {
        "meetings_site": "CREATE INDEX IF NOT EXISTS {index} ON {meetings} (site_id, held_on)",
        "meetings_listed": (
            "CREATE INDEX IF NOT EXISTS {index} ON {meetings} (started_at, meeting_id)"
        ),
        "concerns_meeting": "CREATE INDEX IF NOT EXISTS {index} ON {concerns} (meeting_id)",
        "concerns_site": "CREATE INDEX IF NOT EXISTS {index} ON {concerns} (site_id, raised_on)",
    }

    def apply(self, tx: Tx, events: Sequence[LoggedEvent], tables: Mapping[str, str]) -> None:
        """Load the batch's sites, meetings and concerns, apply the events, write each once."""
        self._apply_batch(tx, events, tables, {})

    def rebuilder(self, tables: Mapping[str, str]) -> Rebuilder:
        """Keep the sites, meetings and concerns in memory across a rebuild's batches."""
        caches = {
            "sites": RowCache(tables["sites"], "site_id", SITE_COLUMNS),
            "meetings": RowCache(tables["meetings"], "meeting_id", MEETING_COLUMNS),
            "concerns": RowCache(tables["concerns"], "concern_key", CONCERN_COLUMNS),
        }

        def batch(tx: Tx, events: Sequence[LoggedEvent], held: Mapping[str, RowCache]) -> None:
            self._apply_batch(tx, events, tables, held)

        return CachingRebuilder(self, tables, caches, batch)

    def _apply_batch(
        self,
        tx: Tx,
        events: Sequence[LoggedEvent],
        tables: Mapping[str, str],
        caches: Mapping[str, RowCache],
    ) -> None:
        sites = RowSet(tx, tables["sites"], "site_id", SITE_COLUMNS, caches.get("sites"))
        meetings = RowSet(
            tx, tables["meetings"], "meeting_id", MEETING_COLUMNS, caches.get("meetings")
        )
        concerns = RowSet(
            tx, tables["concerns"], "concern_key", CONCERN_COLUMNS, caches.get("concerns")
        )
        if sites.needs_preload:
            sites.preload(e.subject for e in events if e.type.startswith("practice.site."))
        if meetings.needs_preload:
            meetings.preload(e.subject for e in events if e.type.startswith("practice.meeting."))
        if concerns.needs_preload:
            concerns.preload(
                key(e.subject, e.data["concern_id"])
                for e in events
                if e.type in (CONCERN_RESOLVED, CONCERN_CONVERTED)
            )
        for e in events:
            if e.type == SITE_REGISTERED:
                sites.create(
                    e.subject,
                    {
                        "level": e.data.get("level"),
                        "parent_id": e.data.get("parent_id"),
                        "name": e.data.get("name"),
                        "registered_at": utc_text(e.time),
                        "registered_on": local_day(e.time, self.zone),
                        "active": 1,
                    },
                )
            elif e.type == SITE_DEACTIVATED:
                site = sites.mutate(e.subject)
                if site is not None:
                    site.update(
                        active=0,
                        deactivated_at=utc_text(e.time),
                        deactivated_on=local_day(e.time, self.zone),
                    )
            elif e.type == HELD:
                self._held(meetings, e)
            else:
                meeting = meetings.mutate(e.subject)
                if meeting is None:  # only for a log that starts mid-history
                    continue
                self._meeting_event(meeting, concerns, e)
        sites.write()
        meetings.write()
        concerns.write()

    def _held(self, meetings: RowSet, e: LoggedEvent) -> None:
        d = e.data
        started = parse_utc(str(d["started_at"]))
        officials = list(d.get("officials_present", ()))
        meetings.create(
            e.subject,
            {
                "site_id": d.get("site_id"),
                "started_at": utc_text(started),
                "ended_at": utc_text(parse_utc(str(d["ended_at"]))),
                "held_on": local_day(started, self.zone),
                "attendees_count": int(d.get("attendees_count", 0)),
                "officials_present": dumps(officials),
                "officials_count": len(officials),
                "hosts_count": len(d.get("hosts", ())),
                "topics": dumps(list(d.get("topics", ()))),
                "steps_logged": 0,
                "complete": 0,
                **dict.fromkeys(
                    (
                        "concerns_raised",
                        "resolved_on_spot",
                        "converted_to_need",
                        "converted_to_finding",
                        "concerns_open",
                        "settled_within_3d",
                    ),
                    0,
                ),
                "recorded_at": utc_text(e.time),
            },
        )

    def _meeting_event(self, meeting: dict[str, Any], concerns: RowSet, e: LoggedEvent) -> None:
        d = e.data
        at = utc_text(e.time)
        if e.type == STEP_LOGGED:
            column = f"{d['step']}_at"
            if meeting[column] is None:
                meeting[column] = at
                meeting["steps_logged"] += 1
                meeting["complete"] = 1 if meeting["steps_logged"] == len(STEPS) else 0
            return
        concern_key = key(e.subject, d["concern_id"])
        if e.type == CONCERN_RAISED:
            concerns.create(
                concern_key,
                {
                    "meeting_id": e.subject,
                    "concern_id": d["concern_id"],
                    "site_id": meeting["site_id"],
                    "category": d.get("category"),
                    "summary": d.get("summary"),
                    "status": "open",
                    "raised_at": at,
                    "raised_on": local_day(e.time, self.zone),
                    "within_3d": 0,
                },
            )
            meeting["concerns_raised"] += 1
            meeting["concerns_open"] += 1
            return
        concern = concerns.mutate(concern_key)
        if concern is None or concern["status"] != "open":
            return
        within = parse_utc(at) - parse_utc(concern["raised_at"]) <= SETTLE_WITHIN
        concern.update(settled_at=at, within_3d=1 if within else 0)
        meeting["concerns_open"] -= 1
        meeting["settled_within_3d"] += 1 if within else 0
        if e.type == CONCERN_RESOLVED:
            concern.update(status="resolved_on_spot", resolution=d.get("resolution"))
            meeting["resolved_on_spot"] += 1
        else:
            concern.update(status="converted", converted_to=d["to"], target_id=d["target_id"])
            meeting[f"converted_to_{d['to']}"] += 1


# ======================================================================================
# Queries (JSON-ready; used by the HTTP API)
# ======================================================================================

SITES = f"{MeetingsProjection.NAME}_sites"
MEETINGS = f"{MeetingsProjection.NAME}_meetings"
CONCERNS = f"{MeetingsProjection.NAME}_concerns"


def _meeting_out(row: Mapping[str, Any]) -> dict[str, Any]:
    """Shape a meeting row: steps as a mapping, missing steps listed, flags as booleans."""
    out = {k: val for k, val in row.items() if not k.endswith("_at") or k[:-3] not in STEPS}
    out["officials_present"] = loads(row["officials_present"], [])
    out["topics"] = loads(row["topics"], [])
    out["complete"] = bool(row["complete"])
    out["steps"] = {step: row[f"{step}_at"] for step in STEPS}
    out["missing_steps"] = [step for step in STEPS if row[f"{step}_at"] is None]
    return out


def list_meetings(
    views: ViewStore | Tx,
    unit_scope: Collection[str] | None,
    *,
    period: str | Period | None = None,
    site_id: str | None = None,
    complete: bool | None = None,
    with_open_concerns: bool | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> dict[str, Any]:
    """Return a page of meetings held at sites in ``unit_scope``, latest first.

    Filters: ``period`` (held in that local period), ``site_id``,
    ``complete`` (all five steps logged, or not) and ``with_open_concerns``.
    Each meeting lists its ``missing_steps``. Keyset cursor on (start time,
    meeting id).
    """
    check_limit(limit)
    where, params = scope_clause("site_id", unit_scope)
    clauses = [where]
    if period is not None:
        first, end = period_bounds(parse_period(period))
        clauses.append("held_on >= ? AND held_on < ?")
        params += [first, end]
    if site_id is not None:
        clauses.append("site_id = ?")
        params.append(site_id)
    if complete is not None:
        clauses.append("complete = ?")
        params.append(1 if complete else 0)
    if with_open_concerns is not None:
        clauses.append("concerns_open > 0" if with_open_concerns else "concerns_open = 0")
    if cursor is not None:
        started_at, meeting_id = decode_cursor(cursor, 2)
        clauses.append("(started_at < ? OR (started_at = ? AND meeting_id < ?))")
        params += [started_at, started_at, meeting_id]
    with reading(views) as tx:
        rows = tx.query(
            f"SELECT * FROM {MEETINGS} WHERE {' AND '.join(clauses)} "
            "ORDER BY started_at DESC, meeting_id DESC LIMIT ?",
            [*params, limit + 1],
        )
    page = rows[:limit]
    next_cursor = (
        encode_cursor([page[-1]["started_at"], page[-1]["meeting_id"]])
        if len(rows) > limit
        else None
    )
    return {"items": [_meeting_out(r) for r in page], "next_cursor": next_cursor}


def get_meeting(
    views: ViewStore | Tx, meeting_id: str, *, unit_scope: Collection[str] | None = None
) -> dict[str, Any] | None:
    """Return one meeting with its concerns (as raised), or None (unknown or out of scope)."""
    with reading(views) as tx:
        rows = tx.query(f"SELECT * FROM {MEETINGS} WHERE meeting_id = ?", [meeting_id])
        if not rows or not in_scope(rows[0]["site_id"], unit_scope):
            return None
        concerns = tx.query(
            f"SELECT * FROM {CONCERNS} WHERE meeting_id = ? ORDER BY raised_at, concern_id",
            [meeting_id],
        )
    items = [
        {
            **{k: val for k, val in c.items() if k != "concern_key"},
            "within_3d": bool(c["within_3d"]),
        }
        for c in concerns
    ]
    return {**_meeting_out(rows[0]), "concerns": items}


def _operating_sites(tx: Tx, scope: Collection[str] | None, p: Period) -> list[dict[str, Any]]:
    """House-meeting sites of ``scope`` registered before P's end and not closed before P."""
    first, end = period_bounds(p)
    where, params = scope_clause("site_id", scope)
    return tx.query(
        f"SELECT site_id, name, parent_id FROM {SITES} WHERE level = ? AND registered_on < ? "
        f"AND (deactivated_on IS NULL OR deactivated_on >= ?) AND {where} ORDER BY site_id",
        [HOUSE_MEETING_SITE, end, first, *params],
    )


def meetings_summary(
    views: ViewStore | Tx,
    unit_scope: Collection[str] | None,
    period: str | Period,
    *,
    min_meetings: int = 3,
    min_concerns: int = 1,
) -> dict[str, Any]:
    """Return house-meeting coverage, five-step completeness and concern handling for P.

    * ``coverage`` = house-meeting sites (屋场) in scope with ≥ 1 meeting
      held in P ÷ house-meeting sites in scope operating during P
      (registered before P's end, not deactivated before P's start);
      ``uncovered`` lists the sites without a meeting.
    * ``five_step_completeness`` = meetings held in P (at sites in scope)
      with all five steps 讲听演评办 logged ÷ meetings held in P; minimum
      sample ``min_meetings`` (default 3, as in the example scoring model);
      ``steps`` counts the meetings that logged each step.
    * Concerns raised in P at sites in scope: ``raised``,
      ``resolved_on_spot``, ``converted`` (to need / finding), ``open``;
      ``handled_within_3d`` = resolved on the spot or converted within 72 h
      ÷ raised (minimum sample ``min_concerns``).
    * ``by_site``: the same per site.
    """
    p = parse_period(period)
    first, end = period_bounds(p)
    where, params = scope_clause("site_id", unit_scope)
    with reading(views) as tx:
        sites = _operating_sites(tx, unit_scope, p)
        meetings = tx.query(
            f"SELECT * FROM {MEETINGS} WHERE held_on >= ? AND held_on < ? AND {where}",
            [first, end, *params],
        )
        concerns = tx.query(
            "SELECT site_id, status, converted_to, within_3d FROM "
            f"{CONCERNS} WHERE raised_on >= ? AND raised_on < ? AND {where}",
            [first, end, *params],
        )
    meetings_by_site: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for m in meetings:
        meetings_by_site[m["site_id"]].append(m)
    concerns_by_site: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in concerns:
        concerns_by_site[c["site_id"]].append(c)

    def meeting_figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
        complete = sum(1 for m in rows if m["complete"])
        return {
            "meetings": len(rows),
            "attendees": sum(int(m["attendees_count"] or 0) for m in rows),
            "five_step_completeness": rate(complete, len(rows), min_meetings),
            "steps": {step: sum(1 for m in rows if m[f"{step}_at"] is not None) for step in STEPS},
        }

    def concern_figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
        converted = [c for c in rows if c["status"] == "converted"]
        return {
            "raised": len(rows),
            "resolved_on_spot": sum(1 for c in rows if c["status"] == "resolved_on_spot"),
            "converted": len(converted),
            "converted_to_need": sum(1 for c in converted if c["converted_to"] == "need"),
            "converted_to_finding": sum(1 for c in converted if c["converted_to"] == "finding"),
            "open": sum(1 for c in rows if c["status"] == "open"),
            "handled_within_3d": rate(
                sum(1 for c in rows if c["within_3d"]), len(rows), min_concerns
            ),
        }

    operating = [s["site_id"] for s in sites]
    covered = [s for s in operating if meetings_by_site.get(s)]
    site_ids = sorted(set(operating) | set(meetings_by_site) | set(concerns_by_site))
    names = {s["site_id"]: s["name"] for s in sites}
    return {
        "period": p.name,
        "coverage": {
            **rate(len(covered), len(operating)),
            "covered": covered,
            "uncovered": [s for s in operating if s not in covered],
        },
        **meeting_figures(meetings),
        "concerns": concern_figures(concerns),
        "by_site": [
            {
                "site_id": s,
                "name": names.get(s),
                "house_meeting_site": s in names,
                "covered": bool(meetings_by_site.get(s)),
                **meeting_figures(meetings_by_site.get(s, [])),
                "concerns": concern_figures(concerns_by_site.get(s, [])),
            }
            for s in site_ids
        ],
    }


def meeting_coverage(
    views: ViewStore | Tx, units: Mapping[str, Collection[str]], period: str | Period
) -> list[dict[str, Any]]:
    """Return house-meeting coverage for several units at once (one row per unit).

    ``units`` maps a unit id to the site ids under it (the caller resolves
    them with ``projections.network.units_under``). Coverage is as in
    :func:`meetings_summary`; two queries serve every unit.
    """
    p = parse_period(period)
    first, end = period_bounds(p)
    every: set[str] = set().union(*units.values()) if units else set()
    with reading(views) as tx:
        sites = {s["site_id"] for s in _operating_sites(tx, every, p)}
        where, params = scope_clause("site_id", every)
        held = {
            str(r["site_id"])
            for r in tx.query(
                f"SELECT DISTINCT site_id FROM {MEETINGS} "
                f"WHERE held_on >= ? AND held_on < ? AND {where}",
                [first, end, *params],
            )
        }
    out = []
    for unit, scope in sorted(units.items()):
        operating = sites & set(scope)
        covered = operating & held
        out.append({"unit_id": unit, "period": p.name, **rate(len(covered), len(operating))})
    return out
