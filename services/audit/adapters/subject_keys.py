"""Per-subject data keys for crypto-shredding, and sealing/opening rows with them.

One secret, held OUTSIDE the database (a file, like the API keys), yields two keys by HMAC:
- the reference key: a subject's reference is HMAC-SHA256(reference key, id) as hex. Rows and the
  key table hold only references, so lookups and erasure requests work without any clear id stored;
- the wrapping key: data keys are stored AES-GCM-wrapped under it (the reference as associated data),
  so a copy of the database alone opens nothing.

Data keys live in `audit_subject_keys`, a plain table outside the chain. Erasing a subject deletes its
row; on SQLite with `secure_delete` on, so the freed bytes are zeroed, then the WAL is truncated.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, func, insert, select

from services.audit.adapters.schema import audit_events as t
from services.audit.adapters.schema import subject_keys as k
from services.audit.domain import sealing
from services.audit.domain.entry import KIND_ERASURE, Entry
from services.audit.errors import AuditError

log = logging.getLogger(__name__)

SECRET_BYTES = 32
_CHUNK = 500


class SubjectSecretMissing(AuditError):
    """Identifying data arrived but no subject secret is configured: refused rather than kept in the
    clear (the consumer dead-letters those events with this reason)."""


def load_secret(path: Path, *, create: bool) -> bytes:
    """The secret in `path` (hex). `create`: make one (0600, in a 0700 folder) when there is none."""
    if not path.exists():
        if not create:
            raise SubjectSecretMissing(f"no subject secret at {path}")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:  # O_EXCL: two processes starting at once never write two different secrets
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return load_secret(path, create=False)
        with os.fdopen(fd, "w") as out:
            out.write(os.urandom(SECRET_BYTES).hex() + "\n")
    try:
        secret = bytes.fromhex(path.read_text().strip())
    except ValueError:
        raise SubjectSecretMissing(f"{path} does not hold a hex secret") from None
    if len(secret) < SECRET_BYTES:
        raise SubjectSecretMissing(f"{path} holds fewer than {SECRET_BYTES} bytes")
    return secret


class SubjectKeys:
    """References, wrapped data keys, and the sealing of a batch (see the module doc)."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < SECRET_BYTES:
            raise ValueError(f"the subject secret needs at least {SECRET_BYTES} bytes")
        self._ref_key = hmac.new(secret, b"audit subject reference v1", hashlib.sha256).digest()
        self._wrap_key = hmac.new(secret, b"audit subject key wrapping v1", hashlib.sha256).digest()

    def ref(self, subject_id: str) -> str:
        return hmac.new(self._ref_key, subject_id.encode("utf-8"), hashlib.sha256).hexdigest()

    # -- the key table ----------------------------------------------------------------------------
    def fetch(self, conn: Connection, refs: Iterable[str]) -> dict[str, bytes]:
        """Data keys of the subjects that have one (erased subjects have none)."""
        wanted, found = sorted(set(refs)), {}
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            for ref, wrapped in conn.execute(
                select(k.c.subject_ref, k.c.wrapped_key).where(k.c.subject_ref.in_(chunk))
            ):
                key = sealing.decrypt(self._wrap_key, bytes(wrapped), ref.encode("ascii"))
                if key is None:
                    raise AuditError(f"the data key of subject {ref} does not open with this subject secret")
                found[ref] = key
        return found

    def create(self, conn: Connection, refs: Iterable[str], now_us: int) -> dict[str, bytes]:
        made = {ref: sealing.new_key() for ref in refs}
        if made:
            rows = [
                {"subject_ref": ref, "wrapped_key": sealing.encrypt(self._wrap_key, key, ref.encode("ascii")),
                 "created_at_us": now_us}
                for ref, key in made.items()
            ]  # fmt: skip
            conn.execute(insert(k), rows)
        return made

    @staticmethod
    def delete(conn: Connection, ref: str) -> int:
        if conn.dialect.name == "sqlite":  # zero the freed bytes instead of leaving the key in free space
            conn.exec_driver_sql("PRAGMA secure_delete=ON")
        return conn.execute(delete(k).where(k.c.subject_ref == ref)).rowcount or 0

    @staticmethod
    def erased_at(conn: Connection, refs: Iterable[str]) -> dict[str, int]:
        """When each subject was last erased (erasure rows of the chain), for those ever erased."""
        wanted, found = sorted(set(refs)), {}
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            statement = (
                select(t.c.entity_id, func.max(t.c.occurred_at_us))
                .where(and_(t.c.entity_id.in_(chunk), t.c.kind == KIND_ERASURE))
                .group_by(t.c.entity_id)
            )
            found.update({ref: int(at) for ref, at in conn.execute(statement)})
        return found

    # -- sealing a batch (inside the append transaction) -------------------------------------------
    def seal_entries(self, conn: Connection, entries: Sequence[Entry], now_us: int) -> list[Entry]:
        """Entries with their subjects' values sealed and references in place of ids. A subject
        without a key gets one, unless it was erased after the event reached Kafka: such an event is
        sealed under a key that is never stored (shredded on arrival)."""
        ref = self._memo()
        named = {i: [ref(s) for s in sealing.subjects(e.decoded)] for i, e in enumerate(entries)
                 if e.decoded is not None}  # fmt: skip
        refs = {ref for found in named.values() for ref in found}
        erased = self.erased_at(conn, refs)
        keys = self.fetch(conn, refs)
        late = {
            ref for i, found in named.items() for ref in found
            if ref not in keys and entries[i].kafka_ts_ms * 1000 > erased.get(ref, -1)
        }  # fmt: skip
        keys.update(self.create(conn, late, now_us))
        discarded = {ref: sealing.new_key() for ref in erased}
        return [self._sealed(e, named.get(i), keys, erased, discarded, ref) for i, e in enumerate(entries)]

    def _memo(self) -> Callable[[str], str]:
        """`ref` remembered for one batch (a subject recurs in a batch; the HMAC is the costly part)."""
        known: dict[str, str] = {}

        def ref(subject_id: str) -> str:
            found = known.get(subject_id)
            if found is None:
                found = known[subject_id] = self.ref(subject_id)
            return found

        return ref

    def _sealed(
        self,
        entry: Entry,
        refs: list[str] | None,
        keys: Mapping[str, bytes],
        erased: Mapping[str, int],
        discarded: Mapping[str, bytes],
        ref: Callable[[str], str],
    ) -> Entry:
        if entry.raw_subject is not None:
            return entry.with_subject(ref(entry.raw_subject), entry.body)
        if refs is None:
            return entry
        arrived_us = entry.kafka_ts_ms * 1000

        def key_for(ref: str) -> bytes:
            if ref in erased and arrived_us <= erased[ref]:
                return discarded[ref]
            return keys[ref]

        encode = sealing.json_bytes if entry.loose_json else sealing.fast_json_bytes
        envelope = sealing.seal(entry.decoded, ref, key_for, encode)
        subject = sealing.subject_text((sealing.payload_of(entry.decoded) or {}).get("entity_id"))
        entity_id = ref(subject) if subject is not None else entry.entity_id
        return entry.with_subject(entity_id, encode(envelope).decode("utf-8"))

    # -- opening rows for a reader -------------------------------------------------------------------
    def open_rows(self, conn: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rows with the tokens of every subject that still has a key opened (in place)."""
        sealed = {}
        for index, row in enumerate(rows):
            body = row.get("body")
            if body and '"ciphertext"' in body:
                try:
                    sealed[index] = json.loads(body)
                except ValueError:
                    continue
        refs = {ref for envelope in sealed.values() for ref in sealing.token_subjects(envelope)}
        if not refs:
            return rows
        try:
            keys = self.fetch(conn, refs)
        except AuditError:
            log.warning("a subject key does not open with the configured secret; rows stay sealed")
            return rows
        for index, envelope in sealed.items():
            opened = sealing.open_sealed(envelope, keys)
            rows[index]["body"] = _dump(opened)
            was = sealing.payload_of(envelope) or {}
            entity = (sealing.payload_of(opened) or {}).get("entity_id")
            if "entity_id" not in was and isinstance(entity, str):  # the id came out of its token
                rows[index]["entity_id"] = entity
        return rows


def _dump(envelope: Any) -> str:
    # json.dumps, not msgspec: the envelope may hold what only json.loads accepted (NaN, huge ints).
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))


def truncate_sqlite_wal(engine: Engine, attempts: int = 50) -> bool | None:
    """SQLite: checkpoint and truncate the WAL, whose older frames may still hold a deleted key's page.
    Retried while readers hold an older snapshot; False when they never let go; None on servers."""
    if engine.dialect.name != "sqlite":
        return None
    raw = engine.raw_connection()
    sqlite = raw.driver_connection  # autocommit (see engine.py): no transaction around the checkpoint
    try:
        for _ in range(attempts):
            busy = sqlite.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]  # type: ignore[union-attr]
            if busy == 0:
                return True
            time.sleep(0.1)
        return False
    finally:
        raw.close()
