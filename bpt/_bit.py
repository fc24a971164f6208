"""BoostedInformationTree: learn the SMEFT polynomial r(x|theta) (docs/math.md section 1)."""

from __future__ import annotations

import numpy as np
from sklearn.base import RegressorMixin

from ._base import BaseBoostedTrees, weight_scale
from ._engine._loss import BITLoss, bit_model_loss
from ._terms import check_terms, default_base_points, make_terms, monomials, term_name
from ._validation import check_finite, check_point, check_sample_weight

__all__ = ["BoostedInformationTree"]


class BoostedInformationTree(RegressorMixin, BaseBoostedTrees):
    """Boosted Information Tree: learns R_A(x) in r(x|theta) = 1 + sum_A R_A(x) m_A(theta).

    Parameters
    ----------
    n_parameters : int, default=1
        Number of parameters P (e.g. Wilson coefficients).
    order : {1, 2}, default=2
        Polynomial order; ignored when ``terms`` is given.
    terms : list of tuples, optional
        Explicit terms, e.g. ``[(0,), (0, 0)]``.  Default: all linear terms
        ``(a,)``, then all quadratic ``(a, b)``, ``a <= b``, in lexicographic order.
    base_points : array (M, P), optional
        Points theta at which the loss compares predicted and true weights.
        Default: ``e_a``, ``2 e_a`` and ``e_a + e_b`` for cross terms.  They must
        determine every term (M = sum_theta m(theta) m(theta)^T positive definite).
    n_estimators : int, default=500
        The maximum number of trees; with early stopping (on by default for
        >= 10 000 events) the fit usually keeps far fewer.
    learning_rate : float in (0, 1], default=0.1
    max_depth : int or None, default=4
        Depth of each tree in scikit-learn's sense (1 = one split, two leaves).
        The defaults (depth 4, rate 0.1, up to 500 trees, early stopping "auto")
        were chosen by the accuracy benchmark on analytic toys
        (``bench/bench_accuracy.py``; table in docs/validation.md).
    min_samples_leaf : int, default=50
        Minimum number of events in each child of a split.
    min_weight_leaf : float, default=0.0
        Minimum sum of SM weights in each child; children with a non-positive
        SM weight sum are never allowed.
    split : {"hist", "exact"}, default="hist"
        Histogram splits on binned features, or exact sort-based splits (small data).
    max_bins : int <= 255, default=255
    n_jobs : int, optional
        Numba threads during fit/predict (restored afterwards); -1 = all.
    random_state : int, RandomState or None
        Seeds the binning subsample and the validation split.
    verbose : int, default=0
        1: one INFO line per tree (leaves, losses, time) and the early-stopping
        decision on the ``logging`` logger "bpt", printed on stdout when no logging
        handler is configured; 0: nothing.
    validation_fraction : float in (0, 1) or None, default=0.1
        With early stopping: the share of events held out (never trained on) as
        validation data, unless ``fit`` gets ``eval_set``.  None: monitor the
        training loss.
    n_iter_no_change : int or None, default=10
        With early stopping, fitting stops after tree b when none of the last
        ``n_iter_no_change`` monitored losses is below m - tol * |m|, m the lowest
        loss before them.  None: never stop (as in files of older versions).
    early_stopping : {"auto", True, False}, default="auto"
        "auto": on when X has at least 10 000 rows.  On: monitor the validation loss
        (``eval_set``, else the ``validation_fraction`` split, else the training
        loss), stop by the rule above, and keep only the trees up to its minimum
        (``n_iter_``); ``train_loss_`` / ``validation_loss_`` record every grown tree.
        See docs/concepts.md ("Early stopping").
    tol : float >= 0, default=1e-7
        Relative tolerance of the stopping rule.
    refit : bool, default=False
        After early stopping on the internal ``validation_fraction`` split, grow the
        kept number of trees again on all events (the held-out ones included); about
        twice the fit time.  No effect with ``eval_set`` or without early stopping.
        Off for the BIT: on the accuracy toys it lowered the truth error by 0-2%
        (docs/validation.md).  ``refitted_`` tells whether it happened.

    l2_regularization : float >= 0, default=0.0
        L2 penalty on the leaf values, derived from the loss and used in the leaf
        values and the split gain (docs/concepts.md, "Regularisation"); in units of
        the total absolute training weight, so that an overall weight scale does not
        change the model.  Small nodes are shrunk more.
    subsample : float in (0, 1], default=1.0
        Share of the training events (of each sample) drawn without replacement,
        from ``random_state``, to grow each tree (stochastic boosting); the boosting
        update is applied to all events.
    max_features : float in (0, 1], default=1.0
        Share of the features, ``max(1, int(max_features * n_features))``, drawn
        at random (from ``random_state``) at every node as split candidates.
    max_leaf_nodes : int >= 2, optional
        Grow best first (largest gain first) up to this many leaves; ``max_depth``
        may then be None (no depth limit).  Needs ``split="hist"``.
    target_dtype : {"float64", "float32"}, default="float64"
        Storage of the working targets (the transformed coefficients, N x (1 + n_terms),
        the largest array of a fit with many terms).  "float32" halves it; the
        histograms, node sums and leaf values are still accumulated in float64, but each
        event's coefficients and its residual after every tree are rounded to float32
        (relative precision 6e-8), so the trees may differ slightly from a float64 fit.
        The precision effect is measured in docs/performance.md ("Memory").

    Attributes
    ----------
    terms_ : list of tuples
    n_features_in_, feature_names_in_ : as in scikit-learn
    train_loss_ : (n_iter_,) training loss after each tree (the loss of docs/math.md
        section 1 minus its model-independent part, per unit SM weight: 0 for the
        empty model, decreasing)
    validation_loss_ : same on the validation data (if any), one value per grown tree
    feature_importances_ : share of the total split gain per feature
    base_points_ : (M, P) base points used by the loss
    n_iter_ : number of trees kept (with early stopping: up to the lowest monitored
        loss; ``train_loss_`` may be longer)

    Notes
    -----
    ``y`` has shape (N, 1 + n_terms): column 0 is the SM weight c0, then the
    coefficients c_A in ``terms_`` order, such that the event weight is
    ``w(theta) = c0 + sum_A c_A m_A(theta)``.  Use
    :func:`bpt.coefficients_from_derivatives` to convert generator derivatives.
    Predictions are float64.
    """

    _name = "BIT"

    def __init__(self, n_parameters=1, order=2, terms=None, base_points=None, n_estimators=500,
                 learning_rate=0.1, max_depth=4, min_samples_leaf=50, min_weight_leaf=0.0,
                 split="hist", max_bins=255, n_jobs=None, random_state=None, verbose=0,
                 validation_fraction=0.1, n_iter_no_change=10, early_stopping="auto",
                 tol=1e-7, l2_regularization=0.0, subsample=1.0, max_features=1.0,
                 max_leaf_nodes=None, target_dtype="float64", refit=False):
        self.n_parameters = n_parameters
        self.order = order
        self.terms = terms
        self.base_points = base_points
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.min_weight_leaf = min_weight_leaf
        self.split = split
        self.max_bins = max_bins
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.tol = tol
        self.l2_regularization = l2_regularization
        self.subsample = subsample
        self.max_features = max_features
        self.max_leaf_nodes = max_leaf_nodes
        self.target_dtype = target_dtype
        self.refit = refit

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.single_output = False      # y has 1 + n_terms >= 2 columns
        return tags

    # fitted state (saved files; see bpt/_state.py)
    _required_fitted_attributes = BaseBoostedTrees._required_fitted_attributes + (
        "base_points_", "metric_")

    def _fitted_array_shapes(self):
        T = len(self.terms_)
        return {"base_points_": (None, self.n_parameters), "metric_": (T, T)}

    def _check_fitted_state(self):
        V = monomials(self.base_points_, self.terms_)
        if not np.allclose(self.metric_, V.T @ V, rtol=1e-12, atol=0.0):
            raise ValueError("metric_ is not sum_theta m(theta) m(theta)^T of base_points_")

    # ------------------------------------------------------------------ setup
    def _resolve_terms(self):
        if (isinstance(self.n_parameters, bool)
                or not isinstance(self.n_parameters, (int, np.integer))
                or self.n_parameters < 1):
            raise ValueError(f"n_parameters must be an integer >= 1, got {self.n_parameters!r}")
        if self.terms is not None:
            return check_terms(self.terms, self.n_parameters)
        return make_terms(self.n_parameters, self.order)

    def _metric(self, terms):
        P = self.n_parameters
        if self.base_points is None:
            bp = default_base_points(P, terms)
        else:
            bp = check_finite(self.base_points, "base_points", ndim=2)
            if bp.shape[1] != P:
                raise ValueError(f"base_points must have shape (M, {P}), got {bp.shape}")
        V = monomials(bp, terms)
        M = V.T @ V
        try:
            L = np.linalg.cholesky(M)
        except np.linalg.LinAlgError:
            L = None
        if L is None or np.linalg.cond(M) > 1e12:
            bad = _first_dependent_column(V)
            raise ValueError("base_points do not determine the term "
                             f"{term_name(terms[bad])}: the loss metric sum_theta m(theta) "
                             "m(theta)^T is singular; add base points that vary it")
        return bp, M, L.T   # M = U^T U with U = L^T

    def _check_y(self, y, n, n_terms, sample_weight, name="y"):
        y = check_finite(y, name, ndim=(1, 2), length=n)
        if y.ndim == 1:
            y = y[:, None]
        if y.shape[1] != 1 + n_terms:
            raise ValueError(f"{name} must have 1 + n_terms = {1 + n_terms} columns (SM weight, "
                             f"then one coefficient per term of {self.terms_}), got "
                             f"{y.shape[1]}")
        sw = check_sample_weight(sample_weight, n,
                                 "sample_weight" if name == "y" else "eval_set sample_weight")
        if sw is not None:
            y = y * sw[:, None]
        return y

    # ------------------------------------------------------------------ fit
    def fit(self, X, y, sample_weight=None, *, eval_set=None, callbacks=None):
        """Fit on features X (N, F) and coefficients y (N, 1 + n_terms).

        ``eval_set=(X_val, y_val)`` or ``(X_val, y_val, sample_weight_val)``: validation
        data (checked as the training data) for ``validation_loss_`` and early stopping;
        no internal split is made when it is given.  ``callbacks``: list of callables,
        each called after every tree with a :class:`bpt.IterationInfo`; a callback that
        returns True stops the fit.
        """
        with self._fitting():
            self._start_fit()
            target_dtype = _check_target_dtype(self.target_dtype)
            callbacks = self._check_callbacks(callbacks)
            terms = self._resolve_terms()
            self.terms_ = terms
            X = self._check_X_fit(X)
            y = self._check_y(y, X.shape[0], len(terms), sample_weight)
            self.base_points_, self.metric_, U = self._metric(terms)
            total = y[:, 0].sum()
            if not total > 0:
                raise ValueError("the sum of SM weights (y[:, 0]) must be positive, got "
                                 f"{total:.6g}")
            val_data = None
            if eval_set is not None:
                X_ev, y_ev, w_ev = self._unpack_eval_set(eval_set, "y")
                X_ev = self._check_X_eval(X_ev)
                y_ev = self._check_y(y_ev, X_ev.shape[0], len(terms), w_ev,
                                     name="eval_set y")
                if not y_ev[:, 0].sum() > 0:
                    raise ValueError("the sum of SM weights of eval_set y (column 0) must be "
                                     f"positive, got {y_ev[:, 0].sum():.6g}")
                val_data = (X_ev, y_ev)

            tr, va = self._plan_validation(X.shape[0], eval_set is not None)
            rows = None if va is None else tr
            # no copy of the training part of X or y: the binning and the target
            # transform read their rows (memory, docs/performance.md)
            total_tr = y[:, 0].sum() if va is None else y[tr, 0].sum()
            if not total_tr > 0:
                raise ValueError("the sum of SM weights (y[:, 0]) of the training part is not "
                                 f"positive ({total_tr:.6g}) after holding out "
                                 f"validation_fraction={self.validation_fraction}")
            if va is not None:
                val_data = (np.ascontiguousarray(X[va]), y[va])
                if not val_data[1][:, 0].sum() > 0:
                    raise ValueError("the sum of SM weights (y[:, 0]) of the validation part "
                                     "is not positive after holding out validation_fraction="
                                     f"{self.validation_fraction}; pass eval_set or a "
                                     "larger validation_fraction")
            validation = None
            if val_data is not None:
                X_va, y_va = val_data
                metric = BITLoss(U)
                validation = (X_va, lambda F: metric.model_loss(y_va, F))

            def boost(rows, validation, callbacks, n_trees):
                # scale the weights by a power of two near 1 / total (exact in floating
                # point): |S|^2 stays representable for any overall weight scale
                scale = weight_scale(total if rows is None else total_tr)
                Y = _transform_targets(y, U, scale=scale, dtype=target_dtype, rows=rows)
                # one class (all zeros, no memory): only subsample draws read it
                cls = np.broadcast_to(np.int64(0), (Y.shape[0],))
                self._boost(X, Y, cls, BITLoss(U), validation, weight_scale=scale,
                            callbacks=callbacks, rows=rows, n_trees=n_trees)

            self._boost_and_refit(boost, rows, validation, callbacks)
        return self

    # ------------------------------------------------------------------ predict
    def predict_ratio(self, X, theta):
        """r(x|theta) = 1 + sum_A R_A(x) m_A(theta): theta (P,) -> (N,), (M, P) -> (N, M)."""
        R = self.predict(X)
        theta = check_point(theta, self.n_parameters, "theta")
        with np.errstate(over="ignore", invalid="ignore"):
            out = 1.0 + R @ monomials(theta, self.terms_).T
        if not np.all(np.isfinite(out)):
            raise ValueError(f"predict_ratio overflows (inf/NaN) at theta = {theta.tolist()}: "
                             "parameter values of this magnitude are out of range")
        return out

    def score(self, X, y, sample_weight=None):
        """Minus the loss of ``train_loss_`` on (X, y): higher is better."""
        R = self.predict(X)
        y = self._check_y(y, R.shape[0], len(self.terms_), sample_weight)
        if not y[:, 0].sum() > 0:
            raise ValueError("the sum of SM weights (y[:, 0]) must be positive")
        return -bit_model_loss(y, R, self.metric_)


