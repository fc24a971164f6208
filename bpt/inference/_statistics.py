"""The statistics shared by every model (one code path): q, fit, profile, scan, interval,
with fixed parameters and bounds.

A model class (:class:`~bpt.inference.AdditiveModel`, :class:`~bpt.inference.BinnedChannel`,
:class:`~bpt.inference.Combination`) derives from :class:`Statistics` and provides

* ``likelihood_``: an object with ``evaluate(z, data, order, parallel, hess_sample)``,
  ``checked``, ``n_par``, ``n_pois``, ``gaussian``, ``names``, ``describe``,
  ``rate_message`` (see ``_likelihood``);
* ``_data(X, weight)``: the likelihood's data tuple of the user's data, whose item 3 is
  the global observables (or None);
* ``_data_key(data)``: a hashable identity of a data tuple;
* ``pois``, ``nuisance_names``, ``n_pois``, ``n_nuisances``.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np

from .._validation import check_finite
from ._fit import (BETTER_TOL, Controls, ProfileResult, ScanResult, fit_result, global_maximum,
                   maximize_controlled, refit_from)
from ._interval import (ONE_SIGMA_CL, BetterPoint, critical_value, endpoint, other_pieces,
                        scan_task)
from ._progress import check_verbose, progress
from ._toys import ToyStatistics, n_tasks, run_tasks

__all__ = ["Statistics", "MAX_REFITS"]

# Refits after finding a better point during one scan / interval / profile call.
MAX_REFITS = 5


class Statistics(ToyStatistics):
    """q, fit, profile, scan, interval (and, from ToyStatistics, toys and coverage) of a
    model (see the module docstring)."""

    _last_fit = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_last_fit"] = None    # the last fit is a cache, not part of the model
        return state

    # ------------------------------------------------------------------ parameters
    @property
    def nuisance_names(self):
        return [n.name for n in self.nuisances]

    @property
    def n_pois(self):
        return len(self.pois)

    @property
    def n_nuisances(self):
        return len(self.nuisance_names)

    @property
    def parameter_names(self):
        """All parameter names in z = (theta, nu) order."""
        return list(self.pois) + list(self.nuisance_names)

    def _global_observables(self, global_observables):
        """The validated (K,) global observables a (not None)."""
        aux = np.atleast_1d(check_finite(global_observables, "global_observables"))
        if aux.shape != (self.n_nuisances,):
            raise ValueError(f"global_observables must have length {self.n_nuisances} "
                             f"(nuisances {self.nuisance_names}), got shape {aux.shape}")
        return aux

    def _point(self, theta, nu):
        P, K = self.n_pois, self.n_nuisances
        th = np.atleast_1d(check_finite(theta, "theta"))
        if th.ndim != 1 or th.shape[0] != P:
            raise ValueError(f"theta must have length {P} (POIs {self.pois}), got shape "
                             f"{np.shape(theta)}")
        if nu is None:
            nu = np.zeros(K)
        nu_ = np.atleast_1d(check_finite(nu, "nu")) if K or np.size(nu) else np.zeros(0)
        if nu_.ndim != 1 or nu_.shape[0] != K:
            raise ValueError(f"nu must have length {K} (nuisances {self.nuisance_names}), got "
                             f"shape {np.shape(nu)}")
        return np.concatenate([th, nu_])

    def _poi_index(self, poi):
        if isinstance(poi, str):
            if poi not in self.pois:
                raise ValueError(f"unknown POI {poi!r}; POIs are {self.pois}")
            return self.pois.index(poi)
        if (isinstance(poi, (bool, np.bool_)) or not isinstance(poi, numbers.Integral)
                or not 0 <= poi < self.n_pois):
            raise ValueError(f"poi must be a POI name or an index in 0..{self.n_pois - 1}, "
                             f"got {poi!r}")
        return int(poi)

    def _fixed_pois(self, poi):
        if poi is None:
            return np.arange(self.n_pois)
        scalar = isinstance(poi, (str, numbers.Integral, np.bool_)) or np.ndim(poi) == 0
        pl = [poi] if scalar else list(poi)
        return np.array(sorted({self._poi_index(p) for p in pl}), dtype=np.int64)

    def _controls(self, fix, bounds, held=(), held_what="scanned"):
        """:class:`Controls` of ``fix`` / ``bounds`` (None when both are empty).

        ``held``: indices the call itself fixes (scanned POIs): they cannot be in ``fix``.
        """
        names = self.parameter_names
        n = len(names)
        fixed = np.full(n, np.nan)
        lower = np.full(n, -np.inf)
        upper = np.full(n, np.inf)
        key_fix, key_bounds = [], []
        for arg, what in ((fix, "fix"), (bounds, "bounds")):
            if arg is not None and not isinstance(arg, dict):
                raise ValueError(f"{what} must be a dict {{parameter name: ...}}, got "
                                 f"{type(arg).__name__}")
        for name, value in (fix or {}).items():
            j = self._param_index(name, "fix")
            if j in held:
                raise ValueError(f"fix: parameter {name!r} is {held_what} by this call; do not "
                                 "fix it too")
            if (isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real)
                    or not np.isfinite(value)):
                raise ValueError(f"fix: the value of {name!r} must be a finite number, got "
                                 f"{value!r}")
            fixed[j] = float(value)
            key_fix.append((name, float(value)))
        for name, b in (bounds or {}).items():
            j = self._param_index(name, "bounds")
            if not (isinstance(b, (tuple, list)) and len(b) == 2):
                raise ValueError(f"bounds: {name!r} must be (low, high) with None for no "
                                 f"bound, got {b!r}")
            lo_hi = []
            for v, inf in zip(b, (-np.inf, np.inf)):
                if v is None:
                    lo_hi.append(inf)
                elif (isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real)
                      or np.isnan(v)):
                    raise ValueError(f"bounds: {name!r} must be (low, high) numbers or None, "
                                     f"got {b!r}")
                else:
                    lo_hi.append(float(v))
            lo, hi = lo_hi
            if not lo < hi:
                raise ValueError(f"bounds: {name!r} needs low < high, got {b!r} (use fix= to "
                                 "hold a parameter at a value)")
            lower[j], upper[j] = lo, hi
            key_bounds.append((name, lo, hi))
        for j in np.flatnonzero(np.isfinite(fixed)):
            if not lower[j] <= fixed[j] <= upper[j]:
                raise ValueError(f"fix: {names[j]} = {fixed[j]:g} is outside its bounds "
                                 f"({lower[j]:g}, {upper[j]:g})")
        if not key_fix and not key_bounds:
            return None
        return Controls(n, fixed, lower, upper, (tuple(sorted(key_fix)), tuple(sorted(key_bounds))))

    def _param_index(self, name, what):
        names = self.parameter_names
        if not isinstance(name, str) or name not in names:
            raise ValueError(f"{what}: unknown parameter {name!r}; parameters are {names}")
        return names.index(name)

    def _check_inside(self, values, j, controls, what):
        """ValueError naming parameter j when one of ``values`` is outside its bounds."""
        if controls is None:
            return
        vals = np.atleast_1d(np.asarray(values, dtype=np.float64))
        bad = (vals < controls.lower[j]) | (vals > controls.upper[j])
        if bad.any():
            raise ValueError(f"{what}: {self.parameter_names[j]} = {vals[bad][0]:g} is outside "
                             f"its bounds ({controls.lower[j]:g}, {controls.upper[j]:g})")

    # ------------------------------------------------------------------ q
    def q(self, theta, nu, X, weight=None, derivatives=0):
        """The test statistic q_{theta,nu}(D) = log L(D|theta,nu) / L(D|0,0).

        Parameters
        ----------
        theta : (P,), nu : (K,) (None = zeros)
        X : the data (see the model class); weight : optional event weights
        derivatives : 0, 1 or 2
            0: return q; 1: (q, grad); 2: (q, grad, hessian), derivatives with
            respect to z = (theta, nu).

        Raises ValueError if a predicted rate is <= 0 at (theta, nu).
        """
        if derivatives not in (0, 1, 2):
            raise ValueError(f"derivatives must be 0, 1 or 2, got {derivatives!r}")
        z = self._point(theta, nu)
        data = self._data(X, weight)
        lik = self.likelihood_
        q, G, H = lik.checked(z, data, derivatives)
        if derivatives == 0:
            return q
        if derivatives == 1:
            return q, G
        return q, G, H

    # ------------------------------------------------------------------ fits
    def _key(self, data, controls):
        key = self._data_key(data)
        return key if controls is None else (key, controls.key)

    def _remember(self, data, controls, fit):
        self._last_fit = (self._key(data, controls), data[0], fit)   # holding data[0] keeps ids

    def _fit(self, lik, data, parallel=True, starts=(), controls=None):
        found = global_maximum(lik, data, parallel, starts, controls=controls)
        return fit_result(found, self.n_pois, lik=lik, controls=controls,
                          global_observables=_aux(data, self.n_nuisances))

    def fit(self, X, weight=None, starts=None, fix=None, bounds=None):
        """Maximum-likelihood fit of (theta, nu): the best of several starts.

        Starts: (theta, nu) = (0, 0); the first maximum moved by -2 and +2 standard
        errors along each POI in turn; and every row of ``starts``: (M, P) POI values
        (nuisances at 0) or (M, P + K) full points (theta, nu).  Later calls that find a
        better point (``profile``, ``scan``, ``interval``) refit from there and replace
        the remembered result.

        Limitation: the automatic starts move only the POIs, so a second maximum that
        is reached by moving a nuisance (e.g. a nuisance with a two-valued effect) can
        be missed.  Starts that also move each nuisance by +-2 post-fit errors would
        cost 2 K more fits (measured: a fit of 1 POI + 2 nuisances takes 2.2-2.6 times
        longer; with 20 nuisances about 9 times), so they are not automatic: give such
        points as full rows of ``starts``, or check with ``scan`` / ``impacts`` (a refit
        above the fit warns).

        ``fix``: {parameter name: value} held fixed; ``bounds``: {parameter name: (low,
        high)} (None = no bound on that side), e.g. ``bounds={"mu_b": (0, None)}``.  The
        automatic starts are clipped into the bounds; a row of ``starts`` outside them
        is a ValueError.

        Returns a :class:`FitResult` with ``theta``, ``nu``, ``q``, the Hessian and its
        inverse (the Gaussian covariance of the floating parameters), named access
        (``fit["jes"]``, ``fit.error("jes")``), ``correlation``, ``pulls`` and
        ``constraints``.  The result is remembered for the dataset (and the same
        ``fix`` / ``bounds``), so a following ``scan`` / ``interval`` does not refit.
        """
        data = self._data(X, weight)
        lik = self.likelihood_
        controls = self._controls(fix, bounds)
        extra = ()
        if starts is not None:
            P, K = self.n_pois, self.n_nuisances
            th = check_finite(starts, "starts", ndim=(1, 2))
            th = th.reshape(-1, P) if th.ndim == 1 else th
            if th.shape[1] not in (P, P + K):
                raise ValueError(f"starts must have shape (M, {P}) (POIs) or (M, {P + K}) "
                                 f"(POIs and nuisances), got {th.shape}")
            if th.shape[1] == P:
                th = np.concatenate([th, np.zeros((th.shape[0], K))], axis=1)
            extra = list(th)
            for a in range(P + K):
                self._check_inside(th[:, a], a, controls, "starts")
        fit = self._fit(lik, data, starts=extra, controls=controls)
        self._remember(data, controls, fit)
        return fit

    def _fit_cached(self, lik, data, controls=None):
        """The MLE of ``data``, reusing the last one if the data are the same."""
        last = self._last_fit
        if last is not None and last[0] == self._key(data, controls):
            return last[2]
        fit = self._fit(lik, data, controls=controls)
        self._remember(data, controls, fit)
        return fit

    def _improve(self, lik, data, fit, z_better, q_better, controls=None):
        """Refit from a point that beats ``fit`` and remember the result."""
        found = refit_from(lik, data, z_better, q_better, fit, controls=controls)
        new = fit_result(found, self.n_pois, lik=lik, controls=controls,
                         global_observables=_aux(data, self.n_nuisances))
        if not new.success:
            warnings.warn(new.message, RuntimeWarning, stacklevel=3)
        self._remember(data, controls, new)
        return new

    def profile(self, theta, X, weight=None, nu_start=None, fix=None, bounds=None):
        """Maximise q over nu at fixed theta: a :class:`ProfileResult` with ``nu`` and ``q``.

        The start point is ``nu_start`` (default 0, clipped into ``bounds``).  ``fix`` /
        ``bounds`` as in :meth:`fit` (POIs are fixed at ``theta`` already: a POI in
        ``fix`` is a ValueError, and ``theta`` must lie within its bounds).  A profile
        above the remembered MLE of the same data (and controls) replaces that MLE by a
        refit from the profiled point.
        """
        z0 = self._point(theta, nu_start)
        data = self._data(X, weight)
        lik = self.likelihood_
        P = self.n_pois
        controls = self._controls(fix, bounds, held=set(range(P)), held_what="fixed at theta")
        for j in range(lik.n_par):
            if j < P or nu_start is not None:
                self._check_inside(z0[j], j, controls, "theta" if j < P else "nu_start")
        free = np.zeros(lik.n_par, dtype=bool)
        free[P:] = True
        found = maximize_controlled(lik, data, z0, free, controls)
        last = self._last_fit
        if (last is not None and last[0] == self._key(data, controls)
                and found.q > last[2].q + BETTER_TOL):
            self._improve(lik, data, last[2], found.z, found.q, controls)
        return ProfileResult(found.z[:P].copy(), found.z[P:].copy(), found.q, found.success,
                             found.message, found.n_evaluations)

    def scan(self, thetas, X, weight=None, n_jobs=None, poi=None, return_result=False,
             fix=None, bounds=None, verbose=0):
        """Profiled scan t(theta) = -2 [max_nu q(theta, nu) - max_{theta,nu} q].

        Parameters
        ----------
        thetas : (M,) for one scanned POI, or (M, n_scanned) e.g. a flattened 2-POI grid
            (for contours: t < 2.30 / 5.99 for 68.27% / 95% CL with two POIs).
        X, weight : data and optional event weights.
        n_jobs : int, optional
            The points are split into this many contiguous chunks run through joblib (so
            ``with joblib.parallel_config(backend="dask"):`` runs them on a dask
            cluster); each chunk warm-starts every point from the previous one.  None:
            joblib's current setting (1 = in-process, numba-parallel).  The chunking,
            and so the result, depends only on ``n_jobs`` when it is given, not on the backend.
        poi : int, str or list, optional
            Which POIs are scanned (default all); the others are profiled too.
        return_result : bool
            Return a :class:`ScanResult` instead of the t array.
        fix, bounds : as in :meth:`fit` (applied to the MLE and every profiled point;
            the scanned POIs cannot be fixed and their values must lie in their bounds).
        verbose : int
            Progress (see docs/inference.md): 1 = logging, 2 = a tqdm bar too.

        A scanned point above the MLE proves the MLE a local maximum: the MLE is refitted
        from the best scanned point and the scan repeated from the new MLE.
        """
        verbose = check_verbose(verbose)
        data = self._data(X, weight)
        lik = self.likelihood_
        fixed = self._fixed_pois(poi)
        vals = check_finite(thetas, "thetas", ndim=(1, 2))
        if vals.ndim == 1:
            if fixed.shape[0] != 1:
                raise ValueError(f"thetas must have shape (M, {fixed.shape[0]}) to scan "
                                 f"{[self.pois[i] for i in fixed]}, got {vals.shape}")
            vals = vals[:, None]
        if vals.shape[1] != fixed.shape[0] or vals.shape[0] == 0:
            raise ValueError(f"thetas must have shape (M, {fixed.shape[0]}) with M >= 1 to scan "
                             f"{[self.pois[i] for i in fixed]}, got {vals.shape}")
        controls = self._controls(fix, bounds, held=set(fixed.tolist()))
        for c, j in enumerate(fixed):
            self._check_inside(vals[:, c], j, controls, "thetas")
        fit = self._fit_cached(lik, data, controls)
        chunks = np.array_split(np.arange(vals.shape[0]), n_tasks(n_jobs, vals.shape[0]))
        for _ in range(MAX_REFITS):
            z_hat = np.concatenate([fit.theta, fit.nu])
            with progress(vals.shape[0], "scan", verbose) as bar:
                parts = run_tasks(_scan_chunk, [vals[c] for c in chunks], n_jobs, lik, data,
                                  fixed, z_hat, fit.hessian, controls, bar=bar)
            qs = np.concatenate([p[0] for p in parts])
            zs = np.concatenate([p[1] for p in parts])
            ok = np.concatenate([p[2] for p in parts])
            if not qs.max() > fit.q + BETTER_TOL:
                break
            k = int(np.argmax(qs))
            fit = self._improve(lik, data, fit, zs[k], qs[k], controls)
        else:
            warnings.warn(f"the maximum kept improving during the scan ({MAX_REFITS} refits)",
                          RuntimeWarning, stacklevel=2)
        t = -2.0 * (qs - fit.q)
        if not return_result:
            return t
        P = self.n_pois
        return ScanResult(vals, t, qs, fit.q, zs[:, :P], zs[:, P:], ok, fit)

    def interval(self, X, weight=None, cl=ONE_SIGMA_CL, poi=0, fix=None, bounds=None,
                 verbose=0):
        """(low, high) Wilks interval of one POI: where t(theta_poi) <= chi2.ppf(cl, 1).

        The default ``cl`` is one sigma, 0.6827 = chi2.cdf(1, 1), i.e. t <= 1 (as MINOS);
        ``cl=0.68`` gives t <= 0.989, ``cl=0.95`` t <= 3.84.  Solves t = threshold on both
        sides of the MLE, profiling the nuisances and the other POIs, with a safeguarded
        Newton iteration (dt/dtheta is exact: -2 dq/dtheta at the profiled point).  An
        endpoint that is not reached within 1000 standard errors is returned as -inf /
        +inf with a warning.  ``fix`` / ``bounds`` as in :meth:`fit`; a bound of the POI
        itself that is reached with t below the threshold is returned as the endpoint.
        ``verbose``: progress (one step per profiled point).

        A profiled point above the MLE makes the MLE a local maximum: the fit is redone
        from there and the interval solved again around the new maximum.  Beyond each
        endpoint the profile is checked at 1.5, 2, 3 and 5 times its distance from the
        MLE; if t dips below the threshold again (a non-convex profile) the interval
        around the MLE is returned and a RuntimeWarning lists every piece of the region.
        Inside, the profile is checked at 1/4, 1/2 and 3/4 of the way to each endpoint (a
        better maximum there triggers the refit; t above the threshold a warning).
        """
        verbose = check_verbose(verbose)
        crit = critical_value(cl, 1)
        j = self._poi_index(poi)
        data = self._data(X, weight)
        lik = self.likelihood_
        controls = self._controls(fix, bounds, held={j}, held_what="the interval's POI")
        fit = self._fit_cached(lik, data, controls)
        with progress(None, f"interval of {self.pois[j]}", verbose) as bar:
            for attempt in range(MAX_REFITS + 1):
                z_hat = np.concatenate([fit.theta, fit.nu])
                var = fit.covariance[j, j]
                sigma = float(np.sqrt(var)) if np.isfinite(var) and var > 0 else 1.0
                try:
                    low, high = (endpoint(lik, data, j, z_hat, fit.hessian, fit.q, crit, sigma,
                                          side, controls=controls, report=bar.update)
                                 for side in (-1.0, 1.0))
                    pieces = other_pieces(lik, data, j, z_hat, fit.hessian, fit.q, crit, sigma,
                                          low, high, controls=controls, report=bar.update)
                except BetterPoint as better:
                    if attempt == MAX_REFITS:
                        raise RuntimeError(f"the maximum kept improving while solving the "
                                           f"interval of {self.pois[j]} ({MAX_REFITS} refits, "
                                           f"last q = {fit.q:.10g}); the likelihood may be "
                                           "unbounded") from None
                    fit = self._improve(lik, data, fit, better.z, better.q, controls)
                    continue
                break
        gaps = [a for a, b in pieces if a == b]
        pieces = [p for p in pieces if p[0] != p[1]]
        if gaps:
            warnings.warn(f"the profile of {self.pois[j]} is not convex: t > {crit:.4g} inside "
                          f"the interval ({low:.6g}, {high:.6g}) at {[round(g, 6) for g in gaps]}",
                          RuntimeWarning, stacklevel=2)
        if pieces:
            allp = sorted([(low, high)] + pieces)
            warnings.warn(f"the profile of {self.pois[j]} is not convex: t <= {crit:.4g} on "
                          f"the union of {[(round(a, 6), round(b, 6)) for a, b in allp]}; "
                          f"returning the piece around the MLE ({low:.6g}, {high:.6g})",
                          RuntimeWarning, stacklevel=2)
        return (low, high)

    # ------------------------------------------------------------------ Minuit, impacts
    # Thin wrappers over ``_minuit`` and ``_impacts`` (which work on the likelihood and the
    # data tuple only), so every model class has them.
    def minuit(self, X, weight=None, theta=None, nu=None):
        """An ``iminuit.Minuit`` minimising -q(theta, nu) on this data (extra ``bpt[minuit]``).

        Parameters are named by the POIs and nuisances (z order), ``errordef = 0.5``
        (-q is a negative log-likelihood ratio: HESSE / MINOS give one-sigma errors, MINOS
        equals :meth:`interval`), the gradient and Hessian are exact, ``tol = 1e-6``; start
        values ``theta`` / ``nu`` (default 0).  Fix or bound parameters with Minuit's own
        ``fixed`` / ``limits``.  A point where an event's rate is <= 0 returns NaN.
        Raises ImportError naming the extra when iminuit is not installed.  See
        docs/inference.md (*Minuit*).
        """
        from ._minuit import import_iminuit, make_minuit
        import_iminuit()
        start = self._point(np.zeros(self.n_pois) if theta is None else theta, nu)
        return make_minuit(self.likelihood_, self._data(X, weight), start)

    def impacts(self, X, weight=None, poi=0, n_jobs=None, fix=None, bounds=None, verbose=0):
        """Impacts of every nuisance on one POI: an :class:`ImpactsResult`, ranked.

        For each nuisance, the shift of the POI's best fit when the nuisance is fixed at
        nu^ +- its post-fit error (``impact_up`` / ``impact_down``) and at nu^ +- 1, its
        pre-fit width (``prefit_up`` / ``prefit_down``; NaN for free-floating nuisances),
        all other parameters refitted.  Ranked by max(|impact_up|, |impact_down|).  The
        refits run through joblib like :meth:`scan` (``n_jobs``); ``verbose``: progress
        as in :meth:`scan`.  Uses the remembered fit of the data (or fits).

        ``fix`` / ``bounds`` as in :meth:`fit`: the global fit and every refit use them.
        A nuisance in ``fix`` has no row in the result (it has no impact); the values a
        bounded nuisance is fixed at are clipped into its bounds, and a nuisance that
        sits at its bound has post-fit error 0 (so zero post-fit impacts).  The POI
        itself cannot be fixed (ValueError).
        See docs/inference.md (*Impacts*) and ``bpt.plotting.plot_impacts``.
        """
        from ._impacts import compute_impacts
        verbose = check_verbose(verbose)
        j = self._poi_index(poi)
        data = self._data(X, weight)
        lik = self.likelihood_
        controls = self._controls(fix, bounds)
        fit = self._fit_cached(lik, data, controls)
        return compute_impacts(lik, data, fit, j, n_jobs, verbose, controls)


def _aux(data, n_nuisances):
    aux = data[3] if len(data) > 3 else None
    return np.zeros(n_nuisances) if aux is None else aux


def _scan_chunk(lik, data, fixed, z_hat, H_hat, controls, values, parallel, report=None):
    return scan_task(lik, data, fixed, values, z_hat, parallel, H_hat, controls=controls,
                     report=report)
