"""The demo's annotation round trip (`mlops demo --with-label-studio`): an analyst reviews a decision.

1. serving scores the demo's first applications again, by entity key (new predictions, which no
   client has labelled);
2. the annotation service's policy sends the uncertain ones (near the threshold) to Label Studio as
   tasks; the step times each from the prediction to its task being open there;
3. a scripted analyst answers one task through Label Studio's API, as a person would in its UI, with
   the application's true outcome (read from the audit trail, where its client label is recorded);
4. the label comes back as a `LabelObserved` from the annotation service: the step times it, and
   shows how the audit trail links it to its task and prediction (`GET /lineage/{prediction_id}`).

Run alone on a running demo stack (with Label Studio and the annotation service) as
`python -m infra.annotation_step`: it reads the entities from `<state>/demo/entities.json`.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from infra.demo_loop import client
from infra.label_studio import auth_header
from infra.settings import InfraSettings

ENTITIES_FILE = "entities.json"
PREDICTIONS = 200


class StepFailed(Exception):
    """The round trip did not complete; the message says where it stopped."""


def run_step(
    settings: InfraSettings, console: Console, entity_ids: list[str], timeout_s: float = 180
) -> dict[str, Any]:
    """Steps 1-4 above; the figures, also written to `<state>/demo/annotation.json`."""
    with console.status("9. an analyst reviews an uncertain decision in Label Studio..."):
        figures = _round_trip(settings, entity_ids[:PREDICTIONS], timeout_s)
    console.print(_table(settings, figures))
    out = settings.state_dir / "demo"
    out.mkdir(parents=True, exist_ok=True)
    (out / "annotation.json").write_text(json.dumps(figures, indent=2) + "\n")
    return figures


def _round_trip(settings: InfraSettings, entity_ids: list[str], timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    with (
        client(settings, "serving", "client") as serving,
        client(settings, "annotation", "ops") as annotation,
        client(settings, "audit", "auditor") as audit,
        httpx.Client(
            base_url=_label_studio_url(settings), headers=auth_header(settings.secrets_dir)
        ) as studio,
    ):
        served = {}
        for entity_id in entity_ids:
            answer = serving.post("/predict", json={"entity_id": entity_id})
            answer.raise_for_status()
            served[answer.json()["prediction_id"]] = (entity_id, time.time(), answer.json())
        tasks = _wait_for_tasks(annotation, served, deadline)
        open_ = [t for t in tasks.values() if t["state"] == "open"]
        if not open_:
            raise StepFailed(f"none of {len(served)} predictions became an open task: {_states(tasks)}")
        chosen = min(open_, key=lambda t: abs(float(served[t["prediction_id"]][2]["score"]) - 0.5))
        entity_id, _, prediction = served[chosen["prediction_id"]]
        truth = _client_label(audit, entity_id) or "good"
        annotated_at = time.time()
        answer = studio.post(f"/api/tasks/{chosen['task_id']}/annotations/", json={"result": _result(truth)})
        if answer.status_code != 201:
            raise StepFailed(f"Label Studio refused the annotation: {answer.status_code} {answer.text[:300]}")
        settled = _wait(lambda: _settled(annotation, chosen["prediction_id"]), deadline, "the label")
        label_s = time.time() - annotated_at
        lineage = _wait(
            lambda: _audited(audit, chosen["prediction_id"]), deadline, "the label in the audit trail"
        )
    visible = [_seconds(t["opened_at"]) - served[pid][1] for pid, t in tasks.items() if t.get("opened_at")]
    return {
        "predictions": len(served),
        "tasks": len(tasks),
        "states": _states(tasks),
        "reasons": _reasons(tasks),
        "prediction_to_task_s_median": statistics.median(visible) if visible else None,
        "prediction_to_task_s_max": max(visible) if visible else None,
        "task_id": chosen["task_id"],
        "prediction_id": chosen["prediction_id"],
        "score": prediction["score"],
        "decision": prediction["decision"],
        "analyst_label": truth,
        "annotation_to_label_s": label_s,
        "label": {k: settled.get(k) for k in ("state", "outcome", "agreement", "annotators")},
        "audit": lineage,
    }


def _wait_for_tasks(
    annotation: httpx.Client, served: dict[str, Any], deadline: float
) -> dict[str, dict[str, Any]]:
    """The tasks made for the served predictions, once none is still queued and at least one is open
    (a prediction the policy did not choose has no task: 404)."""
    tasks: dict[str, dict[str, Any]] = {}
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        for prediction_id in served:
            answer = annotation.get(f"/tasks/{prediction_id}")
            if answer.status_code == 200:
                if prediction_id not in tasks or tasks[prediction_id] != answer.json():
                    quiet_since = time.monotonic()
                tasks[prediction_id] = answer.json()
        settled = tasks and all(t["state"] != "queued" for t in tasks.values())
        if (
            settled
            and any(t["state"] == "open" for t in tasks.values())
            and time.monotonic() - quiet_since > 3
        ):
            return tasks
        time.sleep(1)
    return tasks


def _settled(annotation: httpx.Client, prediction_id: str) -> dict[str, Any] | None:
    task: dict[str, Any] = annotation.get(f"/tasks/{prediction_id}").json()
    return task if task["state"] in ("labelled", "disputed", "superseded") else None


def _audited(audit: httpx.Client, prediction_id: str) -> dict[str, Any] | None:
    answer = audit.get(f"/lineage/{prediction_id}")
    if answer.status_code != 200:
        return None
    labels = [x for x in answer.json().get("labels", []) if x["source"] == "annotation"]
    if not labels:
        return None
    found = labels[0]
    report = audit.get("/verify").json()
    return {k: found[k] for k in ("task_id", "annotators", "agreement", "caused_by_prediction")} | {
        "intact": report.get("intact"),
        "problems": report.get("problems", [])[:5],  # what a broken chain is broken by, to act on
    }


def _client_label(audit: httpx.Client, entity_id: str) -> str | None:
    """The application's outcome as its client reported it (the auditor sees it unsealed)."""
    answer = audit.get("/events", params={"event_type": "LabelObserved", "entity_id": entity_id})
    for row in answer.json()["items"] if answer.status_code == 200 else []:
        payload = (row.get("event") or {}).get("payload", {})
        if payload.get("source", "client") == "client" and payload.get("label") in ("good", "bad"):
            return str(payload["label"])
    return None


