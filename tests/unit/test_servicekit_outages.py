"""A dependency that is down makes consumers wait, say so, and dead-letter nothing (servicekit/outages.py)."""

from __future__ import annotations

import sqlite3

import httpx
import pytest
import sqlalchemy.exc
from fastapi import FastAPI
from fastapi.testclient import TestClient
from faststream.kafka import TestKafkaBroker
from prometheus_client import REGISTRY

from contracts.common import KafkaCoordinates
from contracts.events import DeadLettered
from contracts.registry import parse_event
from contracts.topics import DEADLETTERS
from servicekit.app import create_service_app
from servicekit.broker import EventPublisher, make_broker
from servicekit.consumer import RawMessage, Subscriptions
from servicekit.errors import ServiceError, install_error_mapping
from servicekit.outages import DependencyUnavailable, Outages, halves_probe, unavailable_dependency
from tests.support import probe_settings


def _lost_connection() -> sqlalchemy.exc.OperationalError:
    return sqlalchemy.exc.OperationalError(
        "SELECT 1", {}, sqlite3.OperationalError("server closed the connection")
    )


@pytest.mark.parametrize(
    ("error", "dependency"),
    [
        (_lost_connection(), "database"),
        (sqlite3.OperationalError("database is locked"), "database"),
        (httpx.ConnectError("refused"), "http"),
        (ConnectionRefusedError(111, "refused"), "network"),
        (DependencyUnavailable("redis"), "redis"),
        (ValueError("not a number"), None),
        (KeyError("amount"), None),
        (ServiceError("bad record"), None),
        (OSError("disk full"), None),
        (type("QueryCanceled", (sqlite3.OperationalError,), {})("statement timeout"), None),
    ],
)
def test_what_counts_as_a_dependency_that_did_not_answer(error: Exception, dependency: str | None) -> None:
    assert unavailable_dependency(error) == dependency


def test_an_outage_is_found_behind_the_error_that_wraps_it() -> None:
    try:
        try:
            raise ConnectionResetError("peer went away")
        except ConnectionResetError as inner:
            raise RuntimeError("saving the batch failed") from inner
    except RuntimeError as outer:
        assert unavailable_dependency(outer) == "network"


def test_a_services_own_error_is_the_records_even_when_raised_while_handling_an_outage() -> None:
    try:
        try:
            raise TimeoutError("the model took too long")
        except TimeoutError:
            raise ServiceError("this record cannot be explained") from None
    except ServiceError as own:
        assert unavailable_dependency(own) is None
    try:
        try:
            raise TimeoutError("slow")
        except TimeoutError:
            raise ValueError("a bad value") from None  # the context was suppressed: not a cause
    except ValueError as suppressed:
        assert unavailable_dependency(suppressed) is None


async def test_a_batch_that_fails_like_an_outage_but_half_goes_through_is_the_records_fault() -> None:
    """A driver's "operational" error caused by one record must not stall the partition forever."""
    tracker = Outages("probe", max_wait_s=0.01)
    stored: list[int] = []

    async def store(items: list[int]) -> None:
        if 3 in items:
            raise sqlite3.OperationalError("too many SQL variables")  # record 3's doing, every time
        stored.extend(items)

    probe = halves_probe([1, 2, 3, 4], store)
    assert not await tracker.wait_out(lambda: store([1, 2, 3, 4]), probe)
    assert stored == [1, 2] and not tracker.current  # the probe's half; then isolation takes over


async def test_an_outage_ends_only_when_the_last_consumer_waiting_for_it_gets_through() -> None:
    tracker = Outages("probe", max_wait_s=0.01)
    tracker._down("database", _lost_connection(), met_a := set())
    tracker._down("database", _lost_connection(), met_b := set())
    assert met_a == met_b == {"database"}
    tracker._up("database")  # one consumer is through...
    assert "database" in tracker.current  # ...the other still waits: still unavailable
    tracker._up("database")
    assert not tracker.current