_TARGET_DTYPES = {"float64": np.float64, "float32": np.float32}


def _check_target_dtype(value):
    if not isinstance(value, str) or value not in _TARGET_DTYPES:
        raise ValueError("target_dtype must be 'float64' or 'float32' (a string), got "
                         f"{value!r}")
    return _TARGET_DTYPES[value]


def _transform_targets(y, U, scale=1.0, chunk=1 << 16, dtype=np.float64, rows=None):
    """Working targets scale * (c0, U c_1..) of the rows ``rows`` of y (None: all),
    computed in float64 chunk by chunk and stored as ``dtype``, without a full-size
    temporary."""
    n = y.shape[0] if rows is None else rows.shape[0]
    Y = np.empty((n, y.shape[1]), dtype=dtype)
    for s in range(0, n, chunk):
        e = min(s + chunk, n)
        ys = y[s:e] if rows is None else y[rows[s:e]]
        Y[s:e, 0] = ys[:, 0] * scale
        Y[s:e, 1:] = (ys[:, 1:] * scale) @ U.T          # c' = U c
    return Y


def _first_dependent_column(V):
    """Index of the first column of V that is a combination of the previous ones."""
    for j in range(V.shape[1]):
        if np.linalg.matrix_rank(V[:, :j + 1]) < j + 1:
            return j
    return V.shape[1] - 1
