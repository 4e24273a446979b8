"""One error root for the ingest service, mapped to HTTP statuses only at the edge (routes.py).

Bad records are not errors here: they end as `RecordRejected` events. These are for the service's
own configuration and for requests the HTTP route refuses as a whole.
"""

from __future__ import annotations

from typing import Any

from servicekit.errors import ServiceError


class IngestError(ServiceError):
    """Root of every ingest error. `status` is the HTTP status the route maps it to."""

    code = "ingest_error"


class IngestConfigError(IngestError):
    """The dataset schema, PII policy or NLP model is missing or invalid."""


class BatchTooLarge(IngestError):
    """An HTTP batch has too many records or too many bytes."""

    status = 413


class BadBatch(IngestError):
    """An HTTP body that is not a JSON array."""

    status = 400


class RecordsRefused(IngestError):
    """An HTTP batch with at least one invalid record: nothing of it was appended. `records` lists
    each refused record by index, with its rejection code and per-field errors."""

    status = 422

    def __init__(self, message: str, records: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.records = records


class AppendFailed(IngestError):
    """Kafka refused or lost part of a valid HTTP batch: `records` says, per record, which landed.
    Not the client's fault (503): resending the whole batch is safe, a record that landed twice is
    rejected as `duplicate_record`."""

    status = 503

    def __init__(self, message: str, records: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.records = records
