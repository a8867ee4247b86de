"""``utc_text``: the stored form of every time in the views.

Views compare and sort times as text, so the text must be exactly the
fixed-width UTC ISO-8601 form, whatever offset the moment arrived with, and
the memo of recent moments must never hand back another moment's text.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from projections import rows
from projections.rows import utc_text

offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
moments = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=offsets
)


@given(moments)
def test_it_is_the_utc_isoformat_with_microseconds(moment: datetime) -> None:
    assert utc_text(moment) == moment.astimezone(UTC).isoformat(timespec="microseconds")


def test_the_same_instant_in_other_offsets_gives_one_text() -> None:
    shanghai = datetime(2025, 12, 31, 23, 30, tzinfo=timezone(timedelta(hours=8)))
    assert utc_text(shanghai) == "2025-12-31T15:30:00.000000+00:00"
    assert utc_text(shanghai.astimezone(UTC)) == utc_text(shanghai)
    assert utc_text(shanghai + timedelta(microseconds=1)) == "2025-12-31T15:30:00.000001+00:00"


def test_the_memo_stays_bounded_and_right() -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for second in range(3 * rows._UTC_TEXTS_MAX):
        moment = start + timedelta(seconds=second)
        assert utc_text(moment) == moment.isoformat(timespec="microseconds")
    assert len(rows._UTC_TEXTS) <= rows._UTC_TEXTS_MAX
