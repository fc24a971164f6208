"""ONNX export: an ai.onnx.ml TreeEnsembleRegressor whose output equals predict(X)."""

import json

import numpy as np
import pytest
from conftest import bit_quadratic_model, bpt_gaussian_samples
from sklearn.exceptions import NotFittedError

import bpt
from bpt._engine._predictor import TreeEnsemble

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from bpt.export import float32_thresholds, to_onnx  # noqa: E402


def _run(model, X):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, {"X": X})
    return out


def _assert_close(out, pred, atol_scale=0.0):
    """1e-5 relative, per element (float32 output of the operator vs float64 predict);
    ``atol_scale``: plus that share of each column's largest magnitude (linear leaves:
    the float32 sum of the trees is added to the linear terms, which can cancel it)."""
    assert out.shape == pred.shape and out.dtype == np.float32
    atol = atol_scale * np.abs(pred).max(axis=0)
    assert np.all(np.abs(out - pred) <= 1e-5 * np.abs(pred) + atol)


@pytest.fixture(scope="module")
def bit_model():
    X, y, _ = bit_quadratic_model(4000, seed=7)
    est = bpt.BoostedInformationTree(n_parameters=2, n_estimators=25, max_depth=3,
                                     min_samples_leaf=40, random_state=0).fit(X, y)
    return est


@pytest.fixture(scope="module")
def bpt_model():
    X, nu, w = bpt_gaussian_samples(300, seed=2)
    return bpt.BoostedParametricTree(n_nuisances=2, n_estimators=8, max_depth=2,
                                     min_samples_leaf=20, split="exact").fit(X, nu, w)


def _edge_rows(est, rng, n=400):
    """Random rows plus rows placed exactly on, just below and just above thresholds."""
    a = est.ensemble_.arrays
    F = est.n_features_in_
    X = rng.uniform(-0.2, 1.2, (n, F))
    internal = np.flatnonzero(a["feature"] >= 0)
    pick = rng.choice(internal, size=n)
    for i, j in enumerate(pick):
        t = a["threshold"][j]
        X[i, a["feature"][j]] = (t, np.nextafter(t, -np.inf), np.nextafter(t, np.inf))[i % 3]
    return X


def test_float64_input_matches_predict_everywhere(bit_model):
    X = _edge_rows(bit_model, np.random.default_rng(0))
    _assert_close(_run(to_onnx(bit_model, dtype="float64"), X), bit_model.predict(X))


def test_float32_input_routes_exactly_like_bpt_on_float32_values(bit_model):
    """Any float32 row (even one sitting on a rounded threshold) routes as bpt does."""
    rng = np.random.default_rng(1)
    X32 = _edge_rows(bit_model, rng).astype(np.float32)
    thr = bit_model.ensemble_.arrays["threshold"]
    feat = bit_model.ensemble_.arrays["feature"]
    j = np.flatnonzero(feat >= 0)[:50]
    t32 = float32_thresholds(thr[j])
    X32[:50, :] = 0.5
    X32[np.arange(50), feat[j]] = t32                        # on the float32 threshold
    X32[50:100, :] = 0.5
    X32[50 + np.arange(50), feat[j]] = np.nextafter(t32, np.float32(np.inf))   # just above
    pred = bit_model.predict(X32.astype(np.float64))
    _assert_close(_run(to_onnx(bit_model), X32), pred)
    out1 = _run(to_onnx(bit_model, ml_opset=1), X32)
    scale = np.abs(pred).max(axis=0)             # float32 leaf values and float32 sums
    assert np.all(np.abs(out1 - pred) <= 1e-5 * scale)


def test_float32_input_on_float64_rows_away_from_thresholds(bit_model):
    """Float64 data cast to float32: same routing unless a value is within float32 rounding of
    a threshold; random rows (checked to be away from every threshold) agree."""
    rng = np.random.default_rng(2)
    X = rng.uniform(-0.2, 1.2, (2000, bit_model.n_features_in_))
    a = bit_model.ensemble_.arrays
    for f in range(X.shape[1]):
        t = a["threshold"][a["feature"] == f]
        gap = np.min(np.abs(X[:, f, None] - t[None, :]), axis=1)
        assert np.all(gap > 4 * np.spacing(np.float32(np.abs(X[:, f]) + 1)))
    _assert_close(_run(to_onnx(bit_model), X.astype(np.float32)), bit_model.predict(X))


