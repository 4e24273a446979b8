"""Upcasters: old payload versions are converted forward, never reinterpreted in place.

Register an upcaster next to the event it serves, in its `contracts/events/` module:

    @register_upcaster("PredictionMade", from_version=1)
    def _prediction_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
        payload["decision"] = payload.pop("label")  # a copy: editing it in place is fine
        return payload

then bump the class's `schema_version` literal and re-export the schemas; the committed v1
schema stays, and the compatibility test checks that an upcaster chain reaches the current version.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from contracts.common import ContractError, FieldError

if TYPE_CHECKING:
    from contracts.envelope import Event

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

UPCASTERS: dict[tuple[str, int], Upcaster] = {}
"""(event_type, from_version) -> function turning that version's payload into the next version's."""


def register_upcaster(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Register `fn(payload_v_n) -> payload_v_n+1` for `event_type`, applied by `parse_event`."""

    def register(fn: Upcaster) -> Upcaster:
        key = (event_type, from_version)
        if key in UPCASTERS:
            raise ValueError(f"an upcaster for {event_type} v{from_version} is already registered")
        UPCASTERS[key] = fn
        return fn

    return register


def upcast(obj: dict[str, Any], cls: "type[Event[Any]]") -> dict[str, Any]:
    """Bring `obj` (a wire dict of `cls`'s event type) to `cls`'s current schema version."""
    version, current = obj.get("schema_version"), cls.version()
    if type(version) is not int or version < 1:  # bool is an int subclass; refuse it too
        error = FieldError(
            field="schema_version", code="int_type", message="Input should be a positive integer"
        )
        raise ContractError("schema_violation", "schema_version is not a positive integer", [error])
    if version > current:
        raise ContractError(
            "unsupported_schema_version", f"{cls.type_name()} v{version} is newer than known v{current}"
        )
    payload = obj.get("payload")
    for step in range(version, current):
        upcaster = UPCASTERS.get((cls.type_name(), step))
        if upcaster is None:
            raise ContractError("unsupported_schema_version", f"no upcaster for {cls.type_name()} v{step}")
        if not isinstance(payload, dict):
            return obj  # validation reports the malformed payload
        try:
            payload = upcaster(dict(payload))
        except ContractError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            error = FieldError(field="payload", code="upcast_failed", message=type(exc).__name__)
            message = f"upcasting {cls.type_name()} v{step} failed"
            raise ContractError("schema_violation", message, [error]) from None
    return {**obj, "schema_version": current, "payload": payload}
