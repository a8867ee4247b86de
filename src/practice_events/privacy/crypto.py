"""Per-person data keys, AES-256-GCM sealing of personal details, and key wrapping.

Each person gets a random 256-bit *data key*. Two sub-keys are derived from
it with HMAC-SHA-256 (one purpose each, never the key itself):

``seal``    encrypts the details (AES-256-GCM, a random 96-bit nonce per
            event; the additional data binds the ciphertext to the volunteer
            number and the key id, so it cannot be moved to another person);
``digest``  keys the idempotency fingerprint of a personal-details event
            (:func:`keyed_digest`): the plain fingerprint is a hash of the
            details, which someone who knows two of them could use to
            confirm a guess of the third, so it is never stored.

Data keys are stored *wrapped*: with AES-256-GCM under a key derived from
the store's cipher key (``PRACTICE_EVENTS_CIPHER_KEY``) when one is
configured, in plain otherwise (the embedded demo default). Destroying a
data key makes everything sealed with it unreadable, whoever holds a copy.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import uuid
from collections.abc import Mapping
from typing import Any

import orjson
from Crypto.Cipher import AES

from practice_events.errors import ConfigurationError

KEY_BYTES = 32
"""Data keys are AES-256 keys."""

SEAL_VERSION = 1
"""The ``v`` of a sealed object; bump it if the format changes."""

DIGEST_PREFIX = "pk1"
"""Stored idempotency digests of personal-details events start ``pk1:<key id>:``."""

_PLAIN = b"\x00"
_WRAPPED = b"\x01"


def new_data_key() -> bytes:
    """Return a fresh random data key."""
    return os.urandom(KEY_BYTES)


def new_key_id() -> str:
    """Return a fresh key id (random: it must not reveal whose key it is)."""
    return uuid.uuid4().hex


def _subkey(key: bytes, purpose: bytes) -> bytes:
    return hmac.new(key, b"practice-events/" + purpose, hashlib.sha256).digest()


def _aad(subject: str, key_id: str) -> bytes:
    return b"practice-events/personal-details/v1\x00" + subject.encode() + b"\x00" + key_id.encode()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def seal_details(
    data_key: bytes, key_id: str, subject: str, details: Mapping[str, Any]
) -> dict[str, Any]:
    """Encrypt ``details`` for the person ``subject``; return the JSON-ready sealed object."""
    nonce = os.urandom(12)
    cipher = AES.new(_subkey(data_key, b"seal"), AES.MODE_GCM, nonce=nonce)
    cipher.update(_aad(subject, key_id))
    encrypted, tag = cipher.encrypt_and_digest(
        orjson.dumps(dict(details), option=orjson.OPT_SORT_KEYS)
    )
    return {
        "v": SEAL_VERSION,
        "key_id": key_id,
        "nonce": _b64(nonce),
        "ciphertext": _b64(encrypted + tag),
    }


def open_details(data_key: bytes, sealed: Mapping[str, Any], subject: str) -> dict[str, Any]:
    """Decrypt a sealed object of ``subject``; ValueError when it was altered or moved."""
    try:
        nonce = base64.b64decode(str(sealed["nonce"]), validate=True)
        blob = base64.b64decode(str(sealed["ciphertext"]), validate=True)
        key_id = str(sealed["key_id"])
    except (KeyError, ValueError) as exc:
        msg = "damaged sealed personal details"
        raise ValueError(msg) from exc
    cipher = AES.new(_subkey(data_key, b"seal"), AES.MODE_GCM, nonce=nonce)
    cipher.update(_aad(subject, key_id))
    plain = cipher.decrypt_and_verify(blob[:-16], blob[-16:])
    details: dict[str, Any] = orjson.loads(plain)
    return details


def keyed_digest(data_key: bytes, key_id: str, plain_digest: str) -> str:
    """Return the stored idempotency digest of a personal-details event.

    ``pk1:<key id>:<HMAC of the plain fingerprint>``: a retry is recognised
    while the key lives; once it is destroyed nothing can be learnt from it.
    """
    mac = hmac.new(_subkey(data_key, b"digest"), plain_digest.encode(), hashlib.sha256)
    return f"{DIGEST_PREFIX}:{key_id}:{mac.hexdigest()[:32]}"


def digest_key_id(digest: str) -> str | None:
    """Return the key id named by a keyed digest (None for an ordinary digest)."""
    if not digest.startswith(DIGEST_PREFIX + ":"):
        return None
    parts = digest.split(":")
    return parts[1] if len(parts) == 3 else None


class KeyWrapper:
    """Wraps data keys for storage: under the store's cipher key if there is one."""

    def __init__(self, master: bytes | None) -> None:
        self._wrap_key = _subkey(master, b"person-key-wrap") if master else None

    @classmethod
    def from_cipher_key(cls, cipher_key: str | None) -> KeyWrapper:
        """Build from the base64 cipher key of the settings (None: keys stored unwrapped)."""
        if not cipher_key:
            return cls(None)
        try:
            return cls(base64.b64decode(cipher_key, validate=True))
        except ValueError:
            msg = "the cipher key is not valid base64"
            raise ConfigurationError(msg) from None

    @property
    def wraps(self) -> bool:
        """True when keys are stored encrypted under the store's cipher key."""
        return self._wrap_key is not None

    def wrap(self, data_key: bytes, key_id: str, volunteer_no: str) -> bytes:
        """Return the stored form of ``data_key``."""
        if self._wrap_key is None:
            return _PLAIN + data_key
        nonce = os.urandom(12)
        cipher = AES.new(self._wrap_key, AES.MODE_GCM, nonce=nonce)
        cipher.update(_aad(volunteer_no, key_id))
        encrypted, tag = cipher.encrypt_and_digest(data_key)
        return _WRAPPED + nonce + tag + encrypted

    def unwrap(self, stored: bytes, key_id: str, volunteer_no: str) -> bytes:
        """Return the data key from its stored form (ConfigurationError without the cipher key)."""
        if stored[:1] == _PLAIN:
            return stored[1:]
        if self._wrap_key is None:
            msg = (
                "this store's person keys are wrapped with its cipher key: set "
                "PRACTICE_EVENTS_CIPHER_KEY to the key the store was created with"
            )
            raise ConfigurationError(msg)
        nonce, tag, encrypted = stored[1:13], stored[13:29], stored[29:]
        cipher = AES.new(self._wrap_key, AES.MODE_GCM, nonce=nonce)
        cipher.update(_aad(volunteer_no, key_id))
        try:
            return cipher.decrypt_and_verify(encrypted, tag)
        except ValueError:
            msg = (
                f"person key {key_id} does not open with the configured cipher key "
                "(a different PRACTICE_EVENTS_CIPHER_KEY than the store was created with?)"
            )
            raise ConfigurationError(msg) from None
