"""Needs and micro-wishes for supervisors: each need's stage and timeline, and period figures.

The :class:`NeedsProjection` keeps two tables (prefixed ``needs_``):

``needs``
    one row per need: site, channel, category, urgency, the stage
    (submitted, accepted, rejected, dispatched, claimed, closed), the outcome,
    every milestone time (submitted, accepted, first assigned, first
    delivery, closed, rated) with its local date, the current assignee, the
    due time, the counts of re-dispatches and deliveries, the hours
    delivered, **time to serve** (first delivery − acceptance, in hours) and
    the rating.
``events``
    the need's timeline: one row per event with its local date and the
    event's data (without the opaque beneficiary reference), for
    :func:`get_need` and for counting events per period (re-dispatches,
    dispatches, rejections).

The scorecards keep their own facts for the indicators; these views are the
detail behind them: lists with filters and cursor pagination, one need with
its timeline, and a per-site summary of a period (:func:`needs_summary`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

from practice_events.scoring.periods import Period
from projections.base import LoggedEvent, Projection, Rebuilder
from projections.rows import (
    CachingRebuilder,
    RowCache,
    RowSet,
    bad_request,
    check_limit,
    decode_cursor,
    dumps,
    encode_cursor,
    hours_between,
    in_scope,
    insert_new,
    loads,
    local_day,
    median,
    parse_period,
    parse_utc,
    percentile,
    period_bounds,
    rate,
    reading,
    scope_clause,
    utc_text,
)
from projections.viewstore import Tx, ViewStore

PREFIX = "practice.need."
SUFFIX = ".v1"
KINDS = (
    "submitted",
    "accepted",
    "rejected",
    "listed_on_wish_wall",
    "dispatched",
    "claimed",
    "redispatched",
    "service_delivered",
    "closed",
    "rated",
)
"""The need events, by short name (``practice.need.<kind>.v1``)."""

STAGES = ("submitted", "accepted", "rejected", "dispatched", "claimed", "closed")
"""The stages of a need, in the order of its life."""

FULFILMENT_GRACE_DAYS = 30
"""Needs accepted in a period may be fulfilled up to 30 days after it ends and still count."""

NEED_COLUMNS = (
    "need_id",
    "site_id",
    "channel",
    "category",
    "urgency",
    "summary",
    "meeting_id",
    "concern_id",
    "stage",
    "outcome",
    "submitted_at",
    "submitted_on",
    "accepted_at",
    "accepted_on",
    "rejected_at",
    "rejection_reason",
    "on_wish_wall",
    "listed_at",
    "assignment",
    "assignee_kind",
    "assignee_id",
    "first_assigned_at",
    "assigned_at",
    "due_at",
    "redispatch_count",
    "delivery_count",
    "hours_delivered",
    "first_delivered_at",
    "first_delivered_on",
    "time_to_serve_hours",
    "closed_at",
    "closed_on",
    "close_reason",
    "rating",
    "rated_at",
    "rated_on",
    "updated_at",
)

EVENT_COLUMNS = ("position", "need_id", "site_id", "kind", "at", "local_date", "detail")

_PRIVATE = frozenset({"beneficiary_ref"})
"""Data fields never copied into the timeline (opaque, but personal-data adjacent)."""


def _kind(event_type: str) -> str:
    return event_type[len(PREFIX) : -len(SUFFIX)]


class NeedsProjection(Projection):
    """Builds the needs list and timelines (see the module docstring)."""

    NAME = "needs"
    VERSION = 1
    TOPICS = tuple(f"{PREFIX}{kind}{SUFFIX}" for kind in KINDS)
    TABLES: ClassVar[Mapping[str, str]] = {
        "needs": (
            "CREATE TABLE IF NOT EXISTS {name} ("
            "need_id TEXT PRIMARY KEY, site_id TEXT, channel TEXT, category TEXT, urgency TEXT, "
            "summary TEXT, meeting_id TEXT, concern_id TEXT, stage TEXT NOT NULL, outcome TEXT, "
            "submitted_at TEXT, submitted_on TEXT, accepted_at TEXT, accepted_on TEXT, "
            "rejected_at TEXT, rejection_reason TEXT, on_wish_wall INTEGER NOT NULL, "
            "listed_at TEXT, assignment TEXT, assignee_kind TEXT, assignee_id TEXT, "
            "first_assigned_at TEXT, assigned_at TEXT, due_at TEXT, "
            "redispatch_count INTEGER NOT NULL, delivery_count INTEGER NOT NULL, "
            "hours_delivered DOUBLE PRECISION NOT NULL, first_delivered_at TEXT, "
            "first_delivered_on TEXT, time_to_serve_hours DOUBLE PRECISION, closed_at TEXT, "
            "closed_on TEXT, close_reason TEXT, rating INTEGER, rated_at TEXT, rated_on TEXT, "
            "updated_at TEXT)"
        ),
        "events": (
            "CREATE TABLE IF NOT EXISTS {name} ("
            "position BIGINT PRIMARY KEY, need_id TEXT NOT NULL, site_id TEXT, "
            "kind TEXT NOT NULL, at TEXT NOT NULL, local_date TEXT NOT NULL, detail TEXT)"
        ),
    }
    REBUILD_INDEXES = ()  # batches read needs by primary key only
    INDEXES: ClassVar[Mapping[str, str]] = {
        "needs_site": "CREATE INDEX IF NOT EXISTS {index} ON {needs} (site_id, submitted_at)",
        "needs_listed": "CREATE INDEX IF NOT EXISTS {index} ON {needs} (submitted_at, need_id)",
        "events_need": "CREATE INDEX IF NOT EXISTS {index} ON {events} (need_id, position)",
        "events_day": "CREATE INDEX IF NOT EXISTS {index} ON {events} (site_id, local_date)",
    }

    def apply(self, tx: Tx, events: Sequence[LoggedEvent], tables: Mapping[str, str]) -> None:
        """Load the batch's needs with one query, apply the events, write each need once."""
        self._apply_batch(tx, events, tables)

    def rebuilder(self, tables: Mapping[str, str]) -> Rebuilder:
        """Keep the needs rows in memory across the batches of a rebuild (write-back)."""
        caches = {"needs": RowCache(tables["needs"], "need_id", NEED_COLUMNS)}

        def batch(tx: Tx, events: Sequence[LoggedEvent], held: Mapping[str, RowCache]) -> None:
            self._apply_batch(tx, events, tables, held["needs"])

        return CachingRebuilder(self, tables, caches, batch)

    def _apply_batch(
        self,
        tx: Tx,
        events: Sequence[LoggedEvent],
        tables: Mapping[str, str],
        cache: RowCache | None = None,
    ) -> None:
        needs = RowSet(tx, tables["needs"], "need_id", NEED_COLUMNS, cache)
        if needs.needs_preload:
            needs.preload(e.subject for e in events)
        timeline: list[dict[str, Any]] = []
        for e in events:
            kind = _kind(e.type)
            if kind == "submitted":
                row = self._submitted(needs, e)
            else:
                found = needs.mutate(e.subject)
                if found is None:  # only for a log that starts mid-history
                    found = self._submitted(needs, e)
                row = found
                self._apply(row, kind, e)
            row["updated_at"] = utc_text(e.time)
            timeline.append(
                {
                    "position": e.position,
                    "need_id": e.subject,
                    "site_id": row["site_id"],
                    "kind": kind,
                    "at": utc_text(e.time),
                    "local_date": local_day(e.time, self.zone),
                    "detail": dumps({k: val for k, val in e.data.items() if k not in _PRIVATE}),
                }
            )
        needs.write()
        insert_new(tx, tables["events"], EVENT_COLUMNS, ["position"], timeline)

    def _submitted(self, needs: RowSet, e: LoggedEvent) -> dict[str, Any]:
        d = e.data
        return needs.create(
            e.subject,
            {
                "site_id": d.get("site_id"),
                "channel": d.get("channel"),
                "category": d.get("category"),
                "urgency": d.get("urgency", "normal"),
                "summary": d.get("summary"),
                "meeting_id": d.get("meeting_id"),
                "concern_id": d.get("concern_id"),
                "stage": "submitted",
                "submitted_at": utc_text(e.time),
                "submitted_on": local_day(e.time, self.zone),
                "on_wish_wall": 0,
                "redispatch_count": 0,
                "delivery_count": 0,
                "hours_delivered": 0.0,
            },
        )

    def _apply(self, row: dict[str, Any], kind: str, e: LoggedEvent) -> None:
        d = e.data
        at = utc_text(e.time)
        day = local_day(e.time, self.zone)
        if kind == "accepted":
            row.update(stage="accepted", accepted_at=at, accepted_on=day)
        elif kind == "rejected":
            row.update(stage="rejected", rejected_at=at, rejection_reason=d.get("reason"))
        elif kind == "listed_on_wish_wall":
            row.update(on_wish_wall=1, listed_at=at)
        elif kind in ("dispatched", "claimed", "redispatched"):
            team = d.get("team_id")
            row.update(
                stage="claimed" if kind == "claimed" else "dispatched",
                assignee_kind="team" if team is not None else "volunteer",
                assignee_id=team if team is not None else d.get("volunteer_no"),
                assigned_at=at,
                on_wish_wall=0,
            )
            if kind == "redispatched":
                row["redispatch_count"] = int(
                    d.get("redispatch_count", row["redispatch_count"] + 1)
                )
            else:
                row.update(assignment=kind, first_assigned_at=at)
            if d.get("due_at") is not None:
                row["due_at"] = utc_text(parse_utc(str(d["due_at"])))
        elif kind == "service_delivered":
            row["delivery_count"] += 1
            row["hours_delivered"] += float(d.get("hours", 0.0))
            if row["first_delivered_at"] is None:
                row.update(first_delivered_at=at, first_delivered_on=day)
                if row["accepted_at"] is not None:
                    row["time_to_serve_hours"] = hours_between(row["accepted_at"], at)
        elif kind == "closed":
            row.update(
                stage="closed",
                outcome=d.get("outcome"),
                closed_at=at,
                closed_on=day,
                close_reason=d.get("reason"),
                on_wish_wall=0,
            )
        elif kind == "rated":
            row.update(rating=int(d["rating"]), rated_at=at, rated_on=day)


