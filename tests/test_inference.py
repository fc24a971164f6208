"""Tests of bpt.inference against an analytic setup whose exact likelihood is known.

Setup (one feature carries the physics, a second is noise):
  * signal "sig": x1 ~ Exp(1), SM yield 300, EFT ratio r(x|theta) = (1 + theta x1 / 2)^2,
    i.e. R_theta = x1, R_theta^2 = x1^2 / 4; shape nuisance S(x|nu) = exp(0.15 nu (x1 - 1));
  * background "bkg": x1 ~ Exp(2), SM yield 300, normalisation (1.2)^nu_norm;
  * x2 ~ U(0, 1) for both; exact SM fractions from the two densities.
"Exact-function" objects with the predict/terms_ interface of BIT/BPT/classifiers return
the analytic coefficients, so the same AdditiveModel is evaluated with exact functions and
with learned BIT / BPT / LogisticRegression.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, stats

from _models import ExactFractions, ExactRatio, ExactShape
from bpt.inference import AdditiveModel, Dataset, Nuisance, Process, RateError

BETA, KAPPA, SIG, BKG = 0.15, 0.2, 300.0, 300.0
N_SIM = 20000
THETA_TRUE = 0.3
CRIT68 = stats.chi2.ppf(0.68, 1)
CRIT1 = 1.0            # the default interval / coverage level: one sigma (issue 13)


# ----------------------------------------------------------------------------- exact functions
class Exact2Ratio:
    """Two POIs: r = (1 + theta1 a1 + theta2 a2)^2 with a1 = x1/2, a2 = x2 - 1/2."""
    terms_ = [(0,), (1,), (0, 0), (0, 1), (1, 1)]
    n_parameters = 2

    def predict(self, X):
        X = np.asarray(X)
        a1, a2 = 0.5 * X[:, 0], X[:, 1] - 0.5
        return np.column_stack([2 * a1, 2 * a2, a1 * a1, 2 * a1 * a2, a2 * a2])


def simulate(n, seed):
    rng = np.random.default_rng(seed)
    xs = np.column_stack([rng.exponential(1.0, n), rng.uniform(size=n)])
    xb = np.column_stack([rng.exponential(0.5, n), rng.uniform(size=n)])
    return xs, np.full(n, SIG / n), xb, np.full(n, BKG / n)


def make_model(sim, ratio, shape, fractions, **kw):
    xs, ws, xb, wb = sim
    return AdditiveModel(
        [Process("sig", xs, ws, ratio=ratio, systematics=[(shape, ["shape"])]),
         Process("bkg", xb, wb, normalization={"norm": KAPPA})],
        pois=["theta"], nuisances=[Nuisance("shape"), Nuisance("norm")], fractions=fractions, **kw)


def numpy_q(theta, nu, X, w, sim, lumi=None):
    """q of docs/math.md section 4 written out for the analytic setup."""
    xs, ws, xb, wb = sim
    x = X[:, 0]
    f = ExactFractions(SIG, BKG).predict_proba(X)
    L = 1.0 if lumi is None else (1 + lumi[1]) ** lumi[0]
    r = L * (f[:, 1] * (1 + theta * x / 2) ** 2 * np.exp(nu[0] * BETA * (x - 1))
             + f[:, 0] * (1 + KAPPA) ** nu[1])
    xsig = xs[:, 0]
    sigma = L * (np.sum(ws * (1 + theta * xsig / 2) ** 2 * np.exp(nu[0] * BETA * (xsig - 1)))
                 + (1 + KAPPA) ** nu[1] * wb.sum())
    w = np.ones(len(x)) if w is None else w
    q = np.sum(w * np.log(r)) - sigma + ws.sum() + wb.sum() - 0.5 * nu[0] ** 2 - 0.5 * nu[1] ** 2
    if lumi is not None:
        q -= 0.5 * lumi[0] ** 2
    return q


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def sim():
    return simulate(N_SIM, seed=1)


@pytest.fixture(scope="module")
def exact(sim):
    return make_model(sim, ExactRatio(), ExactShape(BETA), ExactFractions(SIG, BKG))


@pytest.fixture(scope="module")
def asimov(exact):
    return exact.asimov([THETA_TRUE], [0.0, 0.0])


@pytest.fixture(scope="module")
def learned(sim):
    from sklearn.linear_model import LogisticRegression

    from bpt import BoostedInformationTree, BoostedParametricTree
    xs, ws, xb, wb = sim
    x1 = xs[:, 0]
    y = np.column_stack([ws, ws * x1, ws * x1 ** 2 / 4])      # exact per-event coefficients
    # early stopping off: the point is the agreement of a 40-tree model with the exact one
    # (and the base-point samples below are reweighted copies of the same events)
    bit = BoostedInformationTree(n_parameters=1, n_estimators=40, max_depth=3, learning_rate=0.3,
                                 min_samples_leaf=100, random_state=0,
                                 early_stopping=False).fit(xs, y)
    pts = [0.0, -1.0, 1.0, 2.0]                                 # weight-based variations
    Xn = np.vstack([xs] * len(pts))
    nu = np.repeat(pts, len(xs))[:, None]
    wn = np.concatenate([ws * np.exp(p * BETA * (x1 - 1)) for p in pts])
    bpt = BoostedParametricTree(n_nuisances=1, n_estimators=40, max_depth=3, learning_rate=0.3,
                                min_samples_leaf=100, random_state=0,
                                early_stopping=False).fit(Xn, nu, sample_weight=wn)
    clf = LogisticRegression(C=1e4).fit(np.vstack([xs, xb]),
                                        np.array(["sig"] * len(xs) + ["bkg"] * len(xb)),
                                        sample_weight=np.concatenate([ws, wb]))
    return make_model(sim, bit, bpt, clf)


# ----------------------------------------------------------------------------- q and derivatives
POINTS = [([0.0], [0.0, 0.0]), ([0.2], [0.3, -0.5]), ([-0.4], [1.0, 0.7]), ([1.5], [-2.0, 1.5])]


@pytest.mark.parametrize("theta,nu", POINTS)
def test_q_matches_numpy_formula(exact, sim, asimov, theta, nu):
    X, w = asimov
    assert exact.q(theta, nu, X, w) == pytest.approx(numpy_q(theta[0], nu, X, w, sim),
                                                     rel=1e-10, abs=1e-9)
    Xobs = X[::37]                                    # observed events (unit weights)
    assert exact.q(theta, nu, Xobs) == pytest.approx(numpy_q(theta[0], nu, Xobs, None, sim),
                                                     rel=1e-10, abs=1e-9)


def test_q_zero_at_origin(exact, asimov):
    assert abs(exact.q([0.0], [0.0, 0.0], *asimov)) < 1e-8


@pytest.mark.parametrize("theta,nu", POINTS[1:])
def test_gradient_and_hessian_finite_differences(exact, asimov, theta, nu):
    X, w = asimov
    z = np.array(theta + nu, dtype=float)
    q, G, H = exact.q(theta, nu, X, w, derivatives=2)
    eps = 1e-5
    for k in range(3):
        dz = np.zeros(3)
        dz[k] = eps
        qp, Gp = exact.q(z[:1] + dz[:1], z[1:] + dz[1:], X, w, derivatives=1)
        qm, Gm = exact.q(z[:1] - dz[:1], z[1:] - dz[1:], X, w, derivatives=1)
        assert G[k] == pytest.approx((qp - qm) / (2 * eps), rel=1e-6, abs=1e-6)
        np.testing.assert_allclose(H[k], (Gp - Gm) / (2 * eps), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(H, H.T)


def test_subsampled_steering_hessian(exact, asimov):
    """Large datasets: the optimiser's Hessian may come from every k-th chunk of events;
    value and gradient stay exact and the Hessian is close."""
    data = exact.prepare(*asimov).arrays()
    lik = exact.likelihood_
    z = np.array([0.2, 0.3, -0.5])
    q, G, H, _, _ = lik.evaluate(z, data, 2)
    qs, Gs, Hs, _, _ = lik.evaluate(z, data, 2, hess_sample=5000)
    assert qs == q
    np.testing.assert_array_equal(Gs, G)
    np.testing.assert_allclose(Hs, H, rtol=0.15, atol=0.05 * np.abs(H).max())
    assert not np.array_equal(Hs, H)


class _NoisySubsampleQuadratic:
    """q(z) = -(z - z*)' A (z - z*) / 2 with a condition number of 1e4, whose subsampled
    Hessian (``hess_sample`` given) has sampling noise beyond the weakest curvature, so
    it is not negative definite (as on a large combination: the data and the simulation
    subsampled on different events)."""

    def __init__(self):
        rng = np.random.default_rng(3)
        Q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
        self.A = Q @ np.diag([1e4, 3e3, 1e3, 100.0, 3.0, 1.0]) @ Q.T
        noise = rng.normal(size=(6, 6)) * 0.3
        weakest = Q[:, 5]
        self.noise = (noise + noise.T) / 2 + 5.0 * np.outer(weakest, weakest)
        self.z_star = np.array([0.3, -1.2, 0.5, 2.0, -0.7, 0.1])
        self.n_pois, self.n_par, self.names = 1, 6, (["a"], list("bcdef"))
        self.n_calls = {"exact": 0, "sampled": 0}

    def evaluate(self, z, data, order=0, parallel=True, hess_sample=None):
        d = z - self.z_star
        H = -self.A
        if order >= 2:
            self.n_calls["exact" if hess_sample is None else "sampled"] += 1
            if hess_sample is not None:
                H = H + self.noise
        return -0.5 * d @ self.A @ d, -self.A @ d, H, 0, -1


def test_indefinite_subsampled_hessian_is_redone_from_all_events():
    """A subsampled steering Hessian that is not negative definite is recomputed from all
    events (and later ones of the same fit too): the maximum is the exact one, found in
    as few steps as with exact Hessians."""
    from bpt.inference._fit import maximize
    lik = _NoisySubsampleQuadratic()
    assert np.linalg.eigvalsh(-(lik.noise - lik.A)).min() < 0        # the premise
    found = maximize(lik, (), np.zeros(6), np.ones(6, dtype=bool))
    assert found.success
    np.testing.assert_allclose(found.z, lik.z_star, rtol=0, atol=1e-9)
    assert lik.n_calls["sampled"] == 1 and lik.n_calls["exact"] == 1
    assert found.n_evaluations <= 4


def test_luminosity_and_free_normalisation(sim):
    xs, ws, xb, wb = sim
    m = AdditiveModel(
        [Process("sig", xs, ws, ratio=ExactRatio(), systematics=[(ExactShape(BETA), "shape")]),
         Process("bkg", xb, wb, normalization={"norm": KAPPA})],
        pois=["theta"], nuisances=["shape", "norm", Nuisance("lumi")],
        fractions=ExactFractions(SIG, BKG), luminosity=("lumi", 0.05))
    X, w = m.asimov([0.1], [0.2, -0.3, 0.4])
    for theta, nu in POINTS[1:]:
        ref = numpy_q(theta[0], nu, X, w, sim, lumi=(0.7, 0.05))
        assert m.q(theta, nu + [0.7], X, w) == pytest.approx(ref, rel=1e-10)
    # a free-floating background normalisation is recovered from Asimov data
    free = AdditiveModel([Process("sig", xs, ws, ratio=ExactRatio()),
                          Process("bkg", xb, wb, normalization={"mu": 1.0})],
                         pois=["theta"], nuisances=[Nuisance("mu", constraint=None)],
                         fractions=ExactFractions(SIG, BKG))
    Xa, wa = free.asimov([0.0], [0.5])
    fit = free.fit(Xa, wa)
    assert fit.success
    assert fit.nu[0] == pytest.approx(0.5, abs=0.02)
    assert fit.theta[0] == pytest.approx(0.0, abs=0.02)


def test_ratio_mapped_to_named_poi(sim, asimov):
    """ratio=(model, [POI names]) maps the model's parameters onto the named POIs."""
    xs, ws, xb, wb = sim
    one = make_model(sim, ExactRatio(), ExactShape(BETA), ExactFractions(SIG, BKG))
    two = AdditiveModel(
        [Process("sig", xs, ws, ratio=(ExactRatio(), ["theta"]),
                 systematics=[(ExactShape(BETA), ["shape"])]),
         Process("bkg", xb, wb, normalization={"norm": KAPPA})],
        pois=["other", "theta"], nuisances=["shape", "norm"], fractions=ExactFractions(SIG, BKG))
    X, w = asimov
    assert two.q([0.7, 0.2], [0.1, 0.3], X, w) == pytest.approx(one.q([0.2], [0.1, 0.3], X, w))
    with pytest.raises(ValueError, match="unknown POI 'c9'"):
        AdditiveModel([Process("sig", xs, ws, ratio=(ExactRatio(), ["c9"]))], ["theta"], [])


