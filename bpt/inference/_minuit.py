"""An ``iminuit.Minuit`` on bpt's test statistic (optional extra ``bpt[minuit]``).

The cost is -q(z) with z = (theta, nu) and ``errordef = 0.5`` (Minuit.LIKELIHOOD): -q is a
negative log-likelihood ratio, so MINOS / HESSE give the one-sigma errors of the Wilks
statistic t = -2 (q - q_max) <= 1 (docs/math.md, section 4; docs/inference.md, *Minuit*).
The gradient (and, where iminuit accepts it, the Hessian) is the exact one of the kernels.
Works on a ``Likelihood`` and a data tuple only, like ``_fit``.
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np

from .._validation import check_finite

__all__ = ["MinuitCost", "make_minuit", "import_iminuit"]

# MIGRAD stops at EDM < 0.002 * tol * errordef; with tol = 1e-6 (EDM < 1e-9) the minimum of -q
# is found to ~1e-9 and the parameters to ~1e-4 standard errors (the default 0.1: ~1e-4, ~1e-2).
DEFAULT_TOL = 1e-6


def import_iminuit():
    try:
        import iminuit
    except ImportError as exc:
        raise ImportError("AdditiveModel.minuit needs iminuit; install the optional extra "
                          "with `pip install bpt[minuit]` (or `pip install iminuit`)") from exc
    return iminuit


class MinuitCost:
    """-q(z) with its exact gradient and Hessian, for iminuit (errordef 0.5).

    A point where some event's rate is <= 0 (or q overflows) returns NaN (and a zero
    gradient): MIGRAD treats it as a failed step and moves away; set ``Minuit.limits``
    to keep it inside the valid region.
    """

    errordef = 0.5

    def __init__(self, lik, data, parallel=True):
        self.lik = lik
        self.data = data
        self.parallel = parallel
        self._last = None

    def _eval(self, z, order):
        z = np.ascontiguousarray(z, dtype=np.float64)
        key = (z.tobytes(), order)
        last = self._last
        if last is not None and last[0][0] == key[0] and last[0][1] >= order:
            return last[1]
        q, G, H, n_bad, _ = self.lik.evaluate(z, self.data, order, self.parallel)
        if n_bad:
            n = z.shape[0]
            out = (np.nan, np.zeros(n), np.full((n, n), np.nan))
        else:
            out = (-float(q), -G, -H)
        self._last = (key, out)
        return out

    def __call__(self, z):
        return self._eval(z, 0)[0]

    def grad(self, z):
        return self._eval(z, 1)[1]

    def hessian(self, z):
        return self._eval(z, 2)[2]

    def g2(self, z):
        """The diagonal of the Hessian."""
        return np.diag(self._eval(z, 2)[2]).copy()


def make_minuit(lik, data, start=None, tol=DEFAULT_TOL, parallel=True):
    """An ``iminuit.Minuit`` minimising -q over z = (theta, nu), named by POI / nuisance.

    ``start``: the start values z0 (default 0: the SM point, nominal nuisances).
    """
    iminuit = import_iminuit()
    n = lik.n_par
    z0 = np.zeros(n) if start is None else np.atleast_1d(check_finite(start, "start"))
    if z0.shape != (n,):
        raise ValueError(f"start must have length {n} (POIs then nuisances), got shape "
                         f"{np.shape(start)}")
    pois, nuisances = lik.names
    names = list(pois) + list(nuisances)
    cost = MinuitCost(lik, data, parallel)
    kw = {"grad": cost.grad, "name": names}
    accepted = inspect.signature(iminuit.Minuit.__init__).parameters
    if "hessian" in accepted:
        # recent iminuit: MIGRAD's seed and HESSE use the exact Hessian.  g2 must be given
        # too although iminuit warns that the Hessian overrides it: without it Minuit2
        # calls a missing g2 on some problems (TypeError "'NoneType' object is not
        # callable", seen with 22 parameters and iminuit 2.33).
        kw["hessian"] = cost.hessian
        kw["g2"] = cost.g2
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="hessian overrides g2")
        m = iminuit.Minuit(cost, z0, **kw)      # errordef 0.5 from cost.errordef
    m.tol = tol
    m.print_level = 0
    gauss = np.asarray(lik.gaussian, dtype=bool)
    for k, name in enumerate(nuisances):
        m.errors[name] = 1.0 if gauss[k] else 0.1
    for name in pois:
        m.errors[name] = 0.1
    return m
