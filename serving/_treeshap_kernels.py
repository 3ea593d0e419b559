"""Numba kernels for :mod:`serving.treeshap` (exact path-dependent TreeSHAP).

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
) -> int:
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
            np.uint8(missing == MISSING_ZERO) & np.uint8(v0 >= -K_ZERO_THRESHOLD) & np.uint8(v0 <= K_ZERO_THRESHOLD)
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


@njit(cache=True, nogil=True)
def shap_row(
    x: np.ndarray,
    phi: np.ndarray,
    tree_node_off: np.ndarray,
    tree_n_nodes: np.ndarray,
    tree_q: np.ndarray,
    tree_bias: np.ndarray,
    gauss_t: np.ndarray,
    gauss_w: np.ndarray,
    gauss_inv1mt: np.ndarray,
    feat: np.ndarray,
    flags: np.ndarray,
    thr_value: np.ndarray,
    cat_off: np.ndarray,
    cat_n: np.ndarray,
    cat_bits: np.ndarray,
    right: np.ndarray,
    zc: np.ndarray,
    ze: np.ndarray,
    prev_same: np.ndarray,
    rep_off: np.ndarray,
    inv_prev: np.ndarray,
    xs: np.ndarray,
    p: np.ndarray,
    rr: np.ndarray,
    oc: np.ndarray,
) -> None:
    """Add the SHAP values of one row to ``phi`` (length ``F + 1``, last = bias).

    Per tree, a top-down pass forms ``p[j]``, the product of the path factors down to
    internal node ``j`` at the quadrature nodes, and a bottom-up pass forms ``rr[j]``,
    the value-weighted sum of the factor products from ``j`` down to its leaves; the
    contribution of node ``j``'s feature is ``sum_q w_q p[j] (a_l rr[l] + a_r rr[r])``
    with ``a = o - z``. A node whose feature was split earlier on its path replaces that
    earlier factor (``inv_prev`` divides it out) and takes back what the earlier edge
    counted for its subtree, so no subtree is counted twice.

    ``xs``, ``p``, ``rr`` and ``oc`` are caller-owned scratch buffers; local node ``j`` of
    a tree with ``Q`` quadrature nodes uses ``p[j*Q:(j+1)*Q]``.
    """
    nf = x.shape[0]
    for k in range(nf):
        xs[k] = _snap(x[k])
    n_trees = tree_node_off.shape[0]
    for t in range(n_trees):
        phi[nf] += tree_bias[t]
        nn = tree_n_nodes[t]
        if nn == 1:
            continue
        base = tree_node_off[t]
        q = tree_q[t]
        tq = gauss_t[q]
        wq = gauss_w[q]
        inv1mt = gauss_inv1mt[q]
        for r in range(q):
            p[r] = 1.0
        # Top-down (preorder storage: the left child of j is j + 1).
        for j in range(nn):
            gj = base + j
            f = feat[gj]
            if f < 0:
                continue
            gl = _goes_left(xs[f], flags[gj], thr_value[gj], cat_bits, cat_off[gj], cat_n[gj])
            ps = prev_same[gj]
            o_prev = 1 if ps < 0 else oc[ps]
            lc = j + 1
            rc = right[gj]
            oc[lc] = gl & o_prev
            oc[rc] = (1 - gl) & o_prev
            pj = j * q
            for side in range(2):
                c = lc if side == 0 else rc
                gc = base + c
                if feat[gc] < 0:
                    continue  # leaves need no product of their own
                pc = c * q
                z = zc[gc]
                a = np.float64(oc[c]) - z
                if ps < 0:
                    for r in range(q):
                        p[pc + r] = p[pj + r] * (z + tq[r] * a)
                elif o_prev != 0:
                    vo = rep_off[gj]
                    for r in range(q):
                        p[pc + r] = p[pj + r] * (z + tq[r] * a) * inv_prev[vo + r]
                else:
                    # Earlier edge failed: z_prev (1 - t) becomes z (1 - t).
                    m = ze[gc]
                    for r in range(q):
                        p[pc + r] = p[pj + r] * m
        # Bottom-up.
        for j in range(nn - 1, -1, -1):
            gj = base + j
            f = feat[gj]
            pj = j * q
            if f < 0:
                v = thr_value[gj]
                for r in range(q):
                    rr[pj + r] = v
                continue
            lc = j + 1
            rc = right[gj]
            gl = base + lc
            gr = base + rc
            pl = lc * q
            pr = rc * q
            zl = zc[gl]
            zr = zc[gr]
            al = np.float64(oc[lc]) - zl
            ar = np.float64(oc[rc]) - zr
            ps = prev_same[gj]
            acc = 0.0
            if ps < 0:
                for r in range(q):
                    d = al * rr[pl + r] + ar * rr[pr + r]
                    rr[pj + r] = zl * rr[pl + r] + zr * rr[pr + r] + tq[r] * d
                    acc += wq[r] * p[pj + r] * d
            else:
                o_prev = oc[ps] != 0
                zp = zc[base + ps]
                ap = (1.0 if o_prev else 0.0) - zp
                if o_prev:
                    vo = rep_off[gj]
                    for r in range(q):
                        inv = inv_prev[vo + r]
                        rj = ((zl + tq[r] * al) * rr[pl + r] + (zr + tq[r] * ar) * rr[pr + r]) * inv
                        rr[pj + r] = rj
                        d = al * rr[pl + r] + ar * rr[pr + r] - ap * rj
                        acc += wq[r] * p[pj + r] * inv * d
                else:
                    ml = ze[gl]
                    mr = ze[gr]
                    for r in range(q):
                        rr[pj + r] = ml * rr[pl + r] + mr * rr[pr + r]
                    if zp > 0.0:
                        # Both children failed too (a = -z); p[j] has the factor zp (1 - t).
                        for r in range(q):
                            d = al * rr[pl + r] + ar * rr[pr + r] - ap * rr[pj + r]
                            acc += wq[r] * p[pj + r] * inv1mt[r] * d
                        acc /= zp
            phi[f] += acc


@njit(cache=True, nogil=True)
def shap_rows(
    x: np.ndarray,
    out: np.ndarray,
    tree_node_off: np.ndarray,
    tree_n_nodes: np.ndarray,
    tree_q: np.ndarray,
    tree_bias: np.ndarray,
    gauss_t: np.ndarray,
    gauss_w: np.ndarray,
    gauss_inv1mt: np.ndarray,
    feat: np.ndarray,
    flags: np.ndarray,
    thr_value: np.ndarray,
    cat_off: np.ndarray,
    cat_n: np.ndarray,
    cat_bits: np.ndarray,
    right: np.ndarray,
    zc: np.ndarray,
    ze: np.ndarray,
    prev_same: np.ndarray,
    rep_off: np.ndarray,
    inv_prev: np.ndarray,
    max_nodes: int,
    max_q: int,
) -> None:
    """SHAP values for every row of ``x`` into ``out`` (zeroed, shape ``(n, F + 1)``)."""
    xs = np.empty(x.shape[1], dtype=np.float64)
    p = np.empty(max_nodes * max_q, dtype=np.float64)
    rr = np.empty(max_nodes * max_q, dtype=np.float64)
    oc = np.empty(max_nodes, dtype=np.uint8)
    for i in range(x.shape[0]):
        shap_row(
            x[i],
            out[i],
            tree_node_off,
            tree_n_nodes,
            tree_q,
            tree_bias,
            gauss_t,
            gauss_w,
            gauss_inv1mt,
            feat,
            flags,
            thr_value,
            cat_off,
            cat_n,
            cat_bits,
            right,
            zc,
            ze,
            prev_same,
            rep_off,
            inv_prev,
            xs,
            p,
            rr,
            oc,
        )


@njit(cache=True, nogil=True)
def predict_rows(
    x: np.ndarray,
    out: np.ndarray,
    tree_node_off: np.ndarray,
    feat: np.ndarray,
    flags: np.ndarray,
    thr_value: np.ndarray,
    cat_off: np.ndarray,
    cat_n: np.ndarray,
    cat_bits: np.ndarray,
    right: np.ndarray,
) -> None:
    """Raw margin of every row of ``x`` into ``out`` (trees summed in order from 0)."""
    nf = x.shape[1]
    xs = np.empty(nf, dtype=np.float64)
    for i in range(x.shape[0]):
        for k in range(nf):
            xs[k] = _snap(x[i, k])
        total = 0.0
        for t in range(tree_node_off.shape[0]):
            base = tree_node_off[t]
            j = 0
            while feat[base + j] >= 0:
                gj = base + j
                if _goes_left(xs[feat[gj]], flags[gj], thr_value[gj], cat_bits, cat_off[gj], cat_n[gj]):
                    j = j + 1
                else:
                    j = right[gj]
            total += thr_value[base + j]
        out[i] = total
