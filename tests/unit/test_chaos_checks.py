"""The fault-injection run's checks catch what they claim to: a lost, doubled, stray, forged or stale
item turns its check red; redelivered copies of the same event do not."""

from __future__ import annotations

from bench.chaos_checks import (
    CleanRecord,
    Message,
    Outcome,
    audit_matches_kafka,
    chain_verifies,
    kill_plan,
    last_clean_per_entity,
    online_matches_last_clean,
    raw_accounting,
)

TARGETS = ("ingest", "features", "audit", "kafka")


# -- the plan ---------------------------------------------------------------------------------------
def test_the_plan_is_seeded_hits_every_target_and_stays_in_its_window() -> None:
    plan = kill_plan(seed=5, kills=20, targets=TARGETS, window_s=(10.0, 100.0))
    assert plan == kill_plan(seed=5, kills=20, targets=TARGETS, window_s=(10.0, 100.0))
    assert plan != kill_plan(seed=6, kills=20, targets=TARGETS, window_s=(10.0, 100.0))
    assert len(plan) == 20 and {k.target for k in plan} == set(TARGETS)
    assert all(10.0 <= k.at_s <= 100.0 and 0.2 <= k.down_s <= 3.0 for k in plan)
    assert [k.at_s for k in plan] == sorted(k.at_s for k in plan)


def test_fewer_kills_than_targets_never_repeat_a_target() -> None:
    plan = kill_plan(seed=1, kills=3, targets=TARGETS, window_s=(0.0, 1.0))
    assert len({k.target for k in plan}) == 3


def test_an_empty_plan_is_refused() -> None:
    for kills, targets, window in ((0, TARGETS, (0.0, 1.0)), (1, (), (0.0, 1.0)), (1, TARGETS, (2.0, 2.0))):
        try:
            kill_plan(1, kills, targets, window)
        except ValueError:
            continue
        raise AssertionError(f"accepted {kills} kills of {targets} in {window}")


# -- raw offsets ------------------------------------------------------------------------------------
def test_one_outcome_per_raw_offset_passes_and_redelivered_copies_are_only_counted() -> None:
    outcomes = [Outcome((0, 0), "a", "RecordCleaned"), Outcome((0, 1), "b", "RecordRejected"),
                Outcome((0, 0), "a", "RecordCleaned")]  # fmt: skip
    check = raw_accounting([(0, 0), (0, 1)], outcomes)
    assert check.ok
    assert check.counts["clean"] == 1 and check.counts["rejected"] == 1
    assert check.counts["republished_copies"] == 1


def test_a_lost_a_doubled_and_a_stray_outcome_each_fail() -> None:
    outcomes = [Outcome((0, 0), "a", "RecordCleaned"), Outcome((0, 0), "a2", "RecordCleaned"),
                Outcome((1, 0), "c", "RecordRejected"), Outcome((0, 0), "a", "RecordRejected")]  # fmt: skip
    check = raw_accounting([(0, 0), (0, 1)], outcomes)
    assert not check.ok
    assert (check.counts["missing"], check.counts["doubled"], check.counts["stray"]) == (1, 1, 1)
    assert check.examples["missing"] == [(0, 1)] and check.examples["doubled"] == [(0, 0)]


# -- audit against Kafka ----------------------------------------------------------------------------
def _m(topic: str, offset: int, digest: str = "d", event_id: str | None = None) -> Message:
    return Message((topic, 0, offset), digest, event_id)


def test_a_republished_event_is_matched_by_its_id_and_later_messages_are_not_required() -> None:
    kafka = [_m("t", 0, "x", "e1"), _m("t", 1, "y", "e1"), _m("t", 2, "z", "e2")]
    store = [_m("t", 0, "x", "e1")]
    check = audit_matches_kafka(kafka, store, {("t", 0): 2})
    assert check.ok, check.counts
    assert check.counts["matched_by_coordinates"] == 1 and check.counts["matched_by_event_id"] == 1


def test_a_missing_a_forged_an_altered_and_a_doubled_row_each_fail() -> None:
    kafka = [_m("t", 0, "x", "e1"), _m("t", 1, "y", "e2"), _m("raw", 0, "r")]
    store = [_m("t", 0, "x", "e1"), _m("t", 0, "x", "e9"), _m("t", 7, "f", "e7"), _m("raw", 0, "tampered")]
    check = audit_matches_kafka(kafka, store, {("t", 0): 2, ("raw", 0): 1})
    counts = check.counts
    assert (counts["missing"], counts["absent_from_kafka"], counts["digest_mismatch"]) == (1, 1, 1)
    assert counts["doubled"] == 1 and not check.ok


# -- online features --------------------------------------------------------------------------------
def test_the_last_raw_record_of_an_entity_wins_whatever_the_reading_order() -> None:
    late, early = CleanRecord("e", (2, 9), {"f": 2}), CleanRecord("e", (2, 3), {"f": 1})
    assert last_clean_per_entity([late, early])["e"] is late
    assert last_clean_per_entity([early, late])["e"] is late


def test_online_values_equal_to_the_last_record_pass_and_stale_or_missing_ones_fail() -> None:
    last = {"a": CleanRecord("a", (0, 1), {"n": 3, "c": "x"}),
            "b": CleanRecord("b", (0, 2), {"n": 1.5, "c": "y"}),
            "c": CleanRecord("c", (0, 3), {"n": 1, "c": "z"})}  # fmt: skip
    online = {"a": {"n": 3.0, "c": "x"}, "b": {"n": 1.5, "c": "old"}, "c": None}
    check = online_matches_last_clean(last, online, ("n", "c"))
    assert check.counts == {"entities": 3, "matching": 1, "missing": 1, "stale": 1}
    assert check.examples["stale"][0]["features"] == ["c"] and check.examples["missing"] == ["c"]


def test_a_row_of_nulls_counts_as_missing_and_a_boolean_is_not_the_number_one() -> None:
    last = {"a": CleanRecord("a", (0, 1), {"n": 1}), "b": CleanRecord("b", (0, 2), {"n": 1})}
    check = online_matches_last_clean(last, {"a": {"n": None}, "b": {"n": True}}, ("n",))
    assert check.counts["missing"] == 1 and check.counts["stale"] == 1


# -- the chain --------------------------------------------------------------------------------------
def test_the_chain_check_needs_an_explicit_true_from_both_the_cli_and_the_route() -> None:
    assert chain_verifies({"intact": True}, {"intact": True}).ok
    assert not chain_verifies({"intact": True}, {"intact": "yes"}).ok
    assert not chain_verifies({}, {"intact": True}).ok
