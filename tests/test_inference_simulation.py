"""The uncertainty of finite simulation and training (issue 13): the simulated yields'
statistical uncertainty, bootstrap replicas of the learned pieces, the calibration check
of the fractions, truth-based coverage with an independent data sampler.

Model: one feature; signal x ~ N(1, 1), background x ~ N(-1, 1), so the true fraction
log-odds are linear in x and a LogisticRegression is well specified; the signal's ratio
is exact, R(x|theta) = 1 + theta x.  Data come from the true densities (exact truth).
"""

import warnings

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from bpt.inference import (AdditiveModel, Process, Replicas, ReplicaInterval, bootstrap_fit,
                           check_calibration)

S, B = 1000.0, 5000.0


class LinearRatio:
    terms_ = [(0,)]
    n_parameters = 1

    def predict(self, X):
        return X[:, :1].copy()


class TwoRatio:
    """R(x|theta) = 1 + theta_1 x + theta_2 (x^2 - 1) / 2 (exact, 2 POIs)."""
    terms_ = [(0,), (1,)]
    n_parameters = 2

    def predict(self, X):
        x = X[:, 0]
        return np.column_stack([x, 0.5 * (x * x - 1.0)])


class TrueFractions:
    classes_ = np.array(["bkg", "sig"])

    def predict_proba(self, X):
        x = X[:, 0]
        ps = S * np.exp(-0.5 * (x - 1) ** 2)
        pb = B * np.exp(-0.5 * (x + 1) ** 2)
        return np.column_stack([pb, ps]) / (ps + pb)[:, None]


def simulation(n, seed):
    rng = np.random.default_rng(seed)
    return rng.normal(1.0, 1.0, (n, 1)), rng.normal(-1.0, 1.0, (n, 1))


def build(fractions, n_sim=20_000, seed=0, two_pois=False, **kw):
    xs, xb = simulation(n_sim, seed)
    ratio, pois = (TwoRatio(), ["t1", "t2"]) if two_pois else (LinearRatio(), ["theta"])
    return AdditiveModel([Process("sig", xs, np.full(n_sim, S / n_sim), ratio=ratio),
                          Process("bkg", xb, np.full(n_sim, B / n_sim))],
                         pois, [], fractions=fractions, **kw)


def train_fractions(n_train, seed):
    xs, xb = simulation(n_train, 1000 + seed)
    X = np.concatenate([xs, xb])
    y = np.repeat(["sig", "bkg"], n_train)
    w = np.concatenate([np.full(n_train, S / n_train), np.full(n_train, B / n_train)])
    return LogisticRegression().fit(X, y, sample_weight=w), (X, y, w)


def sampler(theta, theta2=None):
    """Data from the true densities at theta: signal x ~ N(1,1) (1 + theta x) / (1 + theta)
    (with theta2: N(1,1) (1 + theta x + theta2 (x^2 - 1) / 2) / (1 + theta + theta2 / 2))."""
    t2 = 0.0 if theta2 is None else theta2

    def draw(rng):
        ns = rng.poisson(S * (1 + theta + 0.5 * t2))
        xs = rng.normal(1.0, 1.0, 4 * ns + 20)
        rate = 1 + theta * xs + 0.5 * t2 * (xs * xs - 1)
        acc = rng.uniform(0, 1 + abs(theta) * 6 + abs(t2) * 18, xs.shape[0]) < rate
        xs = xs[acc][:ns]
        xb = rng.normal(-1.0, 1.0, rng.poisson(B))
        return np.concatenate([xs, xb])[:, None]
    return draw


def test_simulation_uncertainty_parameter():
    small = build(TrueFractions(), n_sim=400, simulation_uncertainty=True)
    assert small.nuisance_names == ["mc_stat_sig", "mc_stat_bkg"]
    # kappa = sqrt(sum w^2) / sum w = 1 / sqrt(N) for equal weights
    assert small.processes[0].normalization["mc_stat_sig"] == pytest.approx(0.05)
    plain = build(TrueFractions(), n_sim=400)
    X = sampler(0.0)(np.random.default_rng(3))
    f0 = plain.fit(X)
    f1 = small.fit(X)
    # the yield uncertainty can only widen the POI's error (profiled extra parameters)
    assert f1.errors[0] > f0.errors[0] * 1.01
    # at nu = 0 the model is the plain one
    assert small.q([0.2], [0.0, 0.0], X) == pytest.approx(plain.q([0.2], None, X), abs=1e-9)
    # each factor is (1 + kappa)^nu on its process's yield
    sig_yield = small.expected_weights([0.0], [1.0, 0.0])[:400].sum()
    assert sig_yield == pytest.approx(S * 1.05, rel=1e-12)
    with pytest.raises(ValueError, match="simulation_uncertainty"):
        build(TrueFractions(), n_sim=400, simulation_uncertainty="yes")


