"""The fitted ensemble as flat arrays, and one compiled predictor for all trees.

Node ``j`` of the ensemble: ``feature[j]`` (-1 for a leaf), ``threshold[j]``
(go left if x <= threshold), ``left[j]``/``right[j]`` (global node ids),
``value[j]`` (the node's prediction, already multiplied by the tree's learning
rate), ``missing_go_left[j]`` (where a NaN goes; for arrays saved before it existed,
NaN goes to the child with more training events).  Tree ``t`` starts at node
``tree_start[t]``.  X may be float32 or float64 (compared in float64); predictions are
float64.

Linear leaves (docs/concepts.md, "Linear leaves"): leaf j adds, for its terms
q = ``linear_start[j]`` .. ``linear_start[j] + linear_count[j] - 1``,
``linear_slope[q] * (clip(x[linear_feature[q]], linear_lo[q], linear_hi[q]) -
linear_centre[q])`` to its value (the slopes scaled by the learning rate, as the
values; a NaN feature value adds nothing).  ``linear_lo`` / ``linear_hi`` are the
range of the feature among the leaf's training events: beyond it the leaf is
constant, as a tree is.  Ensembles without linear leaves have ``linear_count`` 0
everywhere and empty term arrays (and files written before them lack the fields).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, inline="always")
def goes_left(X, i, j, feature, threshold, mleft):
    """The decision of node j for row i: left if x <= threshold, a NaN as ``mleft[j]``."""
    x = np.float64(X[i, feature[j]])
    if x <= threshold[j]:
        return True
    if x > threshold[j]:
        return False
    return mleft[j]


@njit(cache=True, inline="always")
def _leaf(X, i, j, feature, threshold, left, right, mleft):
    """Leaf reached by row i from node j."""
    while feature[j] >= 0:
        j = left[j] if goes_left(X, i, j, feature, threshold, mleft) else right[j]
    return j


def walk_tables(feature, left, right, tree_start):
    """The tables :func:`_predict` walks: leaves turned into nodes that lead to
    themselves (feature 0, left = right = the leaf), so that every row takes exactly
    ``depth[t]`` steps in tree t (the depth of its deepest leaf) without a test for
    the leaf; returns (feature, left, right, depth), int64.  numpy (no compilation):
    the depths come level by level from the roots of all trees at once."""
    feature = np.asarray(feature, dtype=np.int64)
    tree_start = np.asarray(tree_start, dtype=np.int64)
    leaf = feature < 0
    ids = np.arange(feature.shape[0], dtype=np.int64)
    f = np.where(leaf, 0, feature)
    lo = np.where(leaf, ids, left).astype(np.int64)
    hi = np.where(leaf, ids, right).astype(np.int64)
    if tree_start.shape[0] == 0:
        return f, lo, hi, np.zeros(0, dtype=np.int64)
    node_depth = np.zeros(feature.shape[0], dtype=np.int64)
    level = tree_start
    d = 0
    while level.size:
        level = level[~leaf[level]]
        d += 1
        level = np.concatenate((left[level], right[level])).astype(np.int64)
        node_depth[level] = d
    # the nodes of tree t are tree_start[t] .. tree_start[t + 1] - 1
    return f, lo, hi, np.maximum.reduceat(node_depth, tree_start)


@njit(cache=True, inline="always")
def _step(X, i, j, feature, threshold, left, right, mleft):
    """One branch-free step of row i from node j (a leaf of the walk tables stays)."""
    x = np.float64(X[i, feature[j]])
    go_right = (x > threshold[j]) | ((x != x) & (not mleft[j]))
    lj = left[j]
    return lj + go_right * (right[j] - lj)


@njit(cache=True, inline="always")
def _walk4(X, i0, root, steps, feature, threshold, left, right, mleft):
    """The leaves reached by rows i0..i0+3 from ``root`` in ``steps`` steps, walked side
    by side (see :func:`_predict`)."""
    j0 = j1 = j2 = j3 = root
    for _ in range(steps):
        j0 = _step(X, i0, j0, feature, threshold, left, right, mleft)
        j1 = _step(X, i0 + 1, j1, feature, threshold, left, right, mleft)
        j2 = _step(X, i0 + 2, j2, feature, threshold, left, right, mleft)
        j3 = _step(X, i0 + 3, j3, feature, threshold, left, right, mleft)
    return j0, j1, j2, j3


@njit(parallel=True, cache=True)
def _predict(X, feature, threshold, left, right, mleft, value, tree_start, depth, t0, t1,
             out):
    """Add the leaf values of trees t0..t1-1 to ``out`` for the first 4 * (N // 4) rows
    (:meth:`TreeEnsemble.predict` passes the rest padded to four rows), on the walk
    tables of :func:`walk_tables`.  Four rows walk each tree side by side: their chains
    of dependent loads overlap, and with a fixed number of steps per tree no branch
    depends on the data (2x the rows/s of one walk per row with a leaf test; no tail
    handling here, which would cost 0.9 s more compilation)."""
    n_out = value.shape[1]
    for b in prange(X.shape[0] // 4):
        i0 = 4 * b
        for t in range(t0, t1):
            j0, j1, j2, j3 = _walk4(X, i0, tree_start[t], depth[t], feature, threshold,
                                    left, right, mleft)
            for a in range(n_out):
                out[i0, a] += value[j0, a]
                out[i0 + 1, a] += value[j1, a]
                out[i0 + 2, a] += value[j2, a]
                out[i0 + 3, a] += value[j3, a]


@njit(cache=True, inline="always")
def linear_offset(X, i, q, lfeat, lcentre, llo, lhi):
    """x - centre of linear term q for row i, x clipped to [lo, hi]; 0 for a NaN."""
    x = np.float64(X[i, lfeat[q]])
    if x != x:
        return 0.0
    if x < llo[q]:
        x = llo[q]
    elif x > lhi[q]:
        x = lhi[q]
    return x - lcentre[q]


@njit(cache=True, inline="always")
def _add_leaf(X, i, j, value, lstart, lcount, lfeat, lcentre, llo, lhi, lslope, out):
    """out[i] += leaf j's value and its linear terms at row i."""
    for a in range(value.shape[1]):
        out[i, a] += value[j, a]
    for q in range(lstart[j], lstart[j] + lcount[j]):
        d = linear_offset(X, i, q, lfeat, lcentre, llo, lhi)
        for a in range(value.shape[1]):
            out[i, a] += lslope[q, a] * d


@njit(parallel=True, cache=True)
def _predict_linear(X, feature, threshold, left, right, mleft, value, tree_start, depth, t0,
                    t1, lstart, lcount, lfeat, lcentre, llo, lhi, lslope, out):
    """:func:`_predict` for ensembles with linear leaves (the same four-row walk, the
    same padding of the last rows), then each leaf's value and its linear terms."""
    for b in prange(X.shape[0] // 4):
        i0 = 4 * b
        for t in range(t0, t1):
            j0, j1, j2, j3 = _walk4(X, i0, tree_start[t], depth[t], feature, threshold,
                                    left, right, mleft)
            js = (j0, j1, j2, j3)
            for r in range(4):            # one inlined body: 2.6 s to compile, 6.4 s for four
                _add_leaf(X, i0 + r, js[r], value, lstart, lcount, lfeat, lcentre, llo,
                          lhi, lslope, out)


@njit(parallel=True, cache=True)
def _apply(X, feature, threshold, left, right, mleft, tree_start, out):
    for i in prange(X.shape[0]):
        for t in range(tree_start.shape[0]):
            out[i, t] = _leaf(X, i, tree_start[t], feature, threshold, left, right, mleft)


class TreeEnsemble:
    """Flat arrays of all trees; append trees while boosting, predict at once."""

    # per node, from a GrownTree
    NODE_FIELDS = ("feature", "threshold", "left", "right", "value", "gain", "n_samples",
                   "missing_go_left")
    # per node: the leaf's linear terms (GrownTree.linear)
    LINEAR_NODE_FIELDS = ("linear_start", "linear_count")
    # per linear term
    LINEAR_FIELDS = ("linear_feature", "linear_centre", "linear_lo", "linear_hi",
                     "linear_slope")
    FIELDS = NODE_FIELDS + LINEAR_NODE_FIELDS + LINEAR_FIELDS + ("tree_start",
                                                                  "learning_rates")
    # absent from files written before them: from_arrays fills their default
    OPTIONAL_FIELDS = ("missing_go_left",) + LINEAR_NODE_FIELDS + LINEAR_FIELDS
    # the one dtype table of the ensemble arrays (built, saved, loaded and checked with it)
    DTYPES = {"feature": np.int64, "threshold": np.float64, "left": np.int64,
              "right": np.int64, "value": np.float64, "gain": np.float64,
              "n_samples": np.int64, "missing_go_left": np.bool_,
              "linear_start": np.int64, "linear_count": np.int64,
              "linear_feature": np.int64, "linear_centre": np.float64,
              "linear_lo": np.float64, "linear_hi": np.float64, "linear_slope": np.float64,
              "tree_start": np.int64, "learning_rates": np.float64}

    def __init__(self, n_out):
        self.n_out = n_out
        self._parts = []          # (node fields of a tree, learning_rate) while boosting
        self._flat = None         # cache of the flat arrays
        self._walk = None         # (flat arrays, their walk tables) for predict

    @classmethod
    def from_arrays(cls, arrays):
        ens = cls(arrays["value"].shape[1])
        arrays = dict(arrays)
        if "missing_go_left" not in arrays:
            arrays["missing_go_left"] = default_missing_go_left(
                arrays["left"], arrays["right"], arrays["n_samples"])
        n, n_out = arrays["value"].shape
        for k in cls.LINEAR_NODE_FIELDS:
            arrays.setdefault(k, np.zeros(n, dtype=np.int64))
        for k in cls.LINEAR_FIELDS:
            arrays.setdefault(k, np.zeros((0, n_out) if k == "linear_slope" else 0,
                                          dtype=cls.DTYPES[k]))
        ens._flat = {k: np.ascontiguousarray(arrays[k]) for k in cls.FIELDS}
        ens._parts = None         # a loaded ensemble is read-only
        return ens

    def add(self, tree, learning_rate):
        """Append a grown tree.  Only its node fields (and linear leaves) are kept (not
        the per-row boosting update of a :class:`GrownTree`, which is as long as the
        training set)."""
        part = {k: getattr(tree, k) for k in self.NODE_FIELDS}
        part["linear"] = getattr(tree, "linear", None)
        self._parts.append((part, float(learning_rate)))
        self._flat = None

    @property
    def has_linear(self):
        """True when some leaf has linear terms."""
        if self._parts is not None and self._flat is None:
            return any(p["linear"] is not None and p["linear"]["feature"].shape[0]
                       for p, _ in self._parts)
        return self.arrays["linear_feature"].shape[0] > 0

    def truncate(self, n_trees):
        """Keep the first ``n_trees`` trees (early stopping)."""
        if self._parts is not None:
            del self._parts[n_trees:]
            self._flat = None
        else:
            a = self.arrays
            end = a["tree_start"][n_trees] if n_trees < self.n_trees else a["feature"].shape[0]
            n_lin = int(a["linear_count"][:end].sum())
            self._flat = {k: a[k][:end] for k in self.NODE_FIELDS + self.LINEAR_NODE_FIELDS}
            self._flat.update({k: a[k][:n_lin] for k in self.LINEAR_FIELDS})
            self._flat.update(tree_start=a["tree_start"][:n_trees],
                              learning_rates=a["learning_rates"][:n_trees])

    @property
    def n_trees(self):
        return len(self._parts) if self._parts is not None else len(self._flat["tree_start"])

    @property
    def arrays(self):
        """Dict of flat arrays (the form that is saved and predicted from)."""
        if self._flat is None:
            self._flat = self._flatten(self._parts)
        return self._flat

    def _flatten(self, parts):
        fields = {k: [] for k in self.NODE_FIELDS + self.LINEAR_NODE_FIELDS
                  + self.LINEAR_FIELDS}
        start = []
        offset = n_lin = 0
        for tree, rate in parts:
            start.append(offset)
            m = tree["feature"].shape[0]
            internal = tree["left"] >= 0
            for k in ("feature", "threshold", "gain", "n_samples", "missing_go_left"):
                fields[k].append(tree[k])
            fields["left"].append(np.where(internal, tree["left"] + offset, -1))
            fields["right"].append(np.where(internal, tree["right"] + offset, -1))
            fields["value"].append(tree["value"] * rate)
            lin = tree.get("linear")
            if lin is None:
                fields["linear_start"].append(np.zeros(m, dtype=np.int64))
                fields["linear_count"].append(np.zeros(m, dtype=np.int64))
            else:
                fields["linear_start"].append(lin["start"] + n_lin)
                fields["linear_count"].append(lin["count"])
                for k in ("feature", "centre", "lo", "hi"):
                    fields["linear_" + k].append(lin[k])
                fields["linear_slope"].append(lin["slope"] * rate)
                n_lin += lin["feature"].shape[0]
            offset += m
        out = {}
        for k, xs in fields.items():
            empty = np.zeros((0, self.n_out) if k in ("value", "linear_slope") else 0)
            out[k] = np.ascontiguousarray(np.concatenate(xs) if xs else empty,
                                          dtype=self.DTYPES[k])
        out["tree_start"] = np.array(start, dtype=self.DTYPES["tree_start"])
        out["learning_rates"] = np.array([r for _, r in parts],
                                         dtype=self.DTYPES["learning_rates"])
        return out

    def predict(self, X, start=0, stop=None, out=None):
        """Sum of the (scaled) leaf values of trees start..stop-1, added to ``out``."""
        stop = self.n_trees if stop is None else stop
        if self._parts is not None and self._flat is None and stop > start:
            # while boosting: flatten only these trees (per-tree validation stays O(1))
            a = self._flatten(self._parts[start:stop])
            walk = walk_tables(a["feature"], a["left"], a["right"], a["tree_start"])
            start, stop = 0, stop - start
        else:
            a = self.arrays
            walk = self._walk_tables()
        if out is None:
            out = np.zeros((X.shape[0], self.n_out))
        n = X.shape[0]
        if stop > start and n > 0:
            f, lo, hi, depth = walk
            args = (f, a["threshold"], lo, hi, a["missing_go_left"], a["value"],
                    a["tree_start"], depth, start, stop)
            if a["linear_feature"].shape[0] > 0:
                kernel = _predict_linear
                args = args + tuple(a[k] for k in self.LINEAR_NODE_FIELDS
                                    + self.LINEAR_FIELDS)
            else:
                kernel = _predict
            kernel(X, *args, out)
            n4 = n - n % 4
            if n4 < n:
                # the last 1-3 rows, padded with copies of the last one; their sums start
                # from out as the others do (the same additions in the same order)
                pad = np.empty((4, X.shape[1]), dtype=X.dtype)
                pad[:n - n4] = X[n4:]
                pad[n - n4:] = X[n - 1]
                tail = np.zeros((4, self.n_out))
                tail[:n - n4] = out[n4:]
                kernel(pad, *args, tail)
                out[n4:] = tail[:n - n4]
        return out

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_walk"] = None                     # derived: not pickled
        return state

    def _walk_tables(self):
        """:func:`walk_tables` of the flat arrays, made once per state of the ensemble."""
        a = self.arrays
        walk = getattr(self, "_walk", None)      # pickles of older versions lack it
        if walk is None or walk[0] is not a:
            self._walk = (a, walk_tables(a["feature"], a["left"], a["right"],
                                         a["tree_start"]))
        return self._walk[1]

    def apply(self, X):
        """Leaf node id (global) of every row in every tree: (N, n_trees) int64."""
        a = self.arrays
        out = np.empty((X.shape[0], self.n_trees), dtype=np.int64)
        _apply(X, a["feature"], a["threshold"], a["left"], a["right"], a["missing_go_left"],
               a["tree_start"], out)
        return out


def default_missing_go_left(left, right, n_samples):
    """Missing-value sides for ensembles saved without them: the child with more
    training events (ties: left), the rule the grower uses where a node saw no NaN."""
    left = np.asarray(left)
    internal = left >= 0
    nl = np.where(internal, n_samples[np.maximum(left, 0)], 0)
    nr = np.where(internal, n_samples[np.maximum(np.asarray(right), 0)], 0)
    return internal & (nl >= nr)
