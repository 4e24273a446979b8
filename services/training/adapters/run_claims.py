"""Which training instance runs a request: a claim with a lease, in the state every instance shares.

Requests are read in one consumer group, so normally one instance sees each. Around a rebalance both
can: a run takes longer than Kafka waits for its consumer, or a new instance joins while a run is in
flight, and the request (its offset not committed yet) is read again by the instance that gets the
partition. The claim makes that one run: an instance runs a request only while it holds an unexpired
claim on it, renews the claim while the run goes on, and releases it once the outcome is saved. An
instance that finds a live claim held by another waits; one that finds it expired (its holder died
mid-run) takes it over and runs the request itself. The check, the take-over and the write are one
transaction (`BEGIN IMMEDIATE` serializes them between processes).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from servicekit.sqlite import SqliteDatabase

RUN_CLAIMS_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS run_claims ("
    " request_id TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at REAL NOT NULL, taken_over_from TEXT)",
)

Verdict = Literal["claimed", "held", "done"]


@dataclass(frozen=True)
class Claim:
    verdict: Verdict  # claimed: this instance runs it; held: another does, for now; done: it has run
    owner: str | None = None  # who holds it (for `held`), or whose expired claim was taken over
    expires_in_s: float = 0.0  # for `held`: how long the holder's claim lasts unless renewed


class RunClaims:
    def __init__(self, database: SqliteDatabase, clock: Callable[[], float] = time.time) -> None:
        self.database = database
        self.clock = clock

    def claim(self, request_id: str, owner: str, lease_s: float) -> Claim:
        """Claim a request for `lease_s` seconds, unless its run is done or another holds it."""
        now = self.clock()
        with self.database.transaction() as db:
            if db.execute("SELECT 1 FROM runs WHERE request_id = ?", (request_id,)).fetchone():
                return Claim("done")
            row = db.execute(
                "SELECT owner, expires_at FROM run_claims WHERE request_id = ?", (request_id,)
            ).fetchone()
            if row is not None and row[0] != owner and row[1] > now:
                return Claim("held", row[0], row[1] - now)
            previous = row[0] if row is not None and row[0] != owner else None
            db.execute(
                "INSERT OR REPLACE INTO run_claims VALUES (?, ?, ?, ?)",
                (request_id, owner, now + lease_s, previous),
            )
        return Claim("claimed", previous)

    def renew(self, request_id: str, owner: str, lease_s: float) -> bool:
        """Extend this owner's claim; False when it no longer holds it (taken over after it expired)."""
        with self.database.transaction() as db:
            changed = db.execute(
                "UPDATE run_claims SET expires_at = ? WHERE request_id = ? AND owner = ?",
                (self.clock() + lease_s, request_id, owner),
            ).rowcount
        return changed == 1

    def release(self, request_id: str, owner: str) -> None:
        with self.database.transaction() as db:
            db.execute("DELETE FROM run_claims WHERE request_id = ? AND owner = ?", (request_id, owner))

    def holder(self, request_id: str) -> tuple[str, float] | None:
        """Who holds a claim on this request and for how many more seconds (negative: expired)."""
        with self.database.connection() as db:
            row = db.execute(
                "SELECT owner, expires_at FROM run_claims WHERE request_id = ?", (request_id,)
            ).fetchone()
        return None if row is None else (str(row[0]), float(row[1]) - self.clock())
