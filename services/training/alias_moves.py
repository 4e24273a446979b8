"""What the ops moves of a registry alias share (rollbacks.py moves `champion`, canaries.py `canary`):
the registry port (each its own), the publisher of the event that announces the move, its topic, the
model, the producer named in the event, and one move at a time per use case."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from contracts.envelope import Event

Publish = Callable[[Event[Any], str], Awaitable[None]]
RegistryT = TypeVar("RegistryT")


@dataclass
class AliasMoves(Generic[RegistryT]):
    registry: RegistryT
    publish: Publish
    topic: str
    model_name: str
    producer: str = "training"

    def __post_init__(self) -> None:
        self._lock = asyncio.Lock()  # held for a whole move: read the registry, change it, publish
