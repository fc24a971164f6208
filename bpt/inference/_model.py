"""AdditiveModel: the unbinned additive model of docs/math.md (section 3) and its
statistics (q, fit, profile, scan, interval, toys, coverage).

    dSigma(x|theta,nu) / dSigma(x|SM) = L(nu) sum_p alpha_p(nu) R_p(x|theta) S_p(x|nu) f_p(x)

R_p = 1 + sum_A R_pA(x) m_A(theta) (a fitted BoostedInformationTree), S_p =
exp(sum_A m_A(nu) Delta_pA(x)) (fitted BoostedParametricTrees, one per group of
nuisances), alpha_p = prod_k (1 + kappa_pk)^nu_k, L = (1 + kappa_L)^nu_L, f_p the SM
process fractions of a calibrated classifier.  The pieces live in: ``_layout`` (processes,
columns, per-event coefficients), ``_dataset`` (Dataset and its cache), ``_likelihood``
(q and derivatives), ``_fit`` (optimiser, multi-start), ``_interval`` (scans, intervals),
``_toys`` (pseudo-data, coverage).
"""

from __future__ import annotations

import copy
import numbers
import warnings

import numpy as np

from .._validation import check_features, check_finite
from ._dataset import CoefficientCache, Dataset, data_key
from ._fit import (BETTER_TOL, ProfileResult, ScanResult, fit_result, global_maximum, maximize,
                   refit_from)
from ._interval import (ONE_SIGMA_CL, BetterPoint, critical_value, endpoint, other_pieces,
                        scan_task)
from ._io import read_model, save_model
from ._layout import (MAX_TOTAL_WEIGHT, Nuisance, Process, _check_name, build_layout,
                      check_fractions, coefficients)
from ._likelihood import Likelihood
from ._toys import PseudoData, n_tasks, run_tasks

__all__ = ["AdditiveModel", "Dataset", "Nuisance", "Process", "load_model"]

# Refits after finding a better point during one scan / interval / profile call.
MAX_REFITS = 5


