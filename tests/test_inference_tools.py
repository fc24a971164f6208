"""Minuit, impacts, goodness of fit and pyhf export (issue 14, items 3, 4, 5, 7).

Analytic setup (as in test_inference.py, smaller): signal x ~ Exp(1), SM yield 400, EFT
ratio (1 + theta x / 2)^2, shape nuisance S = exp(BETA nu (x - 1)); background x ~ Exp(2),
yield 400, normalisation (1 + KAPPA)^nu_norm; exact SM fractions.  The exact q is written
out in numpy (``numpy_q``) so that fits with one parameter fixed can be checked with an
independent optimiser.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from scipy import optimize, stats

from _models import ExactFractions, ExactRatio, ExactShape
from bpt.inference import (PYHF_MODIFIER_SETTINGS, AdditiveModel, GoodnessOfFitResult,
                           ImpactsResult, Nuisance, Process, saturated_gof, to_pyhf_workspace)

BETA, KAPPA, SIG, BKG = 0.3, 0.2, 400.0, 400.0
N_SIM = 4000
THETA_TRUE = 0.3


def simulate(n, seed):
    rng = np.random.default_rng(seed)
    xs = rng.exponential(1.0, (n, 1))
    xb = rng.exponential(0.5, (n, 1))
    return xs, np.full(n, SIG / n), xb, np.full(n, BKG / n)


def make_model(sim, norm_constraint="gaussian"):
    xs, ws, xb, wb = sim
    return AdditiveModel(
        [Process("sig", xs, ws, ratio=ExactRatio(), systematics=[(ExactShape(BETA), ["shape"])]),
         Process("bkg", xb, wb, normalization={"norm": KAPPA})],
        pois=["theta"], nuisances=[Nuisance("shape"), Nuisance("norm", norm_constraint)],
        fractions=ExactFractions(SIG, BKG))


def numpy_q(z, x, sim, aux=(0.0, 0.0), norm_constrained=True):
    """q of docs/math.md section 4 for the setup, unit-weight events x."""
    theta, nu_s, nu_b = z
    xs, ws, xb, wb = sim
    f = ExactFractions(SIG, BKG).predict_proba(x[:, None])
    r = (f[:, 1] * (1 + theta * x / 2) ** 2 * np.exp(nu_s * BETA * (x - 1))
         + f[:, 0] * (1 + KAPPA) ** nu_b)
    x0 = xs[:, 0]
    sigma = (np.sum(ws * (1 + theta * x0 / 2) ** 2 * np.exp(nu_s * BETA * (x0 - 1)))
             + (1 + KAPPA) ** nu_b * wb.sum())
    q = np.sum(np.log(r)) - sigma + ws.sum() + wb.sum() - 0.5 * nu_s ** 2 + aux[0] * nu_s
    if norm_constrained:
        q += -0.5 * nu_b ** 2 + aux[1] * nu_b
    return q


def numpy_fixed_fit(k, value, x, sim, z_start, **kw):
    """Maximise numpy_q with z_k fixed (Nelder-Mead: no derivatives shared with bpt)."""
    free = [i for i in range(3) if i != k]

    def f(y):
        z = np.empty(3)
        z[free] = y
        z[k] = value
        return -numpy_q(z, x, sim, **kw)

    res = optimize.minimize(f, np.asarray(z_start)[free], method="Nelder-Mead",
                            options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 20000})
    z = np.empty(3)
    z[free] = res.x
    z[k] = value
    return z


@pytest.fixture(scope="module")
def sim():
    return simulate(N_SIM, seed=11)


@pytest.fixture(scope="module")
def model(sim):
    return make_model(sim)


@pytest.fixture(scope="module")
def data(sim):
    """Observed events drawn from the true densities (not from the simulation)."""
    rng = np.random.default_rng(5)
    n_s = rng.poisson(SIG * np.mean((1 + THETA_TRUE * sim[0][:, 0] / 2) ** 2))
    # signal at theta_true by accept-reject from Exp(1) with (1 + theta x / 2)^2 / max
    xs = rng.exponential(1.0, 20 * n_s)
    bound = (1 + THETA_TRUE * 10) ** 2                      # the maximum for x < 20
    acc = rng.uniform(size=xs.shape[0]) < (1 + THETA_TRUE * xs / 2) ** 2 / bound
    xs = xs[acc & (xs < 20)][:n_s]
    xb = rng.exponential(0.5, rng.poisson(BKG))
    return np.concatenate([xs, xb])[:, None]


# ----------------------------------------------------------------------------- Minuit
def test_minuit_matches_fit_hesse_minos(model, data, sim):
    fit = model.fit(data)
    m = model.minuit(data)
    assert list(m.parameters) == ["theta", "shape", "norm"]
    assert m.errordef == 0.5
    assert np.all(np.asarray(m.values) == 0.0)
    m.migrad()
    assert m.valid
    np.testing.assert_allclose(np.asarray(m.values), np.r_[fit.theta, fit.nu], atol=1e-4)
    assert abs(-m.fval - fit.q) < 1e-6
    # the cost is -q of the model, which is the hand-written q
    assert abs(-m.fval - numpy_q(np.asarray(m.values), data[:, 0], sim)) < 1e-8
    m.hesse()
    np.testing.assert_allclose(np.asarray(m.errors), fit.errors, rtol=1e-3)
    m.minos("theta")
    me = m.merrors["theta"]
    lo, hi = model.interval(data)
    assert abs(m.values["theta"] + me.lower - lo) < 1e-3
    assert abs(m.values["theta"] + me.upper - hi) < 1e-3
    assert hi - lo > 0.05                                       # not a degenerate interval


def test_minuit_fixed_parameter_and_start(model, data):
    m = model.minuit(data, theta=[0.5], nu=[0.1, -0.1])
    np.testing.assert_array_equal(np.asarray(m.values), [0.5, 0.1, -0.1])
    m.fixed["theta"] = True
    m.migrad()
    prof = model.profile([0.5], data)
    assert abs(-m.fval - prof.q) < 1e-6
    np.testing.assert_allclose(np.asarray(m.values)[1:], prof.nu, atol=1e-4)
    with pytest.raises(ValueError, match="theta must have length 1"):
        model.minuit(data, theta=[0.5, 1.0])


def test_minuit_from_a_non_convex_start(model, data):
    """At (0, -3, 3) the Hessian of -q is not positive definite: Minuit2 then needs G2
    (without it iminuit 2.33 raised TypeError "'NoneType' object is not callable")."""
    q, G, H = model.q([0.0], [-3.0, 3.0], data, derivatives=2)
    assert np.linalg.eigvalsh(-H)[0] < 0
    m = model.minuit(data, theta=[0.0], nu=[-3.0, 3.0])
    m.migrad()
    fit = model.fit(data)
    assert m.valid and abs(-m.fval - fit.q) < 1e-6


def test_minuit_missing_iminuit(model, data, monkeypatch):
    monkeypatch.setitem(sys.modules, "iminuit", None)
    with pytest.raises(ImportError, match=r"bpt\[minuit\]"):
        model.minuit(data)


# ----------------------------------------------------------------------------- impacts
def test_impacts_exact_refits_gaussian_limit_and_ranking(model, data, sim):
    fit = model.fit(data)
    imp = model.impacts(data, poi="theta")
    assert isinstance(imp, ImpactsResult)
    assert imp.poi == "theta" and imp.theta_hat == fit.theta[0]
    assert sorted(imp.names) == ["norm", "shape"] and imp.success.all()
    # ranked by the largest |post-fit impact|
    key = np.maximum(np.abs(imp.impact_up), np.abs(imp.impact_down))
    assert np.all(np.diff(key) <= 0)
    cov = fit.covariance
    z_hat = np.r_[fit.theta, fit.nu]
    for i, name in enumerate(imp.names):
        k = 1 + model.nuisance_names.index(name)
        s = np.sqrt(cov[k, k])
        assert imp.errors[i] == pytest.approx(s, rel=1e-12)
        assert imp.nu_hat[i] == fit.nu[k - 1] and imp.pulls[i] == fit.nu[k - 1]
        # truth: an independent optimiser on the hand-written q with nu_k fixed
        for delta, got in ((s, imp.impact_up[i]), (-s, imp.impact_down[i]),
                           (1.0, imp.prefit_up[i]), (-1.0, imp.prefit_down[i])):
            z = numpy_fixed_fit(k, z_hat[k] + delta, data[:, 0], sim, z_hat)
            assert got == pytest.approx(z[0] - fit.theta[0], abs=2e-5)
        # Gaussian limit: shift = cov[theta, nu] / cov[nu, nu] * delta (signs included)
        lin = cov[0, k] / cov[k, k]
        assert np.sign(imp.impact_up[i]) == np.sign(lin) == -np.sign(imp.impact_down[i])
        # (the likelihood is slightly non-Gaussian: each side to 10%, their symmetric
        # combination, where the quadratic term cancels, to 2% post-fit and 5% pre-fit)
        assert imp.impact_up[i] == pytest.approx(lin * s, rel=0.1)
        assert imp.impact_down[i] == pytest.approx(-lin * s, rel=0.1)
        assert (imp.impact_up[i] - imp.impact_down[i]) / 2 == pytest.approx(lin * s, rel=0.02)
        assert (imp.prefit_up[i] - imp.prefit_down[i]) / 2 == pytest.approx(lin, rel=0.05)
        # constrained by the data: the post-fit error is below the pre-fit 1
        assert s < 1 and abs(imp.impact_up[i]) < abs(imp.prefit_up[i])
    assert "theta" in imp.table() and imp.names[0] in str(imp)


def test_impacts_path_start_is_exact_on_a_cubic_path():
    """The start of a refit of nuisance k: the path z(nu_k) = z_hat + a d + b d^2 + c d^3
    from its exact slope a and the earlier refits -- exact for a path of that degree."""
    from bpt.inference._impacts import _path_start
    rng = np.random.default_rng(0)
    z_hat, a, b, c = rng.normal(size=(4, 5))
    k = 2
    a[k], b[k], c[k] = 1.0, 0.0, 0.0              # nu_k = nu_k^ + d

    def path(d, cubic=True):
        return z_hat + a * d + b * d ** 2 + (c * d ** 3 if cubic else 0.0)

    refits = [(z_hat[k] + d, path(d)) for d in (0.3, -0.2)]
    for d in (1.0, -1.0, 0.05):
        np.testing.assert_allclose(_path_start(z_hat, a, k, z_hat[k] + d, refits), path(d),
                                   rtol=0, atol=1e-12)
        one = [(z_hat[k] + 0.3, path(0.3, cubic=False))]          # quadratic from one refit
        np.testing.assert_allclose(_path_start(z_hat, a, k, z_hat[k] + d, one),
                                   path(d, cubic=False), rtol=0, atol=1e-12)
    assert _path_start(z_hat, a, k, z_hat[k] + 1.0, []) is None
    assert _path_start(z_hat, a, k, z_hat[k] + 6.1, refits) is None   # beyond 20 x 0.3
    assert _path_start(z_hat, a, k, z_hat[k] + 1.0, [refits[0], refits[0]]) is None


def test_impacts_joblib_free_nuisance_and_bad_input(sim, data, caplog):
    import logging

    import joblib
    model = make_model(sim, norm_constraint=None)
    imp1 = model.impacts(data)
    with joblib.parallel_config(backend="threading"), caplog.at_level(logging.INFO, "bpt"):
        imp2 = model.impacts(data, n_jobs=2, verbose=1)
    assert "impacts: 6/6" in caplog.text            # 4 refits (shape) + 2 (free norm)
    assert imp1.names == imp2.names
    np.testing.assert_array_equal(imp1.impact_up, imp2.impact_up)
    np.testing.assert_array_equal(imp1.prefit_down, imp2.prefit_down)
    i = imp1.names.index("norm")
    assert np.isnan(imp1.pulls[i]) and np.isnan(imp1.prefit_up[i]) and not imp1.constrained[i]
    assert np.isfinite(imp1.impact_up[i]) and imp1.constrained[imp1.names.index("shape")]
    fit = model.fit(data)
    z = numpy_fixed_fit(2, fit.nu[1] + imp1.errors[i], data[:, 0], sim,
                        np.r_[fit.theta, fit.nu], norm_constrained=False)
    assert imp1.impact_up[i] == pytest.approx(z[0] - fit.theta[0], abs=2e-5)
    with pytest.raises(ValueError, match="unknown POI"):
        model.impacts(data, poi="cW")
    with pytest.raises(ValueError, match="verbose"):
        model.impacts(data, verbose=-1)


def test_plot_impacts(model, data):
    pytest.importorskip("matplotlib")
    from bpt.plotting import offscreen_pyplot, plot_impacts
    plt = offscreen_pyplot()
    imp = model.impacts(data)
    axes = plot_impacts(imp)
    left, right = axes
    bars = {c.get_label(): c for c in right.containers}
    widths = lambda lab: np.array([p.get_width() for p in bars[lab]])  # noqa: E731
    heights = [p.get_y() + p.get_height() / 2 for p in bars["+1 sigma post-fit"]]
    assert heights[0] > heights[1]                          # rank 0 at the top
    np.testing.assert_allclose(widths("+1 sigma post-fit"), imp.impact_up)
    np.testing.assert_allclose(widths("-1 sigma post-fit"), imp.impact_down)
    np.testing.assert_allclose(widths("+1 sigma pre-fit"), imp.prefit_up)
    assert [t.get_text() for t in left.get_yticklabels()] == imp.names
    axes = plot_impacts(imp, max_nuisances=1, prefit=False)
    assert len(axes[1].containers) == 2 and len(axes[1].containers[0]) == 1
    with pytest.raises(ValueError, match="ImpactsResult"):
        plot_impacts(object())
    with pytest.raises(ValueError, match="max_nuisances"):
        plot_impacts(imp, max_nuisances=0)
    plt.close("all")


# ----------------------------------------------------------------------------- goodness of fit
def test_saturated_gof_is_the_poisson_deviance():
    O = np.array([3.0, 0.0, 12.0, 7.0, 1.0])
    E = np.array([4.2, 0.7, 10.1, 7.5, 2.2])
    res = saturated_gof(O, E, n_free=2)
    dev = 0.0
    for o, e in zip(O, E):          # -2 log [Pois(o|e) / Pois(o|o)]
        dev += -2 * (stats.poisson.logpmf(o, e) - (stats.poisson.logpmf(o, o) if o else 0.0))
    assert isinstance(res, GoodnessOfFitResult) and res.method == "saturated"
    assert res.statistic == pytest.approx(dev, rel=1e-12)
    assert res.ndf == 3 and res.p_value == pytest.approx(stats.chi2.sf(dev, 3), rel=1e-12)
    assert saturated_gof(E, E, 0).statistic == pytest.approx(0.0, abs=1e-12)
    for bad, match in (((O, E[:3], 1), "same length"), ((-O, E, 1), "observed"),
                       ((O, 0 * E, 1), "expected"), ((O, E, 5), "n_free"),
                       ((O, E, -1), "n_free")):
        with pytest.raises(ValueError, match=match):
            saturated_gof(*bad)


def test_unbinned_gof_content_and_mismodelling(model, data, sim):
    res = model.goodness_of_fit(data, n_bins=8, n_toys=100, random_state=1)
    fit = model.fit(data)
    w = model.expected_weights(fit.theta, fit.nu)
    assert res.method == "pearson-quantile" and res.observed.shape == (8,)
    assert res.expected.sum() == pytest.approx(w.sum(), rel=1e-12)
    np.testing.assert_allclose(res.expected, w.sum() / 8, rtol=0.02)     # quantile bins
    assert res.observed.sum() == data.shape[0]
    assert res.statistic == pytest.approx(np.sum((res.observed - res.expected) ** 2
                                                 / res.expected), rel=1e-12)
    assert res.ndf == 8 - 1 and res.toy_statistics.shape == (100,) and res.toy_success.all()
    assert res.p_value == np.mean(res.toy_statistics >= res.statistic)
    assert res.p_value > 0.01
    # a feature as the quantity: the observed counts are the histogram of that feature
    res_x = model.goodness_of_fit(data, n_bins=5, n_toys=0, quantity=0)
    np.testing.assert_array_equal(res_x.observed,
                                  np.histogram(data[:, 0], np.r_[-1, res_x.edges[1:-1], 1e9])[0])
    assert np.isnan(res_x.p_value) and 0 <= res_x.p_value_asymptotic <= 1
    # mismodelled data: the background has a bump at x = 1.5 the model does not know
    rng = np.random.default_rng(2)
    bad = np.concatenate([data, rng.normal(1.5, 0.1, (150, 1))])
    res_bad = model.goodness_of_fit(bad, n_bins=8, n_toys=100, random_state=1)
    assert res_bad.p_value < 0.01 and res_bad.p_value_asymptotic < 1e-4
    for kw, match in (({"n_bins": 1}, "n_bins"), ({"n_toys": -1}, "n_toys"),
                      ({"quantity": "mass"}, "quantity"), ({"quantity": 3}, "quantity"),
                      ({"verbose": "yes"}, "verbose")):
        with pytest.raises(ValueError, match=match):
            model.goodness_of_fit(data, **kw)


def test_unbinned_gof_p_value_uniform_under_the_model(model):
    """Datasets drawn from the model itself: the toy p-values are ~U(0, 1)."""
    toys = model.toys([THETA_TRUE], [0.0, 0.0], 16, random_state=7)
    p = np.array([model.goodness_of_fit(t, n_bins=6, n_toys=30, random_state=i).p_value
                  for i, t in enumerate(toys)])
    # the mean of 16 U(0,1) has sd 0.072; the toy p-values add binomial noise (<= 0.09 each)
    assert abs(p.mean() - 0.5) < 0.2
    assert np.mean(p < 0.05) <= 0.25 and np.mean(p > 0.95) <= 0.25


# ----------------------------------------------------------------------------- pyhf export
class StandInChannel:
    """The duck-typed binned channel of bpt.inference.to_pyhf_workspace, from numbers.

    Yields: nominal (n_proc, B) x prod over modifiers (1 + kappa)^nu x (1 + c theta) for
    processes in ``poi_linear``; ``shape`` = {process: (nuisance, (B,) slope)} adds an
    x-dependent factor exp(nu slope_b); ``poi_shape`` = {process: (B,) slope} a
    bin-dependent 1 + theta slope_b.
    """

    def __init__(self, nominal, modifiers, nuisances, pois=("theta",), poi_linear=None,
                 shape=None, poi_shape=None):
        self.name = "SR"
        self.process_names = ["sig", "bkg"]
        self.nominal = np.asarray(nominal, dtype=float)
        self.edges = np.linspace(0.0, 1.0, self.nominal.shape[1] + 1)
        self.pois = list(pois)
        self.nuisances = nuisances
        self.nuisance_names = [n.name for n in nuisances]
        self.mods = modifiers
        self.poi_linear = poi_linear or {}
        self.shape = shape or {}
        self.poi_shape = poi_shape or {}

    def normalization_modifiers(self):
        return list(self.mods)

    def has_shape_dependence(self):
        return bool(self.shape or self.poi_shape)

    def expected_by_process(self, theta, nu):
        y = self.nominal.copy()
        for p, n, kappa in self.mods:
            y[self.process_names.index(p)] *= (1 + kappa) ** nu[self.nuisance_names.index(n)]
        for p, c in self.poi_linear.items():
            y[self.process_names.index(p)] *= 1 + c * theta[0]
        for p, (n, slope) in self.shape.items():
            y[self.process_names.index(p)] *= np.exp(nu[self.nuisance_names.index(n)] * slope)
        for p, slope in self.poi_shape.items():
            y[self.process_names.index(p)] *= 1 + theta[0] * slope
        return y


NOMINAL = [[5.0, 12.0, 20.0, 9.0], [60.0, 40.0, 25.0, 10.0]]
MODS = [("sig", "mu", 1.0), ("sig", "lumi", 0.025), ("bkg", "lumi", 0.025),
        ("bkg", "bkg_norm", 0.1)]
NUIS = [Nuisance("mu", None), Nuisance("lumi"), Nuisance("bkg_norm")]
COUNTS = np.array([70.0, 61.0, 52.0, 16.0])


def _pyhf_model(spec):
    pyhf = pytest.importorskip("pyhf")
    pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer(tolerance=1e-12))
    ws = pyhf.Workspace(spec)
    return pyhf, ws, ws.model(modifier_settings=PYHF_MODIFIER_SETTINGS)


def _pars(model, values):
    pars = np.array(model.config.suggested_init(), dtype=float)
    for name, v in values.items():
        pars[model.config.par_slice(name)] = v
    return pars


def test_pyhf_export_reproduces_yields_and_best_fit():
    ch = StandInChannel(NOMINAL, MODS, NUIS)
    spec = to_pyhf_workspace(ch, COUNTS)
    import json
    json.dumps(spec)                                            # JSON-serialisable
    assert spec["measurements"][0]["config"]["poi"] == "mu"    # theta is unused here
    pyhf, ws, pm = _pyhf_model(spec)
    # pyhf's expected counts at any point = the channel's (exact exponential normsys)
    for nu in ([0.0, 0.0, 0.0], [0.7, -1.3, 2.1], [-2.0, 0.4, -0.6]):
        pars = _pars(pm, {"mu": 2.0 ** nu[0], "lumi": nu[1], "bkg_norm": nu[2]})
        want = ch.expected_by_process([0.0], np.array(nu)).sum(axis=0)
        np.testing.assert_allclose(pm.expected_actualdata(pars), want, rtol=1e-12)

    # best fit: pyhf against a hand-written Poisson x Gaussian likelihood (scipy)
    def nll(z):
        lam = ch.expected_by_process([0.0], z).sum(axis=0)
        return np.sum(lam - COUNTS * np.log(lam)) + 0.5 * (z[1] ** 2 + z[2] ** 2)

    ref = optimize.minimize(nll, np.zeros(3), method="BFGS", options={"gtol": 1e-10}).x
    best = pyhf.infer.mle.fit(ws.data(pm), pm)
    got = {n: float(best[pm.config.par_slice(n)][0]) for n in ("mu", "lumi", "bkg_norm")}
    assert got["mu"] == pytest.approx(2.0 ** ref[0], abs=5e-5)
    assert got["lumi"] == pytest.approx(ref[1], abs=5e-5)
    assert got["bkg_norm"] == pytest.approx(ref[2], abs=5e-5)
    assert abs(got["mu"] - 1.0) > 0.1                        # the fit moved


def test_pyhf_export_linear_poi_is_a_normfactor():
    ch = StandInChannel(NOMINAL, MODS[1:], NUIS[1:], poi_linear={"sig": 1.0})
    spec = to_pyhf_workspace(ch, COUNTS)
    assert spec["measurements"][0]["config"]["poi"] == "theta"
    _, _, pm = _pyhf_model(spec)
    pars = _pars(pm, {"theta": 1.0 + 0.8, "lumi": 0.3, "bkg_norm": -0.5})
    np.testing.assert_allclose(pm.expected_actualdata(pars),
                               ch.expected_by_process([0.8], np.array([0.3, -0.5])).sum(0),
                               rtol=1e-12)


def test_pyhf_export_refuses_shapes_and_bad_input():
    slope = np.array([0.1, 0.0, -0.1, 0.2])
    with pytest.raises(ValueError, match="process 'bkg' depends on nuisance 'bkg_norm'"):
        to_pyhf_workspace(StandInChannel(NOMINAL, MODS, NUIS, shape={"bkg": ("bkg_norm", slope)}),
                          COUNTS)
    with pytest.raises(ValueError, match="process 'sig' depends on POI 'theta'"):
        to_pyhf_workspace(StandInChannel(NOMINAL, MODS, NUIS, poi_shape={"sig": slope}), COUNTS)
    with pytest.raises(ValueError, match="different factors"):
        to_pyhf_workspace(StandInChannel(NOMINAL, MODS[1:], NUIS[1:],
                                         poi_linear={"sig": 1.0, "bkg": 0.5}), COUNTS)
    mods = MODS + [("bkg", "mu", 0.5)]
    with pytest.raises(ValueError, match="free-floating nuisance 'mu'"):
        to_pyhf_workspace(StandInChannel(NOMINAL, mods, NUIS), COUNTS)
    ch = StandInChannel(NOMINAL, MODS, NUIS)
    with pytest.raises(ValueError, match="data_counts has 3 bins"):
        to_pyhf_workspace(ch, COUNTS[:3])
    with pytest.raises(ValueError, match="data_counts must be >= 0"):
        to_pyhf_workspace(ch, -COUNTS)
    with pytest.raises(ValueError, match="poi 'theta' is not an exported"):
        to_pyhf_workspace(ch, COUNTS, poi="theta")
    spec = to_pyhf_workspace(ch, COUNTS, poi="lumi")
    assert spec["measurements"][0]["config"]["poi"] == "lumi"
    sig = spec["channels"][0]["samples"][0]
    assert {m["name"]: m["type"] for m in sig["modifiers"]} == {"mu": "normfactor",
                                                                "lumi": "normsys"}
    lumi = [m for m in sig["modifiers"] if m["name"] == "lumi"][0]["data"]
    assert lumi["hi"] == pytest.approx(1.025) and lumi["lo"] == pytest.approx(1 / 1.025)


@pytest.mark.slow
def test_unbinned_gof_p_value_uniform_many_datasets(model):
    """100 datasets from the model, 100 toys each: the toy p-values pass a KS test of
    U(0, 1) (about 2 minutes)."""
    toys = model.toys([THETA_TRUE], [0.0, 0.0], 100, random_state=8)
    p = np.array([model.goodness_of_fit(t, n_bins=8, n_toys=100, random_state=100 + i).p_value
                  for i, t in enumerate(toys)])
    assert stats.kstest(p, "uniform").pvalue > 0.01
    assert abs(p.mean() - 0.5) < 0.1


def test_pyhf_export_without_constraint_info_is_all_normsys():
    """A channel without ``nuisances`` objects: every nuisance is Gaussian (normsys)."""
    ch = StandInChannel(NOMINAL, MODS, NUIS)
    del ch.nuisances
    spec = to_pyhf_workspace(ch, COUNTS)
    types = {m["name"]: m["type"] for s in spec["channels"][0]["samples"]
             for m in s["modifiers"]}
    assert types == {"mu": "normsys", "lumi": "normsys", "bkg_norm": "normsys"}
    assert spec["measurements"][0]["config"]["parameters"] == []
    _, _, pm = _pyhf_model(spec)
    pars = _pars(pm, {"mu": 0.6, "lumi": -1.2, "bkg_norm": 0.4})
    np.testing.assert_allclose(pm.expected_actualdata(pars),
                               ch.expected_by_process([0.0], np.array([0.6, -1.2, 0.4])).sum(0),
                               rtol=1e-12)
