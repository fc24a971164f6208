"""Experiment (not a package feature): slopes of the BPT linear leaves pooled over a
larger node.  Needs the prototype patch beside this file (bench/experiments/README.md):

    git apply bench/experiments/linear_slope_pooling.patch
    python bench/experiments/linear_slope_pooling.py SEED TOYS MODES [SETTINGS]
    git apply -R bench/experiments/linear_slope_pooling.patch

e.g. ``... 1 energy_scale,shift_independent none,parent,half "d2 a0.5,d2 a1"``.  Prints
the off-grid relative RMSE (and the number of trees kept) per setting and mode.
"""
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_accuracy import TOYS, fit_bpt_estimator, make_estimator, score_bpt  # noqa: E402

seed = int(sys.argv[1])
toys = sys.argv[2].split(",")
modes = sys.argv[3].split(",")
settings = [("d2 a0.5", dict(max_depth=2)), ("d2 a1", dict(max_depth=2, linear_leaves=1.0)),
            ("d1 a1", dict(max_depth=1, linear_leaves=1.0))]
if len(sys.argv) > 4:
    settings = [s for s in settings if s[0] in sys.argv[4].split(",")]
for name in toys:
    fn, kw, _ = TOYS[name]
    toy = fn(**kw, random_state=seed)
    for label, params in settings:
        out = []
        for mode in modes:
            os.environ["BPT_POOL"] = "" if mode == "none" else mode
            est, _ = make_estimator(toy, params, 2, False)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                fit_bpt_estimator(est, toy)
            out.append(f"{mode}={score_bpt(est.predict(toy.X_test), toy):.3f}({est.n_iter_})")
        print(f"{name} s{seed} {label}: " + "  ".join(out), flush=True)
