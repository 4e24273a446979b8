"""Cost of the training-profile check that guards /predict, next to the scoring it precedes.

In process, on the reference model (20 features, German credit; its card's profile is the whole data
set): microseconds per row for `LoadedModel.out_of_profile` (every value inside, the common case; and
three values outside) and for the compiled linear scorer. `python -m bench.serving_profile_check`.
Prints JSON; nothing is written.
"""

from __future__ import annotations

import json
import statistics
import timeit
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from services.serving.domain.model import Column, Kind, LoadedModel
from services.serving.domain.scoring import SklearnScorer, compile_linear
from workbench.serving_devdata import feature_rows, fit_reference_pipeline, reference_card

KINDS: dict[str, Kind] = {"int64": "int", "float64": "float"}


def model() -> LoadedModel:
    pipeline, x = fit_reference_pipeline()
    columns = tuple(Column(str(n), KINDS.get(str(x[n].dtype), "str")) for n in x.columns)
    scorer = compile_linear(pipeline, columns) or SklearnScorer(pipeline, columns)
    card = reference_card(x, 0.5)
    now = datetime.now(UTC)
    return LoadedModel("credit-risk", "1", "champion", columns, 0.5, scorer, now, 0.0, card)


def per_row_us(call: Callable[[], Any], number: int = 20_000, repeats: int = 7) -> float:
    return statistics.median(timeit.repeat(call, number=number, repeat=repeats)) / number * 1e6


def main() -> None:
    served = model()
    record = feature_rows(1).drop(columns=["application_id", "applied_at"]).to_dict("records")[0]
    row = {c.name: (float(record[c.name]) if c.kind == "float" else record[c.name]) for c in served.columns}
    assert all(type(v) in (int, float, str) for v in row.values())  # as check_features hands them on
    hostile = {**row, "credit_amount": 1e30, "purpose": "yacht", "age_in_years": -1}
    figures = {
        "features": len(served.columns),
        "profile_check_inside_us": round(per_row_us(lambda: served.out_of_profile(row)), 2),
        "profile_check_three_outside_us": round(per_row_us(lambda: served.out_of_profile(hostile)), 2),
        "score_us": round(per_row_us(lambda: served.scorer.score([row])), 2),
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
