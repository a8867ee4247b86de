"""The network view: sites and their hierarchy, checklists and six-haves assessments.

Every other read model scopes by unit: a station supervisor sees their
station and what hangs under it, the district sees everything. This
projection keeps the tree of sites (centre → institutes → stations → bases,
posts and house-meeting sites) with each site's resolved ancestors, so that
roll-ups never walk the tree at query time:

``network_sites``
    one row per site: level, parent, name, active, and ``station_id`` /
    ``institute_id`` / ``centre_id`` (the nearest ancestor-or-self of that
    level; NULL when the site has none, e.g. an institute has no station).
    ``hierarchy_issue`` says when a site hangs under a parent of an
    unexpected level (the aggregate cannot check it: it does not read its
    parent's state).
``network_ancestors``
    the closure of the tree: one row per (ancestor, site) pair, the site
    itself included at depth 0, so :func:`units_under` is one indexed query.
    Sites never move (moving is deactivate + register anew), so the closure
    is append-only.
``network_checklists``
    every version of every site-standard checklist with its items and weights.
``network_assessments``
    every six-haves assessment with its **weighted score**
    ``S6 = Σ wᵢ·rᵢ`` where ``wᵢ`` are the item weights of the checklist
    *version named in the assessment* (Σ wᵢ = 1) and ``rᵢ`` the value of
    the item's state rating on the scale stored in the event (A/B/C/C# =
    1/0.66/0.33/0). An item of the checklist that the assessment does not
    rate counts as C# (0), so skipping an item never scores higher than
    rating it. ``all_at_least_b`` is 1 when every item of the version is
    rated A or B (the network-level indicator "% sites with all items ≥ B").
    Codes not in the version are listed in ``unknown_items``. When the
    version is not (yet) known the score is NULL until it is published.

Times are stored as UTC ISO-8601 text with microseconds (so they compare
as text) next to the local date in the network's zone.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, ClassVar

import orjson

from projections.base import LoggedEvent, Projection
from projections.rows import utc_text
from projections.viewstore import Tx, ViewStore

REGISTERED = "practice.site.registered.v1"
UPDATED = "practice.site.updated.v1"
DEACTIVATED = "practice.site.deactivated.v1"
ASSESSED = "practice.site.standard_assessed.v1"
CHECKLIST_PUBLISHED = "practice.site.checklist_published.v1"
CHECKLIST_REVISED = "practice.site.checklist_revised.v1"

RATING_VALUES: Mapping[str, float] = {"A": 1.0, "B": 0.66, "C": 0.33, "C#": 0.0}
"""The A/B/C/C# scale, used when an event does not carry its own ``rating_values``."""

EXPECTED_PARENTS: Mapping[str, frozenset[str]] = {
    "centre": frozenset(),
    "institute": frozenset({"centre"}),
    "station": frozenset({"institute"}),
    "base": frozenset({"station", "institute"}),
    "post": frozenset({"station", "institute"}),
    "house_meeting_site": frozenset({"station"}),
}
"""Which parent levels each level is expected under (contracts/site.py)."""

ROLLUP_LEVELS = ("station", "institute")
"""Levels whose nearest ancestor-or-self is resolved into its own column."""

ASSESSMENT_WINDOW = timedelta(days=365)
"""The six-haves indicator uses the latest assessment within 12 months."""

PATH_SEPARATOR = " > "
"""Joins the ids of a site's path: ids have no spaces, and a space sorts before every
character an id may hold, so ordering by path lists the tree depth-first."""

MAX_PARAMS = 900
"""Ids per ``IN (...)`` list: far below SQLite's and PostgreSQL's limits."""


# --- small helpers shared by the projections of this package ---------------------------------


def parse_utc(text: str | None) -> datetime | None:
    """Parse a stored time (any offset) into an aware datetime, or None."""
    if text is None:
        return None
    return datetime.fromisoformat(text)


