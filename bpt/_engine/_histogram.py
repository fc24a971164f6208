"""Histograms: per node, per feature and per bin, the K weighted sums and C counts.

``hist`` has shape (n_features, n_bins, K + C) float64: columns 0..K-1 hold the
loss's weighted sums, columns K..K+C-1 the event counts (exact in float64 up to
2**53 events), so that one bin is one contiguous record.  The kernels run in
parallel over blocks of features (one block per thread, each reading a row's targets
once for all its features); each feature is accumulated by one thread in row order,
so results do not depend on the number of threads.  The subtraction trick
(sibling = parent - child) is done in place in the parent's buffer.

Each thread makes one pass over the node's rows (in increasing row order, as the
partition is stable) and reads each row's targets once for all features of its block.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, inline="always")
def _add_row(hist, f, b, Yo, r, K):
    """hist[f, b, :K] += Yo[r], hist[f, b, K] += 1; unrolled for the common small K (one
    parameter, linear or quadratic)."""
    if K == 2:
        hist[f, b, 0] += Yo[r, 0]
        hist[f, b, 1] += Yo[r, 1]
    elif K == 3:
        hist[f, b, 0] += Yo[r, 0]
        hist[f, b, 1] += Yo[r, 1]
        hist[f, b, 2] += Yo[r, 2]
    else:
        for k in range(K):
            hist[f, b, k] += Yo[r, k]
    hist[f, b, K] += 1.0


@njit(cache=True, inline="always")
def _add_row_2d(h, b, Y, r, K):
    if K == 2:
        h[b, 0] += Y[r, 0]
        h[b, 1] += Y[r, 1]
    elif K == 3:
        h[b, 0] += Y[r, 0]
        h[b, 1] += Y[r, 1]
        h[b, 2] += Y[r, 2]
    else:
        for k in range(K):
            h[b, k] += Y[r, k]
    h[b, K] += 1.0


# kernels called only from compiled code: compiled without their CPython and C wrappers
# (less to compile); calling one from Python crashes the interpreter
_INTERNAL = dict(cache=True, no_cpython_wrapper=True, no_cfunc_wrapper=True)


@njit(parallel=True, **_INTERNAL)
def _hist_dense(Xb, rows, start, stop, Y, identity, hist, n_groups):
    """Features in ``n_groups`` contiguous blocks, one thread per block; a block reads
    each row's targets once for all its features.  Every feature is still accumulated
    by one thread in row order, so the grouping never changes a result.  ``identity``
    (all rows in order): one block per feature, one sequential pass each (fastest).

    One parallel loop only: each ``prange`` costs about a second of compilation.  (Its
    body as a call of a serial function compiles faster but made the non-root
    accumulation 3x slower.)"""
    n_features = Xb.shape[0]
    K = Y.shape[1]
    n_tasks = n_features if identity else n_groups
    for g in prange(n_tasks):
        f0 = g * n_features // n_tasks
        f1 = (g + 1) * n_features // n_tasks
        if identity:
            for f in range(f0, f1):
                x = Xb[f]
                h = hist[f]
                for i in range(start, stop):
                    _add_row_2d(h, x[i], Y, i, K)
        else:
            for ii in range(start, stop):
                i = rows[ii]
                for f in range(f0, f1):
                    _add_row(hist, f, Xb[f, i], Y, i, K)


@njit(parallel=True, **_INTERNAL)
def _hist_onehot(Xb, rows, start, stop, w, cls, identity, n_cls, hist, n_groups):
    n_features = Xb.shape[0]
    n_tasks = n_features if identity else n_groups
    for g in prange(n_tasks):
        f0 = g * n_features // n_tasks
        f1 = (g + 1) * n_features // n_tasks
        if identity:
            for f in range(f0, f1):
                x = Xb[f]
                h = hist[f]
                for i in range(start, stop):
                    k = cls[i]
                    b = x[i]
                    h[b, k] += w[i, 0]
                    h[b, n_cls + k] += 1.0
        else:
            for ii in range(start, stop):
                i = rows[ii]
                k = cls[i]
                wr = w[i, 0]
                for f in range(f0, f1):
                    b = Xb[f, i]
                    hist[f, b, k] += wr
                    hist[f, b, n_cls + k] += 1.0


@njit(cache=True)
def build_histogram(Xb, rows, start, stop, Y, cls, dense, n_sums, hist, buffer, identity,
                    n_threads=1):
    """Accumulate rows[start:stop] into the zeroed ``hist`` (see module docstring).

    ``cls`` None: dense targets ``Y`` (BIT); else the class of each row, ``Y[:, 0]`` its
    weight (BPT, one-hot layout).  ``dense`` None: only the one-hot kernel is compiled
    (the grower passes None for the BPT); any other value is ignored.

    ``buffer`` is unused (kept for the signature).  ``identity``: rows[start:stop] is
    0..N-1.
    ``n_threads``: the features are split into that many blocks (no effect on results).
    """
    g = n_threads if n_threads < Xb.shape[0] else Xb.shape[0]
    if g < 1:
        g = 1
    # decided when compiling (numba prunes ``x is None`` on an argument typed None): a BIT
    # fit (cls None) never compiles the one-hot kernel, a BPT fit (dense None) never the
    # dense one
    if cls is None:
        if dense is not None:
            _hist_dense(Xb, rows, start, stop, Y, identity, hist, g)
    else:
        _hist_onehot(Xb, rows, start, stop, Y, cls, identity, n_sums, hist, g)


@njit(cache=True)
def _is_identity(rows):
    for i in range(rows.shape[0]):
        if rows[i] != i:
            return False
    return True


@njit(cache=True)
def subtract_histogram(parent, child):
    """parent -= child, in place (the parent's buffer becomes the sibling's)."""
    n_features, n_bins, m = parent.shape
    for f in range(n_features):
        for b in range(n_bins):
            for k in range(m):
                parent[f, b, k] -= child[f, b, k]


@njit(**_INTERNAL)
def node_stats_into(stats, rows, start, stop, Y, cls, dense, K, C):
    """Write the sums and counts of rows[start:stop] to ``stats`` (K sums, then C
    counts); markers as :func:`build_histogram`.

    Each sum is accumulated in row order.  For the common sizes (K = 2, 3 dense targets;
    up to 8 classes) the sums are kept in local variables (an array element in the loop
    is stored and reloaded on every row: 3-4x slower); a class's sum adds 0.0 for the
    rows of other classes, which leaves it bit-identical (it starts at +0.0 and never
    becomes -0.0).  The counts are exact integers in float64."""
    for k in range(K + C):
        stats[k] = 0.0
    if cls is None:
        if dense is not None:
            if K == 2:
                a0 = 0.0
                a1 = 0.0
                for ii in range(start, stop):
                    i = rows[ii]
                    a0 += Y[i, 0]
                    a1 += Y[i, 1]
                stats[0] = a0
                stats[1] = a1
                stats[K] = float(stop - start)
            elif K == 3:
                a0 = 0.0
                a1 = 0.0
                a2 = 0.0
                for ii in range(start, stop):
                    i = rows[ii]
                    a0 += Y[i, 0]
                    a1 += Y[i, 1]
                    a2 += Y[i, 2]
                stats[0] = a0
                stats[1] = a1
                stats[2] = a2
                stats[K] = float(stop - start)
            else:
                for ii in range(start, stop):
                    i = rows[ii]
                    stats[K] += 1.0
                    for k in range(K):
                        stats[k] += Y[i, k]
    elif K <= 8:
        a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = 0.0
        n0 = n1 = n2 = n3 = n4 = n5 = n6 = n7 = 0
        for ii in range(start, stop):
            i = rows[ii]
            c = cls[i]
            wr = Y[i, 0]
            a0 += wr if c == 0 else 0.0
            a1 += wr if c == 1 else 0.0
            a2 += wr if c == 2 else 0.0
            a3 += wr if c == 3 else 0.0
            a4 += wr if c == 4 else 0.0
            a5 += wr if c == 5 else 0.0
            a6 += wr if c == 6 else 0.0
            a7 += wr if c == 7 else 0.0
            n0 += c == 0
            n1 += c == 1
            n2 += c == 2
            n3 += c == 3
            n4 += c == 4
            n5 += c == 5
            n6 += c == 6
            n7 += c == 7
        sums = (a0, a1, a2, a3, a4, a5, a6, a7)
        counts = (n0, n1, n2, n3, n4, n5, n6, n7)
        for k in range(K):
            stats[k] = sums[k]
            stats[K + k] = float(counts[k])
    else:
        for ii in range(start, stop):
            i = rows[ii]
            stats[cls[i]] += Y[i, 0]
            stats[K + cls[i]] += 1.0


@njit(cache=True)
def node_stats(rows, start, stop, Y, cls, dense, K, C):
    """Sums and counts of rows[start:stop] as one vector (K sums, then C counts).

    ``cls`` None: dense targets (BIT); else one-hot per class (BPT).
    """
    stats = np.empty(K + C)
    node_stats_into(stats, rows, start, stop, Y, cls, dense, K, C)
    return stats
