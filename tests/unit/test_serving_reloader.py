"""Hot swap logic with a fake registry: the alias is the truth, events are prompts, a failed load
keeps the champion, stale or replayed events change nothing."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from contracts.events import GateEvidence, ModelPromoted, ModelPromotedPayload
from services.serving.domain.model import ModelSlot
from services.serving.reloader import ModelReloader
from tests.unit.test_serving_support import SMALL_FEATURES, FakeRegistry, loaded


def promoted(version: str, model: str = "credit-risk") -> ModelPromoted:
    payload = ModelPromotedPayload(
        model_name=model,
        model_version=version,
        run_id="run",
        evidence=GateEvidence(checks=[], candidate_metrics={"auc": 0.8}),
    )
    return ModelPromoted.create(payload, "training")


def setup(shadow: str | None = None) -> tuple[ModelSlot, FakeRegistry, ModelReloader]:
    models = {"1": loaded("1"), "2": loaded("2", SMALL_FEATURES), "3": loaded("3")}
    registry = FakeRegistry(models, {"champion": "1"})
    slot = ModelSlot()
    return slot, registry, ModelReloader(slot, registry, "credit-risk", "champion", shadow)


def loads(outcome: str) -> float:
    return (
        REGISTRY.get_sample_value("serving_model_loads_total", {"alias": "champion", "outcome": outcome}) or 0
    )


async def test_refresh_loads_what_the_alias_names_once() -> None:
    slot, registry, reloader = setup()
    await reloader.refresh()
    await reloader.refresh()
    assert slot.champion is not None and slot.champion.version == "1" and registry.loads == ["1"]
    assert REGISTRY.get_sample_value("serving_model_version", {"alias": "champion"}) == 1.0


async def test_no_alias_yet_means_no_model_and_no_error() -> None:
    slot, registry, reloader = setup()
    registry.aliases.clear()
    await reloader.refresh()
    assert slot.champion is None and registry.loads == []


async def test_a_promotion_swaps_in_the_new_version() -> None:
    slot, registry, reloader = setup()
    await reloader.refresh()
    registry.aliases["champion"] = "2"
    await reloader.on_promoted(promoted("2"))
    assert slot.champion is not None and slot.champion.version == "2"
    assert slot.champion.feature_names == SMALL_FEATURES


async def test_replayed_stale_and_foreign_events_change_nothing() -> None:
    slot, registry, reloader = setup()
    registry.aliases["champion"] = "2"
    await reloader.refresh()
    for event in (promoted("1"), promoted("2"), promoted("2"), promoted("9", model="other")):
        await reloader.on_promoted(event)
    assert slot.champion is not None and slot.champion.version == "2" and registry.loads == ["2"]


async def test_a_failed_load_keeps_the_champion_and_is_counted() -> None:
    slot, registry, reloader = setup()
    await reloader.refresh()
    before = loads("failed")
    registry.broken.add("3")
    registry.aliases["champion"] = "3"
    await reloader.on_promoted(promoted("3"))
    assert slot.champion is not None and slot.champion.version == "1"
    assert loads("failed") == before + 1
    await reloader.refresh()  # polling does not hammer a version that failed
    assert registry.loads.count("3") == 1
    registry.broken.clear()  # e.g. the artifact was re-uploaded and the version promoted again
    await reloader.on_promoted(promoted("3"))
    assert slot.champion.version == "3"


async def test_a_shadow_alias_loads_the_challenger_beside_the_champion() -> None:
    slot, registry, reloader = setup(shadow="challenger")
    registry.aliases["challenger"] = "2"
    await reloader.refresh()
    assert slot.champion is not None and slot.champion.version == "1"
    assert slot.challenger is not None and slot.challenger.version == "2"
    assert slot.challenger.alias == "challenger"


async def test_a_rollback_swaps_back_to_the_older_version_like_a_promotion() -> None:
    slot, registry, reloader = setup()
    await reloader.refresh()
    registry.aliases["champion"] = "2"
    await reloader.on_promoted(promoted("2"))
    registry.aliases["champion"] = "1"  # the training service moved it back
    back = promoted("1").payload.model_copy(
        update={"kind": "rollback", "reason": "bad", "previous_version": "2"}
    )
    await reloader.on_promoted(ModelPromoted.create(back, "training"))
    assert slot.champion is not None and slot.champion.version == "1"
    assert registry.loads == ["1", "2", "1"]


async def test_each_swap_and_only_a_swap_settles_the_heap(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a load brings (MLflow's flavour, sklearn, the model) is frozen after the swap, so full
    collections stop walking it while requests wait (servicekit/heap.py); a failed load or a refresh
    that changes nothing settles nothing."""
    from services.serving import reloader as module

    settled: list[tuple[str | None, bool]] = []
    slot, registry, reloader = setup()
    serving = lambda: slot.champion.version if slot.champion else None  # noqa: E731
    monkeypatch.setattr(
        module.heap, "settle", lambda *, refreeze=False: settled.append((serving(), refreeze))
    )
    await reloader.refresh()
    await reloader.refresh()
    assert settled == [("1", True)]  # after the swap, with the new model in place, unfreezing first
    registry.broken.add("3")
    registry.aliases["champion"] = "3"
    await reloader.on_promoted(promoted("3"))
    registry.aliases["champion"] = "2"
    await reloader.on_promoted(promoted("2"))
    assert settled == [("1", True), ("2", True)]


# A service's own process: a model whose scorer only a cycle holds, swapped out after being frozen.
SWAPS = """
import asyncio, dataclasses, gc, json, sys, weakref
from servicekit import heap
from services.serving.domain.model import ModelSlot
from services.serving.reloader import ModelReloader
from tests.unit.test_serving_support import FakeRegistry, loaded

class Cyclic:
    def __init__(self):
        self.me, self.weights = self, [[0.0] * 100 for _ in range(100)]

class Fresh(FakeRegistry):
    def load(self, version, alias):  # a new model each time, kept by nothing but the slot
        return dataclasses.replace(loaded(version), alias=alias, scorer=Cyclic())

if sys.argv[1] == "plain":  # what settling without unfreezing would do
    heap.settle = lambda *, refreeze=False: (gc.collect(), gc.freeze())
heap.own_process()
slot, registry = ModelSlot(), Fresh({}, {"champion": "1"})
reloader = ModelReloader(slot, registry, "credit-risk", "champion", None)
asyncio.run(reloader.refresh())
first = weakref.ref(slot.champion.scorer)
registry.aliases["champion"] = "2"
asyncio.run(reloader.refresh())
print(json.dumps({"serving": slot.champion.version, "first_scorer_alive": first() is not None}))
"""


@pytest.mark.parametrize("mode, kept", [("refreeze", False), ("plain", True)])
def test_a_replaced_model_held_by_a_cycle_is_freed_not_frozen(mode: str, kept: bool) -> None:
    import json
    import os
    import subprocess
    import sys

    from infra.settings import REPO_ROOT

    out = subprocess.run(
        [sys.executable, "-c", SWAPS, mode], cwd=REPO_ROOT, env=dict(os.environ),
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"serving": "2", "first_scorer_alive": kept}
