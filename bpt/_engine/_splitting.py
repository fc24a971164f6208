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

from ._loss import KIND_BPT, node_score

# relative gain below which a split is treated as no improvement (round-off)
GAIN_RTOL = 1e-12


# Work (features x bins x stats) above which the split search runs in parallel;
# below it a parallel region costs more than it saves.
PARALLEL_WORK = 1 << 18


@njit(cache=True, inline="always")
def _candidate_gain(ls, rs, tot, K, kind, P, min_samples, min_weight, parent, scratch):
    """Gain of the split with left stats ``ls`` (right = tot - ls, written to ``rs``);
    -inf if a child is not allowed."""
    for k in range(tot.shape[0]):
        rs[k] = tot[k] - ls[k]
    sl = node_score(kind, ls, K, P, min_samples, min_weight, scratch)
    if sl == -np.inf:
        return sl
    sr = node_score(kind, rs, K, P, min_samples, min_weight, scratch)
    if sr == -np.inf:
        return sr
    return sl + sr - parent


@njit(cache=True)
def _scan_feature(h, nb, tot, K, kind, P, min_samples, min_weight, parent, f, best_gain,
                  best_bin, best_left):
    M = tot.shape[0]
    ls = np.zeros(M)
    rs = np.empty(M)
    scratch = np.empty(K)
    for b in range(nb - 1):
        for k in range(M):
            ls[k] += h[b, k]
        gain = _candidate_gain(ls, rs, tot, K, kind, P, min_samples, min_weight, parent,
                               scratch)
        if gain > best_gain[f]:
            best_gain[f] = gain
            best_bin[f] = b
            best_left[f] = ls


@njit(parallel=True, cache=True)
def _scan_parallel(hist, n_bins, tot, K, kind, P, min_samples, min_weight, parent,
                   best_gain, best_bin, best_left):
    for f in prange(hist.shape[0]):
        _scan_feature(hist[f], n_bins[f], tot, K, kind, P, min_samples, min_weight, parent,
                      f, best_gain, best_bin, best_left)


@njit(cache=True)
def _scan_serial(hist, n_bins, tot, K, kind, P, min_samples, min_weight, parent,
                 best_gain, best_bin, best_left):
    for f in range(hist.shape[0]):
        _scan_feature(hist[f], n_bins[f], tot, K, kind, P, min_samples, min_weight, parent,
                      f, best_gain, best_bin, best_left)


def find_split_hist(hist, n_bins, tot, K, kind, P, min_samples, min_weight):
    """Return (feature, bin, gain, left_stats); feature -1 if no valid split.

    ``hist`` is (n_features, n_bins, K + C), ``tot`` the node's stats (K + C).
    """
    n_features, _, M = hist.shape
    parent = node_score(kind, tot, K, P, min_samples, min_weight, np.empty(K))
    best_gain = np.full(n_features, -np.inf)
    best_bin = np.full(n_features, -1, dtype=np.int64)
    best_left = np.zeros((n_features, M))
    # a BPT candidate costs O(n_base_points^2) plus logarithms: always worth threads
    work = hist.size * (64 if kind == KIND_BPT else max(K // 8, 1))
    scan = _scan_parallel if work >= PARALLEL_WORK else _scan_serial
    scan(hist, n_bins, tot, K, kind, P, min_samples, min_weight, parent, best_gain, best_bin,
         best_left)
    return _pick(best_gain, best_bin, best_left, parent)


@njit(cache=True)
def _pick(best_gain, best_pos, best_left, parent):
    fbest = -1
    g = -np.inf
    for f in range(best_gain.shape[0]):
        if best_gain[f] > g:
            g = best_gain[f]
            fbest = f
    tol = GAIN_RTOL * max(abs(parent), 1e-300)
    if fbest < 0 or not (g > tol):
        return -1, -1, 0.0, best_left[0]
    return fbest, best_pos[fbest], g, best_left[fbest]


@njit(parallel=True, cache=True)
def find_split_exact(X, rows, start, stop, Y, cls, onehot, tot, K, kind, P, min_samples,
                     min_weight):
    """Return (feature, threshold_lo, threshold_hi, gain, left_stats).

    The split sends x <= threshold_lo to the left; threshold_hi is the next
    distinct value (the caller places the stored threshold between them).
    """
    n_features = X.shape[1]
    M = tot.shape[0]
    n = stop - start
    parent = node_score(kind, tot, K, P, min_samples, min_weight, np.empty(K))
    best_gain = np.full(n_features, -np.inf)
    best_pos = np.full(n_features, -1, dtype=np.int64)
    best_lo = np.zeros(n_features)
    best_hi = np.zeros(n_features)
    best_left = np.zeros((n_features, M))
    node_rows = rows[start:stop]
    for f in prange(n_features):
        vals = np.empty(n)
        for j in range(n):
            vals[j] = X[node_rows[j], f]
        order = np.argsort(vals, kind="mergesort")
        ls = np.zeros(M)
        rs = np.empty(M)
        scratch = np.empty(K)
        for j in range(n - 1):
            i = node_rows[order[j]]
            if onehot:
                ls[cls[i]] += Y[i, 0]
                ls[K + cls[i]] += 1.0
            else:
                ls[K] += 1.0
                for k in range(K):
                    ls[k] += Y[i, k]
            lo = vals[order[j]]
            hi = vals[order[j + 1]]
            if not (lo < hi):
                continue
            gain = _candidate_gain(ls, rs, tot, K, kind, P, min_samples, min_weight, parent,
                                   scratch)
            if gain > best_gain[f]:
                best_gain[f] = gain
                best_pos[f] = j
                best_lo[f] = lo
                best_hi[f] = hi
                best_left[f] = ls
    fbest, _, g, left = _pick(best_gain, best_pos, best_left, parent)
    if fbest < 0:
        return -1, 0.0, 0.0, 0.0, left
    return fbest, best_lo[fbest], best_hi[fbest], g, left
