"""The features service alone on the real broker and a real Feast repo: garbage on records.clean is
dead-lettered with its reason and does not block the partition; the valid records behind it are
pushed once (online and offline) and announced by one FeaturesUpdated."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from contracts.events import FeaturesUpdated
from contracts.registry import encode_event
from feature_repo import FeatureStoreSettings, feature_refs, open_store
from feature_repo.names import ENTITY_KEY
from tests.integration.test_training_support import Platform, applications, cleaned
from tests.support import dead_letters_for, wait_until


async def test_garbage_is_dead_lettered_and_valid_records_are_pushed(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    platform = Platform(kafka_bootstrap, tmp_path)
    await platform.create_topics()
    good = [cleaned(app, i) for i, app in enumerate(applications(3, "fs", seed=9))]
    missing_feature = json.loads(encode_event(good[0]))
    del missing_feature["payload"]["record"]["housing"]
    missing_feature["event_id"] = "00000000-0000-4000-8000-000000000001"
    topic = platform.topics["clean"]
    async with platform.features.router.lifespan_context(platform.features), platform.probe.broker:
        await platform.probe.broker.start()
        for value in (b"{not json", json.dumps(missing_feature).encode(), b"[]"):
            await platform.probe.broker.publish(value, topic)
        await platform.send(good, "clean")
        ledger = platform.features.state.ledger
        await wait_until(lambda: ledger.count() == 3, timeout_s=60, what="the valid records")
        await wait_until(lambda: bool(platform.events("FeaturesUpdated")), what="FeaturesUpdated")

    letters = sorted(await dead_letters_for(kafka_bootstrap, topic, 3), key=lambda e: e.payload.source.offset)
    assert [(e.payload.source.offset, e.payload.reason.code) for e in letters] == [
        (0, "not_json"),
        (1, "not_a_feature_row"),
        (2, "not_object"),
    ]
    assert letters[1].payload.consumer == "features"
    assert letters[1].payload.reason.errors[0].field == "payload.record.housing"
    updates = platform.events("FeaturesUpdated")
    assert sum(u.payload.rows for u in updates) == 3 and all(isinstance(u, FeaturesUpdated) for u in updates)
    assert {s.offset for u in updates for s in u.payload.sources} == {3, 4, 5}

    store_settings = FeatureStoreSettings(platform.features_settings.feature_store_dir)
    offline = pd.read_parquet(store_settings.offline_path)
    ids = [e.payload.entity_id for e in good]
    assert sorted(offline[ENTITY_KEY]) == sorted(ids)
    online = open_store(store_settings).get_online_features(
        features=feature_refs(), entity_rows=[{ENTITY_KEY: i} for i in ids]
    )
    assert online.to_dict()["housing"] == [e.payload.record["housing"] for e in good]


async def test_an_event_time_the_store_cannot_hold_is_dead_lettered_alone(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Today's defect: a clean record dated year 9999 made Feast's frame fail (OutOfBoundsDatetime), and
    the whole fetched batch went to the dead letters with it, valid neighbours included."""
    platform = Platform(kafka_bootstrap, tmp_path)
    await platform.create_topics()
    good = [cleaned(app, i) for i, app in enumerate(applications(12, "odd", seed=4))]
    far = [
        event.model_copy(update={"payload": event.payload.model_copy(update={"event_time": when})})
        for event, when in zip(
            good[:2], (datetime(9999, 12, 31, tzinfo=UTC), datetime(1, 1, 1, tzinfo=UTC)), strict=True
        )
    ]
    batch = [*good[2:6], far[0], *good[6:9], far[1], *good[9:]]  # odd records amid valid ones
    topic = platform.topics["clean"]
    async with platform.probe.broker:  # all in the topic before the service starts: one fetched batch
        await platform.probe.broker.start()
        await platform.send(batch, "clean")
    async with platform.features.router.lifespan_context(platform.features), platform.probe.broker:
        await platform.probe.broker.start()
        ledger = platform.features.state.ledger
        await wait_until(lambda: ledger.count() == 10, timeout_s=60, what="the ten valid records")
    letters = await dead_letters_for(kafka_bootstrap, topic, 2)
    assert sorted((e.payload.source.offset, e.payload.reason.code) for e in letters) == [
        (4, "not_a_feature_row"),
        (8, "not_a_feature_row"),
    ]
    assert {e.payload.reason.errors[0].field for e in letters} == {"payload.event_time"}
    offline = pd.read_parquet(FeatureStoreSettings(platform.features_settings.feature_store_dir).offline_path)
    assert sorted(offline[ENTITY_KEY]) == sorted(e.payload.entity_id for e in good[2:])


async def test_compact_hostile_events_are_dead_lettered_alone_and_their_neighbours_pushed(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Compact bytes, as our producers write and the consumers' msgspec fast path reads first, but hostile:
    a duplicate key, a number no double holds inside the record (Python reads 1e400 as infinity), a
    lone surrogate, nesting past the contract's MAX_DEPTH. Each goes to the dead letters alone as
    not_json, and the valid records fetched in the same batch are pushed."""
    platform = Platform(kafka_bootstrap, tmp_path)
    await platform.create_topics()
    apps = applications(8, "hostile", seed=6)
    good = [cleaned(app, i) for i, app in enumerate(apps[1:], start=1)]
    base = encode_event(cleaned(apps[0], 0))  # the hostile ones are this valid event, altered
    assert b'"producer":"' in base and re.search(rb'"credit_amount":[-0-9.eE+]+', base)
    hostile = [
        base.replace(b'"producer":', b'"producer":"x","producer":', 1),
        re.sub(rb'"credit_amount":[-0-9.eE+]+', b'"credit_amount":1e400', base, count=1),
        base.replace(b'"producer":"', b'"producer":"\\ud800', 1),
        base[:-1] + b',"x":' + b"[" * 70 + b"]" * 70 + b"}",
    ]
    topic = platform.topics["clean"]
    async with platform.probe.broker:  # all in the topic before the service starts: fetched together
        await platform.probe.broker.start()
        for i, value in enumerate(hostile):
            await platform.send(good[i : i + 1], "clean")
            await platform.probe.broker.publish(value, topic)
        await platform.send(good[len(hostile) :], "clean")
    async with platform.features.router.lifespan_context(platform.features), platform.probe.broker:
        await platform.probe.broker.start()
        ledger = platform.features.state.ledger
        await wait_until(lambda: ledger.count() == len(good), timeout_s=60, what="the seven valid records")
    letters = await dead_letters_for(kafka_bootstrap, topic, len(hostile))
    assert [e.payload.reason.code for e in letters] == ["not_json"] * len(hostile)
    offline = pd.read_parquet(FeatureStoreSettings(platform.features_settings.feature_store_dir).offline_path)
    assert sorted(offline[ENTITY_KEY]) == sorted(e.payload.entity_id for e in good)
