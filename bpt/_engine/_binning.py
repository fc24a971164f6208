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
The edges are found one feature per thread, the mapping runs in parallel over chunks
of rows (branch-free search, see :func:`_map_to_bins`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numba
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


_MAP_CHUNK = 1 << 13
# edges are padded with +inf to this many columns (max_bins <= 255 gives <= 254 edges),
# so that the search is eight fixed steps
_PADDED = 256


@njit(parallel=True, cache=True)
def _map_to_bins(X, rows, edges, missing_code, out):
    """out[f, j] = bin code of X[rows[j], f] (rows: the training rows, so that a
    validation split needs no copy of X).  ``edges`` (n_features, 256), padded with +inf.

    Parallel over chunks of rows; each row's features are read together (one pass over
    a C-ordered X).  The code is the number of edges below x, found by a branch-free
    binary search (eight steps over the 256 padded edges: a data-dependent branch per
    step would be mispredicted half of the time)."""
    n = rows.shape[0]
    n_features = X.shape[1]
    n_chunks = (n + _MAP_CHUNK - 1) // _MAP_CHUNK
    for c in prange(n_chunks):
        j0 = c * _MAP_CHUNK
        j1 = j0 + _MAP_CHUNK if j0 + _MAP_CHUNK < n else n
        for j in range(j0, j1):
            r = rows[j]
            for f in range(n_features):
                out[f, j] = _code(np.float64(X[r, f]), edges[f], missing_code)


@njit(cache=True, inline="always")
def _code(x, e, missing_code):
    """Number of edges e[k] < x (the first edge >= x), or missing_code for NaN."""
    if np.isnan(x):
        return missing_code
    p = 128 * (e[127] < x)
    p += 64 * (e[p + 63] < x)
    p += 32 * (e[p + 31] < x)
    p += 16 * (e[p + 15] < x)
    p += 8 * (e[p + 7] < x)
    p += 4 * (e[p + 3] < x)
    p += 2 * (e[p + 1] < x)
    p += e[p] < x
    return p


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

        def one(f):
            e = self._edges(np.sort(Xs[:, f]))
            edges[f, :len(e)] = e
            n_bins[f] = len(e) + 1

        # one feature per task, on the fit's threads (numpy's sort and partition release
        # the GIL); each feature's edges are computed alone, so they never depend on it
        n_threads = min(numba.get_num_threads(), n_features)
        if n_threads > 1 and Xs.shape[0] * n_features >= 100_000:
            with ThreadPoolExecutor(n_threads) as pool:
                list(pool.map(one, range(n_features)))
        else:
            for f in range(n_features):
                one(f)
        self.edges_ = edges
        self.n_bins_ = n_bins
        self.missing_code_ = int(n_bins.max())
        return self

    def _edges(self, col):
        """Edges of one feature from its sorted values (NaN last, as np.sort puts them);
        one sort serves the distinct values and the quantiles."""
        col = col[:col.shape[0] - np.count_nonzero(np.isnan(col))]
        if col.shape[0] == 0:
            return np.empty(0)
        distinct = col[np.concatenate(([True], col[1:] != col[:-1]))]
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
        edges = np.full((X.shape[1], _PADDED), np.inf)
        edges[:, :self.edges_.shape[1]] = self.edges_
        _map_to_bins(X, np.ascontiguousarray(rows, dtype=np.int64), edges,
                     self.missing_code_, out)
        return out

    def fit_transform(self, X, rows=None):
        return self.fit(X, rows).transform(X, rows)