def test_dataset_cache_and_prepare(sim):
    ratio = ExactRatio()
    m = make_model(sim, ratio, ExactShape(BETA), ExactFractions(SIG, BKG))
    X = sim[0][:500].copy()
    m.q([0.1], [0.0, 0.0], X)
    n = ratio.n_calls
    m.q([0.2], [0.1, 0.0], X)
    m.fit(X)
    assert ratio.n_calls == n                 # coefficients cached for the same array
    X[100, 0] += 1.0                          # in-place edit of a sampled row is noticed
    q1 = m.q([0.2], [0.1, 0.0], X)
    assert ratio.n_calls == n + 1
    ds = m.prepare(X)
    assert isinstance(ds, Dataset) and ds.n_events == 500
    assert m.q([0.2], [0.1, 0.0], ds) == q1
    Xd, wd = ds
    assert wd is None and Xd.shape == (500, 2)
    other = make_model(sim, ExactRatio(), ExactShape(BETA), ExactFractions(SIG, BKG))
    with pytest.raises(ValueError, match="different AdditiveModel"):
        other.q([0.2], [0.1, 0.0], ds)


# ----------------------------------------------------------------------------- fits and scans
def test_fit_and_profile(exact, asimov):
    fit = exact.fit(*asimov)
    assert fit.success
    # Asimov at the truth: the MLE is the truth up to the finite-simulation mismatch
    # between the analytic fractions and the simulated sample (~0.03 sigma here)
    assert fit.theta[0] == pytest.approx(THETA_TRUE, abs=0.1 * fit.errors[0])
    np.testing.assert_allclose(fit.nu, 0.0, atol=0.1)
    assert fit.q >= exact.q(fit.theta, fit.nu, *asimov) - 1e-9
    np.testing.assert_allclose(fit.covariance, np.linalg.inv(-fit.hessian))
    prof = exact.profile([0.1], *asimov)
    assert prof.success and prof.q < fit.q
    # nu is a maximum at fixed theta: gradient in nu vanishes
    _, G = exact.q([0.1], prof.nu, *asimov, derivatives=1)
    np.testing.assert_allclose(G[1:], 0.0, atol=1e-3)


