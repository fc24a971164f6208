"""Goodness of fit (docs/math.md, section 4; docs/inference.md, *Goodness of fit*).

* Unbinned fits: a Pearson chi2 in quantile bins of a per-event quantity u(x),

      X2 = sum_b (O_b - E_b)^2 / E_b,

  O_b the (weighted) number of data events in bin b, E_b = sum_{i in sim, u_i in b}
  w_i(theta^, nu^) the fit's expectation, the bin edges the E-weighted quantiles of u over
  the simulation (so every E_b = sigma^ / B).  The default u is the fitted per-event ratio
  dSigma(x|theta^,nu^)/dSigma(x|SM).  The p-value is the fraction of toys (drawn at the
  best fit, each refitted and binned again at its own fit) with X2 >= the observed one;
  chi2.sf(X2, B - n_free) is given for reference.
* Binned channels: the saturated-model statistic -2 log lambda_sat =
  2 sum_b [E_b - O_b + O_b log(O_b / E_b)] (Poisson deviance), chi2 with B - n_free
  degrees of freedom.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from .._validation import check_finite
from ._fit import maximize
from ._impacts import run_items
from ._likelihood import RateError
from ._toys import draw_toy

__all__ = ["GoodnessOfFitResult", "saturated_gof", "event_ratio", "pearson_quantile",
           "gof_toys_task", "check_n_bins", "saturated_n_free", "binned_saturated_gof"]


@dataclass
class GoodnessOfFitResult:
    """A goodness-of-fit test.

    Attributes
    ----------
    statistic : float, the observed statistic (Pearson X2 or -2 log lambda_sat)
    ndf : int, degrees of freedom of the asymptotic reference (bins - free parameters)
    p_value : float, the toy p-value (unbinned) or the chi2 p-value (saturated)
    p_value_asymptotic : float, chi2.sf(statistic, ndf)
    method : "pearson-quantile" or "saturated"
    observed, expected : (B,) per-bin observed and expected counts
    edges : (B+1,) bin edges in the tested quantity (None for ``saturated_gof``)
    toy_statistics : (n_toys,) the statistic of each toy (None without toys; NaN where the
        toy's fit or binning failed: left out of the p-value)
    toy_success : (n_toys,) each toy's fit converged (None without toys)
    """
    statistic: float
    ndf: int
    p_value: float
    p_value_asymptotic: float
    method: str
    observed: np.ndarray = field(repr=False)
    expected: np.ndarray = field(repr=False)
    edges: np.ndarray = field(repr=False, default=None)
    toy_statistics: np.ndarray = field(repr=False, default=None)
    toy_success: np.ndarray = field(repr=False, default=None)


def saturated_gof(observed, expected, n_free):
    """Saturated-model goodness of fit of binned Poisson counts.

    Parameters
    ----------
    observed : (B,) observed counts (>= 0; need not be integers, e.g. Asimov)
    expected : (B,) expected counts at the best fit (> 0)
    n_free : number of fitted parameters (without the constrained nuisances' auxiliary
        measurements, which add as many terms as they add parameters)

    Returns a :class:`GoodnessOfFitResult` with ``statistic`` = -2 log lambda_sat =
    2 sum_b [E_b - O_b + O_b log(O_b / E_b)] (a bin with O_b = 0 contributes 2 E_b),
    ``ndf`` = B - n_free and ``p_value`` = chi2.sf(statistic, ndf).
    """
    O = check_finite(observed, "observed", ndim=1)
    E = check_finite(expected, "expected", ndim=1)
    if E.shape != O.shape or O.shape[0] == 0:
        raise ValueError(f"observed and expected must be non-empty and of the same length, got "
                         f"{O.shape[0]} and {E.shape[0]}")
    if np.any(O < 0):
        raise ValueError(f"observed: counts must be >= 0, bin {int(np.argmax(O < 0))} is "
                         f"{O[O < 0][0]:.6g}")
    if np.any(E <= 0):
        raise ValueError(f"expected: counts must be > 0, bin {int(np.argmax(E <= 0))} is "
                         f"{E[E <= 0][0]:.6g}")
    if isinstance(n_free, bool) or not isinstance(n_free, numbers.Integral) or n_free < 0:
        raise ValueError(f"n_free must be a non-negative integer, got {n_free!r}")
    ndf = O.shape[0] - int(n_free)
    if ndf < 1:
        raise ValueError(f"n_free ({n_free}) must be smaller than the number of bins "
                         f"({O.shape[0]})")
    with np.errstate(divide="ignore", invalid="ignore"):
        log_term = np.where(O > 0, O * np.log(np.where(O > 0, O, 1.0) / E), 0.0)
    stat = float(2.0 * np.sum(E - O + log_term))
    p = float(stats.chi2.sf(stat, ndf))
    return GoodnessOfFitResult(stat, ndf, p, p, "saturated", O, E)


def saturated_n_free(lik, controls):
    """The n_free of the saturated test of a fit: the POIs and free-floating nuisances that
    the fit moved (a parameter in ``fix`` is not counted; a Gaussian-constrained nuisance
    is not counted either: it comes with its own auxiliary measurement)."""
    free = np.ones(lik.n_par, dtype=bool)
    free[lik.n_pois:] = ~np.asarray(lik.gaussian, dtype=bool)
    if controls is not None:
        free &= controls.free
    return int(np.sum(free))


def binned_saturated_gof(observed, expected, n_free):
    """:func:`saturated_gof` of the concatenated bins of one or more channels, leaving out
    bins that are empty in both the data and the model (E = O = 0: no information)."""
    O = np.concatenate([np.asarray(o, dtype=np.float64) for o in observed])
    E = np.concatenate([np.asarray(e, dtype=np.float64) for e in expected])
    keep = ~((O == 0) & (E == 0))
    return saturated_gof(O[keep], E[keep], n_free)


def check_n_bins(n_bins):
    if isinstance(n_bins, bool) or not isinstance(n_bins, numbers.Integral) or n_bins < 2:
        raise ValueError(f"n_bins must be an integer >= 2, got {n_bins!r}")
    return int(n_bins)


def event_ratio(lik, z, coef):
    """Per-event dSigma(x|z)/dSigma(x|SM) = L sum_p alpha_p f_p R_p S_p of coefficient rows
    (full layout), at z = (theta, nu)."""
    lay = lik.layout
    mv, _ = lay.columns_at(np.asarray(z, dtype=np.float64))
    logc = lay.log_norm @ z
    r = np.zeros(coef.shape[0])
    for p in range(lay.n_processes):
        a, b = int(lay.ratio_start[p]), int(lay.ratio_end[p])
        c, d = int(lay.syst_start[p]), int(lay.syst_end[p])
        R = 1.0 + coef[:, a:b] @ mv[a:b]
        g = logc[p] + coef[:, c:d] @ mv[c:d]
        fc = int(lay.fraction_column[p])
        f = coef[:, fc] if fc >= 0 else 1.0
        r += f * R * np.exp(g)
    return r


def _quantile_edges(u, w, n_bins):
    """Inner edges: the w-weighted quantiles k / n_bins of u (duplicates removed)."""
    order = np.argsort(u, kind="stable")
    us, cw = u[order], np.cumsum(w[order])
    total = cw[-1]
    targets = total * np.arange(1, n_bins) / n_bins
    idx = np.minimum(np.searchsorted(cw, targets, side="left"), us.shape[0] - 1)
    inner = us[idx]
    return np.unique(inner)


def pearson_quantile(u_data, w_data, u_sim, w_sim, n_bins):
    """(X2, observed (B,), expected (B,), edges (B+1,)) in w_sim-quantile bins of u.

    Bin b holds lo < u <= hi (the first bin everything <= its upper edge).  Fewer
    bins than asked when u takes few distinct values (ties); fewer than 2 raise."""
    inner = _quantile_edges(u_sim, w_sim, n_bins)
    inner = inner[inner < np.max(u_sim)]                # the last bin must not be empty
    if inner.shape[0] < 1:
        raise ValueError("the tested per-event quantity takes a single value over the "
                         "simulation: quantile bins are impossible (test a feature instead)")
    B = inner.shape[0] + 1
    b_sim = np.searchsorted(inner, u_sim, side="left")
    b_dat = np.searchsorted(inner, u_data, side="left")
    E = np.bincount(b_sim, weights=w_sim, minlength=B)
    O = np.bincount(b_dat, weights=w_data, minlength=B)
    if np.any(E <= 0):
        raise ValueError(f"a quantile bin has a non-positive expectation ({E.min():.6g}); "
                         "negative simulated weights dominate it: use fewer bins")
    edges = np.concatenate([[min(np.min(u_sim), np.min(u_data, initial=np.inf))], inner,
                            [max(np.max(u_sim), np.max(u_data, initial=-np.inf))]])
    return float(np.sum((O - E) ** 2 / E)), O, E, edges


def _toy_statistic(lik, coef, blocks, u_fixed, z_gen, rows, weight, aux, n_bins, parallel):
    data = (coef, rows, weight, aux)
    free = np.ones(lik.n_par, dtype=bool)
    best = None
    for z0 in (z_gen, np.zeros(lik.n_par)):     # the origin only if z_gen is invalid
        try:
            best = maximize(lik, data, z0, free, parallel)
            break
        except RateError:
            continue
    if best is None:
        return np.nan, False
    w_sim = np.concatenate(lik.expected_weights(best.z, blocks))
    u_sim = event_ratio(lik, best.z, coef) if u_fixed is None else u_fixed
    try:
        stat = pearson_quantile(u_sim[rows], weight, u_sim, w_sim, n_bins)[0]
    except ValueError:                  # a bin without positive expectation at this toy's fit
        return np.nan, False
    return stat, bool(best.success)


def gof_toys_task(lik, coef, blocks, u_fixed, w_exp, z_gen, n_bins, seeds, parallel):
    """For each seed: a toy at z_gen (global observables drawn around nu_gen), refitted
    (from z_gen), its Pearson X2 at its own fit: (X2, success)."""
    P = lik.n_pois
    out = []
    for s in seeds:
        rows, weight, aux = draw_toy(w_exp, s, False, z_gen[P:], lik.gaussian)
        out.append(_toy_statistic(lik, coef, blocks, u_fixed, z_gen, rows, weight, aux, n_bins,
                                  parallel))
    return out


def unbinned_gof(lik, data, fit, sim_coef, blocks, u_data=None, u_sim=None, n_bins=10,
                 seeds=(), n_jobs=None, verbose=0):
    """The Pearson quantile-bin test of an unbinned fit (see the module docstring).

    ``u_data`` / ``u_sim``: the tested quantity of the data events and of the simulated
    events (None: the fitted per-event ratio, recomputed at every toy's fit).
    ``seeds``: one SeedSequence per toy.  Returns a :class:`GoodnessOfFitResult`.
    """
    from ._toys import check_expected
    coef, rows, w = data[:3]
    n_bins = check_n_bins(n_bins)
    z_hat = np.concatenate([fit.theta, fit.nu])
    w_sim = np.concatenate(lik.expected_weights(z_hat, blocks))
    try:
        check_expected(w_sim, "raise", lik.describe(z_hat))
    except ValueError as exc:
        raise ValueError(f"goodness_of_fit needs non-negative expected weights of the "
                         f"simulation at the best fit (its bins and toys): {exc}") from None
    fixed = u_sim is not None
    if not fixed:
        u_sim_hat = event_ratio(lik, z_hat, sim_coef)
        rows_coef = coef if rows.shape[0] == 0 else coef[rows]
        u_data = event_ratio(lik, z_hat, rows_coef)
    else:
        u_sim_hat = u_sim
    w_data = np.ones(u_data.shape[0]) if w.shape[0] == 0 else w
    stat, O, E, edges = pearson_quantile(u_data, w_data, u_sim_hat, w_sim, n_bins)
    n_free = lik.n_pois + int(np.sum(~np.asarray(lik.gaussian, dtype=bool)))
    ndf = max(E.shape[0] - n_free, 1)
    p_asym = float(stats.chi2.sf(stat, ndf))
    toy_stats = toy_ok = None
    p = np.nan
    if len(seeds):
        res = run_items(_gof_chunk, list(seeds), n_jobs,
                        (lik, sim_coef, blocks, u_sim if fixed else None, w_sim, z_hat, n_bins),
                        verbose, "goodness-of-fit toys")
        toy_stats = np.array([r[0] for r in res])
        toy_ok = np.array([r[1] for r in res], dtype=bool)
        good = np.isfinite(toy_stats)
        p = float(np.mean(toy_stats[good] >= stat)) if good.any() else np.nan
    return GoodnessOfFitResult(stat, int(ndf), p, p_asym, "pearson-quantile", O, E, edges,
                               toy_stats, toy_ok)


def _gof_chunk(lik, coef, blocks, u_fixed, w_exp, z_gen, n_bins, seeds, parallel):
    return gof_toys_task(lik, coef, blocks, u_fixed, w_exp, z_gen, n_bins, seeds, parallel)


def resolve_quantity(quantity, model, X, X_sim):
    """(u_data, u_sim) of a feature index or a callable; (None, None) for "ratio"."""
    if isinstance(quantity, str):
        if quantity != "ratio":
            raise ValueError(f"quantity must be 'ratio', a feature index or a callable, got "
                             f"{quantity!r}")
        return None, None
    Xd = model.prepare(X).X
    if callable(quantity):
        u_data = check_finite(quantity(Xd), "quantity(X)", ndim=1, length=Xd.shape[0])
        u_sim = check_finite(quantity(X_sim), "quantity(simulation)", ndim=1,
                             length=X_sim.shape[0])
        return u_data, u_sim
    F = X_sim.shape[1]
    if (isinstance(quantity, bool) or not isinstance(quantity, numbers.Integral)
            or not -F <= quantity < F):
        raise ValueError(f"quantity must be 'ratio', a callable or a feature index in "
                         f"0..{F - 1}, got {quantity!r}")
    return (np.asarray(Xd[:, quantity], dtype=np.float64),
            np.asarray(X_sim[:, quantity], dtype=np.float64))
