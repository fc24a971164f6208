"""Peak memory of a BIT fit with many events: 5 terms (2 parameters, quadratic).

    python bench/bench_memory.py                 # 3M x 20, float64 and float32 targets
    python bench/bench_memory.py --n 1000000     # fewer rows
    python bench/bench_memory.py --precision     # float32 vs float64 targets: predictions
    (this checkout's bpt: the script puts the repository root first on PYTHONPATH)

The data (X float64 (n, 20), y float64 (n, 6)) are written to .npy files, then a fresh
process loads them, runs a warm-up fit on 20 000 rows (numba kernels loaded or compiled,
early stopping on as in the real fit), and samples its resident set size every
millisecond during the fit of all rows (5 trees, depth 4, defaults otherwise: early
stopping on, so 10% of the rows are held out as validation data).  Reported: peak RSS
above the process's RSS with the data loaded, and its ratio to the size of X + y.

``--precision`` fits the same model with ``target_dtype="float32"`` and ``"float64"`` and
prints the largest difference of the predictions: on the power-law reference sample of
the tests (tests/data/bit_power_law: 100k events, 1 term, 100 trees, no early stopping)
and on the 5-term toy above (200k x 4, early stopping).
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from _common import peak_memory  # noqa: E402


def data_code(n, n_features, seed=0):
    return f"""
rng = np.random.default_rng({seed})
X = rng.normal(size=({n}, {n_features}))
a0 = 0.5 * np.tanh(X[:, 0])
a1 = 0.3 * X[:, 1] * (X[:, 1] > 0)
y = np.column_stack([np.ones({n}), 2 * a0, 2 * a1, a0 ** 2, 2 * a0 * a1, a1 ** 2])
del a0, a1
data = {{'X': X, 'y': y}}
"""


def precision():
    sys.path.insert(0, ROOT)
    import numpy as np

    import bpt
    ref = os.path.join(ROOT, "tests", "data", "bit_power_law")

    def load(kind):
        return np.loadtxt(os.path.join(ref, f"{kind}_power_law_model.txt.gz"))

    Xp = load("training_features").reshape(-1, 1)
    yp = np.column_stack([load("training_weights"), load("training_diff_weights")])
    env = {}
    exec(data_code(200_000, 4, seed=1), {"np": np}, env)
    cases = [("power-law reference (100000 x 1, 1 term, 100 trees, no early stopping)", Xp,
              yp, dict(n_parameters=1, order=1, n_estimators=100, early_stopping=False)),
             ("5-term toy (200000 x 4, 2 parameters quadratic, early stopping)", env["X"],
              env["y"], dict(n_parameters=2, order=2, random_state=0))]
    for name, X, y, kw in cases:
        fits = {dt: bpt.BoostedInformationTree(target_dtype=dt, **kw).fit(X, y)
                for dt in ("float64", "float32")}
        p64, p32 = (fits[dt].predict(X) for dt in ("float64", "float32"))
        d = np.abs(p32 - p64)
        a64, a32 = (fits[dt].ensemble_.arrays for dt in ("float64", "float32"))
        same = all(a64[k].shape == a32[k].shape and np.array_equal(a64[k], a32[k])
                   for k in ("feature", "threshold", "left"))
        print(f"{name}: trees {fits['float64'].n_iter_} / {fits['float32'].n_iter_}, "
              f"same splits: {same}; "
              f"max |pred(float32) - pred(float64)| = {d.max():.3g}, relative to "
              f"max |pred| {d.max() / np.abs(p64).max():.2g}; mean {d.mean():.2g}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3_000_000)
    ap.add_argument("--features", type=int, default=20)
    ap.add_argument("--dtypes", nargs="*", default=["float64", "float32"])
    ap.add_argument("--precision", action="store_true")
    ap.add_argument("--trees", type=int, default=5,
                    help="trees per fit (memory must not grow with them)")
    args = ap.parse_args()
    if args.precision:
        return precision()
    # this checkout's bpt in the fresh processes
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    load = os.getloadavg()[0]
    print(f"{os.cpu_count()} CPUs, load average {load:.1f}; BIT fit {args.n} x "
          f"{args.features}, 2 parameters quadratic (5 terms), {args.trees} trees depth 4, "
          "early stopping on (10% validation)")
    for dt in args.dtypes:
        fit = ("import bpt\n"
               f"bpt.BoostedInformationTree(n_parameters=2, order=2, n_estimators={args.trees}, "
               f"max_depth=4, n_iter_no_change={args.trees}, target_dtype={dt!r}).fit("
               "X if FIT_SIZE is None else X[:FIT_SIZE], "
               "y if FIT_SIZE is None else y[:FIT_SIZE])")
        extra, data_bytes = peak_memory(data_code(args.n, args.features), fit,
                                        warmup_rows=20_000)
        print(f"target_dtype={dt}: peak {extra / 2**20:.0f} MiB above the loaded data; "
              f"X + y = {data_bytes / 2**20:.0f} MiB; ratio = {extra / data_bytes:.2f} "
              f"(goal <= {1.5 if dt == 'float64' else 1.2})")


if __name__ == "__main__":
    main()
