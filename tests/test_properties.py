"""Property-based invariants of both estimators (issue 6), with hypothesis.

Data are drawn from a hypothesis-chosen seed (continuous features, so no ties unless a
test wants them), a few hundred events and a few small trees per example.  Examples are
derandomized so that the suite is reproducible; ``max_examples`` is kept small.
"""

import numpy as np
import pytest
from conftest import assert_two_real_threads, bpt_leaf_map
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_robustness import _check_bit_leaves, _check_bpt_leaves

from bpt import BoostedInformationTree as BIT
from bpt import BoostedParametricTree as BPT

PROPS = settings(max_examples=20, deadline=None, database=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow])

seeds = st.integers(0, 2 ** 32 - 1)
splits = st.sampled_from(["hist", "exact"])


# small fits: run the kernels on one thread (see conftest.one_numba_thread)
pytestmark = [pytest.mark.usefixtures("one_numba_thread"),
              # the drawn weights give base-point yields far from the nominal's on purpose
              pytest.mark.filterwarnings("ignore:.*times the nominal:UserWarning")]


# ----------------------------------------------------------------------------- data
def bit_data(seed, n, n_features, neg_fraction=0.0, integer_levels=None):
    """One parameter, quadratic: c0 = w, c_A = w (f_A(x) + noise); optional negative
    weights (sign flips rescaled by 1 / (1 - 2 fraction)) and integer-valued features."""
    rng = np.random.default_rng(seed)
    if integer_levels is None:
        X = rng.uniform(-1.0, 1.0, size=(n, n_features))
    else:
        X = rng.integers(0, integer_levels, size=(n, n_features)).astype(float)
        X = X / integer_levels * 2 - 1
    w = rng.uniform(0.5, 1.5, n)
    z = rng.normal(size=n)
    x1 = X[:, 1] if n_features > 1 else 0.0
    y = np.column_stack([w, w * (np.sin(3 * X[:, 0]) + x1 + 0.3 * z),
                         w * (X[:, 0] ** 2 + 0.2 * z)])
    if neg_fraction:
        sign = np.where(rng.uniform(size=n) < neg_fraction, -1.0, 1.0)
        y *= (sign / (1 - 2 * neg_fraction))[:, None]
    return X, y


def bpt_data(seed, n, n_features, points, integer_levels=None):
    """One nuisance; independent samples at each base point with a shifted x0 and
    random positive weights."""
    rng = np.random.default_rng(seed)
    Xs, ws = [], []
    for v in points:
        if integer_levels is None:
            X = rng.normal(size=(n, n_features))
        else:
            X = rng.integers(0, integer_levels, size=(n, n_features)).astype(float)
        X[:, 0] += 0.4 * v
        Xs.append(X)
        ws.append(rng.uniform(0.5, 1.5, n) * np.exp(0.1 * v))
    nu = np.repeat(np.asarray(points, dtype=float), n)[:, None]
    return np.vstack(Xs), nu, np.concatenate(ws)


POINTS = st.sampled_from([(0.0, 1.0, -1.0), (0.0, 1.0, -1.0, 2.0)])


@st.composite
def bit_cases(draw, max_n=250, neg=True):
    seed = draw(seeds)
    n = draw(st.integers(60, max_n))
    n_features = draw(st.integers(1, 3))
    frac = draw(st.sampled_from([0.0, 0.2])) if neg else 0.0
    X, y = bit_data(seed, n, n_features, frac)
    params = dict(n_parameters=1, order=2, split=draw(splits),
                  n_estimators=draw(st.integers(1, 4)),
                  learning_rate=draw(st.sampled_from([0.1, 0.5, 1.0])),
                  max_depth=draw(st.integers(0, 4)),
                  min_samples_leaf=draw(st.integers(1, 20)))
    return X, y, params


@st.composite
def bpt_cases(draw, max_n=100):
    seed = draw(seeds)
    n = draw(st.integers(30, max_n))
    n_features = draw(st.integers(1, 3))
    X, nu, w = bpt_data(seed, n, n_features, draw(POINTS))
    params = dict(n_nuisances=1, split=draw(splits),
                  n_estimators=draw(st.integers(1, 4)),
                  learning_rate=draw(st.sampled_from([0.1, 0.5, 1.0])),
                  learn_global=draw(st.booleans()),
                  max_depth=draw(st.integers(0, 4)),
                  min_samples_leaf=draw(st.integers(1, 10)))
    return X, nu, w, params


