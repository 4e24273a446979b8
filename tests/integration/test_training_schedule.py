"""Scheduled retraining on the real broker: `every_labels` fires a TrainingRequested(reason=schedule)
that the service trains (the gate refuses: too few labels), the service is stopped and started again
right after, and the topic holds exactly one request per due time; the next N labels fire the next."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from contracts.events import TrainingRequested
from services.training.app import create_app as create_training
from services.training.handlers import TrainingService
from tests.integration.test_training_support import OPS_KEY, Platform, applications, observed
from tests.support import wait_until

EVERY = 5
POLICY = f"""
schedule:
  every_labels: {EVERY}
"""


@pytest.fixture(scope="module")
async def platform(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    state_dir = tmp_path_factory.mktemp("schedule")
    policy = state_dir / "policy.yaml"
    policy.write_text(POLICY)
    platform = Platform(kafka_bootstrap, state_dir, policy_file=policy, schedule_check_s=0.2)
    await platform.create_topics()
    async with platform.probe.broker:
        await platform.probe.broker.start()
        yield platform


def scheduled(platform: Platform) -> list[TrainingRequested]:
    found = [e for e in platform.events("TrainingRequested") if isinstance(e, TrainingRequested)]
    return [e for e in found if e.payload.reason == "schedule"]


def outcomes(platform: Platform, request: TrainingRequested) -> int:
    return len(platform.events("ModelRejected", request) + platform.events("ModelPromoted", request))


async def test_a_schedule_fires_once_per_due_time_across_a_restart(platform: Platform) -> None:
    apps = applications(2 * EVERY, "sched")
    training = platform.training
    async with training.router.lifespan_context(training):
        await platform.send([observed(app) for app in apps[:EVERY]], "labels")
        await wait_until(lambda: len(scheduled(platform)) == 1, timeout_s=60, what="the scheduled request")
        [first] = scheduled(platform)
        await wait_until(lambda: outcomes(platform, first) == 1, timeout_s=120, what="its run's outcome")

    restarted = create_training(platform.training_settings)  # same state file, same consumer groups
    async with restarted.router.lifespan_context(restarted):
        service: TrainingService = restarted.state.training
        assert (await service.schedules.check()).reason == "not_due"  # fired before the restart
        await platform.send([observed(app) for app in apps[EVERY:]], "labels")
        await wait_until(lambda: len(scheduled(platform)) == 2, timeout_s=60, what="the next request")
        transport = httpx.ASGITransport(app=restarted)
        async with httpx.AsyncClient(transport=transport, base_url="http://training") as client:
            status = (await client.get("/retraining", headers={"X-API-Key": OPS_KEY})).json()["schedule"]
        for _ in range(3):
            await service.schedules.check()
        second = scheduled(platform)[1]
        await wait_until(lambda: outcomes(platform, second) == 1, timeout_s=120, what="the second run")

    first_due, second_due = (r.payload.schedule.due_at for r in scheduled(platform) if r.payload.schedule)
    assert len(scheduled(platform)) == 2 and first_due < second_due
    assert [r.payload.schedule.trigger for r in scheduled(platform) if r.payload.schedule] == ["labels"] * 2
    assert outcomes(platform, first) == 1  # the first due time was trained once, before the restart
    labels = status["triggers"]["labels"]
    assert labels["last"]["outcome"] == "fired" and labels["last"]["event_id"] == str(second.event_id)
