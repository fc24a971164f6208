"""The uncertainty of the learned pieces: bootstrap replicas (docs/inference.md).

A learned piece (the ratio R_A of a BoostedInformationTree, the Delta_A of a
BoostedParametricTree, the fraction classifier) comes from a finite training sample.
``bootstrap_fit`` refits a clone of it on Poisson(1)-bootstrap weights of that sample,
B times; :class:`Replicas` swaps the replicas into the model and measures how far the
MLE moves; :meth:`Replicas.interval` adds that spread to the statistical interval.
"""

from __future__ import annotations

import copy
import numbers
from dataclasses import dataclass, field

import joblib
import numpy as np
from sklearn.base import clone

from ._dataset import Dataset
from ._interval import ONE_SIGMA_CL, critical_value
from ._model import AdditiveModel
from ._toys import CoverageResult, n_tasks, seed_sequences

__all__ = ["bootstrap_fit", "Replicas", "ReplicaInterval"]


def _fit_one(estimator, X, args, kwargs, weight, seed):
    rng = np.random.default_rng(seed)
    counts = rng.poisson(1.0, X.shape[0]).astype(np.float64)
    return clone(estimator).fit(X, *args, sample_weight=weight * counts, **kwargs)


def bootstrap_fit(estimator, X, *fit_args, sample_weight=None, n_replicas=20,
                  random_state=None, n_jobs=None, **fit_kwargs):
    """B clones of ``estimator`` fitted on Poisson-bootstrap weights of its training sample.

    Replica b is ``sklearn.base.clone(estimator).fit(X, *fit_args, sample_weight=w * k_b,
    **fit_kwargs)`` with k_b,i ~ Poisson(1) independently per event (the bootstrap of a
    weighted sample that keeps every event's row, so ``fit_args`` such as ``y`` or
    ``nu`` need no resampling).  ``sample_weight`` None = unit weights.  The fits run
    through joblib (``n_jobs``; ``with joblib.parallel_config(backend="dask"):`` sends
    them to a dask cluster); the result depends only on ``random_state``.
    """
    if isinstance(n_replicas, bool) or not isinstance(n_replicas, numbers.Integral) \
            or n_replicas < 2:
        raise ValueError(f"n_replicas must be an integer >= 2, got {n_replicas!r}")
    X = np.asarray(X) if not hasattr(X, "iloc") else X
    n = X.shape[0]
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n,) or not np.all(np.isfinite(w)):
        raise ValueError(f"sample_weight must be a finite array of length {n}")
    seeds = seed_sequences(random_state, int(n_replicas))
    jobs = [joblib.delayed(_fit_one)(estimator, X, fit_args, fit_kwargs, w, s) for s in seeds]
    if n_tasks(n_jobs, len(jobs)) == 1:
        return [fn(*a, **k) for fn, a, k in jobs]
    return joblib.Parallel(n_jobs=n_jobs)(jobs)


@dataclass
class ReplicaInterval:
    """An interval that includes the spread of the MLE over bootstrap replicas.

    Attributes
    ----------
    low, high : the interval: theta_hat -+ sqrt(h_stat^2 + crit s_rep^2) per side, with
        h_stat the distance from the MLE to the statistical (profile) endpoint
    theta_hat : the nominal model's MLE of the POI
    stat_low, stat_high : the statistical interval of :meth:`AdditiveModel.interval`
    replica_sd : standard deviation of the POI's MLE over the replicas (s_rep)
    stat_sd : the statistical standard error (half the statistical interval width
        over sqrt(crit))
    ratio : replica_sd / stat_sd -- how large the training uncertainty is relative to
        the statistical one
    theta_replicas : (B,) the POI's MLE of each replica
    """
    low: float
    high: float
    theta_hat: float
    stat_low: float
    stat_high: float
    replica_sd: float
    stat_sd: float
    ratio: float
    theta_replicas: np.ndarray = field(repr=False)


