"""Audit service figures: append rate through the capture path against the real broker, as a ratio to a
plain batched SQLite insert of the same rows in the same run; verify rate; lineage latency at 1M rows.

- capture: `--events` PredictionMade events (about 430 bytes) are produced to a fresh 3-partition topic
  first; then the audit app (create_app: its real subscriptions, parse, dedupe, hash chain, SQLite WAL
  store) consumes the backlog. Rate = rows appended between the first committed batch and the last.
- baseline: the very rows the service stored, inserted by plain `sqlite3.executemany` in transactions
  of the service's batch size (`AUDIT_BATCH_RECORDS`) into a fresh database with the same schema and
  pragmas. No parsing, no hashing, no Kafka: the ceiling for this schema on this disk.
- verify: the whole chain recomputed from the database, with 1 process and with `--workers`.
- lineage: `--lineage-rows` synthetic rows bulk-loaded through the store (with one full drift -> request ->
  trained -> promoted -> prediction flow in the middle), then `--lookups` lineage calls; median and p99.

`--idle-topics N` adds N empty topics to the capture subscription: the platform's audit subscribes to
every topic of the contracts (15), most of them quiet, and polling them costs CPU of its own. CPU per
event is the benchmark process's (the audit app) and the private broker's, user + system, over the
capture window; with `--quiet-seconds S`, also CPU seconds per second over S seconds after the backlog
is through, while nothing arrives (what polling alone costs).

Unless `--bootstrap` is given, the broker is a private LocalKafka on ports `--port`/`--port`+1 (default
19592/19593) in a temp folder. Medians over `--runs`. Nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sqlite3
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import psutil
from aiokafka import AIOKafkaProducer

from bench.common import bench_kafka
from contracts.events import PredictionMade, PredictionMadePayload
from contracts.registry import encode_event
from infra.bus_access import kafka_options
from infra.kafka_local import LocalKafka
from infra.settings import InfraSettings
from infra.topics import TopicPlan, ensure_topics_async
from services.audit.adapters.store import SqlAuditStore
from services.audit.adapters.subject_keys import SubjectKeys
from services.audit.app import create_app
from services.audit.domain.chain import ROW_FIELDS
from services.audit.domain.entry import Captured
from services.audit.handlers import AuditService
from services.audit.lineage import lineage
from services.audit.settings import AuditSettings
from services.audit.verification import verify_store

PORT = 19592
RESULTS = Path(__file__).resolve().parent / "results" / "audit_throughput.json"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.audit_throughput", description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=100_000, help="events per capture run")
    p.add_argument("--runs", type=int, default=3, help="capture runs (fresh topic, group and database each)")
    p.add_argument("--lineage-rows", type=int, default=1_000_000, help="rows stored for the lineage figure")
    p.add_argument("--lookups", type=int, default=200, help="lineage calls timed")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for parallel verify")
    p.add_argument("--idle-topics", type=int, default=0, help="empty topics also subscribed")
    p.add_argument("--quiet-seconds", type=float, default=0.0, help="CPU measured this long with no traffic")
    p.add_argument("--bootstrap", help="HOST:PORT of an existing broker (then none is started)")
    p.add_argument("--port", type=int, default=PORT, help="port of the private broker (controller: +1)")
    p.add_argument("--results", type=Path, default=RESULTS, help="where the JSON results are written")
    return p.parse_args()


def event_values(n: int, run: str) -> list[bytes]:
    """Valid PredictionMade envelopes, distinct ids; built from one template (pydantic once, not n times)."""
    template = encode_event(
        PredictionMade.create(
            PredictionMadePayload(
                prediction_id="PID", entity_id="ENT", model_name="fraud", model_version="4", score=0.42,
                decision="approve", features={"amount_mean_7d": 40.2, "tx_count_7d": 5, "country": "FR"},
                latency_ms=3.1,
            ),
            producer="serving",
        )
    ).decode()  # fmt: skip
    event_id = json.loads(template)["event_id"]
    return [
        template.replace(event_id, str(uuid.uuid4()))
        .replace('"PID"', f'"{run}-{i}"')
        .replace('"ENT"', f'"c-{i % 5000}"')
        .encode()
        for i in range(n)
    ]


async def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(**kafka_options(bootstrap), acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        for first in range(0, len(values), 2000):
            await asyncio.gather(*[await producer.send(topic, v) for v in values[first : first + 2000]])
    finally:
        await producer.stop()


def cpu_s(broker_pid: int | None) -> tuple[float, float]:
    """CPU seconds (user + system) of this process and of the broker (0 when it is not ours)."""
    own = os.times()
    broker = 0.0
    if broker_pid is not None:
        times = psutil.Process(broker_pid).cpu_times()
        broker = times.user + times.system
    return own.user + own.system, broker


async def capture_run(
    bootstrap: str,
    n: int,
    folder: Path,
    idle_topics: int = 0,
    broker_pid: int | None = None,
    quiet_s: float = 0.0,
) -> dict[str, float]:
    run = uuid.uuid4().hex[:8]
    topic = f"bench.audit.{run}"
    idle = [f"{topic}.idle{i}" for i in range(idle_topics)]
    plans = [TopicPlan(topic, 3), TopicPlan(f"{topic}.cp", 1), *(TopicPlan(t, 1) for t in idle)]
    await ensure_topics_async(bootstrap, plans)
    await produce(bootstrap, topic, event_values(n, run))
    settings = AuditSettings(
        kafka_bootstrap_servers=bootstrap, state_dir=folder, topics=[topic, *idle], group_id=f"bench-{run}",
        checkpoint_topic=f"{topic}.cp", checkpoint_interval_s=5.0, checkpoint_every_events=50_000,
    )  # fmt: skip
    app = create_app(settings)
    store: SqlAuditStore = app.state.audit.store
    started = time.perf_counter()
    async with app.router.lifespan_context(app):
        while (first_count := store.head()[0].length) == 0:
            await asyncio.sleep(0.005)
        first_at, cpu_at_first = time.perf_counter(), cpu_s(broker_pid)
        while store.head()[0].length < n:
            await asyncio.sleep(0.005)
        done_at, cpu_at_done = time.perf_counter(), cpu_s(broker_pid)
        await asyncio.sleep(2.0)  # the last commit and checkpoint settle
        quiet_from = cpu_s(broker_pid)
        await asyncio.sleep(quiet_s)
        quiet_to = cpu_s(broker_pid)
    rate = (n - first_count) / (done_at - first_at)
    service_cpu, broker_cpu = (end - start for end, start in zip(cpu_at_done, cpu_at_first, strict=True))
    quiet = {} if not quiet_s else {
        "quiet_service_cpu_s_per_s": (quiet_to[0] - quiet_from[0]) / quiet_s,
        "quiet_broker_cpu_s_per_s": (quiet_to[1] - quiet_from[1]) / quiet_s if broker_pid else float("nan"),
    }  # fmt: skip
    baseline = plain_insert_rate(store, folder / "baseline.db", settings.batch_records)
    verify_1 = timed_verify(store, 1)
    verify_n = timed_verify(store, os.cpu_count() or 1)
    store.dispose()
    return {"service_events_per_s": rate, "baseline_rows_per_s": baseline, "ratio": rate / baseline,
            "service_cpu_ms_per_event": service_cpu * 1000 / (n - first_count),
            "broker_cpu_ms_per_event": broker_cpu * 1000 / (n - first_count) if broker_pid else float("nan"),
            "startup_to_first_batch_s": first_at - started, "verify_rows_per_s_1": verify_1,
            "verify_rows_per_s_parallel": verify_n, **quiet}  # fmt: skip


def plain_insert_rate(source: SqlAuditStore, path: Path, batch: int) -> float:
    rows = list(source.chain_rows())
    target = SqlAuditStore(f"sqlite:///{path}")
    target.migrate()  # same schema, indexes and triggers
    target.dispose()
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "cache_size=-65536", "wal_autocheckpoint=16384"):
        conn.execute(f"PRAGMA {pragma}")
    columns = ", ".join(f'"{c}"' for c in ROW_FIELDS)
    sql = f"INSERT INTO audit_events ({columns}) VALUES ({', '.join('?' * len(ROW_FIELDS))})"
    started = time.perf_counter()
    for first in range(0, len(rows), batch):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, rows[first : first + batch])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return len(rows) / elapsed


def timed_verify(store: SqlAuditStore, workers: int) -> float:
    started = time.perf_counter()
    report = verify_store(store, workers=workers, min_range=50_000)
    assert report.ok, report
    return report.checked / (time.perf_counter() - started)


def lineage_at_scale(rows: int, lookups: int, workers: int, folder: Path) -> dict[str, float]:
    from tests.unit.test_audit_support import captured, lineage_flow

    # The bulk events name subjects, so the store needs a subject secret (crypto-shredding).
    store = SqlAuditStore(f"sqlite:///{folder / 'lineage.db'}", subject_keys=SubjectKeys(os.urandom(32)))
    store.migrate()
    audit = AuditService(store)
    values = event_values(rows, "bulk")
    started = time.perf_counter()
    chunk = 5000
    for first in range(0, rows, chunk):
        audit.capture(
            [
                Captured("predictions.made", 0, first + i, 0, None, v)
                for i, v in enumerate(values[first : first + chunk])
            ]
        )
        if first == rows // 2:
            audit.capture(captured(lineage_flow("pred-lineage"), topic="flow"))
    load_s = time.perf_counter() - started
    del values
    latencies = []
    for _ in range(lookups):
        t0 = time.perf_counter()
        result = lineage(store, "pred-lineage")
        latencies.append(time.perf_counter() - t0)
    assert result["missing"] == []
    latencies.sort()
    figures = {
        "rows": store.head()[0].length, "bulk_load_rows_per_s": rows / load_s,
        "lineage_median_ms": statistics.median(latencies) * 1000,
        "lineage_p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "verify_rows_per_s_1": timed_verify(store, 1),
        "verify_rows_per_s_parallel": timed_verify(store, workers),
    }  # fmt: skip
    store.dispose()
    return figures


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="mlops-bench-audit-") as tmp:
        folder = Path(tmp)
        with bench_kafka(args.bootstrap, folder / "kafka", args.port) as bootstrap:
            ours = LocalKafka(folder / "kafka", InfraSettings().jars_dir, port=args.port)
            broker_pid = None if args.bootstrap else ours.pid()
            runs = []
            for i in range(args.runs):
                folder_i, quiet = folder / f"run{i}", args.quiet_seconds
                run = capture_run(bootstrap, args.events, folder_i, args.idle_topics, broker_pid, quiet)
                runs.append(asyncio.run(run))
                print(json.dumps(runs[-1]))
            scale = lineage_at_scale(args.lineage_rows, args.lookups, args.workers, folder)
            print(json.dumps(scale))
    result = {
        "benchmark": "audit_throughput",
        "command": ".venv/bin/python -m bench.audit_throughput",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"nproc": os.cpu_count(), "loadavg_at_end": os.getloadavg()},
        "parameters": {k: v for k, v in vars(args).items()},
        "runs": runs,
        "median": {key: statistics.median(r[key] for r in runs) for key in runs[0]},
        "at_scale": scale,
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result["median"], indent=2))


if __name__ == "__main__":
    main()
