"""Missing values end to end: a toy where missingness carries information; predict,
apply, save/load and ONNX honour the learned sides; +-inf stays an error."""

import numpy as np
import pytest

from bpt import BoostedInformationTree as BIT
from bpt import BoostedParametricTree as BPT
from bpt import load


def _toy(n, seed):
    """R(x) = x0 - 0.5 where x1 is measured, R = +1.5 where x1 is missing (NaN)."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, 2))
    missing = rng.random(n) < 0.25
    X[missing, 1] = np.nan
    truth = np.where(missing, 1.5, X[:, 0] - 0.5)
    w = rng.uniform(0.5, 1.5, n)
    y = np.column_stack([w, w * (truth + 0.3 * rng.normal(size=n))])
    return X, y, truth


@pytest.fixture(scope="module")
def fitted():
    X, y, _ = _toy(40_000, 0)
    est = BIT(n_parameters=1, order=1, n_estimators=60, max_depth=3, min_samples_leaf=50,
              random_state=0).fit(X, y)
    return est


def test_missingness_is_learned(fitted):
    Xt, _, truth = _toy(10_000, 1)
    pred = fitted.predict(Xt)[:, 0]
    miss = np.isnan(Xt[:, 1])
    assert np.sqrt(np.mean((pred[miss] - 1.5) ** 2)) < 0.05
    assert np.sqrt(np.mean((pred[~miss] - truth[~miss]) ** 2)) < 0.06
    # a NaN in a feature never seen missing in training follows the larger child
    X0 = Xt[:50].copy()
    X0[:, 0] = np.nan
    assert np.all(np.isfinite(fitted.predict(X0)))


def test_inf_is_still_refused(fitted):
    X = np.array([[0.5, np.inf]])
    with pytest.raises(ValueError, match="inf"):
        fitted.predict(X)
    Xf, yf, _ = _toy(500, 2)
    Xf[3, 0] = -np.inf
    with pytest.raises(ValueError, match="inf"):
        BIT(n_parameters=1, order=1, n_estimators=1).fit(Xf, yf)


def test_exact_split_refuses_nan():
    X, y, _ = _toy(500, 3)
    with pytest.raises(ValueError, match="NaN"):
        BIT(n_parameters=1, order=1, n_estimators=1, split="exact").fit(X, y)


def test_save_load_and_apply_keep_missing_sides(fitted, tmp_path):
    Xt, _, _ = _toy(2_000, 4)
    path = tmp_path / "m.bpt"
    fitted.save(path)
    back = load(path)
    np.testing.assert_array_equal(back.predict(Xt), fitted.predict(Xt))
    np.testing.assert_array_equal(back.apply(Xt), fitted.apply(Xt))
    np.testing.assert_array_equal(back.ensemble_.arrays["missing_go_left"],
                                  fitted.ensemble_.arrays["missing_go_left"])


def test_bpt_learns_a_systematic_that_depends_on_missingness():
    rng = np.random.default_rng(5)
    n = 30_000
    X = rng.uniform(size=(2 * n, 2))
    miss = rng.random(2 * n) < 0.3
    X[miss, 1] = np.nan
    nu = np.concatenate([np.zeros(n), np.ones(n)])[:, None]
    # the varied sample has 1.5x the weight of events with a missing x1: Delta = log 1.5
    w = np.where((nu[:, 0] == 1) & miss, 1.5, 1.0)
    est = BPT(n_nuisances=1, order=1, n_estimators=30, max_depth=2, random_state=0,
              learn_global=True)    # the first tree at rate 1 learns the step in full
    est.fit(X, nu, w)
    Xt = np.array([[0.5, np.nan], [0.5, 0.4]])
    np.testing.assert_allclose(est.predict(Xt)[:, 0], [np.log(1.5), 0.0], atol=0.04)


def test_onnx_routes_nan_like_predict(fitted):
    ort = pytest.importorskip("onnxruntime")
    from bpt.export import to_onnx
    Xt, _, _ = _toy(3_000, 6)
    model = to_onnx(fitted, dtype="float64")
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"X": Xt})[0]
    np.testing.assert_allclose(out, fitted.predict(Xt), rtol=1e-6, atol=1e-6)
