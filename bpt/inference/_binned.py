"""BinnedChannel: a Poisson counting channel built from the same Processes as the unbinned
model (docs/math.md, section "Binned channels and combinations").

The expected count in bin b of the observable is

    nu_b(theta, nu) = L(nu) sum_p alpha_p(nu) sum_{i in sim_p, x_i in b}
                          w_i R_p(x_i|theta) S_p(x_i|nu)

and q(theta, nu) = sum_b [n_b log(nu_b(z) / nu_b(0)) - (nu_b(z) - nu_b(0))] + constraints.
"""

from __future__ import annotations

import copy
import hashlib
import numbers

import numpy as np

from .._validation import check_features, check_finite
from ._kernels import accumulate
from ._layout import (_check_name, build_layout, check_nuisance_names, check_spec,
                      process_block)
from ._likelihood import RateError, add_gaussian_constraints, describe_point, overflow_message
from ._statistics import Statistics
from ._toys import ToyGenerator

__all__ = ["BinnedChannel", "BinnedData", "BinnedLikelihood"]

_EMPTY_I = np.zeros(0, dtype=np.int64)


class BinnedData:
    """Counts of a binned channel with optional global observables (from
    :meth:`BinnedChannel.prepare`, :meth:`BinnedChannel.toys`, ``asimov``).

    Attributes: ``counts`` (B,) float64, ``global_observables`` (K,) or None.
    """

    def __init__(self, counts, global_observables=None):
        self.counts = counts
        self.global_observables = global_observables

    def __repr__(self):
        return f"BinnedData(counts={np.round(self.counts, 6).tolist()})"

    def arrays(self):
        return (self.counts, None, None, self.global_observables)


