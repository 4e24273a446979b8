"""Demo producer: replays the loan applications to records.raw at a chosen rate, publishes each label
to labels.observed `--label-delay-s` seconds later (as ground truth arrives in reality), optionally
injects drift and some malformed records, and with `--follow` waits for ingest's outcomes and prints
the counts of clean and rejected records.

    python -m workbench.demo_producer --rate 200 --rows 1000 \
        --drift-kind covariate --drift-at 500 --label-delay-s 5 [--bootstrap HOST:PORT] [--follow]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections import Counter, deque
from datetime import datetime, timedelta
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress

from contracts.events import LabelObserved, LabelObservedPayload
from contracts.registry import encode_event
from contracts.topics import LABELS_OBSERVED, RECORDS_CLEAN, RECORDS_RAW, RECORDS_REJECTED
from infra.bus_access import kafka_options
from servicekit.cli_args import non_negative_float, non_negative_int, positive_float, positive_int, prog
from services.ingest.settings import IngestSettings
from workbench.demo_data import (
    DRIFT_KINDS,
    ApplicationStream,
    DriftSpec,
    LoanApplication,
    drift_features,
    run_id,
)

log = logging.getLogger("workbench.demo_producer")
BAD_RECORDS = (b"not json at all", b"[1, 2, 3]", b'{"application_id": "x"}', b"")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Every flag is checked before anything is sent: a bad one is a one-line error and exit 2."""
    p = argparse.ArgumentParser(prog=prog("python -m workbench.demo_producer"), description=__doc__)
    p.add_argument(
        "--rate", type=non_negative_float, default=200.0, help="records per second (0: as fast as possible)"
    )
    p.add_argument("--rows", type=positive_int, default=1000, help="records to send (the dataset is cycled)")
    p.add_argument("--drift-kind", choices=DRIFT_KINDS, default="none")
    p.add_argument("--drift-at", type=non_negative_int, default=0, help="first drifted row")
    p.add_argument("--drift-feature", default="credit_amount", help="numeric feature of a covariate shift")
    p.add_argument("--drift-factor", type=positive_float, default=1.8, help="multiplier of a covariate shift")
    p.add_argument(
        "--label-delay-s", type=non_negative_float, default=5.0, help="seconds before a label is published"
    )
    p.add_argument(
        "--bad-every",
        type=non_negative_int,
        default=0,
        help="also send a malformed record every N rows (0: never)",
    )
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS)")
    p.add_argument("--follow", action="store_true", help="wait for ingest's outcomes and print counts")
    p.add_argument("--follow-timeout-s", type=positive_float, default=120.0)
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = p.parse_args(argv)
    numeric = drift_features()
    if args.drift_feature not in numeric:
        p.error(
            f"--drift-feature {args.drift_feature!r} is not a numeric feature; one of: {', '.join(numeric)}"
        )
    if args.drift_kind != "none" and args.drift_at >= args.rows:
        p.error(f"--drift-at {args.drift_at} is not below --rows {args.rows}: no row would drift")
    return args


