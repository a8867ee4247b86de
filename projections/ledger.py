"""Volunteer ledgers: hours, corrections, points and stars per volunteer, session and team.

The :class:`LedgerProjection` keeps six tables (prefixed ``ledger_``):

``volunteers``
    one row per volunteer number: profile (home site, official or not,
    employer unit, registration, status, skills, current teams) and the
    ledger totals: approved, pending and rejected hours, corrections (count
    and net hours), points awarded / reversed / redeemed and the balance,
    the star level, and the local date of the last approved service.
``sessions``
    one row per session (check-in/out, auto-closed, or back-filled 补录):
    where, when, how it closed, the credited hours, the status
    (open → pending → approved | rejected), the approved hours after
    corrections, the points it earned and its **local service date** (the
    check-in's calendar day in the network's zone: a session from 22:00 on
    31 March to 01:30 on 1 April in Beijing is March service).
``teams`` and ``team_members``
    teams with their current member count; members with join/leave times.
    Each session keeps the teams its volunteer belonged to when it opened,
    so :func:`team_ledger` sums the hours served *while a member* at query
    time (approvals, the busiest events, then touch no team rows).
``officials``
    one row per official and calendar year: dual check-in reports (community
    and post), the annual quota, approved hours served as an official in that
    year, and house meetings attended.
``points``
    every points movement (award, reversal, redemption) with the running
    balance: the answer to "why is my balance what it is".

Every decision (hours, points, stars) is read from the events, where the
volunteer aggregate wrote it; the projection never recomputes it under a
different rule. Each batch loads the rows it touches with a few ``IN``
queries, changes them in Python and writes each once.

Query functions at the end return JSON-ready data for the HTTP API and take
a unit scope (a set of site ids; ``None`` = unrestricted).
"""

from __future__ import annotations

