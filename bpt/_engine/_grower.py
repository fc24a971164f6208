"""Tree grower: CART growth to ``max_depth`` on histograms (or exact splits).

Rows of a node are a contiguous range ``rows[start:stop]`` of one index array
that is partitioned in place (stable), so no feature data is ever copied.
Histograms are built only for nodes that may still be split; of two siblings
only the smaller is accumulated and the larger is derived by subtraction in
the parent's buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from ._binning import midpoint
from ._histogram import build_histogram, node_stats, subtract_histogram
from ._splitting import find_split_exact, find_split_hist


@njit(cache=True)
def _partition_binned(rows, start, stop, x_binned, bin_, buf):
    """Stable partition of rows[start:stop] by x_binned[row] <= bin_; returns #left."""
    nl = 0
    nr = 0
    for ii in range(start, stop):
        i = rows[ii]
        if x_binned[i] <= bin_:
            rows[start + nl] = i
            nl += 1
        else:
            buf[nr] = i
            nr += 1
    for j in range(nr):
        rows[start + nl + j] = buf[j]
    return nl


@njit(cache=True)
def _partition_raw(rows, start, stop, X, feature, threshold, buf):
    nl = 0
    nr = 0
    for ii in range(start, stop):
        i = rows[ii]
        if X[i, feature] <= threshold:
            rows[start + nl] = i
            nl += 1
        else:
            buf[nr] = i
            nr += 1
    for j in range(nr):
        rows[start + nl + j] = buf[j]
    return nl


@dataclass
class TrainingData:
    """What the grower needs about the training events."""

    X: np.ndarray            # (N, F) float64, used by exact splits
    Xb: np.ndarray | None    # (F, N) uint8 bin codes, used by histogram splits
    edges: np.ndarray | None  # (F, max_bins - 1) bin edges
    n_bins: np.ndarray | None
    Y: np.ndarray            # (N, K) float64 (BIT) or (N, 1) weights (BPT)
    cls: np.ndarray          # (N,) int64 class / base-point index (zeros for BIT)


@dataclass
class GrownTree:
    feature: np.ndarray      # int64 (n_nodes,), -1 for leaves
    threshold: np.ndarray    # float64, go left if x <= threshold
    left: np.ndarray         # int64 child ids, -1 for leaves
    right: np.ndarray
    value: np.ndarray        # float64 (n_nodes, n_out), node prediction (unscaled)
    gain: np.ndarray         # float64 split gain (0 for leaves)
    n_samples: np.ndarray    # int64 events in node
    leaf_ranges: list        # [(start, stop, update_vector, sums)] for the boosting update


class TreeGrower:
    """Grow one tree for ``loss`` on ``data`` (rows given by ``rows``, permuted in place)."""

    def __init__(self, data, loss, max_depth, min_samples_leaf, min_weight_leaf, split):
        self.data = data
        self.loss = loss
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.min_weight_leaf = float(min_weight_leaf)
        self.split = split
        self._buffer = None       # ordered targets of a node (reused)

    def grow(self, rows):
        """Grow a tree on ``rows`` (int64, permuted in place so each node is a range)."""
        d, loss = self.data, self.loss
        n = rows.shape[0]
        buf = np.empty(n, dtype=rows.dtype)
        K, C = loss.n_sums, loss.n_counts
        hist_mode = self.split == "hist"
        if hist_mode and self._buffer is None:
            # only the smaller child of a split is accumulated: at most n // 2 rows
            self._buffer = np.empty((n // 2 + 1) * max(d.Y.shape[1], 2))
        nodes = []   # dicts: start, stop, depth, stats

        def new_node(start, stop, depth, stats):
            nodes.append(dict(start=start, stop=stop, depth=depth, stats=stats,
                              feature=-1, threshold=0.0, left=-1, right=-1, gain=0.0))
            return len(nodes) - 1

        root = new_node(0, n, 0, node_stats(rows, 0, n, d.Y, d.cls, loss.onehot, K, C))
        hists = {}
        if hist_mode and self.max_depth > 0:
            hists[root] = self._histogram(rows, 0, n)
        stack = [root]
        while stack:
            # depth first (the tree is the same as depth-wise growth, since each node's
            # split depends only on its own events), so that at most about max_depth + 1
            # histograms are alive at once
            nid = stack.pop()
            nd = nodes[nid]
            h = hists.pop(nid, None)
            start, stop = nd["start"], nd["stop"]
            if nd["depth"] >= self.max_depth or stop - start < 2 * self.min_samples_leaf:
                continue
            if hist_mode:
                f, b, gain, left = find_split_hist(
                    h, d.n_bins, nd["stats"], K, loss.kind, loss.P,
                    self.min_samples_leaf, self.min_weight_leaf)
                if f < 0:
                    continue
                thr = d.edges[f, b]
                nl = _partition_binned(rows, start, stop, d.Xb[f], b, buf)
            else:
                f, lo, hi, gain, left = find_split_exact(
                    d.X, rows, start, stop, d.Y, d.cls, loss.onehot, nd["stats"], K,
                    loss.kind, loss.P, self.min_samples_leaf, self.min_weight_leaf)
                if f < 0:
                    continue
                thr = float(midpoint(lo, hi))
                nl = _partition_raw(rows, start, stop, d.X, f, thr, buf)
            mid = start + nl
            depth = nd["depth"] + 1
            lid = new_node(start, mid, depth, left.copy())
            rid = new_node(mid, stop, depth, nd["stats"] - left)
            nd.update(feature=int(f), threshold=thr, left=lid, right=rid, gain=float(gain))
            if hist_mode and depth < self.max_depth:
                small, large = (lid, rid) if nl <= stop - mid else (rid, lid)
                hs = self._histogram(rows, nodes[small]["start"], nodes[small]["stop"])
                subtract_histogram(h, hs)
                hists[small] = hs
                hists[large] = h
            stack += [rid, lid]
        return self._finish(nodes)

    def _histogram(self, rows, start, stop):
        d, loss = self.data, self.loss
        h = np.zeros((d.Xb.shape[0], int(d.n_bins.max()), loss.n_sums + loss.n_counts))
        build_histogram(d.Xb, rows, start, stop, d.Y, d.cls, loss.onehot, loss.n_sums, h,
                        self._buffer)
        return h

    def _finish(self, nodes):
        m = len(nodes)
        value = np.zeros((m, self.loss.n_terms))
        leaf_ranges = []
        for j, nd in enumerate(nodes):
            sums = nd["stats"][:self.loss.n_sums]
            val, upd = self.loss.leaf(sums)
            value[j] = val
            if nd["left"] < 0:
                leaf_ranges.append((nd["start"], nd["stop"], upd, sums))
        return GrownTree(
            feature=np.array([nd["feature"] for nd in nodes], dtype=np.int64),
            threshold=np.array([nd["threshold"] for nd in nodes], dtype=np.float64),
            left=np.array([nd["left"] for nd in nodes], dtype=np.int64),
            right=np.array([nd["right"] for nd in nodes], dtype=np.int64),
            value=value,
            gain=np.array([nd["gain"] for nd in nodes], dtype=np.float64),
            n_samples=np.array([nd["stop"] - nd["start"] for nd in nodes], dtype=np.int64),
            leaf_ranges=leaf_ranges,
        )
