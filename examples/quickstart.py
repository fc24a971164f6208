"""bpt end to end on the built-in toy physics: learn, save, load, fit, plot.

    python examples/quickstart.py                 # full run, ~1-2 min on 2 cores
    python examples/quickstart.py --quick         # tiny sizes (a smoke test, ~15 s)
    python examples/quickstart.py --out results   # write models and plots to ./results

Steps (each prints a header and its timing):

1. simulate the toy physics of ``bpt.datasets`` (an EFT signal with two SMEFT
   parameters, a background, a jet-energy-scale and a theory systematic, a background
   normalisation), whose exact truth is known;
2. train a BoostedInformationTree (SMEFT dependence of the signal, 2 parameters,
   quadratic), one BoostedParametricTree per process (jes and theory), and a
   scikit-learn HistGradientBoostingClassifier for the SM process fractions;
3. save everything to ``<out>/models`` and load it back;
4. build the unbinned ``bpt.inference.AdditiveModel``, save it whole to one file, load it
   back, and fit an Asimov dataset and one pseudo-experiment ("toy") drawn from the exact
   toy model at known parameters;
5. print best fits and 68% / 95% intervals next to the true values, and write PNG plots.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time
import warnings

import numpy as np

import bpt
from bpt import datasets as ds
from bpt.inference import AdditiveModel, Nuisance, Process

POIS = list(ds.PARAMETER_NAMES)                  # ["c_energy", "c_angle"]
SHAPE_NUISANCES = list(ds.NUISANCE_NAMES)        # ["jes", "theory"]
THETA_TRUE = np.array([0.4, -0.3])               # the SMEFT point of the pseudo-data
NU_TRUE = np.array([0.5, -0.5])                  # (jes, theory) of the toy dataset
NORM_TRUE = 0.5                                  # background normalisation nuisance of the toy
LUMI_KAPPA = 0.025                               # 2.5% luminosity uncertainty
BKG_KAPPA = 0.2                                  # = ds.ToyPhysics().background_norm_uncertainty

FULL = dict(n_bit=100_000, bit_trees=100, n_sys=20_000, sys_trees=30, n_clf=50_000,
            clf_iter=200, n_sim=50_000, n_asimov=30_000, n_scan=41, n_grid=17)
QUICK = dict(n_bit=5_000, bit_trees=6, n_sys=2_000, sys_trees=4, n_clf=4_000,
             clf_iter=20, n_sim=3_000, n_asimov=3_000, n_scan=7, n_grid=5)

T0 = time.perf_counter()


def header(text):
    print(f"\n{'=' * 78}\n{text}   [t = {time.perf_counter() - T0:.1f} s]\n{'=' * 78}",
          flush=True)


def step(text):
    print(f"  - {text}", flush=True)


class _EveryKthTree(io.TextIOBase):
    """Forward an estimator's verbose output, keeping the first, every k-th and the last
    per-tree line."""

    def __init__(self, out, k):
        self.out, self.k, self.buf, self.pending = out, k, "", None

    def write(self, s):
        self.buf += s
        while "\n" in self.buf:
            line, self.buf = self.buf.split("\n", 1)
            parts = line.split()
            if len(parts) > 2 and parts[1] == "tree":
                b = int(parts[2].split("/")[0])
                if b % self.k and b != 1:
                    self.pending = line          # shown only if it turns out to be the last
                    continue
                self.pending = None
            else:
                self.finish()
            self.out.write("    " + line + "\n")
        return len(s)

    def flush(self):
        self.out.flush()

    def finish(self):
        if self.pending is not None:
            self.out.write("    " + self.pending + "\n")
            self.pending = None
        self.out.flush()


@contextlib.contextmanager
def progress(every):
    """Print an estimator's verbose per-tree lines, every ``every``-th one."""
    filt = _EveryKthTree(sys.stdout, every)
    with contextlib.redirect_stdout(filt):
        yield
    filt.finish()