def _result(outcome: str) -> list[dict[str, Any]]:
    return [
        {"from_name": "outcome", "to_name": "explanation", "type": "choices", "value": {"choices": [outcome]}}
    ]


def _wait(probe: Any, deadline: float, what: str) -> Any:
    while time.monotonic() < deadline:
        if found := probe():
            return found
        time.sleep(0.5)
    raise StepFailed(f"timed out waiting for {what}")


def _states(tasks: dict[str, dict[str, Any]]) -> dict[str, int]:
    states = [t["state"] for t in tasks.values()]
    return {s: states.count(s) for s in sorted(set(states))}


def _reasons(tasks: dict[str, dict[str, Any]]) -> dict[str, int]:
    reasons = [r for t in tasks.values() for r in t["reasons"]]
    return {r: reasons.count(r) for r in sorted(set(reasons))}


def _seconds(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def _label_studio_url(settings: InfraSettings) -> str:
    return f"http://127.0.0.1:{settings.label_studio_port}"


def _table(settings: InfraSettings, f: dict[str, Any]) -> Table:
    table = Table(title="9. An analyst in the loop (Label Studio)", show_header=False)
    table.add_row("predictions scored again", f"{f['predictions']} (no client label yet)")
    reasons = ", ".join(f"{r}: {n}" for r, n in f["reasons"].items())
    table.add_row("sent for review", f"{f['tasks']} tasks ({reasons}); states {f['states']}")
    if f["prediction_to_task_s_median"] is not None:
        table.add_row(
            "prediction -> task open",
            f"median {f['prediction_to_task_s_median']:.1f} s, max {f['prediction_to_task_s_max']:.1f} s",
        )
    table.add_row(
        "the analyst",
        f"task {f['task_id']} (score {f['score']:.3f} -> {f['decision']}): labelled {f['analyst_label']!r}",
    )
    table.add_row("annotation -> LabelObserved", f"{f['annotation_to_label_s']:.1f} s")
    audit = f["audit"]
    link = "caused by the prediction" if audit["caused_by_prediction"] else "[red]not linked[/]"
    table.add_row(
        "audit trail",
        f"label of task {audit['task_id']} by {', '.join(audit['annotators'])}, {link}; "
        f"chain {'intact' if audit['intact'] else '[red]broken[/]: ' + escape('; '.join(audit['problems']))}",
    )
    table.add_row(
        "label it yourself",
        f"{_label_studio_url(settings)} (log in with {settings.secrets_dir / 'label-studio.json'})",
    )
    return table


def main() -> int:
    settings = InfraSettings()
    console = Console(stderr=True)
    entities = json.loads((settings.state_dir / "demo" / ENTITIES_FILE).read_text())
    try:
        run_step(settings, console, entities)
    except StepFailed as failure:
        console.print(f"[red]annotation round trip failed:[/] {failure}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
