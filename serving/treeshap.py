"""Fast exact TreeSHAP for LightGBM boosters.

:class:`TreeShap` gives the same numbers as ``booster.predict(X, pred_contrib=True)``
(path-dependent TreeSHAP, cover from ``internal_count``/``leaf_count``) to within float
rounding, but per row it costs ``O(nodes * ceil(depth / 2))`` per tree instead of
LightGBM's ``O(leaves * depth^2)`` recursion. See :mod:`serving._treeshap_kernels` for the
method (Gauss-Legendre quadrature of the Shapley integral, Linear-TreeSHAP style passes).

Only single-output models (``num_class == 1``, e.g. ``binary``) with ordinary
(non-linear) trees and summed (non-``rf``) outputs are supported; anything else is refused
with a :class:`ValueError` rather than answered differently from LightGBM.

Inputs follow LightGBM's dense-array semantics: a float64 (or castable) matrix in the
booster's feature order, categorical features as their integer codes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import lightgbm
import numpy as np

from serving import _treeshap_kernels as _k

_MISSING = {"None": _k.MISSING_NONE, "Zero": _k.MISSING_ZERO, "NaN": _k.MISSING_NAN}


@dataclass(frozen=True)
class _Arrays:
    """Flattened, read-only model tables consumed by the numba kernels."""

    tree_node_off: np.ndarray
    tree_n_nodes: np.ndarray
    tree_q: np.ndarray
    tree_bias: np.ndarray
    gauss_t: np.ndarray
    gauss_w: np.ndarray
    gauss_inv1mt: np.ndarray
    feat: np.ndarray
    flags: np.ndarray
    thr_value: np.ndarray
    cat_off: np.ndarray
    cat_n: np.ndarray
    cat_bits: np.ndarray
    right: np.ndarray
    zc: np.ndarray
    ze: np.ndarray
    prev_same: np.ndarray
    rep_off: np.ndarray
    inv_prev: np.ndarray
    max_nodes: int
    max_q: int

    def kernel_args(self) -> tuple[Any, ...]:
        """The model tables in the order the kernels take them."""
        return (
            self.tree_node_off,
            self.tree_n_nodes,
            self.tree_q,
            self.tree_bias,
            self.gauss_t,
            self.gauss_w,
            self.gauss_inv1mt,
            self.feat,
            self.flags,
            self.thr_value,
            self.cat_off,
            self.cat_n,
            self.cat_bits,
            self.right,
            self.zc,
            self.ze,
            self.prev_same,
            self.rep_off,
            self.inv_prev,
        )


def _gauss_tables(max_q: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gauss-Legendre rules on [0, 1] for every ``Q`` up to ``max_q``.

    Row ``q`` of each table holds the ``q`` nodes ``t``, weights ``w`` and ``1 / (1 - t)``
    (zero padded). A ``Q``-point rule integrates polynomials of degree ``2Q - 1`` exactly.
    """
    shape = (max_q + 1, max(max_q, 1))
    t_tab = np.zeros(shape, dtype=np.float64)
    w_tab = np.zeros(shape, dtype=np.float64)
    inv_tab = np.zeros(shape, dtype=np.float64)
    for q in range(1, max_q + 1):
        x, w = np.polynomial.legendre.leggauss(q)
        t = (x + 1.0) / 2.0
        t_tab[q, :q] = t
        w_tab[q, :q] = w / 2.0
        inv_tab[q, :q] = 1.0 / (1.0 - t)
    return t_tab, w_tab, inv_tab


@dataclass
class _Tree:
    """One parsed tree in preorder, local node indices."""

    feat: list[int]
    kind: list[int]
    missing: list[int]
    default_left: list[bool]
    threshold: list[float]
    cats: list[list[int]]
    left: list[int]
    right: list[int]
    value: list[float]
    count: list[float]
    leaf_index: list[int]


