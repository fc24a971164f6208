"""A fitted estimator as plain data, and the checks of a state read from a file.

The estimators (``bpt._bit``, ``bpt._bpt``) inherit :class:`StateMixin`, which is the
whole persistence protocol between them and the I/O (``bpt/_io/_estimator.py``):

``est.__bpt_state__()``
    -> :class:`EstimatorState` (constructor parameters, public fitted attributes, the
    tree arrays), everything a file must hold to rebuild ``est``.
``cls.__bpt_from_state__(params, attributes, ensemble)``
    -> a new estimator after checking that the state is one that ``fit`` could have
    produced (nothing read from a file can crash the compiled predictor).

Each estimator declares the float64 arrays it fits in ``_fitted_array_shapes`` and may
add checks in ``_check_fitted_state``.  The I/O never touches estimator internals.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._engine._predictor import TreeEnsemble

__all__ = ["EstimatorState", "StateMixin", "check_ensemble_arrays"]


class EstimatorState(NamedTuple):
    """What a file stores of an estimator."""

    params: dict                  # get_params(deep=False)
    attributes: dict | None       # public fitted attributes (trailing "_"); None if unfitted
    ensemble: dict | None         # TreeEnsemble arrays (TreeEnsemble.DTYPES); None if unfitted


class StateMixin:
    """Persistence protocol of the bpt estimators (see the module docstring)."""

    # fitted attributes that every fitted estimator has
    _required_fitted_attributes = ("terms_", "n_features_in_", "n_iter_", "train_loss_")

    def _fitted_array_shapes(self):
        """Declared float64 fitted arrays: {attribute: shape}, ``None`` = any length.
        Checked when present (they are optional unless listed as required)."""
        return {}

    def _check_fitted_state(self):
        """Estimator-specific checks of a loaded state (after the common ones)."""

    # ------------------------------------------------------------------ protocol
    def __bpt_state__(self):
        params = self.get_params(deep=False)
        if not hasattr(self, "ensemble_"):
            return EstimatorState(params, None, None)
        attributes = {k: v for k, v in vars(self).items()
                      if k.endswith("_") and not k.startswith("_") and k != "ensemble_"}
        arrays = self.ensemble_.arrays
        check_ensemble_arrays(arrays, self.n_features_in_, arrays["value"].shape[1])
        return EstimatorState(params, attributes,
                              {k: arrays[k] for k in TreeEnsemble.DTYPES})

    @classmethod
    def __bpt_from_state__(cls, params, attributes=None, ensemble=None):
        """A new estimator from a state; ValueError naming the first inconsistency.

        ``attributes`` and ``ensemble`` are both None for an unfitted estimator.
        """
        if not isinstance(params, dict):
            raise ValueError("parameters must be a dict")
        unknown = set(params) - set(cls._get_param_names())
        if unknown:      # missing ones (older files) take their defaults
            raise ValueError(f"unknown parameters {sorted(unknown)} for {cls.__name__}")
        est = cls(**params)
        est._check_params()
        terms = est._resolve_terms()
        if attributes is None and ensemble is None:
            return est
        if not isinstance(attributes, dict) or not isinstance(ensemble, dict):
            raise ValueError("a fitted state needs both its attributes and its trees")
        for k, v in attributes.items():
            if (not isinstance(k, str) or not k.isidentifier() or not k.endswith("_")
                    or k.startswith("_") or hasattr(cls, k) or k == "ensemble_"):
                raise ValueError(f"attribute name {k!r} is not allowed")
            setattr(est, k, v)
        est._check_common_state(terms, ensemble)
        est._check_fitted_state()
        est.ensemble_ = TreeEnsemble.from_arrays(ensemble)
        return est

    # ------------------------------------------------------------------ checks
    def _check_common_state(self, terms, ensemble):
        for k in self._required_fitted_attributes:
            if not hasattr(self, k):
                raise ValueError(f"missing fitted attribute {k}")
        if self.terms_ != terms:
            raise ValueError(f"terms_ {self.terms_!r} do not match the parameters")
        F = self.n_features_in_
        if type(F) is not int or F < 1:
            raise ValueError(f"n_features_in_ must be a positive int, got {F!r}")
        names = getattr(self, "feature_names_in_", None)
        if names is not None and not (isinstance(names, np.ndarray) and names.dtype == object
                                      and names.shape == (F,)):
            raise ValueError("feature_names_in_ must be an object array of n_features_in_ "
                             "strings")
        n_trees = check_ensemble_arrays(ensemble, F, len(self.terms_))
        if type(self.n_iter_) is not int or self.n_iter_ != n_trees:
            raise ValueError(f"n_iter_ = {self.n_iter_!r} but the file holds {n_trees} trees")
        shapes = {"train_loss_": (None,), "validation_loss_": (None,)}
        shapes.update(self._fitted_array_shapes())
        for k, shape in shapes.items():
            v = getattr(self, k, None)
            if v is None:
                continue
            if not (isinstance(v, np.ndarray) and v.dtype == np.float64
                    and v.ndim == len(shape)
                    and all(s is None or s == d for s, d in zip(shape, v.shape))):
                raise ValueError(f"{k} must be a float64 array of shape {shape}")


def check_ensemble_arrays(ens, n_features, n_out):
    """Validate flat tree arrays (dtypes from ``TreeEnsemble.DTYPES``); returns the number
    of trees.

    Every node of tree t lies in [tree_start[t], tree_end[t]); an internal node j
    has 0 <= feature < n_features and children j < child < tree_end, so every
    walk from a root ends at a leaf (feature == -1, children -1) in bounds.
    """
    for k, dt in TreeEnsemble.DTYPES.items():
        a = ens.get(k)
        if a is None and k in TreeEnsemble.OPTIONAL_FIELDS:
            continue
        if not isinstance(a, np.ndarray) or a.dtype != dt:
            raise ValueError(f"tree array {k!r} is missing or not {np.dtype(dt)}")
    unknown = sorted(set(ens) - set(TreeEnsemble.DTYPES))
    if unknown:
        raise ValueError(f"unknown tree arrays {unknown} (written by a newer bpt?)")
    n = ens["feature"].shape[0]
    for k in TreeEnsemble.NODE_FIELDS + TreeEnsemble.LINEAR_NODE_FIELDS:
        if k != "value" and k in ens and ens[k].shape != (n,):
            raise ValueError(f"tree array {k!r} has shape {ens[k].shape}, expected ({n},)")
    if ens["value"].shape != (n, n_out):
        raise ValueError(f"tree values have shape {ens['value'].shape}, expected ({n}, {n_out})")
    _check_linear_arrays(ens, n, n_features, n_out)
    start, rates = ens["tree_start"], ens["learning_rates"]
    n_trees = start.shape[0]
    if start.ndim != 1 or rates.shape != (n_trees,):
        raise ValueError("tree_start / learning_rates have inconsistent shapes")
    if n_trees == 0:
        if n:
            raise ValueError("nodes without trees")
        return 0
    if start[0] != 0 or np.any(np.diff(start) <= 0) or start[-1] >= n:
        raise ValueError("tree_start must increase strictly from 0 below the number of nodes")
    end = np.append(start[1:], n)
    node_end = np.repeat(end, end - start)
    idx = np.arange(n)
    feat, left, right = ens["feature"], ens["left"], ens["right"]
    leaf = feat == -1
    internal = ~leaf
    if np.any(feat[internal] < 0) or np.any(feat[internal] >= n_features):
        raise ValueError(f"split features must lie in 0..{n_features - 1}")
    if np.any(left[leaf] != -1) or np.any(right[leaf] != -1):
        raise ValueError("leaves must have children -1")
    for child in (left, right):
        c, j, e = child[internal], idx[internal], node_end[internal]
        if np.any(c <= j) or np.any(c >= e):
            raise ValueError("child indices must point forward inside their own tree")
    if np.any(np.isnan(ens["threshold"][internal])):
        raise ValueError("split thresholds must not be NaN")
    return n_trees


def _check_linear_arrays(ens, n, n_features, n_out):
    """The linear-leaf arrays (all present or all absent): every leaf's terms lie inside
    the term arrays, internal nodes have none, features are in range, finite values."""
    names = TreeEnsemble.LINEAR_NODE_FIELDS + TreeEnsemble.LINEAR_FIELDS
    present = [k in ens for k in names]
    if not any(present):
        return
    if not all(present):
        raise ValueError("the linear-leaf arrays are incomplete "
                         f"(missing {[k for k, p in zip(names, present) if not p]})")
    start, count = ens["linear_start"], ens["linear_count"]
    L = ens["linear_feature"].shape[0]
    for k in ("linear_centre", "linear_lo", "linear_hi"):
        if ens[k].shape != (L,):
            raise ValueError(f"tree array {k!r} has shape {ens[k].shape}, expected ({L},)")
    if ens["linear_slope"].shape != (L, n_out):
        raise ValueError(f"tree array 'linear_slope' has shape {ens['linear_slope'].shape}, "
                         f"expected ({L}, {n_out})")
    if np.any(count < 0) or np.any(count[ens["feature"] >= 0] != 0):
        raise ValueError("linear terms must be counted >= 0 and only at leaves")
    used = count > 0
    if np.any(start[used] < 0) or np.any(start[used] + count[used] > L):
        raise ValueError("linear terms of a leaf lie outside the term arrays")
    f = ens["linear_feature"]
    if np.any(f < 0) or np.any(f >= n_features):
        raise ValueError(f"linear-leaf features must lie in 0..{n_features - 1}")
    for k in ("linear_centre", "linear_slope"):
        if not np.all(np.isfinite(ens[k])):
            raise ValueError(f"tree array {k!r} has non-finite values")
    if np.any(np.isnan(ens["linear_lo"])) or np.any(np.isnan(ens["linear_hi"])) or np.any(
            ens["linear_lo"] > ens["linear_hi"]):
        raise ValueError("linear-leaf ranges must satisfy linear_lo <= linear_hi")
