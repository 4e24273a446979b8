"""The cluster profile's state servers, as seen by the processes that use them: which service gets
which URL, where the passwords live and where they never go (argv)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from infra.mlflow_server import LocalMlflowServer, client_env, credentials
from infra.postgres_local import AUDIT_APP, LOGIN_ROLES, LocalPostgres
from infra.settings import InfraSettings
from infra.stores import launching, store_env, stores_environment
from infra.supervisor import Supervisor

TRACKING = {"MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"}
STORE_VARIABLES = (
    *sorted(TRACKING),
    "AUDIT_DATABASE_URL",
    "AUDIT_DATABASE_APP_ROLE",
    "MLOPS_FEAST_ONLINE_STORE",
)


def settings(tmp_path: Path, profile: str = "cluster") -> InfraSettings:
    return InfraSettings(
        state_dir=tmp_path,
        profile=profile,
        postgres_port=45432,
        mlflow_port=45500,
        redis_port=46380,
        kafka_bootstrap_servers=None,
    )  # type: ignore[arg-type]


def test_the_local_profile_keeps_its_state_in_files_and_needs_no_server(tmp_path: Path) -> None:
    assert store_env(settings(tmp_path, "local"), "audit") == {}
    assert not (tmp_path / "secrets" / "postgres.json").exists()


def test_only_the_audit_service_gets_the_audit_database_and_everyone_the_tracking_server(
    tmp_path: Path,
) -> None:
    stack = settings(tmp_path)
    audit = store_env(stack, "audit")
    url = make_url(audit["AUDIT_DATABASE_URL"])
    # As audit_app, which may read and append to the chain and nothing else; never as its owner.
    assert (url.username, url.host, url.port, url.database) == (AUDIT_APP, "127.0.0.1", 45432, "audit")
    assert url.password == LocalPostgres(stack).passwords()[AUDIT_APP]
    assert audit["AUDIT_DATABASE_APP_ROLE"] == AUDIT_APP
    for service in ("ingest", "drift", "explain"):
        env = store_env(stack, service)
        assert set(env) == TRACKING and env["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:45500", service
    for service in ("features", "serving", "training"):  # the services that open Feast's online store
        env = store_env(stack, service)
        assert set(env) == TRACKING | {"MLOPS_FEAST_ONLINE_STORE"}, service
        online = json.loads(env["MLOPS_FEAST_ONLINE_STORE"])
        assert online["type"] == "redis" and online["connection_string"].startswith("127.0.0.1:46380,")


def test_passwords_are_generated_once_per_role_and_only_the_owner_reads_them(tmp_path: Path) -> None:
    postgres = LocalPostgres(settings(tmp_path))
    first = postgres.passwords()
    assert set(first) == set(LOGIN_ROLES)
    assert len(set(first.values())) == len(LOGIN_ROLES)  # no two roles share one
    assert LocalPostgres(settings(tmp_path)).passwords() == first
    mode = stat.S_IMODE(postgres.secrets_file.stat().st_mode)
    assert mode == 0o600


def test_the_tracking_servers_database_password_is_in_its_environment_never_on_its_command_line(
    tmp_path: Path,
) -> None:
    stack = settings(tmp_path)
    server = LocalMlflowServer(stack)
    password = LocalPostgres(stack).passwords()["mlflow"]
    assert not any(password in part for part in server.command())
    assert password in server.server_env()["MLFLOW_BACKEND_STORE_URI"]
    assert "--host=127.0.0.1" in server.command()  # loopback only
    assert server.marker in server.command()
    # Nobody reads or writes without the platform's login, which is also in the environment only.
    login = credentials(stack.secrets_dir)
    assert "--app-name=basic-auth" in server.command()
    assert not any(login["password"] in part or login["flask_secret"] in part for part in server.command())
    env = server.server_env()
    assert (
        env["MLFLOW_AUTH_ADMIN_PASSWORD"]
        == login["password"]
        == client_env(stack)["MLFLOW_TRACKING_PASSWORD"]
    )
    auth = server.write_auth_settings()
    assert Path(env["MLFLOW_AUTH_CONFIG_PATH"]) == auth and stat.S_IMODE(auth.stat().st_mode) == 0o600
    assert (
        "default_permission = NO_PERMISSIONS" in auth.read_text()
        and login["password"] not in auth.read_text()
    )
    assert stat.S_IMODE((stack.secrets_dir / "mlflow.json").stat().st_mode) == 0o600


def test_every_process_up_starts_gets_its_own_stores_and_no_others_even_inside_a_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in STORE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    stack = settings(tmp_path)
    supervisor, keys = Supervisor(stack), tmp_path / "keys.json"
    # `mlops up` runs inside the command's stores_environment (the tooling's own settings), and
    # starts processes inside launching(): none of them inherits the tooling's variables.
    with stores_environment(stack), launching():
        audit = supervisor.service_env("audit", keys)
        serving = supervisor.service_env("serving-2", keys)
        ingest = supervisor.service_env("ingest", keys)
        server = LocalMlflowServer(stack).server_env()
        inherited = dict(os.environ)
    assert make_url(audit["AUDIT_DATABASE_URL"]).username == AUDIT_APP
    assert (
        serving["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:45500" and "MLOPS_FEAST_ONLINE_STORE" in serving
    )
    assert "AUDIT_DATABASE_URL" not in serving  # least privilege: serving never sees the audit store
    assert not {"AUDIT_DATABASE_URL", "MLOPS_FEAST_ONLINE_STORE"} & set(ingest)
    assert not {"AUDIT_DATABASE_URL", "MLOPS_FEAST_ONLINE_STORE"} & set(server)
    assert not set(STORE_VARIABLES) & set(inherited)  # what servers started with Popen inherit


def test_a_command_gets_the_servers_for_its_duration_only_and_an_explicit_choice_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (
        "MLFLOW_TRACKING_URI",
        "AUDIT_DATABASE_URL",
        "AUDIT_DATABASE_APP_ROLE",
        "MLOPS_FEAST_ONLINE_STORE",
    ):
        monkeypatch.delenv(name, raising=False)
    with stores_environment(settings(tmp_path)):
        assert os.environ["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:45500"
        assert os.environ["AUDIT_DATABASE_APP_ROLE"] == AUDIT_APP
    assert "MLFLOW_TRACKING_URI" not in os.environ and "AUDIT_DATABASE_URL" not in os.environ
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    with stores_environment(settings(tmp_path)):
        assert os.environ["MLFLOW_TRACKING_URI"] == "http://mlflow.example:5000"  # the caller's, kept
        assert make_url(os.environ["AUDIT_DATABASE_URL"]).port == 45432  # the rest still the stack's
    assert os.environ["MLFLOW_TRACKING_URI"] == "http://mlflow.example:5000"
    assert "AUDIT_DATABASE_URL" not in os.environ
