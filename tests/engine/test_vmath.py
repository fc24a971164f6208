"""The SIMD exponential and log1p of the BPT cross entropy against numpy (bpt/_engine/_vmath.py)."""

import numpy as np
from numba import njit

from bpt._engine import _vmath


@njit(cache=True)
def _exp(x):
    out = np.empty_like(x)
    _vmath.exp_into(x, out, x.shape[0])
    return out


@njit(cache=True)
def _log1p(x):
    out = np.empty_like(x)
    _vmath.log1p_into(x, out, x.shape[0])
    return out


def _ulps(got, exact):
    """|got - exact| in units of the last place of the float64 nearest to ``exact``
    (``exact`` in extended precision: numpy's own exp and log1p are up to ~1 ulp off, and
    by how much depends on its version)."""
    return np.asarray(np.abs(got.astype(np.longdouble) - exact)
                      / np.spacing(np.abs(exact.astype(np.float64))), dtype=np.float64)


def test_exp_within_one_and_a_half_ulps_to_overflow():
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(-707.0, 709.78, 50_000), rng.normal(0.0, 1.0, 50_000),
                        [0.0, 1e-300, -1e-300, 709.0, 709.78, -706.9, 1.0, -1.0]])
    got = _exp(x)
    # measured: 1.16 ulp at most over 4 million values
    assert np.max(_ulps(got, np.exp(x.astype(np.longdouble)))) <= 1.5
    assert _exp(np.array([0.0]))[0] == 1.0
    over = _exp(np.array([709.8, 1e4]))
    assert np.all(np.isinf(over))
    under = _exp(np.array([-707.5, -745.0, -1e4]))
    assert np.all((under >= 0.0) & (under <= np.exp(-707.0) * (1 + 1e-15)))


def test_log1p_within_four_ulps():
    rng = np.random.default_rng(4)
    y = np.concatenate([rng.uniform(0.0, 1.0, 50_000), np.exp(rng.uniform(-700, 700, 50_000)),
                        [0.0, 1e-300, 1e-17, 1e-9, 0.4142135623730951, 1.0, 63.0]])
    y = np.concatenate([y, rng.uniform(0.0, 1e-3, 50_000)])
    got = _log1p(y)
    exact = np.log1p(y.astype(np.longdouble))
    nz = exact > 0
    # measured: 3.4 ulp at most over 8 million values (the largest for y < 1e-3)
    assert np.max(_ulps(got[nz], exact[nz])) <= 4.0
    assert _log1p(np.array([0.0]))[0] == 0.0


def test_every_length_and_offset_gives_the_same_values():
    # the SIMD loops have a vector body and a scalar remainder: both give the same values
    rng = np.random.default_rng(2)
    x = rng.normal(0.0, 5.0, 37)
    full = _exp(x)
    fl = _log1p(np.abs(x))
    for n in (1, 2, 3, 4, 5, 7, 8, 9, 16, 17):
        np.testing.assert_array_equal(_exp(x[:n].copy()), full[:n])
        np.testing.assert_array_equal(_exp(x[n:].copy()), full[n:])
        np.testing.assert_array_equal(_log1p(np.abs(x[n:])), fl[n:])
