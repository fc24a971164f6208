"""Pseudo-data (docs/math.md, section 4) and the toy-coverage task, plus joblib helpers.

A toy at (theta, nu) draws N ~ Poisson(sum_i w_i(theta, nu)) events from the
simulation with probabilities proportional to the expected weights w_i(theta, nu).
That is the same distribution as drawing every simulated event independently
n_i ~ Poisson(w_i(theta, nu)) times, which is how it is done here: a toy is the set
of drawn events with their multiplicities as weights.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import joblib
import numpy as np

from ._dataset import Dataset
from ._fit import BETTER_TOL, maximize
from ._interval import ONE_SIGMA_CL, critical_value
from ._likelihood import RateError
from ._progress import check_verbose, progress

__all__ = ["CoverageResult", "PseudoData", "ToyStatistics", "ToyGenerator", "UnbinnedToys",
           "seed_sequences", "n_tasks", "run_tasks", "toys_task", "coverage_task", "draw_toy",
           "sampler_task", "toy_t", "check_expected"]


@dataclass
class CoverageResult:
    """Toy coverage of a Wilks region.

    Attributes
    ----------
    coverage : fraction of toys with t(theta_true) < critical_value
    error : binomial standard error of ``coverage``
    t : (n_toys,) profiled t(theta_true) of each toy
    critical_value : chi2 quantile used (cl, degrees of freedom = number of tested POIs)
    cl : float, n_toys : int
    theta_hat : (n_toys, P) MLE of each toy
    success : (n_toys,) both fits of the toy converged
    """
    coverage: float
    error: float
    t: np.ndarray = field(repr=False)
    critical_value: float
    cl: float
    n_toys: int
    theta_hat: np.ndarray = field(repr=False)
    success: np.ndarray = field(repr=False)


def seed_sequences(random_state, n):
    """n independent SeedSequences from an int, None, SeedSequence, Generator or RandomState."""
    if isinstance(random_state, np.random.SeedSequence):
        ss = random_state
    elif isinstance(random_state, np.random.Generator):
        ss = np.random.SeedSequence(int(random_state.integers(2 ** 63)))
    elif isinstance(random_state, np.random.RandomState):
        ss = np.random.SeedSequence(int(random_state.randint(2 ** 31)))
    elif random_state is None or isinstance(random_state, numbers.Integral):
        ss = np.random.SeedSequence(random_state)
    else:
        raise ValueError("random_state must be None, an int, a SeedSequence, a Generator or a "
                         f"RandomState, got {type(random_state).__name__}")
    return ss.spawn(n)


def n_tasks(n_jobs, n_items):
    """How many chunks to split the work into: the given positive n_jobs (so results do
    not depend on the backend), else what joblib's current configuration gives."""
    if n_jobs is not None and (not isinstance(n_jobs, numbers.Integral) or n_jobs == 0):
        raise ValueError(f"n_jobs must be a non-zero integer or None, got {n_jobs!r}")
    n = int(n_jobs) if (n_jobs is not None and n_jobs > 0) else joblib.effective_n_jobs(n_jobs)
    return max(1, min(int(n), n_items))


def run_tasks(fn, chunks, n_jobs, *args, bar=None):
    """Run fn(*args, chunk, parallel) per chunk; in-process (numba-parallel) for one chunk,
    else through joblib (serial kernels inside each task).

    ``bar`` (a ``_progress.Progress``): in-process, ``fn`` gets ``report=bar.update``
    (called per item); through joblib the bar advances by a chunk's length as each
    chunk finishes.
    """
    if len(chunks) == 1:
        if bar is None:
            return [fn(*args, chunks[0], True)]
        return [fn(*args, chunks[0], True, report=bar.update)]
    if bar is None:
        return joblib.Parallel(n_jobs=n_jobs)(joblib.delayed(fn)(*args, c, False)
                                              for c in chunks)
    out = []
    results = joblib.Parallel(n_jobs=n_jobs, return_as="generator")(
        joblib.delayed(fn)(*args, c, False) for c in chunks)
    for c, r in zip(chunks, results):
        out.append(r)
        bar.update(len(c))
    return out


