"""Fast exact TreeSHAP for LightGBM boosters.

:class:`TreeShap` gives the same numbers as ``booster.predict(X, pred_contrib=True)``
(path-dependent TreeSHAP, cover from ``internal_count``/``leaf_count``) to within float
rounding, but per row it costs ``O(nodes * ceil(depth / 2))`` per tree instead of
LightGBM's ``O(leaves * depth^2)`` recursion. See :mod:`riskmodel._treeshap_kernels` for the
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

from riskmodel import _treeshap_kernels as _k

_MISSING = {"None": _k.MISSING_NONE, "Zero": _k.MISSING_ZERO, "NaN": _k.MISSING_NAN}


@dataclass(frozen=True)
class _Arrays:
    """Flattened, read-only model tables consumed by the numba kernels.

    Per tree, slots ``0 .. n_int-1`` are the internal nodes in preorder and slots
    ``n_int ..`` the leaves; per-internal-node arrays are indexed ``tree_int_off[t] + slot``.
    """

    tree_int_off: np.ndarray
    tree_n_int: np.ndarray
    tree_leaf_off: np.ndarray
    tree_n_leaf: np.ndarray
    tree_rep_off: np.ndarray
    tree_q: np.ndarray
    tree_bias: np.ndarray
    gauss_t: np.ndarray
    gauss_w: np.ndarray
    gauss_inv1mt: np.ndarray
    feat: np.ndarray
    flags: np.ndarray
    threshold: np.ndarray
    cat_off: np.ndarray
    cat_n: np.ndarray
    cat_bits: np.ndarray
    lslot: np.ndarray
    rslot: np.ndarray
    zl_arr: np.ndarray
    zr_arr: np.ndarray
    zp_arr: np.ndarray
    prev_same: np.ndarray
    leaf_value: np.ndarray
    rep_idx: np.ndarray
    inv_prev: np.ndarray
    max_slots: int
    max_q: int

    def kernel_args(self) -> tuple[Any, ...]:
        """The model tables in the order the kernels take them."""
        return (
            self.tree_int_off,
            self.tree_n_int,
            self.tree_leaf_off,
            self.tree_n_leaf,
            self.tree_rep_off,
            self.tree_q,
            self.tree_bias,
            self.gauss_t,
            self.gauss_w,
            self.gauss_inv1mt,
            self.feat,
            self.flags,
            self.threshold,
            self.cat_off,
            self.cat_n,
            self.cat_bits,
            self.lslot,
            self.rslot,
            self.zl_arr,
            self.zr_arr,
            self.zp_arr,
            self.prev_same,
            self.leaf_value,
            self.rep_idx,
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
            if node.get("leaf_coeff"):
                raise ValueError("TreeShap does not support linear trees (linear_tree=True)")
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
    def from_dump(cls, model: dict[str, Any], *, min_quadrature: int = 0) -> TreeShap:
        """Build from the dict returned by ``Booster.dump_model()``.

        ``min_quadrature`` forces at least that many Gauss nodes per tree (more nodes stay
        exact); it exists so tests can drive every kernel variant with small models.
        """
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
        return cls._from_trees(trees, num_features, min_quadrature)

    @classmethod
    def _from_trees(
        cls, trees: list[_Tree], num_features: int, min_quadrature: int = 0
    ) -> TreeShap:
        n_trees = len(trees)
        per_tree = {
            k: np.zeros(n_trees, dtype=np.int64)
            for k in ("int_off", "n_int", "leaf_off", "n_leaf", "rep_off", "q")
        }
        tree_bias = np.zeros(n_trees, dtype=np.float64)
        cols: dict[str, list[Any]] = {
            k: []
            for k in (
                "feat",
                "flags",
                "threshold",
                "cat_off",
                "cat_n",
                "lslot",
                "rslot",
                "zl",
                "zr",
                "zp",
                "prev",
                "rep",
            )
        }
        leaf_values: list[float] = []
        cat_bits: list[int] = []
        inv_parts: list[np.ndarray] = []
        parsed = [_structure(tr, min_quadrature) for tr in trees]
        max_q = max([st.q for st in parsed], default=1)
        gauss_t, gauss_w, gauss_inv1mt = _gauss_tables(max_q)
        int_off = leaf_off = rep_off = 0
        for ti, (tr, st) in enumerate(zip(trees, parsed, strict=True)):
            q = st.q
            n_int = len(st.internal)
            per_tree["int_off"][ti] = int_off
            per_tree["n_int"][ti] = n_int
            per_tree["leaf_off"][ti] = leaf_off
            per_tree["n_leaf"][ti] = len(st.leaves)
            per_tree["rep_off"][ti] = rep_off
            per_tree["q"][ti] = q
            int_off += n_int
            leaf_off += len(st.leaves)
            tree_bias[ti] = st.bias
            t = gauss_t[q, :q]
            n_rep = 0
            for j in st.internal:
                cols["feat"].append(tr.feat[j])
                cols["flags"].append(
                    tr.kind[j] | (tr.missing[j] << 1) | (int(tr.default_left[j]) << 3)
                )
                cols["threshold"].append(tr.threshold[j])
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
                lc, rc = tr.left[j], tr.right[j]
                cols["lslot"].append(st.slot[lc])
                cols["rslot"].append(st.slot[rc])
                cols["zl"].append(st.zc[lc])
                cols["zr"].append(st.zc[rc])
                pv = st.prev[j]
                if pv >= 0:
                    zp = st.zc[pv]
                    cols["prev"].append(st.slot[pv])
                    cols["zp"].append(zp)
                    cols["rep"].append(n_rep)
                    # 1 / (the earlier factor with o = 1) at the quadrature nodes, to divide it out.
                    inv_parts.append(1.0 / (zp + t * (1.0 - zp)))
                    n_rep += 1
                else:
                    cols["prev"].append(-1)
                    cols["zp"].append(1.0)
                    cols["rep"].append(-1)
            rep_off += n_rep * q
            leaf_values.extend(tr.value[j] for j in st.leaves)

        i64 = np.int64
        arrays = _Arrays(
            tree_int_off=per_tree["int_off"],
            tree_n_int=per_tree["n_int"],
            tree_leaf_off=per_tree["leaf_off"],
            tree_n_leaf=per_tree["n_leaf"],
            tree_rep_off=per_tree["rep_off"],
            tree_q=per_tree["q"],
            tree_bias=tree_bias,
            gauss_t=gauss_t,
            gauss_w=gauss_w,
            gauss_inv1mt=gauss_inv1mt,
            feat=np.asarray(cols["feat"], dtype=i64),
            flags=np.asarray(cols["flags"], dtype=i64),
            threshold=np.asarray(cols["threshold"], dtype=np.float64),
            cat_off=np.asarray(cols["cat_off"], dtype=i64),
            cat_n=np.asarray(cols["cat_n"], dtype=i64),
            cat_bits=np.asarray(cat_bits if cat_bits else [0], dtype=np.uint32),
            lslot=np.asarray(cols["lslot"], dtype=i64),
            rslot=np.asarray(cols["rslot"], dtype=i64),
            zl_arr=np.asarray(cols["zl"], dtype=np.float64),
            zr_arr=np.asarray(cols["zr"], dtype=np.float64),
            zp_arr=np.asarray(cols["zp"], dtype=np.float64),
            prev_same=np.asarray(cols["prev"], dtype=i64),
            leaf_value=np.asarray(leaf_values, dtype=np.float64),
            rep_idx=np.asarray(cols["rep"], dtype=i64),
            inv_prev=np.concatenate(inv_parts) if inv_parts else np.zeros(1),
            max_slots=max([len(tr.feat) for tr in trees], default=1),
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
        return int(self._a.tree_int_off.shape[0])

    @property
    def expected_value(self) -> float:
        """Sum of the trees' cover-weighted mean outputs (the bias column), raw margin."""
        return self._expected_value

    # ------------------------------------------------------------------ computation
    def _check(self, X: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self._num_features:
            raise ValueError(
                f"expected a 2-D array with {self._num_features} columns, got shape {X.shape}"
            )
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
        _k.shap_rows(X, out, *a.kernel_args(), a.max_slots, a.max_q)  # type: ignore[call-arg]
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
            X,
            out,
            a.tree_int_off,
            a.tree_n_int,
            a.tree_leaf_off,
            a.feat,
            a.flags,
            a.threshold,
            a.cat_off,
            a.cat_n,
            a.cat_bits,
            a.lslot,
            a.rslot,
            a.leaf_value,
        )
        return out

    def warm_up(self) -> None:
        """Run every kernel once so the first real request pays no compile/load cost."""
        x = np.zeros((1, self._num_features), dtype=np.float64)
        self.contributions(x)
        self.predict_margin(x)