def chunks(values: Sequence[Any], size: int = MAX_PARAMS) -> Iterator[Sequence[Any]]:
    """Yield slices of at most ``size`` values (for ``IN (...)`` lists)."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def marks(count: int) -> str:
    """Return ``?, ?, ?`` for ``count`` placeholders."""
    return ", ".join("?" * count)


def select_in(
    tx: Tx, table: str, column: str, values: Collection[Any], columns: str = "*"
) -> list[dict[str, Any]]:
    """Return the rows of ``table`` whose ``column`` is one of ``values`` (chunked queries)."""
    rows: list[dict[str, Any]] = []
    ordered = sorted(values)
    for part in chunks(ordered):
        rows.extend(
            tx.query(f"SELECT {columns} FROM {table} WHERE {column} IN ({marks(len(part))})", part)
        )
    return rows


def upsert_sql(table: str, columns: Sequence[str], key: Sequence[str]) -> str:
    """Return a portable ``INSERT ... ON CONFLICT (key) DO UPDATE`` statement."""
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks(len(columns))}) "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
    )


@contextmanager
def reading(source: ViewStore | Tx) -> Iterator[Tx]:
    """Use ``source`` as a read transaction: a :class:`Tx` as is, a store in a snapshot."""
    if isinstance(source, Tx):
        yield source
        return
    with source.read() as tx:
        yield tx


def live_tables(projection: type[Projection]) -> dict[str, str]:
    """Physical names of a projection's live tables (what queries read)."""
    return {logical: f"{projection.NAME}_{logical}" for logical in projection.TABLES}


# --- the projection ---------------------------------------------------------------------------

SITE_COLUMNS = (
    "site_id",
    "level",
    "parent_id",
    "name",
    "address",
    "lat",
    "lon",
    "active",
    "registered_at",
    "registered_date",
    "deactivated_at",
    "deactivated_date",
    "deactivation_reason",
    "depth",
    "station_id",
    "institute_id",
    "centre_id",
    "path",
    "hierarchy_issue",
    "assessment_count",
    "last_assessed_at",
    "last_score",
    "last_position",
)

CHECKLIST_COLUMNS = (
    "checklist_id",
    "version",
    "title",
    "items",
    "published_at",
    "published_date",
    "position",
)

ASSESSMENT_COLUMNS = (
    "site_id",
    "position",
    "event_id",
    "assessed_at",
    "assessed_date",
    "checklist_id",
    "checklist_version",
    "ratings",
    "scale",
    "score",
    "score_unweighted",
    "all_at_least_b",
    "unknown_items",
    "missing_items",
    "assessor_id",
    "method",
    "level",
    "station_id",
    "institute_id",
    "centre_id",
)


