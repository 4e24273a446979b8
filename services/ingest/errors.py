"""One error root for the ingest service, mapped to HTTP statuses only at the edge (routes.py).

Bad records are not errors here: they end as `RecordRejected` events. These are for the service's
own configuration and for requests the HTTP route refuses as a whole.
"""

from __future__ import annotations


class IngestError(Exception):
    """Root of every ingest error. `status` is the HTTP status the route maps it to."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class IngestConfigError(IngestError):
    """The dataset schema, PII policy or NLP model is missing or invalid."""


class BatchTooLarge(IngestError):
    """An HTTP batch has too many records or too many bytes."""

    status = 413


class BadBatch(IngestError):
    """An HTTP body that is not a JSON array."""

    status = 400
