"""BoostedInformationTree: reference parity, analytic truth, invariants, conventions."""

import numpy as np
import pytest
from conftest import assert_two_real_threads, bit_quadratic_model
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import bpt
from bpt import BoostedInformationTree as BIT

REF_F20 = 278353.1436750
REF_F100 = 284138.66016375


def _reference_fit(reference_data, split):
    X = reference_data["training_features"].reshape(-1, 1)
    w, dw = reference_data["training_weights"], reference_data["training_diff_weights"]
    est = BIT(n_parameters=1, order=1, n_estimators=100, learning_rate=0.2, max_depth=1,
              min_samples_leaf=50, split=split, early_stopping=False).fit(
                  X, np.column_stack([w, dw]))
    staged = list(est.staged_predict(X))
    return (dw * staged[19][:, 0]).sum(), (dw * staged[99][:, 0]).sum()


def test_reference_parity_exact(reference_data):
    f20, f100 = _reference_fit(reference_data, "exact")
    assert f20 == pytest.approx(REF_F20, rel=5e-8)
    assert f100 == pytest.approx(REF_F100, rel=5e-8)


def test_reference_parity_hist(reference_data):
    f20, f100 = _reference_fit(reference_data, "hist")
    assert f20 == pytest.approx(REF_F20, rel=1e-3)
    assert f100 == pytest.approx(REF_F100, rel=1e-3)


@pytest.fixture(scope="module")
def quadratic_fit():
    X, y, _ = bit_quadratic_model(60_000, seed=1)
    est = BIT(n_parameters=2, order=2, n_estimators=120, learning_rate=0.2, max_depth=4,
              min_samples_leaf=100, random_state=0, early_stopping=False).fit(X, y)
    return est, X, y


def test_quadratic_two_parameters_converges_to_truth(quadratic_fit):
    est, _, _ = quadratic_fit
    assert est.terms_ == [(0,), (1,), (0, 0), (0, 1), (1, 1)]
    Xt, _, truth = bit_quadratic_model(20_000, seed=2)
    pred = est.predict(Xt)
    rms = np.sqrt(np.mean((pred - truth) ** 2, axis=0))
    # stated tolerance: RMS error of every R_A below 0.05 (ranges of R_A are 0.5-1)
    assert np.all(rms < 0.05), rms
    # and the ratio itself at an off-base point theta
    theta = np.array([0.7, -1.3])
    t0, t1 = theta
    true_r = 1 + truth @ np.array([t0, t1, t0 * t0, t0 * t1, t1 * t1])
    r = est.predict_ratio(Xt, theta)
    assert np.sqrt(np.mean((r - true_r) ** 2)) < 0.06
    # the noise feature gets (almost) no importance
    assert est.feature_importances_[2] < 0.05
    assert est.feature_importances_.sum() == pytest.approx(1.0)


def test_train_loss_equals_minus_score_on_training_data(quadratic_fit):
    est, X, y = quadratic_fit
    assert est.train_loss_.shape == (est.n_iter_,)
    assert np.all(np.diff(est.train_loss_) < 0)
    assert -est.score(X, y) == pytest.approx(est.train_loss_[-1], rel=1e-8)


def test_staged_predict_and_ratio_shapes(quadratic_fit):
    est, X, _ = quadratic_fit
    Xs = X[:100]
    staged = list(est.staged_predict(Xs))
    assert len(staged) == est.n_iter_
    np.testing.assert_array_equal(staged[-1], est.predict(Xs))
    R = est.predict(Xs)
    thetas = np.array([[0.0, 0.0], [1.0, 2.0], [-0.5, 0.3]])
    r = est.predict_ratio(Xs, thetas)
    assert r.shape == (100, 3)
    np.testing.assert_allclose(r[:, 0], 1.0)
    m = np.array([1.0, 2.0, 1.0, 2.0, 4.0])
    np.testing.assert_allclose(r[:, 1], 1.0 + R @ m)
    assert est.predict_ratio(Xs, thetas[1]).shape == (100,)


def test_depth_zero_is_weighted_mean():
    X, y, _ = bit_quadratic_model(5_000, seed=3)
    est = BIT(n_parameters=2, n_estimators=1, learning_rate=1.0, max_depth=0).fit(X, y)
    expected = y[:, 1:].sum(axis=0) / y[:, 0].sum()
    np.testing.assert_allclose(est.predict(X[:3]), np.tile(expected, (3, 1)), rtol=1e-12)


