"""Where a fit's time goes: timers around the stages of the bench_engine fits.

    taskset -c 0 env NUMBA_NUM_THREADS=1 PYTHONPATH=. python bench/bench_stages.py bpt
    taskset -c 0 env NUMBA_NUM_THREADS=1 PYTHONPATH=/other/checkout python bench/bench_stages.py bit

(``PYTHONPATH`` selects the checkout whose ``bpt`` is timed; the data come from this
directory's bench_bit / bench_bpt, the same as bench_engine.py.)  cProfile does not see
inside numba, so the Python-level entry points of each stage are wrapped with timers:
binning (``BinMapper.fit_transform``), the compiled grower (``grow_tree``), the rest of
``TreeGrower.grow``, the boosting update, the per-tree training loss (``end_tree``; for
the BPT ``bpt_model_loss``), the BPT's linear leaves (``finish_leaves``, with
``--linear``) and ``TreeEnsemble.add``.  Prints the best of ``--repeat``
whole fits (after a warm-up fit on a few rows) with the stage times of that fit.

Cases: ``bit`` 700k x 10, 1 parameter linear; ``bpt`` 7 x 100k x 10, 1 nuisance
quadratic; both depth 4, 20 trees, 255 bins, no early stopping, ``n_jobs=1`` (``--n-jobs``).
"""

import argparse
import collections
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bpt  # noqa: E402
from bpt import _base  # noqa: E402
from bpt._engine import _grower, _loss  # noqa: E402
from bench_bit import NO_ES, data_a  # noqa: E402
from bench_bpt import data as data_bpt  # noqa: E402

TIMES = collections.defaultdict(float)


def _wrap(owner, name, label):
    f = getattr(owner, name)

    def timed(*a, **k):
        t = time.perf_counter()
        try:
            return f(*a, **k)
        finally:
            TIMES[label] += time.perf_counter() - t
    setattr(owner, name, timed)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=("bit", "bpt"))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--n-jobs", type=int, default=1, help="threads of the fit (default 1)")
    ap.add_argument("--linear", type=float, default=0.0,
                    help="BPT linear_leaves (default 0: constant leaves, the engine alone; "
                         "0.5 is the estimator's default)")
    args = ap.parse_args()
    _wrap(_base.BinMapper, "fit_transform", "binning")
    _wrap(_grower.TreeGrower, "grow", "grow")
    _wrap(_grower, "grow_tree", "grow_tree")
    for cls in (_loss.BITLoss, _loss.BPTLoss):
        _wrap(cls, "update", "update")
        _wrap(cls, "end_tree", "end_tree")
    _wrap(_loss.BPTLoss, "finish_leaves", "linear leaves")
    _wrap(_base.TreeEnsemble, "add", "ensemble.add")
    if args.case == "bit":
        X, y = data_a(700_000, 10)
        est = bpt.BoostedInformationTree(n_parameters=1, order=1, n_estimators=20,
                                         learning_rate=0.2, max_depth=4, min_samples_leaf=50,
                                         max_bins=255, n_jobs=args.n_jobs, **NO_ES)
        est.fit(X[:5000], y[:5000])

        def fit():
            est.fit(X, y)
    else:
        Xb, nu = data_bpt(100_000)
        est = bpt.BoostedParametricTree(n_nuisances=1, order=2, n_estimators=20, max_depth=4,
                                        min_samples_leaf=50, max_bins=255, n_jobs=args.n_jobs, **NO_ES,
                                        linear_leaves=args.linear)
        est.fit(Xb[::50], nu[::50])

        def fit():
            est.fit(Xb, nu)
    best = None
    for _ in range(args.repeat):
        TIMES.clear()
        t = time.perf_counter()
        fit()
        total = time.perf_counter() - t
        if best is None or total < best[0]:
            best = (total, dict(TIMES))
    total, st = best
    st["grow (Python side)"] = st.pop("grow") - st["grow_tree"]
    parts = "  ".join(f"{k} {v:.3f}" for k, v in st.items())
    print(f"{args.case} (bpt from {os.path.dirname(bpt.__file__)}, load "
          f"{os.getloadavg()[0]:.1f}): fit {total:.3f} s;  {parts}")


if __name__ == "__main__":
    main()
