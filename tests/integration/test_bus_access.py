"""The locked-down bus on a real broker, as `mlops up` runs it: SCRAM principals and the ACLs of
contracts/access.py. Each refusal is the broker's own, and after every refused attempt the topic's end
offset shows that nothing got through."""

from __future__ import annotations

import asyncio
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    TopicAuthorizationFailedError,
)

from contracts import access as access_module
from contracts.access import ACCESS, PRODUCER, Access
from contracts.topics import (
    DRIFT_DETECTED,
    FEATURES_UPDATED,
    LABELS_OBSERVED,
    MODEL_PROMOTED,
    RECORDS_CLEAN,
    RECORDS_RAW,
)
from infra import bus_access, bus_plan
from infra.kafka_local import LocalKafka
from infra.topics import ensure_topics, platform_topics
from tests.conftest import TEST_STATE_DIR
from tests.support import TEST_KAFKA_PORT, send_one

PORT = TEST_KAFKA_PORT + 800


@dataclass
class LockedBus:
    kafka: LocalKafka
    secrets_dir: Path

    @property
    def bootstrap(self) -> str:
        return self.kafka.bootstrap_servers

    def as_user(self, name: str, password: str | None = None) -> dict[str, Any]:
        known = bus_access.passwords(self.secrets_dir)
        return {
            "bootstrap_servers": self.bootstrap,
            **bus_access.client_security(name, password or known[name]),
        }

    def admin(self) -> dict[str, Any]:
        return self.as_user(bus_access.SUPER_USER)


@pytest.fixture(scope="module")
def bus(jars_dir: Path) -> Iterator[LockedBus]:
    home = TEST_STATE_DIR / "kafka-locked"
    shutil.rmtree(home, ignore_errors=True)  # a fresh cluster: formatted with its super user here
    secrets_dir = home / "secrets"
    kafka = LocalKafka(
        home=home / "broker", jars_dir=jars_dir, port=PORT, controller_port=PORT + 1, secrets_dir=secrets_dir
    )
    try:
        kafka.start(timeout_s=90)
        bus_access.write_kcat_configs(secrets_dir)  # as `mlops up` does
        ensure_topics(kafka.bootstrap_servers, platform_topics(3, 1))
        yield LockedBus(kafka, secrets_dir)
    finally:
        kafka.stop()


def send(options: dict[str, Any], topic: str, value: bytes = b"{}") -> None:
    asyncio.run(send_one(options, topic, value))


async def _records(options: dict[str, Any], topic: str) -> int:
    admin, consumer = AIOKafkaAdminClient(**options), AIOKafkaConsumer(**options, group_id=None)
    try:
        await admin.start()
        await consumer.start()
        [described] = await admin.describe_topics([topic])
        partitions = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
        assert partitions, f"{topic} has no partitions"
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()
        await admin.close()


def records(bus: LockedBus, topic: str) -> int:
    """Records on `topic`, as the super user counts them."""
    return asyncio.run(_records(bus.admin(), topic))


async def _read_one(options: dict[str, Any], topic: str, group: str) -> bytes:
    consumer = AIOKafkaConsumer(topic, **options, group_id=group, auto_offset_reset="earliest")
    try:
        await consumer.start()
        message = await asyncio.wait_for(consumer.getone(), 30)
        return message.value or b""
    finally:
        await consumer.stop()


def test_a_client_without_credentials_gets_nothing_in(bus: LockedBus) -> None:
    before = records(bus, RECORDS_RAW)
    with pytest.raises(KafkaConnectionError):
        send({"bootstrap_servers": bus.bootstrap}, RECORDS_RAW)
    assert records(bus, RECORDS_RAW) == before


def test_a_wrong_password_is_refused(bus: LockedBus) -> None:
    before = records(bus, RECORDS_RAW)
    with pytest.raises(KafkaError):
        send(bus.as_user(PRODUCER, password="guessed"), RECORDS_RAW)
    with pytest.raises(KafkaError):  # and a principal nobody made
        send(bus.as_user("mallory", password="anything"), RECORDS_RAW)
    assert records(bus, RECORDS_RAW) == before


def test_the_producer_writes_records_and_labels_and_nothing_else(bus: LockedBus) -> None:
    raw, labels = records(bus, RECORDS_RAW), records(bus, LABELS_OBSERVED)
    send(bus.as_user(PRODUCER), RECORDS_RAW, b'{"applicant_id": "a-1"}')
    send(bus.as_user(PRODUCER), LABELS_OBSERVED)
    assert (records(bus, RECORDS_RAW), records(bus, LABELS_OBSERVED)) == (raw + 1, labels + 1)

    for forged in (MODEL_PROMOTED, DRIFT_DETECTED, RECORDS_CLEAN):
        before = records(bus, forged)
        with pytest.raises(TopicAuthorizationFailedError):
            send(bus.as_user(PRODUCER), forged, b'{"event_type": "ModelPromoted"}')
        assert records(bus, forged) == before, f"a producer's record reached {forged}"


def test_one_services_credentials_cannot_write_another_services_topic(bus: LockedBus) -> None:
    for service, topic in (
        ("ingest", MODEL_PROMOTED),
        ("ingest", FEATURES_UPDATED),
        ("serving", DRIFT_DETECTED),
    ):
        before = records(bus, topic)
        with pytest.raises(TopicAuthorizationFailedError):
            send(bus.as_user(service), topic)
        assert records(bus, topic) == before, f"{service} wrote {topic}"
    # ... while each still writes what it owns.
    before = records(bus, RECORDS_CLEAN)
    send(bus.as_user("ingest"), RECORDS_CLEAN)
    assert records(bus, RECORDS_CLEAN) == before + 1


