"""Loss stage: L2 leaf values equal their closed forms; scale invariance; truth."""

import numpy as np
import pytest
from conftest import (bit_quadratic_model, bpt_gaussian_samples, bpt_leaf_metric,
                      bpt_monomials)

from bpt import BoostedInformationTree as BIT
from bpt import BoostedParametricTree as BPT


def test_bit_l2_single_leaf_is_the_shrunk_weighted_mean():
    X, y, _ = bit_quadratic_model(5_000, seed=3)
    l2 = 0.25
    est = BIT(n_parameters=2, n_estimators=1, learning_rate=1.0, max_depth=0,
              l2_regularization=l2).fit(X, y)
    # leaf S'/(S0 + lam), lam = l2 * sum|c0|; back-transformed: sum c_A / (sum c0 + lam)
    expected = y[:, 1:].sum(axis=0) / (y[:, 0].sum() + l2 * np.abs(y[:, 0]).sum())
    np.testing.assert_allclose(est.predict(X[:3]), np.tile(expected, (3, 1)), rtol=1e-12)


@pytest.mark.parametrize("samples", ["shared", "independent"])
def test_bpt_l2_single_leaf_is_the_ridge_closed_form(samples):
    X, nu, w = bpt_gaussian_samples(2_000, seed=4)
    l2 = 0.3
    est = BPT(n_nuisances=2, n_estimators=1, max_depth=0, l2_regularization=l2,
              learn_global=True, samples=samples).fit(X, nu, w)   # one leaf at rate 1
    assert est.samples_ == samples
    V = bpt_monomials(est.base_points_)
    W = bpt_leaf_metric(est, nu, w)
    nominal = np.all(nu == 0, axis=1)
    lam0 = w[nominal].sum()
    lamk = np.array([w[np.all(nu == p, axis=1)].sum() for p in est.base_points_])
    ell = np.log(lamk / lam0)
    h = np.mean(lam0 * lamk / (lam0 + lamk))
    mu = l2 * np.abs(w).sum() / h
    expected = np.linalg.solve(V.T @ W @ V + mu * np.eye(V.shape[1]), V.T @ W @ ell)
    np.testing.assert_allclose(est.predict(X[:3]), np.tile(expected, (3, 1)), rtol=1e-10)
    # the penalty shrinks: |Delta| smaller than the unregularised closed form
    plain = np.linalg.solve(V.T @ W @ V, V.T @ W @ ell)
    assert np.linalg.norm(expected) < np.linalg.norm(plain)


@pytest.mark.parametrize("make", ["bit", "bpt"])
def test_l2_model_invariant_to_overall_weight_scale(make):
    if make == "bit":
        X, y, _ = bit_quadratic_model(8_000, seed=5)
        kw = dict(n_parameters=2, n_estimators=5, max_depth=3, l2_regularization=0.01,
                  random_state=0)
        a = BIT(**kw).fit(X, y).predict(X[:200])
        b = BIT(**kw).fit(X, y * 1234.567).predict(X[:200])
    else:
        X, nu, w = bpt_gaussian_samples(3_000, seed=6)
        kw = dict(n_nuisances=2, n_estimators=5, max_depth=3, l2_regularization=0.01,
                  min_weight_leaf=0.0, random_state=0)
        a = BPT(**kw).fit(X, nu, w).predict(X[:200])
        b = BPT(**kw).fit(X, nu, w * 1234.567).predict(X[:200])
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_regularised_stochastic_fit_converges_to_truth():
    X, y, _ = bit_quadratic_model(60_000, seed=1)
    est = BIT(n_parameters=2, order=2, n_estimators=150, learning_rate=0.2, max_depth=4,
              min_samples_leaf=100, random_state=0, l2_regularization=1e-3, subsample=0.7,
              max_features=0.67, early_stopping=False).fit(X, y)
    Xt, _, truth = bit_quadratic_model(20_000, seed=2)
    rms = np.sqrt(np.mean((est.predict(Xt) - truth) ** 2, axis=0))
    assert np.all(rms < 0.05), rms
    # the training loss bookkeeping (leaf sums of all rows, L2 leaves) is exact
    assert -est.score(X, y) == pytest.approx(est.train_loss_[-1], rel=1e-8)


