"""The rebalance-time bench's pure parts: a member's assignment decoded from the bytes the coordinator
holds, the figures read off polled samples (which member died, when its partitions moved, when their
commits and lag recovered, when a restarted instance rejoined), the medians, and its arguments."""

from __future__ import annotations

import pytest
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

from bench.rebalance_figures import (
    GroupView,
    Sample,
    dead_member,
    joined_at,
    reassigned_at,
    rejoined_at,
    round_figures,
    summarise,
)
from bench.rebalance_probe import decode_assignment, parse_group
from bench.rebalance_time import parse_args, services_to_start

RAW = "records.raw"
P0, P1, P2 = (RAW, 0), (RAW, 1), (RAW, 2)


def _assignment(partitions: dict[str, list[int]]) -> bytes:
    return ConsumerProtocolMemberAssignment(0, sorted(partitions.items()), b"").encode()


def test_an_assignment_decodes_to_its_topic_partitions_and_a_rebalancing_member_holds_none() -> None:
    raw = _assignment({RAW: [0, 2], "labels.observed": [1]})
    assert decode_assignment(raw) == frozenset({P0, P2, ("labels.observed", 1)})
    assert decode_assignment(b"") == frozenset() and decode_assignment(None) == frozenset()


def test_a_described_group_becomes_its_state_and_each_members_partitions() -> None:
    members = [
        ("ingest-a", "ingest", "/127.0.0.1", b"", _assignment({RAW: [0, 2]})),
        ("ingest-b", "ingest", "/127.0.0.1", b"", _assignment({RAW: [1]})),
    ]
    view = parse_group((0, "ingest", "Stable", "consumer", "roundrobin", members, -2147483648))
    assert view.state == "Stable"
    assert view.members == {"ingest-a": frozenset({P0, P2}), "ingest-b": frozenset({P1})}
    assert view.owner(P2) == "ingest-a" and view.owner(("other", 0)) is None
    assert view.settled(2) and not view.settled(3)


BEFORE = GroupView("Stable", {"a": frozenset({P0, P2}), "b": frozenset({P1})})
AT_KILL = {P0: 100, P1: 200, P2: 300}


Offsets = dict[tuple[str, int], int]


def _sample(
    t: float,
    state: str,
    members: dict[str, frozenset[tuple[str, int]]],
    committed: Offsets,
    ends: Offsets,
    streaming: bool = True,
) -> Sample:
    return Sample(t, GroupView(state, members), committed, ends, streaming)


def _after_kill(streaming_at_end: bool = True) -> list[Sample]:
    everything = frozenset({P0, P1, P2})
    return [
        # The kill: the dead member is still in the group until its session times out.
        _sample(0.0, "Stable", BEFORE.members, AT_KILL, {P0: 150, P1: 250, P2: 350}),
        _sample(
            10.4,
            "PreparingRebalance",
            {"b": frozenset()},
            AT_KILL | {P1: 900},
            {P0: 1200, P1: 1300, P2: 1400},
        ),
        _sample(11.0, "Stable", {"b": everything}, AT_KILL | {P1: 950}, {P0: 1250, P1: 1350, P2: 1450}),
        # P0 committed, P2 not yet: not resumed.
        _sample(
            11.6, "Stable", {"b": everything}, {P0: 600, P1: 1000, P2: 300}, {P0: 1300, P1: 1400, P2: 1500}
        ),
        _sample(
            12.2, "Stable", {"b": everything}, {P0: 1000, P1: 1400, P2: 800}, {P0: 1350, P1: 1450, P2: 1550}
        ),
        # Lag over P0 + P2: 400 + 200 = 600, not under one batch of 500.
        _sample(
            12.8, "Stable", {"b": everything}, {P0: 1000, P1: 1500, P2: 1400}, {P0: 1400, P1: 1500, P2: 1600}
        ),
        _sample(
            13.4,
            "Stable",
            {"b": everything},
            {P0: 1400, P1: 1550, P2: 1550},
            {P0: 1450, P1: 1550, P2: 1650},
            streaming_at_end,
        ),
    ]


