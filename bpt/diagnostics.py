"""Diagnostics of a fitted BoostedInformationTree / BoostedParametricTree.

* :func:`closure` compares, on held-out simulation, the yields the learned model
  predicts with the simulated ones, in quantile bins of each learned coefficient
  (or of the learned ratio at a chosen point), at several parameter points, with a
  chi^2 and its p-value (:class:`ClosureResult`; plot with
  :func:`bpt.plotting.plot_closure`).
* :func:`overfitting_report` puts the loss on the training and on held-out data
  side by side as one number, the *optimism* (:class:`OverfittingReport`); for the
  BIT it also gives the learned Fisher information at theta = 0
  (:func:`fisher_information`).
* Per-feature contributions are a method of the estimators:
  ``est.predict_contributions(X)``.

The definitions are in docs/validation.md ("Diagnostics") and docs/math.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats
from sklearn.utils.validation import check_is_fitted

from ._terms import monomials, term_name
from ._validation import check_finite, check_point, check_sample_weight

__all__ = ["ClosureResult", "FisherInformation", "OverfittingReport", "closure",
           "fisher_information", "overfitting_report"]


def _kind(est):
    from ._bit import BoostedInformationTree
    from ._bpt import BoostedParametricTree
    if not isinstance(est, (BoostedInformationTree, BoostedParametricTree)):
        raise ValueError(f"expected a fitted BoostedInformationTree or BoostedParametricTree, "
                         f"got {type(est).__name__}")
    check_is_fitted(est, "ensemble_")
    return "BIT" if isinstance(est, BoostedInformationTree) else "BPT"


def _check_bins(bins):
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be an integer >= 1, got {bins!r}")
    return int(bins)


def _quantile_edges(v, w, bins):
    """Edges of ``bins`` bins holding about equal shares of the weight sum |w| of v."""
    order = np.argsort(v, kind="mergesort")
    cw = np.cumsum(np.abs(w[order]))
    if not cw[-1] > 0:
        cw = np.arange(1, len(v) + 1, dtype=np.float64)
    qs = np.arange(1, bins) / bins * cw[-1]
    inner = v[order][np.minimum(np.searchsorted(cw, qs), len(v) - 1)]
    return np.concatenate([[-np.inf], inner, [np.inf]])


def _bin_index(v, edges):
    """Bin of each value: edges[b] < v <= edges[b + 1]."""
    return np.clip(np.searchsorted(edges, v, side="left") - 1, 0, len(edges) - 2)


@dataclass
class ClosureResult:
    """Learned vs simulated weighted yields in bins of learned quantities.

    Axis 0 of the arrays runs over the binnings (one per learned coefficient, or one
    for the learned ratio at a chosen point, see ``binned_by``), axis 1 over the
    parameter points ``points``, axis 2 over the bins.

    Attributes
    ----------
    binned_by : list of str
        What each binning uses, e.g. ``"R_theta0"`` or ``"log S at nu=[1.0, 0.0]"``.
    edges : list of arrays (bins + 1,)
        Bin edges of each binning (outer edges -inf, +inf).
    points : (M, P) array
        Parameter points theta (BIT) or nu (BPT) at which the yields are compared.
    learned, simulated : (n_binnings, M, bins) arrays
        Predicted and simulated weighted yields.
    learned_error, simulated_error : same shape
        sqrt(sum of squared event contributions) of each yield.
    difference_error : same shape
        Standard deviation of learned - simulated (correlations included: same events
        for the BIT, ``groups`` for the BPT).
    chi2 : (n_binnings,) array
        sum over bins b of d_b^T C_b^+ d_b, with d_b the vector (over points) of
        learned - simulated yields in bin b and C_b its covariance estimated from the
        events (sum over events, or over ``groups``, of the outer products of their
        contributions): the yields at different points share events, so they are
        correlated.  C^+ is the pseudo-inverse on the eigenvalues above 1e-10 of the
        largest (and above 1e-24 of the summed squared yields, i.e. round-off).
    ndf : (n_binnings,) int array
        Sum over bins of the rank of C_b (no parameter is fitted to the held-out
        sample).
    p_value : (n_binnings,) array
        P(chi^2_ndf >= chi2).
    """

    binned_by: list
    edges: list
    points: np.ndarray
    learned: np.ndarray
    simulated: np.ndarray
    learned_error: np.ndarray
    simulated_error: np.ndarray
    difference_error: np.ndarray
    chi2: np.ndarray
    ndf: np.ndarray
    p_value: np.ndarray
    kind: str = field(default="BIT")

    @property
    def chi2_ndf(self):
        """chi2 / ndf of each binning."""
        return self.chi2 / np.maximum(self.ndf, 1)

    @property
    def pulls(self):
        """(learned - simulated) / difference_error (nan where the error is 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.difference_error > 0,
                            (self.learned - self.simulated) / self.difference_error, np.nan)

    def summary(self):
        """One line per binning: chi2/ndf and p-value."""
        return "\n".join(f"{b}: chi2/ndf = {c:.1f}/{n} = {c / max(n, 1):.2f}, p = {p:.3g}"
                         for b, c, n, p in zip(self.binned_by, self.chi2, self.ndf,
                                               self.p_value))


