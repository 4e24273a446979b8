"""Identifiers checked at the door. An identifier column (the entity key) travels everywhere: Feast,
training sets in MLflow, the audit trail, a 404 that echoes it. So a value that looks like PII never
passes through as it is. Per column, the dataset schema declares the rule (`identifier:`):

- `reject`: a value shaped like an SSN, a phone or card number, an e-mail address or a person's name
  dead-letters the record with the error code `identifier_looks_like_pii`; the value itself appears
  nowhere in the rejection (neither as entity id nor in the kept fields).
- `pseudonymise`: every value is replaced by `pid-` and 32 hex digits of HMAC-SHA256 under a key from
  the settings (`INGEST_ID_KEY` or `INGEST_ID_KEY_FILE`). Stable, so records of one entity still join;
  whoever sends labels must key them the same way.

Values that do not match the field's declared `pattern` are refused before this, as `pattern_mismatch`.
Pure: no I/O. Names come from outside (the adapter's name lists) as a set of folded words.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from typing import Any

from contracts.common import FieldError
from services.ingest.domain.privacy import SaltedHmac
from services.ingest.domain.schema import DatasetSchema, IdentifierRule
from services.ingest.domain.validation import Code, RecordValidator, Verdict

LOOKS_LIKE_PII = "identifier_looks_like_pii"
_NUMBER_ONLY = re.compile(r"\+?[\d\s\-.()/]+")
_SHAPES = (  # inside a longer identifier: "app-123-45-6789", "id_(555)123-4567", "x5551234567"
    ("US_SSN", re.compile(r"(?<!\d)\d{3}[-. _]\d{2}[-. _]\d{4}(?!\d)")),
    ("PHONE_NUMBER", re.compile(r"(?<!\d)\(?\d{3}\)?[-. _]?\d{3}[-. _]\d{4}(?!\d)")),
    ("CREDIT_CARD", re.compile(r"(?<!\d)\d{4}([- _])\d{4}\1\d{4}\1\d{1,7}(?!\d)")),
    ("US_SSN", re.compile(r"(?<!\d)\d{9}(?!\d)")),
    ("PHONE_OR_CARD_NUMBER", re.compile(r"\d{10,}")),
)
_WORDS = re.compile(r"[^\W\d_]+")


# One word, then up to 8 digits ("app-0000123"): no rule below can fire on it (at most one name word,
# fewer digits than any number shape). Checked first: the full checks cost 8 us, a third of the CPU of
# a structured record. tests/unit/test_ingest_identifiers.py compares both on generated ids.
_PLAIN_ID = re.compile(r"[A-Za-z]+[-_.:]?\d{1,8}")


def pii_shape(value: str, names: Collection[str] = ()) -> str | None:
    """The kind of PII `value` looks like, or None. Deliberately wary: an identifier has no reason to
    hold 9 digits in a row, an '@', or only letters. Ids such as `app-0000123` or `it-21-0000003` pass."""
    if _PLAIN_ID.fullmatch(value):
        return None
    return _full_check(value, names)


def _full_check(value: str, names: Collection[str]) -> str | None:
    if "@" in value:
        return "EMAIL_ADDRESS"
    digits = sum(c.isdigit() for c in value)
    if _NUMBER_ONLY.fullmatch(value) and digits >= 7:
        return (
            "US_SSN"
            if digits == 9
            else "CREDIT_CARD"
            if digits >= 12 and "+" not in value
            else "PHONE_NUMBER"
        )
    for kind, shape in _SHAPES:
        if shape.search(value):
            return kind
    words = [w.casefold() for w in _WORDS.findall(value)]
    if not digits and sum(map(len, words)) >= 2:
        return "PERSON"  # letters only: "john.smith", "SMITH", "Maria_Gonzalez"
    if sum(w in names for w in words if len(w) >= 3) >= 2:
        return "PERSON"  # "john-smith-42"
    return None


class Pseudonymiser:
    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("pseudonymising identifiers needs a key")
        self._hmac = SaltedHmac(key)

    def __call__(self, value: str) -> str:
        return "pid-" + self._hmac.hexdigest(value.encode("utf-8"))[:32]


class GuardedValidator(RecordValidator):
    """The record validator with the schema's identifier rules applied to every verdict, valid or not."""

    def __init__(
        self,
        schema: DatasetSchema,
        max_bytes: int,
        id_key: Callable[[], bytes],
        names: Collection[str] = (),
    ) -> None:
        """`id_key` is called once, and only when a column is pseudonymised."""
        super().__init__(schema, max_bytes)
        self.names = frozenset(names)
        self.rules = {n: f.identifier for n, f in schema.fields.items() if f.identifier is not None}
        wants_key = IdentifierRule.PSEUDONYMISE in self.rules.values()
        self.pseudonym = Pseudonymiser(id_key()) if wants_key else None

    def check_object(self, obj: dict[str, Any], *args: Any, **kwargs: Any) -> Verdict:
        verdict = super().check_object(obj, *args, **kwargs)
        for name, rule in self.rules.items():
            record = verdict.record
            value = record.get(name) if record is not None else None
            if record is None or not isinstance(value, str):
                continue
            if rule is IdentifierRule.PSEUDONYMISE and self.pseudonym is not None:
                record[name] = self.pseudonym(value)
                if name == self.schema.entity_key:
                    verdict.entity_id = record[name]
            elif rule is IdentifierRule.REJECT and (kind := pii_shape(value, self.names)):
                self._refuse(verdict, name, kind)
        return verdict

    def _refuse(self, verdict: Verdict, name: str, kind: str) -> None:
        record = verdict.record or {}
        record.pop(name, None)
        for text in self.schema.text_fields:  # rejected records never carry free text
            record.pop(text, None)
        if name == self.schema.entity_key:
            verdict.entity_id = None
        message = f"looks like {kind}; the schema's identifier rule rejects it"
        verdict.errors.append(FieldError(field=name, code=LOOKS_LIKE_PII, message=message))
        if verdict.ok:
            verdict.code = Code.SCHEMA_VIOLATION
            verdict.message = f"identifier {name} looks like PII ({kind})"
            verdict.event_time = None
