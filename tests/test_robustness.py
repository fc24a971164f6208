"""Robustness (issue 6): negative weights, degenerate data, extreme values, input validation.

Property-based invariants (permutation, n_jobs, scaling, duplication, hist == exact) live in
test_properties.py.  Every test here is small: a few hundred to a few ten thousand events.
"""

import math
import warnings

import numpy as np
import pytest
from conftest import bit_quadratic_model
from sklearn.exceptions import NotFittedError

from bpt import BoostedInformationTree as BIT
from bpt import BoostedParametricTree as BPT

SPLITS = ["hist", "exact"]


# small fits: run the kernels on one thread (see conftest.one_numba_thread); degenerate
# data are expected to give constant models (the warning is asserted where it matters)
pytestmark = [pytest.mark.usefixtures("one_numba_thread"),
              pytest.mark.filterwarnings("ignore:.*no valid split was found:UserWarning")]


# ----------------------------------------------------------------------------- helpers
def _with_negative_weights(y, fraction, seed):
    """Flip the sign of a random ``fraction`` of the events (rows of ``y``) and rescale by
    1 / (1 - 2 fraction): E[sign / (1 - 2 fraction)] = 1, so E[c|x] and hence every
    R_A(x) = E[c_A|x] / E[c0|x] are unchanged, while the negative events are independent
    of the positive ones (as NLO counter-events are)."""
    rng = np.random.default_rng(seed)
    sign = np.where(rng.uniform(size=len(y)) < fraction, -1.0, 1.0)
    factor = sign / (1.0 - 2.0 * fraction)
    return y * (factor[:, None] if y.ndim == 2 else factor), sign


def _leaf_groups(est, X):
    """Per tree: (leaf node ids, index of each row's leaf) for the rows of X."""
    leaves = est.apply(X)
    for t in range(leaves.shape[1]):
        ids, inv = np.unique(leaves[:, t], return_inverse=True)
        yield t, ids, inv.reshape(-1)


def _check_bit_leaves(est, X, c0, min_weight=0.0):
    """Every leaf of every tree (fit on X without validation split) is a valid node:
    >= min_samples_leaf events, SM weight sum > 0 and >= min_weight_leaf, and its
    recorded n_samples is the number of training rows that reach it."""
    a = est.ensemble_.arrays
    n_split_trees = 0
    for _, ids, inv in _leaf_groups(est, X):
        assert np.all(a["feature"][ids] == -1)
        counts = np.bincount(inv, minlength=len(ids))
        s0 = np.bincount(inv, weights=c0, minlength=len(ids))
        np.testing.assert_array_equal(a["n_samples"][ids], counts)
        assert np.all(s0 > 0), s0.min()
        if len(ids) > 1:      # the root of an unsplit tree is not subject to the leaf rules
            n_split_trees += 1
            assert counts.min() >= est.min_samples_leaf
            assert s0.min() >= min_weight, (s0.min(), min_weight)
    return n_split_trees


def _bpt_classes(est, nu):
    """Class of every event: 0 = nominal, k = 1 + index in est.base_points_."""
    pts = np.vstack([np.zeros(est.n_nuisances), est.base_points_])
    match = np.all(nu[:, None, :] == pts[None, :, :], axis=2)
    assert match.any(axis=1).all()
    return match.argmax(axis=1)


def _check_bpt_leaves(est, X, nu, w):
    """Every leaf of every tree had, when its tree was grown, >= min_samples_leaf events and
    a positive weight sum lambda for every base point (nominal included).  The weights a
    tree sees are the boosting weights w_i exp(-g_{k_i}(x_i)) of the trees before it."""
    cls = _bpt_classes(est, nu)
    n_cls = len(est.base_points_) + 1
    staged = list(est.staged_predict(X))
    n = len(X)
    n_split_trees = 0
    for t, ids, inv in _leaf_groups(est, X):
        if t == 0:
            wc = w
        else:
            G = staged[t - 1] @ est.V_.T                        # (N, n_base_points)
            g = np.where(cls > 0, G[np.arange(n), np.maximum(cls - 1, 0)], 0.0)
            wc = w * np.exp(-g)
        idx = inv * n_cls + cls
        lam = np.bincount(idx, weights=wc, minlength=len(ids) * n_cls).reshape(-1, n_cls)
        cnt = np.bincount(idx, minlength=len(ids) * n_cls).reshape(-1, n_cls)
        np.testing.assert_array_equal(est.ensemble_.arrays["n_samples"][ids], cnt.sum(axis=1))
        assert np.all(lam > 0), (t, lam.min())
        if len(ids) > 1:
            n_split_trees += 1
            assert cnt.min() >= est.min_samples_leaf
    return n_split_trees


def _constant_bit_prediction(y, eta, n_trees):
    """T depth-0 (or unsplittable) BIT trees: the residual node mean shrinks by (1 - eta)
    per tree, so the model is (1 - (1 - eta)^T) S_A / S_0 (also with negative weights)."""
    return (1.0 - (1.0 - eta) ** n_trees) * y[:, 1:].sum(axis=0) / y[:, 0].sum()


def _closed_form_delta(nu, w, base_points, V):
    """(V^T V)^-1 V^T l with l_k = log(lambda_k / lambda_0), sums in exact arithmetic."""
    nominal = np.all(nu == 0, axis=1)
    lam0 = math.fsum(w[nominal])
    ell = np.array([math.log(math.fsum(w[np.all(nu == p, axis=1)]) / lam0)
                    for p in base_points])
    return np.linalg.solve(V.T @ V, V.T @ ell)


def _bpt_1d_samples(n, points=(0.0, 1.0, -1.0), seed=0, n_features=2):
    """One nuisance: nominal and base-point samples sharing x ~ N(0, 1), each base point
    reweighted by exp(0.3 nu x0 + 0.1 nu^2)."""
    rng = np.random.default_rng(seed)
    X0 = rng.normal(size=(n, n_features))
    Xs, nus, ws = [], [], []
    for v in points:
        Xs.append(X0)
        nus.append(np.full(n, v))
        ws.append(np.exp(0.3 * v * X0[:, 0] + 0.1 * v * v))
    return np.vstack(Xs), np.concatenate(nus)[:, None], np.concatenate(ws)


