"""The cluster profile's PostgreSQL roles and databases (infra/postgres_local.py runs the server), and
the audit chain's schema, which `mlops up` migrates as its owner before the audit service starts.

- `postgres` (logged in as by `mlops up` only): the superuser.
- `audit_owner` (`mlops up` only): owns the `audit` database and the chain; migrates it.
- `audit_app` (the audit service): SELECT and INSERT on the chain, SELECT, INSERT and DELETE on the
  subject keys (erasure). Not the owner, so it cannot ALTER the table or disable its append-only
  triggers.
- `mlflow` (the MLflow tracking server): owns the `mlflow` database.

CONNECT is revoked from PUBLIC on every database, so each role reaches its own and no other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import create_engine, text

if TYPE_CHECKING:
    from infra.postgres_local import LocalPostgres

SUPERUSER = "postgres"
AUDIT_OWNER, AUDIT_APP, MLFLOW_ROLE = "audit_owner", "audit_app", "mlflow"
DATABASES = {"audit": AUDIT_OWNER, "mlflow": MLFLOW_ROLE}  # database -> owner
CONNECTS = {"audit": (AUDIT_OWNER, AUDIT_APP), "mlflow": (MLFLOW_ROLE,)}  # database -> who may connect


class PostgresError(RuntimeError):
    """The server could not be created, started or provisioned."""


def provision(server: LocalPostgres) -> None:
    """The platform's roles and databases, idempotently; passwords reset to the secrets file's."""
    known = server.passwords()
    engine = create_engine(server.url(SUPERUSER, "postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            # A failing statement is logged with its text by default; these carry passwords.
            conn.execute(text("SET log_min_error_statement = panic"))
            roles = set(conn.execute(text("SELECT rolname FROM pg_roles")).scalars())
            for role in (AUDIT_OWNER, AUDIT_APP, MLFLOW_ROLE):
                verb = "ALTER" if role in roles else "CREATE"
                # DDL takes no bound parameters; passwords() accepts only what token_urlsafe makes.
                conn.execute(text(f"{verb} ROLE {role} LOGIN PASSWORD '{known[role]}'"))
            present = set(conn.execute(text("SELECT datname FROM pg_database")).scalars())
            for database, owner in DATABASES.items():
                if database not in present:
                    conn.execute(text(f'CREATE DATABASE "{database}" OWNER {owner}'))
            for database in ("postgres", "template1", *DATABASES):
                conn.execute(text(f'REVOKE CONNECT ON DATABASE "{database}" FROM PUBLIC'))
            for database, roles_in in CONNECTS.items():
                for role in roles_in:
                    conn.execute(text(f'GRANT CONNECT ON DATABASE "{database}" TO {role}'))
            # Earlier versions made audit_app a member of audit_owner's grants; it is a login of its own now.
            conn.execute(text(f"REVOKE {AUDIT_APP} FROM {AUDIT_OWNER}"))
    except PostgresError:
        raise
    except Exception as err:
        raise PostgresError(
            f"could not provision PostgreSQL on port {server.port}: {_reason(server, err)}"
        ) from None
    finally:
        engine.dispose()


def migrate_audit(server: LocalPostgres) -> None:
    """The audit chain's schema, migrated as its owner, with audit_app granted SELECT and INSERT: the
    service, logged in as audit_app, then finds it at `head` and has nothing to create."""
    from services.audit.adapters.migrate import upgrade

    engine = create_engine(server.url(AUDIT_OWNER, "audit"))
    try:
        upgrade(engine, app_role=AUDIT_APP)
    except Exception as err:
        raise PostgresError(f"could not migrate the audit store: {_reason(server, err)}") from None
    finally:
        engine.dispose()


def _reason(server: LocalPostgres, err: Exception) -> str:
    # The driver's own message: SQLAlchemy's would quote the statement, password and all.
    reason = str(getattr(err, "orig", None) or type(err).__name__)
    if "password authentication failed" in reason:
        return (
            f"the superuser's password in {server.secrets_file} is not the one {server.data} was created "
            "with: restore that file, or stop the server and remove the folder to start afresh (its data "
            "is lost)"
        )
    return reason
