"""Binning: map float features to uint8 bin codes with per-feature quantile edges.

A feature with at most ``max_bins`` distinct values (in the subsample used to
find edges) gets one bin per value, with edges at the midpoints between
consecutive values, so that histogram splits equal exact splits.  Otherwise the
edges are quantiles.  A value ``x`` falls into bin ``b`` when
``edges[b-1] < x <= edges[b]``, so the split "code <= b" is the same as the
raw-feature rule "x <= edges[b]" that the predictor uses.

Missing values (NaN) get their own bin ``missing_code_`` (one above the largest
bin of any feature); edges are found on the non-missing values.  float32 and
float64 X are mapped without a copy (comparisons in float64, as in prediction).
The mapping runs in parallel over (feature, row-chunk) blocks.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .._validation import check_random_state

__all__ = ["BinMapper", "midpoint"]


def midpoint(lo, hi):
    """A threshold t with lo <= t < hi (midpoint unless rounding would reach hi)."""
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    mid = 0.5 * lo + 0.5 * hi          # no overflow even for |x| ~ 1e308
    return np.where(mid >= hi, lo, mid)


_MAP_CHUNK = 1 << 15


@njit(parallel=True, cache=True)
def _map_to_bins(X, rows, edges, n_edges, missing_code, out):
    """out[f, j] = bin code of X[rows[j], f] (rows: the training rows, so that a
    validation split needs no copy of X)."""
    n = rows.shape[0]
    n_features = X.shape[1]
    n_chunks = (n + _MAP_CHUNK - 1) // _MAP_CHUNK
    for job in prange(n_features * n_chunks):
        f = job // n_chunks
        c = job - f * n_chunks
        i1 = (c + 1) * _MAP_CHUNK
        _map_block(X, rows, f, c * _MAP_CHUNK, i1 if i1 < n else n, edges[f], n_edges[f],
                   missing_code, out[f])


@njit(cache=True, no_cpython_wrapper=True, no_cfunc_wrapper=True)
def _map_block(X, rows, f, j0, j1, e, ne, missing_code, out):
    """Bin codes of rows[j0:j1] of feature f (the body of :func:`_map_to_bins`: a
    parallel loop with a small body compiles faster)."""
    for j in range(j0, j1):
        x = np.float64(X[rows[j], f])
        if np.isnan(x):
            out[j] = missing_code
            continue
        lo = 0
        hi = ne
        while lo < hi:  # first edge >= x
            mid = (lo + hi) >> 1
            if e[mid] < x:
                lo = mid + 1
            else:
                hi = mid
        out[j] = lo


class BinMapper:
    """Find bin edges on (a subsample of) X and map X to uint8 codes.

    Attributes
    ----------
    edges_ : float64 array (n_features, max_bins - 1), padded with +inf
    n_bins_ : int64 array (n_features,), number of (non-missing) bins of each feature
    missing_code_ : int, the bin code of NaN (``n_bins_.max()``)
    """

    def __init__(self, max_bins=255, subsample=200_000, random_state=None):
        self.max_bins = max_bins
        self.subsample = subsample
        self.random_state = random_state

    def fit(self, X, rows=None):
        """Edges from the rows ``rows`` of X (None: all rows)."""
        n = X.shape[0] if rows is None else rows.shape[0]
        idx = self.sample_indices(n)
        if idx is None:
            return self.fit_sample(X if rows is None else X[rows])
        return self.fit_sample(X[idx if rows is None else rows[idx]])

    def sample_indices(self, n):
        """The sorted positions (of ``n`` rows) whose values give the edges, drawn from
        ``random_state``; None when all rows are used.  ``fit(X)`` is
        ``fit_sample(X[sample_indices(len(X))])`` (used by ``bpt.dask``, whose workers
        send only these rows)."""
        if self.subsample is not None and n > self.subsample:
            rng = check_random_state(self.random_state)
            return np.sort(rng.choice(n, self.subsample, replace=False))
        return None

    def fit_sample(self, Xs):
        """Edges from the rows ``Xs`` already drawn by :meth:`sample_indices`."""
        if not 2 <= self.max_bins <= 255:
            raise ValueError(f"max_bins must be in [2, 255], got {self.max_bins}")
        Xs = np.asarray(Xs, dtype=np.float64)
        n_features = Xs.shape[1]
        edges = np.full((n_features, self.max_bins - 1), np.inf)
        n_bins = np.ones(n_features, dtype=np.int64)
        for f in range(n_features):
            e = self._edges(Xs[:, f])
            edges[f, :len(e)] = e
            n_bins[f] = len(e) + 1
        self.edges_ = edges
        self.n_bins_ = n_bins
        self.missing_code_ = int(n_bins.max())
        return self

    def _edges(self, col):
        col = col[~np.isnan(col)]
        if col.shape[0] == 0:
            return np.empty(0)
        distinct = np.unique(col)
        if len(distinct) <= self.max_bins:
            return midpoint(distinct[:-1], distinct[1:])
        qs = np.linspace(0, 100, self.max_bins + 1)[1:-1]
        e = np.unique(np.percentile(col, qs, method="midpoint"))
        # an edge equal to the largest value would leave the last bin empty
        return e[e < distinct[-1]]

    def transform(self, X, rows=None):
        """Bin codes of the rows ``rows`` of X (None: all rows), feature-major: uint8
        array (n_features, n_rows)."""
        if X.dtype not in (np.float32, np.float64):
            X = np.asarray(X, dtype=np.float64)
        if rows is None:
            rows = np.arange(X.shape[0], dtype=np.int64)
        out = np.empty((X.shape[1], rows.shape[0]), dtype=np.uint8)
        _map_to_bins(X, np.ascontiguousarray(rows, dtype=np.int64), self.edges_,
                     self.n_bins_ - 1, self.missing_code_, out)
        return out

    def fit_transform(self, X, rows=None):
        return self.fit(X, rows).transform(X, rows)
