"""Small helpers shared by the ledger, needs and meetings views: batched rows and queries.

The performance rule of the runner is "load the rows a batch touches with one
query, change them in Python, write each touched row once". These helpers do
the two halves: :func:`load_rows` (one ``IN``/``ANY`` query) and
:func:`upsert_rows` (SQLite: one prepared ``executemany``; PostgreSQL: one
``INSERT ... SELECT FROM unnest(...)`` per table and batch). They also
provide what the query functions share: UTC and local-date text, unit
scoping clauses, keyset cursors, indicator ratios and percentiles.

Times are stored as fixed-width UTC text (``2024-03-31T15:30:00.000000+00:00``,
the format of every view of this package), so that text order is time order
on SQLite and PostgreSQL alike; business periods use local dates
(``YYYY-MM-DD`` in the network's zone) computed here in Python, never in SQL.
"""

from __future__ import annotations

import base64
import gc
import math
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, tzinfo
from operator import itemgetter
from typing import Any

import orjson

from practice_events.errors import PracticeEventsError
from practice_events.scoring.periods import Period
from projections.base import LoggedEvent, Projection, Rebuilder
from projections.viewstore import Tx, ViewStore

CHUNK = 500
"""Keys per ``IN (...)`` query: well below every backend's parameter limit."""

KEY_SEPARATOR = " "
"""Joins the parts of composite row keys; identifiers never contain spaces."""


def key(*parts: object) -> str:
    """Return the one-column key of a composite identity (``"V-1 S-1"``)."""
    return KEY_SEPARATOR.join(map(str, parts))


_UTC_FORMAT = "%04d-%02d-%02dT%02d:%02d:%02d.%06d+00:00"
_UTC_TEXTS: dict[datetime, str] = {}
_UTC_TEXTS_MAX = 4096


def utc_text(moment: datetime) -> str:
    """Return ``moment`` as fixed-width UTC ISO-8601 text (microseconds: sorts as text).

    The same text as ``moment.astimezone(UTC).isoformat(timespec="microseconds")``
    at about a third of its cost, and remembered for the last few thousand
    moments: a rebuild formats each event's time once or more, for every event
    of the log. (Equal aware datetimes are the same instant, so one text
    serves them all, whatever their offsets.)
    """
    text = _UTC_TEXTS.get(moment)
    if text is None:
        u = moment.astimezone(UTC)
        text = _UTC_FORMAT % (u.year, u.month, u.day, u.hour, u.minute, u.second, u.microsecond)
        if len(_UTC_TEXTS) >= _UTC_TEXTS_MAX:
            _UTC_TEXTS.clear()
        _UTC_TEXTS[moment] = text
    return text


def parse_utc(text: str) -> datetime:
    """Parse a time stored by :func:`utc_text` (or any aware ISO-8601 text)."""
    return datetime.fromisoformat(text)


def local_day(moment: datetime, zone: tzinfo) -> str:
    """Return the local calendar date of ``moment`` in ``zone`` as ``YYYY-MM-DD``."""
    return moment.astimezone(zone).date().isoformat()


def hours_between(start: str, end: str) -> float:
    """Return the hours from one stored time to another (rounded to 1/1000 h)."""
    seconds = (parse_utc(end) - parse_utc(start)).total_seconds()
    return round(seconds / 3600, 3)


