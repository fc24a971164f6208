"""Split finding: the best (feature, threshold) of a node for a given loss.

Both finders scan candidate boundaries in increasing order and keep a candidate
only if its gain is strictly larger, so among equal gains the smallest
threshold (and then the smallest feature index) wins.  A split is accepted only
if both children are valid for the loss and the gain is positive.

* ``find_split_hist`` scans bin boundaries of the node's histogram.
* ``find_split_exact`` sorts the node's rows per feature and scans every
  boundary between distinct values (reference mode, for small data).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._loss import node_score

# relative gain below which a split is treated as no improvement (round-off)
GAIN_RTOL = 1e-12


@njit(parallel=True, cache=True)
def find_split_hist(hist, counts, n_bins, tot_sums, tot_counts, kind, P, min_samples,
                    min_weight):
    """Return (feature, bin, gain, left_sums, left_counts); feature -1 if none."""
    n_features = hist.shape[0]
    K = hist.shape[2]
    C = counts.shape[2]
    parent = node_score(kind, tot_sums, tot_counts, P, min_samples, min_weight,
                        np.empty(K))
    best_gain = np.full(n_features, -np.inf)
    best_bin = np.full(n_features, -1, dtype=np.int64)
    best_lsums = np.zeros((n_features, K))
    best_lcounts = np.zeros((n_features, C), dtype=np.int64)
    for f in prange(n_features):
        ls = np.zeros(K)
        lc = np.zeros(C, dtype=np.int64)
        rs = np.empty(K)
        rc = np.empty(C, dtype=np.int64)
        scratch = np.empty(K)
        for b in range(n_bins[f] - 1):
            for k in range(K):
                ls[k] += hist[f, b, k]
                rs[k] = tot_sums[k] - ls[k]
            for k in range(C):
                lc[k] += counts[f, b, k]
                rc[k] = tot_counts[k] - lc[k]
            sl = node_score(kind, ls, lc, P, min_samples, min_weight, scratch)
            if sl == -np.inf:
                continue
            sr = node_score(kind, rs, rc, P, min_samples, min_weight, scratch)
            if sr == -np.inf:
                continue
            gain = sl + sr - parent
            if gain > best_gain[f]:
                best_gain[f] = gain
                best_bin[f] = b
                best_lsums[f] = ls
                best_lcounts[f] = lc
    return _pick(best_gain, best_bin, best_lsums, best_lcounts, parent)


@njit(cache=True)
def _pick(best_gain, best_pos, best_lsums, best_lcounts, parent):
    fbest = -1
    g = -np.inf
    for f in range(best_gain.shape[0]):
        if best_gain[f] > g:
            g = best_gain[f]
            fbest = f
    tol = GAIN_RTOL * max(abs(parent), 1e-300)
    if fbest < 0 or not (g > tol):
        return -1, -1, 0.0, best_lsums[0], best_lcounts[0]
    return fbest, best_pos[fbest], g, best_lsums[fbest], best_lcounts[fbest]


@njit(parallel=True, cache=True)
def find_split_exact(X, rows, start, stop, Y, cls, onehot, tot_sums, tot_counts, kind, P,
                     min_samples, min_weight):
    """Return (feature, threshold_lo, threshold_hi, gain, left_sums, left_counts).

    The split sends x <= threshold_lo to the left; threshold_hi is the next
    distinct value (the caller places the stored threshold between them).
    """
    n_features = X.shape[1]
    K = tot_sums.shape[0]
    C = tot_counts.shape[0]
    n = stop - start
    parent = node_score(kind, tot_sums, tot_counts, P, min_samples, min_weight,
                        np.empty(K))
    best_gain = np.full(n_features, -np.inf)
    best_pos = np.full(n_features, -1, dtype=np.int64)
    best_lo = np.zeros(n_features)
    best_hi = np.zeros(n_features)
    best_lsums = np.zeros((n_features, K))
    best_lcounts = np.zeros((n_features, C), dtype=np.int64)
    node_rows = rows[start:stop]
    for f in prange(n_features):
        vals = np.empty(n)
        for j in range(n):
            vals[j] = X[node_rows[j], f]
        order = np.argsort(vals, kind="mergesort")
        ls = np.zeros(K)
        lc = np.zeros(C, dtype=np.int64)
        rs = np.empty(K)
        rc = np.empty(C, dtype=np.int64)
        scratch = np.empty(K)
        for j in range(n - 1):
            i = node_rows[order[j]]
            if onehot:
                ls[cls[i]] += Y[i, 0]
                lc[cls[i]] += 1
            else:
                lc[0] += 1
                for k in range(K):
                    ls[k] += Y[i, k]
            lo = vals[order[j]]
            hi = vals[order[j + 1]]
            if not (lo < hi):
                continue
            for k in range(K):
                rs[k] = tot_sums[k] - ls[k]
            for k in range(C):
                rc[k] = tot_counts[k] - lc[k]
            sl = node_score(kind, ls, lc, P, min_samples, min_weight, scratch)
            if sl == -np.inf:
                continue
            sr = node_score(kind, rs, rc, P, min_samples, min_weight, scratch)
            if sr == -np.inf:
                continue
            gain = sl + sr - parent
            if gain > best_gain[f]:
                best_gain[f] = gain
                best_pos[f] = j
                best_lo[f] = lo
                best_hi[f] = hi
                best_lsums[f] = ls
                best_lcounts[f] = lc
    fbest, _, g, lsums, lcounts = _pick(best_gain, best_pos, best_lsums, best_lcounts, parent)
    if fbest < 0:
        return -1, 0.0, 0.0, 0.0, lsums, lcounts
    return fbest, best_lo[fbest], best_hi[fbest], g, lsums, lcounts
