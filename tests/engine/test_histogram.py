"""Histogram stage: sums vs numpy, gather vs identity path, subtraction."""

import numpy as np

from bpt._engine._histogram import build_histogram, node_stats, subtract_histogram


def _numpy_hist_dense(Xb, rows, Y, B):
    F = Xb.shape[0]
    K = Y.shape[1]
    h = np.zeros((F, B, K + 1))
    for f in range(F):
        for k in range(K):
            np.add.at(h[f, :, k], Xb[f, rows], Y[rows, k])
        np.add.at(h[f, :, K], Xb[f, rows], 1.0)
    return h


def _numpy_hist_onehot(Xb, rows, w, cls, B, n_cls):
    F = Xb.shape[0]
    h = np.zeros((F, B, 2 * n_cls))
    for f in range(F):
        np.add.at(h[f], (Xb[f, rows], cls[rows]), w[rows])
        np.add.at(h[f], (Xb[f, rows], n_cls + cls[rows]), 1.0)
    return h


def _data(seed, n=5_000, F=4, B=9, K=3):
    rng = np.random.default_rng(seed)
    Xb = rng.integers(0, B, size=(F, n)).astype(np.uint8)
    Y = rng.normal(size=(n, K))
    cls = rng.integers(0, K, size=n).astype(np.int64)
    return Xb, Y, cls


def test_dense_histogram_equals_numpy_for_gathered_and_identity_rows():
    Xb, Y, cls = _data(0)
    B = 9
    n = Y.shape[0]
    buf = np.empty(n * 3)
    rows = np.random.default_rng(1).permutation(n).astype(np.int64)
    h = np.zeros((4, B, 4))
    build_histogram(Xb, rows, 100, 2100, Y, None, False, 3, h, buf, False)
    np.testing.assert_allclose(h, _numpy_hist_dense(Xb, rows[100:2100], Y, B), rtol=1e-12,
                               atol=1e-12)
    ident = np.arange(n, dtype=np.int64)
    h2 = np.zeros((4, B, 4))
    build_histogram(Xb, ident, 0, n, Y, None, False, 3, h2, buf, True)
    np.testing.assert_allclose(h2, _numpy_hist_dense(Xb, ident, Y, B), rtol=1e-12,
                               atol=1e-12)


def test_onehot_histogram_equals_numpy():
    Xb, Y, cls = _data(2)
    n = Y.shape[0]
    w = np.ascontiguousarray(Y[:, :1])
    rows = np.sort(np.random.default_rng(3).choice(n, 1500, replace=False)).astype(np.int64)
    h = np.zeros((4, 9, 6))
    build_histogram(Xb, rows, 0, 1500, w, cls, True, 3, h, np.empty(2 * n), False)
    np.testing.assert_allclose(h, _numpy_hist_onehot(Xb, rows, w[:, 0], cls, 9, 3),
                               rtol=1e-12, atol=1e-12)


def test_subtraction_gives_the_sibling_and_node_stats_the_totals():
    Xb, Y, cls = _data(4)
    n = Y.shape[0]
    rows = np.arange(n, dtype=np.int64)
    buf = np.empty(n * 3)
    parent = np.zeros((4, 9, 4))
    build_histogram(Xb, rows, 0, n, Y, None, False, 3, parent, buf, True)
    small = np.zeros((4, 9, 4))
    build_histogram(Xb, rows, 0, 1234, Y, None, False, 3, small, buf, False)
    sib = np.zeros((4, 9, 4))
    build_histogram(Xb, rows, 1234, n, Y, None, False, 3, sib, buf, False)
    subtract_histogram(parent, small)
    np.testing.assert_allclose(parent, sib, rtol=1e-10, atol=1e-10)
    st = node_stats(rows, 1234, n, Y, None, False, 3, 1)
    np.testing.assert_allclose(st[:3], Y[1234:].sum(0), rtol=1e-12)
    assert st[3] == n - 1234
    np.testing.assert_allclose(sib[0].sum(0), st, rtol=1e-10)
