"""Which model answers a request while a canary runs: a deterministic split of live traffic.

A request's key (its entity id, else its idempotency key, else its prediction id) is hashed with
SHA-256; the first 8 bytes, as a fraction of 2**64, fall in [0, 1). Below the canary's share the
canary answers, otherwise the champion. The same key always goes to the same model (a retry, or the
same applicant asking again, sees one model), and over many keys the canary's share of traffic is
`share` within binomial noise. The canary's version salts the hash, so a new canary draws a fresh
sample of keys rather than the same applicants each time.

>>> split = CanarySplit("7", 0.5)
>>> split.to_canary("A-1") == split.to_canary("A-1")
True
>>> CanarySplit("7", 0.0).to_canary("A-1")
False
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

MAX_SHARE = 0.5


def bucket(key: str, salt: str = "") -> float:
    """A uniform number in [0, 1) fixed by `key` (and `salt`)."""
    digest = hashlib.sha256(f"{salt}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class CanarySplit:
    version: str
    share: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= MAX_SHARE:
            raise ValueError(f"a canary's share is in [0, {MAX_SHARE}], got {self.share}")

    def to_canary(self, key: str) -> bool:
        return bucket(key, self.version) < self.share
