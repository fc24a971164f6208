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
           "global_maximum", "BETTER_TOL", "Controls", "maximize_bounded", "maximize_controlled"]

# Stop when the Newton decrement (the predicted gain of q from one more Newton step) is
# below this, in units of q (t = -2 q, so t is accurate to ~2e-7).
Q_TOL = 1e-7
# ... and below Q_TOL * FROZEN_TOL when it is computed with a frozen (secant-updated)
# Hessian, an estimate of the curvature: the stopping point is then as close to the
# maximum as with a Hessian computed there.
FROZEN_TOL = 0.1
# Scan points whose predicted start is this close (Newton decrement, units of q) finish
# with one unevaluated Newton step: t is then accurate to ~1e-6.
SCAN_EXTRAPOLATE = 1e-5
# The Hessians that only steer the optimiser are estimated from at least this many events
# (every k-th chunk of 2048) on larger datasets; ``exact_hessian=True`` uses all events.
HESS_SAMPLE = 100_000
# An optimiser iteration after which the Newton decrement exceeds this factor times the
# previous one is slow progress: the next evaluation makes a new Hessian pass (and so does
# every EXACT_EVERY-th frozen evaluation).  Between passes the frozen Hessian follows the
# path by secant updates.  Cold starts (no nearby Hessian given) refresh eagerly: far
# from the maximum the curvature changes from step to step.  Warm starts (a nearby
# Hessian: scans, impacts, the extra starts of a fit) only when the decrement grew (1; a
# rejected step leaves it equal): the secant updates converge superlinearly on their own
# (a pass after every rejected step cost more than it saved on the combination bench).
SLOW_PROGRESS = {"cold": 0.05, "warm": 1.0}
EXACT_EVERY = {"cold": 4, "warm": 16}
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
    covariance : (P+K, P+K) inverse of -hessian restricted to the floating parameters
        (Gaussian approximation; rows / columns of fixed parameters and of parameters
        at a bound are 0; nan if singular)
    names : list of str, the parameter names in (theta, nu) order (POIs, then nuisances)
    floating : (P+K,) bool, the parameters that were fitted (not fixed, not at a bound)
    fixed : list of str, the parameters held fixed (``fix=``)
    at_bound : list of str, the parameters that ended at a bound (``bounds=``)
    global_observables : (K,), the auxiliary measurements a of the nuisances (0 = none)
    constrained : (K,) bool, the Gaussian-constrained nuisances

    Named access: ``fit["jes"]`` (best-fit value), ``fit.error("jes")`` (post-fit
    Gaussian error sqrt(cov_jj)), ``fit.correlation`` (matrix, (theta, nu) order),
    ``fit.pulls`` / ``fit.constraints`` (dicts over the Gaussian-constrained nuisances of
    (nu_hat - a) / 1 and of the post-fit error / 1), ``fit.values`` (dict of all values).
    """
    hessian: np.ndarray = field(repr=False)
    covariance: np.ndarray = field(repr=False)
    names: list = field(default=None, repr=False)
    floating: np.ndarray = field(default=None, repr=False)
    fixed: list = field(default_factory=list)
    at_bound: list = field(default_factory=list)
    global_observables: np.ndarray = field(default=None, repr=False)
    constrained: np.ndarray = field(default=None, repr=False)

    def __post_init__(self):
        n = self.theta.shape[0] + self.nu.shape[0]
        if self.names is None:
            self.names = ([f"theta{a}" for a in range(self.theta.shape[0])]
                          + [f"nu{k}" for k in range(self.nu.shape[0])])
        if self.floating is None:
            self.floating = np.ones(n, dtype=bool)
        if self.global_observables is None:
            self.global_observables = np.zeros(self.nu.shape[0])
        if self.constrained is None:
            self.constrained = np.ones(self.nu.shape[0], dtype=bool)

    @property
    def errors(self):
        """sqrt(diag(covariance)) in (theta, nu) order (0 for fixed / at-bound parameters)."""
        return np.sqrt(np.diag(self.covariance))

    @property
    def z(self):
        """All parameter values, (theta, nu)."""
        return np.concatenate([self.theta, self.nu])

    def index(self, name):
        """Position of parameter ``name`` in (theta, nu); ValueError for an unknown name."""
        if isinstance(name, str) and name in self.names:
            return self.names.index(name)
        raise ValueError(f"unknown parameter {name!r}; parameters are {self.names}")

    def __getitem__(self, name):
        return float(self.z[self.index(name)])

    def error(self, name):
        """Post-fit Gaussian error sqrt(covariance[j, j]) of parameter ``name``."""
        return float(self.errors[self.index(name)])

    @property
    def values(self):
        """{name: best-fit value} of every parameter."""
        return dict(zip(self.names, self.z.tolist()))

    @property
    def correlation(self):
        """Correlation matrix (P+K, P+K) of the covariance (0 rows / columns, 1 on the
        diagonal, for fixed parameters)."""
        cov = self.covariance
        d = np.sqrt(np.abs(np.diag(cov)))
        with np.errstate(divide="ignore", invalid="ignore"):
            c = cov / np.outer(d, d)
        c = np.where(np.outer(d, d) > 0, c, 0.0)
        np.fill_diagonal(c, 1.0)
        return c

    def _nuisance_dict(self, values):
        P = self.theta.shape[0]
        return {self.names[P + k]: float(values[k]) for k in range(self.nu.shape[0])
                if self.constrained[k]}

    @property
    def pulls(self):
        """{nuisance: (nu_hat - a) / 1} over the Gaussian-constrained nuisances (a = global
        observable, default 0; the prior width is 1)."""
        return self._nuisance_dict(self.nu - self.global_observables)

    @property
    def constraints(self):
        """{nuisance: post-fit error / pre-fit error (= 1)} over the Gaussian-constrained
        nuisances; < 1 means the data constrain the nuisance beyond its prior."""
        P = self.theta.shape[0]
        return self._nuisance_dict(self.errors[P:])


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


def secant_update(H, s, y):
    """BFGS update of the Hessian H of q (concave) from a step s and the change y of the
    gradient along it (H unchanged if the pair violates the curvature condition): a frozen
    Hessian follows the path's curvature without a Hessian pass.  It only steers steps;
    maxima use exact gradients.  See docs/inference.md (*Implementation*, Optimiser)."""
    B = -H
    yb = -y
    sy = float(s @ yb)
    Bs = B @ s
    sBs = float(s @ Bs)
    if not (sy > 1e-10 * np.linalg.norm(s) * np.linalg.norm(yb) and sBs > 0):
        return H
    B = B - np.outer(Bs, Bs) / sBs + np.outer(yb, yb) / sy
    return -(0.5 * (B + B.T))


class _Objective:
    """-q and derivatives over the free parameters; remembers recent evaluations.

    Hessian policy: a Hessian pass (order 2, several times the cost of value +
    gradient; subsampled, see HESS_SAMPLE) is made at the first point unless ``H_init``
    (the full Hessian at a nearby point, e.g. the global fit's: a warm start) is given,
    whenever ``refresh`` is set (slow convergence, see SLOW_PROGRESS), and after
    ``EXACT_EVERY`` evaluations with a frozen one.  In between the Hessian is frozen and
    follows the path by BFGS secant updates from consecutive evaluations.  A subsampled
    Hessian that is not negative definite is redone from all events, and when that one
    is (the sampling noise was the cause) so is every later one of this objective.  The
    gradient is always exact, so the maximum found is exact; only the number of
    steps depends on the Hessian.
    """

    def __init__(self, lik, data, z0, free, parallel, H_init=None):
        self.lik, self.data, self.parallel = lik, data, parallel
        self.z0 = np.array(z0, dtype=np.float64)
        self.free = free
        self.cache = {}
        self.n_eval = 0
        self.H_full = None if H_init is None else np.array(H_init, dtype=np.float64)
        self.start = "cold" if H_init is None else "warm"
        self.since_exact = 0
        self.refresh = False
        self.sample = True           # subsample the Hessian passes (until that fails once)
        self.last = None             # (z, G) of the last evaluation, for secant updates

    def full(self, x):
        z = self.z0.copy()
        z[self.free] = x
        return z

    def get(self, x, exact=False):
        """(-q, -grad, -hess) over the free parameters, ok, and in full (q, G, H,
        H_exact_here: from all events at this point, H_fresh: from a Hessian pass here).

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
                 or self.since_exact >= EXACT_EVERY[self.start])
        full = full or (exact and not self.sample)
        q, G, H, n_bad, _ = self.lik.evaluate(z, self.data, 2 if exact else 1, self.parallel,
                                              None if full else HESS_SAMPLE)
        self.n_eval += 1
        f = self.free
        if exact and not full and not n_bad and not _concave(H[np.ix_(f, f)]):
            # the subsampled Hessian is not negative definite over the free parameters:
            # redo it from all events; if that one is, the sampling noise exceeded the
            # weakest curvature, so use all events from now on (else q is not concave here)
            q, G, H, n_bad, _ = self.lik.evaluate(z, self.data, 2, self.parallel, None)
            self.n_eval += 1
            full = True
            self.sample = bool(n_bad) or not _concave(H[np.ix_(f, f)])
        n = x.shape[0]
        if n_bad:
            hit = (np.inf, np.zeros(n), np.zeros((n, n)), False, None)
        else:
            if exact:
                self.H_full = H
                self.since_exact = 0
                self.refresh = False
            else:
                if self.last is not None:
                    self.H_full = secant_update(self.H_full, z - self.last[0], G - self.last[1])
                H = self.H_full
                self.since_exact += 1
            self.last = (z, G)
            hit = (-q, -G[f], -H[np.ix_(f, f)], True, (q, G, H, exact and full, exact))
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


