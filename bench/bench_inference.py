"""Speed of bpt.inference: q + gradient, a 50-point profiled scan, a replica-based interval.

Setup (issue 4): N = 1e6 data events (the Asimov sample of the simulation, i.e. 1e6
weighted events), 2 POIs at quadratic order, 5 nuisances at quadratic order, 3 processes
(one EFT process with a BIT-like ratio; every process with a BPT-like systematics model
for all 5 nuisances; a normalisation and a luminosity nuisance).  The per-event
coefficient arrays are synthetic (smooth random functions of 4 features, rates
positive in the scanned range) instead of trained trees: the timing of the inference
does not depend on where the coefficients come from.

Reference: the time numpy needs to stream the same per-event coefficient arrays once
(``arr.sum()``), measured in the same run.

Replica-based interval (issue 13): B replicas of the ratio model (synthetic ones with
other seeds: the training cost, B x one training, is not part of this figure);
``Replicas.interval`` = B fits of the data by the replica models (each evaluates its
pieces on the data and the simulation once) + one interval.  Printed: its time, the
time of one ``interval`` (MLE remembered) and of one ``fit``, and the cost per replica
relative to one interval.

Combination (issue 14, ``--part combination``): 2 unbinned channels + 1 binned channel,
2 POIs, 20 nuisances (12 shape nuisances, each channel's processes using 6 of them with
one synthetic BPT-like model per nuisance, shared between channels; 7 normalisations
and a luminosity), 1e6 data events in total (0.5e6 + 0.4e6 unbinned Asimov-weighted
events, 0.1e6 events histogrammed into 20 bins).  The 3 processes of an unbinned channel
are simulated on one shared sample of points with distinct weights and exact fractions,
so the Asimov data are exactly the model's expectation and the Asimov MLE is the truth
(printed; with processes simulated on different points it is off by O(1) error per
parameter, see bench/README.md).  Printed: q + gradient against one
numpy pass over every coefficient array of the combination (data and simulation of all
channels), a 50-point profiled scan of c1 (c2 and the 20 nuisances profiled), and the
impacts of the 20 nuisances if ``Combination.impacts`` exists (a marked hook otherwise),
each with its number of likelihood evaluations.

    python bench/bench_inference.py                        # N = 1e6, both parts
    python bench/bench_inference.py --n 200000             # quicker
    python bench/bench_inference.py --part combination     # only the combination
    python bench/bench_inference.py --part combination --separate-points   # earlier setup
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # this checkout

from bpt._terms import make_terms
from bpt.inference import (AdditiveModel, BinnedChannel, Combination, Nuisance, Process,
                           Replicas)


class SyntheticRatio:
    """R_A(x) = scale * tanh(x W)_A (BIT interface: terms_, n_parameters, predict)."""

    def __init__(self, n_parameters, n_features, scale, seed):
        self.n_parameters = n_parameters
        self.terms_ = make_terms(n_parameters, 2)
        self.W = np.random.default_rng(seed).normal(size=(n_features, len(self.terms_)))
        self.scale = scale

    def predict(self, X):
        out = np.tanh(X @ self.W) * self.scale
        # keep the quadratic diagonal terms positive, like a physical |M|^2
        for A, t in enumerate(self.terms_):
            if len(t) == 2 and t[0] == t[1]:
                out[:, A] = np.abs(out[:, A])
        return out


class SyntheticSystematics(SyntheticRatio):
    """Delta_A(x) = scale * tanh(x W)_A (BPT interface: terms_, n_nuisances, predict)."""

    def __init__(self, n_nuisances, n_features, scale, seed):
        super().__init__(n_nuisances, n_features, scale, seed)
        self.n_nuisances = n_nuisances
        del self.n_parameters


class SyntheticFractions:
    """Softmax of linear functions (classifier interface: classes_, predict_proba)."""

    def __init__(self, classes, n_features, seed):
        self.classes_ = np.array(classes)
        self.V = np.random.default_rng(seed).normal(size=(n_features, len(classes))) * 0.5

    def predict_proba(self, X):
        a = X @ self.V
        a -= a.max(axis=1, keepdims=True)
        e = np.exp(a)
        return e / e.sum(axis=1, keepdims=True)


def build(n_events, n_features=4, seed=0):
    rng = np.random.default_rng(seed)
    names = ["eft", "bkg1", "bkg2"]
    nuis = [Nuisance(f"nu{k}") for k in range(5)]
    nu_names = [n.name for n in nuis]
    sizes = [n_events // 2, n_events // 4, n_events - n_events // 2 - n_events // 4]
    procs = []
    for i, (name, n) in enumerate(zip(names, sizes)):
        X = rng.uniform(-1, 1, size=(n, n_features))
        w = np.full(n, 1.0)           # expected yield = number of simulated events
        syst = [(SyntheticSystematics(5, n_features, 0.05, seed + 10 + i), nu_names)]
        ratio = SyntheticRatio(2, n_features, 0.3, seed + 1) if i == 0 else None
        norm = {"nu3": 0.1} if i == 1 else ({"nu4": 0.05} if i == 2 else None)
        procs.append(Process(name, X, w, ratio=ratio, systematics=syst, normalization=norm))
    return AdditiveModel(procs, pois=["c1", "c2"], nuisances=nuis,
                         fractions=SyntheticFractions(names, n_features, seed + 99),
                         luminosity=("nu2", 0.02))


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), float(np.median(times))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="data (= simulated) events")
    ap.add_argument("--points", type=int, default=50, help="scan points")
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--replicas", type=int, default=4, help="B for the replica interval (0: skip)")
    ap.add_argument("--part", choices=["single", "combination", "all"], default="all")
    ap.add_argument("--separate-points", action="store_true",
                    help="combination: the earlier setup, each process simulated on its own "
                         "points (its Asimov MLE is not the truth; for comparison)")
    args = ap.parse_args()
    if args.part in ("combination", "all"):
        combination_bench(args)
    if args.part == "combination":
        return

    import numba
    os.system("uptime")        # the machine is shared: the load average qualifies the figures
    t0 = time.perf_counter()
    model = build(args.n)
    theta_true, nu_true = np.array([0.05, -0.03]), np.zeros(5)
    X, w = model.asimov(theta_true, nu_true)
    data = model.prepare(X, w)
    t_prep = time.perf_counter() - t0
    lik = model.likelihood_
    coef = data._coef
    sim_arrays = [c for (_, _, _, c, _) in lik.sim]
    print(f"numba threads: {numba.get_num_threads()}, threading layer: ", end="")
    model.q(theta_true, nu_true, data, derivatives=1)          # compile / warm up
    print(numba.threading_layer())
    n_sim_rows = sum(c.shape[0] for c in sim_arrays)
    print(f"events: data {coef.shape[0]} x {coef.shape[1]} coefficients "
          f"({coef.nbytes / 1e6:.0f} MB); simulation yield arrays "
          f"{n_sim_rows} rows, {sum(c.nbytes for c in sim_arrays) / 1e6:.0f} MB; "
          f"setup {t_prep:.1f} s")

    z_theta, z_nu = np.array([0.02, -0.01]), np.full(5, 0.1)

    def stream_all():
        coef.sum()
        for c in sim_arrays:
            c.sum()

    # measured back to back, repeatedly, so that both see the same machine load
    rows = []
    for _ in range(args.repeat):
        rows.append([best_of(lambda: coef.sum(), 1)[0], best_of(stream_all, 1)[0],
                     best_of(lambda: model.q(z_theta, z_nu, data), 1)[0],
                     best_of(lambda: model.q(z_theta, z_nu, data, derivatives=1), 1)[0]])
    rows = np.array(rows)
    stream_data, stream_all_t, t_q0, t_q1 = rows.min(axis=0)
    pair = np.median(rows[:, 3] / rows[:, 1])
    t_q2, _ = best_of(lambda: model.q(z_theta, z_nu, data, derivatives=2), 3)
    print(f"numpy stream of the data coefficient array once (sum): {stream_data * 1e3:8.1f} ms")
    print(f"numpy stream of data + simulation arrays once:        {stream_all_t * 1e3:8.1f} ms")
    print(f"q only:                  {t_q0 * 1e3:8.1f} ms")
    print(f"q + gradient:            {t_q1 * 1e3:8.1f} ms  ratio to streaming all arrays "
          f"{t_q1 / stream_all_t:.2f} (best / best; median of back-to-back pairs {pair:.2f}); "
          f"to the data array alone {t_q1 / stream_data:.2f}  [target <= 3]")
    print(f"q + gradient + Hessian:  {t_q2 * 1e3:8.1f} ms  ratio to streaming all arrays "
          f"{t_q2 / stream_all_t:.2f}")

    t0 = time.perf_counter()
    fit = model.fit(data)
    t_fit = time.perf_counter() - t0
    print(f"MLE (multi-start, {2 * model.n_pois + 2} starts): {t_fit:.2f} s, {fit.n_evaluations} evaluations, theta = {fit.theta}, "
          f"success = {fit.success}")
    err = fit.errors[0]
    grid = fit.theta[0] + np.linspace(-3 * err, 3 * err, args.points)
    t0 = time.perf_counter()
    res = model.scan(grid, data, poi="c1", return_result=True)    # reuses the MLE above
    t_scan = time.perf_counter() - t0
    print(f"{args.points}-point profiled scan of c1 (c2 and 5 nuisances profiled): "
          f"{t_scan:.2f} s  [target <= 20 s]; with the MLE {t_scan + t_fit:.2f} s; all "
          f"converged: {bool(res.success.all())}; t range {res.t.min():.3g} .. {res.t.max():.3g}")
    if args.replicas >= 2:
        replica_interval(model, data, args.replicas)
    os.system("uptime")


def replica_interval(model, data, n_replicas):
    t0 = time.perf_counter()
    interval = model.interval(data, poi="c1")                   # the MLE is remembered
    t_int = time.perf_counter() - t0
    ratio = model.processes[0].ratio
    reps = [SyntheticRatio(2, ratio.W.shape[0], ratio.scale * (1 + 0.02 * (b + 1)), 1000 + b)
            for b in range(n_replicas)]
    for r in reps:                                              # small perturbations
        r.W = ratio.W + 0.02 * (r.W - ratio.W)
    rep = Replicas(model, [(ratio, reps)])
    t0 = time.perf_counter()
    res = rep.interval(data, poi="c1")
    t_rep = time.perf_counter() - t0
    t0 = time.perf_counter()
    model.fit(data)
    t_fit = time.perf_counter() - t0
    per = (t_rep - t_int) / n_replicas
    print(f"interval of c1 (MLE remembered): {t_int:.2f} s -> ({interval[0]:.4g}, "
          f"{interval[1]:.4g}); one fit {t_fit:.2f} s")
    print(f"replica interval, B = {n_replicas}: {t_rep:.2f} s -> ({res.low:.4g}, {res.high:.4g}), "
          f"replica sd / stat sd = {res.ratio:.2f}; per replica {per:.2f} s = "
          f"{per / t_int:.2f} x one interval, {per / t_fit:.2f} x one fit  [target <= 2 x one "
          "interval per replica]")


# ----------------------------------------------------------------------------- combination
class OneNuisanceSystematics:
    """Delta(x) = scale * tanh(x . W): a BPT-like model of one nuisance (terms nu, nu^2)."""

    def __init__(self, n_features, scale, seed):
        self.n_nuisances = 1
        self.terms_ = [(0,), (0, 0)]
        self.W = np.random.default_rng(seed).normal(size=(n_features, 2))
        self.scale = scale

    def predict(self, X):
        out = np.tanh(X @ self.W) * self.scale
        out[:, 1] = 0.1 * np.abs(out[:, 1])
        return out


class ExactFractions:
    """The exact SM fractions of a shared weighted simulation: process p has density
    g_p(x) = exp(x . a_p) relative to the common sample, weight c_p g_p(x) per point, so
    f_p(x) = c_p g_p(x) / sum_q c_q g_q(x) (classifier interface: classes_, predict_proba)."""

    def __init__(self, classes, A, c):
        self.classes_ = np.array(classes)
        self.A = np.asarray(A, dtype=np.float64)          # (n_features, n_processes)
        self.c = np.asarray(c, dtype=np.float64)

    def weights(self, X):
        return self.c * np.exp(np.asarray(X) @ self.A)

    def predict_proba(self, X):
        w = self.weights(X)
        return w / w.sum(axis=1, keepdims=True)


class ConstantFractions:
    """The exact SM fractions of processes simulated from one density on separate points:
    constant, the processes' shares of the yield (``--separate-points``)."""

    def __init__(self, classes, yields):
        self.classes_ = np.array(classes)
        self.p = np.asarray(yields, dtype=np.float64) / np.sum(yields)

    def predict_proba(self, X):
        return np.tile(self.p, (np.asarray(X).shape[0], 1))


