"""deploy/compose.yaml's locked-down bus: the files its Kafka broker, its bus-access job and its
services read, all made from the plan the local bus applies (infra/bus_plan.py, contracts/access.py).

Committed, with no secret in it: `deploy/kafka/bus-access.sh`, the bus-access job's script, written by
`python -m infra.compose_bus` (tests/unit/test_deploy_bus.py fails when it is not what this writes).

Made by deploy/make_secrets.py in `deploy/secrets/kafka/` (git-ignored), never committed:

  kafka-principals.json      every principal's password (infra/bus_access.passwords), 0600
  broker.env                 the broker properties that hold passwords, as the apache/kafka image's
                             KAFKA_* variables (the kafka service's env_file), 0600
  env/<principal>.env        KAFKA_SASL_PASSWORD of the container that runs as <principal>, 0600
  tools/                     mounted read-only at /etc/mlops/bus in the apache/kafka containers:
    admin.properties         the super user's client config (healthcheck, bus-access job)
    producer.properties      the `producer` principal's client config (deploy/README.md's producer line)
    scram/<user>.properties  <user>'s SCRAM-SHA-512 credential, for `kafka-configs.sh --add-config-file`

The env files are read by `docker compose` itself, as the user who runs it. What is under tools/ is
read inside the containers by the image's own user through a bind mount, which keeps the host's
modes: 0644 files in a 0755 folder, kept from the host's other users by deploy/secrets/ (0700), as
make_secrets.py does for the hashed API keys.
"""

from __future__ import annotations

import os
from pathlib import Path

from contracts.access import ACCESS, PRODUCER
from infra.bus_access import MECHANISM, PROTOCOL, SUPER_USER, passwords, write_private
from infra.bus_plan import acl_commands, admin_client_lines, broker_properties, jaas, scram_users
from infra.settings import REPO_ROOT

BOOTSTRAP = "kafka:9092"
TOOLS_MOUNT = "/etc/mlops/bus"
ACCESS_SCRIPT = REPO_ROOT / "deploy" / "kafka" / "bus-access.sh"
# As infra/kafka/BusAccess.java stores them on the local bus.
SCRAM_ITERATIONS = 8192


def container_principals() -> list[str]:
    """The principals compose's platform containers run as: each service as its own, the topics job as
    the super user. `producer` is for whoever streams records in, from outside."""
    return [SUPER_USER, *(name for name in ACCESS if name != PRODUCER)]


def image_env_name(prop: str) -> str:
    """The apache/kafka image's environment variable for a broker property: `_` -> `__`, `-` -> `___`,
    `.` -> `_`, upper case, `KAFKA_` in front (docker/examples/README.md in apache/kafka; the image's
    KafkaDockerWrapper undoes exactly this)."""
    return "KAFKA_" + prop.replace("_", "__").replace("-", "___").replace(".", "_").upper()


def broker_secret_env(kafka_dir: Path) -> dict[str, str]:
    """The broker properties of `broker_properties` that carry a password (the PLAIN logins' JAAS
    lines), as image variables. Every other line of it is written out in compose.yaml itself."""
    lines = (line.split("=", 1) for line in broker_properties(kafka_dir))
    return {image_env_name(key): value for key, value in lines if "password=" in value}


def dotenv(values: dict[str, str]) -> str:
    """A compose env file. Single-quoted values are taken literally (no `$` interpolation), which the
    JAAS lines' double quotes and semicolons need; generated passwords never hold a quote."""
    for name, value in values.items():
        if "'" in value or "\n" in value:
            raise ValueError(f"{name} cannot be written to a compose env file")
    return "".join(f"{name}='{value}'\n" for name, value in values.items())


def _write_shared(path: Path, text: str) -> None:
    write_private(path, text)
    os.chmod(path, 0o644)


def write_compose_secrets(kafka_dir: Path) -> list[Path]:
    """Write (or rewrite, with the same passwords) every file above into `kafka_dir`."""
    known = passwords(kafka_dir)  # created once, kept: a rerun changes no password
    written = {kafka_dir / "broker.env": dotenv(broker_secret_env(kafka_dir))}
    for name in container_principals():
        written[kafka_dir / "env" / f"{name}.env"] = dotenv({"KAFKA_SASL_PASSWORD": known[name]})
    for path, text in written.items():
        write_private(path, text)
    tools = kafka_dir / "tools"
    (tools / "scram").mkdir(parents=True, exist_ok=True)
    for folder in (tools, tools / "scram"):
        os.chmod(folder, 0o755)
    producer = [
        f"security.protocol={PROTOCOL}",
        f"sasl.mechanism={MECHANISM}",
        "sasl.jaas.config=" + jaas("scram.ScramLoginModule", PRODUCER, known[PRODUCER]),
    ]
    shared = {
        tools / "admin.properties": "\n".join(admin_client_lines(kafka_dir)) + "\n",
        tools / "producer.properties": "\n".join(producer) + "\n",
    }
    for user in scram_users():
        # No brackets: ConfigCommand strips them from --add-config only, not from a file's values.
        credential = f"{MECHANISM}=iterations={SCRAM_ITERATIONS},password={known[user]}\n"
        shared[tools / "scram" / f"{user}.properties"] = credential
    for path, text in shared.items():
        _write_shared(path, text)
    return [*written, *shared]


SCRIPT_HEADER = """#!/bin/sh
# Generated by `python -m infra.compose_bus` from contracts/access.py (infra/bus_plan.py): do
# not edit. tests/unit/test_deploy_bus.py fails when it is not what the generator writes now.
# deploy/compose.yaml's bus-access job runs it in the apache/kafka image as the super user.
# Passwords are read from files (deploy/make_secrets.py), never put on a command line.
# Upserts and additions only: an ACL the plan no longer grants stays until removed by hand
# (kafka-acls.sh --remove); the local bus's BusAccess.java removes those itself.
set -eu
export PATH="/opt/kafka/bin:$PATH"
"""


def access_script() -> str:
    """The bus-access job's script: each principal's SCRAM credential, then the plan's ACLs, exactly as
    `python -m infra.bus_plan` prints them for a real cluster."""
    config = f"{TOOLS_MOUNT}/admin.properties"
    acls = acl_commands(BOOTSTRAP, config)
    upserts = [
        f"for user in {' '.join(scram_users())}; do",
        f"  kafka-configs.sh --bootstrap-server {BOOTSTRAP} --command-config {config} --alter \\",
        '    --entity-type users --entity-name "$user" \\',
        f'    --add-config-file "{TOOLS_MOUNT}/scram/$user.properties"',
        "done",
    ]
    summary = f'echo "bus access: {len(scram_users())} SCRAM users, {len(acls)} ACLs"'
    return SCRIPT_HEADER + "\n".join([*upserts, *acls, summary]) + "\n"


if __name__ == "__main__":
    ACCESS_SCRIPT.parent.mkdir(parents=True, exist_ok=True)
    ACCESS_SCRIPT.write_text(access_script())
    print(f"wrote {ACCESS_SCRIPT.relative_to(REPO_ROOT)}")