def check_expected(w_exp, negative_weights, where):
    if negative_weights not in ("raise", "signed"):
        raise ValueError(f"negative_weights must be 'raise' or 'signed', got {negative_weights!r}")
    if not np.all(np.isfinite(w_exp)):
        raise ValueError(f"the expected weights at {where} are not finite")
    neg = w_exp < 0
    if neg.any() and negative_weights == "raise":
        raise ValueError(
            f"{int(neg.sum())} simulated event(s) have a negative expected weight at {where} "
            f"(sum of negative weights {w_exp[neg].sum():.6g}, total {w_exp.sum():.6g}); toys "
            "cannot draw them with a negative probability.  Pass negative_weights='signed' to "
            "draw each event Poisson(|w|) times and give the draws of negative events weight -1")
    if not w_exp.sum() > 0:
        raise ValueError(f"the expected yield at {where} is not positive ({w_exp.sum():.6g})")


class UnbinnedToys:
    """Draws toys of an unbinned channel: every simulated event n_i ~ Poisson(|w_i|) times
    (sign of w_i per draw when ``signed``); a toy is (coef, rows, multiplicities)."""

    def __init__(self, coef, w_exp, signed):
        self.coef, self.w_exp, self.signed = coef, w_exp, bool(signed)

    def draw_channel(self, rng):
        counts = rng.poisson(np.abs(self.w_exp))
        rows = np.flatnonzero(counts)
        weight = counts[rows].astype(np.float64)
        if self.signed:
            weight *= np.sign(self.w_exp[rows])
        return (self.coef, rows.astype(np.int64), weight, None)


def draw_toy(w_exp, seed, signed, nu_true, gaussian):
    """(rows, weight, global observables) of one unbinned toy from a seed: the events of
    :class:`UnbinnedToys` then the global observables of :class:`ToyGenerator` (the same
    draws as ``toys`` / ``coverage`` of a single unbinned channel)."""
    rng = np.random.default_rng(seed)
    _, rows, weight, _ = UnbinnedToys(None, w_exp, signed).draw_channel(rng)
    aux = np.where(gaussian, nu_true + rng.standard_normal(nu_true.shape[0]), 0.0)
    return rows, weight, aux


class ToyGenerator:
    """A model's toy: its channel(s) drawn in order, then the global observables of the
    Gaussian-constrained nuisances from N(nu_true, 1) (free-floating ones get 0).

    ``channels``: objects with ``draw_channel(rng) -> channel data``; ``combine``: None
    (a single channel: its data with the global observables as item 3) or a callable
    (list of channel data, aux) -> the model's data tuple.
    """

    def __init__(self, channels, nu_true, gaussian, combine=None):
        self.channels = channels
        self.nu_true = np.asarray(nu_true, dtype=np.float64)
        self.gaussian = np.asarray(gaussian, dtype=bool)
        self.combine = combine

    def draw(self, seed):
        rng = np.random.default_rng(seed)
        parts = [c.draw_channel(rng) for c in self.channels]
        aux = np.where(self.gaussian, self.nu_true + rng.standard_normal(self.nu_true.shape[0]),
                       0.0)
        if self.combine is None:
            return parts[0][:3] + (aux,)
        return self.combine(parts, aux)


def toys_task(gen, seeds, parallel, report=None):
    out = []
    for s in seeds:
        out.append(gen.draw(s))
        if report is not None:
            report(1)
    return out


def toy_t(lik, data, fixed, values, z_true, parallel):
    """(t(theta_true), MLE z, success) of one pseudo-dataset.

    The MLE starts from z = 0 and from the truth (the best wins); the profile at the
    true POIs starts from the MLE (or the truth).  A profile above the MLE (t < 0 beyond
    the optimiser's tolerance) proves the MLE was a local maximum: the MLE is recomputed
    from the profiled point instead of clamping t.
    """
    n_par = lik.n_par
    free_all = np.ones(n_par, dtype=bool)
    free_prof = free_all.copy()
    free_prof[fixed] = False
    best = maximize(lik, data, np.zeros(n_par), free_all, parallel)
    try:
        other = maximize(lik, data, z_true, free_all, parallel)
        if other.q > best.q + BETTER_TOL:
            best = other
    except RateError:
        pass
    start = best.z.copy()
    start[fixed] = values
    try:
        prof = maximize(lik, data, start, free_prof, parallel)
    except RateError:
        prof = maximize(lik, data, z_true, free_prof, parallel)
    ok = best.success and prof.success
    if prof.q > best.q + BETTER_TOL:
        best = maximize(lik, data, prof.z, free_all, parallel)
        ok = ok and best.success
    t = -2.0 * (prof.q - best.q)
    if t < 0.0:
        t = 0.0                           # within the optimiser's tolerance of 0
    return t, best.z, ok


