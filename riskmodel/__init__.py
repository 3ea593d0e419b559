"""The risk model: what training writes and serving, rescoring and the CLI read.

- the bundle format (``features.bundle``: written next to the feature declarations it carries,
  re-exported here), its verification and loading;
- calibration and the calibrated exact SHAP arithmetic (:mod:`riskmodel.explain`);
- exact TreeSHAP (:mod:`riskmodel.treeshap`);
- the registry's tag contract and the one loader of registered versions
  (:mod:`riskmodel.registry`).

A leaf: it imports ``features`` only, and ``training``, ``serving`` and the CLI import it.
"""

from __future__ import annotations

from features.bundle import (
    BundleVerificationError,
    Calibration,
    ModelBundle,
    load_bundle,
    manifest_digest,
    save_bundle,
    verify_bundle,
)
from riskmodel.explain import Calibrated, Explainer, calibrate, make_explainer
from riskmodel.registry import (
    MANIFEST_TAG,
    LoadedModel,
    ModelRef,
    RegistryError,
    load_model,
    load_ref,
    resolve,
)

__all__ = [
    "MANIFEST_TAG",
    "BundleVerificationError",
    "Calibrated",
    "Calibration",
    "Explainer",
    "LoadedModel",
    "ModelBundle",
    "ModelRef",
    "RegistryError",
    "calibrate",
    "load_bundle",
    "load_model",
    "load_ref",
    "make_explainer",
    "manifest_digest",
    "resolve",
    "save_bundle",
    "verify_bundle",
]
