"""A full profiled fit with two POIs and a 2D contour, learned model against the exact one.

    python examples/profiled_fit_2poi.py [--out DIR] [--quick]

Pseudo-data are drawn from the exact toy model of ``bpt.datasets`` at a known point
(theta, nu).  Two ``AdditiveModel`` s with the same processes, nuisances and simulation
fit them:

* **learned**: a BoostedInformationTree for the signal's SMEFT dependence, a
  BoostedParametricTree per process for the jes and theory systematics and a
  HistGradientBoostingClassifier for the process fractions;
* **exact**: the same interface filled with the closed-form truth of the toy
  (``true_coefficients``, ``true_fractions``, and for the systematics the best quadratic
  in nu through the exact log-ratios at the BPT's base points).

The script prints both maximum-likelihood fits with the profiled nuisances and the 68% /
95% intervals of each POI, and draws both 2D contours (nuisances profiled) in
``<out>/contour_2poi.png``.  The difference between the two is what the learning costs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

import bpt
from bpt import datasets as ds
from bpt.inference import AdditiveModel, Nuisance, Process

POIS = list(ds.PARAMETER_NAMES)
NUIS = list(ds.NUISANCE_NAMES)
THETA_TRUE = np.array([-0.3, 0.4])
NU_TRUE = np.array([-0.5, 0.8])               # (jes, theory)
NORM_TRUE = -0.4                              # background normalisation nuisance


# --------------------------------------------------------------------------- exact pieces
class ExactRatio:
    """The toy signal's exact R_A(x), with the interface the AdditiveModel reads."""
    n_parameters = 2
    terms_ = ds.ToyPhysics().terms

    def predict(self, X):
        return ds.true_coefficients(X)


class ExactSystematics:
    """Per event, the least-squares quadratic in nu through the exact log-ratios at the
    base points: Delta(x) = (V^T V)^-1 V^T g(x, nu_k)."""
    n_nuisances = 2

    def __init__(self, process, base_points):
        self.process = process
        self.base_points = np.asarray(base_points, dtype=float)
        self.terms_ = bpt.make_terms(2, 2)
        V = np.column_stack([np.prod(self.base_points[:, list(t)], axis=1)
                             for t in self.terms_])                 # m_A(nu_k)
        self._H = np.linalg.solve(V.T @ V, V.T)

    def predict(self, X):
        G = ds.true_log_ratio(X, self.base_points, process=self.process)    # (N, n_points)
        return G @ self._H.T


class ExactFractions:
    """The toy's exact SM process fractions, as a fitted classifier would give them."""
    classes_ = np.array(ds.PROCESSES)

    def predict_proba(self, X):
        return ds.true_fractions(X)


