"""Recognizers registered on the Presidio analyzer beside its own, for text as people really write it.

They favour recall: a false positive costs a redacted word, a miss leaks PII into every downstream
store. Patterns run with Presidio's default flags (case-insensitive) unless stated.

- E-mail on any domain: no TLD check (reserved `.example`/`.invalid`, `.museum`, IP literals).
- US SSN with dashes, spaces, dots or no separator, including numbers Presidio's validator calls
  invalid (000/666/9xx prefixes): a typo'd SSN is still somebody's SSN.
- Phone numbers: North-American and international layouts, national trunk-prefix layouts (0...), with
  or without separators (libphonenumber's matcher took 4 ms per text; these regexes microseconds).
- Card numbers: 12-19 digits, Luhn-valid at full score, any checksum at a lower score.
- IBAN without checksum validation (upper or lower case, grouped or not).
- Street addresses: a house number, up to four words and a USPS street suffix (or a German one).
- Dates of birth: every full calendar date (numeric or with a month name). A note cannot tell a birth
  date from another date without context the small model lacks, so all full dates go.
- Names: see `NameGazetteerRecognizer`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from typing import Any

from presidio_analyzer import LocalRecognizer, Pattern, PatternRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from services.ingest.adapters.names import TITLES, common_words, fold, name_lists

EMAIL_ANY_DOMAIN = [
    Pattern(
        "email_any_domain",
        r"(?<![\w.!#$%&'*+/=?^`{|}~-])[\w!#$%&'*+/=?^`{|}~-]+(?:\.[\w!#$%&'*+/=?^`{|}~-]+)*"
        r"@(?:\[[0-9a-f:.IPv]{2,45}\]|[\w-]+(?:\.[\w-]+)*)",
        0.9,
    )
]
SSN_ANY_SEPARATOR = [Pattern("ssn_any_separator", r"(?<![\d-])\d{3}([- .]?)\d{2}\1\d{4}(?![\d-])", 0.5)]
PHONE_PATTERNS = [
    Pattern(
        "nanp",
        r"(?<![\w+])(?:\+?1[-. ]?)?\(?\d{3}\)?[-. ]?\d{3}[-. ]?\d{4}(?:\s?(?:x|ext\.?)\s?\d{1,5})?(?!\w)",
        0.6,
    ),
    Pattern(
        "intl",
        r"(?<![\w+])(?:\+|00)\d{1,3}[-. ]?(?:\(0\)\s?)?\(?\d{1,4}\)?(?:[-. /]?\d{2,5}){1,4}(?!\w)",
        0.5,
    ),
    Pattern("spaced_groups", r"(?<![\w+.,])\d{2,4}(?:[ .-]\d{2,4}){2,4}(?![\w.,]\d)", 0.4),
    Pattern("digit_run", r"(?<![\w+])\+?\d{10,15}(?![\w])", 0.4),
    Pattern("national", r"(?<![\w+])\(?0\d{1,5}\)?[-. /]?\d{2,5}(?:[-. /]?\d{2,5}){0,3}(?![\w])", 0.4),
]
CARD_DIGITS = r"(?<![\d-])\d(?:[- ]?\d){11,18}(?![\d-])"
CARD_LUHN = [Pattern("card_12_19", CARD_DIGITS, 0.3)]  # validated: 1.0 when the checksum holds
CARD_ANY_CHECKSUM = [Pattern("card_any_checksum", CARD_DIGITS, 0.4)]
IBAN_ANY_CHECKSUM = [
    Pattern(
        "iban_any_checksum",
        r"(?<![\w])[a-z]{2}\d{2}(?:(?:[ -]?[a-z0-9]{4}){2,7}(?:[ -]?[a-z0-9]{1,3})?|[a-z0-9]{11,30})(?![\w])",
        0.5,
    )
]
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
DATE_PATTERNS = [
    Pattern(
        "iso_date",
        r"(?<![\d])(?:1[89]|20)\d{2}[-/.](?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\d|3[01])(?!\d)",
        0.5,
    ),
    Pattern(
        "numeric_date",
        r"(?<![\d.])(?:0?[1-9]|[12]\d|3[01])[-/.](?:0?[1-9]|[12]\d|3[01])[-/.](?:\d{4}|\d{2})(?![\d])",
        0.5,
    ),
    Pattern("day_month_year", rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH},?\s+\d{{4}}\b", 0.5),
    Pattern("month_day_year", rf"\b{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}\b", 0.5),
]


@cache
def street_suffixes() -> tuple[str, ...]:
    """USPS street suffixes (Publication 28, as Faker ships them), their common abbreviations, and
    British ones; longest first so the alternation prefers `Streets` to `Street`."""
    from faker.providers.address.en_GB import Provider as GbAddress
    from faker.providers.address.en_US import Provider as UsAddress

    words = {*UsAddress.street_suffixes, *GbAddress.street_suffixes}
    words |= {"St", "Ave", "Rd", "Dr", "Blvd", "Ln", "Ct", "Pl", "Sq", "Ter", "Hwy", "Pkwy", "Cir", "Trl"}
    words |= {"Close", "Mews", "Gardens", "Row", "Walk", "Yard", "Wharf"}
    return tuple(sorted(words, key=len, reverse=True))


def address_patterns() -> list[Pattern]:
    suffix = "|".join(re.escape(s) for s in street_suffixes())
    unit = r"(?:\s*,?\s*(?:apt|apartment|suite|ste|unit|flat|fl|room|#)\.?\s*#?\s*\d+\w?)?"
    word = r"[^\W\d_][\w'-]*"
    not_prose = r"(?!(?:in|the|at|of|to|for|on|and|or|with|from|by|per|months?|years?|days?|weeks?)\b)"
    return [
        Pattern(
            "number_street",
            rf"\b\d{{1,5}}[a-z]?\s+{not_prose}(?:{word}\s+){{0,3}}(?:{suffix})\b\.?{unit}",
            0.5,
        ),
        Pattern(
            "unit_first",
            rf"\b(?:flat|studio|apartment|unit|suite)\s+\d+\w?,?\s+(?:{word}\s+){{1,3}}(?:{suffix})\b",
            0.5,
        ),
        Pattern(
            "german",
            r"\b[^\W\d_][\w-]*(?:straße|strasse|str\.|allee|weg|platz|gasse|ring|damm)\s*\d{1,4}[a-z]?\b",
            0.5,
        ),
    ]


ADDRESS_PATTERNS = address_patterns()


class LuhnCardRecognizer(PatternRecognizer):
    """12-19 digit card numbers, scored 1.0 when the Luhn checksum holds."""

    def validate_result(self, pattern_text: str) -> bool | None:
        digits = [int(c) for c in pattern_text if c.isdigit()]
        total = sum(
            d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(reversed(digits))
        )
        return total % 10 == 0


WORD = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*")  # O'Brien, O\u2019Brien, Smith-Jones


class NameGazetteerRecognizer(LocalRecognizer):
    """Names in any casing, by deny-lists of first names and surnames (Faker's, many locales):
    - a title and the next word ("MRS O'BRIEN", "dr. young");
    - a first name and a surname, or a first name and a word that is not English ("john nowakowski");
    - "surname, first name" ("smith, john");
    - a first name or surname alone when it is neither a common nor an English word ("nowak");
    - a word that is not common next to one that is not English, names in no list ("sakti santoso").
    English words come from the model's lemmatizer tables (`Truecaser.english`): "branch" and "fee"
    are surnames too, but never taken alone. spaCy's NER (on the truecased copy) catches the rest."""

    def __init__(self, english: frozenset[str]) -> None:
        self.english = english
        super().__init__(supported_entities=["PERSON"], name="NameGazetteer", supported_language="en")

    def load(self) -> None:
        name_lists(), common_words()

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        return [RecognizerResult("PERSON", start, end, score) for start, end, score in self.spans(text)]

    def spans(self, text: str) -> Iterable[tuple[int, int, float]]:
        first, last = name_lists()
        words = [(m.start(), m.end(), _POSSESSIVE.sub("", fold(m.group()))) for m in WORD.finditer(text)]
        for i, (start, end, word) in enumerate(words):
            after = _next_name_word(text, words, i)
            if after is not None and self.is_pair(word, after[2], text[end : after[0]]):
                yield start, after[1], 0.6
            elif self.is_rare(word) and (_listed(word, first) or _listed(word, last)):
                yield start, end, 0.45

    def is_pair(self, word: str, following: str, between: str) -> bool:
        """`word following` is a name: a title and a word; "surname, first name"; a first name and a
        surname; or a word that is no common word next to one that is no English word either (names
        the lists do not know: "sakti santoso", "nowak john")."""
        first, last = name_lists()
        if word in TITLES:  # "mr. da luz"
            return following not in _STOP and not _BREAK.search(between.lstrip("."))
        if _BREAK.search(between):  # another sentence, clause or number: not one name
            return False
        if not (self.is_plain(word) or self.is_plain(following)):
            return False
        if "," in between:
            surname = _listed(word, last) or self.is_rare(word)
            return surname and (_listed(following, first) or self.is_rare(following))
        if _listed(word, first) and _listed(following, last):
            return True
        if (
            self.is_rare(word)
            and self.is_plain(following)
            and (_listed(following, first) or _listed(following, last))
        ):
            return True
        return self.is_plain(word) and self.is_rare(following) and between.isspace()

    @staticmethod
    def is_plain(word: str) -> bool:
        return word not in common_words()

    def is_rare(self, word: str) -> bool:
        return word not in common_words() and not is_english(word, self.english)


_POSSESSIVE = re.compile(r"['\u2019]s$")  # "carpenter's" is looked up as "carpenter"
_BREAK = re.compile(r"[;:!?()\[\]<>\n\d]|(?<![\s.]\w)\.|\s-\s|,.*,")  # "G." (an initial) is no break
_STOP = frozenset({"and", "or", "the", "a", "an", "is", "was", "to", "of", "in", "on", "at"})
# Skipped between the parts of a name: initials ("Kelly M. Waters") and particles ("de Backer").
_INFIXES = frozenset(
    {
        "de",
        "van",
        "von",
        "der",
        "den",
        "da",
        "di",
        "du",
        "le",
        "la",
        "del",
        "dos",
        "t",
        "mac",
        "mc",
        "o",
        "ni",
        "nic",
    }
)


def _listed(word: str, names: frozenset[str]) -> bool:
    """In the list, or hyphenated from names in it ("friedrich-wilhelm")."""
    return word in names or ("-" in word and all(part in names for part in word.split("-")))


def _next_name_word(text: str, words: list[tuple[int, int, str]], i: int) -> tuple[int, int, str] | None:
    for j in range(i + 1, min(i + 4, len(words))):
        _, end, word = words[j]
        initial = len(word) == 1 and text[end : end + 1] == "."
        if not initial and word not in _INFIXES:
            return words[j]
    return None


def is_english(word: str, english: frozenset[str]) -> bool:
    """In the lexicon, or an inflection of a word in it ("payslips", "declined", "evenings")."""
    if word in english:
        return True
    stems = [word[: -len(end)] + add for end, add in _INFLECTIONS if word.endswith(end)]
    return any(stem in english for stem in stems if len(stem) > 2)


_INFLECTIONS = (("s", ""), ("es", ""), ("ed", ""), ("ed", "e"), ("ing", ""), ("ing", "e"), ("ies", "y"))


ACRONYMS = frozenset({"ssn", "iban", "dob", "usa", "uk", "eu", "id", "atm", "ceo", "llc", "inc", "ltd"})


class Truecaser:
    """Makes the copy of a text that spaCy's NER reads: shouted words title-cased ("JOHN" -> "John"),
    and lower-case words that are not English words capitalised ("nowak" -> "Nowak"), so that names in
    any casing look like names to the model. The copy has the length of the text, so NER offsets hold
    for the original. English words come from the model's own lemmatizer tables (WordNet's index)."""

    def __init__(self, english: frozenset[str]) -> None:
        self.english = english

    @classmethod
    def from_model(cls, nlp: Any) -> Truecaser:
        lookups = nlp.get_pipe("lemmatizer").lookups
        words = {w for ws in lookups.get_table("lemma_index").values() for w in ws}
        words |= {w for table in lookups.get_table("lemma_exc").values() for w in table}
        return cls(frozenset(w for w in words if w.isalpha()) | common_words())

    def is_english(self, word: str) -> bool:
        return is_english(word, self.english)

    def __call__(self, text: str) -> str:
        return WORD.sub(self._recase, text)

    def _recase(self, match: re.Match[str]) -> str:
        word = match.group()
        shouted = word.isupper() and len(word) > 1 and fold(word) not in ACRONYMS
        if not (shouted or (word.islower() and not self.is_english(word))):
            return word
        cased = word.capitalize()
        return cased if len(cased) == len(word) else word