class NetworkProjection(Projection):
    """Sites, their ancestors, checklists and weighted six-haves assessments (module docstring)."""

    NAME: ClassVar[str] = "network"
    VERSION: ClassVar[int] = 1
    TOPICS: ClassVar[tuple[str, ...]] = (
        REGISTERED,
        UPDATED,
        DEACTIVATED,
        ASSESSED,
        CHECKLIST_PUBLISHED,
        CHECKLIST_REVISED,
    )
    TABLES: ClassVar[Mapping[str, str]] = {
        "sites": (
            "CREATE TABLE IF NOT EXISTS {name} ("
            "site_id TEXT PRIMARY KEY, level TEXT NOT NULL, parent_id TEXT, name TEXT NOT NULL, "
            "address TEXT, lat DOUBLE PRECISION, lon DOUBLE PRECISION, active INTEGER NOT NULL, "
            "registered_at TEXT NOT NULL, registered_date TEXT NOT NULL, deactivated_at TEXT, "
            "deactivated_date TEXT, deactivation_reason TEXT, depth INTEGER NOT NULL, "
            "station_id TEXT, institute_id TEXT, centre_id TEXT, path TEXT NOT NULL, "
            "hierarchy_issue TEXT, assessment_count INTEGER NOT NULL, last_assessed_at TEXT, "
            "last_score DOUBLE PRECISION, last_position BIGINT NOT NULL)"
        ),
        "ancestors": (
            "CREATE TABLE IF NOT EXISTS {name} ("
            "ancestor_id TEXT NOT NULL, site_id TEXT NOT NULL, depth INTEGER NOT NULL, "
            "PRIMARY KEY (ancestor_id, site_id))"
        ),
        "checklists": (
            "CREATE TABLE IF NOT EXISTS {name} ("
            "checklist_id TEXT NOT NULL, version INTEGER NOT NULL, title TEXT NOT NULL, "
            "items TEXT NOT NULL, published_at TEXT NOT NULL, published_date TEXT NOT NULL, "
            "position BIGINT NOT NULL, PRIMARY KEY (checklist_id, version))"
        ),
        "assessments": (
            "CREATE TABLE IF NOT EXISTS {name} ("
            "site_id TEXT NOT NULL, position BIGINT NOT NULL, event_id TEXT, "
            "assessed_at TEXT NOT NULL, assessed_date TEXT NOT NULL, checklist_id TEXT NOT NULL, "
            "checklist_version INTEGER NOT NULL, ratings TEXT NOT NULL, scale TEXT NOT NULL, "
            "score DOUBLE PRECISION, "
            "score_unweighted DOUBLE PRECISION, all_at_least_b INTEGER, unknown_items TEXT, "
            "missing_items TEXT, assessor_id TEXT, method TEXT, level TEXT, station_id TEXT, "
            "institute_id TEXT, centre_id TEXT, PRIMARY KEY (site_id, position))"
        ),
    }
    REBUILD_INDEXES = ("assessments_pending",)  # assessments waiting for their checklist
    INDEXES: ClassVar[Mapping[str, str]] = {
        "sites_parent": "CREATE INDEX IF NOT EXISTS {index} ON {sites} (parent_id)",
        "ancestors_site": "CREATE INDEX IF NOT EXISTS {index} ON {ancestors} (site_id)",
        "assessments_date": (
            "CREATE INDEX IF NOT EXISTS {index} ON {assessments} (assessed_date, site_id)"
        ),
        "assessments_pending": (
            "CREATE INDEX IF NOT EXISTS {index} ON {assessments} (checklist_id, checklist_version)"
        ),
    }

    def apply(self, tx: Tx, events: Sequence[LoggedEvent], tables: Mapping[str, str]) -> None:
        """Apply a batch: load the rows it touches, update them in memory, write each once."""
        batch = _NetworkBatch(self, tx, tables, events)
        for event in events:
            batch.handle(event)
        batch.flush()


