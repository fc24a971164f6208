"""BIT fit speed when other processes compete for the cores (issue 11, item 5).

    python bench/bench_shared_cores.py               # bpt's default threading layer and omp
    python bench/bench_shared_cores.py --quick       # smaller data
    python bench/bench_shared_cores.py --layers default workqueue tbb omp

Starts as many CPU-burning background processes as there are cores (each stops by
itself after --budget seconds, and is killed at the end), then times a BIT fit
(1 parameter linear, depth 4, 20 trees) with the default n_jobs (all cores) and with
n_jobs=1, alternating, in a fresh process per numba threading layer; prints the median
time of each and the ratio default / n_jobs=1 (goal <= 1: using all cores must not be
slower than one thread when the cores are busy). The same is printed without the
burners for reference.
"""

import argparse
import json
import os
import subprocess
import sys
import time

N_CPU = os.cpu_count()

MEASURE = r"""
import json, statistics, sys, time
import numpy as np
sys.path.insert(0, {root!r})
import bpt
from bpt._engine._runtime import threading_layer
rng = np.random.default_rng(0)
n = {n}
X = rng.normal(size=(n, 10))
w = rng.uniform(0.5, 1.5, n)
y = np.column_stack([w, w * (np.tanh(X[:, 0]) + 0.5 * X[:, 1] * X[:, 2]
                             + rng.normal(0, 0.5, n))])

def fit(n_jobs):
    est = bpt.BoostedInformationTree(n_parameters=1, order=1, n_estimators=20,
                                     max_depth=4, min_samples_leaf=50, n_jobs=n_jobs)
    t = time.perf_counter()
    est.fit(X, y)
    return time.perf_counter() - t

fit(None); fit(1)                          # compile / load the kernels
times = {{"default": [], "one": []}}
for _ in range({repeat}):
    times["default"].append(fit(None))
    times["one"].append(fit(1))
print(json.dumps({{"layer": threading_layer(),
                  "default": statistics.median(times["default"]),
                  "one": statistics.median(times["one"])}}))
"""

BURN = "import time\nend = time.time() + {budget}\nwhile time.time() < end:\n    pass\n"


def measure(layer, n, repeat, budget):
    env = dict(os.environ)
    env.pop("NUMBA_THREADING_LAYER", None)
    if layer != "default":
        env["NUMBA_THREADING_LAYER"] = layer
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = MEASURE.format(root=root, n=n, repeat=repeat)
    try:
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=env, timeout=budget, check=False)
    except subprocess.TimeoutExpired:
        return None
    if res.returncode != 0:
        print(f"  layer {layer}: failed: {res.stderr.strip().splitlines()[-1:]}")
        return None
    return json.loads(res.stdout.strip().splitlines()[-1])


def start_burners(k, budget):
    return [subprocess.Popen([sys.executable, "-c", BURN.format(budget=budget)])
            for _ in range(k)]


def report(label, r):
    if r is None:
        print(f"{label}: no result (failed or over the time budget)")
        return
    print(f"{label}: layer {r['layer']:9s} default n_jobs {r['default']:.3f} s, "
          f"n_jobs=1 {r['one']:.3f} s, ratio default/n_jobs=1 = {r['default'] / r['one']:.2f}"
          "  (goal <= 1 under load)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--layers", nargs="+", default=["default", "omp"])
    ap.add_argument("--budget", type=float, default=300.0,
                    help="seconds after which burners and measurements stop")
    args = ap.parse_args()
    n, repeat = (100_000, 3) if args.quick else (300_000, 5)
    print(f"{N_CPU} CPUs, BIT fit {n} x 10, 1 parameter linear, depth 4, 20 trees; "
          f"median of {repeat} alternating fits; load average before: "
          f"{os.getloadavg()[0]:.2f}")
    for layer in args.layers:
        report(f"quiet      {layer:9s}", measure(layer, n, repeat, args.budget))
        burners = start_burners(N_CPU, args.budget)
        try:
            time.sleep(0.5)
            report(f"{N_CPU} burners  {layer:9s}", measure(layer, n, repeat, args.budget))
        finally:
            for p in burners:
                p.kill()
                p.wait()


if __name__ == "__main__":
    main()
