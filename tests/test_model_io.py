"""Whole inference models: AdditiveModel.save / bpt.inference.load_model (issue 5).

Run as a script (``python tests/test_model_io.py``) to print the file size and load time
of the test model quoted in docs/saving.md.
"""

import io
import os
import pickle
import sys
import time

import numpy as np
import pytest
from conftest import resave_container
from sklearn.linear_model import LogisticRegression

import bpt
from bpt import BoostedInformationTree, BoostedParametricTree
from bpt._io import read_container, write_container
from bpt.datasets import ToyPhysics
from bpt.inference import AdditiveModel, Nuisance, Process, load_model

POIS = ["c_energy", "c_angle"]
SHAPE = ["jes", "theory"]
THETA_TRUE = [0.4, -0.3]
TREE_PRED = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"


class WrappedClassifier:
    """A classifier class skops does not know: its type is untrusted by default."""

    def __init__(self, inner):
        self.inner = inner
        self.classes_ = inner.classes_

    def predict_proba(self, X):
        return self.inner.predict_proba(X)


# ---------------------------------------------------------------- the test model
def build_parts(n_sim=3000, seed=0):
    toy = ToyPhysics()
    rng = np.random.default_rng(seed)
    eft = toy.make_eft_signal(3000, random_state=rng)
    bit = BoostedInformationTree(n_parameters=2, n_estimators=8, max_depth=2,
                                 min_samples_leaf=100, random_state=0).fit(eft.X, eft.y)
    bpts = {}
    for proc in ("signal", "background"):
        s = toy.make_systematic_samples(300, process=proc, random_state=rng)
        bpts[proc] = BoostedParametricTree(n_nuisances=2, n_estimators=6, max_depth=2,
                                           min_samples_leaf=50, random_state=0
                                           ).fit(s.X, s.nu, sample_weight=s.weight)
    cls = toy.make_classification_sample(2000, random_state=rng)
    labels = np.array(cls.target_names)[cls.y]                  # "signal" / "background"
    clf = LogisticRegression(C=100.0, max_iter=1000).fit(cls.X, labels,
                                                         sample_weight=cls.sample_weight)
    sim = {p: toy.make_process_sample(p, n_sim, random_state=rng)
           for p in ("signal", "background")}
    data = toy.make_observed(theta=THETA_TRUE, n_pool=5000, random_state=rng).X
    return {"bit": bit, "bpts": bpts, "clf": clf, "sim": sim, "data": data, "labels": labels,
            "cls": cls}


def build_model(parts, fractions=None, share_bpt=False):
    sim, bpts = parts["sim"], parts["bpts"]
    bkg_bpt = bpts["signal"] if share_bpt else bpts["background"]
    processes = [
        Process("signal", sim["signal"].X, sim["signal"].weight,
                ratio=(parts["bit"], POIS), systematics=[(bpts["signal"], SHAPE)]),
        Process("background", sim["background"].X, sim["background"].weight,
                systematics=[(bkg_bpt, SHAPE)], normalization={"norm": 0.2}),
    ]
    return AdditiveModel(processes, POIS,
                         [Nuisance("jes"), "theory", Nuisance("norm", constraint=None), "lumi"],
                         fractions=parts["clf"] if fractions is None else fractions,
                         luminosity=("lumi", np.float64(0.025)))


@pytest.fixture(scope="module")
def parts():
    return build_parts()


@pytest.fixture(scope="module")
def model(parts):
    return build_model(parts)


@pytest.fixture(scope="module")
def saved(model):
    buf = io.BytesIO()
    model.save(buf)
    return buf.getvalue()


def _load(data, **kw):
    return load_model(io.BytesIO(bytes(data)), **kw)


def _save(model, **kw):
    buf = io.BytesIO()
    model.save(buf, **kw)
    return buf.getvalue()


# ---------------------------------------------------------------- round trip
def test_public_api(model, saved):
    """The names docs/saving.md gives: AdditiveModel.save writes what
    bpt.inference.load_model reads, and bpt.load (estimators only) refuses it."""
    import bpt
    import bpt.inference
    assert {"AdditiveModel", "load_model"} <= set(bpt.inference.__all__)
    assert bpt.inference.load_model is load_model
    loaded = bpt.inference.load_model(io.BytesIO(saved))
    assert isinstance(loaded, bpt.inference.AdditiveModel) and loaded.pois == model.pois
    assert read_container(io.BytesIO(saved))[0]["kind"] == "bpt.model"
    with pytest.raises(ValueError, match="load_model"):
        bpt.load(io.BytesIO(saved))


