"""What BIT and BPT share: hyper-parameter checks, threads, binning, the boosting loop."""

from __future__ import annotations

import logging
import numbers
import sys
import time
from collections import namedtuple
from contextlib import contextmanager

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from ._engine._binning import BinMapper
from ._engine._grower import TrainingData, TreeGrower
from ._engine._predictor import TreeEnsemble
from ._engine._runtime import numba_threads, resolve_n_jobs
from ._state import StateMixin
from ._validation import check_features, check_random_state, feature_names_of
from ._warnings import warn_user

__all__ = ["BaseBoostedTrees", "IterationInfo", "numba_threads"]

logger = logging.getLogger("bpt")

# "auto" early stopping is on from this many rows of training data (as scikit-learn's
# HistGradientBoosting, which switches at 10 000 samples)
EARLY_STOPPING_MIN_ROWS = 10_000


IterationInfo = namedtuple("IterationInfo",
                           ["iteration", "train_loss", "validation_loss", "estimator"])
IterationInfo.__doc__ = """What a ``fit(..., callbacks=[...])`` callback receives after every tree.

``iteration``: number of trees grown so far (1 after the first tree);
``train_loss``: training loss after this tree (as ``train_loss_``);
``validation_loss``: validation loss after this tree (as ``validation_loss_``), or None
when no validation data is used; ``estimator``: the estimator being fitted (its fitted
attributes are set only when ``fit`` returns).  A callback that returns True stops the
fit after this tree.
"""


class _StdoutHandler(logging.StreamHandler):
    """Writes to the *current* ``sys.stdout`` (which may be redirected after creation)."""

    def __init__(self):
        super().__init__(sys.stdout)

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):
        pass


@contextmanager
def _verbose_logging(verbose):
    """With ``verbose >= 1``: the "bpt" logger passes INFO records (unless the user set
    its level), and when no handler is configured anywhere (no ``logging.basicConfig``,
    no handler on "bpt" or the root logger) a temporary handler prints them on stdout."""
    if not verbose:
        yield
        return
    old_level = logger.level
    if old_level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    handler = None
    if not logger.hasHandlers():
        handler = _StdoutHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    try:
        yield
    finally:
        if handler is not None:
            logger.removeHandler(handler)
        logger.setLevel(old_level)


# smallest weight sum of a child, relative to the total training weight
WEIGHT_FLOOR = 1e-12


def weight_scale(total):
    """A power of two close to 1 / total: scaling weights by it is exact in floating
    point (sums, comparisons and zeros are unchanged) and brings them near 1."""
    return float(2.0 ** -np.round(np.log2(total)))


# numba threads and the lock for non-thread-safe layers live in the runtime module
_resolve_n_jobs = resolve_n_jobs


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


