"""Product text and category to HS codes, for risk signals that carry no HS code.

A foreign alert names a product ("Organic sesame seeds from Ethiopia", "Łyżka kuchenna",
"冷冻虾仁") and a category ("Nuts, nut products and seeds"), not an HS code. A mapping file's
``hs:`` section (``docs/mapping.md``) classifies each row, in this order, the first that gives
codes winning:

1. ``code``: a source column that already holds HS codes (2 to 10 digits, ``;``-separated);
2. ``rules``: ordered keyword rules, regular expressions over the product text, case- and
   accent-insensitive (``sesame|芝麻``), each naming HS codes; the first match wins;
3. ``categories``: the product category through a table the office edits (a CSV file beside the
   mapping, or inline), each category naming HS4 codes or HS chapters.

The row keeps the codes as a ``;``-joined set (``hs_codes``), the single code also as the contract's
``hs_code``, and the rule that gave them (``mapping_rule``, e.g. ``rule:sesame``). What was not
mapped is counted in the coverage report, never guessed.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_CODES_RE = re.compile(r"^\d{2,10}$")
TOP_TEXTS = 10


class ProductRuleError(ValueError):
    """A keyword rule or category table is malformed."""


# letters NFKD does not decompose into a base letter and a mark
_LETTERS = str.maketrans(
    {
        "ł": "l",
        "Ł": "L",
        "ø": "o",
        "Ø": "O",
        "đ": "d",
        "Đ": "D",
        "ß": "ss",
        "æ": "ae",
        "Æ": "AE",
        "œ": "oe",
        "Œ": "OE",
        "ı": "i",
        "þ": "th",
    }
)


def fold(text: str) -> str:
    """Accent-free lower-case text (NFKD, combining marks dropped): what rules are matched on."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_LETTERS))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()


def fold_category(text: str) -> str:
    return " ".join(fold(text).split())


def parse_codes(value: Any, where: str) -> tuple[str, ...]:
    """``"0802;1207"``, ``["0802", "1207"]`` or ``"08"`` -> a tuple of digit strings."""
    if value is None:
        return ()
    items = value if isinstance(value, list | tuple) else str(value).split(";")
    codes = []
    for item in items:
        if not isinstance(item, str):
            # YAML reads 0201 as the number 201: the leading zero is already lost
            raise ProductRuleError(f"{where}: HS code {item!r} must be quoted text ('0201')")
        code = item.strip()
        if not code:
            continue
        if not _CODES_RE.match(code):
            raise ProductRuleError(f"{where}: HS code {code!r} must be 2 to 10 digits (quote it)")
        if code not in codes:
            codes.append(code)
    return tuple(codes)


@dataclass(frozen=True)
class KeywordRule:
    """One ordered keyword rule: a regular expression over the folded product text."""

    name: str
    pattern: re.Pattern[str]
    codes: tuple[str, ...]


def compile_folded(pattern: str, where: str) -> re.Pattern[str]:
    """A regular expression to search folded text with (:func:`fold`).

    Accents are folded away in the text, so they are folded in the pattern too; case goes
    through ``IGNORECASE`` (lower-casing a pattern would turn ``\\S`` into ``\\s``).
    """
    raw = unicodedata.normalize("NFKD", pattern.translate(_LETTERS))
    try:
        return re.compile("".join(ch for ch in raw if not unicodedata.combining(ch)), re.IGNORECASE)
    except re.error as exc:
        raise ProductRuleError(f"{where}: bad regular expression ({exc})") from None


def keyword_rule(spec: Any, i: int) -> KeywordRule:
    """Build a rule from ``{name, pattern, hs}``; the pattern is folded like the text."""
    where = f"hs.rules[{i}]"
    if not isinstance(spec, dict) or not {"pattern", "hs"} <= set(spec):
        raise ProductRuleError(f"{where}: expected {{name, pattern, hs}}")
    unknown = set(spec) - {"name", "pattern", "hs"}
    if unknown:
        raise ProductRuleError(f"{where}: unknown key(s) {sorted(unknown)}")
    pattern = compile_folded(str(spec["pattern"]), where)
    codes = parse_codes(spec["hs"], where)
    if not codes:
        raise ProductRuleError(f"{where}: names no HS code")
    return KeywordRule(str(spec.get("name") or f"rule{i + 1}"), pattern, codes)


def load_category_table(path: Path) -> dict[str, tuple[str, ...]]:
    """A CSV ``category,hs[,note]`` (``hs`` ``;``-separated HS4 codes or chapters)."""
    try:
        text = path.read_text("utf-8-sig")
    except OSError as exc:
        raise ProductRuleError(f"cannot read category table {path}: {exc}") from None
    rows = list(csv.DictReader(text.splitlines()))
    if not rows or not {"category", "hs"} <= set(rows[0]):
        raise ProductRuleError(f"{path.name}: needs the columns 'category' and 'hs'")
    table: dict[str, tuple[str, ...]] = {}
    for n, row in enumerate(rows, start=2):
        name = (row.get("category") or "").strip()
        if not name:
            raise ProductRuleError(f"{path.name} row {n}: empty category")
        table[name] = parse_codes(row.get("hs"), f"{path.name} row {n}")
    return table


