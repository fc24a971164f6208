"""Predictor stage: compiled walk vs a pure-Python walk, NaN sides, float32, old arrays."""

from types import SimpleNamespace

import numpy as np

from bpt._engine._predictor import TreeEnsemble


def _random_ensemble(rng, n_trees=4, depth=3, F=3, n_out=2):
    parts = {k: [] for k in TreeEnsemble.NODE_FIELDS}
    starts = []
    off = 0
    for _ in range(n_trees):
        starts.append(off)
        n_int = 2 ** depth - 1
        n = 2 ** (depth + 1) - 1
        j = np.arange(n)
        internal = j < n_int
        parts["feature"].append(np.where(internal, rng.integers(0, F, n), -1))
        parts["threshold"].append(np.where(internal, rng.normal(size=n), 0.0))
        parts["left"].append(np.where(internal, off + 2 * j + 1, -1))
        parts["right"].append(np.where(internal, off + 2 * j + 2, -1))
        parts["value"].append(rng.normal(size=(n, n_out)))
        parts["gain"].append(np.where(internal, 1.0, 0.0))
        parts["n_samples"].append(rng.integers(1, 100, n))
        parts["missing_go_left"].append(internal & (rng.random(n) < 0.5))
        off += n
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    arrays["tree_start"] = np.array(starts)
    arrays["learning_rates"] = np.ones(n_trees)
    return arrays


def _python_walk(a, x):
    out = np.zeros(a["value"].shape[1])
    leaves = []
    for t0 in a["tree_start"]:
        j = t0
        while a["feature"][j] >= 0:
            v = x[a["feature"][j]]
            if np.isnan(v):
                j = a["left"][j] if a["missing_go_left"][j] else a["right"][j]
            else:
                j = a["left"][j] if v <= a["threshold"][j] else a["right"][j]
        out += a["value"][j]
        leaves.append(j)
    return out, leaves


def test_predict_and_apply_equal_python_walk_with_missing_values():
    rng = np.random.default_rng(0)
    a = _random_ensemble(rng)
    ens = TreeEnsemble.from_arrays(a)
    X = rng.normal(size=(300, 3))
    X[rng.random(X.shape) < 0.2] = np.nan
    X[0, 0] = a["threshold"][0]               # exactly on a threshold: goes left
    pred = ens.predict(X)
    leaves = ens.apply(X)
    for i in range(X.shape[0]):
        p, lv = _python_walk(a, X[i])
        np.testing.assert_allclose(pred[i], p, rtol=1e-14, atol=1e-14)
        assert list(leaves[i]) == lv


def test_float32_input_predicts_like_its_float64_values():
    rng = np.random.default_rng(1)
    ens = TreeEnsemble.from_arrays(_random_ensemble(rng))
    X32 = rng.normal(size=(500, 3)).astype(np.float32)
    np.testing.assert_array_equal(ens.predict(X32), ens.predict(X32.astype(np.float64)))


def test_arrays_without_missing_side_default_to_the_larger_child():
    rng = np.random.default_rng(2)
    a = _random_ensemble(rng)
    old = {k: v for k, v in a.items() if k != "missing_go_left"}
    ens = TreeEnsemble.from_arrays(old)
    got = ens.arrays["missing_go_left"]
    internal = a["feature"] >= 0
    ns = a["n_samples"]
    want = internal & (ns[np.maximum(a["left"], 0)] >= ns[np.maximum(a["right"], 0)])
    np.testing.assert_array_equal(got, want)
    X = np.full((1, 3), np.nan)
    ref = TreeEnsemble.from_arrays(dict(old, missing_go_left=want)).predict(X)
    np.testing.assert_array_equal(ens.predict(X), ref)


def test_truncate_keeps_the_first_trees():
    rng = np.random.default_rng(3)
    a = _random_ensemble(rng)
    ens = TreeEnsemble.from_arrays(a)
    X = rng.normal(size=(50, 3))
    full2 = ens.predict(X, 0, 2)
    ens.truncate(2)
    assert ens.n_trees == 2
    np.testing.assert_array_equal(ens.predict(X), full2)


