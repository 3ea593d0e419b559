"""Numba kernels for :mod:`riskmodel.treeshap` (exact path-dependent TreeSHAP).

Method
------
For one tree, the path-dependent SHAP value of feature ``i`` (Lundberg et al. 2018,
Algorithm 2, the one LightGBM's ``pred_contrib`` implements) can be written as a sum over
leaves ``l`` whose root path splits on ``i``::

    phi_i = sum_l v_l * integral_0^1 (o_i - z_i) * prod_{j != i} (z_j + t (o_j - z_j)) dt

where, per unique feature ``j`` on the path, ``z_j`` is the product of the cover fractions
of its edges and ``o_j`` (0 or 1) says whether the row follows all of them. The Shapley
weights ``s! (k-s-1)! / k!`` are the Beta integrals of ``t^s (1-t)^(k-s-1)``, which is what
turns the subset sum into this integral. The integrand is a polynomial of degree
``k - 1`` (``k`` unique features on the path), so Gauss-Legendre quadrature on ``Q =
ceil(k_max / 2)`` nodes integrates it exactly (up to float rounding). Carrying the
per-node products as their values at the ``Q`` nodes makes the whole tree one top-down
pass (products) and one bottom-up pass (sums over leaves), ``O(nodes * Q)`` per row, as in
Linear TreeSHAP (Yu et al. 2022), with every row-independent ratio precomputed.

All kernels are ``nopython``, ``nogil`` and ``cache=True``. They write only into arrays the
caller passes, so concurrent calls from several threads are safe.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

# LightGBM's kZeroThreshold is the float literal 1e-35f, compared as a double.
K_ZERO_THRESHOLD = float(np.float32(1e-35))

KIND_NUMERICAL = 0
KIND_CATEGORICAL = 1
MISSING_NONE = 0
MISSING_ZERO = 1
MISSING_NAN = 2


@njit(cache=True, nogil=True, inline="always")
def _goes_left(
    v: float,
    flags: int,
    threshold: float,
    cat_bits: np.ndarray,
    cat_off: int,
    cat_n: int,
) -> int | np.integer[Any]:
    """LightGBM's ``Tree::Decision`` for one node (1 = left); ``v`` is already zero-snapped.

    ``flags`` packs ``kind | missing_type << 1 | default_left << 3``. The numerical case is
    written with bitwise operators so that it compiles to selects, not branches: the
    outcome is data-dependent and would be mispredicted about half the time.
    """
    if (flags & 1) == KIND_NUMERICAL:
        missing = (flags >> 1) & 3
        default_left = (flags >> 3) & 1
        is_nan = np.uint8(v != v)
        # NaN counts as 0.0 unless the node's missing type is NaN.
        v0 = 0.0 if v != v else v
        as_missing = (np.uint8(missing == MISSING_NAN) & is_nan) | (
            np.uint8(missing == MISSING_ZERO)
            & np.uint8(v0 >= -K_ZERO_THRESHOLD)
            & np.uint8(v0 <= K_ZERO_THRESHOLD)
        )
        le = np.uint8(v0 <= threshold)
        return (as_missing & default_left) | ((1 - as_missing) & le)
    # Categorical: static_cast<int>(v) is INT_MIN on x86 for NaN and out-of-range values,
    # so those, and negative categories, go right.
    if np.isnan(v) or v >= 2147483648.0 or v <= -2147483649.0:
        return 0
    iv = np.int64(v)  # truncation toward zero, like static_cast<int>
    if iv < 0:
        return 0
    word = iv >> 5
    if word >= cat_n:
        return 0
    return np.int64((cat_bits[cat_off + word] >> np.uint32(iv & 31)) & np.uint32(1))


@njit(cache=True, nogil=True, inline="always")
def _snap(v: float) -> float:
    """LightGBM drops dense inputs with ``|v| <= kZeroThreshold`` (they become 0)."""
    if v >= -K_ZERO_THRESHOLD and v <= K_ZERO_THRESHOLD:
        return 0.0
    return v


_FM = {"reassoc", "contract"}  # lets LLVM reorder the short quadrature sums; no NaN/inf assumptions


@njit(cache=True, nogil=True, fastmath=_FM, inline="always")
def _tree(
    t: int,
    q: int,
    xs: np.ndarray,
    phi: np.ndarray,
    tree_int_off: np.ndarray,
    tree_n_int: np.ndarray,
    tree_leaf_off: np.ndarray,
    tree_n_leaf: np.ndarray,
    tree_rep_off: np.ndarray,
    gauss_t: np.ndarray,
    gauss_w: np.ndarray,
    gauss_inv1mt: np.ndarray,
    feat: np.ndarray,
    flags: np.ndarray,
    threshold: np.ndarray,
    cat_off: np.ndarray,
    cat_n: np.ndarray,
    cat_bits: np.ndarray,
    lslot: np.ndarray,
    rslot: np.ndarray,
    zl_arr: np.ndarray,
    zr_arr: np.ndarray,
    zp_arr: np.ndarray,
    prev_same: np.ndarray,
    leaf_value: np.ndarray,
    rep_idx: np.ndarray,
    inv_prev: np.ndarray,
    p: np.ndarray,
    rr: np.ndarray,
    oc: np.ndarray,
) -> None:
    """Add one tree's SHAP values for one row to ``phi``; ``q`` quadrature nodes.

    Slots: internal nodes ``0 .. n_int-1`` in preorder, then the leaves. A top-down pass
    forms ``p[i]``, the product of the path factors down to internal node ``i`` at the
    quadrature nodes; a bottom-up pass forms ``rr[i]``, the value-weighted sum of the
    factor products from ``i`` down to its leaves. Node ``i``'s feature receives
    ``sum_q w_q p[i] (a_l rr[l] + a_r rr[r])`` with ``a = o - z``. A node whose feature was
    split earlier on its path replaces that earlier factor (``inv_prev`` divides it out)
    and takes back what the earlier edge counted for its subtree.
    """
    ib = tree_int_off[t]
    n_int = tree_n_int[t]
    lb = tree_leaf_off[t]
    n_leaf = tree_n_leaf[t]
    rb = tree_rep_off[t]
    # Leaf slots hold the leaf value (the empty product times v).
    for k in range(n_leaf):
        v = leaf_value[lb + k]
        so = (n_int + k) * q
        for r in range(q):
            rr[so + r] = v
    for r in range(q):
        p[r] = 1.0
    for i in range(n_int):
        g = ib + i
        gl = _goes_left(xs[feat[g]], flags[g], threshold[g], cat_bits, cat_off[g], cat_n[g])
        ps = prev_same[g]
        ls = lslot[g]
        rs = rslot[g]
        zl = zl_arr[g]
        zr = zr_arr[g]
        pi = i * q
        pl = ls * q
        pr = rs * q
        if ps < 0:
            oc[ls] = gl
            oc[rs] = 1 - gl
            al = np.float64(gl) - zl
            ar = np.float64(1 - gl) - zr
            for r in range(q):
                tr_ = gauss_t[q, r]
                p[pl + r] = p[pi + r] * (zl + tr_ * al)
                p[pr + r] = p[pi + r] * (zr + tr_ * ar)
        else:
            op = oc[ps]
            oc[ls] = gl & op
            oc[rs] = (1 - gl) & op
            if op != 0:
                al = np.float64(gl) - zl
                ar = np.float64(1 - gl) - zr
                vo = rb + rep_idx[g] * q
                for r in range(q):
                    tr_ = gauss_t[q, r]
                    inv = inv_prev[vo + r]
                    p[pl + r] = p[pi + r] * (zl + tr_ * al) * inv
                    p[pr + r] = p[pi + r] * (zr + tr_ * ar) * inv
            else:
                # Earlier edge failed: z_prev (1 - t) becomes z (1 - t), a constant ratio.
                zp = zp_arr[g]
                ml = zl / zp if zp > 0.0 else 0.0
                mr = zr / zp if zp > 0.0 else 0.0
                for r in range(q):
                    p[pl + r] = p[pi + r] * ml
                    p[pr + r] = p[pi + r] * mr
    for i in range(n_int - 1, -1, -1):
        g = ib + i
        ls = lslot[g]
        rs = rslot[g]
        zl = zl_arr[g]
        zr = zr_arr[g]
        al = np.float64(oc[ls]) - zl
        ar = np.float64(oc[rs]) - zr
        pi = i * q
        pl = ls * q
        pr = rs * q
        ps = prev_same[g]
        acc = 0.0
        if ps < 0:
            for r in range(q):
                d = al * rr[pl + r] + ar * rr[pr + r]
                rr[pi + r] = zl * rr[pl + r] + zr * rr[pr + r] + gauss_t[q, r] * d
                acc += gauss_w[q, r] * p[pi + r] * d
        else:
            op = oc[ps]
            zp = zp_arr[g]
            if op != 0:
                ap = 1.0 - zp
                vo = rb + rep_idx[g] * q
                for r in range(q):
                    tr_ = gauss_t[q, r]
                    inv = inv_prev[vo + r]
                    rj = ((zl + tr_ * al) * rr[pl + r] + (zr + tr_ * ar) * rr[pr + r]) * inv
                    rr[pi + r] = rj
                    d = al * rr[pl + r] + ar * rr[pr + r] - ap * rj
                    acc += gauss_w[q, r] * p[pi + r] * inv * d
            elif zp > 0.0:
                # Children failed too (a = -z); p[i] carries the factor zp (1 - t).
                ml = zl / zp
                mr = zr / zp
                for r in range(q):
                    rj = ml * rr[pl + r] + mr * rr[pr + r]
                    rr[pi + r] = rj
                    d = al * rr[pl + r] + ar * rr[pr + r] + zp * rj
                    acc += gauss_w[q, r] * p[pi + r] * gauss_inv1mt[q, r] * d
                acc /= zp
            else:
                for r in range(q):
                    rr[pi + r] = 0.0
        phi[feat[g]] += acc


@njit(cache=True, nogil=True, fastmath=_FM)
def shap_row(
    x: np.ndarray,
    phi: np.ndarray,
    tree_int_off: np.ndarray,
    tree_n_int: np.ndarray,
    tree_leaf_off: np.ndarray,
    tree_n_leaf: np.ndarray,
    tree_rep_off: np.ndarray,
    tree_q: np.ndarray,
    tree_bias: np.ndarray,
    gauss_t: np.ndarray,
    gauss_w: np.ndarray,
    gauss_inv1mt: np.ndarray,
    feat: np.ndarray,
    flags: np.ndarray,
    threshold: np.ndarray,
    cat_off: np.ndarray,
    cat_n: np.ndarray,
    cat_bits: np.ndarray,
    lslot: np.ndarray,
    rslot: np.ndarray,
    zl_arr: np.ndarray,
    zr_arr: np.ndarray,
    zp_arr: np.ndarray,
    prev_same: np.ndarray,
    leaf_value: np.ndarray,
    rep_idx: np.ndarray,
    inv_prev: np.ndarray,
    xs: np.ndarray,
    p: np.ndarray,
    rr: np.ndarray,
    oc: np.ndarray,
) -> None:
    """Add the SHAP values of one row to ``phi`` (length ``F + 1``, last = bias).

    ``xs``, ``p``, ``rr`` and ``oc`` are caller-owned scratch buffers. Trees whose
    quadrature size is 4, 8, 12 or 16 go through copies of :func:`_tree` compiled for that
    constant (unrolled loops); larger ones through the generic copy.
    """
    nf = x.shape[0]
    for k in range(nf):
        xs[k] = _snap(x[k])
    for t in range(tree_int_off.shape[0]):
        phi[nf] += tree_bias[t]
        if tree_n_int[t] == 0:
            continue
        q = tree_q[t]
        if q == 4:
            _tree(t, 4, xs, phi, tree_int_off, tree_n_int, tree_leaf_off, tree_n_leaf, tree_rep_off, gauss_t,
                  gauss_w, gauss_inv1mt, feat, flags, threshold, cat_off, cat_n, cat_bits, lslot, rslot, zl_arr,
                  zr_arr, zp_arr, prev_same, leaf_value, rep_idx, inv_prev, p, rr, oc)  # fmt: skip
        elif q == 8:
            _tree(t, 8, xs, phi, tree_int_off, tree_n_int, tree_leaf_off, tree_n_leaf, tree_rep_off, gauss_t,
                  gauss_w, gauss_inv1mt, feat, flags, threshold, cat_off, cat_n, cat_bits, lslot, rslot, zl_arr,
                  zr_arr, zp_arr, prev_same, leaf_value, rep_idx, inv_prev, p, rr, oc)  # fmt: skip
        elif q == 12:
            _tree(t, 12, xs, phi, tree_int_off, tree_n_int, tree_leaf_off, tree_n_leaf, tree_rep_off, gauss_t,
                  gauss_w, gauss_inv1mt, feat, flags, threshold, cat_off, cat_n, cat_bits, lslot, rslot, zl_arr,
                  zr_arr, zp_arr, prev_same, leaf_value, rep_idx, inv_prev, p, rr, oc)  # fmt: skip
        else:
            _tree(t, q, xs, phi, tree_int_off, tree_n_int, tree_leaf_off, tree_n_leaf, tree_rep_off, gauss_t,
                  gauss_w, gauss_inv1mt, feat, flags, threshold, cat_off, cat_n, cat_bits, lslot, rslot, zl_arr,
                  zr_arr, zp_arr, prev_same, leaf_value, rep_idx, inv_prev, p, rr, oc)  # fmt: skip


@njit(cache=True, nogil=True)
def shap_rows(
    x: np.ndarray,
    out: np.ndarray,
    tree_int_off: np.ndarray,
    tree_n_int: np.ndarray,
    tree_leaf_off: np.ndarray,
    tree_n_leaf: np.ndarray,
    tree_rep_off: np.ndarray,
    tree_q: np.ndarray,
    tree_bias: np.ndarray,
    gauss_t: np.ndarray,
    gauss_w: np.ndarray,
    gauss_inv1mt: np.ndarray,
    feat: np.ndarray,
    flags: np.ndarray,
    threshold: np.ndarray,
    cat_off: np.ndarray,
    cat_n: np.ndarray,
    cat_bits: np.ndarray,
    lslot: np.ndarray,
    rslot: np.ndarray,
    zl_arr: np.ndarray,
    zr_arr: np.ndarray,
    zp_arr: np.ndarray,
    prev_same: np.ndarray,
    leaf_value: np.ndarray,
    rep_idx: np.ndarray,
    inv_prev: np.ndarray,
    max_slots: int,
    max_q: int,
) -> None:
    """SHAP values for every row of ``x`` into ``out`` (zeroed, shape ``(n, F + 1)``)."""
    xs = np.empty(x.shape[1], dtype=np.float64)
    p = np.empty(max_slots * max_q, dtype=np.float64)
    rr = np.empty(max_slots * max_q, dtype=np.float64)
    oc = np.zeros(max_slots, dtype=np.int64)
    for i in range(x.shape[0]):
        shap_row(x[i], out[i], tree_int_off, tree_n_int, tree_leaf_off, tree_n_leaf, tree_rep_off, tree_q,
                 tree_bias, gauss_t, gauss_w, gauss_inv1mt, feat, flags, threshold, cat_off, cat_n, cat_bits,
                 lslot, rslot, zl_arr, zr_arr, zp_arr, prev_same, leaf_value, rep_idx, inv_prev, xs, p, rr, oc)  # fmt: skip


@njit(cache=True, nogil=True)
def predict_rows(
    x: np.ndarray,
    out: np.ndarray,
    tree_int_off: np.ndarray,
    tree_n_int: np.ndarray,
    tree_leaf_off: np.ndarray,
    feat: np.ndarray,
    flags: np.ndarray,
    threshold: np.ndarray,
    cat_off: np.ndarray,
    cat_n: np.ndarray,
    cat_bits: np.ndarray,
    lslot: np.ndarray,
    rslot: np.ndarray,
    leaf_value: np.ndarray,
) -> None:
    """Raw margin of every row of ``x`` into ``out`` (trees summed in order from 0)."""
    nf = x.shape[1]
    xs = np.empty(nf, dtype=np.float64)
    for i in range(x.shape[0]):
        for k in range(nf):
            xs[k] = _snap(x[i, k])
        total = 0.0
        for t in range(tree_int_off.shape[0]):
            ib = tree_int_off[t]
            n_int = tree_n_int[t]
            slot = 0
            while slot < n_int:
                g = ib + slot
                if _goes_left(xs[feat[g]], flags[g], threshold[g], cat_bits, cat_off[g], cat_n[g]):
                    slot = lslot[g]
                else:
                    slot = rslot[g]
            total += leaf_value[tree_leaf_off[t] + slot - n_int]
        out[i] = total
