"""What BIT and BPT share: hyper-parameter checks, threads, binning, the boosting loop."""

from __future__ import annotations

import numbers
import sys
import time
import warnings
from contextlib import contextmanager

import numba
import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ._engine._binning import BinMapper
from ._engine._grower import TrainingData, TreeGrower
from ._engine._predictor import TreeEnsemble
from ._validation import check_features, check_random_state

__all__ = ["BaseBoostedTrees", "numba_threads"]


# smallest weight sum of a child, relative to the total training weight
WEIGHT_FLOOR = 1e-12


def weight_scale(total):
    """A power of two close to 1 / total: scaling weights by it is exact in floating
    point (sums, comparisons and zeros are unchanged) and brings them near 1."""
    return float(2.0 ** -np.round(np.log2(total)))


def _resolve_n_jobs(n_jobs):
    max_threads = numba.config.NUMBA_NUM_THREADS
    if n_jobs is None:
        return None
    if not isinstance(n_jobs, numbers.Integral) or n_jobs == 0:
        raise ValueError(f"n_jobs must be a non-zero integer or None, got {n_jobs!r}")
    n = n_jobs if n_jobs > 0 else max_threads + 1 + n_jobs
    return int(min(max(n, 1), max_threads))


@contextmanager
def numba_threads(n_jobs):
    """Run the enclosed numba kernels on ``n_jobs`` threads, then restore the setting."""
    n = _resolve_n_jobs(n_jobs)
    if n is None:
        yield
        return
    old = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(old)


class _TreeDraws:
    """Per tree: the training rows (a ``subsample`` share of each class, sorted; None =
    all rows) and the seed of the per-node feature draws, from ``seed``."""

    def __init__(self, cls, subsample, seed):
        self.rng = np.random.default_rng([seed, 1])
        self.subsample = float(subsample)
        if self.subsample < 1.0:
            order = np.argsort(cls, kind="stable")
            counts = np.bincount(cls)
            self.groups = np.split(order, np.cumsum(counts)[:-1])

    def next(self):
        seed = int(self.rng.integers(0, 2 ** 63 - 1))
        if self.subsample >= 1.0:
            return None, seed
        parts = [self.rng.choice(g, max(1, int(round(self.subsample * g.shape[0]))),
                                 replace=False) for g in self.groups if g.shape[0]]
        return np.sort(np.concatenate(parts)).astype(np.int64), seed


