"""Intervals that tell the truth (issue 13): the global maximum, loud overflow, one
interval convention, the contour's best-fit marker.

The bimodal model reproduces the kind of model of the issue: an exponential signal with a
linear + quadratic ratio, a shape systematic on the background, a free background
normalisation and a luminosity, ~480 events.  All pieces are analytic.
"""

import warnings

import numpy as np
import pytest
from scipy import stats

from bpt.inference import AdditiveModel, Nuisance, Process, RateError
from bpt.inference._fit import maximize

S_YIELD, B_YIELD = 100.0, 360.0


class QuadRatio:
    """R(x|theta) = 1 + theta 0.3 ((x-1)^2 - 1) + theta^2 (x-1)^2: mostly quadratic."""
    terms_ = [(0,), (0, 0)]
    n_parameters = 1

    def predict(self, X):
        u = (X[:, 0] - 1.0) ** 2
        return np.column_stack([0.3 * (u - 1.0), u])


class Shape:
    terms_ = [(0,)]
    n_nuisances = 1

    def predict(self, X):
        return 0.15 * (X[:, 0] - 2.0)[:, None]


class Fractions:
    """The exact SM fractions of an exp(1) signal and an exp(1/2) background."""
    classes_ = np.array(["signal", "background"])

    def predict_proba(self, X):
        x = X[:, 0]
        ps = S_YIELD * np.exp(-x)
        pb = B_YIELD * 0.5 * np.exp(-x / 2)
        return np.column_stack([ps, pb]) / (ps + pb)[:, None]


def bimodal_model(n_sim=4000, seed=0, weight_scale=1.0):
    rng = np.random.default_rng(seed)
    xs = rng.exponential(1.0, (n_sim, 1))
    xb = rng.exponential(2.0, (n_sim, 1))
    return AdditiveModel(
        [Process("signal", xs, np.full(n_sim, weight_scale * S_YIELD / n_sim), ratio=QuadRatio()),
         Process("background", xb, np.full(n_sim, weight_scale * B_YIELD / n_sim),
                 systematics=[(Shape(), ["shape"])], normalization={"bkg_norm": 1.0})],
        ["theta"], [Nuisance("shape"), Nuisance("bkg_norm", constraint=None), Nuisance("lumi")],
        fractions=Fractions(), luminosity=("lumi", 0.025))


@pytest.fixture(scope="module")
def bimodal():
    model = bimodal_model()
    # toy 47 of this seed: a fit from the origin stops at the local maximum
    data = model.toys([0.3], [0.0, 0.0, 0.0], 48, random_state=1)[47]
    return model, data


def test_bimodal_dataset_fit_reports_the_global_maximum(bimodal):
    model, data = bimodal
    lik = model.likelihood_
    local = maximize(lik, model._data(data), np.zeros(lik.n_par), np.ones(lik.n_par, bool))
    fit = model.fit(data)
    # the single fit from (0, 0) of the old code: a converged local maximum
    assert local.success and local.z[0] > 0.0
    assert fit.success and fit.theta[0] < -0.3
    assert fit.q > local.q + 0.03
    # truth: no point of a dense profiled scan beats the reported maximum
    grid = np.linspace(-1.0, 0.6, 41)
    t = model.scan(grid, data)
    assert np.all(t > -1e-6)
    assert abs(grid[np.argmin(t)] - fit.theta[0]) <= 0.04
    # and the scan found the two modes: a second local minimum of t near the old fit
    near_local = np.abs(grid - local.z[0]) < 0.1
    assert t[near_local].min() == pytest.approx(-2 * (local.q - fit.q), abs=0.01)


