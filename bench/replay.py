"""Replay figures: how long `mlops replay` takes to rebuild features and audit state from `--records`
clean records, against the live consumption of the same records in the same run.

- The records (RecordCleaned of the demo's loan applications, about 1 KB) are produced once to a fresh
  3-partition topic.
- live: the service's app (create_app: its real subscription, handlers and stores) started in this
  process with a fresh group and state, timed from its start to the last record committed; `reading`
  leaves out the start-up (from the first record committed to the last).
- replay: the `mlops replay` CLI as an operator runs it (its own process, which starts the service's
  process), `--runs` times into fresh groups and folders; its summary's `seconds` (from the replay
  process's start to the window's end) and `startup_s`. Medians over the runs.
- The audit reads only the records' topic here (the platform's audit reads every topic; quiet ones cost
  a little polling).

Unless `--bootstrap` is given, the broker is a private LocalKafka on ports `--port`/`--port`+1 in a temp
folder. Results go to bench/results/replay.json. Nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from bench.common import bench_kafka
from contracts.common import KafkaCoordinates
from contracts.events import RecordCleaned, RecordCleanedPayload
from contracts.registry import encode_event
from infra.bus_access import kafka_options
from infra.lag import LagReader
from infra.settings import REPO_ROOT
from infra.topics import TopicPlan, ensure_topics_async, platform_topics
from services.audit.app import create_app as create_audit
from services.audit.settings import AuditSettings
from services.features.app import create_app as create_features
from services.features.settings import FeaturesSettings
from workbench.demo_data import ApplicationStream

PII = ("applicant_name", "email", "phone", "card_number", "ssn", "notes")


def clean_records(n: int) -> list[bytes]:
    out = []
    for i, app in enumerate(ApplicationStream(seed=7, id_prefix="bench-replay").take(n)):
        record = {k: v for k, v in app.record.items() if k not in PII}
        payload = RecordCleanedPayload(
            dataset="loan_applications", entity_id=record["application_id"],
            event_time=datetime.fromisoformat(record["applied_at"]), record=record,
            source=KafkaCoordinates(topic="records.raw", partition=0, offset=i), scrubbed_fields=list(PII),
        )  # fmt: skip
        out.append(encode_event(RecordCleaned.create(payload, producer="ingest")))
    return out


async def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    await ensure_topics_async(bootstrap, [TopicPlan(topic, 3)])
    producer = AIOKafkaProducer(**kafka_options(bootstrap), linger_ms=5, compression_type="lz4", acks="all")
    await producer.start()
    try:
        pending = [await producer.send(topic, v, key=str(i).encode()) for i, v in enumerate(values)]
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def live_rate(app: FastAPI, bootstrap: str, group: str, topic: str, n: int) -> dict[str, float]:
    """Seconds from the app's start to `n` records committed by `group`, and from the first commit."""
    reader = LagReader(bootstrap)
    await reader.start()
    started, first = time.monotonic(), None
    try:
        async with app.router.lifespan_context(app):
            while True:
                committed = await reader.admin.list_consumer_group_offsets(group)
                done = sum(m.offset for tp, m in committed.items() if tp.topic == topic and m.offset > 0)
                if done and first is None:
                    first = time.monotonic()
                if done >= n:
                    break
                await asyncio.sleep(0.25)
        end = time.monotonic()
    finally:
        await reader.stop()
    return {
        "seconds": end - started,
        "reading_s": end - (first or started),
        "records_per_s": n / (end - started),
    }


def live_app(service: str, bootstrap: str, state: Path, topic: str, group: str, updated: str) -> FastAPI:
    common: dict[str, Any] = {"kafka_bootstrap_servers": bootstrap, "state_dir": state, "group_id": group}
    if service == "features":
        return create_features(FeaturesSettings(**common, clean_topic=topic, updated_topic=updated))
    return create_audit(AuditSettings(**common, topics=[topic]))


def replay(env: dict[str, str], service: str, group: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "infra.cli", "replay", service, "--group", group, "--from-offset", "0"],
        env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return round(statistics.median(float(r[key]) for r in runs), 2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--services", default="features,audit")
    parser.add_argument("--bootstrap")
    parser.add_argument("--port", type=int, default=19892)
    args = parser.parse_args()
    run = uuid.uuid4().hex[:8]
    topic = f"bench.replay.clean.{run}"
    results: dict[str, Any] = {"records": args.records, "runs": args.runs}
    with (
        tempfile.TemporaryDirectory() as tmp,
        bench_kafka(args.bootstrap, Path(tmp) / "kafka", args.port) as bootstrap,
    ):
        updated = f"bench.replay.updated.{run}"  # what the live features service announces on
        asyncio.run(ensure_topics_async(bootstrap, [*platform_topics(3, 1), TopicPlan(updated, 1)]))
        values = clean_records(args.records)
        asyncio.run(produce(bootstrap, topic, values))
        print(f"produced {len(values)} clean records to {topic}", file=sys.stderr)
        state = Path(tmp) / "live"
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "MLOPS_STATE_DIR": str(state),
               "FEATURES_CLEAN_TOPIC": topic, "FEATURES_UPDATED_TOPIC": updated,
               "AUDIT_TOPICS": json.dumps([topic])}  # fmt: skip
        for service in args.services.split(","):
            group = f"{service}-live-{run}"
            app = live_app(service, bootstrap, state, topic, group, updated)
            live = asyncio.run(live_rate(app, bootstrap, group, topic, args.records))
            print(f"{service} live: {live}", file=sys.stderr)
            runs = []
            for i in range(args.runs):
                runs.append(replay(env, service, f"{service}-replay-{run}-{i}"))
                print(f"{service} replay {i + 1}: {runs[-1]['seconds']} s", file=sys.stderr)
            results[service] = {
                "live": {k: round(v, 2) for k, v in live.items()},
                "replay": {k: median_of(runs, k) for k in ("seconds", "startup_s", "records_per_s")}
                | {"reading_s": round(statistics.median(r["seconds"] - r["startup_s"] for r in runs), 2)},
                "replay_runs_s": [r["seconds"] for r in runs],
            }
    print(json.dumps(results, indent=2))
    out = REPO_ROOT / "bench" / "results" / "replay.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
