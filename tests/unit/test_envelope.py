"""The CloudEvents envelope: every refusal has a stable code and a reason."""

from __future__ import annotations

import orjson
import pytest

from practice_events.contracts import load_all
from practice_events.contracts.base import CATALOGUE, TYPE_PATTERN
from practice_events.contracts.envelope import parse_binary, parse_structured
from practice_events.errors import ContractError
from tests.harness import cloud_event

load_all()


def centre(**overrides: object) -> dict[str, object]:
    event = cloud_event(
        "practice.site.registered.v1", "WLY", {"level": "centre", "name": "武陵源区文明实践中心"}
    )
    event.update(overrides)
    return event


def code_of(raw: object) -> str:
    with pytest.raises(ContractError) as info:
        parse_structured(raw if isinstance(raw, bytes) else orjson.dumps(raw))
    assert info.value.reason, "every refusal carries a reason"
    return info.value.code


class TestCatalogue:
    def test_has_at_least_forty_types(self) -> None:
        assert len(CATALOGUE) >= 40

    def test_every_type_name_is_versioned_and_stable(self) -> None:
        for name, model in CATALOGUE.items():
            assert TYPE_PATTERN.match(name), name
            assert name == model.TYPE
            assert model.__doc__, f"{name} has no docstring"

    def test_every_field_is_described(self) -> None:
        for name, model in CATALOGUE.items():
            for field, info in model.model_fields.items():
                assert info.description, f"{name}.{field} has no description"


class TestStructuredMode:
    def test_accepts_a_valid_event(self) -> None:
        event = parse_structured(orjson.dumps(centre()))
        assert event.type == "practice.site.registered.v1"
        assert event.subject == "WLY"
        assert event.time.utcoffset() is not None
        assert event.data_json["level"] == "centre"
        assert len(event.digest) == 32

    def test_digest_ignores_spelling_but_not_content(self) -> None:
        a = parse_structured(orjson.dumps(centre()))
        b = parse_structured(orjson.dumps(centre(time="2024-03-04T01:00:00Z")))
        c = parse_structured(orjson.dumps(centre(data={"level": "centre", "name": "x"})))
        assert a.digest != c.digest
        assert a.time == b.time

    @pytest.mark.parametrize("missing", ["id", "source", "specversion", "type", "subject", "time"])
    def test_missing_attribute(self, missing: str) -> None:
        event = centre()
        del event[missing]
        assert code_of(event) == "MISSING_ATTRIBUTE"

    def test_missing_data(self) -> None:
        event = centre()
        del event["data"]
        assert code_of(event) == "MISSING_ATTRIBUTE"

    @pytest.mark.parametrize(
        ("attribute", "value"),
        [
            ("specversion", "0.3"),
            ("id", 42),
            ("source", ["a"]),
            ("datacontenttype", "text/xml"),
            ("time", "yesterday"),
            ("time", "2024-03-04"),
            ("Bad_Name", "x"),
            ("ext", 1.5),
            ("data_base64", "AAAA"),
            ("id", " padded "),
        ],
    )
    def test_invalid_attribute(self, attribute: str, value: object) -> None:
        assert code_of(centre(**{attribute: value})) == "INVALID_ATTRIBUTE"

    def test_naive_time_is_refused(self) -> None:
        assert code_of(centre(time="2024-03-04T09:00:00")) == "NAIVE_DATETIME"

    def test_unknown_type(self) -> None:
        assert code_of(centre(type="practice.site.unknown.v1")) == "UNKNOWN_TYPE"

    def test_unknown_version(self) -> None:
        assert code_of(centre(type="practice.site.registered.v9")) == "UNKNOWN_TYPE"

    def test_system_types_cannot_be_sent(self) -> None:
        system = next(name for name, model in CATALOGUE.items() if model.SYSTEM)
        assert code_of(centre(type=system)) == "SYSTEM_EVENT_TYPE"

    def test_data_must_be_an_object(self) -> None:
        assert code_of(centre(data=[1])) == "SCHEMA_VIOLATION"

    def test_unknown_field_in_data(self) -> None:
        data = {"level": "centre", "name": "x", "phone": "13800000000"}
        assert code_of(centre(data=data)) == "SCHEMA_VIOLATION"

    def test_wrong_field_type_in_data(self) -> None:
        assert code_of(centre(data={"level": "centre", "name": 7})) == "SCHEMA_VIOLATION"

    def test_malformed_json(self) -> None:
        assert code_of(b'{"specversion": "1.0",') == "MALFORMED_JSON"

    def test_invalid_utf8(self) -> None:
        assert code_of(b'{"id": "\xff"}') == "MALFORMED_JSON"

    def test_not_an_object(self) -> None:
        assert code_of(b'"just a string"') == "MALFORMED_JSON"

    def test_extensions_are_kept(self) -> None:
        event = parse_structured(orjson.dumps(centre(actor="inspector-7")))
        assert event.extensions == {"actor": "inspector-7"}
        assert event.meta()["actor"] == "inspector-7"

    def test_reason_names_the_field(self) -> None:
        with pytest.raises(ContractError) as info:
            parse_structured(orjson.dumps(centre(data={"level": "palace", "name": "x"})))
        assert "data.level" in info.value.reason


class TestBinaryMode:
    def headers(self, **overrides: str) -> dict[str, str]:
        headers = {
            "ce_specversion": "1.0",
            "ce_id": "b-1",
            "ce_source": "urn:wly:admin",
            "ce_type": "practice.site.registered.v1",
            "ce_subject": "WLY",
            "ce_time": "2024-03-04T09:00:00+08:00",
            "content-type": "application/json",
        }
        headers.update(overrides)
        return headers

    def test_accepts_headers_plus_data(self) -> None:
        event = parse_binary(self.headers(), b'{"level": "centre", "name": "x"}')
        assert event.id == "b-1"
        assert event.source == "urn:wly:admin"

    def test_http_style_header_names(self) -> None:
        headers = {k.replace("ce_", "Ce-"): v for k, v in self.headers().items()}
        assert parse_binary(headers, b'{"level": "centre", "name": "x"}').subject == "WLY"

    def test_missing_value(self) -> None:
        with pytest.raises(ContractError) as info:
            parse_binary(self.headers(), None)
        assert info.value.code == "MISSING_ATTRIBUTE"

    def test_wrong_content_type(self) -> None:
        with pytest.raises(ContractError) as info:
            parse_binary(self.headers(**{"content-type": "text/plain"}), b"{}")
        assert info.value.code == "INVALID_ATTRIBUTE"