# ============================================================================ 1. negative
# --- convergence ----------------------------------------------------------------------
def test_bit_negative_weights_still_converge_to_truth():
    X, y, _ = bit_quadratic_model(20_000, seed=1)
    y_neg, sign = _with_negative_weights(y, 0.2, seed=3)
    assert 0.18 < np.mean(sign < 0) < 0.22                    # ~20% negative-weight events
    est = BIT(n_parameters=2, n_estimators=60, learning_rate=0.2, max_depth=3,
              min_samples_leaf=100, random_state=0, early_stopping=False).fit(X, y_neg)
    Xt, _, truth = bit_quadratic_model(20_000, seed=2)        # held-out, analytic truth
    rms = np.sqrt(np.mean((est.predict(Xt) - truth) ** 2, axis=0))
    # stated tolerance: RMS error of every R_A below 0.08 (the ranges of R_A are 0.5-1;
    # 0.03-0.06 is reached here for several seeds, 0.02-0.03 without negative weights:
    # the negative events cost a factor (1 - 2 * 0.2)^2 = 0.36 in effective statistics)
    assert np.all(rms < 0.08), rms
    theta = np.array([0.7, -1.3])
    m = np.array([0.7, -1.3, 0.49, -0.91, 1.69])
    r_rms = np.sqrt(np.mean((est.predict_ratio(Xt, theta) - (1 + truth @ m)) ** 2))
    assert r_rms < 0.1, r_rms
    # no leaf of any tree has a non-positive SM weight sum
    assert _check_bit_leaves(est, X, y_neg[:, 0]) == est.n_iter_


def test_bpt_negative_weights_still_converge_to_truth():
    # NLO-like: the base points are the nominal events reweighted by the exact
    # exp(g_nu(x)); ~20% of the events carry a negative weight (in every sample),
    # all weights rescaled by 1 / (1 - 2 * 0.2) so that E[w|x] is unchanged.
    rng = np.random.default_rng(1)
    n = 6_000
    A = np.array([[0.3, 0.0], [0.05, -0.1]])      # Delta_A(x) = A_A . x + B_A
    B = np.array([0.05, 0.02])
    X0 = rng.normal(size=(n, 2))
    sign = np.where(rng.uniform(size=n) < 0.2, -1.0, 1.0)
    points = [0.0, 1.0, -1.0, 2.0]
    X = np.vstack([X0] * len(points))
    nu = np.repeat(points, n)[:, None]
    m = np.column_stack([nu[:, 0], nu[:, 0] ** 2])
    w = np.tile(sign, len(points)) / 0.6 * np.exp(np.sum(m * (X @ A.T + B), axis=1)) / n
    for v in points:
        sel = nu[:, 0] == v
        assert 0.15 < np.mean(w[sel] < 0) < 0.25 and w[sel].sum() > 0
    est = BPT(n_nuisances=1, n_estimators=60, learning_rate=0.3, max_depth=3,
              min_samples_leaf=100, random_state=0, early_stopping=False).fit(X, nu, w)
    Xt = np.random.default_rng(9).normal(size=(5_000, 2)) * 0.7
    for v in (1.0, -1.0, 2.0, 0.5, -0.5):
        truth = (Xt @ A.T + B) @ np.array([v, v * v])
        rel = (np.sqrt(np.mean((est.predict_log_ratio(Xt, v) - truth) ** 2))
               / np.sqrt(np.mean(truth ** 2)))
        # stated tolerance: RMS error of g_nu below 20% of the RMS of the true g_nu
        # (0.06-0.14 is reached for several seeds)
        assert rel < 0.2, (v, rel)
    assert _check_bpt_leaves(est, X, nu, w) == est.n_iter_


# --- invalid children are never made -------------------------------------------------
def _bit_trap(n_region=100, n_rest=300):
    """One feature, sorted distinct values.  The first ``n_region`` events alternate
    c0 = -1, +1 (prefix sums -1, 0, -1, 0, ...) then end with 20 more c0 = -1, with
    c1 = +1 each: every split inside the region has a left child with S0 <= 0 (S0 = 0
    exactly at even positions) and a huge |S1|, so it would look best to a criterion that
    ignored the sign of S0.  The rest has c0 = 1, c1 = 0.1."""
    x = np.arange(n_region + n_rest, dtype=float)[:, None] / (n_region + n_rest)
    c0 = np.ones(n_region + n_rest)
    c0[:n_region - 20:2] = -1.0
    c0[n_region - 20:n_region] = -1.0
    c1 = np.full(n_region + n_rest, 0.1)
    c1[:n_region] = 1.0
    prefix = np.cumsum(c0)
    assert np.all(prefix[:n_region] <= 0) and np.any(prefix[:n_region] == 0)
    return x, np.column_stack([c0, c1]), prefix


