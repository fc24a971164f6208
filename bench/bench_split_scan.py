"""The BPT split scan alone: time per candidate of one node's split search.

    taskset -c 0 env NUMBA_NUM_THREADS=1 PYTHONPATH=. python bench/bench_split_scan.py
    PYTHONPATH=/other/checkout NUMBA_NUM_THREADS=1 python bench/bench_split_scan.py

(``PYTHONPATH`` selects the checkout whose engine is timed.)  A synthetic node of the
bench_bpt shape: 10 features x 255 bins, 7 classes (a nominal and 6 base points of one
nuisance, quadratic: the leaf map projects onto 2 terms), about 100 000 events per class
spread over the bins, one feature with a small trend.  Calls ``find_split_hist`` (the
grower's scan with the loss chosen at run time) ``--repeat`` times and prints the time per
node and per candidate (features x (bins - 1)), with the split found.  ``--nan`` puts 5%
of every class into the missing-value bin (each boundary is then tried twice).
"""

import argparse
import time

import numpy as np

from bpt._engine._loss import KIND_BPT
from bpt._engine._splitting import find_split_hist

N_FEATURES, N_BINS, N_CLASSES = 10, 255, 7


def node(nan):
    rng = np.random.default_rng(0)
    K = N_CLASSES
    hist = np.zeros((N_FEATURES, N_BINS + 1, 2 * K))
    trend = np.linspace(-1.0, 1.0, N_BINS)
    for f in range(N_FEATURES):
        for k in range(K):
            counts = rng.poisson(100_000 / N_BINS, N_BINS).astype(float)
            hist[f, :N_BINS, K + k] = counts
            hist[f, :N_BINS, k] = counts / 100_000 * np.exp(0.05 * (k - 3) * trend * (f == 0))
            if nan:
                hist[f, N_BINS, K + k] = 5_000
                hist[f, N_BINS, k] = 0.05
    tot = hist[0].sum(axis=0)
    nu = np.array([-2.0, -1.0, -0.5, 0.5, 1.0, 2.0])
    V = np.column_stack([nu, nu ** 2])
    P = V @ np.linalg.solve(V.T @ V, V.T)
    lp = (np.ascontiguousarray(P), 0.0, np.zeros((1, 1)), np.zeros(1), np.zeros((1, 1)))
    return hist, tot, lp


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=300)
    ap.add_argument("--nan", action="store_true")
    args = ap.parse_args()
    hist, tot, lp = node(args.nan)
    feats = np.arange(N_FEATURES, dtype=np.int64)
    n_bins = np.full(N_FEATURES, N_BINS, dtype=np.int64)
    call = (hist, feats, n_bins, N_BINS, tot, N_CLASSES, KIND_BPT, lp, 1.0, 0.0)
    res = find_split_hist(*call)                      # compile / load
    best = np.inf
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(args.repeat):
            res = find_split_hist(*call)
        best = min(best, (time.perf_counter() - t) / args.repeat)
    per = best / (N_FEATURES * (N_BINS - 1))
    print(f"BPT split scan, {N_CLASSES} classes, {N_FEATURES} x {N_BINS} bins"
          f"{' with missing values' if args.nan else ''}: {best * 1e6:.0f} us per node, "
          f"{per * 1e9:.0f} ns per candidate (feature {res[0]}, bin {res[1]}, "
          f"gain {res[4]:.6g})")


if __name__ == "__main__":
    main()
