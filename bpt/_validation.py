"""Input validation shared by the estimators and the inference module."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from sklearn.utils import check_random_state as _sk_check_random_state

__all__ = ["check_features", "feature_names_of", "input_kind", "check_finite",
           "check_random_state", "check_sample_weight", "check_point"]


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


# ------------------------------------------------------------------ named inputs
# Physics ntuples come as columns with names: a dict of 1-d arrays (uproot
# ``library="np"``, ``RDataFrame.AsNumpy``), a numpy structured array, a pandas or polars
# DataFrame, an awkward record array.  ``_named_columns`` turns each into
# (list of names, list of 1-d columns, kind); kind "frame" (pandas, polars) keeps
# scikit-learn's rule that the column order must match at predict, kind "record" (dict,
# structured, awkward) is matched by name.

def _module_of(X):
    return type(X).__module__.split(".")[0]


def _is_awkward(X):
    return _module_of(X) == "awkward" and type(X).__name__ == "Array"


def _is_polars_frame(X):
    return _module_of(X) == "polars" and type(X).__name__ == "DataFrame"


def _is_pandas_frame(X):
    return _module_of(X) == "pandas" and type(X).__name__ == "DataFrame"


def input_kind(X):
    """'frame' (pandas/polars DataFrame), 'record' (dict, structured or awkward record
    array) or 'array' (anything numpy converts)."""
    if _is_pandas_frame(X) or _is_polars_frame(X):
        return "frame"
    if isinstance(X, Mapping) or (isinstance(X, np.ndarray) and X.dtype.names is not None):
        return "record"
    if _is_awkward(X):
        import awkward as ak
        if ak.fields(X):
            return "record"
    return "array"


def feature_names_of(X):
    """The feature names carried by X (column names / keys / fields), else None."""
    kind = input_kind(X)
    if kind == "frame":
        return [str(c) for c in X.columns]
    if kind == "record":
        if isinstance(X, Mapping):
            return [str(k) for k in X.keys()]
        if isinstance(X, np.ndarray):
            return [str(k) for k in X.dtype.names]
        import awkward as ak
        return [str(k) for k in ak.fields(X)]
    return None


def _jagged_error(name, key):
    return ValueError(
        f"{name}: feature {key!r} is jagged (a variable number of values per event); "
        "give one number per event, e.g. the leading object padded with NaN: "
        f"ak.fill_none(ak.firsts({key}), np.nan), or ak.fill_none(ak.pad_none({key}, 2, "
        "clip=True), np.nan)[:, i] for the i-th one")


def _flat_column(values, name, key, n_rows):
    """One named feature as a 1-d numeric numpy array (no copy if it already is one)."""
    if _is_awkward(values):
        import awkward as ak
        if values.ndim != 1:
            if "var" in str(ak.type(values)):
                raise _jagged_error(name, key)
            raise ValueError(f"{name}: feature {key!r} has shape {tuple(ak.to_numpy(values).shape)}"
                             "; give one number per event (one 1-d array per feature)")
        if ak.fields(values):
            raise ValueError(f"{name}: feature {key!r} is itself a record with fields "
                             f"{ak.fields(values)}; give one number per event")
        if "?" in str(ak.type(values)):          # option type: missing -> NaN
            values = ak.fill_none(values, np.nan)
        try:
            values = ak.to_numpy(values)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{name}: feature {key!r} cannot be read as numbers: {exc}") from None
    elif type(values).__module__.split(".")[0] in ("pandas", "polars"):
        values = values.to_numpy()
    arr = np.asarray(values)
    if arr.dtype == object:
        if any(np.ndim(v) > 0 for v in arr.ravel()[:100]):
            raise _jagged_error(name, key)
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name}: feature {key!r} must be numeric: {exc}") from None
    if arr.dtype.names is not None:
        raise ValueError(f"{name}: feature {key!r} is itself a record with fields "
                         f"{list(arr.dtype.names)}; give one number per event")
    if arr.ndim != 1:
        raise ValueError(f"{name}: feature {key!r} has shape {arr.shape}; give one 1-d array "
                         "per feature (one number per event)")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise ValueError(f"{name}: feature {key!r} must be numeric, got dtype {arr.dtype}")
    _refuse_complex(arr, f"{name}: feature {key!r}")
    if n_rows is not None and arr.shape[0] != n_rows:
        raise ValueError(f"{name}: feature {key!r} has {arr.shape[0]} rows, the first feature "
                         f"has {n_rows}")
    return arr


def _record_columns(X, name):
    """(names, 1-d columns) of a dict, structured array or awkward record array."""
    if isinstance(X, Mapping):
        items = [(str(k), v) for k, v in X.items()]
    elif isinstance(X, np.ndarray):
        if X.ndim != 1:
            raise ValueError(f"{name} is a structured array of shape {X.shape}; give a 1-d "
                             "one (one record per event)")
        items = [(str(k), X[k]) for k in X.dtype.names]
    else:
        if X.ndim != 1:
            raise ValueError(f"{name} is an awkward array of records nested {X.ndim} deep; "
                             "give one record per event")
        items = [(str(k), X[k]) for k in __import__("awkward").fields(X)]
    if not items:
        raise ValueError(f"{name} has no features (no keys / fields); give at least one")
    cols, n_rows = [], None
    for key, values in items:
        col = _flat_column(values, name, key, n_rows)
        n_rows = col.shape[0]
        cols.append(col)
    return [k for k, _ in items], cols


def _np_dtype(d):
    try:
        return np.dtype(d)
    except TypeError:        # pandas extension types (nullable Float64, ...)
        return None


def _float_dtype(dtypes, allowed):
    """The float type to convert to: the input's when all columns have one allowed
    type (float32 stays float32), else the first allowed."""
    dtypes = {_np_dtype(d) for d in dtypes}
    if len(dtypes) == 1:
        (d,) = dtypes
        if d in allowed:
            return d
    return allowed[0]


def _stack(cols, dtype):
    out = np.empty((cols[0].shape[0], len(cols)), dtype=dtype)
    for j, c in enumerate(cols):
        out[:, j] = c
    return out


def _match_names(got, fitted, kind, name):
    """Column order that takes X's named columns to the fitted order (or a ValueError)."""
    fitted = [str(f) for f in fitted]
    missing = [f for f in fitted if f not in got]
    extra = [g for g in got if g not in fitted]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {missing}")
        if extra:
            parts.append(f"unexpected {extra}")
        raise ValueError(f"{name} has feature names {got}, but the model was fitted with "
                         f"{fitted}: " + "; ".join(parts))
    if got == fitted:
        return None
    if kind == "frame":
        raise ValueError(f"{name} has the fitted feature names in another order: {got}, but "
                         f"the model was fitted with {fitted}; select the columns in the "
                         f"fitted order, e.g. {name}[list(model.feature_names_in_)]")
    if len(set(got)) != len(got):
        raise ValueError(f"{name} has repeated feature names {got}")
    return [got.index(f) for f in fitted]


