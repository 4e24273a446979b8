"""infra/kafka_cluster.py: the nodes' configuration (no processes started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.kafka_cluster import LocalKafkaCluster


def properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_three_nodes_form_one_quorum_on_ports_ten_apart(tmp_path: Path) -> None:
    cluster = LocalKafkaCluster(home=tmp_path, jars_dir=tmp_path, port=30092)
    nodes = [properties(n.server_properties()) for n in cluster.members]
    voters = "1@127.0.0.1:30093,2@127.0.0.1:30103,3@127.0.0.1:30113"
    assert [n["node.id"] for n in nodes] == ["1", "2", "3"]
    assert {n["controller.quorum.voters"] for n in nodes} == {voters}
    assert [n["listeners"] for n in nodes] == [
        f"PLAINTEXT://127.0.0.1:{p},CONTROLLER://127.0.0.1:{p + 1}" for p in (30092, 30102, 30112)
    ]
    assert cluster.bootstrap_servers == "127.0.0.1:30092,127.0.0.1:30102,127.0.0.1:30112"
    assert len({n["log.dirs"] for n in nodes}) == 3  # a home of its own each
    assert {n.cluster_id_file for n in cluster.members} == {tmp_path / "cluster.id"}  # one cluster id
    assert {n.heap for n in cluster.members} == {"384m"}


def test_topics_get_three_replicas_and_acknowledged_writes_two(tmp_path: Path) -> None:
    for node in LocalKafkaCluster(home=tmp_path, jars_dir=tmp_path).members:
        lines = properties(node.server_properties())
        for key in ("default", "offsets.topic", "transaction.state.log", "share.coordinator.state.topic"):
            assert lines[f"{key}.replication.factor"] == "3", key
        assert lines["min.insync.replicas"] == lines["transaction.state.log.min.isr"] == "2"
        assert lines["share.coordinator.state.topic.min.isr"] == "2"


def test_a_two_node_cluster_keeps_one_in_sync_replica_enough(tmp_path: Path) -> None:
    node = LocalKafkaCluster(home=tmp_path, jars_dir=tmp_path, nodes=2).node(2)
    lines = properties(node.server_properties())
    assert (lines["default.replication.factor"], lines["min.insync.replicas"]) == ("2", "1")


def test_locked_down_like_the_single_node(tmp_path: Path) -> None:
    cluster = LocalKafkaCluster(home=tmp_path, jars_dir=tmp_path, secrets_dir=tmp_path / "secrets")
    for node in cluster.members:
        lines = properties(node.server_properties())
        assert lines["listener.security.protocol.map"].startswith("CONTROLLER:SASL_PLAINTEXT")
        assert lines["authorizer.class.name"].endswith("StandardAuthorizer")
    assert cluster.client_options("producer")["sasl_plain_username"] == "producer"


def test_unknown_nodes_are_refused(tmp_path: Path) -> None:
    cluster = LocalKafkaCluster(home=tmp_path, jars_dir=tmp_path)
    with pytest.raises(KeyError):
        cluster.node(4)
    assert cluster.pids() == {1: None, 2: None, 3: None}


def test_the_cluster_profile_names_three_nodes_and_is_remembered_for_later_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from infra.settings import InfraSettings, stack_settings
    from infra.supervisor import Supervisor

    monkeypatch.delenv("MLOPS_PROFILE", raising=False)
    cluster = InfraSettings(state_dir=tmp_path, profile="cluster", kafka_bootstrap_servers=None)
    assert cluster.bootstrap_servers == "127.0.0.1:9092,127.0.0.1:9102,127.0.0.1:9112"
    assert (cluster.kafka_replication, cluster.kafka_dir.name) == (3, "kafka-cluster")
    assert [c.name for c in Supervisor(cluster).node_components()] == ["kafka-2", "kafka-3"]
    local = InfraSettings(state_dir=tmp_path, kafka_bootstrap_servers=None)
    assert (local.bootstrap_servers, local.kafka_replication, local.kafka_dir.name) == (
        "127.0.0.1:9092",
        1,
        "kafka",
    )
    assert Supervisor(local).node_components() == []

    assert stack_settings(state_dir=tmp_path).profile == "local"
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "profile").write_text("cluster\n")  # what `mlops up --profile cluster` leaves
    assert stack_settings(state_dir=tmp_path).profile == "cluster"
    assert stack_settings(state_dir=tmp_path, profile="local").profile == "local"  # said: it wins


def test_services_that_scale_out_get_a_second_instance_on_its_own_port(tmp_path: Path) -> None:
    from infra.settings import InfraSettings
    from infra.supervisor import Supervisor, service_port, with_instances

    cluster = InfraSettings(state_dir=tmp_path, profile="cluster", kafka_bootstrap_servers=None)
    local = InfraSettings(state_dir=tmp_path, kafka_bootstrap_servers=None)
    services = ["ingest", "features", "training", "serving", "drift", "explain", "audit", "annotation"]
    assert with_instances(local, services) == services
    assert with_instances(cluster, services) == [  # drift's second stands by (servicekit/standby.py)
        "ingest",
        "ingest-2",
        "features",
        "features-2",
        "training",
        "training-2",
        "serving",
        "serving-2",
        "drift",
        "drift-2",
        "explain",
        "explain-2",
        "audit",
        "audit-2",
        "annotation",  # not in SCALES_OUT: one
    ]
    assert (service_port(cluster, "ingest"), service_port(cluster, "ingest-2")) == (8101, 8151)
    env = Supervisor(cluster).service_env("ingest-2", tmp_path / "keys.json")
    assert (
        env["INGEST_HTTP_PORT"] == "8151" and env["KAFKA_SASL_USERNAME"] == "ingest"
    )  # the service's principal
