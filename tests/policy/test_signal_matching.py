"""Signals naming several HS4 codes or a chapter only: subjects, weights and the rule shown."""

from __future__ import annotations

import pandas as pd
import pytest

from policy.warnings import Subject, assess, load_warning_config, signal_matches
from tests.policy.warnings_synth import START, make_tables

CFG = load_warning_config()


def _signals(rows: list[dict]) -> pd.DataFrame:
    cols = [
        "signal_id",
        "reported_at",
        "channel",
        "enterprise_id",
        "overseas_party_id",
        "hs_code",
        "origin_country",
        "severity",
        "hazard_type",
        "hs_codes",
        "mapping_rule",
    ]
    frame = pd.DataFrame([{c: r.get(c) for c in cols} for r in rows])
    for c in cols:
        if c != "reported_at":
            frame[c] = pd.array(frame[c], dtype="str")
    frame["reported_at"] = pd.to_datetime(frame["reported_at"], utc=True)
    return frame


SIGS = _signals(
    [
        # the demo's kind: one HS code
        {"signal_id": "A", "hs_code": "030389", "origin_country": "VN"},
        # a category mapped to a set of three HS4 (one of them twice, as 6 and 4 digits)
        {
            "signal_id": "B",
            "hs_codes": "0303;0304;0306;030389",
            "origin_country": "VN",
            "mapping_rule": "category:fish and fish products",
        },
        # a chapter only
        {
            "signal_id": "C",
            "hs_code": "08",
            "hs_codes": "08",
            "origin_country": "TH",
            "mapping_rule": "category:fruits and vegetables",
        },
        # two chapters, no origin
        {"signal_id": "D", "hs_codes": "07;08", "mapping_rule": "category:fruits and vegetables"},
        # origin only
        {"signal_id": "E", "origin_country": "VN"},
    ]
)


def _weights(kind: str) -> dict[tuple[str, str], float]:
    m = signal_matches(SIGS, kind)
    return {(r.signal_id, r.key): r.weight for r in m.itertuples()}


def test_an_hs4_set_splits_its_weight_over_its_hs4() -> None:
    w = _weights("hs4")
    third = pytest.approx(1 / 3)
    assert w == {
        ("A", "0303"): 1.0,
        ("B", "0303"): third,
        ("B", "0304"): third,
        ("B", "0306"): third,
    }
    # one notification is never counted as several: each signal's weights add up to 1 at most
    m = signal_matches(SIGS, "hs4")
    assert m.groupby("signal_id")["weight"].sum().max() == pytest.approx(1.0)
    assert set(_weights("hs4_origin")) == {
        ("A", "0303/VN"),
        ("B", "0303/VN"),
        ("B", "0304/VN"),
        ("B", "0306/VN"),
    }


def test_a_chapter_only_signal_counts_for_the_chapter_subject_not_for_an_hs4() -> None:
    assert not any(s in ("C", "D") for s, _ in _weights("hs4"))
    w = _weights("hs_chapter")
    assert w[("A", "03")] == 1.0 and w[("B", "03")] == 1.0  # its HS4 all lie in chapter 03
    assert w[("C", "08")] == 1.0
    assert w[("D", "07")] == 0.5 and w[("D", "08")] == 0.5
    assert Subject("hs_chapter", ("08",)).matches({"hs_code": "0810900000"})


def test_other_kinds_take_the_signals_own_fields() -> None:
    assert _weights("origin") == {
        ("A", "VN"): 1.0,
        ("B", "VN"): 1.0,
        ("C", "TH"): 1.0,
        ("E", "VN"): 1.0,
    }
    assert signal_matches(SIGS.drop(columns=["hs_codes", "mapping_rule"]), "hs4")[
        "signal_id"
    ].tolist() == ["A"]  # a store written before hs_codes existed


def _with(tables: dict, extra: pd.DataFrame) -> dict:
    # half a year of ordinary reports about a busy pair: the history the prior is pooled from
    history = _signals(
        [
            {"signal_id": f"H{i}", "reported_at": START + pd.Timedelta(days=10 + 15 * i),
             "channel": "foreign_alert", "hs_code": "9503", "origin_country": "TH",
             "source": "RASFF"}
            for i in range(12)
        ]
    )  # fmt: skip
    signals = pd.concat([tables["risk_signals"], history, extra], ignore_index=True)
    return {**tables, "risk_signals": signals}


def _burst(n: int, at: pd.Timestamp, **fields: str) -> pd.DataFrame:
    return _signals(
        [
            {
                "signal_id": f"R{i}",
                "reported_at": at + pd.Timedelta(days=i),
                "channel": "foreign_alert",
                "severity": "serious",
                "hazard_type": "health",
                **fields,
            }
            for i in range(n)
        ]
    )


def test_assessment_weighs_sets_and_says_which_rule_mapped_them() -> None:
    tables = make_tables(seed=3)
    at = START + pd.Timedelta(days=200)
    subject = Subject("hs4_origin", ("8516", "DE"))
    # five alerts naming one product: each counted once
    single = _burst(
        5, at, hs_codes="8516", hs_code="8516", origin_country="DE", mapping_rule="rule:kettles"
    )
    [one] = assess(_with(tables, single), at + pd.Timedelta(days=6), CFG, subjects=[subject])
    assert one.signals == 5
    assert one.signal_rules == {"rule:kettles": 5.0}
    # the same five naming a set of two products: half a notification each, weaker evidence
    pair = _burst(
        5, at, hs_codes="8516;8509", origin_country="DE", mapping_rule="category:appliances"
    )
    [half] = assess(_with(tables, pair), at + pd.Timedelta(days=6), CFG, subjects=[subject])
    assert half.signals == pytest.approx(2.5)
    assert half.signal_rules == {"category:appliances": 2.5}
    assert half.signal_p > one.signal_p
    [other] = assess(
        _with(tables, pair), at + pd.Timedelta(days=6), CFG,
        subjects=[Subject("hs4_origin", ("8509", "DE"))],
    )  # fmt: skip
    assert other.signals == pytest.approx(2.5)
    # a chapter-only alert burst is evidence for the chapter, nothing for the HS4
    chapter = _burst(
        5, at, hs_codes="85", hs_code="85", origin_country="DE", mapping_rule="category:electrical"
    )
    ch_tables = _with(tables, chapter)
    [hs4] = assess(ch_tables, at + pd.Timedelta(days=6), CFG, subjects=[subject])
    assert hs4.signals == 0
    [ch] = assess(
        ch_tables, at + pd.Timedelta(days=6), CFG, subjects=[Subject("hs_chapter", ("85",))]
    )
    assert ch.signals == 5 and ch.signal_rules == {"category:electrical": 5.0}
    # chapters are assessed on request only: the default run does not list them
    found = assess(ch_tables, at + pd.Timedelta(days=6), CFG)
    assert all(a.subject.kind != "hs_chapter" for a in found)
