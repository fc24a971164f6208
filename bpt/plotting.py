"""Plots for fitted models and likelihood scans (needs matplotlib: ``pip install bpt[plot]``).

Every function takes ``ax=None`` (a new figure is created when it is None) and
returns what it drew on, so plots compose with ordinary matplotlib code:

* :func:`plot_coefficients` -- learned vs true R_A(x) of a BIT, profiled against a feature;
* :func:`plot_loss` -- training (and validation) loss per tree;
* :func:`plot_systematic_ratios` -- learned vs true S(x|nu) of a BPT at several nu;
* :func:`plot_scan` -- a 1D profile-likelihood scan with the 68%/95% CL lines;
* :func:`plot_contour` -- 2D profile-likelihood contours at 68%/95% CL;
* :func:`plot_closure` -- learned vs simulated yields of a closure test
  (:func:`bpt.diagnostics.closure`);
* :func:`plot_impacts` -- the ranked pulls-and-impacts plot of
  ``AdditiveModel.impacts``.

matplotlib is imported only when a function is called.
"""

from __future__ import annotations

import numpy as np

from ._terms import term_name

__all__ = ["plot_coefficients", "plot_loss", "plot_systematic_ratios", "plot_scan",
           "plot_contour", "plot_closure", "plot_impacts", "offscreen_pyplot"]

#: Delta t at 68% / 95% CL for one and two parameters (Wilks).
LEVELS_1D = (1.0, 3.84)
LEVELS_2D = (2.30, 5.99)
_LEVEL_LABELS = ("68% CL", "95% CL")


# --------------------------------------------------------------------------- helpers
def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - exercised only without matplotlib
        raise ImportError("bpt.plotting needs matplotlib; install it with "
                          "`pip install bpt[plot]` (or `pip install matplotlib`)") from exc
    return plt