def _same_structure(a, b, thresholds=True):
    a, b = a.ensemble_.arrays, b.ensemble_.arrays
    return (np.array_equal(a["feature"], b["feature"])
            and (not thresholds or np.array_equal(a["threshold"], b["threshold"]))
            and np.array_equal(a["n_samples"], b["n_samples"]))


def _same_partitions(hist, exact):
    # Same splits of the training events.  The stored thresholds may differ: a hist split
    # sits on a global bin edge, an exact split midway between the values present in the
    # node, and both are anywhere in the same gap of the node's values; so only training
    # events (not arbitrary points) are guaranteed the same prediction.
    ok = _same_structure(hist, exact, thresholds=False)
    ga, gb = hist.ensemble_.arrays["gain"], exact.ensemble_.arrays["gain"]
    return ok and np.allclose(ga, gb, rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------------------- row order
@PROPS
@given(case=bit_cases(), perm_seed=seeds)
def test_bit_invariant_under_row_permutation(case, perm_seed):
    X, y, params = case
    perm = np.random.default_rng(perm_seed).permutation(len(X))
    ref = BIT(**params).fit(X, y)
    est = BIT(**params).fit(X[perm], y[perm])
    np.testing.assert_allclose(est.predict(X), ref.predict(X), rtol=1e-9, atol=1e-12)


@PROPS
@given(case=bpt_cases(), perm_seed=seeds)
def test_bpt_invariant_under_row_permutation(case, perm_seed):
    X, nu, w, params = case
    perm = np.random.default_rng(perm_seed).permutation(len(X))
    ref = BPT(**params).fit(X, nu, w)
    est = BPT(**params).fit(X[perm], nu[perm], w[perm])
    np.testing.assert_allclose(est.predict(X), ref.predict(X), rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------------------- threads
@PROPS
@given(case=bit_cases())
def test_bit_invariant_under_n_jobs(case):
    assert_two_real_threads()
    X, y, params = case
    p1 = BIT(n_jobs=1, **params).fit(X, y).predict(X)
    p2 = BIT(n_jobs=2, **params).fit(X, y).predict(X)
    np.testing.assert_array_equal(p1, p2)


@PROPS
@given(case=bpt_cases())
def test_bpt_invariant_under_n_jobs(case):
    assert_two_real_threads()
    X, nu, w, params = case
    p1 = BPT(n_jobs=1, **params).fit(X, nu, w).predict(X)
    p2 = BPT(n_jobs=2, **params).fit(X, nu, w).predict(X)
    np.testing.assert_array_equal(p1, p2)


# ----------------------------------------------------------------------------- scaling
@PROPS
@given(case=bit_cases(), log10_scale=st.floats(-30, 30))
def test_bit_invariant_under_global_weight_scaling(case, log10_scale):
    X, y, params = case
    s = 10.0 ** log10_scale
    ref = BIT(**params).fit(X, y)
    est = BIT(**params).fit(X, y * s)
    np.testing.assert_allclose(est.predict(X), ref.predict(X), rtol=1e-9, atol=1e-12)


@PROPS
@given(case=bpt_cases(), log10_scale=st.floats(-30, 30))
def test_bpt_invariant_under_global_weight_scaling(case, log10_scale):
    X, nu, w, params = case
    s = 10.0 ** log10_scale
    ref = BPT(**params).fit(X, nu, w)
    est = BPT(**params).fit(X, nu, w * s)
    np.testing.assert_allclose(est.predict(X), ref.predict(X), rtol=1e-9, atol=1e-12)


def _scale_base_point(est_ref, nu, w, k, s):
    """Weights with every event of class k (0 = nominal, else base_points_[k-1]) times s,
    and the exact shift of Delta: H e log s, e = e_k (k >= 1) or -1 (k = 0), with H the
    leaf map (V^T V)^-1 V^T, or (V^T W V)^-1 V^T W for independent samples (W does not
    change: effective sizes do not depend on a weight scale)."""
    V = est_ref.V_
    if k == 0:
        sel = np.all(nu == 0, axis=1)
        e = -np.ones(V.shape[0])
    else:
        sel = np.all(nu == est_ref.base_points_[k - 1], axis=1)
        e = np.zeros(V.shape[0])
        e[k - 1] = 1.0
    w2 = np.where(sel, w * s, w)
    return w2, bpt_leaf_map(est_ref, nu, w) @ e * np.log(s)


@PROPS
@given(case=bpt_cases(), k=st.integers(0, 4), log10_scale=st.floats(-6, 6),
       n_estimators=st.integers(1, 5))
def test_bpt_scaling_one_base_point_shifts_delta_exactly_depth0(case, k, log10_scale,
                                                                n_estimators):
    # max_depth=0, learn_global=True: the first tree (rate 1) is the closed form
    # H l, H = (V^T W V)^-1 V^T W (conftest.bpt_leaf_map).  It leaves residual log ratios (I - P) l with P = V H, and
    # H (I - P) = H - H V H = 0, so every later tree is zero, whatever its rate.  Scaling
    # base point k by s adds log s to l_k (or -log s to every l for the nominal), hence
    # shifts Delta by exactly H e_k log s, for any number of trees.
    X, nu, w, params = case
    params.update(max_depth=0, learn_global=True, n_estimators=n_estimators)
    ref = BPT(**params).fit(X, nu, w)
    k = k % (len(ref.base_points_) + 1)
    w2, shift = _scale_base_point(ref, nu, w, k, 10.0 ** log10_scale)
    est = BPT(**params).fit(X, nu, w2)
    np.testing.assert_allclose(est.predict(X[:5]) - ref.predict(X[:5]),
                               np.tile(shift, (5, 1)), rtol=1e-9, atol=1e-11)


@settings(PROPS, max_examples=25)
@given(seed=seeds, points=POINTS, k=st.integers(0, 4), log10_scale=st.floats(-1, 1),
       split=splits, max_depth=st.integers(1, 3))
def test_bpt_scaling_one_base_point_shifts_every_leaf_single_tree(seed, points, k,
                                                                  log10_scale, split,
                                                                  max_depth):
    # one tree with rate 1: every leaf holds H l_leaf; if the scaled fit has the same
    # structure (the split criterion is not invariant, so it may not), every leaf's log
    # ratio l_leaf,k moves by log s and every leaf's Delta by H e_k log s
    X, nu, w = bpt_data(seed, 150, 2, points)
    params = dict(n_nuisances=1, n_estimators=1, learn_global=True, max_depth=max_depth,
                  min_samples_leaf=15, split=split)
    ref = BPT(**params).fit(X, nu, w)
    k = k % (len(ref.base_points_) + 1)
    w2, shift = _scale_base_point(ref, nu, w, k, 10.0 ** log10_scale)
    est = BPT(**params).fit(X, nu, w2)
    assume(_same_structure(est, ref))
    np.testing.assert_allclose(est.predict(X) - ref.predict(X),
                               np.tile(shift, (len(X), 1)), rtol=1e-9, atol=1e-11)


# ----------------------------------------------------------------------------- duplicates
@PROPS
@given(case=bit_cases(), min_weight_leaf=st.sampled_from([0.0, 3.0, 10.0]))
def test_bit_duplicated_rows_with_half_weight_give_the_same_model(case, min_weight_leaf):
    # every node keeps its weight sums (so min_weight_leaf is unchanged), but holds twice
    # the events: min_samples_leaf, which counts events, is doubled
    X, y, params = case
    ref = BIT(min_weight_leaf=min_weight_leaf, **params).fit(X, y)
    dup = dict(params, min_samples_leaf=2 * params["min_samples_leaf"])
    est = BIT(min_weight_leaf=min_weight_leaf, **dup).fit(np.vstack([X, X]),
                                                         np.vstack([y, y]) / 2)
    np.testing.assert_allclose(est.predict(X), ref.predict(X), rtol=1e-9, atol=1e-12)


@PROPS
@given(case=bpt_cases(max_n=60))
def test_bpt_duplicated_rows_with_half_weight_give_the_same_model(case):
    # at most 240 distinct values: the histogram bins are the distinct values, so that
    # duplicating rows cannot move quantile bin edges
    X, nu, w, params = case
    ref = BPT(**params).fit(X, nu, w)
    dup = dict(params, min_samples_leaf=2 * params["min_samples_leaf"])
    est = BPT(**dup).fit(np.repeat(X, 2, axis=0), np.repeat(nu, 2, axis=0),
                         sample_weight=np.repeat(w, 2) / 2)
    np.testing.assert_allclose(est.predict(X), ref.predict(X), rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------------------- hist = exact
@PROPS
@given(seed=seeds, n=st.integers(60, 300), n_features=st.integers(1, 3),
       levels=st.integers(2, 40), extra_bins=st.integers(1, 215),
       max_depth=st.integers(1, 4), n_estimators=st.integers(1, 4),
       min_samples_leaf=st.integers(1, 15), neg=st.sampled_from([0.0, 0.2]))
def test_bit_hist_equals_exact_with_few_distinct_values(seed, n, n_features, levels,
                                                        extra_bins, max_depth,
                                                        n_estimators, min_samples_leaf, neg):
    X, y = bit_data(seed, n, n_features, neg, integer_levels=levels)
    params = dict(n_parameters=1, order=2, max_bins=levels + extra_bins,
                  max_depth=max_depth, n_estimators=n_estimators, learning_rate=0.5,
                  min_samples_leaf=min_samples_leaf)
    hist = BIT(split="hist", **params).fit(X, y)
    exact = BIT(split="exact", **params).fit(X, y)
    assert _same_partitions(hist, exact)
    np.testing.assert_allclose(hist.predict(X), exact.predict(X), rtol=1e-9, atol=1e-12)


@PROPS
@given(seed=seeds, n=st.integers(30, 100), n_features=st.integers(1, 3),
       levels=st.integers(2, 30), extra_bins=st.integers(1, 215), points=POINTS,
       max_depth=st.integers(1, 4), n_estimators=st.integers(1, 4),
       min_samples_leaf=st.integers(1, 10))
def test_bpt_hist_equals_exact_with_few_distinct_values(seed, n, n_features, levels,
                                                        extra_bins, points, max_depth,
                                                        n_estimators, min_samples_leaf):
    X, nu, w = bpt_data(seed, n, n_features, points, integer_levels=levels)
    # the shift 0.4 nu adds levels: keep the count of distinct values below max_bins
    n_distinct = max(len(np.unique(X[:, f])) for f in range(n_features))
    params = dict(n_nuisances=1, max_bins=min(255, n_distinct + extra_bins),
                  max_depth=max_depth, n_estimators=n_estimators, learning_rate=0.5,
                  min_samples_leaf=min_samples_leaf)
    assume(n_distinct < params["max_bins"])
    hist = BPT(split="hist", **params).fit(X, nu, w)
    exact = BPT(split="exact", **params).fit(X, nu, w)
    assert _same_partitions(hist, exact)
    np.testing.assert_allclose(hist.predict(X), exact.predict(X), rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------------------- validity
@PROPS
@given(case=bit_cases(max_n=300), min_weight_leaf=st.sampled_from([0.0, 2.0, 8.0]),
       neg_fraction=st.sampled_from([0.1, 0.3]), sign_seed=seeds)
def test_bit_leaves_always_valid_with_negative_weights(case, min_weight_leaf, neg_fraction,
                                                       sign_seed):
    X, y, params = case
    sign = np.where(np.random.default_rng(sign_seed).uniform(size=len(y)) < neg_fraction,
                    -1.0, 1.0)
    y = y * (sign / (1 - 2 * neg_fraction))[:, None]
    assume(y[:, 0].sum() > 0)
    est = BIT(min_weight_leaf=min_weight_leaf, **params).fit(X, y)
    _check_bit_leaves(est, X, y[:, 0], min_weight_leaf)
    assert np.all(np.isfinite(est.predict(X)))


@PROPS
@given(case=bpt_cases(), neg_fraction=st.sampled_from([0.1, 0.25]), sign_seed=seeds)
def test_bpt_leaves_always_valid_with_negative_weights(case, neg_fraction, sign_seed):
    X, nu, w, params = case
    sign = np.where(np.random.default_rng(sign_seed).uniform(size=len(w)) < neg_fraction,
                    -1.0, 1.0)
    w = w * sign
    for v in np.unique(nu[:, 0]):
        assume(w[nu[:, 0] == v].sum() > 0)
    est = BPT(**params).fit(X, nu, w)
    _check_bpt_leaves(est, X, nu, w)
    assert np.all(np.isfinite(est.predict(X)))


@pytest.mark.parametrize("name", ["bit", "bpt"])
def test_property_data_are_tie_free(name):
    # the permutation tests rely on continuous features without ties
    X = bit_data(1, 300, 3)[0] if name == "bit" else bpt_data(1, 100, 3, (0.0, 1.0, -1.0))[0]
    for f in range(X.shape[1]):
        assert len(np.unique(X[:, f])) == len(X)
