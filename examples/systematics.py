"""A scale systematic: the BPT learns a jet-energy-scale variation, compared with its exact form.

    python examples/systematics.py [--out DIR] [--quick]

The toy background of ``bpt.datasets`` has a jet pT that the jet energy scale (JES)
multiplies by s = 1 + 0.05 nu.  Given ``pT | m ~ Gamma(k, scale(m))`` the exact ratio of
the densities at nu and at nominal is

    log dsigma(x|nu) / dsigma(x|0) = -k log s + pT / scale(m) (1 - 1/s),

not a polynomial in nu.  A quadratic BPT (one nuisance) is trained on the nominal sample
and the same events with pT scaled at nu = -2, -1, 1, 2 (``make_systematic_samples``
with ``correlated=True``, as a real JES variation is produced).  The script

* compares the learned log-ratio with the exact one at several nu, inside and between
  the base points, and with the best a quadratic in nu can do (the ansatz limit);
* checks the closure in a histogram: a sample genuinely simulated at nu = 1.5 (not a
  base point) against the nominal sample reweighted by S(x|1.5);
* writes ``<out>/systematics.png``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

import bpt
from bpt import datasets as ds

PROCESS = "background"
BASE_POINTS = np.array([[-2.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [2.0, 0.0]])   # (jes, theory)
SHOW = [-2.0, -1.5, -1.0, -0.5, 0.5, 1.0, 1.5, 2.0]


def quadratic_limit(X, nus):
    """Per event, the least-squares quadratic in nu through the exact log-ratios at the base
    points, evaluated at ``nus``: the best a quadratic BPT can learn."""
    pts = BASE_POINTS[:, 0]
    V = np.column_stack([pts, pts ** 2])
    G = ds.true_log_ratio(X, BASE_POINTS, process=PROCESS)          # (N, 4)
    delta = np.linalg.lstsq(V, G.T, rcond=None)[0].T                 # (N, 2)
    nus = np.asarray(nus, dtype=float)
    return delta @ np.vstack([nus, nus ** 2])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="systematics_output",
                    help="output folder (default ./systematics_output)")
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    n, n_trees, n_test = (3_000, 5, 20_000) if args.quick else (50_000, 30, 200_000)

    s = ds.make_systematic_samples(n, nu_values=BASE_POINTS, process=PROCESS,
                                   random_state=args.seed)
    X, nu, w = s.X, s.nu[:, :1], s.weight                     # keep the jes column only
    print(f"{PROCESS}: {n} events at nominal and at jes = {BASE_POINTS[:, 0].tolist()} "
          f"({X.shape[0]} rows)")
    est = bpt.BoostedParametricTree(n_nuisances=1, order=2, n_estimators=n_trees,
                                    learning_rate=0.2, max_depth=3,
                                    min_samples_leaf=max(20, n // 100), random_state=args.seed,
                                    # the base-point samples are shifted copies of the same
                                    # events: a random validation split would be biased (pass
                                    # groups= or eval_set= to stop early on them)
                                    early_stopping=False)
    est.fit(X, nu, sample_weight=w)
    print(f"BPT: {est.n_iter_} trees of depth 3 in {est.fit_time_:.1f} s; terms {est.terms_} "
          f"(nu, nu^2); base points {est.base_points_[:, 0].tolist()}")
    print("  feature importances: " + ", ".join(
        f"{name} {v:.3f}" for name, v in zip(ds.FEATURE_NAMES, est.feature_importances_)))

    # log-ratio closure on independent nominal events
    test = ds.make_process_sample(PROCESS, n_test, random_state=args.seed + 1)
    Xt, wt = test.X, test.weight
    learned = est.predict_log_ratio(Xt, np.array(SHOW)[:, None])                  # (N, M)
    exact = ds.true_log_ratio(Xt, np.column_stack([SHOW, np.zeros(len(SHOW))]), PROCESS)
    limit = quadratic_limit(Xt, SHOW)
    print("\nLog-ratio log S(x|nu) on independent nominal events (weighted RMS):")
    print(f"  {'nu_jes':>6s}  {'RMS exact':>9s}  {'RMS(learned-exact)':>18s}  "
          f"{'relative':>8s}  {'quadratic-ansatz limit':>22s}")

    def rms(a):
        return np.sqrt(np.average(a ** 2, weights=wt))

    for j, v in enumerate(SHOW):
        tag = "" if v in BASE_POINTS[:, 0] else "  (between base points)"
        e = rms(learned[:, j] - exact[:, j])
        print(f"  {v:6.1f}  {rms(exact[:, j]):9.4f}  {e:18.4f}  {e / rms(exact[:, j]):8.2f}  "
              f"{rms(limit[:, j] - exact[:, j]):22.5f}{tag}")

    # histogram closure at a point that is not a base point
    nu_check = 1.5
    varied = ds.make_process_sample(PROCESS, n_test, nu=[nu_check, 0.0],
                                    random_state=args.seed + 2)
    edges = np.quantile(Xt[:, 0], np.linspace(0.0, 0.99, 21))    # the last 1% not shown
    edges[0] = 0.0
    h_nom = np.histogram(Xt[:, 0], edges, weights=wt)[0]
    h_var = np.histogram(varied.X[:, 0], edges, weights=varied.weight)[0]
    h_rew = np.histogram(Xt[:, 0], edges, weights=wt * est.predict_ratio(Xt, [nu_check]))[0]
    h_var_err = np.sqrt(np.histogram(varied.X[:, 0], edges, weights=varied.weight ** 2)[0])
    h_rew_err = np.sqrt(np.histogram(Xt[:, 0], edges,
                                     weights=(wt * est.predict_ratio(Xt, [nu_check])) ** 2)[0])
    pull = (h_rew - h_var) / np.hypot(h_var_err, h_rew_err)
    print(f"\nHistogram closure at jes = {nu_check}, 20 quantile bins of jet_pt (up to its 99% "
          f"quantile):\nnominal events reweighted by the learned S(x|{nu_check}) against "
          f"independent events simulated at jes = {nu_check}, {n_test} each:")
    print(f"  chi2 / bins = {np.sum(pull ** 2):.1f} / {len(pull)} (statistical errors of both "
          f"samples); largest |pull| {np.abs(pull).max():.2f}")
    print(f"  yields: reweighted nominal {h_rew.sum():.2f}, simulated {h_var.sum():.2f} (a scale "
          "shift moves events between bins but keeps the total)")

    from bpt import plotting

    plt = plotting.offscreen_pyplot()
    if plt is not None:
        os.makedirs(args.out, exist_ok=True)
        fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.3), layout="constrained")
        pts = np.array([-2.0, -1.0, 0.5, 1.5, 2.0])[:, None]

        def truth(Xv, nu_v):
            nu_v = np.atleast_2d(nu_v)
            return ds.true_log_ratio(Xv, np.column_stack([nu_v[:, 0], np.zeros(len(nu_v))]),
                                     process=PROCESS)

        plotting.plot_systematic_ratios(est, Xt, pts, truth, feature="jet_pt",
                                        sample_weight=wt, feature_names=ds.FEATURE_NAMES,
                                        nuisance_names=["jes"], ax=axes[0])
        axes[0].set_title("learned S(x|jes) (solid) vs exact (dashed)", fontsize=10)
        centre = 0.5 * (edges[1:] + edges[:-1])
        axes[1].errorbar(centre, h_var / h_nom, yerr=h_var_err / h_nom, fmt="o", ms=3,
                         color="k", label=f"simulated at jes = {nu_check}")
        axes[1].step(edges, np.append(h_rew / h_nom, h_rew[-1] / h_nom[-1]), where="post",
                     color="C3", label=f"nominal x learned S(x|{nu_check})")
        axes[1].axhline(1.0, color="0.6", lw=0.8, ls=":")
        axes[1].set_xlabel("jet_pt (quantile bins of the nominal sample)")
        axes[1].set_ylabel("ratio to nominal")
        axes[1].set_title(f"closure at jes = {nu_check} (not a base point)", fontsize=10)
        axes[1].legend(fontsize=9)
        axes[1].grid(alpha=0.3)
        path = os.path.join(args.out, "systematics.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        print(f"\nplot: {path}")
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
