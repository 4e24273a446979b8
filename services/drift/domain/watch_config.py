"""The drift watch's settings, and the monitors and estimators they build (domain/watch.py uses them)."""

from __future__ import annotations

from dataclasses import dataclass

from river.drift import ADWIN
from river.drift.binary import HDDMA

from services.drift.domain.cusum import RankCusum
from services.drift.domain.detectors import ChiSquare, Detector, MeanShift
from services.drift.domain.error_detectors import BernoulliCusum, RiverDetector
from services.drift.domain.estimate import PerformanceEstimator
from services.drift.domain.monitor import Monitor


@dataclass(frozen=True)
class WatchConfig:
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    reference_size: int = 500
    window_size: int = 200
    block: int = 50
    mean_shift_z: float = 6.0
    numeric_detector: str = "RankCusum"  # or "MeanShift" (the windowed z-test, for numeric features)
    cusum_reference_size: int = 1000  # RankCusum: values in its reference
    cusum_shift: float = 0.35  # RankCusum: allowance k, in sd (half the 0.7 sd shift it is tuned for)
    false_alarms_per_100k: float = 1.0  # RankCusum: budget over all watched features together
    chi_square_reference: int = 2000  # a large reference: the power a strict level needs
    chi_square_window: int = 500
    chi_square_alpha: float = 3e-5  # homogeneity test, per check (docs/drift.md, "Categorical features")
    concept_detector: str = "CUSUM"
    concept_confidence: float = 1e-4  # HDDMA / ADWIN only
    concept_shift: float = 0.1  # CUSUM: the rise of the error rate it is tuned to detect
    concept_threshold: float = 12.0  # CUSUM: about e^12 = 160k updates between false alarms
    warm_up: int = 200
    confirmations: int = 2
    debounce: int = 400
    cooldown: int = 2000
    join_max_pending: int = 100_000
    join_ttl_s: float = 30 * 24 * 3600
    quality_window: int = 500  # labelled predictions per model version in the online quality
    quality_versions: int = 5  # versions per model whose online quality is kept
    positive_label: str = "bad"
    positive_decision: str = "decline"
    estimate_window: int = 500  # served predictions per CBPE window
    estimate_min_labelled: int = 100  # labels a window needs before its estimate is judged
    estimate_drop_limit: float = 0.03  # estimated accuracy lost against the version's first windows
    estimate_windows_kept: int = 40  # windows kept per version for their labels

    def estimator(self) -> PerformanceEstimator:
        return PerformanceEstimator(
            self.estimate_window,
            self.estimate_windows_kept,
            min_labelled=self.estimate_min_labelled,
            drop_limit=self.estimate_drop_limit,
        )

    def score_detector(self) -> Detector:
        return MeanShift(self.reference_size, self.window_size, self.block, self.mean_shift_z)

    @property
    def feature_arl0(self) -> float:
        """Updates between false alarms each feature's RankCusum is calibrated for (Bonferroni)."""
        features = max(1, len(self.numeric) + len(self.categorical))
        return float(round(100_000 / self.false_alarms_per_100k * features))

    def numeric_monitor(self, seed: int = 0) -> Monitor:
        if self.numeric_detector == "MeanShift":
            return self.windowed_monitor(self.score_detector())
        detector = RankCusum(self.cusum_reference_size, self.cusum_shift, self.feature_arl0, seed)
        # A CUSUM flags once per change: one flag is enough; its reference is its warm-up.
        return Monitor(detector, warm_up=self.warm_up, confirmations=1, cooldown=self.cooldown)

    def categorical_detector(self) -> ChiSquare:
        return ChiSquare(self.chi_square_reference, self.chi_square_window, self.block, self.chi_square_alpha)

    def concept_monitor(self) -> Monitor:
        detector: Detector
        if self.concept_detector == "CUSUM":
            detector = BernoulliCusum(self.reference_size, self.concept_shift, self.concept_threshold)
        elif self.concept_detector == "HDDMA":
            detector = RiverDetector(HDDMA(drift_confidence=self.concept_confidence))
        else:
            detector = RiverDetector(ADWIN(delta=self.concept_confidence))
        # Error detectors flag once per change: one flag is enough.
        return Monitor(detector, warm_up=self.warm_up, confirmations=1, cooldown=self.cooldown)

    def windowed_monitor(self, detector: Detector) -> Monitor:
        return Monitor(
            detector,
            warm_up=self.warm_up,
            confirmations=self.confirmations,
            debounce=self.debounce,
            cooldown=self.cooldown,
        )
