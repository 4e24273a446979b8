"""One error root for the explain service, mapped to HTTP statuses only at the edge (app.py)."""

from __future__ import annotations

from servicekit.errors import ServiceError


class ExplainError(ServiceError):
    """Root of every explain error. `status` is the HTTP status the edge maps it to."""

    code = "explain_error"


class UnknownPrediction(ExplainError):
    """No prediction with that id was seen on predictions.made (or it was dropped as too old)."""

    status = 404


class ModelVersionGone(ExplainError):
    """The model version that made the prediction is no longer in the registry."""

    status = 410


class NoChampion(ExplainError):
    """A raw-value request named no version and no champion exists yet."""

    status = 404


class InvalidRequest(ExplainError):
    """Features missing, unknown or of the wrong type; unknown method; neither id nor features."""

    status = 422


class NotAllowed(ExplainError):
    """The caller's role may not explain this."""

    status = 403


class Busy(ExplainError):
    """Too many explanations running; try again."""

    status = 503


class ExplanationTimeout(ExplainError):
    """The explanation did not finish in time (it is abandoned; nothing is published)."""

    status = 504


class ModelLoadError(ExplainError):
    """A model version could not be loaded or breaks the model contract."""

    status = 502