def _tolerance(info):
    """The Newton decrement to stop at for an evaluation's ``info`` (see _Objective.get):
    Q_TOL with a Hessian computed at the point, Q_TOL * FROZEN_TOL with a frozen one."""
    return Q_TOL if info is None or info[4] else Q_TOL * FROZEN_TOL


def _concave(H):
    """True if H is negative definite (a Cholesky factorisation of -H exists)."""
    try:
        np.linalg.cholesky(-H)
    except np.linalg.LinAlgError:
        return False
    return True


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
    Hessian (exact at z if ``exact_hessian``, else the last Hessian pass of the
    optimisation path carried to z by secant updates), success, message, number of
    evaluations.
    Raises RateError when z0 itself has an event with rate <= 0.
    """
    z0 = np.asarray(z0, dtype=np.float64)
    free = np.asarray(free, dtype=bool)
    obj = _Objective(lik, data, z0, free, parallel, H_init)
    x0 = z0[free]
    f0, g0, H0, ok, info = obj.get(x0)
    if not ok:
        lik.checked(z0, data, 2, parallel)        # raises RateError with the likelihood's message
        raise RateError(lik.rate_message(z0, -1, -1, 0))
    message = "converged"
    success = True
    dec0 = _decrement(g0, H0) if free.any() else 0.0
    tol0 = _tolerance(info)
    if tol0 < dec0 <= extrapolate:
        q, G, H = obj.get(x0)[4][:3]
        x = x0 - np.linalg.solve(H0, g0)
        return Maximum(obj.full(x), float(q) + dec0, G, H, True,
                       f"converged (one Newton step extrapolated, decrement {dec0:.2g})",
                       obj.n_eval)
    if dec0 > tol0:
        # first trust radius: the Newton step if -q is locally convex, else 1
        try:
            step = np.linalg.norm(np.linalg.solve(H0, g0))
            radius = float(np.clip(step, 1e-4, 500.0)) if np.all(np.linalg.eigvalsh(H0) > 0) else 1.0
        except np.linalg.LinAlgError:
            radius = 1.0
        last = {"dec": _decrement(g0, H0)}

        def callback(intermediate_result):
            _, g, H, _, info = obj.get(np.asarray(intermediate_result.x, dtype=np.float64))
            dec = _decrement(g, H)
            if dec <= _tolerance(info):
                raise StopIteration
            if not np.isfinite(dec) or dec > SLOW_PROGRESS[obj.start] * last["dec"]:
                obj.refresh = True          # slow progress: use an exact Hessian next
            last["dec"] = dec

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            options = {"gtol": 1e-12, "maxiter": maxiter, "initial_trust_radius": radius}
            try:
                res = optimize.minimize(obj.fun, x0, jac=obj.jac, hess=obj.hess,
                                        method="trust-exact", callback=callback,
                                        options=options)
            except UnboundLocalError:
                # scipy's exact trust-region subproblem can leave its step unset (its
                # iteration on the Levenberg parameter ends without a step, seen with
                # nearly singular Hessians): the same problem with the truncated-CG
                # subproblem, from the start
                res = optimize.minimize(obj.fun, x0, jac=obj.jac, hess=obj.hess,
                                        method="trust-ncg", callback=callback,
                                        options=options)
        x = np.asarray(res.x, dtype=np.float64)
        f, g, H, _, info = obj.get(x)
        dec = _decrement(g, H)
        if dec <= _tolerance(info):
            success, message = True, "converged"
        elif dec <= 1e-5:
            success, message = True, f"converged (Newton decrement {dec:.2g})"
        else:
            success, message = False, f"not converged: {res.message} (Newton decrement {dec:.3g})"
    else:
        x = x0
    q, G, H = obj.get(x, exact=exact_hessian)[4][:3]
    return Maximum(obj.full(x), float(q), G, H, success, message, obj.n_eval)


class Controls:
    """Fixed parameters and bounds: ``free`` (n,) bool (False = fixed at ``z_fixed``),
    ``lower`` / ``upper`` (n,) (+-inf = none), ``key`` (hashable, () = no control)."""

    def __init__(self, n_par, fixed=None, lower=None, upper=None, key=()):
        self.n_par = int(n_par)
        self.z_fixed = np.full(n_par, np.nan) if fixed is None else np.asarray(fixed, float)
        self.free = ~np.isfinite(self.z_fixed)
        self.lower = np.full(n_par, -np.inf) if lower is None else np.asarray(lower, float)
        self.upper = np.full(n_par, np.inf) if upper is None else np.asarray(upper, float)
        self.key = key

    @property
    def bounded(self):
        return bool(np.any(np.isfinite(self.lower[self.free]))
                    or np.any(np.isfinite(self.upper[self.free])))

    def apply(self, z):
        """z with the fixed values set and clipped into the bounds."""
        z = np.array(z, dtype=np.float64)
        z[~self.free] = self.z_fixed[~self.free]
        return np.clip(z, self.lower, self.upper)

    def restrict(self, free):
        """A mask of the parameters to maximise over: ``free`` and not fixed."""
        return np.asarray(free, dtype=bool) & self.free


def _release_gain(G, H, k):
    """Predicted gain of q from releasing parameter k (a Newton step along it)."""
    h = -H[k, k]
    return 0.5 * G[k] ** 2 / h if h > 0 else np.inf


def maximize_bounded(lik, data, z0, free, lower, upper, parallel=True, maxiter=200, H_init=None,
                     exact_hessian=False, extrapolate=0.0, max_rounds=100):
    """:func:`maximize` over ``z[free]`` within the box [lower, upper] (an active-set loop).

    z0 must lie in the box.  Each round maximises q over the free parameters not held
    at a bound; if that maximum leaves the box, the iterate moves along the straight
    line towards it up to the first bound hit (q increases along it for concave q) and
    the parameters that reached a bound are held there.  At a maximum inside the box of
    the remaining ones, a held parameter whose gradient points inwards (a KKT
    violation worth more than Q_TOL) is released (the most promising first).  Returns a
    :class:`Maximum` whose ``message`` names the parameters held at a bound (see
    :func:`at_bounds` for the mask).
    """
    z = np.asarray(z0, dtype=np.float64).copy()
    free = np.asarray(free, dtype=bool)
    lower = np.asarray(lower, dtype=np.float64)
    upper = np.asarray(upper, dtype=np.float64)
    if not (np.any(np.isfinite(lower[free])) or np.any(np.isfinite(upper[free]))):
        return maximize(lik, data, z, free, parallel, maxiter, H_init, exact_hessian, extrapolate)
    if np.any(z < lower) or np.any(z > upper):
        raise ValueError(f"the start point {lik.describe(z)} is outside the bounds")
    held = np.zeros_like(free)
    H = H_init
    n_eval = 0
    found = None
    for _ in range(max_rounds):
        f = free & ~held
        found = maximize(lik, data, z, f, parallel, maxiter, H, exact_hessian,
                         extrapolate if not held.any() else 0.0)
        n_eval += found.n_evaluations
        H = found.hessian
        zn = found.z
        out = f & ((zn < lower) | (zn > upper))
        if out.any():
            d = zn - z
            with np.errstate(divide="ignore", invalid="ignore"):
                frac = np.where(d > 0, (upper - z) / d, np.where(d < 0, (lower - z) / d, np.inf))
            frac = np.where(out, frac, np.inf)
            alpha = float(np.clip(np.min(frac), 0.0, 1.0))
            hit = out & (frac <= alpha + 1e-12)
            z = z + alpha * d
            z[hit] = np.where(d[hit] > 0, upper[hit], lower[hit])
            z = np.clip(z, lower, upper)
            held |= hit
            continue
        z = zn
        G = found.gradient
        inward = held & (((z <= lower) & (G > 0)) | ((z >= upper) & (G < 0)))
        gains = np.array([_release_gain(G, H, k) if inward[k] else 0.0 for k in range(z.shape[0])])
        if gains.max(initial=0.0) > Q_TOL:
            held[int(np.argmax(gains))] = False
            continue
        break
    else:
        found = found._replace(success=False, message="not converged: the active-set loop of "
                               f"the bounds did not settle in {max_rounds} rounds")
    msg = found.message
    if held.any():
        names = _param_names(lik)
        msg += f" (at a bound: {[names[k] for k in np.flatnonzero(held)]})"
    return found._replace(z=z, n_evaluations=n_eval, message=msg)


def _param_names(lik):
    names = getattr(lik, "names", None)
    if names is None:
        return [f"z{k}" for k in range(lik.n_par)]
    return list(names[0]) + list(names[1])


def at_bounds(z, free, lower, upper, gradient=None):
    """Mask of the free parameters sitting on a bound (and, with ``gradient``, pushed
    outwards by it or flat)."""
    on = free & ((z <= lower) | (z >= upper))
    if gradient is None:
        return on
    return on & (((z <= lower) & (gradient <= 0)) | ((z >= upper) & (gradient >= 0)))


def maximize_controlled(lik, data, z0, free, controls, parallel=True, **kw):
    """:func:`maximize_bounded` over ``free`` minus the fixed parameters of ``controls``
    (None: plain :func:`maximize`), from z0 with the fixed values set and clipped."""
    if controls is None:
        return maximize(lik, data, z0, free, parallel, **kw)
    z0 = controls.apply(z0)
    return maximize_bounded(lik, data, z0, controls.restrict(free), controls.lower,
                            controls.upper, parallel, **kw)


# Multi-start: besides the origin, the fit starts from the first maximum moved by these
# multiples of each POI's standard error (one POI at a time).
MULTISTART_SPREAD = (-2.0, 2.0)


def fit_result(found, n_pois, success=None, message=None, n_evaluations=None, lik=None,
               controls=None, global_observables=None):
    """The :class:`FitResult` of a :class:`Maximum` (covariance = inverse of -Hessian over
    the floating parameters).  ``lik`` gives the names and the constrained nuisances,
    ``controls`` the fixed parameters and bounds."""
    H = found.hessian
    z = found.z
    n = z.shape[0]
    floating = np.ones(n, dtype=bool)
    fixed, at_bound = [], []
    names = _param_names(lik) if lik is not None else None
    if controls is not None:
        held = at_bounds(z, controls.free, controls.lower, controls.upper, found.gradient)
        floating = controls.free & ~held
        if names is not None:
            fixed = [names[k] for k in np.flatnonzero(~controls.free)]
            at_bound = [names[k] for k in np.flatnonzero(held)]
    cov = np.zeros_like(H)
    try:
        cov[np.ix_(floating, floating)] = np.linalg.inv(-H[np.ix_(floating, floating)])
    except np.linalg.LinAlgError:
        cov[np.ix_(floating, floating)] = np.nan
    constrained = None
    if lik is not None and getattr(lik, "gaussian", None) is not None:
        constrained = np.asarray(lik.gaussian, dtype=bool).copy()
    aux = None
    if global_observables is not None:
        aux = np.asarray(global_observables, dtype=np.float64).copy()
        if constrained is not None:
            aux = np.where(constrained, aux, 0.0)
    return FitResult(z[:n_pois].copy(), z[n_pois:].copy(), found.q,
                     found.success if success is None else bool(success),
                     found.message if message is None else message,
                     found.n_evaluations if n_evaluations is None else int(n_evaluations),
                     H, cov, names, floating, fixed, at_bound, aux, constrained)


def _poi_errors(H, n_pois):
    try:
        var = np.diag(np.linalg.inv(-H))[:n_pois]
    except np.linalg.LinAlgError:
        var = np.full(n_pois, np.nan)
    return np.where(np.isfinite(var) & (var > 0), np.sqrt(np.abs(var)), 1.0)


def global_maximum(lik, data, parallel=True, starts=(), spread=MULTISTART_SPREAD, controls=None):
    """Multi-start maximum of q over all parameters: a :class:`Maximum` with the exact
    Hessian, ``n_evaluations`` summed over all starts.

    Starts: z = 0; every row of ``starts`` (full z vectors); the first maximum moved by
    ``spread`` standard errors along each POI in turn.  The best converged maximum
    wins (a better one that did not converge is reported with success False).
    ``controls`` (:class:`Controls`): fixed parameters and bounds (every start gets the
    fixed values and is clipped into the bounds).
    """
    n_par, P = lik.n_par, lik.n_pois
    free = np.ones(n_par, dtype=bool)
    best = maximize_controlled(lik, data, np.zeros(n_par), free, controls, parallel)
    n_eval = best.n_evaluations
    candidates = [np.asarray(s, dtype=np.float64) for s in starts]
    sig = _poi_errors(best.hessian, P)
    first_hessian = best.hessian
    for a in range(P):
        if controls is not None and not controls.free[a]:
            continue
        for s in spread:
            z0 = best.z.copy()
            z0[a] += s * sig[a]
            candidates.append(z0)
    for z0 in candidates:
        try:             # the first maximum's Hessian steers (saves an exact Hessian pass)
            found = maximize_controlled(lik, data, z0, free, controls, parallel,
                                        H_init=first_hessian)
        except RateError:
            continue                      # an invalid start (rate <= 0 there): skip it
        n_eval += found.n_evaluations
        if found.q > best.q + BETTER_TOL or (found.q > best.q - BETTER_TOL and found.success
                                             and not best.success):
            best = found
    final = maximize_controlled(lik, data, best.z, free, controls, parallel, exact_hessian=True)
    n_eval += final.n_evaluations
    return final._replace(n_evaluations=n_eval)


def refit_from(lik, data, z_better, q_better, previous, parallel=True, controls=None):
    """A better point than the reported maximum is known: maximise again from there.

    Returns the new :class:`Maximum`; its ``success`` is False (with a message naming
    the point) when that fit does not converge.
    """
    free = np.ones(lik.n_par, dtype=bool)
    found = maximize_controlled(lik, data, z_better, free, controls, parallel, exact_hessian=True)
    n_eval = found.n_evaluations + previous.n_evaluations
    if found.q < q_better - BETTER_TOL or not found.success:
        msg = (f"a better point than the reported maximum (q = {previous.q:.10g}) is known at "
               f"{lik.describe(z_better)} with q = {q_better:.10g}, but the fit from there did "
               f"not converge: {found.message}")
        return found._replace(success=False, message=msg, n_evaluations=n_eval)
    return found._replace(n_evaluations=n_eval,
                          message=f"{found.message} (refitted from a better point found later)")
