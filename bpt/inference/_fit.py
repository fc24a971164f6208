"""Maximising q over free parameters (scipy trust-exact with the exact gradient and Hessian),
profiled scans and Wilks intervals.  Works on a ``Likelihood`` and a data triple
(coef, rows, weight); no model objects, so the task functions pickle cheaply.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from scipy import optimize

from ._likelihood import RateError

__all__ = ["FitResult", "ProfileResult", "ScanResult", "Maximum", "maximize", "fit_result",
           "global_maximum", "BETTER_TOL"]

# Stop when the Newton decrement (the predicted gain of q from one more Newton step) is
# below this, in units of q (t = -2 q, so t is accurate to ~2e-7).
Q_TOL = 1e-7
# Scan points whose predicted start is this close (Newton decrement, units of q) finish
# with one unevaluated Newton step: t is then accurate to ~1e-6.
SCAN_EXTRAPOLATE = 1e-5
# The Hessians that only steer the optimiser are estimated from at least this many events
# (every k-th chunk of 2048) on larger datasets; ``exact_hessian=True`` uses all events.
HESS_SAMPLE = 100_000
# A point whose q exceeds the reported maximum by more than this (units of q) proves the
# maximum is not global (beyond the ~1e-6 precision of extrapolated scan points).
BETTER_TOL = 10 * Q_TOL


class Maximum(NamedTuple):
    """What :func:`maximize` found: the point z, q there, the full gradient and Hessian
    of q there (see ``maximize`` for when the Hessian is exact), convergence, and the
    number of likelihood evaluations."""
    z: np.ndarray
    q: float
    gradient: np.ndarray
    hessian: np.ndarray
    success: bool
    message: str
    n_evaluations: int


@dataclass
class ProfileResult:
    """q maximised over the nuisances (and any POIs that were not fixed)."""
    theta: np.ndarray
    nu: np.ndarray
    q: float
    success: bool
    message: str
    n_evaluations: int


@dataclass
class FitResult(ProfileResult):
    """Maximum-likelihood estimate: the fields of :class:`ProfileResult`, plus the Hessian.

    Attributes
    ----------
    theta, nu : arrays (P,), (K,)
    q : float, q at the maximum (relative to theta = 0, nu = 0)
    success : bool, message : str, n_evaluations : int
    hessian : (P+K, P+K) second derivatives of q in (theta, nu) at the maximum
    covariance : (P+K, P+K) inverse of -hessian (Gaussian approximation; nan if singular)
    """
    hessian: np.ndarray = field(repr=False)
    covariance: np.ndarray = field(repr=False)

    @property
    def errors(self):
        """sqrt(diag(covariance)) in (theta, nu) order."""
        return np.sqrt(np.diag(self.covariance))


@dataclass
class ScanResult:
    """A profiled scan: ``t = -2 (q - q_max)`` at each scanned point.

    ``points`` (M, n_scanned) are the scanned POI values, ``theta`` (M, P) and
    ``nu`` (M, K) the parameters at each profiled maximum, ``fit`` the global MLE.
    """
    points: np.ndarray
    t: np.ndarray
    q: np.ndarray
    q_max: float
    theta: np.ndarray
    nu: np.ndarray
    success: np.ndarray
    fit: FitResult = field(repr=False)


class _Objective:
    """-q and derivatives over the free parameters; remembers recent evaluations.

    Hessian policy: the exact Hessian (an order-2 kernel pass, several times the cost of
    value + gradient) is computed at the first point unless ``H_init`` (the full Hessian
    at a nearby point, e.g. the previous scan point) is given, whenever ``refresh`` is
    set (slow convergence), and after ``EXACT_EVERY`` evaluations with a frozen one.  In
    between the last exact Hessian is reused: the gradient is always exact, so the
    maximum found is exact; only the number of steps depends on the Hessian.
    """

    EXACT_EVERY = 4

    def __init__(self, lik, data, z0, free, parallel, H_init=None):
        self.lik, self.data, self.parallel = lik, data, parallel
        self.z0 = np.array(z0, dtype=np.float64)
        self.free = free
        self.cache = {}
        self.n_eval = 0
        self.H_full = None if H_init is None else np.array(H_init, dtype=np.float64)
        self.since_exact = 0
        self.refresh = False

    def full(self, x):
        z = self.z0.copy()
        z[self.free] = x
        return z

    def get(self, x, exact=False):
        """(-q, -grad, -hess) over the free parameters, ok, (q, G, H, H_exact_here) in full.

        ``exact=True``: the Hessian at x from all events (recomputed if the cached one
        was frozen or subsampled).
        """
        key = np.asarray(x, dtype=np.float64).tobytes()
        hit = self.cache.get(key)
        if hit is not None and (not exact or hit[4] is None or hit[4][3]):
            return hit
        z = self.full(x)
        full = exact
        exact = (exact or self.H_full is None or self.refresh
                 or self.since_exact >= self.EXACT_EVERY)
        q, G, H, n_bad, _ = self.lik.evaluate(z, self.data, 2 if exact else 1, self.parallel,
                                              None if full else HESS_SAMPLE)
        self.n_eval += 1
        n = x.shape[0]
        if n_bad:
            hit = (np.inf, np.zeros(n), np.zeros((n, n)), False, None)
        else:
            if exact:
                self.H_full = H
                self.since_exact = 0
                self.refresh = False
            else:
                H = self.H_full
                self.since_exact += 1
            f = self.free
            hit = (-q, -G[f], -H[np.ix_(f, f)], True, (q, G, H, exact and full))
        if len(self.cache) > 8:
            self.cache.pop(next(iter(self.cache)))
        self.cache[key] = hit
        return hit

    def fun(self, x):
        return self.get(x)[0]

    def jac(self, x):
        return self.get(x)[1]

    def hess(self, x):
        return self.get(x)[2]


def _decrement(g, H):
    """Newton decrement g^T H^-1 g / 2 for the minimisation of f (H = Hessian of f)."""
    try:
        c = np.linalg.cholesky(H)
    except np.linalg.LinAlgError:
        return np.inf
    y = np.linalg.solve(c, g)
    return 0.5 * float(y @ y)


def maximize(lik, data, z0, free, parallel=True, maxiter=200, H_init=None, exact_hessian=False,
             extrapolate=0.0):
    """Maximise q over ``z[free]`` from z0 with scipy's trust-exact method.

    ``extrapolate`` > 0: if the Newton decrement at z0 is at most this (z0 is already
    very close, e.g. a predicted scan point), take the Newton step without evaluating
    q again and return q(z0) + decrement (error ~ relative Hessian error x decrement).

    Returns a :class:`Maximum`: the point, q there, the full gradient there and the full
    Hessian (exact at z if ``exact_hessian``, else the last exact one, computed at a
    point of the optimisation path), success, message, number of evaluations.
    Raises RateError when z0 itself has an event with rate <= 0.
    """
    z0 = np.asarray(z0, dtype=np.float64)
    free = np.asarray(free, dtype=bool)
    obj = _Objective(lik, data, z0, free, parallel, H_init)
    x0 = z0[free]
    f0, g0, H0, ok, _ = obj.get(x0)
    if not ok:
        q, G, H, n_bad, first = lik.evaluate(z0, data, 0, parallel)
        n_bad = n_bad or -1               # the value is finite: a derivative overflows
        n_events = data[1].shape[0] if data[1].shape[0] else data[0].shape[0]
        raise RateError(lik.rate_message(z0, n_bad, first, n_events))
    message = "converged"
    success = True
    dec0 = _decrement(g0, H0) if free.any() else 0.0
    if Q_TOL < dec0 <= extrapolate:
        q, G, H, _ = obj.get(x0)[4]
        x = x0 - np.linalg.solve(H0, g0)
        return Maximum(obj.full(x), float(q) + dec0, G, H, True,
                       f"converged (one Newton step extrapolated, decrement {dec0:.2g})",
                       obj.n_eval)
    if dec0 > Q_TOL:
        # first trust radius: the Newton step if -q is locally convex, else 1
        try:
            step = np.linalg.norm(np.linalg.solve(H0, g0))
            radius = float(np.clip(step, 1e-4, 1e3)) if np.all(np.linalg.eigvalsh(H0) > 0) else 1.0
        except np.linalg.LinAlgError:
            radius = 1.0
        last = {"dec": _decrement(g0, H0)}

        def callback(intermediate_result):
            _, g, H, _, _ = obj.get(np.asarray(intermediate_result.x, dtype=np.float64))
            dec = _decrement(g, H)
            if dec <= Q_TOL:
                raise StopIteration
            if not np.isfinite(dec) or dec > 0.05 * last["dec"]:
                obj.refresh = True          # slow progress: use an exact Hessian next
            last["dec"] = dec

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = optimize.minimize(obj.fun, x0, jac=obj.jac, hess=obj.hess, method="trust-exact",
                                    callback=callback,
                                    options={"gtol": 1e-12, "maxiter": maxiter,
                                             "initial_trust_radius": radius})
        x = np.asarray(res.x, dtype=np.float64)
        f, g, H, _, _ = obj.get(x)
        dec = _decrement(g, H)
        if dec <= Q_TOL:
            success, message = True, "converged"
        elif dec <= 1e-5:
            success, message = True, f"converged (Newton decrement {dec:.2g})"
        else:
            success, message = False, f"not converged: {res.message} (Newton decrement {dec:.3g})"
    else:
        x = x0
    q, G, H, is_exact = obj.get(x, exact=exact_hessian)[4]
    return Maximum(obj.full(x), float(q), G, H, success, message, obj.n_eval)


# Multi-start: besides the origin, the fit starts from the first maximum moved by these
# multiples of each POI's standard error (one POI at a time).
MULTISTART_SPREAD = (-2.0, 2.0)


def fit_result(found, n_pois, success=None, message=None, n_evaluations=None):
    """The :class:`FitResult` of a :class:`Maximum` (covariance = inverse of -Hessian)."""
    H = found.hessian
    try:
        cov = np.linalg.inv(-H)
    except np.linalg.LinAlgError:
        cov = np.full_like(H, np.nan)
    z = found.z
    return FitResult(z[:n_pois].copy(), z[n_pois:].copy(), found.q,
                     found.success if success is None else bool(success),
                     found.message if message is None else message,
                     found.n_evaluations if n_evaluations is None else int(n_evaluations),
                     H, cov)


def _poi_errors(H, n_pois):
    try:
        var = np.diag(np.linalg.inv(-H))[:n_pois]
    except np.linalg.LinAlgError:
        var = np.full(n_pois, np.nan)
    return np.where(np.isfinite(var) & (var > 0), np.sqrt(np.abs(var)), 1.0)


def global_maximum(lik, data, parallel=True, starts=(), spread=MULTISTART_SPREAD):
    """Multi-start maximum of q over all parameters: a :class:`Maximum` with the exact
    Hessian, ``n_evaluations`` summed over all starts.

    Starts: z = 0; every row of ``starts`` (full z vectors); the first maximum moved by
    ``spread`` standard errors along each POI in turn.  The best converged maximum
    wins (a better one that did not converge is reported with success False).
    """
    n_par, P = lik.n_par, lik.n_pois
    free = np.ones(n_par, dtype=bool)
    best = maximize(lik, data, np.zeros(n_par), free, parallel)
    n_eval = best.n_evaluations
    candidates = [np.asarray(s, dtype=np.float64) for s in starts]
    sig = _poi_errors(best.hessian, P)
    first_hessian = best.hessian
    for a in range(P):
        for s in spread:
            z0 = best.z.copy()
            z0[a] += s * sig[a]
            candidates.append(z0)
    for z0 in candidates:
        try:             # the first maximum's Hessian steers (saves an exact Hessian pass)
            found = maximize(lik, data, z0, free, parallel, H_init=first_hessian)
        except RateError:
            continue                      # an invalid start (rate <= 0 there): skip it
        n_eval += found.n_evaluations
        if found.q > best.q + BETTER_TOL or (found.q > best.q - BETTER_TOL and found.success
                                             and not best.success):
            best = found
    final = maximize(lik, data, best.z, free, parallel, exact_hessian=True)
    n_eval += final.n_evaluations
    return final._replace(n_evaluations=n_eval)


def refit_from(lik, data, z_better, q_better, previous, parallel=True):
    """A better point than the reported maximum is known: maximise again from there.

    Returns the new :class:`Maximum`; its ``success`` is False (with a message naming
    the point) when that fit does not converge.
    """
    free = np.ones(lik.n_par, dtype=bool)
    found = maximize(lik, data, z_better, free, parallel, exact_hessian=True)
    n_eval = found.n_evaluations + previous.n_evaluations
    if found.q < q_better - BETTER_TOL or not found.success:
        msg = (f"a better point than the reported maximum (q = {previous.q:.10g}) is known at "
               f"{lik.describe(z_better)} with q = {q_better:.10g}, but the fit from there did "
               f"not converge: {found.message}")
        return found._replace(success=False, message=msg, n_evaluations=n_eval)
    return found._replace(n_evaluations=n_eval,
                          message=f"{found.message} (refitted from a better point found later)")
