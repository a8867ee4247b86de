"""The log is sealed by a hash chain, and tampering with the store is found.

Scenarios run on a real SQLite file and a real PostgreSQL database (the
``store_url`` fixture). The tampering is done with plain SQL behind the
application's back (:class:`tests.factories_audit.Tamper`): an edited row,
a deleted row, two rows swapped, a forged row, a rewritten seal, and a
rewrite of events *and* seals that only a signed checkpoint reveals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import pytest

from practice_events.audit import integrity
from practice_events.audit.integrity import (
    GENESIS,
    Sealer,
    Signer,
    check_signature,
    link,
    log_store,
    make_checkpoint,
    row_hash,
    verify,
    verify_checkpoint,
    verify_walk,
)
from practice_events.errors import ConfigurationError
from tests.factories_audit import Store, Tamper, demo_events

pytestmark = pytest.mark.postgres

HISTORY = 300
"""Events of the demo history used here (a few hundred log positions with derived ones)."""


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A store holding the start of the demo history, fully sealed."""
    s = Store(store_url)
    s.ingest(demo_events()[:HISTORY])
    Sealer(s.app).seal()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def tamper(store_url: str) -> Tamper:
    """Direct SQL on the same store."""
    return Tamper(store_url)


class TestSealing:
    def test_every_position_is_sealed_with_a_chain_over_the_stored_bytes(
        self, store: Store
    ) -> None:
        db = log_store(store.app)
        rows = db.read_log(0, 10_000)
        seals = db.read_seals(0, 10_000)
        assert [s[0] for s in seals] == [r[0] for r in rows]
        chain = GENESIS
        for (position, originator, version, topic, state), seal in zip(rows, seals, strict=True):
            content = row_hash(originator, version, topic, state)
            chain = link(chain, position, content)
            assert seal == (position, content, chain)

    def test_sealing_again_only_seals_new_events(self, store: Store) -> None:
        head = store.app.last_position()
        assert Sealer(store.app).seal().sealed == 0
        store.ingest(demo_events()[HISTORY : HISTORY + 50])
        result = Sealer(store.app).seal()
        assert result.sealed == store.app.last_position() - head
        assert result.position == store.app.last_position()
        assert verify(store.app).ok

    def test_follower_seals_what_arrives_until_told_to_stop(self, store: Store) -> None:
        sealed_before = store.app.last_position()
        store.ingest(demo_events()[HISTORY : HISTORY + 20])
        sealer = Sealer(store.app, batch_size=7)
        target = store.app.last_position()

        def should_stop() -> bool:
            head = sealer.store.seal_head()
            return head is not None and head[0] >= target

        sealed = sealer.follow(should_stop, interval=0, wait=lambda _: None)
        assert sealed == target - sealed_before > 0
        report = verify(store.app)
        assert report.ok
        assert report.unsealed == 0

    def test_a_second_sealer_on_the_same_head_loses_and_the_chain_does_not_fork(
        self, store: Store
    ) -> None:
        store.ingest(demo_events()[HISTORY : HISTORY + 30])
        first, second = Sealer(store.app), Sealer(store.app)
        head = first.store.seal_head()
        assert head is not None
        # Both read the same head; the first writes, the second collides on the key.
        assert first.seal_once() > 0
        second.store.seal_head = lambda: head  # type: ignore[method-assign]  # a stale read
        assert second.seal_once() == 0
        assert verify(store.app).ok


class TestVerify:
    def test_an_untouched_log_verifies_and_reports_the_chain_head(self, store: Store) -> None:
        report = verify(store.app)
        assert report.ok
        assert report.first_break is None
        assert report.events_checked == store.app.last_position()
        assert report.chain_hash == log_store(store.app).seal_head()[1].hex()  # type: ignore[index]

    def test_events_not_yet_sealed_are_counted_not_reported_as_a_break(self, store: Store) -> None:
        store.ingest(demo_events()[HISTORY : HISTORY + 10])
        report = verify(store.app)
        assert report.ok
        assert report.unsealed == store.app.last_position() - report.sealed_head > 0

    def test_an_updated_row_is_reported_as_modified_at_its_position(
        self, store: Store, tamper: Tamper
    ) -> None:
        tamper.edit_data(120, reason="edited quietly")
        report = verify(store.app)
        assert not report.ok
        assert report.first_break is not None
        assert (report.first_break.position, report.first_break.kind) == (120, "modified")

    def test_a_deleted_row_is_reported_as_deleted(self, store: Store, tamper: Tamper) -> None:
        tamper.delete(77)
        report = verify(store.app)
        assert report.first_break is not None
        assert (report.first_break.position, report.first_break.kind) == (77, "deleted")

    def test_deleting_the_last_rows_is_found_too(self, store: Store, tamper: Tamper) -> None:
        head = store.app.last_position()
        tamper.delete(head)
        report = verify(store.app)
        assert report.first_break is not None
        assert (report.first_break.position, report.first_break.kind) == (head, "deleted")

    def test_two_rows_swapped_in_position_are_reported_as_reordered(
        self, store: Store, tamper: Tamper
    ) -> None:
        tamper.swap_positions(40, 90)
        report = verify(store.app)
        assert report.first_break is not None
        assert report.first_break.kind == "reordered"
        assert report.first_break.position == 40
        assert report.first_break.moved_from == 90

    def test_two_rows_with_swapped_contents_are_reported_as_modified(
        self, store: Store, tamper: Tamper
    ) -> None:
        tamper.swap_states(55, 56)
        report = verify(store.app)
        assert report.first_break is not None
        assert (report.first_break.position, report.first_break.kind) == (55, "modified")

    def test_a_forged_row_before_the_first_event_is_reported_as_inserted(
        self, store: Store, tamper: Tamper
    ) -> None:
        tamper.forge(0, like=10)
        report = verify(store.app)
        assert report.first_break is not None
        assert (report.first_break.position, report.first_break.kind) == (0, "inserted")

    def test_an_edited_seal_is_reported_as_a_broken_seal_chain(
        self, store: Store, tamper: Tamper
    ) -> None:
        tamper.corrupt_seal(150)
        report = verify(store.app)
        assert report.first_break is not None
        assert (report.first_break.position, report.first_break.kind) == (150, "seal_modified")

    def test_progress_is_reported_for_every_event_checked(self, store: Store) -> None:
        counted: list[int] = []
        report = verify(store.app, page=64, progress=counted.append)
        assert sum(counted) == report.events_checked


