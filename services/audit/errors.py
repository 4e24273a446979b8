"""The audit service's one error root; the kit maps its `status` to HTTP (servicekit/errors.py)."""

from __future__ import annotations

from servicekit.errors import ServiceError


class AuditError(ServiceError):
    """Base of every error the audit service raises on purpose."""

    code = "audit_error"


class BadQuery(AuditError):
    """The query is well-formed HTTP but asks for something impossible (e.g. since after until)."""

    status = 422


class NotFound(AuditError):
    """What the request names is not recorded (e.g. the prediction of a lineage query): the platform's
    404 `not_found`, as the kit's own `NotFound` answers."""

    status = 404
    code = "not_found"
