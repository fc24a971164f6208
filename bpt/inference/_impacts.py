"""Impacts of the nuisances on a POI (docs/inference.md, *Impacts*).

For nuisance k with best fit nu_k^ and post-fit error sigma_k (from the covariance of the
global fit): fix nu_k at nu_k^ +- sigma_k (post-fit) and at nu_k^ +- 1 (pre-fit, the unit
width of its Gaussian constraint; not defined for free-floating nuisances), maximise q over
every other parameter and record the shift of the POI's best fit.  In the Gaussian limit
the post-fit impact is cov[theta, nu_k] / sigma_k = rho sigma_theta.  The refits of one
nuisance run in turn, each starting from the profiled path z(nu_k) predicted from the
fit (its slope cov[:, k] / cov[k, k]) and the earlier refits (the pre-fit values are often
many post-fit errors away).

Works on a ``Likelihood`` and a data tuple, like ``_fit``; the refits run through joblib.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import joblib
import numpy as np

from ._fit import BETTER_TOL, maximize_controlled
from ._likelihood import RateError
from ._toys import n_tasks
from ._progress import progress

__all__ = ["ImpactsResult", "compute_impacts", "run_items"]


@dataclass
class ImpactsResult:
    """Impacts of every nuisance on one POI, ranked by the largest |post-fit impact|.

    Attributes
    ----------
    poi : str, name of the POI
    theta_hat, theta_error : its best fit and Hessian error
    names : list of str, nuisance names in ranked order (largest impact first)
    nu_hat : (K,) best-fit nuisances (ranked order)
    pulls : (K,) (nu_hat - a) / 1 with a the global observable (NaN for free nuisances)
    errors : (K,) post-fit errors sqrt(cov[nu, nu]) (the post-fit constraints)
    constrained : (K,) bool, Gaussian-constrained (False: free-floating)
    impact_up, impact_down : (K,) theta^(nu fixed at nu_hat + error) - theta_hat and
        theta^(nu fixed at nu_hat - error) - theta_hat
    prefit_up, prefit_down : (K,) the same with nu fixed at nu_hat +- 1 (NaN for free
        nuisances)
    success : (K,) every refit of the nuisance converged
    q_hat : float, q at the global fit
    """
    poi: str
    theta_hat: float
    theta_error: float
    names: list
    nu_hat: np.ndarray = field(repr=False)
    pulls: np.ndarray = field(repr=False)
    errors: np.ndarray = field(repr=False)
    constrained: np.ndarray = field(repr=False)
    impact_up: np.ndarray = field(repr=False)
    impact_down: np.ndarray = field(repr=False)
    prefit_up: np.ndarray = field(repr=False)
    prefit_down: np.ndarray = field(repr=False)
    success: np.ndarray = field(repr=False)
    q_hat: float = field(repr=False, default=np.nan)

    @property
    def impact(self):
        """(K,) max(|impact_up|, |impact_down|): the ranking key."""
        return np.maximum(np.abs(self.impact_up), np.abs(self.impact_down))

    def table(self, max_rows=None):
        """A text table, one row per nuisance in ranked order."""
        head = (f"{'nuisance':<24} {'nu_hat':>9} {'error':>8} {'impact+':>10} {'impact-':>10} "
                f"{'prefit+':>10} {'prefit-':>10}")
        lines = [f"impacts on {self.poi} = {self.theta_hat:.6g} +- {self.theta_error:.3g}", head]
        n = len(self.names) if max_rows is None else min(int(max_rows), len(self.names))
        for i in range(n):
            lines.append(f"{self.names[i]:<24.24} {self.nu_hat[i]:>9.4f} {self.errors[i]:>8.4f} "
                         f"{self.impact_up[i]:>+10.4g} {self.impact_down[i]:>+10.4g} "
                         f"{self.prefit_up[i]:>+10.4g} {self.prefit_down[i]:>+10.4g}")
        return "\n".join(lines)

    def __str__(self):
        return self.table()


def _fixed_fit(lik, data, z_hat, cov, H_hat, k, value, parallel, controls=None, path=()):
    """(z, q, success) of the maximum of q with nu_k fixed at ``value`` (index k in z),
    the other parameters under ``controls`` (the fit's fix / bounds).

    Starts, in turn until a refit converges: the path z(nu_k) through the global fit
    predicted from the refits ``path`` [(value, z)] of the same nuisance (see
    :func:`_path_start`), the Gaussian prediction z_hat + (value - nu_k^) cov[:, k] /
    cov[k, k] (the Newton step of the global fit's Hessian), z_hat with nu_k moved.  If
    none converges, the refit with the largest q is returned (success False)."""
    free = np.ones(lik.n_par, dtype=bool)
    free[k] = False
    z_flat = z_hat.copy()
    z_flat[k] = value
    starts = [z_flat]
    ckk = cov[k, k]
    if np.all(np.isfinite(cov[:, k])) and ckk > 0:
        tangent = cov[:, k] / ckk
        starts.insert(0, z_hat + (value - z_hat[k]) * tangent)     # the Gaussian prediction
        z_path = _path_start(z_hat, tangent, k, value, path)
        if z_path is not None:
            starts.insert(0, z_path)
    best = (np.full(lik.n_par, np.nan), np.nan, False)
    for z0 in starts:
        z0[k] = value
        try:
            found = maximize_controlled(lik, data, z0, free, controls, parallel, H_init=H_hat)
        except RateError:
            continue
        if found.success:
            return found.z, found.q, True
        if not found.q <= best[1]:                   # also when best has no q yet (nan)
            best = (found.z, found.q, False)
    return best


# The path start extrapolates from the earlier refits of a nuisance at most this many
# times their largest distance from the fit (their tolerance-level errors grow as the
# ratio cubed); farther, the Gaussian prediction is used.
PATH_REACH = 20.0


def _path_start(z_hat, tangent, k, value, path):
    """The profiled path z(nu_k) = z_hat + a d + b d^2 + c d^3 (d = nu_k - nu_k^) at
    ``value``: a = ``tangent`` (its exact slope at the fit, cov[:, k] / cov[k, k]); b from
    one refit in ``path`` [(v, z)] (c = 0), b and c from two.  None without refits, with
    refits at nu_k^ or at one value, or beyond PATH_REACH."""
    d = np.array([v - z_hat[k] for v, _ in path])
    if d.shape[0] == 0 or np.any(d == 0.0) or (d.shape[0] == 2 and d[0] == d[1]):
        return None
    x = value - z_hat[k]
    if abs(x) > PATH_REACH * np.max(np.abs(d)):
        return None
    r = np.array([z - z_hat - di * tangent for di, (_, z) in zip(d, path)])   # (n, n_par)
    if d.shape[0] == 1:
        return z_hat + x * tangent + (x / d[0]) ** 2 * r[0]
    basis = np.column_stack([d ** 2, d ** 3])                                # (2, 2)
    b, c = np.linalg.solve(basis, r)
    return z_hat + x * tangent + x ** 2 * b + x ** 3 * c


def impacts_task(lik, data, z_hat, cov, H_hat, controls, items, parallel):
    """For each (k, values) of ``items``: [(z, q, success)] with z_k fixed at each value,
    in order; each refit starts from the path predicted by the converged earlier ones of
    the same nuisance (see :func:`_path_start`; values: nu_k^ +- its post-fit error, then
    the pre-fit nu_k^ +- 1)."""
    out = []
    for k, values in items:
        res, path = [], []
        for v in values:
            z, q, ok = _fixed_fit(lik, data, z_hat, cov, H_hat, k, v, parallel, controls,
                                  path[-2:])
            res.append((z, q, ok))
            if ok:
                path.append((v, z))
        out.append(res)
    return out


def run_items(fn, items, n_jobs, args, verbose, what, size=None):
    """Run fn(*args, chunk, parallel) over chunks of ``items``; returns the concatenated
    per-item results.  One task: in-process (numba-parallel) item by item, reporting
    progress after each; else ``n_tasks(n_jobs)`` contiguous chunks through joblib,
    reporting as chunks finish.  The result does not depend on the chunking.
    ``verbose`` / ``what``: progress through ``_progress`` (as scans and toys), in
    units of ``size(item)`` (default 1 per item)."""
    n = len(items)
    size = size or (lambda item: 1)
    n_chunks = n_tasks(n_jobs, n)
    out = []
    with progress(sum(size(it) for it in items), what, verbose) as bar:
        if n_chunks == 1:
            for it in items:
                out += fn(*args, [it], True)
                bar.update(size(it))
            return out
        chunks = [[items[i] for i in c] for c in np.array_split(np.arange(n), n_chunks)]
        gen = joblib.Parallel(n_jobs=n_jobs, return_as="generator")(
            joblib.delayed(fn)(*args, c, False) for c in chunks)
        for c, part in zip(chunks, gen):
            out += part
            bar.update(sum(size(it) for it in c))
    return out


def compute_impacts(lik, data, fit, poi_index, n_jobs=None, verbose=0, controls=None):
    """The :class:`ImpactsResult` of POI ``poi_index`` around the global fit ``fit``.

    ``controls`` (the fit's fix / bounds) apply to every refit too: a nuisance fixed by
    them has no row; the values a bounded nuisance is fixed at are clipped into its
    bounds."""
    P, K = lik.n_pois, lik.n_par - lik.n_pois
    pois, nu_names = lik.names
    if K == 0:
        raise ValueError("the model has no nuisance parameters: there are no impacts")
    free = np.ones(lik.n_par, dtype=bool) if controls is None else controls.free
    lower = np.full(lik.n_par, -np.inf) if controls is None else controls.lower
    upper = np.full(lik.n_par, np.inf) if controls is None else controls.upper
    if not free[poi_index]:
        raise ValueError(f"POI {pois[poi_index]!r} is fixed (fix=): it has no impacts")
    kept = [k for k in range(K) if free[P + k]]
    if not kept:
        raise ValueError("every nuisance is fixed (fix=): there are no impacts")
    z_hat = np.concatenate([fit.theta, fit.nu])
    cov = np.asarray(fit.covariance, dtype=np.float64)
    err_all = np.sqrt(np.diag(cov))[P:]
    err = err_all[kept]
    if not np.all(np.isfinite(err)):
        bad = [nu_names[kept[i]] for i in np.flatnonzero(~np.isfinite(err))]
        raise ValueError(f"the covariance of the fit is singular or not positive (nuisances "
                         f"{bad} have no finite post-fit error): impacts are undefined")
    gauss = np.asarray(lik.gaussian, dtype=bool)[kept]
    aux_all = data[3] if len(data) > 3 and data[3] is not None else np.zeros(K)
    aux = np.asarray(aux_all)[kept]
    items = []
    for i, k in enumerate(kept):
        j = P + k
        nu = z_hat[j]
        vals = [nu + err[i], nu - err[i]] + ([nu + 1.0, nu - 1.0] if gauss[i] else [])
        items.append((j, [float(np.clip(v, lower[j], upper[j])) for v in vals]))
    res = run_items(impacts_task, items, n_jobs, (lik, data, z_hat, cov, fit.hessian, controls),
                    verbose, "impacts", size=lambda item: len(item[1]))
    res = [r for per_nuisance in res for r in per_nuisance]
    th = fit.theta[poi_index]
    n = len(kept)
    up, down = np.full(n, np.nan), np.full(n, np.nan)
    pre_up, pre_down = np.full(n, np.nan), np.full(n, np.nan)
    ok = np.ones(n, dtype=bool)
    q_best, where = fit.q, None
    r = 0
    for i in range(n):
        n_k = 4 if gauss[i] else 2
        shifts = []
        for z, q, success in res[r:r + n_k]:
            shifts.append(z[poi_index] - th)
            ok[i] &= bool(success)
            if np.isfinite(q) and q > q_best + BETTER_TOL:
                q_best, where = q, z
        up[i], down[i] = shifts[0], shifts[1]
        if gauss[i]:
            pre_up[i], pre_down[i] = shifts[2], shifts[3]
        r += n_k
    if where is not None:
        warnings.warn(f"a fit with one nuisance fixed reached q = {q_best:.10g} above the global "
                      f"fit's {fit.q:.10g} (at {lik.describe(where)}): the global fit is a local "
                      "maximum; refit the model (e.g. with starts) and recompute the impacts",
                      RuntimeWarning, stacklevel=3)
    nu_hat = z_hat[P:][kept]
    pulls = np.where(gauss, nu_hat - aux, np.nan)
    key = np.maximum(np.abs(np.nan_to_num(up)), np.abs(np.nan_to_num(down)))
    order = np.argsort(-key, kind="stable")
    return ImpactsResult(pois[poi_index], float(th), float(np.sqrt(cov[poi_index, poi_index])),
                         [nu_names[kept[i]] for i in order], nu_hat[order], pulls[order],
                         err[order], gauss[order], up[order], down[order], pre_up[order],
                         pre_down[order], ok[order], float(fit.q))
