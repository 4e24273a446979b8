"""Step 8 of the demo: labels that come months late (issue 19, item 5).

After the loop has closed, the world gets realistic label delays (workbench/late_labels.py: none
before 90 simulated days, some never; time compressed and said so). Fresh applicants of the same
world stream in until the champion's performance estimate has its reference (its first four windows
of predictions, the drift service's CBPE), then a new channel brings riskier applicants. The drift
service estimates the champion's accuracy from its calibrated scores alone and raises an estimated
drop (`DriftDetected` of kind `performance`); training's policy waits for the labels since the
change. The step stops at the alarm and reports how many rows (and simulated days) before the first
label of the new applicants was due. Like the loop, it drives the platform only through its public
faces: records to `records.raw`, `/predict` and `/labels` on serving, and a read-only watch of
`drift.detected`; ops reads the estimate and the decision.
"""

from __future__ import annotations

import asyncio
import heapq
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from contracts.events import DriftDetected
from contracts.registry import ContractError, parse_event
from contracts.topics import DRIFT_DETECTED, RECORDS_RAW
from infra.bus_access import kafka_options
from infra.loop import consumer_from_end
from workbench.late_labels import LabelDelays, late_world, new_channel


@dataclass(frozen=True)
class LateLabelsConfig:
    rate: float = 40.0  # applications per second
    extra_rows: int = 100  # new-channel applications beyond one estimate window (a few go unserved)
    alarm_wait_s: float = 120.0  # then the stream pauses (simulated time stands still) for the alarm
    predict_lag_s: float = 0.3
    concurrency: int = 16
    seed: int = 29
    timeout_s: float = 300.0
    delays: LabelDelays = field(default_factory=LabelDelays)


@dataclass
class LateState:
    champion: str = ""
    stationary: int = 0  # rows before the change (to complete the estimate's reference)
    window: int = 500  # the estimate's window (predictions)
    sent: int = 0
    served: int = 0
    labels_sent: int = 0
    shifted_labels_sent: int = 0
    alarm_row: int | None = None
    alarm: str = ""
    alarm_event_id: str = ""
    first_shifted_due: int | None = None
    other_alarms: list[str] = field(default_factory=list)


