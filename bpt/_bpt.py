"""BoostedParametricTree: learn systematics, log dsigma(x|nu)/dsigma(x|0) (docs/math.md sec. 2)."""

from __future__ import annotations

import numbers
import warnings

import numpy as np

from ._base import BaseBoostedTrees, weight_scale
from ._engine._loss import BPTLoss, effective_sizes
from ._terms import check_terms, make_terms, monomials, term_name
from ._validation import check_finite, check_point, check_sample_weight
from ._warnings import warn_user

__all__ = ["BoostedParametricTree", "YIELD_RATIO_TOLERANCE"]

# fit warns when a base point's total weight differs from the nominal's by this factor or
# more: a real systematic rarely changes the total yield by a factor 2, unnormalised
# weights (unit weights, a different number of events per sample) or rows of other
# samples counted as nominal (a sliced nu) easily do
YIELD_RATIO_TOLERANCE = 2.0


class BoostedParametricTree(BaseBoostedTrees):
    """Boosted Parametric Tree: learns Delta_A(x) in
    log dsigma(x|nu)/dsigma(x|0) = sum_A m_A(nu) Delta_A(x).

    Parameters
    ----------
    n_nuisances : int, default=1
        Number of nuisance parameters K.
    order : {1, 2}, default=2
        Polynomial order in nu; ignored when ``terms`` is given.
    terms : list of tuples, optional
        Explicit terms (any subset, e.g. without cross terms).  Default: all
        linear ``(a,)``, then all quadratic ``(a, b)``, ``a <= b``.
    n_estimators : int, default=500
        The maximum number of trees; with early stopping (on by default for
        >= 10 000 rows) the fit usually keeps far fewer.
    learning_rate : float in (0, 1], default=0.1
    learn_global : bool, default=False
        Fit the first tree with learning rate 1 (the global parametrisation first,
        as Algorithm 1 of the original paper does).  Off by default since the
        accuracy benchmark showed that a first tree of depth ``max_depth`` at rate 1
        leaves its full-height steps (and the noise of its leaves) in the model: on
        the analytic toys every tree at ``learning_rate`` is 25-30% more accurate
        (docs/validation.md).
    max_depth : int or None, default=2
        Depth of each tree in scikit-learn's sense (1 = one split).  The defaults
        (depth 2, rate 0.1, up to 500 trees, early stopping "auto") were chosen by
        the accuracy benchmark on analytic toys (``bench/bench_accuracy.py``; table
        in docs/validation.md): deeper trees learn the noise of finite simulation.
    min_samples_leaf : int, default=50
        A child of a split must hold at least this many events of *every* base
        point (nominal included), and every weight sum in it must be positive.
    split : {"hist", "exact"}, default="hist"
    max_bins : int <= 255, default=255
    n_jobs, random_state, verbose, validation_fraction, n_iter_no_change, early_stopping, tol
        As in :class:`bpt.BoostedInformationTree` ("auto" counts the rows of all
        samples).  The internal validation split is stratified by base point; for
        samples that share events pass ``groups`` or ``eval_set`` to ``fit`` (a random
        split of correlated samples is biased).
    refit : bool, default=True
        After early stopping on the internal ``validation_fraction`` split, grow the
        kept number of trees (``n_iter_``) again on all events, the held-out 10%
        included; ``validation_loss_`` stays the curve that chose ``n_iter_``,
        ``train_loss_`` is the refitted model's.  About twice the fit time; on the
        accuracy toys it lowered the off-grid error by 0-6% (docs/validation.md).  No
        effect with ``eval_set`` or without early stopping; ``refitted_`` tells whether
        it happened.
    samples : {"auto", "independent", "shared"}, default="auto"
        How the samples were simulated, which decides how each node's log yield ratios
        are fitted (docs/math.md section 2).  "independent": every base point and the
        nominal are separate simulations; the nominal's statistical fluctuation enters
        every ratio, so the node's Delta is the generalised least-squares fit with that
        covariance (on the independent-sample accuracy toy 5% lower off-grid error on
        three seeds than "shared"; docs/validation.md).  "shared": the base points are
        the same events reweighted or with varied features, whose common fluctuation
        cancels in the ratios; ordinary least squares (the only form before
        2026-12-07).  "auto": "shared" when ``groups`` is passed to ``fit`` or when
        most of a base point's rows repeat a nominal event's features (weight
        variations), else "independent".  The choice is in ``samples_``.  Feature variations of shared events (an energy
        scale) are not detected: pass ``samples="shared"`` or ``groups``.

    linear_leaves : float in [0, 1], default=0.5
        Weight of the part of each leaf's Delta that is linear in the features the
        tree split on along the path to the leaf (at most 4), fitted to the leaf's
        events by moment matching: the mean shift of every sample against the nominal
        turned into the slope of an exponential tilt (docs/concepts.md, "Linear
        leaves").  0 gives constant leaves (the closed form only, the model before
        2026-12-07).  A linear part is clipped to the range of its feature among the
        leaf's training events and adds nothing for a missing value.  The default
        was chosen by the accuracy benchmark (docs/validation.md).
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
    min_weight_leaf : float >= 0, default=0.0
        Minimum sum of weights of *every* base point (nominal included) in each
        child of a split, in the units of ``sample_weight``.

    Attributes
    ----------
    terms_ : list of tuples
    base_points_ : (n_base_points, K) float64, the distinct non-nominal rows of ``nu``
    V_ : (n_base_points, n_terms) design matrix m_A(nu_k)
    train_loss_ : (n_iter_,) cross entropy of docs/math.md section 2 per unit weight
        (log 2 for the empty model)
    validation_loss_, feature_importances_, n_features_in_, feature_names_in_, n_iter_

    Notes
    -----
    ``fit(X, nu)``: every row of ``nu`` gives the base point at which that event
    was simulated; rows of zeros form the nominal sample.  Weights (``sample_weight``)
    must be cross-section weights so that weight sums estimate yields: fit warns when a
    base point's total weight is ``YIELD_RATIO_TOLERANCE`` (2) times the nominal's or
    more, or as little as its inverse (likely unnormalised weights).  Every column of
    ``nu`` must enter some term; rows with non-zero values in a column no term uses are
    refused (the model would count them as nominal).  After each
    tree the events of base point k are reweighted by exp(-eta V_k . Delta(x)).
    Predictions are float64.
    """

    _name = "BPT"

    def __init__(self, n_nuisances=1, order=2, terms=None, n_estimators=500, learning_rate=0.1,
                 learn_global=False, max_depth=2, min_samples_leaf=50, split="hist",
                 max_bins=255, n_jobs=None, random_state=None, verbose=0,
                 validation_fraction=0.1, n_iter_no_change=10, early_stopping="auto", tol=1e-7,
                 l2_regularization=0.0, subsample=1.0, max_features=1.0, max_leaf_nodes=None,
                 min_weight_leaf=0.0, refit=True, samples="auto", linear_leaves=0.5):
        self.n_nuisances = n_nuisances
        self.order = order
        self.terms = terms
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.learn_global = learn_global
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
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
        self.min_weight_leaf = min_weight_leaf
        self.refit = refit
        self.samples = samples
        self.linear_leaves = linear_leaves

    # fitted state (saved files; see bpt/_state.py)
    _required_fitted_attributes = BaseBoostedTrees._required_fitted_attributes + (
        "base_points_", "V_")

    def _fitted_array_shapes(self):
        bp = self.base_points_
        n_points = bp.shape[0] if isinstance(bp, np.ndarray) and bp.ndim == 2 else None
        return {"base_points_": (None, self.n_nuisances), "V_": (n_points, len(self.terms_))}

    def _check_fitted_state(self):
        if not np.array_equal(self.V_, monomials(self.base_points_, self.terms_)):
            raise ValueError("V_ is not the design matrix m_A(nu_k) of base_points_")

    def _learning_rate(self, b):
        return 1.0 if (b == 0 and self.learn_global) else float(self.learning_rate)

    # ------------------------------------------------------------------ setup
    def _resolve_terms(self):
        if (isinstance(self.n_nuisances, bool)
                or not (isinstance(self.n_nuisances, (int, np.integer)) and self.n_nuisances >= 1)):
            raise ValueError(f"n_nuisances must be an integer >= 1, got {self.n_nuisances!r}")
        if self.terms is not None:
            return check_terms(self.terms, self.n_nuisances)
        return make_terms(self.n_nuisances, self.order)

    def _check_nu(self, nu, n, name="nu"):
        nu = check_finite(nu, name, ndim=(1, 2), length=n)
        if nu.ndim == 1:
            nu = nu[:, None]
        if nu.shape[1] != self.n_nuisances:
            raise ValueError(f"{name} must have n_nuisances = {self.n_nuisances} columns, got "
                             f"{nu.shape[1]}")
        return nu

    def _check_samples(self, cls, w, points, part="", check_counts=True):
        """Every sample (nominal and each base point) has a positive total weight and
        (if ``check_counts``) at least 2 * min_samples_leaf events."""
        counts = np.bincount(cls, minlength=len(points) + 1)
        sums = np.bincount(cls, weights=w, minlength=len(points) + 1)
        self._check_sample_totals(counts, sums, points, part, check_counts)

    def _check_sample_totals(self, counts, sums, points, part="", check_counts=True):
        """:meth:`_check_samples` from the event counts and weight sums per sample."""
        for k in range(len(points) + 1):
            label = "nominal sample" if k == 0 else f"base point nu={points[k - 1].tolist()}"
            if not sums[k] > 0:
                raise ValueError(f"the total weight of the {label}{part} is not positive "
                                 f"({sums[k]:.6g})")
            if check_counts and counts[k] < 2 * self.min_samples_leaf:
                raise ValueError(f"the {label}{part} has {counts[k]} events, fewer than "
                                 f"2 * min_samples_leaf = {2 * self.min_samples_leaf}")
        ratio = sums[1:] / sums[0]
        off = np.flatnonzero((ratio >= YIELD_RATIO_TOLERANCE)
                             | (ratio <= 1.0 / YIELD_RATIO_TOLERANCE))
        if check_counts and not part and off.size:
            k = int(off[0])
            warn_user(
                f"{type(self).__name__}: the total weight of the base point "
                f"nu={points[k].tolist()} is {ratio[k]:.3g} times the nominal sample's "
                f"({off.size} base point(s) differ by a factor >= {YIELD_RATIO_TOLERANCE:g}); "
                "the model learns this as a normalisation change. Weights must be "
                "cross-section weights (unnormalised or unit weights with different numbers "
                "of events per sample, or rows of other samples in the nominal, cause this).",
                UserWarning)

    def _base_points(self, nu, w, terms):
        """Distinct base points, per-event class (0 = nominal), design matrix V."""
        points, cls = _unique_rows(nu)
        unmodelled = sorted(set(range(nu.shape[1])) - {a for t in terms for a in t})
        if unmodelled:
            hit = np.flatnonzero(np.any(points[:, unmodelled] != 0.0, axis=1))
            if hit.size:
                raise ValueError(
                    f"nu has rows with non-zero values in column(s) {unmodelled}, which no "
                    f"term {terms} depends on: the model would treat e.g. the base point "
                    f"nu={points[hit[0]].tolist()} as nominal. Remove those rows, or give "
                    "terms that include the column(s)")
        is_nominal = np.all(points == 0.0, axis=1)
        if not is_nominal.any():
            raise ValueError("nu has no nominal rows (all-zero rows form the nominal sample)")
        nom = int(np.flatnonzero(is_nominal)[0])
        order = [nom] + [k for k in range(len(points)) if k != nom]
        remap = np.empty(len(points), dtype=np.int64)
        remap[order] = np.arange(len(points))
        cls = remap[cls]
        points = points[order[1:]]
        if len(points) == 0:
            raise ValueError("nu has only nominal rows: give events at non-zero base points")
        names = [f"nu{a}" for a in range(self.n_nuisances)]
        V = monomials(points, terms)
        for j in range(V.shape[1]):
            if np.linalg.matrix_rank(V[:, :j + 1]) < j + 1:
                raise ValueError(
                    f"the base points {points.tolist()} cannot determine the term "
                    f"{term_name(terms[j], names)}: its column of the design matrix "
                    "m_A(nu_k) is a combination of the previous terms' columns; add base "
                    "points that vary it")
        return points, cls, V

    def _classes_of(self, nu, name="nu"):
        """Index of each row's base point among (nominal, base_points_); error if unknown."""
        pts = np.vstack([np.zeros(self.n_nuisances), self.base_points_])
        match = np.all(nu[:, None, :] == pts[None, :, :], axis=2)
        if not match.any(axis=1).all():
            bad = int(np.flatnonzero(~match.any(axis=1))[0])
            raise ValueError(f"{name} row {bad} = {nu[bad].tolist()} is not one of the fitted "
                             f"base points (nominal or {self.base_points_.tolist()})")
        return match.argmax(axis=1).astype(np.int64)

    # ------------------------------------------------------------------ fit
    def fit(self, X, nu, sample_weight=None, groups=None, *, eval_set=None, callbacks=None):
        """Fit on features X (N, F) and base-point coordinates nu (N, K).

        ``groups`` (optional, (N,)): an id per row; rows with the same id (the same
        simulated event at several base points, as in weight or feature variations of
        one sample) are kept on the same side of the internal validation split.  Without
        it, a random split of such correlated samples puts copies of one event on both
        sides, so ``validation_loss_`` is biased low and early stopping stops too late.

        ``eval_set=(X_val, nu_val)`` or ``(X_val, nu_val, sample_weight_val)``:
        validation data (checked as the training data; every row of ``nu_val`` must be
        the nominal point or one of the training base points); no internal split is made
        when it is given.  ``callbacks``: list of callables, each called after every tree
        with a :class:`bpt.IterationInfo`; a callback that returns True stops the fit.
        """
        with self._fitting():
            self._start_fit()
            callbacks = self._check_callbacks(callbacks)
            terms = self._resolve_terms()
            X = self._check_X_fit(X)
            nu = self._check_nu(nu, X.shape[0])
            sw = check_sample_weight(sample_weight, X.shape[0])
            w = np.ones(X.shape[0]) if sw is None else sw.copy()
            if not isinstance(self.learn_global, (bool, np.bool_)):
                raise ValueError(f"learn_global must be True or False, got "
                                 f"{self.learn_global!r}")
            points, cls, V = self._base_points(nu, w, terms)
            self._check_samples(cls, w, points)
            self.terms_ = terms
            self.base_points_ = points
            self.V_ = V

            if groups is not None:
                groups = np.asarray(groups)
                if groups.shape != (X.shape[0],):
                    raise ValueError(f"groups must have shape ({X.shape[0]},), got "
                                     f"{groups.shape}")
            val_data = None
            if eval_set is not None:
                X_ev, nu_ev, w_ev = self._unpack_eval_set(eval_set, "nu")
                X_ev = self._check_X_eval(X_ev)
                nu_ev = self._check_nu(nu_ev, X_ev.shape[0], name="eval_set nu")
                w_ev = check_sample_weight(w_ev, X_ev.shape[0], "eval_set sample_weight")
                w_ev = np.ones(X_ev.shape[0]) if w_ev is None else w_ev
                cls_ev = self._classes_of(nu_ev, "eval_set nu")
                self._check_samples(cls_ev, w_ev, points, part=" in eval_set",
                                    check_counts=False)
                val_data = (X_ev, w_ev, cls_ev)
            share = (_shared_fraction(X, cls) if groups is None and self.samples == "auto"
                     else None)
            self.samples_ = self._resolve_samples(groups is not None, share)
            tr, va = self._plan_validation(X.shape[0], eval_set is not None, stratify=cls,
                                           groups=groups)
            if va is not None:
                if groups is None:
                    _warn_if_shared_events(_shared_fraction(X, cls) if share is None
                                           else share)
                self._check_samples(cls[tr], w[tr], points, part=" (training part, after "
                                    f"holding out validation_fraction={self.validation_fraction})")
                self._check_samples(cls[va], w[va], points, part=" (validation part, "
                                    f"validation_fraction={self.validation_fraction})",
                                    check_counts=False)
                val_data = (np.ascontiguousarray(X[va]), w[va], cls[va])
            validation = None
            if val_data is not None:
                X_va, w_va, c_va = val_data
                metric = BPTLoss(V)
                validation = (X_va, lambda D: metric.model_loss(w_va, c_va, D))

            def boost(rows, validation, callbacks, n_trees):
                # scale the weights by a power of two near 1 / total (exact in floating
                # point), so that any overall weight scale is representable
                w_tr = w if rows is None else w[rows]
                cls_tr = cls if rows is None else np.ascontiguousarray(cls[rows])
                scale = weight_scale(np.abs(w_tr).sum())
                Y = (w_tr * scale).reshape(-1, 1)
                # X is binned on its training rows without a copy
                self._boost(X, Y, cls_tr, self._loss_for(V, w_tr, cls_tr), validation,
                            weight_scale=scale, callbacks=callbacks, rows=rows,
                            n_trees=n_trees)

            self._boost_and_refit(boost, None if va is None else tr, validation, callbacks)
        return self

    def _check_params(self):
        super()._check_params()
        if not (isinstance(self.samples, str)
                and self.samples in ("auto", "independent", "shared")):
            raise ValueError(f"samples must be 'auto', 'independent' or 'shared', got "
                             f"{self.samples!r}")
        a = self.linear_leaves
        if isinstance(a, bool) or not (isinstance(a, numbers.Real) and 0 <= a <= 1):
            raise ValueError(f"linear_leaves must be a number in [0, 1] (0: constant "
                             f"leaves), got {a!r}")

    def _resolve_samples(self, has_groups, shared_fraction):
        """``samples`` with "auto" resolved: "shared" when the rows have event ids
        (``groups``) or when more than SHARED_EVENTS_WARN of a base point's rows repeat a
        nominal event's features, else "independent"."""
        if self.samples != "auto":
            return self.samples
        if has_groups or (shared_fraction is not None
                          and shared_fraction > SHARED_EVENTS_WARN):
            return "shared"
        return "independent"

    def _loss_for(self, V, w, cls):
        """The BPT loss for training weights ``w`` of classes ``cls``: the least-squares
        metric of independent samples from their effective sizes, or ordinary least
        squares for shared events (see ``samples``)."""
        sizes = (None if self.samples_ == "shared"
                 else effective_sizes(w, cls, V.shape[0] + 1))
        return BPTLoss(V, sample_sizes=sizes, linear=float(self.linear_leaves))

    # ------------------------------------------------------------------ predict
    def predict_log_ratio(self, X, nu):
        """g_nu(x) = sum_A m_A(nu) Delta_A(x): nu (K,) -> (N,), nu (M, K) -> (N, M)."""
        D = self.predict(X)
        nu = check_point(nu, self.n_nuisances, "nu")
        with np.errstate(over="ignore", invalid="ignore"):
            out = D @ monomials(nu, self.terms_).T
        if not np.all(np.isfinite(out)):
            raise ValueError(f"predict_log_ratio overflows (inf/NaN) at nu = {nu.tolist()}: "
                             "parameter values of this magnitude are out of range")
        return out

    def predict_ratio(self, X, nu):
        """S(x|nu) = exp(g_nu(x))."""
        g = self.predict_log_ratio(X, nu)
        with np.errstate(over="ignore"):
            out = np.exp(g)
        if not np.all(np.isfinite(out)):
            raise ValueError(f"predict_ratio overflows (exp of {np.max(g):.6g}) at nu = "
                             f"{np.asarray(nu).tolist()}: parameter values of this magnitude are "
                             "out of range")
        return out

    def score(self, X, nu, sample_weight=None):
        """Minus the cross entropy per unit weight (as ``train_loss_``) on (X, nu)."""
        D = self.predict(X)
        nu = self._check_nu(nu, D.shape[0])
        sw = check_sample_weight(sample_weight, D.shape[0])
        w = np.ones(D.shape[0]) if sw is None else sw
        cls = self._classes_of(nu)
        self._check_samples(cls, w, self.base_points_, part=" given to score",
                            check_counts=False)
        return -BPTLoss(self.V_).model_loss(w, cls, D)