# --------------------------------------------------------------------------- learned pieces
def train(cfg, seed):
    sig = ds.make_eft_signal(cfg["n_bit"], random_state=seed)
    # a fixed small number of trees at rate 0.2 (the package default is rate 0.1 with up
    # to 500 trees and early stopping): keeps this example's run time short
    bit = bpt.BoostedInformationTree(n_parameters=2, n_estimators=cfg["trees"], max_depth=4,
                                     learning_rate=0.2,
                                     min_samples_leaf=max(20, cfg["n_bit"] // 500),
                                     random_state=seed).fit(sig.X, sig.y)
    bpts, points = {}, None
    for i, p in enumerate(ds.PROCESSES):
        s = ds.make_systematic_samples(cfg["n_sys"], process=p, random_state=seed + 1 + i)
        bpts[p] = bpt.BoostedParametricTree(
            n_nuisances=2, n_estimators=cfg["sys_trees"], max_depth=3, learning_rate=0.2,
            min_samples_leaf=max(20, cfg["n_sys"] // 70), random_state=seed,
            early_stopping=False,    # shared events at the base points: no random split
        ).fit(s.X, s.nu, sample_weight=s.weight)
        points = bpts[p].base_points_
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    c = ds.make_classification_sample(cfg["n_clf"], random_state=seed + 3)
    with threadpool_limits(1, user_api="openmp"):     # robust on small / busy machines
        clf = HistGradientBoostingClassifier(max_iter=cfg["clf_iter"], max_leaf_nodes=15,
                                             random_state=seed)
        clf.fit(c.X, np.asarray(ds.PROCESSES)[c.y], sample_weight=c.sample_weight)
    return bit, bpts, clf, points


def build(ratio, systematics, fractions, sim):
    procs = [Process("signal", sim["signal"].X, sim["signal"].weight, ratio=(ratio, POIS),
                     systematics=[(systematics["signal"], NUIS)]),
             Process("background", sim["background"].X, sim["background"].weight,
                     systematics=[(systematics["background"], NUIS)],
                     normalization={"bkg_norm": 0.2})]
    return AdditiveModel(procs, POIS, [Nuisance("jes"), Nuisance("theory"), Nuisance("bkg_norm")],
                         fractions=fractions)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="profiled_fit_output",
                    help="output folder (default ./profiled_fit_output)")
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    cfg = (dict(n_bit=5_000, trees=6, n_sys=2_000, sys_trees=4, n_clf=4_000, clf_iter=20,
                n_sim=2_000, n_grid=5) if args.quick else
           dict(n_bit=60_000, trees=60, n_sys=15_000, sys_trees=25, n_clf=30_000, clf_iter=100,
                n_sim=30_000, n_grid=21))

    print("training BIT, 2 BPTs and the fraction classifier ...", flush=True)
    bit, bpts, clf, points = train(cfg, args.seed)
    print(f"  done in {time.perf_counter() - t0:.1f} s")
    sim = {p: ds.make_process_sample(p, cfg["n_sim"], random_state=args.seed + 10 + i)
           for i, p in enumerate(ds.PROCESSES)}
    models = {
        "learned": build(bit, bpts, clf, sim),
        "exact": build(ExactRatio(), {p: ExactSystematics(p, points) for p in ds.PROCESSES},
                       ExactFractions(), sim),
    }
    data = ds.make_observed(THETA_TRUE, nu=NU_TRUE, nu_norm=NORM_TRUE,
                            random_state=args.seed + 20)
    truth = np.concatenate([THETA_TRUE, NU_TRUE, [NORM_TRUE]])
    print(f"\npseudo-data: {data.X.shape[0]} events from the exact model at "
          f"{dict(zip(POIS + NUIS + ['bkg_norm'], truth.tolist()))}")

    fits, intervals, grids = {}, {}, {}
    for name, model in models.items():
        t = time.perf_counter()
        fit = model.fit(data.X)
        fits[name] = fit
        intervals[name] = {p: (model.interval(data.X, cl=0.6827, poi=p),
                               model.interval(data.X, cl=0.95, poi=p)) for p in POIS}
        print(f"\n{name} model: fit and intervals in {time.perf_counter() - t:.2f} s "
              f"(success = {fit.success})")
        names = POIS + model.nuisance_names
        values = np.concatenate([fit.theta, fit.nu])
        print(f"  {'parameter':10s} {'true':>7s} {'fit':>8s} {'+-':>6s}   68% CL interval      "
              "95% CL interval")
        for k, n in enumerate(names):
            line = f"  {n:10s} {truth[k]:7.3f} {values[k]:8.3f} {fit.errors[k]:6.3f}"
            if n in POIS:
                (a, b), (c, d) = intervals[name][n]
                line += f"   [{a:6.3f}, {b:6.3f}]     [{c:6.3f}, {d:6.3f}]"
            print(line)
        corr = fit.covariance[0, 1] / np.sqrt(fit.covariance[0, 0] * fit.covariance[1, 1])
        print(f"  correlation({POIS[0]}, {POIS[1]}) = {corr:.3f}")

    # one grid around both fits
    lo = np.min([[iv[p][1][0] for p in POIS] for iv in intervals.values()], axis=0)
    hi = np.max([[iv[p][1][1] for p in POIS] for iv in intervals.values()], axis=0)
    pad = 0.3 * (hi - lo)
    g1, g2 = (np.linspace(lo[j] - pad[j], hi[j] + pad[j], cfg["n_grid"]) for j in range(2))
    pts = np.array(np.meshgrid(g1, g2, indexing="ij")).reshape(2, -1).T
    for name, model in models.items():
        t = time.perf_counter()
        grids[name] = model.scan(pts, data.X).reshape(len(g1), len(g2))
        print(f"\n{name}: 2D profiled scan, {pts.shape[0]} points, in "
              f"{time.perf_counter() - t:.2f} s")
    for j, p in enumerate(POIS):
        w = {n: intervals[n][p][0][1] - intervals[n][p][0][0] for n in models}
        print(f"68% interval width of {p}: learned {w['learned']:.3f}, exact {w['exact']:.3f} "
              f"(ratio {w['learned'] / w['exact']:.3f}); best fits differ by "
              f"{fits['learned'].theta[j] - fits['exact'].theta[j]:+.3f}")

    from bpt import plotting

    plt = plotting.offscreen_pyplot()
    if plt is not None:
        os.makedirs(args.out, exist_ok=True)
        fig, ax = plt.subplots(figsize=(7.8, 4.8), layout="constrained")
        plotting.plot_contour(g1, g2, grids["exact"], ax=ax, label="exact", color="k",
                              filled=False, parameter_names=POIS)
        plotting.plot_contour(g1, g2, grids["learned"], ax=ax, label="learned", color="C0",
                              truth=THETA_TRUE)
        leg = ax.get_legend()
        ax.legend(leg.legend_handles, [t.get_text() for t in leg.texts], fontsize=8,
                  loc="upper left", bbox_to_anchor=(1.02, 1.0))
        ax.set_title("one pseudo-experiment: 2D profile likelihood (jes, theory, bkg_norm "
                     "profiled)", fontsize=9)
        path = os.path.join(args.out, "contour_2poi.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        print(f"\nplot: {path}")
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
