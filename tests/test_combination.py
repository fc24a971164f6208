"""Channels and combinations (issue 14): binned channels, Combination, fix / bounds,
FitResult's named API, progress reports.

Truth used: an unbinned dataset split into two regions is the same likelihood as one
channel; a binned channel with one simulated event per bin, or with templates and only
normalisation nuisances, is a Poisson(+Gaussian) likelihood written here with scipy; a
bounded maximum of a likelihood whose unbounded maximum is outside the bound sits
exactly at the bound with the hand-written q.
"""

from __future__ import annotations

import io
import logging

import numpy as np
import pytest
from scipy import optimize, stats

from _models import ExactFractions, ExactRatio, ExactShape
from bpt.inference import (AdditiveModel, BinnedChannel, BinnedData, Combination, CombinedData,
                           Nuisance, Process, RateError, load_model)

BETA, KAPPA, SIG, BKG = 0.15, 0.2, 300.0, 300.0


# ----------------------------------------------------------------------------- exact pieces
class SignalStrength:
    """R = 1 + mu (a linear signal strength)."""
    terms_ = [(0,)]
    n_parameters = 1

    def predict(self, X):
        return np.ones((np.asarray(X).shape[0], 1))


def simulate(n, seed):
    rng = np.random.default_rng(seed)
    xs = np.column_stack([rng.exponential(1.0, n), rng.uniform(size=n)])
    xb = np.column_stack([rng.exponential(0.5, n), rng.uniform(size=n)])
    return xs, np.full(n, SIG / n), xb, np.full(n, BKG / n)


def unbinned(xs, ws, xb, wb, name):
    return AdditiveModel(
        [Process("sig", xs, ws, ratio=ExactRatio(), systematics=[(ExactShape(BETA), ["shape"])]),
         Process("bkg", xb, wb, normalization={"norm": KAPPA})],
        pois=["theta"], nuisances=["shape", "norm"], fractions=ExactFractions(SIG, BKG), name=name)


@pytest.fixture(scope="module")
def split():
    xs, ws, xb, wb = simulate(6000, 1)
    full = unbinned(xs, ws, xb, wb, "full")
    rng = np.random.default_rng(2)
    X, w = full.asimov([0.3], [0.2, -0.3])
    data = X[rng.random(X.shape[0]) < w / w.max() * 0.5]     # an unweighted sample
    cut_s, cut_b, cut_d = xs[:, 1] < 0.4, xb[:, 1] < 0.4, data[:, 1] < 0.4
    a = unbinned(xs[cut_s], ws[cut_s], xb[cut_b], wb[cut_b], "low")
    b = unbinned(xs[~cut_s], ws[~cut_s], xb[~cut_b], wb[~cut_b], "high")
    return full, a, b, data, {"low": data[cut_d], "high": data[~cut_d]}


# ----------------------------------------------------------------------------- combination
def test_two_regions_equal_one_channel(split):
    full, a, b, data, parts = split
    comb = Combination([a, b])
    assert comb.pois == ["theta"] and comb.nuisance_names == ["shape", "norm"]
    for z in ([0.0], [0.0, 0.0]), ([0.4], [0.3, -0.7]), ([-0.2], [-1.0, 0.5]):
        q1, g1, h1 = full.q(*z, data, derivatives=2)
        q2, g2, h2 = comb.q(*z, parts, derivatives=2)
        assert q2 == pytest.approx(q1, rel=1e-12, abs=1e-9)
        np.testing.assert_allclose(g2, g1, rtol=1e-11, atol=1e-9)
        np.testing.assert_allclose(h2, h1, rtol=1e-11, atol=1e-9)
    f1, f2 = full.fit(data), comb.fit(parts)
    np.testing.assert_allclose(f2.z, f1.z, atol=2e-5)
    assert f2.q == pytest.approx(f1.q, abs=1e-6)
    lo1, hi1 = full.interval(data)
    lo2, hi2 = comb.interval(parts)
    assert (lo2, hi2) == pytest.approx((lo1, hi1), abs=1e-5)
    # each region alone knows less: the combination's interval is narrower than each
    for ch in (a, b):
        lo, hi = ch.interval(parts[ch.name])
        assert hi - lo > 1.05 * (hi2 - lo2)
    # the Asimov dataset and toys of a combination are those of its channels
    asi = comb.asimov([0.3], [0.2, -0.3])
    np.testing.assert_array_equal(asi["low"][1], a.asimov([0.3], [0.2, -0.3])[1])
    toys = comb.toys([0.3], [0.0, 0.0], 2, random_state=3)
    assert isinstance(toys[0], CombinedData) and toys[0].global_observables.shape == (2,)
    assert toys[0]["low"].weight.sum() > 0


