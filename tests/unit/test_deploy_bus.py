"""deploy/compose.yaml's bus against the plan the local bus applies: the broker's settings, read the way
the apache/kafka image turns them into server.properties, are infra/bus_plan.py's; every platform
container runs as its own principal of contracts/access.py; the bus-access job applies exactly the
plan's SCRAM users and ACLs; and no password is in compose.yaml. No Docker here (deploy/README.md):
these checks are what keeps the compose bus from drifting away from the code."""

from __future__ import annotations

import importlib.util
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from contracts.access import ACCESS, PRODUCER
from infra.bus_access import MECHANISM, PRINCIPALS_FILE, SUPER_USER, passwords, settings_env
from infra.bus_plan import acl_commands, admin_client_lines, broker_properties, scram_users
from infra.compose_bus import ACCESS_SCRIPT, BOOTSTRAP, TOOLS_MOUNT, access_script, image_env_name
from infra.settings import REPO_ROOT, InfraSettings
from infra.supervisor import SERVICE_ORDER, service_of, with_instances

DEPLOY = REPO_ROOT / "deploy"
COMPOSE_TEXT = (DEPLOY / "compose.yaml").read_text()
SERVICES = yaml.safe_load(COMPOSE_TEXT)["services"]
ADMIN_CONFIG = f"{TOOLS_MOUNT}/admin.properties"
BROKERS = ("kafka", "kafka-2", "kafka-3")  # the three KRaft nodes, as the cluster profile's
CLUSTER = InfraSettings(profile="cluster", kafka_bootstrap_servers="kafka:9092")

# The image's own rule, from apache/kafka core/src/main/scala/kafka/docker/KafkaDockerWrapper.scala
# (getServerConfigsFromEnv and Constants.ExcludeServerPropsEnv; docker/jvm/launch runs it before the
# broker starts): every KAFKA_* variable but these becomes a server.properties line.
IMAGE_EXCLUDED = {
    "KAFKA_VERSION",
    "KAFKA_HEAP_OPTS",
    "KAFKA_LOG4J_OPTS",
    "KAFKA_OPTS",
    "KAFKA_JMX_OPTS",
    "KAFKA_JVM_PERFORMANCE_OPTS",
    "KAFKA_GC_LOG_OPTS",
    "KAFKA_LOG4J_ROOT_LOGLEVEL",
    "KAFKA_LOG4J_LOGGERS",
    "KAFKA_TOOLS_LOG4J_LOGLEVEL",
    "KAFKA_JMX_HOSTNAME",
}
# What must hold on any broker of the platform's bus, whatever else broker_properties() says.
SECURITY_KEYS = (
    "listener.security.protocol.map",
    "inter.broker.listener.name",
    "sasl.enabled.mechanisms",
    "sasl.mechanism.inter.broker.protocol",
    "sasl.mechanism.controller.protocol",
    "listener.name.controller.sasl.enabled.mechanisms",
    "authorizer.class.name",
    "super.users",
    "allow.everyone.if.no.acl.found",
)


def image_server_properties(env: dict[str, str]) -> dict[str, str]:
    """server.properties as the apache/kafka image writes it from a container's environment. As in the
    Scala: every `KAFKA_` is removed (not only the prefix), then lower case, `_` -> `.`, `...` -> `-`,
    `..` -> `_`."""
    props = {}
    for key, value in env.items():
        if key.startswith("KAFKA_") and key not in IMAGE_EXCLUDED:
            name = key.replace("KAFKA_", "").lower().replace("_", ".").replace("...", "-").replace("..", "_")
            props[name] = value
    return props


def read_env_file(path: Path) -> dict[str, str]:
    """A compose env file as make_secrets.py writes it: KEY='literal value' lines."""
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, value = line.split("=", 1)
            values[key] = value[1:-1] if value[:1] == value[-1:] == "'" else value
    return values


def container_env(service: str, secrets: Path) -> dict[str, str]:
    """What a compose container's environment holds: its env_file(s), then its `environment`."""
    spec = SERVICES[service]
    env = {}
    for name in spec.get("env_file", []):
        assert name.startswith("./secrets/"), f"{service} reads {name}, outside the git-ignored secrets"
        env |= read_env_file(secrets / name.removeprefix("./secrets/"))
    declared = {str(k): str(v) for k, v in spec.get("environment", {}).items()}
    assert not set(env) & set(declared), f"{service}: compose would shadow its env_file"
    return env | declared


