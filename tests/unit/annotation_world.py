"""The annotation service's use cases wired as the app wires them, around a fake Label Studio and an
in-memory state: the world the use-case tests (test_annotation_use_cases.py, test_annotation_labels.py)
run in."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contracts.envelope import Event
from contracts.events import (
    LabelObserved,
    LabelObservedPayload,
    PredictionMade,
    PredictionMadePayload,
)
from servicekit.deadletters import RawMessage
from servicekit.outbox import SqliteOutbox
from services.annotation.adapters.store import AnnotationStore
from services.annotation.domain.policy import SamplingPolicy
from services.annotation.errors import LabelStudioUnavailable, ProjectGone
from services.annotation.intake import Intake
from services.annotation.labels import Labels
from services.annotation.settings import AnnotationSettings
from services.annotation.sync import LabelStudioSync
from services.annotation.views import QueueView
from services.annotation.webhooks import Webhooks

KEY = bytes(range(32))
QUIET = {"audit": {"share": 0}, "fairness": {"share": 0}, "drift": {"share": 0}}


class FakeLabelStudio:
    """Projects, tasks and annotations in memory; `down` makes every call fail as an outage would."""

    def __init__(self) -> None:
        self.down = False
        self.made_projects = 0
        self.during_import: Any = None  # a coroutine run while the import call is in flight
        self.crash_after_import = False
        self.projects: dict[str, int] = {}
        self.tasks_by_id: dict[int, dict[str, Any]] = {}
        self.annotations: dict[int, list[dict[str, Any]]] = {}
        self.webhooks: list[tuple[int, str, dict[str, str]]] = []
        self.imports = 0
        self.returns_ids = True
        self.drops_imports = False

    def _up(self) -> None:
        if self.down:
            raise LabelStudioUnavailable("Label Studio unreachable: ConnectError")

    async def ping(self) -> bool:
        return not self.down

    async def ensure_project(self, title: str, maximum_annotations: int) -> int:
        self._up()
        self.made_projects += title not in self.projects
        return self.projects.setdefault(title, 10 * (self.made_projects + 1))

    async def ensure_webhook(self, project_id: int, url: str, headers: dict[str, str]) -> None:
        self._up()
        if (project_id, url, headers) not in self.webhooks:
            self.webhooks.append((project_id, url, headers))

    async def import_tasks(self, project_id: int, data: list[dict[str, Any]]) -> list[int] | None:
        self._up()
        if project_id not in self.projects.values():
            raise ProjectGone(f"no project {project_id}")
        self.imports += 1
        ids = []
        for d in data:
            if self.drops_imports:
                continue
            task_id = 100 + len(self.tasks_by_id)
            self.tasks_by_id[task_id] = {
                "id": task_id,
                "project": project_id,
                "data": json.loads(json.dumps(d)),
            }
            ids.append(task_id)
        if self.during_import is not None:
            await self.during_import()
        if self.crash_after_import:
            self.crash_after_import = False
            raise LabelStudioUnavailable("the answer was lost")
        return ids if self.returns_ids else None

    async def tasks(self, project_id: int) -> list[dict[str, Any]]:
        self._up()
        return [
            t | {"total_annotations": len(self.annotations.get(t["id"], [])), "cancelled_annotations": 0}
            for t in self.tasks_by_id.values()
            if t["project"] == project_id
        ]

    async def task_annotations(self, task_id: int) -> list[dict[str, Any]] | None:
        self._up()
        return list(self.annotations.get(task_id, [])) if task_id in self.tasks_by_id else None

    async def annotation(self, annotation_id: int) -> dict[str, Any] | None:
        self._up()
        for found in self.annotations.values():
            for a in found:
                if a["id"] == annotation_id:
                    return a
        return None

    def annotate(self, task_id: int, outcome: str, user: int = 7, **extra: Any) -> dict[str, Any]:
        annotation = {
            "id": 1000 + sum(len(v) for v in self.annotations.values()),
            "task": task_id,
            "completed_by": user,
            "updated_at": "2026-03-01T12:00:00.000000Z",
            "was_cancelled": False,
            "ground_truth": False,
            "result": [
                {"from_name": "outcome", "type": "choices", "value": {"choices": [outcome]}},
                {"from_name": "reasoning", "type": "choices", "value": {"choices": ["reasoning wrong"]}},
                {"from_name": "comment", "type": "textarea", "value": {"text": ["ignores the debt"]}},
            ],
        } | extra
        self.annotations.setdefault(task_id, []).append(annotation)
        return annotation


class FakeThresholds:
    def __init__(self, known: dict[tuple[str, str], float]) -> None:
        self.known = known

    def threshold(self, model_name: str, version: str) -> float | None:
        return self.known.get((model_name, version))


class World:
    def __init__(
        self, tmp: Path, policy: dict[str, Any] | None = None, webhook_key: str | None = None
    ) -> None:
        self.settings = AnnotationSettings(state_dir=tmp, http_port=8999)
        self.store = AnnotationStore(None)
        self.sent: list[tuple[Event[Any], str]] = []
        self.bus_down = False
        self.outbox = SqliteOutbox(self.store.db, self._publish)
        self.ls = FakeLabelStudio()
        sampling = SamplingPolicy.from_mapping(QUIET | (policy or {}))
        self.labels = Labels(self.settings, sampling, self.store, self.outbox, KEY)
        self.sync = LabelStudioSync(self.settings, sampling, self.store, self.ls, self.labels, webhook_key)
        thresholds = FakeThresholds({("credit-risk", "3"): 0.3})
        self.intake = Intake(sampling, self.store, thresholds, chosen=self.sync.wake)
        self.webhooks = Webhooks(self.store, self.ls, self.labels, self.settings.max_webhook_bytes)
        self.queue = QueueView(self.settings, self.store, self.outbox, self.sync)
        self.letters: list[tuple[str, str]] = []

    async def _publish(self, event: Event[Any], topic: str) -> None:
        if self.bus_down:
            raise ConnectionError("broker away")
        self.sent.append((event, topic))

    async def dead_letter(self, raw: RawMessage, code: str, message: str) -> None:
        self.letters.append((code, message))

    def published(self) -> list[LabelObserved]:
        return [e for e, _ in self.sent if isinstance(e, LabelObserved)]


def made(pid: str, score: float, version: str = "3", **kw: Any) -> PredictionMade:
    payload = PredictionMadePayload(
        prediction_id=pid, entity_id=f"app-{pid}", model_name="credit-risk", model_version=version,
        score=score, decision="reject" if score >= 0.3 else "approve", latency_ms=1.0,
        features={"age_in_years": 23, "personal_status_and_sex": "female : single", "credit_amount": 2500},
        **kw,
    )  # fmt: skip
    return PredictionMade.create(payload, "serving")


def client_label(pid: str, label: str = "good") -> LabelObserved:
    payload = LabelObservedPayload(
        dataset="loan_applications", entity_id=f"app-{pid}", label=label, event_time=datetime.now(UTC),
        prediction_id=pid,
    )  # fmt: skip
    return LabelObserved.create(payload, "serving")


def run(coro: Any) -> Any:
    return asyncio.run(coro)