def test_binned_one_event_per_bin_is_a_poisson_likelihood():
    rng = np.random.default_rng(4)
    xs = np.column_stack([rng.exponential(1.0, 25), rng.uniform(size=25)])
    xb = np.column_stack([rng.exponential(0.5, 20), rng.uniform(size=20)])
    ws, wb = rng.uniform(0.5, 2.0, 25), rng.uniform(0.5, 2.0, 20)
    allx = np.sort(np.concatenate([xs[:, 0], xb[:, 0]]))
    edges = np.concatenate([[allx[0] - 1], 0.5 * (allx[1:] + allx[:-1]), [allx[-1] + 1]])
    ch = BinnedChannel([Process("sig", xs, ws, ratio=ExactRatio(),
                                systematics=[(ExactShape(BETA), ["shape"])]),
                        Process("bkg", xb, wb, normalization={"norm": KAPPA})],
                       ["theta"], ["shape", Nuisance("norm", constraint=None)], 0, edges,
                       luminosity=("lumi", 0.05) if False else None)
    assert ch.n_bins == 45 and ch.has_shape_dependence()
    counts = rng.poisson(1.5, 45).astype(float)
    order = np.argsort(np.concatenate([xs[:, 0], xb[:, 0]]))
    is_sig = np.concatenate([np.ones(25, bool), np.zeros(20, bool)])[order]
    x1 = np.concatenate([xs[:, 0], xb[:, 0]])[order]
    w = np.concatenate([ws, wb])[order]

    def nu_hand(z):
        th, sh, nm = z
        sig = w * (1 + th * x1 / 2) ** 2 * np.exp(BETA * sh * (x1 - 1))
        return np.where(is_sig, sig, w * (1 + KAPPA) ** nm)

    def q_hand(z):
        return (np.sum(stats.poisson.logpmf(counts, nu_hand(z))
                       - stats.poisson.logpmf(counts, nu_hand(np.zeros(3)))) - 0.5 * z[1] ** 2)

    np.testing.assert_allclose(ch.expected([0.0], [0.0, 0.0]), w, rtol=1e-13)
    for z in (np.array([0.3, -0.5, 0.8]), np.array([-0.6, 1.2, -0.4])):
        q, g, h = ch.q(z[:1], z[1:], counts, derivatives=2)
        assert q == pytest.approx(q_hand(z), rel=1e-12)
        eps = 1e-6
        g_fd = np.array([(q_hand(z + eps * e) - q_hand(z - eps * e)) / (2 * eps)
                         for e in np.eye(3)])
        np.testing.assert_allclose(g, g_fd, rtol=1e-6, atol=1e-6)
        h_fd = np.array([(ch.q((z + eps * e)[:1], (z + eps * e)[1:], counts, derivatives=1)[1]
                          - ch.q((z - eps * e)[:1], (z - eps * e)[1:], counts,
                                 derivatives=1)[1]) / (2 * eps) for e in np.eye(3)])
        np.testing.assert_allclose(h, h_fd, rtol=1e-5, atol=1e-5)
    by_proc = ch.expected_by_process([0.3], [0.2, 0.1])
    np.testing.assert_allclose(by_proc.sum(axis=0), nu_hand(np.array([0.3, 0.2, 0.1])),
                               rtol=1e-12)
    # the same counts given as events (one per bin) are histogrammed to the same q
    events = np.column_stack([x1, np.zeros(45)])
    ev_counts = ch.prepare(np.repeat(events, counts.astype(int), axis=0)).counts
    np.testing.assert_array_equal(ev_counts, counts)


def _templates():
    rng = np.random.default_rng(5)
    edges = np.array([0.0, 1.0, 2.0, 3.0])
    xs = np.column_stack([rng.choice([0.5, 1.5, 2.5], 60, p=[0.2, 0.5, 0.3])])
    xb = np.column_stack([rng.choice([0.5, 1.5, 2.5], 90, p=[0.5, 0.3, 0.2])])
    ws, wb = np.full(60, 0.5), np.full(90, 1.0)
    S = np.histogram(xs[:, 0], edges, weights=ws)[0]
    B = np.histogram(xb[:, 0], edges, weights=wb)[0]
    return edges, xs, ws, xb, wb, S, B


