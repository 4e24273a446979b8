"""The bus access plan (contracts/access.py) against what each service really does, and the local
broker's locked-down settings and credentials (infra/bus_access.py), without a broker."""

from __future__ import annotations

import json
import os
import stat
from collections import defaultdict
from pathlib import Path

import pytest

from contracts.access import ACCESS, PRODUCER, writers_of
from contracts.topics import (
    ANNOTATION_WEBHOOKS,
    DEADLETTERS,
    LABELS_OBSERVED,
    MODEL_PROMOTED,
    RECORDS_RAW,
    topic_names,
)
from infra import bus_access, bus_plan
from infra.kafka_jars import KafkaInfraError
from infra.kafka_local import LocalKafka
from infra.settings import REPO_ROOT, InfraSettings
from infra.supervisor import SERVICE_ORDER, Supervisor

# Written without a FastStream publisher, so absent from the AsyncAPI document: the annotation
# service's webhook route appends the raw body with the broker's publish, and ingest's /records route
# appends what producers POST to the raw topic with its own producer.
UNDECLARED_WRITES = {"annotation": {ANNOTATION_WEBHOOKS}, "ingest": {RECORDS_RAW}}


def _operations() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    document = json.loads((REPO_ROOT / "docs" / "asyncapi.json").read_text())
    sends: dict[str, set[str]] = defaultdict(set)
    receives: dict[str, set[str]] = defaultdict(set)
    for name, operation in document["operations"].items():
        service = name.split(":")[0]
        topic = operation["channel"]["$ref"].rsplit("/", 1)[-1].split(":")[1]
        (sends if operation["action"] == "send" else receives)[service].add(topic)
    return sends, receives


@pytest.mark.parametrize("service", SERVICE_ORDER)
def test_each_service_has_exactly_the_rights_its_code_uses(service: str) -> None:
    sends, receives = _operations()
    access = ACCESS[service]
    assert set(access.writes) == sends[service] | UNDECLARED_WRITES.get(service, set()) | {DEADLETTERS}
    # The audit reads every topic (it records the whole bus); every other service what it consumes.
    assert set(access.reads) == (set(topic_names()) if service == "audit" else receives[service])
    assert access.group_prefix == service


def test_only_the_owner_may_write_the_decisions_every_service_believes() -> None:
    assert writers_of(MODEL_PROMOTED) == ["training"]
    assert writers_of(RECORDS_RAW) == [PRODUCER, "ingest"]  # ingest: what producers POST over HTTP
    assert set(writers_of(LABELS_OBSERVED)) == {PRODUCER, "serving", "annotation"}
    assert ACCESS[PRODUCER].reads == () and ACCESS[PRODUCER].group_prefix is None


def test_every_topic_in_the_plan_exists_in_the_contracts() -> None:
    named = {t for a in ACCESS.values() for t in (*a.writes, *a.reads)}
    assert named <= set(topic_names())


def test_passwords_are_made_once_private_and_kept(tmp_path: Path) -> None:
    first = bus_access.passwords(tmp_path)
    path = tmp_path / bus_access.PRINCIPALS_FILE
    assert set(first) == {bus_access.SUPER_USER, bus_access.CONTROLLER_USER, *ACCESS}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(set(first.values())) == len(first) and min(len(p) for p in first.values()) >= 32
    # A principal added by a later version gets a password; the others keep theirs.
    del first["drift"]
    path.write_text(json.dumps(first))
    again = bus_access.passwords(tmp_path)
    assert {k: again[k] for k in first} == first and again["drift"] not in first.values()


def test_the_broker_allows_nothing_an_acl_does_not(tmp_path: Path) -> None:
    kafka = LocalKafka(home=tmp_path / "kafka", jars_dir=tmp_path, secrets_dir=tmp_path / "secrets")
    properties = kafka.server_properties()
    lines = dict(line.split("=", 1) for line in properties.splitlines() if "=" in line)
    assert lines["listeners"] == "SASL_PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert "PLAINTEXT://" not in lines["advertised.listeners"].replace("SASL_PLAINTEXT://", "")
    assert (
        lines["listener.security.protocol.map"] == "CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT"
    )
    assert lines["authorizer.class.name"].endswith("StandardAuthorizer")
    assert lines["allow.everyone.if.no.acl.found"] == "false"
    assert lines["super.users"] == "User:admin;User:controller"
    assert lines["sasl.enabled.mechanisms"] == "SCRAM-SHA-512,PLAIN"  # PLAIN for older librdkafka
    assert lines["sasl.mechanism.inter.broker.protocol"] == "PLAIN"  # the super user, from this config
    scram = lines["listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config"]
    assert "password" not in scram  # SCRAM credentials live in the cluster's metadata, not here


def test_plaintext_when_asked_and_for_a_cluster_that_is_not_ours(tmp_path: Path) -> None:
    off = InfraSettings(state_dir=tmp_path, kafka_security="off")
    external = InfraSettings(state_dir=tmp_path, kafka_bootstrap_servers="kafka.example:9092")
    for settings in (off, external):
        assert bus_access.principal_env(settings, "ingest") == {}
        assert LocalKafka.from_settings(settings).secrets_dir is None
    assert "listeners=PLAINTEXT://" in LocalKafka.from_settings(off).server_properties()