def run_make_secrets(out: Path) -> None:
    """deploy/make_secrets.py, for real, into `out`."""
    spec = importlib.util.spec_from_file_location("make_secrets", DEPLOY / "make_secrets.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(out)


@pytest.fixture(scope="module")
def secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("deploy") / "secrets"
    run_make_secrets(out)
    return out


def test_the_mapping_reads_the_images_documented_examples_and_inverts_the_generators(secrets: Path) -> None:
    # docker/examples/README.md in apache/kafka: abc.def, abc-def and abc_def.
    env = {"KAFKA_ABC_DEF": "1", "KAFKA_ABC___DEF": "2", "KAFKA_ABC__DEF": "3", "KAFKA_OPTS": "-D", "X": "4"}
    assert image_server_properties(env) == {"abc.def": "1", "abc-def": "2", "abc_def": "3"}
    expected = dict(line.split("=", 1) for line in broker_properties(secrets / "kafka"))
    names = {image_env_name(key): value for key, value in expected.items()}
    assert image_server_properties(names) == expected  # the generator's broker.env names, too


@pytest.mark.parametrize("node", BROKERS)
def test_every_broker_is_locked_down_exactly_as_broker_properties(secrets: Path, node: str) -> None:
    expected = dict(line.split("=", 1) for line in broker_properties(secrets / "kafka"))
    assert set(SECURITY_KEYS) <= set(expected)
    props = image_server_properties(container_env(node, secrets))
    assert {key: props.get(key) for key in expected} == expected
    # No listener outside SASL: each one, advertised or not, maps to a SASL protocol.
    protocols = dict(pair.split(":") for pair in props["listener.security.protocol.map"].split(","))
    for key in ("listeners", "advertised.listeners"):
        names = [listener.split("://")[0] for listener in props[key].split(",")]
        assert all(protocols[name].startswith("SASL_") for name in names), props[key]
    assert props["controller.listener.names"] in protocols
    assert props["advertised.listeners"] == f"{props['inter.broker.listener.name']}://{node}:9092"
    assert BOOTSTRAP == "kafka:9092"  # the ops tools' way in: node 1


def test_the_three_nodes_replicate_as_the_cluster_profile(secrets: Path, tmp_path: Path) -> None:
    from infra.kafka_local import LocalKafka
    from infra.settings import InfraSettings

    cluster = InfraSettings(profile="cluster", kafka_bootstrap_servers="kafka:9092")
    profile = LocalKafka(home=tmp_path, jars_dir=tmp_path, replication=cluster.kafka_replication)
    expected = dict(line.split("=", 1) for line in profile.replication_properties())
    assert expected["min.insync.replicas"] == "2" and expected["default.replication.factor"] == "3"
    nodes = {node: image_server_properties(container_env(node, secrets)) for node in BROKERS}
    for node, props in nodes.items():
        assert {key: props.get(key) for key in expected} == expected, node
    assert sorted(props["node.id"] for props in nodes.values()) == ["1", "2", "3"]
    voters = {props["controller.quorum.voters"] for props in nodes.values()}
    assert voters == {",".join(f"{i}@{node}:9093" for i, node in enumerate(BROKERS, 1))}
    # Every platform container and job reaches all three; the topics job makes three replicas.
    for service, spec in SERVICES.items():
        bootstrap = spec.get("environment", {}).get("KAFKA_BOOTSTRAP_SERVERS")
        if bootstrap is not None:
            assert bootstrap.split(",") == [f"{node}:9092" for node in BROKERS], service
    topics = SERVICES["topics"]["environment"]
    assert InfraSettings(profile=topics["MLOPS_PROFILE"], kafka_bootstrap_servers="x").kafka_replication == 3


@pytest.mark.parametrize("node", BROKERS)
def test_the_image_accepts_the_sasl_listener(secrets: Path, node: str) -> None:
    # apache/kafka docker/resources/common-scripts/configure: with a SASL listener advertised, an
    # empty KAFKA_OPTS stops the container before the broker starts.
    assert container_env(node, secrets).get("KAFKA_OPTS", "").strip()
    health = " ".join(SERVICES[node]["healthcheck"]["test"])
    assert f"--command-config {ADMIN_CONFIG}" in health
    assert f"./secrets/kafka/tools:{TOOLS_MOUNT}:ro" in SERVICES[node]["volumes"]


def test_no_password_is_in_compose_yaml(secrets: Path) -> None:
    known = passwords(secrets / "kafka")
    assert not [name for name, password in known.items() if password in COMPOSE_TEXT]
    assert not re.search(r"password=|user_\w+=", COMPOSE_TEXT, re.IGNORECASE)
    for service, spec in SERVICES.items():
        for key, value in spec.get("environment", {}).items():
            # Secrets by name (not a switch such as ..._ENABLE_LEGACY_API_TOKEN: "true") come from .env.
            switch = str(value).lower() in ("true", "false")
            if re.search("PASSWORD|SECRET|TOKEN|SALT", key) and not switch and not key.endswith("_FILE"):
                assert str(value).startswith("${"), f"{service}: {key} is written into compose.yaml"
    ignored = subprocess.run(["git", "check-ignore", "-q", "deploy/secrets/kafka/broker.env"], cwd=REPO_ROOT)
    assert ignored.returncode == 0, "deploy/secrets/ must stay git-ignored"


def test_each_platform_container_runs_as_its_own_principal(secrets: Path) -> None:
    known = passwords(secrets / "kafka")
    users = {}
    for service, spec in SERVICES.items():
        env = container_env(service, secrets)
        if "KAFKA_BOOTSTRAP_SERVERS" not in env:
            continue
        user = users[service] = env.get("KAFKA_SASL_USERNAME", "")
        wanted = settings_env(user, known.get(user, ""))
        assert {key: env.get(key) for key in wanted} == wanted, f"{service} is not {user!r} on the bus"
        assert spec["env_file"][0] == f"./secrets/kafka/env/{user}.env"
    # A second instance runs as its service's principal (ingest-2 as ingest), as in the cluster profile.
    instances = with_instances(CLUSTER, list(SERVICE_ORDER))
    assert users == {**{name: service_of(name) for name in instances}, "topics": SUPER_USER}
    assert set(SERVICE_ORDER) == set(ACCESS) - {PRODUCER}, "a principal without a service, or the reverse"


def test_services_start_after_the_bus_access_job_which_runs_after_the_broker() -> None:
    for service in SERVICE_ORDER:
        condition = SERVICES[service]["depends_on"].get("bus-access", {}).get("condition")
        assert condition == "service_completed_successfully", service
    job = SERVICES["bus-access"]
    assert job["depends_on"] == {node: {"condition": "service_healthy"} for node in BROKERS}
    assert job["image"] == SERVICES["kafka"]["image"]


def test_the_bus_access_job_applies_exactly_the_plan() -> None:
    script = ACCESS_SCRIPT.read_text()
    assert script == access_script(), "deploy/kafka/bus-access.sh is stale: python -m infra.compose_bus"
    assert [line for line in script.splitlines() if line.startswith("kafka-acls.sh")] == acl_commands(
        BOOTSTRAP, ADMIN_CONFIG
    )
    loop = re.search(r"^for user in (.+); do$", script, re.MULTILINE)
    assert loop is not None and loop.group(1).split() == scram_users()
    job = SERVICES["bus-access"]
    mounted = dict(volume.rsplit(":", 1)[0].split(":") for volume in job["volumes"])
    assert mounted == {"./kafka/bus-access.sh": job["command"][0], "./secrets/kafka/tools": TOOLS_MOUNT}
    assert (DEPLOY / "kafka" / "bus-access.sh").resolve() == ACCESS_SCRIPT


def test_the_generated_credentials_fit_the_kafka_tools_and_survive_a_rerun(secrets: Path) -> None:
    kafka = secrets / "kafka"
    tools = kafka / "tools"
    before = (kafka / PRINCIPALS_FILE).read_text()
    known = passwords(kafka)
    # ConfigCommand's pattern for a SCRAM credential; SCRAM-SHA-512 needs at least 4096 iterations.
    pattern = re.compile(rf"{MECHANISM}=(?:iterations=(\d+),)?password=(.*)")
    for user in scram_users():
        found = pattern.fullmatch((tools / "scram" / f"{user}.properties").read_text().strip())
        assert found is not None and int(found.group(1)) >= 4096 and found.group(2) == known[user]
    assert (tools / "admin.properties").read_text().splitlines() == admin_client_lines(kafka)
    producer = (tools / "producer.properties").read_text()
    assert f'username="{PRODUCER}" password="{known[PRODUCER]}"' in producer and MECHANISM in producer
    for path in [kafka / "broker.env", *(kafka / "env").iterdir(), kafka / PRINCIPALS_FILE]:
        assert path.stat().st_mode & 0o077 == 0, f"{path.name} is readable by others"
    assert all(path.stat().st_mode & 0o004 for path in tools.rglob("*")), "the image's user reads these"
    run_make_secrets(secrets)
    assert (kafka / PRINCIPALS_FILE).read_text() == before