def test_l2_shrinks_small_leaves_more():
    # two groups of very different size (R = 0.5 and 1.0): each leaf is
    # S'/(S0 + lam), so the small group's value is pulled further towards zero
    X = np.concatenate([np.zeros(9_000), np.ones(1_000)])[:, None]
    w = np.ones(10_000)
    y = np.column_stack([w, np.where(X[:, 0] > 0, 1.0, 0.5) * w])
    est = BIT(n_parameters=1, order=1, n_estimators=1, learning_rate=1.0, max_depth=1,
              min_samples_leaf=10, l2_regularization=0.01, early_stopping=False).fit(X, y)
    assert est.ensemble_.arrays["feature"][0] == 0
    lam = 0.01 * 10_000
    p = est.predict(np.array([[0.0], [1.0]]))[:, 0]
    np.testing.assert_allclose(p, [0.5 * 9_000 / (9_000 + lam), 1_000 / (1_000 + lam)],
                               rtol=1e-12)


def test_bpt_model_loss_is_the_same_sum_on_every_call_and_thread_count():
    # a prange scalar reduction is summed in scheduling order under the tbb layer; the
    # loss must be a fixed-order sum (early stopping compares these numbers exactly)
    import numba

    from bpt._engine._loss import NO_EXPONENTIALS, bpt_model_loss
    rng = np.random.default_rng(3)
    n = 200_003
    w = rng.exponential(size=n)
    cls = rng.integers(0, 3, size=n).astype(np.int64)
    nom_index = np.full(n, -1, dtype=np.int32)
    nom_index[cls == 0] = np.arange(int((cls == 0).sum()), dtype=np.int32)
    g_nom = rng.normal(size=(int((cls == 0).sum()), 2))
    g_own = rng.normal(size=n)
    old = numba.get_num_threads()
    try:
        sums = []
        for threads in (1, numba.config.NUMBA_NUM_THREADS, 1, numba.config.NUMBA_NUM_THREADS):
            numba.set_num_threads(threads)
            sums += [bpt_model_loss(w, cls, g_nom, g_own, *NO_EXPONENTIALS, nom_index,
                                    np.empty(0)) for _ in range(5)]
    finally:
        numba.set_num_threads(old)
    assert len(set(sums)) == 1
    own = np.where(cls == 0, 0.0, g_own)
    ref = np.where(cls == 0, w * np.logaddexp(0, g_nom[np.maximum(nom_index, 0)]).sum(axis=1),
                   w * np.logaddexp(0, -own))
    assert sums[0] == pytest.approx(ref.sum(), rel=1e-12)


def test_bpt_model_loss_with_carried_exponentials_and_their_overflow():
    # the boosting loop carries exp(g_nom) and exp(-g_own) (products of leaf factors);
    # the loss and the boosting weights from them equal the direct forms, and values
    # whose carried exponential overflows (g beyond +-709) fall back to those forms
    from bpt._engine._loss import NO_EXPONENTIALS, bpt_model_loss
    rng = np.random.default_rng(4)
    n = 50_001
    w = rng.exponential(size=n)
    cls = rng.integers(0, 4, size=n).astype(np.int64)
    nom = cls == 0
    nom_index = np.full(n, -1, dtype=np.int32)
    nom_index[nom] = np.arange(int(nom.sum()), dtype=np.int32)
    g_nom = rng.normal(scale=3.0, size=(int(nom.sum()), 3))
    g_own = rng.normal(scale=3.0, size=n)
    g_nom[:5] = [[800.0, -800.0, 5.0]] * 5         # prod(1 + e^g) overflows
    g_own[np.flatnonzero(~nom)[:5]] = -800.0        # e^-g overflows
    with np.errstate(over="ignore"):
        e_nom, e_own = np.exp(g_nom), np.exp(-g_own)
    own = np.where(nom, 0.0, g_own)
    ref = np.where(nom, w * np.logaddexp(0, g_nom[np.maximum(nom_index, 0)]).sum(axis=1),
                   w * np.logaddexp(0, -own))
    w_direct, w_carried = np.empty(n), np.empty(n)
    a = bpt_model_loss(w, cls, g_nom, g_own, *NO_EXPONENTIALS, nom_index, w_direct)
    b = bpt_model_loss(w, cls, g_nom, g_own, e_nom, e_own, nom_index, w_carried)
    assert np.isfinite(a) and np.isfinite(b)
    assert a == pytest.approx(ref.sum(), rel=1e-12)
    assert b == pytest.approx(ref.sum(), rel=1e-12)
    expected_w = np.where(nom, w, w * np.exp(np.minimum(-own, 700.0)))
    finite = ~(~nom & (g_own < -700))
    np.testing.assert_allclose(w_carried[finite], expected_w[finite], rtol=1e-14)
    np.testing.assert_allclose(w_direct[finite], expected_w[finite], rtol=1e-14)
    assert np.all(w_carried[~finite] == w_direct[~finite])