def test_bpt_export(bpt_model, tmp_path):
    X = _edge_rows(bpt_model, np.random.default_rng(3))
    path = tmp_path / "bpt.onnx"
    to_onnx(bpt_model, dtype="float64", path=str(path))
    assert bpt_model.ensemble_.has_linear
    _assert_close(_run(onnx.load(str(path)), X), bpt_model.predict(X), 1e-6)


@pytest.mark.parametrize("dtype,ml_opset", [("float64", 3), ("float32", 3), ("float32", 1)])
def test_bpt_linear_leaves_export_with_nan_and_rows_beyond_the_leaf_ranges(dtype, ml_opset):
    X, nu, w = bpt_gaussian_samples(400, seed=8)
    X = X.copy()
    X[::13, 1] = np.nan                   # missing values: leaves that hold them stay constant
    est = bpt.BoostedParametricTree(n_nuisances=2, n_estimators=10, max_depth=3,
                                    min_samples_leaf=20, random_state=0).fit(X, nu, w)
    a = est.ensemble_.arrays
    assert est.ensemble_.has_linear and np.any((a["linear_count"] == 0) & (a["feature"] < 0))
    rng = np.random.default_rng(4)
    Xt = rng.normal(0, 2, (600, X.shape[1]))
    Xt[:100] *= 50                        # far outside every leaf's range: clipped
    Xt[100:200:3, 0] = np.nan
    Xt[101:200:3, 1] = np.nan
    Xt = Xt.astype(dtype)
    out = _run(to_onnx(est, dtype=dtype, ml_opset=ml_opset), Xt)
    _assert_close(out, est.predict(Xt), 1e-6 if ml_opset == 3 else 1e-5)


def test_model_structure_and_metadata(bit_model):
    model = to_onnx(bit_model)
    (node,) = [n for n in model.graph.node if n.op_type == "TreeEnsembleRegressor"]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert node.domain == "ai.onnx.ml" and attrs["n_targets"] == len(bit_model.terms_)
    assert set(attrs["nodes_modes"]) == {b"BRANCH_LEQ", b"LEAF"}
    assert attrs["aggregate_function"] == b"SUM" and "base_values" not in attrs
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["terms"]) == [list(t) for t in bit_model.terms_]
    assert props["bpt_class"] == "BoostedInformationTree"
    assert props["bpt_version"] == bpt.__version__


def test_single_leaf_trees_and_feature_names():
    """A hand-built ensemble with a root-only tree (no split) next to a normal one."""
    est = bpt.BoostedInformationTree(n_parameters=1, order=1)
    est.ensemble_ = TreeEnsemble.from_arrays(dict(
        feature=np.array([-1, 1, -1, -1]), threshold=np.array([0.0, 0.25, 0.0, 0.0]),
        left=np.array([-1, 2, -1, -1]), right=np.array([-1, 3, -1, -1]),
        value=np.array([[0.5], [0.0], [-1.0], [2.0]]), gain=np.zeros(4),
        n_samples=np.ones(4, dtype=np.int64), tree_start=np.array([0, 1]),
        learning_rates=np.array([1.0, 1.0])))
    est.terms_, est.n_features_in_, est.n_iter_ = [(0,)], 2, 2
    est.feature_names_in_ = np.array(["a", "b"], dtype=object)
    X = np.array([[0.0, 0.25], [0.0, 0.2500001], [9.0, -3.0]])
    np.testing.assert_array_equal(est.predict(X), [[-0.5], [2.5], [-0.5]])
    for kw in ({}, {"dtype": "float64"}, {"ml_opset": 1}):
        model = to_onnx(est, **kw)
        Xin = X.astype(np.float64 if kw.get("dtype") == "float64" else np.float32)
        _assert_close(_run(model, Xin), est.predict(Xin.astype(np.float64)))
    props = {p.key: p.value for p in to_onnx(est).metadata_props}
    assert json.loads(props["feature_names"]) == ["a", "b"]