def test_single_split_gain_is_exact_fisher_information():
    # one feature with two values: the only split separates them; leaves = group means
    X = np.repeat([[0.0], [1.0]], 100, axis=0)
    w = np.ones(200)
    dw = np.where(X[:, 0] > 0, 2.0, -1.0) * w
    est = BIT(n_parameters=1, order=1, n_estimators=1, learning_rate=1.0, max_depth=1,
              min_samples_leaf=10, split="exact").fit(X, np.column_stack([w, dw]))
    np.testing.assert_allclose(est.predict(np.array([[0.0], [1.0]]))[:, 0], [-1.0, 2.0])
    # threshold between the two values; both split modes agree
    est_h = clone(est).set_params(split="hist").fit(X, np.column_stack([w, dw]))
    np.testing.assert_array_equal(est_h.predict(np.array([[0.2], [0.7]])),
                                  est.predict(np.array([[0.2], [0.7]])))


def test_n_jobs_does_not_change_predictions_on_two_real_threads():
    assert_two_real_threads()
    X, y, _ = bit_quadratic_model(20_000, seed=4)
    kw = dict(n_parameters=2, n_estimators=15, max_depth=3, random_state=7)
    p1 = BIT(n_jobs=1, **kw).fit(X, y).predict(X[:2000])
    p2 = BIT(n_jobs=2, **kw).fit(X, y).predict(X[:2000])
    np.testing.assert_array_equal(p1, p2)


def test_random_state_seeds_only_the_validation_split():
    X, y, _ = bit_quadratic_model(20_000, seed=4)
    kw = dict(n_parameters=2, n_estimators=10, max_depth=3)
    # no validation split and fewer rows than the binning subsample: nothing is random,
    # any seed gives the same trees
    preds = [BIT(random_state=rs, early_stopping=False, **kw).fit(X, y).predict(X[:2000])
             for rs in (0, 7, None, np.random.RandomState(3))]
    for p in preds[1:]:
        np.testing.assert_array_equal(preds[0], p)
    # with a validation split the seed picks the held-out rows: the same seed reproduces
    # the fit exactly, another seed trains on other rows
    fits = [BIT(random_state=rs, early_stopping=True, validation_fraction=0.25, **kw).fit(X, y)
            for rs in (1, 1, 2)]
    np.testing.assert_array_equal(fits[0].predict(X[:2000]), fits[1].predict(X[:2000]))
    np.testing.assert_array_equal(fits[0].validation_loss_, fits[1].validation_loss_)
    assert not np.array_equal(fits[0].predict(X[:2000]), fits[2].predict(X[:2000]))
    assert not np.array_equal(fits[0].validation_loss_, fits[2].validation_loss_)


def test_hist_equals_exact_with_few_distinct_values():
    rng = np.random.default_rng(5)
    X = rng.integers(0, 30, size=(8000, 3)).astype(float)
    w = rng.uniform(0.5, 1.5, 8000)
    y = np.column_stack([w, w * (np.sin(X[:, 0]) + 0.1 * X[:, 1] + rng.normal(0, 0.1, 8000))])
    kw = dict(n_parameters=1, order=1, n_estimators=10, max_depth=3, min_samples_leaf=20)
    ph = BIT(split="hist", **kw).fit(X, y).predict(X)
    pe = BIT(split="exact", **kw).fit(X, y).predict(X)
    np.testing.assert_allclose(ph, pe, rtol=1e-9, atol=1e-12)


def test_coefficients_from_derivatives_layout():
    rng = np.random.default_rng(6)
    n = 10
    w = rng.uniform(1, 2, n)
    wa = rng.normal(size=(n, 2))
    wab = rng.normal(size=(n, 2, 2))
    wab = wab + wab.transpose(0, 2, 1)
    y = bpt.coefficients_from_derivatives(w, wa, wab)
    np.testing.assert_allclose(y[:, 0], w)
    np.testing.assert_allclose(y[:, 1:3], wa)
    np.testing.assert_allclose(y[:, 3], wab[:, 0, 0] / 2)
    np.testing.assert_allclose(y[:, 4], wab[:, 0, 1])
    np.testing.assert_allclose(y[:, 5], wab[:, 1, 1] / 2)
    # the polynomial reproduces the Taylor expansion at any theta
    theta = np.array([0.3, -0.7])
    taylor = w + wa @ theta + 0.5 * np.einsum("nab,a,b->n", wab, theta, theta)
    poly = y[:, 0] + y[:, 1:] @ np.array([0.3, -0.7, 0.09, -0.21, 0.49])
    np.testing.assert_allclose(poly, taylor)
    y_dict = bpt.coefficients_from_derivatives(w, {0: wa[:, 0], 1: wa[:, 1]},
                                               {(0, 0): wab[:, 0, 0], (1, 0): wab[:, 0, 1],
                                                (1, 1): wab[:, 1, 1]})
    np.testing.assert_allclose(y_dict, y)


