"""The fault-injection run's plan and its four checks, as pure functions of what was read afterwards.

Nothing here touches Kafka, SQLite or Feast: `bench/chaos_read.py` reads the stores, `bench/chaos.py`
runs the stack and the kills. Each check returns counts; a check passes when every loss or doubling
count is zero (`Check.failures`).

>>> plan = kill_plan(seed=1, kills=4, targets=("ingest", "kafka"), window_s=(10.0, 50.0))
>>> [k.target for k in plan] == [k.target for k in kill_plan(1, 4, ("ingest", "kafka"), (10.0, 50.0))]
True
>>> {k.target for k in plan} == {"ingest", "kafka"}
True
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Coordinate = tuple[str, int, int]  # topic, partition, offset
RawCoordinate = tuple[int, int]  # partition, offset of records.raw


@dataclass(frozen=True)
class Kill:
    at_s: float  # seconds after the stream started (not before; a slow restart may push it later)
    target: str  # a service name or "kafka"
    down_s: float  # how long the target stays dead before it is restarted


def kill_plan(seed: int, kills: int, targets: tuple[str, ...], window_s: tuple[float, float]) -> list[Kill]:
    """`kills` SIGKILLs at seeded random times inside `window_s`; every target is hit at least once
    when there are at least as many kills as targets, the rest are drawn uniformly."""
    if kills < 1 or not targets or window_s[1] <= window_s[0]:
        raise ValueError("need at least one kill, one target and a non-empty window")
    rng = random.Random(seed)
    chosen = list(targets)[:kills]
    rng.shuffle(chosen)
    chosen += [rng.choice(targets) for _ in range(kills - len(chosen))]
    rng.shuffle(chosen)
    times = sorted(rng.uniform(*window_s) for _ in range(kills))
    return [
        Kill(round(t, 2), name, round(rng.uniform(0.2, 3.0), 2))
        for t, name in zip(times, chosen, strict=True)
    ]


@dataclass
class Check:
    name: str
    counts: dict[str, int]
    failure_keys: tuple[str, ...]
    examples: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def failures(self) -> int:
        return sum(self.counts[k] for k in self.failure_keys)

    @property
    def ok(self) -> bool:
        return self.failures == 0

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "counts": self.counts, "failure_keys": list(self.failure_keys),
                "examples": self.examples}  # fmt: skip


@dataclass(frozen=True)
class Outcome:
    """One event ingest published for a raw record: on records.clean or records.rejected."""

    raw: RawCoordinate
    event_id: str
    kind: str  # "RecordCleaned" | "RecordRejected"


def raw_accounting(raw: Iterable[RawCoordinate], outcomes: Iterable[Outcome]) -> Check:
    """Every raw offset has exactly one outcome: one event id, of one kind. A redelivery that
    republishes the same event (same id) is counted as a republished copy, not as a doubling."""
    raw_set = set(raw)
    distinct: dict[RawCoordinate, set[tuple[str, str]]] = defaultdict(set)
    copies = 0
    for outcome in outcomes:
        copies += 1
        distinct[outcome.raw].add((outcome.event_id, outcome.kind))
    missing = sorted(raw_set - set(distinct))
    doubled = sorted(c for c, ids in distinct.items() if len(ids) > 1)
    stray = sorted(set(distinct) - raw_set)
    kinds: dict[str, int] = defaultdict(int)
    for coordinate, ids in distinct.items():
        if len(ids) == 1 and coordinate in raw_set:
            kinds[next(iter(ids))[1]] += 1
    counts = {
        "raw_offsets": len(raw_set), "clean": kinds["RecordCleaned"], "rejected": kinds["RecordRejected"],
        "missing": len(missing), "doubled": len(doubled), "stray": len(stray),
        "republished_copies": copies - sum(len(ids) for ids in distinct.values()),
    }  # fmt: skip
    examples = {"missing": missing[:10], "doubled": doubled[:10], "stray": stray[:10]}
    return Check("raw offsets accounted once", counts, ("missing", "doubled", "stray"), examples)


@dataclass(frozen=True)
class Message:
    """One Kafka message or one audit row, reduced to what the comparison needs."""

    coordinate: Coordinate
    value_sha256: str
    event_id: str | None


def audit_matches_kafka(
    kafka: Iterable[Message], store: Iterable[Message], caught_up_to: Mapping[tuple[str, int], int]
) -> Check:
    """Every Kafka message below `caught_up_to` (the end offsets the audit group had committed past)
    is in the store once: at its coordinates with the same digest, or, for a republished copy of an
    event, by its event id. Every stored row is a message of Kafka with that digest."""
    in_kafka = {m.coordinate: m for m in kafka}
    rows = list(store)
    by_coordinate: dict[Coordinate, list[Message]] = defaultdict(list)
    by_event: dict[str, list[Message]] = defaultdict(list)
    for row in rows:
        by_coordinate[row.coordinate].append(row)
        if row.event_id:
            by_event[row.event_id].append(row)
    missing: list[Coordinate] = []
    by_id = 0
    for coordinate, message in in_kafka.items():
        if coordinate[2] >= caught_up_to.get(coordinate[:2], 0) or coordinate in by_coordinate:
            continue
        if message.event_id and message.event_id in by_event:
            by_id += 1
        else:
            missing.append(coordinate)
    absent = sorted(r.coordinate for r in rows if r.coordinate not in in_kafka)
    altered = sorted(
        r.coordinate for r in rows
        if r.coordinate in in_kafka and in_kafka[r.coordinate].value_sha256 != r.value_sha256
    )  # fmt: skip
    doubled = sorted(c for c, found in by_coordinate.items() if len(found) > 1)
    doubled += sorted((e, 0, 0) for e, found in by_event.items() if len(found) > 1)
    counts = {
        "kafka_messages": len(in_kafka), "store_rows": len(rows), "matched_by_coordinates":
        sum(1 for c in in_kafka if c in by_coordinate), "matched_by_event_id": by_id,
        "missing": len(missing), "absent_from_kafka": len(absent), "digest_mismatch": len(altered),
        "doubled": len(doubled),
    }  # fmt: skip
    examples = {"missing": sorted(missing)[:10], "absent_from_kafka": absent[:10],
                "digest_mismatch": altered[:10], "doubled": doubled[:10]}  # fmt: skip
    keys = ("missing", "absent_from_kafka", "digest_mismatch", "doubled")
    return Check("audit trail matches Kafka one to one", counts, keys, examples)


@dataclass(frozen=True)
class CleanRecord:
    entity_id: str
    raw: RawCoordinate
    record: Mapping[str, Any]


def last_clean_per_entity(cleaned: Iterable[CleanRecord]) -> dict[str, CleanRecord]:
    """The clean record of each entity whose raw record came last (raw records are keyed by entity,
    so one entity's records share a partition and its offsets order them)."""
    last: dict[str, CleanRecord] = {}
    for clean in cleaned:
        known = last.get(clean.entity_id)
        if known is None or clean.raw > known.raw:
            last[clean.entity_id] = clean
    return last


def online_matches_last_clean(
    last: Mapping[str, CleanRecord], online: Mapping[str, Mapping[str, Any] | None], features: tuple[str, ...]
) -> Check:
    """Each entity's online feature values equal its last clean record's (numbers compared as numbers).
    `online[e]` is None when the store has no row for `e`."""
    missing, stale = [], []
    for entity, clean in last.items():
        row = online.get(entity)
        if row is None or all(row.get(name) is None for name in features):
            missing.append(entity)
            continue
        differing = [name for name in features if not _same(row.get(name), clean.record.get(name))]
        if differing:
            stale.append({"entity": entity, "features": differing[:5], "raw": list(clean.raw)})
    counts = {"entities": len(last), "matching": len(last) - len(missing) - len(stale),
              "missing": len(missing), "stale": len(stale)}  # fmt: skip
    examples: dict[str, list[Any]] = {"missing": sorted(missing)[:10], "stale": stale[:10]}
    return Check("online features match the last clean record", counts, ("missing", "stale"), examples)


def _same(online: Any, clean: Any) -> bool:
    if isinstance(online, bool) or isinstance(clean, bool):  # True == 1 in Python, not in a feature
        return type(online) is type(clean) and online == clean
    if isinstance(online, int | float) and isinstance(clean, int | float):
        return float(online) == float(clean)
    return bool(online == clean)


def chain_verifies(cli: Mapping[str, Any], http: Mapping[str, Any]) -> Check:
    """The audit chain verifies both ways an operator asks: `mlops audit verify` and GET /verify."""
    counts = {
        "cli_broken": int(cli.get("intact") is not True),
        "http_broken": int(http.get("intact") is not True),
    }
    examples = {"cli": [dict(cli)], "http": [dict(http)]}
    return Check("audit chain verifies", counts, ("cli_broken", "http_broken"), examples)