def test_binned_normalisation_only_equals_poisson_gaussian():
    edges, xs, ws, xb, wb, S, B = _templates()
    ch = BinnedChannel([Process("sig", xs, ws, ratio=SignalStrength(), normalization={"ks": 0.1}),
                        Process("bkg", xb, wb, normalization={"kb": 0.3})],
                       ["mu"], ["ks", "kb", "lumi"], 0, edges, luminosity=("lumi", 0.02),
                       name="counting")
    assert ch.has_shape_dependence()            # a ratio model (even a constant one) counts
    assert not BinnedChannel([Process("bkg", xb, wb, normalization={"kb": 0.3})], ["mu"], ["kb"],
                             0, edges).has_shape_dependence()
    assert sorted(ch.normalization_modifiers()) == sorted(
        [("sig", "ks", 0.1), ("sig", "lumi", 0.02), ("bkg", "kb", 0.3), ("bkg", "lumi", 0.02)])
    counts = np.array([55.0, 40.0, 30.0])

    def q_hand(z, a=np.zeros(3)):
        mu, ks, kb, lu = z
        nu = ((1 + mu) * S * 1.1 ** ks + B * 1.3 ** kb) * 1.02 ** lu
        nu0 = S + B
        return (np.sum(stats.poisson.logpmf(counts, nu) - stats.poisson.logpmf(counts, nu0))
                + np.sum(stats.norm.logpdf(z[1:], a) - stats.norm.logpdf(0.0, a)))

    z = np.array([0.4, -0.3, 0.5, 0.2])
    assert ch.q(z[:1], z[1:], counts) == pytest.approx(q_hand(z), rel=1e-12)
    fit = ch.fit(counts)
    ref = optimize.minimize(lambda v: -q_hand(v), np.zeros(4), method="BFGS",
                            options={"gtol": 1e-9})
    np.testing.assert_allclose(fit.z, ref.x, atol=2e-4)
    assert fit.q == pytest.approx(-ref.fun, abs=1e-7)
    # global observables shift the Gaussian constraints: (nu - a)^2 / 2
    a = np.array([0.5, -0.2, 0.1])
    d = ch.prepare(counts, global_observables=a)
    assert ch.q(z[:1], z[1:], d) == pytest.approx(q_hand(z, a), rel=1e-12)
    f = ch.fit(d)
    for k, name in enumerate(["ks", "kb", "lumi"]):
        assert f.pulls[name] == pytest.approx(f[name] - a[k], abs=1e-12)


# ----------------------------------------------------------------------------- fix / bounds
def _counting():
    """One bin: s (1 + mu) + b (1.2)^kb with s = 10, b = 50, and n = 40 < b: the
    unbounded MLE of mu is negative."""
    xs, xb = np.full((10, 1), 0.5), np.full((50, 1), 0.5)
    ch = BinnedChannel([Process("sig", xs, np.ones(10), ratio=SignalStrength()),
                        Process("bkg", xb, np.ones(50), normalization={"kb": 0.2})],
                       ["mu"], ["kb"], 0, [0.0, 1.0])
    n = np.array([40.0])

    def q_hand(mu, kb):
        nu = 10 * (1 + mu) + 50 * 1.2 ** kb
        return stats.poisson.logpmf(40, nu) - stats.poisson.logpmf(40, 60.0) - 0.5 * kb ** 2

    return ch, n, q_hand


def test_bounded_fit_sits_exactly_at_the_bound():
    ch, n, q_hand = _counting()
    free = ch.fit(n)
    assert free["mu"] < -0.5                                 # the unbounded MLE
    fit = ch.fit(n, bounds={"mu": (0.0, None)})
    assert fit["mu"] == 0.0 and fit.at_bound == ["mu"]
    kb = optimize.minimize_scalar(lambda v: -q_hand(0.0, v), bounds=(-5, 5), method="bounded",
                                  options={"xatol": 1e-10}).x
    assert fit["kb"] == pytest.approx(kb, abs=1e-5)
    assert fit.q == pytest.approx(q_hand(0.0, kb), abs=1e-9)
    grad = ch.q(fit.theta, fit.nu, n, derivatives=1)[1]
    assert grad[0] < 0                                        # KKT: q would rise below 0
    assert fit.error("mu") == 0.0 and fit.error("kb") > 0
    # a POI bounded away from both the MLE and the start: (-0.2, 0.5) contains neither
    fit2 = ch.fit(n, bounds={"mu": (-0.3, 0.5)})
    assert fit2["mu"] == -0.3
    # profile, scan and interval honour the bounds; the interval stops at the bound
    lo, hi = ch.interval(n, bounds={"mu": (0.0, None)})
    assert lo == 0.0 and hi > 0.0
    t = ch.scan([0.0, hi], n, bounds={"mu": (0.0, None)})
    assert t[0] == pytest.approx(0.0, abs=1e-9) and t[1] == pytest.approx(1.0, abs=1e-5)
    assert ch.profile([0.2], n).nu[0] < -0.6
    assert ch.profile([0.2], n, bounds={"kb": (-0.5, None)}).nu[0] == -0.5


def test_fix_holds_a_parameter():
    ch, n, q_hand = _counting()
    fit = ch.fit(n, fix={"kb": 0.7})
    assert fit["kb"] == 0.7 and fit.fixed == ["kb"] and fit.error("kb") == 0.0
    mu = (40.0 - 50.0 * 1.2 ** 0.7) / 10.0 - 1.0             # nu = n exactly
    assert fit["mu"] == pytest.approx(mu, abs=5e-4)          # sigma(mu) = 0.63
    assert fit.q == pytest.approx(q_hand(mu, 0.7), abs=1e-7)
    t = ch.scan([mu, mu + 0.3], n, fix={"kb": 0.7})
    assert t[0] == pytest.approx(0.0, abs=1e-6)
    assert t[1] == pytest.approx(-2 * (q_hand(mu + 0.3, 0.7) - q_hand(mu, 0.7)), rel=1e-6)


