"""The audit service's one error root, mapped to HTTP statuses at the edge (routes.py)."""

from __future__ import annotations


class AuditError(Exception):
    """Base of every error the audit service raises on purpose."""

    status_code = 500


class BadQuery(AuditError):
    """The query is well-formed HTTP but asks for something impossible (e.g. since after until)."""

    status_code = 422


class NotFound(AuditError):
    status_code = 404
