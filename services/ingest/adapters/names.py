"""Name lists for finding names in any casing: first names and surnames from Faker's person providers
(many locales, about 16,000 names), and the common English words that must never count as a name on
their own. Loaded once per process, folded (lower case, no accents).
"""

from __future__ import annotations

import unicodedata
from functools import cache

_UNDECOMPOSED = str.maketrans({"ł": "l", "Ł": "l", "ø": "o", "Ø": "o", "đ": "d", "Đ": "d", "\u0131": "i"})


def fold(word: str) -> str:
    """Lower case without accents: 'Müller' and 'MULLER' both become 'muller', 'Płoskonka' 'ploskonka'."""
    decomposed = unicodedata.normalize("NFKD", word.translate(_UNDECOMPOSED))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


NAME_LOCALES = (
    "en_US", "en_GB", "en_IE", "en_IN", "de_DE", "fr_FR", "es_ES", "es_MX", "it_IT", "nl_NL", "pt_BR",
    "pt_PT", "pl_PL", "sv_SE", "da_DK", "no_NO", "fi_FI", "cs_CZ", "ro_RO", "hu_HU", "tr_TR", "en_NG",
)  # fmt: skip
TITLES = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "mister", "madam", "herr", "frau"})
# Ordinary words that are also first names or surnames: never matched on their own.
NAME_WORDS_TOO = (
    "will may mark bill grant rose june april august art bank banks hope faith joy dale long young white "
    "brown green black king price rich cash hill wood street lane field page case chase gay guy sage "
    "summer winter love nice early bell hall ward park rice fox day north west south east major "
    "mason carter cook baker miller taylor rose sky sunny victory son english french german "
    "iban ssn tel dob fax eur usd gbp chf"
)


@cache
def name_lists() -> tuple[frozenset[str], frozenset[str]]:
    """(first names, surnames) from Faker's person providers of `NAME_LOCALES`, folded, 3+ letters."""
    import importlib

    first: set[str] = set()
    last: set[str] = set()
    for locale in NAME_LOCALES:
        provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        first |= _listed_names(provider, "first_name")  # first_names, first_names_female, ...
        last |= _listed_names(provider, "last_name")  # last_names, unisex_last_names, male_last_names
    keep = lambda names: frozenset(n for n in names if len(n) >= 3 and n.isalpha())  # noqa: E731
    return keep(first), keep(last)


def _listed_names(provider: type, kind: str) -> set[str]:
    """Every name in the provider's list attributes for `kind`; they are named differently per locale."""
    names: set[str] = set()
    for attr in dir(provider):
        value = getattr(provider, attr)
        if kind in attr and isinstance(value, tuple | list | dict):
            names |= {fold(n) for n in value if isinstance(n, str)}
    return names


@cache
def common_words(with_stop_words: bool = True) -> frozenset[str]:
    """About 1,000 frequent English words (Faker's lorem list), `NAME_WORDS_TOO`, and spaCy's stop
    words (spaCy is imported for those: the identifier check does without)."""
    from faker.providers.lorem.en_US import Provider as Lorem

    words = {fold(w) for w in (*Lorem.word_list, *NAME_WORDS_TOO.split())}
    if with_stop_words:
        from spacy.lang.en.stop_words import STOP_WORDS

        words |= {fold(w) for w in STOP_WORDS}
    return frozenset(words)


def identifier_names() -> frozenset[str]:
    """Names that mark an identifier as name-shaped (domain/identifiers.py): not common words."""
    first, last = name_lists()
    return (first | last) - common_words(with_stop_words=False)
