"""What judging repeated ids costs ingest: `IngestHandler.process` per structured record (no free text,
no Kafka) without a ledger, with the SQLite ledger on a file (first sight of every id), and with every
record an identical resend (all duplicates); and the ledger's `decide` alone. Batches of `--batch`
records, CPU time per record, medians over `--runs`.

    .venv/bin/python -m bench.ingest_ledger --records 20000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from statistics import median

import msgspec

from services.ingest.adapters.ledger import SqliteRecordLedger
from services.ingest.app import create_app
from services.ingest.domain.duplicates import Candidate
from services.ingest.domain.events import Source
from services.ingest.handlers import IngestHandler, RawInput
from services.ingest.settings import IngestSettings
from workbench.demo_data import ApplicationStream

TIMESTAMP_MS = 1_767_225_600_000


class NoPublisher:
    async def publish(self, messages: object) -> None: ...

    async def append_raw(self, topic: str, records: object) -> list[object]:
        return []


def handler(ledger: SqliteRecordLedger | None) -> IngestHandler:
    app = create_app(IngestSettings(), publisher=NoPublisher(), ledger=ledger)  # type: ignore[arg-type]
    h: IngestHandler = app.state.handler
    h.ledger = ledger
    return h


def batches(values: list[bytes], first_offset: int, size: int) -> list[list[RawInput]]:
    raws = [
        RawInput(Source("records.raw", 0, first_offset + i, TIMESTAMP_MS), None, v)
        for i, v in enumerate(values)
    ]
    return [raws[i : i + size] for i in range(0, len(raws), size)]


def per_record_us(h: IngestHandler, chunks: list[list[RawInput]]) -> float:
    """CPU time of this process (the machine is shared: wall time would measure the neighbours)."""
    start = time.process_time()
    n = sum(len(h.process(chunk)) for chunk in chunks)
    return (time.process_time() - start) / n * 1e6


def decide_us(ledger: SqliteRecordLedger, records: int, batch: int) -> float:
    candidates = [Candidate("records.raw", 0, i, f"id-{i}", i.to_bytes(16, "big")) for i in range(records)]
    start = time.process_time()
    for i in range(0, records, batch):
        ledger.decide("d", candidates[i : i + batch])
    return (time.process_time() - start) / records * 1e6


def run_once(values: list[bytes], batch: int) -> dict[str, float]:
    first, resent = batches(values, 0, batch), batches(values, len(values), batch)
    out = {"no ledger": per_record_us(handler(None), first)}
    with tempfile.TemporaryDirectory() as tmp:
        ledger = SqliteRecordLedger(Path(tmp) / "ledger.db")
        judged = handler(ledger)
        out["ledger, new ids"] = per_record_us(judged, first)
        out["ledger, all duplicates"] = per_record_us(judged, resent)
        ledger.close()
        alone = SqliteRecordLedger(Path(tmp) / "alone.db")
        out["decide alone, new ids"] = decide_us(alone, len(values), batch)
        alone.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    apps = ApplicationStream(seed=3, id_prefix="ledger-bench", notes_share=0.0).take(args.records)
    values = [msgspec.json.encode(a.record) for a in apps]
    handler(None).process(batches(values[: args.batch], 0, args.batch)[0])  # warm up
    runs = [run_once(values, args.batch) for _ in range(args.runs)]
    figures = {name: round(median(run[name] for run in runs), 1) for name in runs[0]}
    print(json.dumps(figures | {"unit": "us CPU per record"}))


if __name__ == "__main__":
    main()
