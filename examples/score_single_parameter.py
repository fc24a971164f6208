"""One parameter: the BIT learns the score of a power-law model, compared with its exact form.

    python examples/score_single_parameter.py [--out DIR] [--quick]

The model of the original Boosted Information Tree paper (arXiv:2107.10859): a
transverse momentum pT in [20, 420] GeV with density

    p(pT | theta) proportional to (pT / pT0)^theta * pT^-alpha,    alpha = 3, pT0 = 100 GeV,

expanded at theta = 0.  Every event carries its SM weight w0 and its derivative weight
dw/dtheta = w0 * t(pT), where the exact score is

    t(pT) = d log dsigma(pT|theta) / dtheta |_0 = 1 / (alpha - 1) - log(pT / pT0).

A linear BIT (one parameter, order 1) fitted on (pT, w0, dw) learns R(pT) = E[dw|pT] /
E[w0|pT] = t(pT).  Two pure-noise features are added to show that the trees ignore them.
The script prints the agreement with t(pT) and writes ``<out>/score.png``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

import bpt

ALPHA, PT0, PT_MIN, PT_MAX = 3.0, 100.0, 20.0, 420.0


def exact_score(pt):
    """t(pT) = 1/(alpha - 1) - log(pT / pT0)."""
    return 1.0 / (ALPHA - 1.0) - np.log(pt / PT0)


def simulate(n, rng):
    """pT ~ pT^-alpha on [PT_MIN, PT_MAX] (inverse CDF), two noise features, weights."""
    u = rng.random(n)
    a, b = PT_MIN ** (1 - ALPHA), PT_MAX ** (1 - ALPHA)
    pt = (a + u * (b - a)) ** (1.0 / (1 - ALPHA))
    X = np.column_stack([pt, rng.normal(size=n), rng.random(n)])
    w0 = np.full(n, 1.0)
    y = np.column_stack([w0, w0 * exact_score(pt)])     # (SM weight, dw/dtheta)
    return X, y


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="score_output", help="output folder (default ./score_output)")
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    n_train, n_test, n_trees = (5_000, 5_000, 10) if args.quick else (100_000, 100_000, 100)

    rng = np.random.default_rng(args.seed)
    X, y = simulate(n_train, rng)
    X_test, _ = simulate(n_test, rng)
    print(f"power-law model: alpha = {ALPHA}, pT0 = {PT0} GeV; {n_train} training events, "
          f"features (pT, noise_gauss, noise_flat)")

    bit = bpt.BoostedInformationTree(n_parameters=1, order=1, n_estimators=n_trees,
                                     learning_rate=0.2, max_depth=3, min_samples_leaf=50,
                                     early_stopping=True, validation_fraction=0.2,
                                     random_state=args.seed)
    bit.fit(X, y)
    print(f"BIT: {bit.n_iter_} trees of depth 3 in {bit.fit_time_:.1f} s; terms {bit.terms_}; "
          f"feature importances (pT, noise_gauss, noise_flat) = "
          f"{np.round(bit.feature_importances_, 4).tolist()}")

    # agreement with the exact score on independent events
    pt = X_test[:, 0]
    learned = bit.predict(X_test)[:, 0]
    truth = exact_score(pt)
    diff = learned - truth
    info = np.mean(learned * truth) ** 2 / (np.mean(learned ** 2) * np.mean(truth ** 2))
    q50, q99 = np.quantile(np.abs(diff), [0.5, 0.99])
    print("\nLearned R(pT) against the exact score t(pT) on independent events:")
    print(f"  RMS(t) = {np.sqrt(np.mean(truth ** 2)):.4f} (t from {truth.min():.3f} to "
          f"{truth.max():.3f})")
    print(f"  RMS(R - t) = {np.sqrt(np.mean(diff ** 2)):.4f}; |R - t| median {q50:.4f}, "
          f"99% quantile {q99:.4f}, max {np.abs(diff).max():.4f}")
    print(f"  share of the Fisher information captured, <R t>^2 / (<R^2> <t^2>) = {info:.5f}")
    for lo, hi in ((20, 30), (30, 50), (50, 100), (100, 200), (200, 420)):
        sel = (pt >= lo) & (pt < hi)
        if sel.any():
            print(f"    pT in [{lo:3d}, {hi:3d}) GeV: mean R = {learned[sel].mean():7.4f}, "
                  f"mean t = {truth[sel].mean():7.4f}  ({sel.sum()} events)")

    from bpt import plotting

    plt = plotting.offscreen_pyplot()
    if plt is not None:
        os.makedirs(args.out, exist_ok=True)
        fig, axes = plt.subplots(1, 3, figsize=(13.5, 3.9), layout="constrained")
        plotting.plot_coefficients(bit, X_test, lambda Z: exact_score(Z[:, 0])[:, None],
                                   feature=0, bins=30, feature_names=["pT [GeV]", "n1", "n2"],
                                   parameter_names=["theta"], ax=axes[0])
        axes[0].set_xscale("log")
        axes[0].set_title("score: learned R(pT) vs exact t(pT)", fontsize=10)
        order = np.argsort(pt)
        axes[1].plot(pt[order], diff[order], ".", ms=1.5, color="C0")
        axes[1].axhline(0.0, color="k", lw=0.8)
        axes[1].set_xscale("log")
        axes[1].set_xlabel("pT [GeV]")
        axes[1].set_ylabel("R(pT) - t(pT)")
        axes[1].set_title("per event: learned minus exact", fontsize=10)
        axes[1].grid(alpha=0.3)
        for a in axes[:2]:
            a.set_xticks([20, 30, 50, 100, 200, 400], ["20", "30", "50", "100", "200", "400"])
            a.minorticks_off()
        plotting.plot_loss(bit, ax=axes[2])
        path = os.path.join(args.out, "score.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        print(f"\nplot: {path}")
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
