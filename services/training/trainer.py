"""The training use case, blocking (the service runs it in a worker thread):

labels so far -> Feast point-in-time rows -> dropped rows detected -> time split -> fit -> calibrated
(a Platt map on out-of-fold scores, domain/calibration.py) ->
MLflow run + registered version -> candidate and champion scored on the same holdout -> gate ->
alias moved (pass) or not (fail). Refusals (too few labels, one class only, bad params) end as a
rejected outcome with the reason, never as an exception.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from pydantic import ValidationError

from contracts.events import TrainingRequested
from feature_repo.names import ENTITY_KEY, EVENT_TIME, FEATURE_SERVICE, FEATURE_VIEW
from services.training.adapters.feast_source import TrainingSource
from services.training.adapters.mlflow_registry import Candidate, Champion, ModelRegistry
from services.training.adapters.state import TrainingState
from services.training.domain.calibration import Calibrated, FitFold, calibrate, calibrate_in_sample
from services.training.domain.dataset import (
    LABEL,
    Assembled,
    Window,
    assemble,
    dataset_sha256,
    dataset_version,
    entity_frame,
    time_split,
)
from services.training.domain.gate import Verdict, decide, with_mitigation
from services.training.domain.mitigation import check_at_fault, mitigate
from services.training.domain.model import Evaluation, build_pipeline, evaluate, input_features
from services.training.domain.policy import GatePolicy, ModelParams
from services.training.errors import Refused
from services.training.outcome import Outcome, Timer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunContext:
    """What one run learns from and is judged on."""

    data: Assembled
    train: pd.DataFrame
    holdout: pd.DataFrame
    inputs: list[str]
    policy: GatePolicy
    params: ModelParams

    def judge(self, pipeline: Any) -> Evaluation:
        """A fitted pipeline scored on the holdout."""
        return evaluate(self.holdout, pipeline.predict_proba(self.holdout[self.inputs])[:, 1], self.policy)

    def calibrate(self, fit_fold: FitFold, evaluation: Evaluation) -> Calibrated:
        """A Platt map for the candidate `fit_fold` refits, measured on its holdout scores."""
        assert evaluation.scored is not None
        scored = evaluation.scored
        return calibrate(fit_fold, self.train, self.inputs, scored.y, scored.p_bad, self.params.seed)

    def refit(self, rows: pd.DataFrame) -> Any:
        """The candidate's pipeline fitted on some of the training rows (a calibration fold)."""
        return build_pipeline(self.inputs, self.params).fit(rows[self.inputs], rows[LABEL])

    def judge_champion(self, champion: Champion) -> Evaluation:
        """The champion scored on the same holdout (it picks its own input columns)."""
        return evaluate(self.holdout, champion.score(self.holdout), self.policy)