@pytest.mark.parametrize("split", SPLITS)
def test_bit_never_splits_into_non_positive_sm_weight(split):
    X, y, prefix = _bit_trap()
    est = BIT(n_parameters=1, order=1, n_estimators=1, learning_rate=1.0, max_depth=1,
              min_samples_leaf=5, split=split).fit(X, y)
    a = est.ensemble_.arrays
    assert a["feature"][0] == 0                      # a valid split exists and is made
    n_left = int(np.sum(X[:, 0] <= a["threshold"][0]))
    assert prefix[n_left - 1] > 0 and prefix[-1] - prefix[n_left - 1] > 0
    if split == "exact":
        # the best valid split: the smallest positive left sum (S0 = 1 after 121 events)
        assert n_left == 121
    assert np.all(np.isfinite(est.predict(X)))
    _check_bit_leaves(est, X, y[:, 0])


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("min_weight_leaf", [10.0, 50.0, 120.0])
def test_bit_min_weight_leaf_guards_the_trap(split, min_weight_leaf):
    X, y, prefix = _bit_trap()
    est = BIT(n_parameters=1, order=1, n_estimators=1, learning_rate=1.0, max_depth=1,
              min_samples_leaf=5, min_weight_leaf=min_weight_leaf, split=split).fit(X, y)
    a = est.ensemble_.arrays
    assert a["feature"][0] == 0
    n_left = int(np.sum(X[:, 0] <= a["threshold"][0]))
    assert prefix[n_left - 1] >= min_weight_leaf
    assert prefix[-1] - prefix[n_left - 1] >= min_weight_leaf
    if split == "exact":
        # the smallest admissible left sum still gives the largest gain
        assert prefix[n_left - 1] == min_weight_leaf
    _check_bit_leaves(est, X, y[:, 0], min_weight_leaf)


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("min_weight_leaf", [0.0, 5.0, 40.0])
def test_bit_every_leaf_respects_min_weight_leaf_with_negative_weights(split, min_weight_leaf):
    X, y, _ = bit_quadratic_model(2_000, seed=21)
    y, _ = _with_negative_weights(y, 0.25, seed=22)
    est = BIT(n_parameters=2, n_estimators=8, learning_rate=0.3, max_depth=4,
              min_samples_leaf=10, min_weight_leaf=min_weight_leaf, split=split).fit(X, y)
    assert _check_bit_leaves(est, X, y[:, 0], min_weight_leaf) == 8
    assert np.all(np.isfinite(est.predict(X)))


def test_bit_min_weight_leaf_larger_than_half_the_total_gives_constant_model():
    X, y, _ = bit_quadratic_model(1_000, seed=23)
    est = BIT(n_parameters=2, n_estimators=3, learning_rate=0.5, max_depth=3,
              min_samples_leaf=5, min_weight_leaf=0.51 * y[:, 0].sum()).fit(X, y)
    assert np.all(est.ensemble_.arrays["feature"] == -1)
    np.testing.assert_allclose(est.predict(X[:4]),
                               np.tile(_constant_bit_prediction(y, 0.5, 3), (4, 1)),
                               rtol=1e-12)


def _bpt_trap(n=200, n_region=50):
    """Nominal and base points nu = +1, -1 on the same sorted x.  In the first
    ``n_region`` events the weights of nu = +1 alternate -1, +1 then end with ten -1:
    every left child inside the region has lambda_+1 <= 0 (= 0 at even positions), and a
    left child just past the region has a tiny positive lambda_+1 (a huge log ratio)."""
    x = np.arange(n, dtype=float) / n
    X = np.tile(x, 3)[:, None]
    nu = np.repeat([0.0, 1.0, -1.0], n)[:, None]
    w_plus = np.ones(n)
    w_plus[:n_region - 10:2] = -1.0
    w_plus[n_region - 10:n_region] = -1.0
    prefix = np.cumsum(w_plus)
    assert np.all(prefix[:n_region] <= 0) and np.any(prefix[:n_region] == 0)
    w = np.concatenate([np.ones(n), w_plus, np.ones(n)])
    return X, nu, w, prefix


@pytest.mark.parametrize("split", SPLITS)
def test_bpt_never_splits_into_non_positive_lambda(split):
    X, nu, w, prefix = _bpt_trap()
    est = BPT(n_nuisances=1, n_estimators=1, max_depth=1, min_samples_leaf=5,
              split=split).fit(X, nu, w)
    a = est.ensemble_.arrays
    assert a["feature"][0] == 0
    n_left = int(np.sum(X[:200, 0] <= a["threshold"][0]))
    assert prefix[n_left - 1] > 0 and prefix[-1] - prefix[n_left - 1] > 0
    assert np.all(np.isfinite(est.predict(X)))
    _check_bpt_leaves(est, X, nu, w)


@pytest.mark.parametrize("split", SPLITS)
def test_bpt_every_leaf_has_positive_lambdas_while_boosting_with_negative_weights(split):
    X, nu, w = _bpt_1d_samples(600, points=(0.0, 1.0, -1.0, 2.0), seed=31)
    rng = np.random.default_rng(32)
    w = w * np.where(rng.uniform(size=len(w)) < 0.25, -1.0, 1.0) / 0.5
    est = BPT(n_nuisances=1, n_estimators=8, learning_rate=0.5, max_depth=3,
              min_samples_leaf=10, split=split).fit(X, nu, w)
    assert _check_bpt_leaves(est, X, nu, w) >= 1
    assert np.all(np.isfinite(est.predict(X)))


# --- the boosting update and the global sums with negative weights --------------------
def test_bit_boosting_update_is_linear_in_signed_weights():
    # depth 0: after the first tree the residual node sums S_A - eta S0 R vanish up to
    # (1 - eta); the update c_A -= eta c0 R uses the signed c0 of every event
    X, y, _ = bit_quadratic_model(500, seed=41)
    y, sign = _with_negative_weights(y, 0.3, seed=42)
    assert (sign < 0).any()
    est = BIT(n_parameters=2, n_estimators=5, learning_rate=0.3, max_depth=0).fit(X, y)
    np.testing.assert_allclose(est.predict(X[:2])[0], _constant_bit_prediction(y, 0.3, 5),
                               rtol=1e-10)
    assert np.all(np.diff(est.train_loss_) < 0)


def test_non_positive_total_weights_are_refused():
    X, y, _ = bit_quadratic_model(400, seed=43)
    y0 = y.copy()
    y0[:, 0] -= y0[:, 0].mean()                   # per-event mixed signs, total exactly ~0
    y0[0, 0] -= y0[:, 0].sum()
    with pytest.raises(ValueError, match=r"sum of SM weights \(y\[:, 0\]\) must be positive"):
        BIT(n_parameters=2, min_samples_leaf=5).fit(X, y0)
    est = BIT(n_parameters=2, n_estimators=2, max_depth=1, min_samples_leaf=5).fit(X, y)
    with pytest.raises(ValueError, match=r"sum of SM weights"):
        est.score(X, y, sample_weight=np.zeros(len(X)))
    Xb, nu, w = _bpt_1d_samples(100)
    w_bad = np.where(nu[:, 0] == 0, -w, w)
    with pytest.raises(ValueError, match="total weight of the nominal sample is not positive"):
        BPT(n_nuisances=1, min_samples_leaf=5).fit(Xb, nu, w_bad)


