"""The champion's history and the choice of a rollback target (pure: no MLflow, no SQL).

Every move of the champion alias made by the training service is one `Move`: a promotion (a candidate
passed the gate) or a rollback (ops moved it back, with a reason). The history is read as a stack:
a promotion pushes its version; a rollback pops down to its target (or pushes it, when ops named a
version that had been rolled away from). Rolling back without a target goes to the newest champion
on that stack below the current one, so v1, v2, v3 promoted then two rollbacks give v2, then v1, and
a third is refused: there is no earlier champion.

A rollback may only go to a version that was a champion here (was promoted after passing the gate,
so its gate evidence is in the history): never to an unknown version, the current champion, or a
version that was registered but never promoted.

>>> h = [Move("1", None, "promotion", "r1", {}, "e1"), Move("2", "1", "promotion", "r2", {}, "e2")]
>>> rollback_target(h, current="2", to_version=None).version
'1'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from services.training.errors import ChampionMoveRefused

Kind = Literal["promotion", "rollback"]


@dataclass(frozen=True)
class Move:
    """One move of the champion alias (to `version`, from `previous_version`)."""

    version: str
    previous_version: str | None
    kind: Kind
    run_id: str
    evidence: dict[str, Any]  # GateEvidence (JSON) of `version` when it passed the gate
    event_id: str
    reason: str | None = None
    requested_by: str | None = None
    at: str = ""
    request: dict[str, Any] = field(default_factory=dict)  # a rollback's request (to_version, reason)


def champion_stack(history: Sequence[Move]) -> list[str]:
    """The champions in force, oldest first, after replaying the history."""
    stack: list[str] = []
    for move in history:
        if move.kind == "rollback" and move.version in stack:
            del stack[stack.index(move.version) + 1 :]
        else:
            stack.append(move.version)
    return stack


def rollback_target(history: Sequence[Move], current: str | None, to_version: str | None) -> Move:
    """The promotion the champion goes back to, or ChampionMoveRefused with a code saying why.
    (Whether `to_version` exists in the registry at all is checked before, against the registry.)"""
    if current is None:
        raise ChampionMoveRefused("no_champion", "the model has no champion to roll back from")
    promotions = {move.version: move for move in history if move.kind == "promotion"}
    if to_version is not None:
        if to_version == current:
            raise ChampionMoveRefused("already_champion", f"version {to_version} is the champion already")
        if to_version not in promotions:
            raise ChampionMoveRefused(
                "never_champion",
                f"version {to_version} never passed the gate and became champion: no rollback to it",
            )
        return promotions[to_version]
    earlier = [version for version in champion_stack(history) if version != current]
    if not earlier:
        raise ChampionMoveRefused(
            "no_earlier_champion", f"no champion before version {current} to go back to"
        )
    return promotions[earlier[-1]]


def repeated(history: Sequence[Move], request: dict[str, Any]) -> Move | None:
    """The last move, when it is a rollback asked with the same request (same target as asked, same
    reason): a request sent twice without an idempotency key is answered by the first, not moved twice."""
    if history and history[-1].kind == "rollback" and history[-1].request == request:
        return history[-1]
    return None
