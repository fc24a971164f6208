"""bpt.datasets: the toy's closed-form truth checked by Monte Carlo, seeding, speed."""


import numpy as np
import pytest

from bpt import datasets as ds
from bpt._terms import monomials

TERMS = [(0,), (1,), (0, 0), (0, 1), (1, 1)]


def _bin_index(X, nm=6, nc=5):
    """2-d bins in (mass, cos_theta): the features the EFT depends on."""
    m_edges = np.quantile(X[:, 2], np.linspace(0, 1, nm + 1)[1:-1])
    c_edges = np.linspace(-1, 1, nc + 1)[1:-1]
    return np.searchsorted(m_edges, X[:, 2]) * nc + np.searchsorted(c_edges, X[:, 1]), nm * nc


def _weighted_hist_chi2(x_a, w_a, x_b, w_b, edges):
    """chi2 / ndf of two weighted histograms (independent samples)."""
    ha = np.histogram(x_a, edges, weights=w_a)[0]
    hb = np.histogram(x_b, edges, weights=w_b)[0]
    va = np.histogram(x_a, edges, weights=w_a ** 2)[0]
    vb = np.histogram(x_b, edges, weights=w_b ** 2)[0]
    ok = (va + vb) > 0
    return np.sum((ha - hb)[ok] ** 2 / (va + vb)[ok]) / ok.sum(), ha, hb


# ------------------------------------------------------------------ structure, seeding
def test_eft_signal_layout_and_names():
    b = ds.make_eft_signal(1000, random_state=0)
    assert b.X.shape == (1000, 5) and b.y.shape == (1000, 6)
    assert b.terms == TERMS
    assert b.feature_names == ["jet_pt", "cos_theta", "mass", "noise_gauss", "noise_flat"]
    assert b.parameter_names == ["c_energy", "c_angle"]
    assert b.X.dtype == np.float64 and b.y.dtype == np.float64
    assert np.allclose(b.y[:, 0], 1000.0 / 1000)          # sum of SM weights = signal yield
    assert np.all(b.X[:, 0] > 0) and np.all(np.abs(b.X[:, 1]) <= 1) and np.all(b.X[:, 2] > 200)
    np.testing.assert_array_equal(b.truth, ds.true_coefficients(b.X))
    # per-event weights are squares: w(theta) >= 0 for any theta
    thetas = np.random.default_rng(0).normal(scale=3, size=(50, 2))
    w = b.y[:, :1] + b.y[:, 1:] @ monomials(thetas, TERMS).T
    assert w.min() >= -1e-12


def test_seed_reproducibility():
    for make in (lambda rs: ds.make_eft_signal(500, random_state=rs).y,
                 lambda rs: ds.make_background(500, random_state=rs).X,
                 lambda rs: ds.make_systematic_samples(200, random_state=rs).weight,
                 lambda rs: ds.make_systematic_samples(200, correlated=False,
                                                       random_state=rs).X,
                 lambda rs: ds.make_classification_sample(300, random_state=rs).X,
                 lambda rs: ds.make_observed((0.3, 0.2), (1, 1), 1.0, n_pool=5000,
                                             random_state=rs).X):
        a, b, c = make(7), make(7), make(8)
        np.testing.assert_array_equal(a, b)
        assert a.shape != c.shape or not np.array_equal(a, c)
    # a numpy Generator / RandomState is accepted too
    g1 = ds.make_eft_signal(100, random_state=np.random.default_rng(3)).X
    g2 = ds.make_eft_signal(100, random_state=np.random.default_rng(3)).X
    np.testing.assert_array_equal(g1, g2)
    ds.make_eft_signal(100, random_state=np.random.RandomState(3))