class _NetworkBatch:
    """The rows one batch touches, loaded with a few queries and written once."""

    def __init__(
        self,
        projection: NetworkProjection,
        tx: Tx,
        tables: Mapping[str, str],
        events: Sequence[LoggedEvent],
    ) -> None:
        self.zone = projection.zone
        self.tx = tx
        self.tables = tables
        site_ids: set[str] = set()
        checklist_ids: set[str] = set()
        for event in events:
            if event.type in (CHECKLIST_PUBLISHED, CHECKLIST_REVISED):
                checklist_ids.add(event.subject)
                continue
            site_ids.add(event.subject)
            parent = event.data.get("parent_id") if event.type == REGISTERED else None
            if parent:
                site_ids.add(str(parent))
            if event.type == ASSESSED:
                checklist_ids.add(str(event.data["checklist_id"]))
        self.sites: dict[str, dict[str, Any]] = {
            row["site_id"]: row for row in select_in(tx, tables["sites"], "site_id", site_ids)
        }
        self.checklists: dict[tuple[str, int], dict[str, Any]] = {}
        for row in select_in(tx, tables["checklists"], "checklist_id", checklist_ids):
            self.checklists[(row["checklist_id"], int(row["version"]))] = row
        self.touched_sites: set[str] = set()
        self.new_ancestors: list[tuple[str, str, int]] = []
        self.touched_checklists: set[tuple[str, int]] = set()
        self.assessments: dict[tuple[str, int], dict[str, Any]] = {}

    def local_date(self, moment: datetime) -> str:
        return moment.astimezone(self.zone).date().isoformat()

    def handle(self, event: LoggedEvent) -> None:
        """Dispatch one event."""
        kind = event.type
        if kind == REGISTERED:
            self.register(event)
        elif kind in (CHECKLIST_PUBLISHED, CHECKLIST_REVISED):
            self.publish_checklist(event)
        else:
            site = self.sites.get(event.subject)
            if site is None:  # pragma: no cover - the pipeline checks the site exists
                return
            if kind == UPDATED:
                self.update(site, event)
            elif kind == DEACTIVATED:
                site["active"] = 0
                site["deactivated_at"] = utc_text(event.time)
                site["deactivated_date"] = self.local_date(event.time)
                site["deactivation_reason"] = event.data.get("reason")
            elif kind == ASSESSED:
                self.assess(site, event)
            site["last_position"] = event.position
            self.touched_sites.add(event.subject)

    def register(self, event: LoggedEvent) -> None:
        """Add a site with its resolved ancestors and its closure rows."""
        d = event.data
        site_id = event.subject
        level = str(d["level"])
        parent_id = d.get("parent_id")
        parent = self.sites.get(str(parent_id)) if parent_id else None
        geo = d.get("geo") or {}
        row: dict[str, Any] = {
            "site_id": site_id,
            "level": level,
            "parent_id": parent_id,
            "name": d["name"],
            "address": d.get("address"),
            "lat": geo.get("lat"),
            "lon": geo.get("lon"),
            "active": 1,
            "registered_at": utc_text(event.time),
            "registered_date": self.local_date(event.time),
            "deactivated_at": None,
            "deactivated_date": None,
            "deactivation_reason": None,
            "depth": 0,
            "station_id": site_id if level == "station" else None,
            "institute_id": site_id if level == "institute" else None,
            "centre_id": site_id,
            "path": site_id,
            "hierarchy_issue": None,
            "assessment_count": 0,
            "last_assessed_at": None,
            "last_score": None,
            "last_position": event.position,
        }
        expected = EXPECTED_PARENTS.get(level, frozenset())
        if parent is not None:
            row["depth"] = int(parent["depth"]) + 1
            row["path"] = f"{parent['path']}{PATH_SEPARATOR}{site_id}"
            row["centre_id"] = parent["centre_id"]
            row["station_id"] = row["station_id"] or parent["station_id"]
            row["institute_id"] = row["institute_id"] or parent["institute_id"]
            if parent["level"] not in expected:
                row["hierarchy_issue"] = (
                    f"a {level} is expected under "
                    f"{' or '.join(sorted(expected)) or 'no parent'}, not under a "
                    f"{parent['level']}"
                )
            self.new_ancestors.extend(
                (ancestor, site_id, depth + 1) for ancestor, depth in _ancestors_of(parent)
            )
        elif parent_id:  # pragma: no cover - the pipeline checks the parent exists
            row["hierarchy_issue"] = f"parent {parent_id} is unknown"
        self.new_ancestors.append((site_id, site_id, 0))
        self.sites[site_id] = row
        self.touched_sites.add(site_id)

    def update(self, site: dict[str, Any], event: LoggedEvent) -> None:
        """Overwrite the fields the update sent."""
        d = event.data
        if "name" in d:
            site["name"] = d["name"]
        if "address" in d:
            site["address"] = d["address"]
        if "geo" in d:
            geo = d["geo"] or {}
            site["lat"] = geo.get("lat")
            site["lon"] = geo.get("lon")

    def publish_checklist(self, event: LoggedEvent) -> None:
        """Keep the new checklist version; score assessments that were waiting for it."""
        d = event.data
        key = (event.subject, int(d["version"]))
        self.checklists[key] = {
            "checklist_id": event.subject,
            "version": key[1],
            "title": d.get("title") or "",
            "items": orjson.dumps(d["items"]).decode(),
            "published_at": utc_text(event.time),
            "published_date": self.local_date(event.time),
            "position": event.position,
        }
        self.touched_checklists.add(key)
        self.rescore_pending(key)

    def rescore_pending(self, key: tuple[str, int]) -> None:
        """Score the assessments (stored or in this batch) that named this unknown version."""
        stored = self.tx.query(
            f"SELECT * FROM {self.tables['assessments']} "
            "WHERE checklist_id = ? AND checklist_version = ? AND score IS NULL",
            [key[0], key[1]],
        )
        for row in stored:
            self.assessments.setdefault((row["site_id"], int(row["position"])), row)
        rescored = [
            row
            for row in self.assessments.values()
            if (row["checklist_id"], int(row["checklist_version"])) == key and row["score"] is None
        ]
        missing = {row["site_id"] for row in rescored} - set(self.sites)
        for site in select_in(self.tx, self.tables["sites"], "site_id", missing):
            self.sites[site["site_id"]] = site
        for row in rescored:
            row.update(self.score(key, orjson.loads(row["ratings"]), orjson.loads(row["scale"])))
            site = self.sites[row["site_id"]]
            if site["last_assessed_at"] == row["assessed_at"]:
                site["last_score"] = row["score"]
                self.touched_sites.add(row["site_id"])

    def score(
        self, key: tuple[str, int], ratings: Mapping[str, str], scale: Mapping[str, float]
    ) -> dict[str, Any]:
        """Weighted score of ``ratings`` on checklist version ``key`` (module docstring)."""
        checklist = self.checklists.get(key)
        if checklist is None:
            return {
                "score": None,
                "all_at_least_b": None,
                "unknown_items": None,
                "missing_items": None,
            }
        items = orjson.loads(checklist["items"])
        codes = {item["code"] for item in items}
        total = math.fsum(
            float(item["weight"]) * float(scale.get(ratings.get(item["code"], "C#"), 0.0))
            for item in items
        )
        return {
            "score": round(total, 4),
            "all_at_least_b": int(all(ratings.get(item["code"]) in ("A", "B") for item in items)),
            "unknown_items": orjson.dumps(sorted(set(ratings) - codes)).decode(),
            "missing_items": orjson.dumps(sorted(codes - set(ratings))).decode(),
        }

    def assess(self, site: dict[str, Any], event: LoggedEvent) -> None:
        """Record one assessment with its weighted score; keep the site's latest."""
        d = event.data
        ratings = {str(item["code"]): str(item["rating"]) for item in d["items"]}
        scale = d.get("rating_values") or RATING_VALUES
        key = (str(d["checklist_id"]), int(d["checklist_version"]))
        assessed_at = utc_text(event.time)
        row: dict[str, Any] = {
            "site_id": site["site_id"],
            "position": event.position,
            "event_id": event.meta.get("id"),
            "assessed_at": assessed_at,
            "assessed_date": self.local_date(event.time),
            "checklist_id": key[0],
            "checklist_version": key[1],
            "ratings": orjson.dumps(ratings, option=orjson.OPT_SORT_KEYS).decode(),
            "scale": orjson.dumps(dict(scale), option=orjson.OPT_SORT_KEYS).decode(),
            "score_unweighted": d.get("score_unweighted"),
            "assessor_id": d.get("assessor_id"),
            "method": d.get("method"),
            "level": site["level"],
            "station_id": site["station_id"],
            "institute_id": site["institute_id"],
            "centre_id": site["centre_id"],
            **self.score(key, ratings, scale),
        }
        self.assessments[(site["site_id"], event.position)] = row
        site["assessment_count"] = int(site["assessment_count"]) + 1
        if site["last_assessed_at"] is None or assessed_at >= site["last_assessed_at"]:
            site["last_assessed_at"] = assessed_at
            site["last_score"] = row["score"]

    def flush(self) -> None:
        """Write every touched row once."""
        tx, tables = self.tx, self.tables
        tx.executemany(
            upsert_sql(tables["sites"], SITE_COLUMNS, ("site_id",)),
            [[self.sites[s][c] for c in SITE_COLUMNS] for s in sorted(self.touched_sites)],
        )
        tx.executemany(
            f"INSERT INTO {tables['ancestors']} (ancestor_id, site_id, depth) VALUES (?, ?, ?) "
            "ON CONFLICT (ancestor_id, site_id) DO NOTHING",
            self.new_ancestors,
        )
        tx.executemany(
            upsert_sql(tables["checklists"], CHECKLIST_COLUMNS, ("checklist_id", "version")),
            [
                [self.checklists[k][c] for c in CHECKLIST_COLUMNS]
                for k in sorted(self.touched_checklists)
            ],
        )
        tx.executemany(
            upsert_sql(tables["assessments"], ASSESSMENT_COLUMNS, ("site_id", "position")),
            [
                [row.get(c) for c in ASSESSMENT_COLUMNS]
                for _, row in sorted(self.assessments.items())
            ],
        )


