"""Nuisance, Process, AdditiveModel and Dataset: the unbinned additive model of MATH.md section 3.

    dSigma(x|theta,nu) / dSigma(x|SM) = L(nu) sum_p alpha_p(nu) R_p(x|theta) S_p(x|nu) f_p(x)

R_p = 1 + sum_A R_pA(x) m_A(theta) (a fitted BoostedInformationTree), S_p =
exp(sum_A m_A(nu) Delta_pA(x)) (fitted BoostedParametricTrees, one per group of
nuisances), alpha_p = prod_k (1 + kappa_pk)^nu_k, L = (1 + kappa_L)^nu_L, f_p the SM
process fractions of a calibrated classifier.
"""

from __future__ import annotations

import hashlib
import numbers
import warnings
import weakref
from collections import OrderedDict

import numpy as np

from scipy import stats

from .._validation import check_features, check_finite
from ._fit import Q_TOL, FitResult, ProfileResult, ScanResult, maximize, scan_task
from ._likelihood import Layout, Likelihood, RateError
from ._toys import (CoverageResult, check_expected, coverage_task, n_tasks, run_tasks,
                    seed_sequences, toys_task)

__all__ = ["Nuisance", "Process", "AdditiveModel", "Dataset"]

_CONSTRAINTS = ("gaussian", None)


def _check_name(name, what):
    if not isinstance(name, str) or not name:
        raise ValueError(f"{what} name must be a non-empty string, got {name!r}")
    return name


class Nuisance:
    """A nuisance parameter.

    Parameters
    ----------
    name : str
    constraint : {"gaussian", None}, default="gaussian"
        "gaussian": a unit Gaussian auxiliary measurement, log C(nu)/C(0) = -nu^2/2
        (nu = +-1 is the one-sigma variation the systematics models were trained for).
        None: free-floating (no constraint term), e.g. a normalisation fitted from data.
    """

    def __init__(self, name, constraint="gaussian"):
        self.name = _check_name(name, "Nuisance")
        if constraint not in _CONSTRAINTS:
            raise ValueError(f"Nuisance {name!r}: constraint must be 'gaussian' or None, "
                             f"got {constraint!r}")
        self.constraint = constraint

    def __repr__(self):
        return f"Nuisance({self.name!r}, constraint={self.constraint!r})"


def _n_params(model, attr):
    n = getattr(model, attr, None)
    if n is None:
        n = 1 + max(i for t in model.terms_ for i in t)
    return int(n)


def _check_fitted_model(model, what, attr):
    if not hasattr(model, "predict"):
        raise ValueError(f"{what} must have a predict(X) method, got {type(model).__name__}")
    terms = getattr(model, "terms_", None)
    if terms is None:
        raise ValueError(f"{what} ({type(model).__name__}) is not fitted (no terms_); fit it "
                         "before building the model")
    terms = [tuple(int(i) for i in t) for t in terms]
    if not terms or any(len(t) not in (1, 2) for t in terms):
        raise ValueError(f"{what}: terms_ must be a non-empty list of 1- or 2-index tuples, got "
                         f"{terms}")
    return terms, _n_params(model, attr)