class BinnedLikelihood:
    """q of a binned channel relative to z = 0, with exact gradient and Hessian.

    ``bins[p]`` = (sub-layout, lo, hi, list over bins b of (coef_pb, w_pb)): the
    simulated events of process p in bin b (a bin without events has empty arrays).
    ``data`` = (counts (B,), None, None, global observables or None).
    """

    def __init__(self, layout, n_pois, gaussian, bins, n_bins, names, channel="binned"):
        self.layout = layout
        self.n_pois = int(n_pois)
        self.gaussian = np.asarray(gaussian, dtype=bool)
        self.n_par = self.n_pois + self.gaussian.shape[0]
        self.names = names
        self.n_bins = int(n_bins)
        self.bins = bins
        self.channel = channel
        self.nu0 = self.expected(np.zeros(self.n_par), 0)[0]
        self.empty = ~(self.nu0 != 0.0)
        self.nu0_safe = np.where(self.empty, 1.0, self.nu0)

    def without_constraints(self):
        """A copy without constraint terms (a channel of a Combination)."""
        out = copy.copy(self)
        out.gaussian = np.zeros_like(self.gaussian)
        return out

    def describe(self, z):
        return describe_point(z, self.n_pois)

    def rate_message(self, z, n_bad, first, n_events):
        if n_bad < 0:
            return f"channel {self.channel!r}: {overflow_message(z, self.n_pois)}"
        return (f"channel {self.channel!r}: {n_bad} of {self.n_bins} bin(s) have an expected "
                f"count <= 0 (or not finite) at {self.describe(z)} (first: bin {first})")

    def expected(self, z, order=0, parallel=True, hess_sample=None, by_process=False):
        """Expected counts nu (B,) [(n_proc, B) with ``by_process``], d nu / dz (B, n),
        d2 nu / dz2 (B, n, n) (orders above ``order`` are zeros)."""
        n, B = self.n_par, self.n_bins
        nproc = len(self.bins)
        val = np.zeros((nproc, B)) if by_process else np.zeros(B)
        G = np.zeros((B, n)) if order >= 1 else None
        H = np.zeros((B, n, n)) if order >= 2 else None
        z = np.ascontiguousarray(z, dtype=np.float64)
        lay_full = self.layout
        mv, JT = lay_full.columns_at(z)
        logc_all = lay_full.log_norm @ z
        for p, (lay, lo, hi, per_bin) in enumerate(self.bins):
            logc = np.array([logc_all[p]])
            mvp = np.ascontiguousarray(mv[lo:hi])
            JTp = np.ascontiguousarray(JT[:, lo:hi])
            for b, (coef, w) in enumerate(per_bin):
                if w.shape[0] == 0:
                    continue
                v, g, h, _, _ = accumulate(coef, _EMPTY_I, w, False, order, self.n_pois,
                                           lay.blocks, logc, lay.log_norm, mvp, JTp,
                                           lay.hessian_map, parallel=parallel,
                                           hess_sample=hess_sample)
                if by_process:
                    val[p, b] += v
                else:
                    val[b] += v
                if order >= 1:
                    G[b] += g
                if order >= 2:
                    H[b] += h
        return val, G, H

    def evaluate(self, z, data, order=0, parallel=True, hess_sample=None):
        """(q, grad, hess, n_bad, first_bad) as ``Likelihood.evaluate``; n_bad counts bins
        with an expected count <= 0 (or not finite) that matter (observed count > 0 or a
        bin filled at z = 0)."""
        z = np.ascontiguousarray(z, dtype=np.float64)
        n = self.n_par
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            nu_b, J, Hb = self.expected(z, order, parallel, hess_sample)
            counts = data[0]
            bad = ~((nu_b > 0) & np.isfinite(nu_b)) & ~(self.empty & (nu_b == 0) & (counts == 0))
            G = np.zeros(n)
            H = np.zeros((n, n))
            if bad.any():
                return np.nan, G, H, int(bad.sum()), int(np.flatnonzero(bad)[0])
            live = ~(self.empty & (nu_b == 0))
            nl = counts[live]
            nul = nu_b[live]
            q = float(np.sum(np.where(nl > 0, nl * np.log(nul / self.nu0_safe[live]), 0.0))
                      - np.sum(nul - self.nu0[live]))
            if order >= 1:
                r = nl / nul - 1.0
                G = r @ J[live]
            if order >= 2:
                H = np.einsum("b,bij->ij", r, Hb[live])
                Jl = J[live]
                H -= (Jl * (nl / nul ** 2)[:, None]).T @ Jl
            q = add_gaussian_constraints(q, G, H, z, self.n_pois, self.gaussian, data, order)
            if not (np.isfinite(q) and np.all(np.isfinite(G)) and np.all(np.isfinite(H))):
                return np.nan, G, H, -1, -1
        return q, G, H, 0, -1

    def checked(self, z, data, order=0, parallel=True):
        q, G, H, n_bad, first = self.evaluate(z, data, order, parallel)
        if n_bad:
            raise RateError(self.rate_message(z, n_bad, first, self.n_bins))
        return q, G, H


class BinnedToys:
    """Draws counts n_b ~ Poisson(nu_b) of a binned channel."""

    def __init__(self, expected):
        self.expected = expected

    def draw_channel(self, rng):
        return (rng.poisson(self.expected).astype(np.float64), None, None, None)


