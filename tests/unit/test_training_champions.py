"""The choice of a rollback target from the champion history, and every refusal with its code."""

from __future__ import annotations

import pytest

from services.training.domain.champions import Move, champion_stack, repeated, rollback_target
from services.training.errors import ChampionMoveRefused


def promoted(version: str, previous: str | None = None) -> Move:
    return Move(version, previous, "promotion", f"run-{version}", {"checks": []}, f"p{version}")


def rolled(version: str, previous: str, asked: str | None = None, reason: str = "bad") -> Move:
    request = {"action": "rollback", "to_version": asked, "reason": reason}
    return Move(
        version,
        previous,
        "rollback",
        f"run-{version}",
        {},
        f"r{version}-{previous}",
        reason,
        "ops",
        "",
        request,
    )


THREE = [promoted("1"), promoted("2", "1"), promoted("3", "2")]


def refusal(history: list[Move], current: str | None, to: str | None) -> str:
    with pytest.raises(ChampionMoveRefused) as caught:
        rollback_target(history, current, to)
    assert caught.value.status == 409
    return caught.value.code


def test_without_a_target_the_champion_before_the_current_one_is_chosen() -> None:
    target = rollback_target(THREE, "3", None)
    assert (target.version, target.kind, target.run_id) == ("2", "promotion", "run-2")


def test_successive_rollbacks_walk_back_the_chain_then_are_refused() -> None:
    history = [*THREE, rolled("2", "3")]
    assert champion_stack(history) == ["1", "2"]
    assert rollback_target(history, "2", None).version == "1"
    history.append(rolled("1", "2"))
    assert refusal(history, "1", None) == "no_earlier_champion"


def test_a_rollback_to_a_named_earlier_champion_skips_those_in_between() -> None:
    assert rollback_target(THREE, "3", "1").version == "1"
    history = [*THREE, rolled("1", "3", asked="1")]
    assert champion_stack(history) == ["1"]
    assert refusal(history, "1", None) == "no_earlier_champion"
    history.append(promoted("4", "1"))  # a new promotion after a rollback: back to the restored one
    assert rollback_target(history, "4", None).version == "1"


def test_a_version_rolled_away_from_can_be_named_again() -> None:
    history = [*THREE, rolled("2", "3")]
    target = rollback_target(history, "2", "3")
    assert target.version == "3" and target.evidence == {"checks": []}  # its own gate evidence


def test_refusals() -> None:
    assert refusal([], None, None) == "no_champion"
    assert refusal([promoted("1")], "1", None) == "no_earlier_champion"
    assert refusal(THREE, "3", "3") == "already_champion"
    assert refusal(THREE, "3", "7") == "never_champion"  # registered (say) but never promoted
    only_rollback_of = [promoted("1"), rolled("5", "1")]  # history that names 5 only as a rollback target
    assert refusal(only_rollback_of, "5", "9") == "never_champion"


def test_the_alias_moved_by_hand_still_rolls_back_to_the_history() -> None:
    assert rollback_target(THREE, "9", None).version == "3"


def test_a_request_identical_to_the_last_rollback_is_recognised() -> None:
    last = rolled("2", "3", asked=None, reason="AUC fell")
    history = [*THREE, last]
    assert repeated(history, {"action": "rollback", "to_version": None, "reason": "AUC fell"}) == last
    assert repeated(history, {"action": "rollback", "to_version": None, "reason": "other"}) is None
    assert repeated(THREE, {"action": "rollback", "to_version": None, "reason": "AUC fell"}) is None