@pytest.mark.parametrize("scale", [0.0, -1.0])
def test_bpt_score_refuses_non_positive_total_weight(scale):
    X, nu, w = _bpt_1d_samples(100)
    est = BPT(n_nuisances=1, n_estimators=2, max_depth=1, min_samples_leaf=5).fit(X, nu, w)
    with pytest.raises(ValueError, match="sample_weight|weight"):
        est.score(X, nu, sample_weight=scale * w)


def test_bit_validation_split_keeps_a_positive_training_sm_weight():
    # 20 events: one of weight +40, nineteen of -1 (total +21); every c1 = +1.  When the
    # +40 event lands in the validation half, the training half has S0 < 0.
    X = np.random.default_rng(81).uniform(size=(20, 1))
    y = np.column_stack([np.r_[40.0, -np.ones(19)], np.ones(20)])
    for rs in range(8):
        est = BIT(n_parameters=1, order=1, n_estimators=1, learning_rate=1.0, max_depth=0,
                  validation_fraction=0.5, early_stopping=True, random_state=rs)
        try:
            est.fit(X, y)
        except ValueError as exc:
            assert "SM weight" in str(exc)
            continue
        # fitted: R = S1 / S0 of the training events, positive iff S0 > 0 (all c1 > 0)
        assert est.predict(X[:1])[0, 0] > 0, rs


@pytest.mark.filterwarnings("ignore:invalid value encountered in log:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:.*times the nominal:UserWarning")     # 1.1 vs 20: on purpose
def test_bpt_validation_split_keeps_positive_training_lambdas():
    n = 20
    X = np.random.default_rng(82).uniform(size=(3 * n, 1))
    nu = np.repeat([[0.0], [1.0], [-1.0]], n, axis=0)
    w = np.ones(3 * n)
    w[:n] = np.r_[3.0, -0.1 * np.ones(n - 1)]        # nominal total 1.1 > 0
    for rs in range(6):
        est = BPT(n_nuisances=1, n_estimators=2, max_depth=1, min_samples_leaf=1,
                  validation_fraction=0.5, early_stopping=True, random_state=rs)
        try:
            est.fit(X, nu, w)
        except ValueError as exc:
            assert "not positive" in str(exc)
            continue
        assert np.all(np.isfinite(est.predict(X))), rs
        assert np.all(np.isfinite(est.train_loss_)) and np.all(np.isfinite(est.validation_loss_))


# ============================================================================ 2. degenerate
def _bit_data(n=300, seed=0, n_features=2):
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, n_features))
    w = rng.uniform(0.5, 1.5, n)
    y = np.column_stack([w, w * (X[:, 0] - 0.3), w * X[:, 0] ** 2])
    return X, y


KW_BIT = dict(n_parameters=1, order=2, n_estimators=4, learning_rate=0.4, max_depth=3,
              min_samples_leaf=10)
KW_BPT = dict(n_nuisances=1, n_estimators=4, learning_rate=0.4, max_depth=3,
              min_samples_leaf=10)


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("case", ["all_constant", "fewer_than_2_min_samples_leaf",
                                  "max_depth_0"])