@contextlib.contextmanager
def _openmp_threads(n):
    """Limit OpenMP threads (scikit-learn's) inside the block."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:                      # pragma: no cover - a scikit-learn dependency
        yield
        return
    with threadpool_limits(n, user_api="openmp"):
        yield


# ----------------------------------------------------------------------------- training
def train(cfg, seed):
    header("1. Training data from the toy physics (bpt.datasets)")
    toy = ds.ToyPhysics()
    print(f"  {toy!r}\n  features: {list(ds.FEATURE_NAMES)}\n  POIs: {POIS}, shape "
          f"nuisances: {SHAPE_NUISANCES}, background normalisation kappa = "
          f"{toy.background_norm_uncertainty}")
    sig = ds.make_eft_signal(cfg["n_bit"], random_state=seed)
    step(f"EFT signal for the BIT: {sig.X.shape[0]} events, y = (c0, c_A) with terms "
         f"{sig.terms}")
    sys_samples = {p: ds.make_systematic_samples(cfg["n_sys"], process=p, random_state=seed + 1 + i)
                   for i, p in enumerate(ds.PROCESSES)}
    pts = sys_samples["signal"].base_points
    step(f"systematic samples: {cfg['n_sys']} events at each of {len(pts)} base points "
         f"(jes, theory) = {pts.tolist()} per process")
    clf_data = ds.make_classification_sample(cfg["n_clf"], random_state=seed + 3)
    step(f"classification sample: {cfg['n_clf']} events per process")

    every = max(1, cfg["bit_trees"] // 10)
    header("2a. BoostedInformationTree: SMEFT dependence of the signal (2 parameters, quadratic)")
    bit = bpt.BoostedInformationTree(
        n_parameters=2, order=2, n_estimators=cfg["bit_trees"], learning_rate=0.2, max_depth=4,
        min_samples_leaf=max(20, cfg["n_bit"] // 500), early_stopping=True,
        validation_fraction=0.2, n_iter_no_change=10, random_state=seed, verbose=1)
    with progress(every):
        bit.fit(sig.X, sig.y)
    test = ds.make_eft_signal(max(cfg["n_bit"] // 5, 2000), random_state=seed + 100)
    R, truth = bit.predict(test.X), test.truth
    rms = np.sqrt(np.mean((R - truth) ** 2, axis=0))
    scale = np.sqrt(np.mean(truth ** 2, axis=0))
    print(f"  {bit.n_iter_} trees in {bit.fit_time_:.1f} s.  Closure against the exact R_A(x) "
          "on independent events:")
    for t, e, s in zip(bit.terms_, rms, scale):
        print(f"    R_{str(t):7s} RMS(learned - true) = {e:.4f}   (RMS of the true R_A: {s:.4f})")

    bpts, heldout = {}, {}
    for process in ds.PROCESSES:
        header(f"2b. BoostedParametricTree: jes and theory systematics of the {process}")
        s = sys_samples[process]
        est = bpt.BoostedParametricTree(
            n_nuisances=2, order=2, n_estimators=cfg["sys_trees"], learning_rate=0.2,
            max_depth=3, min_samples_leaf=max(20, cfg["n_sys"] // 70), random_state=seed,
            early_stopping=False, verbose=1)
        # no early stopping on a random split here: the base-point samples share their
        # true-level events (as real JES / weight variations do), so a random split of the
        # rows puts copies of one event on both sides and the validation loss is biased
        # (fit(..., groups=...) or eval_set=(X, nu, w) of an independent sample avoid
        # that).  The loss curve is checked on an independent sample instead
        # (heldout_loss below).
        with progress(max(1, cfg["sys_trees"] // 8)):
            est.fit(s.X, s.nu, sample_weight=s.weight)
        nom = s.X[np.all(s.nu == 0, axis=1)]
        print(f"  {est.n_iter_} trees in {est.fit_time_:.1f} s.  Closure against the exact "
              "log-ratio on the nominal events:")
        for nu in ([1.0, 0.0], [0.0, 1.0]):
            g = est.predict_log_ratio(nom, nu)
            g_true = ds.true_log_ratio(nom, nu, process=process)
            print(f"    nu (jes, theory) = {nu}: RMS(learned - true) = "
                  f"{np.sqrt(np.mean((g - g_true) ** 2)):.4f}   (RMS of the true log-ratio: "
                  f"{np.sqrt(np.mean(g_true ** 2)):.4f})")
        held = ds.make_systematic_samples(max(cfg["n_sys"] // 2, 500), process=process,
                                          random_state=seed + 50 + len(bpts))
        curve = heldout_loss(est, held.X, held.nu, held.weight)
        heldout[process] = curve
        print(f"    loss on an independent sample: {curve[0]:.6f} after the first tree, "
              f"{curve[-1]:.6f} after the last, lowest after {int(np.argmin(curve)) + 1} trees")
        bpts[process] = est

    header("2c. Fraction classifier: sklearn HistGradientBoostingClassifier with SM weights")
    from sklearn.ensemble import HistGradientBoostingClassifier

    labels = np.asarray(ds.PROCESSES)[clf_data.y]          # string labels = process names
    t = time.perf_counter()
    clf = HistGradientBoostingClassifier(max_iter=cfg["clf_iter"], learning_rate=0.1,
                                         max_leaf_nodes=15, early_stopping=True,
                                         validation_fraction=0.2, random_state=seed)
    # scikit-learn's OpenMP threads wait for each other at every step of the boosting; on
    # a small or busy machine one thread is faster (and never pathologically slow)
    with _openmp_threads(1):
        clf.fit(clf_data.X, labels, sample_weight=clf_data.sample_weight)
    f_true = ds.true_fractions(clf_data.X)[:, 0]
    f_clf = clf.predict_proba(clf_data.X)[:, list(clf.classes_).index("signal")]
    print(f"  classes_ = {[str(c) for c in clf.classes_]}, {clf.n_iter_} iterations in "
          f"{time.perf_counter() - t:.1f} s")
    print(f"  signal fraction f_s(x): RMS(learned - true) = "
          f"{np.sqrt(np.mean((f_clf - f_true) ** 2)):.4f}  (RMS spread of the true f_s: "
          f"{np.std(f_true):.4f})")
    return bit, bpts, clf, heldout


def heldout_loss(est, X, nu, w):
    """The BPT's training loss (cross entropy per unit weight) after each tree, on (X, nu, w).

    Nominal events (nu = 0) contribute w sum_k softplus(g_k(x)), an event of base point k
    contributes w softplus(-g_k(x)), g_k = V_k . Delta(x); the total is divided by
    (number of base points) * (nominal weight) + (other weight), as ``train_loss_`` is.
    """
    nominal = np.all(nu == 0, axis=1)
    point = np.full(len(X), -1)
    for k, p in enumerate(est.base_points_):
        point[np.all(nu == p, axis=1)] = k
    other = ~nominal
    total = len(est.base_points_) * w[nominal].sum() + w[other].sum()
    curve = []
    for delta in est.staged_predict(X):
        g = delta @ est.V_.T                             # (N, n_base_points)
        loss = (w[nominal, None] * np.logaddexp(0.0, g[nominal])).sum()
        loss += (w[other] * np.logaddexp(0.0, -g[other, point[other]])).sum()
        curve.append(loss / total)
    return np.array(curve)


# ----------------------------------------------------------------------------- saving
_SKOPS_TRUSTED = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]


def save_models(bit, bpts, clf, folder):
    header(f"3. Save the models to {folder}/ and load them back")
    os.makedirs(folder, exist_ok=True)
    paths = {"bit": os.path.join(folder, "bit_signal.bpt")}
    bit.save(paths["bit"])
    for process, est in bpts.items():
        paths[process] = os.path.join(folder, f"bpt_{process}.bpt")
        est.save(paths[process])
    try:
        import skops.io as sio
        paths["clf"] = os.path.join(folder, "fractions.skops")
        sio.dump(clf, paths["clf"])
    except ImportError:
        import joblib
        paths["clf"] = os.path.join(folder, "fractions.joblib")
        joblib.dump(clf, paths["clf"])
        print("  (skops is not installed: the classifier is saved with joblib, i.e. pickle; "
              "`pip install skops` for a format that does not run code when loaded)")
    for key, p in paths.items():
        step(f"{p}  ({os.path.getsize(p) / 1024:.0f} kB)")
    return paths


def load_models(paths, check_X, originals):
    bit = bpt.load(paths["bit"])                       # a BoostedInformationTree
    bpts = {p: bpt.load(paths[p]) for p in ds.PROCESSES}
    if paths["clf"].endswith(".skops"):
        import skops.io as sio
        unknown = set(sio.get_untrusted_types(file=paths["clf"])) - set(_SKOPS_TRUSTED)
        if unknown:
            raise RuntimeError(f"{paths['clf']} holds unexpected types {sorted(unknown)}")
        clf = sio.load(paths["clf"], trusted=_SKOPS_TRUSTED)
    else:
        import joblib
        clf = joblib.load(paths["clf"])
    bit0, bpts0, clf0 = originals
    same = (np.array_equal(bit.predict(check_X), bit0.predict(check_X))
            and all(np.array_equal(bpts[p].predict(check_X), bpts0[p].predict(check_X))
                    for p in ds.PROCESSES)
            and np.array_equal(clf.predict_proba(check_X), clf0.predict_proba(check_X)))
    step(f"loaded {type(bit).__name__}, 2 x {type(bpts['signal']).__name__}, "
         f"{type(clf).__name__}; predictions identical to the trained models: {same}")
    if not same:
        raise RuntimeError("a loaded model predicts differently from the trained one")
    return bit, bpts, clf


# ----------------------------------------------------------------------------- inference
def build_model(bit, bpts, clf, cfg, seed):
    header("4. The unbinned model: bpt.inference.AdditiveModel")
    sim = {p: ds.make_process_sample(p, cfg["n_sim"], random_state=seed + 10 + i)
           for i, p in enumerate(ds.PROCESSES)}
    processes = [
        Process("signal", sim["signal"].X, sim["signal"].weight, ratio=(bit, POIS),
                systematics=[(bpts["signal"], SHAPE_NUISANCES)]),
        Process("background", sim["background"].X, sim["background"].weight,
                systematics=[(bpts["background"], SHAPE_NUISANCES)],
                normalization={"bkg_norm": BKG_KAPPA}),
    ]
    nuisances = [Nuisance("jes"), Nuisance("theory"), Nuisance("bkg_norm"), Nuisance("lumi")]
    model = AdditiveModel(processes, pois=POIS, nuisances=nuisances, fractions=clf,
                          luminosity=("lumi", LUMI_KAPPA))
    for p in processes:
        step(repr(p))
    step(f"POIs {model.pois}; nuisances {model.nuisance_names} (all unit-Gaussian constrained)")
    step(f"SM expected yields from the simulation: signal {sim['signal'].weight.sum():.1f}, "
         f"background {sim['background'].weight.sum():.1f}")
    return model


def save_whole_model(model, folder, check_X):
    """The whole AdditiveModel (structure, simulation, trees, classifier) in one file."""
    header("4b. Save the whole AdditiveModel to one file and load it back")
    from bpt.inference import load_model

    path = os.path.join(folder, "analysis.bpt")
    try:
        model.save(path)                             # the classifier as a skops dump
        trusted = _SKOPS_TRUSTED                     # HGB's tree predictor: see docs/saving.md
    except ImportError:
        model.save(path, allow_pickle=True)          # no skops: the classifier is pickled
        trusted = True                               # our own file, written just now
        print("  (skops is not installed: the classifier inside is a pickle, so load_model "
              "needs trusted=True)")
    loaded = load_model(path, trusted=trusted)
    theta, nu = np.array([0.3, -0.2]), np.array([0.5, -0.5, 0.2, 0.1])
    same = model.q(theta, nu, check_X) == loaded.q(theta, nu, check_X)
    step(f"{path}  ({os.path.getsize(path) / 1e6:.1f} MB); reloaded with "
         f"bpt.inference.load_model: q identical = {same}")
    if not same:
        raise RuntimeError("the reloaded model gives a different q")
    step("the fits below use the reloaded model")
    return loaded


def datasets_to_fit(cfg, seed):
    asimov = ds.make_observed(THETA_TRUE, asimov=True, n_pool=cfg["n_asimov"],
                              random_state=seed + 20)
    toy = ds.make_observed(THETA_TRUE, nu=NU_TRUE, nu_norm=NORM_TRUE, random_state=seed + 21)
    return {
        "Asimov": dict(X=asimov.X, w=asimov.weight,
                       theta=THETA_TRUE, nu=np.array([0.0, 0.0, 0.0, 0.0]),
                       what=f"{asimov.X.shape[0]} simulated events weighted by the exact "
                            f"expected weight at theta = {THETA_TRUE.tolist()}, all nu = 0 "
                            f"(sum of weights {asimov.weight.sum():.1f})"),
        "toy": dict(X=toy.X, w=None, theta=THETA_TRUE,
                    nu=np.array([NU_TRUE[0], NU_TRUE[1], NORM_TRUE, 0.0]),
                    what=f"{toy.X.shape[0]} unweighted events drawn from the exact model at "
                         f"theta = {THETA_TRUE.tolist()}, (jes, theory) = {NU_TRUE.tolist()}, "
                         f"bkg_norm = {NORM_TRUE}"),
    }


def fit_all(model, data, cfg):
    results = {}
    for name, d in data.items():
        header(f"5. Fit the {name} dataset")
        step(d["what"])
        t = time.perf_counter()
        fit = model.fit(d["X"], d["w"])
        step(f"maximum-likelihood fit: {fit.n_evaluations} evaluations, "
             f"{time.perf_counter() - t:.2f} s, success = {fit.success}")
        intervals = {}
        for j, poi in enumerate(POIS):
            t = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                i68 = model.interval(d["X"], d["w"], cl=0.6827, poi=poi)
                i95 = model.interval(d["X"], d["w"], cl=0.95, poi=poi)
            intervals[poi] = (i68, i95)
            step(f"68% and 95% intervals of {poi} (other POI and all nuisances profiled): "
                 f"{time.perf_counter() - t:.2f} s")
        print(f"\n  {'POI':10s} {'true':>7s} {'best fit':>9s} {'+-':>6s}  "
              f"{'68% CL interval':>19s}  {'95% CL interval':>19s}  true inside 68% / 95%")
        for j, poi in enumerate(POIS):
            (a, b), (c, e) = intervals[poi]
            tv = d["theta"][j]
            print(f"  {poi:10s} {tv:7.3f} {fit.theta[j]:9.3f} {fit.errors[j]:6.3f}  "
                  f"[{a:7.3f}, {b:7.3f}]  [{c:7.3f}, {e:7.3f}]  "
                  f"{'yes' if a <= tv <= b else 'no':>5s} / {'yes' if c <= tv <= e else 'no'}")
        print(f"\n  {'nuisance':10s} {'true':>7s} {'fitted':>9s} {'+-':>6s}")
        for k, name_k in enumerate(model.nuisance_names):
            print(f"  {name_k:10s} {d['nu'][k]:7.3f} {fit.nu[k]:9.3f} "
                  f"{fit.errors[model.n_pois + k]:6.3f}")
        if name == "Asimov":
            print("\n  (The Asimov data come from the exact toy model, not from the learned one:"
                  "\n  the best fit differs from the truth by the models' learning errors and the"
                  "\n  finite Asimov sample only.  The toy also fluctuates statistically.)")
        results[name] = dict(fit=fit, intervals=intervals)
    return results


def scan_ranges(results):
    """Per POI: a range covering every dataset's 95% interval with some margin."""
    ranges = {}
    for poi in POIS:
        ends = []
        for r in results.values():
            fit_j = r["fit"].theta[POIS.index(poi)]
            ends += [v if np.isfinite(v) else fit_j + np.sign(v) for v in r["intervals"][poi][1]]
        lo, hi = min(ends), max(ends)
        pad = 0.3 * max(hi - lo, 1e-3)
        ranges[poi] = (lo - pad, hi + pad)
    return ranges


