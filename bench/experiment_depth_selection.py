"""Experiment (not a package feature): can the validation loss choose the BPT's depth?

    python bench/experiment_depth_selection.py --seed 1          # the three BPT toys
    python bench/experiment_depth_selection.py --seed 1 --toys energy_scale --x0-only

For every BPT toy of ``bench_accuracy.py`` and every setting below (depth and
``linear_leaves`` on top of the defaults, early stopping on the internal 10% split and
the refit as usual) it prints the off-grid relative RMSE against the exact truth on the
independent test simulation and the lowest validation loss of the fit (the cross
entropy that early stopping monitors).  A data-driven depth (``max_depth="auto"``) would
pick the setting with the lowest validation loss; it works if that setting is also the
one with the lowest truth error.  ``--x0-only`` fits on the first feature alone (the one
the energy-scale toy's truth depends on), to see whether the depth-2 error there comes
from splits on uninformative features.  ``--oracle``: each setting grown to
ORACLE_TREES trees without early stopping, and the truth error after every tree (the
best number of trees, known only from the truth): whether a setting is limited by when
early stopping stops or by what its trees can represent.  Results: bench/README.md
("Choosing the depth by the validation loss").
"""

import argparse
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_accuracy import TOYS, fit_bpt_estimator, make_estimator, score_bpt  # noqa: E402

ORACLE_TREES = 300

SETTINGS = [("depth 1, alpha 0.5", dict(max_depth=1)),
            ("depth 1, alpha 1", dict(max_depth=1, linear_leaves=1.0)),
            ("depth 2, alpha 0.5 (defaults)", dict(max_depth=2)),
            ("depth 2, alpha 1", dict(max_depth=2, linear_leaves=1.0)),
            ("depth 3, alpha 0.5", dict(max_depth=3))]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--toys", default="energy_scale,shift_independent,shift_reweighted")
    ap.add_argument("--x0-only", action="store_true")
    ap.add_argument("--oracle", action="store_true")
    ap.add_argument("--n-jobs", type=int, default=2)
    args = ap.parse_args(argv)
    for name in args.toys.split(","):
        fn, kwargs, _ = TOYS[name]
        toy = fn(**kwargs, random_state=args.seed)
        cols = slice(0, 1) if args.x0_only else slice(None)
        if args.x0_only:
            toy.X = np.ascontiguousarray(toy.X[:, cols])     # the truth needs all of X_test
        print(f"{name}, seed {args.seed}{', x0 only' if args.x0_only else ''}", flush=True)
        rows = []
        for label, params in SETTINGS:
            if args.oracle:
                params = dict(params, early_stopping=False, n_estimators=ORACLE_TREES)
            est, _ = make_estimator(toy, params, args.n_jobs, False)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                fit_bpt_estimator(est, toy)
            X_test = np.ascontiguousarray(toy.X_test[:, cols])
            if args.oracle:
                curve = [score_bpt(D, toy) for D in est.staged_predict(X_test)]
                b = int(np.argmin(curve))
                print(f"  {label:30s} best rel. RMSE {curve[b]:.3f} after {b + 1} trees; "
                      "after 25 / 50 / 100 / 300: "
                      + " / ".join(f"{curve[t - 1]:.3f}" for t in (25, 50, 100, 300)),
                      flush=True)
                continue
            rmse = score_bpt(est.predict(X_test), toy)
            val = float(np.min(est.validation_loss_))
            rows.append((rmse, val))
            print(f"  {label:30s} rel. RMSE {rmse:.3f}  lowest validation loss {val:.7f}  "
                  f"trees {est.n_iter_}", flush=True)
        if args.oracle:
            continue
        chosen = min(range(len(rows)), key=lambda j: rows[j][1])
        best = min(range(len(rows)), key=lambda j: rows[j][0])
        print(f"  lowest validation loss: {SETTINGS[chosen][0]} (rel. RMSE "
              f"{rows[chosen][0]:.3f}); lowest truth error: {SETTINGS[best][0]} "
              f"({rows[best][0]:.3f})", flush=True)


if __name__ == "__main__":
    main()
