"""Fuzzing the decode/validate path: no input makes it raise anything but a coded refusal.

Hypothesis feeds the envelope parsers (structured and binary mode, with the
contracts of the catalogue behind them) and the HTTP batch body parser with
arbitrary bytes, with mutations of valid events, and with structured but
wrong JSON: right attribute names holding wrong values, catalogue types with
random data, members named twice. Whatever comes in, the answer is an
:class:`~practice_events.contracts.envelope.IncomingEvent` or a refusal of
the project's error family (or the API's ``Problem``) whose code is one
docs/api.md publishes, with a reason. The duplicate-member check is also
compared with an independent oracle (the standard library's
``object_pairs_hook``). ``tests/integration/test_fuzz_pipeline.py`` fuzzes
the whole pipeline on a real store, and runs atheris where it is installed.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from practice_events.api.ingest import batch_items
from practice_events.api.problems import Problem
from practice_events.contracts import load_all
from practice_events.contracts.base import CATALOGUE
from practice_events.contracts.envelope import IncomingEvent, parse_binary, parse_structured
from practice_events.errors import PracticeEventsError
from tests.corpus import documented_codes

load_all()
CODES = set(documented_codes())
TYPES = sorted(CATALOGUE)
ATTRIBUTES = ("specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data")
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
"""Structured inputs: each example is costly to generate, and most of the value comes early."""
BYTES = settings(max_examples=200, deadline=None)
"""Flat byte strings: cheap, so more of them."""

VALID: dict[str, Any] = {
    "specversion": "1.0",
    "id": "fuzz-1",
    "source": "urn:fuzz",
    "type": "practice.site.registered.v1",
    "subject": "C-FUZZ",
    "time": "2024-03-04T09:00:00+08:00",
    "data": {"level": "centre", "name": "中心"},
}

any_text = st.text(st.characters(exclude_categories=()), max_size=40)
"""Any code points, lone surrogates and U+0000 included."""

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)


def refused_properly(call: Any, *args: Any) -> IncomingEvent | None:
    """Run ``call``; a refusal must be coded, documented and explained. Other errors escape."""
    try:
        result: IncomingEvent = call(*args)
    except (PracticeEventsError, Problem) as exc:
        refusal = exc
    else:
        return result
    reason = refusal.reason if isinstance(refusal, PracticeEventsError) else refusal.detail
    assert refusal.code in CODES, (refusal.code, reason)
    assert reason
    return None


def encode(obj: Any) -> bytes:
    """JSON bytes of a fuzzed object (lone surrogates written as escapes, as producers may)."""
    return json.dumps(obj, ensure_ascii=True).encode()


class TestStructuredMode:
    @BYTES
    @given(st.binary(max_size=400))
    def test_arbitrary_bytes(self, raw: bytes) -> None:
        refused_properly(parse_structured, raw)

    @FUZZ
    @given(st.data())
    def test_valid_event_with_bytes_mutated(self, data: st.DataObject) -> None:
        raw = bytearray(orjson.dumps(VALID))
        for _ in range(data.draw(st.integers(1, 4))):
            at = data.draw(st.integers(0, len(raw) - 1))
            raw[at : at + 1] = data.draw(st.binary(max_size=3))
        refused_properly(parse_structured, bytes(raw))

    @FUZZ
    @given(
        st.dictionaries(st.sampled_from(ATTRIBUTES), json_values, max_size=8),
        st.dictionaries(any_text, json_values, max_size=3),
    )
    def test_attributes_with_wrong_values(
        self, replaced: dict[str, Any], extra: dict[str, Any]
    ) -> None:
        event = {**VALID, **replaced, **extra}
        refused_properly(parse_structured, encode(event))

    @FUZZ
    @given(st.sampled_from(TYPES), st.dictionaries(st.text(max_size=12), json_values, max_size=6))
    def test_catalogue_types_with_random_data(self, event_type: str, data: dict[str, Any]) -> None:
        refused_properly(parse_structured, encode({**VALID, "type": event_type, "data": data}))


def members(pairs: list[tuple[str, Any]]) -> bytes:
    """A JSON object written member by member, so that a name may repeat."""
    return ("{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in pairs) + "}").encode()


class TestDuplicateMembers:
    @FUZZ
    @given(
        st.lists(st.tuples(st.sampled_from(ATTRIBUTES[:6]), st.just('"x"')), max_size=4),
        st.lists(st.tuples(st.sampled_from(["level", "name", "a"]), st.just("1")), max_size=4),
    )
    def test_are_refused_exactly_when_a_name_repeats(
        self, top: list[tuple[str, str]], inner: list[tuple[str, str]]
    ) -> None:
        data = members(inner).decode()
        raw = members([*[(k, json.dumps(v)) for k, v in VALID.items() if k != "data"], *top])
        raw = raw[:-1] + b',"data":' + data.encode() + b"}"

        def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
            names = [name for name, _ in pairs]
            if len(names) != len(set(names)):
                found.append(pairs)
            return dict(pairs)

        found: list[Any] = []
        json.loads(raw, object_pairs_hook=hook)
        code = None
        try:
            parse_structured(raw)
        except PracticeEventsError as exc:
            code = exc.code
        assert (code in ("DUPLICATE_ATTRIBUTE", "DUPLICATE_KEY")) == bool(found), (code, raw)


class TestBinaryMode:
    @FUZZ
    @given(
        st.lists(
            st.tuples(
                st.sampled_from([f"ce_{a}" for a in ATTRIBUTES] + ["content-type", "CE-ID", "x"])
                | any_text,
                any_text,
            ),
            max_size=10,
        ),
        st.none() | st.binary(max_size=200),
    )
    def test_arbitrary_headers_and_value(
        self, headers: list[tuple[str, str]], value: bytes | None
    ) -> None:
        refused_properly(parse_binary, headers, value)

    @FUZZ
    @given(st.sampled_from(TYPES), json_values)
    def test_valid_headers_with_random_data(self, event_type: str, data: Any) -> None:
        headers = {f"ce_{k}": str(v) for k, v in VALID.items() if k != "data"}
        headers["ce_type"] = event_type
        refused_properly(parse_binary, headers, encode(data))


class TestBatchBodies:
    @BYTES
    @given(st.binary(max_size=400))
    def test_arbitrary_bytes(self, body: bytes) -> None:
        self._each_item(body)

    @FUZZ
    @given(st.lists(json_values | st.just(VALID), max_size=5))
    def test_arrays_of_anything(self, items: list[Any]) -> None:
        self._each_item(encode(items))

    @FUZZ
    @given(st.integers(1, 400), st.sampled_from([b"[", b'{"a":']))
    def test_deep_items(self, depth: int, opener: bytes) -> None:
        closer = b"]" if opener == b"[" else b"}"
        inner = opener * depth + (b"" if opener == b"[" else b"1") + closer * depth
        self._each_item(b"[" + orjson.dumps(VALID) + b"," + inner + b"]")

    @staticmethod
    def _each_item(body: bytes) -> None:
        try:
            items, payloads = batch_items(body, 50)
        except Problem as exc:
            refusal = exc
        else:
            assert len(items) == len(payloads)
            for payload in payloads:
                refused_properly(parse_structured, payload)
            return
        assert refusal.code in CODES, (refusal.code, refusal.detail)


@pytest.mark.parametrize(
    ("body", "codes"),
    [
        (
            b'[{"a": 1, "a": 2}, {"data": {"b": 1, "b": 2}}]',
            ["DUPLICATE_ATTRIBUTE", "DUPLICATE_KEY"],
        ),
        (b'[{"id": "x"}, {"id": "x", "id": "y"}]', ["MISSING_ATTRIBUTE", "DUPLICATE_ATTRIBUTE"]),
    ],
)
def test_batch_items_keep_what_was_sent_when_a_name_repeats(body: bytes, codes: list[str]) -> None:
    """The fallback path: each item reaches the pipeline as sent, so the repeat is seen."""
    _, payloads = batch_items(body, 50)
    got = []
    for payload in payloads:
        with pytest.raises(PracticeEventsError) as info:
            parse_structured(payload)
        got.append(info.value.code)
    assert got == codes