def scans(model, data, results, cfg):
    header("6. Profile-likelihood scans (for the plots)")
    ranges = scan_ranges(results)
    grids = {poi: np.linspace(*ranges[poi], cfg["n_scan"]) for poi in POIS}
    g1, g2 = (np.linspace(*ranges[poi], cfg["n_grid"]) for poi in POIS)
    pts = np.array(np.meshgrid(g1, g2, indexing="ij")).reshape(2, -1).T
    out = {}
    for name, d in data.items():
        out[name] = {}
        for poi in POIS:
            t = time.perf_counter()
            out[name][poi] = (grids[poi], model.scan(grids[poi], d["X"], d["w"], poi=poi))
            step(f"{name}: 1D scan of {poi}, {cfg['n_scan']} points, the other POI and the "
                 f"nuisances profiled: {time.perf_counter() - t:.2f} s")
        t = time.perf_counter()
        # n_jobs=2: two chunks of the grid in parallel (joblib), each warm-starting its
        # points from the previous one
        t2 = model.scan(pts, d["X"], d["w"], n_jobs=2).reshape(len(g1), len(g2))
        out[name]["2d"] = (g1, g2, t2)
        step(f"{name}: 2D scan of {POIS}, {pts.shape[0]} points, nuisances profiled, "
             f"n_jobs=2: {time.perf_counter() - t:.2f} s")
    return out