# ------------------------------------------------------------------ SMEFT truth
def test_coefficients_match_binned_monte_carlo():
    b = ds.make_eft_signal(400_000, random_state=1)
    idx, nbins = _bin_index(b.X)
    c0 = b.y[:, 0]
    for A in range(5):
        ratio = b.y[:, 1 + A] / c0
        # the latent azimuth makes the per-event coefficients noisy ...
        assert np.std(ratio - b.truth[:, A]) > 1e-3
        # ... but in every bin E[c_A]/E[c0] equals the bin average of the true R_A(x)
        for k in range(nbins):
            sel = idx == k
            resid = ratio[sel] - b.truth[sel, A]
            err = resid.std() / np.sqrt(sel.sum())
            assert abs(resid.mean()) < 5 * err + 1e-12, (A, k, resid.mean(), err)
            mc = b.y[sel, 1 + A].sum() / c0[sel].sum()
            assert mc == pytest.approx(b.truth[sel, A].mean(), abs=5 * err + 1e-12)


def test_true_coefficients_closed_form_and_ratio():
    X = np.array([[50.0, 0.5, 400.0, 0, 0.5], [120.0, -1.0, 1000.0, 1, 0.1]])
    R = ds.true_coefficients(X)
    z, c = X[:, 2] / 1000, X[:, 1]
    expected = np.column_stack([z, 0.8 * c, 0.295 * z ** 2, 0.4 * z * c,
                                0.045 + 0.115 * c ** 2])
    np.testing.assert_allclose(R, expected, rtol=1e-12)
    theta = np.array([0.7, -1.3])
    r = ds.true_ratio(X, theta)
    np.testing.assert_allclose(r, 1 + R @ monomials(theta, TERMS))
    rr = ds.true_ratio(X, np.array([theta, [0.0, 0.0]]))
    assert rr.shape == (2, 2)
    np.testing.assert_allclose(rr[:, 0], r)
    np.testing.assert_allclose(rr[:, 1], 1.0)


def test_expected_yield_matches_monte_carlo():
    b = ds.make_eft_signal(400_000, random_state=2)
    assert ds.expected_yield("signal") == pytest.approx(1000.0, rel=1e-10)
    for theta in [(1.0, 0.0), (0.0, 1.0), (-0.5, 2.0)]:
        w = b.y[:, 0] + b.y[:, 1:] @ monomials(np.array(theta), TERMS)
        err = np.sqrt(np.sum(w ** 2))
        assert w.sum() == pytest.approx(ds.expected_yield("signal", theta), abs=5 * err)
    # the c_angle interference is odd in cos(theta): no linear rate effect
    lin = ds.expected_yield("signal", (0, 0.1)) - ds.expected_yield("signal", (0, -0.1))
    assert abs(lin) < 1e-9
    for process in ds.PROCESSES:
        for nu in [(2.0, 0.0), (0.0, 1.5), (-1.0, -2.0)]:
            s = ds.make_process_sample(process, 300_000, nu=nu, random_state=3)
            err = np.sqrt(np.sum(s.weight ** 2))
            assert s.weight.sum() == pytest.approx(ds.expected_yield(process, nu=nu),
                                                   abs=5 * err)
    # the energy scale alone conserves yields exactly
    assert ds.expected_yield("background", nu=(3.0, 0.0)) == pytest.approx(2000.0, rel=1e-10)


