"""Country names in feeds' spellings to ISO 3166-1 alpha-2 (features.countries)."""

from __future__ import annotations

import pytest

from features.countries import CountryNames, name_forms, normalise_name


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("Türkiye", "TR"),
        ("TURKIYE", "TR"),
        ("Turkey", "TR"),
        ("Türkei", "TR"),  # German, as a German authority writes it
        ("Viet Nam", "VN"),
        ("Vietnam", "VN"),
        ("United States", "US"),
        ("United States of America", "US"),
        ("USA", "US"),
        ("Korea, Republic of", "KR"),
        ("Republic of Korea", "KR"),
        ("South Korea", "KR"),
        ("Korea (Democratic People's Republic of)", "KP"),
        ("China (People's Republic of)", "CN"),
        ("China", "CN"),
        ("中国", "CN"),
        ("越南", "VN"),
        ("Hong Kong", "HK"),
        ("Taiwan", "TW"),
        ("Côte d'Ivoire", "CI"),
        ("Cote d’Ivoire", "CI"),
        ("Ivory Coast", "CI"),
        ("Iran (Islamic Republic of)", "IR"),
        ("Netherlands (the)", "NL"),
        ("The Netherlands", "NL"),
        ("Nederland", "NL"),
        ("Czechia", "CZ"),
        ("Czech Republic", "CZ"),
        ("Russian Federation", "RU"),
        ("Bosnia & Herzegovina", "BA"),
        ("Congo (Democratic Republic of the)", "CD"),
        ("España", "ES"),
        ("Perú", "PE"),
        ("  india ", "IN"),
        ("IN", "IN"),
        ("DEU", "DE"),
        ("Niger", "NE"),
        ("Nigeria", "NG"),
        ("Dominica", "DM"),
        ("Dominican Republic", "DO"),
        ("Kosovo", "XK"),
    ],
)
def test_feed_spellings_resolve(name: str, code: str) -> None:
    assert CountryNames().resolve(name) == code


@pytest.mark.parametrize(
    "name",
    ["Korea", "unknown", "Europe", "Germany via Netherlands", "India, Pakistan", "Atlantis", ""],
)
def test_ambiguous_or_unknown_names_are_not_guessed(name: str) -> None:
    assert CountryNames().resolve(name) is None


def test_overrides_win_and_can_refuse() -> None:
    names = CountryNames({"Korea": "KR", "Turkey": None})
    assert names.resolve("KOREA") == "KR"
    assert names.resolve("Turkey") is None  # the office says: do not take this one
    assert names.resolve("Türkiye") == "TR"


def test_resolve_many_reports_unmatched_with_counts() -> None:
    codes, unmatched = CountryNames().resolve_many(["Viet Nam", "Atlantis", None, "Atlantis", " "])
    assert codes == ["VN", None, None, None, None]
    assert unmatched == {"Atlantis": 2}


def test_normalisation() -> None:
    assert normalise_name("  The  Côte d'Ivoire ") == "cote divoire"
    assert "republic of korea" in name_forms("Korea, Republic of")
    assert "peoples republic of china" in name_forms("China (People's Republic of)")
