"""Run by tests/test_processes.py in a fresh interpreter:
``python _process_worker.py MODEL[,MODEL...] [one-cpu]`` (``one-cpu``: restrict the
process to one CPU first).

Fits a small BIT in this (parent) process, so that numba's threads are running, then
runs the same fit and a prediction of the parent's model in children started by MODEL
(fork / spawn / forkserver ProcessPoolExecutor, joblib loky / multiprocessing, 4
threads at once, or ``dask-threads``: a bpt.dask fit on in-process workers) and checks that every child returns exactly the parent's numbers.
Prints "OK <threading layer>" on success; any failure exits non-zero.
"""

import sys

import numpy as np


def make_data(seed=0, n=3000):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, 3))
    w = rng.uniform(0.5, 1.5, n)
    y = np.column_stack([w, w * (X[:, 0] + 0.5 * X[:, 1] ** 2)])
    return X, y


def fit(seed=0):
    import bpt
    X, y = make_data(seed)
    est = bpt.BoostedInformationTree(n_parameters=1, order=1, n_estimators=5, max_depth=3,
                                     max_bins=32, random_state=0)
    return est.fit(X, y)


def task(model, seed):
    """In a child: predict with the parent's model and fit a new one."""
    X, _ = make_data(seed)
    return model.predict(X), fit(seed).predict(X)


def expected(model, seed):
    X, _ = make_data(seed)
    return model.predict(X), fit(seed).predict(X)


def check_dask_threads():
    import distributed
    from bpt.dask import DaskBoostedInformationTree

    X, y = make_data(5)
    want = fit(5).predict(X)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster:
        with distributed.Client(cluster) as client:
            est = DaskBoostedInformationTree(n_parameters=1, order=1, n_estimators=5,
                                             max_depth=3, max_bins=32, random_state=0)
            est.fit(X, y, client=client)
    # the same trees; leaves equal up to the round-off of summing per-worker histograms
    np.testing.assert_allclose(est.predict(X), want, rtol=1e-12, atol=1e-14)


def main(kinds):
    import numba

    model = fit(0)                      # the parent has used its numba threads
    for kind in kinds.split(","):
        check(model, kind)
    print("OK", numba.threading_layer())


def check(model, kind):
    import concurrent.futures as cf
    import multiprocessing as mp

    import joblib

    seeds = [1, 2, 3, 4]
    if kind == "fork":
        with cf.ProcessPoolExecutor(2, mp_context=mp.get_context(kind)) as pool:
            results = list(pool.map(task, [model] * len(seeds), seeds))
    elif kind in ("spawn", "forkserver"):
        # one child: each fresh interpreter imports bpt and loads the kernels again
        seeds = seeds[:2]
        with cf.ProcessPoolExecutor(1, mp_context=mp.get_context(kind)) as pool:
            results = list(pool.map(task, [model] * len(seeds), seeds))
    elif kind in ("loky", "multiprocessing"):
        seeds = seeds[:2]
        results = joblib.Parallel(n_jobs=2, backend=kind)(
            joblib.delayed(task)(model, s) for s in seeds)
    elif kind == "threads":
        with cf.ThreadPoolExecutor(4) as pool:
            results = list(pool.map(task, [model] * len(seeds), seeds))
    elif kind == "dask-threads":
        # bpt.dask on in-process workers (threads): the driver's fit must not keep the
        # kernel lock while it waits for them (a hang on the workqueue layer)
        check_dask_threads()
        return
    else:
        raise SystemExit(f"unknown process model {kind!r}")
    for s, (pred, refit) in zip(seeds, results):
        want_pred, want_refit = expected(model, s)
        np.testing.assert_array_equal(pred, want_pred)
        np.testing.assert_array_equal(refit, want_refit)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[2] == "one-cpu":
        # a batch slot of one CPU (as taskset -c or a cgroup CPU set), before numba starts
        import os
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    main(sys.argv[1])