def test_bootstrap_fit_and_replica_interval():
    clf, (Xt, yt, wt) = train_fractions(2000, seed=0)
    reps = bootstrap_fit(clf, Xt, yt, sample_weight=wt, n_replicas=6, random_state=1)
    assert len(reps) == 6 and all(r is not clf for r in reps)
    coefs = np.array([r.coef_[0, 0] for r in reps])
    assert np.std(coefs) > 0                                   # different bootstrap samples
    import joblib
    with joblib.parallel_config(backend="threading"):       # the result does not depend on it
        again = bootstrap_fit(clf, Xt, yt, sample_weight=wt, n_replicas=6, random_state=1,
                              n_jobs=2)
    np.testing.assert_array_equal(coefs, [r.coef_[0, 0] for r in again])
    model = build(clf, n_sim=5000)
    X = sampler(0.1)(np.random.default_rng(5))
    rep = Replicas(model, [(clf, reps)])
    res = rep.interval(X)
    assert isinstance(res, ReplicaInterval)
    assert res.low < res.stat_low < res.theta_hat < res.stat_high < res.high
    assert res.replica_sd == pytest.approx(np.std(res.theta_replicas, ddof=1))
    assert res.ratio == pytest.approx(res.replica_sd / res.stat_sd)
    # the side-wise quadrature
    assert res.theta_hat - res.low == pytest.approx(
        np.hypot(res.theta_hat - res.stat_low, res.replica_sd), rel=1e-12)
    # a Dataset of the nominal model gives the same replica MLEs
    np.testing.assert_allclose(rep.fit_spread(model.prepare(X)), res.theta_replicas[:, None],
                               atol=1e-6)
    # exact pieces for every replica: no spread at all
    exact = build(TrueFractions(), n_sim=5000)
    tf = exact.fractions
    same = Replicas(exact, [(tf, [tf, tf, tf])]).interval(X)
    assert same.replica_sd == 0.0 and same.low == pytest.approx(same.stat_low)
    with pytest.raises(ValueError, match="not a piece"):
        Replicas(model, [(TrueFractions(), reps)])
    with pytest.raises(ValueError, match="same number"):
        Replicas(model, [(clf, reps[:1])])
    with pytest.raises(ValueError, match="n_replicas"):
        bootstrap_fit(clf, Xt, yt, n_replicas=1)


