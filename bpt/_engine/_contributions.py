"""Tree-path (Saabas) feature contributions of the fitted ensemble.

Every node of the flat ensemble (see ``_predictor``) stores its prediction in
``value`` (internal nodes too, already multiplied by the tree's learning rate).
Walking row i from the root to its leaf, the change of the node value at a split
on feature f is credited to f, and the root's value is the bias.  Per tree the sum
telescopes to the leaf value, so summed over features and bias the contributions
equal the prediction (up to round-off).  A linear leaf's terms are credited to their
features (each term is a function of its feature alone).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._predictor import goes_left, linear_offset

__all__ = ["contributions"]


@njit(parallel=True, cache=True)
def _contributions(X, feature, threshold, left, right, mleft, value, tree_start, t0, t1,
                   lstart, lcount, lfeat, lcentre, llo, lhi, lslope, out):
    """Add row i's contributions of trees t0..t1-1 to out[i] (n_features + 1, n_out);
    slot n_features is the bias (sum of the root values)."""
    n_out = value.shape[1]
    bias = X.shape[1]
    for i in prange(X.shape[0]):
        for t in range(t0, t1):
            j = tree_start[t]
            for a in range(n_out):
                out[i, bias, a] += value[j, a]
            while feature[j] >= 0:
                f = feature[j]
                c = left[j] if goes_left(X, i, j, feature, threshold, mleft) else right[j]
                for a in range(n_out):
                    out[i, f, a] += value[c, a] - value[j, a]
                j = c
            for q in range(lstart[j], lstart[j] + lcount[j]):
                d = linear_offset(X, i, q, lfeat, lcentre, llo, lhi)
                f = lfeat[q]
                for a in range(n_out):
                    out[i, f, a] += lslope[q, a] * d


def contributions(ensemble, X, start=0, stop=None):
    """Contributions (N, n_features + 1, n_out) float64 of trees start..stop-1 for the
    C-contiguous X (float32 or float64; NaN follows ``missing_go_left``); the last slot of axis 1 is the bias."""
    a = ensemble.arrays
    stop = ensemble.n_trees if stop is None else stop
    out = np.zeros((X.shape[0], X.shape[1] + 1, ensemble.n_out))
    if stop > start:
        _contributions(X, a["feature"], a["threshold"], a["left"], a["right"],
                       a["missing_go_left"], a["value"], a["tree_start"], start, stop,
                       *(a[k] for k in ensemble.LINEAR_NODE_FIELDS + ensemble.LINEAR_FIELDS),
                       out)
    return out
