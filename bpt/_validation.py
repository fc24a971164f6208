"""Input validation shared by the estimators and the inference module."""

from __future__ import annotations

import numpy as np
from sklearn.utils import check_random_state as _sk_check_random_state

__all__ = ["check_features", "check_finite", "check_random_state", "check_sample_weight",
           "check_point"]


def check_random_state(seed, name="random_state"):
    """sklearn's ``check_random_state``, with the argument named in its error."""
    try:
        return _sk_check_random_state(seed)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be None, an integer in [0, 2**32 - 1] or a "
                         f"numpy RandomState, got {seed!r} ({exc})") from None


def _refuse_complex(a, name):
    if np.iscomplexobj(a):
        raise ValueError(f"{name} must be real, got complex values")


def _column_label(j, feature_names):
    if feature_names is not None:
        return f"column {j} ({feature_names[j]!r})"
    return f"column {j}"


def check_features(X, name="X", n_features=None, feature_names=None, allow_nan=False,
                   keep_float32=False):
    """Return X as a C-contiguous float64 2-d array; refuse NaN/inf naming the column.

    ``allow_nan``: NaN (missing values) pass, +-inf is still refused.
    ``keep_float32``: a float32 array stays float32 (no float64 copy).
    """
    if hasattr(X, "columns") and feature_names is None:
        feature_names = [str(c) for c in X.columns]
    _refuse_complex(X, name)
    try:
        if keep_float32 and getattr(X, "dtype", None) == np.float32:
            arr = np.asarray(X)
        else:
            arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric: {exc}") from None
    if arr.ndim == 1:
        raise ValueError(f"{name} must be 2-d (n_samples, n_features), got a 1-d array of "
                         f"shape {arr.shape}; reshape with {name}.reshape(-1, 1) for one feature")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-d (n_samples, n_features), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} has no rows")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(f"{name} has {arr.shape[1]} features, but the model was fitted with "
                         f"{n_features}")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has no features (shape {arr.shape}); give at least one column")
    bad = np.isinf(arr) if allow_nan else ~np.isfinite(arr)
    if bad.any():
        cols = np.flatnonzero(bad.any(axis=0))
        j = int(cols[0])
        rows = np.flatnonzero(bad[:, j])
        kind = "NaN" if np.isnan(arr[rows[0], j]) else "inf"
        raise ValueError(f"{name} contains non-finite values ({kind}) in "
                         f"{_column_label(j, feature_names)}, {len(rows)} row(s), first at row "
                         f"{int(rows[0])}" + (f"; also in columns {cols[1:].tolist()}"
                                             if len(cols) > 1 else ""))
    return np.ascontiguousarray(arr)


def check_finite(a, name, ndim=None, length=None, dtype=np.float64):
    """Return ``a`` as a float64 array after shape and finiteness checks."""
    _refuse_complex(a, name)
    try:
        arr = np.asarray(a, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric: {exc}") from None
    if ndim is not None and arr.ndim not in np.atleast_1d(ndim):
        dims = " or ".join(f"{d}-d" for d in np.atleast_1d(ndim))
        raise ValueError(f"{name} must be {dims}, got shape {arr.shape}")
    if length is not None and arr.shape[0] != length:
        raise ValueError(f"{name} has {arr.shape[0]} rows but X has {length}")
    bad = ~np.isfinite(arr)
    if bad.any():
        where = np.argwhere(bad)[0]
        raise ValueError(f"{name} contains {int(bad.sum())} non-finite value(s) (NaN or inf), "
                         f"first at index {tuple(int(i) for i in where)}")
    return arr


def check_sample_weight(sample_weight, n):
    if sample_weight is None:
        return None
    sw = check_finite(sample_weight, "sample_weight", ndim=1, length=n)
    return sw


def check_point(point, size, name):
    """A parameter point: (size,) or (M, size) float64, finite."""
    arr = check_finite(point, name)
    if arr.ndim == 0 and size == 1:
        arr = arr.reshape(1)
    if arr.ndim not in (1, 2) or arr.shape[-1] != size:
        raise ValueError(f"{name} must have shape ({size},) or (M, {size}), got {arr.shape}")
    return arr
