"""Labels a producer misdates, against the whole stack as `mlops up` starts it (drift and training,
each its own process, on the locked-down bus): a label from the year 9999 and one from the year 1,
sent with the producer's own credentials, are dead-lettered by both consumers with their reason, and
both services stay ready and go on. Before, the first moved drift's label join's clock for good (every
waiting and later prediction expired at once) and either one failed every later training run."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from contracts.events import LabelObserved, LabelObservedPayload
from contracts.registry import encode_event
from contracts.topics import DEADLETTERS, LABELS_OBSERVED
from infra.bus_access import client_security
from tests.e2e.cluster_reads import events_on
from tests.e2e.stack import api, logs, stack_env, wait_for
from tests.e2e.test_cli import mlops
from tests.support import TEST_KAFKA_PORT, send_one

PORT = TEST_KAFKA_PORT + 700
FIRST_SERVICE_PORT = TEST_KAFKA_PORT - 7500  # clear of the other lane's chaos stack (its base - 4000)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, jars_dir: Path) -> Iterator[dict[str, str]]:
    state = tmp_path_factory.mktemp("label-times")
    env = stack_env(state, jars_dir, PORT, FIRST_SERVICE_PORT)
    up = mlops("up", "--services", "training,drift", env=env, timeout=300)
    try:
        assert up.returncode == 0, up.stderr + "\n" + logs(state)
        yield env
    finally:
        mlops("down", env=env)


def label(entity_id: str, at: datetime) -> bytes:
    payload = LabelObservedPayload(
        dataset="loan_applications", entity_id=entity_id, label="bad", event_time=at
    )
    return encode_event(LabelObserved.create(payload, producer="a-producer"))


def refusals(bootstrap: str) -> list[tuple[str, str]]:
    """(consumer, reason code) of every dead letter so far about the labels topic."""
    letters = asyncio.run(events_on(bootstrap, [DEADLETTERS]))
    return sorted(
        (letter["payload"]["consumer"], letter["payload"]["reason"]["code"])
        for letter in letters
        if letter.get("event_type") == "DeadLettered"
        and letter["payload"]["source"]["topic"] == LABELS_OBSERVED
    )


def test_misdated_labels_are_dead_lettered_by_drift_and_training_and_both_go_on(
    stack: dict[str, str],
) -> None:
    bootstrap = f"127.0.0.1:{PORT}"
    known = json.loads((Path(stack["MLOPS_STATE_DIR"]) / "secrets" / "kafka-principals.json").read_text())
    producer = {"bootstrap_servers": bootstrap, **client_security("producer", known["producer"])}
    for value in (
        label("misdated-future", datetime(9999, 12, 31, tzinfo=UTC)),
        label("misdated-ancient", datetime(1, 1, 1, tzinfo=UTC)),
    ):
        asyncio.run(send_one(producer, LABELS_OBSERVED, value))

    def refused() -> list[tuple[str, str]] | None:
        found = refusals(bootstrap)
        return found if len(found) >= 4 else None

    found = wait_for(refused, 120, "the dead letters of drift and training", every_s=2)
    consumers = sorted({consumer for consumer, _ in found})
    assert len(consumers) == 2 and all(c.startswith(("drift", "training")) for c in consumers), found
    for consumer in consumers:
        codes = sorted(code for c, code in found if c == consumer)
        assert codes == ["ahead_of_arrival", "too_early"], found
    for service in ("drift", "training"):
        with api(stack, service, "ops") as client:
            assert client.get("/ready").status_code == 200
