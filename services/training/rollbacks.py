"""Rolling the champion back, through an event and the audit trail (`POST /models/{name}/rollback`,
`mlops model rollback`).

The target comes from the champion history (domain/champions.py): a named version that was champion
before, or the champion before the current one. The move is a ModelPromoted with `kind="rollback"` and
the ops reason, carrying the target's original gate evidence, on the same topic as promotions: serving
swaps to it exactly as for a promotion and the audit records it like every event.

Idempotent: a request with an idempotency key is done once (a retry is answered with the first
answer, a key reused for a different request is refused); without a key, a request identical to the
last move (a rollback with the same target as asked and the same reason) is answered the same way.
The move is recorded before the alias moves and marked published after Kafka has the event, so a
retry after a failure in between finishes it (alias set again, the same event published again).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from contracts.events import GateEvidence, ModelPromoted, ModelPromotedPayload
from services.training.adapters.champions import ChampionHistory
from services.training.alias_moves import AliasMoves
from services.training.domain.champions import Move, repeated, rollback_target
from services.training.errors import ChampionMoveRefused, UnknownVersion

log = logging.getLogger(__name__)

CHAMPION = "champion"


class AliasRegistry(Protocol):
    """Port: the registry's aliases (blocking calls, run in a thread)."""

    def version_of(self, alias: str) -> str | None: ...
    def version_exists(self, version: str) -> bool: ...
    def set_alias(self, alias: str, version: str) -> None: ...


@dataclass(frozen=True)
class RollbackRequest:
    reason: str
    requested_by: str
    to_version: str | None = None
    idempotency_key: str | None = None

    def fingerprint(self) -> dict[str, Any]:
        return {"action": "rollback", "to_version": self.to_version, "reason": self.reason}


@dataclass(kw_only=True)
class Rollbacks(AliasMoves[AliasRegistry]):
    history: ChampionHistory

    async def rollback(self, request: RollbackRequest) -> dict[str, Any]:
        async with self._lock:
            earlier = await asyncio.to_thread(self._earlier, request)
            if earlier is not None:
                return await self._replay(*earlier)
            return await self._move(request)

    def _earlier(self, request: RollbackRequest) -> tuple[Move, str | None, bool] | None:
        if request.idempotency_key is None:
            same = repeated(self.history.moves(), request.fingerprint())
            return None if same is None else self.history.by_event(same.event_id)
        found = self.history.by_key(request.idempotency_key)
        if found is not None and found[0].request != request.fingerprint():
            raise ChampionMoveRefused(
                "idempotency_key_reused", "this idempotency key was used for a different request"
            )
        return found

    async def _move(self, request: RollbackRequest) -> dict[str, Any]:
        current, target = await asyncio.to_thread(self._target, request)
        payload = ModelPromotedPayload(
            model_name=self.model_name,
            model_version=target.version,
            run_id=target.run_id,
            previous_version=current,
            evidence=GateEvidence.model_validate(target.evidence),
            kind="rollback",
            reason=request.reason,
            requested_by=request.requested_by,
        )
        event = ModelPromoted.create(payload, self.producer)
        move = Move(
            target.version,
            current,
            "rollback",
            target.run_id,
            target.evidence,
            str(event.event_id),
            request.reason,
            request.requested_by,
            request=request.fingerprint(),
        )
        json = event.model_dump_json()
        await asyncio.to_thread(
            self.history.record, move, event=json, key=request.idempotency_key, published=False
        )
        log.info("rolling the champion back from %s to %s: %s", current, target.version, request.reason)
        return await self._finish(move, json, replayed=False)

    def _target(self, request: RollbackRequest) -> tuple[str | None, Move]:
        if request.to_version is not None and not self.registry.version_exists(request.to_version):
            raise UnknownVersion(f"model {self.model_name} has no version {request.to_version}")
        current = self.registry.version_of(CHAMPION)
        return current, rollback_target(self.history.moves(), current, request.to_version)

    async def _replay(self, move: Move, event: str | None, published: bool) -> dict[str, Any]:
        if published or event is None:
            return _answer(move, replayed=True)
        latest = await asyncio.to_thread(self.history.moves)
        if latest[-1].event_id != move.event_id:  # a promotion came since: never move back over it
            log.warning("unpublished rollback %s was superseded; left as it is", move.event_id)
            return _answer(move, replayed=True)
        return await self._finish(move, event, replayed=True)

    async def _finish(self, move: Move, event: str, *, replayed: bool) -> dict[str, Any]:
        """Set the alias, publish the event, mark it published (each step safe to repeat)."""
        try:
            await asyncio.to_thread(self.registry.set_alias, CHAMPION, move.version)
        except Exception:
            if not replayed:
                await asyncio.to_thread(self.history.forget, move.event_id)
            raise
        await self.publish(ModelPromoted.model_validate_json(event), self.topic)
        await asyncio.to_thread(self.history.mark_published, move.event_id)
        return _answer(move, replayed=replayed)


def _answer(move: Move, *, replayed: bool) -> dict[str, Any]:
    return {
        "event_id": move.event_id,
        "kind": move.kind,
        "champion": move.version,
        "previous_version": move.previous_version,
        "reason": move.reason,
        "requested_by": move.requested_by,
        "replayed": replayed,
    }