class Process:
    """One physics process and its simulation.

    Parameters
    ----------
    name : str
        Must match a class of the ``fractions`` classifier when there are several processes.
    X : array (N_p, F)
        SM simulation of this process (features as the trained models expect them).
    weight : array (N_p,)
        SM cross-section weights (sum = expected SM yield; negative weights are allowed
        for yields, see ``AdditiveModel.toys`` for pseudo-data).
    ratio : fitted BoostedInformationTree, or (model, [POI names]), optional
        theta dependence R_p(x|theta) = 1 + sum_A R_A(x) m_A(theta).  A bare model
        uses the model's parameters as the first POIs in order.  None: no theta dependence.
    systematics : list of (fitted BoostedParametricTree, [nuisance names]), optional
        Each model's parameters in order map to the named nuisances; S_p is the product
        of their exp(sum_A m_A(nu) Delta_A(x)).
    normalization : dict {nuisance name: kappa}, optional
        Normalisation factors (1 + kappa)^nu (log-normal; kappa > -1).  With a
        free-floating nuisance this is a free normalisation alpha = (1 + kappa)^nu.
    """

    def __init__(self, name, X, weight, ratio=None, systematics=(), normalization=None):
        self.name = _check_name(name, "Process")
        self.X = check_features(X, f"Process {name!r}: X")
        self.weight = check_finite(weight, f"Process {name!r}: weight", ndim=1,
                                   length=self.X.shape[0])
        if not self.weight.sum() > 0:
            raise ValueError(f"Process {name!r}: the sum of weights must be positive, got "
                             f"{self.weight.sum():.6g}")
        self.ratio = ratio
        self.systematics = list(systematics or ())
        self.normalization = dict(normalization or {})

    def __repr__(self):
        return (f"Process({self.name!r}, n_events={self.X.shape[0]}, "
                f"ratio={type(self.ratio).__name__ if self.ratio is not None else None}, "
                f"systematics={len(self.systematics)}, normalization={self.normalization})")


class Dataset:
    """A dataset prepared for one AdditiveModel (per-event coefficient arrays computed once).

    Obtain it from :meth:`AdditiveModel.prepare` (or :meth:`AdditiveModel.toys`) and pass
    it wherever an ``X`` is accepted.  ``X, weight = dataset`` unpacks it.

    Attributes
    ----------
    X : (n, F) features (for toys: the distinct simulated events drawn)
    weight : (n,) or None; None = observed events (unit weights); for toys the
        number of times each event was drawn
    n_events : number of rows
    global_observables : (K,) or None
        The auxiliary measurements of the Gaussian-constrained nuisances (None = 0):
        their constraint terms are -(nu_k - a_k)^2 / 2.  Toys draw them from
        N(nu_true, 1), as a frequentist toy must.
    """

    def __init__(self, owner, coef, weight=None, rows=None, X=None, source_X=None,
                 global_observables=None):
        self._owner = owner
        self.global_observables = (None if global_observables is None
                                   else np.asarray(global_observables, dtype=np.float64))
        self._coef = coef
        self._rows = None if rows is None else np.ascontiguousarray(rows, dtype=np.int64)
        self.weight = None if weight is None else np.ascontiguousarray(weight, dtype=np.float64)
        self._X = X
        self._source_X = source_X

    @property
    def X(self):
        if self._X is None:
            self._X = self._source_X[self._rows]
        return self._X

    @property
    def n_events(self):
        return self._coef.shape[0] if self._rows is None else self._rows.shape[0]

    def __len__(self):
        return self.n_events

    def __iter__(self):
        return iter((self.X, self.weight))

    def __repr__(self):
        w = "observed" if self.weight is None else f"sum(weight)={self.weight.sum():.6g}"
        return f"Dataset(n_events={self.n_events}, {w})"

    def arrays(self, weight=None):
        """(coef, rows, weight) for the kernels (empty arrays = identity / unit weights)."""
        rows = _EMPTY_I if self._rows is None else self._rows
        w = self.weight if weight is None else np.ascontiguousarray(weight, dtype=np.float64)
        if w is None:
            w = _EMPTY_F
        elif w.shape[0] != self.n_events:
            raise ValueError(f"weight has {w.shape[0]} entries but the dataset has "
                             f"{self.n_events} events")
        return (self._coef, rows, w, self.global_observables)


_EMPTY_I = np.zeros(0, dtype=np.int64)
_EMPTY_F = np.zeros(0, dtype=np.float64)


