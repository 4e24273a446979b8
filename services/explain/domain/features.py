"""Checking raw feature values against the model's declared inputs."""

from __future__ import annotations

import math
from collections.abc import Mapping

from services.explain.domain.model import Column, Scalar
from services.explain.errors import InvalidRequest


def coerce(columns: tuple[Column, ...], raw: Mapping[str, object]) -> dict[str, Scalar]:
    """The values typed as the model declares; every problem is reported at once.

    >>> coerce((Column("age", "int"), Column("job", "str")), {"age": 30, "job": "a"})
    {'age': 30, 'job': 'a'}
    >>> coerce((Column("age", "int"),), {"age": "thirty"})
    Traceback (most recent call last):
    ...
    services.explain.errors.InvalidRequest: 1 feature value(s) rejected
    """
    errors: list[dict[str, str]] = []
    names = {c.name for c in columns}
    errors += [{"field": k, "error": "not an input of this model"} for k in raw if k not in names]
    values: dict[str, Scalar] = {}
    for column in columns:
        if column.name not in raw or raw[column.name] is None:
            errors.append({"field": column.name, "error": "missing"})
            continue
        value, problem = _typed(column, raw[column.name])
        if problem:
            errors.append({"field": column.name, "error": problem})
        else:
            values[column.name] = value
    if errors:
        raise InvalidRequest(f"{len(errors)} feature value(s) rejected", errors)
    return values


def _typed(column: Column, value: object) -> tuple[Scalar, str | None]:
    if column.kind == "str":
        return (value, None) if isinstance(value, str) else (None, f"expected a string, got {_kind(value)}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None, f"expected a number, got {_kind(value)}"
    if not math.isfinite(value):
        return None, "expected a finite number"
    if column.kind == "int":
        if float(value) != int(value):
            return None, "expected a whole number"
        return int(value), None
    return float(value), None


def _kind(value: object) -> str:
    return type(value).__name__