# share of base-point rows that repeat a nominal row above which the samples are taken
# to be the same events (weight variations) and a random validation split is biased
SHARED_EVENTS_WARN = 0.5


def _row_hashes(X):
    """A 64-bit hash of each row's bits (bit-wise equal rows hash equal)."""
    bits = np.ascontiguousarray(X, dtype=np.float64).view(np.uint64)
    h = np.zeros(X.shape[0], dtype=np.uint64)
    prime = np.uint64(0x100000001B3)
    for j in range(bits.shape[1]):
        h = (h * prime) ^ bits[:, j]          # wraps modulo 2**64
    return h


def _shared_counts(h, cls, nominal_hashes, n_classes):
    """Per base point (classes 1..n_classes-1): rows, and rows whose hash is in
    ``nominal_hashes`` (sorted)."""
    others = cls > 0
    ho = h[others]
    pos = np.minimum(np.searchsorted(nominal_hashes, ho), max(len(nominal_hashes) - 1, 0))
    shared = (nominal_hashes[pos] == ho) if len(nominal_hashes) else np.zeros(len(ho), bool)
    counts = np.bincount(cls[others], minlength=n_classes)[1:]
    hits = np.bincount(cls[others], weights=shared, minlength=n_classes)[1:]
    return counts, hits


# rows per base point that _shared_fraction tests (evenly spaced): enough to tell "most
# rows repeat a nominal row" from "none do"
SHARED_CHECK_ROWS = 4096


