"""Check feature values sent by a client against the model's declared inputs (pure logic)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from contracts.common import Scalar
from services.serving.domain.model import Column
from services.serving.errors import InvalidFeatures

_TYPE_NAMES = {"int": "an integer", "float": "a finite number", "str": "a string"}


def check_features(
    columns: Sequence[Column], values: Mapping[str, Scalar], *, strict: bool = True
) -> dict[str, Scalar]:
    """The model's inputs, in its order, from `values`; raises InvalidFeatures naming every problem.

    `strict` (values sent by a client) refuses names the model does not take. Values read from the
    online store are not strict: extra columns are ignored and an integral float fits an int input.

    >>> check_features([Column("age", "int"), Column("job", "str")], {"job": "clerk", "age": 30})
    {'age': 30, 'job': 'clerk'}
    """
    errors: list[dict[str, str]] = []
    row: dict[str, Scalar] = {}
    for column in columns:
        if column.name not in values:
            errors.append(_error(column.name, "missing", "required by the model"))
            continue
        value = values[column.name]
        if not strict and column.kind == "int" and isinstance(value, float) and value.is_integer():
            value = int(value)
        if not _is(column.kind, value):
            errors.append(_error(column.name, "wrong_type", f"must be {_TYPE_NAMES[column.kind]}"))
            continue
        row[column.name] = float(value) if column.kind == "float" else value  # type: ignore[arg-type]
    known = {column.name for column in columns}
    if strict:
        errors += [
            _error(name, "unknown", "not an input of the model") for name in values if name not in known
        ]
    if errors:
        raise InvalidFeatures(f"{len(errors)} invalid feature(s) for the model", errors)
    return row


def missing_features(columns: Sequence[Column], row: Mapping[str, Scalar]) -> list[str]:
    """Inputs the online store returned no value for."""
    return [column.name for column in columns if row.get(column.name) is None]


def _is(kind: str, value: Scalar) -> bool:
    if isinstance(value, bool) or value is None:
        return False
    if kind == "int":
        return isinstance(value, int)
    if kind == "float":
        return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
    return isinstance(value, str)


def _error(field: str, code: str, message: str) -> dict[str, str]:
    return {"field": f"features.{field}", "code": code, "message": message}
