"""POST /records: a batch of records over HTTP, for producers who prefer it to Kafka (producer role).

Records are appended to the raw topic (acknowledged by Kafka before the 202) and then cleaned or
rejected like any other producer's; the response says where each landed, the event id of its outcome
and the outcome validation predicts. Refusals of the whole batch are 4xx with a clear reason.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import JSONResponse

from servicekit.auth import Principal, Role, require_roles
from services.ingest.errors import BadBatch, BatchTooLarge, IngestError
from services.ingest.handlers import IngestHandler
from services.ingest.settings import IngestSettings

router = APIRouter(tags=["ingest"])


@router.post(
    "/records",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Submit a JSON array of records (producer role)",
    responses={400: {"description": "not a JSON array"}, 413: {"description": "batch too large"}},
)
async def post_records(
    request: Request, principal: Annotated[Principal, Depends(require_roles(Role.PRODUCER))]
) -> JSONResponse:
    settings: IngestSettings = request.app.state.settings
    handler: IngestHandler = request.app.state.handler
    try:
        items = await _read_batch(request, settings)
        entity_key = handler.schema.entity_key
        values = [msgspec.json.encode(item) for item in items]
        keys = [_key(item, entity_key) for item in items]
        receipts = await handler.submit(values, keys)
    except IngestError as err:
        return JSONResponse({"detail": err.message}, status_code=err.status)
    return JSONResponse({"accepted": len(receipts), "records": receipts}, status_code=202)


async def _read_batch(request: Request, settings: IngestSettings) -> list[Any]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > settings.http_max_body_bytes:
        raise BatchTooLarge(f"body larger than {settings.http_max_body_bytes} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > settings.http_max_body_bytes:
            raise BatchTooLarge(f"body larger than {settings.http_max_body_bytes} bytes")
    try:
        items = msgspec.json.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        raise BadBatch("body is not valid JSON (NaN and Infinity are not JSON)") from None
    if not isinstance(items, list):
        raise BadBatch("body must be a JSON array of records")
    if not items:
        raise BadBatch("the batch is empty")
    if len(items) > settings.http_max_records:
        raise BatchTooLarge(f"{len(items)} records; at most {settings.http_max_records} per request")
    return items


def _key(item: Any, entity_key: str) -> bytes | None:
    value = item.get(entity_key) if isinstance(item, dict) else None
    return value.encode() if isinstance(value, str) and 0 < len(value) <= 256 else None
