"""A world where the truth comes months late, for the demo's last step (issue 19, item 5).

- **Label delays.** A credit default is known at the earliest 90 days past due, so no label comes
  before `min_days`; then a lognormal extra wait (median `median_extra_days`); a share `never` never
  comes (accounts sold, closed, lost track of). Time is compressed: `rows_per_day` applications
  arrive per simulated day, so a delay in days is a delay in rows of the stream.
- **A new channel of applicants.** From a known row, applicants are SELECTED on their inputs (more
  of the risky checking-account levels, longer, larger loans, younger applicants: exponential tilting
  of each feature's normal score within a pool of fresh applicants, `pool_factor` per chosen one).
  P(x) moves and P(label | x) does not: a covariate shift in the strict sense, which moves applicants
  towards the model's decision boundary and so lowers its accuracy (bench/performance_estimation.py,
  "checking, duration, amount, -age +1.0 sd": a true drop of about 7.6 points, estimated before
  labels as about 6).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri

from workbench.demo_data import ApplicationStream, DriftSpec, LoanApplication, applicant_generator

# (feature, +1 or -1): the direction the new channel tilts it (checking codes run safe -> risky).
RISKIER = (
    ("status_of_existing_checking_account", 1),
    ("duration_in_month", 1),
    ("credit_amount", 1),
    ("age_in_years", -1),
)


@dataclass(frozen=True)
class LabelDelays:
    rows_per_day: float = 20.0  # time compression: this many applications per simulated day
    min_days: float = 90.0
    median_extra_days: float = 60.0
    sigma: float = 0.6
    never: float = 0.15

    def due_row(self, row: int, rng: random.Random) -> int | None:
        """The row of the stream at which the label of the application at `row` comes (None: never)."""
        if rng.random() < self.never:
            return None
        days = self.min_days + self.median_extra_days * math.exp(rng.gauss(0.0, self.sigma))
        return row + math.ceil(days * self.rows_per_day)

    def describe(self) -> str:
        return (
            f"{self.rows_per_day:g} applications per simulated day; labels after {self.min_days:g} days"
            f" plus a median of {self.median_extra_days:g} more; {self.never:.0%} never"
        )


def risk_scores(applications: list[LoanApplication]) -> np.ndarray:
    """Each application's sum of tilted normal scores (ranks within the pool)."""
    levels = {c.name: {lv: i for i, lv in enumerate(c.levels or ())} for c in applicant_generator().columns}
    total = np.zeros(len(applications))
    for feature, sign in RISKIER:
        values = [a.record[feature] for a in applications]
        codes = np.array([levels[feature][v] for v in values] if levels[feature] else values, dtype=float)
        ranks = np.argsort(np.argsort(codes, kind="stable"), kind="stable") + 0.5
        total += sign * np.asarray(ndtri(ranks / len(codes)))
    return total


def new_channel(
    stream: Iterator[LoanApplication], sd: float = 1.0, pool_factor: int = 8, chunk: int = 100, seed: int = 0
) -> Iterator[LoanApplication]:
    """Applications of `stream`, `chunk` at a time chosen out of `chunk x pool_factor` with weight
    exp(sd x risk score), without replacement (Efraimidis-Spirakis keys)."""
    rng = np.random.default_rng(seed)
    while True:
        pool = [next(stream) for _ in range(chunk * pool_factor)]
        log_w = sd * np.clip(risk_scores(pool), -3 * len(RISKIER), 3 * len(RISKIER))
        keys = np.log(rng.random(len(pool))) / np.exp(log_w - log_w.max())
        for i in sorted(np.argsort(-keys)[:chunk]):
            yield pool[int(i)]


def late_world(seed: int, id_prefix: str, swapped: bool) -> ApplicationStream:
    """Fresh applicants of the demo's world (labels swapped if the loop's drift swapped them)."""
    world = DriftSpec("label_swap", at=0) if swapped else None
    return ApplicationStream(world, seed=seed, id_prefix=id_prefix)
