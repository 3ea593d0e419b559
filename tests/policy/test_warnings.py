"""Risk warnings: configuration, assessment, levels, measures and the lifecycle state machine."""

from __future__ import annotations

import copy
from math import isclose

import numpy as np
import pandas as pd
import pytest
from scipy.stats import poisson

from policy.warnings import (
    DEFAULT_CONFIG,
    InvalidTransition,
    Subject,
    assess,
    beta_lower_bound,
    build_warning,
    evaluate_effect,
    fresh_evidence,
    inspection_measures,
    load_warning_config,
    matrix_level,
    measures_for_level,
    next_state,
    poisson_cusum,
    propose,
    report_voices,
    validate_config,
)
from tests.policy.warnings_synth import (
    OUTBREAK_HS4,
    OUTBREAK_ORIGIN,
    START,
    make_tables,
    new_declaration,
    reports,
    with_reports,
)

CFG = load_warning_config()
OUTBREAK = Subject("hs4_origin", (OUTBREAK_HS4, OUTBREAK_ORIGIN))


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return make_tables()


def day(n: int) -> pd.Timestamp:
    return START + pd.Timedelta(days=n)


# ---------------------------------------------------------------------------- configuration


def test_defaults_come_from_the_yaml_file_and_unknown_keys_are_refused(tmp_path):
    assert load_warning_config() == validate_config(copy.deepcopy(DEFAULT_CONFIG))
    assert CFG["likelihood"]["cusum"]["h"] == DEFAULT_CONFIG["likelihood"]["cusum"]["h"]
    f = tmp_path / "w.yaml"
    f.write_text("likelihood: {prior_strenght: 5}\n", encoding="utf-8")  # a typo
    with pytest.raises(ValueError, match="prior_strenght"):
        load_warning_config(f)
    broken = copy.deepcopy(DEFAULT_CONFIG)
    del broken["lift"]
    with pytest.raises(ValueError, match="lift"):
        validate_config(broken)


