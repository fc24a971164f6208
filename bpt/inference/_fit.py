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
# below this, in units of q (t = -2 q, so t is accurate to ~1e-8).
Q_TOL = 5e-9


@dataclass
class FitResult:
    """Maximum-likelihood estimate.

    Attributes
    ----------
    theta, nu : arrays (P,), (K,)
    q : float, q at the maximum (relative to theta = 0, nu = 0)
    success : bool, message : str, n_evaluations : int
    hessian : (P+K, P+K) second derivatives of q in (theta, nu) at the maximum
    covariance : (P+K, P+K) inverse of -hessian (Gaussian approximation; nan if singular)
    """
    theta: np.ndarray
    nu: np.ndarray
    q: float
    success: bool
    message: str
    n_evaluations: int
    hessian: np.ndarray = field(repr=False)
    covariance: np.ndarray = field(repr=False)

    @property
    def errors(self):
        """sqrt(diag(covariance)) in (theta, nu) order."""
        return np.sqrt(np.diag(self.covariance))


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
    """-q and derivatives over the free parameters; remembers recent evaluations."""

    def __init__(self, lik, data, z0, free, parallel):
        self.lik, self.data, self.parallel = lik, data, parallel
        self.z0 = np.array(z0, dtype=np.float64)
        self.free = free
        self.cache = {}
        self.n_eval = 0

    def full(self, x):
        z = self.z0.copy()
        z[self.free] = x
        return z

    def get(self, x):
        """(-q, -grad, -hess) over the free parameters, ok, (q, G, H) in full."""
        key = np.asarray(x, dtype=np.float64).tobytes()
        hit = self.cache.get(key)
        if hit is None:
            z = self.full(x)
            q, G, H, n_bad, _ = self.lik.evaluate(z, self.data, 2, self.parallel)
            self.n_eval += 1
            n = x.shape[0]
            if n_bad:
                hit = (np.inf, np.zeros(n), np.zeros((n, n)), False, None)
            else:
                f = self.free
                hit = (-q, -G[f], -H[np.ix_(f, f)], True, (q, G, H))
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


class _Converged(Exception):
    pass


def maximize(lik, data, z0, free, parallel=True, maxiter=200):
    """Maximise q over ``z[free]`` from z0.  Returns (z, q, G, H, success, message, n_eval).

    Raises RateError when z0 itself has an event with rate <= 0.
    """
    z0 = np.asarray(z0, dtype=np.float64)
    free = np.asarray(free, dtype=bool)
    obj = _Objective(lik, data, z0, free, parallel)
    x0 = z0[free]
    f0, g0, H0, ok, _ = obj.get(x0)
    if not ok:
        q, G, H, n_bad, first = lik.evaluate(z0, data, 0, parallel)
        n_events = data[1].shape[0] if data[1].shape[0] else data[0].shape[0]
        raise RateError(lik.rate_message(z0, n_bad, first, n_events))
    message = "converged"
    success = True
    if free.any() and _decrement(g0, H0) > Q_TOL:
        # first trust radius: the Newton step if -q is locally convex, else 1
        try:
            step = np.linalg.norm(np.linalg.solve(H0, g0))
            radius = float(np.clip(step, 1e-4, 1e3)) if np.all(np.linalg.eigvalsh(H0) > 0) else 1.0
        except np.linalg.LinAlgError:
            radius = 1.0
        state = {"x": x0}

        def callback(intermediate_result):
            x = intermediate_result.x
            state["x"] = np.array(x)
            _, g, H, _, _ = obj.get(x)
            if _decrement(g, H) <= Q_TOL:
                raise StopIteration

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
    q, G, H = obj.get(x)[4]
    return obj.full(x), float(q), G, H, success, message, obj.n_eval


def scan_task(lik, data, fixed, values, z_start, parallel):
    """Profile at each row of ``values`` (for the parameters ``fixed``), warm-starting
    each point from the previous solution.  Returns (q (m,), z (m, n_par), success (m,))."""
    fixed = np.asarray(fixed, dtype=np.int64)
    free = np.ones(lik.n_par, dtype=bool)
    free[fixed] = False
    m = values.shape[0]
    qs = np.empty(m)
    zs = np.empty((m, lik.n_par))
    ok = np.zeros(m, dtype=bool)
    z = np.array(z_start, dtype=np.float64)
    for k in range(m):
        start = z.copy()
        start[fixed] = values[k]
        try:
            zk, q, _, _, s, _, _ = maximize(lik, data, start, free, parallel)
        except RateError:
            # the previous solution is not valid here: retry from the given start point
            start = np.array(z_start, dtype=np.float64)
            start[fixed] = values[k]
            zk, q, _, _, s, _, _ = maximize(lik, data, start, free, parallel)
        qs[k], zs[k], ok[k] = q, zk, s
        z = zk
    return qs, zs, ok
