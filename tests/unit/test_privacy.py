"""Personal data without I/O: the contract's checks, sealing, key wrapping, redaction, settings.

The store-backed behaviour (keys in real tables, erasure, raw-table scans)
is in ``tests/integration/test_privacy.py``; logs are checked end to end in
``tests/e2e/test_privacy_logs.py``.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
import pytest

from consumers.dlq import DeadLetter
from practice_events.config import Settings
from practice_events.contracts.envelope import parse_structured
from practice_events.contracts.volunteer import resident_id_check
from practice_events.errors import ConfigurationError, ContractError
from practice_events.privacy import PERSONAL_DETAILS_RECORDED, REDACTED
from practice_events.privacy.crypto import (
    KeyWrapper,
    digest_key_id,
    keyed_digest,
    new_data_key,
    open_details,
    seal_details,
)
from practice_events.privacy.redact import UNPARSEABLE, redact_input, redact_text
from tests.harness import DomainHarness, cloud_event

NAME = "欧阳娜娜"
PHONE = "13987654321"
ID_NUMBER = "430802199003070010"  # Zhangjiajie, born 1990-03-07; check character 0 (tested)


def details_event(**data: object) -> dict[str, object]:
    return cloud_event(PERSONAL_DETAILS_RECORDED, "V-1", data)


class TestContract:
    def test_a_valid_id_number_a_mobile_with_country_code_and_a_name(self) -> None:
        assert resident_id_check(ID_NUMBER[:17]) == ID_NUMBER[17]
        incoming = parse_structured(
            details_event(name=NAME, phone="+86 139-8765-4321", id_number="11010519491231002x")
        )
        assert incoming.data_json == {
            "name": NAME,
            "phone": PHONE,
            "id_number": "11010519491231002X",
        }

    @pytest.mark.parametrize(
        ("field", "value", "why"),
        [
            ("id_number", "430802199003070012", "check character"),
            ("id_number", "430802199002300011", "date of birth"),
            ("id_number", "000802199003070011", "province code"),
            ("id_number", "43080219900307001", "18-character"),
            ("phone", "12987654321", "mainland mobile"),
            ("phone", "0731-8888888", "mainland mobile"),
            ("name", "欧阳1", "no digits"),
        ],
    )
    def test_a_bad_detail_is_refused_without_repeating_it(
        self, field: str, value: str, why: str
    ) -> None:
        data = {"name": NAME, field: value}
        with pytest.raises(ContractError) as info:
            parse_structured(details_event(**data))
        assert info.value.code == "SCHEMA_VIOLATION"
        assert why in info.value.reason
        assert value not in info.value.reason

    def test_producers_cannot_send_the_erasure_event(self) -> None:
        with pytest.raises(ContractError) as info:
            parse_structured(
                cloud_event("practice.volunteer.personal_data_erased.v1", "V-1", {"key_ids": []})
            )
        assert info.value.code == "SYSTEM_EVENT_TYPE"


class TestSealing:
    def test_details_open_with_their_key_for_their_person_only(self) -> None:
        key = new_data_key()
        sealed = seal_details(key, "k1", "V-1", {"name": NAME, "phone": PHONE})
        assert NAME.encode() not in orjson.dumps(sealed)
        assert PHONE not in orjson.dumps(sealed).decode()
        assert open_details(key, sealed, "V-1") == {"name": NAME, "phone": PHONE}
        with pytest.raises(ValueError, match="MAC check failed"):
            open_details(key, sealed, "V-2")  # moved to another volunteer
        with pytest.raises(ValueError, match="MAC check failed"):
            open_details(new_data_key(), sealed, "V-1")

    def test_the_same_details_seal_differently_each_time(self) -> None:
        key = new_data_key()
        first = seal_details(key, "k1", "V-1", {"name": NAME})
        second = seal_details(key, "k1", "V-1", {"name": NAME})
        assert first["ciphertext"] != second["ciphertext"]

    def test_the_stored_digest_is_keyed_and_names_its_key(self) -> None:
        key = new_data_key()
        digest = keyed_digest(key, "k1", "plain-fingerprint")
        assert digest.startswith("pk1:k1:")
        assert digest == keyed_digest(key, "k1", "plain-fingerprint")
        assert digest != keyed_digest(new_data_key(), "k1", "plain-fingerprint")
        assert digest_key_id(digest) == "k1"
        assert digest_key_id("0123abcd") is None


class TestKeyWrapping:
    MASTER = base64.b64encode(b"m" * 32).decode()

    def test_keys_are_wrapped_under_the_cipher_key_and_bound_to_their_person(self) -> None:
        wrapper = KeyWrapper.from_cipher_key(self.MASTER)
        key = new_data_key()
        stored = wrapper.wrap(key, "k1", "V-1")
        assert key not in stored
        assert wrapper.unwrap(stored, "k1", "V-1") == key
        with pytest.raises(ConfigurationError, match="does not open"):
            wrapper.unwrap(stored, "k1", "V-2")
        other = KeyWrapper.from_cipher_key(base64.b64encode(b"o" * 32).decode())
        with pytest.raises(ConfigurationError, match="does not open"):
            other.unwrap(stored, "k1", "V-1")
        with pytest.raises(ConfigurationError, match="PRACTICE_EVENTS_CIPHER_KEY"):
            KeyWrapper(None).unwrap(stored, "k1", "V-1")

    def test_without_a_cipher_key_keys_are_stored_as_they_are(self) -> None:
        wrapper = KeyWrapper.from_cipher_key(None)
        key = new_data_key()
        assert wrapper.wrap(key, "k1", "V-1")[1:] == key
        assert wrapper.unwrap(wrapper.wrap(key, "k1", "V-1"), "k1", "V-1") == key


class TestRedaction:
    def test_a_structured_event_keeps_everything_but_the_details(self) -> None:
        event = details_event(name=NAME, phone=PHONE, consent_ref="C-1")
        out = redact_input(orjson.dumps(event))
        assert out is not None
        kept = orjson.loads(out)
        assert kept["data"] == {"name": REDACTED, "phone": REDACTED, "consent_ref": "C-1"}
        assert {k: v for k, v in kept.items() if k != "data"} == {
            k: v for k, v in event.items() if k != "data"
        }

    def test_a_misspelt_type_is_redacted_too(self) -> None:
        event = {
            **details_event(name=NAME),
            "type": "practice.volunteer.personal_details_recorded.v2",
        }
        assert NAME not in (redact_input(orjson.dumps(event)) or b"").decode()

    def test_binary_mode_data_and_unparseable_inputs(self) -> None:
        headers = [("ce_type", PERSONAL_DETAILS_RECORDED.encode()), ("ce_id", b"x")]
        data = orjson.dumps({"name": NAME, "id_number": ID_NUMBER})
        assert orjson.loads(redact_input(data, headers) or b"") == {
            "name": REDACTED,
            "id_number": REDACTED,
        }
        assert redact_input(b"{not json " + NAME.encode(), headers) == UNPARSEABLE
        broken = b'{"type": "' + PERSONAL_DETAILS_RECORDED.encode() + b'", "data": {"name": "'
        assert redact_input(broken + NAME.encode()) == UNPARSEABLE

    def test_other_inputs_are_kept_byte_for_byte(self) -> None:
        raw = orjson.dumps(cloud_event("practice.site.registered.v1", "WLY", {"name": NAME}))
        assert redact_input(raw) is raw
        assert redact_input(raw, {"ce_type": "practice.site.registered.v1"}) is raw
        assert redact_text(raw.decode()) == raw.decode()

    def test_a_dead_letter_carries_no_details(self) -> None:
        @dataclass
        class Record:  # the fields of a consumed Kafka record that a dead letter copies
            topic: str
            partition: int
            offset: int
            key: bytes | None
            value: bytes | None
            headers: list[tuple[str, bytes | None]]

        value = orjson.dumps(details_event(name=NAME, phone=PHONE))
        letter = DeadLetter.of(
            Record("practice.events.v1", 0, 7, b"V-1", value, []),
            code="UNKNOWN_AGGREGATE",
            reason="volunteer 'V-1' does not exist",
            at=datetime(2025, 1, 1, tzinfo=UTC),
        )
        assert letter.value is not None
        assert NAME.encode() not in letter.value
        assert PHONE.encode() not in letter.value
        assert orjson.loads(letter.value)["data"]["name"] == REDACTED


class TestDomain:
    def test_the_volunteer_refuses_details_that_were_not_sealed(self) -> None:
        h = DomainHarness()
        h.send("practice.site.registered.v1", "WLY", {"level": "centre", "name": "中心"})
        h.send("practice.volunteer.registered.v1", "V-1", {"home_site_id": "WLY"})
        error = h.refused(PERSONAL_DETAILS_RECORDED, "V-1", {"name": NAME}, "RULE_VIOLATION")
        assert "sealed" in error.reason
        assert NAME not in error.reason


class TestProductionProfile:
    KEY = base64.b64encode(b"k" * 32).decode()

    def test_needs_a_cipher_key_and_compresses(self) -> None:
        with pytest.raises(ConfigurationError, match="keys generate"):
            Settings(profile="production")
        settings = Settings(profile="production", cipher_key=self.KEY)
        assert settings.compress is True
        assert Settings(profile="production", cipher_key=self.KEY, compress=False).compress is False

    def test_the_embedded_default_stays_simple(self) -> None:
        settings = Settings()
        assert (settings.profile, settings.cipher_key, settings.compress) == (
            "embedded",
            None,
            False,
        )

    def test_a_bad_cipher_key_is_refused_without_echoing_it(self) -> None:
        bad = base64.b64encode(b"too short").decode()
        with pytest.raises(ConfigurationError) as info:
            Settings(cipher_key=bad)
        assert bad not in info.value.reason
        assert "16, 24 or 32 bytes" in info.value.reason
