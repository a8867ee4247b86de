"""Fuzzing the whole ingest pipeline on real PostgreSQL, and the decode path with atheris.

Hypothesis sends batches of mixed inputs (valid events, mutated events,
random JSON, binary mode with arbitrary headers: lone surrogates, U+0000,
repeated names) through :meth:`Pipeline.process` on a real PostgreSQL
database, whose text columns refuse U+0000 and whose driver refuses lone
surrogates, so that a refusal that cannot be *stored* shows up too. Every
batch must end in one outcome per input, each refusal coded and explained,
and the store must agree: accepted keys and rejection rows grow by exactly
the accepted and refused counts (produced = stored + duplicates + refused).

atheris (coverage-guided, libFuzzer) then runs ``tests/atheris_decode.py``
for a few seconds, seeded with the bad-input corpus.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from practice_events.bootstrap import build_app, build_pipeline
from practice_events.config import Settings
from practice_events.ingest.pipeline import Pipeline, RawInput
from tests.conftest import ROOT
from tests.corpus import Limits, documented_codes, load

CODES = set(documented_codes())

nasty_text = st.text(
    st.sampled_from(["\x00", "\udcff", "\n", "a", "中", " "]), min_size=1, max_size=6
)
"""U+0000, a lone surrogate (a byte that was not UTF-8), a newline: what a store's text column
or a JSON writer may refuse, drawn often."""
any_text = st.text(st.characters(exclude_categories=()), max_size=12) | nasty_text
"""Any code points at all, or the nasty ones."""
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | any_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=8,
)
subjects = st.sampled_from(["C-F1", "C-F2", "C-F3"]) | st.from_regex(
    r"C-[A-Z]{1,3}", fullmatch=True
)
as_json = json_values.map(lambda v: json.dumps(v, ensure_ascii=True).encode())
"""Any JSON value as bytes (lone surrogates written as escapes, which orjson then refuses)."""


@st.composite
def valid_centres(draw: st.DrawFn) -> bytes:
    """A valid registration (ids and subjects repeat, so duplicates and conflicts occur)."""
    event = {
        "specversion": "1.0",
        "id": draw(st.sampled_from(["f-1", "f-2"]) | st.uuids().map(str)),
        "source": "urn:fuzz",
        "type": "practice.site.registered.v1",
        "subject": draw(subjects),
        "time": "2024-03-04T09:00:00+08:00",
        "data": {"level": "centre", "name": draw(st.sampled_from(["甲", "乙"]))},
    }
    return orjson.dumps(event)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid registration with a few bytes replaced."""
    raw = bytearray(draw(valid_centres()))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(raw) - 1))
        raw[at : at + 1] = draw(st.binary(max_size=2))
    return bytes(raw)


structured_inputs = st.one_of(
    valid_centres(),
    mutated(),
    as_json,
    st.binary(max_size=80),
).map(lambda raw: RawInput(raw, channel="fuzz"))

HEADERS = [
    ("ce_specversion", "1.0"),
    ("ce_id", "b-1"),
    ("ce_source", "urn:fuzz"),
    ("ce_type", "practice.site.registered.v1"),
    ("ce_subject", "C-F1"),
    ("ce_time", "2024-03-04T09:00:00+08:00"),
    ("content-type", "application/json"),
]


@st.composite
def binary_inputs(draw: st.DrawFn) -> RawInput:
    """A binary-mode record: valid headers with some values spoiled, extras, maybe a repeat."""
    headers = list(HEADERS)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(headers) - 1))
        headers[at] = (headers[at][0], draw(nasty_text | any_text))
    headers += draw(st.lists(st.tuples(any_text, any_text), max_size=2))
    if draw(st.booleans()):
        headers.append(draw(st.sampled_from(headers)))
    value = draw(
        st.just(b'{"level": "centre", "name": "n"}') | st.none() | st.binary(max_size=40) | as_json
    )
    return RawInput(value, headers=headers, channel="fuzz")


@pytest.fixture(scope="module")
def pipeline() -> Iterator[Pipeline]:
    """A pipeline over a fresh PostgreSQL database, shared by the examples of this module."""
    from tests.conftest import create_database, drop_database

    name = f"pe_test_fuzz_{uuid.uuid4().hex[:12]}"
    url = create_database(name)
    app = build_app(Settings(store=url))
    try:
        yield build_pipeline(Settings(store=url), app)
    finally:
        app.close()
        drop_database(name)


@pytest.mark.slow
@pytest.mark.postgres
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(structured_inputs | binary_inputs(), min_size=1, max_size=6))
def test_every_input_ends_as_one_coded_outcome_and_the_store_agrees(
    pipeline: Pipeline, inputs: list[RawInput]
) -> None:
    store: Any = pipeline.app.recorder
    keys_before = store.count_ingested_keys()
    rejections_before = sum(store.count_rejections().values())

    result = pipeline.process(inputs)

    assert len(result.outcomes) == len(inputs)
    refused = [o for o in result.outcomes if o.status == "rejected"]
    for outcome in refused:
        assert outcome.code in CODES, (outcome.code, outcome.reason)
        assert outcome.reason
    accepted = result.count("accepted")
    assert accepted + result.count("duplicate") + len(refused) == len(inputs)
    assert store.count_ingested_keys() == keys_before + accepted
    assert sum(store.count_rejections().values()) == rejections_before + len(refused)


def seed(directory: Path) -> int:
    """Write the corpus inputs as atheris seeds (first byte: the path); return how many."""
    directory.mkdir()
    limits = Limits(max_event_bytes=4096, max_batch_events=5, max_batch_bytes=8192)
    written = 0
    for case in load().cases:
        sent = case.input("http", limits)
        if sent.mode == "binary":
            head = b"\n".join(n.encode() + b": " + v for n, v in sent.headers)
            data = bytes([1]) + head + b"\n\n" + (sent.body or b"")
        else:
            data = bytes([2 if sent.mode == "batch" else 0]) + (sent.body or b"")
        (directory / case.id).write_bytes(data[:20_000])
        written += 1
    return written


@pytest.mark.slow
def test_atheris_finds_no_crash_in_the_decode_path(tmp_path: Path) -> None:
    pytest.importorskip("atheris", reason="atheris is in the test extras (Linux only)")
    assert seed(tmp_path / "seeds") >= 50
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.atheris_decode",
            "-max_total_time=3",
            "-timeout=20",
            "-rss_limit_mb=1536",
            f"-artifact_prefix={tmp_path}/",
            str(tmp_path / "seeds"),
        ],
        cwd=ROOT,
        capture_output=True,
        timeout=180,
        check=False,
    )
    log = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 0, log[-4000:]
    runs = re.search(r"Done (\d+) runs", log)
    assert runs is not None, log[-2000:]
    assert int(runs.group(1)) >= 1000, log[-2000:]
