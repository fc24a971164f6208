"""The compiled form of an AdditiveModel: column layout, simulation yields, q and derivatives.

``Likelihood`` holds only arrays (no trees, no classifier), so it is cheap to pickle
to joblib / dask workers.  Parameters are one vector z = (theta_1..theta_P, nu_1..nu_K).
"""

from __future__ import annotations

import copy

import numpy as np

from ._kernels import accumulate

__all__ = ["Likelihood", "RateError"]


class RateError(ValueError):
    """Raised when an event's predicted rate is <= 0 (or not finite) at a requested point,
    or when q or its derivatives overflow there."""


def describe_point(z, n_pois):
    """'theta=[...], nu=[...]' of the point z = (theta, nu), for messages."""
    z = np.asarray(z, dtype=np.float64)
    th, nu = z[:n_pois], z[n_pois:]
    return f"theta={np.round(th, 6).tolist()}, nu={np.round(nu, 6).tolist()}"


def overflow_message(z, n_pois):
    """The RateError text for a point where q or its derivatives overflow."""
    return (f"q or its derivatives are not finite (overflow) at {describe_point(z, n_pois)}; "
            "parameter values or event weights of this magnitude are out of range")


def add_gaussian_constraints(q, G, H, z, n_pois, gaussian, data, order):
    """q plus the Gaussian constraint terms -nu_k^2/2 + a_k nu_k of the nuisances
    ``gaussian`` selects (a = ``data[3]``, the global observables, default 0); G and H
    (of z = (theta, nu)) are updated in place up to ``order``.  See docs/math.md."""
    nu = z[n_pois:]
    gm = gaussian
    aux = data[3] if len(data) > 3 and data[3] is not None else np.zeros(nu.shape[0])
    q += -0.5 * float(np.sum(nu[gm] ** 2)) + float(np.sum(aux[gm] * nu[gm]))
    if order >= 1:
        G[n_pois:][gm] -= nu[gm] - aux[gm]
    if order >= 2:
        idx = n_pois + np.flatnonzero(gm)
        H[idx, idx] -= 1.0
    return q