class Replicas:
    """B replicas of the learned pieces of an :class:`AdditiveModel`.

    Parameters
    ----------
    model : AdditiveModel
        The nominal model.
    replicas : list of (piece, [B fitted replicas])
        ``piece`` is a learned model used by ``model`` (a process's ratio model, a
        systematics model, or ``model.fractions``), recognised by identity; each list
        (e.g. from :func:`bootstrap_fit`) has the same length B.  Replica b of the model
        uses replica b of every listed piece.

    Methods give the MLE of each replica model (:meth:`fit_spread`), an interval that
    includes that spread (:meth:`interval`) and truth-based coverage of both intervals
    (:meth:`coverage`).
    """

    def __init__(self, model, replicas):
        if not isinstance(model, AdditiveModel):
            raise ValueError(f"model must be an AdditiveModel, got {type(model).__name__}")
        entries = list(replicas)
        if not entries:
            raise ValueError("give at least one (piece, [replicas]) pair")
        used = {id(model.fractions)} if model.fractions is not None else set()
        for p in model.processes:
            if p.ratio is not None:
                used.add(id(p.ratio[0] if isinstance(p.ratio, tuple) else p.ratio))
            used.update(id(m) for m, _ in p.systematics)
        lengths = set()
        self._swap = {}
        for entry in entries:
            if not (isinstance(entry, (tuple, list)) and len(entry) == 2):
                raise ValueError("replicas must be a list of (piece, [replicas]) pairs")
            piece, reps = entry
            if id(piece) not in used:
                raise ValueError(f"{type(piece).__name__} object is not a piece of the model")
            reps = list(reps)
            lengths.add(len(reps))
            self._swap[id(piece)] = reps
        if len(lengths) != 1 or lengths.pop() < 2:
            raise ValueError("every piece needs the same number (>= 2) of replicas")
        self.model = model
        self.n_replicas = len(next(iter(self._swap.values())))
        self._models = None

    def _replica_model(self, b):
        m = self.model

        def swap(piece):
            reps = self._swap.get(id(piece))
            return piece if reps is None else reps[b]

        processes = []
        for p in m.processes:
            q = copy.copy(p)
            if isinstance(p.ratio, tuple):
                q.ratio = (swap(p.ratio[0]), p.ratio[1])
            elif p.ratio is not None:
                q.ratio = swap(p.ratio)
            q.systematics = [(swap(mod), names) for mod, names in p.systematics]
            processes.append(q)
        # the processes already carry any mc_stat factors: the same nuisances, no flag
        return AdditiveModel(processes, m.pois, m.nuisances,
                             fractions=None if m.fractions is None else swap(m.fractions),
                             luminosity=m.luminosity)

    def models(self):
        """The B replica AdditiveModels (built once)."""
        if self._models is None:
            self._models = [self._replica_model(b) for b in range(self.n_replicas)]
        return self._models

    def fit_spread(self, X, weight=None):
        """(B, P) MLE of the POIs of every replica model on the data (X, weight).

        ``X`` may be a :class:`Dataset` of the nominal model: its features, weights and
        global observables are evaluated by each replica model.
        """
        aux = None
        if isinstance(X, Dataset):
            self.model._check_owner(X)
            aux = X.global_observables
            weight = X.weight if weight is None else weight
            X = X.X
        out = []
        for rm in self.models():
            out.append(rm.fit(rm.prepare(X, weight, global_observables=aux)).theta)
            rm.clear_cache()
        return np.array(out)

    def interval(self, X, weight=None, cl=ONE_SIGMA_CL, poi=0):
        """The statistical interval widened by the replica spread of the MLE: a
        :class:`ReplicaInterval`.

        Method: each side's distance h from the MLE to the profile endpoint (t = crit) is
        combined in quadrature with the replicas' spread, h' = sqrt(h^2 + crit s_rep^2),
        i.e. the replica covariance is added to the (side-wise) statistical variance
        h^2 / crit.  Cost: B fits (one per replica model, each computing its
        coefficients of the data) plus one interval.
        """
        crit = critical_value(cl, 1)
        j = self.model._poi_index(poi)
        fit = self.model.fit(X, weight)
        lo, hi = self.model.interval(X, weight, cl=cl, poi=j)
        th = self.fit_spread(X, weight)[:, j]
        s_rep = float(np.std(th, ddof=1))
        t_hat = float(fit.theta[j])
        h_lo, h_hi = t_hat - lo, hi - t_hat
        low = t_hat - np.sqrt(h_lo ** 2 + crit * s_rep ** 2)
        high = t_hat + np.sqrt(h_hi ** 2 + crit * s_rep ** 2)
        s_stat = float((hi - lo) / (2.0 * np.sqrt(crit)))
        return ReplicaInterval(float(low), float(high), t_hat, float(lo), float(hi), s_rep,
                               s_stat, s_rep / s_stat if s_stat > 0 else np.inf, th)

    def coverage(self, theta_true, nu_true, n_toys, data_sampler, cl=ONE_SIGMA_CL, poi=0,
                 random_state=None, n_jobs=None):
        """Truth-based coverage of the plain and the replica-widened interval of one POI.

        Toys come from ``data_sampler`` (see :meth:`AdditiveModel.coverage`).  The
        replica spread s_rep is measured once, on the first toy; a toy with MLE
        theta_hat and profiled t at the truth is covered by the widened interval when
        d^2 / (d^2 / t + s_rep^2) < crit, d = theta_hat - theta_true (the Gaussian form
        of the side-wise quadrature above).  Returns (plain, widened) CoverageResults.

        All toys share this one training of the pieces, so this is the coverage given
        that training; the truth-based coverage of the method averages over many
        independent trainings (few toys each: toys of one training are correlated).
        """
        j = self.model._poi_index(poi)
        crit = critical_value(cl, 1)
        rng = np.random.default_rng(seed_sequences(random_state, 1)[0])
        first = data_sampler(rng)
        Xf, wf = first if isinstance(first, tuple) else (first, None)
        s_rep = float(np.std(self.fit_spread(Xf, wf)[:, j], ddof=1))
        plain = self.model.coverage(theta_true, nu_true, n_toys, cl=cl, poi=j,
                                    random_state=random_state, n_jobs=n_jobs,
                                    data_sampler=data_sampler)
        d = plain.theta_hat[:, j] - np.atleast_1d(np.asarray(theta_true, float))[j]
        with np.errstate(divide="ignore", invalid="ignore"):
            t_wide = np.where(plain.t > 0, d * d / (d * d / plain.t + s_rep ** 2), 0.0)
        frac = float(np.mean(t_wide < crit))
        err = float(np.sqrt(frac * (1 - frac) / n_toys))
        wide = CoverageResult(frac, err, t_wide, crit, plain.cl, plain.n_toys, plain.theta_hat,
                              plain.success)
        return plain, wide
