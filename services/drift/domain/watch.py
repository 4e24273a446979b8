"""The drift watch: every monitor of the service and the label join, fed by batches of plain values.

- data drift: one monitor per feature of the clean records (RankCusum for numeric, or the older
  MeanShift with `numeric_detector="MeanShift"`; ChiSquare for categorical). The false-alarm budget
  (`false_alarms_per_100k` over all watched features together) is split evenly over the features
  (Bonferroni): each RankCusum is calibrated for ARL0 = 100k / budget x number of features;
- prediction drift: one MeanShift on the scores per model;
- concept drift: one BernoulliCusum (or a River HDDM_A / ADWIN) on the error stream per model, fed when a
  label meets its prediction. Errors of predictions made by an older version than the model's
  current one are not fed; a new version restarts that model's prediction and concept monitors;
- online quality: every labelled prediction, of every version, feeds that version's rolling
  accuracy, AUC and calibration (domain/quality.py);
- estimated performance: every served prediction feeds its version's CBPE windows (domain/estimate.py),
  from the calibrated probability it carries (the raw score, flagged uncalibrated, when it has none);
  its label, when it comes, is scored against the estimate of its window.
Shadow predictions (challengers) are not watched.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from services.drift.domain.detectors import ChiSquare
from services.drift.domain.estimate import PerformanceEstimator
from services.drift.domain.join import LabelJoin
from services.drift.domain.monitor import Alarm, Monitor
from services.drift.domain.quality import RollingQuality
from services.drift.domain.watch_config import WatchConfig

__all__ = ["DriftWatch", "Finding", "Prediction", "WatchConfig"]


@dataclass(frozen=True)
class Finding:
    """One alarm, with what the event needs besides the monitor's evidence."""

    kind: str  # data | prediction | concept
    feature: str | None
    model_name: str | None
    model_version: str | None
    alarm: Alarm
    window_end: Any
    last_source: Any


@dataclass(frozen=True)
class Prediction:
    prediction_id: str
    entity_id: str | None
    model_name: str
    model_version: str
    score: float
    decision: str
    shadow: bool = False
    probability: float | None = None  # calibrated P(positive), when the model carries a calibration
    window: int | None = None  # its CBPE window (set by the watch)
    canary: bool = False  # answered by a canary: its own quality and estimate, not the champion's monitors


