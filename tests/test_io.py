"""Saved models: round trips, the frozen v1 fixture, damaged/crafted files, pickle/joblib."""

import hashlib
import io
import json
import os
import pickle
import struct

import joblib
import numpy as np
import pytest
from conftest import bit_quadratic_model, bpt_gaussian_samples, resave_container
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bpt
from bpt import _io
from bpt._io import load, read_container, write_container

DATA = os.path.join(os.path.dirname(__file__), "data")
FIXTURE_V1 = os.path.join(DATA, "bit_v1.bpt")
with open(FIXTURE_V1, "rb") as _f:
    FIXTURE_BYTES = _f.read()


# ---------------------------------------------------------------- helpers
def _same(a, b):
    """Deep equality of saved values: exact arrays (incl. dtype), tuples vs lists, RNG state."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (type(a) is type(b) and a.dtype == b.dtype and a.shape == b.shape
                and bool(np.all((a == b) | ((a != a) & (b != b)))))
    if isinstance(a, np.random.RandomState):
        return isinstance(b, np.random.RandomState) and _same(a.get_state(), b.get_state())
    if isinstance(a, (list, tuple)):
        return (type(a) is type(b) and len(a) == len(b)
                and all(_same(x, y) for x, y in zip(a, b)))
    if isinstance(a, dict):
        return type(b) is dict and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float) and a != a:
        return isinstance(b, float) and b != b
    return type(a) is type(b) and a == b


def _public_state(est):
    return {k: v for k, v in vars(est).items() if not k.startswith("_") and k != "ensemble_"}


def assert_same_model(a, b, X):
    assert type(a) is type(b)
    assert _same(_public_state(a), _public_state(b))
    ea, eb = a.ensemble_.arrays, b.ensemble_.arrays
    assert ea.keys() == eb.keys() and all(_same(ea[k], eb[k]) for k in ea)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


def _save_bytes(est):
    buf = io.BytesIO()
    est.save(buf)
    return buf.getvalue()


def _load_bytes(data):
    return load(io.BytesIO(bytes(data)))


def _v1_file(header, data=b""):
    """A format-1 file with a *valid* checksum around an arbitrary JSON header (text/bytes)."""
    js = header if isinstance(header, bytes) else json.dumps(header).encode()
    prefix = struct.pack("<8sIIQQ", _io.MAGIC, 1, 0, len(js), len(data))
    body = js + bytes(-(64 + len(js)) % 16) + data
    return prefix + hashlib.sha256(prefix + body).digest() + body


def _resave(mutate, source=FIXTURE_BYTES):
    """A crafted copy of the fixture (see conftest.resave_container)."""
    return resave_container(source, mutate)


@pytest.fixture(scope="module")
def fitted_bit():
    X, y, _ = bit_quadratic_model(2000, seed=3)
    est = bpt.BoostedInformationTree(n_parameters=2, order=2, n_estimators=6, max_depth=3,
                                     min_samples_leaf=40, validation_fraction=0.25,
                                     early_stopping=True, random_state=0).fit(X, y)
    return est, X


@pytest.fixture(scope="module")
def fitted_bpt():
    X, nu, w = bpt_gaussian_samples(300, seed=4)
    est = bpt.BoostedParametricTree(n_nuisances=2, n_estimators=5, max_depth=2,
                                    min_samples_leaf=20, random_state=1).fit(X, nu, w)
    return est, X


# ---------------------------------------------------------------- round trips
def test_public_api():
    assert bpt.load is _io.load, "bpt/__init__.py must export load from ._io"


@pytest.mark.parametrize("which", ["fitted_bit", "fitted_bpt"])
def test_round_trip_is_bit_identical(which, request, tmp_path):
    est, X = request.getfixturevalue(which)
    path = tmp_path / "model.bpt"
    est.save(path)
    loaded = load(str(path))
    assert_same_model(est, loaded, X)
    assert loaded.n_iter_ == est.n_iter_ and loaded.terms_ == est.terms_
    np.testing.assert_array_equal(loaded.feature_importances_, est.feature_importances_)
    for s1, s2 in zip(est.staged_predict(X[:50]), loaded.staged_predict(X[:50])):
        np.testing.assert_array_equal(s1, s2)
    # deterministic bytes: saving twice, or saving what was loaded, gives the same file
    assert _save_bytes(est) == path.read_bytes() == _save_bytes(loaded)
    # tree arrays come back aligned, writable and C-contiguous: numba reuses its compiled code
    for a in loaded.ensemble_.arrays.values():
        assert a.flags.aligned and a.flags.writeable and a.flags.c_contiguous


def test_bit_derived_methods_survive(fitted_bit):
    est, X = fitted_bit
    loaded = _load_bytes(_save_bytes(est))
    theta = np.array([[0.5, -1.0], [2.0, 0.1]])
    np.testing.assert_array_equal(loaded.predict_ratio(X, theta), est.predict_ratio(X, theta))
    y = bit_quadratic_model(500, seed=9)[1]
    assert loaded.score(X[:500], y) == est.score(X[:500], y)
    assert _same(loaded.validation_loss_, est.validation_loss_)


def test_bpt_derived_methods_survive(fitted_bpt):
    est, X = fitted_bpt
    loaded = _load_bytes(_save_bytes(est))
    nu = np.array([[1.0, -0.5], [0.3, 0.2]])
    np.testing.assert_array_equal(loaded.predict_log_ratio(X, nu), est.predict_log_ratio(X, nu))
    assert _same(loaded.V_, est.V_) and _same(loaded.base_points_, est.base_points_)


@pytest.mark.parametrize("mutate, match", [
    (lambda m, a: a.__setitem__("attr/V_", a["attr/V_"] * 1.5), "V_ is not the design"),
    (lambda m, a: a.__setitem__("attr/base_points_", a["attr/base_points_"][:, :1].copy()),
     "base_points_ must be"),
    (lambda m, a: m["attributes"].pop("V_"), "missing fitted attribute V_"),
])
def test_crafted_bpt_state_is_refused_by_the_estimator(fitted_bpt, mutate, match):
    est, _ = fitted_bpt
    with pytest.raises(ValueError, match=match):
        _load_bytes(resave_container(_save_bytes(est), mutate))


def test_one_dtype_table_for_the_ensemble(fitted_bit):
    """TreeEnsemble.DTYPES covers every field; fitted, saved and loaded arrays follow it."""
    from bpt._engine._predictor import TreeEnsemble
    assert tuple(TreeEnsemble.DTYPES) == TreeEnsemble.FIELDS
    est, _ = fitted_bit
    meta, arrays = read_container(io.BytesIO(_save_bytes(est)))
    for k, dt in TreeEnsemble.DTYPES.items():
        assert est.ensemble_.arrays[k].dtype == dt
        assert arrays[f"ensemble/{k}"].dtype == dt
    assert load(io.BytesIO(_save_bytes(est))).ensemble_.arrays.keys() == TreeEnsemble.DTYPES.keys()


def test_io_uses_only_the_estimator_state_protocol():
    """bpt/_io/ calls no private method or attribute of an estimator: only the
    ``__bpt_state__`` / ``__bpt_from_state__`` protocol (bpt/_state.py)."""
    import ast
    import pathlib
    used = set()
    for path in pathlib.Path(_io.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
                used.add(node.attr)
    private = {a for a in used if not (a.startswith("__") and a.endswith("__"))}
    assert not private, private
    assert {"__bpt_state__", "__bpt_from_state__"} <= used


def test_params_of_every_kind_round_trip(tmp_path):
    X, y, _ = bit_quadratic_model(1500, seed=5)
    rs = np.random.RandomState(11)
    base = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    est = bpt.BoostedInformationTree(n_parameters=2, terms=[(0,), (1,), (0, 0), (1, 1), (0, 1)],
                                     base_points=base, n_estimators=3, max_depth=2,
                                     learning_rate=np.float64(0.25), random_state=rs)
    est.fit(X, y)
    loaded = _load_bytes(_save_bytes(est))
    assert_same_model(est, loaded, X)
    assert isinstance(loaded.get_params()["learning_rate"], np.float64)
    assert loaded.get_params()["terms"] == [(0,), (1,), (0, 0), (1, 1), (0, 1)]


def test_unfitted_round_trip_and_refit():
    est = bpt.BoostedParametricTree(n_nuisances=2, order=1, max_depth=2)
    loaded = _load_bytes(_save_bytes(est))
    assert type(loaded) is type(est) and loaded.get_params() == est.get_params()
    assert not hasattr(loaded, "ensemble_")


def test_loaded_feature_names_are_checked():
    loaded = load(FIXTURE_V1)
    assert list(loaded.feature_names_in_) == ["pt", "eta"]
    assert loaded.feature_names_in_.dtype == object


# ---------------------------------------------------------------- the frozen v1 fixture
def test_format_v1_fixture_loads_and_predicts_bit_identically():
    """tests/data/bit_v1.bpt was written by format version 1 (make_fixture_v1.py): it must load
    forever and predict the stored values exactly."""
    meta, _ = read_container(FIXTURE_V1)
    assert meta["format_version"] == 1 and meta["kind"] == "bpt.estimator"
    est = load(FIXTURE_V1)
    assert isinstance(est, bpt.BoostedInformationTree)
    assert est.terms_ == [(0,), (0, 0)] and est.n_iter_ == 4 and est.n_features_in_ == 2
    assert est.get_params()["learning_rate"] == 0.3
    with np.load(os.path.join(DATA, "bit_v1_expected.npz"), allow_pickle=False) as ref:
        np.testing.assert_array_equal(est.predict(ref["X"]), ref["predict"])


def test_loaders_dispatch_on_format_version(monkeypatch):
    assert 1 in _io._READERS and 1 in _io._ESTIMATOR_LOADERS
    future = bytearray(FIXTURE_BYTES)
    future[8:12] = struct.pack("<I", 2)
    with pytest.raises(ValueError, match="format version 2, newer than"):
        _load_bytes(future)
    seen = []
    monkeypatch.setitem(_io._READERS, 2, lambda buf: seen.append(len(buf)) or
                        ({"kind": "x", "format_version": 2, "bpt_version": "9"}, {}))
    meta, arrays = read_container(io.BytesIO(bytes(future)))
    assert seen == [len(future)] and meta["format_version"] == 2 and arrays == {}


# ---------------------------------------------------------------- damaged and foreign files
@pytest.mark.parametrize("content, match", [
    (b"", "empty"),
    (_io.MAGIC[:5], "truncated"),
    (_io.MAGIC + b"\x01\x00", "truncated"),
    (b"hello, world\n" * 10, "not a bpt model file"),
    (b"\x89PNG\r\n\x1a\n" + bytes(100), "not a bpt model file"),
    (pickle.dumps({"a": 1}), "pickle"),
    (b"\x93NUMPY\x01\x00" + bytes(100), "npy"),
    (b"PK\x03\x04" + bytes(100), "zip"),
    (_io.MAGIC + struct.pack("<I", 0) + bytes(60), "unknown format version 0"),
    (_io.MAGIC + struct.pack("<I", 7) + bytes(60), "format version 7, newer"),
    (FIXTURE_BYTES[:40], "truncated"),
    (FIXTURE_BYTES[:-1], "truncated"),
    (FIXTURE_BYTES + b"\x00", "trailing bytes"),
    (FIXTURE_BYTES[:100] + b"X" + FIXTURE_BYTES[101:], "checksum mismatch"),
])
def test_damaged_or_foreign_files_raise_value_error(content, match):
    with pytest.raises(ValueError, match=match):
        _load_bytes(content)


def test_foreign_files_on_disk(tmp_path, fitted_bit):
    est, _ = fitted_bit
    joblib.dump(est, tmp_path / "model.joblib")
    np.savez(tmp_path / "model.npz", a=np.arange(3))
    for name in ("model.joblib", "model.npz"):
        with pytest.raises(ValueError, match="not a bpt model file"):
            load(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.bpt")


def test_every_single_byte_change_is_detected():
    """Flip every bit pattern 0x01 / 0x80 at every offset of the fixture: all ValueError."""
    data = bytearray(FIXTURE_BYTES)
    for pos in range(len(data)):
        for mask in (0x01, 0x80):
            data[pos] ^= mask
            with pytest.raises(ValueError):
                _load_bytes(data)
            data[pos] ^= mask


def _outcome_is_valueerror_or_same(data):
    try:
        est = _load_bytes(data)
    except ValueError:
        return
    reference = load(FIXTURE_V1)
    with np.load(os.path.join(DATA, "bit_v1_expected.npz"), allow_pickle=False) as ref:
        assert_same_model(reference, est, ref["X"])


_FUZZ = settings(max_examples=300, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow])


@_FUZZ
@given(st.lists(st.tuples(st.integers(0, len(FIXTURE_BYTES) - 1), st.integers(1, 255)),
                min_size=1, max_size=6))
def test_fuzz_byte_flips(flips):
    data = bytearray(FIXTURE_BYTES)
    for pos, mask in flips:
        data[pos] ^= mask
    _outcome_is_valueerror_or_same(data)


@_FUZZ
@given(st.integers(0, len(FIXTURE_BYTES) - 1), st.binary(max_size=64))
def test_fuzz_truncation_and_garbage(length, tail):
    data = FIXTURE_BYTES[:length] + tail
    with pytest.raises(ValueError):
        _load_bytes(data)


@_FUZZ
@given(st.binary(min_size=0, max_size=200))
def test_fuzz_header_after_magic(junk):
    _outcome_is_valueerror_or_same(_io.MAGIC + struct.pack("<I", 1) + junk)


# ---------------------------------------------------------------- crafted, valid checksum
def _attr(name, value):
    def mutate(meta, arrays):
        meta["attributes"][name] = value
    return mutate


def _array(name, fn):
    def mutate(meta, arrays):
        arrays[name] = fn(arrays[name], arrays)
    return mutate


def _set(a, index, value):
    a[index] = value
    return a


def _first_leaf(arrays):
    return int(np.flatnonzero(arrays["ensemble/feature"] < 0)[0])


CRAFTED = {
    "child out of range": (_array("ensemble/left", lambda a, _: _set(a, 0, 10 ** 9)), "child"),
    "child negative": (_array("ensemble/right", lambda a, _: _set(a, 0, -7)), "child"),
    "self loop": (_array("ensemble/left", lambda a, _: _set(a, 0, 0)), "child"),
    "child in next tree": (_array("ensemble/left", lambda a, arr: _set(
        a, 0, arr["ensemble/tree_start"][1])), "child"),
    "feature too large": (_array("ensemble/feature", lambda a, _: _set(a, 0, 2)), "features"),
    "feature below -1": (_array("ensemble/feature", lambda a, _: _set(a, 0, -2)), "features"),
    "leaf with a child": (_array("ensemble/left", lambda a, arr: _set(
        a, _first_leaf(arr), _first_leaf(arr) + 1)), "leaves"),
    "int32 features": (_array("ensemble/feature", lambda a, _: a.astype(np.int32)), "int64"),
    "value columns": (_array("ensemble/value", lambda a, _: a[:, :1].copy()), "values"),
    "value rows": (_array("ensemble/value", lambda a, _: a[:-1].copy()), "values"),
    "gain length": (_array("ensemble/gain", lambda a, _: a[:-1].copy()), "gain"),
    "tree_start not 0": (_array("ensemble/tree_start", lambda a, _: _set(a, 0, 1)),
                         "tree_start"),
    "tree_start past end": (_array("ensemble/tree_start", lambda a, _: _set(a, -1, 10 ** 6)),
                            "tree_start"),
    "learning_rates length": (_array("ensemble/learning_rates", lambda a, _: a[:-1].copy()),
                              "learning_rates"),
    "nan threshold": (_array("ensemble/threshold", lambda a, _: _set(a, 0, np.nan)), "NaN"),
    "missing tree array": (lambda m, a: a.pop("ensemble/gain"), "gain"),
    "n_iter_ wrong": (_attr("n_iter_", 3), "n_iter_"),
    "n_features_in_ zero": (_attr("n_features_in_", 0), "n_features_in_"),
    "n_features_in_ str": (_attr("n_features_in_", "2"), "n_features_in_"),
    "n_features_in_ smaller": (_attr("n_features_in_", 1), "features"),
    "terms_ mismatch": (_attr("terms_", [{"__tuple__": [0]}]), "terms_"),
    "terms_ as lists": (_attr("terms_", [[0], [0, 0]]), "terms_"),
    "feature names length": (_attr("feature_names_in_", {"__strarray__": ["a"], "shape": [1],
                                                         "object": True}), "feature_names_in_"),
    "metric_ shape": (_attr("metric_", {"__ndarray__": "attr/base_points_"}), "metric_"),
    "metric_ values": (_array("attr/metric_", lambda a, _: a * 2.0), "metric_ is not"),
    "base_points_ missing": (lambda m, a: m["attributes"].pop("base_points_"),
                             "missing fitted attribute base_points_"),
    "train_loss_ type": (_attr("train_loss_", "low"), "train_loss_"),
    "dangling array ref": (_attr("metric_", {"__ndarray__": "nope"}), "malformed"),
    "unknown tag": (_attr("metric_", {"__eval__": "1"}), "unknown tag"),
    "property attribute": (_attr("feature_importances_", 1.0), "not allowed"),
    "dunder attribute": (_attr("__class__", 1), "not allowed|unknown tag"),
    "method name": (_attr("predict", 1), "not allowed"),
    "ensemble_ attribute": (_attr("ensemble_", 1), "not allowed"),
    "unknown class": (lambda m, a: m.update({"class": "os.system"}), "unknown estimator class"),
    "unknown param": (lambda m, a: m["params"].update(evil=1), "unknown parameters"),
    "bad param value": (lambda m, a: m["params"].update(max_bins=1000), "max_bins"),
    "bad param type": (lambda m, a: m["params"].update(terms=[["x"]]), "invalid"),
    "terms param out of range": (lambda m, a: m["params"].update(
        terms=[{"__tuple__": [3]}]), "outside"),
    "fitted not bool": (lambda m, a: m.update(fitted="yes"), "fitted"),
    "unfitted with attributes": (lambda m, a: m.update(fitted=False), "unfitted"),
    "extra header field": (lambda m, a: m.update(extra=1), "unknown fields"),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_files_with_valid_checksum_are_refused(case):
    mutate, match = CRAFTED[case]
    with pytest.raises(ValueError, match=match):
        _load_bytes(_resave(mutate))


def test_crafted_container_headers_are_refused():
    good = read_container(FIXTURE_V1)[0]
    assert good["kind"] == "bpt.estimator"
    cases = [
        (b"[" * 100_000, "corrupt JSON"),
        (b"\xff\xfe", "corrupt JSON"),
        (b'{"a": NaN}', "corrupt JSON"),
        (b"[]", "exactly the keys"),
        ({"kind": 1, "bpt_version": "x", "meta": {}, "arrays": []}, "wrong type"),
        ({"kind": "k", "bpt_version": "x", "meta": {"kind": 1}, "arrays": []}, "reserved"),
        ({"kind": "k", "bpt_version": "x", "meta": {}, "arrays": {}}, "must be a list"),
        ({"kind": "k", "bpt_version": "x", "meta": {}, "arrays": [{"name": "a"}]}, "malformed"),
    ]
    entry = {"name": "a", "dtype": "<f8", "shape": [2], "offset": 0}
    for key, value, match in [("dtype", "|O", "not allowed"), ("dtype", ">f8", "not allowed"),
                              ("shape", [-1], "bad shape"), ("shape", [2 ** 62, 2 ** 62], "fit"),
                              ("shape", [True], "bad shape"), ("offset", 8, "offset"),
                              ("offset", 0.0, "offset"), ("shape", [1], "no array accounts")]:
        cases.append(({"kind": "k", "bpt_version": "x", "meta": {},
                       "arrays": [dict(entry, **{key: value})]}, match))
    cases.append(({"kind": "k", "bpt_version": "x", "meta": {},
                   "arrays": [entry, dict(entry, offset=16)]}, "duplicate"))
    for header, match in cases:
        with pytest.raises(ValueError, match=match):
            read_container(io.BytesIO(_v1_file(header, bytes(16))))
    # the same structure, well formed, is accepted
    meta, arrays = read_container(io.BytesIO(_v1_file(
        {"kind": "k", "bpt_version": "x", "meta": {}, "arrays": [entry]}, bytes(16))))
    assert meta["kind"] == "k" and arrays["a"].tolist() == [0.0, 0.0]


def test_wrong_kind_is_refused():
    buf = io.BytesIO()
    write_container(buf, "bpt.model", {"x": 1}, {})
    with pytest.raises(ValueError, match="load_model"):
        load(io.BytesIO(buf.getvalue()))
    with pytest.raises(ValueError, match="not a 'bpt.estimator'"):
        read_container(io.BytesIO(buf.getvalue()), kind="bpt.estimator")


# ---------------------------------------------------------------- the container API
def test_container_round_trip_of_many_dtypes(tmp_path):
    arrays = {
        "f8": np.linspace(0, 1, 7), "f4": np.arange(5, dtype=np.float32),
        "big_endian": np.arange(4, dtype=">i8"), "bool": np.array([[True, False]]),
        "u1": np.arange(3, dtype=np.uint8), "scalar": np.array(3.5), "empty": np.zeros((0, 3)),
        "c16": np.array([1 + 2j]), "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
    }
    meta = {"nested": {"list": [1, 2.5, None, "s", True]}}
    write_container(tmp_path / "c.bin", "test.kind", meta, arrays)
    got_meta, got = read_container(tmp_path / "c.bin", kind="test.kind")
    assert got_meta["nested"] == meta["nested"]
    assert got_meta["bpt_version"] == bpt.__version__
    assert list(got) == list(arrays)
    for k, a in arrays.items():
        assert got[k].dtype == a.dtype.newbyteorder("=") and got[k].shape == a.shape
        np.testing.assert_array_equal(got[k], a)
        assert got[k].flags.aligned and got[k].flags.writeable


@pytest.mark.parametrize("meta, arrays", [
    ({"kind": 1}, {}),
    ({"x": float("nan")}, {}),
    ({"x": object()}, {}),
    ({}, {"o": np.array([object()])}),
    ({}, {"s": np.array(["a"])}),
    ({}, {"d": np.array(["2020-01-01"], dtype="datetime64[D]")}),
    ({}, {"l": [1, 2]}),
])
def test_container_refuses_non_plain_content(meta, arrays):
    with pytest.raises(TypeError):
        write_container(io.BytesIO(), "k", meta, arrays)


def test_encode_decode_values():
    value = {"t": (1, (2.5, "a")), "nan": float("nan"), "inf": [float("-inf")],
             "np": [np.int32(-3), np.float32(1.5), np.bool_(True)],
             "names": np.array(["x", "y"], dtype=object), "u": np.array([["a", "bc"]]),
             "arr": np.eye(2), "none": None, "rs": np.random.RandomState(5)}
    arrays = {}
    enc = _io.encode_value(value, arrays, "v")
    text = json.dumps(enc, allow_nan=False)      # strict JSON
    dec = _io.decode_value(json.loads(text), arrays)
    assert _same(dec, value)
    for bad in [object(), {1: 2}, {"__x": 1}, np.array([1, "a"], dtype=object), 1j,
                np.random.default_rng(0)]:
        with pytest.raises(TypeError):
            _io.encode_value(bad, {}, "v")


def test_save_refuses_unsupported_values_and_classes(tmp_path):
    est = bpt.BoostedInformationTree(random_state=np.random.default_rng(0))
    with pytest.raises(TypeError, match="Generator"):
        est.save(tmp_path / "m.bpt")
    assert list(tmp_path.iterdir()) == []

    class MyBIT(bpt.BoostedInformationTree):
        pass

    with pytest.raises(TypeError, match="only"):
        MyBIT().save(tmp_path / "m.bpt")


def test_save_is_atomic(tmp_path, monkeypatch, fitted_bit):
    est, _ = fitted_bit
    path = tmp_path / "model.bpt"
    path.write_bytes(b"previous content")

    def crash(src, dst):
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        est.save(path)
    assert path.read_bytes() == b"previous content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bpt"]     # no temp file left
    monkeypatch.undo()
    est.save(path)
    assert path.read_bytes() == _save_bytes(est)
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


# ---------------------------------------------------------------- pickle / joblib
@pytest.mark.parametrize("which", ["fitted_bit", "fitted_bpt"])
def test_pickle_and_joblib_round_trip(which, request, tmp_path):
    est, X = request.getfixturevalue(which)
    data = pickle.dumps(est)
    assert b"numba" not in data          # no compiled numba state travels with the model
    assert_same_model(est, pickle.loads(data), X)
    joblib.dump(est, tmp_path / "m.joblib")
    assert_same_model(est, joblib.load(tmp_path / "m.joblib"), X)
    loaded = load(io.BytesIO(_save_bytes(est)))
    assert_same_model(est, pickle.loads(pickle.dumps(loaded)), X)
