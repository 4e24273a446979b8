"""One error root for every service, and its one mapping to HTTP.

A service's own root subclasses `ServiceError` and each of its errors sets `status` (the HTTP status
the edge answers with) and `code` (a stable name). The kit's app maps every `ServiceError` to
`{"detail": message, "code": code, "errors": [...]}` with its status, and anything else a route
raises to a 500 with an error id to find it in the log, never the exception's text (it may quote
the request). The consumer maps the same roots to dead letters: a `ServiceError` a handler raises
for one record is that record's reason.

A library's own "no such thing" (an MLflow `RESOURCE_DOES_NOT_EXIST`, a Feast `...NotFoundException`)
is a missing resource, not a bug: `as_service_error` turns it into `NotFound` (404) here, once, so
no route has to catch it. The libraries are recognised by their exception types' names, so the kit
imports neither. `error_responses(...)` is what routes declare in their OpenAPI document: the same
`ErrorBody` shape for every status.

FastAPI's and Starlette's own answers (a missing key, a wrong role, an unknown path, a body that is
not JSON, a request that breaks the route's declared constraints) are given the same shape here too,
so a client reads one shape whatever refused it. A validation answer lists each failing field's
location, message and type, never its value (it may be personal).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servicekit.outages import unavailable_dependency

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """Root of every error a service raises on purpose."""

    status: int = 500
    code: str = "service_error"

    def __init__(self, message: str, errors: Sequence[Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors: list[Any] = list(errors or [])


class NotFound(ServiceError):
    """A resource the request names does not exist (a library's own "not found", mapped here)."""

    status = 404
    code = "not_found"


class ErrorBody(BaseModel):
    """The one shape of every error answer, whatever refused the request: the service, the kit's
    authentication, or FastAPI's own validation."""

    detail: str = Field(description="What went wrong, for a person.")
    code: str = Field(description="A stable name of the error, for a program.")
    errors: list[Any] | None = Field(
        None, description="Per field (`loc`, `msg`, `type`) or per record reasons, if any."
    )
    error_id: str | None = Field(None, description="Of a 500: find the trace in the log by it.")


_ERROR_MEANINGS = {
    400: "the body could not be read as JSON",
    401: "no API key, or an unknown one",
    403: "the key's role may not call this",
    404: "a resource the request names does not exist",
    409: "the request conflicts with the resource's state",
    410: "the resource existed and is gone",
    413: "too many items or bytes",
    422: "the request breaks the documented constraints",
    502: "a dependency answered with something unusable",
    503: "a dependency is unavailable or the service is busy; retry",
    504: "the work did not finish in time",
}


def error_responses(*statuses: int, **meanings: str) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each status with `ErrorBody` (and a description); 401 and 403 are
    always included (every route but /health and /ready takes a key). `meanings` overrides a
    description by status, e.g. `error_responses(404, s404="no such prediction")`."""
    chosen = sorted({401, 403, *statuses})
    return {
        status: {
            "model": ErrorBody,
            "description": meanings.get(f"s{status}", _ERROR_MEANINGS.get(status, "error")),
        }
        for status in chosen
    }


class Unavailable(ServiceError):
    """A dependency did not answer (servicekit/outages.py): retry later; nothing was changed."""

    status = 503
    code = "unavailable"


def as_service_error(exc: BaseException) -> ServiceError | None:
    """A library's "not found" as the kit's `NotFound`, a dependency that did not answer as
    `Unavailable`; None for anything else. By type name, so neither MLflow nor Feast is imported
    here; the library's message (it may quote the request) is not passed on."""
    if isinstance(exc, ServiceError):
        return exc
    dependency = unavailable_dependency(exc)
    if dependency is not None:
        return Unavailable(f"a dependency of this service ({dependency}) is unavailable; retry shortly")
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "MlflowException" in names and getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST":
        return NotFound("the requested resource does not exist in the model registry")
    if "FeastObjectNotFoundException" in names:
        return NotFound("the requested resource does not exist in the feature store")
    return None


async def service_error_response(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    if exc.status >= 500:
        log.warning("%s: %s", type(exc).__name__, exc.message)
    body: dict[str, Any] = {"detail": exc.message, "code": exc.code}
    if exc.errors:
        body["errors"] = [e.model_dump() if hasattr(e, "model_dump") else e for e in exc.errors]
    return JSONResponse(body, status_code=exc.status)


# Stable names for the statuses FastAPI and Starlette answer by themselves.
_HTTP_CODES = {
    400: "unreadable_body",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
}
_MAX_FIELDS_IN_DETAIL = 5


async def http_error_response(_: Request, exc: Exception) -> Response:
    """Starlette's `HTTPException` (authentication, unknown paths, unreadable bodies) in the one shape."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code in (204, 304):  # no body allowed
        return Response(status_code=exc.status_code, headers=exc.headers)
    body = {"detail": str(exc.detail), "code": _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


def invalid_request(errors: Sequence[Any], *, prefix: tuple[str, ...] = ()) -> JSONResponse:
    """422 naming each failing field (pydantic's error dicts), without the offending values."""
    fields = [
        {"loc": [*prefix, *error["loc"]], "msg": str(error["msg"]), "type": str(error["type"])}
        for error in errors
    ]
    named = "; ".join(
        f"{'.'.join(str(part) for part in field['loc'])}: {field['msg']}"
        for field in fields[:_MAX_FIELDS_IN_DETAIL]
    )
    more = len(fields) - _MAX_FIELDS_IN_DETAIL
    detail = f"invalid request: {named}" + (f" (and {more} more)" if more > 0 else "")
    return JSONResponse({"detail": detail, "code": "invalid_request", "errors": fields}, status_code=422)


async def validation_error_response(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return invalid_request(list(exc.errors()))


async def unexpected_error_response(_: Request, exc: Exception) -> JSONResponse:
    """A bug, not bad input: a well-formed 500 the client can quote, and the trace in the log."""
    error_id = uuid.uuid4().hex[:12]
    log.error("unexpected %s (error id %s)", type(exc).__name__, error_id, exc_info=exc)
    return JSONResponse(
        {"detail": "internal error", "code": "internal_error", "error_id": error_id}, status_code=500
    )


class LibraryErrors:
    """ASGI middleware: a library's "not found" that a route let through answers as `NotFound`.
    (A handler registered for `Exception` would answer too, but Starlette re-raises from there and
    the server logs a traceback for what is a client's mistake.)"""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as exc:
            mapped = None if isinstance(exc, ServiceError) else as_service_error(exc)
            if mapped is None or started:
                raise
            log.info("%s answered as %d", type(exc).__name__, mapped.status)  # its text may quote the request
            response = await service_error_response(Request(scope), mapped)
            await response(scope, receive, send)


def install_error_mapping(app: FastAPI) -> None:
    app.add_middleware(LibraryErrors)
    app.add_exception_handler(ServiceError, service_error_response)
    app.add_exception_handler(StarletteHTTPException, http_error_response)
    app.add_exception_handler(RequestValidationError, validation_error_response)
    app.add_exception_handler(Exception, unexpected_error_response)
