"""The Presidio adapter on a small planted corpus (the model loads once per process)."""

from __future__ import annotations

import pytest

from services.ingest.adapters.presidio import NAME_GATE, PresidioScrubber, load_presidio_scrubber
from services.ingest.domain.schema import load_schema
from services.ingest.settings import SCHEMAS_DIR

POLICY = load_schema(SCHEMAS_DIR / "loan_applications.yaml").free_text


@pytest.fixture(scope="module")
def scrubber() -> PresidioScrubber:
    return load_presidio_scrubber(POLICY.entities, POLICY.score_threshold, POLICY.ner_gate)


PLANTED = [
    ("Spoke with Maria Gonzalez about the loan.", "Maria Gonzalez", "PERSON"),
    ("Please call Isaiah Diaz back before Friday.", "Isaiah Diaz", "PERSON"),
    ("Send the contract to jane.doe@example.com today.", "jane.doe@example.com", "EMAIL_ADDRESS"),
    ("Reach her at (555)123-4567x890 after five.", "(555)123-4567x890", "PHONE_NUMBER"),
    ("Or try 555.867.5309 in the morning.", "555.867.5309", "PHONE_NUMBER"),
    ("Fee charged to 4111 1111 1111 1111 yesterday.", "4111 1111 1111 1111", "CREDIT_CARD"),
    ("A 19-digit card 4412917366625729736 was used.", "4412917366625729736", "CREDIT_CARD"),
    ("SSN on file: 316-72-2962.", "316-72-2962", "US_SSN"),
]


def test_planted_values_are_found_and_replaced(scrubber: PresidioScrubber) -> None:
    results = scrubber.scrub([text for text, _, _ in PLANTED])
    for (text, value, entity), result in zip(PLANTED, results, strict=True):
        assert value not in result.text, text
        assert entity in result.entities and f"<{entity}>" in result.text


def test_text_without_pii_is_left_alone(scrubber: PresidioScrubber) -> None:
    texts = ["Income verified with the last three payslips.", "Requested a longer term."]
    assert [r.text for r in scrubber.scrub(texts)] == texts


def test_batched_and_one_by_one_agree(scrubber: PresidioScrubber) -> None:
    texts = [text for text, _, _ in PLANTED]
    assert [r.text for r in scrubber.scrub(texts)] == [r.text for r in scrubber.scrub_one_by_one(texts)]


def test_the_name_gate() -> None:
    assert NAME_GATE.search("Spoke with Maria today")
    assert NAME_GATE.search("Mr Smith called")
    assert not NAME_GATE.search("Income verified. Requested a longer term.")


def corpus() -> list[str]:
    from services.ingest.demo_data import ApplicationStream
    from services.ingest.privacy_eval import planted_corpus

    texts = [text for text, _, _ in PLANTED] + [p.record["notes"] for p in planted_corpus(60, seed=4)]
    texts += [a.record["notes"] for a in ApplicationStream(seed=8).take(60)]
    return [
        *texts,
        "Server at 10.0.0.12 and fe80::1ff:fe23:4567:890a, IBAN GB82 WEST 1234 5698 7654 32.",
        "No digits here at all, only words and Names Like This.",
        "Full-width \uff20 sign, Arabic digits ٣٤٥-٦٧-٨٩٠١, mail a@b.co",
        "abcd::ef and ::1 are addresses too",
    ]


def test_the_entity_gate_changes_no_result(scrubber: PresidioScrubber) -> None:
    texts = corpus()
    key = lambda rs: sorted((r.entity_type, r.start, r.end, round(r.score, 6)) for r in rs)  # noqa: E731
    gated, full = scrubber.analyze(texts), scrubber.analyze(texts, gated=False)
    assert [key(r) for r in gated] == [key(r) for r in full]


def test_repeated_texts_are_answered_from_the_cache(scrubber: PresidioScrubber) -> None:
    texts = corpus()
    fresh = PresidioScrubber(scrubber.analyzer, POLICY.entities, POLICY.score_threshold, True, cache_size=0)
    expected = fresh.scrub(texts)
    cached = PresidioScrubber(scrubber.analyzer, POLICY.entities, POLICY.score_threshold, True, cache_size=8)
    assert cached.scrub(texts + texts[:3]) == expected + expected[:3]  # repeats within a batch
    assert cached.scrub(texts[-3:]) == expected[-3:] and cached.cache.hits == 3
    assert len(cached.cache._entries) == 8  # bounded
    assert not any(isinstance(k, str) for k in cached.cache._entries)  # keyed by digest, not text