def test_config_overrides_merge_and_bad_matrix_is_refused(tmp_path):
    f = tmp_path / "w.yaml"
    f.write_text("window_days: 14\nlikelihood: {min_inspected: 9}\n", encoding="utf-8")
    cfg = load_warning_config(f)
    assert cfg["window_days"] == 14 and cfg["likelihood"]["min_inspected"] == 9
    assert cfg["likelihood"]["prior_strength"] == DEFAULT_CONFIG["likelihood"]["prior_strength"]
    f.write_text("matrix: [[1, 2], [3, 4]]\n", encoding="utf-8")
    with pytest.raises(ValueError, match="4 x 4"):
        load_warning_config(f)
    f.write_text("measures: {1: [{type: teleport}]}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown measure"):
        load_warning_config(f)
    # the fixed count the tail rule replaced is named in the error, not silently ignored
    f.write_text("corroboration: {min_bad: 6}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="results_alone_per_year"):
        load_warning_config(f)
    f.write_text("corroboration: {results_alone_per_year: 0}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="must be > 0"):
        load_warning_config(f)


def test_matrix_reads_severity_by_likelihood():
    assert matrix_level(4, 4, CFG) == 1
    assert matrix_level(1, 1, CFG) == 0
    assert matrix_level(3, 0, CFG) == 0
    # more severe or more likely never gives a less serious level
    for s in range(1, 5):
        for lk in range(1, 4):
            a, b = matrix_level(s, lk, CFG), matrix_level(s, lk + 1, CFG)
            assert b == 0 or a == 0 or b <= a


# ---------------------------------------------------------------------------- likelihood


def test_credible_bound_three_of_three_is_weak_evidence():
    base = np.array([0.05, 0.05, 0.05])
    lower = beta_lower_bound(np.array([3, 30, 0]), np.array([3, 40, 40]), base, CFG)
    assert lower[0] < 0.05 * CFG["likelihood"]["lift_thresholds"][0]  # no likelihood class
    assert lower[1] > 0.05 * CFG["likelihood"]["lift_thresholds"][3]  # the top class
    assert lower[2] < 0.05


def _one_subject_tables(k: int, n: int, severity: str = "critical") -> dict[str, pd.DataFrame]:
    """Background of 2000 inspections at 5% plus ``k`` bad of ``n`` for enterprise EBAD."""
    tb = make_tables(n=3000, days=400, outbreak_day=10_000, seed=3)
    decl, insp = tb["declarations"], tb["inspections"]
    t = day(395)
    rows = pd.DataFrame(
        {
            c: pd.array([new_declaration(i)[c] for i in range(n)], dtype="str")
            for c in ("direction", "port_code", "trade_mode", "hs_code", "origin_country")
        }
    )
    rows["declaration_id"] = pd.array([f"B{i}" for i in range(n)], dtype="str")
    rows["declared_at"] = t
    rows["enterprise_id"] = pd.array(["EBAD"] * n, dtype="str")
    rows["overseas_party_id"] = pd.array(["PBAD"] * n, dtype="str")
    rows["declared_value_usd"] = 1000.0
    res = pd.DataFrame(
        {
            "declaration_id": rows["declaration_id"],
            "inspected_at": t + pd.Timedelta(days=1),
            "selection": pd.array(["random"] * n, dtype="str"),
            "result": pd.array(["nonconforming"] * k + ["conforming"] * (n - k), dtype="str"),
            "hazard_type": pd.array(["health"] * k + [None] * (n - k), dtype="str"),
            "severity": pd.array([severity] * k + [None] * (n - k), dtype="str"),
        }
    )
    tb["declarations"] = pd.concat([decl, rows], ignore_index=True)
    tb["inspections"] = pd.concat([insp, res], ignore_index=True)
    return tb


def test_three_bad_out_of_three_does_not_trigger_red():
    tb = _one_subject_tables(3, 3)
    [a] = assess(tb, day(397), CFG, subjects=[Subject("enterprise", ("EBAD",))])
    assert a.nonconforming == 3 and a.inspected == 3
    assert a.level == 0  # too little evidence for any warning
    found = [x for x in assess(tb, day(397), CFG) if x.subject.key == ("EBAD",)]
    assert found == []


def test_many_critical_results_give_a_serious_level():
    tb = _one_subject_tables(24, 30)
    [a] = assess(tb, day(397), CFG, subjects=[Subject("enterprise", ("EBAD",))])
    assert a.likelihood == 4 and a.severity == 4
    assert a.level in (1, 2)
    # the same counts with minor results are less severe
    tb_minor = _one_subject_tables(24, 30, severity="minor")
    [b] = assess(tb_minor, day(397), CFG, subjects=[Subject("enterprise", ("EBAD",))])
    assert b.severity < a.severity and b.level > a.level


# ---------------------------------------------------------------------------- outbreak


def test_outbreak_is_proposed_soon_after_it_starts_and_not_before(tables):
    before = propose(tables, day(338), CFG)
    assert not any(w["subject_key"] == OUTBREAK.key_str for w in before)
    assert len(before) <= 1  # base-rate noise alone raises (almost) nothing
    after = propose(tables, day(355), CFG)
    hit = [w for w in after if w["subject_kind"] == "hs4_origin"]
    assert [w["subject_key"] for w in hit] == [OUTBREAK.key_str]
    w = hit[0]
    assert w["level"] in (1, 2)  # critical health results at a high rate
    assert w["status"] == "proposed"
    # the broader HS4 and origin subjects are explained by the narrow one: not proposed
    assert not any(x["subject_kind"] in ("hs4", "origin") for x in after)


def test_assessment_uses_only_results_known_at_as_of(tables):
    as_of = day(350)
    a1 = assess(tables, as_of, CFG, subjects=[OUTBREAK])[0]
    future = tables["inspections"].copy()
    late = future["inspected_at"] > as_of
    future.loc[late, "result"] = "conforming"
    changed = {**tables, "inspections": future}
    a2 = assess(changed, as_of, CFG, subjects=[OUTBREAK])[0]
    assert (a1.inspected, a1.nonconforming, a1.level) == (a2.inspected, a2.nonconforming, a2.level)


def test_signals_and_scores_feed_the_assessment(tables):
    [a] = assess(tables, day(355), CFG, subjects=[OUTBREAK])
    assert a.signals >= 2 and a.serious_signals >= 2
    assert a.signal_channels.get("foreign_alert") == 1
    decl = tables["declarations"]
    p = np.where(OUTBREAK.mask(decl), 0.5, 0.05)
    scores = pd.DataFrame({"declaration_id": decl["declaration_id"], "probability": p})
    [b] = assess(tables, day(355), CFG, scores=scores, subjects=[OUTBREAK])
    assert b.mean_score == pytest.approx(0.5) and b.score_ratio > 2


def test_open_subjects_are_not_proposed_again(tables):
    first = propose(tables, day(355), CFG)
    again = propose(
        tables, day(356), CFG, open_subjects={(w["subject_kind"], w["subject_key"]) for w in first}
    )
    assert not {w["subject_key"] for w in again} & {w["subject_key"] for w in first}


# ---------------------------------------------------------------------------- warning content


def test_every_warning_states_level_scope_matters_measures_and_publication(tables):
    [a] = assess(tables, day(355), CFG, subjects=[OUTBREAK])
    w = build_warning(a, CFG)
    assert w["publication_type"] == CFG["publication"][w["level"]]
    assert w["title"].startswith("关于") and "风险预警" in w["title"]
    assert w["scope"]["declarations"] > 0 and w["scope"]["ports"] >= 1
    assert "nonconforming" in w["matters"]
    types = [m["type"] for m in w["measures"]]
    assert "tightened_inspection" in types and "lower_credit" not in types  # not an enterprise
    assert w["as_of"] == a.as_of


def test_measures_toolbox_by_level_and_subject():
    assert [m["mode"] for m in measures_for_level(1, "enterprise", CFG) if "mode" in m] == [
        "mandatory"
    ]
    assert any(m["type"] == "lower_credit" for m in measures_for_level(1, "enterprise", CFG))
    assert not any(m["type"] == "lower_credit" for m in measures_for_level(1, "hs4", CFG))
    [raised] = [m for m in measures_for_level(4, "hs4", CFG) if m["type"] == "tightened_inspection"]
    assert raised["mode"] == "raised" and 0 < raised["rate"] < 1


def test_inspection_measures_match_declarations_and_order_mandatory_first():
    warnings = [
        {"id": "W2", "status": "active", "level": 4, "subject_kind": "hs4",
         "subject_key": "0303", "measures": measures_for_level(4, "hs4", CFG)},
        {"id": "W1", "status": "active", "level": 2, "subject_kind": "hs4_origin",
         "subject_key": "0303/VN", "measures": measures_for_level(2, "hs4_origin", CFG)},
        {"id": "W0", "status": "proposed", "level": 1, "subject_kind": "origin",
         "subject_key": "VN", "measures": measures_for_level(1, "origin", CFG)},
    ]  # fmt: skip
    ms = inspection_measures(warnings)
    assert [m.warning_id for m in ms] == ["W1", "W2"]  # proposed ones impose nothing
    assert ms[0].mode == "mandatory" and ms[1].mode == "raised"
    assert ms[0].matches(new_declaration(1, hs_code="03031900", origin_country="VN"))
    assert not ms[0].matches(new_declaration(2, hs_code="03031900", origin_country="TH"))
    assert not ms[0].matches(new_declaration(3, hs_code="9503000", origin_country="VN"))
    # a raised rate selects about that share, reproducibly
    picks = [ms[1].selects(f"D{i}", "s3cret") for i in range(4000)]
    assert abs(np.mean(picks) - ms[1].rate) < 0.03
    assert picks == [ms[1].selects(f"D{i}", "s3cret") for i in range(4000)]


def test_subject_mask_equals_matches(tables):
    decl = tables["declarations"].head(500)
    for s in (OUTBREAK, Subject("hs4", ("9503",)), Subject("enterprise", ("E001",)),
              Subject("overseas_party", ("P003",)), Subject("origin", ("JP",))):  # fmt: skip
        rows = decl.to_dict("records")
        assert list(s.mask(decl)) == [s.matches(r) for r in rows]


# ---------------------------------------------------------------------------- lifecycle


def test_lifecycle_valid_path():
    assert next_state("proposed", 3, "approve") == ("approved", 3)
    assert next_state("approved", 3, "activate") == ("active", 3)
    assert next_state("active", 3, "escalate") == ("active", 2)
    assert next_state("active", 2, "de-escalate") == ("active", 3)
    assert next_state("active", 3, "lift", reason="outbreak over, supplier delisted") == (
        "lifted",
        3,
    )
    assert next_state("active", 3, "lift", evaluation={"passed": True}) == ("lifted", 3)
    assert next_state("proposed", 3, "reject", reason="duplicate") == ("rejected", 3)


@pytest.mark.parametrize(
    ("status", "level", "action", "kwargs"),
    [
        ("approved", 3, "approve", {}),
        ("active", 3, "approve", {}),
        ("rejected", 3, "approve", {}),
        ("proposed", 3, "escalate", {}),
        ("proposed", 3, "lift", {"reason": "x"}),
        ("active", 1, "escalate", {}),
        ("active", 4, "de-escalate", {}),
        ("active", 3, "lift", {}),
        ("active", 3, "lift", {"evaluation": {"passed": False}}),
        ("active", 3, "lift", {"reason": "   "}),
        ("lifted", 3, "lift", {"reason": "x"}),
        ("lifted", 3, "activate", {}),
        ("active", 3, "explode", {}),
    ],
)
def test_invalid_transitions_are_refused(status, level, action, kwargs):
    with pytest.raises(InvalidTransition):
        next_state(status, level, action, **kwargs)


def test_effect_evaluation_counts_matching_inspections_after_activation(tables):
    [a] = assess(tables, day(355), CFG, subjects=[OUTBREAK])
    w = build_warning(a, CFG)
    w["activated_at"] = day(356).isoformat()
    ev = evaluate_effect(w, tables, day(399), CFG, period_days=60)
    decl, insp = tables["declarations"], tables["inspections"]
    d = decl[OUTBREAK.mask(decl) & (decl["declared_at"] >= day(356))]
    i = insp[insp["declaration_id"].isin(d["declaration_id"]) & (insp["inspected_at"] <= day(399))]
    assert ev.inspected == len(i) and ev.nonconforming == int(
        (i["result"] == "nonconforming").sum()
    )
    assert ev.threshold == pytest.approx(CFG["lift"]["threshold_factor"] * a.baseline)
    assert ev.passed is False  # the outbreak never recovers in the synthetic data
    assert ev.period_start == day(356).isoformat()


def test_an_unconfirmed_notice_is_not_lifted_on_its_effect_evaluation(tables):
    """Clean inspections under an early notice that results never confirmed are no effect of a
    measure: the notice lapses at its review instead (bench replays had lifted such notices on
    'effect evaluation' within days of raising them)."""
    [a] = assess(tables, day(355), CFG, subjects=[OUTBREAK])
    w = build_warning(a, CFG)
    w["activated_at"] = day(356).isoformat()
    everything = evaluate_effect(w, tables, day(399), CFG, threshold=1.0, period_days=60)
    assert everything.passed and not everything.awaiting_confirmation  # on results: lifts
    notice = {**w, "report_driven": True}
    ev = evaluate_effect(notice, tables, day(399), CFG, threshold=1.0, period_days=60)
    assert ev.awaiting_confirmation and not ev.passed
    assert ev.inspected == everything.inspected  # still shown to the committee
    confirmed = {**notice, "confirmed_at": str(day(380).date())}
    assert evaluate_effect(confirmed, tables, day(399), CFG, threshold=1.0, period_days=60).passed


def test_a_surge_of_serious_signals_raises_a_warning_before_any_result(tables):
    """Foreign alerts about a product from an origin, no inspection yet: an early warning."""
    n = 5
    extra = pd.DataFrame(
        {
            "signal_id": pd.array([f"X{i}" for i in range(n)], dtype="str"),
            "reported_at": [day(200) + pd.Timedelta(days=i) for i in range(n)],
            "channel": pd.array(["foreign_alert"] * n, dtype="str"),
            "enterprise_id": pd.array([None] * n, dtype="str"),
            "overseas_party_id": pd.array([None] * n, dtype="str"),
            "hs_code": pd.array(["851610"] * n, dtype="str"),
            "origin_country": pd.array(["DE"] * n, dtype="str"),
            "severity": pd.array(["serious", "high", "high", "medium", "low"], dtype="str"),
            "hazard_type": pd.array(["safety"] * n, dtype="str"),
            "source": pd.array(["RASFF", "FDA", "RASFF", "CFIA", "FDA"], dtype="str"),
        }
    )
    surge = with_reports(tables, extra)
    subject = Subject("hs4_origin", ("8516", "DE"))
    [quiet] = assess(with_reports(tables), day(206), CFG, subjects=[subject])
    [loud] = assess(surge, day(206), CFG, subjects=[subject])
    assert quiet.level == 0 and not quiet.surge
    assert loud.surge and loud.signals == n and loud.likelihood >= 1 and loud.level >= 3
    assert loud.signal_channels == {"foreign_alert": n}
    # three low-severity reports from one source: surprising, but one voice and no results
    mild = extra.head(3).assign(severity=pd.array(["low"] * 3, dtype="str"), source="RASFF")
    [c] = assess(with_reports(tables, mild), day(206), CFG, subjects=[subject])
    assert c.surge and not c.report_driven and c.level == 0


# ---------------------------------------------------------------------------- precision rules


def test_a_rate_excess_without_volume_signals_or_severity_is_not_a_warning():
    """Results alone stand only when chance gives so extreme a window to some subject of the
    kind less often than the committee's yearly budget; no fixed count of bad results."""
    tb = _one_subject_tables(5, 10, severity="minor")
    ebad = Subject("enterprise", ("EBAD",))
    [a] = assess(tb, day(397), CFG, subjects=[ebad])
    assert a.lift >= CFG["likelihood"]["lift_thresholds"][0]  # a credible excess
    # the level scales with the budget over the kind's tested subjects x windows a year
    tested = 365.0 / CFG["window_days"]
    per_year = CFG["corroboration"]["results_alone_per_year"]
    assert 0 < a.results_alone_alpha <= per_year / tested
    assert 0 < a.excess_p < 1
    # a committee budget under which these 5 minor results are not extreme enough: no warning
    strict = copy.deepcopy(CFG)
    strict["corroboration"]["results_alone_per_year"] = (
        0.5 * per_year * a.excess_p / a.results_alone_alpha
    )
    [s] = assess(tb, day(397), strict, subjects=[ebad])
    assert s.excess_p > s.results_alone_alpha
    assert s.likelihood == 0 and s.level == 0
    assert any("not corroborated" in n for n in s.notes)
    # twice that budget: the same results stand alone
    loose = copy.deepcopy(CFG)
    loose["corroboration"]["results_alone_per_year"] = (
        2.0 * per_year * a.excess_p / a.results_alone_alpha
    )
    [b] = assess(tb, day(397), loose, subjects=[ebad])
    assert b.excess_p <= b.results_alone_alpha
    assert b.likelihood >= 1 and not any("corroborated" in n for n in b.notes)
    # no history of its own: a referral for credit supervision, not an outbreak warning
    assert b.category == "credit_supervision" and b.baseline_inspected == 0
    [o] = assess(tb, day(397), CFG, subjects=[OUTBREAK])
    assert o.category == "outbreak"


def test_a_subject_closed_lately_is_proposed_again_only_when_more_severe(tables):
    [w] = [x for x in propose(tables, day(355), CFG) if x["subject_key"] == OUTBREAK.key_str]
    key = (w["subject_kind"], w["subject_key"])

    def again(level: int, closed_days_before: int) -> bool:
        closed = {key: {"level": level, "closed_at": day(356 - closed_days_before)}}
        made = propose(tables, day(356), CFG, recently_closed=closed)
        return any(x["subject_key"] == OUTBREAK.key_str for x in made)

    assert not again(w["level"], 1)  # same level, a day after it was lifted: cool-down
    assert w["level"] < 4 and again(w["level"] + 1, 1)  # more severe than it was: proposed
    assert again(w["level"], CFG["proposals"]["cooldown_days"] + 1)  # cool-down over


def test_a_lapsed_notice_does_not_hold_back_fresh_reports(tables):
    """A lapse is not a lift (no measure was shown to work): new, surprising reports about
    the subject make a notice at once, where a lifted warning's cool-down would hold it."""
    fresh = reports(2, 196, "851610", "DE", ["foreign_alert", "public_opinion"],
                    ["RASFF", "Weibo"], "F")  # fmt: skip
    tb = with_reports(tables, fresh)
    key = ("hs4_origin", QUIET.key_str)

    def noticed(closed: dict) -> bool:
        made = propose(tb, day(203), CFG, recently_closed={key: closed})
        return any(x["subject_key"] == QUIET.key_str and x["report_driven"] for x in made)

    assert not noticed({"level": 4, "closed_at": day(190)})  # lifted 13 days ago: cool-down
    assert noticed({"level": 4, "closed_at": day(190), "lapsed": True})  # lapsed: heard


def test_fresh_reports_on_a_subject_under_a_warning_go_before_the_committee(tables):
    """An open warning keeps its subject out of new proposals; reports that arrived after it
    was raised and would make a notice on their own are recorded on it instead (once a
    window), never the reports it was raised on."""
    burst = reports(3, 196, "851610", "DE", ["foreign_alert", "public_opinion", "recall"],
                    ["RASFF", "Weibo", "SAMR"], "X")  # fmt: skip
    tb = with_reports(tables, burst)
    [now] = assess(tb, day(203), CFG, subjects=[QUIET])
    assert now.reports_make_notice
    raised = {"status": "active", "as_of": str(day(100)), "level": 3}
    why = fresh_evidence(raised, now, day(203), CFG)
    assert why is not None and "fresh evidence" in why and "3 reports" in why
    # raised less than a window ago: these may be the very reports it was raised on
    assert fresh_evidence({**raised, "as_of": str(day(190))}, now, day(203), CFG) is None
    # recorded a week ago already: once a window
    assert fresh_evidence(raised, now, day(203), CFG, last_flagged=day(196)) is None
    assert fresh_evidence(raised, now, day(203), CFG, last_flagged=day(170)) is not None
    # closed warnings, and reports that would not make a notice, are not fresh evidence
    assert fresh_evidence({**raised, "status": "lifted"}, now, day(203), CFG) is None
    [quiet] = assess(tables, day(203), CFG, subjects=[QUIET])
    assert not quiet.reports_make_notice
    assert fresh_evidence(raised, quiet, day(203), CFG) is None
    # the record: status and level stay, the committee decides
    assert next_state("active", 3, "fresh-evidence") == ("active", 3)
    with pytest.raises(InvalidTransition):
        next_state("lifted", 3, "fresh-evidence")


def test_the_nightly_report_check_proposes_what_the_full_assessment_proposes(tables):
    """``notices_only`` assesses only the subjects whose reports make a notice, and gives for
    them exactly the proposal of the full run; nothing else (results-based warnings wait)."""
    two = reports(2, 348, "851610", "DE", ["foreign_alert", "public_opinion"],
                   ["RASFF", "Weibo"], "N")  # fmt: skip
    tb = with_reports(tables, two)
    full = propose(tb, day(355), CFG)
    nightly = propose(tb, day(355), CFG, notices_only=True)
    by_subject = {(w["subject_kind"], w["subject_key"]): w for w in full}
    assert ("hs4_origin", QUIET.key_str) in {(w["subject_kind"], w["subject_key"]) for w in nightly}
    for w in nightly:  # what the full run proposes for the same subject, record for record
        assert w == by_subject[(w["subject_kind"], w["subject_key"])]
    # only notices on reports: a subject whose results grade an excess waits for the weekly run
    assert all(w["report_driven"] for w in nightly)
    assert any(not w["report_driven"] for w in full)
    # already open: not proposed again; no fresh reports: nothing to check
    opened = {(w["subject_kind"], w["subject_key"]) for w in nightly}
    assert propose(tb, day(355), CFG, notices_only=True, open_subjects=opened) == []
    assert propose(make_tables(signals=False), day(355), CFG, notices_only=True) == []


def test_proposals_are_ranked_capped_and_wait_for_a_warm_up(tables):
    capped = copy.deepcopy(CFG)
    capped["proposals"]["max_per_run"] = 1
    full = propose(tables, day(355), CFG)
    one = propose(tables, day(355), capped)
    assert len(one) == 1 and one[0]["level"] == min(w["level"] for w in full)
    cold = copy.deepcopy(CFG)
    cold["proposals"]["warmup_days"] = 10_000  # never warmed up: product subjects only
    kinds = {w["subject_kind"] for w in propose(tables, day(355), cold)}
    assert kinds and kinds <= set(CFG["proposals"]["warmup_kinds"])


def test_a_surge_needs_many_more_signals_than_the_subject_usually_has(tables):
    """Five alerts in four weeks are a surge for a quiet subject, not for a busy one."""

    def alerts(n: int, start: int, every: float, prefix: str) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "signal_id": pd.array([f"{prefix}{i}" for i in range(n)], dtype="str"),
                "reported_at": [day(start) + pd.Timedelta(days=i * every) for i in range(n)],
                "channel": pd.array(["foreign_alert"] * n, dtype="str"),
                "enterprise_id": pd.array([None] * n, dtype="str"),
                "overseas_party_id": pd.array([None] * n, dtype="str"),
                "hs_code": pd.array(["851610"] * n, dtype="str"),
                "origin_country": pd.array(["DE"] * n, dtype="str"),
                "severity": pd.array(["medium"] * n, dtype="str"),
                "hazard_type": pd.array(["safety"] * n, dtype="str"),
                "source": pd.array(["RASFF", "FDA"] * (n // 2) + ["RASFF"] * (n % 2)),
            }
        )

    subject = Subject("hs4_origin", ("8516", "DE"))
    burst = alerts(5, 200, 1, "X")
    quiet = with_reports(tables, burst)
    [a] = assess(quiet, day(206), CFG, subjects=[subject])
    assert a.surge and a.level == 4  # medium alerts alone: an early Ⅳ notice to ports
    assert a.report_driven
    busy_history = alerts(40, 20, 4, "H")  # about six a month before the window
    busy = with_reports(tables, busy_history, burst)
    [b] = assess(busy, day(206), CFG, subjects=[subject])
    assert b.signals_expected > 1.0 and not b.surge and not b.report_driven


# ---------------------------------------------------------------------------- inspection mix


def _mix_tables(window_bad_ordinary: int) -> dict[str, pd.DataFrame]:
    """A product whose baseline is set by a discredited trader inspected by rule (60 % bad),
    then a window flooded with mandatory inspections of ordinary traders (120, of which
    ``window_bad_ordinary`` are bad; their usual rate is 5 %)."""
    rows: list[tuple[int, str, str, str, bool]] = []  # day, hs4, enterprise, selection, bad

    def add(count: int, n_bad: int, day0: int, day1: int, hs4: str, ent: str, sel: str) -> None:
        for i in range(count):
            rows.append((day0 + (day1 - day0) * i // count, hs4, ent, sel, i < n_bad))

    # background that sets the stratum rates: ordinary 5 % whatever the selection, 60 % for
    # the severely discredited trader inspected by rule
    add(2000, 100, 0, 370, "9999", "E100", "random")
    add(400, 20, 0, 370, "9999", "E101", "mandatory")
    add(300, 180, 0, 370, "9999", "EBAD", "mandatory")
    # the product's baseline: the discredited trader dominates it
    add(120, 72, 0, 370, "8507", "EBAD", "mandatory")
    add(60, 3, 0, 370, "8507", "E102", "random")
    # the window (days 373-399): a few of the discredited trader, many ordinary traders
    add(10, 6, 373, 399, "8507", "EBAD", "mandatory")
    add(120, window_bad_ordinary, 373, 399, "8507", "E103", "mandatory")
    add(400, 20, 373, 399, "9999", "E100", "random")
    n = len(rows)
    at = pd.Series([START + pd.Timedelta(days=r[0], hours=1) for r in rows])
    decl = pd.DataFrame(
        {
            "declaration_id": [f"M{i:06d}" for i in range(n)],
            "declared_at": at,
            "port_code": [f"CNP{i % 4}" for i in range(n)],
            "hs_code": [r[1] + "10" for r in rows],
            "origin_country": "CN",
            "enterprise_id": [r[2] for r in rows],
            "overseas_party_id": "P1",
            "declared_value_usd": 1000.0,
        }
    )
    for c in ("declaration_id", "port_code", "hs_code", "origin_country", "enterprise_id"):
        decl[c] = decl[c].astype("str")
    decl["overseas_party_id"] = decl["overseas_party_id"].astype("str")
    bad = np.array([r[4] for r in rows])
    insp = pd.DataFrame(
        {
            "declaration_id": decl["declaration_id"],
            "inspected_at": at + pd.Timedelta(hours=5),
            "selection": pd.array([r[3] for r in rows], dtype="str"),
            "result": np.where(bad, "nonconforming", "conforming"),
            "hazard_type": pd.array(np.where(bad, "safety", None), dtype="str"),
            "severity": pd.array(np.where(bad, "critical", None), dtype="str"),
        }
    )
    insp["result"] = insp["result"].astype("str")
    ratings = pd.DataFrame(
        {
            "enterprise_id": pd.array(["EBAD"], dtype="str"),
            "effective_from": [START - pd.Timedelta(days=10)],
            "rating": pd.array(["severely_discredited"], dtype="str"),
        }
    )
    return {"declarations": decl, "inspections": insp, "credit_ratings": ratings}


MIX_SUBJECT = Subject("hs4_origin", ("8507", "CN"))


def test_expected_count_accounts_for_why_and_whom_was_inspected():
    as_of = day(400)
    # ordinary traders at 5x their usual rate: the raw rate (36/130) is below the product's
    # baseline (75/180), but observed against expected for this mix is a credible excess
    outbreak = _mix_tables(window_bad_ordinary=30)
    a = assess(outbreak, as_of, CFG, subjects=[MIX_SUBJECT])[0]
    assert (a.inspected, a.nonconforming) == (130, 36)
    assert a.rate < a.baseline
    assert a.expected_rate < 0.15 and a.observed_expected > 2.0
    assert a.lift >= CFG["likelihood"]["lift_thresholds"][0] and a.likelihood >= 1
    assert a.level > 0
    # the raw comparison (no strata) misses it: the old behaviour, kept as an option
    raw_cfg = copy.deepcopy(CFG)
    raw_cfg["likelihood"]["mix_strata"] = []
    r = assess(outbreak, as_of, raw_cfg, subjects=[MIX_SUBJECT])[0]
    assert r.expected_rate == pytest.approx(r.baseline) and r.lift < 1.0 and r.level == 0
    # the same change of mix with ordinary traders at their usual rate is no warning
    calm = assess(_mix_tables(window_bad_ordinary=6), as_of, CFG, subjects=[MIX_SUBJECT])[0]
    assert calm.observed_expected < 1.5 and calm.likelihood == 0 and calm.level == 0
    assert not [x for x in assess(_mix_tables(6), as_of, CFG) if x.subject == MIX_SUBJECT]


def test_single_stratum_reduces_to_the_subject_baseline(tables):
    # the synthetic tables have one selection and no ratings: expected rate == baseline
    a = assess(tables, day(360), CFG, subjects=[OUTBREAK])[0]
    assert a.expected_rate == pytest.approx(a.baseline)


# --------------------------------------------------------------------------------------------
# sequential change detection (Poisson CUSUM)


def _rise_tables(rate: float, seed: int) -> dict[str, pd.DataFrame]:
    """0303/VN goes from 8 % to ``rate`` nonconforming at day 250 with the inspection share
    unchanged and no signals: a modest, sustained rise (about 3 expected bad a week)."""
    return make_tables(
        n=40000,
        days=340,
        outbreak_day=250,
        outbreak_rate=rate,
        base_rate=0.08,
        inspect_share=0.5,
        outbreak_inspect_share=0.5,
        signals=False,
        seed=seed,
    )


def test_cusum_catches_a_sustained_doubling_the_lower_bound_misses():
    no_cusum = copy.deepcopy(CFG)
    no_cusum["likelihood"]["cusum"]["kinds"] = []
    h = CFG["likelihood"]["cusum"]["h"]
    caught = {"cusum_42": 0, "lower_42": 0, "cusum_91": 0, "lower_91": 0}
    for seed in range(8):
        tables = _rise_tables(0.16, seed)
        # weekly assessments: caught by day 42 when any of them up to day 42 has a level
        seen = {"cusum": False, "lower": False}
        for d in (7, 14, 21, 28, 35, 42, 91):
            (a,) = assess(tables, day(250 + d), CFG, subjects=[OUTBREAK])
            (b,) = assess(tables, day(250 + d), no_cusum, subjects=[OUTBREAK])
            assert b.cusum == 0.0  # off: not computed
            if a.level > 0 and b.level == 0:
                # raised by the CUSUM: crossed h, lift estimated near the planted 2x
                assert a.cusum >= h and a.likelihood >= 1
                assert 1.3 <= a.cusum_lift <= 3.5
                assert any("CUSUM" in n for n in a.notes)
            if d <= 42:
                seen["cusum"] |= a.level > 0
                seen["lower"] |= b.level > 0
            else:
                caught["cusum_91"] += a.level > 0
                caught["lower_91"] += b.level > 0
        caught["cusum_42"] += seen["cusum"]
        caught["lower_42"] += seen["lower"]
    # measured: the window's 95 % lower bound reaches a lift of 1.5 in 1 of 8 by day 42 and
    # in none at day 91; the CUSUM catches 4 of 8 by day 42 and is above h in 5 of 8 at day 91
    # (its expected uses the window's baseline, which by then holds the rise's first weeks)
    assert caught["lower_42"] <= 2 and caught["cusum_42"] >= 4, caught
    assert caught["cusum_91"] >= 4 and caught["lower_91"] <= 2, caught


def test_cusum_stays_below_h_on_a_stable_subject_over_a_long_history():
    # no change at all, 600 days; the CUSUM starts once 13 weeks + 91 days of history exist
    tables = make_tables(
        n=70000,
        days=600,
        outbreak_day=600,
        base_rate=0.08,
        inspect_share=0.5,
        signals=False,
        seed=5,
    )
    dates = [day(d) for d in range(182, 600, 7)]
    for as_of in dates:
        (a,) = assess(tables, as_of, CFG, subjects=[OUTBREAK])
        assert a.cusum < CFG["likelihood"]["cusum"]["h"], as_of
        assert a.level == 0, as_of


def test_cusum_threshold_gives_the_stated_in_control_run_length():
    # h = 4 for rho = 2: no more than one alarm in 260 subject-weeks at any weekly expected
    # count (restarting after each alarm, as the docs' simulation does)
    rng = np.random.default_rng(0)
    cc = CFG["likelihood"]["cusum"]
    for mu in (0.5, 2.0, 5.0):
        weeks, subjects = 260, 400
        x = rng.poisson(mu, (subjects, weeks)).astype(float)
        s = np.zeros(subjects)
        alarms = 0
        lr, drift = np.log(cc["rho"]), cc["rho"] - 1.0
        for j in range(weeks):
            s = np.maximum(0.0, s + x[:, j] * lr - drift * mu)
            hit = s >= cc["h"]
            alarms += int(hit.sum())
            s[hit] = 0.0
        assert alarms / (subjects * weeks) <= 1 / 260 * 1.15, mu
    # the library function agrees with the recursion and estimates the lift since the start
    obs = np.array([[0.0, 0.0, 4.0, 4.0, 4.0, 4.0]])
    exp = np.full((1, 6), 2.0)
    s, lift = poisson_cusum(obs, exp, 2.0)
    assert s[0] == pytest.approx(4 * (4 * np.log(2) - 2))
    assert lift[0] == pytest.approx(2.0)


# ---------------------------------------------------------------------------- evidence cap


def _window_row(n: int, k: int, expected: float, *, surge: bool) -> pd.Series:
    """A subject's window statistics as ``assess`` passes them to the grading."""
    lower = float(beta_lower_bound(np.array([k]), np.array([n]), np.array([expected]), CFG)[0])
    return pd.Series(
        {
            "n": n, "k": k, "expected": expected, "baseline": expected, "lower": lower,
            "lift": lower / expected, "cusum": 0.0, "cusum_lift": 0.0,
            "signals": 12 if surge else 0, "signals_expected": 1.0, "surge": surge,
            "serious_signals": 0, "harm_signals": 0, "mean_score": None,
            "critical": 0, "major": k // 2, "minor": k - k // 2, "hazard": "safety",
            "declarations": 10 * n, "ports": 4, "enterprises": 9, "value_usd": 1e6,
            "n_late": n / 4, "k_late": k / 4, "n_base": 500,
            # the Poisson tail of k at the expected count, against the results-alone level
            # of 480 subjects with 13 windows a year
            "excess_p": float(poisson.sf(k - 1, n * expected)), "alone_alpha": 1 / (480 * 13),
        }
    )  # fmt: skip


def test_corroboration_raises_likelihood_towards_the_results_but_never_past_them():
    """Signals move a cautious lower bound towards the posterior-mean lift, not beyond it."""
    from policy.warnings import _grade, likelihood_class

    subject = Subject("hs4_origin", ("9503", "CN"))
    # thin evidence: the lower bound says class 1, the posterior mean class 2 -> a surge helps
    thin = _window_row(40, 9, 0.05, surge=True)
    a = _grade(subject, thin, CFG, None, {})
    assert likelihood_class(float(thin["lift"]), CFG) == 1
    assert a.likelihood == 2
    # ample evidence of a doubling: bound and estimate agree on class 1 -> the surge adds nothing
    ample = _window_row(4000, 200, 0.025, surge=True)
    b = _grade(subject, ample, CFG, None, {})
    assert likelihood_class(float(ample["lift"]), CFG) == 1
    assert b.likelihood == 1
    assert any("already at the results' estimate" in note for note in b.notes)  # said, not hidden
    # the same ample window without the surge grades the same: the level is stable week to week
    c = _grade(subject, _window_row(4000, 200, 0.025, surge=False), CFG, None, {})
    assert c.level == b.level


# ---------------------------------------------------------------------------- multiplicity


def test_benjamini_hochberg_steps_up():
    from policy.warnings import benjamini_hochberg

    p = np.array([0.205, 0.001, 0.039, 0.008, 0.041, 0.042, 0.06, 0.074, 0.212, 0.216])
    assert benjamini_hochberg(p, 0.05).tolist() == [False, True, False, True] + [False] * 6
    # step-up: the larger p-value passes at 2/2 * q and carries the smaller one with it
    assert benjamini_hochberg(np.array([0.04, 0.04]), 0.05).tolist() == [True, True]
    assert not benjamini_hochberg(np.array([0.04, 0.06]), 0.05).any()
    assert benjamini_hochberg(np.array([]), 0.05).tolist() == []


def test_fdr_gate_keeps_a_real_outbreak_and_names_what_it_drops(tables):
    """At a usual FDR the planted outbreak stands out among all subjects; at an absurd one the
    same excess is dropped, with a note that says why (the gate reads every subject of the
    kind, also when one subject is assessed alone)."""
    usual = copy.deepcopy(CFG)
    usual["likelihood"]["fdr"] = 0.05
    [a] = assess(tables, day(355), usual, subjects=[OUTBREAK])
    assert a.level > 0 and not any("not significant" in note for note in a.notes)
    assert OUTBREAK.key_str in {
        w["subject_key"]
        for w in propose(tables, day(355), usual)
        if w["subject_kind"] == "hs4_origin"
    }
    absurd = copy.deepcopy(CFG)
    absurd["likelihood"]["fdr"] = 1e-30
    absurd["likelihood"]["cusum"]["kinds"] = []  # the rate rule alone
    [b] = assess(tables, day(355), absurd, subjects=[OUTBREAK])
    assert any("not significant among" in note for note in b.notes)
    assert b.likelihood <= 1  # only signals can still give it a class


def test_a_thin_subject_is_evaluated_over_everything_inspected_under_the_measure(tables):
    """Too few inspections in the last period: the evaluation reaches back to the activation."""
    [a] = assess(tables, day(355), CFG, subjects=[OUTBREAK])
    w = build_warning(a, CFG)
    w["activated_at"] = day(300).isoformat()
    strict = copy.deepcopy(CFG)
    strict["lift"]["min_inspected"] = 10**6  # never reached in any period
    short = evaluate_effect(w, tables, day(399), CFG, period_days=20)
    assert short.period_start == day(379).isoformat()  # enough results: the stated period
    wide = evaluate_effect(w, tables, day(399), strict, period_days=20)
    assert wide.period_start == day(300).isoformat() and wide.inspected > short.inspected
    assert wide.passed is False


# ---------------------------------------------------------------------------- empirical Bayes


def test_empirical_bayes_tail_matches_a_hand_computation():
    """Gamma prior (shape 0.5, rate 2) and one report in 13 windows: P(Y >= 2) next window."""
    from math import isclose

    from policy.warnings import gamma_prior_moments, negative_binomial_tail

    r, p = 0.5 + 1, (2.0 + 13.0) / (2.0 + 13.0 + 1.0)  # negative binomial of the predictive
    p0 = p**r
    p1 = r * (1 - p) * p**r
    tail, mean = negative_binomial_tail(
        np.array([0.0, 1.0, 2.0]), np.array([1.0] * 3), np.array([13.0] * 3), np.ones(3), 0.5, 2.0
    )
    assert tail[0] == 1.0 and isclose(tail[1], 1 - p0) and isclose(tail[2], 1 - p0 - p1)
    assert isclose(mean[0], 1.5 / 15.0)  # (shape + history) / (rate + exposure)
    # moments: rates 0, 0, 2, 0 over 2 windows each -> mean 0.5, spread 0.75, Poisson part
    # 0.5 x 1/2 = 0.25, between-subject variance 0.5 -> shape 0.25 / 0.5, rate shape / mean
    shape, rate = gamma_prior_moments(np.array([0, 0, 4, 0]), np.full(4, 2.0))
    assert isclose(shape, 0.5) and isclose(rate, 1.0)
    # subjects no more different than Poisson noise: a tight prior (own history barely counts)
    assert gamma_prior_moments(np.array([2, 2, 2, 2]), np.full(4, 2.0))[0] >= 1000


# ---------------------------------------------------------------------------- early notices


QUIET = Subject("hs4_origin", ("8516", "DE"))


def test_two_independent_reports_about_a_quiet_subject_make_a_report_driven_iv_notice(tables):
    two = reports(2, 196, "851610", "DE", ["foreign_alert", "public_opinion"],
                   ["RASFF", "Weibo"], "N")  # fmt: skip
    made = propose(with_reports(tables, two), day(203), CFG)
    [w] = [x for x in made if x["subject_key"] == QUIET.key_str]
    assert w["level"] == 4 and w["publication_type"] == "通报"
    assert w["report_driven"] and "awaiting results" in w["matters"]
    assert [m["type"] for m in w["measures"]] == ["tightened_inspection"]
    assert w["measures"][0]["mode"] == "raised"  # targeted sampling raised, nothing compulsory
    review = pd.Timestamp(w["review_until"]) - pd.Timestamp(w["as_of"])
    assert review == pd.Timedelta(days=CFG["early_notice"]["review_days"])
    a = w["assessment"]
    assert a["signal_sources"] == 2 and a["likelihood"] == 1 and a["signal_p"] < 0.05
    # the same two reports from one source are one voice: no notice
    echo = reports(2, 196, "851610", "DE", ["foreign_alert"], ["RASFF"], "E")
    [e] = assess(with_reports(tables, echo), day(203), CFG, subjects=[QUIET])
    assert e.level == 0 and not e.report_driven and e.signal_sources == 1
    # a subject reported on every few weeks is no quiet subject: two more reports are usual
    busy = reports(14, 10, "851610", "DE", ["foreign_alert"], ["RASFF"], "H")
    [b] = assess(with_reports(tables, busy, two), day(203), CFG, subjects=[QUIET])
    assert b.signals_expected > 1 and b.signal_p > 0.2 and not b.report_driven


def test_case_reports_are_voices_of_their_own_but_an_agency_repeating_itself_is_one(tables):
    """Two 12315 complaints are two complainants (two voices) on one channel and source; the
    same foreign agency notifying twice, or one outlet reporting twice, is one voice."""
    complaints = reports(2, 196, "851610", "DE", ["consumer_complaint"], ["12315"], "C")
    [c] = assess(with_reports(tables, complaints), day(203), CFG, subjects=[QUIET])
    assert c.signal_sources == 2 and c.report_driven and c.level == 4
    for channel, source in [("foreign_alert", "RASFF"), ("public_opinion", "news media")]:
        echo = reports(2, 196, "851610", "DE", [channel], [source], "R")
        [e] = assess(with_reports(tables, echo), day(203), CFG, subjects=[QUIET])
        assert e.signal_sources == 1 and not e.report_driven, channel
    # the rule itself: a case channel's voice carries the report's id, an agency's does not
    frame = pd.concat([complaints, reports(2, 196, "851610", "DE", ["foreign_alert"],
                                           ["RASFF"], "R")], ignore_index=True)  # fmt: skip
    voices = report_voices(frame, CFG["early_notice"]["case_channels"])
    assert voices.nunique() == 3
    assert report_voices(frame, []).nunique() == 2  # no case channels: channel + source only


def test_the_notice_p_value_weights_the_all_reports_count_over_the_serious_one(tables):
    """Weighted Bonferroni: the all-reports tail over 1 - serious_share, the high/serious tail
    over serious_share; the notice's p-value is the smaller (0.5 / 0.5 is the plain doubling)."""
    share = CFG["early_notice"]["serious_share"]
    assert 0.0 < share < 0.5  # the medium-graded first reports of an outbreak weigh more
    two = reports(2, 196, "851610", "DE", ["foreign_alert", "public_opinion"],
                  ["RASFF", "Weibo"], "N")  # fmt: skip
    [a] = assess(with_reports(tables, two), day(203), CFG, subjects=[QUIET])
    assert a.serious_signals == 0  # medium reports: only the all-reports count is tested
    assert isclose(a.notice_p, min(1.0, a.signal_p / (1.0 - share)))
    even = copy.deepcopy(CFG)
    even["early_notice"]["serious_share"] = 0.5
    [b] = assess(with_reports(tables, two), day(203), even, subjects=[QUIET])
    assert isclose(b.notice_p, min(1.0, 2.0 * a.signal_p))
    for bad in (0.0, 1.0):
        broken = copy.deepcopy(DEFAULT_CONFIG)
        broken["early_notice"]["serious_share"] = bad
        with pytest.raises(ValueError, match="serious_share"):
            validate_config(broken)


def test_a_burst_far_above_a_busy_subjects_own_usual_count_makes_a_notice(tables):
    """No fixed cap on the expected count: the tail under the subject's own history decides
    (at 1M two outbreaks on pairs expecting 0.5-0.9 reports a window were missed by a cap)."""
    busy = reports(14, 10, "851610", "DE", ["foreign_alert"], ["RASFF"], "H")
    burst = reports(9, 177, "851610", "DE", ["foreign_alert", "public_opinion", "complaint"],
                    ["RASFF", "Weibo", "12315"], "S")  # fmt: skip
    [b] = assess(with_reports(tables, busy, burst), day(203), CFG, subjects=[QUIET])
    assert b.signals_expected > 1  # reported on most months: not a quiet subject
    assert b.signals == 9 and b.signal_p < 5e-3
    assert b.report_driven and b.level == 4 and b.likelihood == 1
    made = propose(with_reports(tables, busy, burst), day(203), CFG)
    assert QUIET.key_str in {w["subject_key"] for w in made if w["report_driven"]}


def test_an_unconfirmed_notice_lapses_by_itself_after_its_review_period(tables):
    from policy.warnings import review_notice

    two = reports(2, 196, "851610", "DE", ["foreign_alert", "public_opinion"],
                   ["RASFF", "Weibo"], "N")  # fmt: skip
    tb = with_reports(tables, two)
    [w] = [x for x in propose(tb, day(203), CFG) if x["subject_key"] == QUIET.key_str]
    days = CFG["early_notice"]["review_days"]
    [mid] = assess(tb, day(203 + days - 7), CFG, subjects=[QUIET])
    assert review_notice(w, mid, day(203 + days - 7), CFG) is None  # still waiting
    [late] = assess(tb, day(203 + days), CFG, subjects=[QUIET])
    assert late.level == 0
    assert review_notice(w, late, day(203 + days), CFG) == ("lapse", 4)
    assert next_state("active", 4, "lapse") == ("lapsed", 4)
    with pytest.raises(InvalidTransition):
        next_state("lapsed", 4, "approve")


def test_results_confirm_a_notice_and_escalate_it(tables):
    """A notice on the outbreak's subject before its results; the results then confirm it."""
    from policy.warnings import review_notice

    early = reports(2, 336, "030310", "VN", ["foreign_alert", "public_opinion"],
                     ["RASFF", "news media"], "O")  # fmt: skip
    quiet = make_tables(signals=False)
    tb = with_reports(quiet, early)
    [w] = [x for x in propose(tb, day(341), CFG) if x["subject_key"] == OUTBREAK.key_str]
    assert w["report_driven"] and w["level"] == 4
    [now] = assess(tb, day(362), CFG, subjects=[OUTBREAK])
    assert now.level < 4 and not now.report_driven and now.inspected > 0
    decision = review_notice(w, now, day(362), CFG)
    assert decision == ("confirm", now.level)
    assert next_state("active", 4, "confirm", new_level=now.level) == ("active", now.level)
    confirmed = {**w, "confirmed_at": str(day(362).date())}
    assert review_notice(confirmed, now, day(400), CFG) is None  # confirmed: never lapses


def test_results_since_a_notice_confirm_it_by_its_own_test_against_its_subjects_baseline():
    """A moderate excess on the notice's subject alone: the notice's one test (its results since
    the notice against the subject's own earlier rate, Benjamini-Hochberg over the open notices
    only) confirms it, whatever the fresh assessment over every subject makes of it."""
    from policy.warnings import notice_tests, review_notice

    early = reports(2, 336, "030310", "VN", ["foreign_alert", "public_opinion"],
                     ["RASFF", "news media"], "O")  # fmt: skip
    tb = with_reports(make_tables(signals=False, outbreak_rate=0.3), early)
    [w] = [x for x in propose(tb, day(341), CFG) if x["subject_key"] == OUTBREAK.key_str]
    assert w["report_driven"] and w["level"] == 4
    tests = notice_tests(tb, [(w["id"], OUTBREAK, w["as_of"])], day(383), CFG)
    t = tests[w["id"]]
    assert t.inspected > 0 and t.nonconforming > 2 * t.expected and t.family == 1
    assert t.p < CFG["early_notice"]["confirm_fdr"] and t.confirmed
    assert review_notice(w, None, day(383), CFG, t) == ("confirm", 4)
    assert "results since the notice" in t.describe(0.05) and "confirmed" in t.describe(0.05)


def test_a_notice_whose_results_look_like_its_subjects_usual_rate_is_not_confirmed(tables):
    from policy.warnings import notice_tests, review_notice

    two = reports(2, 196, "851610", "DE", ["foreign_alert", "public_opinion"],
                   ["RASFF", "Weibo"], "N")  # fmt: skip
    tb = with_reports(tables, two)
    [w] = [x for x in propose(tb, day(203), CFG) if x["subject_key"] == QUIET.key_str]
    days = CFG["early_notice"]["review_days"]
    t = notice_tests(tb, [(w["id"], QUIET, w["as_of"])], day(203 + days), CFG)[w["id"]]
    assert t.inspected > 0 and not t.confirmed and t.p > 0.05
    assert t.nonconforming < 3 * max(t.expected, 1.0)
    assert review_notice(w, None, day(203 + days), CFG, t) == ("lapse", 4)


def test_the_notices_false_discovery_control_runs_over_the_open_notices_only():
    """Benjamini-Hochberg over the notices open at the review: the same results confirm a notice
    alone and may not among many others whose results are usual."""
    from policy.warnings import benjamini_hochberg, notice_tests

    tb = make_tables(signals=False, outbreak_rate=0.3)
    others = [
        Subject("hs4_origin", (h, o)) for h in ("9503", "8516", "3304") for o in ("DE", "JP", "TH")
    ]
    notices = [("W-ob", OUTBREAK, day(341))] + [
        (f"W{i}", s, day(341)) for i, s in enumerate(others)
    ]
    got = notice_tests(tb, notices, day(383), CFG)
    assert set(got) == {n[0] for n in notices} and {t.family for t in got.values()} == {
        len(notices)
    }
    p = np.array([got[n[0]].p for n in notices])
    expect = benjamini_hochberg(p, CFG["early_notice"]["confirm_fdr"])
    assert [got[n[0]].confirmed for n in notices] == [bool(x) and got[n[0]].nonconforming > 0
                                                      for n, x in zip(notices, expect, strict=True)]  # fmt: skip
    assert got["W-ob"].confirmed  # a clear excess survives the family
    alone = notice_tests(tb, [notices[0]], day(383), CFG)["W-ob"]
    assert alone.p == got["W-ob"].p and alone.family == 1