# ======================================================================================
# Queries (JSON-ready; used by the HTTP API)
# ======================================================================================

NEEDS = f"{NeedsProjection.NAME}_needs"
EVENTS = f"{NeedsProjection.NAME}_events"


def _need_out(row: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["on_wish_wall"] = bool(row["on_wish_wall"])
    return out


def list_needs(
    views: ViewStore | Tx,
    unit_scope: Collection[str] | None,
    *,
    stage: str | None = None,
    site_id: str | None = None,
    category: str | None = None,
    channel: str | None = None,
    period: str | Period | None = None,
    overdue_at: datetime | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> dict[str, Any]:
    """Return a page of needs in ``unit_scope``, newest submission first.

    Filters: ``stage``, ``site_id``, ``category``, ``channel``, ``period``
    (submitted in that local period) and ``overdue_at`` (in service, not yet
    delivered once, and past its due time at that moment). Pages use a keyset
    cursor on (submission time, need id): ``next_cursor`` of the previous
    page, stable while new needs arrive.
    """
    check_limit(limit)
    if stage is not None and stage not in STAGES:
        raise bad_request(f"stage must be one of {list(STAGES)}, got {stage!r}")
    where, params = scope_clause("site_id", unit_scope)
    clauses = [where]
    for column, value in (
        ("stage", stage),
        ("site_id", site_id),
        ("category", category),
        ("channel", channel),
    ):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if period is not None:
        first, end = period_bounds(parse_period(period))
        clauses.append("submitted_on >= ? AND submitted_on < ?")
        params += [first, end]
    if overdue_at is not None:
        clauses.append(
            "stage IN ('dispatched', 'claimed') AND delivery_count = 0 "
            "AND due_at IS NOT NULL AND due_at < ?"
        )
        params.append(utc_text(overdue_at))
    if cursor is not None:
        submitted_at, need_id = decode_cursor(cursor, 2)
        clauses.append("(submitted_at < ? OR (submitted_at = ? AND need_id < ?))")
        params += [submitted_at, submitted_at, need_id]
    with reading(views) as tx:
        rows = tx.query(
            f"SELECT * FROM {NEEDS} WHERE {' AND '.join(clauses)} "
            "ORDER BY submitted_at DESC, need_id DESC LIMIT ?",
            [*params, limit + 1],
        )
    page = rows[:limit]
    next_cursor = (
        encode_cursor([page[-1]["submitted_at"], page[-1]["need_id"]])
        if len(rows) > limit
        else None
    )
    return {"items": [_need_out(r) for r in page], "next_cursor": next_cursor}


def get_need(
    views: ViewStore | Tx, need_id: str, *, unit_scope: Collection[str] | None = None
) -> dict[str, Any] | None:
    """Return one need with its timeline (every event, in log order), or None.

    ``None`` also when the need's site is outside ``unit_scope``, so a scope
    never reveals that a need exists.
    """
    with reading(views) as tx:
        rows = tx.query(f"SELECT * FROM {NEEDS} WHERE need_id = ?", [need_id])
        if not rows or not in_scope(rows[0]["site_id"], unit_scope):
            return None
        events = tx.query(
            f"SELECT position, kind, at, local_date, detail FROM {EVENTS} "
            "WHERE need_id = ? ORDER BY position",
            [need_id],
        )
    timeline = [{**e, "detail": loads(e["detail"], {})} for e in events]
    return {**_need_out(rows[0]), "timeline": timeline}


def needs_summary(
    views: ViewStore | Tx,
    unit_scope: Collection[str] | None,
    period: str | Period,
    *,
    min_fulfilment: int = 5,
    min_time_to_serve: int = 5,
    min_redispatch: int = 5,
    min_ratings: int = 10,
) -> dict[str, Any]:
    """Return the needs loop of a period per site and in total.

    Figures (local dates in the network's zone; period P = ``[first, end)``):

    * ``submitted``, ``accepted``, ``rejected``: events in P.
    * ``by_stage``: today's stage of the needs submitted in P.
    * ``fulfilment``: of the needs accepted in P, those closed ``fulfilled``
      before P's end + 30 days ÷ (accepted in P − closed ``withdrawn`` in that
      window); minimum sample ``min_fulfilment`` (default 5).
    * ``time_to_serve_hours``: median and p90 (nearest rank) of first
      delivery − acceptance, over needs first delivered in P; minimum
      sample ``min_time_to_serve`` (default 5).
    * ``redispatch``: re-dispatches in P ÷ initial assignments in P
      (dispatched or claimed); minimum sample ``min_redispatch`` (5).
    * ``satisfaction``: ratings ≥ 4 given in P ÷ ratings given in P, and the
      mean rating; minimum sample ``min_ratings`` (10).
    * ``rejection``: rejected in P ÷ submitted in P.
    * ``open_now``: today's count of needs in scope per open stage.

    Below a minimum sample a figure says ``insufficient_data``, never 0 %.
    """
    p = parse_period(period)
    first, end = period_bounds(p)
    grace_end = (p.end + timedelta(days=FULFILMENT_GRACE_DAYS)).isoformat()
    where, params = scope_clause("site_id", unit_scope)
    with reading(views) as tx:
        needs = tx.query(
            "SELECT need_id, site_id, stage, outcome, submitted_on, accepted_on, closed_on, "
            f"first_delivered_on, time_to_serve_hours, rating, rated_on FROM {NEEDS} "
            f"WHERE {where} AND ((submitted_on >= ? AND submitted_on < ?) "
            "OR (accepted_on >= ? AND accepted_on < ?) "
            "OR (first_delivered_on >= ? AND first_delivered_on < ?) "
            "OR (rated_on >= ? AND rated_on < ?))",
            [*params, first, end, first, end, first, end, first, end],
        )
        counts = tx.query(
            f"SELECT site_id, kind, COUNT(*) AS n FROM {EVENTS} "
            f"WHERE {where} AND local_date >= ? AND local_date < ? GROUP BY site_id, kind",
            [*params, first, end],
        )
        open_now = tx.query(
            f"SELECT site_id, stage, COUNT(*) AS n FROM {NEEDS} WHERE {where} "
            "AND stage IN ('submitted', 'accepted', 'dispatched', 'claimed') "
            "GROUP BY site_id, stage",
            params,
        )
    by_site: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in needs:
        by_site[row["site_id"]].append(row)
    events_by_site: dict[str, Counter[str]] = defaultdict(Counter)
    for row in counts:
        events_by_site[row["site_id"]][row["kind"]] += int(row["n"])
    open_by_site: dict[str, Counter[str]] = defaultdict(Counter)
    for row in open_now:
        open_by_site[row["site_id"]][row["stage"]] += int(row["n"])

    def figures(rows: list[dict[str, Any]], kinds: Counter[str], backlog: Counter[str]) -> Any:
        in_p = [
            r for r in rows if r["submitted_on"] is not None and first <= r["submitted_on"] < end
        ]
        cohort = [
            r for r in rows if r["accepted_on"] is not None and first <= r["accepted_on"] < end
        ]
        settled = [r for r in cohort if r["closed_on"] is not None and r["closed_on"] < grace_end]
        fulfilled = sum(1 for r in settled if r["outcome"] == "fulfilled")
        withdrawn = sum(1 for r in settled if r["outcome"] == "withdrawn")
        served = [
            float(r["time_to_serve_hours"])
            for r in rows
            if r["first_delivered_on"] is not None
            and first <= r["first_delivered_on"] < end
            and r["time_to_serve_hours"] is not None
        ]
        ratings = [
            int(r["rating"])
            for r in rows
            if r["rated_on"] is not None and first <= r["rated_on"] < end
        ]
        enough_served = len(served) >= max(1, min_time_to_serve)
        assigned = kinds["dispatched"] + kinds["claimed"]
        enough_ratings = len(ratings) >= max(1, min_ratings)
        return {
            "submitted": kinds["submitted"],
            "accepted": kinds["accepted"],
            "rejected": kinds["rejected"],
            "by_stage": dict(sorted(Counter(r["stage"] for r in in_p).items())),
            "fulfilment": {
                **rate(fulfilled, len(cohort) - withdrawn, min_fulfilment),
                "accepted": len(cohort),
                "withdrawn": withdrawn,
                "closed_by": grace_end,
            },
            "time_to_serve_hours": {
                "status": "ok" if enough_served else "insufficient_data",
                "count": len(served),
                "median": median(served) if enough_served else None,
                "p90": percentile(served, 0.9) if enough_served else None,
                "min_sample": min_time_to_serve,
            },
            "redispatch": {
                **rate(kinds["redispatched"], assigned, min_redispatch),
                "redispatched": kinds["redispatched"],
                "assigned": assigned,
            },
            "satisfaction": {
                **rate(sum(1 for r in ratings if r >= 4), len(ratings), min_ratings),
                "mean": round(sum(ratings) / len(ratings), 2) if enough_ratings else None,
            },
            "rejection": rate(kinds["rejected"], kinds["submitted"]),
            "deliveries": kinds["service_delivered"],
            "open_now": dict(sorted(backlog.items())),
        }

    sites = sorted(set(by_site) | set(events_by_site) | set(open_by_site))
    total_kinds: Counter[str] = Counter()
    total_backlog: Counter[str] = Counter()
    for site in sites:
        total_kinds.update(events_by_site[site])
        total_backlog.update(open_by_site[site])
    return {
        "period": p.name,
        "total": figures(needs, total_kinds, total_backlog),
        "by_site": [
            {"site_id": site, **figures(by_site[site], events_by_site[site], open_by_site[site])}
            for site in sites
        ],
    }
