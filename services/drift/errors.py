"""The drift service's one error root, mapped to HTTP statuses in routes.py."""

from __future__ import annotations

from servicekit.errors import ServiceError


class DriftError(ServiceError):
    """Root of every error the drift service raises on purpose. `status` is the HTTP mapping."""

    code = "drift_error"


class UnknownMonitor(DriftError):
    status = 404


class UnknownReport(DriftError):
    status = 404


class NothingToCompare(DriftError):
    """A canary recommendation without a version named and none seen in the predictions."""

    status = 404
    code = "not_found"


class ReportPending(DriftError):
    """Asked for (e.g. by a drift event) and not made yet."""

    status = 404
