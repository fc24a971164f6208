"""Histograms: per node, per feature and per bin, the K weighted sums and C counts.

``hist`` has shape (n_features, n_bins, K + C) float64: columns 0..K-1 hold the
loss's weighted sums, columns K..K+C-1 the event counts (exact in float64 up to
2**53 events), so that one bin is one contiguous record.  The kernels run in
parallel over features; each feature is accumulated by one thread in row order,
so results do not depend on the number of threads.  The subtraction trick
(sibling = parent - child) is done in place in the parent's buffer.

Before accumulating a node, its rows' targets are gathered into a contiguous
buffer (``ordered``) so that every feature's pass reads them sequentially.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def _gather(Y, rows, start, stop, out):
    K = Y.shape[1]
    for ii in prange(start, stop):
        i = rows[ii]
        for k in range(K):
            out[ii - start, k] = Y[i, k]


@njit(cache=True, inline="always")
def _add_row(h, b, Yo, r, K):
    """h[b, :K] += Yo[r], h[b, K] += 1; unrolled for the common small K (one parameter,
    linear or quadratic), which LLVM then hoists out of the row loop."""
    if K == 2:
        h[b, 0] += Yo[r, 0]
        h[b, 1] += Yo[r, 1]
    elif K == 3:
        h[b, 0] += Yo[r, 0]
        h[b, 1] += Yo[r, 1]
        h[b, 2] += Yo[r, 2]
    else:
        for k in range(K):
            h[b, k] += Yo[r, k]
    h[b, K] += 1.0


@njit(parallel=True, cache=True)
def _hist_dense(Xb, rows, start, stop, Yo, identity, hist):
    n_features = Xb.shape[0]
    K = Yo.shape[1]
    for f in prange(n_features):
        x = Xb[f]
        h = hist[f]
        if identity:
            for ii in range(start, stop):
                _add_row(h, x[ii], Yo, ii - start, K)
        else:
            for ii in range(start, stop):
                _add_row(h, x[rows[ii]], Yo, ii - start, K)


@njit(parallel=True, cache=True)
def _gather_onehot(w, cls, rows, start, stop, wo, co):
    for ii in prange(start, stop):
        i = rows[ii]
        wo[ii - start] = w[i]
        co[ii - start] = cls[i]


@njit(parallel=True, cache=True)
def _hist_onehot(Xb, rows, start, stop, wo, co, identity, n_cls, hist):
    n_features = Xb.shape[0]
    for f in prange(n_features):
        x = Xb[f]
        h = hist[f]
        for ii in range(start, stop):
            b = x[ii] if identity else x[rows[ii]]
            r = ii - start
            k = co[r]
            h[b, k] += wo[r]
            h[b, n_cls + k] += 1.0


@njit(cache=True)
def build_histogram(Xb, rows, start, stop, Y, cls, onehot, n_sums, hist, buffer, identity):
    """Accumulate rows[start:stop] into the zeroed ``hist`` (see module docstring).

    ``buffer`` is a float64 array with at least (stop - start) * max(Y.shape[1], 2)
    elements, reused between nodes for the ordered targets (weights and classes for
    the one-hot BPT layout).  ``identity``: rows[start:stop] is 0..N-1 (no gather).
    """
    n = stop - start
    if onehot:
        if identity:
            _hist_onehot(Xb, rows, start, stop, Y[:, 0], cls, True, n_sums, hist)
            return
        wo = buffer[:n]
        co = buffer[n:2 * n].view(np.int64)
        _gather_onehot(Y[:, 0], cls, rows, start, stop, wo, co)
        _hist_onehot(Xb, rows, start, stop, wo, co, False, n_sums, hist)
        return
    if identity:
        _hist_dense(Xb, rows, start, stop, Y, True, hist)
        return
    Yo = buffer[:n * Y.shape[1]].reshape(n, Y.shape[1])
    _gather(Y, rows, start, stop, Yo)
    _hist_dense(Xb, rows, start, stop, Yo, False, hist)


@njit(cache=True)
def _is_identity(rows):
    for i in range(rows.shape[0]):
        if rows[i] != i:
            return False
    return True


@njit(parallel=True, cache=True)
def subtract_histogram(parent, child):
    """parent -= child, in place (the parent's buffer becomes the sibling's)."""
    n_features, n_bins, m = parent.shape
    for f in prange(n_features):
        for b in range(n_bins):
            for k in range(m):
                parent[f, b, k] -= child[f, b, k]


@njit(cache=True)
def node_stats(rows, start, stop, Y, cls, onehot, K, C):
    """Sums and counts of rows[start:stop] as one vector (K sums, then C counts)."""
    stats = np.zeros(K + C)
    for ii in range(start, stop):
        i = rows[ii]
        if onehot:
            stats[cls[i]] += Y[i, 0]
            stats[K + cls[i]] += 1.0
        else:
            stats[K] += 1.0
            for k in range(K):
                stats[k] += Y[i, k]
    return stats