def closure(est, X, target, sample_weight=None, *, groups=None, bins=10, bin_at=None,
            points=None):
    """Closure test of a fitted estimator on held-out simulation.

    Parameters
    ----------
    est : fitted BoostedInformationTree or BoostedParametricTree
    X : array (N, F)
        Held-out events (not used in training).
    target : array
        BIT: ``y`` (N, 1 + n_terms), the events' coefficients as in ``fit``.
        BPT: ``nu`` (N, K), each event's base point (all-zero rows: nominal sample);
        any points may be used, also ones the model was not trained on.
    sample_weight : array (N,), optional
    groups : array (N,), optional (BPT)
        An event id per row when the samples at different points share events (weight
        or feature variations of one sample): their correlation then enters
        ``difference_error``.  Without it the samples are taken as independent.
    bins : int, default=10
        Number of bins, quantiles of the weight (BIT: SM weight; BPT: nominal weight).
    bin_at : point, optional
        Bin in the learned log-ratio log r(x|theta) (BIT) or log S(x|nu) (BPT) at this
        point (one binning) instead of in each learned coefficient (one binning per
        term).
    points : (M, P) array, optional (BIT)
        Points theta where yields are compared; default the estimator's
        ``base_points_``.  (BPT: the distinct non-zero rows of ``nu``.)

    Returns
    -------
    ClosureResult

    Notes
    -----
    BIT: learned yield in a bin = sum_i c0_i r(x_i|theta), simulated = sum_i w_i(theta) =
    sum_i (c0_i + sum_A c_iA m_A(theta)), both over the same events, so the error of
    the difference is sqrt(sum_i (c0_i r(x_i|theta) - w_i(theta))^2).
    BPT: learned yield at nu = sum over nominal events of w_i exp(g_nu(x_i)), simulated
    = sum of the weights of the sample at nu.  For an exact model on independent
    simulation chi2/ndf is about 1 (chi2 follows chi^2_ndf up to the Gaussian
    approximation of each bin, so use bins with many events); a model that misses a
    feature dependence gives chi2/ndf >> 1.
    """
    kind = _kind(est)
    bins = _check_bins(bins)
    Xc = est._check_X_predict(X)
    n = Xc.shape[0]
    sw = check_sample_weight(sample_weight, n)
    coef = est.predict(Xc)
    names = ([f"theta{a}" for a in range(est.n_parameters)] if kind == "BIT"
             else [f"nu{a}" for a in range(est.n_nuisances)])
    symbol = "R" if kind == "BIT" else "Delta"

    if kind == "BIT":
        y = est._check_y(target, n, len(est.terms_), sample_weight)
        pts = est.base_points_ if points is None else check_finite(points, "points", ndim=2)
        if pts.shape[1] != est.n_parameters:
            raise ValueError(f"points must have shape (M, {est.n_parameters}), got "
                             f"{pts.shape}")
        if groups is not None:
            raise ValueError("groups is for the BoostedParametricTree (the BIT compares "
                             "yields on the same events)")
        w = None
        base_w = y[:, 0]
        mask = np.ones(n, dtype=bool)
    else:
        nu = est._check_nu(target, n)
        w = np.ones(n) if sw is None else sw
        if points is not None:
            raise ValueError("points is for the BoostedInformationTree; the BPT compares at "
                             "the distinct non-zero rows of nu")
        if groups is not None:
            groups = np.asarray(groups)
            if groups.shape != (n,):
                raise ValueError(f"groups must have shape ({n},), got {groups.shape}")
        mask = np.all(nu == 0.0, axis=1)
        if not mask.any():
            raise ValueError("nu has no nominal rows (all-zero rows)")
        pts = np.unique(nu[~mask], axis=0)
        if len(pts) == 0:
            raise ValueError("nu has only nominal rows: give held-out events at some nu")
        base_w = w

    # binning variables (evaluated on every row: the simulated sample at nu is binned
    # by the same learned function of x as the nominal events)
    if bin_at is None:
        variables = [coef[:, a] for a in range(coef.shape[1])]
        labels = [f"{symbol}_{term_name(t, names)}" for t in est.terms_]
    else:
        p = check_point(bin_at, pts.shape[1], "bin_at")
        if p.ndim != 1:
            raise ValueError(f"bin_at must be one point ({pts.shape[1]},), got {p.shape}")
        g = coef @ monomials(p, est.terms_).T
        if kind == "BIT":
            with np.errstate(divide="ignore", invalid="ignore"):
                g = np.log(np.maximum(1.0 + g, 1e-300))
            labels = [f"log r at theta={p.tolist()}"]
        else:
            labels = [f"log S at nu={p.tolist()}"]
        variables = [g]

    M = pts.shape[0]
    mono = monomials(pts, est.terms_)                     # (M, n_terms)
    # per row and point: its contribution to the learned yield (pred) and to the simulated
    # one (sim); D = pred - sim.  BIT: every event at every point.  BPT: a nominal event
    # predicts every point, an event of the sample at point m is simulated at m only.
    if kind == "BIT":
        c0 = y[:, 0]
        pred = c0[:, None] * (1.0 + coef @ mono.T)
        sim = c0[:, None] + y[:, 1:] @ mono.T
    else:
        pred = np.zeros((n, M))
        pred[mask] = w[mask, None] * np.exp(coef[mask] @ mono.T)
        sim = np.zeros((n, M))
        for m in range(M):
            at = np.all(nu == pts[m], axis=1)
            sim[at, m] = w[at]
    D = pred - sim
    if groups is not None:
        g_codes = np.unique(groups, return_inverse=True)[1].reshape(-1).astype(np.int64)

    shape = (len(variables), M, bins)
    learned, simulated = np.zeros(shape), np.zeros(shape)
    l_err, s_err, d_err = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    chi2 = np.zeros(len(variables))
    ndf = np.zeros(len(variables), dtype=np.int64)
    edges_all = []
    for v_i, v in enumerate(variables):
        edges = _quantile_edges(v[mask], base_w[mask], bins)
        edges_all.append(edges)
        b_all = _bin_index(v, edges)
        for m in range(M):
            learned[v_i, m] = np.bincount(b_all, weights=pred[:, m], minlength=bins)
            simulated[v_i, m] = np.bincount(b_all, weights=sim[:, m], minlength=bins)
            l_err[v_i, m] = np.sqrt(np.bincount(b_all, weights=pred[:, m] ** 2, minlength=bins))
            s_err[v_i, m] = np.sqrt(np.bincount(b_all, weights=sim[:, m] ** 2, minlength=bins))
        # rows of one group (the same event at several points) in one bin add up first
        if groups is None:
            keys, Dk = b_all, D
        else:
            uniq, inv = np.unique(g_codes * bins + b_all, return_inverse=True)
            keys = uniq % bins
            Dk = np.zeros((len(uniq), M))
            np.add.at(Dk, inv.reshape(-1), D)
        scale = np.bincount(b_all, weights=(pred ** 2 + sim ** 2).sum(axis=1), minlength=bins)
        for b in range(bins):
            rows = Dk[keys == b]
            if rows.shape[0] == 0:
                continue
            diff = rows.sum(axis=0)
            cov = rows.T @ rows                            # covariance of diff over points
            d_err[v_i, :, b] = np.sqrt(np.diag(cov))
            lam, vec = np.linalg.eigh(cov)
            # directions whose variance is round-off of the yields themselves (an exact
            # model on reweighted copies of the same events) carry no information
            floor = max(1e-10 * lam.max(), 1e-24 * scale[b])
            keep = lam > floor
            if not keep.any():
                continue
            proj = vec[:, keep].T @ diff
            chi2[v_i] += float(np.sum(proj ** 2 / lam[keep]))
            ndf[v_i] += int(keep.sum())
    p_value = np.where(ndf > 0, stats.chi2.sf(chi2, np.maximum(ndf, 1)), np.nan)
    return ClosureResult(binned_by=labels, edges=edges_all, points=np.array(pts, dtype=float),
                         learned=learned, simulated=simulated, learned_error=l_err,
                         simulated_error=s_err, difference_error=d_err, chi2=chi2, ndf=ndf,
                         p_value=p_value, kind=kind)


