"""Experiment (not a package feature): BPT leaves linear in x, fitted by moment matching.

    python bench/experiment_linear_leaves.py --toy shift_independent --seed 1 --alpha 0.5
    python bench/experiment_linear_leaves.py --toy shift_independent --seed 1 --alpha 0   # constant leaves

A boosting loop written here on the package's engine (binning, the compiled grower, the
BPT loss with the leaf form that ``samples="auto"`` picks), depth 2, rate 0.1,
``min_samples_leaf=50``, 10% of the events (by event id for shared samples) held out.
Each leaf j keeps its tree structure; its Delta becomes

    Delta_j(x) = alpha * [H c + (H B) (x_S - mu_0)] + (1 - alpha) * Delta_j(closed form)

with S the features split on along the path to the leaf (``--all-features``: every
feature), mu_k the weighted mean of x_S of sample k in the leaf (current boosting
weights), Sigma_0 the nominal's weighted covariance there, b_k = Sigma_0^-1 (mu_k - mu_0)
the slope of an exponential tilt with that mean shift (first order in b for any
distribution, exact for Gaussian), c_k = log(lambda_k / lambda_0) - b_k^T Sigma_0 b_k / 2,
and H the leaf map of docs/math.md section 2.  Prints the off-grid relative RMSE of the
accuracy benchmark at the validation-loss minimum and the best over the trees (oracle).
Results: bench/README.md ("Leaves linear in x: measured, not built").
"""

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_accuracy import TOYS, score_bpt  # noqa: E402

from bpt import BoostedParametricTree  # noqa: E402
from bpt._engine._binning import BinMapper  # noqa: E402
from bpt._engine._grower import TrainingData, TreeGrower  # noqa: E402
from bpt._engine._loss import BPTLoss, effective_sizes  # noqa: E402
from bpt._engine._predictor import TreeEnsemble  # noqa: E402


def leaf_features(tree, leaf, parent):
    feats, q = set(), parent[leaf]
    while q >= 0:
        feats.add(int(tree.feature[q]))
        q = parent[q]
    return sorted(feats)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--toy", default="shift_independent",
                    help="shift_independent, shift_reweighted or energy_scale")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--trees", type=int, default=300)
    ap.add_argument("--all-features", action="store_true")
    args = ap.parse_args(argv)
    fn, kw = TOYS[args.toy][:2]
    toy = fn(random_state=args.seed, **kw)
    if toy.kind != "bpt":
        raise SystemExit(f"{args.toy} is not a BPT toy")
    X, nu, w = toy.X, toy.nu, toy.weight
    ids = toy.groups if toy.groups is not None else np.arange(len(w))
    va = (np.random.default_rng(0).random(ids.max() + 1) < 0.1)[ids]
    Xv, nuv, wv = X[va], nu[va], w[va]
    X, nu, w = X[~va], nu[~va], w[~va]

    est = BoostedParametricTree(n_nuisances=toy.n_nuisances, terms=toy.terms)
    points, cls, V = est._base_points(nu, w, toy.terms)
    est.base_points_ = points
    clsv = est._classes_of(nuv)
    n, T = V.shape
    C = n + 1
    shared = toy.groups is not None
    loss = BPTLoss(V) if shared else BPTLoss(V, sample_sizes=effective_sizes(w, cls, C))
    mapper = BinMapper(255, random_state=0)
    Xb = mapper.fit_transform(X)
    ws = w / np.abs(w).sum()
    Y = ws.reshape(-1, 1).copy()
    data = TrainingData(X, Xb, mapper.edges_, mapper.n_bins_, Y, cls, mapper.missing_code_)
    grower = TreeGrower(data, loss, 2, 50, 1e-12, "hist")
    nom = cls == 0
    g_own = np.zeros(len(w))
    V_own = np.vstack([np.zeros(T), V])[cls]
    sets = {"train": X, "val": Xv, "test": toy.X_test}
    pred = {k: np.zeros((len(v), T)) for k, v in sets.items()}
    errors, val_loss = [], []
    eta, a = 0.1, args.alpha
    for b in range(args.trees):
        Y[:, 0] = np.where(nom, ws, ws * np.exp(-g_own))
        tree = grower.grow(None, b)
        one = TreeEnsemble(T)
        one.add(tree, 1.0)
        leaf = {k: one.apply(v)[:, 0] for k, v in sets.items()}
        D = {k: tree.value[leaf[k]].copy() for k in sets}
        if a > 0:
            parent = np.full(len(tree.left), -1)
            for p, (lc, rc) in enumerate(zip(tree.left, tree.right)):
                if lc >= 0:
                    parent[lc] = parent[rc] = p
            for j in np.unique(leaf["train"]):
                feats = (list(range(X.shape[1])) if args.all_features
                         else leaf_features(tree, j, parent))
                rows = leaf["train"] == j
                wj, cj, xj = Y[rows, 0], cls[rows], X[rows][:, feats]
                lam = np.bincount(cj, weights=wj, minlength=C)
                mu = np.stack([np.bincount(cj, weights=wj * xj[:, f], minlength=C)
                               for f in range(len(feats))], axis=1) / lam[:, None]
                x0, w0 = xj[cj == 0] - mu[0], wj[cj == 0]
                S0 = (x0.T * w0) @ x0 / w0.sum()
                B = np.linalg.solve(S0 + 1e-9 * np.eye(len(feats)), (mu[1:] - mu[0]).T).T
                c = np.log(lam[1:] / lam[0]) - 0.5 * np.einsum("kd,de,ke->k", B, S0, B)
                Dc, DB = loss.H @ c, loss.H @ B
                for k, Xs in sets.items():
                    sel = leaf[k] == j
                    D[k][sel] = (a * (Dc + (Xs[sel][:, feats] - mu[0]) @ DB.T)
                                 + (1 - a) * tree.value[j])
        for k in sets:
            pred[k] += eta * D[k]
        g_own += eta * np.einsum("nt,nt->n", D["train"], V_own)
        val_loss.append(loss.model_loss(wv, clsv, pred["val"]))
        errors.append(score_bpt(pred["test"], toy))
    kb = int(np.argmin(val_loss))
    ko = int(np.argmin(errors))
    print(f"{args.toy} seed {args.seed} alpha {a} "
          f"({'all features' if args.all_features else 'path features'}): "
          f"at the validation minimum ({kb + 1} trees) {errors[kb]:.4f}; "
          f"best {errors[ko]:.4f} at {ko + 1} trees")


if __name__ == "__main__":
    main()
