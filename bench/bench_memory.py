"""Peak memory of a BIT fit with many events: 5 terms (2 parameters, quadratic).

    python bench/bench_memory.py                 # 3M x 20, float64 and float32 targets
    python bench/bench_memory.py --n 1000000     # fewer rows
    (this checkout's bpt: the script puts the repository root first on PYTHONPATH)

The data (X float64 (n, 20), y float64 (n, 6)) are written to .npy files, then a fresh
process loads them, runs a warm-up fit on 20 000 rows (numba kernels loaded or compiled,
early stopping on as in the real fit), and samples its resident set size every
millisecond during the fit of all rows (5 trees, depth 4, defaults otherwise: early
stopping on, so 10% of the rows are held out as validation data).  Reported: peak RSS
above the process's RSS with the data loaded, and its ratio to the size of X + y.
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3_000_000)
    ap.add_argument("--features", type=int, default=20)
    ap.add_argument("--dtypes", nargs="*", default=["float64", "float32"])
    args = ap.parse_args()
    # this checkout's bpt in the fresh processes
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    load = os.getloadavg()[0]
    print(f"{os.cpu_count()} CPUs, load average {load:.1f}; BIT fit {args.n} x "
          f"{args.features}, 2 parameters quadratic (5 terms), 5 trees depth 4, early "
          "stopping on (10% validation)")
    for dt in args.dtypes:
        fit = ("import bpt\n"
               "bpt.BoostedInformationTree(n_parameters=2, order=2, n_estimators=5, "
               f"max_depth=4, target_dtype={dt!r}).fit("
               "X if FIT_SIZE is None else X[:FIT_SIZE], "
               "y if FIT_SIZE is None else y[:FIT_SIZE])")
        extra, data_bytes = peak_memory(data_code(args.n, args.features), fit,
                                        warmup_rows=20_000)
        print(f"target_dtype={dt}: peak {extra / 2**20:.0f} MiB above the loaded data; "
              f"X + y = {data_bytes / 2**20:.0f} MiB; ratio = {extra / data_bytes:.2f} "
              f"(goal <= {1.5 if dt == 'float64' else 1.2})")


if __name__ == "__main__":
    main()