# ----------------------------------------------------------------------------- Fisher
@dataclass
class FisherInformation:
    """Fisher information at theta = 0 along directions u, per unit SM weight.

    Attributes
    ----------
    directions : (D, P) array
    learned : (D,) array
        sum_i c0_i (u . dr/dtheta(x_i))^2 / sum_i c0_i with the learned model
        (dr/dtheta_a at 0 = R_(a,)(x)): what the model claims.
    validated : (D,) array
        sum_i [2 (u . c_i') (u . R'(x_i)) - c0_i (u . R'(x_i))^2] / sum_i c0_i, with
        c_i' the events' linear coefficients.  On held-out events its expectation is
        I_true - E[(u.(R' - R'_true))^2] <= the true information of x: what the model
        really captures.  On the training events it is biased up by overfitting.
    event_level : (D,) array
        sum_i (u . c_i')^2 / c0_i / sum_i c0_i: the information if every event's
        weight derivative were known (an upper bound of the information in x; only
        defined for c0 > 0).
    """

    directions: np.ndarray
    learned: np.ndarray
    validated: np.ndarray
    event_level: np.ndarray


def fisher_information(est, X, y, sample_weight=None, directions=None):
    """Learned, validated and event-level Fisher information at theta = 0 (BIT only).

    ``directions``: (D, P) unit directions u in parameter space (default: each
    parameter's axis).  Needs the linear terms (a,) of the parameters involved.
    See :class:`FisherInformation`.
    """
    if _kind(est) != "BIT":
        raise ValueError("fisher_information needs a BoostedInformationTree")
    Xc = est._check_X_predict(X)
    y = est._check_y(y, Xc.shape[0], len(est.terms_), sample_weight)
    P = est.n_parameters
    U = np.eye(P) if directions is None else check_finite(directions, "directions", ndim=(1, 2))
    U = np.atleast_2d(U)
    if U.shape[1] != P:
        raise ValueError(f"directions must have shape (D, {P}), got {U.shape}")
    lin = {t[0]: j for j, t in enumerate(est.terms_) if len(t) == 1}
    for a in range(P):
        if np.any(U[:, a] != 0) and a not in lin:
            raise ValueError(f"the model has no linear term ({a},): its Fisher information "
                             f"at theta = 0 along parameter {a} is not learned")
    R = est.predict(Xc)
    R1 = np.zeros((Xc.shape[0], P))
    C1 = np.zeros((Xc.shape[0], P))
    for a, j in lin.items():
        R1[:, a] = R[:, j]
        C1[:, a] = y[:, 1 + j]
    c0 = y[:, 0]
    tot = c0.sum()
    if not tot > 0:
        raise ValueError("the sum of SM weights (y[:, 0]) must be positive")
    dr = R1 @ U.T                                        # (N, D)
    dc = C1 @ U.T
    learned = (c0[:, None] * dr ** 2).sum(axis=0) / tot
    validated = (2.0 * dc * dr - c0[:, None] * dr ** 2).sum(axis=0) / tot
    with np.errstate(divide="ignore", invalid="ignore"):
        ev = np.where(c0[:, None] > 0, dc ** 2 / np.where(c0 > 0, c0, 1.0)[:, None], 0.0)
    event_level = ev.sum(axis=0) / tot if np.all(c0 > 0) else np.full(len(U), np.nan)
    return FisherInformation(directions=U, learned=learned, validated=validated,
                             event_level=event_level)


