"""The features service's one error root. Bad records are dead-lettered at the edge (handlers.py)."""

from __future__ import annotations

from contracts.common import FieldError
from servicekit.errors import ServiceError


class FeaturesError(ServiceError):
    """Root of every error the features service raises on purpose."""

    code = "features_error"

    def __init__(self, message: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(message, errors)
        self.errors: list[FieldError] = errors or []


class NotAFeatureRow(FeaturesError):
    """A clean record lacks a feature column or holds a value of the wrong type: dead-lettered."""

    code = "not_a_feature_row"
