"""The platform's one feature definition, shared by the features, training and serving services.

This is what "experimental-operational symmetry" rests on: the feature view that the features
service pushes to is the one training reads point-in-time from the offline store and serving reads
from the online store. Like `contracts/`, it is a shared definition, not a service: services import
it, never each other.
"""

from feature_repo.definitions import (
    APPLICATION,
    CATEGORICAL_FEATURES,
    ENTITY_KEY,
    EVENT_TIME,
    FEATURE_SERVICE,
    FEATURE_VIEW,
    FEATURES,
    NUMERIC_FEATURES,
    PUSH_SOURCE,
    definitions,
    feature_refs,
)
from feature_repo.store import FeatureStoreSettings, open_store

__all__ = [
    "APPLICATION",
    "CATEGORICAL_FEATURES",
    "ENTITY_KEY",
    "EVENT_TIME",
    "FEATURES",
    "FEATURE_SERVICE",
    "FEATURE_VIEW",
    "NUMERIC_FEATURES",
    "PUSH_SOURCE",
    "FeatureStoreSettings",
    "definitions",
    "feature_refs",
    "open_store",
]