def _unbalanced_ensemble(rng, n_trees=6, F=3, n_out=2):
    """Trees of different shapes and depths (0 = a single leaf, up to 7), with the
    non-root nodes of each tree stored in a random order."""
    parts = {k: [] for k in TreeEnsemble.NODE_FIELDS}
    starts, off = [], 0
    for t in range(n_trees):
        # grow a random shape: node = (parent, depth); split with falling probability
        shape, todo = [], [0]
        split = {}
        depth = {0: 0}
        p_split = 0.0 if t == 0 else 0.9
        while todo:
            j = todo.pop()
            shape.append(j)
            if depth[j] < 7 and rng.random() < p_split * 0.8 ** depth[j]:
                a, b = len(depth), len(depth) + 1
                depth[a] = depth[b] = depth[j] + 1
                split[j] = (a, b)
                todo += [a, b]
        n = len(depth)
        order = np.concatenate(([0], 1 + rng.permutation(n - 1)))   # root first
        pos = np.empty(n, dtype=np.int64)
        pos[order] = np.arange(n)
        feat = np.full(n, -1)
        left = np.full(n, -1)
        right = np.full(n, -1)
        thr = np.zeros(n)
        for j, (a, b) in split.items():
            feat[pos[j]] = rng.integers(0, F)
            thr[pos[j]] = rng.normal()
            left[pos[j]], right[pos[j]] = off + pos[a], off + pos[b]
        parts["feature"].append(feat)
        parts["threshold"].append(thr)
        parts["left"].append(left)
        parts["right"].append(right)
        parts["value"].append(rng.normal(size=(n, n_out)))
        parts["gain"].append(np.where(feat >= 0, 1.0, 0.0))
        parts["n_samples"].append(rng.integers(1, 100, n))
        parts["missing_go_left"].append((feat >= 0) & (rng.random(n) < 0.5))
        starts.append(off)
        off += n
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    arrays["tree_start"] = np.array(starts)
    arrays["learning_rates"] = np.ones(n_trees)
    return arrays


def test_walk_of_unbalanced_trees_and_any_number_of_rows():
    """The predictor walks four rows at a time for a fixed number of steps per tree
    (leaves lead to themselves): trees of unequal depth, a single-leaf tree, node ids
    in any order, row counts that are not a multiple of four and tree ranges all
    equal the plain walk."""
    from bpt._engine._predictor import walk_tables

    rng = np.random.default_rng(7)
    a = _unbalanced_ensemble(rng)
    depth = walk_tables(a["feature"], a["left"], a["right"], a["tree_start"])[3]
    assert depth[0] == 0 and len(set(depth.tolist())) > 2
    ens = TreeEnsemble.from_arrays(a)
    X = rng.normal(size=(23, 3))
    X[rng.random(X.shape) < 0.2] = np.nan
    full = np.array([_python_walk(a, x)[0] for x in X])
    for n in (1, 2, 3, 4, 5, 7, 23):
        np.testing.assert_allclose(ens.predict(X[:n]), full[:n], rtol=1e-13, atol=1e-13)
    # a range of trees, as staged_predict and the per-tree validation use it
    one = ens.predict(X, 2, 4)
    for i, x in enumerate(X):
        want = np.zeros(a["value"].shape[1])
        for t in (2, 3):
            j = a["tree_start"][t]
            while a["feature"][j] >= 0:
                v = x[a["feature"][j]]
                go_left = a["missing_go_left"][j] if np.isnan(v) else v <= a["threshold"][j]
                j = a["left"][j] if go_left else a["right"][j]
            want += a["value"][j]
        np.testing.assert_allclose(one[i], want, rtol=1e-13, atol=1e-13)
    # an ensemble still being boosted (trees appended) predicts the same
    growing = TreeEnsemble(a["value"].shape[1])
    for t in range(len(a["tree_start"])):
        lo = a["tree_start"][t]
        hi = a["tree_start"][t + 1] if t + 1 < len(a["tree_start"]) else len(a["feature"])
        tree = {k: a[k][lo:hi].copy() for k in TreeEnsemble.NODE_FIELDS}
        for k in ("left", "right"):
            tree[k] = np.where(tree[k] >= 0, tree[k] - lo, -1)
        growing.add(SimpleNamespace(**tree), 1.0)
    np.testing.assert_allclose(growing.predict(X, 3, 6), ens.predict(X, 3, 6), rtol=1e-13)
