"""Size and load time of a saved 1000-tree model (issue 5 targets: size <= 1.2x the raw tree
arrays, load < 0.5 s).  Not a test; prints the figures.

    python bench/bench_io.py [--trees 1000] [--depth 4]
"""

import argparse
import os
import tempfile
import time

import numpy as np

import bpt
from bpt._io import load


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trees", type=int, default=1000)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--events", type=int, default=20_000)
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (args.events, 4))
    w = rng.uniform(0.5, 1.5, args.events)
    y = np.column_stack([w, w * (X[:, 0] - 0.5), w * X[:, 1], w * X[:, 0] ** 2,
                         w * X[:, 0] * X[:, 1], w * 0.3])
    t0 = time.perf_counter()
    est = bpt.BoostedInformationTree(n_parameters=2, n_estimators=args.trees,
                                     max_depth=args.depth, min_samples_leaf=20,
                                     learning_rate=0.05, n_jobs=1, random_state=0).fit(X, y)
    fit_s = time.perf_counter() - t0
    arrays = est.ensemble_.arrays
    raw = sum(a.nbytes for a in arrays.values())

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.bpt")
        t0 = time.perf_counter()
        est.save(path)
        save_s = time.perf_counter() - t0
        size = os.path.getsize(path)
        times = []
        for _ in range(7):
            t0 = time.perf_counter()
            loaded = load(path)
            times.append(time.perf_counter() - t0)
    same = np.array_equal(loaded.predict(X[:1000]), est.predict(X[:1000]))

    print(f"model: BIT, {est.n_iter_} trees, depth {args.depth}, "
          f"{arrays['feature'].shape[0]} nodes, {len(est.terms_)} terms (fit {fit_s:.1f} s)")
    print(f"raw tree arrays : {raw:>10,d} bytes")
    print(f"file            : {size:>10,d} bytes  = {size / raw:.4f} x raw   (target <= 1.2)")
    print(f"save            : {save_s * 1e3:8.1f} ms")
    print(f"load            : {np.median(times) * 1e3:8.1f} ms median, {min(times) * 1e3:.1f} ms "
          f"min of {len(times)}   (target < 500 ms)")
    print(f"predictions identical after load: {same}")


if __name__ == "__main__":
    main()