async def test_a_batch_waits_out_an_outage_and_is_handled_whole() -> None:
    tracker = Outages("probe", max_wait_s=0.01)
    calls: list[dict[str, object]] = []

    async def store(items: list[int]) -> None:
        calls.append(tracker.describe())
        if len(calls) < 4:
            raise _lost_connection()

    assert await tracker.wait_out(lambda: store([1, 2, 3]))
    assert len(calls) == 4 and not calls[0] and "database" in calls[1] and "database" in calls[3]
    assert calls[3]["database"]["error"] == "OperationalError"  # type: ignore[index]
    assert not tracker.current  # back: nothing is reported as down any more
    assert (
        REGISTRY.get_sample_value(
            "mlops_dependency_unavailable", {"service": "probe", "dependency": "database"}
        )
        == 0
    )


async def test_a_failure_that_is_not_an_outage_is_handed_back_at_once() -> None:
    tracker = Outages("probe")
    calls = 0

    async def buggy() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("a bug")

    assert not await tracker.wait_out(buggy)
    assert calls == 1 and not tracker.current


def _raw(offset: int) -> RawMessage:
    return RawMessage(KafkaCoordinates(topic="t.a", partition=0, offset=offset), None, b"{}", 0)


async def test_no_record_is_dead_lettered_while_the_store_is_down() -> None:
    """Before: a store outage longer than a few retries dead-lettered every record of the batch (and
    a single-record batch after three quick attempts)."""
    broker = make_broker(probe_settings("127.0.0.1:1"))
    subs = Subscriptions(broker, EventPublisher(broker, "probe"), "probe", max_attempts=1)
    subs.outages.max_wait_s = 0.01
    letters: list[DeadLettered] = []
    stored: list[int] = []
    failures = iter(range(12))

    async def store(batch: list[RawMessage]) -> None:
        if next(failures, None) is not None:
            raise _lost_connection()
        stored.extend(r.source.offset for r in batch)

    @subs.on_raw(DEADLETTERS, group_id="letters")
    async def keep(raws: list[RawMessage]) -> None:
        letters.extend(parse_event(r.value or b"") for r in raws)  # type: ignore[misc]

    async with TestKafkaBroker(broker):
        await subs._run([_raw(1)], store, lambda r: r)
        await subs._run([_raw(2), _raw(3), _raw(4)], store, lambda r: r)
    assert stored == [1, 2, 3, 4] and not letters


async def test_a_bad_record_is_still_isolated_and_its_neighbours_handled() -> None:
    broker = make_broker(probe_settings("127.0.0.1:1"))
    subs = Subscriptions(broker, EventPublisher(broker, "probe"), "probe", max_attempts=1)
    letters: list[DeadLettered] = []
    stored: list[int] = []

    async def store(batch: list[RawMessage]) -> None:
        if any(r.source.offset == 3 for r in batch):
            raise ValueError("offset 3 is bad")
        stored.extend(r.source.offset for r in batch)

    @subs.on_raw(DEADLETTERS, group_id="letters")
    async def keep(raws: list[RawMessage]) -> None:
        letters.extend(parse_event(r.value or b"") for r in raws)  # type: ignore[misc]

    async with TestKafkaBroker(broker):
        await subs._run([_raw(1), _raw(2), _raw(3), _raw(4)], store, lambda r: r)
    assert sorted(stored) == [1, 2, 4]
    assert [letter.payload.source.offset for letter in letters] == [3]


def test_ready_names_the_dependency_a_consumer_waits_for_until_it_is_back() -> None:
    settings = probe_settings("127.0.0.1:1")
    broker = make_broker(settings)
    subs = Subscriptions(broker, EventPublisher(broker, "probe"), "probe")
    app = create_service_app(settings, None, title="probe", subscriptions=subs)
    subs.outages._down("database", _lost_connection(), set())
    with TestClient(app, raise_server_exceptions=False) as client:
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["unavailable"]["database"]["error"] == "OperationalError"
        subs.outages._up("database")
        assert client.get("/ready").status_code == 200


def test_a_route_that_meets_an_outage_answers_503_unavailable_without_the_drivers_text() -> None:
    app = FastAPI()
    install_error_mapping(app)

    @app.get("/rows")
    async def rows() -> None:
        raise _lost_connection()

    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/rows")
    assert answer.status_code == 503 and answer.json()["code"] == "unavailable"
    assert "SELECT" not in answer.text and "closed the connection" not in answer.text
