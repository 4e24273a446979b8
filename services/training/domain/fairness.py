"""Group fairness of decisions, from first principles (no fairlearn): gaps between group rates.

- demographic parity difference (DPD): max - min over groups of the approval rate;
- equal-opportunity difference (EOD): max - min over groups of the approval rate among applicants
  whose outcome was good (the "qualified" ones: Hardt et al.'s equal opportunity, with approval as
  the favourable outcome).

Groups smaller than `min_size` (for EOD: with fewer good applicants than that) are left out and
named; with fewer than two groups left the gap is None (not measurable).

>>> import numpy as np
>>> approved = np.array([True, True, False, True, False, False])
>>> groups = np.array(["a", "a", "a", "b", "b", "b"])
>>> round(demographic_parity_difference(approved, groups, 1).value, 4)
0.3333
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class GroupGap:
    value: float | None  # max - min of the rates, None when fewer than two groups qualify
    rates: dict[str, float]
    skipped: list[str] = field(default_factory=list)  # groups too small to count

    def detail(self) -> str:
        rates = ", ".join(f"{g}={r:.3f}" for g, r in sorted(self.rates.items()))
        skipped = f"; too small: {', '.join(self.skipped)}" if self.skipped else ""
        return f"rates {rates}{skipped}" if self.rates else f"no group large enough{skipped}"


def rate_gap(outcome: np.ndarray, groups: np.ndarray, min_size: int) -> GroupGap:
    rates: dict[str, float] = {}
    skipped: list[str] = []
    for group in sorted({str(g) for g in groups}):
        members = groups == group
        if members.sum() < min_size:
            skipped.append(group)
            continue
        rates[group] = float(outcome[members].mean())
    value = max(rates.values()) - min(rates.values()) if len(rates) >= 2 else None
    return GroupGap(value, rates, skipped)


def demographic_parity_difference(approved: np.ndarray, groups: np.ndarray, min_size: int) -> GroupGap:
    return rate_gap(np.asarray(approved, dtype=bool), np.asarray(groups), min_size)


def equal_opportunity_difference(
    approved: np.ndarray, bad: np.ndarray, groups: np.ndarray, min_size: int
) -> GroupGap:
    good = ~np.asarray(bad, dtype=bool)
    return rate_gap(np.asarray(approved, dtype=bool)[good], np.asarray(groups)[good], min_size)
