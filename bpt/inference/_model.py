"""AdditiveModel: the unbinned additive model of docs/math.md (section 3), one channel.

Its statistics (q, fit, profile, scan, interval, toys, coverage) are inherited from
``_statistics.Statistics`` (shared with BinnedChannel and Combination); this module
holds the model's structure, its coefficients, its compiled Likelihood and its hooks.

    dSigma(x|theta,nu) / dSigma(x|SM) = L(nu) sum_p alpha_p(nu) R_p(x|theta) S_p(x|nu) f_p(x)

R_p = 1 + sum_A R_pA(x) m_A(theta) (a fitted BoostedInformationTree), S_p =
exp(sum_A m_A(nu) Delta_pA(x)) (fitted BoostedParametricTrees, one per group of
nuisances), alpha_p = prod_k (1 + kappa_pk)^nu_k, L = (1 + kappa_L)^nu_L, f_p the SM
process fractions of a calibrated classifier.  The pieces live in: ``_layout`` (processes,
columns, per-event coefficients), ``_dataset`` (Dataset and its cache), ``_likelihood``
(q and derivatives), ``_fit`` (optimiser, multi-start, bounds), ``_interval`` (scans,
intervals), ``_toys`` (pseudo-data, coverage), ``_statistics`` (the shared methods).
"""

from __future__ import annotations

import copy
import numbers

import numpy as np

from .._validation import check_features, check_finite
from ._dataset import CoefficientCache, Dataset, data_key
from ._io import read_model, save_model
from ._layout import (MAX_TOTAL_WEIGHT, Nuisance, Process, build_layout, check_fractions,
                      check_nuisance_names, check_spec, coefficients, _check_name)
from ._likelihood import Likelihood
from ._progress import check_verbose
from ._statistics import Statistics
from ._toys import PseudoData

__all__ = ["AdditiveModel", "Dataset", "Nuisance", "Process", "load_model"]

class AdditiveModel(PseudoData, Statistics):
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
    name : str, default="unbinned"
        The channel's name in a :class:`Combination` (the key of its data).

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
                 simulation_uncertainty=False, name="unbinned"):
        processes, pois, nus = check_spec(processes, pois, nuisances)
        if not isinstance(simulation_uncertainty, (bool, np.bool_)):
            raise ValueError("simulation_uncertainty must be True or False, got "
                             f"{simulation_uncertainty!r}")
        self.simulation_uncertainty = bool(simulation_uncertainty)
        self.name = _check_name(name, "channel")
        if simulation_uncertainty:
            processes, extra = _with_simulation_uncertainty(processes)
            nus = nus + extra
        check_nuisance_names(pois, nus)
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
        state = super().__getstate__()
        state["_cache"] = CoefficientCache(2)    # weak references do not pickle
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
            aux = self._global_observables(global_observables)
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

    def _data_key(self, data):
        return data_key(data)

    def _channel_data(self, X, weight=None):
        """Data tuple of X as a channel of a Combination (no global observables)."""
        return self._data(X, weight)[:3] + (None,)

    # ------------------------------------------------------------------ goodness of fit
    # (``minuit`` and ``impacts`` are inherited from ``_statistics.Statistics``)
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
    """Load an :class:`AdditiveModel`, :class:`BinnedChannel` or :class:`Combination` saved
    with ``model.save(path)``.

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
    kind, parts = read_model(source, trusted)
    try:
        if kind == "unbinned":
            return AdditiveModel(**parts)
        from ._binned import BinnedChannel
        from ._combination import Combination
        channels = [AdditiveModel(**args) if t == "unbinned" else BinnedChannel(**args)
                    for t, args in parts["channels"]]
        if parts["single"]:
            return channels[0]
        return Combination(channels, pois=parts["pois"], nuisances=parts["nuisances"])
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


