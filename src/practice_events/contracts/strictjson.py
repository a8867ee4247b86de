"""Strict JSON: orjson, plus the checks orjson leaves out, each with a stable code.

orjson refuses whatever is not JSON (``MALFORMED_JSON``), but three things it
accepts cannot be stored faithfully, so they are refused here:

=======================  ==================================================================
code                     when
=======================  ==================================================================
``DUPLICATE_ATTRIBUTE``  the top-level object of a structured CloudEvent names a member
                         twice (two ``id`` members: which one is the idempotency key?)
``DUPLICATE_KEY``        an object below it (in ``data``) names a member twice
``NESTING_TOO_DEEP``     arrays and objects nested more than :data:`MAX_DEPTH` levels
``INVALID_ATTRIBUTE`` /  a string holds U+0000 (NUL), which PostgreSQL text cannot hold
``SCHEMA_VIOLATION``     (in an attribute / in ``data``)
=======================  ==================================================================

orjson, like most parsers, keeps the *last* of two members with the same name
without a word. RFC 8259 leaves duplicates to the implementation, so another
reader of the same bytes (a producer's log, an auditor's tool) may keep the
first: the stored event would then differ from what the producer believes it
sent. Refusing them is the only answer every reader agrees with (RFC 7493,
I-JSON, says the same).

Cost, since this runs for every event: duplicate members are found without a
second parse. Every string of a JSON text, member names included, is delimited
by two unescaped quotes, and a parsed document keeps every string of the text
except the names (and values) of the members it dropped as duplicates. So the
text has duplicates exactly when it has more unescaped quotes than the parsed
document written back by orjson. That costs two ``bytes.count`` calls and one
``orjson.dumps``: 2.7 µs of CPU per event on the demo district's events, beside
2.1 µs for ``orjson.loads`` and 120–190 µs for the whole pipeline
(docs/performance.md); only a text that fails the count is parsed again, by the standard
library with an ``object_pairs_hook``, to name the duplicated member. Depth is
checked the same way: a text with at most :data:`MAX_DEPTH` brackets cannot be
nested deeper, and only a text with more is walked.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from practice_events.errors import ContractError, MalformedInputError

MAX_DEPTH = 32
"""Most levels of nested arrays and objects in one event (the contracts use about six)."""

_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_NUL_ESCAPE = b"\\u0000"

Path = tuple[str | int, ...]


def loads(raw: bytes, *, envelope: bool = True) -> Any:
    """Decode ``raw`` as JSON and make the checks of the module docstring.

    ``envelope`` says whether the top-level object is a structured CloudEvent
    (its members are attributes) or, in binary mode, the event's ``data``.
    Raises :class:`~practice_events.errors.ContractError` with a stable code.
    """
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc) or "recursion" in str(exc).lower():
            raise _too_deep() from None
        msg = f"not valid JSON: {exc}"
        raise MalformedInputError(msg) from None
    check(raw, obj, envelope=envelope)
    return obj


def check(raw: bytes, obj: Any, *, envelope: bool = True) -> None:
    """Refuse ``obj`` (decoded from ``raw`` by orjson) if it is too deep, has duplicates or NUL."""
    # At most MAX_DEPTH brackets cannot nest deeper than that: walk only longer texts.
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and depth(obj) > MAX_DEPTH:
        raise _too_deep()
    if has_duplicates(raw, obj):
        raise _duplicate_error(raw, envelope=envelope)
    if _NUL_ESCAPE in raw:
        where = find_nul(obj)
        if where is not None:
            raise _nul_error(where, envelope=envelope)


def quotes(text: bytes) -> int:
    """Return how many unescaped double quotes a JSON text has (two per string)."""
    if b"\\" not in text:
        return text.count(b'"')
    if b"\\\\" not in text:
        return text.count(b'"') - text.count(b'\\"')
    return _ESCAPE.sub(b"", text).count(b'"')


def has_duplicates(raw: bytes, obj: Any) -> bool:
    """Tell whether ``raw`` named a member twice in some object (``obj`` is its parse)."""
    try:
        written = orjson.dumps(obj)
    except orjson.JSONEncodeError:  # pragma: no cover - depth is checked first
        return duplicate_member(raw) is not None
    return quotes(raw) != quotes(written)


def depth(obj: Any) -> int:
    """Return how deep arrays and objects nest in ``obj`` (a scalar: 0), without recursion.

    Stops counting once past :data:`MAX_DEPTH` (the answer is then ``MAX_DEPTH + 1``).
    """
    deepest = 0
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest


class _Members(dict[str, Any]):
    """A decoded object that remembers the first member name it saw twice."""

    duplicate: str | None = None


def _pairs(pairs: list[tuple[str, Any]]) -> _Members:
    members = _Members()
    for name, value in pairs:
        if name in members and members.duplicate is None:
            members.duplicate = name
        members[name] = value
    return members


def duplicate_member(raw: bytes) -> tuple[Path, str] | None:
    """Return (path of the object, member name) of the first duplicated member, if any.

    Objects nearer the top are reported first. This parses ``raw`` again with
    the standard library, so it is only called once a duplicate is known to exist.
    """
    try:
        tree = json.loads(raw, object_pairs_hook=_pairs)
    except (ValueError, RecursionError):
        return None
    queue: list[tuple[Any, Path]] = [(tree, ())]
    for node, path in queue:  # breadth first: the queue grows while it is read
        if isinstance(node, _Members):
            if node.duplicate is not None:
                return path, node.duplicate
            queue.extend((value, (*path, name)) for name, value in node.items())
        elif isinstance(node, list):
            queue.extend((value, (*path, index)) for index, value in enumerate(node))
    return None


def find_nul(obj: Any) -> Path | None:
    """Return the path of the first string (or member name) holding U+0000, if any."""
    stack: list[tuple[Any, Path]] = [(obj, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return path
        elif isinstance(node, dict):
            for name, value in node.items():
                if "\x00" in name:
                    return (*path, name)
                stack.append((value, (*path, name)))
        elif isinstance(node, list):
            stack.extend((value, (*path, index)) for index, value in enumerate(node))
    return None


def render(path: Path, *, envelope: bool) -> str:
    """Spell a path as producers read it: ``data.items[2].code``."""
    parts: list[str] = [] if envelope else ["data"]
    for step in path:
        if isinstance(step, int):
            parts[-1:] = [f"{parts[-1] if parts else ''}[{step}]"]
        else:
            parts.append(step.replace("\x00", "\\u0000"))
    return ".".join(parts) or "the top level"


def split_array(raw: bytes) -> list[bytes]:
    """Return the bytes of each item of a JSON array, exactly as they were sent.

    Used for HTTP batches whose items cannot be written back faithfully (they
    name a member twice or nest too deeply), so that each item reaches the
    pipeline as sent and is refused on its own. Raises
    :class:`~practice_events.errors.ContractError` if the array cannot be split.
    """
    text = raw.decode("utf-8")
    decoder = json.JSONDecoder()
    items: list[bytes] = []
    index = _skip(text, 0)
    if text[index : index + 1] != "[":
        msg = "a batch must be a JSON array"
        raise MalformedInputError(msg)
    index = _skip(text, index + 1)
    if text[index : index + 1] == "]":
        return items
    while True:
        try:
            _, end = decoder.raw_decode(text, index)
        except RecursionError:
            raise _too_deep() from None
        except ValueError as exc:
            msg = f"not valid JSON: {exc}"
            raise MalformedInputError(msg) from None
        items.append(text[index:end].encode("utf-8"))
        index = _skip(text, end)
        separator = text[index : index + 1]
        if separator == "]":
            return items
        if separator != ",":
            msg = f"not valid JSON: expected ',' or ']' at character {index}"
            raise MalformedInputError(msg)
        index = _skip(text, index + 1)


def _skip(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t\r\n":
        index += 1
    return index


def _too_deep() -> ContractError:
    msg = (
        f"the JSON nests arrays and objects more than {MAX_DEPTH} levels deep; "
        "no event type needs more than a few"
    )
    return ContractError(msg, code="NESTING_TOO_DEEP")


def _duplicate_error(raw: bytes, *, envelope: bool) -> ContractError:
    found = duplicate_member(raw)
    if found is None:
        msg = "a JSON object names the same member twice; send each member once"
        return ContractError(msg, code="DUPLICATE_KEY")
    path, name = found
    shown = name.replace("\x00", "\\u0000")
    if envelope and not path:
        msg = (
            f"attribute '{shown}' appears twice in the CloudEvent; send each attribute once "
            "(readers disagree about which of the two counts)"
        )
        return ContractError(msg, code="DUPLICATE_ATTRIBUTE", attribute=shown)
    where = render(path, envelope=envelope)
    msg = f"{where} names member '{shown}' twice; send each member once"
    return ContractError(msg, code="DUPLICATE_KEY", path=where)


def _nul_error(path: Path, *, envelope: bool) -> ContractError:
    where = render(path, envelope=envelope)
    if envelope and len(path) == 1:
        msg = f"attribute '{where}' contains the character U+0000 (NUL); remove it"
        return ContractError(msg, code="INVALID_ATTRIBUTE", attribute=where)
    msg = f"{where} contains the character U+0000 (NUL), which cannot be stored; remove it"
    return ContractError(msg, code="SCHEMA_VIOLATION", path=where)
