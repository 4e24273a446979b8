"""The figures of bench/rebalance_time.py, computed from what was polled (`Sample`s of one consumer
group), with no I/O: which member died, when its partitions were assigned again, when their committed
offsets moved, when their lag was back under one batch, when a restarted instance held partitions
again; and the per-figure medians over the rounds."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

TP = tuple[str, int]  # (topic, partition)
STABLE = "Stable"


@dataclass(frozen=True)
class GroupView:
    """A consumer group as DescribeGroups shows it: its state and each member's partitions."""

    state: str
    members: dict[str, frozenset[TP]]

    def owner(self, tp: TP) -> str | None:
        return next((member for member, held in self.members.items() if tp in held), None)

    def settled(self, members: int) -> bool:
        """Stable with `members` members, each holding partitions."""
        return self.state == STABLE and len(self.members) == members and all(self.members.values())


@dataclass(frozen=True)
class Sample:
    """One poll: `t` seconds since the round's reference time (the kill, or a restart's start)."""

    t: float
    view: GroupView
    committed: dict[TP, int]
    ends: dict[TP, int]
    streaming: bool  # the stream was still being produced

    def lag(self, partitions: Iterable[TP]) -> int:
        """End offsets minus committed offsets over `partitions` (all of it where nothing is committed)."""
        return sum(max(self.ends.get(tp, 0) - self.committed.get(tp, 0), 0) for tp in partitions)


def dead_member(before: GroupView, after: Sequence[Sample]) -> str | None:
    """The member of `before` that the first settled group after the kill lacks; None while no group
    has settled without one, or if more than one member left (then which died cannot be told)."""
    for sample in after:
        if sample.view.state == STABLE and sample.view.members:
            gone = set(before.members) - set(sample.view.members)
            if gone:
                return gone.pop() if len(gone) == 1 else None
    return None


def detected_at(after: Sequence[Sample], dead: str) -> float | None:
    """First poll at which the coordinator has acted on the death: the group is rebalancing, or the
    dead member is gone (its session timed out)."""
    for sample in after:
        if sample.view.state != STABLE or dead not in sample.view.members:
            return sample.t
    return None


def reassigned_at(after: Sequence[Sample], dead: str, partitions: frozenset[TP]) -> float | None:
    """First poll at which the group is Stable without `dead` and every one of its partitions is held."""
    for sample in after:
        view = sample.view
        if view.state == STABLE and dead not in view.members and all(view.owner(tp) for tp in partitions):
            return sample.t
    return None


def resumed_at(after: Sequence[Sample], partitions: frozenset[TP], at_kill: dict[TP, int]) -> float | None:
    """First poll at which the committed offset of every one of `partitions` is past its value at the
    kill (a partition that got no record since, and so has nothing to commit, does not hold it up)."""
    for sample in after:
        moved = all(
            sample.committed.get(tp, -1) > at_kill.get(tp, -1)
            or sample.ends.get(tp, 0) <= at_kill.get(tp, -1)
            for tp in partitions
        )
        if moved:
            return sample.t
    return None


def caught_up_at(
    after: Sequence[Sample], partitions: frozenset[TP], batch: int, since: float
) -> tuple[float | None, str]:
    """First poll from `since` on at which the lag over `partitions` is under one batch while the stream
    runs, or 0 once it has ended; and which of the two held."""
    for sample in after:
        if sample.t < since:
            continue
        lag = sample.lag(partitions)
        if sample.streaming and lag < batch:
            return sample.t, f"lag < {batch} records (one batch), stream running"
        if lag == 0:
            return sample.t, "lag 0, stream ended"
    return None, "not caught up"


def joined_at(after: Sequence[Sample], survivors: set[str]) -> float | None:
    """First poll at which the group has a member not of `survivors` (a restarted instance asked to
    join), whatever its state."""
    return next((s.t for s in after if set(s.view.members) - survivors), None)


def inflow_per_s(after: Sequence[Sample]) -> float | None:
    """Records/s that reached the group's partitions between the first and the last poll."""
    if len(after) < 2 or after[-1].t <= after[0].t:
        return None
    grown = sum(after[-1].ends.values()) - sum(after[0].ends.values())
    return round(grown / (after[-1].t - after[0].t), 1)


def rejoined_at(after: Sequence[Sample], survivors: set[str], members: int) -> float | None:
    """First poll at which the group is settled with `members` members, one of them new (not of
    `survivors`) and holding partitions."""
    for sample in after:
        view = sample.view
        if view.settled(members) and any(held for m, held in view.members.items() if m not in survivors):
            return sample.t
    return None


FIGURES = (
    "detected_s", "reassigned_s", "resumed_s", "caught_up_s",
    "restart_up_s", "joined_since_restart_s", "rejoined_since_restart_s", "rejoined_s",
)  # fmt: skip


def summarise(rounds: Sequence[dict[str, Any]], figures: Sequence[str] = FIGURES) -> dict[str, Any]:
    """Median, min, max and count of each figure over the rounds that measured it (None: not reached)."""
    out: dict[str, Any] = {}
    for figure in figures:
        values = [r[figure] for r in rounds if r.get(figure) is not None]
        out[figure] = {
            "median": round(statistics.median(values), 2) if values else None,
            "min": min(values) if values else None,
            "max": max(values) if values else None,
            "n": len(values),
            "missing": len(rounds) - len(values),
        }
    return out


def round_figures(
    before: GroupView, after: Sequence[Sample], at_kill: dict[TP, int], batch: int
) -> dict[str, Any]:
    """A round's kill figures from the group before the kill and the polls after it."""
    dead = dead_member(before, after)
    if dead is None:
        return {
            "dead_member": None,
            **dict.fromkeys(("detected_s", "reassigned_s", "resumed_s", "caught_up_s")),
        }
    moved = before.members[dead]
    reassigned = reassigned_at(after, dead, moved)
    resumed = resumed_at(after, moved, at_kill)
    caught_up, rule = (
        caught_up_at(after, moved, batch, resumed) if resumed is not None else (None, "not resumed")
    )
    settled = next((s.view for s in after if reassigned is not None and s.t == reassigned), None)
    return {
        "dead_member": dead,
        "moved_partitions": sorted(moved),
        "held_after": {m: sorted(p) for m, p in settled.members.items()} if settled else None,
        "detected_s": detected_at(after, dead),
        "reassigned_s": reassigned,
        "resumed_s": resumed,
        "caught_up_s": caught_up,
        "caught_up_rule": rule,
        "lag_at_kill": after[0].lag(moved) if after else None,
        "peak_lag": max((s.lag(moved) for s in after), default=None),
        "inflow_per_s": inflow_per_s(after),
    }


def done_after_kill(before: GroupView, after: Sequence[Sample], at_kill: dict[TP, int], batch: int) -> bool:
    """Every kill figure is measured."""
    figures = round_figures(before, after, at_kill, batch)
    return all(figures[k] is not None for k in ("reassigned_s", "resumed_s", "caught_up_s"))
