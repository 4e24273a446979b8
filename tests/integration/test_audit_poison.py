"""A record the audit's store cannot take, on the real broker with the audit's own settings (100
attempts for a batch in which nothing goes through): it is set aside with its reason in a handful of
calls, and every neighbour is in the chain, in order, with the chain verifying.

No envelope is known today that makes the store fail (the property test over any envelope,
tests/unit/test_audit_capture_fuzz.py, found three, all fixed), so the store is told which event to
refuse: the seam is `create_app(store=...)`, and the refusal is an exception the kit does not take
for an outage. On a quiet topic the bad record comes alone, with no neighbours to compare it with;
the topic's records handled a moment before stand in for them. Before 2026-12-07 such a record held
its batch for 99 whole retries with backoff up to 5 s (about eight minutes) before it was looked
for; the count of the store's calls is asserted, not the time, which a shared machine would make
flaky.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path

from services.audit import erasure
from services.audit.adapters.query import EventQuery
from services.audit.adapters.store import AppendResult, SqlAuditStore
from services.audit.app import create_app
from services.audit.domain.entry import Entry
from services.audit.settings import AuditSettings
from tests.support import create_topic, dead_letters_for, training_request, wait_until


class RefusingStore(SqlAuditStore):
    """The real SQLite store, which refuses every batch holding one given event."""

    refused: str = ""
    calls: list[list[str | None]]

    def append(self, entries: Sequence[Entry], recorded_at_us: int) -> AppendResult:
        ids = [entry.event_id for entry in entries]
        self.calls.append(ids)
        if self.refused in ids:
            raise OverflowError("this entry does not fit the store")
        return super().append(entries, recorded_at_us)


def _audit(bootstrap: str, tmp_path: Path) -> tuple[AuditSettings, RefusingStore, str]:
    run = uuid.uuid4().hex[:10]
    topic = f"test.audit.{run}.ev"
    settings = AuditSettings(
        kafka_bootstrap_servers=bootstrap,
        state_dir=tmp_path,
        topics=[topic],
        group_id=f"audit-{run}",
        checkpoint_topic=f"test.audit.{run}.cp",
    )
    assert settings.max_handler_attempts == 100  # the audit's own: an unknown outage stalls the trail
    store = RefusingStore(
        settings.resolved_database_url, settings.database_app_role, erasure.subject_keys(settings)
    )
    store.calls = []
    return settings, store, topic


async def test_a_record_the_store_refuses_is_set_aside_and_its_neighbours_are_chained_in_order(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    settings, store, topic = _audit(kafka_bootstrap, tmp_path)
    for name in (topic, settings.checkpoint_topic):
        await create_topic(kafka_bootstrap, name)
    events = [training_request(by=f"producer-{i}") for i in range(300)]
    poison = events[117]
    store.refused = str(poison.event_id)
    app = create_app(settings, store=store)
    expected = [str(e.event_id) for e in events if e is not poison]

    async with app.router.lifespan_context(app):
        publisher = app.state.subscriptions.publisher
        for event in events:
            await publisher.publish(event, topic=topic)
        await wait_until(lambda: store.head()[0].length == len(expected), what="every event but one")
        [letter] = await dead_letters_for(kafka_bootstrap, topic, 1)

    assert [row["event_id"] for row in _all_rows(store)] == expected  # once each, in published order
    assert letter.payload.consumer == "audit" and letter.payload.reason.code == "handler_failed"
    assert letter.payload.source.offset == 117 and "OverflowError" in letter.payload.reason.message
    assert "does not fit" not in letter.model_dump_json()
    with_poison = [ids for ids in store.calls if str(poison.event_id) in ids]
    largest = max(len(ids) for ids in with_poison)
    assert largest > 1  # it came in a batch with neighbours
    # The batch whole once (the outage check) and once more, about 2*log2 of it in halves, then the
    # record alone three times: never the 100 attempts an unknown outage gets.
    assert len(with_poison) <= 2 + 2 * largest.bit_length() + 3
    assert [ids for ids in with_poison if len(ids) == 1] == [[str(poison.event_id)]] * 3
    report = app.state.audit.verify()
    assert report.ok and report.checked == len(expected)


async def test_on_a_quiet_topic_a_lone_record_the_store_refuses_is_set_aside_in_a_few_calls(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A bad record alone in its batch has no neighbours to compare it with; the topic's records
    handled a moment before say the store works."""
    settings, store, topic = _audit(kafka_bootstrap, tmp_path)
    for name in (topic, settings.checkpoint_topic):
        await create_topic(kafka_bootstrap, name)
    before = [training_request(by=f"before-{i}") for i in range(5)]
    poison, after = training_request(by="the-bad-one"), training_request(by="after")
    store.refused = str(poison.event_id)
    app = create_app(settings, store=store)

    async with app.router.lifespan_context(app):
        publisher = app.state.subscriptions.publisher
        for event in before:
            await publisher.publish(event, topic=topic)
        await wait_until(lambda: store.head()[0].length == len(before), what="the events before")
        await publisher.publish(poison, topic=topic)
        [letter] = await dead_letters_for(kafka_bootstrap, topic, 1)
        await publisher.publish(after, topic=topic)
        await wait_until(lambda: store.head()[0].length == len(before) + 1, what="the event after")

    assert [row["event_id"] for row in _all_rows(store)] == [str(e.event_id) for e in [*before, after]]
    assert letter.payload.source.offset == len(before) and letter.payload.reason.code == "handler_failed"
    # The outage check, the isolation's call, then twice more alone: not the audit's 100 attempts.
    assert [ids for ids in store.calls if str(poison.event_id) in ids] == [[str(poison.event_id)]] * 4
    assert app.state.audit.verify().ok


def _all_rows(store: SqlAuditStore) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    while True:
        page = store.events(EventQuery(limit=1000, after=int(rows[-1]["seq"]) if rows else 0))  # type: ignore[call-overload]
        if not page:
            return rows
        rows.extend(page)
