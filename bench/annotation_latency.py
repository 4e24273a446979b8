"""How fast a case reaches a reviewer and an answer reaches the bus (issue #15's figures).

`python -m bench.annotation_latency [--predictions 100] [--rate 10] [--annotations 30]`

The stack as `mlops up --with-label-studio --services annotation` starts it (its own state folder and
ports: Kafka 19892, the services from 19901, Label Studio 19990), fed `PredictionMade` events as
serving would publish them, each near the decision threshold (the policy's default, 0.5, since this
stack has no registered model), so the policy sends every one for review:

- **prediction -> task open**: from the event's time to the moment the service has imported it into
  Label Studio and holds its task id (`opened_at` on `GET /tasks/{prediction_id}`): the task is then
  visible in Label Studio's UI;
- **annotation -> LabelObserved**: from just before a scripted analyst's `POST
  /api/tasks/{id}/annotations/` to the `LabelObserved` read back from `labels.observed` (webhook path;
  the poll every `ANNOTATION_POLL_INTERVAL_S`, 10 s by default, is the fallback's bound).

Baseline in the same run: Label Studio's own API on the same server, the floor under each figure:
importing one task into a scratch project, and creating one annotation (the analyst's call above).
Medians and p95 over the samples of one run; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.platform_stack import Stack
from contracts.events import PredictionMade, PredictionMadePayload
from contracts.registry import encode_event, parse_event
from contracts.topics import LABELS_OBSERVED, PREDICTIONS_MADE
from infra.bus_access import kafka_options
from infra.label_studio import auth_header
from infra.supervisor import SERVICE_ORDER

KAFKA_PORT, FIRST_SERVICE_PORT, LABEL_STUDIO_PORT = 19892, 19901, 19990
RESULTS = Path(__file__).parent / "results" / "annotation_latency.json"
CONFIG = (
    '<View><Text name="t" value="$text"/><Choices name="c" toName="t"><Choice value="a"/></Choices></View>'
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.annotation_latency", description=__doc__.split("\n")[0])
    p.add_argument(
        "--predictions", type=int, default=100, help="predictions published (all near the threshold)"
    )
    p.add_argument("--rate", type=float, default=10.0, help="predictions per second")
    p.add_argument("--annotations", type=int, default=30, help="tasks a scripted analyst answers, one by one")
    args = p.parse_args(argv)
    if args.predictions < 1 or args.rate <= 0 or not 1 <= args.annotations <= args.predictions:
        p.error("need predictions >= 1, rate > 0 and 1 <= annotations <= predictions")
    return args


def prediction(run: str, i: int) -> PredictionMade:
    payload = PredictionMadePayload(
        prediction_id=f"bench-{run}-{i}", entity_id=f"bench-{run}-{i}", model_name="credit-risk",
        model_version="1", score=0.5 + ((i % 9) - 4) / 100, decision="approve",
        features={"duration_in_month": 12, "credit_amount": 2500, "age": 35,
                  "personal_status_and_sex": "male : single"},
        latency_ms=5.0,
    )  # fmt: skip
    return PredictionMade.create(payload, producer="serving")


def quantiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "median": None, "p95": None}
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "median": statistics.median(ordered),
        "p95": ordered[int(0.95 * (len(ordered) - 1))],
    }


class AnnotationStack(Stack):
    def env(self) -> dict[str, str]:
        return {**super().env(), "MLOPS_LABEL_STUDIO_PORT": str(LABEL_STUDIO_PORT)}


class Bench:
    def __init__(self, stack: Stack, args: argparse.Namespace) -> None:
        self.stack, self.args = stack, args
        self.run = uuid.uuid4().hex[:8]
        secrets = stack.state / "secrets"
        keys = json.loads((secrets / "api-keys.json").read_text())
        port = FIRST_SERVICE_PORT + SERVICE_ORDER.index("annotation")
        self.ops = httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": keys["dev-ops"]["key"]}
        )
        self.studio = httpx.Client(
            base_url=f"http://127.0.0.1:{LABEL_STUDIO_PORT}", headers=auth_header(secrets), timeout=30
        )

    async def publish(self) -> dict[str, float]:
        """The predictions at the given rate; their event times by prediction id."""
        producer = AIOKafkaProducer(**kafka_options(self.stack.bootstrap), acks="all")
        await producer.start()
        sent: dict[str, float] = {}
        try:
            for i in range(self.args.predictions):
                event = prediction(self.run, i)
                await producer.send_and_wait(PREDICTIONS_MADE, encode_event(event), key=event.key())
                sent[event.payload.prediction_id] = event.occurred_at.timestamp()
                await asyncio.sleep(1 / self.args.rate)
        finally:
            await producer.stop()
        return sent

    def tasks_open(self, sent: dict[str, float], timeout_s: float = 300) -> dict[str, dict[str, Any]]:
        deadline, found = time.monotonic() + timeout_s, dict[str, dict[str, Any]]()
        while len(found) < len(sent) and time.monotonic() < deadline:
            for pid in sent.keys() - found.keys():
                answer = self.ops.get(f"/tasks/{pid}")
                if answer.status_code == 200 and answer.json()["state"] == "open":
                    found[pid] = answer.json()
            time.sleep(0.5)
        return found

    async def annotate(self, tasks: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
        """Each task answered in turn; (annotation -> LabelObserved seconds, the API call's seconds)."""
        consumer = AIOKafkaConsumer(
            LABELS_OBSERVED, **kafka_options(self.stack.bootstrap), auto_offset_reset="latest"
        )
        await consumer.start()
        round_trips, calls = [], []
        try:
            await consumer.seek_to_end()
            for task in tasks:
                started = time.time()
                body = {"result": [{"from_name": "outcome", "to_name": "explanation", "type": "choices",
                                    "value": {"choices": ["good"]}}]}  # fmt: skip
                answer = self.studio.post(f"/api/tasks/{task['task_id']}/annotations/", json=body)
                calls.append(time.time() - started)
                answer.raise_for_status()
                while True:
                    batch = await consumer.getmany(timeout_ms=30_000)
                    if not batch:
                        raise TimeoutError(f"no LabelObserved for task {task['task_id']} within 30 s")
                    labels = [parse_event(m.value) for ms in batch.values() for m in ms]
                    if any(
                        getattr(e.payload, "prediction_id", None) == task["prediction_id"] for e in labels
                    ):
                        round_trips.append(time.time() - started)
                        break
        finally:
            await consumer.stop()
        return round_trips, calls

    def import_baseline(self, n: int = 20) -> list[float]:
        project = self.studio.post(
            "/api/projects/", json={"title": f"bench-{self.run}", "label_config": CONFIG}
        )
        project.raise_for_status()
        seconds = []
        for i in range(n):
            started = time.time()
            self.studio.post(
                f"/api/projects/{project.json()['id']}/import", json=[{"data": {"text": str(i)}}]
            )
            seconds.append(time.time() - started)
        return seconds


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-annotation-") as state:
        stack = AnnotationStack(Path(state), KAFKA_PORT, FIRST_SERVICE_PORT)
        stack.mlops("up", "--with-label-studio", "--services", "annotation")
        try:
            bench = Bench(stack, args)
            sent = asyncio.run(bench.publish())
            opened = bench.tasks_open(sent)
            to_task = [
                datetime.fromisoformat(t["opened_at"]).timestamp() - sent[pid] for pid, t in opened.items()
            ]
            chosen = sorted(opened.values(), key=lambda t: t["task_id"])[: args.annotations]
            round_trips, calls = asyncio.run(bench.annotate(chosen))
            imports = bench.import_baseline()
        finally:
            stack.down()
    label, floor = quantiles(round_trips), quantiles(calls)
    result: dict[str, Any] = {
        "at": datetime.now(UTC).isoformat(),
        "args": vars(args),
        "tasks_open": f"{len(opened)}/{len(sent)}",
        "prediction_to_task_open_s": quantiles(to_task),
        "annotation_to_label_s": label,
        "baseline_import_one_task_s": quantiles(imports),
        "baseline_create_annotation_s": floor,
    }
    if label["median"] and floor["median"]:
        result["annotation_to_label_over_api_call"] = label["median"] / floor["median"]
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
