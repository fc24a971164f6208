"""A built-in toy "physics" model whose truth is known in closed form.

No downloads: every sample is drawn from analytic distributions, seeded by
``random_state``, and one million events take a fraction of a second.

The toy
-------
Two processes, both with five observed features

    ==  ===============  ==========================================================
    0   ``jet_pt``       a recoil-jet pT [GeV]; scaled by the jet energy scale (JES)
    1   ``cos_theta``    a decay angle in [-1, 1]
    2   ``mass``         an invariant mass [GeV], m > 200
    3   ``noise_gauss``  pure noise, N(0, 1) in both processes
    4   ``noise_flat``   pure noise, U(0, 1) in both processes
    ==  ===============  ==========================================================

SM densities (``z = m / 1000``; Gamma(k, scale) densities):

* **signal** (EFT process, expected SM yield ``signal_yield`` = 1000):
  ``m - 200 ~ Gamma(2, 150)``, ``p(cos) = 3/8 (1 + cos^2)``,
  ``pT | m ~ Gamma(2, 20 + 0.1 m)``.
* **background** (SM only, ``background_yield`` = 2000):
  ``m - 200 ~ Gamma(1, 120)``, ``p(cos) = 1/2``, ``pT | m ~ Gamma(1.5, 15 + 0.08 m)``.

**SMEFT** (signal only, parameters theta = (``c_energy``, ``c_angle``)).  Each
event has an amplitude ratio ``1 + theta . a`` with

    a_1 = f_1 + s_1 cos(phi),   f_1 = 0.5 z,   s_1 = 0.3 z
    a_2 = f_2 + s_2 sin(phi),   f_2 = 0.4 cos, s_2 = 0.3 sqrt(1 - cos^2)

and a latent (unobserved) azimuth ``phi ~ U(0, 2 pi)``.  The event weight
``w(theta) = c0 (1 + theta . a)^2`` is exact at quadratic order, so with terms
``[(0,), (1,), (0, 0), (0, 1), (1, 1)]`` the per-event coefficients are
``c_A = c0 (2 a_1, 2 a_2, a_1^2, 2 a_1 a_2, a_2^2)``.  They are noisy (phi), but
the latent averages out analytically:

    R_(0,)  = 2 f_1 = z                  R_(0,0) = f_1^2 + s_1^2 / 2 = 0.295 z^2
    R_(1,)  = 2 f_2 = 0.8 cos            R_(1,1) = f_2^2 + s_2^2 / 2 = 0.045 + 0.115 cos^2
    R_(0,1) = 2 f_1 f_2 = 0.4 z cos

and ``r(x|theta) = 1 + sum_A R_A(x) m_A(theta) = (1 + theta . f)^2
+ (theta_1 s_1)^2 / 2 + (theta_2 s_2)^2 / 2 >= 0``.  The ``c_angle``
interference is odd in ``cos``: it changes shapes, not the total rate.

**Systematics** (shape nuisances nu = (``jes``, ``theory``), both processes):

* ``jes`` (scale type): the observed ``jet_pt`` is the true one times
  ``s = 1 + delta nu_jes`` (``delta = jes_uncertainty`` = 0.05).
* ``theory`` (weight type, latent dependent): each event's weight is multiplied
  by ``exp(nu_t eps_p (2 z - 1) + nu_t eta_p(pT_true) u)`` with a latent
  ``u ~ N(0, 1)`` and ``eta_p(pT) = eta_max,p pT / (pT + 100)``
  (signal: ``eps = 0.1, eta_max = 0.3``; background: ``eps = -0.1, eta_max = 0.2``).

The exact shape log-ratio of a process (``pT_true = pT / s``, ``k`` and
``scale(m)`` the process's pT Gamma parameters) is

    log dsigma(x|nu)/dsigma(x|0) = -k log s + pT / scale(m) (1 - 1/s)
                                   + nu_t eps (2 z - 1) + nu_t^2 eta(pT / s)^2 / 2

(not a polynomial in ``nu_jes``: a quadratic BPT approximates it).

**Normalisation**: the background yield is multiplied by
``(1 + kappa)^nu_norm`` (``kappa = background_norm_uncertainty`` = 0.2).

Because the EFT acts on (``mass``, ``cos_theta``) only and the latent variables
are independent, the full model factorises exactly as in docs/math.md section 3:
``dsigma_p(x|theta, nu) = alpha_p(nu_norm) r_p(x|theta) S_p(x|nu) dsigma_p(x|SM)``.

Module-level functions use a default :class:`ToyPhysics` instance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln, roots_genlaguerre, roots_legendre
from sklearn.utils import Bunch

from ._terms import make_terms, monomials

__all__ = [
    "ToyPhysics",
    "make_eft_signal",
    "make_background",
    "make_process_sample",
    "make_systematic_samples",
    "make_classification_sample",
    "make_observed",
    "true_coefficients",
    "true_ratio",
    "true_log_ratio",
    "true_fractions",
    "true_log_density",
    "true_full_ratio",
    "normalisation_factor",
    "expected_yield",
    "default_nu_values",
    "FEATURE_NAMES",
    "PARAMETER_NAMES",
    "NUISANCE_NAMES",
    "PROCESSES",
]

FEATURE_NAMES = ("jet_pt", "cos_theta", "mass", "noise_gauss", "noise_flat")
PARAMETER_NAMES = ("c_energy", "c_angle")
NUISANCE_NAMES = ("jes", "theory")
PROCESSES = ("signal", "background")

_PT, _COS, _MASS, _NG, _NF = range(5)
_M_MIN = 200.0          # GeV, mass threshold
_E_REF = 1000.0         # GeV, z = m / E_REF
_PT_REF = 100.0         # GeV, eta(pT) = eta_max pT / (pT + PT_REF)


@dataclass(frozen=True)
class _Process:
    m_shape: float
    m_scale: float
    angular: float          # p(cos) proportional to 1 + angular * cos^2
    pt_shape: float
    pt_scale0: float
    pt_scale1: float        # pT | m ~ Gamma(pt_shape, pt_scale0 + pt_scale1 * m)
    theory_tilt: float      # eps
    theory_spread: float    # eta_max
    eft: bool


_SIGNAL = _Process(m_shape=2.0, m_scale=150.0, angular=1.0, pt_shape=2.0, pt_scale0=20.0,
                   pt_scale1=0.1, theory_tilt=0.1, theory_spread=0.3, eft=True)
_BACKGROUND = _Process(m_shape=1.0, m_scale=120.0, angular=0.0, pt_shape=1.5, pt_scale0=15.0,
                       pt_scale1=0.08, theory_tilt=-0.1, theory_spread=0.2, eft=False)


# --------------------------------------------------------------------------- helpers
def _rng(random_state):
    """numpy Generator from None, an int, a SeedSequence, a Generator or a RandomState."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2**31 - 1))
    return np.random.default_rng(random_state)


