"""Grower stage: stable partition, best-first growth, feature draws, subsample, threads."""

import numba
import numpy as np
import pytest
from conftest import bit_quadratic_model, bpt_gaussian_samples

from bpt import BoostedInformationTree as BIT
from bpt import BoostedParametricTree as BPT
from bpt._engine._grower import draw_features, partition_binned


@pytest.mark.parametrize("n", [1_000, 300_000])
@pytest.mark.parametrize("mleft", [False, True])
@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_partition_is_stable_and_exact(n, mleft, n_threads):
    """Serial (1 000 rows, or one thread) and in 2 or 3 parallel chunks (300 000 rows)."""
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 10, n).astype(np.uint8)
    codes[rng.random(n) < 0.1] = 10                      # missing
    rows = rng.permutation(n).astype(np.int64)
    a0, a1 = 17, n - 5
    want_mask = np.where(codes[rows[a0:a1]] == 10, mleft, codes[rows[a0:a1]] <= 4)
    want = np.concatenate([rows[a0:a1][want_mask], rows[a0:a1][~want_mask]])
    got = rows.copy()
    nl = partition_binned(got, a0, a1, codes, 4, mleft, 10, np.empty(n, np.int64), n_threads)
    assert nl == want_mask.sum()
    np.testing.assert_array_equal(got[a0:a1], want)
    np.testing.assert_array_equal(got[:a0], rows[:a0])
    np.testing.assert_array_equal(got[a1:], rows[a1:])


def test_feature_draws_are_distinct_sorted_and_reproducible():
    seen = set()
    for node in range(50):
        f = draw_features(10, 4, np.uint64(123), node)
        assert len(f) == 4 and len(set(f)) == 4 and np.all(np.diff(f) > 0)
        assert f.min() >= 0 and f.max() < 10
        np.testing.assert_array_equal(f, draw_features(10, 4, np.uint64(123), node))
        seen.update(f.tolist())
    assert seen == set(range(10))
    np.testing.assert_array_equal(draw_features(5, 5, np.uint64(1), 0), np.arange(5))


def _leaves_per_tree(est):
    a = est.ensemble_.arrays
    ends = np.append(a["tree_start"][1:], a["feature"].shape[0])
    return np.array([np.sum(a["feature"][s:e] < 0) for s, e in zip(a["tree_start"], ends)])


def _splits(est, t):
    """Set of (path, feature, threshold) of tree t: comparable across node numbering."""
    a = est.ensemble_.arrays
    out = set()
    stack = [(a["tree_start"][t], ())]
    while stack:
        j, path = stack.pop()
        if a["feature"][j] >= 0:
            key = (a["feature"][j], a["threshold"][j])
            out.add((path, key))
            stack += [(a["left"][j], path + (key, "L")), (a["right"][j], path + (key, "R"))]
    return out


def test_best_first_growth_limits_leaves_and_splits_largest_gain_first():
    X, y, _ = bit_quadratic_model(20_000, seed=3)
    kw = dict(n_parameters=2, n_estimators=3, min_samples_leaf=50, random_state=0)
    full = BIT(max_depth=3, **kw).fit(X, y)
    n_full = _leaves_per_tree(full)
    assert np.all(n_full == 8)
    # with as many leaves as the depth-limited tree has, best first grows the same tree
    same = BIT(max_depth=3, max_leaf_nodes=8, **kw).fit(X, y)
    for t in range(3):
        assert _splits(same, t) == _splits(full, t)
    np.testing.assert_allclose(same.predict(X[:500]), full.predict(X[:500]), rtol=1e-10,
                               atol=1e-12)
    # 3 leaves: the root split, then the child with the larger gain
    three = BIT(max_depth=None, max_leaf_nodes=3, **kw).fit(X, y)
    assert np.all(_leaves_per_tree(three) == 3)
    a, af = three.ensemble_.arrays, full.ensemble_.arrays
    root_l, root_r = af["left"][0], af["right"][0]
    bigger = root_l if af["gain"][root_l] >= af["gain"][root_r] else root_r
    split_child = a["left"][0] if a["feature"][a["left"][0]] >= 0 else a["right"][0]
    assert a["feature"][split_child] == af["feature"][bigger]
    assert a["threshold"][split_child] == af["threshold"][bigger]
    # without a depth limit, best first may go deeper than 3
    deep = BIT(max_depth=None, max_leaf_nodes=12, **kw).fit(X, y)
    assert np.all(_leaves_per_tree(deep) == 12)


def test_subsample_and_max_features_reproducible_and_random_state_matters():
    X, y, _ = bit_quadratic_model(20_000, seed=4)
    kw = dict(n_parameters=2, n_estimators=6, max_depth=3, subsample=0.5, max_features=0.5)
    a = BIT(random_state=1, **kw).fit(X, y).predict(X[:300])
    b = BIT(random_state=1, **kw).fit(X, y).predict(X[:300])
    c = BIT(random_state=2, **kw).fit(X, y).predict(X[:300])
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_max_features_one_splits_only_on_drawn_features():
    X, y, _ = bit_quadratic_model(10_000, seed=5)
    est = BIT(n_parameters=2, n_estimators=5, max_depth=2, max_features=0.34,
              random_state=0).fit(X, y)                      # one feature per node
    a = est.ensemble_.arrays
    # different nodes use different features (feature 2 is noise, it may still be drawn)
    assert len(set(a["feature"][a["feature"] >= 0].tolist())) >= 2


