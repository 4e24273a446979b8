"""What the cluster drills read back: each raw record's outcomes, a topic's records and entities, and
the audit store's rows, straight from Kafka and PostgreSQL (as the test's own super user), and
whether the MLflow server answers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import create_engine, text

from contracts.topics import RECORDS_CLEAN, RECORDS_REJECTED
from infra.bus_access import kafka_options
from infra.mlflow_server import client_env
from infra.settings import InfraSettings


async def _partitions(bootstrap: str, topics: list[str]) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(**kafka_options(bootstrap))
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]


async def outcomes(bootstrap: str) -> dict[tuple[int, int], set[str]]:
    """Every outcome event id of each raw record (partition, offset), read to the end of both topics."""
    found: dict[tuple[int, int], set[str]] = defaultdict(set)
    for event in await events_on(bootstrap, [RECORDS_CLEAN, RECORDS_REJECTED]):
        source = event["payload"]["source"]
        found[(source["partition"], source["offset"])].add(event["event_id"])
    return found


async def events_on(bootstrap: str, topics: list[str]) -> list[dict[str, Any]]:
    """Every event on `topics`, one per Kafka record, read from the beginning to their ends."""
    partitions = await _partitions(bootstrap, topics)
    consumer = AIOKafkaConsumer(**kafka_options(bootstrap), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: list[dict[str, Any]] = []
        while any([await consumer.position(tp) < ends[tp] for tp in partitions]):
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                found.extend(json.loads(record.value or b"{}") for record in records)
        return found
    finally:
        with contextlib.suppress(asyncio.CancelledError):  # aiokafka 0.14's stop() after assign()
            await consumer.stop()


async def caused_by(bootstrap: str, topics: list[str], causation_id: str) -> list[dict[str, Any]]:
    """The events on `topics` that `causation_id` caused."""
    return [e for e in await events_on(bootstrap, topics) if e.get("causation_id") == causation_id]


def doubled(url: str, topic: str) -> int:
    """Rows of `topic` in the audit store beyond one per Kafka record."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            sql = 'SELECT count(*) - count(DISTINCT (partition, "offset")) FROM audit_events WHERE topic = :t'
            return int(conn.execute(text(sql), {"t": topic}).scalar_one())
    finally:
        engine.dispose()


def partitions(bootstrap: str, topic: str) -> int:
    async def read() -> int:
        admin = AIOKafkaAdminClient(**kafka_options(bootstrap))
        await admin.start()
        try:
            return len((await admin.describe_topics([topic]))[0]["partitions"])
        finally:
            await admin.close()

    return asyncio.run(read())


def clean_records(bootstrap: str) -> tuple[set[str], set[str]]:
    """The event ids and the entities of every clean record so far. Ids, not offsets, count events:
    an ingest instance that takes a partition over may publish an outcome again, with the same id,
    which the audit records once (by design: a republished event is one event)."""

    async def read() -> tuple[set[str], set[str]]:
        consumer = AIOKafkaConsumer(**kafka_options(bootstrap), group_id=None, enable_auto_commit=False)
        await consumer.start()
        try:
            assigned = [TopicPartition(RECORDS_CLEAN, p) for p in range(count)]
            consumer.assign(assigned)
            await consumer.seek_to_beginning(*assigned)
            last = await consumer.end_offsets(assigned)
            ids: set[str] = set()
            entities: set[str] = set()
            while any([await consumer.position(tp) < last[tp] for tp in assigned]):
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    for record in records:
                        event = json.loads(record.value or b"{}")
                        ids.add(event["event_id"])
                        entities.add(event["payload"]["entity_id"])
            return ids, entities
        finally:
            with contextlib.suppress(asyncio.CancelledError):  # aiokafka 0.14's stop() after assign()
                await consumer.stop()

    count = partitions(bootstrap, RECORDS_CLEAN)
    return asyncio.run(read())


def tracking_server_answers(settings: InfraSettings, url: str) -> bool:
    """Does the MLflow server answer a search, asked with the platform's login as the services ask?"""
    from mlflow import MlflowClient

    login = client_env(settings)
    saved = {name: os.environ.get(name) for name in login}
    os.environ.update(login)  # where MLflow's client reads its login
    try:
        MlflowClient(url).search_experiments(max_results=1)
    except Exception:  # e.g. a pooled connection from before a crash fails once
        return False
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return True


def said(env: dict[str, str], instance: str, line: str) -> int:
    """How often a service instance's log says `line`."""
    return (Path(env["MLOPS_STATE_DIR"]) / "logs" / f"{instance}.log").read_text().count(line)


def lease_holder(env: dict[str, str], instances: tuple[str, ...]) -> str | None:
    """The audit instance whose log last said it publishes the checkpoints (the others' last word on
    the lease, if any, is that they stand by)."""
    taken, standing = "this instance publishes the checkpoints now", "this one stands by"
    for instance in instances:
        log = (Path(env["MLOPS_STATE_DIR"]) / "logs" / f"{instance}.log").read_text()
        if log.rfind(taken) > log.rfind(standing):
            return instance
    return None


def chain_length(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT coalesce(max(seq), 0) FROM audit_events")).scalar_one())
    finally:
        engine.dispose()


def execute(url: str, *statements: str) -> None:
    """Raw SQL, in one transaction, as whoever `url` logs in as."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def offline_rows(folder: Path) -> dict[tuple[str, object], Counter[tuple[object, ...]]]:
    """The offline store's rows, read as its readers read it (under the shared lock, every part as
    one table): each (entity, event time) -> how often each distinct row holds it."""
    import pyarrow.parquet as pq

    from feature_repo.names import ENTITY_KEY, EVENT_TIME
    from feature_repo.store import offline_lock

    if not folder.exists():
        return {}
    with offline_lock(folder, exclusive=False):
        table = pq.read_table(folder)
    found: dict[tuple[str, object], Counter[tuple[object, ...]]] = defaultdict(Counter)
    for row in table.to_pylist():
        found[(row[ENTITY_KEY], row[EVENT_TIME])][tuple(row.values())] += 1
    return found