RANGE = 37
"""Positions per range in the parallel tests: the small log splits into several ranges."""


def parallel(store: Store, **options: Any) -> dict[str, Any]:
    """Verify in small ranges, two at once (worker processes on SQLite, threads on PostgreSQL)."""
    with mock.patch.object(integrity, "_walk", side_effect=AssertionError("in-process walk")):
        report = verify(store.app, workers=2, range_size=RANGE, parallel_from=0, **options)
    return _comparable(report.as_dict())


def sequential(store: Store) -> dict[str, Any]:
    """The in-process walk, one position after another: the reference."""
    return _comparable(verify_walk(store.app).as_dict())


def _comparable(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k not in {"seconds", "events_per_second"}}


TAMPERING: dict[str, tuple[Callable[[Tamper], object], int, str]] = {
    "edited row": (lambda t: t.edit_data(120, reason="edited quietly"), 120, "modified"),
    "deleted row": (lambda t: t.delete(77), 77, "deleted"),
    "rows swapped": (lambda t: t.swap_positions(40, 90), 40, "reordered"),
    "contents swapped": (lambda t: t.swap_states(55, 56), 55, "modified"),
    "forged row before the first": (lambda t: t.forge(0, like=10), 0, "inserted"),
    "edited seal": (lambda t: t.corrupt_seal(150), 150, "seal_modified"),
    # The last seal of range (37, 74]: the next range starts from its stored chain.
    "seal chain at a range end": (
        lambda t: t.corrupt_seal_chain(2 * RANGE),
        2 * RANGE,
        "seal_modified",
    ),
    "seal chain at a range start": (
        lambda t: t.corrupt_seal_chain(2 * RANGE + 1),
        2 * RANGE + 1,
        "seal_modified",
    ),
    "break in a later range only": (
        lambda t: t.edit_data(6 * RANGE + 5, reason="late"),
        6 * RANGE + 5,
        "modified",
    ),
    "two breaks, the earlier wins": (
        lambda t: (t.edit_data(6 * RANGE + 5, reason="late"), t.delete(RANGE + 3)),
        RANGE + 3,
        "deleted",
    ),
    "two breaks in one range": (
        lambda t: (t.corrupt_seal(3 * RANGE + 20), t.delete(3 * RANGE + 9)),
        3 * RANGE + 9,
        "deleted",
    ),
    "earlier seal break, later row break": (
        lambda t: (t.edit_data(5 * RANGE, reason="x"), t.corrupt_seal_chain(RANGE)),
        RANGE,
        "seal_modified",
    ),
}
"""Tampering, and the first break the walk reports: (position, kind)."""


class TestParallelVerify:
    """Ranges checked at once report exactly what the sequential walk reports."""

    def test_an_untouched_log_gives_the_same_report_and_progress(self, store: Store) -> None:
        assert store.app.last_position() > 6 * RANGE  # several ranges
        counted: list[int] = []
        report = parallel(store, progress=counted.append)
        assert report == sequential(store)
        assert report["ok"]
        assert sum(counted) == report["events_checked"] == store.app.last_position()

    def test_the_unsealed_tail_is_chained_after_the_ranges(self, store: Store) -> None:
        store.ingest(demo_events()[HISTORY : HISTORY + 30])
        report = parallel(store)
        assert report["unsealed"] > 0
        assert report == sequential(store)
        Sealer(store.app).seal()
        assert parallel(store)["chain_hash"] == report["chain_hash"]

    def test_deleting_the_last_rows_is_found_beyond_the_log_head(
        self, store: Store, tamper: Tamper
    ) -> None:
        head = store.app.last_position()
        tamper.delete(head)
        tamper.delete(head - 1)
        report = parallel(store)
        assert report == sequential(store)
        assert report["first_break"]["position"] == head - 1

    @pytest.mark.parametrize("how", list(TAMPERING))
    def test_the_first_break_and_the_counts_are_the_walks(
        self, store: Store, tamper: Tamper, how: str
    ) -> None:
        change, position, kind = TAMPERING[how]
        change(tamper)
        expected = sequential(store)
        assert (expected["first_break"]["position"], expected["first_break"]["kind"]) == (
            position,
            kind,
        )
        assert expected["events_checked"] == max(position - 1, 0)  # the rows before it
        assert parallel(store) == expected
        in_process = verify(store.app, workers=1, range_size=RANGE).as_dict()
        assert _comparable(in_process) == expected


