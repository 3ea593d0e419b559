"""What a warning is about: subject kinds, the columns that name them, and :class:`Subject`.

:data:`SUBJECT_COLUMNS` is the one table of subject kinds and the contract columns whose values
form a subject's key (``hs4`` is the first four digits of ``hs_code``, ``hs2`` its chapter). Matching a declaration,
keying a frame of declarations or inspections, and (in :mod:`.signal_matching`) keying risk
signals all read it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

# kind -> the columns whose values, joined by "/", are the subject's key
SUBJECT_COLUMNS: dict[str, tuple[str, ...]] = {
    "enterprise": ("enterprise_id",),
    "overseas_party": ("overseas_party_id",),
    "hs4": ("hs4",),
    "origin": ("origin_country",),
    "hs4_origin": ("hs4", "origin_country"),
    # an HS chapter: what an alert that names a product family only (a chapter) can be about
    "hs_chapter": ("hs2",),
}
SUBJECT_KINDS: tuple[str, ...] = tuple(SUBJECT_COLUMNS)
# kinds assessed unless others are asked for: chapters are assessed on request (a subject's
# page, ``assess(kinds=...)``), so proposals stay at the grain the rules were tuned for
DEFAULT_KINDS: tuple[str, ...] = tuple(k for k in SUBJECT_KINDS if k != "hs_chapter")
# product key columns: how many leading digits of hs_code they are
HS_PREFIX_DIGITS: dict[str, int] = {"hs4": 4, "hs2": 2}
# The documented form of a subject key per kind (docs/warnings.md): identifiers start with a
# letter or digit and hold letters, digits, ``.``, ``_`` and ``-``; HS4 is four digits, a chapter two; origins
# are ISO 3166-1 alpha-2. Checked where a person types a key (manual warnings), so no key can
# carry markup, a path or a spreadsheet formula into pages and exports.
_IDENTIFIER = r"[^\W_][\w.\-]{0,127}"
SUBJECT_KEY_PATTERNS: dict[str, re.Pattern[str]] = {
    "enterprise": re.compile(_IDENTIFIER),
    "overseas_party": re.compile(_IDENTIFIER),
    "hs4": re.compile(r"[0-9]{4}"),
    "origin": re.compile(r"[A-Z]{2}"),
    "hs4_origin": re.compile(r"[0-9]{4}/[A-Z]{2}"),
    "hs_chapter": re.compile(r"[0-9]{2}"),
}
SUBJECT_KEY_EXAMPLES = {"enterprise": "E001", "overseas_party": "O3", "hs4": "0303",
                        "origin": "VN", "hs4_origin": "0303/VN", "hs_chapter": "03"}  # fmt: skip


def check_subject_key(kind: str, key: str) -> None:
    """Raise ``ValueError`` unless ``key`` has the documented form of a ``kind`` subject key."""
    pattern = SUBJECT_KEY_PATTERNS.get(kind)
    if pattern is None:
        raise ValueError(f"unknown subject kind {kind!r}")
    if not pattern.fullmatch(key):
        raise ValueError(
            f"subject_key of kind {kind} must match {pattern.pattern} "
            f"(e.g. {SUBJECT_KEY_EXAMPLES[kind]})"
        )


SUBJECT_LABELS_ZH = {
    "enterprise": "企业",
    "overseas_party": "境外企业",
    "hs4": "商品(HS4)",
    "origin": "原产国",
    "hs4_origin": "商品×原产国",
    "hs_chapter": "商品(HS章)",
}


def key_column(frame: pd.DataFrame, name: str) -> pd.Series:
    """One key column of :data:`SUBJECT_COLUMNS` as strings (``hs4``: ``hs_code[:4]``)."""
    if name in HS_PREFIX_DIGITS:
        return frame["hs_code"].astype("str").str.slice(0, HS_PREFIX_DIGITS[name])
    return frame[name].astype("str")


def subject_keys(frame: pd.DataFrame, kind: str) -> pd.Series:
    """One subject key per row of declarations (or inspections joined to them) for a kind."""
    cols = [key_column(frame, c) for c in SUBJECT_COLUMNS[kind]]
    keys = cols[0]
    for c in cols[1:]:
        keys = keys + "/" + c
    return keys


@dataclass(frozen=True)
class Subject:
    """What a warning is about. ``key`` holds one value, two for ``hs4_origin`` (hs4, origin)."""

    kind: str
    key: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.kind not in SUBJECT_COLUMNS:
            raise ValueError(f"unknown subject kind {self.kind!r}")
        want = len(SUBJECT_COLUMNS[self.kind])
        if len(self.key) != want or not all(isinstance(k, str) and k for k in self.key):
            raise ValueError(f"subject {self.kind} needs {want} non-empty key part(s)")

    @property
    def key_str(self) -> str:
        return "/".join(self.key)

    @property
    def label(self) -> str:
        return f"{SUBJECT_LABELS_ZH[self.kind]} {self.key_str}"

    @classmethod
    def parse(cls, kind: str, key_str: str) -> Subject:
        return cls(kind, tuple(key_str.split("/")))

    def matches(self, declaration: dict[str, Any]) -> bool:
        """True when a declaration (contract fields) falls under this subject."""

        def value(name: str) -> str:
            digits = HS_PREFIX_DIGITS.get(name)
            v = declaration.get("hs_code" if digits else name)
            text = "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
            return text[:digits] if digits else text

        cols = SUBJECT_COLUMNS[self.kind]
        return all(value(c) == k for c, k in zip(cols, self.key, strict=True))

    def mask(self, declarations: pd.DataFrame) -> np.ndarray:
        """Vectorised :meth:`matches` over a declarations frame."""
        out = np.ones(len(declarations), dtype=bool)
        for c, k in zip(SUBJECT_COLUMNS[self.kind], self.key, strict=True):
            digits = HS_PREFIX_DIGITS.get(c)
            col = declarations["hs_code"].str.slice(0, digits) if digits else declarations[c]
            out &= (col == k).fillna(False).to_numpy(bool)
        return out
