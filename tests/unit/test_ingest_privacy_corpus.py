"""The planted corpus (workbench/pii_corpus.py) through the real use case: a fixed-seed sample keeps the
issue-18 targets (recall >= 0.99 on structured fields, >= 0.95 per type in free text), and the leak
check counts partial leaks."""

from __future__ import annotations

import pytest

from services.ingest.domain.privacy import TextScrubber
from services.ingest.handlers import IngestHandler
from workbench.pii_corpus import TYPES, Planted, PlantedRecord, planted_corpus
from workbench.privacy_eval import Report, build, evaluate, leaked


@pytest.fixture(scope="module")
def wired() -> tuple[IngestHandler, TextScrubber, list[PlantedRecord]]:
    return build(records=240, seed=5)


def test_the_sample_meets_the_targets(wired: tuple[IngestHandler, TextScrubber, list[PlantedRecord]]) -> None:
    handler, scrubber, corpus = wired
    report = evaluate(handler, scrubber, corpus)
    assert report.outcomes == {"clean": len(corpus)}  # a rejected record carries no notes: no test at all
    assert {key.split(":")[1] for key in report.planted if key.startswith("text:")} == set(TYPES)
    assert sum(report.planted.values()) > 1500
    assert report.misses() == [], report.recall()
    assert all(value >= 0.8 for value in report.precision().values()), report.precision()


def test_control_notes_count_against_precision() -> None:
    report = Report()
    report.detected["PERSON"] += 4
    report.correct["PERSON"] += 3
    assert report.precision() == {"PERSON": 0.75}


@pytest.mark.parametrize(
    ("output", "is_leak"),
    [
        ("spoke with <PERSON> today", False),
        ("spoke with Mr <PERSON> SMITH today", True),  # one part of the name survived
        ("call 555-<PHONE_NUMBER>", False),
        ("call <PHONE_NUMBER>, ext 555 12 34567", True),  # the digits, whatever the separators
    ],
)
def test_partial_leaks_count(output: str, is_leak: bool) -> None:
    name = Planted("PERSON", "John Smith", ("john", "smith"))
    phone = Planted("PHONE_NUMBER", "555-123-4567", ("1234567",))
    assert (leaked(name, output) or leaked(phone, output)) is is_leak


def test_the_corpus_is_deterministic_and_mixes_casing() -> None:
    first, again = planted_corpus(80, seed=3), planted_corpus(80, seed=3)
    assert [p.record for p in first] == [p.record for p in again]
    values = [v.value for p in first for v in p.free_text]
    assert any(v.islower() for v in values) and any(v.isupper() for v in values)
    assert any(p.control for p in first) and all(not p.free_text for p in first if p.control)
    for planted in first:  # each planted value sits where it says in its note
        for value in planted.free_text:
            assert planted.record["notes"][value.start : value.start + len(value.value)] == value.value