def test_bimodal_interval_is_around_the_global_maximum(bimodal):
    model, data = bimodal
    fit = model.fit(data)
    lo, hi = model.interval(data)
    assert lo < fit.theta[0] < hi
    np.testing.assert_allclose(model.scan([lo, hi], data), 1.0, atol=1e-5)
    # the old single-start fit remembered by mistake: interval() finds the better point
    # while profiling and refits from there
    lik = model.likelihood_
    data_t = model._data(data)
    local = maximize(lik, data_t, np.zeros(lik.n_par), np.ones(lik.n_par, bool),
                     exact_hessian=True)
    from bpt.inference._dataset import data_key
    from bpt.inference._fit import fit_result
    model._last_fit = (data_key(data_t), data_t[0], fit_result(local, 1))
    lo2, hi2 = model.interval(data)
    np.testing.assert_allclose([lo2, hi2], [lo, hi], atol=1e-5)
    assert model._last_fit[2].q == pytest.approx(fit.q, abs=1e-6)


def test_scan_and_profile_replace_a_local_maximum(bimodal):
    model, data = bimodal
    fit = model.fit(data)
    lik = model.likelihood_
    data_t = model._data(data)
    local = maximize(lik, data_t, np.zeros(lik.n_par), np.ones(lik.n_par, bool),
                     exact_hessian=True)
    from bpt.inference._dataset import data_key
    from bpt.inference._fit import fit_result
    model._last_fit = (data_key(data_t), data_t[0], fit_result(local, 1))
    res = model.scan(np.linspace(-0.8, 0.4, 7), data, return_result=True)
    assert res.fit.q == pytest.approx(fit.q, abs=1e-6) and np.all(res.t > -1e-6)
    model._last_fit = (data_key(data_t), data_t[0], fit_result(local, 1))
    model.profile(fit.theta, data, nu_start=fit.nu)
    assert model._last_fit[2].q == pytest.approx(fit.q, abs=1e-6)


def test_non_convex_profile_warns_with_every_piece(bimodal):
    model, data = bimodal
    fit = model.fit(data)
    lik = model.likelihood_
    data_t = model._data(data)
    local = maximize(lik, data_t, np.zeros(lik.n_par), np.ones(lik.n_par, bool))
    t_local = -2.0 * (local.q - fit.q)
    # a threshold between the local maximum's t and the barrier between the two modes
    barrier = model.scan(np.linspace(-0.2, local.z[0], 15), data).max()
    crit = 0.5 * (t_local + barrier)
    with pytest.warns(RuntimeWarning, match="not convex") as rec:
        lo, hi = model.interval(data, cl=stats.chi2.cdf(crit, 1))
    assert lo < fit.theta[0] < hi < local.z[0]
    msg = str(rec[0].message)
    assert msg.count("(") >= 3                      # the list holds two pieces
    # without the second mode inside the region: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        model.interval(data)


def test_interval_convention_is_one_sigma(bimodal):
    model, data = bimodal
    from bpt.inference._interval import ONE_SIGMA_CL, critical_value
    assert ONE_SIGMA_CL == pytest.approx(stats.chi2.cdf(1.0, 1), abs=1e-15)
    assert critical_value(ONE_SIGMA_CL, 1) == 1.0
    assert critical_value(0.68, 1) == pytest.approx(0.98895, abs=1e-5)
    assert critical_value(ONE_SIGMA_CL, 2) == pytest.approx(2.2957, abs=1e-4)
    lo, hi = model.interval(data)
    lo68, hi68 = model.interval(data, cl=0.68)              # still accepted
    assert lo < lo68 and hi68 < hi
    for bad in (True, 1.0, 0, "0.68"):
        with pytest.raises(ValueError, match="cl"):
            model.interval(data, cl=bad)


