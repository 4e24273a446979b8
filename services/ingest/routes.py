"""POST /records: a batch of records over HTTP, for producers who prefer it to Kafka (producer role).

All or nothing per request. The body is split into its records without re-encoding them; every
record is validated (size against `max_record_bytes`, which the settings keep under the broker's
message limit, UTF-8, JSON, depth, schema) before any is appended. One invalid record refuses the
whole request with 422 and a reason per refused record; nothing is appended. A valid request is
appended to the raw topic (acknowledged by Kafka before the 202) and then cleaned like any other
producer's records; the response says where each landed, the event id of its outcome and the outcome
validation predicts (`duplicate_record` for an identical resend). Bad input never answers 5xx; only
Kafka itself failing does (503, saying per record which landed).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Depends, FastAPI, Request, status
from fastapi.responses import JSONResponse

from servicekit.auth import Principal, Role, require_roles
from servicekit.bodies import read_limited
from servicekit.errors import error_responses
from services.ingest.domain.json_schema import batch_json_schema
from services.ingest.domain.schema import DatasetSchema
from services.ingest.errors import AppendFailed, BadBatch, BatchTooLarge, IngestError, RecordsRefused
from services.ingest.handlers import IngestHandler
from services.ingest.settings import IngestSettings

router = APIRouter(tags=["ingest"])
_split = msgspec.json.Decoder(list[msgspec.Raw]).decode  # each record's own bytes, as sent


@router.post(
    "/records",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Submit a JSON array of records (producer role); all or nothing",
    responses=error_responses(
        400,
        413,
        422,
        503,
        s400="the body is not a JSON array of records",
        s413="too many records or bytes",
        s422="at least one invalid record (each listed with its reason); none appended",
        s503="Kafka failed part-way; each record says whether it landed",
    ),
)
async def post_records(
    request: Request, principal: Annotated[Principal, Depends(require_roles(Role.PRODUCER))]
) -> JSONResponse:
    settings: IngestSettings = request.app.state.settings
    handler: IngestHandler = request.app.state.handler
    try:
        values = await _read_batch(request, settings)
        receipts = await handler.submit(values)
    except (RecordsRefused, AppendFailed) as err:
        body = {"detail": err.message, "code": err.code, "records": err.records}
        return JSONResponse(body, status_code=err.status)
    except IngestError as err:
        return JSONResponse({"detail": err.message, "code": err.code}, status_code=err.status)
    return JSONResponse({"accepted": len(receipts), "records": receipts}, status_code=202)


def document_body(app: FastAPI, schema: DatasetSchema, settings: IngestSettings) -> None:
    """The body is read raw (no model), so its OpenAPI schema is derived from the dataset schema and
    the settings' limits (per app: tests build apps with other limits): the document declares what
    the validator enforces."""
    body = batch_json_schema(schema, settings.max_record_bytes, settings.http_max_records)
    body["description"] = f"At most {settings.http_max_body_bytes} bytes in all."
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            document["paths"]["/records"]["post"]["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": body}},
            }
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]


async def _read_batch(request: Request, settings: IngestSettings) -> list[bytes]:
    body = await read_limited(request, settings.http_max_body_bytes, BatchTooLarge)
    try:
        items: list[Any] = _split(body)
    except RecursionError:
        raise BadBatch("body is nested too deeply") from None
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, ValueError):
        raise BadBatch("body must be a JSON array of records (NaN and Infinity are not JSON)") from None
    if not items:
        raise BadBatch("the batch is empty")
    if len(items) > settings.http_max_records:
        raise BatchTooLarge(f"{len(items)} records; at most {settings.http_max_records} per request")
    return [bytes(item) for item in items]
