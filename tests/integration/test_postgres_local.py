"""The cluster profile's PostgreSQL, really started: SCRAM for every connection, each role confined to
its database, the audit service's session role unable to log in, and data that outlives a restart
and a SIGKILL."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, OperationalError

from infra.postgres_local import (
    AUDIT_APP,
    AUDIT_OWNER,
    MLFLOW_ROLE,
    SUPERUSER,
    LocalPostgres,
    PostgresError,
    unreachable_ancestor,
)
from infra.postgres_roles import migrate_audit
from infra.settings import InfraSettings
from tests.support_postgres import free_port, reachable_state_dir


@pytest.fixture(scope="module")
def server() -> Iterator[LocalPostgres]:
    state = reachable_state_dir()
    postgres = LocalPostgres(InfraSettings(state_dir=state, postgres_port=free_port(), profile="cluster"))  # type: ignore[call-arg]
    assert postgres.start() is True
    try:
        yield postgres
    finally:
        postgres.stop()
        shutil.rmtree(state, ignore_errors=True)


def scalar(url: str, sql: str) -> object:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar()
    finally:
        engine.dispose()


def other_url(server: LocalPostgres, role: str, password: str | None, database: str) -> str:
    return URL.create(
        "postgresql+psycopg", role, password, "127.0.0.1", server.port, database
    ).render_as_string(hide_password=False)


def test_each_role_reaches_its_own_database_with_its_password(server: LocalPostgres) -> None:
    assert scalar(server.url(AUDIT_OWNER, "audit"), "SELECT current_user") == AUDIT_OWNER
    assert scalar(server.url(MLFLOW_ROLE, "mlflow"), "SELECT current_user") == MLFLOW_ROLE
    owners = scalar(
        server.url(SUPERUSER, "postgres"),
        "SELECT string_agg(datname || ':' || pg_get_userbyid(datdba), ',' ORDER BY datname) FROM pg_database"
        " WHERE datname IN ('audit', 'mlflow')",
    )
    assert owners == "audit:audit_owner,mlflow:mlflow"


@pytest.mark.parametrize(
    ("role", "password", "database", "refusal"),
    [
        (AUDIT_OWNER, None, "audit", "no password supplied"),
        (AUDIT_OWNER, "guessed-Password-1", "audit", "password authentication failed"),
        (SUPERUSER, "postgres", "postgres", "password authentication failed"),
        (MLFLOW_ROLE, "own", "audit", "permission denied for database"),  # right password, wrong database
        (AUDIT_OWNER, "own", "mlflow", "permission denied for database"),
        (AUDIT_APP, "own", "mlflow", "permission denied for database"),
        (AUDIT_OWNER, "own", "postgres", "permission denied for database"),  # not even the default one
        (MLFLOW_ROLE, "own", "template1", "permission denied for database"),
    ],
)
def test_the_server_refuses_what_it_should(
    server: LocalPostgres, role: str, password: str | None, database: str, refusal: str
) -> None:
    if password == "own":
        password = server.passwords().get(role, "no-such-password")
    with pytest.raises(OperationalError) as refused:
        scalar(other_url(server, role, password, database), "SELECT 1")
    assert refusal in str(refused.value.orig)


def test_the_audit_services_login_reads_and_appends_to_the_chain_and_nothing_else(
    server: LocalPostgres,
) -> None:
    migrate_audit(server)  # as mlops up does, as the owner, before the service starts
    migrate_audit(server)  # ...on every start: idempotent
    service = server.url(AUDIT_APP, "audit")
    assert scalar(service, "SELECT count(*) FROM audit_events") == 0
    rights = scalar(
        service,
        "SELECT string_agg(p, ',' ORDER BY p) FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE',"
        " 'TRUNCATE']) AS p WHERE has_table_privilege('audit_events', p)",
    )
    assert rights == "INSERT,SELECT"
    for statement in (
        "ALTER TABLE audit_events DISABLE TRIGGER USER",  # only the owner may
        "SET ROLE audit_owner",  # not a member of the owner's role
        "DROP TABLE audit_events",
    ):
        with pytest.raises(DBAPIError, match=r"must be owner|permission denied"):
            scalar(service, statement)


def test_a_second_start_keeps_the_running_server_and_a_restart_keeps_the_data(server: LocalPostgres) -> None:
    owner = server.url(AUDIT_OWNER, "audit")
    engine = create_engine(owner)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS survives (n int)"))
        conn.execute(text("INSERT INTO survives VALUES (1)"))
    engine.dispose()
    pid = server.pid()
    assert server.start() is False and server.pid() == pid
    assert server.stop() is True and server.pid() is None
    assert server.start() is True
    assert scalar(owner, "SELECT count(*) FROM survives") == 1


def test_after_a_sigkill_it_starts_again_with_every_committed_row(server: LocalPostgres) -> None:
    owner = server.url(AUDIT_OWNER, "audit")
    engine = create_engine(owner)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS committed (n int)"))
        conn.execute(text("INSERT INTO committed SELECT generate_series(1, 1000)"))
    engine.dispose()
    pid = server.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(OperationalError):
        scalar(owner, "SELECT 1")
    assert server.start() is True  # a stale postmaster.pid is no obstacle
    assert scalar(owner, "SELECT count(*) FROM committed") == 1000


def test_lost_passwords_are_named_with_the_way_out_and_never_printed(server: LocalPostgres) -> None:
    kept = server.secrets_file.read_text()
    server.secrets_file.unlink()  # as if someone cleaned the secrets folder: new passwords are made
    try:
        with pytest.raises(PostgresError) as refused:
            server.start()  # it runs, but the superuser's new password is not the server's
        message = str(refused.value)
        assert (
            "restore that file, or stop the server and remove the folder" in message
            and str(server.data) in message
        )
        assert not any(password in message for password in server.passwords().values())
    finally:
        server.secrets_file.write_text(kept)
    assert server.start() is False  # the restored file works again


def test_a_state_folder_the_servers_os_user_cannot_enter_is_refused_with_the_way_out(tmp_path: Path) -> None:
    if os.geteuid() != 0:  # not root: the server runs as this user, who reaches its own folders
        assert unreachable_ancestor(tmp_path / "postgres", os.getuid(), os.getgid()) is None
        return
    base = reachable_state_dir()
    try:
        hidden = base / "hidden"
        hidden.mkdir(mode=0o700)
        postgres = LocalPostgres(InfraSettings(state_dir=hidden / "state", postgres_port=free_port()))  # type: ignore[call-arg]
        with pytest.raises(PostgresError, match=f"cannot enter {hidden}:.*MLOPS_STATE_DIR"):
            postgres.start()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_state_folder_others_may_only_enter_is_enough_for_the_server(tmp_path: Path) -> None:
    """0701: `postgres` enters it as "other"; so must initdb, which runs with postgres's groups, not
    root's (whose group bits here say no)."""
    state = reachable_state_dir()
    state.chmod(0o701)
    postgres = LocalPostgres(InfraSettings(state_dir=state, postgres_port=free_port(), profile="cluster"))  # type: ignore[call-arg]
    try:
        assert postgres.start() is True
        assert scalar(postgres.url(AUDIT_OWNER, "audit"), "SELECT current_user") == AUDIT_OWNER
    finally:
        postgres.stop()
        shutil.rmtree(state, ignore_errors=True)


def test_a_port_held_by_a_stranger_is_refused_by_name(tmp_path: Path, server: LocalPostgres) -> None:
    stranger = LocalPostgres(InfraSettings(state_dir=tmp_path, postgres_port=server.port, profile="cluster"))  # type: ignore[call-arg]
    with pytest.raises(PostgresError, match="MLOPS_POSTGRES_PORT"):
        stranger.start()
    assert not (tmp_path / "postgres" / "data").exists()
