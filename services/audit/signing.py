"""Ed25519 signatures on audit checkpoints, with a key the audit database never holds.

The private key lives in a file outside the database (default `<state_dir>/secrets/audit-signing.key`,
PKCS#8 PEM, mode 0600); whoever can write the database but not read that file cannot publish a
checkpoint a verifier accepts. Verifiers hold only public keys (`<key file>.pub`, or configured).

Signed message (reproducible in any language; documented in docs/audit.md):

    b"mlops-audit-checkpoint-v1\\n" + JSON array, no whitespace, ASCII only, of
    [chain_name, chain_length, head_hash, genesis_hash, last_event_id or null, covered_until_us]
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import uuid
from collections.abc import Iterable
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from contracts.events import AuditCheckpointedPayload
from services.audit.domain.entry import to_micros
from services.audit.errors import AuditError

DOMAIN = b"mlops-audit-checkpoint-v1\n"


class SigningKeyError(AuditError):
    """The signing key or a trusted public key is missing or unreadable."""

    status = 503


def key_id(public: Ed25519PublicKey) -> str:
    """First 16 hex of SHA-256 over the raw 32-byte public key: names the key in every checkpoint."""
    return hashlib.sha256(_raw(public)).hexdigest()[:16]


def public_text(public: Ed25519PublicKey) -> str:
    """The public key as base64 of its raw 32 bytes (what AUDIT_TRUSTED_PUBLIC_KEYS takes)."""
    return base64.b64encode(_raw(public)).decode("ascii")


def parse_public_key(text: str) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError) as err:
        raise SigningKeyError(f"not a base64 Ed25519 public key: {text[:60]!r}") from err


def load_private_key(path: Path, *, create: bool) -> Ed25519PrivateKey:
    """The signing key at `path`; when missing and `create` (development), a new one is written there
    (0600, in a 0700 folder) with its public key beside it as `<path>.pub`."""
    if not path.exists():
        if not create:
            raise SigningKeyError(f"no audit signing key at {path}")
        _write_new_key(path)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as err:
        raise SigningKeyError(f"unreadable audit signing key at {path}: {err}") from err
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} is not an Ed25519 private key")
    return key


def _write_new_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # Written whole under a name of its own, then linked into place: a link never replaces a file, so
    # of two processes starting at once one key wins and neither is overwritten, and the other process
    # never reads a half-written key (creating `path` itself with O_EXCL, then writing it, let a second
    # audit instance read it empty: "MalformedFraming", a start-up failure in the cluster profile).
    partial = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        os.link(partial, path)
    except FileExistsError:
        return  # another process's key is in place, whole
    finally:
        partial.unlink(missing_ok=True)
    public = public_file(path)
    public_partial = public.with_name(partial.name + ".pub")
    public_partial.write_text(public_text(key.public_key()) + "\n")
    os.replace(public_partial, public)


def public_file(private_path: Path) -> Path:
    return private_path.with_name(private_path.name + ".pub")


def checkpoint_message(payload: AuditCheckpointedPayload) -> bytes:
    values = [
        payload.chain_name,
        payload.chain_length,
        payload.head_hash,
        payload.genesis_hash,
        str(payload.last_event_id) if payload.last_event_id else None,
        to_micros(payload.covered_until),
    ]
    return DOMAIN + json.dumps(values, separators=(",", ":"), ensure_ascii=True).encode("ascii")


class CheckpointSigner:
    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.key_id = key_id(private.public_key())
        self.public = private.public_key()

    def sign(
        self, payload: AuditCheckpointedPayload, chain_name: str, genesis_hash: str
    ) -> AuditCheckpointedPayload:
        named = payload.model_copy(
            update={"chain_name": chain_name, "genesis_hash": genesis_hash, "key_id": self.key_id}
        )
        signature = self._private.sign(checkpoint_message(named))
        return named.model_copy(update={"signature": base64.b64encode(signature).decode("ascii")})


class TrustedKeys:
    """The public keys a verifier accepts checkpoints from, by key id."""

    def __init__(self, keys: Iterable[Ed25519PublicKey]) -> None:
        self._by_id = {key_id(k): k for k in keys}

    def __len__(self) -> int:
        return len(self._by_id)

    def ids(self) -> list[str]:
        return sorted(self._by_id)

    def verifies(self, payload: AuditCheckpointedPayload) -> bool:
        public = self._by_id.get(payload.key_id or "")
        if public is None or not payload.signature:
            return False
        try:
            public.verify(base64.b64decode(payload.signature, validate=True), checkpoint_message(payload))
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True


def trusted_keys(configured: Iterable[str], key_file: Path | None) -> TrustedKeys:
    """Configured public keys, plus the one beside the signing key file when that exists."""
    keys = [parse_public_key(text) for text in configured]
    if key_file is not None and public_file(key_file).exists():
        keys.append(parse_public_key(public_file(key_file).read_text()))
    elif key_file is not None and key_file.exists():
        keys.append(load_private_key(key_file, create=False).public_key())
    return TrustedKeys(keys)


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