# ---------------------------------------------------------------- overflow, bad input
def test_overflowing_weights_are_refused():
    with pytest.raises(ValueError, match="Process 'signal': the sum of |weight|"):
        bimodal_model(weight_scale=1e306)
    model = bimodal_model(n_sim=500)
    X, w = model.asimov([0.1], [0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match=r"sum of \|weight\| is 1e\+303"):
        model.fit(X, np.full(w.shape[0], 1e300))
    with pytest.raises(ValueError, match="weight"):
        model.fit(X, weight=1e300)
    with pytest.raises(ValueError, match="weight"):
        model.q([0.0], None, X, np.full(w.shape[0], np.inf))


def test_absurd_parameters_name_the_value():
    model = bimodal_model(n_sim=500)
    X, w = model.asimov([0.1], [0.0, 0.0, 0.0])
    with pytest.raises(RateError, match=r"theta=\[1e\+200\]"):
        model.q([1e200], [0.0, 0.0, 0.0], X, w)
    with pytest.raises(RateError, match=r"nu=\[1e\+200"):
        model.q([0.0], [1e200, 0.0, 0.0], X, w)
    with pytest.raises(RateError, match="not finite"):
        model.profile([0.0], X, w, nu_start=[0.0, 1e5, 0.0])


def test_booleans_are_not_indices():
    model = bimodal_model(n_sim=300)
    X, w = model.asimov([0.1], [0.0, 0.0, 0.0])
    for bad in (True, False, np.bool_(True)):
        with pytest.raises(ValueError, match="poi must be"):
            model.scan([0.1], X, w, poi=bad)
        with pytest.raises(ValueError, match="poi must be"):
            model.interval(X, w, poi=bad)
    with pytest.raises(ValueError, match="n_toys"):
        model.toys([0.0], None, True)


def test_predict_ratio_overflow_is_a_clear_error():
    from bpt import BoostedInformationTree, BoostedParametricTree
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(400, 1))
    y = np.column_stack([np.ones(400), X[:, 0], X[:, 0] ** 2])
    bit = BoostedInformationTree(n_parameters=1, n_estimators=2).fit(X, y)
    assert np.all(np.isfinite(bit.predict_ratio(X, [1.0])))
    with pytest.raises(ValueError, match=r"theta = \[1e\+200\]"):
        bit.predict_ratio(X, [1e200])
    nu = np.repeat([[0.0], [1.0], [-1.0]], 200, axis=0)
    Xb = rng.normal(size=(600, 1)) + 0.2 * nu
    bpt_ = BoostedParametricTree(n_nuisances=1, n_estimators=2).fit(Xb, nu)
    with pytest.raises(ValueError, match=r"nu = \[1e\+200\]"):
        bpt_.predict_ratio(Xb, [1e200])
    with pytest.raises(ValueError, match="nu = "):
        bpt_.predict_ratio(Xb, [1e6])


# ---------------------------------------------------------------- coverage without clamps
def test_coverage_has_no_negative_t_and_uses_the_default_level():
    model = bimodal_model(n_sim=1000)
    res = model.coverage([0.3], [0.0, 0.0, 0.0], 12, random_state=3)
    assert res.critical_value == 1.0
    assert np.all(res.t >= 0.0) and res.success.all()


# ---------------------------------------------------------------- contour marker
def test_contour_marks_the_fit_not_a_grid_point(tmp_path):
    pytest.importorskip("matplotlib")
    from bpt import plotting as bp
    if bp.offscreen_pyplot() is not None:
        th1 = np.linspace(-1.0, 1.0, 11)
        th2 = np.linspace(-2.0, 2.0, 9)
        a, b = np.meshgrid(th1, th2, indexing="ij")
        best = np.array([0.137, -0.262])             # between grid points
        cov_inv = np.linalg.inv(np.array([[0.09, 0.05], [0.05, 0.25]]))
        d = np.stack([a - best[0], b - best[1]], axis=-1)
        t = np.einsum("...i,ij,...j->...", d, cov_inv, d)
        ax = bp.plot_contour(th1, th2, t)
        line = [ln for ln in ax.get_lines() if ln.get_label().startswith("best fit")][0]
        np.testing.assert_allclose([line.get_xdata()[0], line.get_ydata()[0]], best, atol=1e-9)
        ax = bp.plot_contour(th1, th2, t, best_fit=(0.1, -0.25))
        line = [ln for ln in ax.get_lines() if ln.get_label().startswith("best fit")][0]
        assert line.get_label() == "best fit (0.1, -0.25)"
        with pytest.raises(ValueError, match="best_fit"):
            bp.plot_contour(th1, th2, t, best_fit=(0.1, np.nan))
