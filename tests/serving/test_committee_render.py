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


def test_the_enterprise_page_reads_its_rescoring_profile_as_words_not_a_key_dump():
    """The profile was a table of raw keys: Python lists of reason dicts, rates as long floats,
    'previous_expected_rate – not declared' on a first rescoring."""
    reason = {"feature": "ent_nc_rate_eb_all", "contribution": -0.1627,
              "description_en": "enterprise: nonconformity rate, all history",
              "description_zh": "企业全部历史不合格率"}  # fmt: skip
    profile = {
        "as_of": "2026-11-01", "run_id": "r1", "model_name": "guomen-risk", "model_version": "1",
        "risk_rank": 3, "declarations": 77, "expected_rate": 0.016626934, "max_probability": 0.0372,
        "risk_tier": "low", "share_high": 0.0, "share_elevated": 0.0, "share_normal": 0.142857,
        "share_low": 0.857143, "first_declared_at": "2026-10-04T01:44:50+00:00",
        "last_declared_at": "2026-10-31T04:32:00+00:00", "previous_as_of": None,
        "previous_expected_rate": None, "previous_risk_tier": None, "risk_tier_change": "new",
        "reasons_up": [{**reason, "contribution": 0.024, "description_en": "declarant: days"}],
        "reasons_down": [reason],
    }  # fmt: skip
    page = templates.env.get_template("enterprise.html").render(
        eid="E1", info=None, credit="regular", n_decl=10, first=pd.Timestamp("2024-01-01"),
        last=pd.Timestamp("2026-10-31"), warnings=[], trend="", recent=pd.DataFrame(),
        profile=profile, request=None,
    )  # fmt: skip
    assert "{'" not in page and "None" not in page and "not declared" not in page
    assert "1.7%" in page and "0.016626934" not in page  # a rate as a percentage
    assert "first rescoring" in page and "normal 14.3% · low 85.7%" in page
    assert "enterprise: nonconformity rate, all history" in page and "-0.163" in page
    assert "+0.024" in page
