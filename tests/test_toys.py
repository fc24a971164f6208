"""bpt.toys: every toy's exact truth against its own sampling, and the closed forms.

Binned checks compare, in bins of x, two estimates of the same expected quantity and
use the per-bin statistical error: a wrong normalisation, mean, latent average or
coefficient layout gives pulls of many sigma on these sample sizes.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from bpt import toys
from bpt._terms import monomials

ROOT = os.path.join(os.path.dirname(__file__), "..")


def _bins(cols, n_per_axis):
    """Bin index from quantile bins of each column (n_per_axis per column)."""
    idx = np.zeros(cols.shape[0], dtype=np.int64)
    for j in range(cols.shape[1]):
        edges = np.quantile(cols[:, j], np.linspace(0, 1, n_per_axis + 1)[1:-1])
        idx = idx * n_per_axis + np.searchsorted(edges, cols[:, j])
    return idx, n_per_axis ** cols.shape[1]


def _pulls_independent(b1, w1, b2, w2, n_bins):
    """(sum w1 - sum w2) / error per bin for two independent weighted samples."""
    s1, s2 = np.bincount(b1, w1, n_bins), np.bincount(b2, w2, n_bins)
    v1, v2 = np.bincount(b1, w1 ** 2, n_bins), np.bincount(b2, w2 ** 2, n_bins)
    return (s1 - s2) / np.sqrt(v1 + v2)


def _pulls_paired(b, d, n_bins):
    """sum d / error per bin for per-event differences d of one sample."""
    return np.bincount(b, d, n_bins) / np.sqrt(np.bincount(b, d ** 2, n_bins))


def _assert_pulls(pulls):
    pulls = np.asarray(pulls).ravel()
    chi2 = float(np.sum(pulls ** 2))
    ndf = pulls.size
    # statistical consistency: chi2 below its 99.9% quantile, no 5-sigma bin
    assert chi2 < stats.chi2.ppf(0.999, ndf), (chi2, ndf)
    assert np.max(np.abs(pulls)) < 5.0, pulls


# ------------------------------------------------------------------ BPT toys
def test_shift_independent_samples_follow_the_exact_ratio():
    toy = toys.make_shift_independent(n_per_point=60_000, n_test=10, random_state=3)
    nominal = ~np.any(toy.nu != 0, axis=1)
    X0, w0 = toy.X[nominal], toy.weight[nominal]
    assert w0.sum() == pytest.approx(1.0)
    pulls = []
    for p in toy.base_points:
        sel = np.all(toy.nu == p, axis=1)
        Xp, wp = toy.X[sel], toy.weight[sel]
        # the same bins (fixed by the nominal sample) for both estimates of the yield
        cols0 = np.column_stack([toy.log_ratio(X0, p), X0[:, 2]])
        colsp = np.column_stack([toy.log_ratio(Xp, p), Xp[:, 2]])
        edges = [np.quantile(cols0[:, j], np.linspace(0, 1, 6)[1:-1]) for j in range(2)]
        b0 = np.searchsorted(edges[0], cols0[:, 0]) * 5 + np.searchsorted(edges[1], cols0[:, 1])
        bp = np.searchsorted(edges[0], colsp[:, 0]) * 5 + np.searchsorted(edges[1], colsp[:, 1])
        pulls.append(_pulls_independent(bp, wp, b0, w0 * np.exp(toy.log_ratio(X0, p)), 25))
    _assert_pulls(pulls)


def test_shift_independent_is_statistically_sensitive():
    # the check above fails for a slightly wrong truth (here: beta_(0,) off by 0.03)
    toy = toys.make_shift_independent(n_per_point=100_000, n_test=10, random_state=3)
    p = toy.base_points[0]
    nominal = ~np.any(toy.nu != 0, axis=1)
    sel = np.all(toy.nu == p, axis=1)
    X0 = toy.X[nominal]
    wrong = toy.log_ratio(X0, p) + 0.03
    b0, n_bins = _bins(X0[:, :1], 5)
    edges = np.quantile(X0[:, 0], np.linspace(0, 1, 6)[1:-1])
    bp = np.searchsorted(edges, toy.X[sel][:, 0])
    pulls = _pulls_independent(bp, toy.weight[sel], b0, toy.weight[nominal] * np.exp(wrong),
                               n_bins)
    assert np.sum(pulls ** 2) > stats.chi2.ppf(0.999, n_bins)


def test_shift_delta_closed_form():
    toy = toys.make_shift_independent(n_per_point=10, n_test=1000, random_state=0)
    X = toy.X_test
    D = toy.delta(X)
    x0, x1, x2 = X.T
    np.testing.assert_allclose(D[:, 0], 0.30 * x0 + 0.10 * x2 + 0.10 * x0 * x1 + 0.05,
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(D[:, 1], 0.25 * x1 + 0.05 * x2 ** 2 - 0.03, rtol=1e-12,
                               atol=1e-14)
    np.testing.assert_allclose(D[:, 2], 0.05 * x0 - 0.03 * x0 ** 2 + 0.02, rtol=1e-12,
                               atol=1e-14)
    nu = np.array([0.4, -1.1])
    np.testing.assert_allclose(toy.log_ratio(X, nu),
                               D @ np.array([0.4, -1.1, 0.16, -0.44, 1.21]), rtol=1e-12)
    assert toy.log_ratio(X, np.vstack([nu, nu])).shape == (1000, 2)


def test_shift_reweighted_weights_average_to_the_exact_ratio():
    toy = toys.make_shift_reweighted(n_per_point=200_000, n_test=10, random_state=5)
    n = 200_000
    X0, w0 = toy.X[:n], toy.weight[:n]
    np.testing.assert_array_equal(toy.groups[:n], np.arange(n))
    pulls = []
    b, n_bins = _bins(X0[:, :2], 4)
    for k, p in enumerate(toy.base_points):
        rows = slice((k + 1) * n, (k + 2) * n)
        np.testing.assert_array_equal(toy.X[rows], X0)          # the same events
        np.testing.assert_array_equal(toy.nu[rows], np.tile(p, (n, 1)))
        d = toy.weight[rows] - w0 * np.exp(toy.log_ratio(X0, p))  # latent noise, mean 0
        assert np.std(d / w0) > 0.1                               # the weights are noisy
        pulls.append(_pulls_paired(b, d, n_bins))
    _assert_pulls(pulls)


def test_energy_scale_exact_log_ratio_and_sampling():
    toy = toys.make_energy_scale(n_per_point=100_000, n_test=20_000, random_state=2)
    x = toy.X_test
    for v in (-1.5, 0.5, 2.0):
        s = 1 + 0.05 * v
        ref = (stats.gamma.logpdf(x[:, 0], 2.0, scale=s) - stats.gamma.logpdf(x[:, 0], 2.0))
        np.testing.assert_allclose(toy.log_ratio(x, v), ref, rtol=1e-9, atol=1e-12)
    # the scaled events at nu vs an independent nominal sample reweighted by the truth
    other = toys.make_energy_scale(n_per_point=100_000, n_test=10, random_state=9)
    n = 100_000
    X0, w0 = other.X[:n], other.weight[:n]
    edges = np.quantile(X0[:, 0], np.linspace(0, 1, 21)[1:-1])
    pulls = []
    for k, p in enumerate(toy.base_points[:, 0]):
        rows = slice((k + 1) * n, (k + 2) * n)
        np.testing.assert_allclose(toy.X[rows, 0], toy.X[:n, 0] * (1 + 0.05 * p))
        np.testing.assert_array_equal(toy.X[rows, 1:], toy.X[:n, 1:])
        pulls.append(_pulls_independent(np.searchsorted(edges, toy.X[rows, 0]),
                                        toy.weight[rows], np.searchsorted(edges, X0[:, 0]),
                                        w0 * np.exp(toy.log_ratio(X0, p)), 20))
    _assert_pulls(pulls)
    assert toy.delta is None and toy.terms == [(0,), (0, 0)]


# ------------------------------------------------------------------ BIT toys
def test_bit_quadratic_latent_average_is_exact():
    toy = toys.make_bit_quadratic(n=300_000, n_test=1000, random_state=4)
    R = toy.coefficients(toy.X)
    c0 = toy.y[:, 0]
    b, n_bins = _bins(toy.X, 3)
    pulls = [_pulls_paired(b, toy.y[:, 1 + a] - c0 * R[:, a], n_bins) for a in range(5)]
    _assert_pulls(pulls)
    # closed forms: R from the amplitudes, and the weight (1 + theta.a)^2 c0 >= 0
    x0, x1, x2 = toy.X_test.T
    f1, f2 = 0.3 * np.tanh(x0) + 0.05, 0.2 * x1 * (1 + 0.5 * np.tanh(x0))
    s2 = 0.15 * (1 + 0.5 * np.tanh(x2))
    Rt = toy.coefficients(toy.X_test)
    np.testing.assert_allclose(Rt, np.column_stack([2 * f1, 2 * f2, f1 ** 2 + 0.25 ** 2 / 2,
                                                    2 * f1 * f2, f2 ** 2 + s2 ** 2 / 2]),
                               rtol=1e-12)
    theta = np.random.default_rng(0).normal(0, 2, (20, 2))
    w = toy.y[:, :1] + toy.y[:, 1:] @ monomials(theta, toy.terms).T
    assert np.all(w >= -1e-15)
    r = toy.ratio(toy.X_test, theta)
    np.testing.assert_allclose(r, 1 + Rt @ monomials(theta, toy.terms).T, rtol=1e-12)
    assert np.all(r > 0)


def test_bit_many_coefficients():
    # without latent noise every event's c_A / c0 is the exact R_A(x)
    toy = toys.make_bit_many(n=2000, n_test=10, sigma=0.0, random_state=1)
    assert len(toy.terms) == 135 and toy.y.shape == (2000, 136)
    np.testing.assert_allclose(toy.y[:, 1:] / toy.y[:, :1], toy.coefficients(toy.X),
                               rtol=1e-12, atol=1e-15)
    # with latent noise the binned averages agree with R_A (every 7th term)
    toy = toys.make_bit_many(n=60_000, n_test=10, random_state=2)
    R = toy.coefficients(toy.X)
    c0 = toy.y[:, 0]
    b, n_bins = _bins(toy.X[:, :2], 3)
    terms = list(range(0, 135, 7))
    pulls = [_pulls_paired(b, toy.y[:, 1 + a] - c0 * R[:, a], n_bins) for a in terms]
    _assert_pulls(pulls)
    # the diagonal terms carry the latent variance sigma^2 = 0.0225
    f = 0.5 * R[:, :15]
    diag = [toy.terms.index((a, a)) for a in range(15)]
    np.testing.assert_allclose(R[:, diag], f ** 2 + 0.15 ** 2, rtol=1e-12)


# ------------------------------------------------------------------ ExactModel
def test_exact_model_gives_the_exact_asimov_fit():
    from bpt.inference import AdditiveModel, Process
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4000, 3))
    w = np.full(4000, 0.5)
    R = toys.ExactModel(toys._bit2_coefficients, toys.make_bit_quadratic(10, 10).terms, 3)
    D = toys.ExactModel(toys._shift_delta, [(0,), (1,), (0, 0), (0, 1), (1, 1)])
    np.testing.assert_array_equal(R.predict(X), toys._bit2_coefficients(X))
    model = AdditiveModel([Process("s", X, w, ratio=(R, ["a", "b"]),
                                   systematics=[(D, ["n0", "n1"])])],
                          pois=["a", "b"], nuisances=["n0", "n1"])
    theta = np.array([0.3, -0.2])
    nu = np.array([0.5, -0.4])
    w_data = w * np.exp(toys._shift_delta(X) @ monomials(nu, D.terms_)) * \
        (1 + toys._bit2_coefficients(X) @ monomials(theta, R.terms_))
    fit = model.fit(model.prepare(X, w_data, global_observables=nu))
    np.testing.assert_allclose(fit.theta, theta, atol=1e-5)
    np.testing.assert_allclose(fit.nu, nu, atol=1e-5)


def test_bad_input():
    with pytest.raises(ValueError, match="n_per_point"):
        toys.make_shift_independent(n_per_point=0)
    with pytest.raises(ValueError, match="latent_noise"):
        toys.make_shift_reweighted(latent_noise=-1.0)
    with pytest.raises(ValueError, match="delta"):
        toys.make_energy_scale(delta=0.5)
    toy = toys.make_bit_quadratic(n=10, n_test=10)
    with pytest.raises(ValueError, match="theta"):
        toy.ratio(toy.X_test, [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="X must have shape"):
        toy.coefficients(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="callable"):
        toys.ExactModel(3, [(0,)])


def test_same_seed_same_sample():
    a = toys.make_shift_reweighted(n_per_point=100, n_test=50, random_state=8)
    b = toys.make_shift_reweighted(n_per_point=100, n_test=50, random_state=8)
    np.testing.assert_array_equal(a.weight, b.weight)
    np.testing.assert_array_equal(a.X_test, b.X_test)


@pytest.mark.slow
def test_accuracy_benchmark_quick(tmp_path):
    out = tmp_path / "acc.json"
    subprocess.run([sys.executable, os.path.join(ROOT, "bench", "bench_accuracy.py"), "--quick",
                    "--out", str(out)], check=True, capture_output=True, text=True, cwd=ROOT)
    res = json.loads(out.read_text())
    assert [t["name"] for t in res["toys"]] == ["shift_independent", "shift_reweighted",
                                                "energy_scale", "bit_quadratic", "bit_many_15"]
    for t in res["toys"]:
        # every score is a relative RMSE: positive, and the empty model scores about 1
        scores = [r["rel_rmse"] for r in t["rows"] if "rel_rmse" in r] + [t["peer"]["rel_rmse"]]
        assert all(0 < s < 3 for s in scores), scores
    lo, hi = res["profile"]["exact"][0]
    assert lo < 0.2 < hi                     # the exact Asimov interval holds theta_true
