"""One service's HTTP API as seen by one key: JSON in and out, the platform's errors as `MlopsError`,
and bounded retries with exponential backoff (tenacity) where asking again is safe.

What is retried: a GET (idempotent) whose connection failed, was reset or closed early
(`httpx.ConnectError`, `ReadError`, `WriteError`, `RemoteProtocolError`); a POST only when the
connection was never made (`ConnectError`: nothing was sent, so nothing can happen twice). Never an
answer: a 4xx is the caller's to fix, and a 5xx is raised at once (`MlopsError.retryable` says
whether asking later may help) so a caller's own loop decides how long to wait.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from mlops_client.errors import MlopsError

IDEMPOTENT_FAILURES: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
)
NOT_SENT: tuple[type[httpx.TransportError], ...] = (httpx.ConnectError,)


class Service:
    """An HTTP client of one service holding one API key (sent as `X-API-Key`).

    `attempts` bounds the tries of a retried call (1: no retry); the waits grow from `backoff_s`
    (doubling, at most 5 s). `transport` replaces the network, e.g. `httpx.MockTransport` in tests.
    """

    def __init__(
        self,
        base_url: str,
        key: str,
        *,
        timeout_s: float = 60.0,
        attempts: int = 4,
        backoff_s: float = 0.25,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.attempts, self.backoff_s = attempts, backoff_s
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"X-API-Key": key, "Accept": "application/json"},
            timeout=timeout_s,
            transport=transport,
        )

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET `path` and return its JSON; retried on connection failures."""
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        return self._call("GET", path, IDEMPOTENT_FAILURES, params=clean)

    def post(self, path: str, body: Any = None) -> Any:
        """POST `body` as JSON (nothing: an empty body) and return the answer's JSON."""
        return self._call("POST", path, NOT_SENT, **({} if body is None else {"json": body}))

    def ready(self) -> bool:
        """Whether the service answers its open `/ready` probe with 200 (no key needed, no retry)."""
        try:
            return self._http.get("/ready").status_code == 200
        except httpx.TransportError:
            return False

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Service({self.base_url!r})"

    def _call(self, method: str, path: str, retry_on: tuple[type[Exception], ...], **kwargs: Any) -> Any:
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.backoff_s, max=5.0),
            retry=retry_if_exception_type(retry_on),
            reraise=True,
        )
        try:
            response = retrying(self._http.request, method, path, **kwargs)
        except httpx.TransportError as error:
            raise MlopsError.unreachable(error) from error
        if response.is_error:
            raise MlopsError.from_response(response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()
