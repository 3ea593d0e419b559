"""Country names to ISO 3166-1 alpha-2, through ``pycountry``'s ISO data and translations.

Alert feeds name countries, they do not code them: "Türkiye", "Viet Nam", "United States",
"Korea, Republic of", "China (People's Republic of)", "Deutschland", "中国". A name is looked up,
never guessed: it is normalised (case, accents, punctuation, a leading "the"), tried as written and
in the reordered forms feeds use ("Iran (Islamic Republic of)" is "Islamic Republic of Iran"), and
found in an index of every ISO 3166-1 name (``name``, ``official_name``, ``common_name``, the
alpha-2 and alpha-3 codes), their translations in the languages below, and a short list of names in
daily use that ISO no longer lists ("Turkey", "Russia", "Ivory Coast"). A name that is in none of
them, or that two countries share, is *unmatched*: the caller reports it and keeps no code.
"""

from __future__ import annotations

import gettext
import re
import unicodedata
from collections.abc import Iterable, Mapping
from functools import lru_cache

import pycountry

# Languages of the feeds we meet: the EU's (RASFF, Safety Gate) and Chinese (our own reports).
NAME_LANGUAGES = (
    "de",
    "fr",
    "es",
    "it",
    "nl",
    "pl",
    "pt",
    "cs",
    "da",
    "sv",
    "fi",
    "hu",
    "ro",
    "el",
    "bg",
    "hr",
    "sk",
    "sl",
    "lt",
    "lv",
    "et",
    "zh_CN",
    "zh_TW",
    "zh_HK",
)

# Names in daily use that ISO 3166-1 no longer (or never) lists; XK is used in trade data.
COMMON_VARIANTS: dict[str, str] = {
    "Turkey": "TR",
    "Turkiye": "TR",
    "Russia": "RU",
    "USA": "US",
    "U.S.A.": "US",
    "U.S.": "US",
    "United States of America (USA)": "US",
    "UK": "GB",
    "U.K.": "GB",
    "Great Britain": "GB",
    "Britain": "GB",
    "England": "GB",
    "Scotland": "GB",
    "Wales": "GB",
    "Northern Ireland": "GB",
    "Ivory Coast": "CI",
    "Holland": "NL",
    "Macedonia": "MK",
    "FYROM": "MK",
    "Former Yugoslav Republic of Macedonia": "MK",
    "Swaziland": "SZ",
    "Burma": "MM",
    "Cape Verde": "CV",
    "East Timor": "TL",
    "Vatican": "VA",
    "Vatican City": "VA",
    "Palestine": "PS",
    "Kosovo": "XK",
    "Hong Kong SAR": "HK",
    "Macao SAR": "MO",
    "Macau": "MO",
    "Korea (South)": "KR",
    "Korea (North)": "KP",
    "Republic of Korea": "KR",
    "Democratic Republic of the Congo": "CD",
    "DR Congo": "CD",
    "Congo (Brazzaville)": "CG",
    "Congo (Kinshasa)": "CD",
    "UAE": "AE",
    "Emirates": "AE",
    "Chinese Taipei": "TW",
    "Mainland China": "CN",
    "PR China": "CN",
    "P.R. China": "CN",
    "PRC": "CN",
}

_PARENS = re.compile(r"^(?P<a>[^()]+?)\s*\((?P<b>[^()]+)\)$")
_NOT_WORD = re.compile(r"[^\w]+", re.UNICODE)


def normalise_name(text: str) -> str:
    """Case-, accent- and punctuation-insensitive form of a name (CJK characters kept)."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    bare = bare.casefold().replace("&", " and ").replace("'", "").replace("’", "")
    words = _NOT_WORD.sub(" ", bare).split()
    if words and words[0] == "the":
        words = words[1:]
    return " ".join(words)


def name_forms(text: str) -> list[str]:
    """The forms a feed's name is tried in, normalised, most literal first.

    "Korea, Republic of" -> also "republic of korea"; "China (People's Republic of)" -> also
    "china", "peoples republic of china"; "Netherlands (the)" -> "netherlands".
    """
    text = " ".join(text.split())
    forms = [text]
    m = _PARENS.match(text)
    if m:
        a, b = m.group("a").strip(), m.group("b").strip()
        forms += [f"{b} {a}", f"{a}, {b}"]
        if normalise_name(b) in ("the", ""):
            forms.append(a)
    if text.count(",") == 1:
        a, b = (p.strip() for p in text.split(","))
        forms += [f"{b} {a}", a if normalise_name(b) == "the" else f"{b} {a}"]
    out: list[str] = []
    for f in forms:
        n = normalise_name(f)
        if n and n not in out:
            out.append(n)
    return out


@lru_cache(maxsize=1)
def _index() -> dict[str, str | None]:
    """Normalised name -> alpha-2 (None where two countries share the name)."""
    index: dict[str, str | None] = {}

    def put(name: str | None, code: str) -> None:
        if not name:
            return
        for key in {normalise_name(name), *name_forms(name)}:
            if key in index and index[key] != code:
                index[key] = None  # shared by two countries: never guess between them
            else:
                index.setdefault(key, code)

    countries = list(pycountry.countries)
    for c in countries:
        for attr in ("name", "official_name", "common_name"):
            put(getattr(c, attr, None), c.alpha_2)
    # codes after names, and without reordering: "IN" or "AT" must not shadow a word
    for c in countries:
        for code in (c.alpha_2, c.alpha_3):
            index.setdefault(code.casefold(), c.alpha_2)
    for lang in NAME_LANGUAGES:
        try:
            tr = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[lang])
        except OSError:
            continue
        for c in countries:
            for attr in ("name", "official_name", "common_name"):
                value = getattr(c, attr, None)
                if value:
                    translated = tr.gettext(value)
                    if translated != value:
                        put(translated, c.alpha_2)
    for name, code in COMMON_VARIANTS.items():
        key = normalise_name(name)
        index[key] = code  # ours: a deliberate choice over a shared translation
    return index


class CountryNames:
    """Resolve country names (or codes) to alpha-2.

    Parameters
    ----------
    overrides : mapping of str to str or None, optional
        The office's own spellings (``countries:`` in a mapping file) -> alpha-2, or ``None`` for a
        name that must stay unmatched ("Europe", "unknown"). They win over everything else.
    """

    def __init__(self, overrides: Mapping[str, str | None] | None = None) -> None:
        self._overrides = {normalise_name(k): v for k, v in (overrides or {}).items()}

    def resolve(self, name: str | None) -> str | None:
        """Alpha-2 of one name, or ``None`` when unmatched (or empty)."""
        if name is None or not str(name).strip():
            return None
        index = _index()
        for form in name_forms(str(name)):
            if form in self._overrides:
                return self._overrides[form]
            if form in index:
                return index[form]
        return None

    def refused(self, name: str) -> bool:
        """True when the office's ``countries:`` table keeps this name without a code."""
        return any(self._overrides.get(f, "") is None for f in name_forms(name))

    def resolve_many(self, names: Iterable[str | None]) -> tuple[list[str | None], dict[str, int]]:
        """Alpha-2 per name, and the unmatched non-empty names with their counts."""
        cache: dict[str, str | None] = {}
        out: list[str | None] = []
        unmatched: dict[str, int] = {}
        for name in names:
            if name is None or not str(name).strip():
                out.append(None)
                continue
            if name not in cache:
                cache[name] = self.resolve(name)
            code = cache[name]
            out.append(code)
            if code is None:
                unmatched[name] = unmatched.get(name, 0) + 1
        return out, unmatched
