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
  for the BPT, and the loss's score is inlined, all chosen when numba compiles the
  grower (from which of the markers ``bit`` / ``bpt`` is None), so that a fit compiles
  the code of its own loss only.
* ``find_split_exact`` sorts the node's rows per feature and scans every
  boundary between distinct values (reference mode, for small data; no NaN).

The loss is given as ``lp = (P, lam, ridge_a, ridge_e, ridge_b)`` (see
``_loss.node_score``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._loss import KIND_BIT, score_bit, score_bpt

# relative gain below which a split is treated as no improvement (round-off)
GAIN_RTOL = 1e-12

_NEG_INF = -np.inf
# kernels called only from compiled code: compiled without their CPython and C wrappers
# (less to compile); calling one from Python crashes the interpreter
_INTERNAL = dict(cache=True, no_cpython_wrapper=True, no_cfunc_wrapper=True)


# The loss is chosen when numba compiles a function, not at run time, so that a BIT fit
# never compiles the BPT code and vice versa: ``bit`` and ``bpt`` are two markers of
# which exactly one is None (BIT: bpt None; BPT: bit None).  numba prunes a branch
# ``if x is None`` on an argument typed None, so every BIT-only branch sits under
# ``if bpt is None: if bit is not None:`` and the BPT code under the ``else``.


@njit(**_INTERNAL)
def score(bit, bpt, stats, K, lp, min_samples, min_weight, scratch):
    """Node score of the loss selected by the markers (see above)."""
    if bpt is None:
        if bit is not None:
            return score_bit(stats, K, min_samples, min_weight, lp[1])
        return _NEG_INF
    return score_bpt(stats, K, lp[0], min_samples, min_weight, scratch, lp[1], lp[2], lp[3],
                     lp[4])


@njit(**_INTERNAL)
def _candidate_gain(ls, rs, tot, K, bit, bpt, lp, min_samples, min_weight, parent, scratch):
    """Gain of the split with left stats ``ls`` (right = tot - ls, written to ``rs``);
    -inf if a child is not allowed."""
    for k in range(tot.shape[0]):
        rs[k] = tot[k] - ls[k]
    sl = score(bit, bpt, ls, K, lp, min_samples, min_weight, scratch)
    if sl == _NEG_INF:
        return sl
    sr = score(bit, bpt, rs, K, lp, min_samples, min_weight, scratch)
    if sr == _NEG_INF:
        return sr
    return sl + sr - parent


@njit(**_INTERNAL)
def _scan_feature_bit(h, nb, mcode, tot, K, lam, min_samples, min_weight, parent, j,
                      best_gain, best_bin, best_mleft, best_left, work):
    """Scan the bins of one feature for the BIT loss: :func:`score_bit` called directly
    with its scalar parameters (the same floating-point operations in the same order).  Through
    ``_candidate_gain`` / ``score`` with the loss tuple ``lp`` a candidate cost 180 ns,
    here 15 ns (10 features x 255 bins: 470 -> 40 us per node).  One scan loop shared by
    both losses (the score chosen by the markers, the loss arrays as arguments) cost the
    BIT 46 ns per candidate, hence the two loops of the same shape."""
    M = tot.shape[0]
    ls = work[0:M]
    lm = work[M:2 * M]
    rs = work[2 * M:3 * M]
    for k in range(M):
        ls[k] = 0.0
    n_missing = 0.0
    for k in range(K, M):
        n_missing += h[mcode, k]
    has_missing = n_missing > 0.0
    last = nb if has_missing else nb - 1
    bg = best_gain[j]
    for b in range(last):
        for k in range(M):
            ls[k] += h[b, k]
        for k in range(M):
            rs[k] = tot[k] - ls[k]
        sl = score_bit(ls, K, min_samples, min_weight, lam)
        if sl != _NEG_INF:
            sr = score_bit(rs, K, min_samples, min_weight, lam)
            if sr != _NEG_INF:
                gain = sl + sr - parent
                if gain > bg:
                    bg = gain
                    best_bin[j] = b
                    best_mleft[j] = False
                    for k in range(M):
                        best_left[j, k] = ls[k]
        if has_missing:
            for k in range(M):
                lm[k] = ls[k] + h[mcode, k]
            for k in range(M):
                rs[k] = tot[k] - lm[k]
            sl = score_bit(lm, K, min_samples, min_weight, lam)
            if sl != _NEG_INF:
                sr = score_bit(rs, K, min_samples, min_weight, lam)
                if sr != _NEG_INF:
                    gain = sl + sr - parent
                    if gain > bg:
                        bg = gain
                        best_bin[j] = b
                        best_mleft[j] = True
                        for k in range(M):
                            best_left[j, k] = lm[k]
    best_gain[j] = bg
    return has_missing


@njit(**_INTERNAL)
def _scan_feature_bpt(h, nb, mcode, tot, K, lp, min_samples, min_weight, parent, j,
                      best_gain, best_bin, best_mleft, best_left, work):
    """:func:`_scan_feature_bit` for the BPT loss (:func:`score_bpt` with the arrays of
    ``lp`` unpacked once; 960 -> 860 ns per candidate with 7 classes).  ``work``
    (>= 3 M + 2 K + 2 floats) is scratch."""
    P, lam, ra, re, rb = lp
    M = tot.shape[0]
    ls = work[0:M]
    lm = work[M:2 * M]
    rs = work[2 * M:3 * M]
    scratch = work[3 * M:]
    for k in range(M):
        ls[k] = 0.0
    n_missing = 0.0
    for k in range(K, M):
        n_missing += h[mcode, k]
    has_missing = n_missing > 0.0
    last = nb if has_missing else nb - 1
    bg = best_gain[j]
    n_sides = 2 if has_missing else 1
    for b in range(last):
        for k in range(M):
            ls[k] += h[b, k]
        # missing values right (v = 0), then left (v = 1): one call site per child score
        # (score_bpt is inlined at each: half the code of a loop written out twice, and
        # the same operations in the same order)
        for v in range(n_sides):
            if v == 0:
                for k in range(M):
                    lm[k] = ls[k]
            else:
                for k in range(M):
                    lm[k] = ls[k] + h[mcode, k]
            for k in range(M):
                rs[k] = tot[k] - lm[k]
            sl = score_bpt(lm, K, P, min_samples, min_weight, scratch, lam, ra, re, rb)
            if sl != _NEG_INF:
                sr = score_bpt(rs, K, P, min_samples, min_weight, scratch, lam, ra, re, rb)
                if sr != _NEG_INF:
                    gain = sl + sr - parent
                    if gain > bg:
                        bg = gain
                        best_bin[j] = b
                        best_mleft[j] = v == 1
                        for k in range(M):
                            best_left[j, k] = lm[k]
    best_gain[j] = bg
    return has_missing


@njit(parallel=True, **_INTERNAL)
def _scan_parallel(hist, feats, n_bins, mcode, tot, K, bit, bpt, lp, min_samples, min_weight,
                   parent, best_gain, best_bin, best_mleft, best_left, best_has_missing, work):
    for jj in prange(feats.shape[0]):
        j = np.int64(jj)      # the prange index is unsigned in the kernel: one compile only
        f = feats[j]
        best_has_missing[j] = _scan_feature_bpt(
            hist[f], n_bins[f], mcode, tot, K, lp, min_samples, min_weight, parent,
            j, best_gain, best_bin, best_mleft, best_left, work[j])


def split_workspace(n_features, K, M):
    """The arrays :func:`best_split_hist` works in (one set per tree is enough)."""
    return (np.empty(n_features), np.empty(n_features, dtype=np.int64),
            np.empty(n_features, dtype=np.bool_), np.empty(n_features, dtype=np.bool_),
            np.empty((n_features, M)), np.empty((n_features, 3 * M + 2 * K + 2)))


@njit(cache=True)
def find_split_hist(hist, feats, n_bins, mcode, tot, K, kind, lp, min_samples, min_weight):
    """Best split of a node among the features ``feats`` (increasing int64 indices).

    ``hist`` is (n_features, n_bins_max + 1, K + C) with the missing values in bin
    ``mcode``; ``tot`` the node's stats (K + C).  Returns (feature, bin,
    missing_left, has_missing, gain, left_stats); feature -1 if no valid split.
    ``kind`` (``KIND_BIT`` / ``KIND_BPT``) is a run-time value here; the grower calls
    :func:`best_split_hist`, which selects the loss when it is compiled.
    """
    nf = feats.shape[0]
    M = tot.shape[0]
    ws = (np.empty(nf), np.empty(nf, dtype=np.int64), np.empty(nf, dtype=np.bool_),
          np.empty(nf, dtype=np.bool_), np.empty((nf, M)), np.empty((nf, 3 * M + 2 * K + 2)))
    if kind == KIND_BIT:
        return best_split_hist(hist, feats, n_bins, mcode, tot, K, True, None, lp, min_samples,
                               min_weight, ws)
    return best_split_hist(hist, feats, n_bins, mcode, tot, K, None, feats, lp, min_samples,
                           min_weight, ws)


@njit(**_INTERNAL)
def best_split_hist(hist, feats, n_bins, mcode, tot, K, bit, bpt, lp, min_samples,
                    min_weight, ws):
    """:func:`find_split_hist` for the loss selected by the markers ``bit`` / ``bpt``
    (exactly one is None).  The BIT scans the features serially, the BPT (a candidate
    costs O(n_base_points^2) plus logarithms) in parallel; the result never depends on
    it.  ``ws`` = :func:`split_workspace` arrays.  The returned left stats are a view
    of ``ws``.
    """
    best_gain, best_bin, best_mleft, best_has, best_left, work = ws
    nf = feats.shape[0]
    M = tot.shape[0]
    parent = score(bit, bpt, tot, K, lp, min_samples, min_weight, work[0, 3 * M:])
    for j in range(nf):
        best_gain[j] = _NEG_INF
        best_bin[j] = -1
        best_mleft[j] = False
        best_has[j] = False
        for k in range(M):
            best_left[j, k] = 0.0
    if bpt is None:
        if bit is not None:
            for j in range(nf):
                f = feats[j]
                best_has[j] = _scan_feature_bit(
                    hist[f], n_bins[f], mcode, tot, K, lp[1], min_samples, min_weight,
                    parent, j, best_gain, best_bin, best_mleft, best_left, work[j])
    else:
        _scan_parallel(hist, feats, n_bins, mcode, tot, K, bit, bpt, lp, min_samples,
                       min_weight, parent, best_gain, best_bin, best_mleft, best_left,
                       best_has, work)
    jbest = _pick(best_gain, nf, parent)
    if jbest < 0:
        return -1, -1, False, False, 0.0, best_left[0]
    return (feats[jbest], best_bin[jbest], best_mleft[jbest], best_has[jbest],
            best_gain[jbest], best_left[jbest])


@njit(**_INTERNAL)
def _pick(best_gain, nf, parent):
    """Index of the first largest gain (of the first ``nf``) if it is positive beyond
    round-off, else -1."""
    jbest = -1
    g = _NEG_INF
    for j in range(nf):
        if best_gain[j] > g:
            g = best_gain[j]
            jbest = j
    tol = GAIN_RTOL * (abs(parent) if abs(parent) > 1e-300 else 1e-300)
    if jbest < 0 or not (g > tol):
        return -1
    return jbest


@njit(parallel=True, cache=True)
def find_split_exact(X, rows, start, stop, Y, cls, bit, tot, K, lp, min_samples, min_weight,
                     feats):
    """Return (feature, threshold_lo, threshold_hi, gain, left_stats).

    ``cls`` None: dense targets (BIT), ``bit`` None: one-hot classes ``cls`` with
    weights ``Y[:, 0]`` (BPT); the markers select the loss as in :func:`best_split_hist`.
    The split sends x <= threshold_lo to the left; threshold_hi is the next
    distinct value (the caller places the stored threshold between them).
    """
    nf = feats.shape[0]
    M = tot.shape[0]
    n = stop - start
    parent = score(bit, cls, tot, K, lp, min_samples, min_weight, np.empty(2 * K + 2))
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
            if cls is None:
                if bit is not None:
                    ls[K] += 1.0
                    for k in range(K):
                        ls[k] += Y[i, k]
            else:
                ls[cls[i]] += Y[i, 0]
                ls[K + cls[i]] += 1.0
            lo = vals[order[j]]
            hi = vals[order[j + 1]]
            if not (lo < hi):
                continue
            gain = _candidate_gain(ls, rs, tot, K, bit, cls, lp, min_samples, min_weight,
                                   parent, scratch)
            if gain > best_gain[jf]:
                best_gain[jf] = gain
                best_lo[jf] = lo
                best_hi[jf] = hi
                for k in range(M):
                    best_left[jf, k] = ls[k]
    jbest = _pick(best_gain, nf, parent)
    if jbest < 0:
        return -1, 0.0, 0.0, 0.0, best_left[0]
    return feats[jbest], best_lo[jbest], best_hi[jbest], best_gain[jbest], best_left[jbest]