def test_bad_parameter_controls():
    ch, n, _ = _counting()
    with pytest.raises(ValueError, match="unknown parameter 'jes'"):
        ch.fit(n, fix={"jes": 0.0})
    with pytest.raises(ValueError, match="'kb'.*finite number"):
        ch.fit(n, fix={"kb": np.nan})
    with pytest.raises(ValueError, match="'mu'.*low < high"):
        ch.fit(n, bounds={"mu": (1.0, 0.0)})
    with pytest.raises(ValueError, match="'mu'.*\\(low, high\\)"):
        ch.fit(n, bounds={"mu": 0.0})
    with pytest.raises(ValueError, match="kb = 2 is outside its bounds"):
        ch.fit(n, fix={"kb": 2.0}, bounds={"kb": (-1, 1)})
    with pytest.raises(ValueError, match="starts: mu = -1 is outside"):
        ch.fit(n, starts=[-1.0], bounds={"mu": (0, None)})
    with pytest.raises(ValueError, match="theta: mu = -1 is outside"):
        ch.profile([-1.0], n, bounds={"mu": (0, None)})
    with pytest.raises(ValueError, match="thetas: mu = -1 is outside"):
        ch.scan([-1.0, 0.0], n, bounds={"mu": (0, None)})
    with pytest.raises(ValueError, match="'mu' is scanned"):
        ch.scan([0.0], n, fix={"mu": 0.0})
    with pytest.raises(ValueError, match="fix must be a dict"):
        ch.fit(n, fix=[("kb", 0.0)])
    with pytest.raises(ValueError, match="verbose"):
        ch.scan([0.0], n, verbose=-1)


def test_fit_result_named_api(split):
    full, _, _, data, _ = split
    a = np.array([0.3, 0.0])
    fit = full.fit(full.prepare(data, global_observables=a))
    assert fit.names == ["theta", "shape", "norm"]
    assert fit["shape"] == fit.nu[0] and fit.values["theta"] == fit.theta[0]
    assert fit.error("theta") == pytest.approx(np.sqrt(fit.covariance[0, 0]))
    c = fit.correlation
    np.testing.assert_allclose(np.diag(c), 1.0)
    np.testing.assert_allclose(c, c.T)
    assert c[0, 1] == pytest.approx(fit.covariance[0, 1] / (fit.error("theta")
                                                            * fit.error("shape")))
    assert fit.pulls == pytest.approx({"shape": fit["shape"] - 0.3, "norm": fit["norm"]})
    assert fit.constraints == pytest.approx({"shape": fit.error("shape"),
                                             "norm": fit.error("norm")})
    with pytest.raises(ValueError, match="unknown parameter 'nope'"):
        fit["nope"]


# ----------------------------------------------------------------------------- inputs, io
def test_combination_bad_inputs(split):
    _, a, b, _, parts = split
    with pytest.raises(ValueError, match="channel names must be unique"):
        Combination([a, a])
    edges, xs, ws, xb, wb, S, B = _templates()
    clash = BinnedChannel([Process("bkg", xb, wb, normalization={"theta2": 0.1})], ["shape"],
                          ["theta2"], 0, edges)
    with pytest.raises(ValueError, match="both as POI and nuisance.*shape"):
        Combination([a, clash])
    free = BinnedChannel([Process("bkg", xb, wb, normalization={"norm": 0.1})], ["theta"],
                         [Nuisance("norm", constraint=None)], 0, edges)
    with pytest.raises(ValueError, match="nuisance 'norm' has constraint"):
        Combination([a, free])
    comb = Combination([a, b])
    with pytest.raises(ValueError, match="missing \\['high'\\]"):
        comb.q([0.0], None, {"low": parts["low"]})
    with pytest.raises(ValueError, match="must be a dict"):
        comb.fit(parts["low"])
    with pytest.raises(ValueError, match="pois must be exactly"):
        Combination([a, b], pois=["theta", "other"])
    with pytest.raises(ValueError, match="unknown channel 'x'"):
        comb.channel("x")
    with pytest.raises(RateError, match="channel 'low': \\d+ of \\d+ event\\(s\\) have a predicted rate"):
        comb.q([1e200], None, parts)
    counting, n, _ = _counting()
    with pytest.raises(RateError, match="channel 'binned': 1 of 1 bin\\(s\\)"):
        Combination([counting]).q([-7.0], None, {"binned": n})
    ch = BinnedChannel([Process("bkg", xb, wb)], ["mu"], [], 0, edges)
    with pytest.raises(ValueError, match="3 entries"):
        ch.q([0.0], None, np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match=">= 0"):
        ch.q([0.0], None, np.array([1.0, -2.0, 1.0]))
    with pytest.raises(ValueError, match="edges"):
        BinnedChannel([Process("bkg", xb, wb)], ["mu"], [], 0, [0.0, 0.0])
    with pytest.raises(ValueError, match="observable"):
        BinnedChannel([Process("bkg", xb, wb)], ["mu"], [], 3, edges)
    with pytest.raises(ValueError, match="observable 'm'"):
        BinnedChannel([Process("bkg", xb, wb)], ["mu"], [], "m", edges)


