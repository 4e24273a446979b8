"""A planted-PII corpus for loan-application notes, harder than the demo's: generated with a fixed seed
(Faker values in many locales, templates of varied sentence shapes), with varied casing and formats,
plus PII-free control notes that measure precision.

Each planted value knows its `fragments`: the parts whose presence in an output means a leak (each
part of a name, the digits of a number, the street line of an address), compared without case and,
for numbers, without separators. So "Mr <PERSON> Smith" or "555-<PHONE_NUMBER>" count as leaks.

PERSON values come from Faker's name lists, which the ingest name gazetteer also uses: its figure is
optimistic for names outside those lists. PERSON_UNSEEN plants real names from locales the gazetteer
does not load (Lithuanian, Latvian, Croatian, Slovak, Slovene, Estonian, Icelandic, Irish, Zulu,
Yoruba, Indonesian): its figure is the one for names the lists do not know.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from faker import Faker

from workbench.demo_data import ApplicationStream

TYPES = (
    "PERSON", "PERSON_UNSEEN", "EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "CREDIT_CARD", "IBAN_CODE",
    "STREET_ADDRESS", "DATE_OF_BIRTH",
)  # fmt: skip
LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pl_PL", "sv_SE", "pt_BR")
# Latin-script locales whose names services/ingest/adapters/names.py does NOT load: PERSON_UNSEEN.
HELD_OUT_LOCALES = (
    "lt_LT",
    "lv_LV",
    "hr_HR",
    "sk_SK",
    "sl_SI",
    "et_EE",
    "is_IS",
    "ga_IE",
    "zu_ZA",
    "yo_NG",
    "id_ID",
)
TEMPLATES: dict[str, tuple[str, ...]] = {
    "PERSON": (
        "spoke with {v} today", "{v} called about the loan", "co-signer is {v}", "guarantor: {v}",
        "letter signed by {v}", "per {v}, the income is stable", "her brother {v} will co-sign",
        "reference from {v} attached", "ask for {v} at the branch", "{v}'s employer confirmed the job",
        "met with {v} and her husband", "contact person - {v}", "documents handed in by {v}",
    ),
    "EMAIL_ADDRESS": (
        "reply to {v}", "e-mail: {v}", "documents came from {v}", "cc {v} on everything", "mail <{v}>",
        "(mail {v})", "her address is {v}, not the old one", "{v} bounced twice",
    ),
    "PHONE_NUMBER": (
        "call back at {v}", "phone {v}", "tel.: {v}", "mobile {v} (evenings)", "reachable on {v}",
        "{v} is her work number", "left a voicemail on {v}",
    ),
    "US_SSN": (
        "SSN {v}", "social security no. {v}", "ss# {v}", "her SSN is {v}", "ID number {v} on the form",
        "{v} (ssn)", "tax id {v} checked",
    ),
    "CREDIT_CARD": ("card {v}", "paid the fee with {v}", "cc: {v}", "card number {v} declined", "charge {v}"),
    "IBAN_CODE": (
        "IBAN {v}", "transfer to {v}", "account {v}", "salary paid into {v}", "refund goes to {v}",
    ),
    "STREET_ADDRESS": (
        "lives at {v}", "moved to {v} last year", "address: {v}", "send the letter to {v}",
        "property at {v}", "{v} is the home address",
    ),
    "DATE_OF_BIRTH": (
        "born {v}", "DOB {v}", "date of birth: {v}", "b. {v}", "birthday {v}", "{v} is her date of birth",
    ),
}  # fmt: skip
TEMPLATES["PERSON_UNSEEN"] = TEMPLATES["PERSON"]
CONTROL = (
    "Requested {n} EUR over {m} months.", "Income verified with the last {k} payslips.",
    "Rate of {r}% agreed; first instalment due next month.", "Employed for {y} years at the same company.",
    "Existing customer since {year}, no remarks.", "Reference number {ref} in the branch system.",
    "Called back twice, no answer.", "Collateral: car valued at {n} EUR.",
    "Property appraisal scheduled for next week.", "The applicant will send the documents in May.",
    "Mark the file as urgent and grant a grace period.", "Bill payment history is clean for {k} years.",
    "Asked to lower the monthly rate to {n}.", "Two existing credits at this bank, both paid back duly.",
    "Savings account balance above {n} EUR.", "Wants to start repaying in June.",
    "Loan officer on holiday until Monday; file parked.", "Purpose: new car, {k} doors, {m} months.",
    "Branch 12 handles the case, desk {k}.", "No guarantor; unemployment insurance in place.",
    "Contract {contract} signed at the branch.", "Last instalment paid on {paid}.",
    "Grace period of {k} months granted; the rest is due in {m} months.",
)  # fmt: skip


@dataclass(frozen=True)
class Planted:
    entity: str
    value: str
    fragments: tuple[str, ...]
    start: int = -1  # where the value sits in its note (-1: a structured field)


@dataclass
class PlantedRecord:
    record: dict[str, Any]
    structured: list[Planted] = field(default_factory=list)
    free_text: list[Planted] = field(default_factory=list)
    control: bool = False  # notes hold no PII: every detection in them is a false positive


def ascii_fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def digits(value: str) -> str:
    return re.sub(r"\D", "", value)


class CorpusMaker:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.fakers = {loc: Faker(loc) for loc in LOCALES}
        for i, f in enumerate(self.fakers.values()):
            f.seed_instance(seed * 100 + i)
        self.us = self.fakers["en_US"]
        self.held_out = {loc: Faker(loc) for loc in HELD_OUT_LOCALES}
        for i, f in enumerate(self.held_out.values()):
            f.seed_instance(seed * 100 + 50 + i)

    def faker(self) -> Faker:
        return self.fakers[self.rng.choice(LOCALES)]

    def casing(self, value: str, lower: float = 0.25, upper: float = 0.2) -> str:
        roll = self.rng.random()
        return value.lower() if roll < lower else value.upper() if roll < lower + upper else value

    def person(self) -> Planted:
        f = self.faker()
        first, last = ascii_fold(f.first_name()), ascii_fold(f.last_name())
        shape = self.rng.random()
        if shape < 0.55:
            value = f"{first} {last}"
        elif shape < 0.65:
            value = f"{first} {self.rng.choice('ABCDEFGHJKLMNPRSTW')}. {last}"
        elif shape < 0.75:
            value, first = f"{last}, {first}", first
        elif shape < 0.9:
            value, first = f"{self.rng.choice(['Mr.', 'Mrs', 'Ms.', 'Dr.', 'mr', 'MRS.'])} {last}", ""
        else:
            value, last = first, ""
        return Planted("PERSON", self.casing(value), _name_parts(first, last))

    def person_unseen(self) -> Planted:
        """A real name from a locale whose names the ingest gazetteer does not load."""
        f = self.held_out[self.rng.choice(HELD_OUT_LOCALES)]
        first, last = ascii_fold(f.first_name()), ascii_fold(f.last_name())
        value = f"{first} {last}" if self.rng.random() < 0.8 else f"{last}, {first}"
        return Planted("PERSON_UNSEEN", self.casing(value), _name_parts(first, last))

    def email(self) -> Planted:
        f = self.faker()
        local = self.rng.choice([
            ascii_fold(f.first_name()).lower() + "." + ascii_fold(f.last_name()).lower().replace(" ", ""),
            ascii_fold(f.user_name()) + "+loans", ascii_fold(f.user_name()) + str(self.rng.randint(1, 99)),
            ascii_fold(f.first_name())[0].lower() + "_" + ascii_fold(f.last_name()).lower().replace(" ", "-"),
        ])  # fmt: skip
        domain = self.rng.choice([
            "example.com", "mail.example", "test.invalid", "bank.test", "art.museum", "web.xyz",
            "mail.eu.corp.example.co.uk", "[192.0.2.17]", "localhost", "photos.photography",
            "x.onion", "example.org", f.domain_name(),
        ])  # fmt: skip
        value = self.casing(f"{local}@{domain}", lower=0.1, upper=0.15)
        return Planted("EMAIL_ADDRESS", value, (value.lower(),))

    def phone(self) -> Planted:
        roll = self.rng.random()
        if roll < 0.45:
            value = self.us.phone_number()
        elif roll < 0.6:
            value = self.rng.choice(["", "+1", "1"]) + str(self.rng.randint(2002000000, 9899999999))
        else:
            value = self.faker().phone_number()
            if self.rng.random() < 0.3:
                value = ("+" if value.startswith("+") else "") + digits(value)
        core = digits(value.split("x")[0])[-7:]
        return Planted("PHONE_NUMBER", value, (core,))

    def ssn(self) -> Planted:
        area = self.rng.choice(
            [f"{self.rng.randint(1, 899):03d}", "000", "666", f"{self.rng.randint(900, 999)}"]
        )
        number = f"{area}{self.rng.randint(0, 99):02d}{self.rng.randint(0, 9999):04d}"
        sep = self.rng.choice(["-", "-", "", " ", "."])
        value = sep.join((number[:3], number[3:5], number[5:]))
        return Planted("US_SSN", value, (number,))

    def card(self) -> Planted:
        number = digits(self.us.credit_card_number())
        if self.rng.random() < 0.2:  # a typo: the checksum fails, the number is still somebody's
            number = number[:-1] + str((int(number[-1]) + 1) % 10)
        sep = self.rng.choice(["", " ", "-"])
        value = sep.join(number[i : i + 4] for i in range(0, len(number), 4))
        return Planted("CREDIT_CARD", value, (number,))

    def iban(self) -> Planted:
        compact = self.faker().iban()
        value = (
            " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
            if self.rng.random() < 0.5
            else compact
        )
        return Planted("IBAN_CODE", self.casing(value, lower=0.15, upper=0), (compact.lower(),))

    def address(self) -> Planted:
        roll = self.rng.random()
        if roll < 0.7:
            line = self.us.street_address()
            street = re.split(r" (?:Apt\.|Suite) ", line)[0]
            if self.rng.random() < 0.3:
                line += f", {self.us.city()}, {self.us.state_abbr()} {self.us.zipcode()}"
        elif roll < 0.85:
            line = self.fakers["en_GB"].street_address().replace("\n", ", ")
            street = line.split(", ")[-1]
        else:
            street = line = ascii_fold(self.fakers["de_DE"].street_address())
        return Planted("STREET_ADDRESS", self.casing(line, 0.2, 0.15), (street.lower(),))

    def dob(self) -> Planted:
        born = date(1940, 1, 1) + timedelta(days=self.rng.randint(0, 365 * 65))
        formats = (
            "%Y-%m-%d",
            "%m/%d/%Y",
            "%d.%m.%Y",
            "%d %B %Y",
            "%B %d, %Y",
            "%b %d %Y",
            "%d/%m/%Y",
            "%m-%d-%y",
        )
        value = self.casing(born.strftime(self.rng.choice(formats)), 0.2, 0.2)
        return Planted("DATE_OF_BIRTH", value, (value.lower(),))

    def makers(self) -> dict[str, Callable[[], Planted]]:
        return {
            "PERSON": self.person, "PERSON_UNSEEN": self.person_unseen, "EMAIL_ADDRESS": self.email,
            "PHONE_NUMBER": self.phone, "US_SSN": self.ssn, "CREDIT_CARD": self.card,
            "IBAN_CODE": self.iban, "STREET_ADDRESS": self.address, "DATE_OF_BIRTH": self.dob,
        }  # fmt: skip

    def note(self, values: list[Planted]) -> tuple[str, list[Planted]]:
        """Sentences joined with varied punctuation; the whole note shouted or lower-cased now and then."""
        parts, placed, at = [], [], 0
        for i, planted in enumerate(values):
            sentence = self.rng.choice(TEMPLATES[planted.entity])
            head, tail = sentence.split("{v}")
            if i == 0 or self.rng.random() < 0.5:
                head = head[:1].upper() + head[1:]
            joiner = "" if i == 0 else self.rng.choice([". ", "; ", " - ", "\n", ", also "])
            at += len(joiner) + len(head)
            placed.append(Planted(planted.entity, planted.value, planted.fragments, at))
            parts.append(joiner + head + planted.value + tail)
            at += len(planted.value) + len(tail)
        text = "".join(parts) + self.rng.choice([".", "", " !", "..."])
        roll = self.rng.random()
        text = text.lower() if roll < 0.1 else text.upper() if roll < 0.2 else text
        placed = [
            Planted(p.entity, text[p.start : p.start + len(p.value)], p.fragments, p.start) for p in placed
        ]
        return text, placed

    def control_note(self) -> str:
        rng = self.rng
        fill = {
            "n": rng.randint(500, 90000), "m": rng.choice([12, 24, 36, 48, 60]), "k": rng.randint(2, 5),
            "r": rng.randint(2, 12), "y": rng.randint(1, 30), "year": rng.randint(1990, 2025),
            "ref": rng.randint(10000, 999999), "contract": rng.randint(10_000_000, 99_999_999),
            "paid": f"2026-{rng.randint(1, 11):02d}-{rng.randint(1, 28):02d}",
        }  # fmt: skip
        text = " ".join(s.format(**fill) for s in rng.sample(CONTROL, rng.randint(1, 3)))
        roll = rng.random()
        return text.lower() if roll < 0.1 else text.upper() if roll < 0.2 else text


def _name_parts(*parts: str) -> tuple[str, ...]:
    return tuple(p.lower() for part in parts for p in re.split(r"[\s,-]+", part) if len(p) >= 3)


def planted_corpus(n: int = 1000, seed: int = 11, control_share: float = 0.25) -> list[PlantedRecord]:
    """`n` records: a `control_share` of them with PII-free notes, the others with 1-4 planted values in
    their notes (a fifth of them the applicant's own name, e-mail or SSN, in another casing or format
    than the structured field). Every record also carries structured PII."""
    maker = CorpusMaker(seed)
    makers = maker.makers()
    corpus = []
    for app in ApplicationStream(seed=seed, id_prefix=f"pii-{seed}").take(n):
        record = dict(app.record)
        own = {"PERSON": maker.person(), "EMAIL_ADDRESS": maker.email(), "PHONE_NUMBER": maker.phone(),
               "CREDIT_CARD": maker.card(), "US_SSN": maker.ssn()}  # fmt: skip
        record.update(applicant_name=own["PERSON"].value, email=own["EMAIL_ADDRESS"].value,
                      phone=own["PHONE_NUMBER"].value, card_number=own["CREDIT_CARD"].value,
                      ssn=own["US_SSN"].value)  # fmt: skip
        planted = PlantedRecord(record, structured=list(own.values()))
        if maker.rng.random() < control_share:
            record["notes"], planted.control = maker.control_note(), True
        else:
            kinds = maker.rng.sample(TYPES, maker.rng.randint(1, 4))
            values = [makers[kind]() for kind in kinds]
            if maker.rng.random() < 0.2:  # the applicant's own SSN without dashes, own name lower-cased
                values.append(Planted("US_SSN", own["US_SSN"].fragments[0], own["US_SSN"].fragments))
                values.append(Planted("PERSON", own["PERSON"].value.lower(), own["PERSON"].fragments))
            record["notes"], planted.free_text = maker.note(values)
        corpus.append(planted)
    return corpus