def test_float32_thresholds_round_down():
    t = np.array([0.1, -0.1, 1.0, 1e39, -1e39, np.inf, 0.0, 2.0 ** -140])
    t32 = float32_thresholds(t)
    assert t32.dtype == np.float32
    assert np.all(t32.astype(np.float64) <= t)
    with np.errstate(over="ignore"):
        up = np.nextafter(t32, np.float32(np.inf)).astype(np.float64)
    assert np.all((up > t) | np.isinf(t))          # the largest float32 below t
    assert t32[2] == 1.0 and t32[5] == np.inf and t32[3] == np.finfo(np.float32).max


def test_bad_arguments(bit_model):
    with pytest.raises(NotFittedError):
        to_onnx(bpt.BoostedInformationTree())
    with pytest.raises(ValueError, match="dtype"):
        to_onnx(bit_model, dtype="float16")
    with pytest.raises(ValueError, match="ml_opset"):
        to_onnx(bit_model, dtype="float64", ml_opset=1)


# ---------------------------------------------------------------- pipelines (skl2onnx)
skl2onnx = pytest.importorskip("skl2onnx")


def _scaled_pipeline(est, X, target, **fit_params):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    return make_pipeline(StandardScaler(), est).fit(X, target, **fit_params)


@pytest.fixture(scope="module")
def bit_pipeline():
    X, y, _ = bit_quadratic_model(4000, seed=8)
    X = X * [1.0, 30.0, 0.01] + [0.0, 100.0, -5.0]       # scales the scaler must undo
    est = bpt.BoostedInformationTree(n_parameters=2, n_estimators=20, max_depth=3,
                                     min_samples_leaf=40, random_state=0)
    return _scaled_pipeline(est, X, y), X


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_pipeline_scaler_and_bit_matches_predict(bit_pipeline, dtype):
    pipe, X = bit_pipeline
    model = to_onnx(pipe, dtype=dtype)
    ops = [n.op_type for n in model.graph.node]
    assert "TreeEnsembleRegressor" in ops and {"Scaler", "Sub", "Div"} & set(ops)  # the scaler
    Xin = X[:1000].astype(dtype)
    out = _run(model, Xin)
    # the graph's scaler works in the input dtype: compare with predict on the same values
    _assert_close(out, pipe.predict(Xin.astype(np.float64)))
    props = {p.key: p.value for p in model.metadata_props}
    assert props["bpt_class"] == "BoostedInformationTree"
    assert json.loads(props["pipeline"]) == ["standardscaler", "boostedinformationtree"]
    assert [o.name for o in model.graph.output] == ["Y"]


def test_pipeline_with_bpt_and_skl2onnx_direct(tmp_path):
    X, nu, w = bpt_gaussian_samples(300, seed=5)
    est = bpt.BoostedParametricTree(n_nuisances=2, n_estimators=5, max_depth=2,
                                    min_samples_leaf=20, random_state=0)
    pipe = _scaled_pipeline(est, X * 4.0 + 1.0, nu, boostedparametrictree__sample_weight=w)
    Xt = X[:500] * 4.0 + 1.0
    path = tmp_path / "pipe.onnx"
    to_onnx(pipe, dtype="float64", path=str(path))
    _assert_close(_run(onnx.load(str(path)), Xt), pipe.predict(Xt), 1e-6)
    # bpt's converter is registered: skl2onnx's own entry point converts the pipeline too
    from skl2onnx.common.data_types import DoubleTensorType
    bpt.export.register_skl2onnx()
    model = skl2onnx.to_onnx(pipe, initial_types=[("X", DoubleTensorType([None, 3]))],
                             target_opset={"": 15, "ai.onnx.ml": 3})
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    _assert_close(sess.run(None, {"X": Xt})[0], pipe.predict(Xt), 1e-6)


def test_pipeline_errors(bit_pipeline, monkeypatch):
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    pipe, X = bit_pipeline
    with pytest.raises(TypeError, match="Pipeline ending in one"):
        to_onnx(make_pipeline(StandardScaler(), LinearRegression()).fit(X, X[:, 0]))
    with pytest.raises(NotFittedError):
        to_onnx(make_pipeline(StandardScaler(), bpt.BoostedInformationTree()))
    with pytest.raises(TypeError, match="BoostedInformationTree"):
        to_onnx(StandardScaler().fit(X))
    monkeypatch.setitem(__import__("sys").modules, "skl2onnx", None)   # not installed
    with pytest.raises(ImportError, match=r"skl2onnx.*pip install bpt\[onnx\]"):
        to_onnx(pipe)