import calendar
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from practice_events.domain import volunteer as v
from practice_events.scoring.periods import Period
from projections.base import LoggedEvent, Projection, Rebuilder
from projections.rows import (
    DEFAULT_CACHE_ROWS,
    CachingRebuilder,
    RowCache,
    RowSet,
    bad_request,
    check_limit,
    decode_cursor,
    dumps,
    encode_cursor,
    in_scope,
    insert_new,
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

MEETING_HELD = "practice.meeting.held.v1"

ACTIVE_WINDOW_DAYS = 90
"""A volunteer is active with ≥ 1 approved service in the 90 local days ending on a date."""

VOLUNTEER_COLUMNS = (
    "volunteer_no",
    "home_site_id",
    "is_official",
    "home_unit_id",
    "registered_at",
    "registered_on",
    "status",
    "skills",
    "teams",
    "sessions",
    "approved_sessions",
    "approved_hours",
    "pending_hours",
    "rejected_hours",
    "corrections",
    "corrected_hours",
    "points_awarded",
    "points_reversed",
    "points_redeemed",
    "points_balance",
    "star_level",
    "star_attained_at",
    "last_service_date",
    "updated_at",
)

SESSION_COLUMNS = (
    "session_key",
    "volunteer_no",
    "session_id",
    "site_id",
    "activity_id",
    "participant_kind",
    "teams",
    "checked_in_at",
    "checked_out_at",
    "closed_by",
    "auto_close_rule",
    "overrode_auto_close",
    "service_date",
    "credit_basis",
    "credits",
    "credited_hours",
    "status",
    "approved_hours",
    "hours_at_approval",
    "corrections",
    "correction_delta",
    "rejected_hours",
    "points",
    "decided_by",
    "approved_at",
    "rejected_at",
    "rejection_reason",
    "updated_at",
)

TEAM_COLUMNS = (
    "team_id",
    "site_id",
    "name",
    "category",
    "lead_volunteer_no",
    "registered_at",
    "members",
)

MEMBER_COLUMNS = (
    "member_key",
    "team_id",
    "volunteer_no",
    "role",
    "first_joined_at",
    "joined_at",
    "left_at",
    "active",
    "stints",
)

OFFICIAL_COLUMNS = (
    "official_key",
    "volunteer_no",
    "year",
    "home_site_id",
    "home_unit_id",
    "community_site_id",
    "community_reported_at",
    "post_site_id",
    "post_reported_at",
    "quota_hours",
    "approved_hours",
    "approved_sessions",
    "meetings_attended",
)

POINT_COLUMNS = (
    "position",
    "volunteer_no",
    "at",
    "kind",
    "points",
    "balance_after",
    "session_id",
    "cause",
    "item",
    "outlet",
)

_SESSION_EVENTS = frozenset(
    {
        v.CHECKED_IN,
        v.CHECKED_OUT,
        v.AUTO_CLOSED,
        v.HOURS_RECORDED,
        v.HOURS_CREDITED,
        v.HOURS_APPROVED,
        v.HOURS_REJECTED,
        v.HOURS_CORRECTED,
        v.POINTS_AWARDED,
        v.POINTS_REVERSED,
    }
)


class LedgerProjection(Projection):
    """Builds the volunteer, session, team, official and points ledgers (module docstring)."""

    NAME = "ledger"
    VERSION = 1
    TOPICS = (
        v.REGISTERED,
        v.STATUS_CHANGED,
        v.SKILLS_UPDATED,
        v.JOINED_TEAM,
        v.LEFT_TEAM,
        v.REPORTED_TO_COMMUNITY,
        v.REPORTED_TO_POST,
        v.QUOTA_SET,
        v.POINTS_REDEEMED,
        v.STAR_LEVEL_ATTAINED,
        v.TEAM_REGISTERED,
        v.CHECKED_IN,
        v.CHECKED_OUT,
        v.AUTO_CLOSED,
        v.HOURS_RECORDED,
        v.HOURS_CREDITED,
        v.HOURS_APPROVED,
        v.HOURS_REJECTED,
        v.HOURS_CORRECTED,
        v.POINTS_AWARDED,
        v.POINTS_REVERSED,
        MEETING_HELD,
    )
    TABLES: ClassVar[Mapping[str, str]] = {
        "volunteers": (
            "CREATE TABLE IF NOT EXISTS {name} ("
            "volunteer_no TEXT PRIMARY KEY, home_site_id TEXT, is_official INTEGER NOT NULL, "
            "home_unit_id TEXT, registered_at TEXT, registered_on TEXT, status TEXT, "
            "skills TEXT, teams TEXT, sessions INTEGER NOT NULL, "
            "approved_sessions INTEGER NOT NULL, approved_hours DOUBLE PRECISION NOT NULL, "
            "pending_hours DOUBLE PRECISION NOT NULL, rejected_hours DOUBLE PRECISION NOT NULL, "
            "corrections INTEGER NOT NULL, corrected_hours DOUBLE PRECISION NOT NULL, "
            "points_awarded INTEGER NOT NULL, points_reversed INTEGER NOT NULL, "
            "points_redeemed INTEGER NOT NULL, points_balance INTEGER NOT NULL, "
            "star_level INTEGER NOT NULL, star_attained_at TEXT, last_service_date TEXT, "
            "updated_at TEXT)"
        ),
        "sessions": (
            "CREATE TABLE IF NOT EXISTS {name} ("
            "session_key TEXT PRIMARY KEY, volunteer_no TEXT NOT NULL, session_id TEXT NOT NULL, "
            "site_id TEXT, activity_id TEXT, participant_kind TEXT, teams TEXT, "
            "checked_in_at TEXT, checked_out_at TEXT, closed_by TEXT, auto_close_rule TEXT, "
            "overrode_auto_close INTEGER NOT NULL, service_date TEXT, credit_basis TEXT, "
            "credits INTEGER NOT NULL, credited_hours DOUBLE PRECISION NOT NULL, "
            "status TEXT NOT NULL, approved_hours DOUBLE PRECISION NOT NULL, "
            "hours_at_approval DOUBLE PRECISION, corrections INTEGER NOT NULL, "
            "correction_delta DOUBLE PRECISION NOT NULL, "
            "rejected_hours DOUBLE PRECISION NOT NULL, points INTEGER NOT NULL, "
            "decided_by TEXT, approved_at TEXT, rejected_at TEXT, rejection_reason TEXT, "
            "updated_at TEXT)"
        ),
        "teams": (
            "CREATE TABLE IF NOT EXISTS {name} ("
            "team_id TEXT PRIMARY KEY, site_id TEXT, name TEXT, category TEXT, "
            "lead_volunteer_no TEXT, registered_at TEXT, members INTEGER NOT NULL)"
        ),
        "team_members": (
            "CREATE TABLE IF NOT EXISTS {name} ("
            "member_key TEXT PRIMARY KEY, team_id TEXT NOT NULL, volunteer_no TEXT NOT NULL, "
            "role TEXT, first_joined_at TEXT, joined_at TEXT, left_at TEXT, "
            "active INTEGER NOT NULL, stints INTEGER NOT NULL)"
        ),
        "officials": (
            "CREATE TABLE IF NOT EXISTS {name} ("
            "official_key TEXT PRIMARY KEY, volunteer_no TEXT NOT NULL, year INTEGER NOT NULL, "
            "home_site_id TEXT, home_unit_id TEXT, community_site_id TEXT, "
            "community_reported_at TEXT, post_site_id TEXT, post_reported_at TEXT, "
            "quota_hours DOUBLE PRECISION, approved_hours DOUBLE PRECISION NOT NULL, "
            "approved_sessions INTEGER NOT NULL, meetings_attended INTEGER NOT NULL)"
        ),
        "points": (
            "CREATE TABLE IF NOT EXISTS {name} ("
            "position BIGINT PRIMARY KEY, volunteer_no TEXT NOT NULL, at TEXT NOT NULL, "
            "kind TEXT NOT NULL, points INTEGER NOT NULL, balance_after INTEGER NOT NULL, "
            "session_id TEXT, cause TEXT, item TEXT, outlet TEXT)"
        ),
    }
    REBUILD_INDEXES = ("sessions_volunteer",)  # last-service queries while rebuilding
    INDEXES: ClassVar[Mapping[str, str]] = {
        "volunteers_site": "CREATE INDEX IF NOT EXISTS {index} ON {volunteers} (home_site_id)",
        "sessions_volunteer": (
            "CREATE INDEX IF NOT EXISTS {index} ON {sessions} (volunteer_no, service_date)"
        ),
        "sessions_site": "CREATE INDEX IF NOT EXISTS {index} ON {sessions} (site_id, service_date)",
        "members_team": "CREATE INDEX IF NOT EXISTS {index} ON {team_members} (team_id)",
        "members_volunteer": (
            "CREATE INDEX IF NOT EXISTS {index} ON {team_members} (volunteer_no)"
        ),
        "officials_year": "CREATE INDEX IF NOT EXISTS {index} ON {officials} (year, volunteer_no)",
        "points_volunteer": (
            "CREATE INDEX IF NOT EXISTS {index} ON {points} (volunteer_no, position)"
        ),
    }

    def __init__(
        self, *, timezone: str = "Asia/Shanghai", cache_rows: int = DEFAULT_CACHE_ROWS
    ) -> None:
        super().__init__(timezone=timezone)
        self.cache_rows = cache_rows
        """Rows per table a rebuild keeps in memory (see :class:`RowCache`)."""

    def apply(self, tx: Tx, events: Sequence[LoggedEvent], tables: Mapping[str, str]) -> None:
        """Apply a batch: preload touched rows, replay the events on them, write each once."""
        _LedgerBatch(self, tx, tables).run(events)

    def rebuilder(self, tables: Mapping[str, str]) -> Rebuilder:
        """Keep the ledger's rows in memory across the batches of a rebuild (write-back).

        The ledger is four fifths of the log, and most batches touch the same
        volunteers again and sessions opened a batch or two before: a rebuild
        that loaded and wrote them batch by batch spent more time on that
        than on the events.
        """
        size = self.cache_rows
        caches = {
            "volunteers": RowCache(
                tables["volunteers"], "volunteer_no", VOLUNTEER_COLUMNS, max_rows=size
            ),
            # By volunteer: their changed sessions are written before last-service queries.
            "sessions": RowCache(
                tables["sessions"],
                "session_key",
                SESSION_COLUMNS,
                group="volunteer_no",
                max_rows=size,
            ),
            "teams": RowCache(tables["teams"], "team_id", TEAM_COLUMNS, max_rows=size),
            "team_members": RowCache(
                tables["team_members"], "member_key", MEMBER_COLUMNS, max_rows=size
            ),
            "officials": RowCache(
                tables["officials"], "official_key", OFFICIAL_COLUMNS, max_rows=size
            ),
        }

        def batch(tx: Tx, events: Sequence[LoggedEvent], held: Mapping[str, RowCache]) -> None:
            _LedgerBatch(self, tx, tables, held).run(events)

        return CachingRebuilder(self, tables, caches, batch)


class _Keys:
    """The row keys a batch is expected to touch, collected before loading."""

    def __init__(self) -> None:
        self.volunteers: set[str] = set()
        self.sessions: set[str] = set()
        self.teams: set[str] = set()
        self.members: set[str] = set()
        self.officials: set[str] = set()

    def membership(self, team_id: str, volunteer_no: str) -> None:
        """Expect the team and the volunteer's membership row."""
        self.teams.add(team_id)
        self.members.add(key(team_id, volunteer_no))

    def collect(self, e: LoggedEvent, zone: Any) -> None:
        """Add the keys that ``e`` touches (new sessions: their official year too)."""
        d = e.data
        if e.type == MEETING_HELD:
            officials = [str(o) for o in d.get("officials_present", ())]
            year = _local_year(str(d["started_at"]), zone)
            self.volunteers.update(officials)
            self.officials.update(key(o, year) for o in officials)
            return
        if e.type == v.TEAM_REGISTERED:
            self.teams.add(e.subject)
            return
        self.volunteers.add(e.subject)
        if e.type in _SESSION_EVENTS:
            self.sessions.add(key(e.subject, d["session_id"]))
            if e.type == v.CHECKED_IN:
                self.officials.add(key(e.subject, e.time.astimezone(zone).year))
            elif e.type == v.HOURS_RECORDED:
                self.officials.add(key(e.subject, _local_year(str(d["started_at"]), zone)))
        elif e.type in (v.JOINED_TEAM, v.LEFT_TEAM):
            self.membership(str(d["team_id"]), e.subject)
        elif e.type in (v.REPORTED_TO_COMMUNITY, v.REPORTED_TO_POST, v.QUOTA_SET):
            self.officials.add(key(e.subject, d["year"]))


class _LedgerBatch:
    """The rows one batch touches and the event handlers that change them."""

    def __init__(
        self,
        projection: LedgerProjection,
        tx: Tx,
        tables: Mapping[str, str],
        caches: Mapping[str, RowCache] | None = None,
    ) -> None:
        self.zone = projection.zone
        self.tx = tx
        self.tables = tables
        cache = (caches or {}).get
        self.volunteers = RowSet(
            tx, tables["volunteers"], "volunteer_no", VOLUNTEER_COLUMNS, cache("volunteers")
        )
        self.sessions = RowSet(
            tx, tables["sessions"], "session_key", SESSION_COLUMNS, cache("sessions")
        )
        self.teams = RowSet(tx, tables["teams"], "team_id", TEAM_COLUMNS, cache("teams"))
        self.members = RowSet(
            tx, tables["team_members"], "member_key", MEMBER_COLUMNS, cache("team_members")
        )
        self.officials = RowSet(
            tx, tables["officials"], "official_key", OFFICIAL_COLUMNS, cache("officials")
        )
        self.movements: list[dict[str, Any]] = []
        self.recheck_last_service: set[str] = set()
        self.at = ""
        """The current event's time as stored text (computed once per event)."""
        self._day_of: datetime | None = None
        self._day = ""
        """The local day of the time ``_day_of`` (the last check-in's, usually)."""

    # -- the batch -------------------------------------------------------------------------

    def run(self, events: Sequence[LoggedEvent]) -> None:
        """Preload, apply every event in log order, then write.

        The time text is formatted again only when the event's time is
        another object than the previous event's (the log reader shares one
        ``datetime`` between the events of a page at the same time).
        """
        self._preload(events)
        handlers = self._handlers()
        last: datetime | None = None
        for event in events:
            handler = handlers.get(event.type)
            if handler is not None:
                moment = event.time
                if moment is not last:
                    self.at = utc_text(moment)
                    last = moment
                handler(event)
        self._write()

    def _preload(self, events: Sequence[LoggedEvent]) -> None:
        """Load, with a few ``IN`` queries, every row the batch is expected to touch.

        Nothing to load when rebuilding with caches that have let no row go.
        """
        sets = (self.volunteers, self.sessions, self.teams, self.members, self.officials)
        if not any(rows.needs_preload for rows in sets):
            return
        wanted = _Keys()
        for e in events:
            wanted.collect(e, self.zone)
        self.volunteers.preload(wanted.volunteers)
        self.sessions.preload(wanted.sessions)
        # Official years reached through the service dates of sessions decided now.
        for row in self.sessions.rows_of(wanted.sessions):
            wanted.officials.add(key(row["volunteer_no"], str(row["service_date"])[:4]))
        self.teams.preload(wanted.teams)
        self.members.preload(wanted.members)
        self.officials.preload(wanted.officials)

    def _write(self) -> None:
        """Write each touched row once; recompute last service dates where they may drop."""
        self.sessions.write()
        if self.recheck_last_service:
            self._recompute_last_service()
        self.volunteers.write()
        self.teams.write()
        self.members.write()
        self.officials.write()
        insert_new(self.tx, self.tables["points"], POINT_COLUMNS, ["position"], self.movements)

    def _recompute_last_service(self) -> None:
        """Set the last service date from the sessions table (after a rejection or a cut to 0)."""
        nos = sorted(self.recheck_last_service)
        self.sessions.write_groups(nos)  # rebuilding: their changed sessions, held in memory
        table = self.tables["sessions"]
        latest: dict[str, str] = {}
        for start in range(0, len(nos), 500):
            chunk = nos[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            rows = self.tx.query(
                f"SELECT volunteer_no, MAX(service_date) AS last FROM {table} "
                f"WHERE volunteer_no IN ({marks}) AND status = 'approved' "
                "AND approved_hours > 0 GROUP BY volunteer_no",
                chunk,
            )
            latest.update({str(r["volunteer_no"]): str(r["last"]) for r in rows})
        for no in nos:
            row = self.volunteers.mutate(no)
            if row is not None:
                row["last_service_date"] = latest.get(no)

    def _handlers(self) -> dict[str, Any]:
        return {
            v.REGISTERED: self._registered,
            v.STATUS_CHANGED: self._status_changed,
            v.SKILLS_UPDATED: self._skills_updated,
            v.JOINED_TEAM: self._joined_team,
            v.LEFT_TEAM: self._left_team,
            v.REPORTED_TO_COMMUNITY: self._reported,
            v.REPORTED_TO_POST: self._reported,
            v.QUOTA_SET: self._quota_set,
            v.POINTS_REDEEMED: self._points_redeemed,
            v.STAR_LEVEL_ATTAINED: self._star_attained,
            v.TEAM_REGISTERED: self._team_registered,
            v.CHECKED_IN: self._checked_in,
            v.CHECKED_OUT: self._checked_out,
            v.AUTO_CLOSED: self._auto_closed,
            v.HOURS_RECORDED: self._hours_recorded,
            v.HOURS_CREDITED: self._hours_credited,
            v.HOURS_APPROVED: self._hours_approved,
            v.HOURS_REJECTED: self._hours_rejected,
            v.HOURS_CORRECTED: self._hours_corrected,
            v.POINTS_AWARDED: self._points_awarded,
            v.POINTS_REVERSED: self._points_reversed,
            MEETING_HELD: self._meeting_held,
        }

    # -- row access ------------------------------------------------------------------------

    def _volunteer(self, e: LoggedEvent) -> dict[str, Any]:
        row = self.volunteers.mutate(e.subject)
        if row is None:  # only for a log that starts mid-history (a truncated replay)
            row = self._new_volunteer(e.subject, {}, e)
        row["updated_at"] = self.at
        return row

    def _new_volunteer(
        self, volunteer_no: str, d: Mapping[str, Any], e: LoggedEvent
    ) -> dict[str, Any]:
        registered_on = d.get("registered_on") or local_day(e.time, self.zone)
        return self.volunteers.create(
            volunteer_no,
            {
                "home_site_id": d.get("home_site_id"),
                "is_official": 1 if d.get("is_official") else 0,
                "home_unit_id": d.get("home_unit_id"),
                "registered_at": self.at,
                "registered_on": str(registered_on),
                "status": v.ACTIVE,
                "skills": dumps(list(d.get("skills", ()))),
                "teams": dumps({}),
                **dict.fromkeys(
                    (
                        "sessions",
                        "approved_sessions",
                        "corrections",
                        "points_awarded",
                        "points_reversed",
                        "points_redeemed",
                        "points_balance",
                        "star_level",
                    ),
                    0,
                ),
                **dict.fromkeys(
                    ("approved_hours", "pending_hours", "rejected_hours", "corrected_hours"), 0.0
                ),
                "updated_at": self.at,
            },
        )

    def _session(self, e: LoggedEvent) -> dict[str, Any]:
        row = self.sessions.mutate(f"{e.subject} {e.data['session_id']}")  # key(...)
        if row is None:  # only for a log that starts mid-history
            row = self._new_session(e, e.time, e.data)
        row["updated_at"] = self.at
        return row

    def _new_session(
        self, e: LoggedEvent, started: datetime, d: Mapping[str, Any]
    ) -> dict[str, Any]:
        volunteer = self._volunteer(e)
        volunteer["sessions"] += 1
        session_id = d["session_id"]
        teams = volunteer["teams"]
        session_teams = _SESSION_TEAMS.get(teams)
        if session_teams is None:
            session_teams = _session_teams(teams)
        if started is not self._day_of:
            self._day = local_day(started, self.zone)
            self._day_of = started
        return self.sessions.create(
            f"{e.subject} {session_id}",  # key(...)
            {
                "volunteer_no": e.subject,
                "session_id": session_id,
                "site_id": d.get("site_id"),
                "activity_id": d.get("activity_id"),
                "participant_kind": d.get("participant_kind", "volunteer"),
                "teams": session_teams,
                "checked_in_at": utc_text(started),
                "overrode_auto_close": 0,
                "service_date": self._day,
                "credits": 0,
                "credited_hours": 0.0,
                "status": "open",
                "approved_hours": 0.0,
                "corrections": 0,
                "correction_delta": 0.0,
                "rejected_hours": 0.0,
                "points": 0,
                "updated_at": self.at,
            },
        )

    def _team(self, team_id: str) -> dict[str, Any]:
        row = self.teams.mutate(team_id)
        if row is None:
            row = self.teams.create(team_id, {"members": 0})
        return row

    def _member(self, team_id: str, volunteer_no: str) -> dict[str, Any] | None:
        return self.members.mutate(key(team_id, volunteer_no))

    def _official(self, volunteer: Mapping[str, Any], year: int) -> dict[str, Any]:
        official_key = key(volunteer["volunteer_no"], year)
        row = self.officials.mutate(official_key)
        if row is None:
            row = self.officials.create(
                official_key,
                {
                    "volunteer_no": volunteer["volunteer_no"],
                    "year": year,
                    "home_site_id": volunteer["home_site_id"],
                    "home_unit_id": volunteer["home_unit_id"],
                    "approved_hours": 0.0,
                    "approved_sessions": 0,
                    "meetings_attended": 0,
                },
            )
        return row

    def _attribute(
        self, volunteer: Mapping[str, Any], session: Mapping[str, Any], hours: float, sessions: int
    ) -> None:
        """Add approved hours (and approved sessions) to an official's year of service."""
        if volunteer["is_official"] and session["participant_kind"] == "official":
            official = self._official(volunteer, int(str(session["service_date"])[:4]))
            official["approved_hours"] += hours
            official["approved_sessions"] += sessions

    def _move_points(
        self, e: LoggedEvent, volunteer: dict[str, Any], kind: str, points: int
    ) -> None:
        volunteer["points_balance"] = (
            volunteer["points_awarded"]
            - volunteer["points_reversed"]
            - volunteer["points_redeemed"]
        )
        self.movements.append(
            {
                "position": e.position,
                "volunteer_no": e.subject,
                "at": self.at,
                "kind": kind,
                "points": points,
                "balance_after": volunteer["points_balance"],
                "session_id": e.data.get("session_id"),
                "cause": e.data.get("cause"),
                "item": e.data.get("item"),
                "outlet": e.data.get("outlet"),
            }
        )

    # -- profile events --------------------------------------------------------------------

    def _registered(self, e: LoggedEvent) -> None:
        self._new_volunteer(e.subject, e.data, e)

    def _status_changed(self, e: LoggedEvent) -> None:
        self._volunteer(e)["status"] = e.data["status"]

    def _skills_updated(self, e: LoggedEvent) -> None:
        self._volunteer(e)["skills"] = dumps(list(e.data["skills"]))

    def _joined_team(self, e: LoggedEvent) -> None:
        volunteer = self._volunteer(e)
        team_id = str(e.data["team_id"])
        teams = loads(volunteer["teams"], {})
        teams[team_id] = e.data.get("role")
        volunteer["teams"] = dumps(teams)
        self._team(team_id)["members"] += 1
        at = self.at
        member = self._member(team_id, e.subject)
        if member is None:
            self.members.create(
                key(team_id, e.subject),
                {
                    "team_id": team_id,
                    "volunteer_no": e.subject,
                    "role": e.data.get("role"),
                    "first_joined_at": at,
                    "joined_at": at,
                    "active": 1,
                    "stints": 1,
                },
            )
            return
        member.update(role=e.data.get("role"), joined_at=at, left_at=None, active=1)
        member["stints"] += 1

    def _left_team(self, e: LoggedEvent) -> None:
        volunteer = self._volunteer(e)
        team_id = str(e.data["team_id"])
        teams = loads(volunteer["teams"], {})
        teams.pop(team_id, None)
        volunteer["teams"] = dumps(teams)
        self._team(team_id)["members"] -= 1
        member = self._member(team_id, e.subject)
        if member is not None:
            member.update(left_at=self.at, active=0)

    def _reported(self, e: LoggedEvent) -> None:
        official = self._official(self._volunteer(e), int(e.data["year"]))
        at = self.at
        if e.type == v.REPORTED_TO_COMMUNITY:
            official.update(community_site_id=e.data["community_site_id"], community_reported_at=at)
        else:
            official.update(post_site_id=e.data["post_site_id"], post_reported_at=at)

    def _quota_set(self, e: LoggedEvent) -> None:
        official = self._official(self._volunteer(e), int(e.data["year"]))
        official["quota_hours"] = float(e.data["required_hours"])

    def _star_attained(self, e: LoggedEvent) -> None:
        volunteer = self._volunteer(e)
        level = int(e.data["level"])
        if level > volunteer["star_level"]:
            volunteer["star_level"] = level
            volunteer["star_attained_at"] = self.at

    def _team_registered(self, e: LoggedEvent) -> None:
        d = e.data
        self._team(e.subject).update(
            site_id=d["site_id"],
            name=d["name"],
            category=d["category"],
            lead_volunteer_no=d.get("lead_volunteer_no"),
            registered_at=self.at,
        )

    def _meeting_held(self, e: LoggedEvent) -> None:
        year = _local_year(str(e.data["started_at"]), self.zone)
        for no in e.data.get("officials_present", ()):
            volunteer = self.volunteers.get(str(no))
            if volunteer is not None and volunteer["is_official"]:
                self._official(volunteer, year)["meetings_attended"] += 1

    # -- sessions and hours ----------------------------------------------------------------

    def _checked_in(self, e: LoggedEvent) -> None:
        self._new_session(e, e.time, e.data)

    def _checked_out(self, e: LoggedEvent) -> None:
        session = self._session(e)
        session["checked_out_at"] = self.at
        session["closed_by"] = "checked_out"
        if e.data.get("overrides_auto_close"):
            session["overrode_auto_close"] = 1

    def _auto_closed(self, e: LoggedEvent) -> None:
        session = self._session(e)
        until = parse_utc(str(e.data["credited_until"]))
        session.update(
            checked_out_at=utc_text(until), closed_by="auto_closed", auto_close_rule=e.data["rule"]
        )

    def _hours_recorded(self, e: LoggedEvent) -> None:
        d = e.data
        session = self._new_session(e, parse_utc(str(d["started_at"])), d)
        session.update(checked_out_at=utc_text(parse_utc(str(d["ended_at"]))), closed_by="recorded")

    def _hours_credited(self, e: LoggedEvent) -> None:
        volunteer = self._volunteer(e)
        session = self._session(e)
        hours = float(e.data["hours"])
        if session["status"] == "pending":
            volunteer["pending_hours"] -= session["credited_hours"]
        volunteer["pending_hours"] += hours
        session["credited_hours"] = hours
        session["credit_basis"] = e.data["basis"]
        session["status"] = "pending"
        session["credits"] += 1

    def _hours_approved(self, e: LoggedEvent) -> None:
        volunteer = self._volunteer(e)
        session = self._session(e)
        hours = float(e.data["hours"])
        volunteer["pending_hours"] -= session["credited_hours"]
        volunteer["approved_hours"] += hours
        volunteer["approved_sessions"] += 1
        session["status"] = "approved"
        session["approved_hours"] = session["hours_at_approval"] = hours
        session["decided_by"] = e.data.get("approver")
        session["approved_at"] = self.at
        self._attribute(volunteer, session, hours, 1)
        if hours > 0:
            last = volunteer["last_service_date"]
            if last is None or session["service_date"] > last:
                volunteer["last_service_date"] = session["service_date"]

    def _hours_rejected(self, e: LoggedEvent) -> None:
        volunteer = self._volunteer(e)
        session = self._session(e)
        hours = float(e.data["hours"])
        if e.data.get("previous_status") == "approved":
            volunteer["approved_hours"] -= hours
            volunteer["approved_sessions"] -= 1
            self._attribute(volunteer, session, -session["approved_hours"], -1)
            self.recheck_last_service.add(e.subject)
        else:
            volunteer["pending_hours"] -= hours
        volunteer["rejected_hours"] += hours
        session.update(
            status="rejected",
            approved_hours=0.0,
            rejected_hours=hours,
            decided_by=e.data.get("approver"),
            rejected_at=self.at,
            rejection_reason=e.data.get("reason"),
        )

    def _hours_corrected(self, e: LoggedEvent) -> None:
        volunteer = self._volunteer(e)
        session = self._session(e)
        before = float(e.data["hours_before"])
        after = float(e.data["hours_after"])
        delta = float(e.data["delta_hours"])
        volunteer["approved_hours"] += after - before
        volunteer["corrections"] += 1
        volunteer["corrected_hours"] += delta
        session["approved_hours"] = after
        session["corrections"] += 1
        session["correction_delta"] += delta
        self._attribute(volunteer, session, after - before, 0)
        if after == 0:
            self.recheck_last_service.add(e.subject)
        elif before == 0:
            last = volunteer["last_service_date"]
            if last is None or session["service_date"] > last:
                volunteer["last_service_date"] = session["service_date"]

    def _points_awarded(self, e: LoggedEvent) -> None:
        volunteer = self._volunteer(e)
        points = int(e.data["points"])
        self._session(e)["points"] += points
        volunteer["points_awarded"] += points
        self._move_points(e, volunteer, "awarded", points)

    def _points_reversed(self, e: LoggedEvent) -> None:
        volunteer = self._volunteer(e)
        points = int(e.data["points"])
        self._session(e)["points"] -= points
        volunteer["points_reversed"] += points
        self._move_points(e, volunteer, "reversed", -points)

    def _points_redeemed(self, e: LoggedEvent) -> None:
        volunteer = self._volunteer(e)
        points = int(e.data["points"])
        volunteer["points_redeemed"] += points
        self._move_points(e, volunteer, "redeemed", -points)


_SESSION_TEAMS: dict[str | None, str] = {}
"""A volunteer's ``teams`` text -> the ``teams`` text of a session they open (memo)."""
_SESSION_TEAMS_MAX = 4096


def _session_teams(volunteer_teams: str | None) -> str:
    """Return (and remember) a new session's ``teams`` text: its volunteer's team ids, sorted.

    Most volunteers share a handful of memberships, and every check-in needs
    this: decoding and encoding the JSON each time cost more than the rest of
    the check-in.
    """
    text = dumps(sorted(loads(volunteer_teams, {})))
    if len(_SESSION_TEAMS) >= _SESSION_TEAMS_MAX:
        _SESSION_TEAMS.clear()
    _SESSION_TEAMS[volunteer_teams] = text
    return text


def _local_year(text: str, zone: Any) -> int:
    """Return the local calendar year of a stored RFC 3339 time."""
    return parse_utc(text).astimezone(zone).year


# ======================================================================================
# Queries (JSON-ready; used by the HTTP API)
# ======================================================================================


def _table(name: str) -> str:
    """Return the live physical name of a ledger table."""
    return f"{LedgerProjection.NAME}_{name}"


def _volunteer_out(row: Mapping[str, Any]) -> dict[str, Any]:
    """Shape a volunteers row for the API (JSON columns decoded, flags as booleans)."""
    out = dict(row)
    out["is_official"] = bool(row["is_official"])
    out["skills"] = loads(row["skills"], [])
    out["teams"] = loads(row["teams"], {})
    return out


def _session_out(row: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out.pop("session_key", None)
    out["teams"] = loads(row["teams"], [])
    out["overrode_auto_close"] = bool(row["overrode_auto_close"])
    return out


def volunteer_ledger(
    views: ViewStore | Tx,
    volunteer_no: str,
    *,
    unit_scope: Collection[str] | None = None,
    sessions_limit: int = 100,
    points_limit: int = 100,
) -> dict[str, Any] | None:
    """Return one volunteer's ledger: totals, teams, latest sessions, points, official years.

    ``None`` when the volunteer is unknown or their home site is outside
    ``unit_scope`` (the API answers 404 either way, so a scope never reveals
    that a volunteer exists). Sessions and points movements come newest first.
    """
    check_limit(sessions_limit, 1000)
    check_limit(points_limit, 1000)
    with reading(views) as tx:
        rows = tx.query(
            f"SELECT * FROM {_table('volunteers')} WHERE volunteer_no = ?", [volunteer_no]
        )
        if not rows or not in_scope(rows[0]["home_site_id"], unit_scope):
            return None
        sessions = tx.query(
            f"SELECT * FROM {_table('sessions')} WHERE volunteer_no = ? "
            "ORDER BY checked_in_at DESC, session_id DESC LIMIT ?",
            [volunteer_no, sessions_limit],
        )
        points = tx.query(
            f"SELECT * FROM {_table('points')} WHERE volunteer_no = ? "
            "ORDER BY position DESC LIMIT ?",
            [volunteer_no, points_limit],
        )
        memberships = tx.query(
            f"SELECT m.team_id, m.role, m.first_joined_at, m.joined_at, m.left_at, m.active, "
            f"m.stints, t.name, t.site_id FROM {_table('team_members')} m "
            f"LEFT JOIN {_table('teams')} t ON t.team_id = m.team_id "
            "WHERE m.volunteer_no = ? ORDER BY m.team_id",
            [volunteer_no],
        )
        served = tx.query(
            f"SELECT teams, approved_hours FROM {_table('sessions')} "
            "WHERE volunteer_no = ? AND status = 'approved'",
            [volunteer_no],
        )
        years = tx.query(
            f"SELECT * FROM {_table('officials')} WHERE volunteer_no = ? ORDER BY year",
            [volunteer_no],
        )
    hours_in_team: dict[str, float] = {}
    for session in served:
        for team_id in loads(session["teams"], []):
            hours_in_team[team_id] = hours_in_team.get(team_id, 0.0) + session["approved_hours"]
    ledger: dict[str, Any] = {
        "volunteer": _volunteer_out(rows[0]),
        "teams": [
            {
                **m,
                "active": bool(m["active"]),
                "approved_hours": hours_in_team.get(m["team_id"], 0.0),
            }
            for m in memberships
        ],
        "sessions": [_session_out(s) for s in sessions],
        "points": points,
    }
    if rows[0]["is_official"]:
        ledger["official_years"] = [
            {k: val for k, val in y.items() if k != "official_key"} for y in years
        ]
    return ledger


_VOLUNTEER_ORDERS = {
    "volunteer_no": ("volunteer_no", "ASC"),
    "approved_hours": ("approved_hours", "DESC"),
    "points_balance": ("points_balance", "DESC"),
}


def list_volunteers(
    views: ViewStore | Tx,
    unit_scope: Collection[str] | None,
    *,
    status: str | None = None,
    is_official: bool | None = None,
    min_star_level: int | None = None,
    order: str = "volunteer_no",
    cursor: str | None = None,
    limit: int = 50,
) -> dict[str, Any]:
    """Return a page of volunteers whose home site is in ``unit_scope``, with their totals.

    ``order`` is ``volunteer_no`` (ascending), ``approved_hours`` or
    ``points_balance`` (descending, ties by volunteer number). Pages use a
    keyset cursor (``next_cursor`` of the previous page), stable while rows
    are added.
    """
    check_limit(limit)
    if order not in _VOLUNTEER_ORDERS:
        raise bad_request(f"order must be one of {sorted(_VOLUNTEER_ORDERS)}, got {order!r}")
    column, direction = _VOLUNTEER_ORDERS[order]
    where, params = scope_clause("home_site_id", unit_scope)
    clauses = [where]
    if status is not None:
        clauses.append("status = ?")
        params.append(status)
    if is_official is not None:
        clauses.append("is_official = ?")
        params.append(1 if is_official else 0)
    if min_star_level is not None:
        clauses.append("star_level >= ?")
        params.append(min_star_level)
    if cursor is not None:
        if column == "volunteer_no":
            (after,) = decode_cursor(cursor, 1)
            clauses.append("volunteer_no > ?")
            params.append(after)
        else:
            value, after = decode_cursor(cursor, 2)
            clauses.append(f"({column} < ? OR ({column} = ? AND volunteer_no > ?))")
            params += [value, value, after]
    order_by = (
        "volunteer_no ASC"
        if column == "volunteer_no"
        else f"{column} {direction}, volunteer_no ASC"
    )
    with reading(views) as tx:
        rows = tx.query(
            f"SELECT * FROM {_table('volunteers')} WHERE {' AND '.join(clauses)} "
            f"ORDER BY {order_by} LIMIT ?",
            [*params, limit + 1],
        )
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = page[-1]
        values = (
            [last["volunteer_no"]]
            if column == "volunteer_no"
            else [last[column], last["volunteer_no"]]
        )
        next_cursor = encode_cursor(values)
    return {"items": [_volunteer_out(r) for r in page], "next_cursor": next_cursor}


def team_ledger(
    views: ViewStore | Tx, team_id: str, *, unit_scope: Collection[str] | None = None
) -> dict[str, Any] | None:
    """Return a team with its members (current and former) and their hours.

    A member's ``approved_hours`` are those of sessions opened while a member
    of the team (after corrections and rejections); the team's total is
    their sum. Each member also shows their total approved hours anywhere.
    ``None`` when the team is unknown or its site is outside ``unit_scope``.
    """
    with reading(views) as tx:
        teams = tx.query(f"SELECT * FROM {_table('teams')} WHERE team_id = ?", [team_id])
        if not teams or not in_scope(teams[0]["site_id"], unit_scope):
            return None
        members = tx.query(
            f"SELECT m.volunteer_no, m.role, m.first_joined_at, m.joined_at, m.left_at, m.active, "
            f"m.stints, v.approved_hours AS total_approved_hours, "
            f"v.star_level, v.status FROM {_table('team_members')} m "
            f"LEFT JOIN {_table('volunteers')} v ON v.volunteer_no = m.volunteer_no "
            "WHERE m.team_id = ? ORDER BY m.active DESC, m.volunteer_no",
            [team_id],
        )
        served = tx.query(
            f"SELECT s.volunteer_no, SUM(s.approved_hours) AS hours, COUNT(*) AS sessions "
            f"FROM {_table('sessions')} s JOIN {_table('team_members')} m "
            "ON m.volunteer_no = s.volunteer_no AND m.team_id = ? "
            "WHERE s.status = 'approved' AND s.teams LIKE ? ESCAPE '\\' "
            "GROUP BY s.volunteer_no",
            [team_id, _contains_json_string(team_id)],
        )
    hours = {r["volunteer_no"]: (float(r["hours"] or 0.0), int(r["sessions"])) for r in served}
    out = []
    for m in members:
        member_hours, sessions = hours.get(m["volunteer_no"], (0.0, 0))
        out.append(
            {
                **m,
                "active": bool(m["active"]),
                "approved_hours": member_hours,
                "approved_sessions": sessions,
            }
        )
    team = dict(teams[0])
    team["approved_hours"] = sum(m["approved_hours"] for m in out)
    return {"team": team, "members": out}


def _contains_json_string(value: str) -> str:
    """Return a LIKE pattern (escape ``\\``) matching JSON text that holds ``"value"``."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f'%"{escaped}"%'


def year_share(year: int, as_of: date) -> float:
    """Return the share of ``year`` elapsed by the end of local day ``as_of`` (0 … 1).

    Quotas are pro-rated by days: on 30 June 2024 (a leap year) 182 of 366
    days have passed, so a 50 h quota is 50 × 182 / 366 ≈ 24.86 h so far.
    """
    first = date(year, 1, 1)
    days = 366 if calendar.isleap(year) else 365
    if as_of < first:
        return 0.0
    if as_of >= date(year, 12, 31):
        return 1.0
    return ((as_of - first).days + 1) / days


def officials_dual_checkin(
    views: ViewStore | Tx,
    unit_scope: Collection[str] | None,
    year: int,
    *,
    as_of: date | None = None,
    timezone: str = "Asia/Shanghai",
) -> dict[str, Any]:
    """Return officials' dual check-in (双报到) and dual service (双服务) for ``year``.

    Officials in scope: volunteers registered as officials whose home site is
    in ``unit_scope``, registered by the end of ``year`` (local dates).

    * ``dual_checkin_rate`` = officials who reported to **both** a community
      and a post in ``year`` ÷ officials in scope (Xingtai: pass ≥ 95 %);
      ``report_rate`` counts those who reported to at least one. Minimum
      sample 1 (an empty scope is "insufficient data", never 0 %).
    * ``quota_completion_rate`` = officials whose approved hours served as
      officials in ``year`` reach the quota pro-rated to ``as_of`` (by days,
      see :func:`year_share`) ÷ officials with a quota set for ``year``.

    ``as_of`` defaults to today in the network's zone; for past years the
    full quota applies.
    """
    zone = ZoneInfo(timezone)
    as_of = as_of or datetime.now(UTC).astimezone(zone).date()
    share = year_share(year, as_of)
    where, params = scope_clause("v.home_site_id", unit_scope)
    with reading(views) as tx:
        rows = tx.query(
            "SELECT v.volunteer_no, v.home_site_id, v.home_unit_id, v.status, v.registered_on, "
            "o.community_site_id, o.community_reported_at, o.post_site_id, o.post_reported_at, "
            "o.quota_hours, o.approved_hours, o.approved_sessions, o.meetings_attended "
            f"FROM {_table('volunteers')} v LEFT JOIN {_table('officials')} o "
            "ON o.volunteer_no = v.volunteer_no AND o.year = ? "
            f"WHERE v.is_official = 1 AND v.registered_on < ? AND {where} "
            "ORDER BY v.volunteer_no",
            [year, f"{year + 1:04d}-01-01", *params],
        )
    officials = []
    both = anyone = with_quota = met = 0
    for r in rows:
        community = r["community_site_id"] is not None
        post = r["post_site_id"] is not None
        hours = float(r["approved_hours"] or 0.0)
        quota = r["quota_hours"]
        due = round(float(quota) * share, 2) if quota is not None else None
        reached = due is not None and hours >= due
        both += community and post
        anyone += community or post
        with_quota += quota is not None
        met += reached
        officials.append(
            {
                **r,
                "approved_hours": hours,
                "approved_sessions": int(r["approved_sessions"] or 0),
                "meetings_attended": int(r["meetings_attended"] or 0),
                "reported_to_community": community,
                "reported_to_post": post,
                "dual_reported": community and post,
                "quota_due_so_far": due,
                "quota_met": reached,
            }
        )
    return {
        "year": year,
        "as_of": as_of.isoformat(),
        "share_of_year": round(share, 4),
        "officials": officials,
        "summary": {
            "officials": len(officials),
            "reported_to_community": sum(o["reported_to_community"] for o in officials),
            "reported_to_post": sum(o["reported_to_post"] for o in officials),
            "dual_reported": both,
            "dual_checkin_rate": rate(both, len(officials)),
            "report_rate": rate(anyone, len(officials)),
            "with_quota": with_quota,
            "quota_met": met,
            "quota_completion_rate": rate(met, with_quota),
        },
    }


def volunteers_summary(
    views: ViewStore | Tx,
    unit_scope: Collection[str] | None,
    period: str | Period,
    *,
    min_active: int = 1,
) -> dict[str, Any]:
    """Return the volunteer indicators of a unit scope for a period.

    * ``registered``: volunteers whose home site is in scope, registered
      before the period's end (local dates).
    * ``active``: of those, volunteers with ≥ 1 approved session (approved
      hours > 0) whose local service date lies in the 90 days ending on the
      period's last day; ``active_rate`` = active ÷ registered.
    * ``approved_hours``: approved hours (after corrections, rejections
      excluded) of sessions with a service date in the period, served by
      volunteers registered in scope; ``hours_per_active`` = that ÷ active
      (minimum sample ``min_active``).
    * ``hours_at_sites``: approved hours of sessions served *at* sites in
      scope in the period, by anyone (where the service was given).

    Approval status is today's: hours approved after the period still count
    for it, and hours rejected since no longer do.
    """
    p = parse_period(period)
    first, end = period_bounds(p)
    window_start = (p.end - timedelta(days=ACTIVE_WINDOW_DAYS)).isoformat()
    where_v, params_v = scope_clause("v.home_site_id", unit_scope)
    where_s, params_s = scope_clause("site_id", unit_scope)
    volunteers, sessions = _table("volunteers"), _table("sessions")
    with reading(views) as tx:
        registered = tx.scalar(
            f"SELECT COUNT(*) FROM {volunteers} v WHERE v.registered_on < ? AND {where_v}",
            [end, *params_v],
        )
        active = tx.scalar(
            f"SELECT COUNT(DISTINCT s.volunteer_no) FROM {sessions} s "
            f"JOIN {volunteers} v ON v.volunteer_no = s.volunteer_no "
            "WHERE s.status = 'approved' AND s.approved_hours > 0 "
            "AND s.service_date >= ? AND s.service_date < ? "
            f"AND v.registered_on < ? AND {where_v}",
            [window_start, end, end, *params_v],
        )
        hours = tx.scalar(
            f"SELECT SUM(s.approved_hours) FROM {sessions} s "
            f"JOIN {volunteers} v ON v.volunteer_no = s.volunteer_no "
            "WHERE s.status = 'approved' AND s.service_date >= ? AND s.service_date < ? "
            f"AND v.registered_on < ? AND {where_v}",
            [first, end, end, *params_v],
        )
        at_sites = tx.query(
            f"SELECT site_id, SUM(approved_hours) AS hours, COUNT(*) AS sessions, "
            f"COUNT(DISTINCT volunteer_no) AS volunteers FROM {sessions} "
            "WHERE status = 'approved' AND service_date >= ? AND service_date < ? "
            f"AND {where_s} GROUP BY site_id ORDER BY site_id",
            [first, end, *params_s],
        )
    registered = int(registered or 0)
    active = int(active or 0)
    approved = float(hours or 0.0)
    return {
        "period": p.name,
        "registered": registered,
        "active": active,
        "active_window": {"from": window_start, "to_before": end},
        "active_rate": rate(active, registered),
        "approved_hours": approved,
        "hours_per_active": rate(approved, active, min_active, digits=2),
        "hours_at_sites": [
            {
                "site_id": r["site_id"],
                "approved_hours": float(r["hours"] or 0.0),
                "sessions": int(r["sessions"]),
                "volunteers": int(r["volunteers"]),
            }
            for r in at_sites
        ],
    }
