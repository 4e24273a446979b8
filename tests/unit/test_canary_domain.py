"""The canary's traffic split (share respected on 10k hashed keys within a binomial bound, one key one
model) and the recommendation on it (clear win, clear loss, undecided, too few labels)."""

from __future__ import annotations

import math

import pytest

from services.drift.domain.canary import Counts, difference_interval, recommend
from services.serving.domain.canary import CanarySplit, bucket

KEYS = [f"A-{i}" for i in range(10_000)]


@pytest.mark.parametrize("share", [0.01, 0.1, 0.25, 0.5])
def test_the_share_of_keys_sent_to_the_canary_is_the_configured_one(share: float) -> None:
    split = CanarySplit("7", share)
    sent = sum(split.to_canary(key) for key in KEYS)
    bound = 4 * math.sqrt(len(KEYS) * share * (1 - share))  # 4 sigma of the binomial
    assert abs(sent - share * len(KEYS)) < bound, (sent, share)


def test_the_same_key_always_goes_to_the_same_model() -> None:
    split = CanarySplit("7", 0.3)
    first = [split.to_canary(key) for key in KEYS[:1000]]
    assert first == [CanarySplit("7", 0.3).to_canary(key) for key in KEYS[:1000]]
    assert not any(CanarySplit("7", 0.0).to_canary(key) for key in KEYS[:1000])


def test_a_larger_share_keeps_the_keys_a_smaller_one_sent_and_a_new_version_draws_afresh() -> None:
    small, large = CanarySplit("7", 0.1), CanarySplit("7", 0.3)
    assert all(large.to_canary(k) for k in KEYS if small.to_canary(k))
    other = {k for k in KEYS if CanarySplit("8", 0.1).to_canary(k)}
    assert len(other & {k for k in KEYS if small.to_canary(k)}) < 0.3 * len(other)


@pytest.mark.parametrize("share", [-0.1, 0.51, 1.0])
def test_a_share_outside_zero_to_a_half_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match="share"):
        CanarySplit("7", share)


def test_buckets_are_uniform_enough() -> None:
    values = sorted(bucket(k) for k in KEYS)
    assert all(0 <= v < 1 for v in values)
    assert max(abs(v - (i + 0.5) / len(values)) for i, v in enumerate(values)) < 0.02  # Kolmogorov


def test_newcombe_interval_matches_the_published_example() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, method 10: 56/70 - 48/80 = 0.2000 (0.0524, 0.3339)
    d, low, high = difference_interval(Counts(56, 70), Counts(48, 80), 0.95)
    assert (round(d, 4), round(low, 4), round(high, 4)) == (0.2, 0.0524, 0.3339)


def test_a_clearly_better_canary_is_recommended_for_promotion() -> None:
    advice = recommend(Counts(180, 200), Counts(700, 1000))
    assert advice.action == "promote" and advice.low is not None and advice.low > 0


def test_a_clearly_worse_canary_is_recommended_for_rollback() -> None:
    advice = recommend(Counts(120, 200), Counts(800, 1000))
    assert advice.action == "roll_back" and advice.high is not None and advice.high < 0


def test_an_undecided_comparison_keeps_the_canary_running() -> None:
    advice = recommend(Counts(142, 200), Counts(700, 1000))  # 71% vs 70%
    assert advice.action == "keep" and advice.low is not None and advice.low < 0 < (advice.high or 0)


def test_too_few_labels_say_nothing() -> None:
    advice = recommend(Counts(99, 99), Counts(0, 1000), min_labels=100)  # perfect but too few
    assert advice.action == "not_enough_labels" and advice.difference is None
    assert "not enough labels" in advice.detail
