"""Pseudo-data (MATH.md section 4) and the toy-coverage task, plus joblib helpers.

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

from ._fit import maximize
from ._likelihood import RateError

__all__ = ["CoverageResult", "seed_sequences", "n_tasks", "run_tasks", "draw_toy",
           "toys_task", "coverage_task", "check_expected"]


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


def run_tasks(fn, chunks, n_jobs, *args):
    """Run fn(*args, chunk, parallel) per chunk; in-process (numba-parallel) for one chunk,
    else through joblib (serial kernels inside each task)."""
    if len(chunks) == 1:
        return [fn(*args, chunks[0], True)]
    return joblib.Parallel(n_jobs=n_jobs)(joblib.delayed(fn)(*args, c, False) for c in chunks)


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


def draw_toy(w_exp, seed, signed, nu_true, gaussian):
    """(rows, weight, global observables) of one toy.

    The auxiliary measurement of every Gaussian-constrained nuisance is drawn from
    N(nu_true, 1); free-floating nuisances have none (0).
    """
    rng = np.random.default_rng(seed)
    counts = rng.poisson(np.abs(w_exp))
    rows = np.flatnonzero(counts)
    weight = counts[rows].astype(np.float64)
    if signed:
        weight *= np.sign(w_exp[rows])
    aux = np.where(gaussian, nu_true + rng.standard_normal(nu_true.shape[0]), 0.0)
    return rows.astype(np.int64), weight, aux


def toys_task(w_exp, signed, nu_true, gaussian, seeds, parallel):
    return [draw_toy(w_exp, s, signed, nu_true, gaussian) for s in seeds]


def coverage_task(lik, coef, w_exp, signed, fixed, values, z_true, seeds, parallel):
    """For each toy: MLE from z = 0, profile at the true POIs, t = -2 (q_prof - q_max)."""
    n_par = lik.n_par
    free_all = np.ones(n_par, dtype=bool)
    free_prof = free_all.copy()
    free_prof[fixed] = False
    out_t = np.empty(len(seeds))
    out_theta = np.empty((len(seeds), lik.n_pois))
    ok = np.zeros(len(seeds), dtype=bool)
    for k, seed in enumerate(seeds):
        rows, weight, aux = draw_toy(w_exp, seed, signed, z_true[lik.n_pois:], lik.gaussian)
        data = (coef, rows, weight, aux)
        z_hat, q_max, _, _, s1, _, _ = maximize(lik, data, np.zeros(n_par), free_all, parallel)
        start = z_hat.copy()
        start[fixed] = values
        try:
            _, q, _, _, s2, _, _ = maximize(lik, data, start, free_prof, parallel)
        except RateError:
            _, q, _, _, s2, _, _ = maximize(lik, data, z_true, free_prof, parallel)
        out_t[k] = max(-2.0 * (q - q_max), 0.0)
        out_theta[k] = z_hat[:lik.n_pois]
        ok[k] = s1 and s2
    return out_t, out_theta, ok
