"""Profiled scans and Wilks intervals on a ``Likelihood`` and a data tuple.

Works without model objects, so the task functions pickle cheaply.  Every profiled
point that beats the reported maximum is reported to the caller (``BetterPoint``), who
refits from there (see ``AdditiveModel.interval``).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats

from ._fit import BETTER_TOL, SCAN_EXTRAPOLATE, maximize_controlled, secant_update
from ._likelihood import RateError

__all__ = ["ONE_SIGMA_CL", "critical_value", "BetterPoint", "scan_task", "endpoint",
           "other_pieces"]

# The default confidence level of intervals: the probability within +-1 sigma of a
# Gaussian, chi2.cdf(1, 1) = 0.6827 -- a one-POI interval at this cl is t <= 1 (MINOS).
ONE_SIGMA_CL = 0.6826894921370859


def critical_value(cl, dof):
    """chi2.ppf(cl, dof); exactly 1 for the default one-POI cl (one sigma)."""
    if isinstance(cl, bool) or not isinstance(cl, (int, float, np.floating)) or not 0 < cl < 1:
        raise ValueError(f"cl must be a number in (0, 1), got {cl!r}")
    if dof == 1 and abs(cl - ONE_SIGMA_CL) < 1e-15:
        return 1.0
    return float(stats.chi2.ppf(cl, dof))


class BetterPoint(Exception):
    """A profiled point with q above the reported maximum: the fit must be redone."""

    def __init__(self, z, q):
        super().__init__(f"better point q={q}")
        self.z, self.q = z, q


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


def scan_task(lik, data, fixed, values, z_start, parallel, H_start=None, controls=None,
              report=None):
    """Profile at each row of ``values`` (for the parameters ``fixed``).

    Every point starts from the previous solution moved along the first-order path of
    the profiled parameters (implicit function theorem with the previous Hessian), and
    reuses that Hessian.  ``controls``: fixed parameters / bounds (``_fit.Controls``);
    ``report``: called once per point.  Returns (q (m,), z (m, n_par), success (m,)).
    """
    fixed = np.asarray(fixed, dtype=np.int64)
    free = np.ones(lik.n_par, dtype=bool)
    free[fixed] = False
    if controls is not None:
        free &= controls.free
    m = values.shape[0]
    qs = np.empty(m)
    zs = np.empty((m, lik.n_par))
    ok = np.zeros(m, dtype=bool)
    z = np.array(z_start, dtype=np.float64)
    H = H_start
    prev = None                  # (v, z) of the point before the last, for 1-d scans
    pair = None                  # (z, gradient of q there) of the last evaluated point
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
            found = maximize_controlled(lik, data, start, free, controls, parallel, H_init=H,
                                        extrapolate=SCAN_EXTRAPOLATE)
        except RateError:
            # the extrapolated start is not valid here: retry from the scan's start point
            start = np.array(z_start, dtype=np.float64)
            start[fixed] = values[k]
            found = maximize_controlled(lik, data, start, free, controls, parallel)
        if report is not None:
            report(1)
        zk, H = found.z, found.hessian
        # the gradient was evaluated at the start when the point was extrapolated
        at = start if "extrapolated" in found.message else zk
        if controls is not None:
            at = controls.apply(at)
        if pair is not None and H is not None:
            H = secant_update(H, at - pair[0], found.gradient - pair[1])
        pair = (np.array(at, dtype=np.float64), np.array(found.gradient, dtype=np.float64))
        qs[k], zs[k], ok[k] = found.q, zk, found.success
        prev = (z[fixed[0]], z.copy()) if fixed.shape[0] == 1 and k > 0 else None
        z = zk
    return qs, zs, ok


def _profiler(lik, data, j, z_hat, H_hat, q_max, controls=None, report=None):
    """t(v) and dt/dv of POI j, profiling everything else, warm-started from the last call."""
    free = np.ones(lik.n_par, dtype=bool)
    free[j] = False
    if controls is not None:
        free &= controls.free
    state = {"z": z_hat.copy(), "H": H_hat}

    def prof(v):
        start = state["z"].copy()
        start[j] = v
        if report is not None:
            report(1, f"{lik.names[0][j]}={v:.6g}")
        try:
            found = maximize_controlled(lik, data, start, free, controls, H_init=state["H"])
        except RateError as exc:
            raise RateError(f"while profiling the interval of {lik.names[0][j]} at {v:.6g}: "
                            f"{exc}") from None
        if found.q > q_max + BETTER_TOL:
            raise BetterPoint(found.z, found.q)
        state["z"], state["H"] = found.z, found.hessian
        return -2.0 * (found.q - q_max), -2.0 * found.gradient[j]

    def reset(z, H):
        state["z"], state["H"] = z.copy(), H

    return prof, reset


def endpoint(lik, data, j, z_hat, H_hat, q_max, crit, sigma, side, max_iter=100, controls=None,
             report=None):
    """theta_j where the profiled t crosses ``crit`` on ``side`` of the MLE.

    With a bound of POI j on ``side`` (``controls``): the bound when t there is below
    ``crit``, else the crossing between the MLE and the bound.
    Raises BetterPoint when a profiled point beats q_max.
    """
    prof, _ = _profiler(lik, data, j, z_hat, H_hat, q_max, controls, report)
    b = None
    if controls is not None:
        bound = controls.upper[j] if side > 0 else controls.lower[j]
        if np.isfinite(bound):
            if bound == z_hat[j]:
                return float(bound)
            t, _ = prof(bound)
            if t <= crit:
                return float(bound)
            b = float(bound)
            prof, _ = _profiler(lik, data, j, z_hat, H_hat, q_max, controls, report)
    return _crossing(prof, z_hat[j], b, crit, sigma, side, lik.names[0][j], max_iter)


def _crossing(prof, a, b, crit, sigma, side, name, max_iter=100, origin=None):
    """Root of t(v) = crit with t(a) < crit (and t(b) >= crit when b is known)."""
    origin = a if origin is None else origin
    xtol = 1e-7 * sigma
    v = a + side * np.sqrt(crit) * sigma if b is None else 0.5 * (a + b)
    for _ in range(max_iter):
        t, dt = prof(v)
        if abs(t - crit) < 1e-7:
            return float(v)
        if t < crit:
            a = v
        else:
            b = v
        newton = v - (t - crit) / dt if dt * side > 0 else None
        if b is None:
            reach = abs(a - origin)
            if reach > 1000 * sigma:
                warnings.warn(f"the {'upper' if side > 0 else 'lower'} endpoint of the interval "
                              f"of {name} is not reached within 1000 standard errors",
                              RuntimeWarning, stacklevel=4)
                return float(side * np.inf)
            far = a + side * max(2.0 * reach, sigma)
            if newton is None or (newton - a) * side <= 0:
                v = far
            else:
                v = a + side * min(abs(newton - a), abs(far - a))
        else:
            if abs(b - a) < xtol:
                return float(0.5 * (a + b))
            inside = newton is not None and min(a, b) < newton < max(a, b)
            v = newton if inside else 0.5 * (a + b)
    return float(v)


# Beyond each endpoint the profile is checked at these multiples of the distance from the
# MLE to that endpoint (a non-convex profile dips below the threshold again there).
CONVEXITY_CHECK = (1.5, 2.0, 3.0, 5.0)
# Inside the interval the profile is checked at these fractions of the way from the MLE to
# each endpoint (a second maximum, or t above the threshold, hides between them).
INTERIOR_CHECK = (0.25, 0.5, 0.75)


def other_pieces(lik, data, j, z_hat, H_hat, q_max, crit, sigma, low, high,
                 check=CONVEXITY_CHECK, controls=None, report=None):
    """Further intervals where t < crit beyond (low, high) within the checked range.

    Profiles at ``INTERIOR_CHECK`` fractions of the way to each endpoint (a point with
    t > crit there is returned as a degenerate piece (v, v): a gap inside the interval),
    then outwards from each finite endpoint at ``check`` multiples of its distance from
    the MLE; where t is below ``crit`` again, both crossings around that region are
    solved.  Returns a list of (low, high) pieces (an end not closed within the checked
    range is the last checked point).  Points beyond a bound of POI j (``controls``)
    are not checked.  Raises BetterPoint.
    """
    theta_hat = z_hat[j]
    lo_b, hi_b = ((controls.lower[j], controls.upper[j]) if controls is not None
                  else (-np.inf, np.inf))
    pieces = []
    name = lik.names[0][j]
    for side, end in ((-1.0, low), (1.0, high)):
        if not np.isfinite(end) or end == theta_hat:
            continue
        prof, _ = _profiler(lik, data, j, z_hat, H_hat, q_max, controls, report)
        dist = abs(end - theta_hat)
        for f in INTERIOR_CHECK:           # inside: a better maximum, or a gap
            v = theta_hat + side * f * dist
            t, _ = prof(v)
            if t > crit:
                pieces.append((float(v), float(v)))      # marks a gap inside (low, high)
        prof(end)                          # warm start at the endpoint
        prev, inside_from = end, None
        for m in check:
            v = theta_hat + side * m * dist
            if not lo_b <= v <= hi_b:
                break
            t, _ = prof(v)
            if t < crit and inside_from is None:
                # entered a region below threshold between prev and v: its near edge
                lo_edge = _crossing(prof, v, prev, crit, sigma, -side, name)
                inside_from = lo_edge
                prof(v)
            elif t >= crit and inside_from is not None:
                far_edge = _crossing(prof, prev, v, crit, sigma, side, name)
                pieces.append(tuple(sorted((inside_from, far_edge))))
                inside_from = None
                prof(v)
            prev = v
        if inside_from is not None:
            pieces.append(tuple(sorted((inside_from, prev))))
    return sorted(pieces)
