"""bpt.plotting: every plot renders off-screen to a PNG and draws what it should."""

import sys

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bpt import BoostedInformationTree, BoostedParametricTree  # noqa: E402
from bpt import datasets as ds  # noqa: E402
from bpt import plotting as bp  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def bit_fit():
    sig = ds.make_eft_signal(4000, random_state=0)
    est = BoostedInformationTree(n_parameters=2, n_estimators=6, max_depth=2,
                                 min_samples_leaf=100, validation_fraction=0.25,
                                 early_stopping=True, random_state=0).fit(sig.X, sig.y)
    return est, sig


@pytest.fixture(scope="module")
def bpt_fit():
    sy = ds.make_systematic_samples(1500, random_state=0)
    est = BoostedParametricTree(n_nuisances=2, n_estimators=5, max_depth=2,
                                min_samples_leaf=50, random_state=0,
                                early_stopping=False).fit(sy.X, sy.nu, sy.weight)
    nom = ds.make_process_sample("signal", 3000, random_state=1)
    return est, nom


def _save(fig, tmp_path, name):
    path = tmp_path / name
    fig.savefig(path, dpi=60)
    assert path.exists() and path.stat().st_size > 2000
    return path


def _legend_texts(ax):
    leg = ax.get_legend()
    assert leg is not None
    return [t.get_text() for t in leg.get_texts()]


# ------------------------------------------------------------------ coefficients
def test_plot_coefficients_all_terms(bit_fit, tmp_path):
    est, sig = bit_fit
    axes = bp.plot_coefficients(est, sig.X, ds.true_coefficients, feature="mass",
                                feature_names=sig.feature_names,
                                parameter_names=sig.parameter_names)
    assert len(axes) == 5
    assert len(axes[0].figure.axes) == 5          # the unused sixth grid cell is removed
    titles = [a.get_title() for a in axes]
    assert "c_energy" in titles[0] and "c_energy*c_angle" in titles[3]
    assert "c_angle^2" in titles[4]
    for a in axes:
        assert len(a.lines) == 2                   # learned + truth
        assert a.get_xlabel() == "mass"
    assert _legend_texts(axes[0]) == ["learned", "truth"]
    # the truth curve is the binned mean of R_(0,) = z: it rises with the mass
    truth_y = axes[0].lines[1].get_ydata()
    assert np.all(np.diff(truth_y) > 0)
    x = axes[0].lines[1].get_xdata()
    np.testing.assert_allclose(truth_y, x / 1000.0, rtol=1e-10)   # mean of z over the bin
    _save(axes[0].figure, tmp_path, "coefficients.png")


def test_plot_coefficients_subset_predictions_and_given_axes(bit_fit, tmp_path):
    est, sig = bit_fit
    pred = est.predict(sig.X)
    fig, axs = plt.subplots(1, 2)
    out = bp.plot_coefficients(pred, sig.X, truth=sig.truth, feature=1, terms=[1, 3], ax=axs,
                               bins=8)
    assert list(out) == list(axs)
    for a in out:
        assert len(a.lines) == 2 and len(a.lines[0].get_xdata()) == 8
        assert a.get_xlabel() == "feature 1"
    # the learned curve averages the predictions over the bins
    x = sig.X[:, 1]
    edges = np.quantile(x, np.linspace(0, 1, 9))
    first = x <= edges[1]
    assert out[0].lines[0].get_ydata()[0] == pytest.approx(pred[first, 1].mean())
    _save(fig, tmp_path, "coefficients_subset.png")
    axes = bp.plot_coefficients(est, sig.X, terms=[(0, 1)])
    assert len(axes) == 1 and len(axes[0].lines) == 1
    with pytest.raises(ValueError, match="truth has shape"):
        bp.plot_coefficients(est, sig.X, truth=sig.truth[:, :2])
    with pytest.raises(ValueError, match="not one of the model's terms"):
        bp.plot_coefficients(est, sig.X, terms=[(2,)])
    with pytest.raises(ValueError, match="need 5 Axes"):
        bp.plot_coefficients(est, sig.X, ax=axs)


# ------------------------------------------------------------------ loss
def test_plot_loss(bit_fit, bpt_fit, tmp_path):
    est, _ = bit_fit
    ax = bp.plot_loss(est)
    assert len(ax.lines) == 2                      # train + validation
    np.testing.assert_allclose(ax.lines[0].get_ydata(), est.train_loss_)
    np.testing.assert_allclose(ax.lines[1].get_ydata(), est.validation_loss_)
    texts = _legend_texts(ax)
    best = int(np.argmin(est.validation_loss_)) + 1
    assert texts == ["train", "validation", f"best: {best} trees"]
    assert ax.get_xlabel() == "number of trees" and ax.get_ylabel() == "loss"
    _save(ax.figure, tmp_path, "loss_bit.png")
    ax = bp.plot_loss(bpt_fit[0], label="BPT")
    assert len(ax.lines) == 1 and _legend_texts(ax) == ["BPT train"]
    assert ax.get_title() == "BoostedParametricTree"
    _save(ax.figure, tmp_path, "loss_bpt.png")
    ax = bp.plot_loss([3.0, 2.0, 1.5], logy=True)
    assert ax.get_yscale() == "log"
    with pytest.raises(ValueError, match="no loss curve"):
        bp.plot_loss([])