def _ancestors_of(site: Mapping[str, Any]) -> list[tuple[str, int]]:
    """Return (ancestor-or-self, distance) pairs of ``site`` from its materialised path."""
    parts = str(site["path"]).split(PATH_SEPARATOR)
    return [(ancestor, len(parts) - 1 - index) for index, ancestor in enumerate(parts)]


# --- queries ----------------------------------------------------------------------------------

TABLES = live_tables(NetworkProjection)
"""Live table names of this projection (what the query functions read)."""


def units_under(source: ViewStore | Tx, unit_id: str) -> set[str]:
    """Return ``unit_id`` and every site below it (its descendants at any depth).

    Used by every per-unit query and by the API to enforce access: a user of
    unit U may see exactly ``units_under(U)``. An unknown unit yields just
    itself, so queries scoped by it find nothing rather than everything.
    """
    with reading(source) as tx:
        rows = tx.query(
            f"SELECT site_id FROM {TABLES['ancestors']} WHERE ancestor_id = ?", [unit_id]
        )
    return {unit_id} | {str(r["site_id"]) for r in rows}


def site_path(source: ViewStore | Tx, site_id: str) -> list[dict[str, Any]]:
    """Return the sites from the root down to ``site_id`` (empty if unknown).

    Each item has ``site_id``, ``level`` and ``name``: what a breadcrumb shows.
    """
    with reading(source) as tx:
        rows = tx.query(
            f"SELECT s.site_id, s.level, s.name, a.depth FROM {TABLES['ancestors']} a "
            f"JOIN {TABLES['sites']} s ON s.site_id = a.ancestor_id WHERE a.site_id = ? "
            "ORDER BY a.depth DESC",
            [site_id],
        )
    return [{"site_id": r["site_id"], "level": r["level"], "name": r["name"]} for r in rows]


