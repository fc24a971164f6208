"""BPT leaves linear in x (docs/concepts.md "Linear leaves"): truth, invariants, files."""

import io

import numpy as np
import pytest
from conftest import (BPT_POINTS, assert_two_real_threads, bpt_gaussian_samples,
                      resave_container, true_bpt_delta)

import bpt
from bpt._engine._linear import (leaf_moments, path_features, reference_values,
                                 solve_linear_bpt)
from bpt._engine._loss import BPTLoss
from bpt._terms import monomials

BPT = bpt.BoostedParametricTree
KW = dict(n_nuisances=2, n_estimators=30, max_depth=2, min_samples_leaf=30,
          early_stopping=False, random_state=0)


def _rmse(est, X):
    return float(np.sqrt(np.mean((est.predict(X) - true_bpt_delta(X)) ** 2)))


# ----------------------------------------------------------------------------- truth
@pytest.mark.parametrize("reweighted,n", [(True, 4000), (False, 10000)])
def test_linear_truth_is_learned_better_than_with_constant_leaves(reweighted, n):
    # Delta_A(x) is exactly linear in x (conftest): constant leaves approximate it by
    # steps, linear leaves by the line itself; at the defaults (early stopping), judged
    # on fresh points of the nominal.  Shared events reweighted (little noise): the line
    # is recovered (measured: 0.019 against 0.067 of the truth's spread); independent
    # samples (noise dominates): still better (0.249 against 0.259)
    X, nu, w = bpt_gaussian_samples(n, seed=11, reweighted=reweighted)
    groups = np.tile(np.arange(n), len(BPT_POINTS) + 1) if reweighted else None
    Xt = np.random.default_rng(12).normal(size=(5000, 3))
    scale = float(np.std(true_bpt_delta(Xt)))
    err = {}
    for a in (0.0, 0.5, 1.0):
        est = BPT(n_nuisances=2, random_state=0, linear_leaves=a).fit(X, nu, w,
                                                                      groups=groups)
        assert est.ensemble_.has_linear == (a > 0)
        err[a] = _rmse(est, Xt) / scale
    if reweighted:
        assert err[0.5] < 0.4 * err[0.0] and err[1.0] < 0.4 * err[0.0], err
        assert err[0.5] < 0.03, err
    else:
        assert err[0.5] < 0.98 * err[0.0], err


def test_gaussian_tilt_moments_give_the_exact_log_ratio():
    # a leaf whose nominal is N(mu0, S) and whose samples are exponential tilts of it
    # (log p_k / p_0 = l_k + b_k.(x - mu0) - b_k S b_k / 2, means mu0 + S b_k): with
    # alpha = 1 the leaf's Delta(x) is H (log p_k / p_0)(x) for every x
    rng = np.random.default_rng(3)
    V = monomials(BPT_POINTS, [(0,), (1,), (0, 0), (0, 1), (1, 1)])
    n, T, d = V.shape[0], V.shape[1], 2
    loss = BPTLoss(V)
    mu0 = np.array([0.3, -0.2])
    A = rng.normal(size=(d, d))
    S = A @ A.T + 0.5 * np.eye(d)
    b = rng.normal(scale=0.3, size=(n, d))
    lam = np.concatenate([[1.0], np.exp(rng.normal(scale=0.1, size=n))])
    mu = np.vstack([mu0, mu0 + b @ S])
    m1 = (lam[:, None] * mu)[None]                               # (1 leaf, C, d)
    m2 = (lam[0] * (S + np.outer(mu0, mu0)))[None]
    moments = (lam[None], m1, m2, np.full((1, d), -10.0), np.full((1, d), 10.0),
               np.zeros((1, d), dtype=np.int64), np.zeros(1, dtype=np.int64))

    class Tree:                                                  # one leaf, features 0, 1
        feature = np.array([-1])
        left = right = np.array([-1])
        value = np.zeros((1, T))
    tree = Tree()
    solve_linear_bpt(tree, np.array([[0, 1, -1, -1]]), moments, loss.H, V, 1.0,
                     np.ones(d), np.zeros(d))
    lin = tree.linear
    x = rng.uniform(-3, 3, size=(50, d))
    got = tree.value[0] + sum(np.outer(x[:, lin["feature"][q]] - lin["centre"][q],
                                       lin["slope"][q]) for q in range(d))
    ell = (np.log(lam[1:] / lam[0])[None] + (x - mu0) @ b.T
           - 0.5 * np.einsum("kd,de,ke->k", b, S, b)[None])
    np.testing.assert_allclose(got, ell @ loss.H.T, rtol=1e-10, atol=1e-12)