def test_combination_with_a_binned_channel_saves_bit_identically():
    from test_model_io import POIS, build_model, build_parts
    parts = build_parts(n_sim=1500)
    unb = build_model(parts)
    sim = parts["sim"]["background"]
    binned = BinnedChannel([p for p in unb.processes], POIS, unb.nuisances, 0,
                           np.quantile(sim.X[:, 0], np.linspace(0, 1, 6)),
                           luminosity=unb.luminosity, name="ctrl")
    comb = Combination([unb, binned])
    counts = np.round(binned.expected([0.4, -0.3], None) * 1.1)
    data = {"unbinned": parts["data"], "ctrl": counts}
    buf = io.BytesIO()
    comb.save(buf)
    buf.seek(0)
    back = load_model(buf)
    assert isinstance(back, Combination) and back.channel_names == ["unbinned", "ctrl"]
    for z in (([0.0, 0.0], None), ([0.4, -0.3], [0.2, -0.1, 0.3, 0.05])):
        q1, g1, h1 = comb.q(*z, data, derivatives=2)
        q2, g2, h2 = back.q(*z, data, derivatives=2)
        assert q1 == q2 and g1.tobytes() == g2.tobytes() and h1.tobytes() == h2.tobytes()
    buf = io.BytesIO()
    binned.save(buf)
    buf.seek(0)
    single = load_model(buf)
    assert isinstance(single, BinnedChannel)
    assert single.q([0.4, -0.3], None, counts) == binned.q([0.4, -0.3], None, counts)
    cb = BinnedChannel([unb.processes[1]], POIS, ["jes", "theory", Nuisance("norm", None)],
                       lambda X: X[:, 0], [0.0, 1.0])
    with pytest.raises(TypeError, match="callable observable"):
        cb.save(io.BytesIO())


def test_binned_toys_and_coverage():
    ch, n, _ = _counting()
    toys = ch.toys([0.5], [0.0], 200, random_state=1)
    assert isinstance(toys[0], BinnedData)
    c = np.array([t.counts[0] for t in toys])
    assert np.all(c == np.round(c)) and abs(c.mean() - 65.0) < 4 * np.sqrt(65 / 200)
    asi = ch.asimov([0.5], [0.3], return_dataset=True)
    fit = ch.fit(asi)
    assert fit["mu"] == pytest.approx(0.5, abs=1e-4) and fit["kb"] == pytest.approx(0.3, abs=1e-4)
    cov = ch.coverage([0.5], [0.0], 40, random_state=2)
    assert 0.4 < cov.coverage < 0.95


def test_progress_reports_through_logging(caplog):
    ch, n, _ = _counting()
    with caplog.at_level(logging.INFO, logger="bpt"):
        ch.scan(np.linspace(-1, 0, 5), n, verbose=1)
    msgs = [r.getMessage() for r in caplog.records if r.name == "bpt"]
    assert any("scan: 5/5" in m for m in msgs) and any("done" in m for m in msgs)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="bpt"):
        ch.scan(np.linspace(-1, 0, 5), n)
    assert not [r for r in caplog.records if r.name == "bpt"]


# ----------------------------------------------------------------------------- saturated gof
def _deviance(O, E):
    """-2 log prod_b Pois(O_b|E_b) / Pois(O_b|O_b), with scipy."""
    sat = np.where(O > 0, stats.poisson.logpmf(O, np.where(O > 0, O, 1.0)), 0.0)
    return float(-2.0 * np.sum(stats.poisson.logpmf(O, E) - sat))