@dataclass(frozen=True)
class HsClassifier:
    """The ``hs:`` section of a signal mapping, parsed.

    Attributes
    ----------
    code_column, text_columns, category_column
        Source columns: existing HS codes, the product texts (tried in order), the category.
    rules
        Ordered keyword rules.
    categories
        Folded category name -> (category as written, HS codes).
    """

    text_columns: tuple[str, ...] = ()
    rules: tuple[KeywordRule, ...] = ()
    category_column: str | None = None
    categories: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    code_column: str | None = None

    def source_columns(self) -> list[str]:
        cols = list(self.text_columns)
        cols += [c for c in (self.category_column, self.code_column) if c]
        return cols

    def classify_one(
        self, texts: tuple[str | None, ...], category: str | None, code: str | None
    ) -> tuple[tuple[str, ...], str | None]:
        """HS codes of one row and the rule that gave them (``((), None)``: unmapped).

        ``texts`` are the row's product texts in the order of ``text_columns``: every rule is
        tried on the first before the second is read (a product name before a subject sentence
        that also names the hazard and the origin).
        """
        if code:
            try:
                codes = parse_codes(code, "code")
            except ProductRuleError:
                codes = ()
            if codes:
                return codes, f"code:{self.code_column}"
        for text in texts:
            if not text:
                continue
            folded = fold(text)
            for rule in self.rules:
                if rule.pattern.search(folded):
                    return rule.codes, f"rule:{rule.name}"
        if category:
            hit = self.categories.get(fold_category(category))
            if hit and hit[1]:
                return hit[1], f"category:{hit[0]}"
        return (), None

    def classify(
        self,
        texts: list[tuple[str | None, ...]],
        categories: list[str | None],
        codes: list[str | None],
    ) -> tuple[list[str | None], list[str | None], list[str | None], dict[str, Any]]:
        """Classify every row: ``hs_code``, ``hs_codes``, ``mapping_rule`` and the coverage.

        ``hs_code`` is the single code when the set has one, else missing (a set of several
        HS4 codes is not one prefix); ``hs_codes`` is the ``;``-joined set.
        """
        cache: dict[Any, tuple[tuple[str, ...], str | None]] = {}
        hs_code: list[str | None] = []
        hs_codes: list[str | None] = []
        rule_of: list[str | None] = []
        kinds: Counter[str] = Counter()
        by_rule: Counter[str] = Counter()
        unmapped_texts: Counter[str] = Counter()
        chapter_texts: Counter[str] = Counter()
        unknown_categories: Counter[str] = Counter()
        for key in zip(texts, categories, codes, strict=True):
            if key not in cache:
                cache[key] = self.classify_one(*key)
            found, rule = cache[key]
            hs_code.append(found[0] if len(found) == 1 else None)
            hs_codes.append(";".join(found) if found else None)
            rule_of.append(rule)
            kind = coverage_kind(found)
            kinds[kind] += 1
            if rule:
                by_rule[rule] += 1
            text = next((t for t in key[0] if t), None)
            label = text or (f"[category] {key[1]}" if key[1] else "[no product text]")
            if kind == "unmapped":
                unmapped_texts[label] += 1
            elif kind == "chapter":
                chapter_texts[label] += 1
            cat = key[1]
            if cat and fold_category(cat) not in self.categories and self.category_column:
                unknown_categories[cat] += 1
        report = coverage_report(len(hs_codes), kinds)
        report["by_rule"] = dict(by_rule.most_common())
        report["top_unmapped_products"] = _top(unmapped_texts)
        report["top_chapter_only_products"] = _top(chapter_texts)
        report["unknown_categories"] = dict(unknown_categories.most_common())
        return hs_code, hs_codes, rule_of, report


def coverage_kind(codes: tuple[str, ...] | list[str]) -> str:
    """``hs4`` when some code has 4 digits or more, ``chapter`` for chapters only, else
    ``unmapped``."""
    if any(len(c) >= 4 for c in codes):
        return "hs4"
    if codes:
        return "chapter"
    return "unmapped"


def coverage_report(rows: int, kinds: Counter[str]) -> dict[str, Any]:
    """Counts and shares of rows mapped to an HS4 (set), to a chapter only, or to nothing."""
    share = (lambda k: round(kinds[k] / rows, 4)) if rows else (lambda k: 0.0)
    return {
        "rows": rows,
        "hs4": kinds["hs4"],
        "chapter_only": kinds["chapter"],
        "unmapped": kinds["unmapped"],
        "hs4_share": share("hs4"),
        "chapter_only_share": share("chapter"),
        "unmapped_share": share("unmapped"),
    }


def native_coverage(data: Any) -> dict[str, Any]:
    """Coverage of signals that arrive with their codes (``hs_code``, optional ``hs_codes``).

    ``data`` is an Arrow table of the source columns (strings, as read).
    """
    n = data.num_rows
    names = data.column_names

    def col(name: str) -> list[Any]:
        return data.column(name).to_pylist() if name in names else [None] * n

    kinds: Counter[str] = Counter()
    for code, codes in zip(col("hs_code"), col("hs_codes"), strict=True):
        found = [c.strip() for c in str(codes or "").split(";") if c.strip()]
        if code is not None and str(code).strip():
            found.append(str(code).strip())
        kinds[coverage_kind(found)] += 1
    return coverage_report(n, kinds)


def _top(counts: Counter[str]) -> list[dict[str, Any]]:
    return [{"text": t, "count": c} for t, c in counts.most_common(TOP_TEXTS)]
