"""The platform's one feature definition, shared by the features, training and serving services.

This is what "experimental-operational symmetry" rests on: the feature view that the features
service pushes to is the one training reads point-in-time from the offline store and serving reads
from the online store. Like `contracts/`, it is a shared definition, not a service: services import
it, never each other. The names load instantly; the Feast objects (which import Feast, seconds)
load on first use.

Importing this package also makes typeguard leave Feast's classes uninstrumented (quiet_typeguard),
which saves about 6 s of CPU in each process that goes on to import Feast: every first-party package
imports it first for that reason.
"""

from typing import Any

from feature_repo.names import (
    CATEGORICAL_FEATURES,
    ENTITY_KEY,
    EVENT_TIME,
    FEATURE_SERVICE,
    FEATURE_VIEW,
    FEATURES,
    FLOAT_FEATURES,
    NUMERIC_FEATURES,
    PUSH_SOURCE,
    feature_refs,
)
from feature_repo.quiet_typeguard import leave_feast_uninstrumented

leave_feast_uninstrumented()

_LAZY = {
    "APPLICATION": "feature_repo.definitions",
    "definitions": "feature_repo.definitions",
    "FeatureStoreSettings": "feature_repo.store",
    "open_store": "feature_repo.store",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'feature_repo' has no attribute {name!r}")


__all__ = [
    "APPLICATION",
    "CATEGORICAL_FEATURES",
    "ENTITY_KEY",
    "EVENT_TIME",
    "FEATURES",
    "FEATURE_SERVICE",
    "FEATURE_VIEW",
    "FLOAT_FEATURES",
    "NUMERIC_FEATURES",
    "PUSH_SOURCE",
    "FeatureStoreSettings",
    "definitions",
    "feature_refs",
    "open_store",
]
