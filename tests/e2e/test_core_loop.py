"""The core loop as a user runs it: every service its own process (started by `mlops up`) on a
broker of its own, records streamed by the demo producer, a first model trained through the gate
and served, experimental-operational symmetry checked (the feature values serving used for an
entity equal those in the training set the champion learned from), and a served prediction
explained with the model version that made it."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError

from contracts.events import ModelPromoted, PredictionMade
from contracts.registry import parse_event
from contracts.samples import sample_events
from contracts.topics import MODEL_PROMOTED, PREDICTIONS_MADE, RECORDS_CLEAN, RECORDS_RAW
from feature_repo import ENTITY_KEY, FEATURES
from infra.bus_access import client_security, kafka_options
from tests.e2e.stack import api, logs, stack_env, wait_for
from tests.e2e.test_cli import mlops
from tests.support import TEST_KAFKA_PORT, send_one
from workbench.demo_data import ApplicationStream

PORT = TEST_KAFKA_PORT + 300
FIRST_SERVICE_PORT = PORT - 2000
SERVICES = "ingest,features,training,serving,explain"
ROWS = 1500  # a 300-row holdout: enough evidence for the gate's intervals (120 rows are not)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, jars_dir: Path) -> Iterator[dict[str, str]]:
    state = tmp_path_factory.mktemp("loop")
    env = stack_env(state, jars_dir, PORT, FIRST_SERVICE_PORT)
    up = mlops("up", "--services", SERVICES, env=env, timeout=300)
    try:
        assert up.returncode == 0, up.stderr + "\n" + logs(state)
        yield env
    finally:
        mlops("down", env=env)


def _state(env: dict[str, str]) -> Path:
    return Path(env["MLOPS_STATE_DIR"])


def _online_table(state: Path) -> tuple[str, str, dict[str, str], int] | None:
    """The SQLite online table's name, definition, indexes and rows, once it holds a row per feature of
    each record."""
    conn = sqlite3.connect(state / "feast" / "online.db", timeout=10)
    try:
        (table, sql) = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchone()
        found = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        stored = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
        return (table, sql, dict(found.fetchall()), stored) if stored >= ROWS * len(FEATURES) else None
    finally:
        conn.close()


def test_streamed_records_train_a_champion_that_serves_the_training_features(stack: dict[str, str]) -> None:
    # 1. A producer streams applications (and, later, their labels) through ingest.
    produced = mlops(
        "produce", "--rows", str(ROWS), "--rate", "0", "--label-delay-s", "0.5", "--bad-every", "100",
        "--follow", env=stack, timeout=300,
    )  # fmt: skip
    assert produced.returncode == 0, produced.stderr
    summary = json.loads(produced.stdout)
    assert summary["outcomes"]["clean"] == ROWS and summary["outcomes"]["missing"] == 0

    # 2. Ops asks for training once: the run waits for every label published before the request (its
    #    watermark), so no retry is needed; the first model passes the gate, its checks with intervals.
    with api(stack, "training", "ops") as ops:
        request = ops.post("/train", json={"reason": "manual"}).json()["event_id"]

        def finished() -> dict[str, Any] | None:
            latest = ops.get("/runs/latest")
            ok = latest.status_code == 200 and latest.json()["request_id"] == request
            return latest.json() if ok else None

        promoted = wait_for(finished, 180, "the training outcome")
        assert promoted["status"] == "promoted", f"{promoted}\n{logs(_state(stack))}"
        assert promoted["counts"]["labels_requested"] == ROWS  # every label, no sleep
        evidence = promoted["evidence"]
        assert evidence["verdict"] == "promote" and evidence["holdout_rows"] == ROWS // 5
        assert all(c["low"] <= c["value"] <= c["high"] for c in evidence["checks"] if c["value"] is not None)
    version, run_id = promoted["model_version"], promoted["run_id"]

    # 3. Serving swaps to it without a restart and answers clients by entity key.
    entities = summary["first_entities"][:40]
    with api(stack, "serving", "client") as client:
        try:
            wait_for(
                lambda: (client.get("/model").json().get("champion") or {}).get("model_version") == version,
                120,
                "serving to load it",
            )
        except AssertionError as err:
            raise AssertionError(
                f"{err}: /model says {client.get('/model').text}\n{logs(_state(stack))}"
            ) from None
        answers = [client.post("/predict", json={"entity_id": e}) for e in entities]
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200]
        assert {a.json()["model_version"] for a in answers} == {version}
        unknown = client.post("/predict", json={"entity_id": "no-such-application"})
        assert unknown.status_code == 404
    prediction_ids = {a.json()["prediction_id"]: e for a, e in zip(answers, entities, strict=True)}

    # 4. Symmetry: what serving used (from prediction.made) equals the champion's training set rows.
    bootstrap = f"127.0.0.1:{PORT}"
    used = asyncio.run(_predictions(bootstrap, set(prediction_ids)))
    training_set = _training_set(Path(stack["MLOPS_STATE_DIR"]), run_id).set_index(ENTITY_KEY)
    compared = 0
    for prediction_id, entity in prediction_ids.items():
        if entity not in training_set.index:
            continue  # an application whose label had not arrived when the model was trained
        row = training_set.loc[entity]
        served = used[prediction_id].payload.features
        for feature in FEATURES:
            if feature in served:
                assert served[feature] == pytest.approx(row[feature]), (entity, feature)
        compared += 1
    assert compared >= 30, f"only {compared} served entities were in the training set"
    # ... and serving read them straight from the SQLite online table (checked against Feast first).
    assert "online reads go direct to SQLite" in (_state(stack) / "logs" / "serving.log").read_text()
    # ... from a table holding every clean record's features once, made WITHOUT ROWID and with Feast's
    #     duplicate key index emptied by the features service at its start (feature_repo.online_tables).
    table, sql, indexes, stored = wait_for(
        lambda: _online_table(_state(stack)), 60, "every record's features online"
    )
    assert sql.rstrip().endswith("WITHOUT ROWID"), sql
    assert indexes == {f"{table}_ek": f'CREATE INDEX "{table}_ek" ON "{table}" (entity_key) WHERE 0'}
    assert stored == ROWS * len(FEATURES)

    # 5. The explain service explains a served prediction with the version that made it.
    first = next(iter(prediction_ids))
    with api(stack, "explain", "client") as explainer:
        explained = wait_for(
            lambda: (r := explainer.get(f"/explain/{first}")).status_code != 404 and r, 120, "the explanation"
        )
        assert explained.status_code == 200, explained.text
        body = explained.json()
        assert body["model_version"] == version and body["summary"]
        assert {"shap", "lime"} <= set(body["methods"]) and body["fidelity"]


def test_the_bus_refuses_forged_decisions_and_keeps_every_password_out_of_the_logs(
    stack: dict[str, str],
) -> None:
    """The stack's bus as a hostile user meets it: a forged promotion, sent without credentials, with a
    producer's, and with a service's that does not own the topic, is refused by the broker, and serving
    keeps its champion; the producer's credentials still stream a record through ingest."""
    bootstrap, state = f"127.0.0.1:{PORT}", _state(stack)
    known = json.loads((state / "secrets" / "kafka-principals.json").read_text())
    with api(stack, "serving", "client") as serving:
        served_before = serving.get("/model").json()["champion"]
    promotions_before = asyncio.run(_end(bootstrap, MODEL_PROMOTED))
    forged = next(e for e in sample_events() if isinstance(e, ModelPromoted)).model_dump_json().encode()

    def as_user(name: str) -> dict[str, Any]:
        return {"bootstrap_servers": bootstrap, **client_security(name, known[name])}

    with pytest.raises(KafkaConnectionError):
        asyncio.run(send_one({"bootstrap_servers": bootstrap}, MODEL_PROMOTED, forged))
    for principal in ("producer", "ingest", "serving"):
        with pytest.raises(TopicAuthorizationFailedError):
            asyncio.run(send_one(as_user(principal), MODEL_PROMOTED, forged))
    assert asyncio.run(_end(bootstrap, MODEL_PROMOTED)) == promotions_before
    with api(stack, "serving", "client") as serving:
        assert serving.get("/model").json()["champion"] == served_before

    # The producer's principal is the one to stream with: a record (lower-case name, no separators in
    # the phone number) goes in, and ingest writes its outcome.
    clean_before = asyncio.run(_end(bootstrap, RECORDS_CLEAN))
    record = next(iter(ApplicationStream(seed=11, id_prefix="locked"))).record | {
        "notes": "call jane doe on 4155550123"
    }
    asyncio.run(send_one(as_user("producer"), RECORDS_RAW, json.dumps(record).encode()))
    wait_for(lambda: asyncio.run(_end(bootstrap, RECORDS_CLEAN)) > clean_before, 60, "the record's outcome")

    every_log = "".join(p.read_text(errors="replace") for p in state.rglob("*.log"))  # Kafka's too
    assert "sasl.jaas.config" in every_log  # the broker logged its settings...
    leaked = [name for name, password in known.items() if password in every_log]  # ...no password
    assert not leaked, f"passwords of {leaked} are in the stack's logs"


