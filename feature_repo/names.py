"""Names of the loan-application features, without importing Feast (which costs seconds).

They match the ingest dataset schema (services/ingest/schemas/loan_applications.yaml): a clean
record's fields become feature columns unchanged, so no mapping can drift between the two.
"""

from __future__ import annotations

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


def feature_refs() -> list[str]:
    """Feast references of every feature, for online and historical reads."""
    return [f"{FEATURE_VIEW}:{name}" for name in FEATURES]
