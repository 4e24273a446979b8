"""Issue 17, item 5: MLflow a data scientist can read. Runs are named by what started them; a
registered version's description carries the gate's verdict with each check's interval."""

from __future__ import annotations

from contracts.events import GateCheck, GateEvidence
from services.training.domain.describe import run_name, version_description

TAGS = {
    "reason": "drift",
    "requested_by": "training:drift",
    "window_start": "2026-12-01T10:00:00+00:00",
    "window_end": "2026-12-04T18:30:12+00:00",
    "dataset_sha256": "ab" * 32,
}


def test_a_run_is_named_by_what_started_it() -> None:
    assert run_name(TAGS) == "drift retrain by training:drift, data to 2026-12-04T18:30"
    mitigated = run_name(TAGS | {"mitigation": "exponentiated_gradient", "reason": "manual"})
    assert mitigated.startswith("manual run, exponentiated_gradient mitigation by ")
    assert run_name({}) == "run"


def test_a_versions_description_states_the_verdict_and_each_interval() -> None:
    evidence = GateEvidence(
        candidate_metrics={"auc": 0.81},
        verdict="not_enough_evidence",
        method="paired_bootstrap",
        confidence=0.95,
        holdout_rows=240,
        checks=[
            GateCheck(
                name="auc_not_worse",
                passed=False,
                value=0.012,
                low=-0.031,
                high=0.054,
                outcome="inconclusive",
            ),
            GateCheck(name="min_auc", passed=True, value=0.81, outcome="pass"),
        ],
    )
    text = version_description(evidence, TAGS)
    assert (
        text.splitlines()[0]
        == "Gate: not_enough_evidence (paired_bootstrap, 95% confidence, 240 holdout rows)."
    )
    assert "- auc_not_worse: 0.012 [-0.031, 0.054] -> inconclusive" in text
    assert "- min_auc: 0.810 -> pass" in text
    assert "from 2026-12-01T10:00 to 2026-12-04T18:30, dataset abababababab." in text
    assert text.endswith("Started by: drift retrain by training:drift, data to 2026-12-04T18:30.")
