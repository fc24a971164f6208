"""Split finding: the best (feature, threshold) of a node for a given loss.

Both finders scan candidate boundaries in increasing order and keep a candidate
only if its gain is strictly larger, so among equal gains the smallest
threshold (and then the smallest feature index) wins.  A split is accepted only
if both children are valid for the loss and the gain is positive.

* ``find_split_hist`` scans bin boundaries of the node's histogram.  When the node
  holds events with a missing value (NaN, bin ``missing_code``) of a feature, each
  boundary is tried with the missing events on the right, then on the left, and the
  split "every non-missing value left, missing right" is tried too (as
  scikit-learn's HistGradientBoosting does).  The grower calls it as
  ``best_split_hist``: the features are scanned serially for the BIT and in parallel
  for the BPT, a choice made when numba compiles the grower (from the type of ``cls``),
  so that a fit compiles one scan only.
* ``find_split_exact`` sorts the node's rows per feature and scans every
  boundary between distinct values (reference mode, for small data; no NaN).

The loss is given as ``lp = (P, lam, ridge_a, ridge_e, ridge_b)`` (see
``_loss.node_score``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._loss import node_score

# relative gain below which a split is treated as no improvement (round-off)
GAIN_RTOL = 1e-12


@njit(cache=True)
def score(kind, stats, K, lp, min_samples, min_weight, scratch):
    return node_score(kind, stats, K, lp[0], min_samples, min_weight, scratch, lp[1], lp[2],
                      lp[3], lp[4])


@njit(cache=True)
def _candidate_gain(ls, rs, tot, K, kind, lp, min_samples, min_weight, parent, scratch):
    """Gain of the split with left stats ``ls`` (right = tot - ls, written to ``rs``);
    -inf if a child is not allowed."""
    for k in range(tot.shape[0]):
        rs[k] = tot[k] - ls[k]
    sl = score(kind, ls, K, lp, min_samples, min_weight, scratch)
    if sl == -np.inf:
        return sl
    sr = score(kind, rs, K, lp, min_samples, min_weight, scratch)
    if sr == -np.inf:
        return sr
    return sl + sr - parent


@njit(cache=True)
def _scan_feature(h, nb, mcode, tot, K, kind, lp, min_samples, min_weight, parent, j,
                  best_gain, best_bin, best_mleft, best_left):
    M = tot.shape[0]
    ls = np.zeros(M)
    lm = np.empty(M)
    rs = np.empty(M)
    scratch = np.empty(2 * K + 2)
    n_missing = 0.0
    for k in range(K, M):
        n_missing += h[mcode, k]
    has_missing = n_missing > 0.0
    last = nb if has_missing else nb - 1
    for b in range(last):
        for k in range(M):
            ls[k] += h[b, k]
        gain = _candidate_gain(ls, rs, tot, K, kind, lp, min_samples, min_weight, parent,
                               scratch)
        if gain > best_gain[j]:
            best_gain[j] = gain
            best_bin[j] = b
            best_mleft[j] = False
            best_left[j] = ls
        if has_missing:
            for k in range(M):
                lm[k] = ls[k] + h[mcode, k]
            gain = _candidate_gain(lm, rs, tot, K, kind, lp, min_samples, min_weight, parent,
                                   scratch)
            if gain > best_gain[j]:
                best_gain[j] = gain
                best_bin[j] = b
                best_mleft[j] = True
                best_left[j] = lm
    return has_missing


@njit(parallel=True, cache=True)
def _scan_parallel(hist, feats, n_bins, mcode, tot, K, kind, lp, min_samples, min_weight,
                   parent, best_gain, best_bin, best_mleft, best_left, best_has_missing):
    for jj in prange(feats.shape[0]):
        j = np.int64(jj)          # the serial scan's index type: one _scan_feature compile
        f = feats[j]
        best_has_missing[j] = _scan_feature(
            hist[f], n_bins[f], mcode, tot, K, kind, lp, min_samples, min_weight, parent, j,
            best_gain, best_bin, best_mleft, best_left)


@njit(cache=True)
def _scan_serial(hist, feats, n_bins, mcode, tot, K, kind, lp, min_samples, min_weight,
                 parent, best_gain, best_bin, best_mleft, best_left, best_has_missing):
    for j in range(feats.shape[0]):
        f = feats[j]
        best_has_missing[j] = _scan_feature(
            hist[f], n_bins[f], mcode, tot, K, kind, lp, min_samples, min_weight, parent, j,
            best_gain, best_bin, best_mleft, best_left)


@njit(cache=True)
def find_split_hist(hist, feats, n_bins, mcode, tot, K, kind, lp, min_samples, min_weight):
    """Best split of a node among the features ``feats`` (increasing int64 indices).

    ``hist`` is (n_features, n_bins_max + 1, K + C) with the missing values in bin
    ``mcode``; ``tot`` the node's stats (K + C).  Returns (feature, bin,
    missing_left, has_missing, gain, left_stats); feature -1 if no valid split.
    Features are scanned one after the other (see :func:`best_split_hist`).
    """
    return best_split_hist(hist, feats, n_bins, mcode, tot, K, kind, lp, min_samples,
                           min_weight, None)


@njit(cache=True)
def best_split_hist(hist, feats, n_bins, mcode, tot, K, kind, lp, min_samples, min_weight,
                    cls):
    """:func:`find_split_hist`; ``cls`` None (BIT) scans the features serially, an array
    (BPT: a candidate costs O(n_base_points^2) plus logarithms) in parallel.  The
    choice is made when compiling, so a fit compiles one scan variant only (a parallel
    loop costs seconds of compilation); the result never depends on it.
    """
    nf = feats.shape[0]
    M = tot.shape[0]
    parent = score(kind, tot, K, lp, min_samples, min_weight, np.empty(2 * K + 2))
    best_gain = np.full(nf, -np.inf)
    best_bin = np.full(nf, -1, dtype=np.int64)
    best_mleft = np.zeros(nf, dtype=np.bool_)
    best_has = np.zeros(nf, dtype=np.bool_)
    best_left = np.zeros((nf, M))
    if cls is None:
        _scan_serial(hist, feats, n_bins, mcode, tot, K, kind, lp, min_samples, min_weight,
                     parent, best_gain, best_bin, best_mleft, best_left, best_has)
    else:
        _scan_parallel(hist, feats, n_bins, mcode, tot, K, kind, lp, min_samples, min_weight,
                       parent, best_gain, best_bin, best_mleft, best_left, best_has)
    jbest = _pick(best_gain, parent)
    if jbest < 0:
        return -1, -1, False, False, 0.0, best_left[0]
    return (feats[jbest], best_bin[jbest], best_mleft[jbest], best_has[jbest],
            best_gain[jbest], best_left[jbest])


@njit(cache=True)
def _pick(best_gain, parent):
    """Index of the first largest gain if it is positive beyond round-off, else -1."""
    jbest = -1
    g = -np.inf
    for j in range(best_gain.shape[0]):
        if best_gain[j] > g:
            g = best_gain[j]
            jbest = j
    tol = GAIN_RTOL * max(abs(parent), 1e-300)
    if jbest < 0 or not (g > tol):
        return -1
    return jbest


@njit(parallel=True, cache=True)
def find_split_exact(X, rows, start, stop, Y, cls, onehot, tot, K, kind, lp, min_samples,
                     min_weight, feats):
    """Return (feature, threshold_lo, threshold_hi, gain, left_stats).

    The split sends x <= threshold_lo to the left; threshold_hi is the next
    distinct value (the caller places the stored threshold between them).
    """
    nf = feats.shape[0]
    M = tot.shape[0]
    n = stop - start
    parent = score(kind, tot, K, lp, min_samples, min_weight, np.empty(2 * K + 2))
    best_gain = np.full(nf, -np.inf)
    best_lo = np.zeros(nf)
    best_hi = np.zeros(nf)
    best_left = np.zeros((nf, M))
    node_rows = rows[start:stop]
    for jf in prange(nf):
        f = feats[jf]
        vals = np.empty(n)
        for j in range(n):
            vals[j] = X[node_rows[j], f]
        order = np.argsort(vals, kind="mergesort")
        ls = np.zeros(M)
        rs = np.empty(M)
        scratch = np.empty(2 * K + 2)
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
            gain = _candidate_gain(ls, rs, tot, K, kind, lp, min_samples, min_weight, parent,
                                   scratch)
            if gain > best_gain[jf]:
                best_gain[jf] = gain
                best_lo[jf] = lo
                best_hi[jf] = hi
                best_left[jf] = ls
    jbest = _pick(best_gain, parent)
    if jbest < 0:
        return -1, 0.0, 0.0, 0.0, best_left[0]
    return feats[jbest], best_lo[jbest], best_hi[jbest], best_gain[jbest], best_left[jbest]
