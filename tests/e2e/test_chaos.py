"""Fault injection on the whole stack (`mlops up`, every service its own process, a broker of its own):
records stream in while 20 seeded SIGKILLs hit random services and the broker, each restarted the way
`mlops up` starts it. Afterwards nothing is lost, doubled or forged (bench/chaos.py runs the same
with more records; docs/chaos.md has its figures)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.chaos import ChaosConfig, Report, run, summary
from bench.chaos_checks import Check
from bench.chaos_stack import KAFKA
from tests.support import TEST_KAFKA_PORT

PORT = TEST_KAFKA_PORT + 500
FIRST_SERVICE_PORT = TEST_KAFKA_PORT - 4000
pytestmark = pytest.mark.timeout(2400)  # the module's stack, 20 kills with broker restarts, the checks
CONFIG = ChaosConfig(
    seed=11, kills=20, records=900, rate=8.0, kafka_port=PORT, first_service_port=FIRST_SERVICE_PORT
)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, jars_dir: Path) -> Report:
    state = tmp_path_factory.mktemp("chaos")
    config = ChaosConfig(**{**CONFIG.__dict__, "state_dir": state})
    result = run(config)
    print(summary(result))  # shown with -rA: the figures of this run
    return result


def check(report: Report, name: str) -> Check:
    found = [c for c in report.checks if c.name == name]
    assert found, f"no check {name!r} in {[c.name for c in report.checks]}"
    return found[0]


def test_twenty_kills_hit_every_service_and_the_broker_and_all_came_back(report: Report) -> None:
    kills = report.kills_by_target()
    assert sum(kills.values()) >= 20, report.kills
    assert KAFKA in kills and len(kills) >= 8, kills  # seven services and the broker
    assert report.not_ready_at_end == []


def test_every_raw_offset_has_exactly_one_clean_or_rejected_outcome(report: Report) -> None:
    raw = check(report, "raw offsets accounted once")
    assert raw.counts["missing"] == 0, raw.examples
    assert raw.counts["doubled"] == 0 and raw.counts["stray"] == 0, raw.examples
    assert raw.counts["raw_offsets"] >= CONFIG.records  # a send retried after a broker kill may land twice
    assert raw.counts["clean"] + raw.counts["rejected"] == raw.counts["raw_offsets"]
    assert raw.counts["rejected"] >= CONFIG.records // CONFIG.bad_every


def test_the_audit_trail_matches_kafka_one_to_one(report: Report) -> None:
    audit = check(report, "audit trail matches Kafka one to one")
    assert audit.counts["missing"] == 0, audit.examples
    assert audit.counts["absent_from_kafka"] == 0 and audit.counts["digest_mismatch"] == 0, audit.examples
    assert audit.counts["doubled"] == 0, audit.examples
    assert audit.counts["matched_by_coordinates"] >= 2 * CONFIG.records  # raw records and their outcomes


def test_online_features_equal_the_last_clean_record_of_every_entity(report: Report) -> None:
    features = check(report, "online features match the last clean record")
    assert features.counts["entities"] > 0
    assert features.counts["missing"] == 0 and features.counts["stale"] == 0, features.examples


def test_the_audit_chain_verifies_from_the_cli_and_over_http(report: Report) -> None:
    chain = check(report, "audit chain verifies")
    assert chain.ok, chain.examples