def test_bit_unsplittable_data_gives_the_constant_model(case, split):
    X, y = _bit_data()
    kw = dict(KW_BIT, split=split)
    if case == "all_constant":                  # a single distinct value in every feature
        X = np.full_like(X, 3.25)
    elif case == "fewer_than_2_min_samples_leaf":
        kw["min_samples_leaf"] = 151            # 300 events < 2 * 151
    else:
        kw["max_depth"] = 0
    est = BIT(**kw).fit(X, y)
    a = est.ensemble_.arrays
    assert np.all(a["feature"] == -1) and est.n_iter_ == 4 and len(a["feature"]) == 4
    expected = _constant_bit_prediction(y, 0.4, 4)
    np.testing.assert_allclose(est.predict(X[:3]), np.tile(expected, (3, 1)), rtol=1e-12)
    assert np.all(est.feature_importances_ == 0)
    assert np.all(np.isfinite(est.train_loss_))


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("case", ["all_constant", "max_depth_0"])
@pytest.mark.parametrize("learn_global", [True, False])
def test_bpt_unsplittable_data_gives_the_closed_form(case, split, learn_global):
    X, nu, w = _bpt_1d_samples(100)
    kw = dict(KW_BPT, split=split, learn_global=learn_global)
    if case == "all_constant":
        X = np.full_like(X, -7.0)
    else:
        kw["max_depth"] = 0
    est = BPT(**kw).fit(X, nu, w)
    assert np.all(est.ensemble_.arrays["feature"] == -1)
    delta = _closed_form_delta(nu, w, est.base_points_, est.V_)
    # the first tree absorbs the global parametrisation with rate 1 (learn_global) and
    # leaves residual log ratios (I - P) l that (V^T V)^-1 V^T maps to zero; with rate eta
    # each tree takes the share eta of what is left: 1 - (1 - eta)^T in total
    factor = 1.0 if learn_global else 1.0 - (1.0 - 0.4) ** 4
    np.testing.assert_allclose(est.predict(X[:3]), np.tile(factor * delta, (3, 1)),
                               rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("split", SPLITS)
def test_constant_features_are_never_used(split):
    X, y = _bit_data(n=400, n_features=3)
    X[:, 1] = 1.0                                # feature 1 constant, 0 and 2 vary
    est = BIT(**dict(KW_BIT, split=split)).fit(X, y)
    feats = est.ensemble_.arrays["feature"]
    assert 0 in feats and 1 not in feats
    assert est.feature_importances_[1] == 0.0
    Xp, nu, w = _bpt_1d_samples(300, n_features=3)
    Xp[:, 1] = -2.0
    bp = BPT(**dict(KW_BPT, split=split)).fit(Xp, nu, w)
    assert 1 not in bp.ensemble_.arrays["feature"]


@pytest.mark.parametrize("split", SPLITS)
def test_all_equal_weights_and_ratios(split):
    # every event has the same c0 and the same coefficients: nothing to learn, the model
    # is constant (whether or not round-off lets a zero-gain split through)
    X, _ = _bit_data(n=500)
    y = np.tile([2.0, 0.6, -0.2], (500, 1))
    est = BIT(**dict(KW_BIT, split=split)).fit(X, y)
    pred = est.predict(X)
    np.testing.assert_allclose(pred, np.tile(_constant_bit_prediction(y, 0.4, 4), (500, 1)),
                               rtol=1e-12)
    # BPT: the same events with the same unit weights at every base point: Delta = 0
    Xp, nu, _ = _bpt_1d_samples(200)
    bp = BPT(**dict(KW_BPT, split=split)).fit(Xp, nu, np.ones(len(Xp)))
    np.testing.assert_allclose(bp.predict(Xp), 0.0, atol=1e-14)


@pytest.mark.parametrize("split", SPLITS)
def test_nodes_without_a_valid_split_give_a_smaller_tree(split):
    # two distinct values: the root splits, its children are constant -> 3 nodes per tree
    X = np.repeat([[0.0], [1.0]], 100, axis=0)
    w = np.ones(200)
    y = np.column_stack([w, np.where(X[:, 0] > 0, 0.5, -0.5), np.zeros(200)])
    est = BIT(**dict(KW_BIT, split=split, n_estimators=3)).fit(X, y)
    a = est.ensemble_.arrays
    np.testing.assert_array_equal(np.diff(np.append(a["tree_start"], len(a["feature"]))),
                                  [3, 3, 3])
    np.testing.assert_allclose(est.predict([[0.0], [1.0]])[:, 0],
                               np.array([-0.5, 0.5]) * (1 - 0.6 ** 3), rtol=1e-12)
    # BPT: the nominal and nu = -1 have events on both values, nu = +1 only on one:
    # the root split would leave nu = +1 without events in a child, so no split at all
    Xp = np.concatenate([X[:, 0], X[:, 0], np.ones(200)])[:, None]
    nu = np.repeat([0.0, -1.0, 1.0], 200)[:, None]
    bp = BPT(**dict(KW_BPT, split=split, n_estimators=2)).fit(Xp, nu)
    assert np.all(bp.ensemble_.arrays["feature"] == -1)
    assert np.all(np.isfinite(bp.predict(Xp)))


@pytest.mark.parametrize("split", SPLITS)
def test_single_event(split):
    X = np.array([[0.3, -2.0]])
    y = np.array([[2.0, 1.0, -0.5]])
    est = BIT(**dict(KW_BIT, split=split, min_samples_leaf=1)).fit(X, y)
    np.testing.assert_allclose(est.predict([[0.0, 0.0], [9.0, 9.0]]),
                               np.tile([0.5, -0.25], (2, 1)) * (1 - 0.6 ** 4), rtol=1e-12)
    with pytest.raises(ValueError, match="SM weights"):
        BIT(**KW_BIT).fit(X, -y)
    # BPT: one event per base point cannot satisfy min_samples_leaf = 1 in two children;
    # the fit refuses it with a clear message instead of fitting an unsplittable model
    Xp = np.zeros((3, 1))
    nu = np.array([[0.0], [1.0], [-1.0]])
    with pytest.raises(ValueError, match=r"1 events, fewer than 2 \* min_samples_leaf = 2"):
        BPT(n_nuisances=1, min_samples_leaf=1, split=split).fit(Xp, nu)


@pytest.mark.parametrize("split", SPLITS)
def test_base_point_with_exactly_two_min_samples_leaf_events(split):
    rng = np.random.default_rng(51)
    msl = 20
    x_nom = rng.uniform(size=400)
    x_small = rng.uniform(size=2 * msl)             # nu = +1: exactly 2 * min_samples_leaf
    x_minus = rng.uniform(size=400)
    X = np.concatenate([x_nom, x_small, x_minus])[:, None]
    nu = np.concatenate([np.zeros(400), np.ones(2 * msl), -np.ones(400)])[:, None]
    w = np.concatenate([np.ones(400) / 400, np.exp(0.8 * x_small) / 40,
                        np.exp(-0.8 * x_minus) / 400])
    est = BPT(n_nuisances=1, n_estimators=3, learning_rate=0.5, max_depth=3,
              min_samples_leaf=msl, split=split).fit(X, nu, w)
    assert np.all(np.isfinite(est.predict(X)))
    # a split must put exactly msl events of nu = +1 on each side: at most two leaves
    a = est.ensemble_.arrays
    assert np.sum(a["feature"] >= 0) <= est.n_iter_
    _check_bpt_leaves(est, X, nu, w)


def test_bit_warns_when_no_split_is_possible_too_few_events():
    X, y = _bit_data()
    with pytest.warns(UserWarning):
        BIT(**dict(KW_BIT, min_samples_leaf=200)).fit(X, y)


def test_bit_warns_when_no_split_is_possible_constant_features():
    X, y = _bit_data()
    with pytest.warns(UserWarning):
        BIT(**KW_BIT).fit(np.ones_like(X), y)


def test_bpt_warns_when_no_split_is_possible_constant_features():
    X, nu, w = _bpt_1d_samples(100)
    with pytest.warns(UserWarning):
        BPT(**KW_BPT).fit(np.ones_like(X), nu, w)


def test_no_warning_when_the_trees_do_split():
    X, y = _bit_data()
    Xp, nu, w = _bpt_1d_samples(200)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.any(BIT(**KW_BIT).fit(X, y).ensemble_.arrays["feature"] >= 0)
        assert np.any(BPT(**KW_BPT).fit(Xp, nu, w).ensemble_.arrays["feature"] >= 0)
        # max_depth=0 asks for a constant model: no warning either
        BIT(**dict(KW_BIT, max_depth=0)).fit(X, y)


# ============================================================================ 3. extreme
@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("scale", [1e300, 1.7e308, 1e-300])
def test_huge_and_tiny_features_give_the_same_trees(split, scale):
    # 400 distinct values per feature (> max_bins: quantile edges) in [-1, 1], scaled
    rng = np.random.default_rng(61)
    X = rng.uniform(-1, 1, size=(400, 2))
    w = rng.uniform(0.5, 1.5, 400)
    y = np.column_stack([w, w * (np.sin(3 * X[:, 0]) + X[:, 1]), w * X[:, 1] ** 2])
    kw = dict(KW_BIT, split=split)
    ref = BIT(**kw).fit(X, y)
    est = BIT(**kw).fit(X * scale, y)
    a, b = est.ensemble_.arrays, ref.ensemble_.arrays
    np.testing.assert_array_equal(a["feature"], b["feature"])
    assert np.all(np.isfinite(a["threshold"]))
    np.testing.assert_array_equal(est.predict(X * scale), ref.predict(X))
    big = np.finfo(np.float64).max
    edge = np.array([[big, -big], [-big, big], [0.0, 0.0]])
    assert np.all(np.isfinite(est.predict(edge)))
    # BPT on the same kind of features
    Xp, nu, wp = _bpt_1d_samples(150, seed=62)
    Xp = np.clip(Xp / 4, -1, 1)
    refp = BPT(**dict(KW_BPT, split=split)).fit(Xp, nu, wp)
    estp = BPT(**dict(KW_BPT, split=split)).fit(Xp * scale, nu, wp)
    np.testing.assert_array_equal(estp.ensemble_.arrays["feature"],
                                  refp.ensemble_.arrays["feature"])
    # the linear leaves' slopes and centres scale by 1 / scale and scale: equal to
    # round-off (the constant leaves exactly)
    assert estp.ensemble_.has_linear
    np.testing.assert_allclose(estp.predict(Xp * scale), refp.predict(Xp), rtol=1e-12,
                               atol=1e-14)
    assert np.all(np.isfinite(estp.predict_ratio(edge, [[1.0], [2.0], [-1.0]])))


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("scale", [1e-30, 1e30])
def test_globally_scaled_weights_give_the_same_model(split, scale):
    X, y = _bit_data(n=500, seed=63)
    ref = BIT(**dict(KW_BIT, split=split)).fit(X, y)
    est = BIT(**dict(KW_BIT, split=split)).fit(X, y * scale)
    np.testing.assert_array_equal(est.ensemble_.arrays["feature"], ref.ensemble_.arrays["feature"])
    np.testing.assert_allclose(est.predict(X), ref.predict(X), rtol=1e-9, atol=1e-12)
    assert est.score(X, y * scale) == pytest.approx(ref.score(X, y), rel=1e-9)
    Xp, nu, w = _bpt_1d_samples(200, seed=64)
    refp = BPT(**dict(KW_BPT, split=split)).fit(Xp, nu, w)
    estp = BPT(**dict(KW_BPT, split=split)).fit(Xp, nu, w * scale)
    np.testing.assert_array_equal(estp.ensemble_.arrays["feature"],
                                  refp.ensemble_.arrays["feature"])
    np.testing.assert_allclose(estp.predict(Xp), refp.predict(Xp), rtol=1e-9, atol=1e-12)
    assert estp.score(Xp, nu, w * scale) == pytest.approx(refp.score(Xp, nu, w), rel=1e-9)


@pytest.mark.parametrize("scale", [1e-200, 1e200])
def test_bit_weight_scale_invariance_far_beyond_1e30(scale):
    X, y = _bit_data(n=300, seed=67)
    ref = BIT(**KW_BIT).fit(X, y)
    est = BIT(**KW_BIT).fit(X, y * scale)
    np.testing.assert_allclose(est.predict(X), ref.predict(X), rtol=1e-9, atol=1e-12)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("split", SPLITS)
def test_weights_spanning_1e_minus30_to_1e30(split):
    rng = np.random.default_rng(65)
    X, y = _bit_data(n=600, seed=65)
    factor = 10.0 ** rng.uniform(-30, 30, len(X))
    factor[:2] = [1e-30, 1e30]
    yw = y * factor[:, None]                       # per-event ratios c_A / c0 unchanged
    # one tree with rate 1: every leaf value is a positively weighted mean of the
    # per-event ratios, so it lies within their range
    est = BIT(**dict(KW_BIT, split=split, n_estimators=1, learning_rate=1.0)).fit(X, yw)
    pred = est.predict(X)
    ratios = y[:, 1:] / y[:, :1]
    assert np.all(np.isfinite(pred))
    assert np.all(pred >= ratios.min(axis=0) - 1e-9) and np.all(pred <= ratios.max(axis=0) + 1e-9)
    assert np.all(np.isfinite(BIT(**dict(KW_BIT, split=split)).fit(X, yw).predict(X)))
    # depth 0: the weighted mean, exactly as float64 (fsum) computes it
    est0 = BIT(**dict(KW_BIT, split=split, max_depth=0, n_estimators=1,
                      learning_rate=1.0)).fit(X, yw)
    s0 = math.fsum(yw[:, 0])
    expected = [math.fsum(yw[:, a]) / s0 for a in (1, 2)]
    np.testing.assert_allclose(est0.predict(X[:1])[0], expected, rtol=1e-9)
    # BPT: every event of every sample with its own factor
    Xp, nu, w = _bpt_1d_samples(200, seed=66)
    wf = w * 10.0 ** rng.uniform(-30, 30, len(w))
    bp = BPT(**dict(KW_BPT, split=split)).fit(Xp, nu, wf)
    assert np.all(np.isfinite(bp.predict(Xp)))
    assert np.isfinite(bp.score(Xp, nu, wf)) and np.all(np.isfinite(bp.train_loss_))
    bp0 = BPT(**dict(KW_BPT, split=split, max_depth=0, learn_global=True)).fit(Xp, nu, wf)
    np.testing.assert_allclose(bp0.predict(Xp[:1])[0],
                               _closed_form_delta(nu, wf, bp0.base_points_, bp0.V_),
                               rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.filterwarnings("ignore:.*times the nominal:UserWarning")   # yields 2^-25, 2: on purpose
def test_node_sums_accumulate_in_float64(split):
    # each side: one event of SM weight 2^25 first, then 1000 events of weight 1.
    # In float32 every +1 after 2^25 is rounded away (spacing 4); float64 is exact.
    big = 2.0 ** 25
    n_small = 1000
    side = np.concatenate([[big], np.ones(n_small)])
    X = np.concatenate([np.zeros(n_small + 1), np.ones(n_small + 1)])[:, None]
    c0 = np.concatenate([side, side])
    c1 = np.concatenate([[0.0], np.ones(n_small), [0.0], 2.0 * np.ones(n_small)])
    est = BIT(n_parameters=1, order=1, n_estimators=1, learning_rate=1.0, max_depth=1,
              min_samples_leaf=10, split=split).fit(X, np.column_stack([c0, c1]))
    expected = np.array([1.0, 2.0]) * n_small / (big + n_small)
    np.testing.assert_allclose(est.predict([[0.0], [1.0]])[:, 0], expected, rtol=1e-12)
    # BPT: lambda sums of the same kind; nominal 2^25 + 1000, nu = +-1 only 1000 + 1000
    Xp = np.zeros((3 * (n_small + 1), 1))
    nu = np.repeat([0.0, 1.0, -1.0], n_small + 1)[:, None]
    w = np.concatenate([side, side / 2, side * 2])
    w[n_small + 1] = 1.0
    bp = BPT(n_nuisances=1, n_estimators=1, max_depth=0, min_samples_leaf=1,
             split=split, learn_global=True).fit(Xp, nu, w)      # one leaf at rate 1
    lam = {0.0: big + n_small, 1.0: 1.0 + n_small / 2, -1.0: 2 * big + 2 * n_small}
    ell = np.log([lam[p] / lam[0.0] for p in bp.base_points_[:, 0]])
    V = bp.V_
    np.testing.assert_allclose(bp.predict(Xp[:1])[0], np.linalg.solve(V.T @ V, V.T @ ell),
                               rtol=1e-12)


# ============================================================================ 5. validation
@pytest.fixture(scope="module")
def fitted():
    X, y = _bit_data(n=200, seed=71)
    bit = BIT(**dict(KW_BIT, n_estimators=2)).fit(X, y)
    Xp, nu, w = _bpt_1d_samples(100, seed=72)
    bp = BPT(**dict(KW_BPT, n_estimators=2)).fit(Xp, nu, w)
    return dict(bit=(bit, X, y), bpt=(bp, Xp, nu, w))


def _arg(name):
    """The error message must start with the name of the offending argument."""
    return rf"^{name}\b"


def _bad_X(X):
    s = X.astype(str)
    s[1, 0] = "abc"
    o = X.astype(object)
    o[2, 1] = None
    nan = X.copy()
    nan[3, 0] = np.nan
    inf = X.copy()
    inf[4, 1] = -np.inf
    return {"strings": s, "object_none": o, "nan": nan, "inf": inf, "1d": X[:, 0],
            "3d": X[None], "complex": X + 1j, "no_rows": X[:0], "no_columns": X[:, :0],
            "scalar": 1.0}


@pytest.mark.parametrize("kind", ["bit", "bpt"])
def test_nan_and_none_are_missing_values(fitted, kind):
    X = fitted[kind][1]
    bad = _bad_X(X)
    est = fitted[kind][0]
    nan = bad["nan"]
    np.testing.assert_array_equal(est.predict(bad["object_none"])[2],
                                  est.predict(np.where(np.arange(X.shape[1]) == 1, np.nan,
                                                       X[2:3]))[0])
    assert np.all(np.isfinite(est.predict(nan)))
    np.testing.assert_array_equal(est.predict(nan)[:3], est.predict(X[:3]))


def _entry_points(kind, fitted):
    """(name, callable(X)) for every public method that takes X, with valid other args."""
    if kind == "bit":
        est, X, y = fitted["bit"]
        return [("fit", lambda Z: BIT(**KW_BIT).fit(Z, y)),
                ("predict", est.predict), ("apply", est.apply),
                ("staged_predict", lambda Z: next(est.staged_predict(Z))),
                ("predict_ratio", lambda Z: est.predict_ratio(Z, 1.0)),
                ("score", lambda Z: est.score(Z, y))]
    est, X, nu, w = fitted["bpt"]
    return [("fit", lambda Z: BPT(**KW_BPT).fit(Z, nu, w)),
            ("predict", est.predict), ("apply", est.apply),
            ("staged_predict", lambda Z: next(est.staged_predict(Z))),
            ("predict_log_ratio", lambda Z: est.predict_log_ratio(Z, 1.0)),
            ("predict_ratio", lambda Z: est.predict_ratio(Z, [1.0, -1.0])),
            ("score", lambda Z: est.score(Z, nu, w))]


@pytest.mark.parametrize("kind", ["bit", "bpt"])
# NaN (and None in an object array, which numpy turns into NaN) is a missing value since
# the engine learns where missing values go: see test_nan_and_none_are_missing_values
@pytest.mark.parametrize("bad", ["strings", "inf", "1d", "3d", "complex",
                                 "no_rows", "no_columns", "scalar", "n_features"])
def test_every_entry_point_validates_X(fitted, kind, bad):
    X = fitted[kind][1]
    Z = X[:, :1] if bad == "n_features" else _bad_X(X)[bad]
    for name, call in _entry_points(kind, fitted):
        if bad == "n_features" and name == "fit":
            continue
        with pytest.raises(ValueError, match=_arg("X")):
            call(Z)


@pytest.mark.parametrize("kind", ["bit", "bpt"])
def test_every_entry_point_refuses_an_unfitted_model(kind):
    est = BIT(**KW_BIT) if kind == "bit" else BPT(**KW_BPT)
    X = np.zeros((3, 2))
    calls = [est.predict, est.apply, lambda Z: next(est.staged_predict(Z)),
             lambda Z: est.predict_ratio(Z, 1.0), lambda Z: est.feature_importances_]
    if kind == "bit":
        calls.append(lambda Z: est.score(Z, np.ones((3, 3))))
    else:
        calls += [lambda Z: est.predict_log_ratio(Z, 1.0), lambda Z: est.score(Z, np.zeros((3, 1)))]
    for call in calls:
        with pytest.raises(NotFittedError):
            call(X)


def test_bit_validates_y_and_sample_weight(fitted):
    est, X, y = fitted["bit"]
    ys = y.astype(str)
    ys[0, 1] = "q"
    yn = y.copy()
    yn[5, 2] = np.inf
    bad_y = [ys, yn, y[:, :2], y[:-1], y[None], y + 1j, np.ones(len(y))]
    for yb in bad_y:
        with pytest.raises(ValueError, match=_arg("y")):
            BIT(**KW_BIT).fit(X, yb)
        with pytest.raises(ValueError, match=_arg("y")):
            est.score(X, yb)
    sw = np.ones(len(X))
    for swb in [sw[:, None], sw[:-1], np.where(sw > 0, np.nan, 0), ["a"] * len(X), sw + 1j]:
        with pytest.raises(ValueError, match=_arg("sample_weight")):
            BIT(**KW_BIT).fit(X, y, sample_weight=swb)
        with pytest.raises(ValueError, match=_arg("sample_weight")):
            est.score(X, y, sample_weight=swb)
    for theta in ["a", np.nan, [1.0, 2.0], np.ones((1, 1, 1)), 1j]:
        with pytest.raises(ValueError, match=_arg("theta")):
            est.predict_ratio(X, theta)


def test_bpt_validates_nu_and_sample_weight(fitted):
    est, X, nu, w = fitted["bpt"]
    nus = nu.astype(str)
    nus[0, 0] = "x"
    nun = nu.copy()
    nun[7, 0] = np.nan
    for nub in [nus, nun, nu[:-1], nu[None], np.hstack([nu, nu]), nu + 1j]:
        with pytest.raises(ValueError, match=_arg("nu")):
            BPT(**KW_BPT).fit(X, nub, w)
        with pytest.raises(ValueError, match=_arg("nu")):
            est.score(X, nub, w)
    with pytest.raises(ValueError, match=_arg("nu") + r".*not one of the fitted base points"):
        est.score(X, nu + 0.5, w)
    for swb in [w[:, None], w[:-1], np.where(w > 0, np.inf, 0), ["a"] * len(X)]:
        with pytest.raises(ValueError, match=_arg("sample_weight")):
            BPT(**KW_BPT).fit(X, nu, swb)
        with pytest.raises(ValueError, match=_arg("sample_weight")):
            est.score(X, nu, swb)
    for point in ["a", np.nan, [1.0, 2.0], np.ones((2, 3)), np.ones((1, 1, 1))]:
        with pytest.raises(ValueError, match=_arg("nu")):
            est.predict_log_ratio(X, point)
        with pytest.raises(ValueError, match=_arg("nu")):
            est.predict_ratio(X, point)



COMMON_BAD_PARAMS = [
    ("n_estimators", 0), ("n_estimators", 2.5), ("learning_rate", 2), ("learning_rate", 0.0),
    ("learning_rate", np.nan), ("learning_rate", "0.1"), ("max_depth", -1),
    ("max_depth", None), ("min_samples_leaf", 0), ("max_bins", 1), ("max_bins", 256),
    ("split", "foo"), ("n_jobs", 0), ("n_jobs", 1.5), ("order", 3), ("terms", [(5,)]),
    ("terms", [(0,), (0,)]), ("terms", [(0, 0), (0, 0)]), ("terms", [(0, 0, 0)]),
    ("terms", []), ("terms", [(-1,)]), ("verbose", -1), ("validation_fraction", 1.0),
    ("n_iter_no_change", 0), ("random_state", "seed"), ("random_state", -1),
    pytest.param("terms", [(0.5,)], id="terms-float-index"),
    pytest.param("terms", [("a",)], id="terms-string-index"),
]


@pytest.mark.parametrize("param, value", COMMON_BAD_PARAMS + [
    ("n_parameters", 0), ("n_parameters", 1.5), ("base_points", [[np.nan]]),
    ("base_points", [1.0, 2.0]), ("base_points", "a"),
    pytest.param("n_parameters", True, id="n_parameters-bool"),
    pytest.param("min_weight_leaf", -1.0, id="mwl-negative"),
    pytest.param("min_weight_leaf", np.nan, id="mwl-nan"),
    pytest.param("min_weight_leaf", "x", id="mwl-string"),
])
def test_bit_bad_hyper_parameters_name_the_argument(fitted, param, value):
    _, X, y = fitted["bit"]
    est = BIT(**dict(KW_BIT, **{param: value}))
    with pytest.raises(ValueError, match=_arg(param)):
        est.fit(X, y)
    assert not hasattr(est, "ensemble_")


@pytest.mark.parametrize("param, value", COMMON_BAD_PARAMS + [
    ("n_nuisances", 0), ("n_nuisances", 1.5),
    pytest.param("n_nuisances", True, id="n_nuisances-bool"),
    pytest.param("learn_global", "no", id="learn_global-string"),
])
def test_bpt_bad_hyper_parameters_name_the_argument(fitted, param, value):
    _, X, nu, w = fitted["bpt"]
    est = BPT(**dict(KW_BPT, **{param: value}))
    with pytest.raises(ValueError, match=_arg(param)):
        est.fit(X, nu, w)
    assert not hasattr(est, "ensemble_")
