"""The Presidio adapter on hostile planted values (the model loads once per process): every case issue 18
found leaking (lower/upper-case names, e-mails on unusual domains, numbers without separators), and
IBANs, cards, dates of birth and addresses."""

from __future__ import annotations

import pytest

from services.ingest.adapters.presidio import NAME_GATE, PresidioScrubber, load_presidio_scrubber
from services.ingest.adapters.presidio_recognizers import Truecaser
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
# (text, value that must vanish): the shapes that leaked before issue 18.
HOSTILE = [
    ("spoke with john smith about the loan", "john smith"),
    ("SPOKE WITH MARIA GONZALEZ ABOUT THE LOAN", "MARIA GONZALEZ"),
    ("guarantor is kowalczyk, zbigniew", "kowalczyk"),
    ("letter signed by mrs o'brien", "o'brien"),
    ("met ms. van der berg at the branch", "berg"),
    ("per KELLY M. WATERS the income is stable", "WATERS"),
    ("reply to jane.doe+loans@mail.example", "jane.doe+loans@mail.example"),
    ("documents came from X@TEST.INVALID", "X@TEST.INVALID"),
    ("mail curator@art.museum or bob@web.xyz", "curator@art.museum"),
    ("mail bob@web.xyz today", "bob@web.xyz"),
    ("ip-literal user@[192.0.2.17] bounced", "user@[192.0.2.17]"),
    ("sub-domains: a_b@mail.eu.corp.example.co.uk", "a_b@mail.eu.corp.example.co.uk"),
    ("her ssn is 316722962", "316722962"),
    ("ssn 000-12-3456 on the form", "000-12-3456"),
    ("ss# 666 12 3456", "666 12 3456"),
    ("tax id 912.34.5678 checked", "912.34.5678"),
    ("call back at 2125550188", "2125550188"),
    ("mobile +4915112345678 in the evening", "+4915112345678"),
    ("work number (0306) 999 0141", "999 0141"),
    ("reachable on 22 794 98 77", "22 794 98 77"),
    ("transfer to DE89370400440532013000", "DE89370400440532013000"),
    ("iban gb82 west 1234 5698 7654 32 for the refund", "gb82 west 1234 5698 7654 32"),
    ("card 4111111111111112 declined (a typo: no Luhn)", "4111111111111112"),
    ("paid with 5500-0000-0000-0004", "5500-0000-0000-0004"),
    ("born 14 March 1985", "14 March 1985"),
    ("dob 03/14/1985", "03/14/1985"),
    ("DATE OF BIRTH: 1985-03-14", "1985-03-14"),
    ("lives at 391 johnson burg apt. 636", "391 johnson burg"),
    ("moved to 12 Baker Street last year", "12 Baker Street"),
    ("address: Schlosserallee 7", "Schlosserallee 7"),
]
CONTROL = [
    "Income verified with the last three payslips.",
    "Requested 12,500 EUR over 36 months; rate of 4% agreed.",
    "The applicant will send the documents in May.",
    "Mark the file as urgent and grant a grace period.",
    "existing customer since 2011, no remarks.",
    "CALLED BACK TWICE, NO ANSWER.",
]


def test_planted_values_are_found_and_replaced(scrubber: PresidioScrubber) -> None:
    results = scrubber.scrub([text for text, _, _ in PLANTED])
    for (text, value, entity), result in zip(PLANTED, results, strict=True):
        assert value not in result.text, text
        assert entity in result.entities and f"<{entity}>" in result.text


@pytest.mark.parametrize(("text", "value"), HOSTILE, ids=[value for _, value in HOSTILE])
def test_hostile_values_are_scrubbed(scrubber: PresidioScrubber, text: str, value: str) -> None:
    (result,) = scrubber.scrub([text])
    assert value.lower() not in result.text.lower(), result.text
    assert result.entities


def test_text_without_pii_is_left_alone(scrubber: PresidioScrubber) -> None:
    assert [r.text for r in scrubber.scrub(CONTROL)] == CONTROL


def test_the_truecaser_keeps_offsets_and_only_recases_names() -> None:
    truecase = Truecaser(frozenset({"spoke", "with", "about", "the", "loan", "call"}))
    text = "spoke with nowak about the loan; CALL ZORVAT, SSN 316722962"
    cased = truecase(text)
    assert len(cased) == len(text)
    assert cased == "spoke with Nowak about the loan; Call Zorvat, SSN 316722962"


def test_batched_and_one_by_one_agree(scrubber: PresidioScrubber) -> None:
    texts = [text for text, _, _ in PLANTED]
    assert [r.text for r in scrubber.scrub(texts)] == [r.text for r in scrubber.scrub_one_by_one(texts)]


def test_the_name_gate() -> None:
    assert NAME_GATE.search("Spoke with Maria today")
    assert NAME_GATE.search("Mr Smith called")
    assert not NAME_GATE.search("Income verified. Requested a longer term.")


def corpus() -> list[str]:
    from workbench.demo_data import ApplicationStream
    from workbench.pii_corpus import planted_corpus

    texts = [text for text, _, _ in PLANTED] + [text for text, _ in HOSTILE]
    texts += [p.record["notes"] for p in planted_corpus(60, seed=4)]
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
