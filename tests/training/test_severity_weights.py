"""Severity weights: which labelled rows weigh what, and how they combine with a correction."""

from __future__ import annotations

import numpy as np
import pytest

from tests.training.training_synth import FEATURES
from training.config import load_config
from training.train import TRAIN, prepare, sample_weights, severity_weights


@pytest.fixture(scope="module")
def data(synthetic):
    features, labels, _ = synthetic
    return prepare(features, labels, FEATURES, test_months=4, validation_months=3)


def test_severity_weights_by_row(data):
    cfg = load_config(overrides={"severity_weights": {"critical": 3.0, "major": 1.5}})
    rows = data.rows(TRAIN)
    w = severity_weights(data, rows, cfg)
    y = data.labels["y"].to_numpy()[rows]
    sev = data.severity[rows]
    assert w is not None and len(w) == rows.sum()
    crit = (y == 1) & (sev == "critical")
    assert crit.sum() > 10
    np.testing.assert_array_equal(w[crit], 3.0)
    # conforming rows and minor nonconformities keep weight 1
    np.testing.assert_array_equal(w[~crit], 1.0)
    assert set(np.unique(sev[y == 0])) == {""}


def test_unit_weights_mean_no_weights(data):
    cfg = load_config(overrides={"severity_weights": {"critical": 1.0, "major": 1.0}})
    assert severity_weights(data, data.rows(TRAIN), cfg) is None
    w, _ = sample_weights("none", data, data.rows(TRAIN), cfg)
    assert w is None


def test_severity_weights_multiply_the_correction(data):
    cfg = load_config(
        overrides={
            "severity_weights": {"critical": 4.0, "major": 1.0},
            "selection": {"random_weight": 5.0},
        }
    )
    rows = data.rows(TRAIN)
    w, stats = sample_weights("random_upweight", data, rows, cfg)
    rnd = data.labels["random"].to_numpy()[rows]
    crit = data.labels["critical"].to_numpy()[rows]
    expected = np.where(rnd, 5.0, 1.0) * np.where(crit, 4.0, 1.0)
    np.testing.assert_array_equal(w, expected)
    assert stats["random_rows"] == rnd.sum()
