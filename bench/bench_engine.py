"""The tree engine: fit speed against LightGBM, thread scaling, regularisation overhead.

    PYTHONPATH=. python bench/bench_engine.py            # this checkout's bpt
    PYTHONPATH=/path/to/other/checkout python bench/bench_engine.py --no-options
                                                         # an older engine, same data

(``PYTHONPATH`` makes the checkout's ``bpt`` win over an installed one.)  Cases, each
best of ``--repeat`` fits after a warm-up fit, all in one run:
  BIT  700k x 10, 1 parameter linear, depth 4, 20 trees, 255 bins (bench_bit case A data)
  BPT  7 samples x 100k x 10, 1 nuisance quadratic, depth 4, 20 trees (bench_bpt data)
each with n_jobs=2 and n_jobs=1 and LightGBM on the same rows (all cores, and one: its own
speed-up under the same load); and the BIT
fit with l2_regularization, subsample=0.8 and max_features=0.8 (skipped by --no-options).
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import best_of, ratio  # noqa: E402

import bpt  # noqa: E402
from bench_bit import data_a  # noqa: E402
from bench_bpt import data as data_bpt  # noqa: E402
from bench_bit import NO_ES  # noqa: E402

N_CPU = os.cpu_count()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-options", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    import lightgbm as lgb
    r = args.repeat
    n = 70_000 if args.quick else 700_000
    from bpt._engine._runtime import threading_layer
    print(f"bpt from {os.path.dirname(bpt.__file__)}, {N_CPU} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}, numba threading layer {threading_layer()}")
    X, y = data_a(n, 10)
    kw = dict(n_parameters=1, order=1, n_estimators=20, learning_rate=0.2, max_depth=4,
              min_samples_leaf=50, max_bins=255, **NO_ES)
    times = {}
    for jobs in (2, 1):
        est = bpt.BoostedInformationTree(n_jobs=jobs, **kw)
        est.fit(X[:5000], y[:5000])
        times[jobs], _ = best_of(lambda: est.fit(X, y), r)
    t_lgbs = {}
    for jobs in (N_CPU, 1):
        lgbm = lgb.LGBMRegressor(n_estimators=20, learning_rate=0.2, max_depth=4,
                                 num_leaves=16, min_child_samples=50, max_bin=255,
                                 min_child_weight=0.0, n_jobs=jobs, verbose=-1)
        t_lgbs[jobs], _ = best_of(
            lambda: lgbm.fit(X, y[:, 1] / y[:, 0], sample_weight=y[:, 0]), r)
    t_lgb = t_lgbs[N_CPU]
    print(f"BIT {n} x 10 depth 4, 20 trees: n_jobs=2 {times[2]:.3f} s, n_jobs=1 "
          f"{times[1]:.3f} s (speed-up {ratio(times[1], times[2]):.2f}), LightGBM "
          f"{t_lgb:.3f} s (n_jobs=1 {t_lgbs[1]:.3f} s, speed-up "
          f"{ratio(t_lgbs[1], t_lgb):.2f}), ratio BIT/LightGBM = {ratio(times[2], t_lgb):.2f}")
    if not args.no_options:
        est = bpt.BoostedInformationTree(n_jobs=2, l2_regularization=1e-3, subsample=0.8,
                                         max_features=0.8, random_state=0, **kw)
        est.fit(X[:5000], y[:5000])
        t_opt, _ = best_of(lambda: est.fit(X, y), r)
        print(f"BIT with l2_regularization=1e-3, subsample=0.8, max_features=0.8: "
              f"{t_opt:.3f} s ({ratio(t_opt, times[2]):.2f} x all options off)")
    m = 10_000 if args.quick else 100_000
    Xb, nu = data_bpt(m)
    bt = {}
    for jobs in (2, 1):
        # constant leaves (as LightGBM's): the like-for-like engine comparison
        est = bpt.BoostedParametricTree(n_nuisances=1, order=2, n_estimators=20, max_depth=4,
                                        **NO_ES, linear_leaves=0.0,
                                        min_samples_leaf=50, max_bins=255, n_jobs=jobs)
        est.fit(Xb[::50], nu[::50])
        bt[jobs], _ = best_of(lambda: est.fit(Xb, nu), r)
    est = bpt.BoostedParametricTree(n_nuisances=1, order=2, n_estimators=20, max_depth=4,
                                    **NO_ES, min_samples_leaf=50, max_bins=255, n_jobs=2)
    est.fit(Xb[::50], nu[::50])
    t_lin, _ = best_of(lambda: est.fit(Xb, nu), r)
    Xp = Xb[: min(len(Xb), 200_000)]
    t_plin, _ = best_of(lambda: est.predict(Xp), r)
    const = bpt.BoostedParametricTree(n_nuisances=1, order=2, n_estimators=20, max_depth=4,
                                      **NO_ES, linear_leaves=0.0, min_samples_leaf=50,
                                      max_bins=255, n_jobs=2).fit(Xb, nu)
    t_pconst, _ = best_of(lambda: const.predict(Xp), r)
    t_lgbcs = {}
    for jobs in (N_CPU, 1):
        clf = lgb.LGBMClassifier(n_estimators=20, learning_rate=0.2, max_depth=4,
                                 num_leaves=16, min_child_samples=50, max_bin=255,
                                 n_jobs=jobs, verbose=-1)
        t_lgbcs[jobs], _ = best_of(lambda: clf.fit(Xb, (nu[:, 0] != 0).astype(int)), r)
    t_lgbc = t_lgbcs[N_CPU]
    print(f"BPT 7 x {m} x 10 depth 4, 20 trees: n_jobs=2 {bt[2]:.3f} s, n_jobs=1 "
          f"{bt[1]:.3f} s (speed-up {ratio(bt[1], bt[2]):.2f}), LightGBM {t_lgbc:.3f} s "
          f"(n_jobs=1 {t_lgbcs[1]:.3f} s, speed-up {ratio(t_lgbcs[1], t_lgbc):.2f}), "
          f"ratio BPT/LightGBM = {ratio(bt[2], t_lgbc):.2f} (constant leaves)")
    print(f"BPT with linear leaves (linear_leaves=0.5, the default): fit {t_lin:.3f} s "
          f"({ratio(t_lin, bt[2]):.2f} x constant leaves); predict {len(Xp)} rows "
          f"{len(Xp) / t_plin / 1e6:.2f} M rows/s against {len(Xp) / t_pconst / 1e6:.2f} M "
          "with constant leaves")


if __name__ == "__main__":
    main()