# ----------------------------------------------------------------------------- plots
def make_plots(folder, bit, bpts, heldout, scan_out, seed, cfg):
    header(f"7. Plots -> {folder}/")
    from bpt import plotting

    plt = plotting.offscreen_pyplot()
    if plt is None:
        return []

    os.makedirs(folder, exist_ok=True)
    written = []

    def save(fig, name):
        path = os.path.join(folder, name)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
        step(path)

    nominal = ds.make_process_sample("signal", cfg["n_sim"], random_state=seed + 30)
    X, w = nominal.X, nominal.weight

    # learned vs true R_A(x): energy terms against the mass, angular terms against cos
    fig, axes = plt.subplots(2, 3, figsize=(12.0, 6.6), layout="constrained")
    axes = axes.ravel()
    plotting.plot_coefficients(bit, X, ds.true_coefficients, feature="mass",
                               terms=[(0,), (0, 0)], feature_names=ds.FEATURE_NAMES,
                               parameter_names=POIS, sample_weight=w, ax=axes[[0, 3]])
    plotting.plot_coefficients(bit, X, ds.true_coefficients, feature="cos_theta",
                               terms=[(1,), (1, 1), (0, 1)], feature_names=ds.FEATURE_NAMES,
                               parameter_names=POIS, sample_weight=w, ax=axes[[1, 4, 2]])
    for a in axes[[1, 2, 3, 4]]:
        if a.get_legend() is not None:
            a.get_legend().remove()
    axes[5].axis("off")
    axes[5].text(0.02, 0.95, "BIT: learned vs exact coefficients\n\n"
                 r"$r(x|\theta) = 1 + \sum_A R_A(x)\, m_A(\theta)$" "\n\n"
                 "curves: mean of $R_A$ over signal events\nin quantile bins of the feature",
                 va="top", fontsize=10, transform=axes[5].transAxes)
    save(fig, "coefficients.png")

    # loss curves
    fig, axes = plt.subplots(1, 3, figsize=(13.0, 3.8), layout="constrained")
    plotting.plot_loss(bit, ax=axes[0])
    axes[0].set_title("BIT (signal, SMEFT)", fontsize=10)
    for a, p in zip(axes[1:], ds.PROCESSES):
        plotting.plot_loss(bpts[p], ax=a)
        curve = heldout.get(p)
        if curve is not None:
            a.plot(np.arange(1, len(curve) + 1), curve, "--", color="C1",
                   label="independent sample")
            a.legend(fontsize=9)
        a.set_title(f"BPT ({p}: jes, theory)", fontsize=10)
    save(fig, "loss.png")

    # systematic ratios, learned (solid) vs exact (dashed)
    fig, axes = plt.subplots(2, 2, figsize=(11.0, 8.0), layout="constrained")
    jes = np.array([[-2.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    theory = np.array([[0.0, -2.0], [0.0, -1.0], [0.0, 1.0], [0.0, 2.0]])
    for row, p in enumerate(ds.PROCESSES):
        sample = ds.make_process_sample(p, cfg["n_sim"], random_state=seed + 31 + row)

        def truth(Xv, nu, p=p):
            return ds.true_log_ratio(Xv, nu, process=p)

        for col, (pts, feat) in enumerate(((jes, "jet_pt"), (theory, "mass"))):
            a = axes[row, col]
            plotting.plot_systematic_ratios(bpts[p], sample.X, pts, truth, feature=feat,
                                            sample_weight=sample.weight,
                                            feature_names=ds.FEATURE_NAMES,
                                            nuisance_names=SHAPE_NUISANCES, ax=a)
            a.set_title(f"{p}: {'jes' if col == 0 else 'theory'} variations", fontsize=10)
    save(fig, "systematics.png")

    # 1D scans
    for j, poi in enumerate(POIS):
        fig, ax = plt.subplots(figsize=(5.6, 4.4), layout="constrained")
        for k, (name, color) in enumerate((("Asimov", "C0"), ("toy", "C1"))):
            grid, t = scan_out[name][poi]
            plotting.plot_scan(grid, t, ax=ax, label=name, parameter_name=poi, color=color,
                               truth=THETA_TRUE[j] if k == 1 else None)
        save(fig, f"scan_{poi}.png")

    # 2D contours
    fig, ax = plt.subplots(figsize=(7.6, 4.8), layout="constrained")
    for name, color in (("Asimov", "C0"), ("toy", "C1")):
        g1, g2, t2 = scan_out[name]["2d"]
        plotting.plot_contour(g1, g2, t2, ax=ax, label=name, color=color,
                              parameter_names=POIS, filled=(name == "Asimov"),
                              truth=THETA_TRUE if name == "toy" else None)
    leg = ax.get_legend()                    # move the legend next to the plot
    ax.legend(leg.legend_handles, [t.get_text() for t in leg.texts], fontsize=8,
              loc="upper left", bbox_to_anchor=(1.02, 1.0))
    ax.set_title("2D profile likelihood, nuisances profiled", fontsize=10)
    save(fig, "contour.png")
    return written


# ----------------------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="quickstart_output",
                    help="output folder for models and plots (default ./quickstart_output)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    ap.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    args = ap.parse_args(argv)
    cfg = QUICK if args.quick else FULL

    print(f"bpt {bpt.__version__} quickstart{' (--quick)' if args.quick else ''}; output "
          f"folder {os.path.abspath(args.out)}")
    bit, bpts, clf, heldout = train(cfg, args.seed)
    paths = save_models(bit, bpts, clf, os.path.join(args.out, "models"))
    check = ds.make_process_sample("background", 1000, random_state=99).X
    bit, bpts, clf = load_models(paths, check, (bit, bpts, clf))
    model = build_model(bit, bpts, clf, cfg, args.seed)
    model = save_whole_model(model, os.path.join(args.out, "models"), check)
    data = datasets_to_fit(cfg, args.seed)
    results = fit_all(model, data, cfg)
    scan_out = scans(model, data, results, cfg)
    make_plots(args.out, bit, bpts, heldout, scan_out, args.seed, cfg)
    header(f"Done in {time.perf_counter() - T0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
