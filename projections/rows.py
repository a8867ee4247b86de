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
import math
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, tzinfo
from typing import Any

import orjson

from practice_events.errors import PracticeEventsError
from practice_events.scoring.periods import Period
from projections.viewstore import Tx, ViewStore

CHUNK = 500
"""Keys per ``IN (...)`` query: well below every backend's parameter limit."""

KEY_SEPARATOR = " "
"""Joins the parts of composite row keys; identifiers never contain spaces."""


def key(*parts: object) -> str:
    """Return the one-column key of a composite identity (``"V-1 S-1"``)."""
    return KEY_SEPARATOR.join(str(p) for p in parts)


def utc_text(moment: datetime) -> str:
    """Return ``moment`` as fixed-width UTC ISO-8601 text (microseconds: sorts as text)."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


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


def _column_param(kind: str, column: list[Any]) -> tuple[str, list[Any]]:
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
    safe = all(t is None or (t != _NULL and _SEPARATOR not in t) for t in plain)
    joined = _SEPARATOR.join(_NULL if t is None else t for t in plain)
    if safe and joined:
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


def _insert_many(
    tx: Tx, table: str, columns: Sequence[str], values: list[list[Any]], tail: str
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
    for index, column in enumerate(columns):
        sql, values_of_column = _column_param(types[column], [row[index] for row in values])
        parts.append(sql)
        params.extend(values_of_column)
    tx.execute(f"{head}SELECT * FROM unnest({', '.join(parts)}) {tail}", params)


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
        [[row.get(c) for c in columns] for row in rows],
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
        [[row.get(c) for c in columns] for row in rows],
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


class RowSet:
    """The rows of one table that a batch touches: loaded once, changed in place, written once.

    ``preload`` fetches many keys with one query per chunk; ``get`` falls
    back to a single-key query only for a key nobody predicted (a safety net
    that keeps the projection correct; the preload keeps it fast). ``mutate``
    and ``create`` mark a row for writing; :meth:`write` upserts every marked
    row with one ``executemany``.
    """

    def __init__(self, tx: Tx, table: str, key_column: str, columns: Sequence[str]) -> None:
        self.tx = tx
        self.table = table
        self.key_column = key_column
        self.columns = tuple(columns)
        self.rows: dict[str, dict[str, Any]] = {}
        self.known: set[str] = set()
        self.dirty: set[str] = set()

    def preload(self, keys: Iterable[str]) -> None:
        """Load every row of ``keys`` not loaded yet, with one query per chunk."""
        missing = {k for k in keys if k not in self.known}
        if not missing:
            return
        self.rows.update(load_rows(self.tx, self.table, self.key_column, missing))
        self.known |= missing

    def get(self, row_key: str) -> dict[str, Any] | None:
        """Return the row (loading it if no preload predicted it), or None."""
        if row_key not in self.known:
            self.preload([row_key])
        return self.rows.get(row_key)

    def mutate(self, row_key: str) -> dict[str, Any] | None:
        """Return the row for changing (it will be written), or None if there is none."""
        row = self.get(row_key)
        if row is not None:
            self.dirty.add(row_key)
        return row

    def create(self, row_key: str, values: Mapping[str, Any]) -> dict[str, Any]:
        """Create (or replace) a row from ``values``; columns not given are NULL."""
        row = {c: values.get(c) for c in self.columns}
        row[self.key_column] = row_key
        self.rows[row_key] = row
        self.known.add(row_key)
        self.dirty.add(row_key)
        return row

    def loaded(self) -> list[dict[str, Any]]:
        """Return every row loaded or created so far."""
        return list(self.rows.values())

    def write(self) -> None:
        """Upsert every changed row, once, in key order (deterministic statements)."""
        upsert_rows(
            self.tx,
            self.table,
            self.columns,
            [self.key_column],
            [self.rows[k] for k in sorted(self.dirty)],
        )
        self.dirty.clear()