def test_round_trip_structure(model, tmp_path):
    path = tmp_path / "model.bpt"
    model.save(path)
    assert os.listdir(tmp_path) == ["model.bpt"]                # one file, no leftovers
    loaded = load_model(str(path))
    assert loaded.pois == model.pois
    assert [(n.name, n.constraint) for n in loaded.nuisances] == \
        [("jes", "gaussian"), ("theory", "gaussian"), ("norm", None), ("lumi", "gaussian")]
    assert loaded.luminosity == ("lumi", 0.025)
    assert isinstance(loaded.luminosity[1], np.float64)
    for a, b in zip(model.processes, loaded.processes):
        assert a.name == b.name and a.normalization == b.normalization
        np.testing.assert_array_equal(a.X, b.X)
        np.testing.assert_array_equal(a.weight, b.weight)
        assert len(a.systematics) == len(b.systematics)
        for (ea, na), (eb, nb) in zip(a.systematics, b.systematics):
            assert type(ea) is type(eb) and list(na) == nb
            np.testing.assert_array_equal(ea.predict(a.X), eb.predict(b.X))
    ratio, names = loaded.processes[0].ratio
    assert isinstance(ratio, BoostedInformationTree) and names == POIS
    np.testing.assert_array_equal(ratio.predict(model.processes[0].X),
                                  model.processes[0].ratio[0].predict(model.processes[0].X))
    assert loaded.processes[1].ratio is None
    assert type(loaded.fractions) is LogisticRegression
    X = model.processes[1].X
    np.testing.assert_array_equal(loaded.fractions.predict_proba(X),
                                  model.fractions.predict_proba(X))
    # saving what was loaded gives the same content; only the skops dump differs (skops
    # writes zip timestamps and object ids into it)
    meta0, arrays0 = read_container(path)
    meta1, arrays1 = read_container(io.BytesIO(_save(loaded)))
    assert meta0 == meta1 and arrays0.keys() == arrays1.keys()
    for k in arrays0:
        if k != "fractions":
            np.testing.assert_array_equal(arrays0[k], arrays1[k])


def test_q_fit_and_scan_identical_after_load(model, saved, parts):
    loaded = _load(saved)
    X = parts["data"]
    points = [([0.0, 0.0], [0.0, 0.0, 0.0, 0.0]),
              ([0.5, -0.2], [0.3, -0.4, 0.5, 0.2]),
              ([-0.3, 0.6], [-1.0, 0.8, -0.5, -0.3])]
    for theta, nu in points:
        q0, g0, h0 = model.q(theta, nu, X, derivatives=2)
        q1, g1, h1 = loaded.q(theta, nu, X, derivatives=2)
        assert q0 == q1
        np.testing.assert_array_equal(g0, g1)
        np.testing.assert_array_equal(h0, h1)
    # yields: the weighted simulation enters through Asimov data / expected weights
    z = ([0.2, 0.1], [0.5, -0.5, 0.2, 0.1])
    np.testing.assert_array_equal(model.expected_weights(*z), loaded.expected_weights(*z))
    f0, f1 = model.fit(X), loaded.fit(X)
    for k in ("theta", "nu"):
        np.testing.assert_array_equal(getattr(f0, k), getattr(f1, k))
    assert f0.q == f1.q and f0.success == f1.success
    thetas = np.linspace(-0.2, 1.0, 5)
    t0 = model.scan(thetas, X, poi="c_energy", n_jobs=1)
    t1 = loaded.scan(thetas, X, poi="c_energy", n_jobs=1)
    np.testing.assert_array_equal(t0, t1)


def test_shared_estimator_is_stored_once(parts):
    m = build_model(parts, share_bpt=True)
    loaded = _load(_save(m))
    meta, arrays = read_container(io.BytesIO(_save(m)))
    assert meta["n_estimators"] == 2 and sum(k.startswith("estimator/") for k in arrays) == 2
    assert loaded.processes[0].systematics[0][0] is loaded.processes[1].systematics[0][0]


def test_bare_ratio_and_single_process(parts):
    sim = parts["sim"]["signal"]
    m = AdditiveModel([Process("signal", sim.X, sim.weight, ratio=parts["bit"])], POIS, [])
    loaded = _load(_save(m))
    assert isinstance(loaded.processes[0].ratio, BoostedInformationTree)
    assert loaded.fractions is None and loaded.luminosity is None and loaded.nuisances == []
    X = parts["data"]
    assert m.q([0.3, -0.1], None, X) == loaded.q([0.3, -0.1], None, X)