def dumps(value: Any) -> str:
    """Encode a value as compact JSON text for a TEXT column (keys sorted: stable rows)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def loads(text: str | None, default: Any = None) -> Any:
    """Decode JSON text from a TEXT column (``default`` for NULL)."""
    if text is None:
        return default
    return orjson.loads(text)


# --- batched loading and writing --------------------------------------------------------


def load_rows(
    tx: Tx, table: str, key_column: str, keys: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """Return the rows of ``table`` whose ``key_column`` is one of ``keys``, by key.

    One query per :data:`CHUNK` keys on SQLite (``IN (...)``), and one query
    with an array parameter on PostgreSQL (``= ANY(?)``, whose short text the
    driver converts once and caches). A batch of 2,000 events is a handful of
    queries, never one per event.
    """
    wanted = sorted(set(keys))
    found: dict[str, dict[str, Any]] = {}
    if not wanted:
        return found
    if tx.dialect == "postgres":
        rows = tx.query(f"SELECT * FROM {table} WHERE {key_column} = ANY(?::text[])", [wanted])
        return {str(row[key_column]): row for row in rows}
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        marks = ", ".join("?" for _ in chunk)
        for row in tx.query(f"SELECT * FROM {table} WHERE {key_column} IN ({marks})", chunk):
            found[str(row[key_column])] = row
    return found


_PG_TYPES: dict[str, dict[str, str]] = {}
"""Column types of view tables on PostgreSQL, by table name (read once per process).

Re-read when a column is missing; a type changed under the same name needs a
new projection ``VERSION``, which comes with a restart anyway."""

_PG_ARRAY = {"integer": "bigint[]", "bigint": "bigint[]", "double precision": "float8[]"}
_PG_PYTHON: dict[str, Any] = {"integer": int, "bigint": int, "double precision": float}
_SEPARATOR = "\x1f"
"""Joins a column's values into one text parameter (the ASCII unit separator)."""
_NULL = "\\N"
"""Stands for NULL in a joined column."""


def _column_param(kind: str, column: Sequence[Any]) -> tuple[str, list[Any]]:
    """Return ``(sql, parameters)`` passing one column of a batch as a typed array.

    The values are joined into one text that ``string_to_array`` splits on the
    server: the driver dumps one parameter per column instead of one per
    value, which was most of the cost of a batch in Python. Numbers always
    go that way; a text column holding the separator or the NULL marker (or
    a lone empty string, which would split into nothing) goes as a plain
    array parameter instead: slower, always right.
    """
    array = _PG_ARRAY.get(kind, "text[]")
    split = f"string_to_array(?, chr(31), ?)::{array}"
    convert = _PG_PYTHON.get(kind)
    if convert is not None:
        texts = [_NULL if v is None else str(convert(v)) for v in column]
        return split, [_SEPARATOR.join(texts), _NULL]
    plain = [None if v is None else str(v) for v in column]
    joined = _SEPARATOR.join([_NULL if t is None else t for t in plain])
    # Safe when no value holds the separator (exactly one between each two) and
    # none is the NULL marker: checked on the joined text, in C.
    if joined and joined.count(_SEPARATOR) == len(plain) - 1 and _NULL not in plain:
        return split, [joined, _NULL]
    return "?::text[]", [plain]


def _pg_types(tx: Tx, table: str, columns: Sequence[str]) -> dict[str, str]:
    """Return the PostgreSQL types of ``table``'s columns (cached; re-read if one is missing)."""
    types = _PG_TYPES.get(table)
    if types is None or any(c not in types for c in columns):
        rows = tx.query(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = ? AND table_schema = current_schema()",
            [table],
        )
        types = {str(r["column_name"]): str(r["data_type"]) for r in rows}
        _PG_TYPES[table] = types
    return types


