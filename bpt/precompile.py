"""Compile bpt's numba kernels into the on-disk cache ahead of time.

    python -m bpt.precompile                 # every estimator variant and the inference
    python -m bpt.precompile --only bit      # the BoostedInformationTree alone
    NUMBA_CACHE_DIR=/path python -m bpt.precompile

A process that finds bpt's kernels in numba's cache loads them in about a second; one
that does not compiles them (15-25 s for a first fit, as much again for other options
and the likelihood).  Run this once where the cache location is writable: in the
package directory right after installing (a container image build, a CVMFS release
before publishing) or with ``NUMBA_CACHE_DIR`` set.  Processes started later use the
cache even where that location is read-only (bpt reads a prebuilt cache that numba
itself would ignore there; docs/performance.md, "Read-only installations").

The cache holds machine code for the CPU it was built on: nodes with another CPU
model compile for themselves (not saved where the cache is read-only, with one
warning).  Building with ``NUMBA_CPU_NAME=generic`` (and running with it) gives a cache
that every x86-64 node can use, at some cost in speed.

The kernels are compiled by small fits (a few thousand random events) of every option
that selects its own compiled code: both estimators at their defaults (early stopping,
so prediction too), with missing values, float32 features, float32 targets,
best-first growth with feature draws and row subsampling, exact splits, constant BPT
leaves, per-feature contributions, and a profiled likelihood fit and scan of an
additive model.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np

__all__ = ["precompile", "kernels"]

_N = 12_000        # >= 10 000 rows: early stopping "auto" is on (prediction compiled)


def _bit_data(rng, n=_N):
    X = rng.normal(size=(n, 3))
    c0 = rng.uniform(0.5, 1.5, n)
    y = np.column_stack([c0, c0 * np.tanh(X[:, 0]), c0 * 0.3 * X[:, 1] ** 2])
    return X, y


def _bpt_data(rng, n=_N // 4):
    X0 = rng.normal(size=(n, 3))
    Xs, nus = [X0], [np.zeros((n, 1))]
    for nu in (-1.0, 1.0, 2.0):
        Xs.append(rng.normal(size=(n, 3)) + 0.1 * nu)
        nus.append(np.full((n, 1), nu))
    X = np.vstack(Xs)
    return X, np.vstack(nus), np.ones(X.shape[0])


def _with_nan(rng, X):
    X = X.copy()
    X[rng.random(X.shape) < 0.05] = np.nan
    return X


def _bit_cases(rng):
    from . import BoostedInformationTree as BIT
    X, y = _bit_data(rng)
    small = dict(n_estimators=3)
    yield "BIT defaults", BIT(n_parameters=1, **small), X, y
    yield "BIT missing values", BIT(n_parameters=1, **small), _with_nan(rng, X), y
    yield "BIT float32 features", BIT(n_parameters=1, **small), X.astype(np.float32), y
    yield ("BIT float32 targets", BIT(n_parameters=1, target_dtype="float32", **small),
           X, y)
    yield ("BIT best first, feature draws, subsample",
           BIT(n_parameters=1, max_leaf_nodes=6, max_depth=None, max_features=0.5,
               subsample=0.5, l2_regularization=1e-3, **small), X, y)
    yield "BIT exact splits", BIT(n_parameters=1, split="exact", **small), X[:2000], y[:2000]


def _bpt_cases(rng):
    from . import BoostedParametricTree as BPT
    X, nu, w = _bpt_data(rng)
    small = dict(n_estimators=3)
    yield "BPT defaults", BPT(n_nuisances=1, **small), X, (nu, w)
    yield "BPT constant leaves", BPT(n_nuisances=1, linear_leaves=0.0, **small), X, (nu, w)
    yield "BPT missing values", BPT(n_nuisances=1, **small), _with_nan(rng, X), (nu, w)
    yield ("BPT constant leaves, missing values",
           BPT(n_nuisances=1, linear_leaves=0.0, **small), _with_nan(rng, X), (nu, w))
    yield "BPT float32 features", BPT(n_nuisances=1, **small), X.astype(np.float32), (nu, w)
    yield ("BPT best first, feature draws, subsample",
           BPT(n_nuisances=1, max_leaf_nodes=6, max_depth=None, max_features=0.5,
               subsample=0.5, l2_regularization=1e-3, **small), X, (nu, w))


def _fit(est, X, t):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if isinstance(t, tuple):
            est.fit(X, t[0], sample_weight=t[1])
        else:
            est.fit(X, t)
        est.predict(X[:1000])
        est.predict(X[:1000].astype(np.float32 if X.dtype == np.float64 else np.float64))
        est.predict_contributions(X[:200])
    return est


def _inference(rng, bit, bpt):
    from .inference import AdditiveModel, Process
    X, y = _bit_data(rng, 4000)
    w = y[:, 0]
    model = AdditiveModel([Process("signal", X, w, ratio=(bit, ["theta"]),
                                   systematics=[(bpt, ["nu"])])],
                          pois=["theta"], nuisances=["nu"])
    data = model.prepare(X[:2000], w[:2000], global_observables=[0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(data)
        model.scan(np.linspace(-0.2, 0.2, 3), data)


def kernels():
    """bpt's numba kernels (dispatchers) in the modules loaded so far, by qualified name."""
    from numba.core.dispatcher import Dispatcher
    found = {}
    for name, mod in list(sys.modules.items()):
        if name == "bpt" or name.startswith("bpt."):
            for obj in list(vars(mod).values()):
                if isinstance(obj, Dispatcher) and obj.py_func.__module__ == name:
                    found[f"{name}.{obj.py_func.__name__}"] = obj
    return found


