"""Predictor stage: compiled walk vs a pure-Python walk, NaN sides, float32, old arrays."""

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
