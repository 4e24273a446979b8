"""The window arithmetic of `mlops replay` (infra/replay_window.py), without a broker."""

from __future__ import annotations

import pytest
from aiokafka.structs import TopicPartition

from infra.replay_window import ReplayRefused, Window, _by_offset

A0, A1, B0 = TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("b", 0)


def window() -> Window:
    # `b` is read by the group but not selected: its start is its end.
    return Window({"g": ["a", "b"]}, starts={A0: 5, A1: 0, B0: 7}, ends={A0: 10, A1: 4, B0: 7})


def test_the_window_counts_only_what_it_reads_and_names_every_partition_for_the_stop() -> None:
    assert window().records == 9
    assert window().stop_offsets() == {"a": {0: 10, 1: 4}, "b": {0: 7}}
    assert window().read() == [(A0, 5, 10), (A1, 0, 4)]


def test_progress_counts_commits_inside_the_window_only() -> None:
    assert window().done({}) == 0
    assert window().done({A0: 3, A1: 2}) == 2  # a commit below the start counts as nothing
    assert window().done({A0: 12, A1: 4, B0: 9}) == 9  # past the end: the window's size


def test_an_offset_outside_any_partition_read_is_refused_with_its_range() -> None:
    firsts, ends = {A0: 2, A1: 0}, {A0: 10, A1: 4}
    assert _by_offset([A0, A1], 3, firsts, ends) == {A0: 3, A1: 3}
    with pytest.raises(
        ReplayRefused, match=r"offset 5 does not exist on a partition 1, which holds offsets 0\.\.3"
    ):
        _by_offset([A0, A1], 5, firsts, ends)
    with pytest.raises(ReplayRefused, match="offset 1 does not exist on a partition 0"):
        _by_offset([A0, A1], 1, firsts, ends)
