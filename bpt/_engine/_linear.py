"""Leaves linear in x for the BPT (docs/concepts.md, "Linear leaves"; docs/math.md sec. 2).

After a tree is grown, each leaf's constant Delta gains a part linear in the features
the tree split on along the path to the leaf (at most ``MAX_LINEAR_FEATURES``),
fitted by moment matching: with the current boosting weights, lambda_k the weight sum
of sample k in the leaf, mu_k the weighted mean of those features, Sigma_0 the
nominal's weighted covariance there,

    b_k = Sigma_0^-1 (mu_k - mu_0)       (the slope of an exponential tilt with that
                                          mean shift; exact for a Gaussian)
    c_k = log(lambda_k / lambda_0) - b_k^T Sigma_0 b_k / 2

and H the leaf map of the loss (``BPTLoss.H``), the leaf becomes

    Delta(x) = alpha [H c + H B (x - mu_0)] + (1 - alpha) Delta_closed

(``alpha`` = ``linear_leaves``; rows of B are the b_k).  A leaf keeps a constant Delta
when its nominal covariance is not positive definite (too few distinct values,
negative weights), when a weight sum is not positive, when one of its features has
a missing value among the leaf's events, when a sample's mean or the nominal's
variance is one that positive weights on the leaf's range cannot give (negative
weights), or when the fitted tilt of some base point would change the log ratio by
more than ``MAX_LOG_RATIO_CHANGE`` across the leaf's range (``MAX_LOG_RATIO_CHANGE_NEG``
in a leaf with negative weights).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._predictor import linear_offset

__all__ = ["MAX_LINEAR_FEATURES", "fit_linear_bpt", "solve_linear_bpt", "leaf_moments",
           "combine_moments", "add_linear_log_ratio", "constant_leaves", "reference_values",
           "reference_rows"]

# features of one linear leaf, the first ones split on from the root
MAX_LINEAR_FEATURES = 4
# a leaf's nominal covariance counts as singular below this relative eigenvalue
_EIG_FLOOR = 1e-9
# largest |b_k . (x - mu_0)| over a leaf's range (any base point k) for a linear leaf:
# with positive weights only a guard against overflowing boosting weights (a factor
# e^20 inside one leaf); with negative weights, whose moments can be far from any
# distribution's, a factor e^2 (a cap of 2 everywhere costs 10% accuracy on the
# independent-sample toy: the far tails have large tilts)
MAX_LOG_RATIO_CHANGE = 20.0
MAX_LOG_RATIO_CHANGE_NEG = 2.0


def reference_rows(n, size=1024):
    """Up to ``size`` evenly spaced rows of n (the sample of :func:`reference_values`)."""
    return np.arange(0, n, max(1, n // size), dtype=np.int64)


def reference_values(sample):
    """Per feature, from a sample of training rows: a scale (the largest absolute value;
    1 where it is 0 or all are NaN) and the median divided by it.  The linear leaves'
    moments are sums of x / scale - ref (order 1 even for features near 1e308 or
    1e-300; no cancellation for features far from 0)."""
    sample = np.asarray(sample, dtype=np.float64)
    F = sample.shape[1]
    scale = np.ones(F)
    ref = np.zeros(F)
    for f in range(F):
        col = sample[:, f]
        col = col[np.isfinite(col)]
        if col.size and np.max(np.abs(col)) > 0:
            scale[f] = np.max(np.abs(col))
            ref[f] = np.median(col / scale[f])
    return scale, ref


def path_features(feature, left, right, max_features=MAX_LINEAR_FEATURES):
    """Leaves of a tree (ids in node order) and, per leaf, the distinct features split
    on along its path from the root (root first; at most ``max_features``, padded with
    -1): (leaf ids (L,), features (L, max_features)) int64."""
    m = feature.shape[0]
    parent = np.full(m, -1, dtype=np.int64)
    internal = np.flatnonzero(left >= 0)
    parent[left[internal]] = internal
    parent[right[internal]] = internal
    leaves = np.flatnonzero(left < 0).astype(np.int64)
    feats = np.full((leaves.shape[0], max_features), -1, dtype=np.int64)
    for r, j in enumerate(leaves):
        path = []
        q = parent[j]
        while q >= 0:
            path.append(int(feature[q]))
            q = parent[q]
        seen = []
        for f in reversed(path):
            if f not in seen:
                seen.append(f)
        seen = seen[:max_features]
        feats[r, :len(seen)] = seen
    return leaves, feats


# rows per chunk of the moment sums: partial sums over fixed chunks, added in chunk order
# (the same result on any number of threads)
_CHUNK = 1 << 16


@njit(cache=True, no_cpython_wrapper=True, no_cfunc_wrapper=True)
def _moments_chunk(X, xrows, cls, w, leaf_of, feats, scale, ref, i0, i1, s, m1, m2, lo, hi,
                   n_nan, n_neg):
    """Rows i0..i1-1 of :func:`leaf_moments`, added to the given arrays in row order."""
    D = feats.shape[1]
    x = np.empty(D)
    for i in range(i0, i1):
        lf = leaf_of[i]
        k = cls[i]
        wi = w[i]
        r = xrows[i]
        s[lf, k] += wi
        if wi < 0.0:
            n_neg[lf] += 1
        ok = True
        nd = 0
        for d in range(D):
            f = feats[lf, d]
            if f < 0:
                break
            v = np.float64(X[r, f])
            if v != v:
                n_nan[lf, d] += 1
                ok = False
                continue
            if v < lo[lf, d]:
                lo[lf, d] = v
            if v > hi[lf, d]:
                hi[lf, d] = v
            x[d] = v / scale[f] - ref[f]
            nd += 1
        if not ok:
            continue
        for d in range(nd):
            m1[lf, k, d] += wi * x[d]
        if k == 0:
            for d in range(nd):
                for e in range(d + 1):
                    m2[lf, d, e] += wi * x[d] * x[e]


@njit(parallel=True, cache=True)
def _leaf_moments_chunks(X, xrows, cls, w, leaf_of, feats, scale, ref, s, m1, m2, lo, hi,
                         n_nan, n_neg):
    """Chunk c of :func:`leaf_moments` into the arrays' slot c (in parallel)."""
    N = leaf_of.shape[0]
    for c in prange(s.shape[0]):
        i1 = min((c + 1) * _CHUNK, N)
        _moments_chunk(X, xrows, cls, w, leaf_of, feats, scale, ref, c * _CHUNK, i1, s[c],
                       m1[c], m2[c], lo[c], hi[c], n_nan[c], n_neg[c])