def offscreen_pyplot():
    """``matplotlib.pyplot`` on the off-screen Agg backend, for scripts that write PNG
    files; ``None`` (after printing why) when matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed: plot skipped (pip install -e \".[plot]\")")
        return None
    matplotlib.use("Agg")
    return _pyplot()


def _new_axes(ax, figsize=(5.0, 3.8)):
    if ax is not None:
        return ax
    _, ax = _pyplot().subplots(figsize=figsize, layout="constrained")
    return ax


def _feature(X, feature, feature_names, est=None):
    """(column values, axis label) of ``feature`` (int index or name)."""
    names = feature_names
    if names is None and hasattr(X, "columns"):
        names = [str(c) for c in X.columns]
    if names is None and est is not None and hasattr(est, "feature_names_in_"):
        names = [str(c) for c in est.feature_names_in_]
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"X must be 2-d (n_samples, n_features), got shape {arr.shape}")
    if isinstance(feature, str):
        if names is None or feature not in list(names):
            raise ValueError(f"feature {feature!r} not found: give feature_names or an int index")
        j = list(names).index(feature)
    else:
        j = int(feature)
        if not -arr.shape[1] <= j < arr.shape[1]:
            raise ValueError(f"feature index {j} out of range for X with {arr.shape[1]} columns")
        j %= arr.shape[1]
    label = str(names[j]) if names is not None else f"feature {j}"
    return arr, arr[:, j], label


def _edges(x, bins):
    if np.ndim(bins) == 0:
        nb = int(bins)
        if nb < 1:
            raise ValueError(f"bins must be a positive integer or an array of edges, got {bins}")
        edges = np.unique(np.quantile(x, np.linspace(0.0, 1.0, nb + 1)))
        if len(edges) < 2:
            edges = np.array([x.min() - 0.5, x.max() + 0.5])
    else:
        edges = np.asarray(bins, dtype=np.float64)
    return edges


def _profile(x, values, weights, edges):
    """Weighted mean of ``values`` (N, k) and of ``x`` in the bins of ``x``."""
    idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
    inside = (x >= edges[0]) & (x <= edges[-1])
    nb = len(edges) - 1
    w = weights * inside
    sw = np.bincount(idx, weights=w, minlength=nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = np.bincount(idx, weights=w * x, minlength=nb) / sw
        prof = np.stack([np.bincount(idx, weights=w * v, minlength=nb) / sw for v in values.T],
                        axis=1)
    ok = sw > 0
    return centre[ok], prof[ok]


def _weights(sample_weight, n):
    if sample_weight is None:
        return np.ones(n)
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},), got {w.shape}")
    return w


def _set_label(axis, text, default):
    """Set an axis label; with ``text=None`` keep an existing label (overlays)."""
    if text is not None:
        axis.set_label_text(text)
    elif not axis.get_label_text():
        axis.set_label_text(default)


def _point_label(point, names):
    parts = [f"{n}={v:g}" for n, v in zip(names, point)]
    return ", ".join(parts)


# --------------------------------------------------------------------------- BIT
def plot_coefficients(est_or_pred, X, truth=None, feature=0, terms=None, *, sample_weight=None,
                      bins=20, feature_names=None, parameter_names=None, label="learned",
                      ax=None):
    """Learned (and true) coefficients R_A(x) profiled against one feature, one panel per term.

    Each curve is the weighted mean of R_A(x_i) over the events in bins of the
    chosen feature (quantile bins), so learned and true curves average over the
    same events and are directly comparable.

    Parameters
    ----------
    est_or_pred : fitted BoostedInformationTree, or array (N, n_terms)
        The model (its ``predict(X)`` is used) or precomputed predictions.
    X : array-like (N, F)
        Events, e.g. a nominal SM sample.
    truth : callable or array (N, n_terms), optional
        True coefficients, e.g. :func:`bpt.datasets.true_coefficients` (called as
        ``truth(X)``); drawn dashed.
    feature : int or str, default=0
        Feature on the x axis (a name needs ``feature_names``, a DataFrame or an
        estimator fitted with feature names).
    terms : list of int or tuples, optional
        Which terms (column indices or term tuples of ``est.terms_``); default all.
    sample_weight : array (N,), optional
        Event weights for the profile (e.g. the SM weights ``y[:, 0]``).
    bins : int or array, default=20
        Number of quantile bins, or bin edges.
    feature_names, parameter_names : list of str, optional
        Axis labels (``parameter_names`` names the parameters in term labels).
    label : str, default="learned"
        Legend label of the learned curves.
    ax : Axes or array of Axes, optional
        One Axes per term; default a new figure with a grid of panels.

    Returns
    -------
    axes : ndarray of Axes, one per plotted term.
    """
    plt = _pyplot()
    est = est_or_pred if hasattr(est_or_pred, "predict") else None
    Xa, x, xlabel = _feature(X, feature, feature_names, est)
    pred = est.predict(X) if est is not None else np.asarray(est_or_pred, dtype=np.float64)
    if pred.ndim == 1:
        pred = pred[:, None]
    if pred.shape[0] != Xa.shape[0]:
        raise ValueError(f"predictions have {pred.shape[0]} rows but X has {Xa.shape[0]}")
    all_terms = list(getattr(est, "terms_", [])) or None
    if terms is None:
        cols = list(range(pred.shape[1]))
    else:
        cols = []
        for t in terms:
            if isinstance(t, (tuple, list)):
                if all_terms is None or tuple(t) not in all_terms:
                    raise ValueError(f"term {tuple(t)} is not one of the model's terms "
                                     f"{all_terms}")
                cols.append(all_terms.index(tuple(t)))
            else:
                cols.append(int(t))
    if any(not 0 <= c < pred.shape[1] for c in cols):
        raise ValueError(f"term indices {cols} out of range for {pred.shape[1]} terms")
    true = None
    if truth is not None:
        true = np.asarray(truth(Xa) if callable(truth) else truth, dtype=np.float64)
        if true.ndim == 1:
            true = true[:, None]
        if true.shape != pred.shape:
            raise ValueError(f"truth has shape {true.shape}, predictions {pred.shape}")
    w = _weights(sample_weight, Xa.shape[0])
    edges = _edges(x, bins)

    n = len(cols)
    if ax is None:
        ncols = min(n, 3)
        nrows = -(-n // ncols)
        fig, grid = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.3 * nrows),
                                 squeeze=False, layout="constrained")
        axes = grid.ravel()
        for extra in axes[n:]:
            extra.remove()
        axes = axes[:n]
    else:
        axes = np.atleast_1d(np.asarray(ax, dtype=object)).ravel()
        if len(axes) < n:
            raise ValueError(f"need {n} Axes (one per term), got {len(axes)}")
        axes = axes[:n]

    names = {i: str(v) for i, v in enumerate(parameter_names)} if parameter_names else None
    centre, prof = _profile(x, pred[:, cols], w, edges)
    if true is not None:
        _, prof_true = _profile(x, true[:, cols], w, edges)
    for k, (a, c) in enumerate(zip(axes, cols)):
        tname = term_name(all_terms[c], names) if all_terms else f"term {c}"
        a.plot(centre, prof[:, k], "-o", ms=3, color="C0", label=label)
        if true is not None:
            a.plot(centre, prof_true[:, k], "--", color="k", label="truth")
        a.set_title(f"$R_A$, A = {tname}", fontsize=10)
        a.set_xlabel(xlabel)
        a.set_ylabel(r"$\langle R_A(x)\rangle$")
        a.grid(alpha=0.3)
    axes[0].legend(fontsize=9)
    return axes


def plot_loss(est, ax=None, *, label=None, logy=False):
    """Training (and validation, if recorded) loss after each tree.

    Parameters
    ----------
    est : fitted BoostedInformationTree / BoostedParametricTree, or array
        Uses ``train_loss_`` and, if present, ``validation_loss_``; an array is
        drawn as a training curve.
    ax : Axes, optional
    label : str, optional
        Prefix of the legend entries (e.g. the model's name).
    logy : bool, default=False
        Logarithmic y axis (only sensible for positive losses such as the BPT's).

    Returns
    -------
    ax : Axes
    """
    ax = _new_axes(ax)
    if hasattr(est, "train_loss_"):
        train = np.asarray(est.train_loss_, dtype=np.float64)
        val = getattr(est, "validation_loss_", None)
        title = type(est).__name__
    else:
        train, val, title = np.asarray(est, dtype=np.float64), None, None
    if train.ndim != 1 or train.size == 0:
        raise ValueError("no loss curve to plot: expected a fitted estimator with train_loss_ "
                         "or a 1-d array")
    prefix = f"{label} " if label else ""
    it = np.arange(1, train.size + 1)
    ax.plot(it, train, "-", color="C0", label=f"{prefix}train")
    if val is not None:
        val = np.asarray(val, dtype=np.float64)
        best = int(np.argmin(val))
        ax.plot(np.arange(1, val.size + 1), val, "--", color="C1", label=f"{prefix}validation")
        ax.scatter([best + 1], [val[best]], marker="o", facecolors="none", edgecolors="C1",
                   zorder=3, label=f"best: {best + 1} trees")
    ax.set_xlabel("number of trees")
    ax.set_ylabel("loss")
    if logy:
        ax.set_yscale("log")
    if title and ax.get_title() == "":
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9)
    return ax


def plot_closure(result, binning=0, ax=None, *, point_names=None):
    """Learned / simulated yield per bin of one binning of a closure test, per point.

    Parameters
    ----------
    result : bpt.diagnostics.ClosureResult
    binning : int, default=0
        Which binning (index into ``result.binned_by``).
    ax : Axes, optional
    point_names : list of str, optional
        Names of the parameters (for the legend).

    Returns
    -------
    ax : Axes
        Markers: learned / simulated with the error of the difference divided by the
        simulated yield; the title gives chi2/ndf and the p-value of this binning.
    """
    if not hasattr(result, "learned") or not hasattr(result, "binned_by"):
        raise ValueError("plot_closure needs a ClosureResult from bpt.diagnostics.closure")
    n_b = len(result.binned_by)
    if isinstance(binning, bool) or not isinstance(binning, (int, np.integer)) or not (
            0 <= binning < n_b):
        raise ValueError(f"binning must be an integer in [0, {n_b - 1}], got {binning!r}")
    ax = _new_axes(ax)
    lrn, sim = result.learned[binning], result.simulated[binning]
    err = result.difference_error[binning]
    n_pts, n_bins = lrn.shape
    x = np.arange(1, n_bins + 1)
    width = 0.7 / max(n_pts, 1)
    sym = "theta" if result.kind == "BIT" else "nu"
    names = point_names or [f"{sym}{a}" for a in range(result.points.shape[1])]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(sim != 0, lrn / sim, np.nan)
        rerr = np.where(sim != 0, err / np.abs(sim), np.nan)
    for m in range(n_pts):
        off = (m - (n_pts - 1) / 2) * width
        ax.errorbar(x + off, ratio[m], yerr=rerr[m], fmt="o", ms=3, capsize=0,
                    color=f"C{m % 10}", label=_point_label(result.points[m], names))
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xlabel(f"quantile bin of {result.binned_by[binning]}")
    ax.set_ylabel("learned / simulated yield")
    ax.set_xticks(x)
    ax.set_title(f"closure: chi2/ndf = {result.chi2[binning]:.1f}/{result.ndf[binning]}, "
                 f"p = {result.p_value[binning]:.3g}", fontsize=10)
    ax.grid(alpha=0.3)
    if n_pts <= 12:
        ax.legend(fontsize=7, ncol=2)
    return ax


# --------------------------------------------------------------------------- BPT
def plot_systematic_ratios(bpt_est, X, nu_values, truth=None, feature=0, *, sample_weight=None,
                           bins=20, feature_names=None, nuisance_names=None, ax=None):
    """Learned systematic ratios S(x|nu) at several nu, projected on one feature.

    The curve for each nu is the weighted mean of S(x_i|nu) over nominal events in
    bins of the feature, i.e. the ratio of the feature's histograms at nu and at
    nominal.  The true ratio (if given) is drawn dashed in the same colour.

    Parameters
    ----------
    bpt_est : fitted BoostedParametricTree, or array (N, M)
        The model (``predict_log_ratio(X, nu_values)``) or precomputed learned
        log-ratios for each of the M points.
    X : array-like (N, F)
        Nominal events.
    nu_values : array-like (M, K) or (K,)
        Nuisance points to show.
    truth : callable or array (N, M), optional
        True *log*-ratio, e.g. :func:`bpt.datasets.true_log_ratio`, called as
        ``truth(X, nu_values)`` and expected to return (N, M) (or (N,) for M = 1).
    feature : int or str, default=0
    sample_weight : array (N,), optional
        Nominal event weights.
    bins : int or array, default=20
        Quantile bins or edges.
    feature_names, nuisance_names : list of str, optional
        Axis label and legend names of the nuisances (default nu0, nu1, ...).
    ax : Axes, optional

    Returns
    -------
    ax : Axes
    """
    from matplotlib.lines import Line2D

    ax = _new_axes(ax, figsize=(5.6, 4.0))
    est = bpt_est if hasattr(bpt_est, "predict_log_ratio") else None
    Xa, x, xlabel = _feature(X, feature, feature_names, est)
    nu = np.atleast_2d(np.asarray(nu_values, dtype=np.float64))
    if est is not None:
        g = np.asarray(est.predict_log_ratio(X, nu), dtype=np.float64)
    else:
        g = np.asarray(bpt_est, dtype=np.float64)
    g = g.reshape(Xa.shape[0], -1)
    if g.shape[1] != nu.shape[0]:
        raise ValueError(f"learned log-ratios have {g.shape[1]} columns for {nu.shape[0]} "
                         "nu values")
    true = None
    if truth is not None:
        true = np.asarray(truth(Xa, nu) if callable(truth) else truth, dtype=np.float64)
        true = true.reshape(Xa.shape[0], -1)
        if true.shape != g.shape:
            raise ValueError(f"truth has shape {true.shape}, learned {g.shape}")
    w = _weights(sample_weight, Xa.shape[0])
    edges = _edges(x, bins)
    names = list(nuisance_names) if nuisance_names is not None else \
        [f"nu{k}" for k in range(nu.shape[1])]

    centre, prof = _profile(x, np.exp(g), w, edges)
    if true is not None:
        _, prof_true = _profile(x, np.exp(true), w, edges)
    ax.axhline(1.0, color="0.6", lw=0.8, ls=":")
    handles = []
    for k, point in enumerate(nu):
        color = f"C{k % 10}"
        (line,) = ax.plot(centre, prof[:, k], "-", color=color, lw=1.6,
                          label=_point_label(point, names))
        handles.append(line)
        if true is not None:
            ax.plot(centre, prof_true[:, k], "--", color=color, lw=1.2)
    if true is not None:
        handles.append(Line2D([], [], color="k", ls="--", lw=1.2, label="truth (dashed)"))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(r"$S(x|\nu)$ = d$\sigma(\nu)$ / d$\sigma(0)$")
    ax.grid(alpha=0.3)
    ax.legend(handles=handles, fontsize=8, ncol=2 if len(handles) > 5 else 1)
    return ax


# --------------------------------------------------------------------------- scans
def _crossings(x, y, level):
    """x where the piecewise-linear y crosses ``level`` (sorted)."""
    out = []
    for i in range(len(x) - 1):
        y0, y1 = y[i] - level, y[i + 1] - level
        if not (np.isfinite(y0) and np.isfinite(y1)):
            continue
        if y0 == 0:
            out.append(x[i])
        elif y0 * y1 < 0:
            out.append(x[i] + (x[i + 1] - x[i]) * y0 / (y0 - y1))
    if np.isfinite(y[-1]) and y[-1] == level:
        out.append(x[-1])
    return out


def _refined_minimum(x, y):
    """Grid minimum, refined by the parabola through it and its two neighbours."""
    i = int(np.nanargmin(y))
    if 0 < i < len(x) - 1 and np.all(np.isfinite(y[i - 1:i + 2])):
        x0, x1, x2 = x[i - 1:i + 2]
        y0, y1, y2 = y[i - 1:i + 2]
        den = (x0 - x1) * (x0 - x2) * (x1 - x2)
        a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / den
        b = (x2 * x2 * (y0 - y1) + x1 * x1 * (y2 - y0) + x0 * x0 * (y1 - y2)) / den
        if a > 0:
            return float(np.clip(-b / (2 * a), x0, x2))
    return float(x[i])


def _interval(x, y, level, best):
    """(low, high) around ``best``; None at an end means the scan does not reach it."""
    cr = np.asarray(_crossings(x, y, level))
    lo = cr[cr <= best].max() if np.any(cr <= best) else None
    hi = cr[cr >= best].min() if np.any(cr >= best) else None
    return lo, hi


def _draw_levels(ax, levels, labels):
    """Horizontal CL lines (once per Axes) with their labels at the right edge."""
    from matplotlib.transforms import blended_transform_factory

    trans = blended_transform_factory(ax.transAxes, ax.transData)
    for lev, lab in zip(levels, labels):
        gid = f"bpt-level-{lev:g}"
        if any(line.get_gid() == gid for line in ax.lines):
            continue
        line = ax.axhline(lev, color="0.45", lw=0.9, ls=":")
        line.set_gid(gid)
        if lab:
            ax.text(0.99, lev, lab, transform=trans, ha="right", va="bottom", fontsize=8,
                    color="0.35")


def plot_scan(thetas, t, ax=None, *, label=None, parameter_name=None,
              levels=LEVELS_1D, level_labels=_LEVEL_LABELS, truth=None, color=None):
    """A 1D profile-likelihood scan t(theta) with 68% / 95% CL lines and the best fit.

    ``t`` is shifted so that its minimum is 0 (Delta t).  The best fit (the grid
    minimum refined by a parabola through its neighbours) is marked; the legend
    gives it with the 68% interval, read off by linear interpolation of the scan.
    Calling again on the same Axes overlays another scan (the CL lines are drawn
    once).

    Parameters
    ----------
    thetas : array (n,)
        Scanned parameter values (any order).
    t : array (n,)
        Test statistic at each value, e.g. -2 (max_nu q(theta, nu) - max q).
    ax : Axes, optional
    label : str, optional
        Legend label of this scan.
    parameter_name : str, optional
        x-axis label (default: keep the Axes' label, else "$\\theta$").
    levels : sequence of float, default=(1, 3.84)
        Delta t of the horizontal lines (68% / 95% CL for one parameter).
    level_labels : sequence of str
    truth : float, optional
        True value, drawn as a vertical dash-dotted line.
    color : matplotlib colour, optional

    Returns
    -------
    ax : Axes
    """
    ax = _new_axes(ax)
    x = np.asarray(thetas, dtype=np.float64).ravel()
    y = np.asarray(t, dtype=np.float64).ravel()
    if x.shape != y.shape or x.size < 2:
        raise ValueError(f"thetas and t must be 1-d of the same length >= 2, got {x.shape} "
                         f"and {y.shape}")
    order = np.argsort(x)
    x, y = x[order], y[order]
    if not np.any(np.isfinite(y)):
        raise ValueError("t has no finite values")
    y = y - np.nanmin(y)
    best = _refined_minimum(x, y)
    lo, hi = _interval(x, y, levels[0], best) if len(levels) else (None, None)

    def fmt(v):
        return "..." if v is None else f"{v:.3g}"

    text = f"best fit {best:.3g}"
    if len(levels):
        text += f", {level_labels[0] if level_labels else ''} [{fmt(lo)}, {fmt(hi)}]"
    full = f"{label}: {text}" if label else text
    (line,) = ax.plot(x, y, "-", color=color, lw=1.6, label=full)
    ax.plot([best], [0.0], marker="*", ms=10, ls="none", color=line.get_color())
    _draw_levels(ax, levels, level_labels or [""] * len(levels))
    if truth is not None:
        ax.axvline(float(truth), color="k", lw=1.0, ls="-.", label="truth")
    _set_label(ax.xaxis, parameter_name, r"$\theta$")
    ax.set_ylabel(r"$t = -2\,\Delta\log L$")
    if len(levels):
        top = max(levels) * 1.8
        if np.nanmax(y) > top:
            ax.set_ylim(-0.05 * top, top)
    ax.grid(alpha=0.3)
    # above the Axes: a scan's arms fill the upper part of the plot
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False,
              ncol=1)
    return ax


def _refined_minimum_2d(x, y, z):
    """The minimum of the quadratic through the 3x3 grid points around the grid minimum
    (the grid minimum itself at an edge or where the quadratic is not convex)."""
    i, j = np.unravel_index(np.nanargmin(z), z.shape)
    if not (0 < i < x.size - 1 and 0 < j < y.size - 1):
        return float(x[i]), float(y[j])
    dx, dy = np.meshgrid(x[i - 1:i + 2] - x[i], y[j - 1:j + 2] - y[j], indexing="ij")
    zz = z[i - 1:i + 2, j - 1:j + 2]
    if not np.all(np.isfinite(zz)):
        return float(x[i]), float(y[j])
    dx, dy, zz = dx.ravel(), dy.ravel(), zz.ravel()
    A = np.column_stack([np.ones(9), dx, dy, 0.5 * dx * dx, dx * dy, 0.5 * dy * dy])
    c = np.linalg.lstsq(A, zz, rcond=None)[0]
    H = np.array([[c[3], c[4]], [c[4], c[5]]])
    try:
        if np.all(np.linalg.eigvalsh(H) > 0):
            step = -np.linalg.solve(H, c[1:3])
            hx, hy = abs(x[i + 1] - x[i - 1]) / 2, abs(y[j + 1] - y[j - 1]) / 2
            if abs(step[0]) <= hx and abs(step[1]) <= hy:
                return float(x[i] + step[0]), float(y[j] + step[1])
    except np.linalg.LinAlgError:
        pass
    return float(x[i]), float(y[j])


def plot_contour(theta1, theta2, t_grid, ax=None, *, levels=LEVELS_2D,
                 level_labels=_LEVEL_LABELS, parameter_names=None,
                 truth=None, label=None, color="C0", filled=True, best_fit=None):
    """2D profile-likelihood contours at Delta t = 2.30 and 5.99 (68% / 95% CL).

    Parameters
    ----------
    theta1 : array (n1,)
        Grid values of the first parameter (x axis).
    theta2 : array (n2,)
        Grid values of the second parameter (y axis).
    t_grid : array (n1, n2)
        ``t_grid[i, j] = t(theta1[i], theta2[j])`` (``indexing="ij"``); shifted so
        that its minimum is 0.
    ax : Axes, optional
    levels : sequence of float, default=(2.30, 5.99)
    level_labels : sequence of str
    parameter_names : (str, str), optional
        Axis labels (default: keep the Axes' labels, else "$\\theta_1$", "$\\theta_2$").
    truth : (float, float), optional
        True point, marked with a cross.
    label : str, optional
        Prefix of the legend entries (to overlay several fits).
    color : matplotlib colour, default="C0"
    filled : bool, default=True
        Shade the regions inside the contours lightly.
    best_fit : (float, float), optional
        The fitted maximum, e.g. ``model.fit(X).theta`` or ``scan_result.fit.theta``:
        marked as the best fit, and ``t_grid`` is taken as t relative to it (not
        shifted).  Default: the minimum of the quadratic through the 3 x 3 grid points
        around the grid minimum (not a grid point), with ``t_grid`` shifted to minimum 0.

    Returns
    -------
    ax : Axes
    """
    from matplotlib.lines import Line2D

    ax = _new_axes(ax, figsize=(5.0, 4.4))
    x = np.asarray(theta1, dtype=np.float64).ravel()
    y = np.asarray(theta2, dtype=np.float64).ravel()
    z = np.asarray(t_grid, dtype=np.float64)
    if z.shape != (x.size, y.size):
        hint = " (transpose it: t_grid[i, j] belongs to theta1[i], theta2[j])" \
            if z.shape == (y.size, x.size) else ""
        raise ValueError(f"t_grid must have shape (len(theta1), len(theta2)) = "
                         f"{(x.size, y.size)}, got {z.shape}{hint}")
    if not np.any(np.isfinite(z)):
        raise ValueError("t_grid has no finite values")
    if best_fit is None:
        z = z - np.nanmin(z)
        bx, by = _refined_minimum_2d(x, y, z)
    else:
        bfit = np.asarray(best_fit, dtype=np.float64).ravel()
        if bfit.shape != (2,) or not np.all(np.isfinite(bfit)):
            raise ValueError(f"best_fit must be two finite numbers, got {best_fit!r}")
        bx, by = float(bfit[0]), float(bfit[1])
    levels = sorted(float(v) for v in levels)
    styles = ["-", "--", ":", "-."]
    if filled:
        ax.contourf(x, y, z.T, levels=[0.0] + levels, colors=[color], alpha=0.18)
    ax.contour(x, y, z.T, levels=levels, colors=[color],
                    linestyles=[styles[k % 4] for k in range(len(levels))], linewidths=1.6)
    prefix = f"{label}: " if label else ""
    handles = [Line2D([], [], color=color, ls=styles[k % 4], lw=1.6,
                      label=prefix + (level_labels[k] if k < len(level_labels)
                                      else f"$\\Delta t$ = {lev:g}"))
               for k, lev in enumerate(levels)]
    (bf,) = ax.plot([bx], [by], marker="+", ms=11, mew=2, ls="none", color=color,
                    label=f"{prefix}best fit ({bx:.3g}, {by:.3g})")
    handles.append(bf)
    if truth is not None:
        (tr,) = ax.plot([truth[0]], [truth[1]], marker="x", ms=8, mew=1.5, ls="none",
                        color="k", label="truth")
        handles.append(tr)
    labels = [h.get_label() for h in handles]
    old = ax.get_legend()          # keep the entries of earlier calls (overlays)
    if old is not None:
        handles = list(old.legend_handles) + handles
        labels = [txt.get_text() for txt in old.texts] + labels
    names = parameter_names if parameter_names is not None else (None, None)
    _set_label(ax.xaxis, names[0], r"$\theta_1$")
    _set_label(ax.yaxis, names[1], r"$\theta_2$")
    ax.grid(alpha=0.3)
    ax.legend(handles=handles, labels=labels, fontsize=8)
    return ax


# --------------------------------------------------------------------------- impacts
def plot_impacts(result, ax=None, *, max_nuisances=30, prefit=True):
    """The ranking plot of nuisance impacts (``AdditiveModel.impacts``).

    Parameters
    ----------
    result : bpt.inference.ImpactsResult
    ax : pair of Axes (pulls, impacts), optional
        Default: a new figure with two panels sharing the y axis.
    max_nuisances : int, default=30
        Show the highest-ranked nuisances only (ranked top down).
    prefit : bool, default=True
        Also draw the pre-fit impacts (nu fixed at nu^ +- 1) as unfilled bars.

    Returns
    -------
    axes : array of 2 Axes
        Left: the pull (nu^ - a) of each Gaussian-constrained nuisance with its post-fit
        error as a horizontal error bar (open markers: free-floating nuisances, nu^),
        bands at +-1 and +-2.  Right: horizontal bars of the POI shifts
        ``impact_up`` (labelled "+1 sigma post-fit") and ``impact_down`` ("-1 sigma
        post-fit"), and with ``prefit`` the pre-fit ones ("+1 / -1 sigma pre-fit").
    """
    needed = ("names", "pulls", "errors", "impact_up", "impact_down", "prefit_up",
              "prefit_down", "nu_hat", "constrained", "poi")
    if not all(hasattr(result, a) for a in needed):
        raise ValueError("plot_impacts needs an ImpactsResult from AdditiveModel.impacts")
    if (isinstance(max_nuisances, bool) or not isinstance(max_nuisances, (int, np.integer))
            or max_nuisances < 1):
        raise ValueError(f"max_nuisances must be a positive integer, got {max_nuisances!r}")
    n = min(int(max_nuisances), len(result.names))
    if ax is None:
        plt = _pyplot()
        _, axes = plt.subplots(1, 2, sharey=True, figsize=(8.0, 1.0 + 0.32 * n),
                               layout="constrained", gridspec_kw={"width_ratios": [1, 1.4]})
    else:
        axes = list(np.ravel(np.asarray(ax, dtype=object)))
        if len(axes) != 2:
            raise ValueError(f"ax must be a pair of Axes (pulls, impacts), got {len(axes)}")
    axes = np.asarray(axes, dtype=object)
    left, right = axes
    y = np.arange(n)[::-1].astype(float)             # rank 0 at the top
    con = np.asarray(result.constrained[:n], dtype=bool)
    x = np.where(con, result.pulls[:n], result.nu_hat[:n])
    err = np.asarray(result.errors[:n], dtype=float)
    left.axvspan(-2, 2, color="0.92", zorder=0)
    left.axvspan(-1, 1, color="0.82", zorder=0)
    left.axvline(0.0, color="k", lw=0.6)
    if con.any():
        left.errorbar(x[con], y[con], xerr=err[con], fmt="o", color="k", ms=4, capsize=0,
                      label="pull (post-fit error)")
    if (~con).any():
        left.errorbar(x[~con], y[~con], xerr=err[~con], fmt="o", mfc="white", color="k",
                      ms=4, capsize=0, label="free: nu^ (error)")
    left.set_yticks(y)
    left.set_yticklabels(list(result.names[:n]), fontsize=8)
    left.set_xlabel("(nu^ - a) / 1")
    left.set_ylim(-0.7, n - 0.3)
    h = 0.7
    if prefit:
        right.barh(y, result.prefit_up[:n], height=h, fill=False, edgecolor="C3", lw=0.8,
                   label="+1 sigma pre-fit")
        right.barh(y, result.prefit_down[:n], height=h, fill=False, edgecolor="C0", lw=0.8,
                   label="-1 sigma pre-fit")
    right.barh(y, result.impact_up[:n], height=h, color="C3", alpha=0.6,
               label="+1 sigma post-fit")
    right.barh(y, result.impact_down[:n], height=h, color="C0", alpha=0.6,
               label="-1 sigma post-fit")
    right.axvline(0.0, color="k", lw=0.6)
    right.set_xlabel(f"shift of {result.poi}^")
    right.set_title(f"{result.poi} = {result.theta_hat:.4g} +- {result.theta_error:.3g}",
                    fontsize=10)
    right.legend(fontsize=7, loc="lower right")
    for a in axes:
        a.grid(alpha=0.3, axis="x")
    return axes
