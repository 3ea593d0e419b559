"""The committee templates' formatting filters (``serving.committee.render``)."""

from __future__ import annotations

import pandas as pd

from serving.committee.render import templates


def test_counts_read_as_words_not_as_a_python_dict():
    counts = templates.env.filters["counts"]
    assert counts({"foodborne_illness": 4, "hs_code": 2.5}) == "foodborne illness 4 · hs code 2.5"
    assert counts({}) == "–" and counts(None) == "–"


def test_when_shows_minutes_in_utc_without_microseconds():
    when = templates.env.filters["when"]
    assert when("2026-12-02T05:23:34.868304+00:00") == "2026-12-02 05:23 UTC"
    assert when("2026-12-02T13:23:00+08:00") == "2026-12-02 05:23 UTC"
    assert when(None) == "" and when("not a time") == "not a time"


def test_an_empty_optional_field_reads_as_not_declared():
    field = templates.env.filters["field"]
    for empty in (None, "", float("nan"), pd.NaT):
        assert field(empty) == "– not declared"
    assert field(0) == "0" and field("CN") == "CN" and field(171.52) == "171.52"


def test_the_declaration_page_shows_a_missing_overseas_party_as_not_declared():
    page = templates.env.get_template("declaration.html").render(
        d={"declaration_id": "D1", "overseas_party_id": None, "hs_code": "9503000000"},
        in_store=False,
        result=None,
        audit=[],
        request=None,
    )
    assert "None" not in page and "– not declared" in page