def test_binned_goodness_of_fit_is_the_saturated_deviance_at_the_fit():
    edges, xs, ws, xb, wb, S, B = _templates()
    counts = np.array([70.0, 33.0, 30.0])

    def channel(kb_constraint="gaussian"):
        return BinnedChannel([Process("sig", xs, ws, ratio=SignalStrength(),
                                      normalization={"ks": 0.1}),
                              Process("bkg", xb, wb, normalization={"kb": 0.3})],
                             ["mu"], ["ks", Nuisance("kb", kb_constraint), "lumi"], 0, edges,
                             luminosity=("lumi", 0.02), name="counting")

    def E_hand(z):
        mu, ks, kb, lu = z
        return ((1 + mu) * S * 1.1 ** ks + B * 1.3 ** kb) * 1.02 ** lu

    def q_hand(z, gauss=(1, 2, 3)):
        return (np.sum(stats.poisson.logpmf(counts, E_hand(z)))
                - 0.5 * np.sum(np.asarray(z)[list(gauss)] ** 2))

    def mle(fixed=None, gauss=(1, 2, 3)):       # the fit by scipy on the hand-written q
        free = [i for i in range(4) if fixed is None or i != fixed[0]]

        def f(y):
            z = np.zeros(4)
            z[free] = y
            if fixed is not None:
                z[fixed[0]] = fixed[1]
            return -q_hand(z, gauss)

        y = optimize.minimize(f, np.zeros(len(free)), method="BFGS", options={"gtol": 1e-9}).x
        z = np.zeros(4)
        z[free] = y
        if fixed is not None:
            z[fixed[0]] = fixed[1]
        return z

    ch = channel()
    res = ch.goodness_of_fit(counts)
    dev = _deviance(counts, E_hand(mle()))
    assert res.method == "saturated" and res.ndf == 3 - 1          # n_free = mu only
    # at bpt's fit exactly; against scipy's MLE to its precision (the deviance is not
    # stationary at the fit: the constraints pull, so it moves to first order in dz)
    fit = ch.fit(counts)
    assert res.statistic == pytest.approx(_deviance(counts, E_hand(fit.z)), rel=1e-10)
    assert res.statistic == pytest.approx(dev, rel=1e-4)
    assert res.statistic > 0.5                                     # not a trivial fit
    assert res.p_value == pytest.approx(stats.chi2.sf(res.statistic, 2), rel=1e-12)
    np.testing.assert_array_equal(res.observed, counts)
    np.testing.assert_allclose(res.expected, E_hand(fit.z), rtol=1e-12)
    # fix= removes the POI from n_free; the deviance is that of the fixed fit
    res_fix = ch.goodness_of_fit(counts, fix={"mu": 0.5})
    assert res_fix.ndf == 3
    assert res_fix.statistic == pytest.approx(_deviance(counts, E_hand(mle((0, 0.5)))),
                                              rel=1e-4)
    assert res_fix.statistic > res.statistic
    # a free-floating nuisance counts as a free parameter
    res_free = channel(None).goodness_of_fit(counts)
    assert res_free.ndf == 1
    assert res_free.statistic == pytest.approx(
        _deviance(counts, E_hand(mle(gauss=(1, 3)))), rel=1e-4)
    two_bins = BinnedChannel([Process("sig", xs, ws, ratio=SignalStrength()),
                              Process("bkg", xb, wb, normalization={"kb": 0.3})],
                             ["mu"], [Nuisance("kb", None)], 0, [0.0, 1.0, 3.0])
    with pytest.raises(ValueError, match="n_free"):       # mu and kb: no degree of freedom
        two_bins.goodness_of_fit(np.array([20.0, 80.0]))


def test_combination_goodness_of_fit_adds_the_binned_channels(split):
    edges, xs, ws, xb, wb, S, B = _templates()
    tmpl = BinnedChannel([Process("sig", xs, ws, ratio=SignalStrength()),
                          Process("bkg", xb, wb, normalization={"kb": 0.3})],
                         ["mu"], ["kb"], 0, edges, name="templates")
    counting, n, _ = _counting()                    # s (1 + mu) + b 1.2^kb in one bin
    comb = Combination([tmpl, counting])
    counts = np.array([55.0, 40.0, 30.0])
    data = {"templates": counts, "binned": n}
    res = comb.goodness_of_fit(data)
    fit = comb.fit(data)
    mu, kb = fit.z
    E1 = (1 + mu) * S + B * 1.3 ** kb
    E2 = np.array([10 * (1 + mu) + 50 * 1.2 ** kb])
    assert res.ndf == 4 - 1
    assert res.statistic == pytest.approx(_deviance(np.r_[counts, n], np.r_[E1, E2]), rel=1e-10)
    # the maximum is the maximum: a small move in any direction lowers q
    for dz in ([1e-3, 0.0], [0.0, 1e-3], [-1e-3, 0.0], [0.0, -1e-3]):
        assert comb.q(fit.z[:1] + dz[0], [fit.z[1] + dz[1]], data) < fit.q
    _, a, _, _, parts = split
    with pytest.raises(ValueError, match=r"channels \['low'\] are unbinned"):
        Combination([a, counting]).goodness_of_fit({"low": parts["low"], "binned": n})