def test_new_storage_forgets_the_plans_stamp_so_the_plan_is_applied_to_it(tmp_path: Path) -> None:
    """Wiping a broker's data must not leave a stamp that says its principals exist."""
    kafka = LocalKafka(home=tmp_path / "kafka", jars_dir=tmp_path, secrets_dir=tmp_path / "secrets")
    kafka.home.mkdir(parents=True)
    kafka.plan_stamp.write_text("digest of an earlier plan")
    with pytest.raises(KafkaInfraError):  # no jars here: the format itself fails, after the stamp went
        kafka.format_storage()
    assert not kafka.plan_stamp.exists()
    formatted = LocalKafka(home=tmp_path / "old", jars_dir=tmp_path, secrets_dir=tmp_path / "secrets")
    formatted.data_dir.mkdir(parents=True)
    (formatted.data_dir / "meta.properties").write_text("cluster.id=old\n")
    formatted.plan_stamp.write_text("kept")
    formatted.format_storage()  # storage exists: nothing to format, the stamp stays
    assert formatted.plan_stamp.read_text() == "kept"


def test_kcat_reads_its_password_from_a_private_file_not_the_command_line(tmp_path: Path) -> None:
    files = bus_access.write_kcat_configs(tmp_path)
    known = bus_access.passwords(tmp_path)
    assert [f.name for f in files] == ["kcat-producer.conf", "kcat-admin.conf"]
    for path, user in zip(files, ("producer", "admin"), strict=True):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        config = dict(line.split("=", 1) for line in path.read_text().splitlines())
        assert config == {
            "security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "PLAIN",
            "sasl.username": user, "sasl.password": known[user],
        }  # fmt: skip


def test_each_service_runs_as_its_own_principal(tmp_path: Path) -> None:
    settings = InfraSettings(state_dir=tmp_path, kafka_bootstrap_servers=None, kafka_security="scram")
    supervisor = Supervisor(settings)
    known = bus_access.passwords(settings.secrets_dir)
    for service in SERVICE_ORDER:
        env = supervisor.service_env(service, tmp_path / "keys.json")
        assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
        assert (env["KAFKA_SASL_USERNAME"], env["KAFKA_SASL_PASSWORD"]) == (service, known[service])


def test_ops_tooling_finds_the_super_user_of_a_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "KAFKA_SECURITY_PROTOCOL",
        "KAFKA_SASL_USERNAME",
        "KAFKA_SASL_PASSWORD",
        "KAFKA_SASL_MECHANISM",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLOPS_KAFKA_PORT", "1")  # this process's own stack is elsewhere
    bootstrap = "127.0.0.1:24999"
    assert bus_access.kafka_options(bootstrap) == {"bootstrap_servers": [bootstrap]}
    bus_access.remember_stack(tmp_path, bootstrap)
    assert bus_access.kafka_options(bootstrap) == {"bootstrap_servers": [bootstrap]}  # no credentials yet
    admin = bus_access.passwords(tmp_path / "secrets")[bus_access.SUPER_USER]
    options = bus_access.kafka_options(bootstrap)
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("admin", admin)
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "producer")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "p")
    assert "sasl_plain_username" not in bus_access.kafka_options("other:9092")  # another bus's settings
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "other:9092")
    handed = bus_access.kafka_options("other:9092")
    assert (handed["sasl_plain_username"], handed["sasl_mechanism"]) == ("producer", "PLAIN")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")  # an external cluster's own choice
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    handed = bus_access.kafka_options("other:9092")
    assert handed["sasl_mechanism"] == "SCRAM-SHA-256" and handed["ssl_context"] is not None


def test_a_command_lends_its_principal_to_the_environment_only_while_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (
        "KAFKA_BOOTSTRAP_SERVERS",
        "KAFKA_SECURITY_PROTOCOL",
        "KAFKA_SASL_USERNAME",
        "KAFKA_SASL_PASSWORD",
    ):
        monkeypatch.delenv(name, raising=False)
    settings = InfraSettings(state_dir=tmp_path, kafka_bootstrap_servers=None, kafka_security="scram")
    with bus_access.ops_environment(settings):
        assert os.environ["KAFKA_SASL_USERNAME"] == "admin"
    assert "KAFKA_SASL_USERNAME" not in os.environ and "KAFKA_SECURITY_PROTOCOL" not in os.environ
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "producer")  # the user chose credentials: all theirs
    with bus_access.ops_environment(settings):
        assert os.environ["KAFKA_SASL_USERNAME"] == "producer" and "KAFKA_SASL_PASSWORD" not in os.environ
    assert os.environ["KAFKA_SASL_USERNAME"] == "producer"


def test_the_plan_prints_as_kafka_acls_commands_for_a_real_cluster() -> None:
    commands = bus_plan.acl_commands("kafka-1:9093", "admin.properties")
    assert len(commands) == len(set(bus_plan.acl_lines()))
    producer = [c for c in commands if "User:producer " in c]
    assert sorted(c.split("--topic ")[1] for c in producer if "Write" in c) == [LABELS_OBSERVED, RECORDS_RAW]
    assert any("--group ingest --resource-pattern-type prefixed" in c for c in commands)
    assert all(
        c.startswith("kafka-acls.sh --bootstrap-server kafka-1:9093 --command-config admin.properties")
        for c in commands
    )
