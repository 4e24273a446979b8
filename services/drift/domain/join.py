"""The join of predictions with their delayed labels: bounded in memory (LRU size + TTL in stream
time), tolerant of labels that come late, out of order, before their prediction, or never.

A label names its prediction (`prediction_id`) or only its entity (`entity_id`); the join tries the
prediction id first, then the entity's latest prediction. Whatever waits longer than `ttl_s` (event
time, so replays behave as live runs) or beyond `max_pending` entries is dropped and counted.
State is plain dicts: it pickles, and `changes()` tells the store what to write since the last call.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Pending:
    key: str  # "p:<prediction_id>" or "e:<entity_id>"
    at: float  # event time, epoch seconds
    value: Any


class BoundedStore:
    """An LRU dict with a maximum size and a time-to-live in stream time.

    >>> store = BoundedStore(max_size=2, ttl_s=10)
    >>> for i, key in enumerate("abc"):
    ...     store.put(key, i, at=float(i))
    >>> sorted(store.keys()), store.evicted
    (['b', 'c'], 1)
    >>> store.put("d", 3, at=20.0); sorted(store.keys()), store.expired
    (['d'], 2)
    """

    def __init__(self, max_size: int, ttl_s: float) -> None:
        self.max_size, self.ttl_s = max_size, ttl_s
        self.items: OrderedDict[str, Pending] = OrderedDict()
        self.evicted = self.expired = 0
        self.now = float("-inf")
        self.dirty: set[str] = set()

    def put(self, key: str, value: Any, at: float) -> None:
        self.items[key] = Pending(key, at, value)
        self.items.move_to_end(key)
        self.dirty.add(key)
        self.advance(at)
        while len(self.items) > self.max_size:
            old, _ = self.items.popitem(last=False)
            self.dirty.add(old)
            self.evicted += 1

    def pop(self, key: str) -> Pending | None:
        item = self.items.pop(key, None)
        if item is not None:
            self.dirty.add(key)
        return item

    def advance(self, at: float) -> None:
        """Stream time moved to `at`: drop what is older than the TTL (oldest first)."""
        self.now = max(self.now, at)
        horizon = self.now - self.ttl_s
        items = self.items
        while items:
            key, first = next(iter(items.items()))
            if first.at >= horizon:
                break
            del items[key]
            self.dirty.add(key)
            self.expired += 1

    def keys(self) -> list[str]:
        return list(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def changes(self) -> tuple[list[Pending], list[str]]:
        """(entries to write, keys to delete) since the last call."""
        upserts = [self.items[k] for k in self.dirty if k in self.items]
        deletes = [k for k in self.dirty if k not in self.items]
        self.dirty = set()
        return upserts, deletes


@dataclass(frozen=True)
class Joined:
    prediction: Any
    label: Any


class LabelJoin:
    """Pairs predictions with labels, whichever arrives first.

    >>> join = LabelJoin(max_pending=100, ttl_s=3600)
    >>> join.add_prediction("p1", "e1", "pred-1", at=0.0) is None
    True
    >>> join.add_label("p1", "e1", "bad", at=5.0)
    Joined(prediction='pred-1', label='bad')
    >>> join.add_label(None, "e2", "good", at=6.0) is None  # label first: it waits
    True
    >>> join.add_prediction("p2", "e2", "pred-2", at=7.0)
    Joined(prediction='pred-2', label='good')
    >>> len(join.predictions), len(join.labels)
    (0, 0)
    """

    def __init__(self, max_pending: int = 100_000, ttl_s: float = 7 * 24 * 3600) -> None:
        self.predictions = BoundedStore(max_pending, ttl_s)  # p:<id> -> (entity_id, value)
        self.labels = BoundedStore(max_pending, ttl_s)  # p:<id> or e:<entity> -> label
        self.by_entity: dict[str, str] = {}  # entity -> its latest pending prediction id
        self.joined = 0

    def add_prediction(
        self, prediction_id: str, entity_id: str | None, value: Any, at: float
    ) -> Joined | None:
        self.labels.advance(at)
        label = self.labels.pop(f"p:{prediction_id}")
        if label is None and entity_id is not None:
            label = self.labels.pop(f"e:{entity_id}")
        if label is not None:
            self.joined += 1
            return Joined(value, label.value)
        self.predictions.put(f"p:{prediction_id}", (entity_id, value), at)
        if entity_id is not None:
            self.by_entity[entity_id] = prediction_id
        self._prune_entities()
        return None

    def add_label(self, prediction_id: str | None, entity_id: str, label: Any, at: float) -> Joined | None:
        self.predictions.advance(at)
        pid = prediction_id or self.by_entity.get(entity_id)
        found = self.predictions.pop(f"p:{pid}") if pid else None
        if found is not None:
            entity, value = found.value
            if entity is not None and self.by_entity.get(entity) == pid:
                del self.by_entity[entity]
            self.joined += 1
            return Joined(value, label)
        key = f"p:{prediction_id}" if prediction_id else f"e:{entity_id}"
        self.labels.put(key, label, at)
        return None

    def _prune_entities(self) -> None:
        """Keep the entity index no larger than the predictions it points to."""
        if len(self.by_entity) > 2 * self.predictions.max_size:
            live = self.predictions.items
            self.by_entity = {e: p for e, p in self.by_entity.items() if f"p:{p}" in live}

    def rebuild_index(self) -> None:
        """After loading predictions from the store."""
        self.by_entity = {
            item.value[0]: key[2:]
            for key, item in self.predictions.items.items()
            if item.value[0] is not None
        }

    def stats(self) -> dict[str, int]:
        return {
            "pending_predictions": len(self.predictions),
            "pending_labels": len(self.labels),
            "joined": self.joined,
            "evicted": self.predictions.evicted + self.labels.evicted,
            "expired": self.predictions.expired + self.labels.expired,
        }
