"""`mlops replay` on the real broker: a live service (in this process) consumes a few hundred clean
records, then the CLI (its own process, as an operator runs it) replays them into a fresh group and
compares. The rebuilt online features equal the live ones and the offline file holds no duplicate,
also after a second identical replay into the same state; the audit's live chain relinks to the same
head from the bytes the replay re-read; nothing is published downstream; bad input exits 2."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from contracts.events import ReplayCompleted
from contracts.registry import parse_event
from contracts.topics import REPLAYS
from infra.lag import LagReader
from infra.settings import REPO_ROOT
from servicekit.broker import EventPublisher, make_broker
from services.audit.app import create_app as create_audit
from services.audit.settings import AuditSettings
from services.features.app import create_app as create_features
from services.features.settings import FeaturesSettings
from tests.integration.test_training_support import applications, cleaned
from tests.support import create_topic, isolated_env, probe_settings, wait_until

RECORDS = 300


@dataclass
class Live:
    bootstrap: str
    state: Path
    run: str

    @property
    def clean(self) -> str:
        return f"test.replay.clean.{self.run}"

    @property
    def updated(self) -> str:
        return f"test.replay.updated.{self.run}"

    def env(self) -> dict[str, str]:
        """What an operator's shell would hold for this stack: its cluster, state folder and topics."""
        env = isolated_env()
        env.update({
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap, "MLOPS_STATE_DIR": str(self.state),
            "FEATURES_CLEAN_TOPIC": self.clean, "FEATURES_UPDATED_TOPIC": self.updated,
            "FEATURES_GROUP_ID": f"features-live-{self.run}", "AUDIT_TOPICS": json.dumps([self.clean]),
            "AUDIT_GROUP_ID": f"audit-live-{self.run}",
        })  # fmt: skip
        return env

    def replay(self, *args: str) -> tuple[int, dict[str, Any], str]:
        done = subprocess.run(
            [sys.executable, "-m", "infra.cli", "replay", *args],
            env=self.env(), cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        summary = json.loads(done.stdout) if done.returncode in (0, 1) and done.stdout.strip() else {}
        return done.returncode, summary, done.stderr


async def _live(bootstrap: str, tmp_path: Path) -> Live:
    live = Live(bootstrap, tmp_path / "live", uuid.uuid4().hex[:8])
    await create_topic(bootstrap, live.clean, partitions=3)
    await create_topic(bootstrap, live.updated)
    await _produce(live, RECORDS, "rp")
    return live


async def _produce(live: Live, n: int, prefix: str) -> None:
    records = [cleaned(app, i) for i, app in enumerate(applications(n, f"{prefix}{live.run}", seed=5))]
    broker = make_broker(probe_settings(live.bootstrap))
    async with broker:
        await broker.start()
        publisher = EventPublisher(broker, "probe")
        for event in records:
            await publisher.publish(event, topic=live.clean)


def _features_settings(live: Live) -> FeaturesSettings:
    return FeaturesSettings(
        kafka_bootstrap_servers=live.bootstrap, state_dir=live.state, clean_topic=live.clean,
        updated_topic=live.updated, group_id=f"features-live-{live.run}",
    )  # fmt: skip


async def test_a_features_replay_rebuilds_the_same_online_features_without_publishing(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    live = await _live(kafka_bootstrap, tmp_path)
    app = create_features(_features_settings(live))
    async with app.router.lifespan_context(app):
        await wait_until(lambda: app.state.ledger.count() == RECORDS, timeout_s=120, what="the live push")
    updated_before = await _ends(kafka_bootstrap, [live.updated, REPLAYS])

    code, first, err = live.replay(
        "features", "--group", f"replay-a-{live.run}", "--from-offset", "0", "--compare"
    )
    assert code == 0, err
    assert first["records"] == RECORDS and first["publish"] is False
    assert first["withheld"][live.updated] >= 1  # what the features service would have announced
    compared = first["compare"]
    assert compared["entities"] == compared["equal"] == RECORDS and compared["same"] is True
    assert compared["offline_rows"] == RECORDS and compared["offline_duplicates"] == 0

    state = first["state_dir"]  # the same range again, into the same rebuilt state
    code, second, err = live.replay(
        "features", "--group", f"replay-b-{live.run}", "--from-offset", "0", "--state-dir", state, "--compare"
    )
    assert code == 0, err
    assert second["compare"]["equal"] == RECORDS and second["compare"]["offline_rows"] == RECORDS
    assert second["compare"]["offline_duplicates"] == 0 and second["withheld"] == {}  # all seen: no push

    updated_after = await _ends(kafka_bootstrap, [live.updated, REPLAYS])
    assert updated_after[TopicPartition(live.updated, 0)] == updated_before[TopicPartition(live.updated, 0)]
    announced = await _replays(kafka_bootstrap, updated_before)
    assert {e.payload.group for e in announced} == {f"replay-a-{live.run}", f"replay-b-{live.run}"}
    assert all(e.payload.service == "features" and e.payload.records == RECORDS for e in announced)


async def test_bad_input_is_refused_with_exit_code_2(kafka_bootstrap: str, tmp_path: Path) -> None:
    live = await _live(kafka_bootstrap, tmp_path)
    app = create_features(_features_settings(live))
    async with app.router.lifespan_context(app):
        await wait_until(lambda: app.state.ledger.count() == RECORDS, timeout_s=120, what="the live push")
    fresh = f"replay-bad-{live.run}"
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    cases = {
        "does not exist on": ("features", "--group", fresh, "--from-offset", "1000000000"),
        "already exists": ("features", "--group", f"features-live-{live.run}", "--from-offset", "0"),
        "after the log's last record": ("features", "--group", fresh, "--from-time", future),
        "does not read": ("features", "--group", fresh, "--from-offset", "0", "--topic", "records.raw"),
        "cannot be replayed": ("serving", "--group", fresh, "--from-offset", "0"),
        "letters, digits": ("features", "--group", "../elsewhere", "--from-offset", "0"),
    }
    for message, args in cases.items():
        code, _, err = live.replay(*args)
        assert code == 2 and message in err, (args, err)
        assert len(err.strip().splitlines()) <= 6, err  # a message, not a traceback


async def test_a_replay_from_a_time_reads_only_the_records_since_and_may_publish(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    live = await _live(kafka_bootstrap, tmp_path)
    await asyncio.sleep(0.05)
    since = datetime.now(UTC)
    await asyncio.sleep(0.05)
    await _produce(live, 40, "late")
    app = create_features(_features_settings(live))
    async with app.router.lifespan_context(app):
        await wait_until(
            lambda: app.state.ledger.count() == RECORDS + 40, timeout_s=120, what="the live push"
        )
    group = f"replay-since-{live.run}"
    updated = TopicPartition(live.updated, 0)
    before = await _ends(kafka_bootstrap, [live.updated])
    code, summary, err = live.replay(
        "features", "--group", group, "--from-time", since.isoformat(), "--topic", live.clean, "--compare",
        "--publish",
    )  # fmt: skip
    assert code == 0, err
    assert summary["records"] == 40 and summary["compare"]["entities"] == summary["compare"]["equal"] == 40
    assert summary["publish"] is True and summary["withheld"] == {}  # asked to: FeaturesUpdated went out
    assert (await _ends(kafka_bootstrap, [live.updated]))[updated] > before[updated]


async def test_an_audit_replay_relinks_the_live_chain_to_the_same_head(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    live = await _live(kafka_bootstrap, tmp_path)
    settings = AuditSettings(
        kafka_bootstrap_servers=kafka_bootstrap, state_dir=live.state, topics=[live.clean],
        group_id=f"audit-live-{live.run}",
    )  # fmt: skip
    app = create_audit(settings)
    async with app.router.lifespan_context(app):
        store = app.state.audit.store
        await wait_until(lambda: store.head()[0].length == RECORDS, timeout_s=120, what="the live chain")
        live_head = store.head()[0].hash.hex()

    code, summary, err = live.replay(
        "audit", "--group", f"replay-audit-{live.run}", "--from-offset", "0", "--compare"
    )
    assert code == 0, err
    compared = summary["compare"]
    assert compared["replayed_rows"] == compared["replay_rows"] == compared["live_rows"] == RECORDS
    assert compared["recomputed_head_hash"] == compared["live_head_hash"] == live_head
    assert compared["digests_different"] == compared["missing_in_replay"] == 0
    assert compared["replay_chain_verifies"] is True and compared["same"] is True


async def _replays(bootstrap: str, since: dict[TopicPartition, int]) -> list[ReplayCompleted]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [tp for tp in since if tp.topic == REPLAYS]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, since[tp])
        found: list[ReplayCompleted] = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                found += [e for r in batch if isinstance(e := parse_event(r.value or b""), ReplayCompleted)]
        return found
    finally:
        await consumer.stop()


async def _ends(bootstrap: str, topics: list[str]) -> dict[TopicPartition, int]:
    reader = LagReader(bootstrap)
    await reader.start()
    try:
        return await reader.end_offsets(topics)
    finally:
        await reader.stop()


async def test_a_drift_replay_reads_what_live_read_and_withholds_its_drift_event(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    from tests.integration.test_drift_service import Run, shifted_stream

    run = Run(kafka_bootstrap, tmp_path / "live")
    drift, _ = await shifted_stream(run, shift_at=800)  # live: one DriftDetected published
    assert drift.published == 1
    passed = run.settings.model_dump(mode="json", exclude_unset=True)
    env = isolated_env()
    env.update({f"DRIFT_{k.upper()}": v if isinstance(v, str) else json.dumps(v) for k, v in passed.items()})
    env.update({"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "MLOPS_STATE_DIR": str(tmp_path / "live")})
    group = f"replay-drift-{uuid.uuid4().hex[:8]}"
    drift_topic = [TopicPartition(run.topics["drift"], 0)]
    before = await _ends(kafka_bootstrap, [run.topics["drift"]])
    done = subprocess.run(
        [sys.executable, "-m", "infra.cli", "replay", "drift", "--group", group, "--from-offset", "0",
         "--compare"],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["records"] == 1200 and summary["withheld"] == {run.topics["drift"]: 1}
    assert summary["compare"]["offsets_equal"] is True and summary["compare"]["same"] is True, summary[
        "compare"
    ]
    after = await _ends(kafka_bootstrap, [run.topics["drift"]])
    assert [after[tp] for tp in drift_topic] == [before[tp] for tp in drift_topic]