def _parse_tree(root: dict[str, Any]) -> _Tree:
    tr = _Tree([], [], [], [], [], [], [], [], [], [], [])
    # Iterative preorder: (node dict, local index of the parent, is-left flag).
    stack: list[tuple[dict[str, Any], int, bool]] = [(root, -1, False)]
    while stack:
        node, parent, is_left = stack.pop()
        j = len(tr.feat)
        if parent >= 0:
            if is_left:
                tr.left[parent] = j
            else:
                tr.right[parent] = j
        tr.left.append(-1)
        tr.right.append(-1)
        if "split_feature" in node:
            tr.feat.append(int(node["split_feature"]))
            dt = node["decision_type"]
            if dt == "<=":
                tr.kind.append(_k.KIND_NUMERICAL)
                tr.threshold.append(float(node["threshold"]))
                tr.cats.append([])
            elif dt == "==":
                tr.kind.append(_k.KIND_CATEGORICAL)
                tr.threshold.append(0.0)
                tr.cats.append([int(c) for c in str(node["threshold"]).split("||")])
            else:
                raise ValueError(f"unsupported decision_type {dt!r}")
            mt = node.get("missing_type", "None")
            if mt not in _MISSING:
                raise ValueError(f"unsupported missing_type {mt!r}")
            tr.missing.append(_MISSING[mt])
            tr.default_left.append(bool(node.get("default_left", False)))
            tr.value.append(0.0)
            tr.count.append(float(node["internal_count"]))
            tr.leaf_index.append(-1)
            # Right pushed first so the left subtree is numbered first (preorder).
            stack.append((node["right_child"], j, False))
            stack.append((node["left_child"], j, True))
        else:
            tr.feat.append(-1)
            tr.kind.append(_k.KIND_NUMERICAL)
            tr.threshold.append(0.0)
            tr.cats.append([])
            tr.missing.append(_k.MISSING_NONE)
            tr.default_left.append(False)
            tr.value.append(float(node["leaf_value"]))
            tr.count.append(float(node.get("leaf_count", 0)))
            tr.leaf_index.append(int(node.get("leaf_index", 0)))
    return tr


