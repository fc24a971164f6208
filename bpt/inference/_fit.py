"""Maximising q over free parameters (scipy trust-exact with the exact gradient and Hessian),
profiled scans and Wilks intervals.  Works on a ``Likelihood`` and a data triple
(coef, rows, weight); no model objects, so the task functions pickle cheaply.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

from ._likelihood import RateError

__all__ = ["FitResult", "ProfileResult", "ScanResult", "maximize", "scan_task"]

# Stop when the Newton decrement (the predicted gain of q from one more Newton step) is
# below this, in units of q (t = -2 q, so t is accurate to ~2e-7).
Q_TOL = 1e-7
# Scan points whose predicted start is this close (Newton decrement, units of q) finish
# with one unevaluated Newton step: t is then accurate to ~1e-6.
SCAN_EXTRAPOLATE = 1e-5
# The Hessians that only steer the optimiser are estimated from at least this many events
# (every k-th chunk of 2048) on larger datasets; ``exact_hessian=True`` uses all events.
HESS_SAMPLE = 100_000


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

    Returns (z, q, G, H, success, message, n_eval): the maximum, q there, the full
    gradient there and the full Hessian (exact at z if ``exact_hessian``, else the
    last exact one, computed at a point of the optimisation path).
    Raises RateError when z0 itself has an event with rate <= 0.
    """
    z0 = np.asarray(z0, dtype=np.float64)
    free = np.asarray(free, dtype=bool)
    obj = _Objective(lik, data, z0, free, parallel, H_init)
    x0 = z0[free]
    f0, g0, H0, ok, _ = obj.get(x0)
    if not ok:
        q, G, H, n_bad, first = lik.evaluate(z0, data, 0, parallel)
        n_events = data[1].shape[0] if data[1].shape[0] else data[0].shape[0]
        raise RateError(lik.rate_message(z0, n_bad, first, n_events))
    message = "converged"
    success = True
    dec0 = _decrement(g0, H0) if free.any() else 0.0
    if Q_TOL < dec0 <= extrapolate:
        q, G, H, _ = obj.get(x0)[4]
        x = x0 - np.linalg.solve(H0, g0)
        return (obj.full(x), float(q) + dec0, G, H, True,
                f"converged (one Newton step extrapolated, decrement {dec0:.2g})", obj.n_eval)
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
    return obj.full(x), float(q), G, H, success, message, obj.n_eval


def _predict_start(z, H, fixed, free, dv):
    """First-order path of the profiled parameters: dz_free = -H_ff^-1 H_fx dv."""
    Hff = H[np.ix_(free, free)]
    Hfx = H[np.ix_(free, fixed)]
    try:
        if np.all(np.linalg.eigvalsh(-Hff) > 0):
            out = z.copy()
            out[fixed] += dv
            out[free] -= np.linalg.solve(Hff, Hfx @ dv)
            return out
    except np.linalg.LinAlgError:
        pass
    out = z.copy()
    out[fixed] += dv
    return out


def scan_task(lik, data, fixed, values, z_start, parallel, H_start=None):
    """Profile at each row of ``values`` (for the parameters ``fixed``).

    Every point starts from the previous solution moved along the first-order path of
    the profiled parameters (implicit function theorem with the previous Hessian), and
    reuses that Hessian.  Returns (q (m,), z (m, n_par), success (m,)).
    """
    fixed = np.asarray(fixed, dtype=np.int64)
    free = np.ones(lik.n_par, dtype=bool)
    free[fixed] = False
    m = values.shape[0]
    qs = np.empty(m)
    zs = np.empty((m, lik.n_par))
    ok = np.zeros(m, dtype=bool)
    z = np.array(z_start, dtype=np.float64)
    H = H_start
    prev = None                  # (v, z) of the point before the last, for 1-d scans
    for k in range(m):
        dv = values[k] - z[fixed]
        start = _predict_start(z, H, fixed, free, dv) if H is not None else z.copy()
        if prev is not None and fixed.shape[0] == 1:
            # second order: the quadratic through the previous two solutions with the
            # predicted slope at the last one
            v1, v2 = z[fixed[0]], prev[0]
            h = v2 - v1
            if h != 0.0 and abs(dv[0]) <= 4.0 * abs(h):
                slope = (start - z) / dv[0]
                curv = (prev[1] - z - slope * h) / (h * h)
                start = start + curv * dv[0] ** 2
        start[fixed] = values[k]
        try:
            zk, q, _, H, s, _, _ = maximize(lik, data, start, free, parallel, H_init=H,
                                            extrapolate=SCAN_EXTRAPOLATE)
        except RateError:
            # the extrapolated start is not valid here: retry from the scan's start point
            start = np.array(z_start, dtype=np.float64)
            start[fixed] = values[k]
            zk, q, _, H, s, _, _ = maximize(lik, data, start, free, parallel)
        qs[k], zs[k], ok[k] = q, zk, s
        prev = (z[fixed[0]], z.copy()) if fixed.shape[0] == 1 and k > 0 else None
        z = zk
    return qs, zs, ok
