"""Issue 18, defect 7: a repeated application_id. An identical resend is rejected as `duplicate_record`;
a changed record is an update and goes clean; redelivery replays the first decision; the ledger
survives a restart. The ledger is the real SQLite adapter (in memory, or a file for the restart)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from contracts.events import RecordCleaned, RecordRejected
from contracts.registry import parse_event
from services.ingest.adapters.ledger import SqliteRecordLedger
from services.ingest.domain.duplicates import content_digest
from services.ingest.domain.events import Source
from services.ingest.handlers import IngestHandler, RawInput
from tests.unit.test_ingest_handler import MarkingScrubber, handler, raw, records

encode = msgspec.json.encode


def codes(out: list[Any]) -> list[str]:
    return [m.code for m in out]


async def test_the_same_record_three_times_is_one_clean_and_two_duplicates() -> None:
    value = encode(records(1)[0])
    out = await handler().handle([raw(0, value), raw(1, value), raw(2, value)])
    assert codes(out) == ["ok", "duplicate_record", "duplicate_record"]
    events = [parse_event(m.value) for m in out]
    assert isinstance(events[0], RecordCleaned)
    for event in events[1:]:
        assert isinstance(event, RecordRejected)
        assert event.payload.reason.code == "duplicate_record"
        assert event.payload.reason.message.endswith("records.raw/1/0")  # names the accepted original
        assert event.payload.entity_id == records(1)[0]["application_id"]


async def test_a_resend_in_a_later_batch_is_a_duplicate_too() -> None:
    h, value = handler(), encode(records(1)[0])
    assert codes(await h.handle([raw(0, value)])) == ["ok"]
    assert codes(await h.handle([raw(1, value)])) == ["duplicate_record"]
    assert codes(await h.handle([raw(2, value)])) == ["duplicate_record"]


async def test_key_order_and_whitespace_do_not_make_a_resend_new() -> None:
    record = records(1)[0]
    reordered = dict(reversed(list(record.items())))
    spaced = msgspec.json.format(encode(record), indent=2)
    out = await handler().handle([raw(0, encode(record)), raw(1, encode(reordered)), raw(2, spaced)])
    assert codes(out) == ["ok", "duplicate_record", "duplicate_record"]


async def test_a_changed_record_with_the_same_id_is_an_update() -> None:
    original = records(1)[0]
    changed = original | {"credit_amount": original["credit_amount"] + 1}
    h = handler()
    out = await h.handle([raw(0, encode(original)), raw(1, encode(changed)), raw(2, encode(changed))])
    assert codes(out) == ["ok", "ok", "duplicate_record"]
    update = parse_event(out[1].value)
    assert isinstance(update, RecordCleaned)
    assert update.payload.record["credit_amount"] == changed["credit_amount"]
    # The original again, after the update: it supersedes the update (last write wins).
    assert codes(await h.handle([raw(3, encode(original))])) == ["ok"]


async def test_redelivery_replays_the_first_decisions_byte_for_byte() -> None:
    """A crash after the ledger commit but before Kafka's offset commit redelivers the batch: the
    first record must not become a duplicate of itself, the others stay duplicates."""
    h, value = handler(), encode(records(1)[0])
    batch = [raw(0, value), raw(1, value), raw(2, value)]
    first = await h.handle(batch)
    again = await h.handle(batch)
    assert codes(again) == ["ok", "duplicate_record", "duplicate_record"]
    assert again == first


async def test_redelivery_after_an_update_replays_too() -> None:
    original = records(1)[0]
    changed = original | {"housing": "own" if original["housing"] != "own" else "rent"}
    h = handler()
    batch = [raw(0, encode(original)), raw(1, encode(changed)), raw(2, encode(original))]
    first = await h.handle(batch)
    assert codes(first) == ["ok", "ok", "ok"]
    assert await h.handle(batch) == first


async def test_the_ledger_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "ingest" / "ledger.db"
    value = encode(records(1)[0])
    before = SqliteRecordLedger(path)
    assert codes(await handler(ledger=before).handle([raw(0, value)])) == ["ok"]
    before.close()
    after = SqliteRecordLedger(path)
    assert codes(await handler(ledger=after).handle([raw(1, value)])) == ["duplicate_record"]
    assert codes(await handler(ledger=after).handle([raw(0, value)])) == ["ok"]  # a redelivery
    after.close()


async def test_rejected_records_do_not_count_as_seen() -> None:
    record = records(1)[0]
    h = handler()
    invalid = encode(record | {"housing": "castle"})
    assert codes(await h.handle([raw(0, invalid), raw(1, invalid)])) == ["schema_violation"] * 2
    assert codes(await h.handle([raw(2, encode(record))])) == ["ok"]


async def test_a_record_whose_scrubbing_failed_is_not_seen_either() -> None:
    class Broken:
        def scrub(self, texts: Any) -> Any:
            raise RuntimeError("model crashed")

    h, value = handler(), encode(records(1)[0])
    h.scrubber = Broken()
    assert codes(await h.handle([raw(0, value)])) == ["scrub_failed"]
    h.scrubber = MarkingScrubber()
    assert codes(await h.handle([raw(1, value)])) == ["ok"]


async def test_different_ids_with_equal_content_are_not_duplicates() -> None:
    first, second = records(2)
    twin = second | {k: v for k, v in first.items() if k != "application_id"}
    out = await handler().handle([raw(0, encode(first)), raw(1, encode(twin))])
    assert codes(out) == ["ok", "ok"]


async def test_without_a_ledger_every_valid_record_is_clean() -> None:
    h: IngestHandler = handler()
    h.ledger = None
    value = encode(records(1)[0])
    assert codes(await h.handle([raw(0, value), raw(1, value)])) == ["ok", "ok"]


def test_the_digest_is_keyed_and_ignores_key_order() -> None:
    record = records(1)[0]
    reordered = dict(reversed(list(record.items())))
    assert content_digest(record, b"k") == content_digest(reordered, b"k")
    assert content_digest(record, b"k") != content_digest(record, b"other key")
    assert content_digest(record, b"k") != content_digest(record | {"credit_amount": 1}, b"k")


def test_the_same_offset_on_another_partition_is_another_record() -> None:
    h = handler()
    value = encode(records(1)[0])
    a = RawInput(Source("records.raw", 0, 5, 1_767_225_600_000), None, value)
    b = RawInput(Source("records.raw", 2, 5, 1_767_225_600_000), None, value)
    assert codes(h.process([a, b])) == ["ok", "duplicate_record"]
