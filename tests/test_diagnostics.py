"""bpt.diagnostics (closure, overfitting report, Fisher information) and
predict_contributions, on models with known truth (issue 12)."""

import numpy as np
import pytest
from conftest import (BPT_POINTS, bit_quadratic_model, bpt_gaussian_samples,
                      true_bit_coefficients, true_bpt_delta)

from bpt import BoostedInformationTree as BIT
from bpt import BoostedParametricTree as BPT
from bpt import diagnostics as dg


class ExactBIT(BIT):
    """A BIT whose prediction is the analytic truth R_A(x) (scaled by ``factor``)."""

    factor = np.ones(5)

    def predict(self, X):
        return true_bit_coefficients(self._check_X_predict(X)) * self.factor


class ExactBPT(BPT):
    factor = np.ones(5)

    def predict(self, X):
        return true_bpt_delta(self._check_X_predict(X)) * self.factor


def _exact(cls, X, target, w=None, factor=None, **kw):
    est = cls(n_estimators=1, max_depth=1, early_stopping=False, **kw).fit(X, target, w)
    if factor is not None:
        est.factor = np.asarray(factor, dtype=float)
    return est


@pytest.fixture(scope="module")
def bit_sim():
    X, y, _ = bit_quadratic_model(1_000, seed=40)
    Xt, yt, _ = bit_quadratic_model(60_000, seed=41)
    return X, y, Xt, yt


# ------------------------------------------------------------------ closure
def test_bit_closure_of_the_exact_model_and_of_a_wrong_one(bit_sim):
    X, y, Xt, yt = bit_sim
    exact = _exact(ExactBIT, X, y, n_parameters=2)
    res = dg.closure(exact, Xt, yt, bins=8)
    assert res.learned.shape == (5, len(exact.base_points_), 8)
    # the latent noise of this model spans two directions (z and z^2 - 1): rank 2 per bin
    # (R_(1,1) is constant: one bin)
    np.testing.assert_array_equal(res.ndf, [16, 16, 16, 16, 2])
    assert np.all(res.chi2_ndf[:4] < 2.5) and np.all(res.chi2_ndf[:4] > 0.4), res.summary()
    assert np.all(res.p_value[:4] > 1e-3)
    # yields: the learned and simulated totals agree within their errors
    np.testing.assert_allclose(res.learned.sum(axis=2), res.simulated.sum(axis=2), rtol=0.02)
    # binned in the learned ratio at one off-grid point
    one = dg.closure(exact, Xt, yt, bins=8, bin_at=[0.7, -1.3])
    assert len(one.binned_by) == 1 and 0.4 < one.chi2_ndf[0] < 2.5
    # a model that misses 20% of R_theta0 is seen at once
    wrong = _exact(ExactBIT, X, y, n_parameters=2, factor=[0.8, 1, 1, 1, 1])
    bad = dg.closure(wrong, Xt, yt, bins=8)
    assert bad.chi2_ndf[0] > 10 and bad.p_value[0] < 1e-10


def test_bpt_closure_exact_wrong_and_correlated_samples():
    X, nu, w = bpt_gaussian_samples(500, seed=42)
    Xt, nut, wt = bpt_gaussian_samples(20_000, seed=43)
    exact = _exact(ExactBPT, X, nu, w, n_nuisances=2, min_samples_leaf=5)
    res = dg.closure(exact, Xt, nut, wt, bins=6)
    assert res.points.shape == (len(BPT_POINTS), 2)
    np.testing.assert_array_equal(res.ndf, 6 * len(BPT_POINTS))
    assert np.all((res.chi2_ndf > 0.5) & (res.chi2_ndf < 1.6)), res.summary()
    wrong = _exact(ExactBPT, X, nu, w, n_nuisances=2, min_samples_leaf=5,
                   factor=[0.8, 1, 1, 1, 1])
    # seen in the binning of Delta_nu0 (the binnings of Delta_nu1 cannot resolve it)
    assert dg.closure(wrong, Xt, nut, wt, bins=6).chi2_ndf[0] > 5
    # reweighted copies of the same events: with groups, the exact model closes to
    # round-off (no information left: ndf 0) and the wrong one fails far more clearly
    Xr, nur, wr = bpt_gaussian_samples(5_000, seed=44, reweighted=True)
    g = np.tile(np.arange(5_000), len(BPT_POINTS) + 1)
    res_g = dg.closure(exact, Xr, nur, wr, groups=g, bins=6)
    assert np.all(res_g.chi2 < 1e-6 * np.maximum(res_g.ndf, 1))
    np.testing.assert_allclose(res_g.learned, res_g.simulated, rtol=1e-10)
    bad_g = dg.closure(wrong, Xr, nur, wr, groups=g, bins=6)
    bad_i = dg.closure(wrong, Xr, nur, wr, bins=6)           # as if independent
    assert np.all(bad_g.chi2_ndf > 10 * bad_i.chi2_ndf)