def check_features(X, name="X", n_features=None, feature_names=None, dtype=np.float64,
                   fitted_names=None, allow_nan=False):
    """Return X as a C-contiguous 2-d float array; refuse NaN/inf naming the column.

    X may be a 2-d array, a dict of 1-d arrays (uproot ``library="np"``,
    ``RDataFrame.AsNumpy``), a numpy structured array, a pandas or polars DataFrame, or
    an awkward array of records with flat numeric fields.

    ``dtype``: a float type, or a tuple of them: an input whose columns all have one of
    them is kept in it (no copy for a C-contiguous array), others are converted to the
    first (``(np.float64, np.float32)`` keeps float32 input in float32).
    ``fitted_names``: the names the model was fitted with; named input must have exactly
    these (error naming the missing / unexpected ones).  A dict, structured or awkward
    record array in another order is reordered by name; a DataFrame in another order is
    refused, as in scikit-learn.  Unnamed input (a plain array) is taken by position.
    ``allow_nan``: NaN (missing values) pass, +-inf is still refused.
    """
    allowed = tuple(np.dtype(d) for d in (dtype if isinstance(dtype, (tuple, list))
                                           else (dtype,)))
    if type(X).__name__ == "LazyFrame" and _module_of(X) == "polars":
        raise ValueError(f"{name} is a polars LazyFrame; collect it first ({name}.collect())")
    kind = input_kind(X)
    if kind == "array" and hasattr(X, "columns") and feature_names is None:
        feature_names = [str(c) for c in X.columns]
    if kind != "array":
        got = feature_names_of(X)
        order = None if fitted_names is None else _match_names(got, fitted_names, kind, name)
        if kind == "record":
            keys, cols = _record_columns(X, name)
            if order is not None:
                keys, cols = [keys[i] for i in order], [cols[i] for i in order]
            if feature_names is None:
                feature_names = keys
            arr = _stack(cols, _float_dtype([c.dtype for c in cols], allowed))
        else:
            if feature_names is None:
                feature_names = got
            if _is_pandas_frame(X):
                target = _float_dtype(X.dtypes, allowed) if len(X.columns) else allowed[0]
                try:
                    arr = X.to_numpy(dtype=target, na_value=np.nan)
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"{name} must be numeric: {exc}") from None
            else:
                try:
                    arr = X.to_numpy()
                except Exception as exc:  # noqa: BLE001 - polars raises its own types
                    raise ValueError(f"{name} must be numeric: {exc}") from None
    else:
        if _is_awkward(X):
            import awkward as ak
            try:
                X = ak.to_numpy(X)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{name}: an awkward array must be records of flat fields "
                                 f"or a regular 2-d array: {exc}") from None
        arr = X
    _refuse_complex(arr, name)
    src = np.asarray(arr) if not isinstance(arr, np.ndarray) else arr
    try:
        target = src.dtype if src.dtype in allowed else allowed[0]
        arr = np.asarray(src, dtype=target)
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


def check_sample_weight(sample_weight, n, name="sample_weight"):
    if sample_weight is None:
        return None
    sw = check_finite(sample_weight, name, ndim=1, length=n)
    return sw


def check_point(point, size, name):
    """A parameter point: (size,) or (M, size) float64, finite."""
    arr = check_finite(point, name)
    if arr.ndim == 0 and size == 1:
        arr = arr.reshape(1)
    if arr.ndim not in (1, 2) or arr.shape[-1] != size:
        raise ValueError(f"{name} must have shape ({size},) or (M, {size}), got {arr.shape}")
    return arr
