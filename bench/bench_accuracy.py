"""Accuracy of the learned models on analytic toys with exact truth (issue 12, items 3 and 5).

    python bench/bench_accuracy.py                      # every toy, the full grid (~1 h)
    python bench/bench_accuracy.py --quick              # tiny samples, 3 settings (smoke test)
    python bench/bench_accuracy.py --toys shift_independent,bit_quadratic --grid defaults,d1
    python bench/bench_accuracy.py --out results.json

For every toy of :mod:`bpt.toys`, side by side in one run:

* bpt at its current defaults (only the toy's terms, ``random_state`` and ``n_jobs``
  are set) and at every point of the grid ``GRID`` below (``--grid`` picks labels);
  a grid point whose parameters the estimator does not have (``est.get_params()``) is
  skipped with a printed note, so the same script runs before and after new options land;
* the peers: for the BPT toys one scikit-learn ``HistGradientBoostingClassifier`` per
  base point (nominal vs that point, cross-section weights, early stopping on 10%),
  whose log-odds l_k(x) are fitted to m_A(nu_k) by least squares,
  Delta(x) = (V^T V)^-1 V^T l(x); for the BIT toys XGBoost multi-output regression
  (``multi_strategy="multi_output_tree"``) of c_A / c0 with weights c0 and early
  stopping on 10%.

Figure of merit: the off-grid relative RMSE on an independent test simulation (nominal
events), pooled over the toy's off-grid test points:
sqrt(sum_p mean_x (f_hat - f)^2) / sqrt(sum_p var_x f), with f = g_nu(x) (BPT) or
r(x|theta) (BIT) -- the RMSE in units of the spread of the truth (the empty model
scores about 1).

Profiled fit: one process with the SM simulation x ~ N(0, I_3) (yield ``--yield``),
two POIs with the exact R_A of ``bit_quadratic`` and two nuisances with the exact
Delta_A of the ``shift_*`` toys (exact pieces: :class:`bpt.toys.ExactModel`), Asimov
data of the exact model at theta = (0.2, -0.2), nu = 0.  The 68% Wilks interval of each
POI (the other POI and both nuisances profiled) of the exact model is compared with
the same model where ONE piece is learned (the BPT of ``shift_independent`` or the BIT
of ``bit_quadratic``, at the defaults, the best grid point and the peer), and where BOTH
are learned (``BIT+BPT``: the learned R_A and the learned Delta_A together, each at the
defaults, and each peer): offset of each endpoint from the exact one in units of the
exact half-width, and the width ratio.

Fits run on ``--n-jobs`` threads (default 1: on a shared machine numba's and OpenMP's
spinning threads slow everything down; accuracy does not depend on it).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import bpt  # noqa: E402
from bpt import BoostedInformationTree, BoostedParametricTree  # noqa: E402
from bpt import toys  # noqa: E402
from bpt._terms import monomials  # noqa: E402

# ------------------------------------------------------------------ the grid
# Each point: (label, estimator parameters on top of the defaults).  Parameters an
# estimator does not have are skipped with a note (l2_regularization, subsample,
# max_features, max_leaf_nodes, early_stopping are being added in issue 12).
ES = dict(n_estimators=500, learning_rate=0.1, validation_fraction=0.1, n_iter_no_change=10,
          early_stopping=True)
GRID = [
    ("defaults", {}),
    ("d1 lr0.3 n300", dict(max_depth=1, learning_rate=0.3, n_estimators=300)),
    ("d2 lr0.2 n200", dict(max_depth=2, learning_rate=0.2, n_estimators=200)),
    ("d2 lr0.1 n200 msl500", dict(max_depth=2, learning_rate=0.1, n_estimators=200,
                                  min_samples_leaf=500)),
    ("d3 lr0.1 n200", dict(max_depth=3, learning_rate=0.1, n_estimators=200)),
    ("d4 lr0.1 n100", dict(max_depth=4, learning_rate=0.1, n_estimators=100)),
    ("d4 msl2000", dict(min_samples_leaf=2000)),
    ("d6 lr0.1 n100 msl1000", dict(max_depth=6, learning_rate=0.1, n_estimators=100,
                                   min_samples_leaf=1000)),
    ("d2 ES", dict(max_depth=2, **ES)),
    ("d4 ES", dict(max_depth=4, **ES)),
    # ---- new options (issue 12): skipped until the estimators have them
    ("d4 l2=1", dict(l2_regularization=1.0)),
    ("d4 l2=10", dict(l2_regularization=10.0)),
    ("d4 subsample0.5", dict(subsample=0.5)),
    ("d4 maxfeat0.7", dict(max_features=0.7)),
    ("leaves8 best-first", dict(max_leaf_nodes=8, max_depth=None)),
    ("d4 mwl0.005", dict(min_weight_leaf=0.005)),
    ("d4 ES auto", dict(early_stopping="auto", n_estimators=500, learning_rate=0.1)),
    ("d3 l2=1 sub0.5 ES auto", dict(max_depth=3, l2_regularization=1.0, subsample=0.5,
                                    early_stopping="auto", n_estimators=500,
                                    learning_rate=0.1)),
    ("d4 l2=1 sub0.5 ES auto", dict(l2_regularization=1.0, subsample=0.5,
                                    early_stopping="auto", n_estimators=500,
                                    learning_rate=0.1)),
    ("d2 l2=1 ES auto", dict(max_depth=2, l2_regularization=1.0, early_stopping="auto",
                             n_estimators=500, learning_rate=0.1)),
    ("d2 sub0.5 ES auto", dict(max_depth=2, subsample=0.5, early_stopping="auto",
                               n_estimators=500, learning_rate=0.1)),
]
# ---- the focused grid that chose the defaults (issue 12 item 3): early stopping "auto"
# (on for >= 10 000 rows; BPT validation split by event with ``groups=``), 500 trees at
# most; l2 in units of the total |w| (docs/concepts.md "Regularisation").
ESA = dict(early_stopping="auto", n_estimators=500, learning_rate=0.1)
GRID += [
    ("old defaults", dict(n_estimators=100, learning_rate=0.2, max_depth=4,
                          early_stopping="auto")),
    ("d1 ESa", dict(max_depth=1, **ESA)),
    ("d2 ESa", dict(max_depth=2, **ESA)),
    ("d2 lr0.2 ESa", dict(max_depth=2, **dict(ESA, learning_rate=0.2))),
    ("d3 ESa", dict(max_depth=3, **ESA)),
    ("d4 ESa", dict(max_depth=4, **ESA)),
    ("d4 lr0.2 ESa", dict(max_depth=4, **dict(ESA, learning_rate=0.2))),
    ("d2 l2=1e-4 ESa", dict(max_depth=2, l2_regularization=1e-4, **ESA)),
    ("d2 l2=1e-3 ESa", dict(max_depth=2, l2_regularization=1e-3, **ESA)),
    ("d2 l2=1e-2 ESa", dict(max_depth=2, l2_regularization=1e-2, **ESA)),
    ("d2 sub0.5 ESa", dict(max_depth=2, subsample=0.5, **ESA)),
    ("d2 sub0.8 ESa", dict(max_depth=2, subsample=0.8, **ESA)),
    ("d2 maxfeat0.5 ESa", dict(max_depth=2, max_features=0.5, **ESA)),
    ("leaves4 ESa", dict(max_depth=None, max_leaf_nodes=4, **ESA)),
    ("d3 l2=1e-3 sub0.5 ESa", dict(max_depth=3, l2_regularization=1e-3, subsample=0.5,
                                   **ESA)),
    ("d4 l2=1e-4 ESa", dict(max_depth=4, l2_regularization=1e-4, **ESA)),
    ("d4 l2=1e-3 ESa", dict(max_depth=4, l2_regularization=1e-3, **ESA)),
    ("d4 l2=1e-2 ESa", dict(max_depth=4, l2_regularization=1e-2, **ESA)),
    ("d4 sub0.5 ESa", dict(max_depth=4, subsample=0.5, **ESA)),
    ("d4 sub0.8 ESa", dict(max_depth=4, subsample=0.8, **ESA)),
    ("leaves16 ESa", dict(max_depth=None, max_leaf_nodes=16, **ESA)),
]
# ---- learn_global (BPT): the first tree at rate 1 (the defaults until 2026-11-25 evening)
# against every tree at the learning rate (``lgF`` = learn_global=False, the BPT default
# since); the BIT has no learn_global, so these points are BPT-only
LGF = dict(ESA, learn_global=False)
GRID += [
    ("d1 ESa lgF", dict(max_depth=1, **LGF)),
    ("d2 ESa lgF", dict(max_depth=2, **LGF)),
    ("d3 ESa lgF", dict(max_depth=3, **LGF)),
    ("d2 lr0.2 ESa lgF", dict(max_depth=2, **dict(LGF, learning_rate=0.2))),
    ("d2 l2=1e-3 ESa lgF", dict(max_depth=2, l2_regularization=1e-3, **LGF)),
    ("d2 msl200 ESa lgF", dict(max_depth=2, min_samples_leaf=200, **LGF)),
    ("d2 sub0.8 ESa lgF", dict(max_depth=2, subsample=0.8, **LGF)),
    ("d2 maxfeat0.5 ESa lgF", dict(max_depth=2, max_features=0.5, **LGF)),
    ("leaves4 ESa lgF", dict(max_depth=None, max_leaf_nodes=4, **LGF)),
    ("d2 nic20 ESa lgF", dict(max_depth=2, n_iter_no_change=20, **LGF)),
]
# The baseline points above were measured when the defaults were 100 trees, rate 0.2,
# depth 4 without early stopping: they keep those values for what they do not name, so
# they re-measure the same settings after the defaults changed.
OLD_DEFAULTS = dict(n_estimators=100, learning_rate=0.2, max_depth=4, early_stopping=False)
GRID = [(label, params if label == "defaults" or " ESa" in label or label == "old defaults"
         else {**OLD_DEFAULTS, **params}) for label, params in GRID]
# The BPT points measured before learn_global=False became the default keep the first tree
# at rate 1 (learn_global=True) unless they name it; the BIT ignores learn_global.
GRID = [(label, params if label == "defaults" or "learn_global" in params
         else {**params, "learn_global": True}) for label, params in GRID]
# ---- samples (BPT, 2026-12-07): "auto" resolves to "independent" on shift_independent
# (generalised least-squares leaves); "shared" is the ordinary least-squares leaf of
# every earlier measurement
GRID += [("defaults shared", dict(samples="shared")),
         ("msl20", dict(min_samples_leaf=20)),
         ("msl10", dict(min_samples_leaf=10)),
         ("msl100", dict(min_samples_leaf=100))]
# ---- linear leaves (BPT, 2026-12-07): every point above was measured with constant
# leaves and keeps them (linear_leaves=0) unless it names them; "defaults" has the
# linear leaves of the new default (alpha = 0.5)
GRID = [(label, params if label == "defaults" or "linear_leaves" in params
         else {**params, "linear_leaves": 0.0}) for label, params in GRID]
GRID += [("constant leaves", dict(linear_leaves=0.0)),
         ("linear0.25", dict(linear_leaves=0.25)),
         ("linear0.75", dict(linear_leaves=0.75)),
         ("linear1", dict(linear_leaves=1.0)),
         ("linear d3", dict(linear_leaves=0.5, max_depth=3)),
         ("linear d1", dict(linear_leaves=0.5, max_depth=1)),
         ("linear msl20", dict(linear_leaves=0.5, min_samples_leaf=20)),
         ("linear msl200", dict(linear_leaves=0.5, min_samples_leaf=200)),
         ("linear nic20", dict(linear_leaves=0.5, n_iter_no_change=20)),
         ("linear lr0.2", dict(linear_leaves=0.5, learning_rate=0.2)),
         ("linear1 d1", dict(linear_leaves=1.0, max_depth=1)),
         ("linear leaves3", dict(linear_leaves=0.5, max_depth=None, max_leaf_nodes=3)),
         ("linear msl1000", dict(linear_leaves=0.5, min_samples_leaf=1000))]
BPT_ONLY = ("learn_global", "samples", "linear_leaves")
QUICK_GRID = ["defaults", "d2 lr0.2 n200", "d4 ES", "d4 l2=1"]

# ------------------------------------------------------------------ the toys
TOYS = {
    # name: (function, full-size kwargs, quick kwargs)
    "shift_independent": (toys.make_shift_independent, dict(n_per_point=50_000),
                          dict(n_per_point=2_000, n_test=5_000)),
    "shift_reweighted": (toys.make_shift_reweighted, dict(n_per_point=30_000),
                         dict(n_per_point=2_000, n_test=5_000)),
    "energy_scale": (toys.make_energy_scale, dict(n_per_point=50_000),
                     dict(n_per_point=3_000, n_test=5_000)),
    "bit_quadratic": (toys.make_bit_quadratic, dict(n=150_000),
                      dict(n=5_000, n_test=5_000)),
    "bit_many_15": (toys.make_bit_many, dict(n=30_000, n_test=20_000),
                    dict(n=2_000, n_test=2_000, n_parameters=4)),
}
QUICK_TREES = 10          # --quick caps n_estimators


# ------------------------------------------------------------------ metrics
def relative_rmse(pred, truth, w):
    """sqrt(sum_p mean_w (pred - truth)^2) / sqrt(sum_p var_w truth); pred, truth (N, M)."""
    w = w / w.sum()
    err = np.einsum("n,nm->", w, (pred - truth) ** 2)
    mean = w @ truth
    spread = np.einsum("n,nm->", w, (truth - mean) ** 2)
    return float(np.sqrt(err / spread))


def score_bpt(delta_hat, toy):
    pts = toy.test_points
    pred = delta_hat @ monomials(pts, toy.terms).T
    return relative_rmse(pred, toy.log_ratio(toy.X_test, pts), toy.weight_test)


def score_bit(R_hat, toy):
    pts = toy.test_points
    pred = 1.0 + R_hat @ monomials(pts, toy.terms).T
    return relative_rmse(pred, toy.ratio(toy.X_test, pts), toy.y_test[:, 0])


# ------------------------------------------------------------------ peers
class HGBPerPoint:
    """One HistGradientBoostingClassifier per base point (nominal vs point k) with early
    stopping; Delta(x) = least-squares fit of the log-odds l_k(x) to m_A(nu_k)."""

    def __init__(self, terms, n_jobs=1, random_state=0):
        self.terms = terms
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, X, nu, w):
        from sklearn.ensemble import HistGradientBoostingClassifier
        nominal = ~np.any(nu != 0, axis=1)
        points = np.unique(nu[~nominal], axis=0)
        self.models_ = []
        for p in points:
            sel = nominal | np.all(nu == p, axis=1)
            y = (~nominal[sel]).astype(int)
            ws = w[sel] * (sel.sum() / w[sel].sum())     # mean weight 1 (one scale: odds kept)
            clf = HistGradientBoostingClassifier(max_iter=500, early_stopping=True,
                                                 validation_fraction=0.1, n_iter_no_change=10,
                                                 random_state=self.random_state)
            clf.fit(X[sel], y, sample_weight=ws)
            self.models_.append(clf)
        V = monomials(points, self.terms)
        self.projector_ = np.linalg.solve(V.T @ V, V.T)       # (n_terms, n_points)
        self.terms_ = list(self.terms)
        self.n_iter_ = int(np.mean([m.n_iter_ for m in self.models_]))
        return self

    def predict(self, X):
        ell = np.column_stack([m.decision_function(X) for m in self.models_])
        return ell @ self.projector_.T


class XGBRatio:
    """XGBoost multi-output regression of c_A / c0 with weights c0 (early stopping)."""

    def __init__(self, terms, n_jobs=1, random_state=0):
        self.terms = terms
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, X, y):
        import xgboost as xgb
        c0 = y[:, 0]
        target = y[:, 1:] / c0[:, None]
        w = c0 * (c0.shape[0] / c0.sum())                   # mean weight 1
        rng = np.random.default_rng(self.random_state)
        val = rng.random(X.shape[0]) < 0.1
        self.model_ = xgb.XGBRegressor(
            tree_method="hist", multi_strategy="multi_output_tree", n_estimators=500,
            learning_rate=0.1, max_depth=4, early_stopping_rounds=10,
            n_jobs=self.n_jobs, random_state=self.random_state)
        self.model_.fit(X[~val], target[~val], sample_weight=w[~val],
                        eval_set=[(X[val], target[val])], sample_weight_eval_set=[w[val]],
                        verbose=False)
        self.terms_ = list(self.terms)
        self.n_iter_ = int(self.model_.best_iteration) + 1
        return self

    def predict(self, X):
        out = self.model_.predict(X, iteration_range=(0, self.n_iter_))
        return np.asarray(out, dtype=np.float64).reshape(X.shape[0], len(self.terms_))


# ------------------------------------------------------------------ running
def make_estimator(toy, params, n_jobs, quick):
    """The bpt estimator of the toy with ``params``; (est, None) or (None, note)."""
    if toy.kind == "bpt":
        est = BoostedParametricTree(n_nuisances=toy.n_nuisances, terms=toy.terms)
    else:
        est = BoostedInformationTree(n_parameters=toy.n_parameters, terms=toy.terms)
    known = est.get_params()
    if toy.kind != "bpt":
        params = {k: v for k, v in params.items() if k not in BPT_ONLY}
    missing = sorted(k for k in params if k not in known)
    if missing:
        return None, f"estimator has no {', '.join(missing)}"
    full = dict(params, random_state=0, n_jobs=n_jobs)
    if quick:
        full["n_estimators"] = min(full.get("n_estimators", known["n_estimators"]),
                                   QUICK_TREES)
    est.set_params(**full)
    return est, None


def fit_bpt_estimator(est, toy):
    kwargs = {"sample_weight": toy.weight}
    if toy.groups is not None and "groups" in inspect.signature(est.fit).parameters:
        kwargs["groups"] = toy.groups
    return est.fit(toy.X, toy.nu, **kwargs)


def run_toy(name, toy, grid, n_jobs, quick, peers=True):
    rows = []
    models = {}
    for label, params in grid:
        est, note = make_estimator(toy, params, n_jobs, quick)
        if est is None:
            print(f"  {label:28s} skipped: {note}", flush=True)
            rows.append(dict(label=label, params=params, skipped=note))
            continue
        t = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                if toy.kind == "bpt":
                    fit_bpt_estimator(est, toy)
                else:
                    est.fit(toy.X, toy.y)
        except (ValueError, TypeError) as exc:      # e.g. a value the estimator refuses
            print(f"  {label:28s} skipped: {exc}", flush=True)
            rows.append(dict(label=label, params=params, skipped=str(exc)))
            continue
        dt = time.perf_counter() - t
        pred = est.predict(toy.X_test)
        score = score_bpt(pred, toy) if toy.kind == "bpt" else score_bit(pred, toy)
        rows.append(dict(label=label, params=params, rel_rmse=score, n_iter=int(est.n_iter_),
                         fit_s=dt))
        models[label] = est
        print(f"  {label:28s} rel. RMSE {score:.3f}  trees {est.n_iter_:4d}  fit {dt:6.1f} s",
              flush=True)
    peer = None
    if peers:
        t = time.perf_counter()
        if toy.kind == "bpt":
            model = HGBPerPoint(toy.terms, n_jobs).fit(toy.X, toy.nu, toy.weight)
            score = score_bpt(model.predict(toy.X_test), toy)
            pname = "HGB per base point"
        else:
            model = XGBRatio(toy.terms, n_jobs).fit(toy.X, toy.y)
            score = score_bit(model.predict(toy.X_test), toy)
            pname = "XGBoost multi-output"
        dt = time.perf_counter() - t
        peer = dict(label=pname, rel_rmse=score, n_iter=model.n_iter_, fit_s=dt)
        models["peer"] = model
        print(f"  {pname:28s} rel. RMSE {score:.3f}  trees {model.n_iter_:4d}  fit {dt:6.1f} s"
              " (mean trees per model)" if toy.kind == "bpt" else
              f"  {pname:28s} rel. RMSE {score:.3f}  trees {model.n_iter_:4d}  fit {dt:6.1f} s",
              flush=True)
    done = [r for r in rows if "rel_rmse" in r]
    best = min(done, key=lambda r: r["rel_rmse"]) if done else None
    default = next((r for r in done if r["label"] == "defaults"), None)
    summary = dict(name=name, description=toy.description, rows=rows, peer=peer,
                   best=best["label"] if best else None,
                   best_rel_rmse=best["rel_rmse"] if best else None,
                   defaults_rel_rmse=default["rel_rmse"] if default else None)
    if best and default:
        summary["defaults_over_best"] = default["rel_rmse"] / best["rel_rmse"]
    if peer and default:
        summary["defaults_over_peer"] = default["rel_rmse"] / peer["rel_rmse"]
    return summary, models, best


# ------------------------------------------------------------------ profiled fit
def profile_study(bpt_models, bit_models, yield_, n_sim, seed=7):
    """68% intervals of both POIs: exact model vs one learned piece."""
    from bpt.inference import AdditiveModel, Process
    from bpt.toys import ExactModel, _bit2_coefficients, _shift_delta

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_sim, 3))
    w = np.full(n_sim, yield_ / n_sim)
    exact_R = ExactModel(_bit2_coefficients, [(0,), (1,), (0, 0), (0, 1), (1, 1)])
    exact_D = ExactModel(_shift_delta, [(0,), (1,), (0, 0), (0, 1), (1, 1)])
    theta_true = np.array([0.2, -0.2])
    r_true = 1.0 + _bit2_coefficients(X) @ monomials(theta_true, exact_R.terms_)
    w_data = w * r_true                                   # Asimov of the exact model, nu = 0

    def intervals(R, D):
        model = AdditiveModel([Process("sig", X, w, ratio=(R, ["t0", "t1"]),
                                       systematics=[(D, ["n0", "n1"])])],
                              pois=["t0", "t1"], nuisances=["n0", "n1"])
        ds = model.prepare(X, w_data)
        return [model.interval(ds, cl=0.68, poi=j) for j in range(2)]

    def stat_only():
        model = AdditiveModel([Process("sig", X, w, ratio=(exact_R, ["t0", "t1"]))],
                              pois=["t0", "t1"], nuisances=[])
        return [model.interval(model.prepare(X, w_data), cl=0.68, poi=j) for j in range(2)]

    ref = intervals(exact_R, exact_D)
    stat = stat_only()
    out = dict(yield_=yield_, n_sim=n_sim, theta_true=theta_true.tolist(),
               exact=[list(i) for i in ref], exact_stat_only=[list(i) for i in stat],
               learned={})
    print(f"  exact model: t0 {ref[0][0]:+.4f} .. {ref[0][1]:+.4f}, t1 {ref[1][0]:+.4f} .. "
          f"{ref[1][1]:+.4f}  (without the nuisances: half-widths "
          f"{(stat[0][1] - stat[0][0]) / 2:.4f}, {(stat[1][1] - stat[1][0]) / 2:.4f})")
    cases = [(f"BPT {k}", exact_R, m) for k, m in bpt_models.items()]
    cases += [(f"BIT {k}", m, exact_D) for k, m in bit_models.items()]
    # both pieces learned in one model (issue 12 target: learned BIT and BPT together)
    for k in bpt_models:
        if k in bit_models:
            cases.append((f"BIT+BPT {k}", bit_models[k], bpt_models[k]))
    for label, R, D in cases:
        try:
            got = intervals(R, D)
        except Exception as exc:                      # noqa: BLE001  (report, go on)
            print(f"  {label:34s} failed: {exc}")
            out["learned"][label] = dict(error=str(exc))
            continue
        res = []
        for (lo_e, hi_e), (lo, hi) in zip(ref, got):
            h = 0.5 * (hi_e - lo_e)
            res.append(dict(low=lo, high=hi, low_offset=(lo - lo_e) / h,
                            high_offset=(hi - hi_e) / h, width_ratio=(hi - lo) / (hi_e - lo_e)))
        worst = max(max(abs(r["low_offset"]), abs(r["high_offset"])) for r in res)
        narrow = min(r["width_ratio"] for r in res)
        out["learned"][label] = dict(pois=res, max_abs_offset=worst, min_width_ratio=narrow)
        print(f"  {label:34s} endpoint offsets / exact half-width: "
              f"t0 {res[0]['low_offset']:+.3f} {res[0]['high_offset']:+.3f}, "
              f"t1 {res[1]['low_offset']:+.3f} {res[1]['high_offset']:+.3f};  width ratio "
              f"{res[0]['width_ratio']:.3f}, {res[1]['width_ratio']:.3f}", flush=True)
    return out


# ------------------------------------------------------------------ main
def select_grid(spec, quick):
    labels = [g[0] for g in GRID]
    if spec is None:
        wanted = QUICK_GRID if quick else labels
    else:
        wanted = [s.strip() for s in spec.split(",") if s.strip()]
        bad = [s for s in wanted if s not in labels]
        if bad:
            raise SystemExit(f"unknown grid points {bad}; choose from {labels}")
    if "defaults" not in wanted:
        wanted = ["defaults"] + wanted
    return [g for g in GRID if g[0] in wanted]


def print_table(summaries):
    print()
    print(f"{'toy':18s} {'setting':30s} {'rel. RMSE':>9s} {'/best':>6s} {'trees':>5s}")
    for s in summaries:
        best = s["best_rel_rmse"]
        for r in s["rows"] + ([s["peer"]] if s["peer"] else []):
            if "rel_rmse" not in r:
                continue
            mark = " *" if r["label"] == s["best"] else ""
            print(f"{s['name']:18s} {r['label']:30s} {r['rel_rmse']:9.3f} "
                  f"{r['rel_rmse'] / best:6.2f} {r['n_iter']:5d}{mark}")
        if "defaults_over_best" in s:
            extra = (f", defaults / peer = {s['defaults_over_peer']:.2f}"
                     if "defaults_over_peer" in s else "")
            print(f"{'':18s} best: {s['best']} ({best:.3f}); defaults / best = "
                  f"{s['defaults_over_best']:.2f} (target <= 1.2){extra}")
        print()
    print_matrix(summaries)


def print_matrix(summaries):
    """The same results as one markdown table: settings x toys (relative RMSE, and the
    ratio to the toy's best grid point in brackets)."""
    labels = []
    for s in summaries:
        for r in s["rows"]:
            if "rel_rmse" in r and r["label"] not in labels:
                labels.append(r["label"])
    head = "| setting | " + " | ".join(s["name"] for s in summaries) + " |"
    print(head)
    print("|---" * (len(summaries) + 1) + "|")
    for label in labels:
        cells = []
        for s in summaries:
            r = next((r for r in s["rows"] if r["label"] == label and "rel_rmse" in r), None)
            if r is None:
                cells.append("")
                continue
            cell = f"{r['rel_rmse']:.3f} ({r['rel_rmse'] / s['best_rel_rmse']:.2f})"
            cells.append(f"**{cell}**" if label == s["best"] else cell)
        print(f"| {label} | " + " | ".join(cells) + " |")
    cells = [f"{s['peer']['label']}: {s['peer']['rel_rmse']:.3f} "
             f"({s['peer']['rel_rmse'] / s['best_rel_rmse']:.2f})" if s["peer"] else ""
             for s in summaries]
    print("| peer | " + " | ".join(cells) + " |")


def print_profile(profile):
    print("| learned piece | t0 low | t0 high | t1 low | t1 high | width ratio t0, t1 |")
    print("|---|---|---|---|---|---|")
    for label, r in profile["learned"].items():
        if "pois" not in r:
            print(f"| {label} | failed: {r['error']} | | | | |")
            continue
        p0, p1 = r["pois"]
        print(f"| {label} | {p0['low_offset']:+.3f} | {p0['high_offset']:+.3f} | "
              f"{p1['low_offset']:+.3f} | {p1['high_offset']:+.3f} | "
              f"{p0['width_ratio']:.3f}, {p1['width_ratio']:.3f} |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny samples, few settings, 10 trees")
    ap.add_argument("--toys", default=None, help=f"comma list from {list(TOYS)}")
    ap.add_argument("--grid", default=None, help="comma list of grid labels (default all)")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--n-jobs", type=int, default=1, help="threads per fit (default 1)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the toy samples")
    ap.add_argument("--no-profile", action="store_true", help="skip the profiled fit")
    ap.add_argument("--yield", dest="yield_", type=float, default=1000.0,
                    help="expected events of the profiled fit")
    ap.add_argument("--show", default=None, metavar="RESULTS_JSON",
                    help="print the tables of a previous --out file and exit")
    args = ap.parse_args(argv)
    if args.show:
        with open(args.show, encoding="utf-8") as fh:
            res = json.load(fh)
        print_table(res["toys"])
        if res.get("profile"):
            print()
            print_profile(res["profile"])
        return res["toys"], res.get("profile")

    names = list(TOYS) if args.toys is None else [t.strip() for t in args.toys.split(",")]
    bad = [t for t in names if t not in TOYS]
    if bad:
        raise SystemExit(f"unknown toys {bad}; choose from {list(TOYS)}")
    grid = select_grid(args.grid, args.quick)
    import numba
    from threadpoolctl import threadpool_limits
    threadpool_limits(args.n_jobs)               # HistGradientBoosting's OpenMP threads
    numba.set_num_threads(min(args.n_jobs, numba.config.NUMBA_NUM_THREADS))  # inference
    t0 = time.perf_counter()
    print(f"bpt {bpt.__version__}; toys {names}; {len(grid)} grid points; n_jobs={args.n_jobs}"
          f"{'; QUICK' if args.quick else ''}")
    summaries, keep = [], {}
    for name in names:
        fn, full, quick = TOYS[name]
        toy = fn(random_state=args.seed, **(quick if args.quick else full))
        print(f"\n{name}: {toy.description}; {toy.X.shape[0]} training rows, "
              f"{toy.X_test.shape[0]} test events", flush=True)
        summary, models, best = run_toy(name, toy, grid, args.n_jobs, args.quick)
        summaries.append(summary)
        if name in ("shift_independent", "bit_quadratic"):
            sel = {"defaults": models.get("defaults")}
            if best is not None and best["label"] != "defaults":
                sel[f"best ({best['label']})"] = models[best["label"]]
            sel["peer"] = models.get("peer")
            keep[name] = {k: v for k, v in sel.items() if v is not None}
    print_table(summaries)
    profile = None
    if not args.no_profile and "shift_independent" in keep and "bit_quadratic" in keep:
        print("profiled fit: 2 POIs (exact R of bit_quadratic), 2 nuisances (exact Delta of "
              f"shift_*), Asimov at theta = (0.2, -0.2), nu = 0, yield {args.yield_:g}")
        profile = profile_study(keep["shift_independent"], keep["bit_quadratic"], args.yield_,
                                5_000 if args.quick else 50_000)
    if profile is not None:
        print()
        print_profile(profile)
    total = time.perf_counter() - t0
    print(f"\ntotal {total:.0f} s")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(dict(bpt_version=bpt.__version__, quick=args.quick, seed=args.seed,
                           n_jobs=args.n_jobs, grid=[dict(label=g[0], params=g[1])
                                                     for g in grid],
                           toys=summaries, profile=profile, total_s=total), fh, indent=1,
                      default=float)
        print(f"wrote {args.out}")
    return summaries, profile


if __name__ == "__main__":
    main()
