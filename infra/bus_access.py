"""The locked-down local bus: one SCRAM principal per service, one for producers, a super user for ops,
their passwords (generated once into the git-ignored secrets folder, never logged), and the broker's
ACLs, made from contracts/access.py.

`mlops up` formats the broker with the super user's credentials, then applies the plan (the other
principals and their ACLs) with Kafka's own Admin client (infra/kafka/BusAccess.java) whenever the plan
changes. Services get their own principal through the standard KAFKA_SASL_* settings; ops tooling
(`mlops ...`, the demo, tests and benchmarks) asks `kafka_options(bootstrap)` for the super user's.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from contracts.access import ACCESS
from infra.settings import REPO_ROOT, InfraSettings, stack_settings
from servicekit.settings import split_servers

MECHANISM = "SCRAM-SHA-512"
PROTOCOL = "SASL_PLAINTEXT"
SUPER_USER = "admin"
# The KRaft controller listener authenticates with PLAIN from the broker's own config: SCRAM
# credentials live in the metadata log, which the controller must read before it can check them.
CONTROLLER_USER = "controller"
PRINCIPALS_FILE = "kafka-principals.json"
TOOL = REPO_ROOT / "infra" / "kafka" / "BusAccess.java"


def principal_names() -> list[str]:
    return [SUPER_USER, CONTROLLER_USER, *ACCESS]


def passwords(secrets_dir: Path) -> dict[str, str]:
    """Every principal's password, created once (0600) and kept: new principals are added, existing
    passwords never change."""
    path = secrets_dir / PRINCIPALS_FILE
    known: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    missing = [name for name in principal_names() if name not in known]
    if missing:
        known |= {name: secrets.token_urlsafe(24) for name in missing}
        secrets_dir.mkdir(parents=True, exist_ok=True)
        staged = path.with_suffix(".tmp")
        staged.touch(mode=0o600)
        staged.write_text(json.dumps(known, indent=2) + "\n")
        staged.replace(path)
    return known


def client_security(user: str, password: str) -> dict[str, Any]:
    """aiokafka client arguments for `user`."""
    return {
        "security_protocol": PROTOCOL,
        "sasl_mechanism": MECHANISM,
        "sasl_plain_username": user,
        "sasl_plain_password": password,
    }


def settings_env(user: str, password: str) -> dict[str, str]:
    """The services' own settings (servicekit.settings) for running as `user`."""
    return {
        "KAFKA_SECURITY_PROTOCOL": PROTOCOL,
        "KAFKA_SASL_MECHANISM": MECHANISM,
        "KAFKA_SASL_USERNAME": user,
        "KAFKA_SASL_PASSWORD": password,
    }


def secured(settings: InfraSettings) -> bool:
    """True when `mlops up` runs the local broker locked down (the default)."""
    return settings.local_kafka and settings.kafka_security == "scram"


@contextmanager
def ops_environment(settings: InfraSettings) -> Iterator[None]:
    """For one `mlops` command: the super user's KAFKA_SASL_* settings in this process's environment
    (the services' settings it builds, and the tools it runs, inherit them), unless they are set
    already; taken out again afterwards, so nothing leaks into whatever runs next in the process."""
    added = {k: v for k, v in principal_env(settings, SUPER_USER).items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def principal_env(settings: InfraSettings, principal: str) -> dict[str, str]:
    """Environment for a process that talks to the stack's bus as `principal` (empty when the bus is
    not ours to lock: plaintext by choice, or an external cluster configured by its own KAFKA_*)."""
    if not secured(settings):
        return {}
    return settings_env(principal, passwords(settings.secrets_dir)[principal])


# -- the broker's side -------------------------------------------------------------------------
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
        f"sasl.mechanism.inter.broker.protocol={MECHANISM}",
        "sasl.mechanism.controller.protocol=PLAIN",
        "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
        "listener.name.controller.plain.sasl.jaas.config="
        + jaas("plain.PlainLoginModule", CONTROLLER_USER, controller, **{CONTROLLER_USER: controller}),
        f"listener.name.{PROTOCOL.lower()}.{MECHANISM.lower()}.sasl.jaas.config="
        + jaas("scram.ScramLoginModule", SUPER_USER, admin),
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        f"super.users=User:{SUPER_USER};User:{CONTROLLER_USER}",
        "allow.everyone.if.no.acl.found=false",
    ]