def test_closure_of_a_fitted_model_and_input_checks(bit_sim):
    X, y, Xt, yt = bit_sim
    est = BIT(n_parameters=2, n_estimators=20, max_depth=2, early_stopping=False).fit(X, y)
    res = dg.closure(est, Xt[:5000], yt[:5000], bins=4)
    assert res.chi2.shape == (5,) and "chi2/ndf" in res.summary()
    assert np.isfinite(res.pulls).all()
    with pytest.raises(ValueError, match="bins"):
        dg.closure(est, Xt, yt, bins=0)
    with pytest.raises(ValueError, match="groups is for the BoostedParametricTree"):
        dg.closure(est, Xt, yt, groups=np.zeros(len(Xt)))
    with pytest.raises(ValueError, match="points must have shape"):
        dg.closure(est, Xt, yt, points=np.ones((2, 3)))
    with pytest.raises(ValueError, match="expected a fitted"):
        dg.closure(object(), Xt, yt)
    Xb, nu, w = bpt_gaussian_samples(200, seed=45)
    b = BPT(n_nuisances=2, n_estimators=2, max_depth=1, min_samples_leaf=5).fit(Xb, nu, w)
    nominal = np.all(nu == 0, axis=1)
    with pytest.raises(ValueError, match="only nominal rows"):
        dg.closure(b, Xb[nominal], nu[nominal])
    with pytest.raises(ValueError, match="no nominal rows"):
        dg.closure(b, Xb[~nominal], nu[~nominal])


# ------------------------------------------------------------------ Fisher, overfitting
def test_fisher_information_of_the_exact_model_matches_the_analytic_values(bit_sim):
    X, y, Xt, yt = bit_sim
    exact = _exact(ExactBIT, X, y, n_parameters=2)
    fi = dg.fisher_information(exact, Xt, yt)
    # c0 = w independent of x: I_0 = E[(x0 - 1/2)^2] = 1/12, I_1 = E[(x1 / 2)^2] = 1/12;
    # event level adds the latent variance: 0.25 and 0.09
    np.testing.assert_allclose(fi.learned, [1 / 12, 1 / 12], rtol=0.02)
    np.testing.assert_allclose(fi.validated, [1 / 12, 1 / 12], rtol=0.05)
    np.testing.assert_allclose(fi.event_level, [1 / 12 + 0.25, 1 / 12 + 0.09], rtol=0.03)
    diag = dg.fisher_information(exact, Xt, yt, directions=[[0.6, 0.8]])
    # R' along u = 0.6 (x0 - 1/2) + 0.4 x1: variance 0.36/12 + 0.16/12, plus mean^2 0.04
    np.testing.assert_allclose(diag.learned, [0.52 / 12 + 0.04], rtol=0.03)
    lin_only = BIT(n_parameters=2, terms=[(0,), (0, 0)], n_estimators=1,
                   early_stopping=False).fit(X, y[:, [0, 1, 3]])
    with pytest.raises(ValueError, match="no linear term \\(1,\\)"):
        dg.fisher_information(lin_only, Xt, yt[:, [0, 1, 3]])


