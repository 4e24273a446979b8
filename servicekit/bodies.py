"""Request bodies with a size limit, refused as early as possible: by the declared Content-Length
before anything is read, else while streaming, so an oversized body is never buffered whole."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request


async def read_limited(request: Request, limit: int, too_large: Callable[[str], Exception]) -> bytes:
    """The body of `request`; `too_large(message)` is raised once it is known to pass `limit` bytes
    (each service raises its own error, which its error root maps to 413)."""
    message = f"body larger than {limit} bytes"
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(message)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large(message)
    return bytes(body)
