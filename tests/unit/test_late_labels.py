"""Issue 19, item 5: the demo's world of late labels. No label comes before its minimum delay and a
share never comes; the new channel is a covariate shift of the named features (selected applicants,
labels of the same world); the step's figures count rows from the change."""

from __future__ import annotations

import itertools
import random
import statistics

from infra.late_labels import LateState, figures
from workbench.late_labels import LabelDelays, late_world, new_channel


def test_labels_come_late_and_some_never() -> None:
    delays, rng = LabelDelays(), random.Random(3)
    due = [delays.due_row(1000, rng) for _ in range(10_000)]
    came = [d for d in due if d is not None]
    assert 0.13 < 1 - len(came) / len(due) < 0.17  # about 15 % never come
    assert min(came) >= 1000 + 90 * 20  # none before 90 simulated days of 20 applications
    median_days = (statistics.median(came) - 1000) / 20
    assert 140 < median_days < 160  # 90 days plus a median of 60 more
    assert "20 applications per simulated day" in delays.describe()


def test_the_new_channel_brings_riskier_applicants_of_the_same_world() -> None:
    usual = list(itertools.islice(iter(late_world(5, "u", swapped=True)), 400))
    chosen = list(itertools.islice(new_channel(iter(late_world(6, "n", swapped=True)), seed=1), 400))
    mean = lambda apps, f: statistics.fmean(a.record[f] for a in apps)  # noqa: E731
    assert mean(chosen, "credit_amount") > 1.4 * mean(usual, "credit_amount")
    assert mean(chosen, "duration_in_month") > mean(usual, "duration_in_month") + 5
    assert mean(chosen, "age_in_years") < mean(usual, "age_in_years") - 3
    assert len({a.record["application_id"] for a in chosen}) == 400  # without replacement
    # The labels are the world's own (the loop's swapped world): selection leaves P(label | x) alone.
    assert all(a.drifted for a in chosen) and {a.label for a in chosen} == {"good", "bad"}


def test_the_figures_count_rows_from_the_change() -> None:
    state = LateState(champion="4", stationary=1500, sent=2100, labels_sent=12, alarm_row=2080)
    state.first_shifted_due = 1500 + 1900
    f = figures(state, LabelDelays())
    assert f["alarm_rows_after_change"] == 580 and f["rows_before_first_label"] == 1320
    assert f["days_before_first_label"] == 66 and f["new_channel_labels_sent"] == 0
    quiet = figures(LateState(champion="4", stationary=1500, sent=3000), LabelDelays())
    assert quiet["alarm_rows_after_change"] is None and quiet["rows_before_first_label"] is None