def test_only_bpt_estimators_are_saved(parts):
    class Ratio:
        terms_ = [(0,)]
        n_parameters = 1

        def predict(self, X):
            return np.asarray(X)[:, :1] * 0.0

    sim = parts["sim"]["signal"]
    m = AdditiveModel([Process("signal", sim.X, sim.weight, ratio=Ratio())], ["c"], [])
    with pytest.raises(TypeError, match="'signal': ratio.*only fitted bpt estimators"):
        _save(m)


# ---------------------------------------------------------------- trust
def test_untrusted_classifier_is_refused_unless_trusted(parts):
    clf = WrappedClassifier(parts["clf"])
    m = build_model(parts, fractions=clf)
    data = _save(m)
    name = f"{__name__}.WrappedClassifier"
    with pytest.raises(ValueError, match=f"does not trust by default: \\['{name}'\\].*"
                                         f"trusted=\\['{name}'\\]"):
        _load(data)
    with pytest.raises(ValueError, match="does not trust"):
        _load(data, trusted=["sklearn.linear_model._logistic.LogisticRegression"])
    X = parts["data"]
    for trusted in (True, [name], [WrappedClassifier]):
        loaded = _load(data, trusted=trusted)
        assert type(loaded.fractions).__name__ == "WrappedClassifier"
        assert loaded.q([0.1, 0.1], None, X) == m.q([0.1, 0.1], None, X)
    for bad in ("x", 1, [1]):
        with pytest.raises(TypeError, match="trusted"):
            _load(data, trusted=bad)


def test_hist_gradient_boosting_needs_tree_predictor_trusted(parts):
    from sklearn.ensemble import HistGradientBoostingClassifier
    cls = parts["cls"]
    clf = HistGradientBoostingClassifier(max_iter=5, max_depth=2, random_state=0).fit(
        cls.X, parts["labels"], sample_weight=cls.sample_weight)
    data = _save(build_model(parts, fractions=clf))
    with pytest.raises(ValueError, match=TREE_PRED.replace(".", "\\.")):
        _load(data)
    loaded = _load(data, trusted=[TREE_PRED])
    X = parts["data"]
    np.testing.assert_array_equal(loaded.fractions.predict_proba(X), clf.predict_proba(X))


def test_pickle_fallback_only_when_explicit(model, monkeypatch, parts):
    saved_skops = _save(model)
    monkeypatch.setitem(sys.modules, "skops", None)             # as if skops were not installed
    monkeypatch.setitem(sys.modules, "skops.io", None)
    with pytest.raises(ImportError, match=r"pip install bpt\[skops\].*allow_pickle=True"):
        _save(model)
    with pytest.raises(ImportError, match=r"pip install bpt\[skops\]"):
        _load(saved_skops)
    data = _save(model, allow_pickle=True)
    assert read_container(io.BytesIO(data))[0]["fractions"]["format"] == "pickle"
    for trusted in (False, [f"{__name__}.WrappedClassifier"]):
        with pytest.raises(ValueError, match="stored as a pickle.*unless trusted=True"):
            _load(data, trusted=trusted)
    loaded = _load(data, trusted=True)
    X = parts["data"]
    assert loaded.q([0.2, 0.0], None, X) == model.q([0.2, 0.0], None, X)