def test_leaf_moments_are_the_weighted_sums():
    rng = np.random.default_rng(5)
    N = 300
    X = rng.normal(size=(N, 3)) * [1.0, 100.0, 1e-3] + [0.0, 1e4, 0.0]
    cls = rng.integers(0, 3, N)
    w = rng.uniform(0.5, 2.0, N)
    leaf = rng.integers(0, 2, N)
    feats = np.array([[1, 2, -1, -1], [0, -1, -1, -1]])
    scale, ref = reference_values(X)
    s, m1, m2, lo, hi, n_nan, n_neg = leaf_moments(X, np.arange(N), cls, w, leaf, feats,
                                                   scale, ref, 3)
    for j in range(2):
        f = feats[j][feats[j] >= 0]
        u = X[:, f] / scale[f] - ref[f]
        for k in range(3):
            r = (leaf == j) & (cls == k)
            assert s[j, k] == pytest.approx(w[r].sum(), rel=1e-12)
            np.testing.assert_allclose(m1[j, k, :len(f)], w[r] @ u[r], rtol=1e-12, atol=1e-12)
        r = (leaf == j) & (cls == 0)
        np.testing.assert_allclose(np.tril(m2[j, :len(f), :len(f)]),
                                   np.tril((u[r].T * w[r]) @ u[r]), rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(lo[j, :len(f)], X[leaf == j][:, f].min(axis=0))
        np.testing.assert_array_equal(hi[j, :len(f)], X[leaf == j][:, f].max(axis=0))
    assert not n_nan.any() and not n_neg.any()


# ------------------------------------------------------------------------ invariants
@pytest.fixture(scope="module")
def model():
    X, nu, w = bpt_gaussian_samples(1500, seed=21)
    return BPT(**KW).fit(X, nu, w), X, nu, w


def _manual_predict(est, X):
    """Sum over trees of leaf value + slope (clip(x, lo, hi) - centre), NaN -> 0."""
    a = est.ensemble_.arrays
    leaves = est.apply(X)
    out = np.zeros((X.shape[0], a["value"].shape[1]))
    for t in range(leaves.shape[1]):
        j = leaves[:, t]
        out += a["value"][j]
        for i in range(X.shape[0]):
            for q in range(a["linear_start"][j[i]],
                           a["linear_start"][j[i]] + a["linear_count"][j[i]]):
                x = X[i, a["linear_feature"][q]]
                if np.isnan(x):
                    continue
                x = min(max(x, a["linear_lo"][q]), a["linear_hi"][q])
                out[i] += a["linear_slope"][q] * (x - a["linear_centre"][q])
    return out


def test_predict_is_the_sum_of_leaf_values_and_clipped_linear_terms(model):
    est, X, _, _ = model
    rng = np.random.default_rng(1)
    Xt = rng.normal(scale=3.0, size=(200, 3))
    Xt[:20] *= 1e3                              # far beyond the leaves' ranges
    Xt[20:60:2, 0] = np.nan
    Xt[21:60:2, 2] = np.nan
    a = est.ensemble_.arrays
    assert a["linear_feature"].shape[0] > 0
    np.testing.assert_allclose(est.predict(Xt), _manual_predict(est, Xt), rtol=1e-12,
                               atol=1e-14)
    C = est.predict_contributions(Xt)
    np.testing.assert_allclose(C.sum(axis=1), est.predict(Xt), rtol=1e-10, atol=1e-13)
    # beyond the range a leaf is constant: x = 1e6 predicts as the largest training x
    x_big, x_edge = Xt[:1].copy(), Xt[:1].copy()
    x_big[0, 0], x_edge[0, 0] = 1e6, X[:, 0].max()
    x_big[0, 1:], x_edge[0, 1:] = 0.0, 0.0
    np.testing.assert_array_equal(est.predict(x_big), est.predict(x_edge))


def test_linear_leaves_do_not_depend_on_threads_or_row_order(model):
    est, X, nu, w = model
    Xt = np.random.default_rng(2).normal(size=(500, 3))
    one = BPT(**dict(KW, n_jobs=1)).fit(X, nu, w)
    two = BPT(**dict(KW, n_jobs=2)).fit(X, nu, w)
    assert_two_real_threads()
    np.testing.assert_array_equal(one.predict(Xt), two.predict(Xt))
    perm = np.random.default_rng(3).permutation(len(w))
    shuffled = BPT(**KW).fit(X[perm], nu[perm], w[perm])
    for k in ("feature", "linear_count", "linear_feature"):
        np.testing.assert_array_equal(shuffled.ensemble_.arrays[k], est.ensemble_.arrays[k])
    np.testing.assert_allclose(shuffled.predict(Xt), est.predict(Xt), rtol=1e-9, atol=1e-12)


def test_save_load_and_corrupted_linear_arrays(model, tmp_path):
    est, _, _, _ = model
    Xt = np.random.default_rng(4).normal(size=(100, 3))
    buf = io.BytesIO()
    est.save(buf)
    np.testing.assert_array_equal(bpt.load(io.BytesIO(buf.getvalue())).predict(Xt),
                                  est.predict(Xt))
    internal = int(np.flatnonzero(est.ensemble_.arrays["feature"] >= 0)[0])

    def bad_feature(meta, arrays):
        arrays["ensemble/linear_feature"][0] = 7

    def at_internal(meta, arrays):
        arrays["ensemble/linear_count"][internal] = 1

    def outside(meta, arrays):
        j = int(np.flatnonzero(arrays["ensemble/linear_count"] > 0)[-1])
        arrays["ensemble/linear_start"][j] = arrays["ensemble/linear_feature"].shape[0]

    def inverted_range(meta, arrays):
        arrays["ensemble/linear_lo"][0] = arrays["ensemble/linear_hi"][0] + 1.0

    def missing(meta, arrays):
        del arrays["ensemble/linear_centre"]

    def unknown(meta, arrays):
        arrays["ensemble/linear_quadratic"] = np.zeros(3)

    for mutate, msg in [(bad_feature, "linear-leaf features"), (at_internal, "only at leaves"),
                        (outside, "outside the term arrays"), (inverted_range, "linear_lo"),
                        (missing, "incomplete"), (unknown, "unknown tree arrays")]:
        with pytest.raises(ValueError, match=msg):
            bpt.load(io.BytesIO(resave_container(buf.getvalue(), mutate)))


def test_constant_leaves_have_no_linear_terms_and_old_files_load(model):
    _, X, nu, w = model
    est = BPT(**KW, linear_leaves=0.0).fit(X, nu, w)
    a = est.ensemble_.arrays
    assert not est.ensemble_.has_linear and not a["linear_count"].any()
    # arrays without the linear fields (files written before them) load as constant
    from bpt._engine._predictor import TreeEnsemble
    old = {k: v for k, v in a.items() if not k.startswith("linear_")}
    Xt = X[:50]
    np.testing.assert_array_equal(TreeEnsemble.from_arrays(old).predict(Xt), est.predict(Xt))


def test_leaves_holding_missing_values_stay_constant():
    X, nu, w = bpt_gaussian_samples(1500, seed=31)
    X = X.copy()
    X[::7, 0] = np.nan
    est = BPT(**KW).fit(X, nu, w)
    a = est.ensemble_.arrays
    leaves = est.apply(X)
    for t in range(leaves.shape[1]):
        for j in np.unique(leaves[:, t]):
            rows = leaves[:, t] == j
            q = slice(a["linear_start"][j], a["linear_start"][j] + a["linear_count"][j])
            for f in a["linear_feature"][q]:
                assert not np.isnan(X[rows, f]).any()
    assert est.ensemble_.has_linear
    assert np.all(np.isfinite(est.predict(X)))


def test_path_features_are_distinct_and_root_first():
    # root splits on 2, its left child on 0, that child's left on 2 again
    feature = np.array([2, 0, -1, 2, -1, -1, -1])
    left = np.array([1, 3, -1, 5, -1, -1, -1])
    right = np.array([2, 4, -1, 6, -1, -1, -1])
    leaves, feats = path_features(feature, left, right)
    np.testing.assert_array_equal(leaves, [2, 4, 5, 6])
    np.testing.assert_array_equal(feats[:, :2], [[2, -1], [2, 0], [2, 0], [2, 0]])
    assert np.all(feats[:, 2:] == -1)


@pytest.mark.parametrize("value", [-0.1, 1.5, True, "yes", None, np.nan])
def test_bad_linear_leaves_value(value):
    X, nu, w = bpt_gaussian_samples(100, seed=1)
    with pytest.raises(ValueError, match="linear_leaves"):
        BPT(**dict(KW, n_estimators=1), linear_leaves=value).fit(X, nu, w)
