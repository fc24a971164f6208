"""BoostedInformationTree speed and memory, against LightGBM and XGBoost on the same data.

    python bench/bench_bit.py            # all cases
    python bench/bench_bit.py --quick    # smaller sizes (smoke test)

Cases (issue 2):
  A. 700k events x 10 features, 1 parameter linear, depth 4, 20 trees, 255 bins:
     BIT fit vs LightGBM L2 regression of the same target (R = c1/c0, weight c0).
  B. 200k events x 72 features, 15 parameters quadratic (135 terms), depth 4:
     BIT time per tree vs XGBoost multi_output_tree on the same 135 targets.
  C. Prediction throughput of a 100-tree model vs LightGBM's predict on the same rows.
  D. Peak memory of a fit (case B data) relative to the size of X (float64) plus y.
  E. First fit in a fresh process (numba compiling), from the warm on-disk cache, warm.
Every figure is measured in this run on this machine; ratios compare the same data,
depth, trees and bins, with all cores (n_jobs / num_threads = number of CPUs).
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from _common import best_of, fresh_fit_times, peak_memory, ratio  # noqa: E402

import bpt  # noqa: E402

N_CPU = os.cpu_count()
# the peers run every tree on all rows: so does bpt (no early stopping, which is on by
# default from 10k rows and holds out a validation set)
NO_ES = ({"early_stopping": False}
         if "early_stopping" in bpt.BoostedInformationTree().get_params() else {})


def data_a(n, f, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f))
    w = rng.uniform(0.5, 1.5, n)
    score = np.tanh(X[:, 0]) + 0.5 * X[:, 1] * X[:, 2] + 0.3 * np.sin(3 * X[:, 3])
    y = np.column_stack([w, w * (score + rng.normal(0, 0.5, n))])
    return X, y


def data_b(n, f, p, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f))
    terms = bpt.make_terms(p, 2)
    w = rng.uniform(0.5, 1.5, n)
    y = np.empty((n, 1 + len(terms)))
    y[:, 0] = w
    for A, t in enumerate(terms):
        j = A % f
        y[:, 1 + A] = w * (np.tanh(X[:, j]) * (0.5 + 0.1 * len(t)) + 0.1 * X[:, (j + 1) % f])
    return X, y, len(terms)


def case_a(n, n_trees):
    import lightgbm as lgb
    X, y = data_a(n, 10)
    bit = bpt.BoostedInformationTree(n_parameters=1, order=1, n_estimators=n_trees,
                                     **NO_ES,
                                     learning_rate=0.2, max_depth=4, min_samples_leaf=50,
                                     max_bins=255, n_jobs=N_CPU)
    bit.fit(X[:5000], y[:5000])            # compile outside the timing
    t_bit, _ = best_of(lambda: bit.fit(X, y))
    target, weight = y[:, 1] / y[:, 0], y[:, 0]
    lgbm = lgb.LGBMRegressor(n_estimators=n_trees, learning_rate=0.2, max_depth=4,
                             num_leaves=16, min_child_samples=50, max_bin=255,
                             min_child_weight=0.0, subsample=1.0, colsample_bytree=1.0,
                             n_jobs=N_CPU, verbose=-1)
    t_lgb, _ = best_of(lambda: lgbm.fit(X, target, sample_weight=weight))
    print(f"A  fit {n} x 10, linear, depth 4, {n_trees} trees: BIT {t_bit:.3f} s, "
          f"LightGBM {t_lgb:.3f} s, ratio BIT/LightGBM = {ratio(t_bit, t_lgb):.2f} "
          f"(goal <= 2)")
    return bit, lgbm, X


def case_b(n, n_features, n_params, n_trees):
    import xgboost as xgb
    X, y, n_terms = data_b(n, n_features, n_params)
    bit = bpt.BoostedInformationTree(n_parameters=n_params, order=2, n_estimators=n_trees,
                                     **NO_ES,
                                     learning_rate=0.2, max_depth=4, min_samples_leaf=50,
                                     max_bins=255, n_jobs=N_CPU)
    bit.fit(X[:3000], y[:3000])
    t_bit, _ = best_of(lambda: bit.fit(X, y), repeat=2)
    targets = y[:, 1:] / y[:, [0]]
    reg = xgb.XGBRegressor(tree_method="hist", multi_strategy="multi_output_tree",
                           n_estimators=n_trees, learning_rate=0.2, max_depth=4, max_bin=255,
                           n_jobs=N_CPU)
    t_xgb, _ = best_of(lambda: reg.fit(X, targets, sample_weight=y[:, 0]), repeat=1)
    print(f"B  fit {n} x {n_features}, {n_params} parameters quadratic ({n_terms} terms), "
          f"depth 4: BIT {t_bit / n_trees:.3f} s/tree, XGBoost multi_output_tree "
          f"{t_xgb / n_trees:.3f} s/tree, ratio BIT/XGBoost = {ratio(t_bit, t_xgb):.2f} "
          f"(goal <= 1)")


def case_c(n_rows, n_trees):
    import lightgbm as lgb
    X, y = data_a(200_000, 10)
    bit = bpt.BoostedInformationTree(n_parameters=1, order=1, n_estimators=n_trees,
                                     **NO_ES,
                                     max_depth=4, n_jobs=N_CPU).fit(X, y)
    lgbm = lgb.LGBMRegressor(n_estimators=n_trees, learning_rate=0.2, max_depth=4,
                             num_leaves=16, min_child_samples=50, n_jobs=N_CPU,
                             verbose=-1).fit(X, y[:, 1] / y[:, 0], sample_weight=y[:, 0])
    Xp, _ = data_a(n_rows, 10, seed=1)
    bit.predict(Xp[:100])
    t_bit, _ = best_of(lambda: bit.predict(Xp))
    t_lgb, _ = best_of(lambda: lgbm.predict(Xp, num_threads=N_CPU))
    print(f"C  predict {n_rows} rows, {n_trees} trees depth 4: BIT {n_rows / t_bit / 1e6:.2f} "
          f"M rows/s, LightGBM {n_rows / t_lgb / 1e6:.2f} M rows/s, throughput ratio "
          f"BIT/LightGBM = {ratio(t_lgb, t_bit):.2f} (goal >= 1)")


def case_d(n, n_features, n_params):
    make = (f"import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})\n"
            f"from bench_bit import data_b\n"
            f"X, y, _ = data_b({n}, {n_features}, {n_params})\n"
            f"data = {{'X': X, 'y': y}}")
    fit = (f"bpt.BoostedInformationTree(n_parameters={n_params}, n_estimators=2, max_depth=4,"
           f" n_jobs={N_CPU}).fit(X if FIT_SIZE is None else X[:FIT_SIZE], "
           "y if FIT_SIZE is None else y[:FIT_SIZE])")
    extra, data_bytes = peak_memory(make, fit)
    print(f"D  peak memory of a fit ({n} x {n_features}, {n_params} parameters quadratic): "
          f"{extra / 2**20:.0f} MiB above the loaded data; X + y = {data_bytes / 2**20:.0f} "
          f"MiB; ratio = {extra / data_bytes:.2f} (goal <= 1.5)")


def case_e(n):
    make = ("import bpt\n"
            "rng = np.random.default_rng(0)\n"
            f"X = rng.normal(size=({n}, 10)); w = np.ones({n})\n"
            "y = np.column_stack([w, np.tanh(X[:, 0])])")
    fit = "bpt.BoostedInformationTree(n_parameters=1, order=1, n_estimators=20).fit(X, y)"
    compile_s, cached_s = fresh_fit_times(make, fit)
    X, y = data_a(n, 10)
    est = bpt.BoostedInformationTree(n_parameters=1, order=1, n_estimators=20)
    est.fit(X, y)
    warm, _ = best_of(lambda: est.fit(X, y))
    print(f"E  first fit in a fresh process ({n} x 10, 20 trees): {compile_s:.1f} s with "
          f"compilation, {cached_s:.2f} s from the numba cache, {warm:.3f} s warm")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--cases", default="ABCDE")
    args = ap.parse_args()
    q = args.quick
    print(f"bpt {bpt.__version__}, {N_CPU} CPUs")
    if "A" in args.cases:
        case_a(70_000 if q else 700_000, 20)
    if "B" in args.cases:
        case_b(20_000 if q else 200_000, 72, 15, 2 if q else 5)
    if "C" in args.cases:
        case_c(100_000 if q else 1_000_000, 100)
    if "D" in args.cases:
        case_d(20_000 if q else 200_000, 72, 15)
    if "E" in args.cases:
        case_e(100_000)


if __name__ == "__main__":
    main()
