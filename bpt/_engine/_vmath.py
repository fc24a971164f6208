"""Exponential and log1p over arrays in loops that LLVM can vectorise.

numba calls the C library's ``exp`` and ``log1p`` one value at a time (5-8 ns each
here, no SIMD unless Intel's SVML is installed).  The BPT cross entropy of a model whose
exponentials are not carried (linear leaves, validation, ``score``: one exponential per
event and base point) spends most of its time in them.  The functions below use only
arithmetic, bit casts and selects in one loop over contiguous arrays, so that LLVM
turns each loop into SIMD code (4 doubles per AVX2 instruction); they are compiled
with ``error_model="numpy"``, as numba's default zero-division check on every division
keeps LLVM from vectorising the loop.

Accuracy (tests/engine/test_vmath.py, against extended precision): exp within 1.2 units
in the last place, log1p within 3.4 (the C library's: about 0.5 and 0.8).
Domains: ``log1p_into`` for finite y >= 0; ``exp_into`` for finite x (inf beyond
overflow, exp(-707) below -707).

How: log(x) = e ln 2 + log(m) with x = 2^e m, m in [sqrt(2)/2, sqrt(2)), and
log(m) = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.1716, from its Taylor series
sum_j s^(2j+1) / (2j+1) to j = 11 (the next term is below 2^-56 of the sum).
exp(r) for |r| <= ln(2)/2 from its Taylor series to r^13 / 13!; 2^k built from its bits.
log1p(y) = log(u) + (y - (u - 1)) / u with u = 1 + y rounded (the correction restores
the digits lost in rounding u).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

__all__ = ["exp_into", "log1p_into"]

_LN2_HI = 0.693145751953125                   # ln 2 to 16 bits: e * _LN2_HI is exact
_LN2_LO = 1.4286068203094172321e-06           # ln 2 - _LN2_HI
_INV_LN2 = 1.4426950408889634074
_SQRT2 = 1.4142135623730950488
_MANTISSA = 0x000FFFFFFFFFFFFF
_ONE_BITS = 0x3FF0000000000000                # bits of 1.0
_TWO52_BITS = 0x4330000000000000              # bits of 2^52: | e gives 2^52 + e (e < 2^52)
_TWO52_BIAS = 4503599627371519.0              # 2^52 + 1023
_ROUND = 6755399441055744.0                   # 1.5 * 2^52: x + _ROUND rounds x to an integer
_EXP_LO = -707.0                              # exp_into: below, exp(-707) (< 1e-307)
_EXP_OVERFLOW = 709.782712893384              # log of the largest float64

# error_model="numpy": no zero-division check per division (the check blocks SIMD)
_INTERNAL = dict(cache=True, no_cpython_wrapper=True, no_cfunc_wrapper=True,
                 error_model="numpy")


def _bitcast(src, dst):
    """An intrinsic reinterpreting the bits of a ``src`` value as ``dst`` (an LLVM
    bitcast: free, also in SIMD code)."""
    @intrinsic
    def cast(typingctx, x):
        if x != src:
            return None

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(dst))
        return dst(src), codegen
    return cast


_bits = _bitcast(types.float64, types.int64)          # the bits of a float64
_from_bits = _bitcast(types.int64, types.float64)     # the float64 with these bits


# Taylor coefficients, the highest power first (for _horner)
_ATANH_SERIES = tuple(1.0 / (2 * j + 1) for j in range(11, -1, -1))   # sum z^j / (2j + 1)
_EXP_SERIES = tuple(1.0 / math.factorial(j) for j in range(13, -1, -1))  # sum r^j / j!


@njit(cache=True, inline="always")
def _horner(x, coefs):
    """sum_j coefs[j] x^(len - 1 - j), by Horner's rule (the highest power first)."""
    p = 0.0
    for c in coefs:
        p = p * x + c
    return p


@njit(cache=True, inline="always")
def _log_m(m):
    """log(m) for m in [sqrt(2)/2, sqrt(2)): 2 atanh(s), s = (m - 1) / (m + 1)."""
    s = (m - 1.0) / (m + 1.0)
    return 2.0 * s * _horner(s * s, _ATANH_SERIES)


@njit(cache=True, inline="always")
def _log(x):
    """log(x) for a finite positive normal x."""
    ib = _bits(x)
    m = _from_bits((ib & _MANTISSA) | _ONE_BITS)           # in [1, 2)
    e = _from_bits(_TWO52_BITS | (ib >> 52)) - _TWO52_BIAS  # the exponent, as a double
    big = m > _SQRT2
    m = m * 0.5 if big else m
    e = e + 1.0 if big else e
    return e * _LN2_HI + (_log_m(m) + e * _LN2_LO)


@njit(**_INTERNAL)
def log1p_into(y, out, n):
    """out[:n] = log(1 + y[:n]) for finite y >= 0: log(u) + (y - (u - 1)) / u with
    u = 1 + y rounded (the correction restores the digits lost in rounding u)."""
    for i in range(n):
        yi = y[i]
        u = 1.0 + yi
        out[i] = _log(u) + (yi - (u - 1.0)) / u


@njit(**_INTERNAL)
def exp_into(x, out, n):
    """out[:n] = exp(x[:n]) for finite x; inf above log(max float64); below -707 the
    value at -707 (under 1e-307: an absolute error no sum of weights can see)."""
    for i in range(n):
        xi = x[i]
        a = xi if xi > _EXP_LO else _EXP_LO
        a = a if a < _EXP_OVERFLOW else _EXP_OVERFLOW
        t = a * _INV_LN2 + _ROUND
        k = t - _ROUND                                      # round(a / ln 2), <= 1024
        r = (a - k * _LN2_HI) - k * _LN2_LO
        # 2^(k - 1) from t's low bits (2^51 + k; k - 1 + 1023 in [2, 2046]), times 2
        y = _horner(r, _EXP_SERIES) * _from_bits((_bits(t) + 1022) << 52) * 2.0
        out[i] = y if xi <= _EXP_OVERFLOW else np.inf
