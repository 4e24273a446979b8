"""The async side of a run claim (adapters/run_claims.py): wait while another instance runs the
request, take it over when that instance's claim expires, and renew ours while our run goes on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator

from services.training.adapters.run_claims import RunClaims

log = logging.getLogger(__name__)


def instance_id() -> str:
    """This process, as a claim names it: host, process id, and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@contextlib.asynccontextmanager
async def claimed_run(
    claims: RunClaims, request_id: str, owner: str, lease_s: float, poll_s: float = 2.0
) -> AsyncIterator[bool]:
    """Yields True when this instance is to run the request (it holds the claim until the block ends),
    False when the request's run is done (here or by another instance)."""
    waiting_on: str | None = None
    while True:
        claim = await asyncio.to_thread(claims.claim, request_id, owner, lease_s)
        if claim.verdict == "done":
            yield False
            return
        if claim.verdict == "claimed":
            break
        if claim.owner != waiting_on:
            waiting_on = claim.owner
            log.info(
                "training request %s is being run by %s; waiting (its claim lasts %.0f s unless renewed)",
                request_id, claim.owner, claim.expires_in_s,
            )  # fmt: skip
        await asyncio.sleep(min(max(claim.expires_in_s, 0.05), poll_s))
    if claim.owner is not None:
        log.warning(
            "training request %s: took over the claim of %s, which expired (it stopped mid-run)",
            request_id, claim.owner,
        )  # fmt: skip
    log.info("training request %s: claimed by this instance (%s)", request_id, owner)
    renewing = asyncio.create_task(_renew(claims, request_id, owner, lease_s))
    keep = False
    try:
        yield True
    except asyncio.CancelledError:
        # Stopping mid-run: the run's worker thread cannot be interrupted and may go on until the
        # process exits, so the claim is kept (no longer renewed) rather than released. Another
        # instance takes the request over once it expires, never while this run may still act.
        keep = True
        raise
    finally:
        renewing.cancel()
        await asyncio.wait([renewing])  # (not `await renewing`: that would absorb our own cancel)
        if not keep:
            await asyncio.to_thread(claims.release, request_id, owner)


async def _renew(claims: RunClaims, request_id: str, owner: str, lease_s: float) -> None:
    """Renew the claim three times per lease while the run goes on (the run is in a worker thread, so
    the event loop is free to). A failed renewal is logged and tried again at the next beat."""
    while True:
        await asyncio.sleep(lease_s / 3)
        try:
            held = await asyncio.to_thread(claims.renew, request_id, owner, lease_s)
        except Exception as exc:
            log.warning("could not renew the claim on training request %s: %s", request_id, exc)
            continue
        if not held:
            log.error(
                "lost the claim on training request %s (it expired and another instance took it over): "
                "this run will neither promote nor publish",
                request_id,
            )
            return