class SendProgress:
    """How far `produce` is, on stderr: a bar on a terminal, else a line per tenth of the run (a log
    or a CI job has no terminal to redraw). stdout stays the JSON summary."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total, self.quiet, self._next_line = total, quiet, 0
        self._bar: Progress | None = None
        if not quiet and sys.stderr.isatty():
            columns = (*Progress.get_default_columns(), MofNCompleteColumn())
            self._bar = Progress(*columns, console=Console(stderr=True), transient=True)
            self._task = self._bar.add_task("records.raw", total=total)
            self._bar.start()

    def sent(self, count: int, labels: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=count, description=f"records.raw ({labels} labels)")
        elif not self.quiet and (count >= self._next_line or count == self.total):
            print(f"sent {count}/{self.total} records, {labels} labels", file=sys.stderr, flush=True)
            self._next_line = count + max(1, self.total // 10)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def label_event(app: LoanApplication, dataset: str, delay_s: float) -> LabelObserved:
    applied_at = app.record["applied_at"]
    event_time = datetime.fromisoformat(applied_at) + timedelta(seconds=delay_s)
    payload = LabelObservedPayload(
        dataset=dataset, entity_id=app.record["application_id"], label=app.label, event_time=event_time
    )
    return LabelObserved.create(payload, producer="demo-producer")


async def produce(args: argparse.Namespace, bootstrap: str) -> dict[str, Any]:
    run = run_id()
    drift = DriftSpec(args.drift_kind, args.drift_at, args.drift_feature, args.drift_factor)
    stream = iter(ApplicationStream(drift, seed=args.seed, id_prefix=f"app-{run}"))
    producer = AIOKafkaProducer(**kafka_options(bootstrap), acks="all", enable_idempotence=True, linger_ms=5)
    try:
        await producer.start()
    except BaseException:
        await producer.stop()  # a producer that never connected still holds a session to close
        raise
    pending: deque[tuple[float, LabelObserved]] = deque()
    sent: dict[tuple[int, int], str] = {}  # (partition, offset) -> entity id or "bad"
    labels = drifted = 0
    started = time.monotonic()
    progress = SendProgress(args.rows, args.quiet)
    try:
        for i in range(args.rows):
            if args.rate > 0:
                await asyncio.sleep(max(0.0, started + i / args.rate - time.monotonic()))
            app = next(stream)
            drifted += app.drifted
            key = app.record["application_id"].encode()
            meta = await (await producer.send(RECORDS_RAW, msgspec.json.encode(app.record), key))
            sent[(meta.partition, meta.offset)] = app.record["application_id"]
            due = time.monotonic() + args.label_delay_s
            pending.append((due, label_event(app, "loan_applications", args.label_delay_s)))
            if args.bad_every and i % args.bad_every == args.bad_every - 1:
                bad = BAD_RECORDS[(i // args.bad_every) % len(BAD_RECORDS)]
                meta = await producer.send_and_wait(RECORDS_RAW, bad, key)
                sent[(meta.partition, meta.offset)] = "bad"
            labels += await _publish_due(producer, pending, time.monotonic())
            progress.sent(i + 1, labels)
        while pending:
            await asyncio.sleep(max(0.0, pending[0][0] - time.monotonic()))
            labels += await _publish_due(producer, pending, time.monotonic())
        await producer.flush()
    finally:
        progress.close()
        await producer.stop()
    entities = [entity for entity in sent.values() if entity != "bad"]
    return {
        "run": run, "records": len(sent), "labels": labels, "drifted_rows": drifted,
        "first_entities": entities[:200], "sent": sent,
    }  # fmt: skip


async def _publish_due(
    producer: AIOKafkaProducer, pending: deque[tuple[float, LabelObserved]], now: float
) -> int:
    count = 0
    while pending and pending[0][0] <= now:
        _, event = pending.popleft()
        await producer.send(LABELS_OBSERVED, encode_event(event), event.key())
        count += 1
    return count


async def follow(bootstrap: str, sent: dict[tuple[int, int], str], timeout_s: float) -> Counter[str]:
    """Read records.clean and records.rejected until every sent offset has an outcome."""
    consumer = AIOKafkaConsumer(
        RECORDS_CLEAN,
        RECORDS_REJECTED,
        **kafka_options(bootstrap),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: dict[tuple[int, int], str] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while len(seen) < len(sent) and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for tp, records in batches.items():
                for record in records:
                    event = json.loads(record.value or b"{}")
                    source = event.get("payload", {}).get("source", {})
                    where = (source.get("partition"), source.get("offset"))
                    if source.get("topic") == RECORDS_RAW and where in sent:
                        code = "clean" if tp.topic == RECORDS_CLEAN else event["payload"]["reason"]["code"]
                        seen[where] = code
    finally:
        await consumer.stop()
    counts = Counter(seen.values())
    counts["missing"] = len(sent) - len(seen)
    return counts


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # its reconnect chatter; we say it once
    args = parse_args(argv)
    bootstrap = args.bootstrap or IngestSettings().kafka_bootstrap_servers
    try:
        summary = asyncio.run(produce(args, bootstrap))
        sent = summary.pop("sent")
        if args.follow:
            summary["outcomes"] = dict(asyncio.run(follow(bootstrap, sent, args.follow_timeout_s)))
    except (KafkaError, OSError) as err:  # an unreachable or refusing broker: one line, exit 2
        print(
            f"error: Kafka at {bootstrap}: {err} (is `mlops up` running?)",
            file=sys.stderr,
        )
        return 2
    sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    return 0 if summary.get("outcomes", {}).get("missing", 0) == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
