"""Canaries (`POST /models/{name}/canary`, `.../canary/end`): ops let a registered version answer a
share of live traffic beside the champion, with a reason, through an event and the audit trail.

The registry is the truth, as for the champion: the `canary` alias names the version and the
registered model's tag `canary_share` its share; serving reads both (services/serving/reloader.py).
Each change is a CanaryChanged on model.canary. Asking again for the canary that already runs (same
version, same share) changes nothing and publishes nothing (`"replayed": true`). When the event
cannot be published, the alias and tag are put back as they were and the call fails: retry it.
Nothing is promoted: the drift service recommends (GET /canary there), ops decide (`POST
/models/{name}/rollback` cannot name a canary: it was never champion; promotion is the gate's).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from contracts.events import CanaryChanged, CanaryChangedPayload
from services.training.alias_moves import AliasMoves
from services.training.errors import ChampionMoveRefused, UnknownVersion

log = logging.getLogger(__name__)

CANARY, CHAMPION, SHARE_TAG = "canary", "champion", "canary_share"


class CanaryRegistry(Protocol):
    def version_of(self, alias: str) -> str | None: ...
    def version_exists(self, version: str) -> bool: ...
    def set_alias(self, alias: str, version: str) -> None: ...
    def delete_alias(self, alias: str) -> None: ...
    def model_tag(self, key: str) -> str | None: ...
    def set_model_tag(self, key: str, value: str) -> None: ...


@dataclass(frozen=True)
class Running:
    champion: str | None
    canary: str | None
    share: float | None


@dataclass
class Canaries(AliasMoves[CanaryRegistry]):
    def _running(self) -> Running:
        share = self.registry.model_tag(SHARE_TAG)
        canary = self.registry.version_of(CANARY)
        return Running(self.registry.version_of(CHAMPION), canary, float(share) if canary and share else None)

    async def start(self, version: str, share: float, reason: str, by: str) -> dict[str, Any]:
        async with self._lock:
            if not await asyncio.to_thread(self.registry.version_exists, version):
                raise UnknownVersion(f"model {self.model_name} has no version {version}")
            now = await asyncio.to_thread(self._running)
            if now.champion is None:
                raise ChampionMoveRefused(
                    "no_champion", "a canary is compared with a champion: there is none"
                )
            if version == now.champion:
                raise ChampionMoveRefused("is_champion", f"version {version} is the champion")
            if (now.canary, now.share) == (version, share):
                return _answer(None, "started", version, share, now.champion)
            payload = CanaryChangedPayload(
                model_name=self.model_name,
                action="started",
                model_version=version,
                share=share,
                champion_version=now.champion,
                reason=reason,
                requested_by=by,
            )
            event = CanaryChanged.create(payload, self.producer)
            await self._apply(event, now, (version, share))
            log.info(
                "canary %s on %.0f%% of traffic (champion %s): %s", version, share * 100, now.champion, reason
            )
            return _answer(event, "started", version, share, now.champion)

    async def end(self, reason: str, by: str) -> dict[str, Any]:
        async with self._lock:
            now = await asyncio.to_thread(self._running)
            if now.canary is None:
                raise ChampionMoveRefused("no_canary", "no canary is running")
            payload = CanaryChangedPayload(
                model_name=self.model_name,
                action="ended",
                model_version=now.canary,
                champion_version=now.champion,
                reason=reason,
                requested_by=by,
            )
            event = CanaryChanged.create(payload, self.producer)
            await self._apply(event, now, None)
            log.info("canary %s ended: %s", now.canary, reason)
            return _answer(event, "ended", now.canary, None, now.champion)

    async def _apply(self, event: CanaryChanged, before: Running, after: tuple[str, float] | None) -> None:
        await asyncio.to_thread(self._set, after)
        try:
            await self.publish(event, self.topic)
        except Exception:
            restore = (before.canary, before.share or 0.0) if before.canary else None
            await asyncio.to_thread(self._set, restore)
            raise

    def _set(self, canary: tuple[str, float] | None) -> None:
        if canary is None:
            if self.registry.version_of(CANARY) is not None:
                self.registry.delete_alias(CANARY)
            return
        self.registry.set_model_tag(
            SHARE_TAG, repr(canary[1])
        )  # the share first: serving reads alias, then it
        self.registry.set_alias(CANARY, canary[0])


def _answer(
    event: CanaryChanged | None, action: str, version: str, share: float | None, champion: str | None
) -> dict[str, Any]:
    """The route's answer; without an event, the request changed nothing (it was running already)."""
    return {
        "event_id": str(event.event_id) if event else None,
        "action": action,
        "canary": version,
        "share": share,
        "champion": champion,
        "replayed": event is None,
    }
