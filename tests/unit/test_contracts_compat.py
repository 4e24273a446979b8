"""Schema compatibility: the committed schemas guard every consumer; breaking_changes' own rules."""

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from contracts.compat import breaking_changes
from contracts.registry import EVENT_TYPES
from contracts.upcasting import UPCASTERS

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "events" / "schemas"
COMMITTED = sorted(SCHEMAS.glob("*.json"))
NAME = re.compile(r"^(?P<type>[A-Za-z]+)\.v(?P<version>[0-9]+)\.json$")


@pytest.mark.parametrize("path", COMMITTED, ids=[p.name for p in COMMITTED])
def test_committed_schema_still_accepted(path: Path) -> None:
    """A change that breaks a consumer must bump schema_version and add an upcaster."""
    match = NAME.match(path.name)
    assert match, f"unexpected schema file name {path.name}"
    event_type, version = match["type"], int(match["version"])
    cls = EVENT_TYPES.get(event_type)
    assert cls is not None, f"{event_type} was removed but consumers may still receive it"
    assert version <= cls.version(), f"{event_type} went back to an older version"
    if version == cls.version():
        committed = json.loads(path.read_text(encoding="utf-8"))
        assert breaking_changes(committed, cls.model_json_schema()) == []
    else:
        missing = [v for v in range(version, cls.version()) if (event_type, v) not in UPCASTERS]
        assert not missing, f"{event_type}: no upcaster from v{missing}"


def test_every_event_has_a_committed_schema() -> None:
    committed = {p.name for p in COMMITTED}
    for name, cls in EVENT_TYPES.items():
        assert f"{name}.v{cls.version()}.json" in committed, "run `python -m contracts.export`"


def obj(required: tuple[str, ...] = (), **properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required)}


INT = {"type": "integer"}
NUM = {"type": "number"}
STR = {"type": "string"}
OPT_STR = {"anyOf": [STR, {"type": "null"}], "default": None}
BASE = obj(("a", "inner"), a=INT, b=OPT_STR, inner={"$ref": "#/$defs/Inner"})
BASE["$defs"] = {"Inner": {**obj(("x",), x=INT, tags={"type": "array", "items": STR}), "title": "Inner"}}


def changed(**edits: Any) -> dict[str, Any]:
    """BASE with top-level properties replaced (None removes one) and optional extra `required`."""
    new = copy.deepcopy(BASE)
    new["required"] += edits.pop("_required", [])
    new["$defs"]["Inner"]["properties"].update(edits.pop("_inner", {}))
    for name, schema in edits.items():
        if schema is None:
            del new["properties"][name]
        else:
            new["properties"][name] = schema
    return new


def test_identical_schemas_are_compatible() -> None:
    assert breaking_changes(BASE, BASE) == []


def test_removed_property() -> None:
    assert breaking_changes(BASE, changed(b=None)) == ["b: property removed"]


def test_changed_type() -> None:
    assert breaking_changes(BASE, changed(a=STR)) == ["a: type changed from integer to string"]


def test_narrowed_number_to_integer() -> None:
    base = obj(n=NUM)
    assert breaking_changes(base, obj(n=INT)) == ["n: type changed from number to integer"]


def test_nullable_became_non_null() -> None:
    assert breaking_changes(BASE, changed(b=STR)) == ["b: type changed from null|string to string"]


def test_new_required_property() -> None:
    assert breaking_changes(BASE, changed(c=STR, _required=["c"])) == ["c: new required property"]


def test_optional_property_became_required() -> None:
    assert breaking_changes(BASE, changed(_required=["b"])) == ["b: became required"]


def test_nested_change_through_ref() -> None:
    assert breaking_changes(BASE, changed(_inner={"x": STR})) == [
        "inner.x: type changed from integer to string"
    ]


def test_nested_change_in_array_items() -> None:
    problems = breaking_changes(BASE, changed(_inner={"tags": {"type": "array", "items": INT}}))
    assert problems == ["inner.tags[]: type changed from string to integer"]


def test_nested_change_in_dict_values() -> None:
    old = obj(m={"type": "object", "additionalProperties": NUM})
    new = obj(m={"type": "object", "additionalProperties": STR})
    assert breaking_changes(old, new) == ["m.*: type changed from number to string"]


def test_enum_narrowed() -> None:
    old = obj(kind={"enum": ["data", "prediction", "concept"], "type": "string"})
    new = obj(kind={"enum": ["data", "prediction"], "type": "string"})
    assert breaking_changes(old, new) == ['kind: allowed values removed: "concept"']
    assert breaking_changes(new, old) == []


def test_const_changed() -> None:
    old = obj(v={"const": 1, "type": "integer"})
    assert breaking_changes(old, obj(v={"const": 2, "type": "integer"})) == ["v: allowed values removed: 1"]


def test_free_value_restricted_to_enum() -> None:
    assert breaking_changes(obj(s=STR), obj(s={"enum": ["a"], "type": "string"})) == [
        's: values restricted to "a"'
    ]


def test_format_changed_or_added() -> None:
    assert breaking_changes(obj(t=STR), obj(t={**STR, "format": "date-time"})) == [
        "t: format changed from none to date-time"
    ]
    assert breaking_changes(obj(t={**STR, "format": "date-time"}), obj(t=STR)) == []


def test_bounds_narrowed() -> None:
    old = obj(s={**STR, "maxLength": 64}, n={**INT, "minimum": 0})
    new = obj(s={**STR, "maxLength": 32}, n={**INT, "minimum": 1})
    assert breaking_changes(old, new) == ["s: maxLength lowered to 32", "n: minimum raised to 1"]


def test_new_optional_property_is_compatible() -> None:
    assert breaking_changes(BASE, changed(c=OPT_STR)) == []


def test_widened_types_are_compatible() -> None:
    assert breaking_changes(BASE, changed(a=NUM)) == []
    assert breaking_changes(BASE, changed(a={"anyOf": [INT, STR]})) == []
    assert breaking_changes(BASE, changed(a={})) == []
    assert breaking_changes(BASE, changed(_inner={"x": {"anyOf": [INT, {"type": "null"}]}})) == []


def test_required_property_becoming_optional_is_compatible() -> None:
    new = changed()
    new["required"] = ["inner"]
    assert breaking_changes(BASE, new) == []


def test_recursive_schema_terminates() -> None:
    node = {"$ref": "#/$defs/Node"}
    tree = obj(root=node)
    tree["$defs"] = {
        "Node": {
            **obj(
                v=INT, children={"type": "array", "items": node}, parent={"anyOf": [node, {"type": "null"}]}
            )
        }
    }
    assert breaking_changes(tree, tree) == []
    broken = copy.deepcopy(tree)
    broken["$defs"]["Node"]["properties"]["v"] = STR
    assert breaking_changes(tree, broken) == ["root.v: type changed from integer to string"]


def test_real_schema_changes_are_found_through_refs_and_unions() -> None:
    current = EVENT_TYPES["DriftDetected"].model_json_schema()
    broken = copy.deepcopy(current)
    del broken["$defs"]["DriftDetectedPayload"]["properties"]["statistic"]
    broken["$defs"]["KafkaCoordinates"]["properties"]["offset"] = STR
    assert breaking_changes(current, broken) == [
        "payload.statistic: property removed",
        "payload.first_source.offset: type changed from integer to string",
        "payload.last_source.offset: type changed from integer to string",
    ]