class AdditiveModel(PseudoData):
    """The unbinned additive, refinable model and its test statistic q_{theta,nu}(D).

    Parameters
    ----------
    processes : list of Process
    pois : list of str
        Names of the parameters of interest, in theta order.
    nuisances : list of Nuisance (or str, meaning a Gaussian-constrained nuisance)
        In nu order.
    fractions : fitted classifier, optional
        ``predict_proba(X)`` gives the SM process fractions f_p(x); its ``classes_``
        must be the process names (required with more than one process).  Train it on
        the processes' SM simulation with their weights as sample weights.
    luminosity : (nuisance name, kappa), optional
        Luminosity factor L(nu) = (1 + kappa)^nu applied to every process.
    simulation_uncertainty : bool, default=False
        Add, per process p, a Gaussian-constrained nuisance ``"mc_stat_<p>"`` scaling
        that process by (1 + kappa_p)^nu with kappa_p = sqrt(sum_i w_i^2) / sum_i w_i,
        the relative statistical uncertainty of its simulated SM yield (an unbinned
        Barlow-Beeston-lite: one factor per process instead of one per bin).  The
        nuisances are appended after ``nuisances`` and the factors to each process's
        ``normalization`` (so a saved model stores them explicitly).  See
        docs/inference.md.

    Notes
    -----
    The parameter vector of every derivative is z = (theta, nu).  q(theta, nu) is
    log L(D|theta,nu) - log L(D|0,0) with the yield sigma(theta,nu) from each
    process's own simulation and unit-Gaussian constraint terms -nu_k^2/2.

    Per-event coefficients (R_A, Delta_A, f_p) of a dataset are computed once and
    cached: pass a :class:`Dataset` from :meth:`prepare`, or pass the same array
    again (the cache holds the last two arrays, recognised by identity, shape and a
    hash of a sample of rows; it does not notice in-place edits of rows outside the
    sample, so call :meth:`clear_cache` or use :meth:`prepare` after editing X in place).
    """

    def __init__(self, processes, pois, nuisances, fractions=None, luminosity=None,
                 simulation_uncertainty=False):
        processes = list(processes)
        if not processes:
            raise ValueError("give at least one Process")
        for p in processes:
            if not isinstance(p, Process):
                raise ValueError(f"processes must be Process objects, got {type(p).__name__}")
        names = [p.name for p in processes]
        if len(set(names)) != len(names):
            raise ValueError(f"process names must be unique, got {names}")
        if isinstance(pois, str):
            pois = [pois]
        pois = [_check_name(n, "POI") for n in pois]
        if not pois or len(set(pois)) != len(pois):
            raise ValueError(f"pois must be a non-empty list of unique names, got {pois}")
        nus = [Nuisance(n) if isinstance(n, str) else n for n in (nuisances or [])]
        for n in nus:
            if not isinstance(n, Nuisance):
                raise ValueError(f"nuisances must be Nuisance objects or names, got {n!r}")
        if not isinstance(simulation_uncertainty, (bool, np.bool_)):
            raise ValueError("simulation_uncertainty must be True or False, got "
                             f"{simulation_uncertainty!r}")
        self.simulation_uncertainty = bool(simulation_uncertainty)
        if simulation_uncertainty:
            processes, extra = _with_simulation_uncertainty(processes)
            nus = nus + extra
        nu_names = [n.name for n in nus]
        if len(set(nu_names)) != len(nu_names):
            raise ValueError(f"nuisance names must be unique, got {nu_names}")
        clash = set(nu_names) & set(pois)
        if clash:
            raise ValueError(f"names used both as POI and nuisance: {sorted(clash)}")
        n_features = {p.X.shape[1] for p in processes}
        if len(n_features) != 1:
            raise ValueError("all processes' simulations must have the same number of features, "
                             f"got {[p.X.shape[1] for p in processes]}")
        self.processes = processes
        self.pois = pois
        self.nuisances = nus
        self.fractions = fractions
        self.luminosity = luminosity
        self.n_features_in_ = n_features.pop()
        self._class_index = check_fractions(fractions, self.process_names)
        self._layout, self._sources = build_layout(processes, pois, nus, luminosity)
        self._cache = CoefficientCache(2)
        self._compiled = None
        self._last_fit = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_cache"] = CoefficientCache(2)    # weak references do not pickle
        state["_last_fit"] = None
        return state

    def save(self, path, allow_pickle=False):
        """Save the whole model to one file; read it back with :func:`bpt.inference.load_model`.

        Stores the POIs, nuisances, luminosity, every process (name, simulation X and
        weights, normalisations, the mapping of its models to parameter names), each
        BoostedInformationTree / BoostedParametricTree as plain arrays (no pickle) and the
        fraction classifier as a ``skops.io`` dump (extra ``bpt[skops]``).
        ``allow_pickle=True``: if skops is missing or cannot serialise the classifier,
        store it as a pickle instead (then ``load_model`` needs ``trusted=True``).
        ``path`` is a path (written atomically) or a binary file object.  See docs/saving.md.
        """
        save_model(self, path, allow_pickle=allow_pickle)

    # ------------------------------------------------------------------ structure
    @property
    def process_names(self):
        return [p.name for p in self.processes]

    @property
    def nuisance_names(self):
        return [n.name for n in self.nuisances]

    @property
    def n_pois(self):
        return len(self.pois)

    @property
    def n_nuisances(self):
        return len(self.nuisances)

    # ------------------------------------------------------------------ coefficients
    def _coefficients(self, X):
        """Per-event coefficient rows (N, C) of the layout for features X."""
        return coefficients(self._layout, self._sources, self.process_names, self.fractions,
                            self._class_index, X)

    def prepare(self, X, weight=None, global_observables=None):
        """Compute the per-event coefficients of X once; returns a :class:`Dataset`.

        ``weight`` None = observed events; an array = a weighted sample (e.g. Asimov).
        ``global_observables`` (K,): auxiliary measurements of the Gaussian-constrained
        nuisances (default 0; entries of free-floating nuisances are ignored).
        """
        aux = None
        if global_observables is not None:
            aux = np.atleast_1d(check_finite(global_observables, "global_observables"))
            if aux.shape != (self.n_nuisances,):
                raise ValueError(f"global_observables must have length {self.n_nuisances} "
                                 f"(nuisances {self.nuisance_names}), got shape {aux.shape}")
        if isinstance(X, Dataset):
            self._check_owner(X)
            if weight is None and aux is None:
                return X
            w = X.weight if weight is None else _check_weight(weight, X.n_events)
            return Dataset(self, X._coef, w, X._rows, X._X, X._source_X,
                           X.global_observables if aux is None else aux)
        comp = self._compiled
        if comp is not None and X is comp["X"]:
            w = None if weight is None else _check_weight(weight, comp["coef"].shape[0])
            return Dataset(self, comp["coef"], w, X=comp["X"], global_observables=aux)
        hit = self._cache.get(X)
        if hit is not None:
            coef, Xa = hit
        else:
            Xa = check_features(X, "X", n_features=self.n_features_in_)
            coef = self._coefficients(Xa)
            self._cache.put(X, coef, Xa)
        w = None
        if weight is not None:
            w = _check_weight(weight, coef.shape[0])
        return Dataset(self, coef, w, X=Xa, global_observables=aux)

    def clear_cache(self):
        """Forget the cached per-event coefficients of previously seen datasets."""
        self._cache.clear()

    def _check_owner(self, ds):
        if ds._owner is not self:
            raise ValueError("this Dataset was prepared for a different AdditiveModel")

    def _data(self, X, weight=None):
        """Kernel triple (coef, rows, weight) for X (array or Dataset)."""
        if isinstance(X, Dataset):
            self._check_owner(X)
            w = None if weight is None else _check_weight(weight, X.n_events)
            return X.arrays(w)
        return self.prepare(X, weight).arrays()

    # ------------------------------------------------------------------ simulation
    def _compile(self):
        """Lazily: coefficients of all simulated events, the Likelihood."""
        if self._compiled is None:
            Xall = np.ascontiguousarray(np.concatenate([p.X for p in self.processes]))
            coef = self._coefficients(Xall)
            lay = self._layout
            bounds = np.cumsum([0] + [p.X.shape[0] for p in self.processes])
            blocks = []
            for ip, p in enumerate(self.processes):
                lo, hi = bounds[ip], bounds[ip + 1]
                cols = slice(lay.ratio_start[ip], lay.syst_end[ip])
                blocks.append((np.ascontiguousarray(coef[lo:hi, cols]), p.weight))
            gaussian = np.array([n.constraint == "gaussian" for n in self.nuisances], dtype=bool)
            lik = Likelihood(lay, self.n_pois, gaussian, blocks,
                             (list(self.pois), self.nuisance_names))
            Xall.setflags(write=False)
            self._compiled = {"lik": lik, "X": Xall, "coef": coef, "blocks": blocks,
                              "bounds": bounds}
        return self._compiled

    @property
    def likelihood_(self):
        return self._compile()["lik"]

    # ------------------------------------------------------------------ parameters
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

    # ------------------------------------------------------------------ q
    def q(self, theta, nu, X, weight=None, derivatives=0):
        """The test statistic q_{theta,nu}(D) = log L(D|theta,nu) / L(D|0,0).

        Parameters
        ----------
        theta : (P,), nu : (K,) (None = zeros)
        X : (N, F) array or Dataset; weight : (N,) or None (observed events)
        derivatives : 0, 1 or 2
            0: return q; 1: (q, grad); 2: (q, grad, hessian), derivatives with
            respect to z = (theta, nu).

        Raises ValueError if an event's predicted rate is <= 0 at (theta, nu).
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
    def _fit(self, lik, data, parallel=True, starts=()):
        return fit_result(global_maximum(lik, data, parallel, starts), self.n_pois)

    def fit(self, X, weight=None, starts=None):
        """Maximum-likelihood fit of (theta, nu): the best of several starts.

        Starts: (theta, nu) = (0, 0); the first maximum moved by -2 and +2 standard
        errors along each POI in turn; and every row of ``starts`` ((M, P) POI values,
        nuisances at 0).  Later calls that find a better point (``profile``, ``scan``,
        ``interval``) refit from there and replace the remembered result.

        Returns a :class:`FitResult` with ``theta``, ``nu``, ``q`` (and the Hessian and its
        inverse, the Gaussian covariance).  The result is remembered for the dataset, so a
        following ``scan`` / ``interval`` of the same data does not refit.
        """
        data = self._data(X, weight)
        lik = self.likelihood_
        extra = ()
        if starts is not None:
            th = check_finite(starts, "starts", ndim=(1, 2))
            th = th.reshape(-1, self.n_pois) if th.ndim == 1 else th
            if th.shape[1] != self.n_pois:
                raise ValueError(f"starts must have shape (M, {self.n_pois}), got {th.shape}")
            extra = [np.concatenate([t, np.zeros(self.n_nuisances)]) for t in th]
        fit = self._fit(lik, data, starts=extra)
        self._last_fit = (data_key(data), data[0], fit)      # holding coef keeps its id valid
        return fit

    def _fit_cached(self, lik, data):
        """The MLE of ``data``, reusing the last one if the data are the same."""
        last = self._last_fit
        if last is not None and last[0] == data_key(data):
            return last[2]
        fit = self._fit(lik, data)
        self._last_fit = (data_key(data), data[0], fit)
        return fit

    def _improve(self, lik, data, fit, z_better, q_better):
        """Refit from a point that beats ``fit`` and remember the result."""
        found = refit_from(lik, data, z_better, q_better, fit)
        new = fit_result(found, self.n_pois)
        if not new.success:
            warnings.warn(new.message, RuntimeWarning, stacklevel=3)
        self._last_fit = (data_key(data), data[0], new)
        return new

    def profile(self, theta, X, weight=None, nu_start=None):
        """Maximise q over nu at fixed theta: a :class:`ProfileResult` with ``nu`` and ``q``.

        The start point is ``nu_start`` (default 0).  A profile above the remembered
        MLE of the same data replaces that MLE by a refit from the profiled point.
        """
        z0 = self._point(theta, nu_start)
        data = self._data(X, weight)
        lik = self.likelihood_
        free = np.zeros(lik.n_par, dtype=bool)
        free[self.n_pois:] = True
        found = maximize(lik, data, z0, free)
        last = self._last_fit
        if last is not None and last[0] == data_key(data) and found.q > last[2].q + BETTER_TOL:
            self._improve(lik, data, last[2], found.z, found.q)
        P = self.n_pois
        return ProfileResult(found.z[:P].copy(), found.z[P:].copy(), found.q, found.success,
                             found.message, found.n_evaluations)

    def _fixed_pois(self, poi):
        if poi is None:
            return np.arange(self.n_pois)
        scalar = isinstance(poi, (str, numbers.Integral, np.bool_)) or np.ndim(poi) == 0
        pl = [poi] if scalar else list(poi)
        return np.array(sorted({self._poi_index(p) for p in pl}), dtype=np.int64)

    def scan(self, thetas, X, weight=None, n_jobs=None, poi=None, return_result=False):
        """Profiled scan t(theta) = -2 [max_nu q(theta, nu) - max_{theta,nu} q].

        Parameters
        ----------
        thetas : (M,) for one scanned POI, or (M, n_scanned) e.g. a flattened 2-POI grid
            (for contours: t < 2.30 / 5.99 for 68.27% / 95% CL with two POIs).
        X, weight : data (array or Dataset) and optional event weights.
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

        A scanned point above the MLE proves the MLE a local maximum: the MLE is refitted
        from the best scanned point and the scan repeated from the new MLE.
        """
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
        fit = self._fit_cached(lik, data)
        chunks = np.array_split(np.arange(vals.shape[0]), n_tasks(n_jobs, vals.shape[0]))
        for _ in range(MAX_REFITS):
            z_hat = np.concatenate([fit.theta, fit.nu])
            parts = run_tasks(_scan_chunk, [vals[c] for c in chunks], n_jobs, lik, data, fixed,
                              z_hat, fit.hessian)
            qs = np.concatenate([p[0] for p in parts])
            zs = np.concatenate([p[1] for p in parts])
            ok = np.concatenate([p[2] for p in parts])
            if not qs.max() > fit.q + BETTER_TOL:
                break
            k = int(np.argmax(qs))
            fit = self._improve(lik, data, fit, zs[k], qs[k])
        else:
            warnings.warn(f"the maximum kept improving during the scan ({MAX_REFITS} refits)",
                          RuntimeWarning, stacklevel=2)
        t = -2.0 * (qs - fit.q)
        if not return_result:
            return t
        P = self.n_pois
        return ScanResult(vals, t, qs, fit.q, zs[:, :P], zs[:, P:], ok, fit)

    def interval(self, X, weight=None, cl=ONE_SIGMA_CL, poi=0):
        """(low, high) Wilks interval of one POI: where t(theta_poi) <= chi2.ppf(cl, 1).

        The default ``cl`` is one sigma, 0.6827 = chi2.cdf(1, 1), i.e. t <= 1 (as MINOS);
        ``cl=0.68`` gives t <= 0.989, ``cl=0.95`` t <= 3.84.  Solves t = threshold on both
        sides of the MLE, profiling the nuisances and the other POIs, with a safeguarded
        Newton iteration (dt/dtheta is exact: -2 dq/dtheta at the profiled point).  An
        endpoint that is not reached within 1000 standard errors is returned as -inf /
        +inf with a warning.

        A profiled point above the MLE makes the MLE a local maximum: the fit is redone
        from there and the interval solved again around the new maximum.  Beyond each
        endpoint the profile is checked at 1.5, 2, 3 and 5 times its distance from the
        MLE; if t dips below the threshold again (a non-convex profile) the interval
        around the MLE is returned and a RuntimeWarning lists every piece of the region.
        Inside, the profile is checked at 1/4, 1/2 and 3/4 of the way to each endpoint (a
        better maximum there triggers the refit; t above the threshold a warning).
        """
        crit = critical_value(cl, 1)
        j = self._poi_index(poi)
        data = self._data(X, weight)
        lik = self.likelihood_
        fit = self._fit_cached(lik, data)
        for attempt in range(MAX_REFITS + 1):
            z_hat = np.concatenate([fit.theta, fit.nu])
            var = fit.covariance[j, j]
            sigma = float(np.sqrt(var)) if np.isfinite(var) and var > 0 else 1.0
            try:
                low, high = (endpoint(lik, data, j, z_hat, fit.hessian, fit.q, crit, sigma, side)
                             for side in (-1.0, 1.0))
                pieces = other_pieces(lik, data, j, z_hat, fit.hessian, fit.q, crit, sigma,
                                      low, high)
            except BetterPoint as better:
                if attempt == MAX_REFITS:
                    raise RuntimeError(f"the maximum kept improving while solving the interval "
                                       f"of {self.pois[j]} ({MAX_REFITS} refits, last q = "
                                       f"{fit.q:.10g}); the likelihood may be unbounded") from None
                fit = self._improve(lik, data, fit, better.z, better.q)
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

    # ------------------------------------------------------------------ Minuit, impacts, GoF
    # Thin wrappers over ``_minuit``, ``_impacts`` and ``_gof`` (which work on the
    # Likelihood and the data tuple only).
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

    def impacts(self, X, weight=None, poi=0, n_jobs=None, verbose=0):
        """Impacts of every nuisance on one POI: an :class:`ImpactsResult`, ranked.

        For each nuisance, the shift of the POI's best fit when the nuisance is fixed at
        nu^ +- its post-fit error (``impact_up`` / ``impact_down``) and at nu^ +- 1, its
        pre-fit width (``prefit_up`` / ``prefit_down``; NaN for free-floating nuisances),
        all other parameters refitted.  Ranked by max(|impact_up|, |impact_down|).  The
        refits run through joblib like :meth:`scan` (``n_jobs``); ``verbose`` > 0 logs
        progress to the "bpt" logger.  Uses the remembered fit of the data (or fits).
        See docs/inference.md (*Impacts*) and ``bpt.plotting.plot_impacts``.
        """
        from ._impacts import compute_impacts
        from ._tools_progress import check_verbose
        verbose = check_verbose(verbose)
        j = self._poi_index(poi)
        data = self._data(X, weight)
        lik = self.likelihood_
        fit = self._fit_cached(lik, data)
        return compute_impacts(lik, data, fit, j, n_jobs, verbose)

    def goodness_of_fit(self, X, weight=None, n_bins=10, n_toys=100, quantity="ratio",
                        random_state=None, n_jobs=None, verbose=0):
        """Pearson chi2 of the fit in quantile bins of a per-event quantity, toy p-value.

        The data are binned in ``n_bins`` quantile bins (equal expected counts at the
        best fit) of ``quantity``: ``"ratio"`` (default) the fitted per-event ratio
        dSigma(x|theta^,nu^)/dSigma(x|SM), a feature index, or a callable X -> (N,);
        X2 = sum_b (O_b - E_b)^2 / E_b.  ``n_toys`` toys drawn at the best fit (global
        observables around nu^), each refitted and binned at its own fit, give the
        p-value = fraction of toys with X2 >= the observed (``n_toys=0``: none, NaN);
        ``p_value_asymptotic`` = chi2.sf(X2, n_bins - free parameters) is for reference
        only.  Returns a :class:`GoodnessOfFitResult`.  Toys run through joblib
        (``n_jobs``); the result depends only on ``random_state``.  See docs/math.md
        (section 4) and docs/inference.md (*Goodness of fit*).
        """
        from ._gof import check_n_bins, resolve_quantity, unbinned_gof
        from ._toys import seed_sequences
        from ._tools_progress import check_verbose
        verbose = check_verbose(verbose)
        n_bins = check_n_bins(n_bins)
        if (isinstance(n_toys, bool) or not isinstance(n_toys, numbers.Integral)
                or n_toys < 0):
            raise ValueError(f"n_toys must be a non-negative integer, got {n_toys!r}")
        data = self._data(X, weight)
        comp = self._compile()
        lik = comp["lik"]
        u_data, u_sim = resolve_quantity(quantity, self, X, comp["X"])
        seeds = seed_sequences(random_state, int(n_toys)) if n_toys else ()
        fit = self._fit_cached(lik, data)
        return unbinned_gof(lik, data, fit, comp["coef"], comp["blocks"], u_data, u_sim,
                            n_bins, seeds, n_jobs, verbose)


def load_model(source, trusted=False):
    """Load an :class:`AdditiveModel` saved with ``model.save(path)``.

    Parameters
    ----------
    source : path or binary file object
    trusted : False, True or list of str
        Which types of the fraction classifier may be built.  False (default): only
        types that ``skops.io`` trusts by default (e.g. LogisticRegression); a file
        whose classifier contains other types is refused with a ValueError naming them.
        A list of fully qualified type names (or types): trust those in addition.
        True: trust everything in the file, including a classifier stored as a pickle
        (``save(path, allow_pickle=True)``), which runs code from the file: only for
        files you trust.

    Raises
    ------
    ValueError
        A damaged, modified, foreign or unsupported file; a model that does not fit
        together; a classifier with untrusted types (or stored as a pickle) without the
        matching ``trusted``.
    ImportError
        The classifier is stored with skops.io, which is not installed
        (``pip install bpt[skops]``).
    """
    parts = read_model(source, trusted)
    try:
        return AdditiveModel(**parts)
    except ValueError as exc:
        raise ValueError(f"invalid inference model in file: {exc}") from None


def _with_simulation_uncertainty(processes):
    """Copies of the processes with their yield's simulation uncertainty as a log-normal
    normalisation factor, and the new nuisances."""
    out, extra = [], []
    for p in processes:
        w = p.weight
        kappa = float(np.sqrt(np.sum(w * w)) / np.sum(w))
        name = f"mc_stat_{p.name}"
        q = copy.copy(p)
        q.normalization = {**p.normalization, name: kappa}
        out.append(q)
        extra.append(Nuisance(name))
    return out, extra


def _check_weight(weight, n_events):
    w = check_finite(weight, "weight", ndim=1, length=n_events)
    total = float(np.sum(np.abs(w)))
    if not total <= MAX_TOTAL_WEIGHT:
        raise ValueError(f"weight: the sum of |weight| is {total:.6g} (largest |weight| "
                         f"{np.max(np.abs(w)):.6g}), beyond {MAX_TOTAL_WEIGHT:g}; weights of "
                         "this magnitude overflow the likelihood")
    return w


def _scan_chunk(lik, data, fixed, z_hat, H_hat, values, parallel):
    return scan_task(lik, data, fixed, values, z_hat, parallel, H_hat)