class Likelihood:
    """q_{theta,nu}(D) of docs/math.md (section 4) relative to z = 0, with exact derivatives.

    Parameters
    ----------
    layout : Layout (see ``_layout``)
    n_pois, gaussian : number of POIs; bool mask (K,) of unit-Gaussian-constrained nuisances
    sim : list over processes of (coef (N_p, C_p), weight (N_p,)) in the process's
        sub-layout (see ``Layout.sub``)
    names : (poi names, nuisance names) for messages
    """

    def __init__(self, layout, n_pois, gaussian, sim, names):
        self.layout = layout
        self.n_pois = int(n_pois)
        self.gaussian = np.asarray(gaussian, dtype=bool)
        self.n_par = self.n_pois + self.gaussian.shape[0]
        self.names = names
        self.sim = []
        for p, (coef, w) in enumerate(sim):
            lay, lo, hi = layout.sub(p)
            coef = np.ascontiguousarray(coef, dtype=np.float64)
            w = np.ascontiguousarray(w, dtype=np.float64)
            if lay.syst_start[0] == lay.syst_end[0] and coef.shape[0] > 1:
                # no shape systematics: the yield is polynomial in theta, one weighted row
                W = w.sum()
                if W != 0.0:
                    coef = np.ascontiguousarray((w @ coef)[None, :] / W)
                    w = np.array([W])
            self.sim.append((lay, lo, hi, coef, w))
        self.sigma0 = sum(float(w.sum()) for (_, _, _, _, w) in self.sim)

    # ------------------------------------------------------------------ helpers
    def split(self, z):
        return z[:self.n_pois], z[self.n_pois:]

    def describe(self, z):
        return describe_point(z, self.n_pois)

    def rate_message(self, z, n_bad, first, n_events):
        if n_bad < 0:
            return overflow_message(z, self.n_pois)
        return (f"{n_bad} of {n_events} event(s) have a predicted rate <= 0 (or not finite) at "
                f"{self.describe(z)} (first at event index {first}); the model's "
                "dSigma(x|theta,nu)/dSigma(x|SM) must be positive for every event")

    def without_constraints(self):
        """A copy without constraint terms (a channel of a combination: the combination
        adds each nuisance's constraint once)."""
        out = copy.copy(self)
        out.gaussian = np.zeros_like(self.gaussian)
        return out

    # ------------------------------------------------------------------ evaluation
    def sim_yield(self, z, order=0, parallel=True, hess_sample=None):
        """sigma(theta, nu) = L(nu) sum_p alpha_p(nu) sum_{i in sim_p} w_i R_p S_p, derivatives."""
        n = self.n_par
        val, G, H = 0.0, np.zeros(n), np.zeros((n, n))
        lay_full = self.layout
        mv, JT = lay_full.columns_at(z)
        logc_all = lay_full.log_norm @ z
        for p, (lay, lo, hi, coef, w) in enumerate(self.sim):
            logc = np.array([logc_all[p]])
            v, g, h, _, _ = accumulate(coef, _EMPTY_I, w, False, order, self.n_pois, lay.blocks,
                                       logc, lay.log_norm, np.ascontiguousarray(mv[lo:hi]),
                                       np.ascontiguousarray(JT[:, lo:hi]), lay.hessian_map,
                                       parallel=parallel, hess_sample=hess_sample)
            val += v
            G += g
            H += h
        return val, G, H

    def data_term(self, z, data, order=0, parallel=True, hess_sample=None):
        coef, rows, weight = data[:3]
        lay = self.layout
        mv, JT = lay.columns_at(z)
        logc = lay.log_norm @ z
        return accumulate(coef, rows, weight, True, order, self.n_pois, lay.blocks, logc,
                          lay.log_norm, mv, JT, lay.hessian_map, parallel=parallel,
                          hess_sample=hess_sample)

    def evaluate(self, z, data, order=0, parallel=True, hess_sample=None):
        """(q, grad, hess, n_bad, first_bad); q is meaningless when n_bad > 0.

        ``hess_sample``: see ``_kernels.accumulate`` (None: the exact Hessian).
        ``data`` = (coef, rows, weight[, global observables a (K,)]): the Gaussian
        constraint of nuisance k is an auxiliary measurement a_k (default 0), so its term
        is log C(nu|a)/C(0|a) = -nu^2/2 + a nu.
        """
        z = np.ascontiguousarray(z, dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):    # overflow is reported below
            return self._evaluate(z, data, order, parallel, hess_sample)

    def _evaluate(self, z, data, order, parallel, hess_sample):
        v, G, H, n_bad, first = self.data_term(z, data, order, parallel, hess_sample)
        if n_bad:
            return np.nan, G, H, n_bad, first
        s, sG, sH = self.sim_yield(z, order, parallel, hess_sample)
        nu = z[self.n_pois:]
        gm = self.gaussian
        aux = data[3] if len(data) > 3 and data[3] is not None else np.zeros(nu.shape[0])
        q = (v - s + self.sigma0 - 0.5 * float(np.sum(nu[gm] ** 2))
             + float(np.sum(aux[gm] * nu[gm])))
        G = G - sG
        H = H - sH
        if order >= 1:
            G[self.n_pois:][gm] -= nu[gm] - aux[gm]
        if order >= 2:
            idx = self.n_pois + np.flatnonzero(gm)
            H[idx, idx] -= 1.0
        if not (np.isfinite(q) and (order < 1 or np.all(np.isfinite(G)))
                and (order < 2 or np.all(np.isfinite(H)))):
            return np.nan, G, H, -1, -1          # overflow: see rate_message
        return q, G, H, 0, -1

    def checked(self, z, data, order=0, parallel=True):
        """As ``evaluate`` but raises RateError when an event's rate is <= 0 or q overflows."""
        q, G, H, n_bad, first = self.evaluate(z, data, order, parallel)
        if n_bad:
            n_events = data[1].shape[0] if data[1].shape[0] else data[0].shape[0]
            raise RateError(self.rate_message(z, n_bad, first, n_events))
        return q, G, H

    def expected_weights(self, z, sim_coef_blocks):
        """Expected weight of every simulated event at z (process order)."""
        out = []
        mv, _ = self.layout.columns_at(z)
        logc = self.layout.log_norm @ z
        for p, (coef, w) in enumerate(sim_coef_blocks):
            lay, lo, hi = self.layout.sub(p)
            nR = int(lay.ratio_end[0])
            m = mv[lo:hi]
            R = 1.0 + coef[:, :nR] @ m[:nR]
            g = logc[p] + coef[:, nR:] @ m[nR:]
            out.append(w * R * np.exp(g))
        return out


_EMPTY_I = np.zeros(0, dtype=np.int64)