@dataclass
class _Structure:
    """Row-independent facts about one tree."""

    internal: list[int]  # node ids of internal nodes, preorder
    leaves: list[int]  # node ids of leaves, preorder
    slot: list[int]  # node id -> slot (internal first, then leaves)
    zc: list[float]  # node id -> combined zero fraction of its feature on the edge into it
    prev: list[int]  # internal node id -> child of the nearest ancestor edge on its feature, or -1
    q: int  # quadrature size
    bias: float  # LightGBM's Tree::ExpectedValue


def _structure(tr: _Tree, min_quadrature: int = 0) -> _Structure:
    n = len(tr.feat)
    internal = [j for j in range(n) if tr.feat[j] >= 0]
    leaves = [j for j in range(n) if tr.feat[j] < 0]
    slot = [0] * n
    for s_, j in enumerate(internal + leaves):
        slot[j] = s_
    zc = [1.0] * n
    prev = [-1] * n
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
            # Same expression order as LightGBM: (count_c / count_j) * incoming_z.
            zc[c] = (tr.count[c] / tr.count[j]) * zp
            child_seen = dict(seen)
            child_seen[f] = c
            stack.append((c, child_seen))
    # ceil(k / 2) Gauss nodes integrate the degree k - 1 integrand exactly; round up to a
    # multiple of 4 (still exact) so most trees use an unrolled kernel copy.
    q = max(4, 4 * math.ceil(math.ceil(kmax / 2) / 4)) if kmax > 0 else 1
    if kmax > 0 and min_quadrature > q:
        q = min_quadrature
    if n == 1:
        bias = tr.value[0]
    else:
        # LightGBM's Tree::ExpectedValue: leaf-index order, (count / root count) * value.
        bias = 0.0
        for _, j in sorted((tr.leaf_index[j], j) for j in leaves):
            bias += (tr.count[j] / tr.count[0]) * tr.value[j]
    return _Structure(internal, leaves, slot, zc, prev, q, bias)