# ------------------------------------------------------------------ systematics truth
@pytest.mark.parametrize("process", ds.PROCESSES)
def test_reweighted_nominal_matches_base_points(process):
    nu_values = np.array([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.0], [1.5, -1.5]])
    b = ds.make_systematic_samples(300_000, nu_values=nu_values, process=process,
                                   correlated=False, random_state=4)
    np.testing.assert_array_equal(b.base_points[0], [0.0, 0.0])
    nom = np.all(b.nu == 0, axis=1)
    Xn, wn = b.X[nom], b.weight[nom]
    pt_edges = np.quantile(Xn[:, 0], np.linspace(0, 1, 31))
    pt_edges[0], pt_edges[-1] = 0.0, np.inf
    m_edges = np.quantile(Xn[:, 2], np.linspace(0, 1, 21))
    m_edges[-1] = np.inf
    for p in nu_values:
        sel = np.all(b.nu == p, axis=1)
        Xp, wp = b.X[sel], b.weight[sel]
        w_rew = wn * np.exp(ds.true_log_ratio(Xn, p, process=process))
        for col, edges in ((0, pt_edges), (2, m_edges)):
            chi2, h_rew, h_p = _weighted_hist_chi2(Xn[:, col], w_rew, Xp[:, col], wp, edges)
            assert chi2 < 2.0, (process, p, col, chi2)
            # and without the reweighting the variation is clearly visible
            chi2_raw, _, _ = _weighted_hist_chi2(Xn[:, col], wn, Xp[:, col], wp, edges)
            if col == 0 or p[1] != 0:
                assert chi2_raw > 5.0, (process, p, col, chi2_raw)
        # 2-d (pT, mass) check: the jes log-ratio depends on both
        idx_n = (np.searchsorted(pt_edges[1:-1:3], Xn[:, 0]) * 8
                 + np.searchsorted(m_edges[1:-1:3], Xn[:, 2]))
        idx_p = (np.searchsorted(pt_edges[1:-1:3], Xp[:, 0]) * 8
                 + np.searchsorted(m_edges[1:-1:3], Xp[:, 2]))
        e = np.arange(-0.5, 80.5)
        chi2, _, _ = _weighted_hist_chi2(idx_n, w_rew, idx_p, wp, e)
        assert chi2 < 2.0, (process, p, chi2)


@pytest.mark.parametrize("process", ds.PROCESSES)
def test_strong_variations_yield_and_cross_term(process):
    # a large energy scale and a large theory variation: the quadratic nu_theory term
    # and the jes x theory cross term (eta evaluated at the true pT = pT / s) matter
    toy = ds.ToyPhysics(jes_uncertainty=0.3)
    nu_values = np.array([[2.0, 3.0], [-1.5, 3.0], [0.0, -3.0]])
    b = toy.make_systematic_samples(400_000, nu_values=nu_values, process=process,
                                    correlated=False, random_state=13)
    nom = np.all(b.nu == 0, axis=1)
    Xn, wn = b.X[nom], b.weight[nom]
    for p in nu_values:
        sel = np.all(b.nu == p, axis=1)
        w_rew = wn * np.exp(toy.true_log_ratio(Xn, p, process=process))
        err = np.sqrt(np.sum(w_rew ** 2) + np.sum(b.weight[sel] ** 2))
        assert abs(w_rew.sum() - b.weight[sel].sum()) < 4 * err, (process, p)
        assert b.weight[sel].sum() == pytest.approx(toy.expected_yield(process, nu=p),
                                                    abs=4 * np.sqrt(np.sum(b.weight[sel] ** 2)))
        edges = np.quantile(b.X[sel, 0], np.linspace(0, 1, 21))
        edges[0], edges[-1] = 0.0, np.inf
        chi2, _, _ = _weighted_hist_chi2(Xn[:, 0], w_rew, b.X[sel, 0], b.weight[sel], edges)
        assert chi2 < 2.0, (process, p, chi2)


def test_correlated_samples_are_shifted_copies():
    b = ds.make_systematic_samples(1000, random_state=5)
    pts = b.base_points
    assert pts.shape == (10, 2) and np.all(pts[0] == 0)
    assert b.X.shape == (10_000, 5) and b.nu.shape == (10_000, 2)
    X = b.X.reshape(10, 1000, 5)
    w = b.weight.reshape(10, 1000)
    for k, p in enumerate(pts):
        np.testing.assert_allclose(X[k, :, 0], (1 + 0.05 * p[0]) * X[0, :, 0], rtol=1e-12)
        np.testing.assert_array_equal(X[k, :, 1:], X[0, :, 1:])
        if p[1] == 0:
            np.testing.assert_allclose(w[k], w[0], rtol=1e-12)
    # a zero row given explicitly is not duplicated
    b2 = ds.make_systematic_samples(100, nu_values=[[0, 0], [1, 0], [0, 1]], random_state=0)
    assert b2.base_points.shape == (3, 2) and np.sum(np.all(b2.nu == 0, axis=1)) == 100


