"""The demo's annotation step (infra/annotation_step.py) against the answers its services give,
through httpx's mock transport: the analyst's truth from the audit trail, which tasks it waits for."""

from __future__ import annotations

import time
from typing import Any

import httpx

from infra import annotation_step


def client(handler: Any) -> httpx.Client:
    return httpx.Client(base_url="http://test", transport=httpx.MockTransport(handler))


def test_the_analysts_truth_is_the_clients_label_in_the_audit_trail() -> None:
    def audit(request: httpx.Request) -> httpx.Response:
        assert (
            request.url.params["event_type"] == "LabelObserved" and request.url.params["entity_id"] == "A-1"
        )
        items = [
            {"event": {"payload": {"source": "annotation", "label": "good"}}},
            {"event": {"payload": {"label": "bad"}}},  # an older event: no source, a client's
        ]
        return httpx.Response(200, json={"items": items, "next_after": None})

    assert annotation_step._client_label(client(audit), "A-1") == "bad"
    empty = client(lambda _: httpx.Response(200, json={"items": [], "next_after": None}))
    assert annotation_step._client_label(empty, "A-2") is None
    assert annotation_step._client_label(client(lambda _: httpx.Response(503, json={})), "A-3") is None


def test_it_waits_until_no_task_is_queued_and_one_is_open() -> None:
    calls = {"n": 0}

    def tasks(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        pid = request.url.path.rsplit("/", 1)[-1]
        if pid == "p-far":
            return httpx.Response(404, json={"detail": "no task"})
        state = "queued" if calls["n"] < 4 else "open"
        return httpx.Response(200, json={"prediction_id": pid, "state": state, "reasons": ["uncertain"]})

    served = {"p-near": ("A-1", time.time(), {}), "p-far": ("A-2", time.time(), {})}
    found = annotation_step._wait_for_tasks(client(tasks), served, time.monotonic() + 30)
    assert set(found) == {"p-near"} and found["p-near"]["state"] == "open"