def test_overfitting_report_separates_an_overfitted_model(bit_sim):
    X, y, Xt, yt = bit_sim
    Xv, yv = Xt[:20_000], yt[:20_000]
    deep = BIT(n_parameters=2, n_estimators=40, learning_rate=0.5, max_depth=6,
               min_samples_leaf=5, early_stopping=False).fit(X, y)
    small = BIT(n_parameters=2, n_estimators=15, learning_rate=0.3, max_depth=1,
                min_samples_leaf=50, early_stopping=False).fit(X, y)
    r_deep = dg.overfitting_report(deep, X, y, Xv, yv)
    r_small = dg.overfitting_report(small, X, y, Xv, yv)
    assert r_deep.train_loss == pytest.approx(deep.train_loss_[-1], rel=1e-9)
    assert r_deep.optimism > 0.4 > 0.1 > r_small.optimism, (r_deep, r_small)
    # the deep model claims more information than it captures on held-out events
    assert np.all(r_deep.fisher_test.learned > 2 * r_deep.fisher_test.validated)
    assert "optimism" in r_deep.summary()
    Xb, nu, w = bpt_gaussian_samples(300, seed=46)
    Xbt, nubt, wbt = bpt_gaussian_samples(3000, seed=47)
    b = BPT(n_nuisances=2, n_estimators=20, learning_rate=0.5, max_depth=5,
            min_samples_leaf=5, early_stopping=False).fit(Xb, nu, w)
    rb = dg.overfitting_report(b, Xb, nu, Xbt, nubt, w, wbt)
    assert rb.empty_loss == pytest.approx(np.log(2)) and rb.fisher_train is None
    assert rb.train_loss == pytest.approx(b.train_loss_[-1], rel=1e-9)
    # so overfitted that it is worse than the empty model on held-out data
    assert rb.test_gain < 0 < rb.train_gain and np.isnan(rb.optimism)


# ------------------------------------------------------------------ contributions
def test_contributions_add_up_to_predict_for_both_estimators(bit_sim):
    X, y, Xt, _ = bit_sim
    est = BIT(n_parameters=2, n_estimators=25, max_depth=3, early_stopping=False).fit(X, y)
    C = est.predict_contributions(Xt[:2000])
    assert C.shape == (2000, 4, 5) and C.dtype == np.float64
    np.testing.assert_allclose(C.sum(axis=1), est.predict(Xt[:2000]), rtol=1e-12, atol=1e-13)
    # the bias is the same for every row
    assert np.ptp(C[:, -1, :], axis=0).max() == 0.0
    Xb, nu, w = bpt_gaussian_samples(300, seed=48)
    b = BPT(n_nuisances=2, n_estimators=10, max_depth=3, min_samples_leaf=5,
            early_stopping=False).fit(Xb, nu, w)
    Cb = b.predict_contributions(Xb)
    np.testing.assert_allclose(Cb.sum(axis=1), b.predict(Xb), rtol=1e-12, atol=1e-13)


def test_a_single_split_puts_everything_on_its_feature():
    rng = np.random.default_rng(49)
    n = 4000
    X = rng.uniform(size=(n, 3))
    # R(x) = 1 if x1 > 0.5 else -1: the one split is on feature 1
    c1 = np.where(X[:, 1] > 0.5, 1.0, -1.0) + rng.normal(scale=0.1, size=n)
    y = np.column_stack([np.ones(n), c1])
    est = BIT(n_parameters=1, order=1, n_estimators=1, max_depth=1, learning_rate=0.5,
              early_stopping=False).fit(X, y)
    assert est.ensemble_.arrays["feature"][0] == 1
    C = est.predict_contributions(X)
    assert np.all(C[:, [0, 2], :] == 0.0)
    # bias: the root's value = learning rate x the mean of c1 / c0 over the training events
    np.testing.assert_allclose(C[:, -1, 0], 0.5 * c1.mean(), rtol=1e-12)
    np.testing.assert_allclose(C[:, 1, 0] + C[:, -1, 0], est.predict(X)[:, 0], rtol=1e-12)
    left = X[:, 1] <= est.ensemble_.arrays["threshold"][0]
    np.testing.assert_allclose(C[left, 1, 0], 0.5 * (c1[left].mean() - c1.mean()), rtol=1e-9)
    with pytest.raises(ValueError, match="features"):
        est.predict_contributions(X[:, :2])


def test_plot_closure(bit_sim, tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bpt.plotting import plot_closure
    X, y, Xt, yt = bit_sim
    res = dg.closure(_exact(ExactBIT, X, y, n_parameters=2), Xt, yt, bins=5)
    ax = plot_closure(res, binning=1)
    assert len(ax.containers) == len(res.points)           # one errorbar set per point
    np.testing.assert_allclose(ax.containers[0].lines[0].get_ydata(),
                               res.learned[1, 0] / res.simulated[1, 0])
    assert "chi2/ndf" in ax.get_title() and "R_theta1" in ax.get_xlabel()
    ax.figure.savefig(tmp_path / "closure.png")
    with pytest.raises(ValueError, match="binning"):
        plot_closure(res, binning=5)
    with pytest.raises(ValueError, match="ClosureResult"):
        plot_closure(np.zeros(3))
    plt.close("all")
