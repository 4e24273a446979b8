"""A planted-PII corpus and the recall measure used by the privacy test and docs/ingest.md.

Each planted record carries known PII (names, e-mails, phones, card numbers, SSNs) in its structured
fields AND in free text: some notes mention the applicant (the record's own values), others mention a
third person whose values appear nowhere else (only NLP analysis can find those).
Recall of a type = planted values of that type absent from the output / planted values of that type.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from faker import Faker

from services.ingest.demo_data import ApplicationStream

TEXT_TEMPLATES = (
    "Spoke with {name} today, reachable at {phone} or {email}.",
    "Applicant {name} asked us to charge card {card}; SSN on file is {ssn}.",
    "Please call {name} back on {phone} before Friday.",
    "Documents came from {email}; the SSN given was {ssn}.",
    "Met {name} at the branch. Card used for the fee: {card}.",
    "Guarantor is {name} ({phone}), her e-mail is {email}.",
)


@dataclass
class PlantedRecord:
    record: dict[str, Any]
    structured: dict[str, str] = field(default_factory=dict)  # entity type -> value
    free_text: list[tuple[str, str]] = field(default_factory=list)  # (entity type, value)
    third_party: bool = False


def planted_corpus(n: int = 200, seed: int = 11) -> list[PlantedRecord]:
    rng = random.Random(seed)
    fake = Faker("en_US")
    fake.seed_instance(seed)
    apps = ApplicationStream(seed=seed, id_prefix="planted").take(n)
    corpus = []
    for i, app in enumerate(apps):
        record = dict(app.record)
        values = {
            "PERSON": fake.name(),
            "EMAIL_ADDRESS": fake.email(),
            "PHONE_NUMBER": fake.phone_number(),
            "CREDIT_CARD": fake.credit_card_number(),
            "US_SSN": fake.ssn(),
        }
        record.update(
            applicant_name=values["PERSON"],
            email=values["EMAIL_ADDRESS"],
            phone=values["PHONE_NUMBER"],
            card_number=values["CREDIT_CARD"],
            ssn=values["US_SSN"],
        )
        third_party = i % 2 == 1  # odd rows talk about somebody else: values found only by analysis
        mention = dict(values)
        if third_party:
            mention = {
                "PERSON": fake.name(),
                "EMAIL_ADDRESS": fake.email(),
                "PHONE_NUMBER": fake.phone_number(),
                "CREDIT_CARD": fake.credit_card_number(),
                "US_SSN": fake.ssn(),
            }
        template = rng.choice(TEXT_TEMPLATES)
        record["notes"] = template.format(
            name=mention["PERSON"],
            phone=mention["PHONE_NUMBER"],
            email=mention["EMAIL_ADDRESS"],
            card=mention["CREDIT_CARD"],
            ssn=mention["US_SSN"],
        )
        placeholders = {
            "PERSON": "{name}",
            "PHONE_NUMBER": "{phone}",
            "EMAIL_ADDRESS": "{email}",
            "CREDIT_CARD": "{card}",
            "US_SSN": "{ssn}",
        }
        in_text = [(t, mention[t]) for t, ph in placeholders.items() if ph in template]
        corpus.append(PlantedRecord(record, values, in_text, third_party))
    return corpus


@dataclass
class Recall:
    found: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    planted: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    leaks: list[tuple[str, str]] = field(default_factory=list)  # (kind, entity type) of every leak

    def add(self, kind: str, entity: str, value: str, outputs: Iterable[str]) -> None:
        self.planted[f"{kind}:{entity}"] += 1
        if any(value in text for text in outputs):
            self.leaks.append((kind, entity))
        else:
            self.found[f"{kind}:{entity}"] += 1

    def table(self) -> dict[str, float]:
        return {key: self.found[key] / count for key, count in sorted(self.planted.items())}


def measure(corpus: list[PlantedRecord], outputs: list[str]) -> Recall:
    """`outputs[i]` is everything published for `corpus[i]` (clean or rejected event, as text)."""
    recall = Recall()
    for planted, output in zip(corpus, outputs, strict=True):
        for entity, value in planted.structured.items():
            recall.add("structured", entity, value, [output])
        kind = "text_third_party" if planted.third_party else "text_own"
        for entity, value in planted.free_text:
            recall.add(kind, entity, value, [output])
    return recall
