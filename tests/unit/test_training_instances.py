"""Two training instances on one shared state (as the cluster profile runs them): a request both read
around a rebalance runs once, a run whose instance died is taken over when its claim expires, a live
run's renewed claim is never taken, and a drift retrain waiting for labels counts the labels both
instances store and is requested once."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from contracts.events import ModelPromoted, ModelRejected, TrainingRequested
from servicekit.sqlite import SqliteDatabase
from services.training.adapters.run_claims import RUN_CLAIMS_SCHEMA, RunClaims
from services.training.handlers import TrainingService
from tests.support import training_request
from tests.unit.test_training_handlers import SINCE_CHANGE, T0, Bus, changed_at, feed_labels, label, make
from tests.unit.test_training_support import feature_frame


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    return feature_frame(600)


def claims_at(tmp_path: Path, now: list[float]) -> RunClaims:
    schema = ("CREATE TABLE runs (request_id TEXT PRIMARY KEY)", *RUN_CLAIMS_SCHEMA)
    return RunClaims(SqliteDatabase(tmp_path / "claims.db", schema), clock=lambda: now[0])


def test_a_claim_is_held_until_it_expires_then_taken_over_and_the_old_owner_cannot_renew(
    tmp_path: Path,
) -> None:
    now = [1000.0]
    claims = claims_at(tmp_path, now)
    assert claims.claim("r1", "a", 30).verdict == "claimed"
    held = claims.claim("r1", "b", 30)
    assert held.verdict == "held" and held.owner == "a" and held.expires_in_s == 30
    assert claims.claim("r1", "a", 30).verdict == "claimed"  # its own claim again (a redelivery)
    now[0] += 20
    assert claims.renew("r1", "a", 30)  # renewed: lasts until 1050
    now[0] += 29
    assert claims.claim("r1", "b", 30).verdict == "held"
    now[0] += 2  # past 1050: a stopped renewing (it died)
    taken = claims.claim("r1", "b", 30)
    assert taken.verdict == "claimed" and taken.owner == "a"
    assert claims.holder("r1") == ("b", 30)
    assert not claims.renew("r1", "a", 30)  # a, if it was only slow, learns it lost the claim
    claims.release("r1", "a")  # and its release does not remove b's claim
    assert claims.holder("r1") == ("b", 30)
    with claims.database.transaction() as db:
        db.execute("INSERT INTO runs VALUES ('r1')")
    assert claims.claim("r1", "c", 30).verdict == "done"


def two_instances(
    tmp_path: Path, features: pd.DataFrame, lease_s: float = 30.0, policy: Any = None
) -> tuple[TrainingService, Bus, TrainingService, Bus]:
    first, first_bus = make(tmp_path, features, policy)
    second, second_bus = make(tmp_path, features, policy)  # the same state file
    for service, name in ((first, "instance-1"), (second, "instance-2")):
        service.instance, service.claim_lease_s = name, lease_s
    return first, first_bus, second, second_bus


def decisions(*buses: Bus) -> list[Any]:
    return [e for bus in buses for e, _ in bus.sent if isinstance(e, ModelPromoted | ModelRejected)]


async def test_a_request_both_instances_read_at_once_runs_once(
    tmp_path: Path, features: pd.DataFrame
) -> None:
    first, first_bus, second, second_bus = two_instances(tmp_path, features)
    request = training_request()
    outcomes = await asyncio.gather(
        first.on_training_requested(request), second.on_training_requested(request)
    )
    assert sum(outcome is not None for outcome in outcomes) == 1  # one ran it, the other waited: done
    [decided] = decisions(first_bus, second_bus)
    assert decided.causation_id == str(request.event_id)
    assert first.state.run(str(request.event_id)) is not None
    assert first.claims.holder(str(request.event_id)) is None  # released once saved


async def test_a_run_whose_instance_died_is_taken_over_when_its_claim_expires(
    tmp_path: Path, features: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    _, first_bus, second, second_bus = two_instances(tmp_path, features)
    request = training_request()
    # Instance 1 claimed the request and was killed mid-run: its claim is never renewed.
    assert second.claims.claim(str(request.event_id), "instance-1", 1.0).verdict == "claimed"
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="services.training.run_claim"):
        outcome = await second.on_training_requested(request)
    assert outcome is not None and time.monotonic() - started >= 0.9  # it waited for the claim to end
    assert "took over the claim of instance-1" in caplog.text
    assert len(decisions(first_bus, second_bus)) == 1


async def test_a_live_runs_renewed_claim_is_never_taken_over(
    tmp_path: Path, features: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    first, first_bus, second, second_bus = two_instances(tmp_path, features, lease_s=0.6)
    run = first.trainer.run

    def slow_run(event: TrainingRequested) -> Any:
        time.sleep(2.5)  # four leases long: only the renewals keep the claim
        return run(event)

    first.trainer.run = slow_run  # type: ignore[method-assign]
    request = training_request()
    running = asyncio.create_task(first.on_training_requested(request))
    await asyncio.sleep(0.3)
    with caplog.at_level(logging.INFO):
        assert await second.on_training_requested(request) is None  # it waited, then found it done
    assert await running is not None
    assert "took over" not in caplog.text and "lost the claim" not in caplog.text
    assert "is being run by instance-1; waiting" in caplog.text
    assert len(decisions(first_bus, second_bus)) == 1


async def test_a_waiting_drift_retrain_counts_both_instances_labels_and_is_requested_once(
    tmp_path: Path, features: pd.DataFrame
) -> None:
    first, first_bus, second, second_bus = two_instances(tmp_path, features, policy=SINCE_CHANGE)
    change = T0 + timedelta(hours=2)
    decision = await first.on_drift(changed_at(change))  # instance 1 reads the drift event
    assert decision.reason == "waiting_for_labels"  # for 10 labels since the change point
    # The labels' partitions are split: each instance stores half of them.
    await first.on_labels([label(f"one{i}", "bad", change + timedelta(seconds=i)) for i in range(5)])
    await second.on_labels([label(f"two{i}", "bad", change + timedelta(seconds=i)) for i in range(4)])
    assert not first_bus.sent and not second_bus.sent  # 9 of 10
    assert (await second.retraining_status())["waiting"]["labels"] == 9  # either instance tells it
    tenth, eleventh = (
        [label(f"{name}-last", "bad", change + timedelta(minutes=1))] for name in ("one", "two")
    )
    await asyncio.gather(second.on_labels(tenth), first.on_labels(eleventh))
    requests = [e for bus in (first_bus, second_bus) for e, _ in bus.sent if isinstance(e, TrainingRequested)]
    assert len(requests) == 1 and requests[0].payload.window_start == change
    await first.on_labels([label(f"later{i}", "bad", change + timedelta(minutes=2)) for i in range(20)])
    await second.on_labels([label(f"after{i}", "bad", change + timedelta(minutes=2)) for i in range(20)])
    assert len(first_bus.sent) + len(second_bus.sent) == 1  # decided once
    assert (await first.retraining_status())["waiting"] is None


async def test_a_waiting_retrain_whose_request_fails_to_publish_waits_again(
    tmp_path: Path, features: pd.DataFrame
) -> None:
    service, bus = make(tmp_path, features, SINCE_CHANGE)
    change = T0 + timedelta(hours=2)
    assert (await service.on_drift(changed_at(change))).reason == "waiting_for_labels"
    sent = bus.publish

    async def broker_away(event: Any, topic: str) -> None:
        raise ConnectionError("broker away")

    service.publish = broker_away  # the request cannot go out when the tenth label comes
    with pytest.raises(ConnectionError):
        await service.on_labels([label(f"new{i}", "bad", change + timedelta(seconds=i)) for i in range(10)])
    waiting = (await service.retraining_status())["waiting"]
    assert waiting is not None and waiting["labels"] == 10  # put back, not lost with the failed send
    service.publish = sent
    await service.on_labels([label("one-more", "bad", change + timedelta(minutes=1))])
    assert bus.types() == ["TrainingRequested"]
    assert (await service.retraining_status())["waiting"] is None


def test_the_waiting_retrain_changes_only_from_what_the_changer_read(tmp_path: Path) -> None:
    from services.training.adapters.state import TrainingState

    state = TrainingState(tmp_path / "state.db")
    first, second = {"event_id": "d1", "since": "x"}, {"event_id": "d2", "since": "y"}
    assert state.replace_pending_retrain(None, first)
    assert not state.replace_pending_retrain(None, second)  # one waits already: not blindly replaced
    assert not state.replace_pending_retrain(second, None)  # it is not d2 that waits
    assert state.pending_retrain() == first
    assert state.replace_pending_retrain(first, second) and state.pending_retrain() == second
    assert state.replace_pending_retrain(second, None) and state.pending_retrain() is None


def slowed(service: TrainingService, seconds: float, meanwhile: Any = None) -> None:
    run = service.trainer.run

    def slow_run(event: TrainingRequested) -> Any:
        time.sleep(seconds)
        if meanwhile is not None:
            meanwhile(str(event.event_id))
        return run(event)

    service.trainer.run = slow_run  # type: ignore[method-assign]


async def test_an_instance_that_lost_its_claim_mid_run_publishes_and_saves_nothing(
    tmp_path: Path, features: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    first, first_bus, _, _ = two_instances(tmp_path, features)

    def taken_over(request_id: str) -> None:  # it stalled past its lease; instance 2 took the run
        with first.state.database.transaction() as db:
            db.execute("UPDATE run_claims SET owner = 'instance-2' WHERE request_id = ?", (request_id,))

    slowed(first, 0.2, taken_over)
    request = training_request()
    with caplog.at_level(logging.ERROR):
        assert await first.on_training_requested(request) is None
    assert "claim lost before publishing" in caplog.text
    assert not decisions(first_bus) and first.state.run(str(request.event_id)) is None
    assert first.claims.holder(str(request.event_id))[0] == "instance-2"  # its claim is left alone


async def test_a_stop_mid_run_keeps_the_claim_until_it_expires_then_the_other_runs_it_once(
    tmp_path: Path, features: pd.DataFrame
) -> None:
    first, first_bus, second, second_bus = two_instances(tmp_path, features, lease_s=0.6)
    slowed(first, 1.0)
    request = training_request()
    running = asyncio.create_task(first.on_training_requested(request))
    await asyncio.sleep(0.3)
    running.cancel()  # the service stops (FastStream cancels its handlers); the thread runs on
    with pytest.raises(asyncio.CancelledError):
        await running
    holder = first.claims.holder(str(request.event_id))
    assert holder is not None and holder[0] == "instance-1"  # kept, not released: it may still act
    outcome = await second.on_training_requested(request)  # waits until the kept claim expires
    assert outcome is not None and first.state.run(str(request.event_id)) is not None
    assert not decisions(first_bus) and len(decisions(second_bus)) == 1  # decided once, by the other


async def test_an_instance_whose_claim_was_taken_over_does_not_move_the_champion(
    tmp_path: Path, features: pd.DataFrame
) -> None:
    first, _, _, _ = two_instances(tmp_path, features)
    await feed_labels(first, features)
    request = training_request()
    assert first.claims.claim(str(request.event_id), "instance-2", 60).verdict == "claimed"
    outcome = first.trainer.run(request)  # as if it ran on after losing the claim
    assert outcome.status == "rejected" and "taken over by another instance" in outcome.reasons[0]
    assert first.trainer.registry.champion() is None  # the alias never moved


async def test_a_retrain_requested_before_a_failure_is_not_put_back_to_be_requested_again(
    tmp_path: Path, features: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    service, bus = make(tmp_path, features, SINCE_CHANGE)
    change = T0 + timedelta(hours=2)
    await service.on_drift(changed_at(change))
    save = service.state.save_decision

    def busy(*args: Any, **kwargs: Any) -> None:
        raise sqlite3.OperationalError("database is locked")  # after the request went out

    monkeypatch.setattr(service.state, "save_decision", busy)
    with pytest.raises(sqlite3.OperationalError):
        await service.on_labels([label(f"new{i}", "bad", change + timedelta(seconds=i)) for i in range(10)])
    monkeypatch.setattr(service.state, "save_decision", save)
    await service.on_labels([label(f"more{i}", "bad", change + timedelta(minutes=1)) for i in range(5)])
    assert bus.types() == ["TrainingRequested"]  # requested once, not again from a put-back


@pytest.mark.parametrize("value", ["0", "-5", "soon", "1e9"])
def test_nonsense_leases_and_polls_are_refused_at_start_with_the_setting_named(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pydantic import ValidationError

    from services.drift.settings import DriftSettings
    from services.training.settings import TrainingSettings

    monkeypatch.setenv("TRAINING_RUN_CLAIM_LEASE_S", value)
    monkeypatch.setenv("DRIFT_STANDBY_POLL_S", value)
    with pytest.raises(ValidationError, match="run_claim_lease_s"):
        TrainingSettings()
    with pytest.raises(ValidationError, match="standby_poll_s"):
        DriftSettings()