# ------------------------------------------------------------------ systematics
def test_plot_systematic_ratios(bpt_fit, tmp_path):
    est, nom = bpt_fit
    nus = [[0.0, 0.0], [2.0, 0.0], [0.0, -2.0]]
    ax = bp.plot_systematic_ratios(est, nom.X, nus, truth=ds.true_log_ratio, feature=0,
                                   sample_weight=nom.weight, feature_names=nom.feature_names,
                                   nuisance_names=ds.NUISANCE_NAMES, bins=10)
    # reference line at 1 + 3 learned + 3 true curves
    assert len(ax.lines) == 7
    assert _legend_texts(ax) == ["jes=0, theory=0", "jes=2, theory=0", "jes=0, theory=-2",
                                 "truth (dashed)"]
    learned = [ln for ln in ax.lines if ln.get_linestyle() == "-"]
    dashed = [ln for ln in ax.lines if ln.get_linestyle() == "--"]
    assert len(learned) == 3 and len(dashed) == 3
    np.testing.assert_allclose(learned[0].get_ydata(), 1.0)       # nu = 0: S = 1
    np.testing.assert_allclose(dashed[0].get_ydata(), 1.0)
    # the true jes ratio rises with pT
    assert dashed[1].get_ydata()[-1] > 1.1 > 0.95 > dashed[1].get_ydata()[0]
    assert ax.get_xlabel() == "jet_pt"
    _save(ax.figure, tmp_path, "systematics.png")
    # precomputed log-ratios, no truth
    g = est.predict_log_ratio(nom.X, np.array(nus))
    ax = bp.plot_systematic_ratios(g, nom.X, nus, feature=2)
    assert len(ax.lines) == 4 and _legend_texts(ax)[0] == "nu0=0, nu1=0"
    with pytest.raises(ValueError, match="columns for 2 nu values"):
        bp.plot_systematic_ratios(g, nom.X, nus[:2])


# ------------------------------------------------------------------ scans
def test_plot_scan(tmp_path):
    theta = np.linspace(-0.2, 0.8, 101)
    t = ((theta - 0.3) / 0.1) ** 2 + 12.0          # shifted: plotted as Delta t
    ax = bp.plot_scan(theta, t, label="Asimov", parameter_name="c_energy", truth=0.3)
    curve = ax.lines[0]
    assert curve.get_ydata().min() == pytest.approx(0.0)
    level_lines = [ln for ln in ax.lines if (ln.get_gid() or "").startswith("bpt-level")]
    assert sorted(ln.get_ydata()[0] for ln in level_lines) == [1.0, 3.84]
    # curve + best-fit marker + 2 CL lines + truth
    assert len(ax.lines) == 5
    texts = _legend_texts(ax)
    assert texts[0] == "Asimov: best fit 0.3, 68% CL [0.2, 0.4]"
    assert "truth" in texts
    assert {t.get_text() for t in ax.texts} == {"68% CL", "95% CL"}
    assert ax.get_xlabel() == "c_energy"
    assert ax.get_ylim()[1] == pytest.approx(3.84 * 1.8)
    # an overlay adds its curve and marker but not the CL lines again, keeps the label
    bp.plot_scan(theta, ((theta - 0.35) / 0.2) ** 2, ax=ax, label="toy")
    assert len(ax.lines) == 7 and len(ax.texts) == 2
    assert ax.get_xlabel() == "c_energy"
    assert _legend_texts(ax)[-1] == "toy: best fit 0.35, 68% CL [0.15, 0.55]"
    _save(ax.figure, tmp_path, "scan.png")
    # an interval the scan does not close is shown open
    ax = bp.plot_scan(theta, (theta + 0.15) ** 2 * 100)
    assert _legend_texts(ax)[0] == "best fit -0.15, 68% CL [..., -0.05]"
    with pytest.raises(ValueError, match="same length"):
        bp.plot_scan(theta, t[:-1])


def test_plot_contour(tmp_path):
    th1 = np.linspace(-1.0, 1.0, 81)
    th2 = np.linspace(-2.0, 2.0, 121)
    a, b = np.meshgrid(th1, th2, indexing="ij")
    cov_inv = np.linalg.inv(np.array([[0.09, 0.05], [0.05, 0.25]]))
    d = np.stack([a - 0.1, b + 0.2], axis=-1)
    t = np.einsum("...i,ij,...j->...", d, cov_inv, d) + 3.0
    ax = bp.plot_contour(th1, th2, t, parameter_names=("c_energy", "c_angle"),
                         truth=(0.1, -0.2))
    assert _legend_texts(ax) == ["68% CL", "95% CL", "best fit (0.1, -0.2)", "truth"]
    assert ax.get_xlabel() == "c_energy" and ax.get_ylabel() == "c_angle"
    sets = [c for c in ax.collections if hasattr(c, "levels") and not c.filled]
    assert len(sets) == 1
    cs = sets[0]
    np.testing.assert_allclose(cs.levels, [2.30, 5.99])
    # the contour vertices lie on Delta t = level (up to grid interpolation)
    for level, path in zip(cs.levels, cs.get_paths()):
        v = path.vertices
        assert len(v) > 20
        dv = v - [0.1, -0.2]
        q = np.einsum("ni,ij,nj->n", dv, cov_inv, dv)
        np.testing.assert_allclose(q, level, rtol=0.02)
    _save(ax.figure, tmp_path, "contour.png")
    # overlay keeps the earlier legend entries
    bp.plot_contour(th1, th2, t * 1.5, ax=ax, label="toy", color="C1", filled=False)
    texts = _legend_texts(ax)
    assert len(texts) == 7 and texts[4] == "toy: 68% CL"
    assert ax.get_xlabel() == "c_energy"
    with pytest.raises(ValueError, match="transpose"):
        bp.plot_contour(th1, th2, t.T)


def test_missing_matplotlib_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install bpt\[plot\]"):
        bp.plot_scan([0.0, 1.0], [1.0, 0.0])