class AdditiveModel:
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

    def __init__(self, processes, pois, nuisances, fractions=None, luminosity=None):
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
        self._check_fractions()
        self._layout, self._sources = self._build_layout()
        self._cache = OrderedDict()
        self._compiled = None
        self._last_fit = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_cache"] = OrderedDict()          # weak references do not pickle
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
        from ._io import save_model
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

    def _check_fractions(self):
        clf = self.fractions
        names = self.process_names
        if clf is None:
            if len(names) > 1:
                raise ValueError(f"with {len(names)} processes a fitted classifier `fractions` "
                                 "(predict_proba, classes_ = process names) is required")
            self._class_index = None
            return
        if not hasattr(clf, "predict_proba"):
            raise ValueError("fractions must have a predict_proba method")
        classes = getattr(clf, "classes_", None)
        if classes is None:
            raise ValueError("fractions is not fitted (no classes_)")
        classes = [str(c) for c in classes]
        if sorted(classes) != sorted(names):
            raise ValueError(f"the classifier's classes_ {classes} do not match the process names "
                             f"{names}")
        self._class_index = np.array([classes.index(n) for n in names], dtype=np.int64)

    def _build_layout(self):
        """Columns per process: R terms, merged systematics terms, fraction."""
        P, K = self.n_pois, self.n_nuisances
        poi_index = {n: a for a, n in enumerate(self.pois)}
        nu_index = {n.name: k for k, n in enumerate(self.nuisances)}
        n_proc = len(self.processes)
        rs, re, ss, se, fc, ta, tb = [], [], [], [], [], [], []
        lognorm = np.zeros((n_proc, P + K))
        sources = []          # per process: (ratio model, [(model, [(src col, dst col)])])
        used = np.zeros(K, dtype=bool)
        col = 0
        for ip, proc in enumerate(self.processes):
            what = f"Process {proc.name!r}"
            # ---- ratio
            rs.append(col)
            ratio, rmap = proc.ratio, None
            if isinstance(ratio, tuple):
                if len(ratio) != 2:
                    raise ValueError(f"{what}: ratio must be a model or (model, [POI names])")
                ratio, rnames = ratio
                rnames = [rnames] if isinstance(rnames, str) else list(rnames)
                for n in rnames:
                    if n not in poi_index:
                        raise ValueError(f"{what}: ratio mapped to unknown POI {n!r}; POIs are "
                                         f"{self.pois}")
                rmap = [poi_index[n] for n in rnames]
            if ratio is not None:
                terms, n_par = _check_fitted_model(ratio, f"{what}: ratio", "n_parameters")
                if rmap is None:
                    if n_par > P:
                        raise ValueError(f"{what}: the ratio model has {n_par} parameters but "
                                         f"the model has {P} POIs {self.pois}")
                    rmap = list(range(n_par))
                elif len(rmap) != n_par:
                    raise ValueError(f"{what}: the ratio model has {n_par} parameters but "
                                     f"{len(rmap)} POI names were given")
                for t in terms:
                    g = sorted(rmap[i] for i in t)
                    ta.append(g[0])
                    tb.append(g[1] if len(g) == 2 else -1)
                    col += 1
            re.append(col)
            # ---- systematics
            ss.append(col)
            merged = OrderedDict()
            syst_sources = []
            for s, entry in enumerate(proc.systematics):
                if not (isinstance(entry, (tuple, list)) and len(entry) == 2):
                    raise ValueError(f"{what}: systematics entries must be (model, [nuisance "
                                     f"names]), got {entry!r}")
                model, snames = entry
                snames = [snames] if isinstance(snames, str) else list(snames)
                terms, n_par = _check_fitted_model(model, f"{what}: systematics[{s}]",
                                                   "n_nuisances")
                if len(snames) != n_par:
                    raise ValueError(f"{what}: systematics[{s}] has {n_par} nuisance "
                                     f"parameter(s) but {len(snames)} name(s) {snames} were given")
                if len(set(snames)) != len(snames):
                    raise ValueError(f"{what}: systematics[{s}] names repeat: {snames}")
                for n in snames:
                    if n not in nu_index:
                        raise ValueError(f"{what}: systematics[{s}] is mapped to unknown "
                                         f"nuisance {n!r}; nuisances are {self.nuisance_names}")
                    used[nu_index[n]] = True
                pairs = []
                for j, t in enumerate(terms):
                    g = tuple(sorted(P + nu_index[snames[i]] for i in t))
                    if g not in merged:
                        merged[g] = len(merged)
                    pairs.append((j, merged[g]))
                syst_sources.append((model, pairs))
            for g in merged:
                ta.append(g[0])
                tb.append(g[1] if len(g) == 2 else -1)
            col += len(merged)
            se.append(col)
            # ---- normalisation
            for n, kappa in proc.normalization.items():
                if n not in nu_index:
                    raise ValueError(f"{what}: normalization refers to unknown nuisance {n!r}; "
                                     f"nuisances are {self.nuisance_names}")
                if not (isinstance(kappa, numbers.Real) and np.isfinite(kappa) and kappa > -1):
                    raise ValueError(f"{what}: normalization kappa for {n!r} must be a finite "
                                     f"number > -1, got {kappa!r}")
                lognorm[ip, P + nu_index[n]] += np.log1p(kappa)
                used[nu_index[n]] = True
            # ---- fraction
            if n_proc > 1:
                fc.append(col)
                ta.append(0)
                tb.append(-1)
                col += 1
            else:
                fc.append(-1)
            sources.append((ratio, syst_sources))
        if self.luminosity is not None:
            lum = self.luminosity
            if not (isinstance(lum, (tuple, list)) and len(lum) == 2):
                raise ValueError(f"luminosity must be (nuisance name, kappa), got {lum!r}")
            n, kappa = lum
            if n not in nu_index:
                raise ValueError(f"luminosity refers to unknown nuisance {n!r}; nuisances are "
                                 f"{self.nuisance_names}")
            if not (isinstance(kappa, numbers.Real) and np.isfinite(kappa) and kappa > -1):
                raise ValueError(f"luminosity kappa must be a finite number > -1, got {kappa!r}")
            lognorm[:, P + nu_index[n]] += np.log1p(kappa)
            used[nu_index[n]] = True
        if K and not used.all():
            unused = [self.nuisance_names[k] for k in np.flatnonzero(~used)]
            raise ValueError(f"nuisance(s) {unused} are not used by any process, normalization "
                             "or the luminosity")
        self._n_columns = col
        return Layout(rs, re, ss, se, fc, ta, tb, lognorm), sources

    # ------------------------------------------------------------------ coefficients
    def _coefficients(self, X):
        """Per-event coefficient rows (N, C) of the layout for features X."""
        lay = self._layout
        n = X.shape[0]
        out = np.zeros((n, lay.n_columns))
        if len(self.processes) > 1:
            proba = np.asarray(self.fractions.predict_proba(X), dtype=np.float64)
            if proba.shape != (n, len(self.processes)):
                raise ValueError(f"fractions.predict_proba returned shape {proba.shape}, expected "
                                 f"{(n, len(self.processes))}")
            proba = proba[:, self._class_index]
            if not np.all(np.isfinite(proba)) or np.any(proba < -1e-12):
                raise ValueError("fractions.predict_proba returned negative or non-finite values")
            proba = np.maximum(proba, 0.0)
            tot = proba.sum(axis=1, keepdims=True)
            if np.any(tot <= 0):
                raise ValueError("fractions.predict_proba returned rows that sum to 0")
            proba /= tot
        for ip, (ratio, systs) in enumerate(self._sources):
            name = self.processes[ip].name
            if ratio is not None:
                R = _predict(ratio, X, int(lay.re[ip] - lay.rs[ip]), f"{name!r} ratio")
                out[:, lay.rs[ip]:lay.re[ip]] = R
            for s, (model, pairs) in enumerate(systs):
                D = _predict(model, X, len(pairs), f"{name!r} systematics[{s}]")
                for j, dst in pairs:
                    out[:, lay.ss[ip] + dst] += D[:, j]
            if lay.fc[ip] >= 0:
                out[:, lay.fc[ip]] = proba[:, ip]
        return out

    def _key(self, X):
        a = np.asarray(X)
        step = max(1, a.shape[0] // 256) if a.ndim else 1
        sample = np.ascontiguousarray(a[::step]) if a.ndim else a
        h = hashlib.blake2b(sample.tobytes(), digest_size=16)
        if a.ndim and a.shape[0]:
            h.update(np.ascontiguousarray(a[-1]).tobytes())
        return (id(X), a.shape, a.dtype.str, h.hexdigest())

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
            w = X.weight if weight is None else check_finite(weight, "weight", ndim=1,
                                                             length=X.n_events)
            return Dataset(self, X._coef, w, X._rows, X._X, X._source_X,
                           X.global_observables if aux is None else aux)
        comp = self._compiled
        if comp is not None and X is comp["X"]:
            w = None if weight is None else check_finite(weight, "weight", ndim=1,
                                                         length=comp["coef"].shape[0])
            return Dataset(self, comp["coef"], w, X=comp["X"], global_observables=aux)
        key = self._key(X)
        hit = self._cache.get(key)
        Xa = None
        if hit is not None and hit[0]() is X:
            coef, Xa = hit[1], hit[2]
            self._cache.move_to_end(key)
        else:
            Xa = check_features(X, "X", n_features=self.n_features_in_)
            coef = self._coefficients(Xa)
            try:
                ref = weakref.ref(X)
            except TypeError:
                ref = None
            if ref is not None:
                self._cache[key] = (ref, coef, Xa)
                while len(self._cache) > 2:
                    self._cache.popitem(last=False)
        w = None
        if weight is not None:
            w = check_finite(weight, "weight", ndim=1, length=coef.shape[0])
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
            w = None if weight is None else check_finite(weight, "weight", ndim=1,
                                                         length=X.n_events)
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
                blocks.append((np.ascontiguousarray(coef[lo:hi, lay.rs[ip]:lay.se[ip]]),
                               p.weight))
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
        if not isinstance(poi, numbers.Integral) or not 0 <= poi < self.n_pois:
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
    def _fit(self, lik, data, parallel=True):
        z0 = np.zeros(lik.n_par)
        z, q, G, H, ok, msg, n_eval = maximize(lik, data, z0, np.ones(lik.n_par, dtype=bool),
                                               parallel, exact_hessian=True)
        try:
            cov = np.linalg.inv(-H)
        except np.linalg.LinAlgError:
            cov = np.full_like(H, np.nan)
        P = self.n_pois
        return FitResult(z[:P].copy(), z[P:].copy(), q, ok, msg, n_eval, H, cov)

    def fit(self, X, weight=None):
        """Maximum-likelihood fit of (theta, nu), starting from (0, 0).

        Returns a :class:`FitResult` with ``theta``, ``nu``, ``q`` (and the Hessian and its
        inverse, the Gaussian covariance).  The result is remembered for the dataset, so a
        following ``scan`` / ``interval`` of the same data does not refit.
        """
        data = self._data(X, weight)
        return self._fit_cached(self.likelihood_, data, refit=True)

    def _fit_cached(self, lik, data, refit=False):
        """The MLE of ``data``, reusing the last one if the data are the same."""
        key = _data_key(data)
        last = self._last_fit
        if not refit and last is not None and last[0] == key:
            return last[2]
        fit = self._fit(lik, data)
        self._last_fit = (key, data[0], fit)      # holding coef keeps its id valid
        return fit

    def profile(self, theta, X, weight=None, nu_start=None):
        """Maximise q over nu at fixed theta: a :class:`ProfileResult` with ``nu`` and ``q``.

        The start point is ``nu_start`` (default 0).
        """
        z0 = self._point(theta, nu_start)
        data = self._data(X, weight)
        lik = self.likelihood_
        free = np.zeros(lik.n_par, dtype=bool)
        free[self.n_pois:] = True
        z, q, _, _, ok, msg, n_eval = maximize(lik, data, z0, free)
        P = self.n_pois
        return ProfileResult(z[:P].copy(), z[P:].copy(), q, ok, msg, n_eval)

    def scan(self, thetas, X, weight=None, n_jobs=None, poi=None, return_result=False):
        """Profiled scan t(theta) = -2 [max_nu q(theta, nu) - max_{theta,nu} q].

        Parameters
        ----------
        thetas : (M,) for one scanned POI, or (M, n_scanned) e.g. a flattened 2-POI grid
            (for contours: t < 2.30 / 5.99 for 68% / 95% CL with two POIs).
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
        """
        data = self._data(X, weight)
        lik = self.likelihood_
        if poi is None:
            fixed = np.arange(self.n_pois)
        else:
            pl = [poi] if isinstance(poi, (str, numbers.Integral)) else list(poi)
            fixed = np.array(sorted({self._poi_index(p) for p in pl}), dtype=np.int64)
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
        z_hat = np.concatenate([fit.theta, fit.nu])
        chunks = np.array_split(np.arange(vals.shape[0]), n_tasks(n_jobs, vals.shape[0]))
        parts = run_tasks(_scan_chunk, [vals[c] for c in chunks], n_jobs, lik, data, fixed,
                          z_hat, fit.hessian)
        qs = np.concatenate([p[0] for p in parts])
        zs = np.concatenate([p[1] for p in parts])
        ok = np.concatenate([p[2] for p in parts])
        q_max = fit.q
        if qs.max() > q_max + 10 * Q_TOL:
            # the global fit missed the maximum (beyond the ~1e-6 precision of extrapolated
            # scan points): restart it from the best scanned point
            best = zs[int(np.argmax(qs))]
            z, q, G, H, s, msg, n_eval = maximize(lik, data, best,
                                                  np.ones(lik.n_par, dtype=bool),
                                                  exact_hessian=True)
            if q > q_max:
                P = self.n_pois
                try:
                    cov = np.linalg.inv(-H)
                except np.linalg.LinAlgError:
                    cov = np.full_like(H, np.nan)
                fit = FitResult(z[:P].copy(), z[P:].copy(), q, s, msg, n_eval, H, cov)
                q_max = q
                self._last_fit = (_data_key(data), data[0], fit)
        t = -2.0 * (qs - q_max)
        if not return_result:
            return t
        P = self.n_pois
        return ScanResult(vals, t, qs, q_max, zs[:, :P], zs[:, P:], ok, fit)

    def interval(self, X, weight=None, cl=0.68, poi=0):
        """(low, high) Wilks interval of one POI at confidence level ``cl``.

        Solves t(theta_poi) = chi2.ppf(cl, 1) on both sides of the MLE, profiling the
        nuisances and the other POIs, with a safeguarded Newton iteration (dt/dtheta is
        exact: -2 dq/dtheta at the profiled point).  An endpoint that is not reached
        within 1000 standard errors is returned as -inf / +inf with a warning.
        """
        if not 0 < cl < 1:
            raise ValueError(f"cl must be in (0, 1), got {cl!r}")
        j = self._poi_index(poi)
        data = self._data(X, weight)
        lik = self.likelihood_
        fit = self._fit_cached(lik, data)
        crit = float(stats.chi2.ppf(cl, 1))
        z_hat = np.concatenate([fit.theta, fit.nu])
        sigma = float(np.sqrt(fit.covariance[j, j])) if fit.covariance[j, j] > 0 else 1.0
        if not np.isfinite(sigma) or sigma <= 0:
            sigma = 1.0
        return tuple(_endpoint(lik, data, j, z_hat, fit.hessian, fit.q, crit, sigma, side)
                     for side in (-1.0, 1.0))

    # ------------------------------------------------------------------ pseudo-data
    def expected_weights(self, theta, nu):
        """Expected weight of every simulated event (processes concatenated) at (theta, nu)."""
        comp = self._compile()
        z = self._point(theta, nu)
        return np.concatenate(comp["lik"].expected_weights(z, comp["blocks"]))

    def asimov(self, theta, nu, return_dataset=False):
        """Asimov data at (theta, nu): (X, weight) = the simulated events of all processes
        with their expected weights.  X is the model's read-only concatenated simulation,
        so passing it back to q / fit / scan reuses its cached coefficients.

        The constraint terms stay centred at 0, so the MLE of (X, weight) pulls the
        nuisances towards 0.  ``return_dataset=True`` returns a :class:`Dataset` whose
        global observables are ``nu`` as well (the fully Asimov dataset: its MLE is
        (theta, nu)).
        """
        w = self.expected_weights(theta, nu)
        X = self._compile()["X"]
        if return_dataset:
            return self.prepare(X, w, global_observables=self._point(theta, nu)[self.n_pois:])
        return X, w

    def toys(self, theta, nu, n_toys, random_state=None, n_jobs=None, negative_weights="raise"):
        """Pseudo-datasets at (theta, nu) (MATH.md section 4): a list of :class:`Dataset`.

        Every simulated event is drawn n_i ~ Poisson(w_i(theta, nu)) times (equivalently
        N ~ Poisson(sigma) events drawn with probability proportional to the expected
        weight).  A toy holds the drawn events with their multiplicities as ``weight``,
        and its ``global_observables`` (the auxiliary measurements of the Gaussian
        constraints) drawn from N(nu, 1).
        Events with a negative expected weight make this impossible: by default a
        ValueError; ``negative_weights="signed"`` draws them Poisson(|w|) times with
        weight -1 per draw.
        """
        n_toys = _check_n_toys(n_toys)
        comp = self._compile()
        w_exp = self.expected_weights(theta, nu)
        where = comp["lik"].describe(self._point(theta, nu))
        check_expected(w_exp, negative_weights, where)
        seeds = seed_sequences(random_state, n_toys)
        chunks = np.array_split(np.arange(n_toys), n_tasks(n_jobs, n_toys))
        z = self._point(theta, nu)
        parts = run_tasks(toys_task, [[seeds[i] for i in c] for c in chunks], n_jobs, w_exp,
                          negative_weights == "signed", z[self.n_pois:], comp["lik"].gaussian)
        out = []
        for part in parts:
            for rows, weight, aux in part:
                out.append(Dataset(self, comp["coef"], weight, rows, source_X=comp["X"],
                                   global_observables=aux))
        return out

    def coverage(self, theta_true, nu_true, n_toys, cl=0.68, poi=None, random_state=None,
                 n_jobs=None, negative_weights="raise"):
        """Toy coverage of the Wilks region at ``cl``.

        For each toy drawn at (theta_true, nu_true): the MLE (from 0) and the profile at
        the true value of the tested POIs (``poi``: default all POIs, the joint region;
        an int / name: that POI's interval, the others profiled).  The region covers
        when t(theta_true) < chi2.ppf(cl, n_tested); for one POI this is the interval
        of :meth:`interval` containing theta_true.  Returns a :class:`CoverageResult`.
        Runs through joblib like :meth:`scan`.
        """
        n_toys = _check_n_toys(n_toys)
        if not 0 < cl < 1:
            raise ValueError(f"cl must be in (0, 1), got {cl!r}")
        comp = self._compile()
        lik = comp["lik"]
        z_true = self._point(theta_true, nu_true)
        if poi is None:
            fixed = np.arange(self.n_pois)
        else:
            pl = [poi] if isinstance(poi, (str, numbers.Integral)) else list(poi)
            fixed = np.array(sorted({self._poi_index(p) for p in pl}), dtype=np.int64)
        w_exp = self.expected_weights(theta_true, nu_true)
        check_expected(w_exp, negative_weights, lik.describe(z_true))
        crit = float(stats.chi2.ppf(cl, fixed.shape[0]))
        seeds = seed_sequences(random_state, n_toys)
        chunks = np.array_split(np.arange(n_toys), n_tasks(n_jobs, n_toys))
        parts = run_tasks(_coverage_chunk, [[seeds[i] for i in c] for c in chunks], n_jobs,
                          lik, comp["coef"], w_exp, negative_weights == "signed", fixed,
                          z_true[fixed], z_true)
        t = np.concatenate([p[0] for p in parts])
        theta_hat = np.concatenate([p[1] for p in parts])
        ok = np.concatenate([p[2] for p in parts])
        frac = float(np.mean(t < crit))
        err = float(np.sqrt(frac * (1 - frac) / n_toys))
        return CoverageResult(frac, err, t, crit, float(cl), n_toys, theta_hat, ok)


def _predict(model, X, n_cols, what):
    out = np.asarray(model.predict(X), dtype=np.float64)
    if out.ndim == 1 and n_cols == 1:
        out = out[:, None]
    if out.shape != (X.shape[0], n_cols):
        raise ValueError(f"{what}.predict returned shape {out.shape}, expected "
                         f"{(X.shape[0], n_cols)} (one column per term of terms_)")
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{what}.predict returned non-finite values")
    return out


def _data_key(data):
    """Identity of a kernel data tuple: the (internal, never modified) coefficient array
    by id, rows / weights / global observables by content."""
    coef, rows, w = data[:3]
    aux = data[3] if len(data) > 3 else None
    h = hashlib.blake2b(digest_size=16)
    for a in (rows, w, aux):
        h.update(b"|" if a is None else np.ascontiguousarray(a).tobytes())
        h.update(b"/")
    return (id(coef), coef.shape, h.hexdigest())


def _check_n_toys(n_toys):
    if isinstance(n_toys, bool) or not isinstance(n_toys, numbers.Integral) or n_toys < 1:
        raise ValueError(f"n_toys must be a positive integer, got {n_toys!r}")
    return int(n_toys)


def _scan_chunk(lik, data, fixed, z_hat, H_hat, values, parallel):
    return scan_task(lik, data, fixed, values, z_hat, parallel, H_hat)


def _coverage_chunk(lik, coef, w_exp, signed, fixed, values, z_true, seeds, parallel):
    return coverage_task(lik, coef, w_exp, signed, fixed, values, z_true, seeds, parallel)


def _endpoint(lik, data, j, z_hat, H_hat, q_max, crit, sigma, side, max_iter=100):
    """theta_j where the profiled t crosses ``crit`` on ``side`` of the MLE."""
    free = np.ones(lik.n_par, dtype=bool)
    free[j] = False
    theta_hat = z_hat[j]
    state = {"z": z_hat.copy(), "H": H_hat}

    def prof(v):
        start = state["z"].copy()
        start[j] = v
        try:
            z, q, G, H, _, _, _ = maximize(lik, data, start, free, H_init=state["H"])
        except RateError as exc:
            raise RateError(f"while profiling the interval of {lik.names[0][j]} at {v:.6g}: "
                            f"{exc}") from None
        state["z"], state["H"] = z, H
        return -2.0 * (q - q_max), -2.0 * G[j]

    xtol = 1e-7 * sigma
    a, b = theta_hat, None          # t(a) < crit <= t(b)
    v = theta_hat + side * np.sqrt(crit) * sigma
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
            reach = abs(a - theta_hat)
            if reach > 1000 * sigma:
                warnings.warn(f"the {'upper' if side > 0 else 'lower'} endpoint of the interval "
                              f"of {lik.names[0][j]} is not reached within 1000 standard errors",
                              RuntimeWarning, stacklevel=3)
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
