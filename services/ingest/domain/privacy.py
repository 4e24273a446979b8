"""The PII policy: structured PII fields by rule (drop, mask, salted hash), free text through a
`TextScrubber` port (Presidio in production, a fake in tests). Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from services.ingest.domain.schema import DatasetSchema, FieldSpec, PiiPolicy

MIN_KNOWN_VALUE = 3  # shorter known values ("Al") are too likely to hit ordinary words


class ScrubbedText(NamedTuple):
    text: str
    entities: tuple[str, ...]  # entity types found and replaced


class TextScrubber(Protocol):
    """Finds and replaces PII in free text, for a whole batch at once."""

    def scrub(self, texts: Sequence[str]) -> list[ScrubbedText]: ...


@dataclass(frozen=True)
class PiiPolicyApplier:
    schema: DatasetSchema
    salt: bytes

    def apply_structured(self, record: dict[str, Any]) -> list[str]:
        """Scrub the structured PII fields of `record` in place; return the names of those touched."""
        touched = []
        for name, spec in self.schema.structured_pii.items():
            if name not in record:
                continue
            touched.append(name)
            value = record[name]
            if spec.policy is PiiPolicy.DROP:
                del record[name]
            elif value is not None:
                record[name] = self._transform(spec, str(value))
        return touched

    def _transform(self, spec: FieldSpec, value: str) -> str:
        if spec.policy is PiiPolicy.HASH:
            return "hmac-sha256:" + hmac.new(self.salt, value.encode("utf-8"), hashlib.sha256).hexdigest()
        keep = value[-spec.keep_last :] if spec.keep_last else ""
        return "*" * (len(value) - len(keep)) + keep

    def known_values(self, record: dict[str, Any]) -> list[tuple[str, str]]:
        """(value, entity type) of the record's structured PII, read BEFORE `apply_structured`.
        Names are also split into their parts, since notes often say "Mr. Smith"."""
        known: list[tuple[str, str]] = []
        for name, spec in self.schema.structured_pii.items():
            value = record.get(name)
            if not isinstance(value, str) or len(value) < MIN_KNOWN_VALUE:
                continue
            known.append((value, spec.pii or name))
            if spec.pii == "PERSON":
                known += [
                    (part, "PERSON") for part in re.split(r"[\s,]+", value) if len(part) >= MIN_KNOWN_VALUE
                ]
        return known


def redact_known(text: str, known: Sequence[tuple[str, str]]) -> str:
    """Replace the record's own PII values wherever they appear in its free text (whole words,
    case-insensitive), longest first so a full name wins over its parts."""
    for value, entity in sorted(known, key=lambda item: -len(item[0])):
        if value.lower() in text.lower():
            text = re.sub(rf"(?<!\w){re.escape(value)}(?!\w)", f"<{entity}>", text, flags=re.IGNORECASE)
    return text


class PassThroughScrubber:
    """A `TextScrubber` that finds nothing: for tests, and for schemas without free text."""

    def scrub(self, texts: Sequence[str]) -> list[ScrubbedText]:
        return [ScrubbedText(text, ()) for text in texts]
