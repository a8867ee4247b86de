"""Generators of the corpus inputs that a TOML file cannot hold or should not.

Each generator takes the transport (``http`` or ``kafka``) and its
:class:`~tests.corpus.Limits` and returns the :class:`~tests.corpus.Input`
to send; the manifest names it with ``generate = "<function>"``. They are
deterministic: the same limits give the same bytes. Sizes follow the limits
of the transport under test (one byte over), so that megabytes never need to
be committed and a test with small limits sends little.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson

if TYPE_CHECKING:
    from tests.corpus import Input, Limits

TIME = "2024-03-04T09:00:00+08:00"


def _event(event_id: str, subject: str, data: object, **extra: object) -> dict[str, object]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "urn:corpus:producer",
        "type": "practice.site.registered.v1",
        "subject": subject,
        "time": TIME,
        "data": data,
        **extra,
    }


def _centre(event_id: str, subject: str) -> dict[str, object]:
    return _event(event_id, subject, {"level": "centre", "name": "语料中心"})


def _input(body: bytes, **kw: object) -> Input:
    from tests.corpus import Input

    return Input(body=body, **kw)  # type: ignore[arg-type]  # keyword fields of Input


def invalid_utf8(transport: str, limits: Limits) -> Input:
    """A CloudEvent whose name holds the bytes FF FE: not UTF-8 at all."""
    text = orjson.dumps(_centre("gen-invalid-utf8", "C-GEN-1"))
    return _input(text.replace("语料中心".encode(), b"\xff\xfe"))


def overlong_utf8(transport: str, limits: Limits) -> Input:
    """A '/' spelled as the overlong two-byte sequence C0 AF (a classic filter bypass)."""
    text = orjson.dumps(_centre("gen-overlong", "C-GEN-2"))
    return _input(text.replace("语料中心".encode(), b"a\xc0\xafb"))


def utf16(transport: str, limits: Limits) -> Input:
    """A valid CloudEvent, but encoded as UTF-16 with a byte-order mark."""
    text = orjson.dumps(_centre("gen-utf16", "C-GEN-3")).decode()
    return _input(text.encode("utf-16"))


def raw_control_character(transport: str, limits: Limits) -> Input:
    """A string holding a raw (unescaped) control character U+0001, which JSON forbids."""
    text = orjson.dumps(_centre("gen-control", "C-GEN-4"))
    return _input(text.replace("语料中心".encode(), b"a\x01b"))


def nested_40(transport: str, limits: Limits) -> Input:
    """A field of data nested 40 arrays deep (the limit is 32 levels)."""
    deep: object = "x"
    for _ in range(40):
        deep = [deep]
    event = _event("gen-nested-40", "C-GEN-5", {"level": "centre", "name": "n", "x": deep})
    return _input(orjson.dumps(event))


def nested_2000(transport: str, limits: Limits) -> Input:
    """Data nested 2,000 arrays deep: beyond what any JSON parser here reads (1,024)."""
    head = orjson.dumps(_event("gen-nested-2000", "C-GEN-6", None))[:-1]  # no closing brace
    return _input(head[: -len(b"null")] + b"[" * 2000 + b"]" * 2000 + b"}")


def oversize_event(transport: str, limits: Limits) -> Input:
    """A CloudEvent one byte over the transport's event size limit."""
    event = _centre("gen-oversize", "C-GEN-7")
    size = len(orjson.dumps(event))
    event["padding"] = "x" * (limits.max_event_bytes - size + 1 - len(b',"padding":""'))
    body = orjson.dumps(event)
    assert len(body) == limits.max_event_bytes + 1, len(body)
    return _input(body)


def header_not_utf8(transport: str, limits: Limits) -> Input:
    """Binary mode whose ``ce_id`` header holds the byte FF (over HTTP: ``%FF``)."""
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"gen-\xff"),
        ("ce_source", b"urn:corpus:producer"),
        ("ce_type", b"practice.site.registered.v1"),
        ("ce_subject", b"C-GEN-8"),
        ("ce_time", TIME.encode()),
        ("content-type", b"application/json"),
    ]
    data = orjson.dumps({"level": "centre", "name": "n"})
    return _input(data, headers=headers, mode="binary")


def batch_too_many(transport: str, limits: Limits) -> Input:
    """A batch of valid events, one more than the batch limit."""
    events = [_centre(f"gen-many-{n}", f"C-MANY-{n}") for n in range(limits.max_batch_events + 1)]
    return _input(orjson.dumps(events), mode="batch", content_type=_BATCH)


def batch_too_big(transport: str, limits: Limits) -> Input:
    """A batch one byte over the batch size limit (few events, padded with spaces)."""
    body = orjson.dumps([_centre("gen-big", "C-BIG-1")])
    return _input(
        body[:-1] + b" " * (limits.max_batch_bytes - len(body) + 1) + b"]",
        mode="batch",
        content_type=_BATCH,
    )


def batch_item_too_deep(transport: str, limits: Limits) -> Input:
    """A batch of a valid event and one nested 300 levels deep (readable, but not writable back)."""
    deep: object = 1
    for _ in range(300):
        deep = {"a": deep}
    events = [
        _centre("gen-batch-ok", "C-BATCH-OK"),
        _event("gen-batch-deep", "C-BATCH-DEEP", {"level": "centre", "name": "n", "x": deep}),
    ]
    return _input(_dump_deep(events), mode="batch", content_type=_BATCH)


def batch_nested_2000(transport: str, limits: Limits) -> Input:
    """A batch whose only item is nested 2,000 levels deep: the array cannot even be read."""
    return _input(b"[" * 2000 + b"]" * 2000, mode="batch", content_type=_BATCH)


_BATCH = "application/cloudevents-batch+json"


def _dump_deep(value: object) -> bytes:
    """Write JSON deeper than orjson writes (it stops at 255 levels), iteratively."""
    out: list[bytes] = []
    stack: list[object] = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, bytes):
            out.append(node)
        elif isinstance(node, dict):
            parts: list[object] = [b"{"]
            for index, (name, item) in enumerate(node.items()):
                parts += [b"," if index else b"", orjson.dumps(name) + b":", item]
            parts.append(b"}")
            stack.extend(reversed(parts))
        elif isinstance(node, list):
            parts = [b"["]
            for index, item in enumerate(node):
                parts += [b"," if index else b"", item]
            parts.append(b"]")
            stack.extend(reversed(parts))
        else:
            out.append(orjson.dumps(node))
    return b"".join(out)