def _site_out(row: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["active"] = bool(out["active"])
    out.pop("last_position", None)
    return out


def list_sites(
    source: ViewStore | Tx,
    *,
    scope: Collection[str] | None = None,
    level: str | None = None,
    parent_id: str | None = None,
    active: bool | None = None,
) -> list[dict[str, Any]]:
    """Return the sites (ordered by path, i.e. as a tree), filtered.

    ``scope`` is the set of site ids the caller may see (None: all), e.g.
    ``units_under(views, "WLY-SUO-1")``.
    """
    clauses: list[str] = []
    params: list[Any] = []
    if level is not None:
        clauses.append("level = ?")
        params.append(level)
    if parent_id is not None:
        clauses.append("parent_id = ?")
        params.append(parent_id)
    if active is not None:
        clauses.append("active = ?")
        params.append(int(active))
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    with reading(source) as tx:
        rows = tx.query(f"SELECT * FROM {TABLES['sites']}{where} ORDER BY path", params)
    allowed = None if scope is None else set(scope)
    return [_site_out(r) for r in rows if allowed is None or r["site_id"] in allowed]


def get_site(source: ViewStore | Tx, site_id: str) -> dict[str, Any] | None:
    """Return one site with its path from the root, or None if unknown."""
    with reading(source) as tx:
        rows = tx.query(f"SELECT * FROM {TABLES['sites']} WHERE site_id = ?", [site_id])
        if not rows:
            return None
        out = _site_out(rows[0])
        out["path_sites"] = site_path(tx, site_id)
    return out


def _assessment_out(row: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(row)
    for name in ("ratings", "scale", "unknown_items", "missing_items"):
        if out.get(name) is not None:
            out[name] = orjson.loads(out[name])
    if out.get("all_at_least_b") is not None:
        out["all_at_least_b"] = bool(out["all_at_least_b"])
    return out


def list_assessments(
    source: ViewStore | Tx,
    *,
    scope: Collection[str] | None = None,
    site_id: str | None = None,
    since_date: str | None = None,
    until_date: str | None = None,
) -> list[dict[str, Any]]:
    """Return six-haves assessments (oldest first), filtered by site, scope and local dates.

    ``since_date``/``until_date`` are local dates ``YYYY-MM-DD`` (half-open:
    since ≤ date < until).
    """
    clauses: list[str] = []
    params: list[Any] = []
    if site_id is not None:
        clauses.append("site_id = ?")
        params.append(site_id)
    if since_date is not None:
        clauses.append("assessed_date >= ?")
        params.append(since_date)
    if until_date is not None:
        clauses.append("assessed_date < ?")
        params.append(until_date)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    with reading(source) as tx:
        rows = tx.query(
            f"SELECT * FROM {TABLES['assessments']}{where} ORDER BY assessed_at, position", params
        )
    allowed = None if scope is None else set(scope)
    return [_assessment_out(r) for r in rows if allowed is None or r["site_id"] in allowed]


def latest_assessments(
    source: ViewStore | Tx,
    as_of: datetime,
    *,
    scope: Collection[str] | None = None,
    window: timedelta = ASSESSMENT_WINDOW,
) -> dict[str, dict[str, Any]]:
    """Return each site's latest assessment made in ``(as_of - window, as_of]``.

    The six-haves indicator (DESIGN.md §6, research §(c) #1) uses the latest
    assessment within 12 months: a site assessed only earlier has none.
    """
    start = utc_text(as_of - window)
    end = utc_text(as_of)
    with reading(source) as tx:
        rows = tx.query(
            f"SELECT * FROM {TABLES['assessments']} WHERE assessed_at > ? AND assessed_at <= ? "
            "ORDER BY assessed_at, position",
            [start, end],
        )
    allowed = None if scope is None else set(scope)
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        if allowed is None or row["site_id"] in allowed:
            latest[row["site_id"]] = _assessment_out(row)
    return latest


def get_checklist(
    source: ViewStore | Tx, checklist_id: str, version: int | None = None
) -> dict[str, Any] | None:
    """Return a checklist version (the latest when ``version`` is None) with its items."""
    with reading(source) as tx:
        if version is None:
            rows = tx.query(
                f"SELECT * FROM {TABLES['checklists']} WHERE checklist_id = ? "
                "ORDER BY version DESC LIMIT 1",
                [checklist_id],
            )
        else:
            rows = tx.query(
                f"SELECT * FROM {TABLES['checklists']} WHERE checklist_id = ? AND version = ?",
                [checklist_id, version],
            )
    if not rows:
        return None
    out = dict(rows[0])
    out["items"] = orjson.loads(out["items"])
    return out
