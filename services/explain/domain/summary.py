"""Plain-language summaries for the people a decision affects, next to the technical detail."""

from __future__ import annotations

from services.explain.domain.model import Contribution, Counterfactual, LocalExplanation, Scalar


def words(feature: str) -> str:
    """A feature name as words.

    >>> words("credit_amount")
    'the credit amount'
    """
    return "the " + feature.replace("_", " ")


def shown(value: Scalar) -> str:
    """A value as a person reads it.

    >>> shown(12000.0), shown(3), shown("A14")
    ('12,000', '3', 'A14')
    """
    if isinstance(value, float) and value.is_integer():
        return f"{int(value):,}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def local_summary(explanation: LocalExplanation, top: int = 3) -> str:
    e = explanation
    parts = [
        f"The application was {'declined' if e.decision == 'decline' else 'approved'}: the estimated "
        f"risk of default is {e.p_bad:.0%} (applications at {e.threshold:.0%} or more are declined)."
    ]
    factors = e.shap if e.shap is not None else e.lime
    method = "shap" if e.shap is not None else "lime"
    if factors:
        parts.append(_factors(factors, top))
        if not _trusted(e, method):
            parts.append(
                "Caution: this breakdown failed its accuracy check, so treat it as a rough indication only."
            )
    if e.counterfactual_searched:
        parts.append(_counterfactual(e.counterfactual, e.decision))
    return " ".join(parts)


def _factors(contributions: list[Contribution], top: int) -> str:
    ranked = sorted(contributions, key=lambda c: abs(c.contribution), reverse=True)[:top]
    sentences = []
    for i, c in enumerate(ranked):
        verb = "raised" if c.contribution > 0 else "lowered"
        how = " the most" if i == 0 else ""
        sentences.append(f"{words(c.feature).capitalize()} ({shown(c.value)}) {verb} the risk{how}")
    return "; ".join(sentences) + "."


def _counterfactual(cf: Counterfactual | None, decision: str) -> str:
    if cf is None:
        return "No small change to the application was found that would have changed the decision."
    outcome = "approved" if decision == "decline" else "declined"
    changes = " and ".join(
        f"{words(f)} had been {shown(new)} instead of {shown(old)}" for f, (old, new) in cf.changes.items()
    )
    return f"It would have been {outcome} if {changes}."


def _trusted(e: LocalExplanation, method: str) -> bool:
    key = "shap_additive" if method == "shap" else "lime_faithful"
    return bool(e.fidelity.get(key, True))


def global_summary(importances: list[tuple[str, float]], version: str, top: int = 3) -> str:
    """The top features of a model in words.

    >>> global_summary([("credit_amount", 0.05), ("age_in_years", 0.01)], "3")
    'Model version 3 relies most on the credit amount, then the age in years.'
    """
    names = [words(n) for n, _ in importances[:top]]
    if not names:
        return f"Model version {version}: no feature measurably changes its predictions."
    rest = ", then ".join(names[1:])
    return f"Model version {version} relies most on {names[0]}" + (f", then {rest}." if rest else ".")
