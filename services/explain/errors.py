"""One error root for the explain service, mapped to HTTP statuses only at the edge (app.py)."""

from __future__ import annotations

from servicekit.errors import ServiceError


class ExplainError(ServiceError):
    """Root of every explain error. `status` is the HTTP status the edge maps it to."""

    code = "explain_error"


class UnknownPrediction(ExplainError):
    """No prediction with that id was seen on predictions.made (or it was dropped as too old)."""

    status = 404
    code = "unknown_prediction"


class ModelVersionGone(ExplainError):
    """The model version that made the prediction is no longer in the registry."""

    status = 410
    code = "model_version_gone"


class UnknownModelVersion(ExplainError):
    """A raw-value request named a version the registry never had (or no longer has): a 404, as
    for any resource named by the request. (A prediction's own version that is gone is a 410.)"""

    status = 404
    code = "unknown_model_version"


class NoChampion(ExplainError):
    """A raw-value request named no version and no champion exists yet."""

    status = 404
    code = "no_champion"


class InvalidRequest(ExplainError):
    """Features missing, unknown or of the wrong type; unknown method; neither id nor features."""

    status = 422
    code = "invalid_request"


class NotAllowed(ExplainError):
    """The caller's role may not explain this."""

    status = 403
    code = "forbidden"


class Busy(ExplainError):
    """Too many explanations running; try again."""

    status = 503
    code = "busy"


class ExplanationTimeout(ExplainError):
    """The explanation did not finish in time (it is abandoned; nothing is published)."""

    status = 504
    code = "explanation_timeout"


class ModelLoadError(ExplainError):
    """A model version could not be loaded or breaks the model contract."""

    status = 502
    code = "model_load_error"