def test_subsampled_trees_update_every_row():
    # train_loss_ is booked from the leaf sums of all rows; it equals the model loss
    X, y, _ = bit_quadratic_model(20_000, seed=6)
    est = BIT(n_parameters=2, n_estimators=8, max_depth=3, subsample=0.3,
              random_state=0, early_stopping=False).fit(X, y)
    assert -est.score(X, y) == pytest.approx(est.train_loss_[-1], rel=1e-9)
    Xb, nub, wb = bpt_gaussian_samples(3_000, seed=7)
    bp = BPT(n_nuisances=2, n_estimators=6, max_depth=3, subsample=0.5,
             random_state=0, early_stopping=False).fit(Xb, nub, wb)
    assert -bp.score(Xb, nub, wb) == pytest.approx(bp.train_loss_[-1], rel=1e-9)


@pytest.mark.parametrize("make", ["bit", "bpt"])
def test_invariant_to_real_thread_count(make):
    old = numba.get_num_threads()
    try:
        res = []
        for threads in (1, 2):
            numba.set_num_threads(threads)
            if make == "bit":
                X, y, _ = bit_quadratic_model(80_000, seed=8)     # parallel partition too
                est = BIT(n_parameters=2, n_estimators=4, max_depth=4, subsample=0.8,
                          max_features=0.7, l2_regularization=1e-3, random_state=3)
                est.fit(X, y)
            else:
                X, nu, w = bpt_gaussian_samples(10_000, seed=9)
                est = BPT(n_nuisances=2, n_estimators=4, max_depth=4, subsample=0.8,
                          max_features=0.7, l2_regularization=1e-3, max_leaf_nodes=10,
                          random_state=3)
                est.fit(X, nu, w)
            res.append(est.ensemble_.arrays)
    finally:
        numba.set_num_threads(old)
    for k in ("feature", "threshold", "left", "right", "value", "gain", "missing_go_left"):
        np.testing.assert_array_equal(res[0][k], res[1][k], err_msg=k)


def test_bpt_min_weight_leaf_holds_for_every_sample_in_every_leaf():
    X, nu, w = bpt_gaussian_samples(3_000, seed=10)
    mwl = 0.08 * w[np.all(nu == 0, axis=1)].sum()
    est = BPT(n_nuisances=2, n_estimators=1, max_depth=4, min_samples_leaf=5,
              min_weight_leaf=mwl, random_state=0).fit(X, nu, w)
    leaves = est.apply(X)[:, 0]                  # first tree: the original weights
    pts = np.vstack([np.zeros(2), est.base_points_])
    cls = np.argmax(np.all(nu[:, None, :] == pts[None], axis=2), axis=1)
    assert len(np.unique(leaves)) >= 3
    for leaf in np.unique(leaves):
        sums = np.bincount(cls[leaves == leaf], w[leaves == leaf], minlength=len(pts))
        assert np.all(sums >= mwl * (1 - 1e-12)), (leaf, sums, mwl)
    # without the constraint some leaf is lighter
    free = BPT(n_nuisances=2, n_estimators=1, max_depth=4, min_samples_leaf=5,
               random_state=0).fit(X, nu, w)
    lv = free.apply(X)[:, 0]
    lightest = min(np.bincount(cls[lv == k], w[lv == k], minlength=len(pts)).min()
                   for k in np.unique(lv))
    assert lightest < mwl


@pytest.mark.parametrize("kw, match", [
    (dict(l2_regularization=-1.0), "l2_regularization"),
    (dict(l2_regularization=np.inf), "l2_regularization"),
    (dict(subsample=0.0), "subsample"),
    (dict(subsample=1.5), "subsample"),
    (dict(max_features=0), "max_features"),
    (dict(max_leaf_nodes=1), "max_leaf_nodes"),
    (dict(max_depth=None), "max_depth"),
    (dict(max_leaf_nodes=4, split="exact"), "max_leaf_nodes"),
])
@pytest.mark.parametrize("cls", [BIT, BPT])
def test_bad_new_hyper_parameters(kw, match, cls):
    X = np.random.default_rng(0).normal(size=(400, 2))
    if cls is BIT:
        y = np.column_stack([np.ones(400), X[:, 0]])
        with pytest.raises(ValueError, match=match):
            BIT(n_parameters=1, order=1, **kw).fit(X, y)
    else:
        nu = np.repeat([[0.0], [1.0]], 200, axis=0)
        with pytest.raises(ValueError, match=match):
            BPT(n_nuisances=1, order=1, min_samples_leaf=5, **kw).fit(X, nu)


@pytest.mark.parametrize("validation", [False, True])
def test_memory_during_a_fit_does_not_grow_with_the_number_of_trees(validation):
    """The boosting loop keeps only each tree's nodes: no row-length array per tree
    (they once stayed alive until the end of the fit: peak memory N x 16 bytes x trees).
    Peak traced memory of 60 trees equals that of 5 trees to within a small margin."""
    import tracemalloc

    rng = np.random.default_rng(0)
    n = 40_000
    X = rng.normal(size=(n, 3))
    y = np.column_stack([np.ones(n), X[:, 0] + 0.1 * rng.normal(size=n)])
    kw = dict(n_parameters=1, order=1, max_depth=3, early_stopping=validation,
              validation_fraction=0.2 if validation else 0.1, n_iter_no_change=1000)
    BIT(n_estimators=2, **kw).fit(X, y)                    # compile outside the trace

    def peak(n_trees):
        tracemalloc.start()
        BIT(n_estimators=n_trees, **kw).fit(X, y)
        out = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return out

    few, many = peak(5), peak(60)
    # one row-length int64 array per tree would add 55 x 320 kB = 17.6 MB
    assert many - few < 2_000_000, (few, many)