# ----------------------------------------------------------------------------- pyhf
def test_pyhf_workspace_of_a_binned_channel_has_the_same_best_fit():
    """A BinnedChannel with only normalisations (POI as 1 + mu, Gaussian normsys, a
    free-floating normalisation, the luminosity) exported to pyhf: the same expected
    counts everywhere and the same maximum-likelihood fit."""
    pyhf = pytest.importorskip("pyhf")
    from bpt.inference import PYHF_MODIFIER_SETTINGS, to_pyhf_workspace
    edges, xs, ws, xb, wb, S, B = _templates()
    ch = BinnedChannel([Process("sig", xs, ws, ratio=SignalStrength(), normalization={"ks": 0.1}),
                        Process("bkg", xb, wb, normalization={"kb": 0.3, "bfree": 1.0})],
                       ["mu"], ["ks", "kb", Nuisance("bfree", None), "lumi"], 0, edges,
                       luminosity=("lumi", 0.02), name="SR")
    assert [n.constraint for n in ch.nuisances] == ["gaussian", "gaussian", None, "gaussian"]
    counts = np.array([61.0, 47.0, 35.0])
    spec = to_pyhf_workspace(ch, counts)
    mods = {m["name"]: m["type"] for s in spec["channels"][0]["samples"] for m in s["modifiers"]}
    assert mods == {"mu": "normfactor", "ks": "normsys", "kb": "normsys", "bfree": "normfactor",
                    "lumi": "normsys"}
    pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer(tolerance=1e-12))
    ws_ = pyhf.Workspace(spec)
    pm = ws_.model(modifier_settings=PYHF_MODIFIER_SETTINGS)

    def pars(z):                                # bpt (mu, ks, kb, bfree, lumi) -> pyhf
        mu, ks, kb, bf, lu = z
        p = np.array(pm.config.suggested_init(), dtype=float)
        for name, v in (("mu", 1.0 + mu), ("ks", ks), ("kb", kb), ("bfree", 2.0 ** bf),
                        ("lumi", lu)):
            p[pm.config.par_slice(name)] = v
        return p

    for z in ([0.0] * 5, [0.4, -0.3, 0.5, 0.7, 0.2], [-0.6, 1.5, -2.0, -1.3, -0.8]):
        want = ch.expected(z[:1], z[1:])
        np.testing.assert_allclose(pm.expected_actualdata(pars(z)), want, rtol=1e-10)
        # and bpt's expected counts are the templates times the normalisations
        mu, ks, kb, bf, lu = z
        np.testing.assert_allclose(
            want, ((1 + mu) * S * 1.1 ** ks + B * 1.3 ** kb * 2.0 ** bf) * 1.02 ** lu, rtol=1e-12)
    best = pyhf.infer.mle.fit(ws_.data(pm), pm)
    got = {n: float(best[pm.config.par_slice(n)][0]) for n in ("mu", "ks", "kb", "bfree", "lumi")}
    fit = ch.fit(counts)
    assert got["mu"] - 1.0 == pytest.approx(fit["mu"], abs=1e-4)
    assert np.log2(got["bfree"]) == pytest.approx(fit["bfree"], abs=1e-4)
    for n in ("ks", "kb", "lumi"):
        assert got[n] == pytest.approx(fit[n], abs=1e-4)
    assert abs(fit["mu"]) > 0.1 and abs(fit["bfree"]) > 0.1       # the fit moved


# ----------------------------------------------------------------------------- impacts + controls
def test_impacts_honour_bounds_closed_form():
    """One bin, s (1 + mu) + b 1.2^kb: with kb fixed at v the refit has nu = n exactly, so
    mu*(v) = (40 - 50 1.2^v) / 10 - 1, clipped into mu's bounds.  (q is flat in mu here,
    d2q/dmu2 = -2.5, so the fits' q tolerance leaves ~1e-4 in mu: hence the tolerances.)"""
    ch, n, _ = _counting()

    def mu_star(v, lo=-np.inf):
        return max(lo, (40.0 - 50.0 * 1.2 ** v) / 10.0 - 1.0)

    # a bound on the POI, active at the global fit and in all refits but one
    bounds = {"mu": (-0.5, None)}
    fit = ch.fit(n, bounds=bounds)
    assert fit["mu"] == -0.5 and fit.at_bound == ["mu"]
    imp = ch.impacts(n, bounds=bounds)
    assert imp.names == ["kb"] and imp.success.all()
    kb, e = fit["kb"], fit.error("kb")
    assert imp.errors[0] == pytest.approx(e, rel=1e-12) and e > 0.3
    for v, got in ((kb + e, imp.impact_up[0]), (kb - e, imp.impact_down[0]),
                   (kb + 1, imp.prefit_up[0]), (kb - 1, imp.prefit_down[0])):
        assert got == pytest.approx(mu_star(v, -0.5) + 0.5, abs=5e-5)
    assert imp.prefit_down[0] > 0.04                       # the one refit off the bound
    # without the bound the same refits move mu freely (a different answer)
    free = ch.impacts(n)
    assert free.prefit_up[0] == pytest.approx(mu_star(free.nu_hat[0] + 1) - free.theta_hat,
                                              abs=5e-5)
    # a bounded nuisance: the values it is fixed at are clipped into its bounds
    imp = ch.impacts(n, bounds={"kb": (-0.5, 0.5)})
    mu_hat = ch.fit(n, bounds={"kb": (-0.5, 0.5)})["mu"]
    assert imp.errors[0] > 0.5                               # nu^ +- error is outside
    for v, got in ((0.5, imp.impact_up[0]), (-0.5, imp.impact_down[0]),
                   (0.5, imp.prefit_up[0]), (-0.5, imp.prefit_down[0])):
        assert got == pytest.approx(mu_star(v) - mu_hat, abs=3e-4)
    with pytest.raises(ValueError, match="POI 'mu' is fixed"):
        ch.impacts(n, fix={"mu": 0.0})
    with pytest.raises(ValueError, match="every nuisance is fixed"):
        ch.impacts(n, fix={"kb": 0.0})


