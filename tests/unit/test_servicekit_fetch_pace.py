"""The fetch pace of a batch consumer (servicekit/fetch_pace.py), with a fake consumer; the real
broker's side is tests/integration/test_fetch_pace.py."""

from __future__ import annotations

import asyncio
import inspect
from types import SimpleNamespace

import pytest
from aiokafka.consumer.fetcher import Fetcher

from servicekit import fetch_pace
from servicekit.fetch_pace import FetchPace


def subscriber(wait_ms: int = 50) -> SimpleNamespace:
    return SimpleNamespace(consumer=SimpleNamespace(_fetcher=SimpleNamespace(_fetch_max_wait_ms=wait_ms)))


def test_the_installed_aiokafka_builds_each_fetch_request_from_the_attribute_the_pace_sets() -> None:
    # If an upgrade renames it, pacing silently stops: this fails first.
    assert "self._fetch_max_wait_ms" in inspect.getsource(Fetcher._get_actions_per_node)
    assert "self._fetch_max_wait_ms = fetch_max_wait_ms" in inspect.getsource(Fetcher.__init__)


async def test_a_consumer_with_no_batch_goes_quiet_and_the_next_batch_makes_it_busy() -> None:
    sub = subscriber()
    pace = FetchPace(sub, busy_wait_ms=50, quiet_wait_ms=700, quiet_after_s=0.05)
    pace.start()
    try:
        for _ in range(3):  # busy batches more often than quiet_after_s: stays busy
            await asyncio.sleep(0.03)
            pace.busy()
        assert not pace.quiet and sub.consumer._fetcher._fetch_max_wait_ms == 50
        await asyncio.sleep(0.2)
        assert pace.quiet and sub.consumer._fetcher._fetch_max_wait_ms == 700
        pace.busy()
        assert not pace.quiet and sub.consumer._fetcher._fetch_max_wait_ms == 50
    finally:
        pace.stop()


async def test_a_rebuilt_consumer_is_paced_again_and_a_stopped_pace_changes_nothing() -> None:
    sub = subscriber()
    pace = FetchPace(sub, busy_wait_ms=50, quiet_wait_ms=500, quiet_after_s=0.03)
    pace.start()
    await asyncio.sleep(0.1)
    assert sub.consumer._fetcher._fetch_max_wait_ms == 500
    sub.consumer = SimpleNamespace(_fetcher=SimpleNamespace(_fetch_max_wait_ms=50))  # a reconnect
    await asyncio.sleep(0.1)
    assert sub.consumer._fetcher._fetch_max_wait_ms == 500
    pace.stop()
    pace.busy()
    sub.consumer._fetcher._fetch_max_wait_ms = 50
    await asyncio.sleep(0.1)
    assert sub.consumer._fetcher._fetch_max_wait_ms == 50


@pytest.mark.parametrize(
    "consumer",
    [None, SimpleNamespace(), SimpleNamespace(_fetcher=SimpleNamespace())],
    ids=["not started", "no fetcher (test broker)", "a fetcher without the attribute"],
)
async def test_a_consumer_it_cannot_pace_keeps_its_wait_and_never_counts_as_quiet(consumer: object) -> None:
    sub = SimpleNamespace(consumer=consumer)
    pace = FetchPace(sub, busy_wait_ms=50, quiet_after_s=0.02)
    pace.start()
    await asyncio.sleep(0.08)
    pace.stop()
    assert not pace.quiet
    assert sub.consumer is consumer and not hasattr(getattr(consumer, "_fetcher", None), "_fetch_max_wait_ms")


async def test_start_all_skips_non_batch_subscribers_and_a_quiet_wait_not_above_the_busy_one() -> None:
    paced, unpaced = subscriber(), subscriber()
    one = FetchPace(paced, busy_wait_ms=50, quiet_after_s=0.02)
    other = FetchPace(unpaced, busy_wait_ms=50, quiet_after_s=0.02)
    fetch_pace.start_all([None, one], quiet_wait_ms=800)
    fetch_pace.start_all([other], quiet_wait_ms=50)  # off
    await asyncio.sleep(0.1)
    fetch_pace.stop_all([None, one, other])
    assert paced.consumer._fetcher._fetch_max_wait_ms == 800
    assert unpaced.consumer._fetcher._fetch_max_wait_ms == 50


