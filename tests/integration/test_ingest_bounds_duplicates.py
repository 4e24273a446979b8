"""Issue 18 on the real broker: implausible dates and repeated ids. Every raw offset ends exactly once
as clean or rejected, with its reason; the ledger of ids survives a restart, and a restarted ingest
that re-reads the topic republishes the same events (same ids, same bytes). POST /records is all or
nothing against real Kafka."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from aiokafka import AIOKafkaConsumer
from pydantic import SecretStr

from contracts.events import RecordCleaned, RecordRejected
from contracts.registry import parse_event
from servicekit.auth import generate_key, hash_key
from services.ingest.app import create_app
from tests.integration.test_ingest_pipeline import RunningIngest
from tests.support import create_topic, wait_until
from workbench.demo_data import ApplicationStream

encode = msgspec.json.encode
PRODUCER_KEY = generate_key()


class Ingest(RunningIngest):
    """RunningIngest with its own ledger file and a producer key, restartable on the same ledger."""

    def __init__(self, bootstrap: str, ledger: Path) -> None:
        super().__init__(bootstrap)
        keys = [{"name": "p", "role": "producer", "sha256": hash_key(PRODUCER_KEY)}]
        self.settings = self.settings.model_copy(
            update={"ledger_path": ledger, "api_keys_json": SecretStr(json.dumps(keys))}
        )
        self.app = create_app(self.settings)

    def restarted(self) -> Ingest:
        """A new process on the same ledger and topics, in a new consumer group: it re-reads them all."""
        again = Ingest(self.bootstrap, self.settings.ledger_path or Path())
        again.settings = again.settings.model_copy(
            update={
                "raw_topic": self.settings.raw_topic,
                "clean_topic": self.settings.clean_topic,
                "rejected_topic": self.settings.rejected_topic,
                "group_id": self.settings.group_id + "-restarted",
            }
        )
        again.app = create_app(again.settings)
        return again

    async def all_events(self, until: Callable[[Events], bool]) -> Events:
        """Every outcome event (parsed, raw bytes) per raw offset, copies included, read until `until`
        holds and then a little longer (a copy too many would show)."""
        consumer = AIOKafkaConsumer(
            self.settings.clean_topic,
            self.settings.rejected_topic,
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            group_id=None,
            enable_auto_commit=False,
        )
        await consumer.start()
        found: Events = defaultdict(list)
        try:

            async def read() -> None:
                quiet = 0
                while not until(found) or quiet < 3:
                    batches = await consumer.getmany(timeout_ms=500)
                    quiet = 0 if batches else quiet + 1
                    for records in batches.values():
                        for record in records:
                            event = parse_event(record.value or b"")
                            assert isinstance(event, RecordCleaned | RecordRejected)
                            found[event.payload.source.offset].append((event, record.value or b""))

            await asyncio.wait_for(read(), timeout=120)
        finally:
            await consumer.stop()
        return found


Events = dict[int, list[tuple[Any, bytes]]]


@asynccontextmanager
async def running(service: Ingest) -> AsyncIterator[Ingest]:
    async with service.app.router.lifespan_context(service.app):
        subs = service.app.state.subscriptions
        await wait_until(lambda: bool(subs.assignments()), timeout_s=60, what="ingest's partitions")
        yield service


@pytest.fixture
async def stopped(kafka_bootstrap: str) -> Ingest:
    """An ingest on fresh topics and a fresh ledger file, not started."""
    ledger = Path(tempfile.mkdtemp(prefix="ingest-ledger-")) / "ledger.db"
    service = Ingest(kafka_bootstrap, ledger)
    for topic in (service.settings.raw_topic, service.settings.clean_topic, service.settings.rejected_topic):
        await create_topic(kafka_bootstrap, topic, partitions=1)
    return service


@pytest.fixture
async def ingest(stopped: Ingest) -> AsyncIterator[Ingest]:
    async with running(stopped) as started:
        yield started


def offsets_seen(offsets: list[int], copies: int = 1) -> Callable[[Events], bool]:
    return lambda found: all(len(found.get(o, [])) >= copies for o in offsets)


def applications(n: int, prefix: str) -> list[dict[str, Any]]:
    return [a.record for a in ApplicationStream(seed=61, id_prefix=prefix).take(n)]


def one_outcome_each(events: dict[int, list[tuple[Any, bytes]]], offsets: list[int]) -> dict[int, Any]:
    """Exactly one outcome per raw offset: copies (redelivery) must be byte-identical."""
    assert set(events) == set(offsets)
    for offset in offsets:
        assert len({raw for _, raw in events[offset]}) == 1, f"offset {offset} has differing outcomes"
    return {offset: events[offset][0][0] for offset in offsets}


def reason(event: Any) -> tuple[str, dict[str, str]]:
    assert isinstance(event, RecordRejected)
    return event.payload.reason.code, {e.field: e.code for e in event.payload.reason.errors}


async def test_implausible_dates_are_rejected_with_their_reason_and_neighbours_go_clean(
    ingest: Ingest,
) -> None:
    now = datetime.now(UTC)
    base = applications(8, prefix="dates")
    dated = {
        "year 9999": ("9999-12-31T23:59:59Z", "date_too_late"),
        "year 0001": ("0001-01-01T00:00:00Z", "date_too_early"),
        "a day ahead of arrival": ((now + timedelta(days=1)).isoformat(), "date_ahead_of_arrival"),
        "February 30": ("2026-02-30T10:00:00Z", "invalid_datetime"),
        "no timezone": ("2026-06-01T10:00:00", "invalid_datetime"),
        "epoch seconds": (int(now.timestamp()), "wrong_type"),
    }
    values = [encode(r | {"applied_at": v}) for r, (v, _) in zip(base, dated.values(), strict=False)]
    values += [encode(r) for r in base[len(dated) :]]  # valid neighbours in the same batch
    offsets = await ingest.produce([(None, v) for v in values])
    outcomes = one_outcome_each(await ingest.all_events(offsets_seen(offsets)), offsets)
    for offset, (name, (_, code)) in zip(offsets, dated.items(), strict=False):
        assert reason(outcomes[offset]) == ("schema_violation", {"applied_at": code}), name
    for offset in offsets[len(dated) :]:
        assert isinstance(outcomes[offset], RecordCleaned)


async def test_repeated_ids_survive_a_restart_and_a_full_reread(stopped: Ingest) -> None:
    first, second = applications(2, prefix="dup")
    changed = first | {"credit_amount": first["credit_amount"] + 100}
    sent = [first, first, first, changed, second, changed]
    expected = ["ok", "duplicate_record", "duplicate_record", "ok", "ok", "duplicate_record"]
    async with running(stopped) as ingest:
        offsets = await ingest.produce([(r["application_id"].encode(), encode(r)) for r in sent])
        outcomes = one_outcome_each(await ingest.all_events(offsets_seen(offsets)), offsets)
    assert [_code(outcomes[o]) for o in offsets] == expected
    assert outcomes[offsets[1]].payload.reason.message.endswith(f"/{offsets[0]}")

    async with running(stopped.restarted()) as again:  # re-reads every offset, then a new resend
        later = await again.produce([(first["application_id"].encode(), encode(changed))])
        events = await again.all_events(
            lambda found: offsets_seen(offsets, copies=2)(found) and offsets_seen(later)(found)
        )
    outcomes = one_outcome_each(events, offsets + later)
    assert [_code(outcomes[o]) for o in offsets + later] == [*expected, "duplicate_record"]
    assert all(len(events[o]) == 2 for o in offsets)  # republished on re-read: byte-identical copies


async def test_post_records_is_all_or_nothing_against_kafka(ingest: Ingest) -> None:
    records = applications(3, prefix="http")
    headers = {"X-API-Key": PRODUCER_KEY}
    oversize = records[2] | {"notes": "x" * (2 * 1024 * 1024)}
    transport = httpx.ASGITransport(app=ingest.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        refused = await client.post("/records", json=[records[0], oversize], headers=headers)
        assert refused.status_code == 422
        assert [(r["index"], r["code"]) for r in refused.json()["records"]] == [(1, "too_large")]
        accepted = await client.post("/records", json=records, headers=headers)
        assert accepted.status_code == 202, accepted.text
        receipts = accepted.json()["records"]
    offsets = [r["source"]["offset"] for r in receipts]
    assert offsets == [0, 1, 2]  # the refused request appended nothing
    outcomes = one_outcome_each(await ingest.all_events(offsets_seen(offsets)), offsets)
    assert all(isinstance(outcomes[o], RecordCleaned) for o in offsets)
    assert [str(outcomes[o].event_id) for o in offsets] == [r["event_id"] for r in receipts]


def _code(event: Any) -> str:
    return "ok" if isinstance(event, RecordCleaned) else event.payload.reason.code