def test_impacts_of_a_combination_are_refits_by_hand():
    edges, xs, ws, xb, wb, S, B = _templates()
    tmpl = BinnedChannel([Process("sig", xs, ws, ratio=SignalStrength(),
                                  normalization={"ks": 0.15}),
                          Process("bkg", xb, wb, normalization={"kb": 0.3})],
                         ["mu"], ["ks", "kb"], 0, edges, name="templates")
    counting, n, _ = _counting()
    comb = Combination([tmpl, counting])
    data = {"templates": np.array([55.0, 40.0, 30.0]), "binned": n}
    fit = comb.fit(data)
    imp = comb.impacts(data, poi="mu")
    assert sorted(imp.names) == ["kb", "ks"] and imp.success.all()
    for i, name in enumerate(imp.names):
        s = fit.error(name)
        for v, got in ((fit[name] + s, imp.impact_up[i]), (fit[name] - s, imp.impact_down[i]),
                       (fit[name] + 1, imp.prefit_up[i]), (fit[name] - 1, imp.prefit_down[i])):
            assert got == pytest.approx(comb.fit(data, fix={name: v})["mu"] - fit["mu"],
                                        abs=1e-4)           # two fits, each to Q_TOL in q
        assert abs(imp.impact_up[i]) > 1e-2
    # fix= : the fixed nuisance has no row; the global fit and the refits keep it fixed
    fix = {"ks": 0.3}
    fit_f = comb.fit(data, fix=fix)
    imp_f = comb.impacts(data, fix=fix)
    assert imp_f.names == ["kb"] and imp_f.theta_hat == fit_f["mu"]
    v = fit_f["kb"] + fit_f.error("kb")
    assert imp_f.impact_up[0] == pytest.approx(
        comb.fit(data, fix={"ks": 0.3, "kb": v})["mu"] - fit_f["mu"], abs=1e-4)
    assert abs(imp_f.impact_up[0] - imp.impact_up[imp.names.index("kb")]) > 1e-4


# ----------------------------------------------------------------------------- multi-start
class QuadShape:
    """S = exp(-0.05 nu + 0.1 nu^2): two nu give the same background (two maxima)."""
    terms_ = [(0,), (0, 0)]
    n_nuisances = 1

    def predict(self, X):
        n = np.asarray(X).shape[0]
        return np.column_stack([np.full(n, -0.05), np.full(n, 0.1)])


def test_fit_full_starts_reach_a_nuisance_driven_maximum():
    """The automatic starts move only the POIs (documented in ``fit``): a second maximum
    in a nuisance is missed; a full (theta, nu) row of ``starts`` reaches it."""
    xs, xb = np.full((10, 1), 0.5), np.full((20, 1), 1.5)
    ch = BinnedChannel([Process("sig", xs, np.ones(10), ratio=SignalStrength()),
                        Process("bkg", xb, np.ones(20), systematics=[(QuadShape(), ["nu"])])],
                       ["mu"], ["nu"], 0, [0.0, 1.0, 2.0])
    d = ch.prepare(np.array([10.0, 60.0]), global_observables=[0.5])
    # brute force: mu = 0 exactly (bin 0: 10 = 10), q over a fine grid of nu
    grid = np.linspace(-6.0, 6.0, 4801)
    qs = np.array([ch.q([0.0], [v], d) for v in grid])
    best = grid[np.argmax(qs)]
    assert best > 3.0 and qs.max() > np.max(qs[grid < 0]) + 1.0    # two maxima, the + one wins
    auto = ch.fit(d)
    assert auto["nu"] < -2.5 and auto.q < qs.max() - 1.0           # the limitation
    fit = ch.fit(d, starts=[[0.0, 3.5]])
    assert fit["nu"] == pytest.approx(best, abs=2.5e-3) and fit["mu"] == pytest.approx(0, abs=1e-5)
    assert qs.max() <= fit.q + 1e-9
    with pytest.raises(ValueError, match=r"starts must have shape \(M, 1\).*\(M, 2\)"):
        ch.fit(d, starts=[[0.0, 1.0, 2.0]])
    with pytest.raises(ValueError, match="starts: nu = 3.5 is outside"):
        ch.fit(d, starts=[[0.0, 3.5]], bounds={"nu": (-5.0, 3.0)})
