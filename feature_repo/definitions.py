"""Feast definitions of the loan-application features (the German credit attributes).

Names match the ingest dataset schema (services/ingest/schemas/loan_applications.yaml): a clean
record's fields become feature columns unchanged, so no mapping can drift between the two.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from feast import Entity, FeatureService, FeatureView, Field, FileSource, PushSource
from feast.types import Float64, Int64, String
from feast.value_type import ValueType

ENTITY_KEY = "application_id"
EVENT_TIME = "applied_at"
FEATURE_VIEW = "loan_application_features"
PUSH_SOURCE = "loan_applications_push"
FEATURE_SERVICE = "credit_risk_v1"

NUMERIC_FEATURES: tuple[str, ...] = (
    "duration_in_month",
    "credit_amount",
    "installment_rate_in_percentage_of_disposable_income",
    "present_residence_since",
    "age_in_years",
    "number_of_existing_credits_at_this_bank",
    "number_of_people_being_liable_to_provide_maintenance_for",
)
CATEGORICAL_FEATURES: tuple[str, ...] = (
    "status_of_existing_checking_account",
    "credit_history",
    "purpose",
    "savings_account_and_bonds",
    "present_employment_since",
    "personal_status_and_sex",
    "other_debtors_or_guarantors",
    "property",
    "other_installment_plans",
    "housing",
    "job",
    "telephone",
    "foreign_worker",
)
FEATURES: tuple[str, ...] = NUMERIC_FEATURES + CATEGORICAL_FEATURES
FLOAT_FEATURES = frozenset({"credit_amount"})

APPLICATION = Entity(name="application", join_keys=[ENTITY_KEY], value_type=ValueType.STRING)


def definitions(offline_path: Path) -> list[Any]:
    """Everything `FeatureStore.apply` needs; `offline_path` is the Parquet file behind the push source."""
    batch_source = FileSource(
        name="loan_applications_offline",
        path=str(offline_path),
        timestamp_field=EVENT_TIME,
    )
    push_source = PushSource(name=PUSH_SOURCE, batch_source=batch_source)
    schema = [Field(name=f, dtype=Float64 if f in FLOAT_FEATURES else Int64) for f in NUMERIC_FEATURES]
    schema += [Field(name=f, dtype=String) for f in CATEGORICAL_FEATURES]
    view = FeatureView(
        name=FEATURE_VIEW,
        entities=[APPLICATION],
        ttl=timedelta(days=3650),
        schema=schema,
        source=push_source,
        online=True,
        description="Attributes of a loan application, as ingested (PII-free).",
    )
    service = FeatureService(name=FEATURE_SERVICE, features=[view])
    return [APPLICATION, push_source, view, service]


def feature_refs() -> list[str]:
    return [f"{FEATURE_VIEW}:{name}" for name in FEATURES]