class BaseBoostedTrees(StateMixin, BaseEstimator):
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
        self._check_early_stopping_params()
        _resolve_n_jobs(self.n_jobs)

    def _check_early_stopping_params(self):
        es = self.early_stopping
        if not (isinstance(es, (bool, np.bool_)) or (isinstance(es, str) and es == "auto")):
            raise ValueError(f"early_stopping must be 'auto', True or False, got {es!r}")
        vf = self.validation_fraction
        if vf is not None and (isinstance(vf, bool) or not (isinstance(vf, numbers.Real)
                                                          and 0 < vf < 1)):
            raise ValueError(f"validation_fraction must be in (0, 1) or None, got {vf!r}")
        if self.n_iter_no_change is not None:       # None: as in files of bpt <= 0.1
            _check_int(self.n_iter_no_change, "n_iter_no_change", 1)
        if not isinstance(getattr(self, "refit", False), (bool, np.bool_)):
            raise ValueError(f"refit must be True or False, got {self.refit!r}")
        tol = self.tol
        if (isinstance(tol, bool) or not isinstance(tol, numbers.Real) or not np.isfinite(tol)
                or tol < 0):
            raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")

    # float32 features stay float32 (binned without a float64 copy); others -> float64
    _X_DTYPES = (np.float64, np.float32)

    def _check_X_fit(self, X):
        """X as a 2-d float array; feature names from DataFrame columns, dict keys,
        structured-array or awkward record fields are stored in ``feature_names_in_``."""
        names = feature_names_of(X)
        Xa = check_features(X, "X", dtype=self._X_DTYPES, allow_nan=True)
        self.n_features_in_ = Xa.shape[1]
        if names is not None:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return Xa

    def _check_X_predict(self, X):
        """Named X must carry the fitted names: dict / record input is reordered by name,
        a DataFrame must have them in the fitted order (as in scikit-learn); a plain array
        is taken by position."""
        check_is_fitted(self, "ensemble_")
        names = getattr(self, "feature_names_in_", None)
        return check_features(X, "X", n_features=self.n_features_in_,
                              feature_names=None if names is None else list(names),
                              dtype=self._X_DTYPES, fitted_names=names,
                              allow_nan=True)

    # ---------------------------------------------------------------- engine
    def _training_data(self, X, Y, cls, rows=None):
        """``rows``: the training rows of X (None: all); binned without a copy of X."""
        if self.split == "hist":
            mapper = BinMapper(self.max_bins, random_state=self._rng_seed)
            Xb = mapper.fit_transform(X, rows)
            # X itself is not used by histogram splits (only its number of columns)
            return TrainingData(X, Xb, mapper.edges_, mapper.n_bins_, Y, cls,
                                mapper.missing_code_, x_rows=rows)
        if rows is not None:
            X = np.ascontiguousarray(X[rows])
        if np.isnan(X).any():
            raise ValueError("X contains NaN (missing values): split='exact' does not "
                             "handle them; use split='hist'")
        return TrainingData(X, None, None, None, Y, cls)

    def _learning_rate(self, b):
        return float(self.learning_rate)

    def _boost(self, X, Y, cls, loss, validation=None, weight_scale=1.0, callbacks=None,
               rows=None, n_trees=None):
        """Bin X (its rows ``rows``, the training rows; None: all) and run the boosting
        loop on n_jobs threads (see ``_boost_loop``)."""
        with numba_threads(self.n_jobs), _verbose_logging(self.verbose):
            self._boost_loop(self._training_data(X, Y, cls, rows), loss, validation,
                             weight_scale, callbacks, n_trees)

    def _boost_and_refit(self, boost, rows, validation, callbacks):
        """Boost on the training rows ``rows`` (None: all), then, with ``refit`` after early
        stopping on an internal validation split (``rows`` not None), boost again on all
        rows with the number of trees that early stopping kept.

        ``boost(rows, validation, callbacks, n_trees)`` prepares the targets of ``rows`` and
        calls :meth:`_boost`.  The refitted model keeps ``validation_loss_`` of the first
        pass (the curve that chose ``n_iter_``); ``train_loss_`` is the refitted model's
        loss on all rows; ``fit_time_`` covers both passes (docs/concepts.md, "Early
        stopping").
        """
        boost(rows, validation, callbacks, None)
        self.refitted_ = False
        if not (self.refit and rows is not None):     # rows: only after an internal split
            return
        val_loss, n_trees, t_first = self.validation_loss_, self.n_iter_, self.fit_time_
        if self.verbose:
            with _verbose_logging(self.verbose):
                logger.info("[%s] refit on all rows (validation part included) with the %d "
                            "trees that early stopping kept", self._name, n_trees)
        self._early_stopping_on = False
        boost(None, None, [], n_trees)
        self.validation_loss_ = val_loss
        self.fit_time_ += t_first
        self.refitted_ = True

    def _boost_loop(self, data, loss, validation, weight_scale, callbacks=None, n_trees=None):
        """The boosting loop.

        ``validation`` = (X_val, callable(ensemble_prediction) -> loss) or None;
        ``weight_scale`` = factor applied to the training weights (min_weight_leaf
        is given in the user's units); ``callbacks`` = list of callables (checked).
        Early stopping (``self._early_stopping_on``, set by ``_plan_validation``)
        monitors the validation loss, else the training loss, and keeps the trees up
        to its minimum.
        """
        n = data.Y.shape[0]
        # weights are normalised to a total of 1: a child holding less than WEIGHT_FLOOR of
        # it is round-off of cancelling weights, not a yield, and is never allowed
        min_weight = max(getattr(self, "min_weight_leaf", 0.0) * weight_scale, WEIGHT_FLOOR)
        # L2 penalty relative to the total training weight (docs/concepts.md,
        # "Regularisation"): invariant to an overall weight scale
        loss.lam = float(self.l2_regularization) * float(
            np.abs(data.Y[:, 0]).sum(dtype=np.float64))
        n_features = data.X.shape[1]
        grower = TreeGrower(data, loss, self.max_depth, self.min_samples_leaf, min_weight,
                            self.split, max_leaf_nodes=self.max_leaf_nodes,
                            max_features=max(1, int(self.max_features * n_features)))
        draws = _TreeDraws(data.cls, self.subsample, self._rng_seed)
        ens = TreeEnsemble(loss.n_terms)
        loss.start(data)
        train_loss, val_loss = [], []
        monitored = val_loss if validation is not None else train_loss
        early = bool(getattr(self, "_early_stopping_on", False))
        callbacks = callbacks or []
        val_pred = None
        t_start = time.perf_counter()
        for b in range(self.n_estimators if n_trees is None else n_trees):
            eta = self._learning_rate(b)
            rows, seed = draws.next()
            tree = grower.grow(rows, seed)
            loss.finish_leaves(data, tree)
            loss.update(data, tree, eta)
            train_loss.append(float(loss.end_tree(data, tree, eta)))
            ens.add(tree, eta)
            if validation is not None:
                X_val, val_fn = validation
                val_pred = ens.predict(X_val, b, b + 1, out=val_pred)
                val_loss.append(float(val_fn(val_pred)))
            if self._tree_done(b, tree, train_loss, val_loss, t_start, callbacks,
                               monitored if early else None, validation is not None):
                break
        if early:
            best = int(np.argmin(monitored)) + 1          # first minimum
            ens.truncate(best)
            if self.verbose and best < len(monitored):
                logger.info("[%s] keeping the first %d trees (lowest %s loss)", self._name,
                            best, "validation" if validation is not None else "training")
        self.ensemble_ = TreeEnsemble.from_arrays(ens.arrays)   # compact, read-only
        self.train_loss_ = np.array(train_loss, dtype=np.float64)
        if validation is not None:
            self.validation_loss_ = np.array(val_loss, dtype=np.float64)
        elif hasattr(self, "validation_loss_"):
            del self.validation_loss_
        self.n_iter_ = int(ens.n_trees)
        self.fit_time_ = time.perf_counter() - t_start
        if self.max_depth != 0 and not np.any(self.ensemble_.arrays["feature"] >= 0):
            warn_user(
                f"{type(self).__name__}: no valid split was found in any tree (constant "
                "features, or too few events / too little weight for min_samples_leaf and "
                "min_weight_leaf); the model is constant", UserWarning)

    def _tree_done(self, b, tree, train_loss, val_loss, t_start, callbacks, monitored,
                   validated):
        """After tree b of a boosting loop: the verbose report, the callbacks and the early
        stopping rule (``monitored``: the monitored losses, None without early stopping).
        Returns True to stop boosting."""
        if self.verbose:
            self._report(b, tree, train_loss, val_loss, time.perf_counter() - t_start)
        info = IterationInfo(b + 1, train_loss[-1], val_loss[-1] if val_loss else None, self)
        stop_cb = False
        for cb in callbacks:
            stop_cb = bool(cb(info)) or stop_cb
        if monitored is not None and self._should_stop(monitored):
            if self.verbose:
                logger.info("[%s] early stopping after %d trees: no improvement of the %s "
                            "loss in the last %d trees", self._name, b + 1,
                            "validation" if validated else "training", self.n_iter_no_change)
            return True
        if stop_cb:
            if self.verbose:
                logger.info("[%s] stopped by a callback after %d trees", self._name, b + 1)
            return True
        return False

    def _should_stop(self, losses):
        """True when none of the last ``n_iter_no_change`` losses is below the lowest loss
        before them by more than ``tol`` times its magnitude."""
        k = self.n_iter_no_change
        if len(losses) <= k:
            return False
        best_before = min(losses[:-k])
        threshold = best_before - self.tol * abs(best_before)
        return not min(losses[-k:]) < threshold

    def _report(self, b, tree, train_loss, val_loss, elapsed):
        n_leaves = int(np.sum(tree.left < 0))
        msg = (f"[{self._name}] tree {b + 1:4d}/{self.n_estimators}  leaves {n_leaves:3d}  "
               f"train loss {train_loss[-1]: .6g}")
        if val_loss:
            msg += f"  val loss {val_loss[-1]: .6g}"
        logger.info(msg + f"  {elapsed:7.2f} s")

    # ---------------------------------------------------------------- early stopping
    def _plan_validation(self, n, has_eval_set, stratify=None, groups=None):
        """Decide early stopping and the internal split.

        Sets ``self._early_stopping_on``; returns indices (train, validation) of the
        internal split, validation None when there is none (early stopping off, an
        ``eval_set`` given, or ``validation_fraction=None``: then the training loss is
        monitored).
        """
        es = self.early_stopping
        self._early_stopping_on = ((n >= EARLY_STOPPING_MIN_ROWS) if es == "auto" else bool(es)
                                   ) and self.n_iter_no_change is not None
        if has_eval_set or not self._early_stopping_on:
            return np.arange(n), None
        return self._split_validation(n, stratify=stratify, groups=groups)

    @staticmethod
    def _check_callbacks(callbacks):
        if callbacks is None:
            return []
        if callable(callbacks):
            callbacks = [callbacks]
        try:
            callbacks = list(callbacks)
        except TypeError:
            raise ValueError("callbacks must be a list of callables, got "
                             f"{type(callbacks).__name__}") from None
        for j, cb in enumerate(callbacks):
            if not callable(cb):
                raise ValueError(f"callbacks[{j}] is not callable: {cb!r}")
        return callbacks

    @staticmethod
    def _unpack_eval_set(eval_set, second):
        """(X_val, second_val, w_val or None) from a 2- or 3-tuple."""
        if not isinstance(eval_set, (tuple, list)) or len(eval_set) not in (2, 3):
            raise ValueError(f"eval_set must be a tuple (X_val, {second}_val) or (X_val, "
                             f"{second}_val, sample_weight_val), got "
                             f"{type(eval_set).__name__}"
                             + (f" of length {len(eval_set)}"
                                if isinstance(eval_set, (tuple, list)) else ""))
        X_val, t_val = eval_set[0], eval_set[1]
        w_val = eval_set[2] if len(eval_set) == 3 else None
        return X_val, t_val, w_val

    def _check_X_eval(self, X_val):
        names = getattr(self, "feature_names_in_", None)
        if names is not None and hasattr(X_val, "columns"):
            got = [str(c) for c in X_val.columns]
            if got != list(names):
                raise ValueError(f"eval_set X has feature names {got}, but X has "
                                 f"{list(names)}")
        return check_features(X_val, "eval_set X", n_features=self.n_features_in_,
                              feature_names=names)

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

    def predict_contributions(self, X):
        """Tree-path (Saabas) feature contributions of ``predict(X)``.

        Returns float64 (N, n_features_in_ + 1, n_terms): ``[:, f, A]`` is the part of
        the learned coefficient A credited to feature f (at every split on f along the
        row's path, the change of the node value), ``[:, -1, A]`` the bias (the sum of
        the trees' root values, the training-weighted average).  Summed over axis 1 it
        equals ``predict(X)`` up to round-off.  A feature the trees never split on gets
        exactly 0.  Unlike SHAP values, the credit of a feature depends on where in the
        path it is split (docs/validation.md).
        """
        from ._engine._contributions import contributions
        X = self._check_X_predict(X)
        with numba_threads(self.n_jobs):
            return contributions(self.ensemble_, X)

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

    def __sklearn_tags__(self):          # scikit-learn >= 1.6
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True       # fit(X, y) / fit(X, nu): the target is needed
        tags.target_tags.multi_output = True   # y / nu are 2-d
        tags.non_deterministic = False         # same data and random_state: same trees
        return tags

    def _more_tags(self):                   # scikit-learn < 1.6
        return {"requires_y": True, "multioutput": True}