@pytest.fixture(params=["ed25519", "hmac"])
def signer(request: pytest.FixtureRequest) -> Signer:
    """A fresh signing key of each kind."""
    text = Signer.generate_ed25519() if request.param == "ed25519" else Signer.generate_hmac()
    return Signer.from_text(text)


class TestCheckpoints:
    NOW = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)

    def test_a_checkpoint_signs_the_chain_head_and_verifies_against_the_log(
        self, store: Store, signer: Signer
    ) -> None:
        doc = make_checkpoint(store.app, signer, now=self.NOW, label="2025-Q4")
        assert doc["position"] == store.app.last_position()
        assert doc["algorithm"] == signer.algorithm
        assert doc["created_at"] == self.NOW.isoformat()
        assert check_signature(doc, secret=signer) is None
        result = verify_checkpoint(store.app, doc, secret=signer)
        assert result["ok"], result

    def test_a_checkpoint_still_holds_after_the_log_grows(
        self, store: Store, signer: Signer
    ) -> None:
        doc = make_checkpoint(store.app, signer, now=self.NOW)
        store.ingest(demo_events()[HISTORY : HISTORY + 40])
        Sealer(store.app).seal()
        assert verify_checkpoint(store.app, doc, secret=signer)["ok"]

    def test_an_altered_document_fails_its_signature(self, store: Store, signer: Signer) -> None:
        doc = make_checkpoint(store.app, signer, now=self.NOW)
        forged = {**doc, "chain_hash": "00" * 32}
        result = verify_checkpoint(store.app, forged, secret=signer)
        assert not result["ok"]
        assert not result["signature_ok"]

    def test_an_ed25519_checkpoint_is_checked_without_the_private_key(self, store: Store) -> None:
        signer = Signer.from_text(Signer.generate_ed25519())
        doc = make_checkpoint(store.app, signer, now=self.NOW)
        assert verify_checkpoint(store.app, doc)["ok"]
        other = Signer.from_text(Signer.generate_ed25519())
        assert not verify_checkpoint(store.app, doc, secret=other)["ok"]

    def test_an_hmac_checkpoint_needs_the_shared_secret(self, store: Store) -> None:
        signer = Signer.from_text(Signer.generate_hmac())
        doc = make_checkpoint(store.app, signer, now=self.NOW)
        assert "secret" in str(verify_checkpoint(store.app, doc)["reason"])

    def test_a_rewrite_of_events_and_seals_passes_verify_but_not_the_checkpoint(
        self, store: Store, tamper: Tamper, signer: Signer
    ) -> None:
        doc = make_checkpoint(store.app, signer, now=self.NOW)
        # The attacker edits an event, throws away the seals from there and re-seals.
        tamper.edit_data(100, reason="rewritten history")
        tamper.delete_seals_from(100)
        Sealer(store.app).seal()
        assert verify(store.app).ok  # the seals alone cannot tell
        result = verify_checkpoint(store.app, doc, secret=signer)
        assert not result["ok"]
        assert "rewritten" in result["reason"]

    def test_a_checkpoint_beyond_a_truncated_log_fails(
        self, store: Store, tamper: Tamper, signer: Signer
    ) -> None:
        doc = make_checkpoint(store.app, signer, now=self.NOW)
        tamper.delete(doc["position"])
        result = verify_checkpoint(store.app, doc, secret=signer)
        assert not result["ok"]
        assert "no event at the checkpoint's position" in result["reason"]


class TestKeys:
    def test_a_key_file_that_is_neither_pem_nor_hmac_is_refused(self) -> None:
        with pytest.raises(ConfigurationError, match="not an Ed25519 private key"):
            Signer.from_text("hello")

    def test_a_short_hmac_secret_is_refused(self) -> None:
        with pytest.raises(ConfigurationError, match="at least 16 bytes"):
            Signer.from_text("hmac-sha256:c2hvcnQ=")

    def test_key_ids_name_the_key(self) -> None:
        a = Signer.from_text(Signer.generate_ed25519())
        b = Signer.from_text(Signer.generate_ed25519())
        assert a.key_id != b.key_id
        assert len(a.key_id) == 16
