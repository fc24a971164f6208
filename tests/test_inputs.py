"""Inputs as physicists have them (issue 11): dict of 1-d arrays (uproot ``library="np"``,
``RDataFrame.AsNumpy``), numpy structured arrays, pandas and polars DataFrames, awkward
record arrays; feature names from the keys, checked at predict; float32 kept.

The truth for every container is the same model fitted on the plain float64 array with
the same columns: predictions must be identical.
"""

import numpy as np
import pytest

import bpt
from bpt._validation import check_features

NAMES = ["jet_pt", "eta", "phi"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_numba_thread):
    yield


def _data(n=1500, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, 3))
    w = rng.uniform(0.5, 1.5, n)
    y = np.column_stack([w, w * (X[:, 0] + 0.5 * X[:, 1] ** 2)])
    return X, y


def _bit():
    return bpt.BoostedInformationTree(n_parameters=1, order=1, n_estimators=4, max_depth=3,
                                      max_bins=32, random_state=0)


@pytest.fixture(scope="module")
def reference():
    X, y = _data()
    return X, y, _bit().fit(X, y).predict(X)


def as_dict(X, names=NAMES):
    return {k: X[:, j].copy() for j, k in enumerate(names)}


def as_structured(X, names=NAMES):
    rec = np.empty(X.shape[0], dtype=[(k, X.dtype) for k in names])
    for j, k in enumerate(names):
        rec[k] = X[:, j]
    return rec


def as_pandas(X, names=NAMES):
    pd = pytest.importorskip("pandas")
    return pd.DataFrame(X, columns=names)


def as_polars(X, names=NAMES):
    pl = pytest.importorskip("polars")
    return pl.DataFrame({k: X[:, j] for j, k in enumerate(names)})


def as_awkward(X, names=NAMES):
    ak = pytest.importorskip("awkward")
    return ak.zip({k: X[:, j] for j, k in enumerate(names)})


CONTAINERS = {"dict": as_dict, "structured": as_structured, "recarray":
              lambda X: as_structured(X).view(np.recarray), "pandas": as_pandas,
              "polars": as_polars, "awkward": as_awkward}


@pytest.mark.parametrize("kind", list(CONTAINERS))
def test_named_containers_fit_like_the_array(kind, reference):
    X, y, want = reference
    Xc = CONTAINERS[kind](X)
    est = _bit().fit(Xc, y)
    assert list(est.feature_names_in_) == NAMES
    assert est.feature_names_in_.dtype == object
    np.testing.assert_array_equal(est.predict(Xc), want)
    np.testing.assert_array_equal(est.predict(X), want)        # plain array: by position


@pytest.mark.parametrize("kind", ["dict", "structured", "awkward"])
def test_records_are_matched_by_name(kind, reference):
    """Keyed input (dict, structured, awkward) in another order is reordered by name."""
    X, y, want = reference
    est = _bit().fit(CONTAINERS[kind](X), y)
    shuffled = [NAMES[2], NAMES[0], NAMES[1]]
    Xs = CONTAINERS[kind](X[:, [2, 0, 1]], shuffled)
    np.testing.assert_array_equal(est.predict(Xs), want)


@pytest.mark.parametrize("kind", ["pandas", "polars"])
def test_frames_in_another_order_are_refused(kind, reference):
    """As scikit-learn: a DataFrame must have the fitted columns in the fitted order."""
    X, y, _ = reference
    est = _bit().fit(CONTAINERS[kind](X), y)
    Xs = CONTAINERS[kind](X[:, [1, 0, 2]], [NAMES[1], NAMES[0], NAMES[2]])
    with pytest.raises(ValueError, match="another order"):
        est.predict(Xs)


@pytest.mark.parametrize("kind", ["dict", "pandas", "polars", "structured"])
def test_missing_and_extra_names_are_named(kind, reference):
    X, y, _ = reference
    est = _bit().fit(CONTAINERS[kind](X), y)
    X4 = np.column_stack([X[:, 0], X[:, 1], X[:, 0]])
    with pytest.raises(ValueError, match=r"missing \['phi'\]; unexpected \['mjj'\]"):
        est.predict(CONTAINERS[kind](X4, ["jet_pt", "eta", "mjj"]))
    with pytest.raises(ValueError, match=r"missing \['phi'\]"):
        est.predict(CONTAINERS[kind](X[:, :2], NAMES[:2]))


def test_names_survive_save_and_load(reference, tmp_path):
    X, y, want = reference
    est = _bit().fit(as_dict(X), y)
    est.save(tmp_path / "m.bpt")
    loaded = bpt.load(tmp_path / "m.bpt")
    shuffled = {k: X[:, NAMES.index(k)] for k in reversed(NAMES)}
    np.testing.assert_array_equal(loaded.predict(shuffled), want)


