"""Verify a whole store: recompute every link, in parallel ranges when asked to.

Every link depends only on the stored hash of the row before it, so the chain splits into ranges that
separate processes check independently; the first broken range (in sequence order) is the answer.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor

from services.audit.adapters.store import SqlAuditStore
from services.audit.domain.chain import GENESIS, VerifyReport, verify, verify_links

MIN_RANGE = 200_000  # below this, a process costs more than it saves


def verify_store(
    store: SqlAuditStore,
    anchors: Mapping[int, str] | None = None,
    workers: int = 1,
    min_range: int = MIN_RANGE,
) -> VerifyReport:
    """Verify rows 1..head (the head read at the start; later appends are left to the next run)."""
    anchors = dict(anchors or {})
    head, _ = store.head()
    length = head.length
    ranges = _ranges(length, workers, min_range)
    if len(ranges) <= 1:
        return verify(store.chain_rows(1, length), anchors)
    context = multiprocessing.get_context("spawn")  # never fork a process that runs threads
    with ProcessPoolExecutor(len(ranges), mp_context=context) as pool:
        futures = [
            pool.submit(_verify_range, store.url, store.app_role, first, last, anchors)
            for first, last in ranges
        ]
        reports = [future.result() for future in futures]
    checked, matched = 0, 0
    for report in reports:
        matched += report.anchors_checked
        if not report.ok:
            return VerifyReport(
                False, checked + report.checked, report.head_hash, report.broken_at, report.reason, matched
            )
        checked += report.checked
    beyond = [n for n in anchors if n > checked]
    if beyond:
        reason = f"chain ends at {checked} rows but a checkpoint covers {max(beyond)}"
        return VerifyReport(False, checked, reports[-1].head_hash, checked + 1, reason, matched)
    return VerifyReport(True, checked, reports[-1].head_hash, anchors_checked=matched)


def _ranges(length: int, workers: int, min_range: int) -> list[tuple[int, int]]:
    count = max(1, min(workers, length // max(1, min_range)))
    size = -(-length // count) if length else 0
    return [(first, min(first + size - 1, length)) for first in range(1, length + 1, size)] if size else []


def _verify_range(
    url: str, app_role: str | None, first: int, last: int, anchors: Mapping[int, str]
) -> VerifyReport:
    store = SqlAuditStore(url, app_role)
    try:
        prev_hex = store.stored_hash(first - 1) if first > 1 else GENESIS.hex()
        try:
            prev = bytes.fromhex(prev_hex or "")
        except (TypeError, ValueError):
            prev = b""
        if len(prev) != len(GENESIS):  # the range before reports this row first (missing or altered)
            return VerifyReport(False, 0, "", first - 1, "row is missing or its stored hash is not a hash")
        report = verify_links(store.chain_rows(first, last), first=first, prev=prev, anchors=anchors)
        if report.ok and report.checked != last - first + 1:
            expected = first + report.checked
            return VerifyReport(
                False, report.checked, report.head_hash, expected, "row is missing (sequence gap)"
            )
        return report
    finally:
        store.dispose()
