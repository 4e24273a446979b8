"""A dataset's declared schema, loaded from a YAML file: fields, types, ranges, categorical domains,
the entity key, the event-time field, the label, sensitive attributes and the PII policy.

The schema is data: declaring another dataset needs a new YAML file, not new code.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.ingest.errors import IngestConfigError


class FieldType(StrEnum):
    STRING = "string"  # short string; optional `pattern`, `max_length`
    TEXT = "text"  # free text, scrubbed by NLP analysis (Presidio)
    INTEGER = "integer"  # JSON integer (a float with no fraction, e.g. 3.0, is refused)
    NUMBER = "number"  # JSON integer or finite float
    BOOLEAN = "boolean"
    CATEGORY = "category"  # string out of `values`
    DATETIME = "datetime"  # ISO 8601 string with a timezone; optional `earliest`, `latest`, `max_ahead_s`


# What pandas (nanosecond timestamps) and so Feast can hold: the widest a date-time may ever be, so an
# undeclared bound still never lets year 0001 or 9999 through to the feature store.
PANDAS_EARLIEST = datetime(1677, 9, 22, tzinfo=UTC)
PANDAS_LATEST = datetime(2262, 4, 11, tzinfo=UTC)


class PiiPolicy(StrEnum):
    DROP = "drop"  # removed from the clean record
    MASK = "mask"  # every character but the last `keep_last` replaced by '*'
    HASH = "hash"  # HMAC-SHA256 with the configured salt: stable, so equal values still join


class IdentifierRule(StrEnum):
    """What an identifier column does with a value that could be PII (domain/identifiers.py)."""

    REJECT = "reject"  # values shaped like an SSN, phone, card, e-mail or name are dead-lettered
    PSEUDONYMISE = "pseudonymise"  # every value becomes a keyed hash (HMAC-SHA256), stable per value


class FieldSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: FieldType
    required: bool = True
    nullable: bool = False
    description: str = ""
    min: float | None = None
    max: float | None = None
    values: tuple[str, ...] | None = None
    max_length: int = Field(256, ge=1)
    pattern: str | None = None
    earliest: datetime | None = Field(None, description="Earliest date-time accepted (with a timezone).")
    latest: datetime | None = Field(None, description="Latest date-time accepted (with a timezone).")
    max_ahead_s: float | None = Field(
        None,
        ge=0,
        description="Seconds a date-time may lie ahead of the raw record's Kafka timestamp (clock skew).",
    )
    pii: str | None = Field(None, description="Presidio entity type this field holds, e.g. PERSON.")
    policy: PiiPolicy | None = None
    keep_last: int = Field(0, ge=0, le=4)
    identifier: IdentifierRule | None = Field(
        None, description="An identifier column (the entity key): reject PII-shaped values, or pseudonymise."
    )

    @model_validator(mode="after")
    def _consistent(self) -> FieldSpec:
        if (self.type is FieldType.CATEGORY) != (self.values is not None):
            raise ValueError("`values` is required for, and only for, category fields")
        if self.pii and self.type is not FieldType.TEXT and self.policy is None:
            raise ValueError("a structured PII field needs a `policy` (drop, mask or hash)")
        if self.pattern is not None:
            re.compile(self.pattern)
        if self.identifier is not None and (self.type is not FieldType.STRING or self.pii):
            raise ValueError("`identifier` is for string fields that are not declared PII")
        self._consistent_dates()
        return self

    def _consistent_dates(self) -> None:
        dated = (self.earliest, self.latest, self.max_ahead_s)
        if self.type is not FieldType.DATETIME:
            if any(bound is not None for bound in dated):
                raise ValueError("`earliest`, `latest` and `max_ahead_s` are for datetime fields only")
            return
        if self.min is not None or self.max is not None:
            raise ValueError("a datetime field is bounded by `earliest` and `latest`, not `min`/`max`")
        for bound in (self.earliest, self.latest):
            if bound is not None and bound.tzinfo is None:
                raise ValueError("`earliest` and `latest` need a timezone")
        if not PANDAS_EARLIEST <= self.lowest <= self.highest <= PANDAS_LATEST:
            raise ValueError(f"date bounds must be ordered and within {PANDAS_EARLIEST}..{PANDAS_LATEST}")

    @property
    def lowest(self) -> datetime:
        """The earliest date-time accepted: declared, else the earliest pandas can hold."""
        return self.earliest or PANDAS_EARLIEST

    @property
    def highest(self) -> datetime:
        return self.latest or PANDAS_LATEST

    @cached_property
    def regex(self) -> re.Pattern[str] | None:
        return re.compile(self.pattern) if self.pattern else None


class LabelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str
    values: tuple[str, ...]
    positive: str


class FreeTextPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    entities: tuple[str, ...] = ("PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN")
    score_threshold: float = Field(0.35, ge=0, le=1)
    ner_gate: bool = Field(
        True, description="Skip spaCy NER on text with no capitalised word inside a sentence (faster)."
    )
    redact_known_values: bool = Field(
        True, description="Also replace the record's own structured PII values found in its free text."
    )


class DatasetSchema(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = Field(min_length=1, max_length=256)
    version: int = Field(ge=1)
    description: str = ""
    entity_key: str
    event_time: str
    label: LabelSpec | None = None
    sensitive: tuple[str, ...] = ()
    unknown_fields: str = Field("reject", pattern="^(reject|drop)$")
    max_depth: int = Field(16, ge=1, le=512, description="Deeper JSON is refused as too_deep.")
    free_text: FreeTextPolicy = FreeTextPolicy()
    fields: dict[str, FieldSpec]

    @model_validator(mode="after")
    def _references_exist(self) -> DatasetSchema:
        for role, name in (("entity_key", self.entity_key), ("event_time", self.event_time)):
            if name not in self.fields or not self.fields[name].required:
                raise ValueError(f"{role} {name!r} must be a declared, required field")
        if self.fields[self.event_time].type is not FieldType.DATETIME:
            raise ValueError("the event-time field must have type datetime")
        missing = [name for name in self.sensitive if name not in self.fields]
        if missing:
            raise ValueError(f"sensitive attributes not declared as fields: {missing}")
        return self

    @cached_property
    def structured_pii(self) -> dict[str, FieldSpec]:
        return {n: f for n, f in self.fields.items() if f.pii and f.type is not FieldType.TEXT}

    @cached_property
    def text_fields(self) -> tuple[str, ...]:
        return tuple(n for n, f in self.fields.items() if f.type is FieldType.TEXT)

    @cached_property
    def required(self) -> frozenset[str]:
        return frozenset(n for n, f in self.fields.items() if f.required)


def load_schema(path: Path) -> DatasetSchema:
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
        return DatasetSchema.model_validate(data)
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise IngestConfigError(f"dataset schema {path} is invalid: {exc}") from exc