def _check_int(value, name, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


class BaseBoostedTrees(BaseEstimator):
    """Shared machinery; subclasses set ``_name`` and implement the loss-specific parts."""

    _name = "trees"

    # ---------------------------------------------------------------- checks
    def _check_params(self):
        _check_int(self.n_estimators, "n_estimators", 1)
        mwl = getattr(self, "min_weight_leaf", 0.0)
        if (isinstance(mwl, bool) or not isinstance(mwl, numbers.Real) or not np.isfinite(mwl)
                or mwl < 0):
            raise ValueError(f"min_weight_leaf must be a finite number >= 0, got {mwl!r}")
        mln = self.max_leaf_nodes
        if mln is not None:
            _check_int(mln, "max_leaf_nodes", 2)
            if self.split == "exact":
                raise ValueError("max_leaf_nodes (best-first growth) needs split='hist'")
        if self.max_depth is not None or mln is None:
            _check_int(self.max_depth, "max_depth", 0)
        l2 = self.l2_regularization
        if (isinstance(l2, bool) or not isinstance(l2, numbers.Real) or not np.isfinite(l2)
                or l2 < 0):
            raise ValueError(f"l2_regularization must be a finite number >= 0, got {l2!r}")
        for name in ("subsample", "max_features"):
            v = getattr(self, name)
            if isinstance(v, bool) or not (isinstance(v, numbers.Real) and 0 < v <= 1):
                raise ValueError(f"{name} must be a fraction in (0, 1], got {v!r}")
        _check_int(self.min_samples_leaf, "min_samples_leaf", 1)
        _check_int(self.max_bins, "max_bins", 2)
        if self.max_bins > 255:
            raise ValueError(f"max_bins must be <= 255 (uint8 bin codes), got {self.max_bins}")
        if not (isinstance(self.learning_rate, numbers.Real) and 0 < self.learning_rate <= 1):
            raise ValueError(f"learning_rate must be in (0, 1], got {self.learning_rate!r}")
        if self.split not in ("hist", "exact"):
            raise ValueError(f"split must be 'hist' or 'exact', got {self.split!r}")
        if not (isinstance(self.verbose, numbers.Integral) and self.verbose >= 0):
            raise ValueError(f"verbose must be an integer >= 0, got {self.verbose!r}")
        vf = self.validation_fraction
        if vf is not None and not (isinstance(vf, numbers.Real) and 0 < vf < 1):
            raise ValueError(f"validation_fraction must be in (0, 1) or None, got {vf!r}")
        if self.n_iter_no_change is not None:
            _check_int(self.n_iter_no_change, "n_iter_no_change", 1)
        _resolve_n_jobs(self.n_jobs)

    def _check_X_fit(self, X):
        names = None
        if hasattr(X, "columns"):
            names = np.asarray([str(c) for c in X.columns], dtype=object)
        Xa = check_features(X, "X", feature_names=names, allow_nan=True, keep_float32=True)
        self.n_features_in_ = Xa.shape[1]
        if names is not None:
            self.feature_names_in_ = names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return Xa

    def _check_X_predict(self, X):
        check_is_fitted(self, "ensemble_")
        names = getattr(self, "feature_names_in_", None)
        if names is not None and hasattr(X, "columns"):
            got = [str(c) for c in X.columns]
            if got != list(names):
                raise ValueError(f"X has feature names {got}, but the model was fitted with "
                                 f"{list(names)}")
        return check_features(X, "X", n_features=self.n_features_in_, feature_names=names,
                              allow_nan=True, keep_float32=True)

    # ---------------------------------------------------------------- engine
    def _training_data(self, X, Y, cls):
        if self.split == "hist":
            mapper = BinMapper(self.max_bins, random_state=self._rng_seed)
            Xb = mapper.fit_transform(X)
            return TrainingData(X, Xb, mapper.edges_, mapper.n_bins_, Y, cls,
                                mapper.missing_code_)
        if np.isnan(X).any():
            raise ValueError("X contains NaN (missing values): split='exact' does not "
                             "handle them; use split='hist'")
        return TrainingData(X, None, None, None, Y, cls)

    def _learning_rate(self, b):
        return float(self.learning_rate)

    def _boost(self, X, Y, cls, loss, validation=None, weight_scale=1.0):
        """Bin X and run the boosting loop on n_jobs threads (see ``_boost_loop``)."""
        with numba_threads(self.n_jobs):
            self._boost_loop(self._training_data(X, Y, cls), loss, validation, weight_scale)

    def _boost_loop(self, data, loss, validation, weight_scale):
        """The boosting loop.

        ``validation`` = (X_val, callable(ensemble_prediction) -> loss) or None;
        ``weight_scale`` = factor applied to the training weights (min_weight_leaf
        is given in the user's units).
        """
        n = data.Y.shape[0]
        # weights are normalised to a total of 1: a child holding less than WEIGHT_FLOOR of
        # it is round-off of cancelling weights, not a yield, and is never allowed
        min_weight = max(getattr(self, "min_weight_leaf", 0.0) * weight_scale, WEIGHT_FLOOR)
        # L2 penalty relative to the total training weight (docs/concepts.md,
        # "Regularisation"): invariant to an overall weight scale
        loss.lam = float(self.l2_regularization) * float(np.abs(data.Y[:, 0]).sum())
        n_features = data.X.shape[1]
        grower = TreeGrower(data, loss, self.max_depth, self.min_samples_leaf, min_weight,
                            self.split, max_leaf_nodes=self.max_leaf_nodes,
                            max_features=max(1, int(self.max_features * n_features)))
        draws = _TreeDraws(data.cls, self.subsample, self._rng_seed)
        ens = TreeEnsemble(loss.n_terms)
        loss.start(data)
        train_loss, val_loss = [], []
        val_pred = None
        t_start = time.perf_counter()
        for b in range(self.n_estimators):
            eta = self._learning_rate(b)
            rows, seed = draws.next()
            tree = grower.grow(rows, seed)
            loss.update(data, tree, eta)
            train_loss.append(loss.end_tree(data, tree, eta))
            ens.add(tree, eta)
            if validation is not None:
                X_val, val_fn = validation
                val_pred = ens.predict(X_val, b, b + 1, out=val_pred)
                val_loss.append(val_fn(val_pred))
            if self.verbose:
                self._report(b, tree, train_loss, val_loss, time.perf_counter() - t_start)
            if self._should_stop(val_loss if validation is not None else train_loss):
                if self.verbose:
                    print(f"[{self._name}] early stopping after {b + 1} trees", file=sys.stdout)
                break
        self.ensemble_ = TreeEnsemble.from_arrays(ens.arrays)   # compact, read-only
        self.train_loss_ = np.array(train_loss)
        if validation is not None:
            self.validation_loss_ = np.array(val_loss)
        elif hasattr(self, "validation_loss_"):
            del self.validation_loss_
        self.n_iter_ = ens.n_trees
        self.fit_time_ = time.perf_counter() - t_start
        if self.max_depth != 0 and not np.any(self.ensemble_.arrays["feature"] >= 0):
            warnings.warn(
                f"{type(self).__name__}: no valid split was found in any tree (constant "
                "features, or too few events / too little weight for min_samples_leaf and "
                "min_weight_leaf); the model is constant", UserWarning, stacklevel=3)

    def _should_stop(self, losses):
        k = self.n_iter_no_change
        if k is None or len(losses) <= k:
            return False
        reference = losses[-k - 1]
        tol = 1e-7 * max(abs(reference), 1e-12)
        return not any(val < reference - tol for val in losses[-k:])

    def _report(self, b, tree, train_loss, val_loss, elapsed):
        n_leaves = int(np.sum(tree.left < 0))
        msg = (f"[{self._name}] tree {b + 1:4d}/{self.n_estimators}  leaves {n_leaves:3d}  "
               f"train loss {train_loss[-1]: .6g}")
        if val_loss:
            msg += f"  val loss {val_loss[-1]: .6g}"
        print(msg + f"  {elapsed:7.2f} s", file=sys.stdout, flush=True)

    def _split_validation(self, n, stratify=None, groups=None):
        """Indices (train, validation); validation None if validation_fraction is None.

        With ``groups``, rows sharing a group id stay on the same side of the split.
        """
        if self.validation_fraction is None:
            return np.arange(n), None
        if groups is not None:
            from sklearn.model_selection import GroupShuffleSplit
            splitter = GroupShuffleSplit(n_splits=1, test_size=self.validation_fraction,
                                         random_state=self._rng_seed)
            tr, va = next(splitter.split(np.zeros((n, 1)), groups=groups))
            return np.sort(tr), np.sort(va)
        from sklearn.model_selection import train_test_split
        tr, va = train_test_split(np.arange(n), test_size=self.validation_fraction,
                                  random_state=self._rng_seed, stratify=stratify)
        return np.sort(tr), np.sort(va)

    @contextmanager
    def _fitting(self):
        """Run a fit; on any error remove every fitted attribute (nothing half-fitted)."""
        try:
            yield
        except BaseException:
            for key in [k for k in vars(self) if k.endswith("_") and not k.startswith("_")]:
                delattr(self, key)
            raise

    def _start_fit(self):
        self._check_params()
        rng = check_random_state(self.random_state)
        self._rng_seed = int(rng.randint(np.iinfo(np.int32).max))

    # ---------------------------------------------------------------- fitted model
    def predict(self, X):
        """Learned coefficients, float64 (N, n_terms) in ``terms_`` order: R_A(x) for the
        BIT, Delta_A(x) for the BPT."""
        X = self._check_X_predict(X)
        with numba_threads(self.n_jobs):
            return self.ensemble_.predict(X)

    def staged_predict(self, X):
        """Yield ``predict(X)`` after each tree."""
        X = self._check_X_predict(X)
        out = np.zeros((X.shape[0], self.ensemble_.n_out))
        for t in range(self.ensemble_.n_trees):
            with numba_threads(self.n_jobs):
                self.ensemble_.predict(X, t, t + 1, out=out)
            yield out.copy()

    @property
    def feature_importances_(self):
        """Share of the total split gain per feature (sums to 1 unless no split was made)."""
        check_is_fitted(self, "ensemble_")
        a = self.ensemble_.arrays
        imp = np.zeros(self.n_features_in_)
        internal = a["feature"] >= 0
        np.add.at(imp, a["feature"][internal], a["gain"][internal])
        total = imp.sum()
        return imp / total if total > 0 else imp

    def apply(self, X):
        """Leaf index of every row in every tree, (N, n_trees) int64 (global node ids)."""
        X = self._check_X_predict(X)
        with numba_threads(self.n_jobs):
            return self.ensemble_.apply(X)

    def save(self, path):
        """Save to one file (plain arrays + JSON, no pickle); read back with :func:`bpt.load`."""
        from ._io import save_estimator
        save_estimator(self, path)

    def _more_tags(self):
        return {"requires_y": True}
