"""Events from Kafka bytes, on a fast path for what our own producers write.

`contracts.parse_event` decodes with Python's json and spells every check out (duplicate keys, NaN,
numbers no double holds, lone surrogates), because `contracts` depends on pydantic and the standard
library only. Every consumer pays that per event. Here msgspec's C decoder goes first, and its result is
trusted only when encoding it again gives back the very same bytes: that holds for compact UTF-8 JSON
with shortest floats, which is what `encode_event` writes. A JSON object with a duplicate key decodes
to fewer keys and cannot encode back to bytes that hold it; NaN, an out-of-range number, invalid UTF-8
or a lone surrogate does not decode; nesting deeper than the contract's `MAX_DEPTH` is measured. So
whatever the strict checks would refuse goes down the strict path and gets its precise reason there,
as does JSON in any other spelling (spaces, escapes, exponents). The JSON step is about 5x faster than
the strict decode on our events, the whole decode with validation about 2.3x (bench/event_decoding.py).
"""

from __future__ import annotations

from typing import Any

import msgspec

from contracts.envelope import Event
from contracts.registry import MAX_DEPTH, nesting_depth, parse_event


def decode_event(data: bytes) -> Event[Any]:
    """The event `data` holds, as `parse_event` reads it; raises `ContractError` as it does."""
    canonical = decode_canonical(data)
    return parse_event(data if canonical is None else canonical)


def decode_canonical(data: bytes) -> dict[str, Any] | None:
    """The JSON object in `data` when it is in our producers' spelling, else None (take the strict path)."""
    try:
        obj = msgspec.json.decode(data)
    except (msgspec.MsgspecError, ValueError, RecursionError):  # ValueError: invalid UTF-8 among them
        return None
    if not isinstance(obj, dict) or msgspec.json.encode(obj) != data:
        return None
    brackets = data.count(b"{") + data.count(b"[")  # at least the depth: most events skip the walk
    return None if brackets > MAX_DEPTH and nesting_depth(obj) > MAX_DEPTH else obj
