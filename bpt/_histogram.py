"""Histograms: per node, per feature and per bin, the K weighted sums and C counts.

``hist`` has shape (n_features, n_bins, K) float64 and ``counts`` shape
(n_features, n_bins, C) int64.  The kernels run in parallel over features; each
feature is accumulated by one thread in row order, so results do not depend on
the number of threads.  The subtraction trick (sibling = parent - child) is done
in place in the parent's buffer.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def build_histogram(Xb, rows, start, stop, Y, cls, onehot, hist, counts):
    """Accumulate rows[start:stop] into zeroed ``hist`` / ``counts``."""
    n_features = Xb.shape[0]
    K = Y.shape[1]
    for f in prange(n_features):
        x = Xb[f]
        h = hist[f]
        c = counts[f]
        if onehot:
            for ii in range(start, stop):
                i = rows[ii]
                b = x[i]
                k = cls[i]
                h[b, k] += Y[i, 0]
                c[b, k] += 1
        else:
            for ii in range(start, stop):
                i = rows[ii]
                b = x[i]
                c[b, 0] += 1
                for k in range(K):
                    h[b, k] += Y[i, k]


@njit(parallel=True, cache=True)
def subtract_histogram(parent_hist, parent_counts, child_hist, child_counts):
    """parent -= child, in place (the parent's buffer becomes the sibling's)."""
    n_features, n_bins, K = parent_hist.shape
    C = parent_counts.shape[2]
    for f in prange(n_features):
        for b in range(n_bins):
            for k in range(K):
                parent_hist[f, b, k] -= child_hist[f, b, k]
            for k in range(C):
                parent_counts[f, b, k] -= child_counts[f, b, k]


@njit(cache=True)
def node_sums(rows, start, stop, Y, cls, onehot, K, C):
    """Total sums and counts of rows[start:stop] (float64 accumulation)."""
    sums = np.zeros(K)
    counts = np.zeros(C, dtype=np.int64)
    for ii in range(start, stop):
        i = rows[ii]
        if onehot:
            sums[cls[i]] += Y[i, 0]
            counts[cls[i]] += 1
        else:
            counts[0] += 1
            for k in range(K):
                sums[k] += Y[i, k]
    return sums, counts
