"""BoostedInformationTree(target_dtype=...): working targets stored in float32 or float64.

The analytic toy: 2 parameters at quadratic order (5 terms), event weights
w(theta) = c0 (1 + theta . a(x))^2 exactly, so R_(0) = 2 a0, R_(1) = 2 a1,
R_(0,0) = a0^2, R_(0,1) = 2 a0 a1, R_(1,1) = a1^2.
"""

import io

import numpy as np
import pytest
from sklearn.base import clone

import bpt
from bpt import BoostedInformationTree

# stated tolerance of float32 targets: max |prediction(float32) - prediction(float64)|
# relative to the largest |prediction| (measured about 2e-7, docs/performance.md)
RTOL_FLOAT32 = 1e-5


def _toy(n, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    a0 = 0.5 * np.tanh(X[:, 0])
    a1 = 0.3 * X[:, 1] * (X[:, 1] > 0)
    y = np.column_stack([np.ones(n), 2 * a0, 2 * a1, a0 ** 2, 2 * a0 * a1, a1 ** 2])
    return X, y, y[:, 1:]


def _fit(X, y, **kw):
    return BoostedInformationTree(n_parameters=2, order=2, n_estimators=40, max_depth=4,
                                  learning_rate=0.3,
                                  early_stopping=False, n_jobs=1, **kw).fit(X, y)


@pytest.fixture(scope="module")
def fits():
    X, y, truth = _toy(20_000, 1)
    return X, truth, _fit(X, y), _fit(X, y, target_dtype="float32")


def test_float32_targets_within_tolerance_of_float64(fits):
    X, truth, f64, f32 = fits
    p64, p32 = f64.predict(X), f32.predict(X)
    assert p32.dtype == np.float64
    scale = np.abs(p64).max()
    assert np.abs(p32 - p64).max() <= RTOL_FLOAT32 * scale
    # the option is in effect: rounding the residuals to float32 changes the last digits
    assert not np.array_equal(p32, p64)
    # and both learn the analytic model equally well
    err64 = np.sqrt(np.mean((p64 - truth) ** 2, axis=0))
    err32 = np.sqrt(np.mean((p32 - truth) ** 2, axis=0))
    np.testing.assert_allclose(err32, err64, rtol=1e-4)
    assert np.all(err64 < 0.25 * truth.std(axis=0))     # measured 0.03-0.12


def test_default_is_float64_and_unchanged(fits):
    X, _, f64, _ = fits
    assert BoostedInformationTree().get_params()["target_dtype"] == "float64"
    X2, y2, _ = _toy(20_000, 1)
    again = _fit(X2, y2, target_dtype="float64")
    np.testing.assert_array_equal(again.predict(X), f64.predict(X))
    np.testing.assert_array_equal(again.train_loss_, f64.train_loss_)


@pytest.mark.parametrize("bad", ["float16", "int64", "Float32", np.float32, None, 32])
def test_bad_target_dtype_raises(bad):
    X, y, _ = _toy(200, 2)
    with pytest.raises(ValueError, match="target_dtype"):
        _fit(X, y, target_dtype=bad)


def test_params_clone_and_save_load(fits):
    X, _, _, f32 = fits
    assert f32.get_params()["target_dtype"] == "float32"
    assert clone(f32).get_params()["target_dtype"] == "float32"
    est = BoostedInformationTree().set_params(target_dtype="float32")
    assert est.target_dtype == "float32"
    buf = io.BytesIO()
    f32.save(buf)
    buf.seek(0)
    loaded = bpt.load(buf)
    assert loaded.get_params()["target_dtype"] == "float32"
    np.testing.assert_array_equal(loaded.predict(X), f32.predict(X))