def test_calibration_check_flags_a_miscalibrated_classifier():
    xs, xb = simulation(20_000, seed=77)                      # held out
    n = xs.shape[0]
    holdout = {"sig": (xs, np.full(n, S / n)), "bkg": (xb, np.full(n, B / n))}
    good = build(TrueFractions(), n_sim=2000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        res = check_calibration(good, holdout, n_bins=4)
    assert res.n_flagged == 0
    overall = [r for r in res.rows if r["region"] == "all"]
    for r in overall:                # exact fractions: agreement within the held-out error
        assert abs(r["mismatch"]) < 3 * r["holdout_error"]
    assert len(res.rows) == 2 * (1 + 4)                        # all + 4 bins of R, 2 processes

    class Biased(TrueFractions):                               # 30% too much signal
        def predict_proba(self, X):
            p = super().predict_proba(X)
            p[:, 1] *= 1.3
            return p / p.sum(axis=1, keepdims=True)

    bad = build(Biased(), n_sim=2000)
    with pytest.warns(RuntimeWarning, match="miscalibrated"):
        res = check_calibration(bad, holdout)
    assert res.n_flagged > 0 and res.worst["process"] in ("sig", "bkg")
    with pytest.raises(ValueError, match="holdout"):
        check_calibration(bad, {"sig": holdout["sig"]})


def test_coverage_with_a_data_sampler_uses_the_sampler():
    model = build(TrueFractions(), n_sim=5000)
    calls = []

    def draw(rng):
        calls.append(1)
        return sampler(0.1)(rng)

    res = model.coverage([0.1], None, 6, data_sampler=draw, random_state=2)
    assert len(calls) == 6 and res.n_toys == 6 and np.all(res.t >= 0)
    # same seeds, same toys
    res2 = model.coverage([0.1], None, 6, data_sampler=sampler(0.1), random_state=2)
    np.testing.assert_allclose(res.t, res2.t)
    with pytest.raises(ValueError, match="data_sampler"):
        model.coverage([0.1], None, 2, data_sampler=np.zeros(3))


def _truth_based_coverage(two_pois, n_trainings, toys_each, n_replicas=20):
    """Per training sample k: LogisticRegression fractions from 2 x 1000 events, its own
    replicas and simulation, ``toys_each`` toys from the true densities.  Returns the
    per-toy covered flags (plain, widened), shape (n_trainings, toys_each), and the
    replica sd / stat sd of each training."""
    theta = [0.1, 0.05] if two_pois else [0.1]
    draw = sampler(*theta)
    cover_plain, cover_wide, ratios = [], [], []
    for k in range(n_trainings):
        clf, (Xt, yt, wt) = train_fractions(1000, seed=k)
        reps = bootstrap_fit(clf, Xt, yt, sample_weight=wt, n_replicas=n_replicas,
                             random_state=100 + k)
        model = build(clf, n_sim=20_000, seed=k, two_pois=two_pois)
        rep = Replicas(model, [(clf, reps)])
        plain, wide = rep.coverage(theta, None, toys_each, draw, random_state=200 + k)
        cover_plain.append(plain.t < plain.critical_value)
        cover_wide.append(wide.t < wide.critical_value)
        if k < 10:
            ratios.append(rep.interval(draw(np.random.default_rng(k))).ratio)
    return np.array(cover_plain), np.array(cover_wide), np.array(ratios)


def _coverage_and_errors(flags):
    """Coverage, its binomial error and its error from the spread between trainings.

    Toys of one training share that training's error of the learned piece, so they are
    not independent: the honest error is the standard error of the per-training
    coverages (it equals the binomial one only with one toy per training)."""
    c = flags.mean()
    binom = np.sqrt(c * (1 - c) / flags.size)
    per_training = flags.mean(axis=1)
    between = per_training.std(ddof=1) / np.sqrt(per_training.size)
    return c, binom, between


@pytest.mark.slow
@pytest.mark.parametrize("two_pois", [False, True], ids=["1poi", "2poi"])
def test_truth_based_coverage_plain_under_covers_replicas_do_not(two_pois):
    """Fractions from small training samples (2 x 1000 events) vs ~6000 data events.

    Coverage of the first POI's interval (with two POIs the second is profiled), over
    many independent training samples (each with its own replicas and simulation), few
    toys each from the true densities.  Few toys per training because the toys of one
    training are correlated (they share its training error): 10 trainings x 50 toys
    has an honest error of ~0.08, not the binomial 0.02 (docs/inference.md).
    """
    n_trainings, toys_each = 150, 4
    plain, wide, ratios = _truth_based_coverage(two_pois, n_trainings, toys_each)
    p, bp, ep = _coverage_and_errors(plain)
    w, bw, ew = _coverage_and_errors(wide)
    print(f"\n{2 if two_pois else 1} POI(s), 68.27% coverage of the first POI's interval, "
          f"{plain.size} toys ({n_trainings} trainings x {toys_each}): plain {p:.3f} "
          f"+- {bp:.3f} (binomial) +- {ep:.3f} (between trainings), replica-widened "
          f"{w:.3f} +- {bw:.3f} (binomial) +- {ew:.3f} (between trainings); replica sd / "
          f"stat sd = {ratios.mean():.2f} (mean of 10)")
    assert p < 0.6827 - 3 * ep                 # plain intervals under-cover
    assert abs(w - 0.6827) < max(0.03, 2 * ew)


@pytest.mark.slow
def test_replica_spread_matches_the_spread_over_independent_trainings():
    """The bootstrap's premise, checked against truth: on one fixed dataset of the 2-POI
    model, the sd of the first POI's MLE over replicas of one training sample agrees with
    its sd over independent training samples (same simulation, same data)."""
    X = sampler(0.1, 0.05)(np.random.default_rng(12345))
    clfs = [train_fractions(1000, seed=k)[0] for k in range(40)]
    base = build(clfs[0], n_sim=20_000, seed=0, two_pois=True)
    sd_independent = np.std(Replicas(base, [(clfs[0], clfs)]).fit_spread(X)[:, 0], ddof=1)
    var_boot = []
    for k in range(5):
        clf, (Xt, yt, wt) = train_fractions(1000, seed=k)
        reps = bootstrap_fit(clf, Xt, yt, sample_weight=wt, n_replicas=30,
                             random_state=100 + k)
        model = build(clf, n_sim=20_000, seed=0, two_pois=True)
        var_boot.append(np.var(Replicas(model, [(clf, reps)]).fit_spread(X)[:, 0], ddof=1))
    sd_boot = np.sqrt(np.mean(var_boot))
    stat = base.fit(X).errors[0]
    print(f"\nfirst POI: sd over 40 independent trainings {sd_independent:.4f}, replica sd "
          f"(rms over 5 trainings x 30 replicas) {sd_boot:.4f}, statistical {stat:.4f}")
    # each sd is known to ~11%: agreement within ~2.5 standard errors of the ratio
    assert 0.7 < sd_boot / sd_independent < 1.4
    assert sd_independent > stat               # training dominates here
