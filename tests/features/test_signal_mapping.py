"""Signal feeds in the mapping language: country names, keyword rules, category tables, coverage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from features.mapping import MappingError, parse_mapping


def _signals(columns: dict[str, Any], hs: dict[str, Any] | None = None, **top: Any) -> dict:
    table: dict[str, Any] = {"columns": columns}
    if hs is not None:
        table["hs"] = hs
    return {"sources": [{"file": "feed.csv", "tables": {"risk_signals": table}}], **top}


def _apply(doc: dict, rows: dict[str, list], path: str = "") -> tuple[dict[str, list], dict]:
    mapping = parse_mapping(doc, path)
    raw = pa.table({k: pa.array(v, pa.string()) for k, v in rows.items()})
    coverage: dict[str, Any] = {}
    data, _ = mapping.apply(mapping.sources[0], raw, coverage)["risk_signals"]
    return data.to_pydict(), coverage["risk_signals"]


RULES = [
    {"name": "infant_formula", "pattern": "infant formula|säuglings|婴儿配方", "hs": ["1901"]},
    {"name": "milk_powder", "pattern": "milk powder|奶粉", "hs": ["0402"]},
    {"name": "beef", "pattern": r"\bbeef|rindfleisch|牛肉", "hs": ["0201", "0202"]},
    {"name": "spoon", "pattern": "spoon|łyżka|勺", "hs": ["3924", "7323"]},
]


def test_keyword_rules_first_match_wins_and_is_recorded() -> None:
    doc = _signals({"signal_id": "ref"}, {"text": ["product"], "rules": RULES, "category": "cat"})
    rows = {
        "ref": ["1", "2", "3", "4", "5", "6"],
        # "infant formula milk powder" hits both rules: the first one listed wins
        "product": [
            "Infant formula milk powder",
            "SÄUGLINGSNAHRUNG",
            "Saeuglings?",
            "冷冻牛肉",
            "Łyżka kuchenna (tablespoon)",
            "LYZKA",
        ],
        "cat": [None] * 6,
    }
    data, cov = _apply(doc, rows)
    assert data["hs_codes"] == ["1901", "1901", None, "0201;0202", "3924;7323", "3924;7323"]
    assert data["mapping_rule"] == [
        "rule:infant_formula",
        "rule:infant_formula",  # case and accents folded (Ä -> a)
        None,
        "rule:beef",  # Chinese text
        "rule:spoon",
        "rule:spoon",  # Ł folded to L in the pattern and the text
    ]
    # one code: also the contract's hs_code; a set of several: no single hs_code
    assert data["hs_code"] == ["1901", "1901", None, None, None, None]
    assert cov["hs4"] == 5 and cov["unmapped"] == 1 and cov["rows"] == 6
    assert cov["top_unmapped_products"] == [{"text": "Saeuglings?", "count": 1}]
    assert cov["by_rule"]["rule:infant_formula"] == 2


def test_text_columns_are_tried_in_order() -> None:
    # the subject names a hazard ("undeclared milk powder") that a rule would take for a product
    doc = _signals({"signal_id": "ref"}, {"text": ["product", "subject"], "rules": RULES})
    rows = {
        "ref": ["1", "2"],
        "product": ["beef burgers", None],
        "subject": ["undeclared milk powder in beef burgers", "milk powder from NZ"],
    }
    data, _ = _apply(doc, rows)
    assert data["mapping_rule"] == ["rule:beef", "rule:milk_powder"]


def test_category_table_file_and_chapter_only(tmp_path: Path) -> None:
    (tmp_path / "cats.csv").write_text(
        "category,hs,note\n"
        '"nuts, nut products and seeds",0801;0802;1207,\n'
        "fruits and vegetables,07;08,chapters only\n",
        "utf-8",
    )
    doc = _signals(
        {"signal_id": "ref"},
        {"text": "product", "rules": RULES, "category": "cat", "categories": "cats.csv"},
    )
    rows = {
        "ref": ["1", "2", "3", "4"],
        "product": ["sesame seeds", "dried goji berries", "milk powder", "x"],
        "cat": [
            "Nuts, nut products and seeds",
            "FRUITS AND  vegetables",
            "fruits and vegetables",
            "novel food",
        ],
    }
    data, cov = _apply(doc, rows, str(tmp_path / "mapping.yaml"))
    assert data["hs_codes"] == ["0801;0802;1207", "07;08", "0402", None]
    assert data["mapping_rule"] == [
        "category:nuts, nut products and seeds",
        "category:fruits and vegetables",
        "rule:milk_powder",  # a rule wins over the category
        None,
    ]
    assert (cov["hs4"], cov["chapter_only"], cov["unmapped"]) == (2, 1, 1)
    assert cov["chapter_only_share"] == 0.25
    assert cov["unknown_categories"] == {"novel food": 1}
    assert cov["top_chapter_only_products"] == [{"text": "dried goji berries", "count": 1}]


def test_existing_code_column_comes_first() -> None:
    doc = _signals({"signal_id": "ref"}, {"code": "hs", "text": "product", "rules": RULES})
    data, _ = _apply(doc, {"ref": ["1", "2"], "hs": ["0306", "n/a"], "product": ["beef", "beef"]})
    assert data["hs_codes"] == ["0306", "0201;0202"]
    assert data["mapping_rule"] == ["code:hs", "rule:beef"]


def test_country_names_are_resolved_and_unmatched_reported() -> None:
    doc = _signals(
        {"signal_id": "ref", "origin_country": {"from": "origin", "country": "names"}},
        countries={"Europe": None, "Holland (NL)": "NL"},
    )
    rows = {
        "ref": [str(i) for i in range(7)],
        "origin": [
            "Türkiye",
            "Viet Nam",
            "Korea, Republic of",
            "Europe",
            "Atlantis",
            "Atlantis",
            "Holland (NL)",
        ],
    }
    data, cov = _apply(doc, rows)
    # Atlantis passes through for the contract check to record (data quality); Europe is refused
    assert data["origin_country"] == ["TR", "VN", "KR", None, "Atlantis", "Atlantis", "NL"]
    assert cov["unmatched_countries"] == {"origin_country": {"Europe": 1, "Atlantis": 2}}


def test_match_first_of_and_defaults() -> None:
    doc = _signals(
        {
            "signal_id": "ref",
            "hazard_type": {
                "first_of": [
                    {"from": "hcat", "map": {"foreign bodies": "safety"}, "default": None},
                    {
                        "from": "hazard",
                        "match": [
                            {"pattern": "salmonella|沙门", "value": "health"},
                            {"pattern": "glass", "value": "safety"},
                        ],
                        "default": "other",
                    },
                ]
            },
        }
    )
    rows = {
        "ref": ["1", "2", "3", "4", "5"],
        "hcat": ["foreign bodies", "pathogens", None, None, None],
        "hazard": ["salmonella", "SALMONELLA Enteritidis", "沙门氏菌", "mineral oil", None],
    }
    data, _ = _apply(doc, rows)
    assert data["hazard_type"] == ["safety", "health", "health", "other", None]


def test_several_date_formats_first_that_parses() -> None:
    fmt = {"from": "d", "date_format": ["%d-%m-%Y %H:%M:%S", "%d-%m-%Y"]}
    doc = _signals({"signal_id": "ref", "reported_at": fmt})
    data, _ = _apply(doc, {"ref": ["1", "2", "3"], "d": ["02-11-2026 15:40:56", "02-11-2026", "x"]})
    assert data["reported_at"] == [
        "2026-11-02T15:40:56",
        "2026-11-02T00:00:00",
        "unparseable date: x",
    ]
    with pytest.raises(MappingError, match="date_format"):
        parse_mapping(_signals({"reported_at": {"from": "d", "date_format": [1]}}))


def test_prefix_names_the_source_authority() -> None:
    doc = _signals({"signal_id": "ref", "source": {"from": "by", "prefix": "RASFF / "}})
    data, _ = _apply(doc, {"ref": ["1", "2"], "by": ["Germany", None]})
    assert data["source"] == ["RASFF / Germany", None]


@pytest.mark.parametrize(
    ("hs", "message"),
    [
        ({"text": "p", "rules": [{"pattern": "(", "hs": ["0201"]}]}, "bad regular expression"),
        ({"text": "p", "rules": [{"pattern": "x", "hs": [201]}]}, "must be quoted"),
        ({"text": "p", "rules": [{"pattern": "x", "hs": ["2a"]}]}, "2 to 10 digits"),
        ({"text": "p", "rules": [{"pattern": "x"}]}, "expected"),
        ({"rules": [{"pattern": "x", "hs": ["0201"]}]}, "rules need 'text'"),
        ({"categories": {"a": "08"}}, "categories need 'category'"),
        ({"text": "p", "weights": 1}, "unknown key"),
        ({"category": "c", "categories": "missing.csv"}, "cannot read category table"),
    ],
)
def test_bad_hs_sections_are_mapping_errors(hs: dict, message: str) -> None:
    with pytest.raises(MappingError, match=message):
        parse_mapping(_signals({"signal_id": "ref"}, hs))


def test_hs_section_only_for_signals_and_owns_its_columns() -> None:
    decl = {"sources": [{"file": "f", "tables": {"declarations": {"columns": {}, "hs": {}}}}]}
    with pytest.raises(MappingError, match="only risk_signals"):
        parse_mapping(decl)
    with pytest.raises(MappingError, match="written by the hs section"):
        parse_mapping(_signals({"hs_code": "HS"}, {"code": "HS"}))
    with pytest.raises(MappingError, match="country: names"):
        parse_mapping(_signals({"origin_country": {"from": "o", "country": "iso3"}}))
    with pytest.raises(MappingError, match="alpha-2"):
        parse_mapping(_signals({"signal_id": "r"}, countries={"Turkey": "TUR"}))
