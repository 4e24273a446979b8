"""Per-record isolation of a batch handler's failures: a failing batch is split at once, transient
trouble costs no record, poison records are found alone whatever the attempts allowed for outages,
and a batch in which nothing succeeds is retried whole, then reported as such (not as poison)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Set as AbstractSet

import pytest

from servicekit.isolation import handle_isolating


class Handler:
    """Fails on the records in `poison`, and on the first `blips` calls whatever they hold."""

    def __init__(
        self,
        poison: AbstractSet[int] = frozenset(),
        blips: int = 0,
        alone_blips: int = 0,
    ) -> None:
        self.poison, self.blips, self.alone_blips = poison, blips, alone_blips
        self.calls: list[list[int]] = []
        self.done: list[int] = []

    async def __call__(self, batch: list[int]) -> None:
        self.calls.append(batch)
        if self.blips:
            self.blips -= 1
            raise ConnectionError("the store blinked")
        bad = self.poison & set(batch)
        if bad and len(batch) == 1 and self.alone_blips:
            self.alone_blips -= 1  # a poison-looking record whose trouble was the store's, after all
            self.poison = self.poison - bad
        if bad:
            raise ValueError(f"bad record(s) {sorted(bad)}")
        self.done.extend(batch)


async def test_a_transient_failure_costs_no_record() -> None:
    handler = Handler(blips=2)
    result = await handle_isolating(list(range(10)), handler, attempts=3, backoff_s=0)
    assert result.handled == list(range(10)) and not result.poison
    assert handler.done == list(range(10))  # in the batch's order


@pytest.mark.parametrize("poison", [{0}, {13}, {99}, {3, 4}, {1, 50, 98}])
async def test_only_the_poison_records_fail_and_every_neighbour_is_handled(poison: set[int]) -> None:
    handler = Handler(poison=poison)
    result = await handle_isolating(list(range(100)), handler, attempts=2, backoff_s=0)
    assert sorted(item for item, _ in result.poison) == sorted(poison)
    assert all(isinstance(exc, ValueError) for _, exc in result.poison)
    assert result.handled == [i for i in range(100) if i not in poison]  # in order: depth first
    assert handler.done == result.handled  # handled means the handler really completed it
    # the whole once, then about 2*log2(100) halves per poison record and its two retries alone
    assert len(handler.calls) <= 1 + len(poison) * (2 * 7 + 2)


@pytest.mark.parametrize("attempts", [2, 100])
async def test_a_poison_record_is_found_without_retrying_its_batch_whole(attempts: int) -> None:
    """The audit allows 100 attempts for a store that stays down: one poison record used to hold its
    batch for all of them (about eight minutes of backoff) before it was looked for."""
    handler = Handler(poison={613})
    result = await handle_isolating(list(range(2000)), handler, attempts=attempts, backoff_s=0)
    assert [item for item, _ in result.poison] == [613] and len(result.handled) == 1999
    assert sum(len(call) == 2000 for call in handler.calls) == 1
    assert len(handler.calls) <= 1 + 2 * 11 + 2
    assert [call for call in handler.calls if call == [613]] == [[613]] * 3  # alone, then twice more


async def test_a_record_that_fails_alone_once_is_tried_again_and_handled_in_its_place() -> None:
    handler = Handler(poison={13}, alone_blips=1)
    result = await handle_isolating(list(range(20)), handler, attempts=3, backoff_s=0)
    assert result.handled == list(range(20)) and not result.poison
    assert handler.done == list(range(20))


async def test_a_burst_of_poison_records_costs_retries_alone_for_the_first_three_only() -> None:
    poison = set(range(0, 400, 2))  # every other record of the batch
    handler = Handler(poison=poison)
    result = await handle_isolating(list(range(400)), handler, attempts=3, backoff_s=0)
    assert sorted(item for item, _ in result.poison) == sorted(poison)
    assert result.handled == [i for i in range(400) if i not in poison]
    alone = Counter(call[0] for call in handler.calls if len(call) == 1 and call[0] in poison)
    assert alone == {i: 3 if i in (0, 2, 4) else 1 for i in poison}  # the first three: twice more


async def test_a_batch_in_which_nothing_goes_through_is_retried_whole_before_it_is_split() -> None:
    handler = Handler(poison=set(range(1000)))
    result = await handle_isolating(list(range(1000)), handler, attempts=4, backoff_s=0)
    assert not result.handled and sorted(i for i, _ in result.poison) == list(range(1000))
    wholes = [n for n, call in enumerate(handler.calls) if len(call) == 1000]
    assert len(wholes) == 4  # `attempts` calls whole in all
    assert wholes[1] <= 1 + 2 * 10 + 2 * 3  # the first split gave up within its budget of failures


async def test_a_store_that_comes_back_during_the_whole_retries_costs_no_record() -> None:
    handler = Handler(blips=30)  # longer than a split's budget of failures, shorter than the retries
    result = await handle_isolating(list(range(64)), handler, attempts=20, backoff_s=0)
    assert result.handled == list(range(64)) and not result.poison


async def test_a_batch_in_which_everything_fails_has_nothing_handled() -> None:
    handler = Handler(poison=set(range(8)))
    result = await handle_isolating(list(range(8)), handler, attempts=1, backoff_s=0)
    assert not result.handled and sorted(i for i, _ in result.poison) == list(range(8))


async def test_an_empty_batch_calls_nothing() -> None:
    handler = Handler()
    result = await handle_isolating([], handler, attempts=3)
    assert not handler.calls and not result.handled and not result.poison


async def test_a_lone_record_is_judged_as_its_own_fault_when_the_handler_went_through_lately() -> None:
    handler = Handler(poison={7})
    result = await handle_isolating([7], handler, attempts=100, backoff_s=0, proven=True)
    assert not result.handled and [item for item, _ in result.poison] == [7]
    assert handler.calls == [[7]] * 3  # its call, then twice more alone: not the 100 of an unknown outage


async def test_a_lone_record_with_nothing_to_compare_it_with_gets_every_attempt() -> None:
    handler = Handler(poison={7})
    result = await handle_isolating([7], handler, attempts=5, backoff_s=0)
    assert [item for item, _ in result.poison] == [7] and handler.calls == [[7]] * 5
