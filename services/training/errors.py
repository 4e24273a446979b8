"""The training service's one error root, mapped to HTTP statuses (routes.py) or to ModelRejected."""

from __future__ import annotations

from servicekit.errors import ServiceError


class TrainingError(ServiceError):
    """Root of every error the training service raises on purpose. `status` is the HTTP mapping."""

    code = "training_error"


class PolicyError(TrainingError):
    """The gate policy file is missing or invalid."""


class Refused(TrainingError):
    """Training cannot run on what there is (too few labels, one class only...): a ModelRejected."""

    status = 422


class NoRunYet(TrainingError):
    status = 404


class RunNotFinished(TrainingError):
    """No outcome for that request id: unknown, or its run has not finished yet."""

    status = 404
    code = "run_not_finished"


class UnknownModel(TrainingError):
    """The route names a model this service does not train."""

    status = 404
    code = "unknown_model"


class UnknownVersion(TrainingError):
    """The registry has no such version of the model."""

    status = 404
    code = "unknown_version"


class ChampionMoveRefused(TrainingError):
    """A rollback (or canary) the champion history does not allow; `code` says which rule refused it."""

    status = 409
    code = "champion_move_refused"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
