"""What the committee's office shows about the model in service (``serving.committee.queries``)."""

from __future__ import annotations

from serving.committee.queries import headline_rows, random_critical_defined


def metrics(random_critical: float) -> dict:
    entry = {"random_sample": {"precision": 0.2, "critical_recall": random_critical},
             "all_inspected": {"precision": 0.25, "critical_recall": 0.4}}  # fmt: skip
    return {"test": {"random_sample": {"auc": 0.9}, "budgets": {"0.05": entry}},
            "baselines": {"plain_lightgbm": {"budgets": {"0.05": entry}}}}  # fmt: skip


def test_critical_recall_on_the_random_sample_is_flagged_undefined_when_it_held_no_critical_case():
    # training writes NaN when the random sample of the test period held no critical finding
    rows = headline_rows(metrics(float("nan")), 0.05)
    assert [r["name"] for r in rows] == ["model 模型", "plain_lightgbm"]
    assert not random_critical_defined(rows)
    assert random_critical_defined(headline_rows(metrics(0.5), 0.05))
    assert random_critical_defined(headline_rows(metrics(0.0), 0.05))  # defined, just zero
    assert not random_critical_defined(headline_rows({}, 0.05))  # a bundle without metrics
