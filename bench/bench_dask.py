"""bpt.dask: BIT on a 2-worker distributed.LocalCluster vs the in-memory fit.

    python bench/bench_dask.py            # 2e6 x 20 (and 1e6 x 20), BIT 5 and 20 terms
    python bench/bench_dask.py --quick    # 2e5 / 1e5 rows (smoke test)

For each case (rows, terms): the in-memory BoostedInformationTree in a fresh process
(n_jobs=2: both cores, and n_jobs=1) and DaskBoostedInformationTree on a fresh
LocalCluster of 2 worker processes x 1 thread (n_jobs=1 per worker), depth 4, 255 bins,
no early stopping.  The data are generated block by block where they live (on the
workers for dask), the same rows for both.  Printed: time per tree (boosting loop only,
after a warm-up fit that loads the compiled kernels), bytes per tree that travel (pickled
messages to the workers + histograms and statistics back, ``dask_traffic_``), and the
peak resident memory of each process (``ru_maxrss``: the in-memory process vs each
worker process), also above the process's memory before the data were made.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

N_FEATURES = 20


def make_block(i, rows, n_parameters, seed=12345):
    """Rows of block i: 20 features, c0 > 0 and quadratic SMEFT-like coefficients."""
    rng = np.random.default_rng([seed, i])
    X = rng.normal(size=(rows, N_FEATURES))
    c0 = rng.exponential(size=rows)
    a = 0.3 * np.tanh(X[:, :n_parameters]) + 0.1 * X[:, n_parameters:2 * n_parameters]
    cols = [c0, *(2.0 * c0 * a[:, k] for k in range(n_parameters))]
    for p in range(n_parameters):
        for q in range(p, n_parameters):
            cols.append(c0 * a[:, p] * a[:, q] * (1.0 if p == q else 2.0))
    return X, np.column_stack(cols)


def n_terms(n_parameters):
    return n_parameters + n_parameters * (n_parameters + 1) // 2


def blocks_of(n, n_blocks=8):
    """Row counts of the blocks (8, so that dask spreads them over both workers)."""
    return [(n * (i + 1)) // n_blocks - (n * i) // n_blocks for i in range(n_blocks)]


def rss_now():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def maxrss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def in_memory(n, n_parameters, n_trees, n_jobs):
    """Run in a fresh process: peak memory and time per tree of the in-memory fit."""
    import bpt
    Xs, ys = make_block(0, 2000, n_parameters)
    bpt.BoostedInformationTree(n_parameters=n_parameters, n_estimators=2,
                               early_stopping=False, n_jobs=n_jobs).fit(Xs, ys)
    base = rss_now()
    X = np.empty((n, N_FEATURES))
    y = np.empty((n, 1 + n_terms(n_parameters)))
    off = 0
    for i, rows in enumerate(blocks_of(n)):
        X[off:off + rows], y[off:off + rows] = make_block(i, rows, n_parameters)
        off += rows
    est = bpt.BoostedInformationTree(n_parameters=n_parameters, n_estimators=n_trees,
                                     early_stopping=False, n_jobs=n_jobs, random_state=0)
    t = time.perf_counter()
    est.fit(X, y)
    wall = time.perf_counter() - t
    return dict(per_tree=est.fit_time_ / n_trees, wall=wall, peak=maxrss(), base=base,
                value=est.ensemble_.arrays["value"].tolist()[:3])


def on_dask(n, n_parameters, n_trees):
    import dask
    import dask.array as da
    import distributed

    from bpt.dask import DaskBoostedInformationTree
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        # warm-up: load the compiled kernels in both workers
        Xs, ys = make_block(0, 4000, n_parameters)
        DaskBoostedInformationTree(n_parameters=n_parameters, n_estimators=2, n_jobs=1,
                                   early_stopping=False).fit(
            da.from_array(Xs, chunks=2000), da.from_array(ys, chunks=(2000, -1)),
            client=client)
        base = client.run(rss_now)
        T = 1 + n_terms(n_parameters)
        parts = [dask.delayed(make_block)(i, rows, n_parameters)
                 for i, rows in enumerate(blocks_of(n))]
        X = da.concatenate([da.from_delayed(p[0], (rows, N_FEATURES), np.float64)
                            for p, rows in zip(parts, blocks_of(n))])
        y = da.concatenate([da.from_delayed(p[1], (rows, T), np.float64)
                            for p, rows in zip(parts, blocks_of(n))])
        est = DaskBoostedInformationTree(n_parameters=n_parameters, n_estimators=n_trees,
                                         early_stopping=False, n_jobs=1, random_state=0)
        t = time.perf_counter()
        est.fit(X, y, client=client)
        wall = time.perf_counter() - t
        peak = client.run(maxrss)
        tr = est.dask_traffic_
        # the first tree also carries the setup messages' share; report the later ones
        sent = float(np.mean(tr["sent"][1:] if n_trees > 1 else tr["sent"]))
        recv = float(np.mean(tr["received"][1:] if n_trees > 1 else tr["received"]))
        return dict(per_tree=est.fit_time_ / n_trees, wall=wall, sent=sent, received=recv,
                    round_trips=float(np.mean(tr["round_trips"])),
                    sample_bytes=int(tr["sample_bytes"]), n_workers=int(tr["n_workers"]),
                    rows=tr["rows_per_worker"].tolist(),
                    worker_s=float(np.mean(tr["worker_seconds"])),
                    peak=sorted(peak.values()), base=sorted(base.values()),
                    value=est.ensemble_.arrays["value"].tolist()[:3])


def fresh(fn, *args):
    code = (f"import sys, json; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
            f"sys.path.insert(0, {os.path.dirname(os.path.dirname(os.path.abspath(__file__)))!r}); "
            f"import bench_dask as b; print(json.dumps(b.{fn}(*{args!r})))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-3000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def mib(b):
    return b / 2 ** 20


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    sizes = (100_000, 200_000) if args.quick else (1_000_000, 2_000_000)
    cases = [(2, 10), (5, 5)]          # (n_parameters, trees): 5 and 20 terms
    import bpt
    print(f"bpt {bpt.__version__}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.2f} at start; depth 4, 255 bins, {N_FEATURES} features")
    for n_parameters, n_trees in cases:
        T = n_terms(n_parameters)
        for n in sizes:
            m2 = fresh("in_memory", n, n_parameters, n_trees, 2)
            m1 = fresh("in_memory", n, n_parameters, n_trees, 1)
            d = fresh("on_dask", n, n_parameters, n_trees)
            same = np.allclose(np.array(d["value"]), np.array(m2["value"]), rtol=0,
                               atol=1e-12)
            print(f"\nBIT {T} terms, {n:,} rows ({n_trees} trees); first leaf values equal "
                  f"to 1e-12: {same}")
            print(f"  time per tree: in-memory n_jobs=2 {m2['per_tree']:.3f} s, n_jobs=1 "
                  f"{m1['per_tree']:.3f} s; dask 2 workers x 1 thread {d['per_tree']:.3f} s "
                  f"(ratio dask / in-memory(2 threads) = {d['per_tree'] / m2['per_tree']:.2f})")
            print(f"  whole fit incl. setup/binning: in-memory {m2['wall']:.2f} s, dask "
                  f"{d['wall']:.2f} s")
            print(f"  per tree: sent {d['sent'] / 1e3:.1f} kB to the workers, received "
                  f"{d['received'] / 1e6:.2f} MB (histograms + stats), {d['round_trips']:.0f} "
                  f"round trips, {d['n_workers']} workers holding {d['rows']} rows (slowest "
                  f"worker computing {d['worker_s']:.3f} s per tree); once per fit: binning sample "
                  f"{d['sample_bytes'] / 1e6:.1f} MB")
            pk = max(d["peak"])
            print(f"  peak memory: in-memory process {mib(m2['peak']):.0f} MiB "
                  f"({mib(m2['peak'] - m2['base']):.0f} above its start); dask workers "
                  f"{', '.join(f'{mib(p):.0f}' for p in d['peak'])} MiB "
                  f"({', '.join(f'{mib(p - b):.0f}' for p, b in zip(d['peak'], d['base']))} "
                  f"above their start); ratio largest worker / in-memory = "
                  f"{pk / m2['peak']:.2f} (above start: "
                  f"{(pk - max(d['base'])) / (m2['peak'] - m2['base']):.2f}; target <= 0.6)")


if __name__ == "__main__":
    main()
