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
