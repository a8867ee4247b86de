"""Personal data at rest and erased: real SQLite and PostgreSQL stores, read behind the app.

One scenario per backend (built once, it is the expensive part; the tests
then check one thing each). A store with encryption at rest and compression
receives the demo district's history (2,700 events), the personal details of
its two busiest volunteers and three inputs it refuses (details of an unknown
volunteer, details with a bad ID number, a finding with a free-text
description at an unknown site). The projections run, the log is sealed and
everything an auditor or a supervisor can see is captured. Then volunteer A's
details are erased (``privacy erase``), a producer redelivers them, the
projections and the sealer catch up, and everything is captured again.

Raw tables are read with plain ``sqlite3`` and ``psycopg`` (every table,
every column), not through the application, and searched for the clear
text of every free-text value the demo sent and every personal detail.
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import uuid
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import orjson
import psycopg
import pytest
from eventsourcing.cipher import AESCipher

from practice_events.audit.certificate import volunteer_certificate
from practice_events.audit.export import export_events, import_events
from practice_events.audit.history import aggregate_history
from practice_events.audit.integrity import Sealer, chain_at, log_store, verify
from practice_events.audit.replay import plan_replay, replay, scorecards_as_of, scratch_views
from practice_events.contracts.volunteer import resident_id_check
from practice_events.ingest.pipeline import RawInput
from practice_events.privacy import ERASED, PERSONAL_DETAILS_RECORDED, REDACTED
from practice_events.privacy.erase import erase_personal_data
from practice_events.privacy.keys import key_store
from practice_events.privacy.reveal import Revealer
from projections import ledger
from projections.registry import all_projections
from projections.rejections import list_rejections
from projections.runner import BatchedRunner
from projections.viewstore import ViewStore, default_view_url
from tests.conftest import create_database, drop_database
from tests.factories_audit import Store, demo_events
from tests.factories_read_api import PRODUCER_SOURCE, STATION, ReadApiEnv, read_api_env
from tests.harness import CST, cloud_event

__all__ = ["read_api_env"]

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CIPHER_KEY = base64.b64encode(b"practice-events test cipher key!").decode()
AT = datetime(2025, 12, 31, 23, 50, tzinfo=CST)
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=CST)
"""When scorecards are evaluated (fixed, so before and after compare)."""

SOURCE = "urn:test:registry"
FREE_TEXT = "此条被拒记录的描述应当加密保存"
"""The description of a refused finding: must be in no raw table, but readable as refused."""


def with_check(first17: str) -> str:
    """A resident ID number with its correct check character."""
    return first17 + resident_id_check(first17)


PERSON_A = {
    "name": "司马相如",
    "phone": "13700001111",
    "id_number": with_check("43081119850612003"),
}
PERSON_B = {"name": "卓文君", "phone": "13700002222", "id_number": with_check("43081119880907004")}
PERSON_C = {"name": "班昭", "phone": "13700003333", "id_number": with_check("43081119700101005")}


def values_of(person: dict[str, str]) -> list[str]:
    return list(person.values())


def free_texts(events: Iterable[dict[str, Any]], limit: int = 400) -> list[str]:
    """Distinct Chinese free-text values (names, descriptions ...) the demo producers sent."""
    found: dict[str, None] = {}

    def walk(value: Any) -> None:
        if isinstance(value, str) and len(value) >= 6 and re.search(r"[\u4e00-\u9fff]", value):
            found.setdefault(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for event in events:
        walk(event["data"])
    return list(found)[:limit]


# --- raw tables ---------------------------------------------------------------------------------


def _as_bytes(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes | memoryview):
        return bytes(value)
    return str(value).encode()


def raw_sqlite(path: Path) -> dict[str, bytes]:
    """Every table of a SQLite file, each as the bytes of all its values."""
    conn = sqlite3.connect(path)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            name: b"\x1f".join(
                _as_bytes(v) for row in conn.execute(f'SELECT * FROM "{name}"') for v in row
            )
            for name in names
        }
    finally:
        conn.close()


def raw_postgres(url: str, schema: str) -> dict[str, bytes]:
    """Every table of a PostgreSQL schema, each as the bytes of all its values."""
    parsed = urlparse(url)
    with psycopg.connect(
        host=parsed.hostname, port=parsed.port, user=parsed.username, dbname=parsed.path[1:]
    ) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            )
        ]
        out = {}
        for name in names:
            rows = conn.execute(f'SELECT * FROM "{schema}"."{name}"').fetchall()  # type: ignore[arg-type]
            out[name] = b"\x1f".join(_as_bytes(v) for row in rows for v in row)
        return out


def found_in(tables: dict[str, bytes], probes: Iterable[str]) -> list[tuple[str, str]]:
    """(table, probe) for every probe found in clear (UTF-8 or JSON-escaped) in a table."""
    hits = []
    for probe in probes:
        forms = {probe.encode(), json.dumps(probe)[1:-1].encode()}
        hits += [(table, probe) for table, blob in tables.items() if any(f in blob for f in forms)]
    return hits


# --- the scenario -------------------------------------------------------------------------------


@dataclass
class Seen:
    """What could be seen of the store at one moment."""

    store_tables: dict[str, bytes]
    view_tables: dict[str, bytes]
    history_a: list[dict[str, Any]]
    export: bytes
    export_summary: dict[str, Any]
    certificate_a: dict[str, Any]
    ledger_a: dict[str, Any]
    scorecard: list[dict[str, Any]]
    file_bytes: bytes = b""
    key_rows_a: list[Any] = field(default_factory=list)


@dataclass
class Scenario:
    url: str
    backend: str
    workdir: Path
    store: Store
    views: ViewStore
    volunteer_a: str = ""
    volunteer_b: str = ""
    details_a: dict[str, Any] = field(default_factory=dict)
    refused: list[dict[str, Any]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    sealed_at: int = 0
    chain_before: str = ""
    before: Seen | None = None
    after: Seen | None = None
    erasure: dict[str, Any] = field(default_factory=dict)
    redelivered: str = ""
    replay_bytes: bytes = b""
    verify_after: dict[str, Any] = field(default_factory=dict)
    chain_recomputed: str = ""
    seal_after: str = ""
    shown_after: Any = None

    def send(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        inputs = [
            RawInput(orjson.dumps(e), channel="test", position=f"p:{e['id']}") for e in events
        ]
        return [o.as_dict() for o in self.store.pipeline.process(inputs).outcomes]

    def catch_up(self) -> None:
        BatchedRunner(self.store.app, self.views, all_projections(self.store.settings)).catch_up()

    def raw(self) -> tuple[dict[str, bytes], dict[str, bytes]]:
        if self.backend == "sqlite":
            path = Path(urlparse(self.url).path[1:])
            return raw_sqlite(path), raw_sqlite(Path(urlparse(self.views.url).path[1:]))
        return raw_postgres(self.url, "public"), raw_postgres(self.url, "practice_views")

    def look(self, tag: str) -> Seen:
        app = self.store.app
        store_tables, view_tables = self.raw()
        out = self.workdir / f"export-{tag}.jsonl"
        summary = export_events(app, out)
        return Seen(
            store_tables=store_tables,
            view_tables=view_tables,
            history_a=aggregate_history(app, "volunteer", self.volunteer_a),
            export=out.read_bytes(),
            export_summary=summary.as_dict(),
            certificate_a=volunteer_certificate(app, self.volunteer_a, position=self.sealed_at),
            ledger_a=ledger.volunteer_ledger(self.views, self.volunteer_a) or {},
            scorecard=scorecards_as_of(self.views, self.store.settings, ["WLY"], "2025-11", NOW),
            file_bytes=self.file_bytes(),
            key_rows_a=key_store(app).keys_of(self.volunteer_a),
        )

    def file_bytes(self) -> bytes:
        """Every byte of the SQLite store file and its WAL (empty on PostgreSQL)."""
        if self.backend != "sqlite":
            return b""
        path = Path(urlparse(self.url).path[1:])
        wal = path.with_name(path.name + "-wal")
        return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def busiest_volunteers(events: Iterable[dict[str, Any]]) -> list[str]:
    approved = Counter(
        e["subject"] for e in events if e["type"] == "practice.attendance.hours_approved.v1"
    )
    return [subject for subject, _ in approved.most_common(2)]


def build(url: str, backend: str, workdir: Path) -> Scenario:
    store = Store(url, cipher_key=CIPHER_KEY, compress=True)
    sc = Scenario(url, backend, workdir, store, ViewStore(default_view_url(url)))
    history = demo_events()
    sc.texts = free_texts(history)
    sc.volunteer_a, sc.volunteer_b = busiest_volunteers(history)
    store.ingest(history)
    details_a = cloud_event(
        PERSONAL_DETAILS_RECORDED,
        sc.volunteer_a,
        {**PERSON_A, "consent_ref": "C-A"},
        time=AT,
        source=SOURCE,
    )
    details_b = cloud_event(
        PERSONAL_DETAILS_RECORDED, sc.volunteer_b, PERSON_B, time=AT, source=SOURCE
    )
    sc.details_a = details_a
    assert [o["status"] for o in sc.send([details_a, details_b])] == ["accepted"] * 2
    bad_id = {**PERSON_C, "id_number": PERSON_C["id_number"][:-1] + "Y"}
    sc.refused = sc.send(
        [
            cloud_event(PERSONAL_DETAILS_RECORDED, "V-NOBODY", PERSON_C, time=AT, source=SOURCE),
            cloud_event(PERSONAL_DETAILS_RECORDED, sc.volunteer_a, bad_id, time=AT, source=SOURCE),
            cloud_event(
                "practice.finding.recorded.v1", "F-REFUSED-1",
                {"source": "supervision", "site_id": "NOWHERE", "severity": "low",
                 "category": "signage_missing", "description": FREE_TEXT,
                 "responsible_unit_id": "NOWHERE"},
                time=AT, source=SOURCE,
            ),
        ]
    )  # fmt: skip
    sc.catch_up()
    sealed = Sealer(store.app).seal()
    sc.sealed_at, sc.chain_before = sealed.position, sealed.chain_hash
    sc.before = sc.look("before")

    sc.erasure = erase_personal_data(
        store.pipeline, sc.volunteer_a, now=NOW, request_ref="PIPL-TEST-1", actor="DPO-01"
    ).as_dict()
    sc.redelivered = sc.send([details_a])[0]["status"]
    sc.catch_up()
    sc.seal_after = Sealer(store.app).seal().chain_hash
    sc.verify_after = verify(store.app).as_dict()
    logs = log_store(store.app)
    sc.chain_recomputed = chain_at(logs, sc.sealed_at)[0].hex()
    scratch = scratch_views(workdir / "replay")
    replay(store.app, store.settings, plan_replay(store.app, position=sc.sealed_at), scratch)
    scratch.close()
    sc.replay_bytes = b"".join(
        p.read_bytes() for p in (workdir / "replay").rglob("*") if p.is_file()
    )
    sc.after = sc.look("after")
    sc.shown_after = Revealer(store.app).current(sc.volunteer_a)
    return sc


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def scenario(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scenario]:
    workdir = tmp_path_factory.mktemp(f"privacy-{request.param}")
    if request.param == "sqlite":
        url, name = f"sqlite:///{workdir / 'store.db'}", None
    else:
        name = f"pe_test_{uuid.uuid4().hex[:12]}"
        url = create_database(name)
    sc = build(url, request.param, workdir)
    try:
        yield sc
    finally:
        sc.views.close()
        sc.store.close()
        if name is not None:
            drop_database(name)


def without(doc: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in keys}


def before(sc: Scenario) -> Seen:
    assert sc.before is not None
    return sc.before


def after(sc: Scenario) -> Seen:
    assert sc.after is not None
    return sc.after


# --- encryption at rest -------------------------------------------------------------------------


class TestEncryptionAtRest:
    def test_no_table_of_the_event_store_holds_clear_text(self, scenario: Scenario) -> None:
        seen = before(scenario)
        assert len(scenario.texts) > 100
        probes = [*scenario.texts, FREE_TEXT, *values_of(PERSON_A), *values_of(PERSON_B)]
        probes += values_of(PERSON_C)
        assert found_in(seen.store_tables, probes) == []
        assert {"rejections", "ingested_keys", "person_keys"} <= {
            t.removeprefix("practiceevents_") for t in seen.store_tables
        }

    def test_event_state_is_compressed_then_encrypted(self, scenario: Scenario) -> None:
        rows = log_store(scenario.store.app).read_log(0, 1)
        cipher = AESCipher({"CIPHER_KEY": CIPHER_KEY})  # type: ignore[arg-type]
        state = orjson.loads(zlib.decompress(cipher.decrypt(rows[0][4])))
        assert state["meta"]["type"] == rows[0][3]

    def test_the_views_read_the_encrypted_log_but_hold_no_personal_details(
        self, scenario: Scenario
    ) -> None:
        seen = before(scenario)
        # The projections decrypted the log: the views hold the business text (a view is
        # for querying; it is not encrypted), which also shows the search finds clear text.
        assert len(found_in(seen.view_tables, scenario.texts)) > 50
        details = [*values_of(PERSON_A), *values_of(PERSON_B), *values_of(PERSON_C)]
        assert found_in(seen.view_tables, details) == []

    def test_refused_inputs_read_back_whole_but_without_personal_details(
        self, scenario: Scenario
    ) -> None:
        assert [(o["status"], o["code"]) for o in scenario.refused] == [
            ("rejected", "UNKNOWN_AGGREGATE"),
            ("rejected", "SCHEMA_VIOLATION"),
            ("rejected", "UNKNOWN_REFERENCE"),
        ]
        items = {i["event_id"]: i for i in list_rejections(scenario.store.app)["items"]}
        unknown, bad_id, finding = (items[o["id"]] for o in scenario.refused)
        assert finding["payload"]["data"]["description"] == FREE_TEXT
        for item in (unknown, bad_id):
            assert set(item["payload"]["data"].values()) == {REDACTED}
            assert item["payload"]["subject"] == item["subject"]

    def test_history_export_and_certificate_show_the_details_to_auditors(
        self, scenario: Scenario
    ) -> None:
        seen = before(scenario)
        recorded = [h for h in seen.history_a if h["type"] == PERSONAL_DETAILS_RECORDED]
        assert len(recorded) == 1
        assert {k: recorded[0]["data"][k] for k in PERSON_A} == PERSON_A
        assert recorded[0]["data"]["consent_ref"] == "C-A"
        exported = [orjson.loads(line) for line in seen.export.splitlines()]
        mine = [e for e in exported if e["type"] == PERSONAL_DETAILS_RECORDED]
        assert [e["data"] for e in mine] == [
            {**PERSON_A, "consent_ref": "C-A"},
            PERSON_B,
        ]
        assert seen.export_summary["unverified"] == 0
        holder = seen.certificate_a["holder"]
        assert holder["name"] == PERSON_A["name"]
        assert (
            holder["id_number"] == PERSON_A["id_number"][:6] + "*" * 8 + PERSON_A["id_number"][-4:]
        )


# --- erasure ------------------------------------------------------------------------------------


class TestErasure:
    def test_is_recorded_without_personal_data(self, scenario: Scenario) -> None:
        assert scenario.erasure["status"] == "erased"
        history = after(scenario).history_a
        erased = [h for h in history if h["type"] == "practice.volunteer.personal_data_erased.v1"]
        assert len(erased) == 1
        assert erased[0]["data"] == {
            "key_ids": scenario.erasure["key_ids"],
            "reason": "data_subject_request",
            "request_ref": "PIPL-TEST-1",
        }
        assert erased[0]["actor"] == "DPO-01"
        assert erased[0]["position"] == scenario.erasure["position"]

    def test_no_table_view_export_or_replay_shows_the_details_afterwards(
        self, scenario: Scenario
    ) -> None:
        seen = after(scenario)
        details = values_of(PERSON_A)
        assert found_in(seen.store_tables, details) == []
        assert found_in(seen.view_tables, details) == []
        assert found_in({"export": seen.export}, details) == []
        assert found_in({"replay": scenario.replay_bytes}, details) == []
        assert seen.export_summary["erased"] == 1
        # B's details are untouched, and were in the export before: the search works.
        assert found_in({"export": seen.export}, values_of(PERSON_B)) != []
        assert found_in({"export": before(scenario).export}, details) != []

    def test_history_and_certificate_say_erased(self, scenario: Scenario) -> None:
        seen = after(scenario)
        recorded = [h for h in seen.history_a if h["type"] == PERSONAL_DETAILS_RECORDED]
        assert {k: recorded[0]["data"][k] for k in PERSON_A} == dict.fromkeys(PERSON_A, ERASED)
        holder = seen.certificate_a["holder"]
        assert holder == {"details": "erased", "name": ERASED, "id_number": ERASED}
        shown = scenario.shown_after  # what the API's personal-details answer is made of
        assert (shown.status, shown.name, shown.phone, shown.id_number) == (
            "erased",
            ERASED,
            ERASED,
            ERASED,
        )
        assert shown.erased_at is not None

    def test_hours_scorecards_and_the_integrity_chain_are_unchanged(
        self, scenario: Scenario
    ) -> None:
        was, now = before(scenario), after(scenario)
        assert now.ledger_a == was.ledger_a
        assert now.ledger_a["volunteer"]["approved_hours"] > 0
        # The same figures; only the log positions the views had reached moved on.
        assert [without(c, "positions") for c in now.scorecard] == [
            without(c, "positions") for c in was.scorecard
        ]
        assert now.scorecard[0]["composite"]["value"] > 0
        assert now.certificate_a["record_sha256"] == was.certificate_a["record_sha256"]
        assert without(now.certificate_a, "holder", "content_sha256") == without(
            was.certificate_a, "holder", "content_sha256"
        )
        assert scenario.chain_recomputed == scenario.chain_before
        assert scenario.verify_after["ok"] is True
        assert scenario.verify_after["sealed_head"] == scenario.erasure["position"]

    def test_the_destroyed_key_is_gone_from_the_store(self, scenario: Scenario) -> None:
        was, now = before(scenario), after(scenario)
        assert [k.wrapped is not None for k in was.key_rows_a] == [True]
        assert [(k.key_id, k.wrapped, k.erased_at is not None) for k in now.key_rows_a] == [
            (was.key_rows_a[0].key_id, None, True)
        ]
        if scenario.backend == "sqlite":
            wrapped = was.key_rows_a[0].wrapped
            assert wrapped is not None
            assert wrapped in was.file_bytes  # the search finds it while it lives
            assert wrapped not in now.file_bytes

    def test_a_redelivery_after_erasure_stores_nothing_again(self, scenario: Scenario) -> None:
        assert scenario.redelivered == "duplicate"
        assert found_in(after(scenario).store_tables, values_of(PERSON_A)) == []

    def test_an_import_of_the_export_brings_the_erasure_along(
        self, scenario: Scenario, tmp_path: Path
    ) -> None:
        if scenario.backend != "sqlite":
            pytest.skip("the import goes through the one pipeline: once is enough")
        copy = Store(f"sqlite:///{tmp_path / 'copy.db'}", cipher_key=CIPHER_KEY, compress=True)
        try:
            summary = import_events(copy.pipeline, scenario.workdir / "export-after.jsonl")
            assert (summary.rejected, summary.accepted) == (0, summary.lines)
            revealer = Revealer(copy.app)
            assert revealer.current(scenario.volunteer_a).status == "none"
            assert revealer.current(scenario.volunteer_b).name == PERSON_B["name"]
            details = [*values_of(PERSON_A), *values_of(PERSON_B)]
            assert found_in(raw_sqlite(tmp_path / "copy.db"), details) == []
        finally:
            copy.close()

    def test_new_details_after_erasure_are_sealed_under_a_new_key(self, scenario: Scenario) -> None:
        again = cloud_event(
            PERSONAL_DETAILS_RECORDED, scenario.volunteer_a, {"name": "司马长卿"}, source=SOURCE,
            time=NOW,
        )  # fmt: skip
        assert scenario.send([again])[0]["status"] == "accepted"
        revealer = Revealer(scenario.store.app)
        assert revealer.current(scenario.volunteer_a).name == "司马长卿"
        keys = key_store(scenario.store.app).keys_of(scenario.volunteer_a)
        assert [k.erased_at is None for k in keys] == [False, True]
        history = aggregate_history(scenario.store.app, "volunteer", scenario.volunteer_a)
        shown = [h["data"]["name"] for h in history if h["type"] == PERSONAL_DETAILS_RECORDED]
        assert shown == [ERASED, "司马长卿"]


# --- the API ------------------------------------------------------------------------------------


class TestPersonalDetailsApi:
    def test_only_the_roles_allowed_see_them_and_only_within_their_scope(
        self, read_api_env: ReadApiEnv
    ) -> None:
        env = read_api_env
        listed = env.get("district", f"/v1/volunteers?unit={STATION}&limit=1").json()["items"]
        volunteer = listed[0]["volunteer_no"]
        person = {
            "name": "王昭君",
            "phone": "13655556666",
            "id_number": with_check("43081119900101006"),
        }
        event = cloud_event(
            PERSONAL_DETAILS_RECORDED, volunteer, person, source=PRODUCER_SOURCE,
            time="2025-01-25T10:00:00+08:00",
        )  # fmt: skip
        answer = env.post_events("producer", [event])
        assert answer["accepted"] == 1, answer
        path = f"/v1/volunteers/{volunteer}/personal-details?min_position={answer['last_position']}"
        expected = {
            "district": 200,
            "station": 200,
            "auditor": 200,
            "institute": 403,  # coordinates activities; does not need them
            "other_station": 404,  # not theirs: answered like an unknown volunteer
            "producer": 403,
        }
        assert {role: env.get(role, path).status_code for role in expected} == expected
        assert env.get(None, path).status_code == 401
        shown = env.get("station", path)
        assert {k: shown.json()[k] for k in person} == person
        assert shown.json()["status"] == "recorded"
        assert shown.headers["cache-control"] == "no-store"


# --- two writers ----------------------------------------------------------------------------


class TestTwoWriters:
    def test_the_first_details_of_a_person_recorded_at_once_share_one_key(
        self, store_url: str
    ) -> None:
        first, second = Store(store_url), Store(store_url)
        try:
            centre = {"level": "centre", "name": "中心"}
            first.ingest(
                [
                    cloud_event("practice.site.registered.v1", "WLY", centre),
                    cloud_event("practice.volunteer.registered.v1", "V-1", {"home_site_id": "WLY"}),
                ]
            )
            mine = cloud_event(PERSONAL_DETAILS_RECORDED, "V-1", PERSON_A, source=SOURCE)
            theirs = cloud_event(PERSONAL_DETAILS_RECORDED, "V-1", PERSON_B, source=SOURCE)

            attempts: list[int] = []

            def meanwhile(_: object) -> None:
                # The other writer seals and commits the person's first key after this
                # batch sealed with a key of its own but before it commits.
                attempts.append(1)
                if len(attempts) == 1:
                    second.ingest([theirs])

            result = first.pipeline.process(
                [RawInput(orjson.dumps(mine), channel="test")], before_commit=meanwhile
            )
            assert result.outcomes[0].status == "accepted"
            assert len(attempts) == 2  # refused by the store once, then retried
            keys = key_store(first.app).keys_of("V-1")
            assert len(keys) == 1  # the batch was retried and sealed under the winner's key
            history = aggregate_history(first.app, "volunteer", "V-1")
            shown = [h["data"]["name"] for h in history if h["type"] == PERSONAL_DETAILS_RECORDED]
            assert shown == [PERSON_B["name"], PERSON_A["name"]]
            assert {h["data"]["key_id"] for h in history if "key_id" in h["data"]} == {
                keys[0].key_id
            }
        finally:
            first.close()
            second.close()
