"""Which parts of an event identify a data subject, and how they are sealed (crypto-shredding).

The audit trail must keep every event, but it must also be able to forget a person. So the parts of
a payload that identify or describe a data subject are encrypted under that subject's own data key
before the row is chained; the chain covers the ciphertext. Deleting the key (an erasure) leaves the
rows, their hashes and the chain intact, and makes the sealed parts unreadable for good.

The subject of an event is its payload's `entity_id` (the application id), or each element of its
`entity_ids` list (FeaturesUpdated). What is sealed, per event type (absent fields are skipped):

    every type that names a subject: entity_id, record, features
    RecordCleaned:  + event_time
    LabelObserved:  + label, event_time

A sealed payload loses those fields and gains `sealed`: a token `{"subject": REF, "ciphertext": B64}`
whose plaintext is the JSON object of the removed fields. In `entity_ids` every id becomes a token of
its own (plaintext: the id as JSON). REF is the subject's keyed reference (an HMAC of its id, see
adapters/subject_keys.py); the ciphertext is AES-256-GCM, nonce first, with `REF|event_id` as the
associated data, so a token cannot be moved to another row or subject and still open.

Pure: the keys are handed in; nothing here reads a database.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SEALED = "sealed"
"""The payload key of a single-subject token."""
MANY_SUBJECTS = "entity_ids"
ALWAYS_SEALED = ("entity_id", "record", "features")
SEALED_BY_TYPE: Mapping[str, tuple[str, ...]] = {
    "RecordCleaned": ("event_time",),
    "LabelObserved": ("label", "event_time"),
}
KEY_BYTES = 32
NONCE_BYTES = 12

KeyFor = Callable[[str], bytes]
"""The data key to seal a subject's values with, by the subject's reference."""
Encode = Callable[[Any], bytes]
"""Compact UTF-8 JSON of a decoded value (a sealed token's plaintext, a sealed body)."""


def json_bytes(value: Any) -> bytes:
    """Python's json: keeps what only `json.loads` reads (NaN, Infinity), where msgspec writes null."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


fast_json_bytes: Encode = msgspec.json.Encoder().encode
"""msgspec's: the same JSON values, several times faster. Only for what msgspec itself decoded (it
refuses NaN, out-of-range numbers and lone surrogates, so nothing it decoded changes on the way back)."""


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def encrypt(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)  # random 96-bit nonces: safe far beyond one key's use here
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def decrypt(key: bytes, sealed: bytes, aad: bytes) -> bytes | None:
    """The plaintext, or None when the key is wrong or the ciphertext was altered."""
    if len(key) != KEY_BYTES or len(sealed) < NONCE_BYTES + 16:
        return None
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
    except InvalidTag:
        return None


def subject_text(value: Any) -> str | None:
    """A subject id as text: strings as they are, numbers in decimal, anything else as canonical JSON
    (a hostile producer's dict is still a subject to seal, never left in the clear)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def payload_of(envelope: Any) -> dict[str, Any] | None:
    payload = envelope.get("payload") if isinstance(envelope, dict) else None
    return payload if isinstance(payload, dict) else None


def subjects(envelope: Any) -> list[str]:
    """The subject ids an envelope names (empty when it names none)."""
    payload = payload_of(envelope)
    if payload is None:
        return []
    found = [] if payload.get("entity_id") is None else [subject_text(payload["entity_id"])]
    many = payload.get(MANY_SUBJECTS)
    if many is not None:
        found += [subject_text(v) for v in (many if isinstance(many, list) else [many]) if v is not None]
    return [s for s in found if s is not None]


def seal(
    envelope: dict[str, Any], ref: Callable[[str], str], key_for: KeyFor, encode: Encode = json_bytes
) -> dict[str, Any]:
    """A copy of `envelope` with every identifying value replaced by a token (see the module doc);
    `encode` writes the tokens' plaintext."""
    payload = dict(payload_of(envelope) or {})
    aad_tail = _aad_tail(envelope)
    subject = subject_text(payload.get("entity_id"))
    if subject is not None:
        names = (*ALWAYS_SEALED, *SEALED_BY_TYPE.get(str(envelope.get("event_type")), ()), SEALED)
        secret = {name: payload.pop(name) for name in names if name in payload}  # a producer's own
        payload[SEALED] = _token(ref(subject), key_for, secret, aad_tail, encode)  # "sealed" is sealed too
    many = payload.get(MANY_SUBJECTS)
    if many is not None:
        values = many if isinstance(many, list) else [many]
        payload[MANY_SUBJECTS] = [
            v if subject_text(v) is None else _token(ref(str(subject_text(v))), key_for, v, aad_tail, encode)
            for v in values
        ]
    return {**envelope, "payload": payload}


def open_sealed(envelope: dict[str, Any], keys: Mapping[str, bytes]) -> dict[str, Any]:
    """A copy with every token whose key is in `keys` opened; tokens of erased subjects stay sealed."""
    payload = payload_of(envelope)
    if payload is None:
        return envelope
    payload = dict(payload)
    aad_tail = _aad_tail(envelope)
    opened = _open(payload.get(SEALED), keys, aad_tail)
    if isinstance(opened, dict):
        del payload[SEALED]
        payload.update(opened)
    many = payload.get(MANY_SUBJECTS)
    if isinstance(many, list):
        payload[MANY_SUBJECTS] = [_open(v, keys, aad_tail, default=v) for v in many]
    return {**envelope, "payload": payload}


def token_subjects(envelope: Any) -> Iterator[str]:
    """The references of every token in a sealed envelope (to fetch their keys in one query)."""
    payload = payload_of(envelope) or {}
    many = payload.get(MANY_SUBJECTS)
    for token in [payload.get(SEALED), *(many if isinstance(many, list) else [])]:
        if isinstance(token, dict) and isinstance(token.get("subject"), str):
            yield token["subject"]


def _aad_tail(envelope: dict[str, Any]) -> bytes:
    return ("|" + str(envelope.get("event_id"))).encode("utf-8")


def _token(subject_ref: str, key_for: KeyFor, value: Any, aad_tail: bytes, encode: Encode) -> dict[str, str]:
    ciphertext = encrypt(key_for(subject_ref), encode(value), subject_ref.encode("utf-8") + aad_tail)
    return {"subject": subject_ref, "ciphertext": base64.b64encode(ciphertext).decode("ascii")}


def _open(token: Any, keys: Mapping[str, bytes], aad_tail: bytes, default: Any = None) -> Any:
    if not isinstance(token, dict) or set(token) != {"subject", "ciphertext"}:
        return default
    subject_ref, ciphertext = token["subject"], token["ciphertext"]
    key = keys.get(subject_ref) if isinstance(subject_ref, str) else None
    if key is None or not isinstance(ciphertext, str):
        return default
    try:
        sealed = base64.b64decode(ciphertext, validate=True)
    except ValueError:
        return default
    plaintext = decrypt(key, sealed, subject_ref.encode("utf-8") + aad_tail)
    return default if plaintext is None else json.loads(plaintext)