def _kernel_stats():
    """(kernels with a cache, cache hits, cache misses, cache directories) of bpt."""
    n = hits = misses = 0
    paths = set()
    for obj in kernels().values():
        st = obj.stats
        if st.cache_path:
            n += 1
            paths.add(st.cache_path)
            hits += sum(st.cache_hits.values())
            misses += sum(st.cache_misses.values())
    return n, hits, misses, sorted(paths)


def precompile(only=None, verbose=True):
    """Compile (and cache) bpt's kernels; ``only`` in {None, "bit", "bpt"}.  Returns
    (kernels, cache hits, compiled signatures, cache directories)."""
    from ._engine._runtime import caching_enabled
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    fitted = {}
    cases = []
    if only in (None, "bit"):
        cases += list(_bit_cases(rng))
    if only in (None, "bpt"):
        cases += list(_bpt_cases(rng))
    for label, est, X, t in cases:
        t1 = time.perf_counter()
        fitted.setdefault(label.split()[0], _fit(est, X, t))
        if verbose:
            print(f"  {label:45s} {time.perf_counter() - t1:6.1f} s", flush=True)
    if only is None:
        t1 = time.perf_counter()
        _inference(rng, fitted["BIT"], fitted["BPT"])
        if verbose:
            print(f"  {'likelihood fit and scan':45s} {time.perf_counter() - t1:6.1f} s",
                  flush=True)
    n, hits, misses, paths = _kernel_stats()
    if verbose:
        print(f"bpt.precompile: {n} kernels, {misses} signatures compiled, {hits} loaded "
              f"from the cache, {time.perf_counter() - t0:.1f} s", flush=True)
        for p in paths:
            print(f"  cache: {p}")
        if not caching_enabled():
            print("  WARNING: no writable cache location: nothing was saved",
                  file=sys.stderr)
    return n, hits, misses, paths


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m bpt.precompile",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("bit", "bpt"), default=None,
                    help="compile the kernels of one estimator only (no inference)")
    args = ap.parse_args(argv)
    precompile(args.only)
    from ._engine._runtime import caching_enabled
    return 0 if caching_enabled() else 1


if __name__ == "__main__":
    sys.exit(main())