def test_fit_falls_back_when_scipys_trust_exact_leaves_its_step_unset(sim, exact, asimov,
                                                                    monkeypatch):
    # scipy's exact trust-region subproblem can end without a step (UnboundLocalError in
    # its solve, seen with nearly singular Hessians): the fit continues with trust-ncg
    # and finds the same maximum
    from scipy import optimize

    import bpt.inference._fit as fit_module
    ref = exact.fit(*asimov)
    calls = []
    real = optimize.minimize

    def flaky(*args, method=None, **kw):
        calls.append(method)
        if method == "trust-exact":
            raise UnboundLocalError("cannot access local variable 'p'")
        return real(*args, method=method, **kw)

    monkeypatch.setattr(fit_module.optimize, "minimize", flaky)
    fresh = make_model(sim, ExactRatio(), ExactShape(BETA), ExactFractions(SIG, BKG))
    fit = fresh.fit(*asimov, starts=[[0.8, 0.6, -0.6]])
    assert "trust-exact" in calls and "trust-ncg" in calls
    assert fit.success
    np.testing.assert_allclose(fit.theta[0], ref.theta[0], atol=1e-4)
    assert fit.q == pytest.approx(ref.q, abs=1e-6)


def test_scan_matches_profiles_and_interval(exact, asimov):
    fit = exact.fit(*asimov)
    thetas = np.linspace(0.0, 0.6, 13)
    res = exact.scan(thetas, *asimov, return_result=True)
    assert res.success.all() and np.all(res.t > -1e-6)
    for k in (0, 5, 12):
        prof = exact.profile([thetas[k]], *asimov)
        assert res.t[k] == pytest.approx(-2 * (prof.q - fit.q), abs=1e-5)
        np.testing.assert_allclose(res.nu[k], prof.nu, atol=2e-3)
    lo, hi = exact.interval(*asimov)
    assert lo < fit.theta[0] < hi
    t_ends = exact.scan([lo, hi], *asimov)
    np.testing.assert_allclose(t_ends, CRIT1, atol=1e-5)
    # the MLE of the same data is reused, not refitted
    fit2 = exact.fit(*asimov)
    assert exact.scan(thetas[:2], *asimov, return_result=True).fit is fit2
    X, w = asimov
    assert exact.scan(thetas[:2], X, w * 1.01, return_result=True).fit is not fit2
    # the parallel (2-chunk) scan gives the same curve
    import joblib
    with joblib.parallel_config(backend="threading"):
        t2 = exact.scan(thetas, *asimov, n_jobs=2)
    np.testing.assert_allclose(t2, res.t, atol=1e-5)