def format_scram_arguments(secrets_dir: Path) -> list[str]:
    """The storage tool's arguments that create the super user when the broker is formatted."""
    return ["--add-scram", f"{MECHANISM}=[name={SUPER_USER},password={passwords(secrets_dir)[SUPER_USER]}]"]


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


def plan_text(secrets_dir: Path) -> str:
    known = passwords(secrets_dir)
    users = [f"user {name} {known[name]}" for name in ACCESS]
    return "\n".join([*users, *sorted(set(acl_lines()))]) + "\n"


def apply_plan(home: Path, secrets_dir: Path, bootstrap: str, java: str, jars_dir: Path) -> str | None:
    """Create the principals and ACLs on the running broker whose files are in `home` if the plan
    changed since the last time. Returns the tool's summary line, or None when nothing changed."""
    plan = plan_text(secrets_dir)
    stamp = home / "access.sha256"
    digest = hashlib.sha256(plan.encode()).hexdigest()
    if stamp.exists() and stamp.read_text() == digest:
        return None
    admin = passwords(secrets_dir)[SUPER_USER]
    client = [
        f"bootstrap.servers={bootstrap}",
        f"security.protocol={PROTOCOL}",
        f"sasl.mechanism={MECHANISM}",
        "sasl.jaas.config=" + jaas("scram.ScramLoginModule", SUPER_USER, admin),
    ]
    files = {home / "access-client.properties": "\n".join(client) + "\n", home / "access-plan.txt": plan}
    try:
        for path, text in files.items():
            _write_private(path, text)
        result = subprocess.run(
            [java, "-cp", f"{jars_dir}/*", str(TOOL), *(str(p) for p in files)],
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


def _write_private(path: Path, text: str) -> None:
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


# -- ops tooling's side ------------------------------------------------------------------------
_REMEMBERED: dict[str, dict[str, Any]] = {}
_STACKS: dict[str, Path] = {}


def remember(bootstrap: str, security: dict[str, Any]) -> None:
    """Tell `kafka_options` how to reach a bus this process did not start."""
    _REMEMBERED[bootstrap] = security


def remember_stack(state_dir: Path, bootstrap: str) -> None:
    """`bootstrap` is the bus of the stack whose state is `state_dir` (tests, benchmarks): its super
    user is read when asked for, so this may be said before `mlops up` has made the credentials."""
    _STACKS[bootstrap] = state_dir


def _super_user_of(state_dir: Path) -> dict[str, Any] | None:
    path = state_dir / "secrets" / PRINCIPALS_FILE
    if not path.exists():
        return None
    return client_security(SUPER_USER, json.loads(path.read_text())[SUPER_USER])


def kafka_options(bootstrap: str) -> dict[str, Any]:
    """aiokafka arguments for ops tooling on `bootstrap`: the super user of a locked-down stack (one
    remembered, or the one `mlops up` runs with this process's settings), else plaintext."""
    security = _REMEMBERED.get(bootstrap)
    if security is None and bootstrap in _STACKS:
        security = _super_user_of(_STACKS[bootstrap])
    environment = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") == bootstrap
    if security is None and environment and os.environ.get("KAFKA_SECURITY_PROTOCOL") == PROTOCOL:
        # A tool run by `mlops` (it hands the bus and its principal down in the services' settings).
        user, password = os.environ.get("KAFKA_SASL_USERNAME", ""), os.environ.get("KAFKA_SASL_PASSWORD", "")
        security = client_security(user, password)
    if security is None:
        settings = stack_settings()  # the profile `mlops up` started, too
        if secured(settings) and set(split_servers(bootstrap)) <= set(
            split_servers(settings.bootstrap_servers)
        ):
            security = _super_user_of(settings.state_dir)
    # aiokafka takes the servers as a list (a comma-separated string would be read as one host).
    return {"bootstrap_servers": split_servers(bootstrap), **(security or {})}


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
