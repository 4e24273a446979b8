"""Keeps the served models in step with the registry: at start, on model.promoted and model.canary, and
by polling.

The registry alias is the truth; a ModelPromoted event is a prompt to look. So a replayed or stale
event costs one registry lookup and changes nothing, events may arrive in any order, and every
replica converges on the alias. Loads run in a worker thread and end in one reference swap: requests
keep using the old model until then, and a load that fails (corrupted artifact, broken contract)
leaves the old model serving, is logged and counted, and is not retried by polling (a new event for
that version retries it).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from contracts.events import ModelPromoted
from servicekit import heap
from servicekit.logs import log_context
from services.serving.domain.canary import MAX_SHARE
from services.serving.domain.model import LoadedModel, ModelSlot
from services.serving.metrics import MODEL_LOAD_SECONDS, MODEL_LOADS, MODEL_VERSION

log = logging.getLogger(__name__)

CANARY_SHARE = "canary_share"  # the registered model's tag the training service sets with the alias


class ModelRegistry(Protocol):
    """Blocking calls; the reloader runs them in a thread."""

    def version_of(self, alias: str) -> str | None: ...

    def load(self, version: str, alias: str) -> LoadedModel: ...

    def model_tag(self, key: str) -> str | None: ...


class ModelReloader:
    def __init__(
        self,
        slot: ModelSlot,
        registry: ModelRegistry,
        model_name: str,
        champion: str,
        shadow: str | None,
        canary: str | None = None,
    ) -> None:
        self.slot = slot
        self.registry = registry
        self.model_name = model_name
        self.aliases = {champion: False} | ({shadow: True} if shadow else {})
        self.canary_alias = canary
        self.failed: set[tuple[str, str]] = set()
        self._lock = asyncio.Lock()

    async def on_promoted(self, event: ModelPromoted) -> None:
        payload = event.payload
        if payload.model_name != self.model_name:
            return
        with log_context(model_version=payload.model_version):
            current = self.slot.champion
            if current is not None and current.version == payload.model_version:
                return  # already serving it (a redelivery or a replay)
            await self.refresh(retry=payload.model_version)

    async def refresh(self, *, retry: str | None = None) -> None:
        """Load whatever each alias points at now, if it is not what is served. Never raises.
        A version that failed to load is tried again only when named by `retry` (a new event)."""
        async with self._lock:
            served = self._served()
            for alias, shadow in self.aliases.items():
                try:
                    await self._refresh(alias, shadow, retry)
                except Exception:
                    log.exception("could not refresh alias %s", alias)
            if self.canary_alias is not None:
                try:
                    await self._refresh_canary(self.canary_alias)
                except Exception:
                    log.exception("could not refresh alias %s", self.canary_alias)
            if self._served() != served:
                # A load imports MLflow's flavour and sklearn and brings a model: out of the collector's
                # sight, or every full collection walks them while requests wait. The replaced model is
                # no longer referenced here, and the heap is unfrozen first, so whatever of it only a
                # cycle held is freed rather than frozen for good: one full collection per swap
                # (servicekit/heap.py).
                heap.settle(refreeze=True)

    def _served(self) -> tuple[int, ...]:
        """Which model objects are served (their ids: nothing here keeps a replaced one alive)."""
        canary = self.slot.canary[0] if self.slot.canary else None
        return tuple(id(m) for m in (self.slot.champion, self.slot.challenger, canary))

    async def _refresh_canary(self, alias: str) -> None:
        """The canary alias and its share (the registered model's tag canary_share): loaded, changed
        or dropped. A canary that fails to load is not served (all traffic stays on the champion)."""
        version = await asyncio.to_thread(self.registry.version_of, alias)
        tag = await asyncio.to_thread(self.registry.model_tag, CANARY_SHARE) if version else None
        share = float(tag) if tag else 0.0
        current = self.slot.canary
        if version is None or share <= 0:
            if current is not None:
                log.info("canary %s ended: all traffic to the champion", current[0].version)
            self.slot.set_canary(None)
            return
        if current is not None and current[0].version == version:
            if current[1].share != share:
                self.slot.set_canary(current[0], share)
                log.info("canary %s now answers %.1f%% of traffic", version, share * 100)
            return
        if (alias, version) in self.failed:
            return
        try:
            model = await asyncio.to_thread(self.registry.load, version, alias)
        except Exception as exc:
            self.failed.add((alias, version))
            MODEL_LOADS.labels(alias, "failed").inc()
            self.slot.set_canary(None)
            log.error("loading canary version %s failed; no canary served: %s", version, exc)
            return
        MODEL_LOADS.labels(alias, "ok").inc()
        MODEL_VERSION.labels(alias).set(float(version) if version.isdigit() else -1)
        self.slot.set_canary(model, min(share, MAX_SHARE))
        log.info("canary version %s answers %.1f%% of traffic", version, share * 100)

    async def _refresh(self, alias: str, shadow: bool, retry: str | None) -> None:
        version = await asyncio.to_thread(self.registry.version_of, alias)
        current = self.slot.challenger if shadow else self.slot.champion
        if version is None or (current is not None and current.version == version):
            return
        if (alias, version) in self.failed and version != retry:
            return
        with MODEL_LOAD_SECONDS.time():
            try:
                model = await asyncio.to_thread(self.registry.load, version, alias)
            except Exception as exc:
                self.failed.add((alias, version))
                MODEL_LOADS.labels(alias, "failed").inc()
                kept = current.version if current else None
                log.error("loading %s version %s failed; still serving %s: %s", alias, version, kept, exc)
                return
        self.failed.discard((alias, version))
        previous = self.slot.swap(model, shadow=shadow)
        MODEL_LOADS.labels(alias, "ok").inc()
        MODEL_VERSION.labels(alias).set(float(version) if version.isdigit() else -1)
        log.info(
            "now serving %s version %s (was %s; %s scorer; loaded in %.2f s)",
            alias,
            version,
            previous.version if previous else None,
            model.scorer.kind,
            model.load_seconds,
        )

    async def poll_forever(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            await self.refresh()
