"""Per-record isolation of a batch handler's failures: transient trouble is retried, poison records
are found alone, and a batch in which nothing succeeds is reported as such (not as poison)."""

from __future__ import annotations

import pytest

from servicekit.isolation import handle_isolating


class Handler:
    """Fails on the records in `poison`, and on the first `blips` calls whatever they hold."""

    def __init__(self, poison: set[int] = frozenset(), blips: int = 0) -> None:  # type: ignore[assignment]
        self.poison, self.blips = poison, blips
        self.calls: list[list[int]] = []
        self.done: list[int] = []

    async def __call__(self, batch: list[int]) -> None:
        self.calls.append(batch)
        if self.blips:
            self.blips -= 1
            raise ConnectionError("the store blinked")
        bad = self.poison & set(batch)
        if bad:
            raise ValueError(f"bad record(s) {sorted(bad)}")
        self.done.extend(batch)


async def test_a_transient_failure_is_retried_whole_and_nothing_is_poison() -> None:
    handler = Handler(blips=2)
    result = await handle_isolating(list(range(10)), handler, attempts=3, backoff_s=0)
    assert result.handled == list(range(10)) and not result.poison
    assert len(handler.calls) == 3 and handler.done == list(range(10))


@pytest.mark.parametrize("poison", [{0}, {13}, {99}, {3, 4}, {1, 50, 98}])
async def test_only_the_poison_records_fail_and_every_neighbour_is_handled(poison: set[int]) -> None:
    handler = Handler(poison=poison)
    result = await handle_isolating(list(range(100)), handler, attempts=2, backoff_s=0)
    assert sorted(item for item, _ in result.poison) == sorted(poison)
    assert all(isinstance(exc, ValueError) for _, exc in result.poison)
    assert sorted(result.handled) == [i for i in range(100) if i not in poison]
    assert set(handler.done) == set(result.handled)  # handled means the handler really completed it
    assert len(handler.calls) <= 2 + 2 * len(poison) * 7  # retries, then about 2*log2(100) per poison


async def test_a_batch_in_which_everything_fails_has_nothing_handled() -> None:
    handler = Handler(poison=set(range(8)))
    result = await handle_isolating(list(range(8)), handler, attempts=1, backoff_s=0)
    assert not result.handled and sorted(i for i, _ in result.poison) == list(range(8))


async def test_an_empty_batch_calls_nothing() -> None:
    handler = Handler()
    result = await handle_isolating([], handler, attempts=3)
    assert not handler.calls and not result.handled and not result.poison
