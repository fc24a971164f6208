"""Split finding vs brute force: BIT and BPT, with L2 and missing values."""

import numpy as np
import pytest

from bpt._engine._histogram import build_histogram, node_stats
from bpt._engine._loss import KIND_BIT, KIND_BPT, BITLoss, BPTLoss
from bpt._engine._splitting import find_split_hist


def _softplus(x):
    return np.logaddexp(0.0, x)


def bit_score(s, lam, min_samples):
    if s[-1] < min_samples or not s[0] > 0:
        return -np.inf
    return float(np.sum(s[1:-1] ** 2) / (s[0] + lam))


def bpt_score(s, V, lam, min_samples):
    K = V.shape[0] + 1
    sums, counts = s[:K], s[K:]
    if np.any(counts < min_samples) or np.any(sums <= 0):
        return -np.inf
    ell = np.log(sums[1:] / sums[0])
    if lam > 0:
        h = np.mean(sums[0] * sums[1:] / (sums[0] + sums[1:]))
        delta = np.linalg.solve(V.T @ V + lam / h * np.eye(V.shape[1]), V.T @ ell)
    else:
        delta = np.linalg.lstsq(V, ell, rcond=None)[0]
    g = V @ delta
    ce = np.sum(sums[0] * _softplus(g) + sums[1:] * _softplus(-g))
    return -(ce + 0.5 * lam * delta @ delta)


def brute_force(Xb, stats_of, score, nb, mcode):
    """Best (feature, bin, missing_left, gain) over every boundary and missing side."""
    total = stats_of(np.ones(Xb.shape[1], bool))
    parent = score(total)
    best = (-1, -1, False, -np.inf)
    for f in range(Xb.shape[0]):
        miss = Xb[f] == mcode
        has = miss.any()
        for b in range(nb[f] if has else nb[f] - 1):
            for ml in ((False, True) if has else (False,)):
                go_left = (Xb[f] <= b) & ~miss
                if ml:
                    go_left |= miss
                sl, sr = score(stats_of(go_left)), score(stats_of(~go_left))
                g = sl + sr - parent
                if g > best[3] + 1e-12 * abs(best[3]) + 1e-300 or (best[0] < 0 and g > -np.inf):
                    best = (f, b, ml, g)
    return best


def _binned(seed, n, F, B, nan_share):
    rng = np.random.default_rng(seed)
    Xb = rng.integers(0, B, size=(F, n)).astype(np.uint8)
    nb = np.full(F, B, dtype=np.int64)
    mcode = B
    Xb[0, rng.random(n) < nan_share] = mcode
    return rng, Xb, nb, mcode


@pytest.mark.parametrize("lam", [0.0, 0.3])
@pytest.mark.parametrize("nan_share", [0.0, 0.2])
def test_bit_split_equals_brute_force(lam, nan_share):
    n, F, B = 3_000, 3, 6
    rng, Xb, nb, mcode = _binned(10, n, F, B, nan_share)
    c0 = rng.uniform(0.5, 1.5, n)
    # the target depends on bin of feature 1 and on missingness of feature 0
    sig = np.where(Xb[1] >= 3, 1.0, -0.5) + np.where(Xb[0] == mcode, 2.0, 0.0)
    Y = np.column_stack([c0, c0 * (sig + rng.normal(size=n)), c0 * rng.normal(size=n)])
    rows = np.arange(n, dtype=np.int64)
    tot = node_stats(rows, 0, n, Y, None, False, 3, 1)
    h = np.zeros((F, B + 1, 4))
    build_histogram(Xb, rows, 0, n, Y, None, False, 3, h, np.empty(3 * n),
                    True)
    loss = BITLoss(np.eye(2), lam)
    lp = (loss.P, lam, loss.ridge_a, loss.ridge_e, loss.ridge_b)
    f, b, ml, has, gain, left = find_split_hist(h, np.arange(F), nb, mcode, tot, 3, KIND_BIT,
                                                lp, 5, 1e-12)

    def stats_of(mask):
        return np.concatenate([Y[mask].sum(0), [mask.sum()]])

    bf = brute_force(Xb, stats_of, lambda s: bit_score(s, lam, 5), nb, mcode)
    assert (f, b, bool(ml)) == bf[:3]
    assert gain == pytest.approx(bf[3], rel=1e-9)
    if nan_share:
        assert f == 0 and has      # missingness carries the largest signal


@pytest.mark.parametrize("lam", [0.0, 0.05])
@pytest.mark.parametrize("nan_share", [0.0, 0.15])
@pytest.mark.parametrize("B", [5, 37])
def test_bpt_split_equals_brute_force(lam, nan_share, B):
    # B = 37: the BPT scan works in blocks of SCAN_BLOCK = 16 bins (two full, one partial)
    n, F = 4_000, 2
    rng, Xb, nb, mcode = _binned(11, n, F, B, nan_share)
    V = np.array([[1.0, 1.0], [-1.0, 1.0], [2.0, 4.0]])       # 3 base points, 2 terms
    cls = rng.integers(0, 4, size=n).astype(np.int64)
    w = rng.uniform(0.5, 1.5, n) * np.where((cls == 1) & (Xb[1] > 2), 1.6, 1.0)
    w *= np.where((cls == 3) & (Xb[0] == mcode), 2.0, 1.0)
    Y = w[:, None] / w.sum()
    rows = np.arange(n, dtype=np.int64)
    tot = node_stats(rows, 0, n, Y, cls, True, 4, 4)
    h = np.zeros((F, B + 1, 8))
    build_histogram(Xb, rows, 0, n, Y, cls, True, 4, h, np.empty(2 * n), True)
    loss = BPTLoss(V, lam)
    lp = (loss.P, lam, loss.ridge_a, loss.ridge_e, loss.ridge_b)
    f, b, ml, has, gain, left = find_split_hist(h, np.arange(F), nb, mcode, tot, 4, KIND_BPT,
                                                lp, 5, 1e-12)

    def stats_of(mask):
        return np.concatenate([np.bincount(cls[mask], Y[mask, 0], 4),
                               np.bincount(cls[mask], minlength=4).astype(float)])

    bf = brute_force(Xb, stats_of, lambda s: bpt_score(s, V, lam, 5), nb, mcode)
    assert (f, b, bool(ml)) == bf[:3]
    assert gain == pytest.approx(bf[3], rel=1e-8)
    go_left = (Xb[f] <= b) & (Xb[f] != mcode)
    if ml:
        go_left |= Xb[f] == mcode
    np.testing.assert_allclose(left, stats_of(go_left), rtol=1e-12)
