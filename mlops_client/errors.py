"""The client's one exception: whatever refused a call, `MlopsError` says so with the platform's own
error body (`servicekit.errors.ErrorBody`: `detail`, `code`, `errors`, `error_id`) and the status."""

from __future__ import annotations

from typing import Any

import httpx

RETRYABLE_STATUSES = frozenset({502, 503, 504})


class MlopsError(Exception):
    """A call the platform refused (4xx), failed (5xx), or that never reached it (`status` None,
    `code` "unreachable", the transport error as `__cause__`).

    `code` is the platform's stable name for the error (`forbidden`, `not_found`, `invalid_request`,
    ...), `detail` its sentence for a person, `errors` the per-field or per-record reasons if any.
    """

    def __init__(
        self,
        status: int | None,
        code: str,
        detail: str,
        *,
        errors: list[Any] | None = None,
        error_id: str | None = None,
        method: str = "",
        url: str = "",
    ) -> None:
        self.status, self.code, self.detail = status, code, detail
        self.errors, self.error_id = errors, error_id
        self.method, self.url = method, url
        where = f" ({method} {url})" if method else ""
        super().__init__(f"{status or 'no answer'} {code}: {detail}{where}")

    @property
    def retryable(self) -> bool:
        """A busy or unavailable dependency, or no answer at all: worth asking again later."""
        return self.status is None or self.status in RETRYABLE_STATUSES

    @classmethod
    def from_response(cls, response: httpx.Response) -> MlopsError:
        """The error body of a 4xx/5xx; a body that is not the platform's shape still gives an error."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {}
        detail = body.get("detail")
        errors = body.get("errors") or body.get("records")  # POST /records lists reasons per record
        return cls(
            response.status_code,
            str(body.get("code") or f"http_{response.status_code}"),
            detail if isinstance(detail, str) else (response.reason_phrase or response.text[:200]),
            errors=errors if isinstance(errors, list) else None,
            error_id=body.get("error_id"),
            method=response.request.method,
            url=str(response.request.url),
        )

    @classmethod
    def unreachable(cls, error: httpx.TransportError) -> MlopsError:
        request = error.request if _has_request(error) else None
        return cls(
            None,
            "unreachable",
            f"{type(error).__name__}: {error}",
            method=request.method if request else "",
            url=str(request.url) if request else "",
        )


def _has_request(error: httpx.TransportError) -> bool:
    try:
        error.request  # noqa: B018  # httpx raises RuntimeError when the error carries no request
    except RuntimeError:
        return False
    return True
