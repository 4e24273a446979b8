"""Find changes between two JSON Schemas of an event that would break its existing consumers.

A consumer built on the old schema breaks when a property it reads disappears, when a value it
accepts no longer looks the same (type, allowed values, format, bounds narrowed), or when replaying
old messages through the new model fails (a new required property). Additions it does not know are
harmless: payloads ignore unknown fields.
"""

import json
from typing import Any

Schema = dict[str, Any]
Branch = tuple[Schema, str | None]  # a union alternative, resolved, with the $ref it came from

_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")


def breaking_changes(old: Schema, new: Schema) -> list[str]:
    """Readable descriptions (`path: what changed`) of every breaking change from `old` to `new`."""
    return _Comparison(old, new).run()


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    names = {float: "number", str: "string", list: "array", dict: "object"}
    return names.get(type(value), "unknown")


def _types(branch: Schema) -> set[str] | None:
    """JSON types a single (non-union) schema admits; None means any."""
    declared = branch.get("type")
    if declared is not None:
        return {declared} if isinstance(declared, str) else set(declared)
    if "const" in branch:
        return {_json_type(branch["const"])}
    if "enum" in branch:
        return {_json_type(value) for value in branch["enum"]}
    return None


def _covers(types: set[str], wanted: str) -> bool:
    return wanted in types or (wanted == "integer" and "number" in types)


def _show(types: set[str] | None) -> str:
    return "any" if types is None else "|".join(sorted(types))


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


class _Comparison:
    def __init__(self, old_root: Schema, new_root: Schema) -> None:
        self.old_root, self.new_root = old_root, new_root
        self.problems: list[str] = []
        self._expanding: set[tuple[str | None, str | None]] = set()

    def run(self) -> list[str]:
        self._node(self.old_root, self.new_root, "")
        return self.problems

    def _report(self, path: str, what: str) -> None:
        self.problems.append(f"{path or '(root)'}: {what}")

    def _node(self, old: Schema, new: Schema, path: str) -> None:
        old_branches = _branches(old, self.old_root)
        new_branches = _branches(new, self.new_root)
        self._union([b for b, _ in old_branches], [b for b, _ in new_branches], path)
        for (old_branch, old_ref), (new_branch, new_ref) in _pairs(old_branches, new_branches):
            pair = (old_ref, new_ref)
            if old_ref is not None and pair in self._expanding:
                continue  # recursive schema: this pair is already being compared higher up
            self._expanding.add(pair)
            self._branch(old_branch, new_branch, path)
            self._expanding.discard(pair)

    def _union(self, old: list[Schema], new: list[Schema], path: str) -> None:
        old_types, new_types = _union_types(old), _union_types(new)
        if new_types is not None and (old_types is None or not all(_covers(new_types, t) for t in old_types)):
            self._report(path, f"type changed from {_show(old_types)} to {_show(new_types)}")
        old_values, new_values = _values(old), _values(new)
        if new_values is not None:
            if old_values is None:
                self._report(path, f"values restricted to {', '.join(sorted(new_values))}")
            elif removed := old_values - new_values:
                self._report(path, f"allowed values removed: {', '.join(sorted(removed))}")

    def _branch(self, old: Schema, new: Schema, path: str) -> None:
        new_format = new.get("format")
        if new_format is not None and new_format != old.get("format"):
            self._report(path, f"format changed from {old.get('format', 'none')} to {new_format}")
        self._bounds(old, new, path)
        self._object(old, new, path)
        if "items" in old or "items" in new:
            self._node(old.get("items", {}), new.get("items", {}), f"{path}[]")

    def _bounds(self, old: Schema, new: Schema, path: str) -> None:
        for key in _LOWER_BOUNDS:
            if key in new and (key not in old or new[key] > old[key]):
                self._report(path, f"{key} raised to {new[key]}")
        for key in _UPPER_BOUNDS:
            if key in new and (key not in old or new[key] < old[key]):
                self._report(path, f"{key} lowered to {new[key]}")
        if "pattern" in new and new["pattern"] != old.get("pattern"):
            self._report(path, "pattern changed")

    def _object(self, old: Schema, new: Schema, path: str) -> None:
        old_props, new_props = old.get("properties", {}), new.get("properties", {})
        for name, old_prop in old_props.items():
            if name not in new_props:
                self._report(_join(path, name), "property removed")
            else:
                self._node(old_prop, new_props[name], _join(path, name))
        newly_required = set(new.get("required", [])) - set(old.get("required", []))
        for name in sorted(newly_required):
            what = "became required" if name in old_props else "new required property"
            self._report(_join(path, name), what)
        old_extra, new_extra = old.get("additionalProperties", True), new.get("additionalProperties", True)
        if new_extra is False and old_extra is not False:
            self._report(path, "additional properties no longer allowed")
        elif isinstance(new_extra, dict):
            self._node(old_extra if isinstance(old_extra, dict) else {}, new_extra, f"{path}.*")


def _resolve(schema: Schema, root: Schema) -> tuple[Schema, str | None]:
    """Follow `$ref` (and single-element `allOf`) to the schema it names."""
    ref_name = None
    for _ in range(64):  # a chain of refs, not a cycle
        if "$ref" in schema:
            ref_name = schema["$ref"]
            schema = _lookup(root, ref_name)
        elif len(schema.get("allOf", [])) == 1:
            schema = schema["allOf"][0]
        else:
            break
    return schema, ref_name


def _lookup(root: Schema, ref: str) -> Schema:
    if not ref.startswith("#"):
        raise ValueError(f"only local $ref is supported, got {ref!r}")
    node: Any = root
    for part in ref.lstrip("#").strip("/").split("/"):
        if part:
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return dict(node)


def _branches(schema: Schema, root: Schema) -> list[Branch]:
    """The alternatives of a union (anyOf/oneOf, flattened, refs resolved), or the schema itself."""
    resolved, ref = _resolve(schema, root)
    alternatives = resolved.get("anyOf") or resolved.get("oneOf")
    if not alternatives:
        return [(resolved, ref)]
    return [leaf for alt in alternatives for leaf in _branches(alt, root)]


def _union_types(branches: list[Schema]) -> set[str] | None:
    found: set[str] = set()
    for branch in branches:
        types = _types(branch)
        if types is None:
            return None
        found |= types
    return found


def _values(branches: list[Schema]) -> set[str] | None:
    """Allowed literal values (as JSON text) if every branch restricts them; None means open."""
    found: set[str] = set()
    for branch in branches:
        if "const" in branch:
            found.add(json.dumps(branch["const"], sort_keys=True))
        elif "enum" in branch:
            found |= {json.dumps(value, sort_keys=True) for value in branch["enum"]}
        elif _types(branch) == {"null"}:
            found.add("null")
        else:
            return None
    return found


def _pairs(old: list[Branch], new: list[Branch]) -> list[tuple[Branch, Branch]]:
    """Match each old union branch with the new branch of the same title, else of a covering type."""
    pairs = []
    for old_branch in old:
        title = old_branch[0].get("title")
        same_title = [b for b in new if title is not None and b[0].get("title") == title]
        old_types = _types(old_branch[0]) or set()
        same_type = [b for b in new if any(_covers(_types(b[0]) or set(), t) for t in old_types)]
        candidates = same_title or same_type
        if candidates:
            pairs.append((old_branch, candidates[0]))
    return pairs
