"""The PII policy: structured PII fields by rule (drop, mask, salted hash), free text through a
`TextScrubber` port (Presidio in production, a fake in tests). Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple, Protocol

from services.ingest.domain.schema import DatasetSchema, FieldSpec, PiiPolicy

log = logging.getLogger(__name__)

MIN_KNOWN_VALUE = 3  # shorter known values ("Al") are too likely to hit ordinary words


class ScrubbedText(NamedTuple):
    text: str
    entities: tuple[str, ...]  # entity types found and replaced


class TextScrubber(Protocol):
    """Finds and replaces PII in free text, for a whole batch at once."""

    def scrub(self, texts: Sequence[str]) -> list[ScrubbedText]: ...


def scrub_isolated(scrubber: TextScrubber | None, texts: Sequence[str]) -> list[ScrubbedText | None]:
    """The batch in one call; if that fails, each text alone, so that a text the scrubber cannot take
    fails only its own record (None: rejected, never published unscrubbed), not its neighbours. The
    logs name the error's type, never its message, which may quote the text."""
    if scrubber is None:
        log.error("no text scrubber configured; rejecting the %d records with free text", len(texts))
        return [None] * len(texts)
    try:
        return list(scrubber.scrub(texts))
    except Exception as exc:
        log.warning(
            "scrubbing a batch of %d texts failed (%s); scrubbing each alone", len(texts), type(exc).__name__
        )
    results: list[ScrubbedText | None] = []
    for text in texts:
        try:
            results.append(scrubber.scrub([text])[0])
        except Exception as exc:
            log.warning("scrubbing one text of %d chars failed (%s)", len(text), type(exc).__name__)
            results.append(None)
    return results


@dataclass(frozen=True)
class PiiPolicyApplier:
    schema: DatasetSchema
    salt: bytes

    @cached_property
    def _plan(self) -> list[tuple[str, FieldSpec]]:
        return list(self.schema.structured_pii.items())

    @cached_property
    def _hmac(self) -> SaltedHmac:
        return SaltedHmac(self.salt)

    def apply_structured(self, record: dict[str, Any]) -> list[str]:
        """Scrub the structured PII fields of `record` in place; return the names of those touched."""
        touched = []
        for name, spec in self._plan:
            if name not in record:
                continue
            touched.append(name)
            if spec.policy is PiiPolicy.DROP:
                del record[name]
                continue
            value = record[name]
            if value is not None:
                record[name] = self._transform(spec, str(value))
        return touched

    def _transform(self, spec: FieldSpec, value: str) -> str:
        if spec.policy is PiiPolicy.HASH:
            return "hmac-sha256:" + self._hmac.hexdigest(value.encode("utf-8"))
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


class SaltedHmac:
    """HMAC-SHA256 (RFC 2104) with the key's inner and outer pads hashed once: per value, two copies
    of a SHA-256 state instead of `hmac.new` (2.4x faster). Same digest as `hmac.new(key, msg, sha256)`."""

    def __init__(self, key: bytes) -> None:
        block = hashlib.sha256().block_size
        key = (hashlib.sha256(key).digest() if len(key) > block else key).ljust(block, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def hexdigest(self, message: bytes) -> str:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


def redact_known(text: str, known: Sequence[tuple[str, str]]) -> str:
    """Replace the record's own PII values wherever they appear in its free text (whole words,
    case-insensitive), longest first so a full name wins over its parts."""
    for value, entity in sorted(known, key=lambda item: -len(item[0])):
        if value.lower() in text.lower():
            text = _replace_words(text, value, f"<{entity}>")
    return text


def _replace_words(text: str, value: str, replacement: str) -> str:
    r"""`re.sub(rf"(?<!\w){re.escape(value)}(?!\w)", replacement, text, flags=re.IGNORECASE)`.
    Values are unique per record, so compiling that pattern (about 20 us) was most of the cost of
    redaction; for ASCII text and value, a case-insensitive scan does the same. Otherwise: the regex."""
    if not (text.isascii() and value.isascii()):
        return re.sub(rf"(?<!\w){re.escape(value)}(?!\w)", replacement, text, flags=re.IGNORECASE)
    lowered, needle, size = text.lower(), value.lower(), len(value)
    pieces: list[str] = []
    done, at = 0, lowered.find(needle)
    while at >= 0:
        end = at + size
        if (at == 0 or not _is_word(text[at - 1])) and (end == len(text) or not _is_word(text[end])):
            pieces += (text[done:at], replacement)
            done = end
            at = lowered.find(needle, end)
        else:
            at = lowered.find(needle, at + 1)
    return "".join(pieces) + text[done:] if pieces else text


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


class PassThroughScrubber:
    """A `TextScrubber` that finds nothing: for tests, and for schemas without free text."""

    def scrub(self, texts: Sequence[str]) -> list[ScrubbedText]:
        return [ScrubbedText(text, ()) for text in texts]
