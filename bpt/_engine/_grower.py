"""Tree grower: one whole tree in compiled code (``split="hist"``), or the sort-based
reference grower (``split="exact"``, small data).

Rows of a node are a contiguous range ``rows[start:stop]`` of one index array
that is partitioned in place (stable, so no result depends on the number of
threads), so no feature data is ever copied.  Each node's best split is found
when the node is created, from its histogram; of two siblings only the smaller
is accumulated and the larger is derived by subtraction in the parent's buffer.

Growth order:

* depth first (default): the tree equals depth-wise growth, since each node's split
  depends only on its own events; at most ``max_depth + 2`` histograms are alive.
* best first (``max_leaf_nodes``): the open node with the largest gain is split
  next (ties: the smaller node id), until ``max_leaf_nodes`` leaves; at most
  ``max_leaf_nodes + 1`` histograms are alive.

``max_features`` < n_features draws that many features per node from a
counter-based generator seeded per tree (independent of threads).
Missing values (NaN) have their own bin; a split sends them to the side
learned in training, or, if the node saw none, to the child with more events.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from numba import njit, prange

from ._binning import midpoint
from ._histogram import (_hist_dense, _hist_onehot, node_stats, node_stats_into,
                         subtract_histogram)
from ._splitting import best_split_hist, find_split_exact, split_workspace

NO_DEPTH_LIMIT = 1 << 30
MAX_POOL = 32
# kernels called only from compiled code: compiled without their CPython and C wrappers
# (less to compile); calling one from Python crashes the interpreter
_INTERNAL = dict(cache=True, no_cpython_wrapper=True, no_cfunc_wrapper=True)


@njit(**_INTERNAL)
def _evict(open_, n_open, slot, c_gain, free, n_free):
    """Free the histogram of the open node with the smallest gain; new n_free."""
    jw = -1
    for j in range(n_open):
        a = open_[j]
        if slot[a] >= 0 and (jw < 0 or c_gain[a] < c_gain[open_[jw]]):
            jw = j
    a = open_[jw]
    free[n_free] = slot[a]
    slot[a] = -1
    return n_free + 1


# ------------------------------------------------------------------- partition
@njit(cache=True, inline="always")
def _goes_left(code, bin_, mleft, mcode):
    """Left if code <= bin_; the missing code (above every bin) goes left if ``mleft``.
    Branch-free: a split sends rows left or right at random, and a data-dependent
    branch would be mispredicted about half of the time."""
    return (code <= bin_) | (mleft & (code == mcode))


@njit(cache=True, inline="always")
def _split_range(rows, a, z, x_binned, bin_, mleft, mcode, buf, b0):
    """The rows[a:z] going left, in order, to rows[a:a + nl]; those going right, in order,
    to buf[b0:b0 + nr]; returns nl.  Both writes are made and one is kept (a + nl <= ii:
    never overwrites an unread row)."""
    nl = 0
    nr = 0
    for ii in range(a, z):
        i = rows[ii]
        g = _goes_left(x_binned[i], bin_, mleft, mcode)
        rows[a + nl] = i
        buf[b0 + nr] = i
        nl += g
        nr += 1 - g
    return nl


@njit(**_INTERNAL)
def _partition_serial(rows, start, stop, x_binned, bin_, mleft, mcode, buf):
    nl = _split_range(rows, start, stop, x_binned, bin_, mleft, mcode, buf, 0)
    nr = stop - start - nl
    for j in range(nr):
        rows[start + nl + j] = buf[j]
    return nl


# nodes with fewer rows are partitioned serially (a parallel launch costs ~10-50 us)
PARALLEL_PARTITION_MIN = 1 << 16


@njit(parallel=True, **_INTERNAL)
def _partition_chunks(rows, start, stop, x_binned, bin_, mleft, mcode, buf, counts):
    """Phase 1 of the parallel partition: chunk c of rows[start:stop] (``counts.shape[0]``
    chunks) keeps its left rows, in order, at the start of its own range of ``rows`` and
    writes its right rows, in order, to the same positions of ``buf`` (offset -start);
    ``counts[c]`` = its number of left rows."""
    m = stop - start
    n_chunks = counts.shape[0]
    for c in prange(n_chunks):
        a = start + c * m // n_chunks
        z = start + (c + 1) * m // n_chunks
        counts[c] = _split_range(rows, a, z, x_binned, bin_, mleft, mcode, buf, a - start)


@njit(**_INTERNAL)
def _partition(rows, start, stop, x_binned, bin_, mleft, mcode, buf, counts):
    """Stable partition of rows[start:stop] (see :func:`partition_binned`): serial below
    ``PARALLEL_PARTITION_MIN`` rows or with one chunk, else each of ``counts.shape[0]``
    chunks is partitioned by one thread, then the chunks' left rows are moved together
    (each to a lower position: a forward copy never overwrites an unread row) and the
    right rows copied after them.  The order is the same in both ways."""
    m = stop - start
    n_chunks = counts.shape[0]
    if n_chunks < 2 or m < PARALLEL_PARTITION_MIN:
        return _partition_serial(rows, start, stop, x_binned, bin_, mleft, mcode, buf)
    _partition_chunks(rows, start, stop, x_binned, bin_, mleft, mcode, buf, counts)
    dst = start
    for c in range(n_chunks):
        a = start + c * m // n_chunks
        for j in range(counts[c]):
            rows[dst + j] = rows[a + j]
        dst += counts[c]
    nl = dst - start
    for c in range(n_chunks):
        a = start + c * m // n_chunks
        z = start + (c + 1) * m // n_chunks
        nr = z - a - counts[c]
        for j in range(nr):
            rows[dst + j] = buf[a - start + j]
        dst += nr
    return nl


@njit(cache=True)
def partition_binned(rows, start, stop, x_binned, bin_, mleft, mcode, buf, n_threads=1):
    """Stable partition of rows[start:stop]: left if code <= bin_ (missing code: if
    ``mleft``); returns the number of rows going left.  With ``n_threads`` > 1, nodes
    of at least ``PARALLEL_PARTITION_MIN`` rows are partitioned in that many chunks in
    parallel (the branch-free serial pass costs about 4-5 ns per row; the result does
    not depend on the number of threads).  ``buf``: int64, at least stop - start."""
    counts = np.empty(max(n_threads, 1), dtype=np.int64)
    return _partition(rows, start, stop, x_binned, bin_, mleft, mcode, buf, counts)


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


# ------------------------------------------------------------------- feature draws
@njit(cache=True, inline="always")
def _splitmix(state):
    state = (state + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    z = state
    z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & np.uint64(
        0xFFFFFFFFFFFFFFFF)
    z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & np.uint64(
        0xFFFFFFFFFFFFFFFF)
    return state, z ^ (z >> np.uint64(31))


@njit(**_INTERNAL)
def _draw_into(n_features, n_draw, seed, node, perm, chosen, out):
    """Write the sorted ``n_draw`` drawn features to ``out[:n_draw]`` (``n_draw`` <
    ``n_features``; ``perm``, ``chosen``: work arrays of length ``n_features``)."""
    for f in range(n_features):
        perm[f] = f
        chosen[f] = False
    state = np.uint64(seed) ^ (np.uint64(node + 1) * np.uint64(0xD1B54A32D192ED03))
    for j in range(n_draw):
        state, r = _splitmix(state)
        k = j + np.int64(r % np.uint64(n_features - j))
        t = perm[j]
        perm[j] = perm[k]
        perm[k] = t
    # the drawn features in increasing order (no sort: it would compile numba's quicksort)
    for j in range(n_draw):
        chosen[perm[j]] = True
    k = 0
    for f in range(n_features):
        if chosen[f]:
            out[k] = f
            k += 1


@njit(cache=True)
def _draw_features(n_features, n_draw, seed, node, perm, chosen, out):
    _draw_into(n_features, n_draw, seed, node, perm, chosen, out)


def draw_features(n_features, n_draw, seed, node):
    """Sorted ``n_draw`` distinct features out of ``n_features`` for node ``node`` of
    the tree seeded with ``seed`` (partial Fisher-Yates on a splitmix64 stream)."""
    if n_draw >= n_features:
        return np.arange(n_features, dtype=np.int64)
    perm = np.empty(n_features, dtype=np.int64)
    out = np.empty(n_features, dtype=np.int64)
    _draw_features(n_features, n_draw, np.uint64(seed), node, perm,
                   np.empty(n_features, dtype=np.bool_), out)
    return out[:n_draw]


# ------------------------------------------------------------------- the grower
@njit(cache=True, inline="always")
def _histogram(Xb, rows, start, stop, Y, cls, dense, K, hist, identity, n_groups):
    """:func:`build_histogram` inside the grower (one call level less to compile)."""
    if cls is None:
        if dense is not None:
            _hist_dense(Xb, rows, start, stop, Y, identity, hist, n_groups)
    else:
        _hist_onehot(Xb, rows, start, stop, Y, cls, identity, K, hist, n_groups)


# rows of the int64 node table ``inode`` (one column per node) of grow_tree
_I_START, _I_STOP, _I_DEPTH, _I_FEATURE, _I_BIN, _I_LEFT, _I_RIGHT, _I_SLOT = range(8)
_I_CFEAT, _I_CBIN, _I_OPEN = 8, 9, 10
_N_INODE = 11
# their values before a tree is grown (the open-node stack needs none)
_INODE_INIT = np.array([0, 0, 0, -1, 0, -1, -1, -1, -1, 0, 0], dtype=np.int64)


def _capacity(n, max_depth, max_leaves, min_samples):
    """Most nodes a tree can have, and the number of histogram buffers it needs."""
    best_first = max_leaves > 0
    # every leaf holds >= min_samples rows; a tree of depth d has < 2^(d+1) nodes
    cap = 2 * (n // max(min_samples, 1)) + 1
    if max_depth < 40:
        cap = min(cap, (1 << (max_depth + 1)) - 1)
    if best_first:
        cap = min(cap, 2 * max_leaves - 1)
    cap = max(cap, 1)
    # best first keeps the histograms of open nodes for the subtraction; beyond
    # MAX_POOL of them the open node with the smallest gain loses its histogram (its
    # split is already known; its children are then both accumulated)
    n_slots = min(max_leaves + 1, MAX_POOL) if best_first else (min(max_depth, 62) + 2)
    n_slots = max(min(n_slots, cap + 1), 1)
    return cap, n_slots


@njit(cache=True)
def grow_tree(Xb, Y, cls, dense, n_bins, mcode, rows, identity_root, K, C, lp, max_depth,
              max_leaves, min_samples, min_weight, n_draw, seed, order_buf, part_buf,
              n_threads, best_first, pool, free, inode, bnode, fnode, snode, all_feats,
              draw_work, split_ws):
    """Grow one tree on rows (permuted in place so that each node is a range).

    ``cls`` None (BIT, dense targets ``Y``) or ``dense`` None (BPT, classes ``cls``,
    weights ``Y[:, 0]``): the loss is selected when numba compiles (see _splitting).
    The work arrays are allocated and initialised by the caller (:class:`TreeGrower`):
    ``pool`` (n_slots, F, B, K + C) histograms, ``free`` (n_slots,), ``inode``
    (_N_INODE, cap) int64, ``bnode`` (3, cap) bool (missing_left, candidate
    missing_left, candidate has missing), ``fnode`` (2, cap) float (gain, candidate
    gain), ``snode`` (2, cap, K + C) float (stats, candidate left stats), ``all_feats``
    = arange(F), ``draw_work`` (perm, chosen, drawn; None when every feature is a
    candidate at every node), ``split_ws`` (see :func:`split_workspace`).
    ``max_leaves`` <= 0 means depth-first growth without a leaf limit; then
    ``best_first`` must be None (else True).  The None arguments remove the code of
    the options not used from the compiled grower (numba prunes ``x is None`` on
    arguments typed None), so that a default fit does not compile them.  Returns the number of nodes; the node arrays are the first columns of
    ``inode`` / ``bnode`` / ``fnode`` / ``snode[0]``.
    """
    n = rows.shape[0]
    F = Xb.shape[0]
    M = K + C
    cap = inode.shape[1]
    n_slots = pool.shape[0]
    for s in range(n_slots):
        free[s] = n_slots - 1 - s
    n_free = n_slots

    start = inode[_I_START]
    stop = inode[_I_STOP]
    depth = inode[_I_DEPTH]
    feature = inode[_I_FEATURE]
    bin_ = inode[_I_BIN]
    left = inode[_I_LEFT]
    right = inode[_I_RIGHT]
    slot = inode[_I_SLOT]
    c_feat = inode[_I_CFEAT]
    c_bin = inode[_I_CBIN]
    open_ = inode[_I_OPEN]            # stack (depth first) or open set (best first)
    mleft = bnode[0]
    c_mleft = bnode[1]
    c_has = bnode[2]
    gain = fnode[0]
    c_gain = fnode[1]
    stats = snode[0]
    c_left = snode[1]

    node_stats_into(stats[0], rows, 0, n, Y, cls, dense, K, C)
    stop[0] = n
    n_nodes = 1
    n_leaves = 1
    n_open = 0
    not_root = identity_root and n < 0        # False, typed bool (not a literal)
    # features per histogram task (see build_histogram)
    n_groups = n_threads if n_threads < F else F
    if n_groups < 1:
        n_groups = 1
    part_counts = np.empty(n_threads if n_threads > 1 else 1, dtype=np.int64)

    if max_depth > 0 and n >= 2 * min_samples:
        n_free -= 1
        s = free[n_free]
        slot[0] = s
        pool[s] = 0.0
        # the argument types of every build_histogram call are the same (no literal 0 or
        # False), so that numba compiles it (and its parallel kernel) once
        _histogram(Xb, rows, start[0], stop[0], Y, cls, dense, K, pool[s], identity_root,
                   n_groups)

    for it in range(cap + 1):
        # ---- find the splits of the nodes created last (root, or two children)
        lo = 0 if it == 0 else n_nodes - 2
        for nid in range(lo, n_nodes):
            s = slot[nid]
            if s < 0:
                continue
            if depth[nid] < max_depth and stop[nid] - start[nid] >= 2 * min_samples:
                feats = all_feats
                if draw_work is not None:
                    if n_draw < F:
                        perm, chosen, drawn = draw_work
                        _draw_into(F, n_draw, seed, nid, perm, chosen, drawn)
                        feats = drawn[:n_draw]
                f, b, ml, has, g, ls = best_split_hist(pool[s], feats, n_bins, mcode,
                                                       stats[nid], K, dense, cls, lp,
                                                       min_samples, min_weight, split_ws)
                if f >= 0:
                    c_feat[nid] = f
                    c_bin[nid] = b
                    c_mleft[nid] = ml
                    c_has[nid] = has
                    c_gain[nid] = g
                    for k in range(M):
                        c_left[nid, k] = ls[k]
            if c_feat[nid] < 0:
                free[n_free] = s          # a leaf: release its histogram
                n_free += 1
                slot[nid] = -1
        if it == 0:
            if c_feat[0] >= 0:
                open_[0] = 0
                n_open = 1
        else:
            # depth first: push right, then left (left is split next)
            for nid in (n_nodes - 1, n_nodes - 2):
                if c_feat[nid] >= 0:
                    open_[n_open] = nid
                    n_open += 1
        if n_open == 0:
            break
        if best_first is not None:
            if n_leaves >= max_leaves:
                break
        # ---- pick the node to split
        if best_first is not None:
            jbest = 0
            for j in range(1, n_open):
                a = open_[j]
                bb = open_[jbest]
                if c_gain[a] > c_gain[bb] or (c_gain[a] == c_gain[bb] and a < bb):
                    jbest = j
            nid = open_[jbest]
            open_[jbest] = open_[n_open - 1]
            n_open -= 1
        else:
            n_open -= 1
            nid = open_[n_open]
        # ---- split it
        f = c_feat[nid]
        b = c_bin[nid]
        a0 = start[nid]
        a1 = stop[nid]
        nl = _partition(rows, a0, a1, Xb[f], b, c_mleft[nid], mcode, part_buf, part_counts)
        mid = a0 + nl
        lid = n_nodes
        rid = n_nodes + 1
        n_nodes += 2
        n_leaves += 1
        feature[nid] = f
        bin_[nid] = b
        gain[nid] = c_gain[nid]
        left[nid] = lid
        right[nid] = rid
        # missing values: the learned side, or the child with more events if none seen
        mleft[nid] = c_mleft[nid] if c_has[nid] else nl >= a1 - mid
        d = depth[nid] + 1
        start[lid] = a0
        stop[lid] = mid
        start[rid] = mid
        stop[rid] = a1
        depth[lid] = d
        depth[rid] = d
        for k in range(M):
            stats[lid, k] = c_left[nid, k]
            stats[rid, k] = stats[nid, k] - c_left[nid, k]
        s = slot[nid]
        slot[nid] = -1
        more = d < max_depth and (nl >= 2 * min_samples or a1 - mid >= 2 * min_samples)
        if best_first is not None:
            more = more and n_leaves < max_leaves
        if more:
            small, large = (lid, rid) if nl <= a1 - mid else (rid, lid)
            if best_first is not None:
                if n_free == 0:
                    n_free = _evict(open_, n_open, slot, c_gain, free, n_free)
            n_free -= 1
            s2 = free[n_free]
            pool[s2] = 0.0
            _histogram(Xb, rows, start[small], stop[small], Y, cls, dense, K, pool[s2],
                       not_root, n_groups)
            slot[small] = s2
            if s >= 0:
                subtract_histogram(pool[s], pool[s2])
            if best_first is not None:
                if s < 0:
                    # the parent's histogram was evicted (best first, pool full): build both
                    if n_free == 0:
                        n_free = _evict(open_, n_open, slot, c_gain, free, n_free)
                    n_free -= 1
                    s = free[n_free]
                    pool[s] = 0.0
                    _histogram(Xb, rows, start[large], stop[large], Y, cls, dense, K,
                               pool[s], not_root, n_groups)
            slot[large] = s
        elif s >= 0:
            free[n_free] = s
            n_free += 1
    return n_nodes


@njit(cache=True)
def leaf_of_rows(rows, leaf_start, leaf_stop, out):
    """out[rows[p]] = k for every position p of leaf k (the leaf of every row, by row):
    the boosting update then walks the rows in order (one pass over the targets) instead
    of leaf by leaf (a pass over most of their cache lines per leaf)."""
    for k in range(leaf_start.shape[0]):
        for p in range(leaf_start[k], leaf_stop[k]):
            out[rows[p]] = k


@njit(parallel=True, cache=True)
def route_binned(Xb, feature, bin_, mleft, left, right, mcode, leaf_index, out):
    """Leaf index of every row (0..N-1) walked through the tree on its bin codes."""
    for i in prange(Xb.shape[1]):
        j = 0
        while feature[j] >= 0:
            # branch-free choice of the child (a branch is mispredicted half the time):
            # 7.3 -> 5.4 ms for 700k rows through a depth-4 tree on 2 threads
            g = _goes_left(Xb[feature[j], i], bin_[j], mleft[j], mcode)
            r = right[j]
            j = r + (left[j] - r) * g
        out[i] = leaf_index[j]


@njit(parallel=True, cache=True)
def route_raw(X, feature, threshold, left, right, leaf_index, out):
    for i in prange(X.shape[0]):
        j = 0
        while feature[j] >= 0:
            if X[i, feature[j]] <= threshold[j]:
                j = left[j]
            else:
                j = right[j]
        out[i] = leaf_index[j]


# ------------------------------------------------------------------- Python side
@dataclass
class TrainingData:
    """What the grower needs about the training events."""

    X: np.ndarray            # (N, F) float, used by exact splits (hist: only its F)
    Xb: np.ndarray | None    # (F, N) uint8 bin codes, used by histogram splits
    edges: np.ndarray | None  # (F, max_bins - 1) bin edges
    n_bins: np.ndarray | None
    Y: np.ndarray            # (N, K) float64 (BIT) or (N, 1) weights (BPT)
    cls: np.ndarray          # (N,) int64 class / base-point index (zeros for BIT)
    missing_code: int = 255  # bin code of NaN (one above the largest bin)
    x_rows: np.ndarray | None = None  # hist: row i is X[x_rows[i]] (None: X[i])

    def feature_rows(self):
        """int64 index of each training row in X (see ``x_rows``)."""
        if self.x_rows is None:
            return np.arange(self.Y.shape[0], dtype=np.int64)
        return np.asarray(self.x_rows, dtype=np.int64)


@dataclass
class GrownTree:
    feature: np.ndarray      # int64 (n_nodes,), -1 for leaves
    threshold: np.ndarray    # float64, go left if x <= threshold
    left: np.ndarray         # int64 child ids, -1 for leaves
    right: np.ndarray
    value: np.ndarray        # float64 (n_nodes, n_out), node prediction (unscaled)
    gain: np.ndarray         # float64 split gain (0 for leaves)
    n_samples: np.ndarray    # int64 training events in node
    missing_go_left: np.ndarray  # bool: where NaN goes at a split
    # the boosting update: rows (all training rows), their leaf index, per-leaf update
    # vectors, and per-leaf sums of all rows (before the update)
    update_rows: np.ndarray
    leaf_of: np.ndarray
    leaf_update: np.ndarray
    leaf_sums: np.ndarray
    # linear leaves (set by the loss after growth; see _linear.py), None: constant leaves
    linear: dict | None = None


class TreeGrower:
    """Grow one tree for ``loss`` on ``data``.

    ``max_depth`` None = no limit (then ``max_leaf_nodes`` must be set);
    ``max_leaf_nodes`` None = depth-first growth; ``max_features`` = number of
    features drawn per node (None = all); ``lam`` = L2 penalty of the loss.
    """

    def __init__(self, data, loss, max_depth, min_samples_leaf, min_weight_leaf, split,
                 max_leaf_nodes=None, max_features=None):
        self.data = data
        self.loss = loss
        self.max_depth = NO_DEPTH_LIMIT if max_depth is None else int(max_depth)
        self.min_samples_leaf = int(min_samples_leaf)
        self.min_weight_leaf = float(min_weight_leaf)
        self.split = split
        self.max_leaf_nodes = 0 if max_leaf_nodes is None else int(max_leaf_nodes)
        F = data.X.shape[1]
        self.n_draw = F if max_features is None else int(min(max(max_features, 1), F))
        self._part = None
        self._ws = None
        self._arange = self._rows = self._leaf_of = None
        self.lp = (loss.P, float(loss.lam), loss.ridge_a, loss.ridge_e, loss.ridge_b)

    def grow(self, rows, seed=0):
        """Grow a tree on ``rows`` (sorted int64 training rows, all rows if None);
        the returned tree's update fields cover every training row."""
        d = self.data
        n_all = d.Y.shape[0]
        sub = rows is not None
        if rows is None:
            rows = self._all_rows(n_all)
        if self.split == "hist":
            out = self._grow_hist(rows, sub, seed)
        else:
            out = self._grow_exact(rows, seed)
        feature, threshold, mleft, left, right, gain, start, stop, stats, binv = out
        loss = self.loss
        value, upd = loss.leaf_values(stats[:, :loss.n_sums])
        leaf_of = self._leaf_buffer(n_all)
        leaf_node = np.flatnonzero(left < 0).astype(np.int64)
        if not sub:
            leaf_of_rows(rows, start[leaf_node], stop[leaf_node], leaf_of)
        leaf_update = np.ascontiguousarray(upd[leaf_node])
        if sub:
            # every row gets the update: route all rows through the tree
            index = np.full(left.shape[0], -1, dtype=np.int64)
            index[leaf_node] = np.arange(leaf_node.shape[0])
            if self.split == "hist":
                route_binned(d.Xb, feature, binv, mleft, left, right, d.missing_code, index,
                             leaf_of)
            else:
                route_raw(d.X, feature, threshold, left, right, index, leaf_of)
            sums = leaf_sums_all(d.Y, d.cls, loss.onehot, self._identity(n_all), leaf_of,
                                 leaf_node.shape[0], loss.n_sums)
        else:
            sums = np.ascontiguousarray(stats[leaf_node, :loss.n_sums])
        return GrownTree(feature=feature, threshold=threshold, left=left, right=right,
                         value=value, gain=gain, n_samples=stop - start,
                         missing_go_left=mleft, update_rows=self._identity(n_all),
                         leaf_of=leaf_of,
                         leaf_update=leaf_update, leaf_sums=sums)

    # Row-length buffers are reused from tree to tree (a fresh array of N int64 per tree
    # costs page faults on every tree): the update fields of a returned tree are valid
    # until the next call of grow.
    def _identity(self, n):
        """0..n-1 (not to be written to)."""
        if self._arange is None or self._arange.shape[0] != n:
            self._arange = np.arange(n, dtype=np.int64)
            self._rows = np.empty(n, dtype=np.int64)
        return self._arange

    def _all_rows(self, n):
        """0..n-1 in a reused buffer (grow_tree permutes it: refilled every time)."""
        ids = self._identity(n)
        np.copyto(self._rows, ids)
        return self._rows

    def _leaf_buffer(self, n):
        if self._leaf_of is None or self._leaf_of.shape[0] != n:
            self._leaf_of = np.empty(n, dtype=np.int64)
        return self._leaf_of

    def _workspace(self, n):
        """Work arrays of :func:`grow_tree` for ``n`` rows (kept between trees of the same
        size), initialised for a new tree."""
        d, loss = self.data, self.loss
        cap, n_slots = _capacity(n, self.max_depth, self.max_leaf_nodes,
                                 self.min_samples_leaf)
        F = d.Xb.shape[0]
        M = loss.n_sums + loss.n_counts
        key = (n, cap, n_slots)
        ws = self._ws
        if ws is None or ws[0] != key:
            ws = (key, (
                np.empty((n_slots, F, d.missing_code + 1, M)),     # pool
                np.empty(n_slots, dtype=np.int64),                   # free
                np.empty((_N_INODE, cap), dtype=np.int64),
                np.empty((3, cap), dtype=np.bool_),
                np.empty((2, cap)),
                np.empty((2, cap, M)),
                np.arange(F, dtype=np.int64),
                (np.empty(F, dtype=np.int64), np.empty(F, dtype=np.bool_),
                 np.empty(F, dtype=np.int64)) if self.n_draw < F else None,
                split_workspace(F, loss.n_sums, M)))
            self._ws = ws
        arrays = ws[1]
        inode, bnode, fnode, snode = arrays[2:6]
        inode[:] = _INODE_INIT[:, None]
        bnode[:] = False
        fnode[:] = 0.0
        snode[:] = 0.0
        return arrays

    def _grow_hist(self, rows, sub, seed):
        d, loss = self.data, self.loss
        n = rows.shape[0]
        if self._part is None or self._part.shape[0] < n:
            self._part = np.empty(n, dtype=np.int64)
        order = np.empty(1)
        work = self._workspace(n)
        bpt = loss.onehot
        m = grow_tree(
            d.Xb, d.Y, d.cls if bpt else None, None if bpt else True, d.n_bins,
            d.missing_code, rows, not sub, loss.n_sums, loss.n_counts, self.lp,
            self.max_depth, self.max_leaf_nodes, self.min_samples_leaf, self.min_weight_leaf,
            self.n_draw, np.uint64(seed), order, self._part, numba.get_num_threads(),
            True if self.max_leaf_nodes > 0 else None, *work)
        inode, bnode, fnode, snode = work[2:6]
        feature = inode[_I_FEATURE, :m].copy()
        binv = inode[_I_BIN, :m].copy()
        left = inode[_I_LEFT, :m].copy()
        right = inode[_I_RIGHT, :m].copy()
        start = inode[_I_START, :m].copy()
        stop = inode[_I_STOP, :m].copy()
        mleft = bnode[0, :m].copy()
        gain = fnode[0, :m].copy()
        stats = snode[0, :m].copy()
        edges = np.concatenate([d.edges, np.full((d.edges.shape[0], 1), np.inf)], axis=1)
        internal = feature >= 0
        threshold = np.where(internal, edges[np.maximum(feature, 0), binv], 0.0)
        return (feature, threshold, mleft & internal, left, right, gain, start, stop,
                stats, binv)

    def _grow_exact(self, rows, seed):
        """Reference grower (Python per node, sort-based splits; small data, no NaN)."""
        d, loss = self.data, self.loss
        n = rows.shape[0]
        buf = np.empty(n, dtype=rows.dtype)
        K, C = loss.n_sums, loss.n_counts
        F = d.X.shape[1]
        nodes = []

        def new_node(start, stop, depth, stats):
            nodes.append(dict(start=start, stop=stop, depth=depth, stats=stats, feature=-1,
                              threshold=0.0, left=-1, right=-1, gain=0.0))
            return len(nodes) - 1

        new_node(0, n, 0, node_stats(rows, 0, n, d.Y, d.cls if loss.onehot else None,
                                     loss.onehot, K, C))
        stack = [0]
        while stack:
            nid = stack.pop()
            nd = nodes[nid]
            start, stop = nd["start"], nd["stop"]
            if nd["depth"] >= self.max_depth or stop - start < 2 * self.min_samples_leaf:
                continue
            feats = draw_features(F, self.n_draw, np.uint64(seed), nid)
            f, lo, hi, gain, left = find_split_exact(
                d.X, rows, start, stop, d.Y, d.cls if loss.onehot else None,
                None if loss.onehot else True, nd["stats"], K, self.lp,
                self.min_samples_leaf, self.min_weight_leaf, feats)
            if f < 0:
                continue
            thr = float(midpoint(lo, hi))
            nl = _partition_raw(rows, start, stop, d.X, f, thr, buf)
            mid = start + nl
            depth = nd["depth"] + 1
            lid = new_node(start, mid, depth, left.copy())
            rid = new_node(mid, stop, depth, nd["stats"] - left)
            nd.update(feature=int(f), threshold=thr, left=lid, right=rid, gain=float(gain))
            stack += [rid, lid]
        feature = np.array([nd["feature"] for nd in nodes], dtype=np.int64)
        left = np.array([nd["left"] for nd in nodes], dtype=np.int64)
        right = np.array([nd["right"] for nd in nodes], dtype=np.int64)
        start = np.array([nd["start"] for nd in nodes], dtype=np.int64)
        stop = np.array([nd["stop"] for nd in nodes], dtype=np.int64)
        n_l = np.where(left >= 0, stop[np.maximum(left, 0)] - start[np.maximum(left, 0)], 0)
        n_r = np.where(left >= 0, stop[np.maximum(right, 0)] - start[np.maximum(right, 0)], 0)
        mleft = (left >= 0) & (n_l >= n_r)
        return (feature, np.array([nd["threshold"] for nd in nodes], dtype=np.float64),
                mleft, left, right, np.array([nd["gain"] for nd in nodes], dtype=np.float64),
                start, stop, np.array([nd["stats"] for nd in nodes]), None)


@njit(cache=True)
def leaf_sums_all(Y, cls, onehot, rows, leaf_of, n_leaves, K):
    """Weighted sums (n_leaves, K) of the rows of each leaf, accumulated in row order."""
    out = np.zeros((n_leaves, K))
    for ii in range(rows.shape[0]):
        i = rows[ii]
        j = leaf_of[ii]
        if onehot:
            out[j, cls[i]] += Y[i, 0]
        else:
            for k in range(K):
                out[j, k] += Y[i, k]
    return out