def _values(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> list[tuple[Any, ...]]:
    """Return each row's values in the order of ``columns`` (None for a column it lacks).

    ``itemgetter`` picks a whole row in C; a row without some column (a
    caller's partial dict) takes the slow path.
    """
    if len(columns) == 1:
        return [(row.get(columns[0]),) for row in rows]
    pick = itemgetter(*columns)
    out: list[tuple[Any, ...]] = []
    append = out.append
    for row in rows:
        try:
            append(pick(row))
        except KeyError:
            append(tuple(row.get(c) for c in columns))
    return out


def _insert_many(
    tx: Tx, table: str, columns: Sequence[str], values: Sequence[Sequence[Any]], tail: str
) -> None:
    """Insert ``values`` (rows of ``columns``) with ``tail`` (an ``ON CONFLICT`` clause).

    SQLite: ``executemany`` (one prepared statement, rows bound in C).
    PostgreSQL: one statement per batch, ``INSERT ... SELECT * FROM
    unnest(...)`` with one typed array per column (see
    :func:`_column_param`): a short statement the driver converts once,
    instead of a server round trip per row (``executemany``) or a huge
    multi-row ``VALUES`` text that the driver parses in Python each time.
    """
    if not values:
        return
    head = f"INSERT INTO {table} ({', '.join(columns)}) "
    if tx.dialect != "postgres":
        marks = ", ".join("?" for _ in columns)
        tx.executemany(f"{head}VALUES ({marks}) {tail}", values)
        return
    types = _pg_types(tx, table, columns)
    parts: list[str] = []
    params: list[Any] = []
    for column, of_column in zip(columns, zip(*values, strict=True), strict=True):
        sql, values_of_column = _column_param(types[column], of_column)
        parts.append(sql)
        params.extend(values_of_column)
    tx.execute(f"{head}SELECT * FROM unnest({', '.join(parts)}) {tail}", params)


def insert_rows(
    tx: Tx, table: str, columns: Sequence[str], values: Sequence[Sequence[Any]]
) -> None:
    """Insert ``values`` (rows of ``columns``, in that order) with one batched statement."""
    _insert_many(tx, table, columns, values, "")


def upsert_rows(
    tx: Tx,
    table: str,
    columns: Sequence[str],
    conflict: Sequence[str],
    rows: Iterable[Mapping[str, Any]],
) -> None:
    """Insert or replace ``rows`` (each key at most once) with one batched upsert."""
    updates = [c for c in columns if c not in conflict]
    action = (
        "DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in updates)
        if updates
        else "DO NOTHING"
    )
    _insert_many(
        tx,
        table,
        columns,
        _values(rows, columns),
        f"ON CONFLICT ({', '.join(conflict)}) {action}",
    )


def insert_new(
    tx: Tx,
    table: str,
    columns: Sequence[str],
    conflict: Sequence[str],
    rows: Iterable[Mapping[str, Any]],
) -> None:
    """Insert ``rows``, ignoring those already there (append-only tables: timelines)."""
    _insert_many(
        tx,
        table,
        columns,
        _values(rows, columns),
        f"ON CONFLICT ({', '.join(conflict)}) DO NOTHING",
    )


# --- query helpers ------------------------------------------------------------------------


@contextmanager
def reading(source: ViewStore | Tx) -> Iterator[Tx]:
    """Use ``source`` for queries: a :class:`Tx` as it is, a store in a read snapshot.

    Query functions accept either, so the API can answer several queries
    from one consistent snapshot.
    """
    if isinstance(source, Tx):
        yield source
        return
    with source.read() as tx:
        yield tx


def bad_request(reason: str) -> PracticeEventsError:
    """Return the error for a malformed query argument (HTTP 400 in the API)."""
    return PracticeEventsError(reason, code="BAD_REQUEST")


def scope_clause(column: str, scope: Collection[str] | None) -> tuple[str, list[Any]]:
    """Return ``(sql, params)`` restricting ``column`` to the site ids of ``scope``.

    ``None`` means unrestricted (a district-wide caller); an empty scope
    matches nothing, so a caller with no units sees no rows rather than all.
    """
    if scope is None:
        return "1 = 1", []
    ids = sorted(set(scope))
    if not ids:
        return "1 = 0", []
    return f"{column} IN ({', '.join('?' for _ in ids)})", list(ids)


def in_scope(site_id: str | None, scope: Collection[str] | None) -> bool:
    """Tell whether a row of ``site_id`` is visible to a caller scoped to ``scope``."""
    return scope is None or (site_id is not None and site_id in scope)


def parse_period(period: str | Period) -> Period:
    """Return a :class:`Period` from its name, refusing a malformed one (BAD_REQUEST)."""
    if isinstance(period, Period):
        return period
    try:
        return Period.parse(period)
    except ValueError as exc:
        raise bad_request(str(exc)) from None


def period_bounds(period: Period) -> tuple[str, str]:
    """Return the half-open local-date bounds ``[first, end)`` of a period as text."""
    return period.first.isoformat(), period.end.isoformat()


def encode_cursor(values: Sequence[Any]) -> str:
    """Return an opaque keyset cursor for the last row of a page."""
    return base64.urlsafe_b64encode(orjson.dumps(list(values))).decode().rstrip("=")


def decode_cursor(cursor: str, width: int) -> list[Any]:
    """Decode a cursor from :func:`encode_cursor`; BAD_REQUEST if it is not one."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, orjson.JSONDecodeError):
        raise bad_request(f"not a cursor from this API: {cursor!r}") from None
    if not isinstance(values, list) or len(values) != width:
        raise bad_request(f"not a cursor from this API: {cursor!r}")
    return values


def check_limit(limit: int, maximum: int = 500) -> int:
    """Return ``limit`` if it is 1..``maximum``; BAD_REQUEST otherwise."""
    if not 1 <= limit <= maximum:
        raise bad_request(f"limit must be between 1 and {maximum}, got {limit}")
    return limit


def median(values: Sequence[float]) -> float | None:
    """Return the median (mean of the two middle values for an even count), or None."""
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def percentile(values: Sequence[float], share: float) -> float | None:
    """Return the nearest-rank percentile: the ``ceil(share × n)``-th smallest value.

    Nearest rank always returns an observed value (a p90 of ten cases is the
    ninth), which supervisors can find in the list; None for no values.
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def rate(
    numerator: float, denominator: float, min_sample: int = 1, digits: int = 4
) -> dict[str, Any]:
    """Return an indicator figure: the ratio, or ``insufficient_data`` below ``min_sample``.

    Below the minimum sample (or with nothing to divide by) the value is None
    and the status says why: never a fake 0 % or 100 %.
    """
    ok = denominator > 0 and denominator >= min_sample
    return {
        "status": "ok" if ok else "insufficient_data",
        "value": round(numerator / denominator, digits) if ok else None,
        "numerator": numerator,
        "denominator": denominator,
        "min_sample": min_sample,
    }


def day_text(day: date) -> str:
    """Return a date as ``YYYY-MM-DD`` text."""
    return day.isoformat()


DEFAULT_CACHE_ROWS = 100_000
"""Rows one :class:`RowCache` holds before it writes them all and starts afresh.

About 2 KB per row (a ledger session, 28 columns): ~200 MB for the largest
table at most, and the demo district's million events fit a whole rebuild
of the ledger's volunteers and most of its sessions."""


class RowCache:
    """Rows of one table kept in memory across the batches of a rebuild (write-back).

    A rebuild (and an audit replay) writes into tables nobody else writes,
    which it created empty. Everything in them went through this cache, so
    it knows without asking the database which rows exist: the rows it holds,
    and those it wrote and later let go (:attr:`stored`), the only ones it
    ever reads back. A batch's :class:`RowSet` then finds its rows here instead
    of loading them, and a row changed by many batches (a volunteer's totals,
    a session from check-in to points) is written once, not once per batch.

    Changed rows are written when the cache holds more than ``max_rows``
    (then it lets every row go and starts afresh: rows that are still in use
    come back with the next batch's preload) and by :meth:`flush`, which the
    rebuild calls before it reads the tables or swaps them in. ``group``
    names a column by which :meth:`flush_groups` writes a subset of the
    changed rows (the ledger's sessions of some volunteers, before it
    queries them).

    Not for live views: another runner may change a live table between two
    batches. After an error a cache is in an unknown state; the rebuild that
    owns it starts again from empty tables.
    """

    def __init__(
        self,
        table: str,
        key_column: str,
        columns: Sequence[str],
        *,
        group: str | None = None,
        max_rows: int = DEFAULT_CACHE_ROWS,
    ) -> None:
        self.table = table
        self.key_column = key_column
        self.columns = tuple(columns)
        self.group = group
        self.max_rows = max_rows
        self.rows: dict[str, dict[str, Any]] = {}
        self.dirty: set[str] = set()
        self.stored: set[str] = set()
        """Keys written to the table: only these can be there without being held here."""
        self.dirty_groups: dict[str, set[str]] = {}
        """Changed keys by their ``group`` value (when there is a group column)."""
        self.evicted = False
        """Whether rows were let go: only then can a row be in the table and not here."""

    def mark(self, row_key: str, row: Mapping[str, Any]) -> None:
        """Record that ``row`` (held here) has changed and must be written.

        The ``group`` column of a row must never change (a session's volunteer).
        """
        if row_key in self.dirty:
            return
        self.dirty.add(row_key)
        if self.group is not None:
            group = str(row[self.group])
            keys = self.dirty_groups.get(group)
            if keys is None:
                self.dirty_groups[group] = {row_key}
            else:
                keys.add(row_key)

    def settle(self, tx: Tx) -> None:
        """End of a batch: write everything and start afresh if the cache is over its size."""
        if len(self.rows) > self.max_rows:
            self.flush(tx)
            self.rows.clear()
            self.evicted = True

    def flush(self, tx: Tx) -> None:
        """Write every changed row (in key order); the rows stay held, unchanged."""
        self._write(tx, self.dirty)
        self.dirty.clear()
        self.dirty_groups.clear()

    def flush_groups(self, tx: Tx, values: Iterable[str]) -> None:
        """Write the changed rows whose ``group`` column is one of ``values``."""
        keys: set[str] = set()
        for value in values:
            keys |= self.dirty_groups.pop(value, set())
        if keys:
            self._write(tx, keys)
            self.dirty -= keys

    def _write(self, tx: Tx, keys: Collection[str]) -> None:
        if not keys:
            return
        upsert_rows(
            tx, self.table, self.columns, [self.key_column], [self.rows[k] for k in sorted(keys)]
        )
        self.stored.update(keys)


class CachingRebuilder(Rebuilder):
    """A rebuild whose batches keep the rows of some tables in :class:`RowCache` s.

    ``batch(tx, events, caches)`` applies one batch the way the projection's
    ``apply`` does, with its :class:`RowSet` s built on ``caches`` (by logical
    table name); after each batch every cache may write and let go of its rows
    (:meth:`RowCache.settle`), and :meth:`flush` writes what they hold.
    """

    def __init__(
        self,
        projection: Projection,
        tables: Mapping[str, str],
        caches: Mapping[str, RowCache],
        batch: Callable[[Tx, Sequence[LoggedEvent], Mapping[str, RowCache]], None],
    ) -> None:
        super().__init__(projection, tables)
        self.caches = caches
        self.batch = batch

    def apply(self, tx: Tx, events: Sequence[LoggedEvent]) -> None:
        """Apply a batch on the cached rows, with the cyclic garbage collector paused.

        A batch allocates a few objects per event and creates no reference
        cycles (reference counting frees it all), but its allocations set off
        collections that walk every object the process holds, the decoded
        pages and the caches included: about a tenth of a rebuild's CPU. The
        collector resumes after the batch (and after an error) and catches up
        then, once per batch.
        """
        with _collector_paused():
            self.batch(tx, events, self.caches)
            for cache in self.caches.values():
                cache.settle(tx)

    def flush(self, tx: Tx) -> None:
        """Write every changed row the caches hold (collector paused, as in :meth:`apply`)."""
        with _collector_paused():
            for cache in self.caches.values():
                cache.flush(tx)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (if on) for a stretch that creates no cycles.

    It resumes afterwards, also after an error, and then catches up at once.
    """
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


class RowSet:
    """The rows of one table that a batch touches: loaded once, changed in place, written once.

    ``preload`` fetches many keys with one query per chunk; ``get`` falls
    back to a single-key query only for a key nobody predicted (a safety net
    that keeps the projection correct; the preload keeps it fast). ``mutate``
    and ``create`` mark a row for writing; :meth:`write` upserts every marked
    row with one ``executemany``.

    With a :class:`RowCache` (a rebuild), rows come from the cache and stay
    there: a key the cache neither holds nor ever wrote has no row (no query),
    and :meth:`write` leaves the writing to the cache.
    """

    def __init__(
        self,
        tx: Tx,
        table: str,
        key_column: str,
        columns: Sequence[str],
        cache: RowCache | None = None,
    ) -> None:
        self.tx = tx
        self.table = table
        self.key_column = key_column
        self.columns = tuple(columns)
        self.blank: dict[str, Any] = dict.fromkeys(self.columns)
        """A row of NULLs, copied by :meth:`create` (cheaper than building one)."""
        self.cache = cache
        self.rows: dict[str, dict[str, Any]] = cache.rows if cache is not None else {}
        self.known: set[str] = set()
        self.dirty: set[str] = set()

    @property
    def needs_preload(self) -> bool:
        """Whether :meth:`preload` may have anything to load (with a cache: after evictions)."""
        return self.cache is None or self.cache.evicted

    def _missing(self, keys: Iterable[str]) -> set[str]:
        """The keys whose rows must be read from the table."""
        if self.cache is None:
            known = self.known
            return {k for k in keys if k not in known}
        rows, stored = self.rows, self.cache.stored
        return {k for k in keys if k in stored and k not in rows}

    def preload(self, keys: Iterable[str]) -> None:
        """Load every row of ``keys`` not loaded yet, with one query per chunk."""
        missing = self._missing(keys)
        if not missing:
            return
        self.rows.update(load_rows(self.tx, self.table, self.key_column, missing))
        if self.cache is None:
            self.known |= missing

    def get(self, row_key: str) -> dict[str, Any] | None:
        """Return the row (loading it if no preload predicted it), or None."""
        row = self.rows.get(row_key)
        if row is None:
            self.preload([row_key])
            row = self.rows.get(row_key)
        return row

    def mutate(self, row_key: str) -> dict[str, Any] | None:
        """Return the row for changing (it will be written), or None if there is none."""
        row = self.rows.get(row_key)
        if row is None:
            row = self.get(row_key)
            if row is None:
                return None
        cache = self.cache
        if cache is None:
            self.dirty.add(row_key)
        elif row_key not in cache.dirty:
            cache.mark(row_key, row)
        return row

    def create(self, row_key: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """Create (or replace) a row from ``values``; columns not given are NULL."""
        row = self.blank.copy()
        row.update(values)
        if len(row) != len(self.columns):  # names that are not columns: leave them out
            row = {c: values.get(c) for c in self.columns}
        row[self.key_column] = row_key
        self.rows[row_key] = row
        if self.cache is None:
            self.known.add(row_key)
            self.dirty.add(row_key)
        else:
            self.cache.mark(row_key, row)
        return row

    def rows_of(self, keys: Iterable[str]) -> list[dict[str, Any]]:
        """Return the rows (loaded or created) of ``keys`` that exist."""
        rows = self.rows
        return [rows[k] for k in keys if k in rows]

    def write(self) -> None:
        """Upsert every changed row, once, in key order (with a cache: the cache writes)."""
        if self.cache is not None:
            return
        upsert_rows(
            self.tx,
            self.table,
            self.columns,
            [self.key_column],
            [self.rows[k] for k in sorted(self.dirty)],
        )
        self.dirty.clear()

    def write_groups(self, values: Iterable[str]) -> None:
        """Make the table current for rows whose cache ``group`` is one of ``values``.

        Before a query that reads those rows from the table: without a cache,
        :meth:`write` has written them already.
        """
        if self.cache is not None:
            self.cache.flush_groups(self.tx, values)
