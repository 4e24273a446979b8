"""The checkpoint signing key: made once in development, refused when missing in production, never
overwritten; a signature covers every field a verifier relies on, and only trusted keys count."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from contracts.events import AuditCheckpointedPayload
from services.audit.settings import AuditSettings
from services.audit.signing import (
    CheckpointSigner,
    SigningKeyError,
    TrustedKeys,
    load_private_key,
    parse_public_key,
    public_file,
    public_text,
    trusted_keys,
)

PAYLOAD = AuditCheckpointedPayload(
    chain_length=12,
    head_hash="ab" * 32,
    last_event_id=uuid4(),
    covered_until=datetime(2026, 1, 2, tzinfo=UTC),
)


def test_development_creates_the_key_once_private_to_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "audit-signing.key"
    first = load_private_key(path, create=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert public_file(path).read_text().strip() == public_text(first.public_key())
    again = load_private_key(path, create=True)  # a second start reads it, never replaces it
    assert public_text(again.public_key()) == public_text(first.public_key())


def test_a_missing_or_broken_key_is_refused_without_create(tmp_path: Path) -> None:
    with pytest.raises(SigningKeyError, match="no audit signing key"):
        load_private_key(tmp_path / "nope.key", create=False)
    (tmp_path / "junk.key").write_text("-----BEGIN PRIVATE KEY-----\nnot base64\n")
    with pytest.raises(SigningKeyError, match="unreadable"):
        load_private_key(tmp_path / "junk.key", create=True)


def test_production_settings_refuse_a_missing_signing_key(tmp_path: Path) -> None:
    production: dict[str, Any] = {"environment": "production", "api_keys_json": "[]", "state_dir": tmp_path}
    with pytest.raises(ValidationError, match="audit signing key"):
        AuditSettings(**production)
    load_private_key(tmp_path / "secrets" / "audit-signing.key", create=True)
    assert AuditSettings(**production).resolved_signing_key_file.is_file()


@pytest.mark.parametrize(
    "change",
    [
        {"chain_length": 11},
        {"head_hash": "cd" * 32},
        {"genesis_hash": "ef" * 32},
        {"chain_name": "other"},
        {"last_event_id": uuid4()},
        {"covered_until": datetime(2026, 1, 3, tzinfo=UTC)},
        {"signature": "AAAA"},
        {"signature": "not base64!"},
        {"key_id": "0" * 16},
    ],
)
def test_a_signature_covers_every_field(change: dict[str, object]) -> None:
    signer = CheckpointSigner(Ed25519PrivateKey.generate())
    keys = TrustedKeys([signer.public])
    signed = signer.sign(PAYLOAD, "audit", "01" * 32)
    assert keys.verifies(signed)
    assert not keys.verifies(signed.model_copy(update=change))


def test_only_configured_keys_are_trusted(tmp_path: Path) -> None:
    ours, theirs = (CheckpointSigner(Ed25519PrivateKey.generate()) for _ in range(2))
    keys = trusted_keys([public_text(ours.public)], None)
    assert keys.verifies(ours.sign(PAYLOAD, "audit", "01" * 32))
    assert not keys.verifies(theirs.sign(PAYLOAD, "audit", "01" * 32))
    assert not keys.verifies(PAYLOAD)  # unsigned
    with pytest.raises(SigningKeyError):
        parse_public_key("bm90IGEga2V5")  # base64, but not 32 bytes
    with pytest.raises(SigningKeyError):
        parse_public_key("%%%")


def _load_and_name(path: str) -> str:
    return public_text(load_private_key(Path(path), create=True).public_key())


def test_instances_starting_at_once_all_read_the_one_key_whole(tmp_path: Path) -> None:
    """Two audit instances of the cluster profile start together: each either writes the key or reads
    the one another wrote, never a half-written file (one read it empty and failed to start)."""
    import multiprocessing

    # One pool for every attempt: its eight idle workers take each attempt's 16 loads at once, so the
    # race is the same as with a new pool per attempt, without forking this process 8 times an attempt
    # (40 attempts that way took 16 s; 200 this way take about 2.5 s, and caught the old O_EXCL-then-write
    # key file in 4 runs of 4).
    with multiprocessing.get_context("fork").Pool(8) as pool:
        for attempt in range(200):
            path = tmp_path / f"run{attempt}" / "audit-signing.key"
            names = pool.map(_load_and_name, [str(path)] * 16, chunksize=1)
            assert len(set(names)) == 1
            assert public_file(path).read_text().strip() == names[0]
            assert sorted(p.name for p in path.parent.iterdir()) == [path.name, public_file(path).name]
