"""servicekit.decoding: the msgspec fast path in front of parse_event reads our events to the same
event, and refuses whatever parse_event refuses, with the same reason."""

from __future__ import annotations

import json
from typing import Any

import pytest

from contracts.envelope import Event
from contracts.registry import MAX_DEPTH, ContractError, encode_event, parse_event
from contracts.samples import sample_events
from servicekit.decoding import decode_canonical, decode_event
from tests.unit.test_contracts_registry import BAD_MESSAGES, SECRET, _assert_no_echo, _wire


def _compact(data: dict[str, Any]) -> bytes:
    """Bytes as the services write them (compact, raw UTF-8): the form the fast path reads."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def _nested(depth: int) -> bytes:
    """The sample prediction, compact, with an extra field `x` holding arrays nested `depth` deep (the
    contract ignores unknown fields, so only the nesting can refuse it)."""
    return _compact(_wire())[:-1] + b',"x":' + b"[" * depth + b"]" * depth + b"}"


COMPACT_BAD: list[tuple[str, bytes, str]] = [
    ("nested one past the limit", _nested(MAX_DEPTH), "not_json"),  # the envelope is level 1
    # past where Python's json runs out of stack (it moves with the caller's depth) and msgspec does not
    ("nested about 990 deep", _nested(991), "not_json"),
    ("duplicate key", _compact(_wire())[:-1] + f',"producer":"{SECRET}"}}'.encode(), "not_json"),
    (
        "duplicate key, nested",
        _compact(_wire()).replace(b'"score":0.87', b'"score":0.87,"score":0.1'),
        "not_json",
    ),
    ("nan", _compact(_wire()).replace(b'"score":0.87', b'"score":NaN'), "not_json"),
    (
        "out-of-range float",
        _compact(_wire()).replace(b'"features":{', b'"features":{"x":-1e400,'),
        "not_json",
    ),
    ("huge number", b'{"event_type":"PredictionMade","x":' + b"9" * 5000 + b"}", "not_json"),
    ("lone surrogate", _compact(_wire()).replace(SECRET.encode(), b"\\ud800" + SECRET.encode()), "not_json"),
    ("invalid utf-8", _compact(_wire()).replace(SECRET.encode(), SECRET.encode() + b"\xff"), "not_json"),
    ("deep nesting", b"[" * 100_000 + b"]" * 100_000, "not_json"),
    ("array", f'["{SECRET}"]'.encode(), "not_object"),
    ("unknown type", _compact(_wire(event_type=SECRET)), "unknown_event_type"),
    ("wrong type", _compact(_wire(payload={**_wire()["payload"], "score": SECRET})), "schema_violation"),
]
EVERY_BAD = COMPACT_BAD + [
    (f"{name}, as parse_event's tests send it", data.encode() if isinstance(data, str) else data, code)
    for name, data, code in BAD_MESSAGES
    if not isinstance(data, dict)
]


@pytest.mark.parametrize(
    ("data", "code"), [(d, c) for _, d, c in EVERY_BAD], ids=[n for n, _, _ in EVERY_BAD]
)
def test_a_bad_message_is_refused_with_parse_events_reason_and_no_echo(data: bytes, code: str) -> None:
    with pytest.raises(ContractError) as strict:
        parse_event(data)
    with pytest.raises(ContractError) as fast:
        decode_event(data)
    assert fast.value.code == strict.value.code == code
    assert fast.value.errors == strict.value.errors
    _assert_no_echo(fast.value)


def test_a_compact_duplicate_key_decodes_but_is_not_vouched_for() -> None:
    """The check that makes the fast path safe: msgspec keeps the last of two keys, so the object it
    gives encodes to other bytes, and the strict path (which refuses duplicates) reads the message."""
    data = _compact(_wire()).replace(b'"score":0.87', b'"score":0.87,"score":0.1')
    assert decode_canonical(data) is None


@pytest.mark.parametrize("event", sample_events(), ids=lambda e: e.event_type)
def test_every_event_as_the_services_encode_it_takes_the_fast_path_to_the_same_event(
    event: Event[Any],
) -> None:
    wire = encode_event(event)
    assert decode_canonical(wire) is not None  # else every consumer pays the strict path
    assert decode_event(wire) == parse_event(wire) == event


def test_json_in_other_spellings_takes_the_strict_path_to_the_same_event() -> None:
    """Spaces, escaped non-ASCII and exponents do not encode back byte for byte: the strict path reads
    them, to the same event."""
    data = _wire()
    data["payload"]["decision"] = "approuvé"
    compact = _compact(data)
    spaced = json.dumps(data).encode()  # ", " and ": ", and é as \u00e9
    exponent = compact.replace(b'"score":0.87', b'"score":8.7E-1')
    for other in (spaced, exponent):
        assert decode_canonical(other) is None
        assert decode_event(other) == decode_event(compact) == parse_event(compact)


def test_nesting_up_to_the_limit_is_read_alike_and_many_brackets_are_not_depth() -> None:
    deepest = _nested(MAX_DEPTH - 1)  # the envelope is level 1: this reaches the limit exactly
    assert decode_canonical(deepest) is not None
    assert decode_event(deepest) == parse_event(deepest)
    wide = _compact(_wire())[:-1] + b',"x":[' + b",".join([b"[]"] * 500) + b"]}"  # 501 brackets, depth 3
    assert decode_canonical(wide) is not None  # the bracket count alone does not send it to the slow path
    assert decode_event(wide) == parse_event(wide)