@dataclass
class DriftWatch:
    config: WatchConfig
    monitors: dict[str, Monitor] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)  # model -> current version
    join: LabelJoin = field(init=False)
    skipped: dict[str, int] = field(default_factory=dict)
    # (model, version) -> its rolling online quality; every version, the older ones too
    quality: dict[tuple[str, str], RollingQuality] = field(default_factory=dict)
    quality_touched: set[tuple[str, str]] = field(default_factory=set)
    # labelled predictions since the last take_labelled() (for the report store; not persisted)
    labelled: list[tuple[Prediction, bool]] = field(default_factory=list)
    # (model, version) -> its performance estimated before labels (CBPE windows)
    estimators: dict[tuple[str, str], PerformanceEstimator] = field(default_factory=dict)
    estimates_touched: set[tuple[str, str]] = field(default_factory=set)
    canaries: dict[str, str] = field(default_factory=dict)  # model -> the last canary version seen

    def __post_init__(self) -> None:
        self.join = LabelJoin(self.config.join_max_pending, self.config.join_ttl_s)
        for seed, name in enumerate(self.config.numeric):
            self.monitors[f"data:{name}"] = self.config.numeric_monitor(seed)
        for name in self.config.categorical:
            self.monitors[f"data:{name}"] = self.config.windowed_monitor(self.config.categorical_detector())

    def reconcile_categorical(self) -> None:
        """Bring restored categorical monitors to the configuration. The test's level decides and holds
        no state: a changed `DRIFT_CHI_SQUARE_ALPHA` (or a new default) is given to the monitor and to
        the copy it re-baselines from, and the counts stay. A changed shape (reference, window or block
        size) makes the counts meaningless for the new test: that monitor starts over and learns a new
        reference, as after an alarm."""
        config = self.config
        wanted = _shape(config.categorical_detector())
        for name in config.categorical:
            key = f"data:{name}"
            monitor = self.monitors.get(key)
            if monitor is None or not isinstance(monitor.detector, ChiSquare):
                continue
            if _shape(monitor.detector) != wanted:
                self.monitors[key] = config.windowed_monitor(config.categorical_detector())
                continue
            for detector in (monitor.detector, monitor.prototype):
                if isinstance(detector, ChiSquare):
                    detector.alpha = config.chi_square_alpha

    def observe_records(
        self, batch: list[tuple[dict[str, Any], Any, Any]], model: str | None
    ) -> list[Finding]:
        """`batch`: (record, event time, source) per clean record."""
        if not batch:
            return []
        _, first_at, first_source = batch[0]
        numeric = [(name, self.monitors[f"data:{name}"]) for name in self.config.numeric]
        categorical = [(name, self.monitors[f"data:{name}"]) for name in self.config.categorical]
        for _, monitor in numeric + categorical:
            monitor.mark(first_at, first_source)
        findings: list[Finding] = []
        version = self.versions.get(model) if model else None
        for record, at, source in batch:
            for name, monitor in numeric:
                value = record.get(name)
                if isinstance(value, int | float) and monitor.update(value).drift_detected:
                    findings.append(_finding("data", name, model, version, monitor, at, source))
            for name, monitor in categorical:
                value = record.get(name)
                if value is not None and monitor.update(str(value)).drift_detected:
                    findings.append(_finding("data", name, model, version, monitor, at, source))
        return findings

    def observe_predictions(self, batch: list[tuple[Prediction, Any, Any]]) -> list[Finding]:
        findings: list[Finding] = []
        marked: set[str] = set()
        for prediction, at, source in batch:
            if prediction.shadow:
                self._skip("shadow")
                continue
            model = prediction.model_name
            if prediction.canary:
                self.canaries[model] = prediction.model_version
                # A canary's predictions interleave with the champion's: fed to the champion's
                # monitors they would restart them at every switch of version. The canary has its own
                # online quality and estimate (below), and GET /canary compares the two.
                self._skip("canary")
            else:
                scores, _ = self._model_monitors(model, prediction.model_version)
                if model not in marked:
                    scores.mark(at, source)
                    marked.add(model)
                if scores.update(prediction.score).drift_detected:
                    findings.append(
                        _finding("prediction", None, model, prediction.model_version, scores, at, source)
                    )
            prediction = self._estimate(prediction, at.timestamp())
            joined = self.join.add_prediction(
                prediction.prediction_id, prediction.entity_id, prediction, at.timestamp()
            )
            if joined is not None:
                findings += self._error(joined.prediction, joined.label, at, source)
        return findings

    def observe_labels(self, batch: list[tuple[str | None, str, Any, Any, Any]]) -> list[Finding]:
        """`batch`: (prediction id, entity id, label, event time, source) per label."""
        findings: list[Finding] = []
        for prediction_id, entity_id, label, at, source in batch:
            joined = self.join.add_label(prediction_id, entity_id, label, at.timestamp())
            if joined is not None:
                findings += self._error(joined.prediction, joined.label, at, source)
        return findings

    def _error(self, prediction: Prediction, label: Any, at: Any, source: Any) -> list[Finding]:
        model = prediction.model_name
        truth = _positive(label, self.config.positive_label)
        if truth is None:
            self._skip("unknown_label")
            return []
        predicted = prediction.decision == self.config.positive_decision
        self._quality_of(model, prediction.model_version).add(prediction.score, truth, predicted)
        key = (model, prediction.model_version)
        estimator = self.estimators.get(key)
        if estimator and estimator.label(prediction.window, _probability(prediction), predicted, truth):
            self.estimates_touched.add(key)
        self.labelled.append((prediction, truth))
        if prediction.canary or self.versions.get(model) != prediction.model_version:
            self._skip("canary_error" if prediction.canary else "older_version")
            return []
        _, errors = self._model_monitors(model, prediction.model_version)
        errors.mark(at, source)
        if errors.update(float(predicted != truth)).drift_detected:
            return [_finding("concept", None, model, prediction.model_version, errors, at, source)]
        return []

    def _quality_of(self, model: str, version: str) -> RollingQuality:
        key = (model, version)
        self.quality_touched.add(key)
        if key not in self.quality:
            self.quality[key] = RollingQuality(self.config.quality_window)
            mine = [k for k in self.quality if k[0] == model]
            for old in mine[: -self.config.quality_versions]:  # the oldest versions go first
                del self.quality[old]
        return self.quality[key]

    def take_quality(self) -> dict[tuple[str, str], dict[str, float | None]]:
        """The measures of the versions labelled since the last call (for the gauges)."""
        touched = {k: self.quality[k].measures() for k in self.quality_touched if k in self.quality}
        self.quality_touched = set()
        return touched

    def _estimate(self, prediction: Prediction, at: float) -> Prediction:
        """Feeds the version's CBPE windows; the prediction, now naming its window, goes to the join."""
        key = (prediction.model_name, prediction.model_version)
        if key not in self.estimators:
            self.estimators[key] = self.config.estimator()
            mine = [k for k in self.estimators if k[0] == key[0]]
            for old in mine[: -self.config.quality_versions]:  # the oldest versions go first
                del self.estimators[old]
        self.estimates_touched.add(key)
        declined = prediction.decision == self.config.positive_decision
        calibrated = prediction.probability is not None
        window = self.estimators[key].observe(_probability(prediction), declined, calibrated, at)
        return replace(prediction, window=window)

    def take_estimates(self) -> dict[tuple[str, str], dict[str, Any]]:
        """The estimates of the versions served or labelled since the last call (for the gauges), each
        with `rose`: its flags raised for the first time (for the alarms)."""
        touched = {}
        for key in self.estimates_touched & self.estimators.keys():
            snapshot = self.estimators[key].snapshot()
            touched[key] = snapshot | {"rose": self.estimators[key].rising(snapshot)}
        self.estimates_touched = set()
        return touched

    def take_labelled(self) -> list[tuple[Prediction, bool]]:
        """The (prediction, truth) pairs joined since the last call."""
        taken, self.labelled = self.labelled, []
        return taken

    def _model_monitors(self, model: str, version: str) -> tuple[Monitor, Monitor]:
        if self.versions.get(model) != version:  # a new model: new baselines for its outputs
            self.versions[model] = version
            self.monitors[f"prediction:{model}"] = self.config.windowed_monitor(self.config.score_detector())
            self.monitors[f"concept:{model}"] = self.config.concept_monitor()
        return self.monitors[f"prediction:{model}"], self.monitors[f"concept:{model}"]

    def _skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def _probability(prediction: Prediction) -> float:
    """The calibrated probability, else the raw score (a probability for our models, uncalibrated)."""
    if prediction.probability is not None:
        return prediction.probability
    return min(1.0, max(0.0, prediction.score))


def _positive(label: Any, positive: str) -> bool | None:
    if isinstance(label, bool | int | float):
        return bool(label)
    if isinstance(label, str):
        text = label.strip().lower()
        if text in (positive.lower(), "1", "true"):
            return True
        return False if text else None
    return None


def _finding(
    kind: str,
    feature: str | None,
    model: str | None,
    version: str | None,
    monitor: Monitor,
    at: Any,
    source: Any,
) -> Finding:
    assert monitor.last_alarm is not None
    return Finding(kind, feature, model, version, monitor.last_alarm, at, source)


def _shape(detector: ChiSquare) -> tuple[int, int, int]:
    return detector.reference_size, detector.window_size, detector.block
