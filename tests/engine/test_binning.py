"""Binning stage: edges, codes, missing values, float32 (bpt/_engine/_binning.py)."""

import numpy as np

from bpt._engine._binning import BinMapper


def test_few_distinct_values_get_midpoint_edges_and_one_bin_each():
    X = np.array([[3.0], [1.0], [2.0], [1.0], [3.0]])
    m = BinMapper(max_bins=255).fit(X)
    assert m.n_bins_[0] == 3
    np.testing.assert_array_equal(m.edges_[0, :2], [1.5, 2.5])
    assert np.all(np.isinf(m.edges_[0, 2:]))
    np.testing.assert_array_equal(m.transform(X)[0], [2, 0, 1, 0, 2])


def test_codes_follow_the_rule_x_le_edge_for_quantile_edges():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100_000, 3))            # more rows than one mapping chunk
    X[::7, 1] = np.round(X[::7, 1], 1)           # ties on edges are common
    m = BinMapper(max_bins=32, subsample=20_000, random_state=1).fit(X)
    codes = m.transform(X)
    for f in range(3):
        ne = m.n_bins_[f] - 1
        e = m.edges_[f, :ne]
        assert np.all(np.diff(e) > 0)
        # bin b holds edges[b-1] < x <= edges[b]
        np.testing.assert_array_equal(codes[f], np.searchsorted(e, X[:, f], side="left"))
        assert codes[f].max() == ne


def test_nan_gets_its_own_bin_and_does_not_move_edges():
    rng = np.random.default_rng(2)
    x = rng.normal(size=5_000)
    Xn = x.copy()[:, None]
    Xn[::3, 0] = np.nan
    m = BinMapper(max_bins=16).fit(Xn)
    ref = BinMapper(max_bins=16).fit(Xn[~np.isnan(Xn[:, 0])])
    np.testing.assert_array_equal(m.edges_, ref.edges_)
    codes = m.transform(Xn)[0]
    assert m.missing_code_ == m.n_bins_.max()
    assert np.all(codes[::3] == m.missing_code_)
    mask = np.ones(len(x), bool)
    mask[::3] = False
    assert codes[mask].max() < m.missing_code_


def test_all_nan_column():
    X = np.column_stack([np.full(10, np.nan), np.arange(10.0)])
    m = BinMapper(max_bins=4).fit(X)
    assert m.n_bins_[0] == 1
    assert np.all(m.transform(X)[0] == m.missing_code_)


def test_float32_maps_like_its_float64_values_without_copy():
    rng = np.random.default_rng(3)
    X32 = rng.normal(size=(30_000, 4)).astype(np.float32)
    m32 = BinMapper(max_bins=64, random_state=0).fit(X32)
    m64 = BinMapper(max_bins=64, random_state=0).fit(X32.astype(np.float64))
    np.testing.assert_array_equal(m32.edges_, m64.edges_)
    np.testing.assert_array_equal(m32.transform(X32), m64.transform(X32.astype(np.float64)))
