"""The registered MLflow model, logged as "models from code" (nothing is pickled).

MLflow executes this file when the model is loaded. The model's only artifact is the verified
model bundle; ``predict`` returns the bundle's calibrated probability.

Input
-----
A ``pandas.DataFrame`` of **feature columns** (the bundle's ``feature_names``, in any column
order; extra columns are ignored), one row per declaration, float values with NaN for missing.
It does not build features from raw declarations: that is ``features.build`` / the snapshot's
job. Output: a 1-D float64 array of calibrated probabilities, identical to
``features.bundle.load_bundle(dir).probability(X)``.

The bundle is checked against its manifest, and the manifest against the sha256 pinned in the
model config (``bundle_manifest_sha256``) when present, before anything is parsed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from features.bundle import ModelBundle, load_bundle


class GuomenRiskModel(PythonModel):
    """Calibrated nonconformity probability from a verified guomen model bundle."""

    bundle: ModelBundle | None = None

    def load_context(self, context: Any) -> None:
        """Verify and load the bundle artifact."""
        pinned = (context.model_config or {}).get("bundle_manifest_sha256")
        self.bundle = load_bundle(Path(context.artifacts["bundle"]), pinned)

    # ``pd.DataFrame`` is a hint MLflow derives no schema from (the signature is given
    # explicitly when the model is logged); other hints would make it validate inputs itself.
    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        """Calibrated probability per row of ``model_input`` (feature columns)."""
        if self.bundle is None:
            raise RuntimeError("model context not loaded")
        names = self.bundle.feature_names
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        missing = [c for c in names if c not in frame.columns]
        if missing:
            raise ValueError(f"input lacks feature columns {missing[:5]}")
        X = frame[names].to_numpy(dtype=np.float64, na_value=np.nan)
        return self.bundle.probability(X)


mlflow.models.set_model(GuomenRiskModel())
