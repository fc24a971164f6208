"""First fit in a fresh process: numba compilation time with an empty cache, and from it.

    python bench/bench_compile.py                 # BIT and BPT, wall and CPU seconds
    (this checkout's bpt: the script puts the repository root first on PYTHONPATH)
    python bench/bench_compile.py --profile bit   # compile time per numba function
    python bench/bench_compile.py --prebuilt      # from a cache filled by bpt.precompile

Each case runs ``python -c`` in a new process with ``NUMBA_CACHE_DIR`` set to a new empty
directory (the fit compiles every kernel it reaches), then again with that directory (the
kernels load from the on-disk cache).  The fit: 100k x 10, 20 trees, depth 4 (the BIT
1 parameter linear, the BPT 1 nuisance quadratic with 3 base points), default settings
otherwise.  Wall time depends on the load of the machine; the process's CPU time
(user + sys) much less, as compilation runs on one thread.

``--prebuilt``: the cache is filled by ``python -m bpt.precompile`` first (timed), as an
installation that will be read-only would be, and the first fit runs from it.

``--profile`` wraps numba's ``Dispatcher.compile`` and prints, per compiled function, the
number of compiled signatures and the time spent in it without its callees ("self"),
largest first; functions of numba itself (numpy implementations) are summed per module.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

FIT = r"""
import json, os, sys, time
import numpy as np
t0 = time.perf_counter()
import bpt
t_import = time.perf_counter() - t0
rec = {}
if PROFILE:
    from numba.core import dispatcher
    orig = dispatcher.Dispatcher.compile
    stack = []

    def compile(self, sig):
        mod = self.py_func.__module__
        key = (mod + "." + self.py_func.__name__) if mod.startswith("bpt") else mod
        t = time.perf_counter()
        stack.append(0.0)
        try:
            return orig(self, sig)
        finally:
            dt = time.perf_counter() - t
            child = stack.pop()
            if stack:
                stack[-1] += dt
            r = rec.setdefault(key, [set(), 0.0])
            r[0].add(str(sig))
            r[1] += dt - child
    dispatcher.Dispatcher.compile = compile
rng = np.random.default_rng(0)
n = 100_000
X = rng.normal(size=(n, 10))
if KIND == "bit":
    y = np.column_stack([np.ones(n), np.tanh(X[:, 0])])
    est = bpt.BoostedInformationTree(n_parameters=1, order=1, n_estimators=20, max_depth=4)
else:
    y = rng.choice([0.0, -1.0, 1.0], size=(n, 1))
    X[:, 0] += 0.1 * y[:, 0]
    est = bpt.BoostedParametricTree(n_nuisances=1, order=2, n_estimators=20, max_depth=4)
t0 = time.perf_counter()
est.fit(X, y)
t_fit = time.perf_counter() - t0
cpu = os.times()
print(json.dumps({"bpt": os.path.dirname(bpt.__file__), "import": t_import, "fit": t_fit, "cpu": cpu.user + cpu.system,
                  "profile": {k: [len(v[0]), v[1]] for k, v in rec.items()}}))
"""


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(kind, cache, profile=False):
    code = FIT.replace("PROFILE", repr(profile)).replace("KIND", repr(kind))
    # this checkout's bpt, as the other benches with PYTHONPATH=.
    path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=path)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True, cwd=os.getcwd())
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kinds", nargs="*", default=["bit", "bpt"])
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--prebuilt", action="store_true",
                    help="fill the cache with python -m bpt.precompile first")
    args = ap.parse_args()
    print(f"{os.cpu_count()} CPUs")
    for kind in args.kinds:
        with tempfile.TemporaryDirectory() as cache:
            load = os.getloadavg()[0]
            if args.prebuilt:
                path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
                t = time.perf_counter()
                subprocess.run([sys.executable, "-m", "bpt.precompile"], check=True,
                               capture_output=True, cwd=os.getcwd(),
                               env=dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=path))
                print(f"python -m bpt.precompile: {time.perf_counter() - t:.1f} s")
                a = run(kind, cache)
                print(f"{kind.upper()} (bpt from {a['bpt']}) first fit (100000 x 10, 20 "
                      f"trees) from the prebuilt cache, load average {load:.1f}: "
                      f"{a['fit']:.2f} s (process CPU {a['cpu']:.1f} s); import bpt "
                      f"{a['import']:.1f} s")
                continue
            a = run(kind, cache, args.profile)
            b = run(kind, cache)
        print(f"{kind.upper()} (bpt from {a['bpt']}) first fit (100000 x 10, 20 trees), load average {load:.1f}: "
              f"empty cache {a['fit']:.1f} s (process CPU {a['cpu']:.1f} s), from the cache "
              f"{b['fit']:.2f} s (CPU {b['cpu']:.1f} s); import bpt {a['import']:.1f} s")
        if args.profile:
            for k, (n_sig, t) in sorted(a["profile"].items(), key=lambda kv: -kv[1][1]):
                if t >= 0.05:
                    print(f"    {t:6.2f} s  {n_sig} signature(s)  {k}")


if __name__ == "__main__":
    main()