def test_float32_stays_float32_and_fits():
    X, y = _data()
    X32 = np.ascontiguousarray(X.astype(np.float32))
    out = check_features(X32, dtype=(np.float64, np.float32))
    assert out.dtype == np.float32 and np.shares_memory(out, X32)      # no copy
    assert check_features(X32).dtype == np.float64                     # default: float64
    for container in (as_dict, as_pandas, as_polars, as_structured):
        assert check_features(container(X32), dtype=(np.float64, np.float32)).dtype == np.float32
    # a float32 fit equals the float64 fit on the same (float32-representable) values
    X_exact = X32.astype(np.float64)
    for split in ("hist", "exact"):
        est = _bit().set_params(split=split)
        want = est.fit(X_exact, y).predict(X_exact)
        got = _bit().set_params(split=split).fit(X32, y)
        np.testing.assert_array_equal(got.predict(X32), want)
        np.testing.assert_array_equal(got.predict(as_dict(X32)), want)


def test_mixed_column_types_become_float64():
    X, _ = _data(50)
    d = {"a": X[:, 0].astype(np.float32), "n_jets": np.arange(50), "flag": X[:, 1] > 0}
    out = check_features(d, dtype=(np.float64, np.float32))
    assert out.dtype == np.float64 and out.flags.c_contiguous
    np.testing.assert_array_equal(out[:, 1], np.arange(50))
    np.testing.assert_array_equal(out[:, 2], (X[:, 1] > 0).astype(float))


def test_uproot_like_jagged_branch_is_refused_by_name():
    """uproot ``library="np"`` gives jagged branches as object arrays of arrays."""
    jagged = np.empty(3, dtype=object)
    jagged[:] = [np.array([1.0, 2.0]), np.array([]), np.array([3.0])]
    with pytest.raises(ValueError, match="'Jet_pt' is jagged"):
        check_features({"MET": np.ones(3), "Jet_pt": jagged})


def test_awkward_jagged_field_is_refused_by_name():
    ak = pytest.importorskip("awkward")
    events = ak.zip({"MET": [1.0, 2.0, 3.0], "Jet_pt": [[1.0, 2.0], [], [3.0]]},
                    depth_limit=1)
    with pytest.raises(ValueError, match="'Jet_pt' is jagged"):
        _bit().fit(events, np.ones((3, 2)))


def test_awkward_missing_values_become_nan():
    ak = pytest.importorskip("awkward")
    events = ak.zip({"a": [1.0, 2.0, 3.0], "b": [1.0, None, 3.0]})
    with pytest.raises(ValueError, match=r"NaN.*'b'"):
        check_features(events)           # NaN is reported by column name


@pytest.mark.parametrize("bad, match", [
    ({}, "no features"),
    ({"a": np.ones(3), "b": np.ones(4)}, "'b' has 4 rows, the first feature has 3"),
    ({"a": np.ones((3, 2))}, r"'a' has shape \(3, 2\)"),
    ({"a": np.array(["x", "y", "z"])}, "'a' must be numeric"),
    ({"a": np.ones(3), "c": np.ones(3) + 1j}, "'c' must be real"),
])
def test_bad_dicts_are_refused_clearly(bad, match):
    with pytest.raises(ValueError, match=match):
        check_features(bad)


def test_structured_array_with_subarray_field_is_refused():
    rec = np.zeros(3, dtype=[("a", float), ("p4", float, (4,))])
    with pytest.raises(ValueError, match=r"'p4' has shape \(3, 4\)"):
        check_features(rec)


def test_pandas_nullable_columns_and_strings():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": pd.array([1.0, None, 2.0], dtype="Float64"), "b": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match=r"NaN.*'a'"):
        check_features(df)
    with pytest.raises(ValueError, match="must be numeric"):
        check_features(pd.DataFrame({"a": ["x", "y"], "b": [1.0, 2.0]}))


def test_polars_lazyframe_is_refused_with_a_hint():
    pl = pytest.importorskip("polars")
    with pytest.raises(ValueError, match="collect"):
        check_features(pl.DataFrame({"a": [1.0, 2.0]}).lazy())


def test_inference_process_accepts_a_dict(reference):
    from bpt.inference import Process
    X, _, _ = reference
    p_dict = Process("sig", as_dict(X), np.ones(X.shape[0]))
    p_arr = Process("sig", X, np.ones(X.shape[0]))
    np.testing.assert_array_equal(p_dict.X, p_arr.X)