class BinnedChannel(Statistics):
    """A binned Poisson channel built from :class:`Process` es (docs/math.md).

    The expected count in bin b of the observable is the sum over the processes'
    simulated events that fall in b of w_i R_p(x_i|theta) S_p(x_i|nu) alpha_p(nu) L(nu)
    (the same BIT / BPT pieces as the unbinned :class:`AdditiveModel`; no fraction
    classifier).  Data are the observed counts per bin.

    Parameters
    ----------
    processes : list of Process
    pois : list of str
    nuisances : list of Nuisance (or str: Gaussian-constrained)
    observable : int, str or callable
        The binned quantity: a feature index of the processes' X, a feature name (needs
        ``feature_names``), or a callable ``X -> (N,) values``.
    edges : (B+1,) strictly increasing bin edges; values outside [edges[0], edges[-1]]
        are not counted (the last bin includes its upper edge).
    luminosity : (nuisance name, kappa), optional
    name : str, default="binned"
        The channel's name in a :class:`Combination` (the key of its data).
    feature_names : list of str, optional
        Names of the F features (for a named ``observable`` and named input).

    Data (``X`` of q / fit / scan / ...): the counts (B,) (non-negative numbers;
    Asimov counts need not be integers), a :class:`BinnedData`, or events (N, F) (array
    or named input) that are histogrammed here (``weight`` optional, events only).
    """

    def __init__(self, processes, pois, nuisances, observable, edges, luminosity=None,
                 name="binned", feature_names=None):
        processes, pois, nus = check_spec(processes, pois, nuisances)
        check_nuisance_names(pois, nus)
        self.name = _check_name(name, "channel")
        n_features = {p.X.shape[1] for p in processes}
        if len(n_features) != 1:
            raise ValueError("all processes' simulations must have the same number of features, "
                             f"got {[p.X.shape[1] for p in processes]}")
        self.n_features_in_ = n_features.pop()
        if feature_names is not None:
            feature_names = [str(f) for f in feature_names]
            if len(feature_names) != self.n_features_in_ or len(set(feature_names)) != len(
                    feature_names):
                raise ValueError(f"feature_names must be {self.n_features_in_} unique names, got "
                                 f"{feature_names}")
        self.feature_names = feature_names
        self.observable = observable
        self._obs = self._check_observable(observable)
        e = check_finite(edges, "edges", ndim=1)
        if e.shape[0] < 2 or not np.all(np.diff(e) > 0):
            raise ValueError(f"edges must be at least 2 strictly increasing numbers, got {e}")
        self.edges = e
        self.processes = processes
        self.pois = pois
        self.nuisances = nus
        self.luminosity = luminosity
        self._layout, self._sources = build_layout(processes, pois, nus, luminosity)
        self._lik = None

    def _check_observable(self, obs):
        if callable(obs):
            return obs
        if isinstance(obs, str):
            if self.feature_names is None or obs not in self.feature_names:
                raise ValueError(f"observable {obs!r} is not a feature name (feature_names: "
                                 f"{self.feature_names}); give feature_names, an index or a "
                                 "callable")
            return self.feature_names.index(obs)
        if (isinstance(obs, (bool, np.bool_)) or not isinstance(obs, numbers.Integral)
                or not 0 <= obs < self.n_features_in_):
            raise ValueError(f"observable must be a feature index in 0..{self.n_features_in_ - 1}"
                             f", a feature name or a callable, got {obs!r}")
        return int(obs)

    def save(self, path):
        """Save the channel (processes, models, binning) to one file; read it back with
        :func:`bpt.inference.load_model`.  A callable ``observable`` cannot be saved."""
        from ._io import save_combination
        save_combination(self, path)

    # ------------------------------------------------------------------ structure
    @property
    def process_names(self):
        return [p.name for p in self.processes]

    @property
    def n_bins(self):
        return self.edges.shape[0] - 1

    def has_shape_dependence(self):
        """True if any process has a ratio model (BIT) or systematics models (BPT): then the
        per-bin yields are not just normalisations of fixed templates."""
        return any(p.ratio is not None or p.systematics for p in self.processes)

    def normalization_modifiers(self):
        """[(process name, nuisance name, kappa)] of every log-normal normalisation factor
        (1 + kappa)^nu, the luminosity included (once per process)."""
        out = []
        for p in self.processes:
            for n, k in p.normalization.items():
                out.append((p.name, n, float(k)))
            if self.luminosity is not None:
                out.append((p.name, self.luminosity[0], float(self.luminosity[1])))
        return out

    # ------------------------------------------------------------------ binning
    def _values(self, X):
        if callable(self._obs):
            v = np.asarray(self._obs(X), dtype=np.float64)
            if v.shape != (X.shape[0],):
                raise ValueError(f"observable(X) must return shape ({X.shape[0]},), got {v.shape}")
            if not np.all(np.isfinite(v)):
                raise ValueError("observable(X) returned non-finite values")
            return v
        return X[:, self._obs]

    def bin_index(self, X):
        """Bin of every row of X (-1 = outside the edges)."""
        Xa = self._features(X)
        return self._bin_of(self._values(Xa))

    def _bin_of(self, v):
        b = np.searchsorted(self.edges, v, side="right") - 1
        b = np.where(v == self.edges[-1], self.n_bins - 1, b)
        return np.where((b >= 0) & (b < self.n_bins), b, -1).astype(np.int64)

    def _features(self, X):
        return check_features(X, "X", n_features=self.n_features_in_,
                              fitted_names=self.feature_names)

    # ------------------------------------------------------------------ likelihood
    def _compile(self):
        if self._lik is None:
            lay = self._layout
            bins = []
            for ip, p in enumerate(self.processes):
                sub, lo, hi = lay.sub(ip)
                coef = process_block(lay, self._sources, ip, p.name, p.X)
                b = self._bin_of(self._values(p.X))
                shape = sub.syst_start[0] != sub.syst_end[0]
                per_bin = []
                order = np.argsort(b, kind="stable")
                bs = b[order]
                starts = np.searchsorted(bs, np.arange(self.n_bins + 1))
                for k in range(self.n_bins):
                    idx = order[starts[k]:starts[k + 1]]
                    c = np.ascontiguousarray(coef[idx])
                    w = np.ascontiguousarray(p.weight[idx])
                    if not shape and c.shape[0] > 1 and w.sum() != 0.0:
                        W = w.sum()           # yield polynomial in theta: one weighted row
                        c = np.ascontiguousarray((w @ c)[None, :] / W)
                        w = np.array([W])
                    per_bin.append((c, w))
                bins.append((sub, lo, hi, per_bin))
            gaussian = np.array([n.constraint == "gaussian" for n in self.nuisances], dtype=bool)
            self._lik = BinnedLikelihood(lay, self.n_pois, gaussian, bins, self.n_bins,
                                         (list(self.pois), self.nuisance_names), self.name)
        return self._lik

    @property
    def likelihood_(self):
        return self._compile()

    def expected(self, theta, nu):
        """Expected counts (B,) at (theta, nu)."""
        return self.likelihood_.expected(self._point(theta, nu))[0]

    def expected_by_process(self, theta, nu):
        """Expected counts per process (n_proc, B) at (theta, nu)."""
        return self.likelihood_.expected(self._point(theta, nu), by_process=True)[0]

    # ------------------------------------------------------------------ goodness of fit
    def goodness_of_fit(self, X, weight=None, fix=None, bounds=None):
        """Saturated-model goodness of fit of the counts: a :class:`GoodnessOfFitResult`.

        Fits the data (with ``fix`` / ``bounds`` as in :meth:`fit`; the remembered fit is
        reused) and returns ``saturated_gof(counts, expected_at_fit, n_free)``: the Poisson
        deviance -2 log lambda_sat = 2 sum_b [E_b - O_b + O_b log(O_b / E_b)] with
        ``ndf`` = B - n_free and the chi2 p-value.  n_free counts the POIs and the
        free-floating nuisances that the fit moved (not those in ``fix``); a
        Gaussian-constrained nuisance is not counted (its auxiliary measurement adds one
        term for its parameter) and its pull term is not in the statistic.  Bins with
        no expected and no observed count are left out.  Raises ValueError when the fit
        leaves fewer than one degree of freedom.  See docs/math.md (section 4).
        """
        from ._gof import binned_saturated_gof, saturated_n_free
        data = self._data(X, weight)
        lik = self.likelihood_
        controls = self._controls(fix, bounds)
        fit = self._fit_cached(lik, data, controls)
        E = lik.expected(np.concatenate([fit.theta, fit.nu]))[0]
        return binned_saturated_gof([data[0]], [E], saturated_n_free(lik, controls))

    # ------------------------------------------------------------------ data
    def _counts(self, X, weight=None):
        if isinstance(X, BinnedData):
            if weight is not None:
                raise ValueError("weight is for events; BinnedData holds counts")
            return X.counts
        a = X if isinstance(X, np.ndarray) else None
        if a is None and isinstance(X, (list, tuple)):
            a = np.asarray(X)
        if a is not None and a.ndim == 1:
            if weight is not None:
                raise ValueError(f"channel {self.name!r}: weight is for events; counts are "
                                 "already summed")
            c = check_finite(a, f"channel {self.name!r}: counts", ndim=1)
            if c.shape[0] != self.n_bins:
                raise ValueError(f"channel {self.name!r}: counts must have {self.n_bins} "
                                 f"entries (one per bin), got {c.shape[0]}")
            if np.any(c < 0):
                raise ValueError(f"channel {self.name!r}: counts must be >= 0, got {c}")
            return np.ascontiguousarray(c, dtype=np.float64)
        Xa = self._features(X)
        w = None
        if weight is not None:
            w = check_finite(weight, f"channel {self.name!r}: weight", ndim=1, length=Xa.shape[0])
        b = self._bin_of(self._values(Xa))
        inside = b >= 0
        return np.bincount(b[inside], weights=None if w is None else w[inside],
                           minlength=self.n_bins).astype(np.float64)

    def prepare(self, X, weight=None, global_observables=None):
        """:class:`BinnedData` of counts (or events, histogrammed) and global observables."""
        counts = self._counts(X, weight)
        aux = None
        if global_observables is None and isinstance(X, BinnedData):
            aux = X.global_observables
        if global_observables is not None:
            aux = self._global_observables(global_observables)
        return BinnedData(counts, aux)

    def _data(self, X, weight=None):
        return self.prepare(X, weight).arrays()

    def _channel_data(self, X, weight=None):
        return (self._counts(X, weight), None, None, None)

    def _data_key(self, data):
        h = hashlib.blake2b(digest_size=16)
        for a in (data[0], data[3] if len(data) > 3 else None):
            h.update(b"|" if a is None else np.ascontiguousarray(a).tobytes())
            h.update(b"/")
        return ("binned", id(self), h.hexdigest())

    # ------------------------------------------------------------------ pseudo-data
    def asimov(self, theta, nu, return_dataset=False):
        """Expected counts at (theta, nu); ``return_dataset=True``: a :class:`BinnedData`
        whose global observables are ``nu`` too (its MLE is (theta, nu))."""
        z = self._point(theta, nu)
        c = self.likelihood_.expected(z)[0]
        if return_dataset:
            return BinnedData(c, z[self.n_pois:].copy())
        return c

    def _channel_toys(self, z, negative_weights):
        nu_b = self.likelihood_.expected(z)[0]
        if not np.all(np.isfinite(nu_b)) or np.any(nu_b < 0):
            raise ValueError(f"channel {self.name!r}: the expected counts at "
                             f"{self.likelihood_.describe(z)} are not all >= 0: {nu_b}")
        return BinnedToys(nu_b)

    def _toy_generator(self, z, negative_weights):
        return ToyGenerator([self._channel_toys(z, negative_weights)], z[self.n_pois:],
                            self.likelihood_.gaussian)

    def _wrap_toy(self, data):
        return BinnedData(data[0], data[3])

    def _sampled_data(self, drawn, aux):
        X, weight = drawn if isinstance(drawn, tuple) else (drawn, None)
        return self.prepare(X, weight, global_observables=aux).arrays()