@dataclass
class Trainer:
    state: TrainingState
    source: TrainingSource
    registry: ModelRegistry
    policy: Callable[[], GatePolicy]  # read at each run: a policy change applies to the next one
    code_version: str
    # Asked right before the alias moves: may this process still promote for this request id? (An
    # instance whose claim on the request expired and was taken over may not: training/run_claim.py.)
    may_promote: Callable[[str], bool] = lambda _request_id: True

    def run(self, request: TrainingRequested) -> Outcome:
        outcome = Outcome(str(request.event_id), "rejected")
        timer = Timer()
        started = time.perf_counter()
        try:
            with timer("policy"):
                policy = self.policy()
                params = model_params(policy.model, request.payload.params)
            self._train(request, policy, params, outcome, timer)
        except Refused as refusal:
            outcome.status, outcome.reasons = "rejected", [refusal.message]
        outcome.timings = timer.seconds | {"total": round(time.perf_counter() - started, 4)}
        return outcome

    def _train(
        self, request: TrainingRequested, policy: GatePolicy, params: ModelParams, out: Outcome, timer: Timer
    ) -> None:
        labels = self.state.latest_labels()
        if len(labels) < policy.min_labels:
            raise Refused(
                f"too few labels: {len(labels)} labelled entities, the policy needs {policy.min_labels}"
            )
        with timer("historical"):
            retrieved = self.source.historical(entity_frame(labels))
            data = assemble(
                labels, retrieved, Window(request.payload.window_start, request.payload.window_end)
            )
        out.counts = data.counts()
        log.info("training set assembled: %s", out.counts)
        train, holdout = self._split(data, policy)
        run = RunContext(data, train, holdout, input_features(policy), policy, params)
        with timer("fit"):
            pipeline = build_pipeline(run.inputs, params).fit(train[run.inputs], train[LABEL])
            candidate = run.judge(pipeline)
        with timer("calibrate"):
            calibrated = run.calibrate(run.refit, candidate)
        out.metrics = candidate.metrics
        out.lineage = self._lineage(request, data, train, holdout, dataset_sha256(data.frame))
        with timer("log_model"):
            out.run_id, out.model_version = self._log(run, pipeline, candidate, calibrated, out)
        with timer("gate"):
            champion = self.registry.champion()
            champion_eval = run.judge_champion(champion) if champion else None
            out.previous_version = champion.version if champion else None
            verdict = decide(candidate, policy, champion_eval, out.previous_version)
            at_fault = check_at_fault(verdict) if verdict.short_only_on_fairness() else None
        if at_fault is not None and policy.fairness.mitigation != "none":
            with timer("mitigation"):
                verdict = self._mitigate(run, pipeline, candidate, verdict, at_fault, champion_eval, out)
        with timer("gate"):
            self._conclude(verdict, champion_eval, out)

    def _mitigate(
        self,
        run: RunContext,
        pipeline: Any,
        candidate: Evaluation,
        verdict: Verdict,
        at_fault: str,
        champion_eval: Evaluation | None,
        out: Outcome,
    ) -> Verdict:
        """Short on fairness only: the unmitigated candidate's verdict is recorded, a mitigated one is
        logged as a run and version of its own (tagged with the first's run) and the gate decides on it."""
        assert out.run_id is not None and out.model_version is not None
        self.registry.record_gate(out.run_id, out.model_version, verdict.evidence, {})
        mitigated = mitigate(pipeline, run.train, run.inputs, at_fault, run.policy)
        fair = run.judge(mitigated.pipeline)
        assert fair.scored is not None
        calibrated = calibrate_in_sample(  # refitting the mitigation in folds costs seconds per fold
            mitigated.pipeline, run.train, run.inputs, fair.scored.y, fair.scored.p_bad
        )
        before = (out.run_id, out.model_version, candidate, verdict)
        tags = {"mitigation_of_run": out.run_id, "mitigation": mitigated.method}
        out.run_id, out.model_version = self._log(run, mitigated.pipeline, fair, calibrated, out, tags)
        out.metrics = fair.metrics
        out.lineage |= {"mitigation_of_run": before[0], "mitigation_of_version": before[1]}
        log.info("fairness mitigation (%s): %s", at_fault, mitigated.method)
        return with_mitigation(
            decide(fair, run.policy, champion_eval, out.previous_version), mitigated.method, before
        )

    def _conclude(self, verdict: Verdict, champion_eval: Evaluation | None, out: Outcome) -> None:
        assert out.run_id is not None and out.model_version is not None
        out.verdict = verdict
        champion_metrics = {
            f"champion_{k}": v for k, v in (champion_eval.metrics if champion_eval else {}).items()
        }
        self.registry.record_gate(out.run_id, out.model_version, verdict.evidence, champion_metrics)
        if verdict.passed:
            if not self.may_promote(out.request_id):
                raise Refused("the claim on this request was taken over by another instance: not promoted")
            self.registry.promote(out.model_version)
            out.status = "promoted"
        else:
            out.reasons = [f"verdict {verdict.outcome}", *verdict.reasons]

    def _log(
        self,
        run: RunContext,
        pipeline: Any,
        evaluation: Evaluation,
        calibrated: Calibrated,
        out: Outcome,
        tags: dict[str, str] | None = None,
    ) -> tuple[str, str]:
        skipped = {"calibration_skipped": calibrated.reason} if calibrated.reason else {}
        reliability = (
            {"calibration/reliability.json": calibrated.reliability} if calibrated.reliability else {}
        )
        return self.registry.log_candidate(
            Candidate(
                pipeline=pipeline,
                inputs=run.inputs,
                example=run.train[run.inputs].head(5).reset_index(drop=True),
                decision_threshold=run.policy.decision_threshold,
                dataset_sha256=out.lineage["dataset_sha256"],
                params=run.params.model_dump()
                | self._run_params(run.policy, run.inputs)
                | calibrated.params(),
                metrics=evaluation.metrics
                | {k: float(v) for k, v in out.counts.items()}
                | calibrated.metrics(),
                tags={k: str(v) for k, v in out.lineage.items()} | (tags or {}) | skipped,
                artifacts={"dataset/excluded_rows.json": self._excluded(run.data)} | reliability,
                training_set=run.data.frame,
                calibration=calibrated.calibration,
            )
        )

    def _split(self, data: Assembled, policy: GatePolicy) -> tuple[pd.DataFrame, pd.DataFrame]:
        if len(data.frame) < policy.min_labels:
            raise Refused(
                f"too few usable rows: {len(data.frame)} of {data.requested} labelled entities have "
                f"features ({data.counts()}), the policy needs {policy.min_labels}"
            )
        train, holdout = time_split(data.frame, policy.holdout_share)
        for name, part in (("training", train), ("holdout", holdout)):
            if part[LABEL].nunique() < 2:
                raise Refused(f"the {name} split holds a single class: both good and bad labels are needed")
        return train, holdout

    def _lineage(
        self,
        request: TrainingRequested,
        data: Assembled,
        train: pd.DataFrame,
        holdout: pd.DataFrame,
        sha: str,
    ) -> dict[str, Any]:
        return {
            "window_start": _iso(train[EVENT_TIME].min()),
            "window_end": _iso(train[EVENT_TIME].max()),
            "holdout_start": _iso(holdout[EVENT_TIME].min()),
            "holdout_end": _iso(holdout[EVENT_TIME].max()),
            "dataset_version": dataset_version(data.frame, sha),
            "dataset_sha256": sha,
            "feature_views": FEATURE_VIEW,
            "feature_service": FEATURE_SERVICE,
            "code_version": self.code_version,
            "trigger_event_id": str(request.event_id),
            "correlation_id": request.correlation_id,
            "reason": request.payload.reason,
            "requested_by": request.payload.requested_by,
            "train_rows": len(train),
        }

    @staticmethod
    def _run_params(policy: GatePolicy, inputs: list[str]) -> dict[str, Any]:
        return {
            "model_type": "LogisticRegression",
            "holdout_share": policy.holdout_share,
            "min_labels": policy.min_labels,
            "decision_threshold": policy.decision_threshold,
            "excluded_features": ",".join(policy.exclude_features),
            "input_features": len(inputs),
        }

    @staticmethod
    def _excluded(data: Assembled) -> dict[str, Any]:
        return {
            "dropped_by_store": data.dropped_by_store,
            "without_features": data.without_features,
            "note": f"{ENTITY_KEY}s asked of the feature store but missing from the training set",
        }


def model_params(base: ModelParams, overrides: dict[str, Any]) -> ModelParams:
    """The policy's hyper-parameters with a request's overrides; unknown or invalid ones are refused."""
    try:
        return ModelParams.model_validate(base.model_dump() | overrides)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise Refused(f"invalid training params: {problems}") from None


def _iso(moment: datetime) -> str:
    return pd.Timestamp(moment).isoformat()
