"""One error root for the serving service, mapped to HTTP statuses only at the edge (app.py)."""

from __future__ import annotations

from servicekit.errors import ServiceError


class ServingError(ServiceError):
    """Root of every serving error. `status` is the HTTP status the edge maps it to."""

    code = "serving_error"


class NoChampion(ServingError):
    """No model is loaded yet (none promoted, or the first load failed)."""

    status = 503
    code = "no_champion"


class UnknownEntity(ServingError):
    """The online store has no features for the requested entity."""

    status = 404
    code = "unknown_entity"


class UnknownPrediction(ServingError):
    """A label names a prediction this service did not make (or no longer remembers)."""

    status = 404
    code = "unknown_prediction"


class LabelConflict(ServingError):
    """A label contradicts its prediction (another entity) or an earlier, different label."""

    status = 409
    code = "label_conflict"


class InvalidFeatures(ServingError):
    """Feature values missing, unknown, of the wrong type, outside the training profile, or not
    scorable by the model."""

    status = 422
    code = "invalid_features"


class BatchTooLarge(ServingError):
    """Too many instances, or too many bytes, in one request."""

    status = 413
    code = "too_large"


class DependencyUnavailable(ServingError):
    """The feature store or Kafka failed; the request may be retried."""

    status = 503
    code = "dependency_unavailable"


class ModelLoadError(ServingError):
    """A model version could not be loaded or breaks the model contract (never reaches a client)."""


class BadBatchInput(ServingError):
    """A batch input the model cannot score: unreadable, missing columns, wrong types, no rows."""

    status = 422
    code = "invalid_input"


class UnsupportedMediaType(ServingError):
    """A batch body that is neither Parquet, CSV nor a JSON time range."""

    status = 415
    code = "unsupported_media_type"


class UnknownModelVersion(ServingError):
    """A batch asked for a model version the registry cannot give."""

    status = 404
    code = "unknown_model_version"


class UnknownBatchJob(ServingError):
    """No batch job by that id (never started here, or its files were removed)."""

    status = 404
    code = "unknown_job"


class BatchNotDone(ServingError):
    """The batch job's output was asked for before the job finished, or after it failed."""

    status = 409
    code = "job_not_done"


class BatchBusy(ServingError):
    """As many batch jobs as allowed are running; the caller retries later."""

    status = 429
    code = "busy"
