"""Apply the Alembic migrations under services/audit/migrations to a database, then (PostgreSQL) the
grants of the application role."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
TABLE = "audit_events"
SUBJECT_KEYS = "audit_subject_keys"


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "head", app_role: str | None = None) -> None:
    """Bring the schema (table, indexes, append-only guards) up to `revision`, and grant `app_role`
    what the service needs, in one transaction."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        if app_role and connection.dialect.name == "postgresql":
            grant_app_role(connection, app_role)


def grant_app_role(connection: Connection, role: str) -> None:
    """The application role may read and append, nothing else (idempotent; run by the table's owner).
    Skipped when the session already is that role: it cannot grant to itself, and has what it needs."""
    if connection.exec_driver_sql("SELECT current_user").scalar() == role:
        return
    quote = connection.dialect.identifier_preparer.quote
    who, schema = quote(role), quote(connection.exec_driver_sql("SELECT current_schema()").scalar() or "")
    for statement in (
        f"REVOKE ALL ON {TABLE} FROM PUBLIC",
        f"REVOKE ALL ON {TABLE} FROM {who}",
        f"GRANT SELECT, INSERT ON {TABLE} TO {who}",
        f"GRANT SELECT ON alembic_version TO {who}",  # so its own startup migration sees `head`
        # The subject keys are not the trail: erasing a subject deletes its key (crypto-shredding).
        f"REVOKE ALL ON {SUBJECT_KEYS} FROM PUBLIC",
        f"GRANT SELECT, INSERT, DELETE ON {SUBJECT_KEYS} TO {who}",
        f"GRANT USAGE ON SCHEMA {schema} TO {who}",
    ):
        connection.exec_driver_sql(statement)
