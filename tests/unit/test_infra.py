"""infra/: broker configuration, topic plans, service discovery and ports (no processes started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.topics import TOPICS
from infra.kafka_jars import ensure_jars
from infra.kafka_local import LocalKafka
from infra.processes import process_matches
from infra.settings import InfraSettings
from infra.supervisor import (
    CORE_SERVICES,
    SERVICE_ORDER,
    Supervisor,
    selected_services,
    service_port,
)
from infra.topics import platform_topics


def test_broker_config_is_single_node_kraft_on_loopback(tmp_path: Path) -> None:
    props = LocalKafka(home=tmp_path, jars_dir=tmp_path, port=1234, controller_port=1235).server_properties()
    lines = dict(line.split("=", 1) for line in props.splitlines() if line)
    assert lines["process.roles"] == "broker,controller"
    assert lines["listeners"] == "PLAINTEXT://127.0.0.1:1234,CONTROLLER://127.0.0.1:1235"
    assert lines["log.dirs"] == str(tmp_path / "data")  # data lives in the state dir, so it survives restarts
    assert lines["auto.create.topics.enable"] == "false"  # topics come from contracts, typos fail loudly
    assert lines["offsets.topic.replication.factor"] == "1"


def test_record_topics_get_the_configured_partitions() -> None:
    plans = {p.name: p.partitions for p in platform_topics(record_partitions=4, other_partitions=1)}
    assert set(plans) == {spec.name for spec in TOPICS}
    assert plans["records.raw"] == plans["records.clean"] == plans["predictions.made"] == 4
    assert plans["model.promoted"] == 1


def test_defaults_give_record_topics_at_least_three_partitions() -> None:
    settings = InfraSettings()
    plans = platform_topics(settings.kafka_record_partitions, settings.kafka_other_partitions)
    assert all(p.partitions >= 3 for p in plans if next(s for s in TOPICS if s.name == p.name).record_topic)


def test_external_cluster_setting_switches_off_the_local_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker-a:9092,broker-b:9092")
    settings = InfraSettings()
    assert not settings.local_kafka and settings.bootstrap_servers == "broker-a:9092,broker-b:9092"
    assert Supervisor(settings).kafka_component().pid is None


def test_service_ports_follow_the_canonical_order() -> None:
    settings = InfraSettings(first_service_port=9000)
    assert [service_port(settings, s) for s in SERVICE_ORDER] == list(range(9000, 9000 + len(SERVICE_ORDER)))


def test_unknown_services_are_refused() -> None:
    with pytest.raises(SystemExit, match="unknown service"):
        selected_services(InfraSettings(services="ingest,nope"))


def test_the_annotation_service_starts_only_with_label_studio_or_when_named() -> None:
    default = selected_services(InfraSettings())
    assert "annotation" not in default and set(default) == set(CORE_SERVICES)
    assert selected_services(InfraSettings(), ("label-studio",)) == list(SERVICE_ORDER)
    assert selected_services(InfraSettings(services="audit,annotation")) == ["audit", "annotation"]


def test_a_reused_pid_is_not_mistaken_for_ours() -> None:
    import os

    assert not process_matches(os.getpid(), "services.audit")  # this pytest process is not the audit service
    assert not process_matches(2**22 + 12345, "anything")  # no such process


def test_jars_are_fetched_only_when_the_pom_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    from infra import kafka_jars

    jars = tmp_path / "jars"
    jars.mkdir()
    (jars / ".pom.sha256").write_text(hashlib.sha256(kafka_jars.POM.read_bytes()).hexdigest())
    monkeypatch.setattr(kafka_jars.shutil, "which", lambda _: None)  # mvn would be needed if it refetched
    assert ensure_jars(jars) == jars
    (jars / ".pom.sha256").write_text("stale")
    with pytest.raises(kafka_jars.KafkaInfraError, match="Maven"):
        ensure_jars(jars)


def test_cluster_ids_never_look_like_options(monkeypatch: pytest.MonkeyPatch) -> None:
    import uuid

    from infra import kafka_local

    # The first UUID encodes to "-...": the storage tool would read it as a flag. It must be redrawn.
    dash_first = uuid.UUID(bytes=b"\xfb" + bytes(15))
    draws = iter([dash_first, uuid.UUID(int=1)])
    monkeypatch.setattr(kafka_local.uuid, "uuid4", lambda: next(draws))
    cluster_id = kafka_local.new_cluster_id()
    assert not cluster_id.startswith("-") and len(cluster_id) == 22


def test_stop_leaves_alone_a_live_process_it_does_not_recognise(tmp_path: Path) -> None:
    import os

    kafka = LocalKafka(home=tmp_path, jars_dir=tmp_path)
    kafka.pid_file.write_text(str(os.getpid()))  # alive, but not a Kafka with this config
    assert kafka.stop() is False and kafka.pid_file.exists()
    kafka.pid_file.write_text(str(2**22 + 4321))  # no such process: a stale file is cleaned up
    assert kafka.stop() is False and not kafka.pid_file.exists()


def test_relative_and_absolute_homes_name_the_same_broker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    relative = LocalKafka(home=Path("state/kafka"), jars_dir=Path("jars"))
    assert relative.config_file == tmp_path / "state" / "kafka" / "server.properties"


def test_a_key_file_from_before_the_webhook_key_gains_it_and_keeps_every_old_key(tmp_path: Path) -> None:
    import json

    from infra.lifecycle import WEBHOOK_KEY_HOLDER, dev_api_keys

    settings = InfraSettings(state_dir=tmp_path)
    settings.secrets_dir.mkdir(parents=True)
    old = {"dev-ops": {"role": "ops", "key": "mlops_old-ops-key"}}
    (settings.secrets_dir / "api-keys.json").write_text(json.dumps(old))
    hashed = json.loads(dev_api_keys(settings).read_text())
    plain = json.loads((settings.secrets_dir / "api-keys.json").read_text())
    assert plain["dev-ops"] == old["dev-ops"]  # an existing key never changes
    assert plain[WEBHOOK_KEY_HOLDER]["role"] == "webhook" and plain["dev-client"]["role"] == "client"
    assert {h["name"] for h in hashed} == set(plain)
    assert (
        dev_api_keys(settings) and json.loads((settings.secrets_dir / "api-keys.json").read_text()) == plain
    )


def test_the_brokers_jvm_options_reach_every_java_command_and_garbage_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pydantic import ValidationError

    from infra.kafka_cluster import LocalKafkaCluster
    from infra.kafka_jars import java_command

    monkeypatch.delenv("MLOPS_KAFKA_JVM_OPTIONS", raising=False)
    assert InfraSettings(state_dir=tmp_path).jvm_options == ("-XX:TieredStopAtLevel=1",)
    monkeypatch.setenv("MLOPS_KAFKA_JVM_OPTIONS", " -XX:+UseSerialGC   -Dx=1 ")
    settings = InfraSettings(state_dir=tmp_path)
    assert LocalKafka.from_settings(settings).jvm_options == ("-XX:+UseSerialGC", "-Dx=1")
    cluster = LocalKafkaCluster.from_settings(settings)
    assert cluster.node(1).jvm_options == ("-XX:+UseSerialGC", "-Dx=1")
    command = java_command(
        tmp_path, tmp_path, "kafka.Kafka", "server.properties", heap="1g", options=("-Da=b",)
    )
    # after the kit's heap and collector (so they can override them), before the class
    assert command.index("-Da=b") > command.index("-XX:+UseG1GC") and command.index("-Da=b") < command.index(
        "kafka.Kafka"
    )
    monkeypatch.setenv("MLOPS_KAFKA_JVM_OPTIONS", "")
    assert InfraSettings(state_dir=tmp_path).jvm_options == ()
    for garbage in ("rm -rf /", "-Xmx1g; reboot", "x" * 2001):
        monkeypatch.setenv("MLOPS_KAFKA_JVM_OPTIONS", garbage)
        with pytest.raises(ValidationError, match="kafka_jvm_options"):
            InfraSettings(state_dir=tmp_path)