# ----------------------------------------------------------------------------- overfitting
@dataclass
class OverfittingReport:
    """The loss of a fitted model on its training data and on held-out data.

    Attributes
    ----------
    kind : "BIT" or "BPT"
    train_loss, test_loss : float
        The loss of ``train_loss_`` (BIT: quadratic loss per unit SM weight, 0 for the
        empty model; BPT: cross entropy per unit weight, log 2 for the empty model).
    empty_loss : float
        The loss of the empty model (0 or log 2).
    train_gain, test_gain : float
        empty_loss - loss: what the model learned (BIT: the information in the metric
        of the base points, "validated" as in :class:`FisherInformation`).
    optimism : float
        train_gain / test_gain - 1: about 0 for a model that generalises, large and
        positive for an overfitted one (nan if test_gain <= 0, which itself means the
        model is worse than the empty one on held-out data).
    fisher_train, fisher_test : FisherInformation or None
        BIT only: the Fisher information at theta = 0 on both samples (None when the
        model lacks a linear term).
    """

    kind: str
    train_loss: float
    test_loss: float
    empty_loss: float
    train_gain: float
    test_gain: float
    optimism: float
    fisher_train: FisherInformation | None = None
    fisher_test: FisherInformation | None = None

    def summary(self):
        s = (f"{self.kind}: loss train {self.train_loss:.6g}, held-out {self.test_loss:.6g} "
             f"(empty model {self.empty_loss:.6g}); gain train {self.train_gain:.4g}, "
             f"held-out {self.test_gain:.4g}; optimism {self.optimism:+.3f}")
        return s