def test_the_figures_of_a_kill_come_from_the_first_poll_that_shows_each() -> None:
    after = _after_kill()
    assert dead_member(BEFORE, after) == "a"
    figures = round_figures(BEFORE, after, AT_KILL, batch=500)
    assert figures["moved_partitions"] == [P0, P2]
    assert figures["held_after"] == {"b": [P0, P1, P2]}
    assert figures["detected_s"] == 10.4  # the coordinator gave up on the dead member's session
    assert figures["reassigned_s"] == 11.0  # not 10.4: the group was still rebalancing
    assert figures["resumed_s"] == 12.2  # P2's commit moved only then
    assert figures["caught_up_s"] == 13.4 and "stream running" in figures["caught_up_rule"]
    assert figures["lag_at_kill"] == 100 and figures["peak_lag"] == 2300
    assert figures["inflow_per_s"] == round((4650 - 750) / 13.4, 1)


def test_after_the_stream_ended_caught_up_means_no_lag_at_all() -> None:
    figures = round_figures(BEFORE, _after_kill(streaming_at_end=False), AT_KILL, batch=500)
    assert figures["caught_up_s"] is None and figures["caught_up_rule"] == "not caught up"  # 150 left


def test_no_figure_while_the_group_has_not_settled_without_the_dead_member() -> None:
    still_rebalancing = _after_kill()[:2]
    assert dead_member(BEFORE, still_rebalancing) is None
    assert round_figures(BEFORE, still_rebalancing, AT_KILL, 500)["reassigned_s"] is None
    # Every partition held, but the group is not Stable yet: not reassigned.
    syncing = _sample(10.8, "CompletingRebalance", {"b": frozenset({P0, P1, P2})}, AT_KILL, AT_KILL)
    assert reassigned_at([syncing], "a", frozenset({P0, P2})) is None
    # Both members gone: which one died cannot be told.
    renamed = [_sample(11.0, "Stable", {"c": frozenset({P0, P1, P2})}, AT_KILL, AT_KILL)]
    assert dead_member(BEFORE, renamed) is None


def test_a_restarted_instance_has_rejoined_once_the_settled_group_has_a_new_member_with_partitions() -> None:
    survivor = {"b"}
    joining = _sample(1.0, "CompletingRebalance", {"b": frozenset(), "c": frozenset()}, {}, {})
    empty_handed = _sample(1.5, "Stable", {"b": frozenset({P0, P1, P2}), "c": frozenset()}, {}, {})
    holding = _sample(2.0, "Stable", {"b": frozenset({P0, P2}), "c": frozenset({P1})}, {}, {})
    assert joined_at([holding], survivor) == 2.0 and joined_at([joining, holding], survivor) == 1.0
    assert rejoined_at([joining, empty_handed], survivor, members=2) is None
    assert rejoined_at([joining, empty_handed, holding], survivor, members=2) == 2.0
    assert rejoined_at([holding], {"b", "c"}, members=2) is None  # nobody new


def test_the_summary_gives_median_min_max_over_the_rounds_that_measured_each_figure() -> None:
    rounds: list[dict[str, float | None]] = [
        {"reassigned_s": 11.0}, {"reassigned_s": 13.0}, {"reassigned_s": 10.2}, {"reassigned_s": None}
    ]  # fmt: skip
    summary = summarise(rounds, ["reassigned_s"])["reassigned_s"]
    assert summary == {"median": 11.0, "min": 10.2, "max": 13.0, "n": 3, "missing": 1}
    assert summarise([{}], ["resumed_s"])["resumed_s"]["median"] is None


def test_arguments_need_a_service_that_scales_out_and_start_it_with_the_others() -> None:
    args = parse_args(
        ["--service", "ingest", "--kills", "2", "--rate", "150", "--services", "features,audit"]
    )
    assert (args.kills, args.rate, args.batch) == (2, 150.0, 500)
    assert services_to_start(args) == "features,audit,ingest"
    assert services_to_start(parse_args(["--services", "ingest,features"])) == "ingest,features"
    with pytest.raises(SystemExit):
        parse_args(["--service", "annotation"])  # one instance in the cluster profile
    assert parse_args(["--service", "drift"]).service == "drift"  # one active, one standby


def test_an_active_standby_service_is_watched_in_its_records_group_with_one_member() -> None:
    from bench.rebalance_targets import default_group, group_members

    assert (default_group("drift"), group_members("drift", 2)) == ("drift", 1)
    assert (default_group("ingest"), group_members("ingest", 2)) == ("ingest", 2)
    with pytest.raises(SystemExit):
        parse_args(["--kills", "0"])