# ---------------------------------------------------------------- damaged and foreign files
def test_corrupted_and_truncated_files_raise_value_error(saved):
    meta, arrays = read_container(io.BytesIO(saved))
    start = len(saved) - sum(a.nbytes for a in arrays.values())      # roughly the data section
    rng = np.random.default_rng(0)
    positions = [0, 9, 20, 40, 70, 200, start + 100, len(saved) // 2, len(saved) - 1,
                 *rng.integers(0, len(saved), 5)]
    for pos in positions:
        bad = bytearray(saved)
        bad[pos] ^= 1 << int(rng.integers(8))
        with pytest.raises(ValueError):
            _load(bad)
    for n in (0, 5, 12, 63, 64, 500, len(saved) // 3, len(saved) - 1):
        with pytest.raises(ValueError):
            _load(saved[:n])
    with pytest.raises(ValueError, match="trailing bytes"):
        _load(saved + b"\0")




def _garble_estimator(meta, arrays):
    arrays["estimator/0"] = arrays["estimator/0"][:-8]


@pytest.mark.parametrize("mutate, match", [
    (_garble_estimator, "estimator 0: the file truncated"),
    (lambda m, a: a.update(extra=np.zeros(3)), r"arrays \['extra'\] are not part"),
    (lambda m, a: m["processes"][0]["ratio"].update(estimator=7), "bad estimator index"),
    (lambda m, a: m["processes"][0].update(ratio=None), r"estimators \[0\] are not part"),
    (lambda m, a: [a.update({f"process/{i}/X": a[f"process/{i}/X"][:, :4]}) for i in (0, 1)],
     "estimator 0 has 5 features, the simulation 4"),
    (lambda m, a: m["processes"][0].update(X="process/1/X"), "used twice"),
    (lambda m, a: a.update({"process/0/weight": a["process/0/weight"][:10]}), "weight"),
    (lambda m, a: m["processes"][1]["normalization"][0].__setitem__(1, "x"), "must be a number"),
    (lambda m, a: m["nuisances"].pop(), "unknown nuisance 'lumi'"),
    (lambda m, a: m.update(pois=["c_energy"]), "unknown POI"),
    (lambda m, a: m["fractions"].update(format="joblib"), "unknown storage format"),
    (lambda m, a: a.update(fractions=a["fractions"][:100]), "unreadable skops data"),
    (lambda m, a: m.pop("luminosity"), "missing or unknown fields"),
])
def test_crafted_files_with_valid_checksum_are_refused(saved, mutate, match):
    with pytest.raises(ValueError, match=match):
        _load(resave_container(saved, mutate))


def test_wrong_kind_and_foreign_files(saved, parts, tmp_path):
    buf = io.BytesIO()
    parts["bit"].save(buf)
    with pytest.raises(ValueError, match=r"'bpt.estimator', not a saved inference model.*bpt.load"):
        _load(buf.getvalue())
    with pytest.raises(ValueError, match="use bpt.inference.load_model"):
        bpt.load(io.BytesIO(saved))
    other = io.BytesIO()
    write_container(other, "bpt.something", {}, {})
    with pytest.raises(ValueError, match="'bpt.something', not a saved inference model"):
        _load(other.getvalue())
    with pytest.raises(ValueError, match="pickle"):
        _load(pickle.dumps(parts["clf"]))
    with pytest.raises(ValueError, match="wrong magic"):
        _load(b"definitely not a model file")
    future = bytearray(saved)
    future[8:12] = (2).to_bytes(4, "little")
    with pytest.raises(ValueError, match="format version 2, newer than"):
        _load(future)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.bpt")


# ---------------------------------------------------------------- figures for docs/saving.md
if __name__ == "__main__":
    import tempfile
    t0 = time.perf_counter()
    import skops.io                       # one-time import, excluded from the timings below
    t_import = time.perf_counter() - t0
    p = build_parts()
    m = build_model(p)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.bpt")
        t_save, t_load = [], []
        for _ in range(7):
            t0 = time.perf_counter()
            m.save(path)
            t_save.append(time.perf_counter() - t0)
        size = os.path.getsize(path)
        for _ in range(7):
            t0 = time.perf_counter()
            loaded = load_model(path)
            t_load.append(time.perf_counter() - t0)
    X = p["data"]
    same = all(np.array_equal(a, b) for a, b in zip(m.q(THETA_TRUE, None, X, derivatives=2),
                                                    loaded.q(THETA_TRUE, None, X, derivatives=2)))
    sim = sum(pr.X.nbytes + pr.weight.nbytes for pr in m.processes)
    est = 0
    for e in {id(e): e for e in [m.processes[0].ratio[0]] +
              [s[0] for pr in m.processes for s in pr.systematics]}.values():
        buf = io.BytesIO()
        e.save(buf)
        est += len(buf.getvalue())
    clf = len(skops.io.dumps(m.fractions))
    print(f"model: 2 processes x {m.processes[0].X.shape[0]} simulated events "
          f"({m.n_features_in_} features), 1 BIT + 2 BPTs, LogisticRegression, "
          f"{m.n_pois} POIs, {m.n_nuisances} nuisances")
    print(f"simulation arrays  : {sim:9,d} bytes")
    print(f"estimator files    : {est:9,d} bytes")
    print(f"classifier (skops) : {clf:9,d} bytes")
    print(f"model file         : {size:9,d} bytes")
    print(f"save               : {1e3 * np.median(t_save):7.1f} ms median of 7 "
          f"(plus {1e3 * t_import:.0f} ms to import skops once per process)")
    print(f"load_model         : {1e3 * np.median(t_load):7.1f} ms median, "
          f"{1e3 * min(t_load):.1f} ms min of 7")
    print(f"q, gradient, Hessian identical after load: {same}")
