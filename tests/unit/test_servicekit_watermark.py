"""Consumed positions and the wait for a watermark: reached as records are handled, reached from the
group's committed offsets (a restart, or records acknowledged without being handled), the bound
passing with the shortfall per partition, a broker that does not answer, and careless input."""

from __future__ import annotations

import asyncio

import pytest

from contracts.common import KafkaCoordinates
from servicekit.settings import ServiceSettings
from servicekit.watermark import ConsumedOffsets, Offsets, client_options


def at(partition: int, offset: int) -> KafkaCoordinates:
    return KafkaCoordinates(topic="labels", partition=partition, offset=offset)


class Committed:
    """The group's committed offsets as the broker would answer, counting the questions."""

    def __init__(self, offsets: Offsets | None = None, fails: bool = False) -> None:
        self.offsets = offsets or {}
        self.fails = fails
        self.asked = 0

    async def __call__(self) -> Offsets:
        self.asked += 1
        if self.fails:
            raise ConnectionError("broker away")
        return dict(self.offsets)


def test_positions_move_past_handled_records_and_never_back() -> None:
    consumed = ConsumedOffsets()
    consumed.record([at(0, 4), at(0, 2), at(1, 0)])
    consumed.record([at(0, 3)])  # a redelivery of older records
    assert consumed.positions == {0: 5, 1: 1}
    assert consumed.short_of({0: 5, 1: 3, 2: 0}) == {1: 2}  # an empty partition is reached at once
    consumed.record([])
    assert consumed.positions == {0: 5, 1: 1}


async def test_a_wait_ends_reached_when_the_consumer_handles_the_last_record() -> None:
    consumed = ConsumedOffsets()
    waiting = asyncio.create_task(consumed.wait_for({0: 3, 1: 1}, timeout_s=30))
    consumed.record([at(0, 0), at(0, 1)])
    await asyncio.sleep(0)
    assert not waiting.done()  # partition 0 is one short, partition 1 not seen yet
    consumed.record([at(1, 0)])
    await asyncio.sleep(0)
    assert not waiting.done()
    consumed.record([at(0, 2)])
    caught = await waiting
    assert caught.reached and caught.short == {}
    assert caught.summary()["watermark"] == {"0": 3, "1": 1} and caught.summary()["partitions_short"] == 0


async def test_an_empty_watermark_or_one_already_reached_does_not_wait_nor_ask_the_broker() -> None:
    committed = Committed({0: 100})
    consumed = ConsumedOffsets(committed)
    consumed.record([at(0, 9)])
    assert (await consumed.wait_for({}, timeout_s=30)).reached
    assert (await consumed.wait_for({0: 10}, timeout_s=30)).reached
    assert committed.asked == 0


async def test_committed_offsets_count_as_consumed_after_a_restart() -> None:
    """A new process has consumed nothing yet; what its group committed before was stored before."""
    committed = Committed({0: 50, 1: 20})
    consumed = ConsumedOffsets(committed)
    caught = await consumed.wait_for({0: 50, 1: 18}, timeout_s=30)
    assert caught.reached and committed.asked == 1 and consumed.positions == {0: 50, 1: 20}


async def test_committed_offsets_are_read_again_while_waiting() -> None:
    """Records the consumer acknowledged without handling (dead-lettered) are never recorded by the
    handler: the group's commit covers them, read again every refresh_s."""
    committed = Committed({0: 4})
    consumed = ConsumedOffsets(committed, refresh_s=0.01)
    waiting = asyncio.create_task(consumed.wait_for({0: 5}, timeout_s=30))
    while committed.asked < 2:
        await asyncio.sleep(0.005)
    assert not waiting.done()
    committed.offsets = {0: 5}  # the dead-lettered record at offset 4 was acknowledged
    caught = await waiting
    assert caught.reached


async def test_when_the_bound_passes_the_wait_says_what_was_short() -> None:
    consumed = ConsumedOffsets(Committed({0: 7}), refresh_s=0.01)
    consumed.record([at(1, 2)])
    caught = await consumed.wait_for({0: 10, 1: 3, 2: 4}, timeout_s=0.05)
    assert not caught.reached and caught.short == {0: 3, 2: 4}
    assert caught.summary()["partitions_short"] == 2 and caught.summary()["records_short"] == 7


async def test_a_broker_that_does_not_answer_leaves_what_was_recorded() -> None:
    committed = Committed(fails=True)
    consumed = ConsumedOffsets(committed, refresh_s=0.01)
    consumed.record([at(0, 0)])
    caught = await consumed.wait_for({0: 2}, timeout_s=0.03)
    assert caught.short == {0: 1} and committed.asked >= 1
    consumed.record([at(0, 1)])
    assert (await consumed.wait_for({0: 2}, timeout_s=0.03)).reached


async def test_a_zero_bound_returns_at_once_with_the_shortfall() -> None:
    caught = await ConsumedOffsets().wait_for({3: 1}, timeout_s=0)
    assert caught.short == {3: 1} and not caught.reached


@pytest.mark.parametrize(
    ("protocol", "expected"),
    [
        ("PLAINTEXT", set()),
        ("SSL", {"security_protocol", "ssl_context"}),
        ("SASL_SSL", {"security_protocol", "ssl_context", "sasl_mechanism", "sasl_plain_username"}),
    ],
)
def test_client_options_follow_the_platform_security_settings(protocol: str, expected: set[str]) -> None:
    settings = ServiceSettings(
        kafka_bootstrap_servers="k:9093",
        kafka_security_protocol=protocol,  # type: ignore[arg-type]
        kafka_sasl_username="svc",
        kafka_sasl_password="s3cret-value",  # type: ignore[arg-type]
    )
    options = client_options(settings)
    assert options["bootstrap_servers"] == ["k:9093"] and expected <= set(options)
    if protocol.startswith("SASL"):
        assert options["sasl_plain_password"] == "s3cret-value"
