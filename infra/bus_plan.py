"""The locked-down bus's broker side: the SASL listeners and the authorizer of a local broker, and the
access plan (principals, ACLs from contracts/access.py) applied with Kafka's own Admin client
(infra/kafka/BusAccess.java) whenever it changes; `python -m infra.bus_plan` prints the same plan as
`kafka-acls.sh` commands for a real cluster."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

from contracts.access import ACCESS
from infra.bus_access import CONTROLLER_USER, MECHANISM, PROTOCOL, SUPER_USER, passwords, write_private
from infra.kafka_jars import source_program
from infra.settings import REPO_ROOT

TOOL = REPO_ROOT / "infra" / "kafka" / "BusAccess.java"


def jaas(module: str, user: str, password: str, **users: str) -> str:
    extra = "".join(f' user_{name}="{secret}"' for name, secret in users.items())
    login = f'username="{user}" password="{password}"'
    return f"org.apache.kafka.common.security.{module} required {login}{extra};"


def broker_properties(secrets_dir: Path) -> list[str]:
    """The broker's SASL listener, controller listener and authorizer lines (replace the plaintext
    listener map). Nothing is allowed that an ACL does not allow."""
    known = passwords(secrets_dir)
    admin, controller = known[SUPER_USER], known[CONTROLLER_USER]
    plain_users = {name: known[name] for name in (SUPER_USER, *ACCESS)}
    return [
        f"listener.security.protocol.map=CONTROLLER:{PROTOCOL},{PROTOCOL}:{PROTOCOL}",
        f"inter.broker.listener.name={PROTOCOL}",
        # PLAIN too, with the same principals and passwords, for librdkafka clients before 2.6.1 (kcat
        # from Debian links 2.0.2): their SCRAM sends a nonce Kafka 4 rightly refuses. The local bus
        # listens on loopback only; a real cluster puts either mechanism behind TLS (SASL_SSL).
        f"sasl.enabled.mechanisms={MECHANISM},PLAIN",
        f"listener.name.{PROTOCOL.lower()}.plain.sasl.jaas.config="
        + jaas("plain.PlainLoginModule", SUPER_USER, admin, **plain_users),
        # The broker talks to itself (and a cluster's nodes to each other) as the super user, with PLAIN
        # from this config: no credential has to be put into the metadata before the broker starts.
        "sasl.mechanism.inter.broker.protocol=PLAIN",
        "sasl.mechanism.controller.protocol=PLAIN",
        "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
        "listener.name.controller.plain.sasl.jaas.config="
        + jaas("plain.PlainLoginModule", CONTROLLER_USER, controller, **{CONTROLLER_USER: controller}),
        f"listener.name.{PROTOCOL.lower()}.{MECHANISM.lower()}.sasl.jaas.config="
        "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        f"super.users=User:{SUPER_USER};User:{CONTROLLER_USER}",
        "allow.everyone.if.no.acl.found=false",
    ]


def acl_lines() -> Iterator[str]:
    """The plan's ACLs, one `allow` line each (BusAccess.java's format)."""
    for name, access in ACCESS.items():
        principal = f"User:{name}"
        for topic in access.writes:
            yield f"allow {principal} TOPIC LITERAL {topic} WRITE"
            yield f"allow {principal} TOPIC LITERAL {topic} DESCRIBE"
        for topic in access.reads:
            yield f"allow {principal} TOPIC LITERAL {topic} READ"
            yield f"allow {principal} TOPIC LITERAL {topic} DESCRIBE"
        if access.group_prefix:
            yield f"allow {principal} GROUP PREFIXED {access.group_prefix} READ"
            yield f"allow {principal} GROUP PREFIXED {access.group_prefix} DESCRIBE"


def scram_users() -> list[str]:
    """The principals with a SCRAM credential: every one in the plan, and the super user too (for SCRAM
    clients). The controller principal exists only in the broker's own PLAIN config."""
    return [SUPER_USER, *ACCESS]


def admin_client_lines(secrets_dir: Path) -> list[str]:
    """Kafka client properties for the super user (PLAIN: it exists before any credential is stored)."""
    admin = passwords(secrets_dir)[SUPER_USER]
    return [
        f"security.protocol={PROTOCOL}",
        "sasl.mechanism=PLAIN",
        "sasl.jaas.config=" + jaas("plain.PlainLoginModule", SUPER_USER, admin),
    ]


def plan_text(secrets_dir: Path) -> str:
    known = passwords(secrets_dir)
    users = [f"user {name} {known[name]}" for name in scram_users()]
    return "\n".join([*users, *sorted(set(acl_lines()))]) + "\n"


def apply_plan(stamp: Path, secrets_dir: Path, bootstrap: str, java: str, jars_dir: Path) -> str | None:
    """Create the principals and ACLs on the running broker (or cluster) if the plan changed since the
    run that wrote `stamp` (a broker deletes its stamp when it formats new storage). Returns the tool's
    summary line, or None when nothing changed."""
    home = stamp.parent
    plan = plan_text(secrets_dir)
    digest = hashlib.sha256(plan.encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return None
    client = [f"bootstrap.servers={bootstrap}", *admin_client_lines(secrets_dir)]
    files = {home / "access-client.properties": "\n".join(client) + "\n", home / "access-plan.txt": plan}
    try:
        for path, text in files.items():
            write_private(path, text)
        result = subprocess.run(
            [*source_program(java, jars_dir, TOOL), *(str(p) for p in files)],
            capture_output=True,
            text=True,
            check=False,
            timeout=180,
        )
    finally:
        for path in files:
            path.unlink(missing_ok=True)
    if result.returncode != 0:
        # The tool's output names principals and resources, never a password (they are in the files).
        raise RuntimeError(f"applying the bus access plan failed: {result.stderr[-3000:]}")
    stamp.write_text(digest)
    return result.stdout.strip()


def acl_commands(bootstrap: str = "BROKER:9093", config: str = "admin.properties") -> list[str]:
    """The plan as Kafka's own `kafka-acls.sh` commands, for a real cluster (its principals are yours
    to create; the topics are `mlops topics`')."""
    lines = []
    for line in sorted(set(acl_lines())):
        _, principal, kind, pattern, name, operation = line.split()
        resource = f"--{kind.lower()} {name}" + (
            " --resource-pattern-type prefixed" if pattern == "PREFIXED" else ""
        )
        lines.append(
            f"kafka-acls.sh --bootstrap-server {bootstrap} --command-config {config} --add"
            f" --allow-principal {principal} --operation {operation.capitalize()} {resource}"
        )
    return lines


if __name__ == "__main__":
    import sys

    print("\n".join(acl_commands(*sys.argv[1:3])))
