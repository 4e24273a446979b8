"""Decode, upcast and validate events from the wire; encode them back."""

import json
import math
from collections.abc import Mapping
from typing import Any, NoReturn

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from contracts.common import ContractError, FieldError
from contracts.envelope import WIRE_REQUIRED, Event
from contracts.events import ALL_EVENTS
from contracts.upcasting import UPCASTERS, register_upcaster, upcast

__all__ = [
    "EVENT_TYPES",
    "MAX_DEPTH",
    "UPCASTERS",
    "ContractError",
    "encode_event",
    "nesting_depth",
    "parse_event",
    "register_upcaster",
]

MAX_DEPTH = 64
"""The deepest nesting of arrays and objects an event may have (ours have 5). Deeper is `not_json`, a
limit of the contract rather than of whichever decoder's stack."""

EVENT_TYPES: dict[str, type[Event[Any]]] = {cls.type_name(): cls for cls in ALL_EVENTS}
"""Every event class in the catalogue, by `event_type`."""

# Context entries pydantic fills from the input itself (a parser's complaint about a character, the
# offending attribute name...). They are withheld from messages because inputs may hold PII.
_INPUT_DERIVED_CTX = ("error", "attribute", "tag", "tz_actual", "encoding_error")
_WITHHELD = "(detail withheld)"


def encode_event(event: Event[Any]) -> bytes:
    """Compact UTF-8 JSON of the whole envelope."""
    return event.model_dump_json().encode("utf-8")


def parse_event(
    data: bytes | str | dict[str, Any],
    types: Mapping[str, type[Event[Any]]] = EVENT_TYPES,
) -> Event[Any]:
    """Turn wire data into the right event class, upcasting old versions; raise `ContractError`."""
    obj = data if isinstance(data, dict) else _decode(data)
    if not isinstance(obj, dict):
        raise ContractError("not_object", "message is JSON but not a JSON object")
    event_type = obj.get("event_type")
    cls = types.get(event_type) if isinstance(event_type, str) else None
    if cls is None:
        raise ContractError("unknown_event_type", "event_type is missing or not a known event type")
    _require_envelope(obj)
    obj = upcast(obj, cls)
    try:
        return cls.model_validate(obj)
    except ValidationError as exc:
        errors = [_field_error(err) for err in exc.errors(include_url=False)]
        raise ContractError("schema_violation", f"{cls.type_name()} failed validation", errors) from None


def _decode(data: bytes | str) -> Any:
    """Python's json with every check spelled out (servicekit.decoding has a faster path in front)."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise ContractError("not_json", f"message is not valid UTF-8 (byte {exc.start})") from None
    try:
        obj = json.loads(
            text, parse_constant=_reject_constant, parse_float=_finite_float, object_pairs_hook=_unique_keys
        )
    except ContractError:
        raise
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise ContractError("not_json", f"invalid JSON: {exc.msg} at {where}") from None
    except (ValueError, RecursionError):  # an integer too long to convert, or nesting too deep
        raise ContractError("not_json", "JSON number too long or nesting too deep") from None
    brackets = text.count("{") + text.count("[")  # at least the depth: most events skip the walk
    if brackets > MAX_DEPTH and nesting_depth(obj) > MAX_DEPTH:
        raise ContractError("not_json", f"JSON nested deeper than {MAX_DEPTH} levels") from None
    try:  # "\ud800" is valid JSON but no Unicode text: a string holding it could not be written again
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ContractError(
            "not_json", "a string holds a lone surrogate, which is not Unicode text"
        ) from None
    return obj


def nesting_depth(obj: Any) -> int:
    """How deep arrays and objects nest in decoded JSON (a scalar is 0), without recursion."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def _finite_float(text: str) -> float:
    # 1e400 is JSON, but no double holds it: Python reads it as infinity, which JSON cannot carry on.
    value = float(text)
    if math.isinf(value):
        raise ContractError("not_json", "a JSON number is out of the range of a double")
    return value


def _reject_constant(_: str) -> NoReturn:
    # Python's json accepts NaN/Infinity, which are not JSON and other clients cannot read.
    raise ContractError("not_json", "non-finite number literals are not valid JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Duplicate keys are read differently by different parsers: a consumer and the audit log could
    # disagree about what a message said. Refuse them.
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ContractError("not_json", "JSON object has duplicate keys")
    return obj


def _require_envelope(obj: dict[str, Any]) -> None:
    # The models default these for producers' convenience; on the wire they must be present, or a
    # redelivered message would get a fresh event_id and defeat idempotent consumers.
    missing = [name for name in WIRE_REQUIRED if name not in obj]
    if missing:
        errors = [FieldError(field=name, code="missing", message="Field required") for name in missing]
        raise ContractError("schema_violation", "envelope fields missing", errors)


def _field_error(err: ErrorDetails) -> FieldError:
    """Pydantic's error without the input. The location names fields and dict keys, not values."""
    message = err["msg"]
    ctx = err.get("ctx") or {}
    for key in _INPUT_DERIVED_CTX:
        if key in ctx and str(ctx[key]):
            message = message.replace(str(ctx[key]), _WITHHELD)
    return FieldError(field=".".join(str(part) for part in err["loc"]), code=err["type"], message=message)
