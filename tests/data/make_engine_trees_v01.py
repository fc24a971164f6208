"""Generate tests/data/engine_trees_v01.npz: trees grown by the engine as of its first
(Python-per-node) version, the reference that the compiled grower must reproduce with
every new option off (tests/engine/test_fixture_trees.py).

Run from the repository root:  python tests/data/make_engine_trees_v01.py
The data are regenerated from the seeds below by ``fixture_cases`` (shared with the test).
"""

from __future__ import annotations

import os
import sys

import numpy as np

# import the bpt of this checkout (the script's own directory is first on sys.path)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

N_ROWS = 20_000
N_FEATURES = 5
N_TREES = 5


def fixture_data(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N_ROWS, N_FEATURES))
    X[:, 3] = np.round(X[:, 3] * 3)          # a discrete feature (few distinct values)
    return X


def bit_targets(X, n_terms, seed=1):
    rng = np.random.default_rng(seed)
    c0 = rng.exponential(size=X.shape[0])
    cols = [c0]
    for a in range(n_terms):
        cols.append(c0 * (np.sin((a + 1) * X[:, a % N_FEATURES]) + 0.3 * X[:, (a + 1) % 5]
                          + 0.1 * rng.normal(size=X.shape[0])))
    return np.column_stack(cols)


def bpt_targets(X, seed=2):
    """Base points (0,0), (+-1, 0), (0, +-1), (1, 1): class per row, shifted features per class."""
    rng = np.random.default_rng(seed)
    points = np.array([[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1], [1, 1]], dtype=float)
    cls = rng.integers(0, len(points), size=X.shape[0])
    nu = points[cls]
    Xs = X.copy()
    Xs[:, 0] += 0.3 * nu[:, 0]
    Xs[:, 1] *= np.exp(0.2 * nu[:, 1])
    w = rng.uniform(0.5, 1.5, size=X.shape[0])
    return Xs, nu, w


def fixture_cases():
    """name -> (estimator class name, constructor kwargs, X, y-or-nu, sample_weight)."""
    X = fixture_data()
    cases = {}
    for depth in (3, 4):
        common = dict(n_estimators=N_TREES, max_depth=depth, random_state=0,
                      min_samples_leaf=20, learning_rate=0.2)   # the default when written
        cases[f"bit1_d{depth}"] = ("BoostedInformationTree",
                                   dict(n_parameters=1, order=1, **common), X,
                                   bit_targets(X, 1), None)
        cases[f"bit5_d{depth}"] = ("BoostedInformationTree",
                                   dict(n_parameters=2, order=2, **common), X,
                                   bit_targets(X, 5), None)
        Xs, nu, w = bpt_targets(X)
        cases[f"bpt2_d{depth}"] = ("BoostedParametricTree",
                                   dict(n_nuisances=2, order=2, learn_global=True,  # the
                                        **common), Xs, nu, w)               # default then
    return cases


def fit_case(case):
    import bpt
    cls_name, kw, X, y, w = case
    cls = getattr(bpt, cls_name)
    if "early_stopping" in cls().get_params():   # off, as in the version that wrote it
        kw = dict(kw, early_stopping=False)
    if "samples" in cls().get_params():          # ordinary least squares, as then
        kw = dict(kw, samples="shared")
    if "linear_leaves" in cls().get_params():    # constant leaves, as then
        kw = dict(kw, linear_leaves=0.0)
    est = cls(**kw)
    est.fit(X, y, sample_weight=w)
    return est


def main():
    out = {}
    for name, case in fixture_cases().items():
        est = fit_case(case)
        a = est.ensemble_.arrays
        for k in ("feature", "threshold", "left", "right", "value", "gain", "n_samples",
                  "tree_start"):
            out[f"{name}/{k}"] = a[k]
        out[f"{name}/train_loss"] = est.train_loss_
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "engine_trees_v01.npz")
    np.savez_compressed(path, **out)
    print("wrote", path, {k: v.shape for k, v in out.items() if k.endswith("feature")})


if __name__ == "__main__":
    main()