@pytest.mark.parametrize(("busy", "quiet"), [(0, 500), (100, 50), (-1, 10)])
def test_a_pace_refuses_waits_that_make_no_sense(busy: int, quiet: int) -> None:
    with pytest.raises(ValueError, match="quiet wait"):
        FetchPace(subscriber(), busy_wait_ms=busy, quiet_wait_ms=quiet)


def test_the_quiet_wait_comes_from_the_environment_and_garbage_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pydantic import ValidationError

    from tests.support import probe_settings

    assert probe_settings("127.0.0.1:1").quiet_fetch_wait_ms == fetch_pace.QUIET_WAIT_MS
    monkeypatch.setenv("MLOPS_QUIET_FETCH_WAIT_MS", "50")
    assert probe_settings("127.0.0.1:1").quiet_fetch_wait_ms == 50
    for garbage in ("0", "-5", "half a second", "10001"):
        monkeypatch.setenv("MLOPS_QUIET_FETCH_WAIT_MS", garbage)
        with pytest.raises(ValidationError, match=r"quiet_fetch_wait_ms|MLOPS_QUIET_FETCH_WAIT_MS"):
            probe_settings("127.0.0.1:1")


async def test_a_pace_started_twice_runs_one_timer() -> None:
    pace = FetchPace(subscriber(), busy_wait_ms=50, quiet_after_s=10)
    pace.start()
    first = pace._timer
    pace.start()
    assert first is not None and first.cancelled() and pace._timer is not first
    pace.stop()
    assert pace._timer is None


async def test_start_all_sets_the_busy_wait_and_a_rebuilt_consumer_gets_it_back() -> None:
    sub = subscriber(wait_ms=50)  # as the kit builds every batch subscriber
    pace = FetchPace(sub, busy_wait_ms=50, quiet_after_s=0.05)
    fetch_pace.start_all([pace], quiet_wait_ms=500, busy_wait_ms=250)
    try:
        assert pace.busy_wait_ms == 250 and sub.consumer._fetcher._fetch_max_wait_ms == 250
        sub.consumer = SimpleNamespace(_fetcher=SimpleNamespace(_fetch_max_wait_ms=50))  # a reconnect
        for _ in range(8):  # batches keep coming: the next check gives the rebuilt consumer 250 again
            await asyncio.sleep(0.02)
            pace.busy()
        assert not pace.quiet and sub.consumer._fetcher._fetch_max_wait_ms == 250
        await asyncio.sleep(0.2)
        assert pace.quiet and sub.consumer._fetcher._fetch_max_wait_ms == 500
        pace.busy()
        assert sub.consumer._fetcher._fetch_max_wait_ms == 250
    finally:
        pace.stop()
    slow = FetchPace(subscriber(), busy_wait_ms=50)
    fetch_pace.start_all([slow], quiet_wait_ms=500, busy_wait_ms=800)  # busy above quiet: pacing off
    assert slow.busy_wait_ms == 800 and slow.subscriber.consumer._fetcher._fetch_max_wait_ms == 800
    assert slow._timer is None


def test_services_off_the_online_path_wait_longer_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pydantic import ValidationError

    from services.audit.settings import AuditSettings
    from services.drift.settings import DriftSettings
    from services.explain.settings import ExplainSettings
    from services.features.settings import FeaturesSettings
    from services.ingest.settings import IngestSettings
    from services.training.settings import TrainingSettings

    for kind in (IngestSettings, FeaturesSettings):  # a record's way to the online store stays short
        assert kind().busy_fetch_wait_ms == 50, kind
    for kind in (AuditSettings, DriftSettings, ExplainSettings, TrainingSettings):
        assert kind().busy_fetch_wait_ms == 250, kind
    monkeypatch.setenv("AUDIT_FETCH_WAIT_MS", "80")
    monkeypatch.setenv("FEATURES_FETCH_WAIT_MS", "20")
    assert AuditSettings().busy_fetch_wait_ms == 80 and FeaturesSettings().busy_fetch_wait_ms == 20
    assert DriftSettings().busy_fetch_wait_ms == 250  # another service's setting is not this one's
    for garbage in ("0", "-1", "soon", "5001"):
        monkeypatch.setenv("AUDIT_FETCH_WAIT_MS", garbage)
        with pytest.raises(ValidationError, match=r"fetch_wait_ms|AUDIT_FETCH_WAIT_MS"):
            AuditSettings()