def _check_X(X):
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] < 3:
        raise ValueError("X must be 2-d with the toy's feature columns "
                         f"{list(FEATURE_NAMES)} (at least the first 3), got shape {X.shape}")
    return X


def _points(point, size, name):
    """(size,) -> ((1, size), True); (M, size) -> ((M, size), False)."""
    arr = np.asarray(point, dtype=np.float64)
    if arr.ndim == 0 and size == 1:
        arr = arr.reshape(1)
    if arr.ndim not in (1, 2) or arr.shape[-1] != size:
        raise ValueError(f"{name} must have shape ({size},) or (M, {size}), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    return np.atleast_2d(arr), arr.ndim == 1


def _check_n(n, name="n"):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{name} must be a positive integer, got {n!r}")
    return int(n)


def _sample_angle(a, n, rng):
    """cos with density proportional to 1 + a cos^2 on [-1, 1] (inverse CDF)."""
    u = rng.random(n)
    if a == 0.0:
        return 2.0 * u - 1.0
    # CDF: (c + a c^3 / 3 + 1 + a / 3) / (2 + 2 a / 3) = u  ->  c^3 + p c + q = 0
    p = 3.0 / a
    q = -(3.0 / a) * ((2.0 + 2.0 * a / 3.0) * u - 1.0 - a / 3.0)
    disc = np.sqrt(q * q / 4.0 + p ** 3 / 27.0)
    return np.cbrt(-q / 2.0 + disc) + np.cbrt(-q / 2.0 - disc)


def _log_gamma_pdf(x, k, scale):
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (k - 1.0) * np.log(x) - x / scale - gammaln(k) - k * np.log(scale)
    return np.where(x > 0, out, -np.inf)


# --------------------------------------------------------------------------- the model
class ToyPhysics:
    """Toy collider process with an EFT signal, a background and two shape systematics.

    See the module docstring for the distributions and the exact truth.

    Parameters
    ----------
    signal_yield : float, default=1000.0
        Expected number of signal events in the SM (sum of the signal weights).
    background_yield : float, default=2000.0
        Expected number of background events at nominal normalisation.
    jes_uncertainty : float, default=0.05
        ``delta`` in the jet-pT scale factor ``s = 1 + delta * nu_jes``.
    background_norm_uncertainty : float, default=0.2
        ``kappa`` in the background normalisation factor ``(1 + kappa)^nu_norm``.

    Attributes
    ----------
    feature_names : tuple of str
    parameter_names : tuple of str
        The SMEFT parameters theta (P = 2).
    nuisance_names : tuple of str
        The shape nuisances nu = (jes, theory) (K = 2).
    terms : list of tuples
        ``[(0,), (1,), (0, 0), (0, 1), (1, 1)]``, the order of ``y[:, 1:]`` and of
        :meth:`true_coefficients`.
    processes : tuple of str
        ``("signal", "background")``; class labels 0 and 1 of
        :meth:`make_classification_sample` and columns of :meth:`true_fractions`.
    """

    feature_names = FEATURE_NAMES
    parameter_names = PARAMETER_NAMES
    nuisance_names = NUISANCE_NAMES
    processes = PROCESSES

    def __init__(self, signal_yield=1000.0, background_yield=2000.0, jes_uncertainty=0.05,
                 background_norm_uncertainty=0.2):
        for name, v in (("signal_yield", signal_yield), ("background_yield", background_yield)):
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be positive, got {v!r}")
        if not (np.isfinite(jes_uncertainty) and jes_uncertainty >= 0):
            raise ValueError(f"jes_uncertainty must be >= 0, got {jes_uncertainty!r}")
        if not (np.isfinite(background_norm_uncertainty) and background_norm_uncertainty > -1):
            raise ValueError("background_norm_uncertainty must be > -1, got "
                             f"{background_norm_uncertainty!r}")
        self.signal_yield = float(signal_yield)
        self.background_yield = float(background_yield)
        self.jes_uncertainty = float(jes_uncertainty)
        self.background_norm_uncertainty = float(background_norm_uncertainty)
        self.terms = make_terms(2, 2)
        self._quad = {}

    def __repr__(self):
        return (f"ToyPhysics(signal_yield={self.signal_yield}, "
                f"background_yield={self.background_yield}, "
                f"jes_uncertainty={self.jes_uncertainty}, "
                f"background_norm_uncertainty={self.background_norm_uncertainty})")

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _process(process):
        if process == "signal":
            return _SIGNAL
        if process == "background":
            return _BACKGROUND
        raise ValueError(f"process must be one of {PROCESSES}, got {process!r}")

    def _yield(self, process):
        return self.signal_yield if process == "signal" else self.background_yield

    def _scale(self, nu_jes):
        s = 1.0 + self.jes_uncertainty * np.asarray(nu_jes, dtype=np.float64)
        if np.any(s <= 0):
            raise ValueError(f"jes nuisance gives a non-positive pT scale 1 + "
                             f"{self.jes_uncertainty} * nu_jes (nu_jes = {nu_jes!r})")
        return s

    def _draw_truth(self, process, n, rng, latent_eft=False):
        """True-level variables of n events (the order of the draws is fixed)."""
        pr = self._process(process)
        m = _M_MIN + rng.gamma(pr.m_shape, pr.m_scale, n)
        cos = _sample_angle(pr.angular, n, rng)
        pt = rng.gamma(pr.pt_shape, 1.0, n) * (pr.pt_scale0 + pr.pt_scale1 * m)
        ng = rng.standard_normal(n)
        nf = rng.random(n)
        u = rng.standard_normal(n)                       # latent of the theory systematic
        out = {"pt": pt, "cos": cos, "m": m, "ng": ng, "nf": nf, "u": u}
        if latent_eft:
            out["phi"] = rng.uniform(0.0, 2.0 * np.pi, n)  # latent of the EFT amplitudes
        return out

    def _observe(self, process, truth, nu):
        """Observed X and log weight factor of true-level events at shape point nu (2,)."""
        pr = self._process(process)
        s = float(self._scale(nu[0]))
        X = np.empty((truth["pt"].shape[0], len(FEATURE_NAMES)))
        X[:, _PT] = s * truth["pt"]
        X[:, _COS] = truth["cos"]
        X[:, _MASS] = truth["m"]
        X[:, _NG] = truth["ng"]
        X[:, _NF] = truth["nf"]
        nt = float(nu[1])
        logw = np.zeros(X.shape[0])
        if nt != 0.0:
            z = truth["m"] / _E_REF
            eta = pr.theory_spread * truth["pt"] / (truth["pt"] + _PT_REF)
            logw = nt * pr.theory_tilt * (2.0 * z - 1.0) + nt * eta * truth["u"]
        return X, logw

    def _norm(self, process, nu_norm):
        if process == "signal":
            return 1.0
        nu_norm = float(nu_norm)
        if not np.isfinite(nu_norm):
            raise ValueError(f"nu_norm must be finite, got {nu_norm!r}")
        return (1.0 + self.background_norm_uncertainty) ** nu_norm

    @staticmethod
    def _amplitudes(m, cos):
        z = m / _E_REF
        f1, s1 = 0.5 * z, 0.3 * z
        f2, s2 = 0.4 * cos, 0.3 * np.sqrt(np.clip(1.0 - cos * cos, 0.0, None))
        return f1, s1, f2, s2

    @classmethod
    def _coefficients(cls, m, cos):
        f1, s1, f2, s2 = cls._amplitudes(m, cos)
        return np.stack([2 * f1, 2 * f2, f1 * f1 + 0.5 * s1 * s1, 2 * f1 * f2,
                         f2 * f2 + 0.5 * s2 * s2], axis=-1)

    # ------------------------------------------------------------------ samples
    def make_eft_signal(self, n, random_state=None):
        """Nominal signal events with their SMEFT coefficients (the BIT's training data).

        Parameters
        ----------
        n : int
            Number of events.
        random_state : int, numpy Generator/RandomState or None
            Seed; the same seed gives the same events.

        Returns
        -------
        Bunch with
            X : (n, 5) float64 features (``feature_names``),
            y : (n, 6) float64, the BIT layout: column 0 the SM weight
                ``c0 = signal_yield / n``, then ``c_A`` in ``terms`` order, such that
                ``w(theta) = c0 + sum_A c_A m_A(theta)``,
            truth : (n, 5) true ``R_A(x)`` at ``X`` (:meth:`true_coefficients`),
            terms, feature_names, parameter_names.
        """
        n = _check_n(n)
        rng = _rng(random_state)
        t = self._draw_truth("signal", n, rng, latent_eft=True)
        X, _ = self._observe("signal", t, (0.0, 0.0))
        f1, s1, f2, s2 = self._amplitudes(t["m"], t["cos"])
        a1 = f1 + s1 * np.cos(t["phi"])
        a2 = f2 + s2 * np.sin(t["phi"])
        c0 = self.signal_yield / n
        y = c0 * np.column_stack([np.ones(n), 2 * a1, 2 * a2, a1 * a1, 2 * a1 * a2, a2 * a2])
        return Bunch(X=X, y=y, truth=self.true_coefficients(X), terms=list(self.terms),
                     feature_names=list(FEATURE_NAMES), parameter_names=list(PARAMETER_NAMES))

    def make_process_sample(self, process, n, nu=None, nu_norm=0.0, random_state=None):
        """SM events of one process at a shape point ``nu`` and normalisation ``nu_norm``.

        Parameters
        ----------
        process : {"signal", "background"}
        n : int
            Number of events.
        nu : array-like (2,), optional
            Shape nuisances (jes, theory); default nominal (0, 0).
        nu_norm : float, default=0.0
            Background normalisation nuisance: weights scale by
            ``(1 + background_norm_uncertainty) ** nu_norm`` (no effect on the signal).
        random_state : int, numpy Generator/RandomState or None

        Returns
        -------
        Bunch with X (n, 5), weight (n,) cross-section weights (their sum estimates
        the expected yield), feature_names, process.
        """
        n = _check_n(n)
        self._process(process)
        nu = np.zeros(2) if nu is None else _points(nu, 2, "nu")[0][0]
        rng = _rng(random_state)
        t = self._draw_truth(process, n, rng)
        X, logw = self._observe(process, t, nu)
        w = (self._yield(process) / n) * self._norm(process, nu_norm) * np.exp(logw)
        return Bunch(X=X, weight=w, feature_names=list(FEATURE_NAMES), process=process)

    def make_background(self, n, nu=None, nu_norm=0.0, random_state=None):
        """Background events: ``make_process_sample("background", ...)``."""
        return self.make_process_sample("background", n, nu=nu, nu_norm=nu_norm,
                                        random_state=random_state)

    def make_systematic_samples(self, n_per_point, nu_values=None, process="signal",
                                correlated=True, random_state=None):
        """Base-point samples for a :class:`bpt.BoostedParametricTree` (``fit(X, nu, weight)``).

        Parameters
        ----------
        n_per_point : int
            Events per base point (the nominal included).
        nu_values : array-like (M, 2), optional
            Base points (jes, theory).  The nominal (0, 0) is added first if absent.
            Default :func:`default_nu_values`: (+-1, 0), (+-2, 0), (0, +-1), (0, +-2), (1, 1).
        process : {"signal", "background"}, default="signal"
        correlated : bool, default=True
            Use the same true-level events at every base point (as a real JES
            variation does: the same events with shifted pT); else draw new events
            per point.
        random_state : int, numpy Generator/RandomState or None

        Returns
        -------
        Bunch with
            X : (N, 5) features, N = n_per_point * (number of base points),
            nu : (N, 2) the base point of each event (rows of zeros = nominal),
            weight : (N,) SM cross-section weights (per base point they sum to the
                expected yield at that point),
            base_points : (M', 2) the base points in the order of the blocks of X,
            nuisance_names, feature_names, process.
        """
        n = _check_n(n_per_point, "n_per_point")
        self._process(process)
        pts = default_nu_values() if nu_values is None else _points(nu_values, 2, "nu_values")[0]
        self._scale(pts[:, 0])
        if len(np.unique(pts, axis=0)) != len(pts):
            raise ValueError("nu_values contains duplicate base points")
        nominal = np.all(pts == 0.0, axis=1)
        pts = np.vstack([np.zeros((1, 2)), pts[~nominal]])
        rng = _rng(random_state)
        shared = self._draw_truth(process, n, rng) if correlated else None
        Xs, ws = [], []
        base = self._yield(process) / n
        for p in pts:
            t = shared if correlated else self._draw_truth(process, n, rng)
            X, logw = self._observe(process, t, p)
            Xs.append(X)
            ws.append(base * np.exp(logw))
        return Bunch(X=np.vstack(Xs), nu=np.repeat(pts, n, axis=0), weight=np.concatenate(ws),
                     base_points=pts, nuisance_names=list(NUISANCE_NAMES),
                     feature_names=list(FEATURE_NAMES), process=process)

    def make_classification_sample(self, n_per_process, random_state=None):
        """Nominal signal + background events to learn the SM process fractions.

        A calibrated classifier fitted on ``(X, y, sample_weight)`` estimates
        :meth:`true_fractions` through ``predict_proba``.

        Parameters
        ----------
        n_per_process : int
        random_state : int, numpy Generator/RandomState or None

        Returns
        -------
        Bunch with X (2 n, 5), y (2 n,) int labels (0 = signal, 1 = background),
        sample_weight (2 n,) cross-section weights, target_names, feature_names.
        """
        n = _check_n(n_per_process, "n_per_process")
        rng = _rng(random_state)
        sig = self.make_process_sample("signal", n, random_state=rng)
        bkg = self.make_process_sample("background", n, random_state=rng)
        return Bunch(X=np.vstack([sig.X, bkg.X]),
                     y=np.repeat(np.array([0, 1]), n),
                     sample_weight=np.concatenate([sig.weight, bkg.weight]),
                     target_names=list(PROCESSES), feature_names=list(FEATURE_NAMES))

    def make_observed(self, theta=None, nu=None, nu_norm=0.0, asimov=False, n_pool=200_000,
                      random_state=None):
        """Pseudo-data from the exact model at (theta, nu, nu_norm).

        Parameters
        ----------
        theta : array-like (2,), optional
            SMEFT point (default SM).
        nu : array-like (2,), optional
            Shape nuisances (jes, theory), default (0, 0).
        nu_norm : float, default=0.0
            Background normalisation nuisance.
        asimov : bool, default=False
            If True, return ``n_pool`` simulated events per process weighted by the
            exact expected weight (nominal weight times ``r(x|theta) S(x|nu) alpha``):
            an Asimov data set.  If False, draw ``Poisson(expected_yield)`` events per
            process with unit weights, by resampling ``n_pool`` simulated events
            with probabilities proportional to those exact weights.
        n_pool : int, default=200000
            Simulated events per process.
        random_state : int, numpy Generator/RandomState or None

        Returns
        -------
        Bunch with X (N, 5), weight (N,), process (N,) labels (0 = signal,
        1 = background; for diagnostics only), theta, nu, nu_norm.
        """
        n_pool = _check_n(n_pool, "n_pool")
        theta = np.zeros(2) if theta is None else _points(theta, 2, "theta")[0][0]
        nu = np.zeros(2) if nu is None else _points(nu, 2, "nu")[0][0]
        rng = _rng(random_state)
        Xs, ws, labels = [], [], []
        for label, process in enumerate(PROCESSES):
            s = self.make_process_sample(process, n_pool, random_state=rng)
            w = s.weight * np.exp(self.true_log_ratio(s.X, nu, process=process))
            w = w * self._norm(process, nu_norm)
            if process == "signal":
                w = w * self.true_ratio(s.X, theta)
            if asimov:
                Xs.append(s.X)
                ws.append(w)
                labels.append(np.full(n_pool, label))
            else:
                k = rng.poisson(self.expected_yield(process, theta, nu, nu_norm))
                idx = rng.choice(n_pool, size=k, replace=True, p=w / w.sum())
                Xs.append(s.X[idx])
                ws.append(np.ones(k))
                labels.append(np.full(k, label))
        return Bunch(X=np.vstack(Xs), weight=np.concatenate(ws), process=np.concatenate(labels),
                     theta=theta, nu=nu, nu_norm=float(nu_norm))

    # ------------------------------------------------------------------ truth
    def true_coefficients(self, X):
        """Exact ``R_A(x) = E[c_A|x] / E[c0|x]`` of the signal: (N, 5) in ``terms`` order.

        Parameters
        ----------
        X : array (N, 5)
            Features (uses ``cos_theta`` and ``mass``).
        """
        X = _check_X(X)
        return self._coefficients(X[:, _MASS], X[:, _COS])

    def true_ratio(self, X, theta):
        """Exact ``r(x|theta) = dsigma(x|theta) / dsigma(x|SM)`` of the signal.

        Parameters
        ----------
        X : array (N, 5)
        theta : array-like (2,) or (M, 2)

        Returns
        -------
        (N,) for one point, (N, M) for M points.
        """
        pts, single = _points(theta, 2, "theta")
        r = 1.0 + self.true_coefficients(X) @ monomials(pts, self.terms).T
        return r[:, 0] if single else r

    def true_log_ratio(self, X, nu, process="signal"):
        """Exact shape log-ratio ``log dsigma_p(x|nu) / dsigma_p(x|0)``.

        Parameters
        ----------
        X : array (N, 5)
        nu : array-like (2,) or (M, 2)
            Shape nuisances (jes, theory).
        process : {"signal", "background"}, default="signal"

        Returns
        -------
        (N,) for one point, (N, M) for M points.  The normalisation nuisance is
        not included (see :meth:`normalisation_factor`).
        """
        X = _check_X(X)
        pr = self._process(process)
        pts, single = _points(nu, 2, "nu")
        s = self._scale(pts[:, 0])[None, :]
        nt = pts[:, 1][None, :]
        pt, m = X[:, _PT][:, None], X[:, _MASS][:, None]
        z = m / _E_REF
        pt_true = pt / s
        eta = pr.theory_spread * pt_true / (pt_true + _PT_REF)
        g = (-pr.pt_shape * np.log(s) + pt / (pr.pt_scale0 + pr.pt_scale1 * m) * (1.0 - 1.0 / s)
             + nt * pr.theory_tilt * (2.0 * z - 1.0) + 0.5 * nt * nt * eta * eta)
        return g[:, 0] if single else g

    def true_log_density(self, X, process="signal"):
        """Exact log of the normalised SM density ``p_p(x)`` of a process at nu = 0.

        Parameters
        ----------
        X : array (N, 5)
        process : {"signal", "background"}

        Returns
        -------
        (N,) float64; ``-inf`` outside the support.
        """
        X = _check_X(X)
        if X.shape[1] != len(FEATURE_NAMES):
            raise ValueError(f"X must have {len(FEATURE_NAMES)} columns, got {X.shape[1]}")
        pr = self._process(process)
        m, cos, pt = X[:, _MASS], X[:, _COS], X[:, _PT]
        out = _log_gamma_pdf(m - _M_MIN, pr.m_shape, pr.m_scale)
        inside = np.abs(cos) <= 1.0
        with np.errstate(divide="ignore", invalid="ignore"):
            out = out + np.where(inside, np.log((1.0 + pr.angular * cos ** 2)
                                                / (2.0 + 2.0 * pr.angular / 3.0)), -np.inf)
            out = out + _log_gamma_pdf(pt, pr.pt_shape, pr.pt_scale0 + pr.pt_scale1 * m)
        out = out - 0.5 * X[:, _NG] ** 2 - 0.5 * math.log(2 * math.pi)
        out = out + np.where((X[:, _NF] >= 0) & (X[:, _NF] <= 1), 0.0, -np.inf)
        return out

    def true_fractions(self, X):
        """Exact SM process fractions ``f_p(x) = dsigma_p / sum_q dsigma_q`` at nu = 0.

        Returns
        -------
        (N, 2) columns (signal, background), what ``predict_proba`` of a classifier
        trained on :meth:`make_classification_sample` estimates.
        """
        ls = math.log(self.signal_yield) + self.true_log_density(X, "signal")
        lb = math.log(self.background_yield) + self.true_log_density(X, "background")
        top = np.maximum(ls, lb)
        with np.errstate(invalid="ignore"):
            es, eb = np.exp(ls - top), np.exp(lb - top)
        tot = es + eb
        return np.column_stack([es / tot, eb / tot])

    def true_full_ratio(self, X, theta=None, nu=None, nu_norm=0.0):
        """Exact ``dSigma(x|theta, nu) / dSigma(x|SM, 0)`` of signal + background.

        ``= f_s(x) r(x|theta) S_s(x|nu) + f_b(x) (1 + kappa)^nu_norm S_b(x|nu)``
        (docs/math.md section 3, with exact pieces).

        Parameters
        ----------
        X : array (N, 5)
        theta, nu : array-like (2,), optional (default SM / nominal)
        nu_norm : float, default=0.0

        Returns
        -------
        (N,) float64
        """
        theta = np.zeros(2) if theta is None else _points(theta, 2, "theta")[0][0]
        nu = np.zeros(2) if nu is None else _points(nu, 2, "nu")[0][0]
        f = self.true_fractions(X)
        sig = f[:, 0] * self.true_ratio(X, theta) * np.exp(self.true_log_ratio(X, nu, "signal"))
        bkg = (f[:, 1] * self._norm("background", nu_norm)
               * np.exp(self.true_log_ratio(X, nu, "background")))
        return sig + bkg

    def normalisation_factor(self, nu_norm, process="background"):
        """Yield factor ``alpha_p(nu_norm)`` of a process.

        Parameters
        ----------
        nu_norm : float
            Normalisation nuisance.
        process : {"signal", "background"}, default="background"

        Returns
        -------
        float
            ``(1 + background_norm_uncertainty) ** nu_norm`` for the background,
            1 for the signal (its rate is fixed by theta).
        """
        self._process(process)
        return self._norm(process, nu_norm)

    def expected_yield(self, process="signal", theta=None, nu=None, nu_norm=0.0):
        """Exact expected number of events of a process at (theta, nu, nu_norm).

        Computed by Gauss quadrature of the closed-form densities (relative
        accuracy far below 1e-6 for |nu| <~ 5).  ``jes`` leaves yields unchanged;
        ``theory`` and ``theta`` change them.

        Parameters
        ----------
        process : {"signal", "background"}, default="signal"
        theta : array-like (2,), optional
            SMEFT point (signal only; default SM).
        nu : array-like (2,), optional
            Shape nuisances (jes, theory), default (0, 0).
        nu_norm : float, default=0.0

        Returns
        -------
        float
        """
        pr = self._process(process)
        theta = np.zeros(2) if theta is None else _points(theta, 2, "theta")[0][0]
        nu = np.zeros(2) if nu is None else _points(nu, 2, "nu")[0][0]
        self._scale(nu[0])
        m, wm, c, wc, t, wt = self._nodes(process)
        nt = nu[1]
        # E_SM[ r(m, c|theta) exp(nt eps (2z - 1)) E_{pT|m}[exp(nt^2 eta(pT)^2 / 2)] ]
        pt = (pr.pt_scale0 + pr.pt_scale1 * m)[:, None] * t[None, :]          # (nm, nt)
        eta = pr.theory_spread * pt / (pt + _PT_REF)
        e_pt = np.exp(0.5 * nt * nt * eta * eta) @ wt                         # (nm,)
        tilt = np.exp(nt * pr.theory_tilt * (2.0 * m / _E_REF - 1.0))        # (nm,)
        if pr.eft:
            mm, cc = np.meshgrid(m, c, indexing="ij")
            R = self._coefficients(mm, cc)                                   # (nm, nc, 5)
            r = 1.0 + R @ monomials(theta, self.terms)
        else:
            r = np.ones((m.shape[0], c.shape[0]))
        e = np.einsum("i,ij,j->", wm * tilt * e_pt, r, wc)
        return float(self._yield(process) * self._norm(process, nu_norm) * e)

    def _nodes(self, process, n=80):
        if process not in self._quad:
            pr = self._process(process)
            xm, wm = roots_genlaguerre(n, pr.m_shape - 1.0)
            wm = wm / math.gamma(pr.m_shape)
            xc, wc = roots_legendre(48)
            wc = wc * (1.0 + pr.angular * xc ** 2) / (2.0 + 2.0 * pr.angular / 3.0)
            xt, wt = roots_genlaguerre(n, pr.pt_shape - 1.0)
            wt = wt / math.gamma(pr.pt_shape)
            self._quad[process] = (_M_MIN + pr.m_scale * xm, wm, xc, wc, xt, wt)
        return self._quad[process]


def default_nu_values():
    """Default BPT base points (jes, theory): (+-1, 0), (+-2, 0), (0, +-1), (0, +-2), (1, 1).

    They determine every term of a quadratic model in two nuisances.
    """
    return np.array([[1.0, 0.0], [-1.0, 0.0], [2.0, 0.0], [-2.0, 0.0],
                     [0.0, 1.0], [0.0, -1.0], [0.0, 2.0], [0.0, -2.0], [1.0, 1.0]])


# --------------------------------------------------------------------------- module API
_DEFAULT = ToyPhysics()


def make_eft_signal(n, random_state=None):
    """Nominal EFT signal events with SMEFT coefficients; see :meth:`ToyPhysics.make_eft_signal`."""
    return _DEFAULT.make_eft_signal(n, random_state=random_state)


def make_background(n, nu=None, nu_norm=0.0, random_state=None):
    """Background events; see :meth:`ToyPhysics.make_background`."""
    return _DEFAULT.make_background(n, nu=nu, nu_norm=nu_norm, random_state=random_state)


def make_process_sample(process, n, nu=None, nu_norm=0.0, random_state=None):
    """SM events of one process; see :meth:`ToyPhysics.make_process_sample`."""
    return _DEFAULT.make_process_sample(process, n, nu=nu, nu_norm=nu_norm,
                                        random_state=random_state)


def make_systematic_samples(n_per_point, nu_values=None, process="signal", correlated=True,
                            random_state=None):
    """BPT base-point samples; see :meth:`ToyPhysics.make_systematic_samples`."""
    return _DEFAULT.make_systematic_samples(n_per_point, nu_values=nu_values, process=process,
                                            correlated=correlated, random_state=random_state)


def make_classification_sample(n_per_process, random_state=None):
    """Signal + background with labels; see :meth:`ToyPhysics.make_classification_sample`."""
    return _DEFAULT.make_classification_sample(n_per_process, random_state=random_state)


def make_observed(theta=None, nu=None, nu_norm=0.0, asimov=False, n_pool=200_000,
                  random_state=None):
    """Pseudo-data from the exact model; see :meth:`ToyPhysics.make_observed`."""
    return _DEFAULT.make_observed(theta=theta, nu=nu, nu_norm=nu_norm, asimov=asimov,
                                  n_pool=n_pool, random_state=random_state)


def true_coefficients(X):
    """Exact R_A(x) of the toy signal (N, 5); see :meth:`ToyPhysics.true_coefficients`."""
    return _DEFAULT.true_coefficients(X)


def true_ratio(X, theta):
    """Exact r(x|theta) of the toy signal; see :meth:`ToyPhysics.true_ratio`."""
    return _DEFAULT.true_ratio(X, theta)


def true_log_ratio(X, nu, process="signal"):
    """Exact log dsigma(x|nu)/dsigma(x|0); see :meth:`ToyPhysics.true_log_ratio`."""
    return _DEFAULT.true_log_ratio(X, nu, process=process)


def true_log_density(X, process="signal"):
    """Exact normalised SM log-density; see :meth:`ToyPhysics.true_log_density`."""
    return _DEFAULT.true_log_density(X, process=process)


def true_fractions(X):
    """Exact SM process fractions (N, 2); see :meth:`ToyPhysics.true_fractions`."""
    return _DEFAULT.true_fractions(X)


def true_full_ratio(X, theta=None, nu=None, nu_norm=0.0):
    """Exact dSigma(x|theta, nu)/dSigma(x|SM, 0); see :meth:`ToyPhysics.true_full_ratio`."""
    return _DEFAULT.true_full_ratio(X, theta=theta, nu=nu, nu_norm=nu_norm)


def normalisation_factor(nu_norm, process="background"):
    """(1 + kappa)^nu_norm; see :meth:`ToyPhysics.normalisation_factor`."""
    return _DEFAULT.normalisation_factor(nu_norm, process=process)


def expected_yield(process="signal", theta=None, nu=None, nu_norm=0.0):
    """Exact expected yield; see :meth:`ToyPhysics.expected_yield`."""
    return _DEFAULT.expected_yield(process, theta=theta, nu=nu, nu_norm=nu_norm)