def leaf_moments(X, xrows, cls, w, leaf_of, feats, scale, ref, n_classes):
    """Per leaf (rows of ``feats``): weight sums per class (L, C), weighted first moments
    of the leaf's features per class (L, C, D) and the nominal's second moments
    (L, D, D, lower triangle), of x / scale - ref (per feature); the features' range
    (L, D) x 2, the number of missing values (L, D) and of negative weights (L,).  Row i
    is X[xrows[i]] (the training rows of X), in leaf ``leaf_of[i]``; summed over fixed
    chunks of rows in chunk order (the same on any number of threads)."""
    L, D = feats.shape
    n_chunks = max(1, -(-leaf_of.shape[0] // _CHUNK))
    s = np.zeros((n_chunks, L, n_classes))
    m1 = np.zeros((n_chunks, L, n_classes, D))
    m2 = np.zeros((n_chunks, L, D, D))
    lo = np.full((n_chunks, L, D), np.inf)
    hi = np.full((n_chunks, L, D), -np.inf)
    n_nan = np.zeros((n_chunks, L, D), dtype=np.int64)
    n_neg = np.zeros((n_chunks, L), dtype=np.int64)
    _leaf_moments_chunks(X, np.asarray(xrows, dtype=np.int64), cls, w, leaf_of, feats,
                         scale, ref, s, m1, m2, lo, hi, n_nan, n_neg)
    out = [s[0], m1[0], m2[0], lo[0], hi[0], n_nan[0], n_neg[0]]
    for c in range(1, n_chunks):               # in chunk order
        out[0] = out[0] + s[c]
        out[1] = out[1] + m1[c]
        out[2] = out[2] + m2[c]
        out[3] = np.minimum(out[3], lo[c])
        out[4] = np.maximum(out[4], hi[c])
        out[5] = out[5] + n_nan[c]
        out[6] = out[6] + n_neg[c]
    return tuple(out)


def fit_linear_bpt(X, xrows, cls, w, leaf_of, tree, H, V, alpha, scale, ref):
    """Linear leaves of a grown BPT tree (module docstring), in place: see
    :func:`solve_linear_bpt`; the moments from the training rows (``leaf_of``: the leaf
    index of every training row, ``w`` the current boosting weights)."""
    leaves, feats = path_features(tree.feature, tree.left, tree.right)
    moments = leaf_moments(X, xrows, cls, w, leaf_of, feats, scale, ref, V.shape[0] + 1)
    return solve_linear_bpt(tree, feats, moments, H, V, alpha, scale, ref)


def combine_moments(parts):
    """:func:`leaf_moments` of several row sets (dask shards) combined, in order."""
    s, m1, m2, lo, hi, n_nan, n_neg = (np.array(a, copy=True) for a in parts[0])
    for p in parts[1:]:
        s += p[0]
        m1 += p[1]
        m2 += p[2]
        lo = np.minimum(lo, p[3])
        hi = np.maximum(hi, p[4])
        n_nan += p[5]
        n_neg += p[6]
    return s, m1, m2, lo, hi, n_nan, n_neg


def solve_linear_bpt(tree, feats, moments, H, V, alpha, scale, ref):
    """The linear leaves of ``tree`` from the leaves' moments (:func:`leaf_moments` with
    the features ``feats`` of :func:`path_features`), in place: the leaf values and
    ``leaf_update`` become the constant parts and ``tree.linear`` is set (the fields of
    ``TreeEnsemble`` for this tree, unscaled); returns, per leaf in leaf order, the
    arguments (start, count, feature, centre, lo, hi, V slope) of
    :func:`add_linear_log_ratio`."""
    leaves = np.flatnonzero(tree.left < 0).astype(np.int64)
    s, m1, m2, lo, hi, n_nan, n_neg = moments
    m = tree.feature.shape[0]
    start = np.zeros(m, dtype=np.int64)
    count = np.zeros(m, dtype=np.int64)
    parts = []                         # (leaf row, feature ids, centres, lo, hi, slopes)
    value = tree.value
    for r, j in enumerate(leaves):
        d = int(np.sum(feats[r] >= 0))
        lam = s[r]
        if d == 0 or not np.all(lam > 0) or np.any(n_nan[r, :d]):
            continue
        f = feats[r, :d]
        # in the scaled units u = x / scale - ref of the moments
        mu = m1[r, :, :d] / lam[:, None]                       # (C, d)
        M2 = np.tril(m2[r, :d, :d])
        M2 = M2 + np.tril(M2, -1).T
        S0 = M2 / lam[0] - np.outer(mu[0], mu[0])
        ulo = lo[r, :d] / scale[f] - ref[f]
        uhi = hi[r, :d] / scale[f] - ref[f]
        tol = 1e-9 * np.maximum(uhi - ulo, 1e-300)
        if (np.any(mu < ulo - tol) or np.any(mu > uhi + tol)
                or np.any(np.diag(S0) > 0.25 * (uhi - ulo) ** 2 * (1 + 1e-9))):
            continue                   # moments positive weights cannot give
        e, Q = np.linalg.eigh(S0)
        if not (e[-1] > 0 and e[0] > _EIG_FLOOR * e[-1]):
            continue
        B = ((mu[1:] - mu[0]) @ Q / e) @ Q.T                    # rows b_k = S0^-1 dmu_k
        reach = np.abs(B) @ np.maximum(uhi - mu[0], mu[0] - ulo)
        cap = MAX_LOG_RATIO_CHANGE_NEG if n_neg[r] else MAX_LOG_RATIO_CHANGE
        if not np.all(reach <= cap):
            continue
        c = np.log(lam[1:] / lam[0]) - 0.5 * np.einsum("kd,de,ke->k", B, S0, B)
        value[j] = alpha * (H @ c) + (1.0 - alpha) * value[j]
        centre = (mu[0] + ref[f]) * scale[f]
        parts.append((r, f, np.clip(centre, lo[r, :d], hi[r, :d]), lo[r, :d], hi[r, :d],
                      alpha * (H @ B).T / scale[f][:, None]))
    n_lin = sum(p[1].shape[0] for p in parts)
    T = value.shape[1]
    lin = dict(start=start, count=count, feature=np.zeros(n_lin, dtype=np.int64),
               centre=np.zeros(n_lin), lo=np.zeros(n_lin), hi=np.zeros(n_lin),
               slope=np.zeros((n_lin, T)))
    # the same terms per leaf row (index into tree.leaf_update) for the boosting update
    by_leaf = (np.zeros(leaves.shape[0], dtype=np.int64),
               np.zeros(leaves.shape[0], dtype=np.int64))
    q = 0
    for r, f, centre, flo, fhi, slope in parts:
        j = leaves[r]
        d = f.shape[0]
        start[j], count[j] = q, d
        by_leaf[0][r], by_leaf[1][r] = q, d
        lin["feature"][q:q + d] = f
        lin["centre"][q:q + d] = centre
        lin["lo"][q:q + d] = flo
        lin["hi"][q:q + d] = fhi
        lin["slope"][q:q + d] = slope
        q += d
    tree.linear = lin
    tree.leaf_update = np.ascontiguousarray(value[leaves] @ V.T)
    vslope = np.ascontiguousarray(lin["slope"] @ V.T)
    return (by_leaf[0], by_leaf[1], lin["feature"], lin["centre"], lin["lo"], lin["hi"],
            vslope)


@njit(parallel=True, cache=True)
def add_linear_log_ratio(g_nom, g_own, nom_index, cls, X, xrows, rows, leaf_of, upd, lstart,
                         lcount, lfeat, lcentre, llo, lhi, vslope, eta):
    """Add eta * (the leaf's log ratios) of a tree with linear leaves to the BPT boosting
    state in one pass over the rows: the constant part ``upd[leaf]`` (as
    ``add_leaf_log_ratio``, without carried exponentials), then the linear part.  Row
    i = rows[ii] of X[xrows[i]] in leaf ``leaf_of[ii]`` (an index into ``upd``,
    ``lstart`` and ``lcount``; a leaf with ``lcount`` 0 is constant).  One kernel
    instead of two: one pass over the rows and one parallel kernel less to compile."""
    n = upd.shape[1]
    for ii in prange(rows.shape[0]):
        i = rows[ii]
        lf = leaf_of[ii]
        k = cls[i]
        u = upd[lf]
        if k == 0:
            j = nom_index[i]
            for m in range(n):
                g_nom[j, m] += eta * u[m]
        else:
            g_own[i] += eta * u[k - 1]
        c = lcount[lf]
        if c > 0:
            r = xrows[i]
            for q in range(lstart[lf], lstart[lf] + c):
                dx = eta * linear_offset(X, r, q, lfeat, lcentre, llo, lhi)
                if k == 0:
                    j = nom_index[i]
                    for m in range(n):
                        g_nom[j, m] += vslope[q, m] * dx
                else:
                    g_own[i] += vslope[q, k - 1] * dx


def constant_leaves(n_leaves, n_points):
    """The linear-part arguments of :func:`add_linear_log_ratio` for a tree whose
    ``n_leaves`` leaves are all constant."""
    return (np.zeros(n_leaves, dtype=np.int64), np.zeros(n_leaves, dtype=np.int64),
            np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0), np.zeros(0),
            np.zeros((0, n_points)))