def overfitting_report(est, X_train, target_train, X_test, target_test,
                       sample_weight_train=None, sample_weight_test=None):
    """Training vs held-out loss as one number (see :class:`OverfittingReport`).

    ``target``: BIT ``y`` (N, 1 + n_terms); BPT ``nu`` (N, K) (on the base points the
    model was trained at).  Pass the same training data as to ``fit`` (with an internal
    validation split, part of it was held out; the report then slightly understates
    the optimism).
    """
    kind = _kind(est)
    tr = -est.score(X_train, target_train, sample_weight_train)
    te = -est.score(X_test, target_test, sample_weight_test)
    empty = 0.0 if kind == "BIT" else float(np.log(2.0))
    gtr, gte = empty - tr, empty - te
    optimism = gtr / gte - 1.0 if gte > 0 else float("nan")
    f_tr = f_te = None
    if kind == "BIT" and all((a,) in est.terms_ for a in range(est.n_parameters)):
        f_tr = fisher_information(est, X_train, target_train, sample_weight_train)
        f_te = fisher_information(est, X_test, target_test, sample_weight_test)
    return OverfittingReport(kind=kind, train_loss=float(tr), test_loss=float(te),
                             empty_loss=empty, train_gain=float(gtr), test_gain=float(gte),
                             optimism=float(optimism), fisher_train=f_tr, fisher_test=f_te)
