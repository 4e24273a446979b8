"""The locked-down local bus, the clients' side: one SCRAM principal per service, one for producers, a
super user for ops, their passwords (generated once into the git-ignored secrets folder, never logged
or put on a command line), and how each kind of client gets its credentials.

Services get their own principal through the standard KAFKA_SASL_* settings (the supervisor hands them
over); ops tooling (`mlops ...`, the demo, tests and benchmarks) asks `kafka_options(bootstrap)` for the
super user's; kcat and other librdkafka clients read a 0600 config file per principal
(`<secrets>/kcat-<principal>.conf`). The broker's side (listeners, the ACL plan) is infra/bus_plan.py.

The super user authenticates with PLAIN, from the broker's own config, so it exists before any plan is
applied (and on a broker formatted before the bus was locked); every other principal with SCRAM, whose
credentials the plan creates in the cluster's metadata.
"""

from __future__ import annotations

import json
import os
import secrets
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from contracts.access import ACCESS
from infra.settings import InfraSettings, stack_settings
from servicekit.settings import split_servers

MECHANISM = "SCRAM-SHA-512"
SUPER_USER_MECHANISM = "PLAIN"
PROTOCOL = "SASL_PLAINTEXT"
SUPER_USER = "admin"
# The KRaft controller listener authenticates with PLAIN from the broker's own config too.
CONTROLLER_USER = "controller"
PRINCIPALS_FILE = "kafka-principals.json"
KCAT_PRINCIPALS = ("producer", SUPER_USER)  # the README's kcat lines


def principal_names() -> list[str]:
    return [SUPER_USER, CONTROLLER_USER, *ACCESS]


def mechanism_of(principal: str) -> str:
    return SUPER_USER_MECHANISM if principal == SUPER_USER else MECHANISM


def passwords(secrets_dir: Path) -> dict[str, str]:
    """Every principal's password, created once (0600) and kept: new principals are added, existing
    passwords never change."""
    path = secrets_dir / PRINCIPALS_FILE
    known: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    missing = [name for name in principal_names() if name not in known]
    if missing:
        known |= {name: secrets.token_urlsafe(24) for name in missing}
        write_private(path, json.dumps(known, indent=2) + "\n")
    return known


def write_private(path: Path, text: str) -> None:
    """Write `text` to a file only its owner can read, replacing any earlier one atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(path.name + ".tmp")
    staged.unlink(missing_ok=True)
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    staged.replace(path)


def client_security(user: str, password: str, mechanism: str | None = None) -> dict[str, Any]:
    """aiokafka client arguments for `user`."""
    return {
        "security_protocol": PROTOCOL,
        "sasl_mechanism": mechanism or mechanism_of(user),
        "sasl_plain_username": user,
        "sasl_plain_password": password,
    }


def settings_env(user: str, password: str) -> dict[str, str]:
    """The services' own settings (servicekit.settings) for running as `user`."""
    return {
        "KAFKA_SECURITY_PROTOCOL": PROTOCOL,
        "KAFKA_SASL_MECHANISM": mechanism_of(user),
        "KAFKA_SASL_USERNAME": user,
        "KAFKA_SASL_PASSWORD": password,
    }


def secured(settings: InfraSettings) -> bool:
    """True when `mlops up` runs the local broker locked down (the default)."""
    return settings.local_kafka and settings.kafka_security == "scram"


def principal_env(settings: InfraSettings, principal: str) -> dict[str, str]:
    """Environment for a process that talks to the stack's bus as `principal` (empty when the bus is
    not ours to lock: plaintext by choice, or an external cluster configured by its own KAFKA_*)."""
    if not secured(settings):
        return {}
    return settings_env(principal, passwords(settings.secrets_dir)[principal])


