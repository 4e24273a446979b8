"""Use cases of the Evidently reports: learn the champion's training window, make reports one at a time
off the event loop, on request (drift events, ops, the schedule), and find them for ops.

- Reference: the champion's (ModelPromoted) training window (ModelTrained) selects the kept clean
  records whose event time falls in it; an even sample of at most `reference_max` rows is frozen for
  that version. While the sample is short (records still arriving), it is retaken when more records
  of the window are kept. Until a champion and its window are known, or when its window has fewer
  than MIN_REFERENCE kept records, the earliest records seen are the reference, and the summary says so.
- Window: the latest `window` clean records seen, or, when the request names a window of event times
  [start, end), every kept record in it (domain/report_window.py says how many and whether pruning
  may have removed some); each with the served prediction of the model and its label when they are
  known (adapters/report_store.py): the report then also has classification quality on the labelled
  rows, and prediction and target drift (adapters/evidently_report.py). A requested window that held
  no kept record makes a failed report that says so (judged when the report is made: records of the
  window may still be arriving when it is asked for).
- A report requested by data-drift events opens on the feature(s) they flagged (`flagged_feature`).
- One report at a time, in a worker thread. Requests that pile up while one runs are coalesced: the
  next run makes ONE report for all of them that ask for the same window (the latest with the latest),
  and the other ids resolve to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from contracts.common import KafkaCoordinates
from contracts.events import ModelPromoted, ModelTrained
from services.drift.adapters.evidently_report import EvidentlyResult, drift_report
from services.drift.adapters.report_store import Pending, ReportStore, Row
from services.drift.domain.report_summary import OUTPUTS, VERSION, sample_evenly
from services.drift.domain.report_window import describe_window, empty_window_error
from services.drift.errors import ReportPending, UnknownReport

log = logging.getLogger(__name__)
MIN_REFERENCE = 30
# (window, reference, numeric, categorical, flagged features) -> the report
Maker = Callable[[list[Row], list[Row], Sequence[str], Sequence[str], Sequence[str]], EvidentlyResult]


class ReportService:
    def __init__(
        self,
        store: ReportStore,
        *,
        numeric: Sequence[str],
        categorical: Sequence[str],
        model_name: str,
        base_url: str,
        window: int = 500,
        reference_max: int = 1000,
        kept: int = 50,
        interval_s: float = 300.0,
        maker: Maker = drift_report,
    ) -> None:
        clash = {*numeric, *categorical} & {*OUTPUTS, VERSION}
        if clash:
            raise ValueError(f"watched features named like the report's own columns: {sorted(clash)}")
        self.store, self.numeric, self.categorical = store, tuple(numeric), tuple(categorical)
        self.model_name, self.base_url, self.window = model_name, base_url, window
        self.reference_max, self.kept, self.interval_s, self.maker = reference_max, kept, interval_s, maker
        self.counts = {"made": 0, "failed": 0, "coalesced": 0}
        self.reported_seq = 0
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    def url(self, report_id: str) -> str:
        return f"{self.base_url}/reports/{report_id}"

    def wake(self) -> None:
        self._wake.set()

    # Lifecycle events (one consumer group each).
    async def on_trained(self, event: ModelTrained, _: KafkaCoordinates) -> None:
        p = event.payload
        if p.model_name == self.model_name:
            start, end = p.window_start.timestamp(), p.window_end.timestamp()
            await asyncio.to_thread(self.store.model_window, p.model_version, start, end)

    async def on_promoted(self, event: ModelPromoted, _: KafkaCoordinates) -> None:
        p = event.payload
        if p.model_name == self.model_name and await asyncio.to_thread(
            self.store.promote, p.model_version, event.occurred_at.timestamp()
        ):
            log.info("champion %s: reports now compare with its training window", p.model_version)

    # Requests and the worker.
    async def request(self, trigger: str = "manual", window: tuple[datetime, datetime] | None = None) -> str:
        """Queue a report of the latest records, or of those whose event time is in `window` [start, end)."""
        report_id = str(uuid.uuid4())
        seconds = None if window is None else (window[0].timestamp(), window[1].timestamp())
        await asyncio.to_thread(self.store.request, report_id, trigger, seconds)
        self.wake()
        return report_id

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._work(), name="drift-reports"))
        if self.interval_s > 0:
            self._tasks.append(asyncio.create_task(self._schedule(), name="drift-report-schedule"))
        self.wake()  # requests left by a previous run

    async def stop(self, timeout_s: float = 60.0) -> None:
        """Let a report in progress finish (its thread cannot be interrupted), then stop."""
        self._stopping = True
        self.wake()
        for task in self._tasks:
            if task.get_name() == "drift-report-schedule":
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, timeout_s)

    async def _work(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()
            while not self._stopping:
                pending = await asyncio.to_thread(self.store.requests)
                if not pending:
                    break
                try:
                    await asyncio.to_thread(self.make, pending)
                except Exception:  # the store itself failed: retry on the next wake, never die
                    log.exception("report %s could not be saved", pending[0][0])
                    break

    async def _schedule(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            if await asyncio.to_thread(self.store.last_seq) > self.reported_seq:
                await self.request("schedule")

    def make(self, pending: list[Pending]) -> Row:
        """One report for the first pending request and every other one asking for the same window
        (the first names it; the others wait for the next run). Runs in a worker thread."""
        started = time.perf_counter()
        asked = pending[0].window
        merged = [p for p in pending if p.window == asked]
        report_id, aliases = merged[0].id, [p.id for p in merged[1:]]
        current, window = self._current(asked)
        reference, described = self.reference()
        flagged = self.store.flagged([p.id for p in merged])
        summary: Row = {
            "id": report_id,
            "created_at": datetime.now(UTC).isoformat(),
            "trigger": merged[0].trigger,
            "coalesced": [{"id": p.id, "trigger": p.trigger} for p in merged[1:]],
            "window": window,
            "reference": described,
            "flagged_feature": flagged[0] if flagged else None,
            "flagged_features": flagged,
        }
        html = evidently_json = ""
        try:
            if asked is not None and not current:
                raise ValueError(empty_window_error(window))
            result = self.maker(current, reference, self.numeric, self.categorical, flagged)
            html, evidently_json = result.html, result.json
            summary.update(status="done", **result.summary, skipped_columns=result.skipped_columns)
        except Exception as exc:  # e.g. no records yet: a failed report says why
            log.warning("report %s failed: %s", report_id, exc, exc_info=not isinstance(exc, ValueError))
            summary.update(status="failed", error=str(exc))
        summary["seconds"] = round(time.perf_counter() - started, 3)
        summary["links"] = self.links(report_id, summary["status"] == "done")
        self.store.write(report_id, html, evidently_json, summary, aliases)
        self.store.prune(self.kept)
        if asked is None:  # a report of an older window leaves the schedule's latest records unreported
            self.reported_seq = max(self.reported_seq, window.get("last_seq", 0))
        self.counts["made" if summary["status"] == "done" else "failed"] += 1
        self.counts["coalesced"] += len(aliases)
        log.info("report %s %s in %.2f s", report_id, summary["status"], summary["seconds"])
        return summary

    def _current(self, asked: tuple[float, float] | None) -> tuple[list[Row], Row]:
        """The report's current rows and the summary's `window`."""
        if asked is None:
            rows, bounds = self.store.latest(self.window)
            return rows, _iso(bounds)
        rows, bounds = self.store.in_window(*asked)
        return rows, describe_window(asked, bounds, self.store.pruning(), self.store.first_kept)

    def reference(self) -> tuple[list[Row], Row]:
        note = "no champion known yet: the earliest records seen are the reference"
        champion = self.store.champion()
        if champion is not None:
            version = champion[0]
            window = self.store.window_of(version)
            if window is None:
                note = (
                    f"champion {version}: no ModelTrained seen for it; the earliest records are the reference"
                )
            else:
                rows, in_window = self._frozen(version, window)
                described: Row = {
                    "source": "champion",
                    "model_version": version,
                    "training_window": _iso({"start": window[0], "end": window[1]}),
                    "rows": len(rows),
                    "kept_records_in_window": in_window,
                }
                if len(rows) >= MIN_REFERENCE:
                    return rows, described
                note = (
                    f"champion {version}: only {len(rows)} kept records fall in its training window; "
                    "the earliest records seen are the reference"
                )
        rows, bounds = self.store.earliest()
        return rows, {"source": "earliest", "note": note, **_iso(bounds)}

    def _frozen(self, version: str, window: tuple[float, float]) -> tuple[list[Row], int]:
        frozen = self.store.reference(version)
        if frozen is not None and len(frozen[0]) >= self.reference_max:
            return frozen
        in_window = self.store.between(*window)
        if frozen is None or len(in_window) > frozen[1]:
            frozen = (sample_evenly(in_window, self.reference_max), len(in_window))
            self.store.freeze_reference(version, *frozen)
        return frozen

    # What ops read.
    def links(self, report_id: str, with_files: bool = True) -> dict[str, str]:
        links = {"summary": self.url(report_id)}
        if with_files:
            links |= {"html": f"{self.url(report_id)}.html", "json": f"{self.url(report_id)}/json"}
        return links

    def get(self, report_id: str) -> Row:
        summary = self.store.summary(report_id)
        if summary is not None:
            return summary if summary["id"] == report_id else {**summary, "requested_id": report_id}
        if self.store.is_requested(report_id):
            raise ReportPending(f"report {report_id} is queued and not made yet; try again in a few seconds")
        raise UnknownReport(f"no report {report_id} (unknown, or pruned: {self.kept} reports are kept)")

    def file(self, report_id: str, suffix: str) -> Path:
        summary = self.get(report_id)
        if summary["status"] != "done":
            raise UnknownReport(f"report {report_id} failed ({summary.get('error')}): it has no files")
        path = self.store.path(summary["id"], suffix)
        if not path.is_file():
            raise UnknownReport(f"the files of report {report_id} are gone")
        return path

    def listing(self, limit: int) -> Row:
        champion = self.store.champion()
        return {
            "reports": self.store.summaries(limit),
            "pending": len(self.store.requests()),
            "champion": champion
            and {"model_version": champion[0], "promoted_at": _iso({"start": champion[1]})["start"]},
            **self.counts,
        }


def _iso(bounds: Row) -> Row:
    """Epoch seconds of `start` / `end` as ISO-8601 UTC."""
    return {
        k: datetime.fromtimestamp(v, UTC).isoformat() if k in ("start", "end") else v
        for k, v in bounds.items()
    }
