"""Publishes the chain head, signed, every `checkpoint_interval_s` (when it moved) and as soon as
`checkpoint_every_events` events were appended since the last checkpoint.

With several instances, one publishes at a time: the one holding the checkpoint lease
(adapters/lease.py); the others stand by and take over when it dies.

The key is loaded when the service starts, not when the app is built (the AsyncAPI export builds the
app and must not create key files). In development a missing key is generated; in production the
settings already refused to load without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from contracts.envelope import Event
from contracts.events import AuditCheckpointed
from servicekit.outages import unavailable_dependency
from services.audit.adapters.lease import CheckpointLease
from services.audit.handlers import AuditService
from services.audit.metrics import CHECKPOINT_PUBLISHER, CHECKPOINTS
from services.audit.settings import AuditSettings
from services.audit.signing import CheckpointSigner, load_private_key

log = logging.getLogger(__name__)


class Publisher(Protocol):
    """Where checkpoints go: servicekit's EventPublisher, or a test's list."""

    async def publish(self, event: Event, topic: str | None = None) -> None: ...


class Checkpointer:
    def __init__(
        self,
        audit: AuditService,
        publisher: Publisher,
        settings: AuditSettings,
        lease: CheckpointLease | None = None,
    ) -> None:
        self.audit, self.publisher, self.settings = audit, publisher, settings
        self.lease = lease or CheckpointLease(audit.store.writer)
        self.publishing: bool | None = None  # holds the lease (None: not asked yet)
        self.signer: CheckpointSigner | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._due = asyncio.Event()
        self._deferred = False  # the last tick met an outage (said once, not every tick)

    def load_key(self) -> CheckpointSigner:
        if self.signer is None:
            path = self.settings.resolved_signing_key_file
            self.signer = CheckpointSigner(
                load_private_key(path, create=self.settings.environment == "development")
            )
            log.info("checkpoints signed with key %s (%s)", self.signer.key_id, path)
        return self.signer

    def nudge(self) -> None:
        self._due.set()

    def sign(self, event: AuditCheckpointed) -> AuditCheckpointed:
        genesis = self.audit.store.stored_hash(1)
        assert genesis is not None  # a checkpoint is only made of a chain with rows
        payload = self.load_key().sign(event.payload, self.settings.chain_name, genesis)
        return event.model_copy(update={"payload": payload})

    async def publish(self, *, force: bool = False) -> AuditCheckpointed | None:
        """Publish the head if a checkpoint is due and this instance holds the lease (`force`: now,
        whoever holds it; a second signed head is as valid as the first)."""
        async with self._lock:
            if not await asyncio.to_thread(self._holds_lease) and not force:
                # The count trigger is the holder's: a standby's own appends must not nudge it into
                # asking for the lease at every batch from now on.
                self.audit.appended_since_checkpoint = 0
                return None
            event = await asyncio.to_thread(self.audit.make_checkpoint, force=force)
            if event is not None:
                event = await asyncio.to_thread(self.sign, event)
                await self.publisher.publish(event, topic=self.settings.checkpoint_topic)
                CHECKPOINTS.inc()
                log.info("checkpoint at %d rows", event.payload.chain_length)
            return event

    async def start(self) -> None:
        await asyncio.to_thread(self.load_key)  # a bad key stops the start, before any capture
        self._task = asyncio.create_task(self._loop(), name="audit-checkpoints")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.to_thread(self.lease.release)  # a standby takes over now, not at a timeout

    def _holds_lease(self) -> bool:
        try:
            holds = self.lease.held()
        except Exception:  # the database is away: whatever this instance held went with its session
            self.publishing = None
            CHECKPOINT_PUBLISHER.set(0)
            raise
        if holds != self.publishing:
            if holds:
                log.info("this instance publishes the checkpoints now")
            else:
                log.info("another instance publishes the checkpoints; this one stands by")
            self.publishing = holds
            CHECKPOINT_PUBLISHER.set(int(holds))
        return holds

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._due.wait(), self.settings.checkpoint_interval_s)
            self._due.clear()
            try:
                await self.publish()
            except Exception as exc:  # a broker hiccup must not end the loop; the next tick retries
                dependency = unavailable_dependency(exc)
                if dependency is None:
                    log.warning("publishing a checkpoint failed", exc_info=True)
                elif not self._deferred:  # an outage: one line, not a traceback every tick
                    log.warning("checkpoints wait: %s is unavailable (%s)", dependency, type(exc).__name__)
                self._deferred = dependency is not None
            else:
                self._deferred = False
