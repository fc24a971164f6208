"""BoostedParametricTree speed and memory, against LightGBM on the same rows.

    python bench/bench_bpt.py            # the issue's case
    python bench/bench_bpt.py --quick    # smaller (smoke test)

Case (issue 3): nominal + 6 base points (nu = -3..3) x 100k events = 700k rows,
10 features, one nuisance at quadratic order, depth 4, 20 trees, 255 bins:
BPT fit vs LightGBM binary classification (nominal vs varied) of the same rows with
the same depth, trees and bins; plus the peak memory of the BPT fit.
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _common import best_of, peak_memory, ratio  # noqa: E402

import bpt  # noqa: E402

N_CPU = os.cpu_count()
# the peer fits every tree on all rows: so does bpt (no early stopping)
NO_ES = ({"early_stopping": False}
         if "early_stopping" in bpt.BoostedParametricTree().get_params() else {})
POINTS = [0.0, -3.0, -2.0, -1.0, 1.0, 2.0, 3.0]


def data(n_per_point, seed=0):
    """A shape systematic: features shift and widen with nu (independent samples)."""
    rng = np.random.default_rng(seed)
    Xs, nus = [], []
    for p in POINTS:
        X = rng.normal(size=(n_per_point, 10))
        X[:, 0] = X[:, 0] * (1 + 0.05 * p) + 0.1 * p
        X[:, 1] = rng.exponential(1 + 0.03 * p, n_per_point)
        Xs.append(X)
        nus.append(np.full(n_per_point, p))
    return np.vstack(Xs), np.concatenate(nus)[:, None]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n = 10_000 if args.quick else 100_000
    import lightgbm as lgb
    X, nu = data(n)
    print(f"bpt {bpt.__version__}, {N_CPU} CPUs; {len(POINTS)} samples x {n} events, 10 "
          "features, 1 nuisance quadratic, depth 4, 20 trees, 255 bins")
    est = bpt.BoostedParametricTree(n_nuisances=1, order=2, n_estimators=20, max_depth=4,
                                    **NO_ES, linear_leaves=0.0,  # constant, as LightGBM
                                    min_samples_leaf=50, max_bins=255, n_jobs=N_CPU)
    est.fit(X[::50], nu[::50])          # compile outside the timing
    t_bpt, _ = best_of(lambda: est.fit(X, nu))
    clf = lgb.LGBMClassifier(n_estimators=20, learning_rate=0.2, max_depth=4, num_leaves=16,
                             min_child_samples=50, max_bin=255, n_jobs=N_CPU, verbose=-1)
    label = (nu[:, 0] != 0).astype(int)
    t_lgb, _ = best_of(lambda: clf.fit(X, label))
    print(f"fit: BPT {t_bpt:.3f} s, LightGBM {t_lgb:.3f} s, ratio BPT/LightGBM = "
          f"{ratio(t_bpt, t_lgb):.2f} (goal <= 2)")
    make = (f"import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})\n"
            f"from bench_bpt import data\nX, nu = data({n})\ndata = {{'X': X, 'nu': nu}}")
    fit = ("bpt.BoostedParametricTree(n_nuisances=1, n_estimators=20, max_depth=4, "
           "linear_leaves=0.0, "
           f"n_jobs={N_CPU}).fit(X if FIT_SIZE is None else X[::50], "
           "nu if FIT_SIZE is None else nu[::50])")
    extra, data_bytes = peak_memory(make, fit)
    print(f"peak memory of the fit: {extra / 2**20:.0f} MiB above the loaded data; X + nu = "
          f"{data_bytes / 2**20:.0f} MiB; ratio = {extra / data_bytes:.2f} (goal <= 1.5)")


if __name__ == "__main__":
    main()