def _bitset(cats: list[int]) -> list[int]:
    """LightGBM's uint32 category bitset for a list of non-negative categories."""
    words = [0] * (max(cats) // 32 + 1)
    for c in cats:
        words[c // 32] |= 1 << (c % 32)
    return words


class TreeShap:
    """Exact path-dependent TreeSHAP for a single-output LightGBM booster.

    Build with :meth:`from_booster`. The object is immutable after construction and its
    methods allocate their scratch space per call, so one instance may be shared by many
    threads.
    """

    def __init__(self, arrays: _Arrays, num_features: int, expected_value: float) -> None:
        self._a = arrays
        self._num_features = num_features
        self._expected_value = expected_value

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_booster(cls, booster: lightgbm.Booster, num_iteration: int | None = None) -> TreeShap:
        """Parse ``booster.dump_model(num_iteration)`` into flattened tables.

        Parameters
        ----------
        booster
            A trained or loaded LightGBM booster with one output per row.
        num_iteration
            Passed to ``dump_model``; ``None`` uses the booster's default (best iteration
            if it has one), like ``booster.predict``.

        Raises
        ------
        ValueError
            For multiclass/multi-output models, linear trees, ``rf`` averaging, or split
            types this implementation does not know.
        """
        model = booster.dump_model(num_iteration=num_iteration)
        return cls.from_dump(model)

    @classmethod
    def from_dump(cls, model: dict[str, Any]) -> TreeShap:
        """Build from the dict returned by ``Booster.dump_model()``."""
        if int(model.get("num_class", 1)) != 1 or int(model.get("num_tree_per_iteration", 1)) != 1:
            raise ValueError("TreeShap supports single-output models only (num_class == 1)")
        if model.get("average_output", False):
            raise ValueError("TreeShap does not support averaged outputs (boosting='rf')")
        num_features = int(model["max_feature_idx"]) + 1
        trees = []
        for info in model["tree_info"]:
            if info.get("is_linear", False):
                raise ValueError("TreeShap does not support linear trees (linear_tree=True)")
            trees.append(_parse_tree(info["tree_structure"]))
        return cls._from_trees(trees, num_features)

    @classmethod
    def _from_trees(cls, trees: list[_Tree], num_features: int) -> TreeShap:
        n_trees = len(trees)
        tree_node_off = np.zeros(n_trees, dtype=np.int64)
        tree_n_nodes = np.zeros(n_trees, dtype=np.int64)
        tree_q = np.zeros(n_trees, dtype=np.int64)
        tree_bias = np.zeros(n_trees, dtype=np.float64)
        cols: dict[str, list[Any]] = {
            k: [] for k in ("feat", "flags", "thr_value", "cat_off", "cat_n", "right", "zc", "ze", "prev", "rep")
        }
        cat_bits: list[int] = []
        structs = []
        max_q = 1
        # Pass 1: cover fractions, same-feature links and the quadrature size per tree.
        for tr in trees:
            n = len(tr.feat)
            zc = [1.0] * n  # combined zero fraction of the feature on the edge into node
            ze = [1.0] * n  # this edge's own fraction, count(child) / count(parent)
            prev = [-1] * n  # per internal node: child of the nearest ancestor edge on its feature
            kmax = 0
            stack: list[tuple[int, dict[int, int]]] = [(0, {})]
            while stack:
                j, seen = stack.pop()
                if tr.feat[j] < 0:
                    kmax = max(kmax, len(seen))
                    continue
                f = tr.feat[j]
                last = seen.get(f, -1)
                prev[j] = last
                zp = zc[last] if last >= 0 else 1.0
                for c in (tr.left[j], tr.right[j]):
                    if tr.left[j] != j + 1:
                        raise AssertionError("tree not in preorder")
                    # Same expression order as LightGBM: (count_c / count_j) * incoming_z.
                    ze[c] = tr.count[c] / tr.count[j]
                    zc[c] = ze[c] * zp
                    child_seen = dict(seen)
                    child_seen[f] = c
                    stack.append((c, child_seen))
            q = max(1, math.ceil(kmax / 2))
            max_q = max(max_q, q)
            structs.append((zc, ze, prev, q))

        gauss_t, gauss_w, gauss_inv1mt = _gauss_tables(max_q)
        inv_parts: list[np.ndarray] = []
        node_off = 0
        rep_total = 0
        for ti, (tr, (zc, ze, prev, q)) in enumerate(zip(trees, structs, strict=True)):
            n = len(tr.feat)
            tree_node_off[ti] = node_off
            tree_n_nodes[ti] = n
            tree_q[ti] = q
            node_off += n
            # LightGBM's Tree::ExpectedValue: leaf order, (count / root count) * value.
            if n == 1:
                tree_bias[ti] = tr.value[0]
            else:
                total = tr.count[0]
                ev = 0.0
                for _, j in sorted((tr.leaf_index[j], j) for j in range(n) if tr.feat[j] < 0):
                    ev += (tr.count[j] / total) * tr.value[j]
                tree_bias[ti] = ev
            t = gauss_t[q, :q]
            for j in range(n):
                cols["feat"].append(tr.feat[j])
                cols["flags"].append(tr.kind[j] | (tr.missing[j] << 1) | (int(tr.default_left[j]) << 3))
                cols["thr_value"].append(tr.threshold[j] if tr.feat[j] >= 0 else tr.value[j])
                if tr.cats[j]:
                    if min(tr.cats[j]) < 0:
                        raise ValueError("negative category in a categorical split")
                    bits = _bitset(tr.cats[j])
                    cols["cat_off"].append(len(cat_bits))
                    cols["cat_n"].append(len(bits))
                    cat_bits.extend(bits)
                else:
                    cols["cat_off"].append(0)
                    cols["cat_n"].append(0)
                cols["right"].append(tr.right[j])
                cols["zc"].append(zc[j])
                cols["ze"].append(ze[j])
                cols["prev"].append(prev[j])
                if prev[j] >= 0:
                    # 1 / (earlier factor with o = 1) at the quadrature nodes, to divide it out.
                    zp = zc[prev[j]]
                    inv_parts.append(1.0 / (zp + t * (1.0 - zp)))
                    cols["rep"].append(rep_total)
                    rep_total += q
                else:
                    cols["rep"].append(-1)

        arrays = _Arrays(
            tree_node_off=tree_node_off,
            tree_n_nodes=tree_n_nodes,
            tree_q=tree_q,
            tree_bias=tree_bias,
            gauss_t=gauss_t,
            gauss_w=gauss_w,
            gauss_inv1mt=gauss_inv1mt,
            feat=np.asarray(cols["feat"], dtype=np.int32),
            flags=np.asarray(cols["flags"], dtype=np.uint8),
            thr_value=np.asarray(cols["thr_value"], dtype=np.float64),
            cat_off=np.asarray(cols["cat_off"], dtype=np.int32),
            cat_n=np.asarray(cols["cat_n"], dtype=np.int32),
            cat_bits=np.asarray(cat_bits if cat_bits else [0], dtype=np.uint32),
            right=np.asarray(cols["right"], dtype=np.int32),
            zc=np.asarray(cols["zc"], dtype=np.float64),
            ze=np.asarray(cols["ze"], dtype=np.float64),
            prev_same=np.asarray(cols["prev"], dtype=np.int32),
            rep_off=np.asarray(cols["rep"], dtype=np.int32),
            inv_prev=np.concatenate(inv_parts) if inv_parts else np.zeros(1),
            max_nodes=int(tree_n_nodes.max()) if n_trees else 1,
            max_q=max_q,
        )
        for arr in arrays.__dict__.values():
            if isinstance(arr, np.ndarray):
                arr.setflags(write=False)
        return cls(arrays, num_features, float(tree_bias.sum()))

    # ------------------------------------------------------------------ properties
    @property
    def num_features(self) -> int:
        """Number of input columns (``max_feature_idx + 1``)."""
        return self._num_features

    @property
    def num_trees(self) -> int:
        """Number of trees used."""
        return int(self._a.tree_node_off.shape[0])

    @property
    def expected_value(self) -> float:
        """Sum of the trees' cover-weighted mean outputs (the bias column), raw margin."""
        return self._expected_value

    # ------------------------------------------------------------------ computation
    def _check(self, X: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self._num_features:
            raise ValueError(f"expected a 2-D array with {self._num_features} columns, got shape {X.shape}")
        return X

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """SHAP values like ``booster.predict(X, pred_contrib=True)``.

        Parameters
        ----------
        X
            Array of shape ``(n, num_features)``; NaN marks a missing value.

        Returns
        -------
        numpy.ndarray
            Shape ``(n, num_features + 1)``, float64; the last column is the expected value
            (raw margin), and each row sums to the raw margin.
        """
        X = self._check(X)
        out = np.zeros((X.shape[0], self._num_features + 1), dtype=np.float64)
        a = self._a
        _k.shap_rows(X, out, *a.kernel_args(), a.max_nodes, a.max_q)
        return out

    def contributions_row(self, x: np.ndarray) -> np.ndarray:
        """SHAP values of one row (1-D, length ``num_features``); returns length ``F + 1``."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 1:
            raise ValueError(f"expected a 1-D row, got shape {x.shape}")
        return self.contributions(x.reshape(1, -1))[0]

    def predict_margin(self, X: np.ndarray) -> np.ndarray:
        """Raw margin, like ``booster.predict(X, raw_score=True)``; shape ``(n,)``."""
        X = self._check(X)
        out = np.empty(X.shape[0], dtype=np.float64)
        a = self._a
        _k.predict_rows(
            X, out, a.tree_node_off, a.feat, a.flags, a.thr_value, a.cat_off, a.cat_n, a.cat_bits, a.right
        )
        return out

    def warm_up(self) -> None:
        """Run every kernel once so the first real request pays no compile/load cost."""
        x = np.zeros((1, self._num_features), dtype=np.float64)
        self.contributions(x)
        self.predict_margin(x)