def test_learned_model_agrees_with_exact(exact, learned, asimov):
    """Learned BIT + BPT + classifier vs exact functions on the same Asimov data.

    Stated tolerance: MLE and both 68% endpoints agree within 10% of the exact
    interval's half-width (observed: ~2%)."""
    X, w = asimov
    fe, fl = exact.fit(X, w), learned.fit(X, w)
    lo_e, hi_e = exact.interval(X, w)
    lo_l, hi_l = learned.interval(X, w)
    half = 0.5 * (hi_e - lo_e)
    assert abs(fl.theta[0] - fe.theta[0]) < 0.1 * half
    assert abs(lo_l - lo_e) < 0.1 * half
    assert abs(hi_l - hi_e) < 0.1 * half
    thetas = np.linspace(lo_e - half, hi_e + half, 9)
    np.testing.assert_allclose(learned.scan(thetas, X, w), exact.scan(thetas, X, w),
                               atol=0.15, rtol=0.1)


def test_unbinned_narrower_than_binned(exact, sim, asimov):
    """Same Asimov data: the unbinned 68% interval is narrower than a 10-bin histogram
    fit (Poisson binned likelihood, same nuisances and constraints)."""
    xs, ws, xb, wb = sim
    edges = np.quantile(np.concatenate([xs[:, 0], xb[:, 0]]), np.linspace(0, 1, 11))
    edges[-1] = np.inf
    bs = np.digitize(xs[:, 0], edges[1:-1])
    bb = np.digitize(xb[:, 0], edges[1:-1])
    b_yield = np.bincount(bb, weights=wb, minlength=10)

    def mu(theta, nu):
        s = ws * (1 + theta * xs[:, 0] / 2) ** 2 * np.exp(nu[0] * BETA * (xs[:, 0] - 1))
        return np.bincount(bs, weights=s, minlength=10) + (1 + KAPPA) ** nu[1] * b_yield

    n_obs = mu(THETA_TRUE, [0.0, 0.0])
    mu0 = mu(0.0, [0.0, 0.0])

    def qb(theta, nu):
        m = mu(theta, nu)
        return np.sum(n_obs * np.log(m / mu0) - m + mu0) - 0.5 * np.sum(np.square(nu))

    def prof(theta):
        r = optimize.minimize(lambda v: -qb(theta, v), np.zeros(2), method="Nelder-Mead",
                              options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 4000})
        return -r.fun

    best = optimize.minimize_scalar(lambda t: -prof(t), bounds=(0.0, 0.6), method="bounded",
                                    options={"xatol": 1e-7})
    q_max, t_hat = -best.fun, best.x

    def tb(theta):
        return -2 * (prof(theta) - q_max) - CRIT68

    lo_b = optimize.brentq(tb, t_hat - 0.5, t_hat, xtol=1e-6)
    hi_b = optimize.brentq(tb, t_hat, t_hat + 0.5, xtol=1e-6)
    lo_u, hi_u = exact.interval(*asimov, cl=0.68)
    assert hi_u - lo_u < hi_b - lo_b
    assert lo_b < THETA_TRUE < hi_b


