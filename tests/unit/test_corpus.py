"""The bad-input corpus itself: versioned, broad, documented, and its generators exact.

The corpus is run over HTTP and Kafka by ``tests/integration/test_corpus_*.py``;
these checks keep the manifest honest without any I/O.
"""

from __future__ import annotations

from collections import Counter

from tests.corpus import Limits, documented_codes, load


class TestManifest:
    def test_is_versioned_and_has_fifty_kinds_on_each_transport(self) -> None:
        corpus = load()
        assert corpus.version >= 1
        assert len(corpus.for_transport("kafka")) >= 50
        assert len(corpus.for_transport("http")) >= 50

    def test_covers_every_family_of_bad_input_the_issue_names(self) -> None:
        kinds = Counter(case.kind for case in load().cases)
        for family in ("json", "encoding", "envelope", "duplicate-member", "type", "schema"):
            assert kinds[family] >= 3, family
        for family in ("content-type", "depth", "size", "clock", "state", "reference"):
            assert kinds[family] >= 2, family
        for family in ("duplicate", "replay", "batch"):
            assert kinds[family] >= 2, family

    def test_every_code_it_expects_is_documented_with_its_status(self) -> None:
        corpus = load()
        documented = documented_codes()
        expected = set()
        for case in corpus.cases:
            for transport in case.transports:
                if case.results is not None:
                    expected |= {r for r in case.results if r not in ("accepted", "duplicate")}
                elif case.expected(transport) not in ("accepted", "duplicate"):
                    expected.add(case.expected(transport))
        assert expected <= set(documented), expected - set(documented)
        for code, status in documented.items():
            assert corpus.status(code) == status, code


class TestGenerators:
    def test_size_inputs_one_byte_over_the_transport_limits(self) -> None:
        cases = {case.id: case for case in load().cases}
        limits = Limits(max_event_bytes=4096, max_batch_events=7, max_batch_bytes=8192)
        oversize = cases["http-oversize-event"].input("kafka", limits).body
        assert oversize is not None
        assert len(oversize) == 4097
        too_big = cases["http-batch-too-big"].input("http", limits).body
        assert too_big is not None
        assert len(too_big) == 8193

    def test_are_deterministic(self) -> None:
        limits = Limits(max_event_bytes=4096, max_batch_events=7, max_batch_bytes=8192)
        for case in load().cases:
            if "generate" in case.raw:
                assert case.input("http", limits) == case.input("http", limits), case.id