class LateLabelsRun:
    def __init__(
        self,
        config: LateLabelsConfig,
        bootstrap: str,
        serving: httpx.AsyncClient,
        drift: httpx.AsyncClient,
        clock: Any = time.monotonic,
    ) -> None:
        self.config, self.bootstrap, self.serving, self.drift, self.clock = (
            config,
            bootstrap,
            serving,
            drift,
            clock,
        )
        self.state = LateState()
        self.due: list[tuple[int, int, dict[str, str]]] = []  # (row due, tie-breaker, label body)
        self.rng = random.Random(config.seed)
        self._inflight = asyncio.Semaphore(config.concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    async def plan(self) -> None:
        """The champion, and the rows it still needs for its reference, up to a window's boundary."""
        champion = (await self.serving.get("/model")).json()["champion"]
        self.state.champion = str(champion["model_version"])
        estimates = (await self.drift.get("/detectors")).json().get("performance_estimates", [])
        mine = [e for e in estimates if e["version"] == self.state.champion]
        seen = mine[0]["predictions"] if mine else 0
        window = mine[0]["window_size"] if mine else 500
        needed = max(0, (mine[0]["reference_windows"] if mine else 4) * window - seen)
        self.state.stationary = needed + (-(seen + needed)) % window
        self.state.window = window

    async def run(self) -> LateState:
        await self.plan()
        producer = AIOKafkaProducer(**kafka_options(self.bootstrap), acks="all", linger_ms=5)
        await producer.start()
        consumer = await consumer_from_end(self.bootstrap, producer, (DRIFT_DETECTED,))
        watcher = asyncio.create_task(self._watch(consumer))
        try:
            await asyncio.wait_for(self._stream(producer), self.config.timeout_s)
        except TimeoutError:
            pass  # reported: no alarm within the time
        finally:
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=30)
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            await producer.stop()
            await consumer.stop()
        return self.state

    async def _stream(self, producer: AIOKafkaProducer) -> None:
        suffix = datetime.now(UTC).strftime("%H%M%S")
        usual = iter(late_world(self.config.seed, f"late-{suffix}", swapped=True))
        riskier = new_channel(iter(late_world(self.config.seed + 1, f"new-{suffix}", swapped=True)))
        start, total = self.clock(), self.state.stationary + self.state.window + self.config.extra_rows
        for row in range(total):
            if self.state.alarm_row is not None:
                break
            await asyncio.sleep(max(0.0, start + row / self.config.rate - self.clock()))
            while self.due and self.due[0][0] <= row:  # the labels whose time has come
                _, _, body = heapq.heappop(self.due)
                self._spawn(self._label(body))
            shifted = row >= self.state.stationary
            app = next(riskier if shifted else usual)
            record = app.record | {"applied_at": datetime.now(UTC).isoformat()}
            await producer.send(RECORDS_RAW, msgspec.json.encode(record), record["application_id"].encode())
            self.state.sent += 1
            self._spawn(self._decide(app.record["application_id"], app.label, row, shifted))
        await producer.flush()
        # One full window of the new channel is out: time stands still (no application, so no label
        # comes due) while its predictions reach the drift service and its estimate is made.
        deadline = self.clock() + self.config.alarm_wait_s
        while self.state.alarm_row is None and self.clock() < deadline:
            await asyncio.sleep(0.5)

    async def _decide(self, entity: str, label: str, row: int, shifted: bool) -> None:
        await asyncio.sleep(self.config.predict_lag_s)
        deadline = self.clock() + 10
        while True:
            async with self._inflight:
                response = await self.serving.post("/predict", json={"entity_id": entity})
            if response.status_code == 200 or response.status_code != 404 or self.clock() > deadline:
                break
            await asyncio.sleep(0.1)  # its features are not online yet
        if response.status_code != 200:
            return
        self.state.served += 1
        due = self.config.delays.due_row(row, self.rng)
        if due is None:
            return  # this label never comes
        if shifted and (self.state.first_shifted_due is None or due < self.state.first_shifted_due):
            self.state.first_shifted_due = due
        body = {"prediction_id": response.json()["prediction_id"], "label": label, "entity_id": entity}
        body["shifted"] = "1" if shifted else ""
        heapq.heappush(self.due, (due, row, body))

    async def _label(self, body: dict[str, str]) -> None:
        shifted = body.pop("shifted") == "1"
        async with self._inflight:
            response = await self.serving.post("/labels", json=body)
        if response.status_code < 300:
            self.state.labels_sent += 1
            self.state.shifted_labels_sent += shifted

    async def _watch(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=500)
            for messages in batches.values():
                for message in messages:
                    self._mark(message.value or b"")

    def _mark(self, value: bytes) -> None:
        try:
            event = parse_event(value)
        except ContractError:
            return
        if not isinstance(event, DriftDetected):
            return
        p = event.payload
        if (
            p.kind == "performance"
            and p.model_version == self.state.champion
            and self.state.alarm_row is None
        ):
            self.state.alarm_row, self.state.alarm = self.state.sent, p.meaning or p.detector
            self.state.alarm_event_id = str(event.event_id)
        elif p.kind != "performance":
            what = f"{p.kind} drift" + (f" in {p.feature}" if p.feature else "")
            self.state.other_alarms.append(f"{what} at row {self.state.sent}")

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def figures(state: LateState, delays: LabelDelays) -> dict[str, Any]:
    """What the demo shows and the summary keeps (rows counted from the change)."""
    alarm = None if state.alarm_row is None else state.alarm_row - state.stationary
    ahead = None
    if state.alarm_row is not None and state.first_shifted_due is not None:
        ahead = state.first_shifted_due - state.alarm_row
    return {
        "champion": state.champion,
        "rows_before_change": state.stationary,
        "rows_sent": state.sent,
        "alarm_rows_after_change": alarm,
        "alarm": state.alarm,
        "rows_before_first_label": ahead,
        "days_before_first_label": None if ahead is None else ahead / delays.rows_per_day,
        "labels_sent": state.labels_sent,
        "new_channel_labels_sent": state.shifted_labels_sent,
        "other_alarms": state.other_alarms,
        "time_compression": delays.describe(),
    }
