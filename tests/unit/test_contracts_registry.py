"""parse_event: decoding, error codes without echoed values, upcasting; encode_event."""

import json
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import pytest

from contracts import upcasting
from contracts.common import ContractModel
from contracts.envelope import Event
from contracts.registry import EVENT_TYPES, ContractError, encode_event, parse_event, register_upcaster
from contracts.samples import sample_events

SECRET = "4111-1111-1111-1111"  # stands for PII that must never be echoed in an error
PREDICTION = next(e for e in sample_events() if e.event_type == "PredictionMade")


def _wire(**changes: Any) -> dict[str, Any]:
    """The sample prediction as a wire dict, with the decision holding the secret."""
    data: dict[str, Any] = json.loads(encode_event(PREDICTION))
    data["payload"]["decision"] = SECRET
    data.update(changes)
    return data


def _payload(mutate: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    data = _wire()
    mutate(data["payload"])
    return data


def _assert_no_echo(err: ContractError) -> None:
    texts = [str(err), err.message, *(f"{e.field} {e.code} {e.message}" for e in err.errors)]
    assert all(SECRET not in text for text in texts), texts


BAD_MESSAGES: list[tuple[str, bytes | str | dict[str, Any], str]] = [
    ("truncated", json.dumps(_wire())[:-5], "not_json"),
    ("empty", b"", "not_json"),
    ("nan", json.dumps(_wire()).replace('"score": 0.87', '"score": NaN'), "not_json"),
    ("infinity", json.dumps(_wire()).replace('"score": 0.87', '"score": -Infinity'), "not_json"),
    (
        "invalid utf-8",
        json.dumps(_wire()).encode().replace(SECRET.encode(), SECRET.encode() + b"\xff"),
        "not_json",
    ),
    ("duplicate key", json.dumps(_wire())[:-1] + f', "producer": "{SECRET}"}}', "not_json"),
    ("huge number", '{"event_type": "PredictionMade", "x": ' + "9" * 5000 + "}", "not_json"),
    ("out-of-range float", json.dumps(_wire()).replace('"score": 0.87', '"score": 1e400'), "not_json"),
    # the features map takes any number: before the check, Python read -1e400 as -infinity and kept it
    (
        "out-of-range float in a map",
        json.dumps(_wire()).replace('"features": {', '"features": {"x": -1e400, '),
        "not_json",
    ),
    ("lone surrogate", json.dumps(_wire()).replace(SECRET, "\\ud800" + SECRET), "not_json"),
    ("deep nesting", "[" * 100_000 + "]" * 100_000, "not_json"),
    ("array", json.dumps([SECRET]), "not_object"),
    ("string", json.dumps(SECRET), "not_object"),
    ("unknown type", _wire(event_type=SECRET), "unknown_event_type"),
    ("no type", {"payload": {"decision": SECRET}}, "unknown_event_type"),
    ("version too new", _wire(schema_version=2), "unsupported_schema_version"),
    ("version not int", _wire(schema_version=True), "schema_violation"),
    ("missing payload field", _payload(lambda p: p.pop("score")), "schema_violation"),
    ("wrong type", _payload(lambda p: p.update(score=SECRET)), "schema_violation"),
    ("bad uuid", _wire(event_id=SECRET), "schema_violation"),
    ("naive time", _wire(occurred_at="2025-01-02T03:04:05"), "schema_violation"),
    ("payload not object", _wire(payload=SECRET), "schema_violation"),
    ("bad bool", _payload(lambda p: p.update(shadow=SECRET)), "schema_violation"),
]


@pytest.mark.parametrize(
    ("data", "code"), [(d, c) for _, d, c in BAD_MESSAGES], ids=[n for n, _, _ in BAD_MESSAGES]
)
def test_bad_message_gets_code_and_no_echo(data: bytes | str | dict[str, Any], code: str) -> None:
    with pytest.raises(ContractError) as caught:
        parse_event(data)
    assert caught.value.code == code
    _assert_no_echo(caught.value)


def test_field_errors_name_the_field() -> None:
    with pytest.raises(ContractError) as caught:
        parse_event(_payload(lambda p: (p.pop("score"), p.update(latency_ms=-1))))
    found = {(e.field, e.code) for e in caught.value.errors}
    assert found == {("payload.score", "missing"), ("payload.latency_ms", "greater_than_equal")}


def test_envelope_fields_are_required_on_the_wire() -> None:
    # Defaulting a missing event_id would give each redelivery a new id and defeat deduplication.
    data = _wire()
    del data["event_id"], data["occurred_at"]
    with pytest.raises(ContractError) as caught:
        parse_event(data)
    assert caught.value.code == "schema_violation"
    assert {e.field for e in caught.value.errors} == {"event_id", "occurred_at"}


@pytest.mark.parametrize("form", ["bytes", "str", "dict"])
def test_accepts_bytes_str_and_dict(form: str) -> None:
    wire = encode_event(PREDICTION)
    data: Any = {"bytes": wire, "str": wire.decode(), "dict": json.loads(wire)}[form]
    assert parse_event(data) == PREDICTION


def test_contract_error_is_a_value_error() -> None:
    assert issubclass(ContractError, ValueError)


# A throwaway event, never added to the real catalogue: v1 had `speed` in revolutions per second;
# v2 renamed it and changed the unit.
class WidgetSpunPayload(ContractModel):
    widget: str
    speed_rpm: float


class WidgetSpun(Event[WidgetSpunPayload]):
    topic: ClassVar[str] = "test.widgets"
    event_type: Literal["WidgetSpun"] = "WidgetSpun"
    schema_version: Literal[2] = 2


@pytest.fixture
def upcasters(monkeypatch: pytest.MonkeyPatch) -> dict[tuple[str, int], Any]:
    """An empty upcaster registry for the test, so nothing leaks into the real one."""
    isolated: dict[tuple[str, int], Any] = {}
    monkeypatch.setattr(upcasting, "UPCASTERS", isolated)
    return isolated


def _widget_v1(**payload: Any) -> dict[str, Any]:
    return {
        "event_id": "00000000-0000-0000-0000-000000000001",
        "event_type": "WidgetSpun",
        "schema_version": 1,
        "occurred_at": "2025-01-02T03:04:05Z",
        "producer": "test",
        "correlation_id": "c-1",
        "payload": payload,
    }


def test_old_version_is_upcast(upcasters: dict[tuple[str, int], Any]) -> None:
    @register_upcaster("WidgetSpun", from_version=1)
    def rps_to_rpm(payload: dict[str, Any]) -> dict[str, Any]:
        return {"widget": payload["widget"], "speed_rpm": payload.pop("speed") * 60}

    assert upcasters == {("WidgetSpun", 1): rps_to_rpm}
    assert "WidgetSpun" not in EVENT_TYPES
    event = parse_event(_widget_v1(widget="w-1", speed=2.5), types={"WidgetSpun": WidgetSpun})
    assert isinstance(event, WidgetSpun)
    assert event.schema_version == 2
    assert event.payload == WidgetSpunPayload(widget="w-1", speed_rpm=150.0)
    assert parse_event(encode_event(event), types={"WidgetSpun": WidgetSpun}) == event


def test_old_version_without_upcaster_is_unsupported(upcasters: dict[tuple[str, int], Any]) -> None:
    with pytest.raises(ContractError) as caught:
        parse_event(_widget_v1(widget="w-1", speed=2.5), types={"WidgetSpun": WidgetSpun})
    assert caught.value.code == "unsupported_schema_version"


def test_failing_upcaster_is_a_schema_violation(upcasters: dict[tuple[str, int], Any]) -> None:
    register_upcaster("WidgetSpun", 1)(lambda payload: {"speed_rpm": payload["speed"] * 60})
    with pytest.raises(ContractError) as caught:
        parse_event(_widget_v1(widget=SECRET), types={"WidgetSpun": WidgetSpun})
    assert caught.value.code == "schema_violation"
    _assert_no_echo(caught.value)


def test_upcaster_registered_twice_is_refused(upcasters: dict[tuple[str, int], Any]) -> None:
    register_upcaster("WidgetSpun", 1)(dict)
    with pytest.raises(ValueError, match="already registered"):
        register_upcaster("WidgetSpun", 1)(dict)