def _shared_fraction(X, cls):
    """Largest share, over the base points, of a base point's rows whose feature vector
    also occurs in the nominal sample (bit-wise equality through a 64-bit row hash).
    Every nominal row is hashed; of each base point, up to SHARED_CHECK_ROWS evenly
    spaced rows are tested (0.2 s -> 0.01 s for 700k x 10)."""
    if not np.any(cls > 0):
        return 0.0
    nominal = np.sort(_row_hashes(X[cls == 0]))
    picks = []
    for k in range(1, int(cls.max()) + 1):
        rows = np.flatnonzero(cls == k)
        picks.append(rows[::max(1, -(-len(rows) // SHARED_CHECK_ROWS))])
    rows = np.concatenate(picks)
    counts, hits = _shared_counts(_row_hashes(X[rows]), cls[rows], nominal,
                                  int(cls.max()) + 1)
    return float(np.max(hits / np.maximum(counts, 1)))


def _warn_if_shared_events(share):
    if share > SHARED_EVENTS_WARN:
        warnings.warn(
            f"BoostedParametricTree: {share:.0%} of a base point's events repeat a nominal "
            "event's features (weight variations of the same events?); a random "
            "validation split puts copies of one event on both sides, so validation_loss_ "
            "is biased and early stopping stops late.  Pass groups= (an event id per row) "
            "or eval_set= (an independent sample), or early_stopping=False",
            UserWarning, stacklevel=4)


def _unique_rows(a):
    """Distinct rows of a (sorted) and the index of each row's distinct value.

    Same result as ``np.unique(a, axis=0, return_inverse=True)`` but through
    per-column integer codes, which is much faster for many rows and few values.
    """
    codes = np.zeros(a.shape[0], dtype=np.int64)
    radix = 1
    for j in range(a.shape[1] - 1, -1, -1):
        vals, inv = np.unique(a[:, j], return_inverse=True)
        if radix * len(vals) > 2 ** 62:
            points, inverse = np.unique(a, axis=0, return_inverse=True)
            return points, inverse.reshape(-1)
        codes += inv.reshape(-1) * radix
        radix *= len(vals)
    keys, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    return a[first], inverse.reshape(-1)