def test_sklearn_conventions():
    X, y, _ = bit_quadratic_model(6_000, seed=8)
    est = BIT(n_parameters=2, n_estimators=5, max_depth=2, min_samples_leaf=50)
    assert clone(est).get_params() == est.get_params()
    with pytest.raises(NotFittedError):
        est.predict(X)
    pipe = make_pipeline(StandardScaler(), clone(est)).fit(X, y)
    assert pipe.predict(X).shape == (len(X), 5)
    scores = cross_val_score(clone(est), X, y, cv=KFold(3))
    assert scores.shape == (3,) and np.all(np.isfinite(scores)) and np.all(scores > 0)
    gs = GridSearchCV(clone(est), {"max_depth": [1, 3]}, cv=KFold(2)).fit(X, y)
    assert gs.best_params_["max_depth"] == 3   # the truth needs more than one split
    est.fit(X, y)
    assert est.n_features_in_ == 3


def test_pandas_feature_names():
    pd = pytest.importorskip("pandas")
    X, y, _ = bit_quadratic_model(3_000, seed=9)
    df = pd.DataFrame(X, columns=["pt", "eta", "phi"])
    est = BIT(n_parameters=2, n_estimators=2, max_depth=2).fit(df, y)
    assert list(est.feature_names_in_) == ["pt", "eta", "phi"]
    with pytest.raises(ValueError, match="feature names"):
        est.predict(df[["eta", "pt", "phi"]])


@pytest.mark.parametrize("bad, match", [
    (lambda X, y: (X, y[:, :3]), "columns"),
    (lambda X, y: (X, np.where(np.arange(len(y))[:, None] == 3, np.nan, y)), "non-finite"),
    (lambda X, y: (X[:-5], y), "rows"),
    (lambda X, y: (np.where(np.arange(len(X))[:, None] == 7, np.inf, X), y), "column 0"),
    (lambda X, y: (X[:, 0], y), "2-d"),
    (lambda X, y: (X, -np.abs(y)), "SM weights"),
])
def test_bad_input_raises_clear_errors(bad, match):
    X, y, _ = bit_quadratic_model(500, seed=10)
    est = BIT(n_parameters=2, n_estimators=2, max_depth=1, min_samples_leaf=5)
    Xb, yb = bad(X, y)
    with pytest.raises(ValueError, match=match):
        est.fit(Xb, yb)
    assert not hasattr(est, "ensemble_")


def test_bad_params_and_predict_shape():
    X, y, _ = bit_quadratic_model(500, seed=11)
    with pytest.raises(ValueError, match="max_bins"):
        BIT(n_parameters=2, max_bins=300).fit(X, y)
    with pytest.raises(ValueError, match="learning_rate"):
        BIT(n_parameters=2, learning_rate=0).fit(X, y)
    with pytest.raises(ValueError, match="determine the term"):
        BIT(n_parameters=2, base_points=[[1.0, 0.0], [2.0, 0.0]]).fit(X, y)
    est = BIT(n_parameters=2, n_estimators=2, max_depth=1, min_samples_leaf=5).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        est.predict(X[:, :2])
    with pytest.raises(ValueError, match="theta"):
        est.predict_ratio(X, [1.0, 2.0, 3.0])


def test_early_stopping_records_validation_loss():
    X, y, _ = bit_quadratic_model(20_000, seed=12)
    est = BIT(n_parameters=2, n_estimators=300, learning_rate=0.5, max_depth=3,
              validation_fraction=0.2, n_iter_no_change=5, random_state=0).fit(X, y)
    n_grown = est.train_loss_.shape[0]
    assert n_grown < 300
    assert est.validation_loss_.shape == (n_grown,)      # every grown tree is recorded
    # stopped because the validation loss no longer improved (relative tol 1e-7) ...
    best_before = est.validation_loss_[:-5].min()
    assert est.validation_loss_[-5:].min() >= best_before - 1e-7 * abs(best_before)
    # ... and kept the trees up to its minimum
    assert est.n_iter_ == int(np.argmin(est.validation_loss_)) + 1 < n_grown


def test_n_jobs_restores_numba_threads_and_verbose_logs(caplog):
    # verbose goes through the "bpt" logger (pytest's handler catches it here; without
    # any handler it is printed on stdout: tests/test_early_stopping.py)
    import logging

    import numba
    X, y, _ = bit_quadratic_model(2_000, seed=13)
    before = numba.get_num_threads()
    with caplog.at_level(logging.INFO, logger="bpt"):
        BIT(n_parameters=2, n_estimators=3, max_depth=2, n_jobs=1, verbose=1).fit(X, y)
    assert numba.get_num_threads() == before
    out = caplog.text
    assert out.count("[BIT] tree") == 3 and "train loss" in out
