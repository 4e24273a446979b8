"""Pure pieces of the explain service: feature checks, fidelity, counterfactual search, summaries."""

from __future__ import annotations

import doctest

import pytest

from services.explain.domain import counterfactual, features, fidelity, model, summary
from services.explain.domain.model import Column, Contribution, LocalExplanation
from services.explain.errors import InvalidRequest
from tests.unit.test_explain_support import reference_model


@pytest.mark.parametrize("module", [features, fidelity, model, summary])
def test_doctests(module: object) -> None:
    assert doctest.testmod(module).failed == 0  # type: ignore[arg-type]


def test_coerce_reports_every_problem() -> None:
    columns = (Column("age", "int"), Column("amount", "float"), Column("job", "str"))
    with pytest.raises(InvalidRequest) as err:
        features.coerce(columns, {"age": 3.5, "amount": "lots", "extra": 1})
    fields = {e["field"]: e["error"] for e in err.value.errors}
    assert fields == {
        "extra": "not an input of this model",
        "age": "expected a whole number",
        "amount": "expected a number, got str",
        "job": "missing",
    }
    assert features.coerce(columns, {"age": 3.0, "amount": 2, "job": "x"}) == {
        "age": 3,
        "amount": 2.0,
        "job": "x",
    }


def test_counterfactual_flips_the_decision_and_the_model_agrees() -> None:
    m = reference_model()
    instance = {
        k: (v.item() if hasattr(v, "item") else v) for k, v in m.reference[m.feature_names].iloc[0].items()
    }
    start = m.decide(float(m.p_bad(m.frame([instance]))[0]))
    found = counterfactual.search(m.p_bad, m.columns, instance, m.reference, m.threshold)
    assert found is not None and found.decision != start
    changed = {**instance, **{k: new for k, (_, new) in found.changes.items()}}
    assert m.decide(float(m.p_bad(m.frame([changed]))[0])) == found.decision


def test_summary_names_top_factors_and_warns_when_a_check_fails() -> None:
    e = LocalExplanation("m", "1", None, {}, 0.62, "decline", 0.5)
    e.shap = [
        Contribution("credit_amount", 12000.0, 0.8),
        Contribution("age_in_years", 23, 0.3),
        Contribution("housing", "own", -0.1),
    ]
    e.fidelity = {"shap_additive": True}
    text = summary.local_summary(e)
    assert text.startswith("The application was declined: the estimated risk of default is 62%")
    assert "The credit amount (12,000) raised the risk the most" in text
    assert "Caution" not in text
    e.fidelity = {"shap_additive": False}
    assert "Caution: this breakdown failed its accuracy check" in summary.local_summary(e)