@contextmanager
def ops_environment(settings: InfraSettings) -> Iterator[None]:
    """For one `mlops` command: the super user's KAFKA_SASL_* settings in this process's environment
    (the services' settings it builds, and the tools it runs, inherit them); taken out again
    afterwards, so nothing leaks into whatever runs next in the process. All or nothing: when any of
    them is set already, the caller chose its own credentials, and none is added."""
    wanted = principal_env(settings, SUPER_USER)
    added = {} if any(name in os.environ for name in wanted) else wanted
    os.environ.update(added)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def write_kcat_configs(secrets_dir: Path) -> list[Path]:
    """librdkafka config files (0600) for the README's kcat lines (`kcat -F <file> ...`): the password
    stays off the command line. PLAIN: Debian's kcat links librdkafka 2.0.2, whose SCRAM Kafka 4
    refuses (fixed in librdkafka 2.6.1)."""
    known = passwords(secrets_dir)
    written = []
    for user in KCAT_PRINCIPALS:
        path = secrets_dir / f"kcat-{user}.conf"
        lines = [f"security.protocol={PROTOCOL}", "sasl.mechanisms=PLAIN", f"sasl.username={user}"]
        write_private(path, "\n".join([*lines, f"sasl.password={known[user]}"]) + "\n")
        written.append(path)
    return written


# -- ops tooling's side ------------------------------------------------------------------------
_REMEMBERED: dict[str, dict[str, Any]] = {}
_STACKS: dict[str, Path] = {}


def remember(bootstrap: str, security: dict[str, Any]) -> None:
    """Tell `kafka_options` how to reach a bus this process did not start."""
    _REMEMBERED[bootstrap] = security


def remember_super_user(bootstrap: str, secrets_dir: Path) -> None:
    """This process's tooling reaches the broker (or cluster) it started as its super user."""
    remember(bootstrap, client_security(SUPER_USER, passwords(secrets_dir)[SUPER_USER]))


def remember_stack(state_dir: Path, bootstrap: str) -> None:
    """`bootstrap` is the bus of the stack whose state is `state_dir` (tests, benchmarks): its super
    user is read when asked for, so this may be said before `mlops up` has made the credentials."""
    _STACKS[bootstrap] = state_dir


def _super_user_of(state_dir: Path) -> dict[str, Any] | None:
    path = state_dir / "secrets" / PRINCIPALS_FILE
    if not path.exists():
        return None
    return client_security(SUPER_USER, json.loads(path.read_text())[SUPER_USER])


def _from_environment() -> dict[str, Any]:
    """The services' own KAFKA_* security settings, as aiokafka arguments (servicekit.watermark's
    rules: SASL over plaintext or TLS, TLS alone)."""
    protocol = os.environ.get("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol.endswith("SSL"):
        options["ssl_context"] = ssl.create_default_context()
    if protocol.startswith("SASL"):
        options |= {
            "sasl_mechanism": os.environ.get("KAFKA_SASL_MECHANISM", "PLAIN"),
            "sasl_plain_username": os.environ.get("KAFKA_SASL_USERNAME", ""),
            "sasl_plain_password": os.environ.get("KAFKA_SASL_PASSWORD", ""),
        }
    return options


def kafka_options(bootstrap: str) -> dict[str, Any]:
    """aiokafka arguments for ops tooling on `bootstrap`: the super user of a locked-down stack (one
    remembered, or the one `mlops up` runs with this process's settings), the security settings a
    tool run by `mlops` was handed, else plaintext."""
    security = _REMEMBERED.get(bootstrap)
    if security is None and bootstrap in _STACKS:
        security = _super_user_of(_STACKS[bootstrap])
    if security is None and os.environ.get("KAFKA_BOOTSTRAP_SERVERS") == bootstrap:
        # A tool run by `mlops` (it hands the bus and its principal down in the services' settings),
        # or one pointed at an external cluster with them.
        security = _from_environment()
    if security is None:
        settings = stack_settings()  # the profile `mlops up` started, too
        nodes = set(split_servers(settings.bootstrap_servers))
        if secured(settings) and set(split_servers(bootstrap)) <= nodes:
            security = _super_user_of(settings.state_dir)
    # As a list: FastStream hands a string on as one server, and a list item is never split.
    return {"bootstrap_servers": split_servers(bootstrap), **(security or {})}