async def _end(bootstrap: str, topic: str) -> int:
    """Records on `topic` so far (the stack's super user counts them)."""
    admin = AIOKafkaAdminClient(**kafka_options(bootstrap))
    consumer = AIOKafkaConsumer(**kafka_options(bootstrap), group_id=None)
    await admin.start()
    await consumer.start()
    try:
        [described] = await admin.describe_topics([topic])
        partitions = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()
        await admin.close()


async def _predictions(bootstrap: str, wanted: set[str], timeout_s: float = 60) -> dict[str, PredictionMade]:
    consumer = AIOKafkaConsumer(PREDICTIONS_MADE, **kafka_options(bootstrap), auto_offset_reset="earliest")
    await consumer.start()
    found: dict[str, PredictionMade] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while not wanted <= set(found) and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    event = parse_event(record.value or b"")
                    assert isinstance(event, PredictionMade)
                    found[event.payload.prediction_id] = event
    finally:
        await consumer.stop()
    assert wanted <= set(found), f"{len(wanted - set(found))} predictions never reached {PREDICTIONS_MADE}"
    return found


def _training_set(state: Path, run_id: str) -> pd.DataFrame:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{state / 'mlflow' / 'mlflow.db'}")
    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="dataset/training_set.parquet")
    return pd.read_parquet(path)
