"""One error root for every service, and its one mapping to HTTP.

A service's own root subclasses `ServiceError` and each of its errors sets `status` (the HTTP status
the edge answers with) and `code` (a stable name). The kit's app maps every `ServiceError` to
`{"detail": message, "code": code, "errors": [...]}` with its status, and anything else a route
raises to a 500 with an error id to find it in the log, never the exception's text (it may quote
the request). The consumer maps the same roots to dead letters: a `ServiceError` a handler raises
for one record is that record's reason.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """Root of every error a service raises on purpose."""

    status: int = 500
    code: str = "service_error"

    def __init__(self, message: str, errors: Sequence[Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors: list[Any] = list(errors or [])


async def service_error_response(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    if exc.status >= 500:
        log.warning("%s: %s", type(exc).__name__, exc.message)
    body: dict[str, Any] = {"detail": exc.message, "code": exc.code}
    if exc.errors:
        body["errors"] = [e.model_dump() if hasattr(e, "model_dump") else e for e in exc.errors]
    return JSONResponse(body, status_code=exc.status)


async def unexpected_error_response(_: Request, exc: Exception) -> JSONResponse:
    """A bug, not bad input: a well-formed 500 the client can quote, and the trace in the log."""
    error_id = uuid.uuid4().hex[:12]
    log.error("unexpected %s (error id %s)", type(exc).__name__, error_id, exc_info=exc)
    return JSONResponse(
        {"detail": "internal error", "code": "internal_error", "error_id": error_id}, status_code=500
    )


def install_error_mapping(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, service_error_response)
    app.add_exception_handler(Exception, unexpected_error_response)