def coverage_task(lik, gen, fixed, values, z_true, seeds, parallel, report=None):
    """For each toy of the generator: :func:`toy_t`."""
    out_t = np.empty(len(seeds))
    out_theta = np.empty((len(seeds), lik.n_pois))
    ok = np.zeros(len(seeds), dtype=bool)
    for k, seed in enumerate(seeds):
        t, z_hat, ok[k] = toy_t(lik, gen.draw(seed), fixed, values, z_true, parallel)
        out_t[k], out_theta[k] = t, z_hat[:lik.n_pois]
        if report is not None:
            report(1)
    return out_t, out_theta, ok


def sampler_task(model, sampler, fixed, values, z_true, seeds, parallel, report=None):
    """For each toy taken from ``sampler(rng)``: :func:`toy_t` (coefficients computed here)."""
    lik = model.likelihood_
    out_t = np.empty(len(seeds))
    out_theta = np.empty((len(seeds), lik.n_pois))
    ok = np.zeros(len(seeds), dtype=bool)
    for k, seed in enumerate(seeds):
        rng = np.random.default_rng(seed)
        drawn = sampler(rng)
        nu_true = z_true[lik.n_pois:]
        aux = np.where(lik.gaussian, nu_true + rng.standard_normal(nu_true.shape[0]), 0.0)
        data = model._sampled_data(drawn, aux)
        t, z_hat, ok[k] = toy_t(lik, data, fixed, values, z_true, parallel)
        out_t[k], out_theta[k] = t, z_hat[:lik.n_pois]
        if report is not None:
            report(1)
    return out_t, out_theta, ok


