"""What crypto-shredding costs the audit store: the append rate of events that name a data subject (sealed
under per-subject keys) against the same events naming none (nothing sealed), the latency of a query by
entity (which opens the rows), and of one erasure (key deleted, erasure row chained, WAL truncated).
Then the CPU per event of what the platform's stream brings the audit: per demo application
(`--applications`), its records.raw row (content-free), its RecordCleaned and its LabelObserved (both
sealed), into a store that already holds as many. In process, on SQLite files in a temp folder, through
`AuditService.capture` (parse, dedupe, seal, chain, insert); no Kafka. Times are this process's CPU time
(`time.process_time`), so a busy shared machine does not skew them. Medians over `--runs`. Nothing here
asserts on timings.

    python -m bench.audit_sealing [--events 20000] [--subjects 1000] [--applications 10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import msgspec

from contracts.common import KafkaCoordinates
from contracts.events import (
    LabelObserved,
    LabelObservedPayload,
    PredictionMade,
    PredictionMadePayload,
    RecordCleaned,
    RecordCleanedPayload,
)
from contracts.registry import encode_event
from contracts.topics import LABELS_OBSERVED, RECORDS_CLEAN, RECORDS_RAW
from services.audit.adapters.query import EventQuery
from services.audit.adapters.store import SqlAuditStore
from services.audit.adapters.subject_keys import SubjectKeys
from services.audit.domain.entry import Captured
from services.audit.handlers import AuditService

BATCH = 2000  # AuditSettings.batch_records
DATASET = "loan_applications"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.audit_sealing", description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=20_000, help="events appended per run and variant")
    p.add_argument("--subjects", type=int, default=1000, help="distinct subjects among the events")
    p.add_argument("--applications", type=int, default=10_000, help="demo applications of the stream mix")
    p.add_argument("--runs", type=int, default=3, help="runs (fresh databases each)")
    args = p.parse_args(argv)
    if min(args.events, args.subjects, args.applications, args.runs) < 1:
        p.error("--events, --subjects, --applications and --runs must be at least 1")
    return args


def messages(events: int, subjects: int, named: bool) -> list[Captured]:
    found = []
    for i in range(events):
        event = PredictionMade.create(
            PredictionMadePayload(
                prediction_id=f"p-{i}", entity_id=f"app-{i % subjects:06d}" if named else None,
                model_name="credit", model_version="3", score=0.5, decision="approve",
                features={"income": 1000.0 + i, "age": 40}, latency_ms=1.0,
            ),
            producer="bench",
        )  # fmt: skip
        found.append(Captured("predictions.made", 0, i, 1_700_000_000_000, event.key(), encode_event(event)))
    return found


def stream_mix(applications: int, run: int) -> list[Captured]:
    """Per demo application, what reaches the audit: records.raw, RecordCleaned, LabelObserved (the
    clean record is the raw one here: ingest's scrubbing changes a few values, not the sizes much)."""
    from workbench.demo_data import ApplicationStream

    found = []
    for i, app in enumerate(ApplicationStream(seed=run, id_prefix=f"r{run}").take(applications)):
        entity, at = app.record["application_id"], app.record["applied_at"]
        key = entity.encode()
        cleaned = RecordCleaned.create(
            RecordCleanedPayload(dataset=DATASET, entity_id=entity, event_time=at, record=app.record,
                                 source=KafkaCoordinates(topic=RECORDS_RAW, partition=0, offset=i),
                                 scrubbed_fields=["notes"]),
            producer="ingest",
        )  # fmt: skip
        label = LabelObserved.create(
            LabelObservedPayload(dataset=DATASET, entity_id=entity, label=app.label, event_time=at),
            producer="bench",
        )  # fmt: skip
        found += [
            Captured(RECORDS_RAW, 0, i, 1_700_000_000_000, key, msgspec.json.encode(app.record)),
            Captured(RECORDS_CLEAN, 0, i, 1_700_000_000_000, key, encode_event(cleaned)),
            Captured(LABELS_OBSERVED, 0, i, 1_700_000_000_000, key, encode_event(label)),
        ]
    return found


def stream_us_per_event(path: Path, applications: int, run: int) -> float:
    """CPU µs per event of the stream mix's second half, the first half already stored."""
    mix = stream_mix(applications * 2, run)
    half = len(mix) // 2
    _, store = append_rate(path, mix[:half], content_free=(RECORDS_RAW,))
    audit = AuditService(store, content_free_topics=(RECORDS_RAW,))
    started = time.process_time()
    for first in range(half, len(mix), BATCH):
        audit.capture(mix[first : first + BATCH])
    spent = time.process_time() - started
    store.dispose()
    return spent / (len(mix) - half) * 1e6


def append_rate(
    path: Path, batch: list[Captured], content_free: tuple[str, ...] = ()
) -> tuple[float, SqlAuditStore]:
    store = SqlAuditStore(f"sqlite:///{path}", subject_keys=SubjectKeys(os.urandom(32)))
    store.migrate()
    audit = AuditService(store, content_free_topics=content_free)
    started = time.process_time()
    for first in range(0, len(batch), BATCH):
        audit.capture(batch[first : first + BATCH])
    return len(batch) / (time.process_time() - started), store


def main() -> None:
    args = parse_args()
    sealed, clear, by_entity, erase, stream = [], [], [], [], []
    named, anonymous = messages(args.events, args.subjects, True), messages(args.events, args.subjects, False)
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            rate, plain = append_rate(Path(tmp) / f"clear{run}.db", anonymous)
            clear.append(rate)
            plain.dispose()
            rate, store = append_rate(Path(tmp) / f"sealed{run}.db", named)
            sealed.append(rate)
            audit = AuditService(store)
            for subject in range(0, args.subjects, max(1, args.subjects // 50)):
                started = time.process_time()
                store.events(EventQuery(entity_id=f"app-{subject:06d}"))
                by_entity.append(time.process_time() - started)
                started = time.process_time()
                audit.erase(f"app-{subject:06d}", requested_by="bench")
                erase.append(time.process_time() - started)
            store.dispose()
            stream.append(stream_us_per_event(Path(tmp) / f"stream{run}.db", args.applications, run))
    figures = {
        "events": args.events, "subjects": args.subjects, "runs": args.runs,
        "append_rows_per_cpu_s_sealed": round(statistics.median(sealed)),
        "append_rows_per_cpu_s_nothing_to_seal": round(statistics.median(clear)),
        "sealed_vs_nothing_to_seal": round(statistics.median(sealed) / statistics.median(clear), 3),
        "query_by_entity_cpu_ms_median": round(statistics.median(by_entity) * 1000, 2),
        "erase_cpu_ms_median": round(statistics.median(erase) * 1000, 2),
        "stream_mix_applications": args.applications,
        "stream_mix_cpu_us_per_event": [round(x, 1) for x in stream],
        "stream_mix_cpu_us_per_event_median": round(statistics.median(stream), 1),
    }  # fmt: skip
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
