"""The SIMD logarithm and softplus of the BPT split scan against numpy (bpt/_engine/_vmath.py)."""

import numpy as np
from numba import njit

from bpt._engine import _vmath


@njit(cache=True)
def _log(x):
    out = np.empty_like(x)
    _vmath.log_into(x, out, x.shape[0])
    return out


@njit(cache=True)
def _softplus(x):
    out = np.empty_like(x)
    _vmath.softplus_into(x, out, x.shape[0])
    return out


def _ulps(got, ref):
    return np.abs(got - ref) / np.spacing(np.abs(ref))


def test_log_within_two_ulps_over_the_normal_range():
    rng = np.random.default_rng(0)
    x = np.concatenate([np.exp(rng.uniform(-700, 700, 50_000)), rng.uniform(0.5, 2.0, 50_000),
                        1.0 + rng.normal(0.0, 1e-9, 1_000),
                        [np.sqrt(2.0), np.nextafter(np.sqrt(2.0), 0.0), 0.5, 2.0, 1e-307,
                         1.7e308, np.finfo(float).tiny]])
    got = _log(x)
    ref = np.log(x)
    assert _log(np.array([1.0]))[0] == 0.0
    nz = ref != 0
    assert np.max(_ulps(got[nz], ref[nz])) <= 2.0
    # near 1 the absolute error stays at the level of x's own rounding
    near = np.abs(x - 1.0) < 1e-6
    assert np.max(np.abs(got[near] - ref[near])) < 1e-21


def test_softplus_within_three_ulps_and_clamped_tails():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0.0, 1.0, 50_000), rng.normal(0.0, 40.0, 50_000),
                        [0.0, 1e-20, -1e-20, 36.7, -36.7, 699.0, -699.0, 1e4]])
    got = _softplus(x)
    ref = np.logaddexp(0.0, x)
    assert np.max(_ulps(got, ref)) <= 3.0
    # below -700 the exponential is clamped: an absolute error under exp(-700)
    far = np.array([-700.5, -745.0, -1e4])
    assert np.all(np.abs(_softplus(far) - np.logaddexp(0.0, far)) < 1e-304)
    assert np.all(_softplus(far) >= 0.0)


def test_every_length_and_offset_gives_the_same_values():
    # the SIMD loops have a vector body and a scalar remainder: both paths agree
    rng = np.random.default_rng(2)
    x = rng.uniform(0.01, 100.0, 37)
    full = _log(x)
    for n in (1, 2, 3, 4, 5, 7, 8, 9, 16, 17):
        np.testing.assert_array_equal(_log(x[:n].copy()), full[:n])
        np.testing.assert_array_equal(_log(x[n:].copy()), full[n:])
    g = rng.normal(0.0, 5.0, 37)
    fullsp = _softplus(g)
    for n in (1, 3, 4, 5, 9, 17):
        np.testing.assert_array_equal(_softplus(g[n:].copy()), fullsp[n:])