def test_true_log_ratio_shapes_and_values():
    X = ds.make_background(50, random_state=0).X
    assert np.all(ds.true_log_ratio(X, (0.0, 0.0)) == 0)
    g = ds.true_log_ratio(X, np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
    assert g.shape == (50, 3)
    # closed form of the jes part for the signal: Gamma(2, 20 + 0.1 m) in pT
    s = 1.05
    expected = -2 * np.log(s) + X[:, 0] / (20 + 0.1 * X[:, 2]) * (1 - 1 / s)
    np.testing.assert_allclose(g[:, 1], expected, rtol=1e-12)
    np.testing.assert_allclose(ds.true_log_ratio(X, (1.0, 0.0)), g[:, 1])
    # the theory systematic is quadratic in nu_theory at fixed jes
    g3 = ds.true_log_ratio(X, np.array([[0.5, -1.0], [0.5, 0.0], [0.5, 1.0], [0.5, 2.0]]))
    second = g3[:, 0] - 2 * g3[:, 1] + g3[:, 2]
    np.testing.assert_allclose(g3[:, 3] - 3 * g3[:, 2] + 3 * g3[:, 1] - g3[:, 0], 0, atol=1e-12)
    assert np.all(second > 0)
    with pytest.raises(ValueError, match="scale"):
        ds.true_log_ratio(X, (-25.0, 0.0))
    with pytest.raises(ValueError, match="process"):
        ds.true_log_ratio(X, (0.0, 0.0), process="ttbar")


def test_normalisation_applied_exactly():
    a = ds.make_background(2000, random_state=6)
    b = ds.make_background(2000, nu_norm=1.0, random_state=6)
    c = ds.make_background(2000, nu_norm=-2.5, random_state=6)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_allclose(b.weight, 1.2 * a.weight, rtol=1e-14)
    np.testing.assert_allclose(c.weight, 1.2 ** -2.5 * a.weight, rtol=1e-14)
    assert ds.normalisation_factor(1.0) == pytest.approx(1.2)
    assert ds.normalisation_factor(3.0, process="signal") == 1.0
    assert ds.expected_yield("background", nu_norm=2.0) == pytest.approx(2000 * 1.44)
    s0 = ds.make_process_sample("signal", 100, random_state=1)
    s1 = ds.make_process_sample("signal", 100, nu_norm=2.0, random_state=1)
    np.testing.assert_array_equal(s0.weight, s1.weight)
    toy = ds.ToyPhysics(background_norm_uncertainty=0.5)
    assert toy.normalisation_factor(2.0) == pytest.approx(2.25)


# ------------------------------------------------------------------ densities and fractions
def test_true_fractions_match_mixture():
    toy = ds.ToyPhysics()
    sig = toy.make_process_sample("signal", 300_000, random_state=8)
    bkg = toy.make_process_sample("background", 300_000, random_state=9)
    X = np.vstack([sig.X, bkg.X])
    w = np.concatenate([sig.weight, bkg.weight])
    f = toy.true_fractions(X)
    np.testing.assert_allclose(f.sum(axis=1), 1.0)
    # sum_{mixture in bin} w f_s(x) estimates the signal yield in the bin
    edges = [np.quantile(X[:, 0], np.linspace(0, 1, 6)), np.quantile(X[:, 2],
                                                                   np.linspace(0, 1, 6))]
    for e in edges:
        e[-1] = np.inf
    idx = np.searchsorted(edges[0][1:-1], X[:, 0]) * 5 + np.searchsorted(edges[1][1:-1], X[:, 2])
    is_sig = np.r_[np.ones(len(sig.X), bool), np.zeros(len(bkg.X), bool)]
    for k in range(25):
        sel = idx == k
        pred = np.sum(w[sel] * f[sel, 0])
        true = np.sum(w[sel & is_sig])
        err = np.sqrt(np.sum((w[sel] * (f[sel, 0] - is_sig[sel])) ** 2))
        assert abs(pred - true) < 5 * err + 1e-9, (k, pred, true, err)
    # the noise features carry no information
    Xs = X[:5].copy()
    Xs[:, 3:] = [[0.1, 0.2]]
    np.testing.assert_allclose(toy.true_fractions(Xs), toy.true_fractions(
        np.column_stack([X[:5, :3], np.full(5, -1.3), np.full(5, 0.9)])))


def test_log_density_normalised():
    # the closed-form densities integrate to one: importance-sample each with the
    # equal mixture of both processes as proposal (bounded weights p_p / q <= 2)
    toy = ds.ToyPhysics()
    X = np.vstack([toy.make_process_sample("signal", 200_000, random_state=10).X,
                   toy.make_background(200_000, random_state=11).X])
    ls, lb = toy.true_log_density(X, "signal"), toy.true_log_density(X, "background")
    q = 0.5 * np.exp(ls) + 0.5 * np.exp(lb)
    for logp in (ls, lb):
        ratio = np.exp(logp) / q
        err = ratio.std() / np.sqrt(len(ratio))
        assert ratio.mean() == pytest.approx(1.0, abs=5 * err)
    X = np.array([[50.0, 0.0, 150.0, 0.0, 0.5], [50.0, 1.5, 300.0, 0.0, 0.5],
                  [-1.0, 0.0, 300.0, 0.0, 0.5], [50.0, 0.0, 300.0, 0.0, 1.5]])
    assert np.all(np.isneginf(toy.true_log_density(X)))


def test_full_ratio_and_observed_data():
    toy = ds.ToyPhysics()
    theta, nu, nu_norm = np.array([0.3, -0.4]), np.array([1.0, -1.0]), 0.5
    data = toy.make_observed(theta, nu, nu_norm, asimov=True, n_pool=100_000, random_state=11)
    assert data.X.shape == (200_000, 5)
    total = sum(toy.expected_yield(p, theta, nu, nu_norm) for p in ds.PROCESSES)
    assert data.weight.sum() == pytest.approx(total, rel=0.02)
    # nominal SM simulation reweighted by the exact full ratio reproduces the Asimov yields
    sm = toy.make_observed(n_pool=100_000, asimov=True, random_state=12)
    rw = sm.weight * toy.true_full_ratio(sm.X, theta, nu, nu_norm)
    assert rw.sum() == pytest.approx(total, rel=0.02)
    np.testing.assert_allclose(toy.true_full_ratio(sm.X[:100]), 1.0, rtol=1e-12)
    edges = np.quantile(sm.X[:, 2], np.linspace(0, 1, 16))
    edges[-1] = np.inf
    chi2, _, _ = _weighted_hist_chi2(sm.X[:, 2], rw, data.X[:, 2], data.weight, edges)
    assert chi2 < 2.5
    # unweighted toys: Poisson number of events around the expected total
    counts = [len(toy.make_observed(theta, nu, nu_norm, n_pool=20_000, random_state=s).X)
              for s in range(5)]
    assert abs(np.mean(counts) - total) < 5 * np.sqrt(total / 5)
    toy_data = toy.make_observed(theta, nu, nu_norm, n_pool=20_000, random_state=0)
    assert np.all(toy_data.weight == 1.0) and set(np.unique(toy_data.process)) == {0, 1}


def test_classification_sample_and_errors():
    b = ds.make_classification_sample(1000, random_state=0)
    assert b.X.shape == (2000, 5) and b.y.tolist() == [0] * 1000 + [1] * 1000
    assert b.sample_weight[:1000].sum() == pytest.approx(1000)
    assert b.sample_weight[1000:].sum() == pytest.approx(2000)
    assert b.target_names == ["signal", "background"]
    with pytest.raises(ValueError, match="positive integer"):
        ds.make_eft_signal(0)
    with pytest.raises(ValueError, match="duplicate"):
        ds.make_systematic_samples(10, nu_values=[[1, 0], [1, 0]])
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        ds.make_systematic_samples(10, nu_values=[[1, 0, 0]])
    with pytest.raises(ValueError, match="scale"):
        ds.make_systematic_samples(10, nu_values=[[-30, 0]])
    with pytest.raises(ValueError, match="process"):
        ds.make_process_sample("ttbar", 10)
    with pytest.raises(ValueError):
        ds.ToyPhysics(signal_yield=-1)
