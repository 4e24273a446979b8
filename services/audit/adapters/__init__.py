"""The outside world of the audit service: the SQL store (SQLAlchemy) and its migrations (Alembic)."""