def test_a_service_reads_only_its_topics_in_its_own_groups(bus: LockedBus) -> None:
    send(bus.as_user(PRODUCER), RECORDS_RAW, b'{"applicant_id": "a-2"}')
    assert asyncio.run(_read_one(bus.as_user("ingest"), RECORDS_RAW, "ingest.test-read"))
    with pytest.raises(TopicAuthorizationFailedError):  # features does not consume raw records
        asyncio.run(_read_one(bus.as_user("features"), RECORDS_RAW, "features.test-read"))
    with pytest.raises(GroupAuthorizationFailedError):  # ingest in the features' group
        asyncio.run(_read_one(bus.as_user("ingest"), RECORDS_RAW, "features"))


def test_a_changed_plan_is_applied_and_a_withdrawn_right_is_gone(
    bus: LockedBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    def apply() -> str | None:
        kafka = bus.kafka
        return bus_plan.apply_plan(
            kafka.plan_stamp, bus.secrets_dir, bus.bootstrap, kafka._java(), kafka.jars_dir
        )

    assert apply() is None  # unchanged since `start`: nothing to do
    granted = Access((*ACCESS[PRODUCER].writes, MODEL_PROMOTED), (), None)
    monkeypatch.setitem(access_module.ACCESS, PRODUCER, granted)
    assert apply() is not None
    send(bus.as_user(PRODUCER), MODEL_PROMOTED)

    monkeypatch.undo()
    summary = apply()
    assert summary is not None and "deleted 2" in summary  # WRITE and DESCRIBE on model.promoted
    before = records(bus, MODEL_PROMOTED)
    with pytest.raises(TopicAuthorizationFailedError):
        send(bus.as_user(PRODUCER), MODEL_PROMOTED)
    assert records(bus, MODEL_PROMOTED) == before


def test_no_password_is_world_readable_or_in_the_brokers_logs(bus: LockedBus) -> None:
    secrets = bus.secrets_dir / bus_access.PRINCIPALS_FILE
    for private in (secrets, bus.kafka.config_file):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600, private
    passwords = bus_access.passwords(bus.secrets_dir).values()
    logs = "".join(p.read_text(errors="replace") for p in bus.kafka.logs_dir.glob("*.log"))
    assert "sasl.jaas.config" in logs  # the broker logged its config...
    assert not [p for p in passwords if p in logs]  # ...and no password with it
    assert not list(bus.kafka.home.glob("access-*"))  # the plan's files are gone after each run


def kcat(bus: LockedBus, user: str | None, *args: str, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    """The README's kcat line: `-F` the principal's private config file (SASL PLAIN: Debian's kcat
    links librdkafka 2.0.2, whose SCRAM Kafka 4 refuses), so no password is on the command line."""
    binary = shutil.which("kcat")
    assert binary, "kcat must be installed (scripts/install-test-tools.sh does it)"
    login = ["-F", str(bus.secrets_dir / f"kcat-{user}.conf")] if user is not None else []
    return subprocess.run(
        [binary, "-b", bus.bootstrap, *login, *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_kcat_streams_records_as_the_producer_and_is_refused_elsewhere(bus: LockedBus) -> None:
    raw = records(bus, RECORDS_RAW)
    sent = kcat(bus, PRODUCER, "-P", "-t", RECORDS_RAW, "-k", "A-1", stdin=b'{"application_id": "A-1"}\n')
    assert sent.returncode == 0, sent.stderr
    assert records(bus, RECORDS_RAW) == raw + 1

    promotions = records(bus, MODEL_PROMOTED)
    forged = kcat(bus, PRODUCER, "-P", "-t", MODEL_PROMOTED, stdin=b'{"event_type": "ModelPromoted"}\n')
    assert forged.returncode != 0 and b"authoriz" in forged.stderr.lower(), forged.stderr
    anonymous = kcat(bus, None, "-P", "-t", RECORDS_RAW, "-m", "5", stdin=b"{}\n")
    assert anonymous.returncode != 0
    assert records(bus, MODEL_PROMOTED) == promotions and records(bus, RECORDS_RAW) == raw + 1


def test_a_broker_that_ran_open_is_locked_at_its_next_start_and_keeps_its_data(jars_dir: Path) -> None:
    """Upgrading a stack whose broker was formatted before the bus was locked: same data, now locked."""
    home = TEST_STATE_DIR / "kafka-upgraded"
    shutil.rmtree(home, ignore_errors=True)
    port = PORT + 50
    open_broker = LocalKafka(home=home / "broker", jars_dir=jars_dir, port=port, controller_port=port + 1)
    try:
        open_broker.start(timeout_s=90)
        ensure_topics(open_broker.bootstrap_servers, platform_topics(3, 1))
        send({"bootstrap_servers": open_broker.bootstrap_servers}, RECORDS_RAW, b'{"before": "the lock"}')
    finally:
        open_broker.stop()
    locked = LockedBus(
        LocalKafka(home=home / "broker", jars_dir=jars_dir, port=port, controller_port=port + 1,
                   secrets_dir=home / "secrets"), home / "secrets",
    )  # fmt: skip
    try:
        locked.kafka.start(timeout_s=90)
        assert records(locked, RECORDS_RAW) == 1  # the data survived
        with pytest.raises(KafkaConnectionError):
            send({"bootstrap_servers": locked.bootstrap}, RECORDS_RAW)
        with pytest.raises(TopicAuthorizationFailedError):
            send(locked.as_user(PRODUCER), MODEL_PROMOTED)
        send(locked.as_user(PRODUCER), RECORDS_RAW)
        assert records(locked, RECORDS_RAW) == 2
    finally:
        locked.kafka.stop()