def build_unbinned_channel(name, n_events, shape_names, norm_names, rng, seed, n_features=4,
                           separate=False):
    """3 processes simulated on one shared sample of n_events // 3 points (weights
    c_p g_p(x): distinct densities, yields n_events / 2, / 4, / 4) with the exact
    fractions: the Asimov data (every process's points with its expected weights) are
    then exactly the model's expectation, so their MLE is the truth (see bench/README.md,
    "Combination (issue 14)").  ``separate``: the earlier setup, each process on its own
    uniform points (unit weights, constant fractions): its Asimov MLE is not the truth."""
    names = ["eft", "bkg1", "bkg2"]
    yields = np.array([n_events // 2, n_events // 4, n_events - n_events // 2 - n_events // 4],
                      dtype=np.float64)
    if separate:
        frac = ConstantFractions(names, yields)
        samples = [(rng.uniform(-1, 1, size=(int(n), n_features)), np.ones(int(n)))
                   for n in yields]
    else:
        X = rng.uniform(-1, 1, size=(n_events // 3, n_features))
        A = rng.normal(size=(n_features, 3)) * 0.5
        A[:, 0] = 0.0                                      # eft: the uniform density
        frac = ExactFractions(names, A, yields / np.exp(X @ A).sum(axis=0))
        w_all = frac.weights(X)
        samples = [(X, np.ascontiguousarray(w_all[:, i])) for i in range(3)]
    procs = []
    for i, (pname, (X, w)) in enumerate(zip(names, samples)):
        syst = [(OneNuisanceSystematics(n_features, 0.05, seed + 100 * i + k), [s])
                for k, s in enumerate(shape_names)]
        ratio = SyntheticRatio(2, n_features, 0.3, seed + 1) if i == 0 else None
        norm = {norm_names[i]: 0.1} if i < len(norm_names) else None
        procs.append(Process(pname, X, w, ratio=ratio, systematics=syst, normalization=norm))
    nus = sorted({*shape_names, *norm_names[:3], "lumi"})
    return AdditiveModel(procs, pois=["c1", "c2"], nuisances=nus, fractions=frac,
                         luminosity=("lumi", 0.02), name=name)


def build_binned_channel(name, n_events, shape_names, norm_names, rng, seed, n_features=4):
    procs = []
    for i, (pname, frac) in enumerate((("eft", 0.3), ("bkg", 0.7))):
        n = int(n_events * frac)
        X = rng.uniform(-1, 1, size=(n, n_features))
        syst = [(OneNuisanceSystematics(n_features, 0.05, seed + 100 * i + k), [s])
                for k, s in enumerate(shape_names)]
        ratio = SyntheticRatio(2, n_features, 0.3, seed + 1) if i == 0 else None
        procs.append(Process(pname, X, np.ones(n), ratio=ratio, systematics=syst,
                             normalization={norm_names[i]: 0.15}))
    nus = sorted({*shape_names, *norm_names[:2], "lumi"})
    return BinnedChannel(procs, ["c1", "c2"], nus, 0, np.linspace(-1, 1, 21),
                         luminosity=("lumi", 0.02), name=name)


def build_combination(n_events, seed=0, separate=False):
    rng = np.random.default_rng(seed)
    shape = [f"s{k}" for k in range(12)]
    norm = [f"n{k}" for k in range(7)]
    a = build_unbinned_channel("sr1", n_events // 2, shape[0:6], norm[0:3], rng, seed + 10,
                               separate=separate)
    b = build_unbinned_channel("sr2", 2 * n_events // 5, shape[3:9], norm[2:5], rng, seed + 20,
                               separate=separate)
    c = build_binned_channel("cr", n_events - n_events // 2 - 2 * n_events // 5, shape[6:12],
                             norm[5:7], rng, seed + 30)
    return Combination([a, b, c], pois=["c1", "c2"])


class EvaluationCounter:
    """Counts the evaluations of a likelihood (wraps ``evaluate`` of that one instance):
    q + gradient passes and passes with a Hessian (exact or subsampled).  Evaluation
    counts do not depend on the machine's load; seconds do."""

    def __init__(self, lik):
        self.lik, self._evaluate = lik, lik.evaluate
        self.grad = self.hess = 0
        lik.evaluate = self

    def __call__(self, z, data, order=0, parallel=True, hess_sample=None):
        if order >= 2:
            self.hess += 1
        else:
            self.grad += 1
        return self._evaluate(z, data, order, parallel, hess_sample)

    def take(self):
        """'n evaluations (g q + gradient, h with Hessian)' since the last call; resets."""
        out = f"{self.grad + self.hess} evaluations ({self.grad} q + gradient, {self.hess} with Hessian)"
        self.grad = self.hess = 0
        return out


def combination_bench(args):
    import numba
    os.system("uptime")
    t0 = time.perf_counter()
    comb = build_combination(args.n, separate=args.separate_points)
    K = comb.n_nuisances
    theta_true, nu_true = np.array([0.05, -0.03]), np.zeros(K)
    asi = comb.asimov(theta_true, nu_true)
    data = comb.prepare(asi)
    t_prep = time.perf_counter() - t0
    print(f"\n=== combination: channels {comb.channel_names}, {comb.n_pois} POIs, {K} nuisances; "
          f"numba threads {numba.get_num_threads()}; setup {t_prep:.1f} s")
    parts = data.arrays()[0]
    arrays = []
    for ch, part in zip(comb.channels, parts):
        if isinstance(ch, AdditiveModel):
            arrays.append(part[0])
            arrays += [c for (_, _, _, c, _) in ch.likelihood_.sim]
        else:
            arrays += [c for (_, _, _, per_bin) in ch.likelihood_.bins for (c, _) in per_bin]
    n_data = sum(p[0].shape[0] for p in parts[:2]) + int(parts[2][0].sum())
    print(f"data events: {n_data} ({parts[0][0].shape[0]} + {parts[1][0].shape[0]} unbinned, "
          f"{int(parts[2][0].sum())} histogrammed into {comb.channels[2].n_bins} bins); "
          f"coefficient arrays {sum(a.nbytes for a in arrays) / 1e6:.0f} MB")
    z_theta, z_nu = np.array([0.02, -0.01]), np.full(K, 0.1)
    comb.q(z_theta, z_nu, data, derivatives=1)                  # warm up

    def stream():
        for a in arrays:
            a.sum()

    rows = []
    for _ in range(args.repeat):
        rows.append([best_of(stream, 1)[0],
                     best_of(lambda: comb.q(z_theta, z_nu, data, derivatives=1), 1)[0]])
    rows = np.array(rows)
    t_stream, t_q1 = rows.min(axis=0)
    pair = np.median(rows[:, 1] / rows[:, 0])
    t_q2, _ = best_of(lambda: comb.q(z_theta, z_nu, data, derivatives=2), 3)
    print(f"numpy stream of every coefficient array once: {t_stream * 1e3:8.1f} ms")
    print(f"q + gradient:            {t_q1 * 1e3:8.1f} ms  ratio {t_q1 / t_stream:.2f} (best / "
          f"best; median of back-to-back pairs {pair:.2f})  [target <= 3]")
    print(f"q + gradient + Hessian:  {t_q2 * 1e3:8.1f} ms  ratio {t_q2 / t_stream:.2f}")
    count = EvaluationCounter(comb.likelihood_)
    t0 = time.perf_counter()
    fit = comb.fit(data)
    t_fit = time.perf_counter() - t0
    z_true = np.concatenate([theta_true, nu_true])
    pull = np.max(np.abs(fit.z - z_true) / fit.errors)
    print(f"MLE: {t_fit:.2f} s, {count.take()}, theta = {fit.theta}, success = "
          f"{fit.success}; Asimov MLE - truth: max |z_hat - z_true| / error = {pull:.2g}")
    err = fit.error("c1")
    grid = fit["c1"] + np.linspace(-3 * err, 3 * err, args.points)
    t0 = time.perf_counter()
    res = comb.scan(grid, data, poi="c1", return_result=True)
    t_scan = time.perf_counter() - t0
    print(f"{args.points}-point profiled scan of c1 (c2 and {K} nuisances profiled): "
          f"{t_scan:.2f} s  [target <= 20 s], {count.take()}; all converged: "
          f"{bool(res.success.all())}; t range {res.t.min():.3g} .. {res.t.max():.3g}")
    # ---- HOOK: impacts (issue 14 item 4, built on another branch).  When
    # Combination.impacts exists, this times the impacts of all nuisances on c1.
    if hasattr(comb, "impacts"):
        t0 = time.perf_counter()
        imp = comb.impacts(data, poi="c1")
        t_imp = time.perf_counter() - t0
        print(f"impacts of {K} nuisances on c1 ({4 * K} refits): {t_imp:.2f} s  [target <= "
              f"60 s], {count.take()}; all converged: {bool(imp.success.all())}")
    else:
        print("impacts: Combination.impacts is not available on this branch (hook in "
              "combination_bench)")
    os.system("uptime")


if __name__ == "__main__":
    main()