def test_two_poi_contour_scan(sim):
    xs, ws, xb, wb = sim
    m = AdditiveModel([Process("sig", xs, ws, ratio=Exact2Ratio(),
                               systematics=[(ExactShape(BETA), ["shape"])]),
                       Process("bkg", xb, wb, normalization={"norm": KAPPA})],
                      pois=["c1", "c2"], nuisances=["shape", "norm"],
                      fractions=ExactFractions(SIG, BKG))
    X, w = m.asimov([0.2, -0.3], [0.0, 0.0])
    fit = m.fit(X, w)
    assert fit.success
    g1 = fit.theta[0] + np.linspace(-3, 3, 7) * fit.errors[0]
    g2 = fit.theta[1] + np.linspace(-3, 3, 7) * fit.errors[1]
    grid = np.array(np.meshgrid(g1, g2, indexing="ij")).reshape(2, -1).T
    t = m.scan(grid, X, w).reshape(7, 7)
    assert np.all(t > -1e-6)
    assert t[3, 3] == pytest.approx(0.0, abs=1e-6)
    assert t[0, 3] > 2.3 and t[6, 3] > 2.3                 # outside the 68% contour
    # one POI scanned with the other profiled: the same as interval()
    lo, hi = m.interval(X, w, poi="c2")
    np.testing.assert_allclose(m.scan([lo, hi], X, w, poi="c2"), CRIT1, atol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        m.scan(g1, X, w)                                   # needs (M, 2)


# ----------------------------------------------------------------------------- toys
def test_asimov_and_toys(exact):
    Xa, wa = exact.asimov([THETA_TRUE], [0.5, -0.2])
    assert Xa.shape == (2 * N_SIM, 2)
    sigma = wa.sum()
    toys = exact.toys([THETA_TRUE], [0.5, -0.2], 200, random_state=3)
    assert len(toys) == 200
    totals = np.array([t.weight.sum() for t in toys])
    assert abs(totals.mean() - sigma) < 4 * np.sqrt(sigma / 200)
    assert totals.var() == pytest.approx(sigma, rel=0.3)       # Poisson total
    again = exact.toys([THETA_TRUE], [0.5, -0.2], 3, random_state=3)
    np.testing.assert_array_equal(again[1].X, toys[1].X)
    X, w = toys[0]
    assert X.shape[0] == w.shape[0] and np.all(w >= 1)
    # auxiliary measurements of the Gaussian constraints are drawn from N(nu, 1)
    aux = np.array([t.global_observables for t in toys])
    np.testing.assert_allclose(aux.mean(axis=0), [0.5, -0.2], atol=0.25)
    np.testing.assert_allclose(aux.std(axis=0), 1.0, atol=0.15)
    fit = exact.fit(toys[0])
    assert exact.fit(exact.prepare(X, w, global_observables=aux[0])).q == pytest.approx(fit.q)


def test_asimov_of_a_shared_sample_is_exact():
    """Processes simulated on one shared sample (x1 ~ Exp(1)) with their own weights
    (signal SIG / n, background 2 BKG exp(-x1) / n: the same densities as the analytic
    setup) and the exact fractions: the Asimov data are exactly the model's expectation,
    so q's gradient vanishes at the truth and the MLE is the truth to the optimiser's
    tolerance -- a check of the likelihood's consistency without the finite-simulation
    mismatch of processes simulated on separate events (see docs/inference.md)."""
    n = 20000
    rng = np.random.default_rng(7)
    X = np.column_stack([rng.exponential(1.0, n), rng.uniform(size=n)])
    w_sig, w_bkg = np.full(n, SIG / n), 2.0 * BKG * np.exp(-X[:, 0]) / n
    model = make_model((X, w_sig, X, w_bkg), ExactRatio(), ExactShape(BETA),
                       ExactFractions(SIG, BKG))
    truth = np.array([THETA_TRUE, 0.5, -0.4])
    ds = model.asimov(truth[:1], truth[1:], return_dataset=True)
    _, G = model.q(truth[:1], truth[1:], ds, derivatives=1)
    np.testing.assert_allclose(G, 0.0, atol=1e-9 * (SIG + BKG))
    fit = model.fit(ds)
    assert fit.success
    np.testing.assert_allclose(fit.z, truth, rtol=0, atol=1e-3 * fit.errors.min())
    # the same processes on separate events: the MLE is off (here by 1.5-3% of an error,
    # the simulation being 30x the data; the other tests' tolerances allow for it)
    sep = make_model(simulate(n, seed=7), ExactRatio(), ExactShape(BETA),
                     ExactFractions(SIG, BKG))
    off = sep.fit(sep.asimov(truth[:1], truth[1:], return_dataset=True))
    assert np.max(np.abs(off.z - truth) / off.errors) > 100 * np.max(np.abs(fit.z - truth)
                                                                      / fit.errors)


def test_asimov_dataset_with_global_observables(exact):
    ds = exact.asimov([THETA_TRUE], [0.5, -0.4], return_dataset=True)
    np.testing.assert_array_equal(ds.global_observables, [0.5, -0.4])
    fit = exact.fit(ds)
    assert fit.theta[0] == pytest.approx(THETA_TRUE, abs=0.1 * fit.errors[0])
    np.testing.assert_allclose(fit.nu, [0.5, -0.4], atol=0.1)
    # the constraint term is -(nu - a)^2 / 2 relative to nu = 0
    X, w = ds
    d = exact.q([0.1], [0.3, 0.2], ds) - exact.q([0.1], [0.3, 0.2], X, w)
    assert d == pytest.approx(0.5 * 0.3 + (-0.4) * 0.2)


def test_toys_negative_weights(sim):
    xs, ws, xb, wb = sim
    wb = wb.copy()
    wb[:100] *= -1
    m = make_model((xs, ws, xb, wb), ExactRatio(), ExactShape(BETA), ExactFractions(SIG, BKG))
    with pytest.raises(ValueError, match="100 simulated event.*negative expected weight"):
        m.toys([0.0], [0.0, 0.0], 2, random_state=0)
    toys = m.toys([0.0], [0.0, 0.0], 2, random_state=0, negative_weights="signed")
    assert np.any(toys[0].weight < 0)


def test_coverage_runs(exact):
    res = exact.coverage([THETA_TRUE], [0.0, 0.0], 40, random_state=1)
    assert res.n_toys == 40 and res.t.shape == (40,) and res.success.all()
    assert 0.3 < res.coverage <= 1.0
    assert res.critical_value == pytest.approx(CRIT1)


@pytest.mark.slow
def test_coverage_68(exact):
    """300 toys: coverage of the 68% Wilks interval is 68% +- 5%."""
    res = exact.coverage([THETA_TRUE], [0.0, 0.0], 300, cl=0.68, poi=0, random_state=2024)
    assert abs(res.coverage - 0.68) < 0.05, res


# ----------------------------------------------------------------------------- bad input
def test_bad_points(exact, asimov):
    with pytest.raises(ValueError, match="theta must have length 1"):
        exact.q([0.1, 0.2], [0.0, 0.0], *asimov)
    with pytest.raises(ValueError, match="nu must have length 2"):
        exact.q([0.1], [0.0], *asimov)
    with pytest.raises(ValueError, match="derivatives"):
        exact.q([0.1], [0.0, 0.0], *asimov, derivatives=3)


def test_nonpositive_rate_raises(sim):
    class NegativeRatio(ExactRatio):
        def predict(self, X):              # r = 1 + theta x1: negative for theta < -1/x1
            x = np.asarray(X)[:, 0]
            return np.column_stack([x, np.zeros_like(x)])

    m = make_model(sim, NegativeRatio(), ExactShape(BETA), ExactFractions(SIG, BKG))
    X = sim[0][:1000]
    n_bad = None
    with pytest.raises(RateError, match=r"event\(s\) have a predicted rate <= 0") as err:
        m.q([-2.0], [0.0, 0.0], X)
    msg = str(err.value)
    assert "theta=[-2.0]" in msg and "nu=[0.0, 0.0]" in msg
    r = 1 + (-2.0) * X[:, 0]
    f = ExactFractions(SIG, BKG).predict_proba(X)
    n_bad = int(np.sum(f[:, 1] * r + f[:, 0] <= 0))
    assert msg.startswith(f"{n_bad} of 1000 event(s)")
    assert isinstance(err.value, ValueError)


def test_bad_models(sim):
    xs, ws, xb, wb = sim
    sig = Process("sig", xs, ws, ratio=ExactRatio(), systematics=[(ExactShape(BETA), ["shape"])])
    bkg = Process("bkg", xb, wb)

    class WrongClasses(ExactFractions):
        classes_ = np.array(["bkg", "signal"])

    with pytest.raises(ValueError, match="classes_.*do not match"):
        AdditiveModel([sig, bkg], ["theta"], ["shape"], fractions=WrongClasses(SIG, BKG))
    with pytest.raises(ValueError, match="classifier `fractions`.*is required"):
        AdditiveModel([sig, bkg], ["theta"], ["shape"])
    with pytest.raises(ValueError, match="unknown nuisance 'jes'"):
        AdditiveModel([Process("sig", xs, ws, systematics=[(ExactShape(BETA), ["jes"])]), bkg],
                      ["theta"], ["shape"], fractions=ExactFractions(SIG, BKG))
    with pytest.raises(ValueError, match="1 nuisance parameter.*2 name"):
        AdditiveModel([Process("sig", xs, ws, systematics=[(ExactShape(BETA), ["shape", "b"])]),
                       bkg], ["theta"], ["shape", "b"], fractions=ExactFractions(SIG, BKG))
    with pytest.raises(ValueError, match="not used by any process"):
        AdditiveModel([sig, bkg], ["theta"], ["shape", "unused"],
                      fractions=ExactFractions(SIG, BKG))
    with pytest.raises(ValueError, match="unknown nuisance 'x'"):
        AdditiveModel([sig, Process("bkg", xb, wb, normalization={"x": 0.1})], ["theta"],
                      ["shape"], fractions=ExactFractions(SIG, BKG))
    with pytest.raises(ValueError, match="kappa.*> -1"):
        AdditiveModel([sig, Process("bkg", xb, wb, normalization={"shape": -1.0})], ["theta"],
                      ["shape"], fractions=ExactFractions(SIG, BKG))
    with pytest.raises(ValueError, match="not fitted"):
        from bpt import BoostedParametricTree
        AdditiveModel([Process("sig", xs, ws, systematics=[(BoostedParametricTree(), ["shape"])]),
                       bkg], ["theta"], ["shape"], fractions=ExactFractions(SIG, BKG))
    with pytest.raises(ValueError, match="2 parameters but the model has 1 POIs"):
        AdditiveModel([Process("sig", xs, ws, ratio=Exact2Ratio()), bkg], ["theta"], [],
                      fractions=ExactFractions(SIG, BKG))
    with pytest.raises(ValueError, match="constraint"):
        Nuisance("a", constraint="flat")
    with pytest.raises(ValueError, match="unique"):
        AdditiveModel([sig, Process("sig", xb, wb)], ["theta"], ["shape"],
                      fractions=ExactFractions(SIG, BKG))
    m = AdditiveModel([sig, bkg], ["theta"], ["shape"], fractions=ExactFractions(SIG, BKG))
    with pytest.raises(ValueError, match="features"):
        m.q([0.0], [0.0], np.zeros((5, 3)))
    with pytest.raises(ValueError, match="n_toys"):
        m.toys([0.0], [0.0], 0)


def test_finite_far_from_the_simulation(learned, sim):
    """Events in sparsely populated or empty regions (x1 from 12 to 50, x2 outside [0, 1]):
    the learned trees extrapolate their edge leaves, so q, its gradient and the profile
    stay finite."""
    rng = np.random.default_rng(7)
    X = np.column_stack([rng.uniform(12.0, 50.0, 200), rng.uniform(-3.0, 4.0, 200)])
    assert X[:, 0].min() > sim[0][:, 0].max()              # beyond every simulated event
    for theta, nu in [([0.0], [0.0, 0.0]), ([0.3], [0.5, -0.5]), ([-0.2], [-1.0, 1.0])]:
        q, grad = learned.q(theta, nu, X, derivatives=1)[:2]
        assert np.isfinite(q) and np.all(np.isfinite(grad))
    prof = learned.profile([0.2], X)
    assert np.isfinite(prof.q) and np.all(np.isfinite(prof.nu))