class ToyStatistics:
    """Toys and coverage of any model (one code path): the model provides
    ``_toy_generator(z, negative_weights)`` (a :class:`ToyGenerator`), ``_wrap_toy(data)``
    (the user-facing pseudo-dataset) and ``_sampled_data(drawn, aux)`` (the data tuple
    of what a ``data_sampler`` returned)."""

    def toys(self, theta, nu, n_toys, random_state=None, n_jobs=None, negative_weights="raise",
             verbose=0):
        """Pseudo-datasets at (theta, nu) (docs/math.md, section 4).

        Unbinned channels: every simulated event is drawn n_i ~ Poisson(w_i(theta, nu))
        times (equivalently N ~ Poisson(sigma) events drawn with probability
        proportional to the expected weight); a toy holds the drawn events with their
        multiplicities as ``weight``.  Binned channels: counts n_b ~ Poisson(nu_b(theta,
        nu)).  The global observables (the auxiliary measurements of the Gaussian
        constraints) are drawn from N(nu, 1).
        Events with a negative expected weight make this impossible: by default a
        ValueError; ``negative_weights="signed"`` draws them Poisson(|w|) times with
        weight -1 per draw.  ``verbose``: progress (docs/inference.md).
        """
        verbose = check_verbose(verbose)
        n_toys = _check_n_toys(n_toys)
        z = self._point(theta, nu)
        gen = self._toy_generator(z, negative_weights)
        seeds = seed_sequences(random_state, n_toys)
        chunks = np.array_split(np.arange(n_toys), n_tasks(n_jobs, n_toys))
        with progress(n_toys, "toys", verbose) as bar:
            parts = run_tasks(toys_task, [[seeds[i] for i in c] for c in chunks], n_jobs, gen,
                              bar=bar)
        return [self._wrap_toy(data) for part in parts for data in part]

    def coverage(self, theta_true, nu_true, n_toys, cl=ONE_SIGMA_CL, poi=None,
                 random_state=None, n_jobs=None, negative_weights="raise", data_sampler=None,
                 verbose=0):
        """Toy coverage of the Wilks region at ``cl`` (default one sigma, 0.6827).

        For each toy: the MLE (the best of the starts z = 0 and the truth) and the
        profile at the true value of the tested POIs (``poi``: default all POIs, the joint
        region; an int / name: that POI's interval, the others profiled).  The region
        covers when t(theta_true) < chi2.ppf(cl, n_tested); for one POI this is the
        interval of :meth:`interval` containing theta_true.  A toy whose profile beats
        its MLE (t < 0) gets its MLE recomputed from the profiled point (no clamping).

        Toys: by default drawn from this model's own simulation at (theta_true, nu_true)
        as :meth:`toys` (so the coverage cannot see the uncertainty of the simulation and
        of the learned pieces).  ``data_sampler``: a callable ``sampler(rng)`` returning
        one toy's data in the form the model's ``fit`` accepts (``X`` or ``(X, weight)``
        for an AdditiveModel, counts for a BinnedChannel, a dict for a Combination),
        taking each toy's events from an independent source (a separate simulation, a
        generator with exact truth); ``rng`` is a numpy Generator seeded per toy.  The
        Gaussian constraints' global observables are drawn from N(nu_true, 1) either way.
        Returns a :class:`CoverageResult`.  Runs through joblib like :meth:`scan`;
        ``verbose``: progress (one step per toy).
        """
        verbose = check_verbose(verbose)
        n_toys = _check_n_toys(n_toys)
        lik = self.likelihood_
        z_true = self._point(theta_true, nu_true)
        fixed = self._fixed_pois(poi)
        crit = critical_value(cl, fixed.shape[0])
        seeds = seed_sequences(random_state, n_toys)
        chunks = np.array_split(np.arange(n_toys), n_tasks(n_jobs, n_toys))
        seed_chunks = [[seeds[i] for i in c] for c in chunks]
        if data_sampler is not None:
            if not callable(data_sampler):
                raise ValueError(f"data_sampler must be callable (rng -> X or (X, weight)), "
                                 f"got {type(data_sampler).__name__}")
            task, args = sampler_task, (self, data_sampler)
        else:
            task, args = coverage_task, (lik, self._toy_generator(z_true, negative_weights))
        with progress(n_toys, "coverage", verbose) as bar:
            parts = run_tasks(task, seed_chunks, n_jobs, *args, fixed, z_true[fixed], z_true,
                              bar=bar)
        t = np.concatenate([p[0] for p in parts])
        theta_hat = np.concatenate([p[1] for p in parts])
        ok = np.concatenate([p[2] for p in parts])
        frac = float(np.mean(t < crit))
        err = float(np.sqrt(frac * (1 - frac) / n_toys))
        return CoverageResult(frac, err, t, crit, float(cl), n_toys, theta_hat, ok)


class PseudoData:
    """The pseudo-data methods of :class:`AdditiveModel` (expected weights, Asimov data)
    and its hooks for :class:`ToyStatistics`."""

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

    def _channel_toys(self, z, negative_weights):
        comp = self._compile()
        w_exp = np.concatenate(comp["lik"].expected_weights(z, comp["blocks"]))
        check_expected(w_exp, negative_weights, comp["lik"].describe(z))
        return UnbinnedToys(comp["coef"], w_exp, negative_weights == "signed")

    def _toy_generator(self, z, negative_weights):
        return ToyGenerator([self._channel_toys(z, negative_weights)], z[self.n_pois:],
                            self.likelihood_.gaussian)

    def _wrap_toy(self, data):
        comp = self._compile()
        coef, rows, weight, aux = data
        return Dataset(self, coef, weight, rows, source_X=comp["X"], global_observables=aux)

    def _sampled_data(self, drawn, aux):
        X, weight = drawn if isinstance(drawn, tuple) else (drawn, None)
        return self.prepare(X, weight, global_observables=aux).arrays()


def _check_n_toys(n_toys):
    if isinstance(n_toys, bool) or not isinstance(n_toys, numbers.Integral) or n_toys < 1:
        raise ValueError(f"n_toys must be a positive integer, got {n_toys!r}")
    return int(n_toys)
