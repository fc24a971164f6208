"""bpt.dask: BIT and BPT trained on a distributed.LocalCluster (2 workers x 1 thread).

The trees must be the in-memory fit's on the same rows: the same features, thresholds,
node order and missing-value sides, and leaf values equal up to the round-off of summing
the histograms per worker (exactly equal when one worker holds all rows).  Skipped when
distributed is not installed.
"""

from __future__ import annotations

import inspect
import pathlib

import numpy as np
import pytest

import bpt

ROOT = pathlib.Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ docs (no dask needed)
def test_api_reference_lists_dask_signatures():
    import bpt.dask as bd
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    missing = []
    for name in bd.__all__:
        cls = getattr(bd, name)
        sig = str(inspect.signature(cls))
        if f"bpt.dask.{name}{sig}" not in text:
            missing.append(f"bpt.dask.{name}{sig}")
        for m in ("fit", "predict", "to_local", "save", "predict_ratio", "predict_log_ratio"):
            if m in vars(cls) or (m in ("predict", "to_local", "save")):
                f = getattr(cls, m)
                s = str(inspect.signature(f)).replace("(self, ", "(").replace("(self)", "()")
                if f"{name}.{m}{s}" not in text:
                    missing.append(f"{name}.{m}{s}")
    assert not missing, f"docs/api.md lacks: {missing}"


def test_import_bpt_does_not_import_dask():
    import subprocess
    import sys
    code = ("import sys, bpt; assert 'dask' not in sys.modules and 'distributed' not in "
            "sys.modules; import bpt.dask; assert 'distributed' not in sys.modules; "
            "print(bpt.dask.DaskBoostedInformationTree.__name__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "DaskBoostedInformationTree" in out.stdout


def test_fit_without_dask_says_how_to_install():
    import subprocess
    import sys
    code = ("import sys; sys.modules['distributed'] = None\n"
            "import numpy as np\n"
            "from bpt.dask import DaskBoostedInformationTree\n"
            "try:\n"
            "    DaskBoostedInformationTree().fit(np.zeros((4, 1)), np.ones((4, 3)))\n"
            "except ImportError as exc:\n"
            "    assert 'bpt[dask]' in str(exc), exc\n"
            "else:\n"
            "    raise SystemExit('no ImportError')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr


# ------------------------------------------------------------------ cluster
distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")

from bpt.dask import DaskBoostedInformationTree, DaskBoostedParametricTree  # noqa: E402


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster:
        with distributed.Client(cluster) as c:
            yield c


@pytest.fixture
def small_binning_sample(monkeypatch):
    """Both fits draw the binning subsample from 3000 rows (the default 200 000 would
    need more rows than a fast test): exercises the sampled-edges path."""
    from bpt._engine import _binning
    defaults = _binning.BinMapper.__init__.__defaults__
    monkeypatch.setattr(_binning.BinMapper.__init__, "__defaults__", (defaults[0], 3000,
                                                                      defaults[2]))


def bit_data(n, n_parameters, seed=0, nan=True, order=2):
    """w(x|theta) = c0 (1 + a(x).theta)^2 with a(x) > 0 (exact SMEFT-like coefficients)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    if nan:
        X[rng.random(n) < 0.05, 2] = np.nan
    c0 = rng.exponential(size=n)
    a = np.column_stack([1.0 + 0.5 * np.tanh(X[:, 0]), 1.0 + 0.3 * np.sin(X[:, 1])])
    a = a[:, :n_parameters]
    quad = [c0 * a[:, i] * a[:, j] * (1.0 if i == j else 2.0)
            for i in range(n_parameters) for j in range(i, n_parameters)] if order == 2 else []
    return X, np.column_stack([c0, 2.0 * a * c0[:, None]] + quad)


def bpt_data(n, seed=1):
    """Nominal and nu = -1, +1 samples; log ratio nu * 0.3 * x0 (plus a yield change)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    nu = rng.choice([0.0, -1.0, 1.0], size=n)[:, None]
    w = np.exp(0.3 * nu[:, 0] * np.tanh(X[:, 0]) + 0.05 * nu[:, 0])
    return X, nu, w * rng.uniform(0.5, 1.5, size=n)


def assert_same_trees(dk, mem, rtol=1e-12):
    """Same structure; leaf values (and gains) equal to rtol of their largest value."""
    a, b = mem.ensemble_.arrays, dk.ensemble_.arrays
    assert mem.n_iter_ == dk.n_iter_
    for k in ("feature", "left", "right", "n_samples", "missing_go_left", "tree_start"):
        np.testing.assert_array_equal(b[k], a[k], err_msg=k)
    np.testing.assert_array_equal(b["threshold"], a["threshold"])
    np.testing.assert_array_equal(b["learning_rates"], a["learning_rates"])
    scale = np.abs(a["value"]).max(axis=0)
    assert np.all(np.abs(b["value"] - a["value"]) <= rtol * scale + 1e-300)
    assert np.all(np.abs(b["gain"] - a["gain"]) <= 1e-10 * np.abs(a["gain"]).max())
    np.testing.assert_allclose(dk.train_loss_, mem.train_loss_, rtol=1e-11)


def chunked(a, rows):
    return da.from_array(a, chunks=(rows,) + a.shape[1:])


@pytest.mark.parametrize("n_parameters,order", [(1, 1), (2, 2)])
def test_bit_trees_equal_in_memory_fit(client, small_binning_sample, n_parameters, order):
    X, y = bit_data(12_000, n_parameters, order=order)
    kw = dict(n_parameters=n_parameters, order=order, n_estimators=6, max_depth=3,
              early_stopping=False, random_state=3, min_samples_leaf=20)
    mem = bpt.BoostedInformationTree(**kw).fit(X, y)
    assert mem.ensemble_.arrays["feature"].max() >= 0
    dk = DaskBoostedInformationTree(**kw).fit(chunked(X, 2500), chunked(y, 2500),
                                              client=client)
    assert dk.dask_traffic_["n_workers"] == 2           # really split over both workers
    assert sum(dk.dask_traffic_["rows_per_worker"]) == len(X)
    # the workers' rows and state are freed at the end of the fit
    import bpt.dask as bd
    assert client.run(lambda: len(bd._SHARDS)) == {a: 0 for a in
                                                   client.scheduler_info()["workers"]}
    assert len(dk.terms_) == (1 if order == 1 else 5)
    assert_same_trees(dk, mem)
    np.testing.assert_array_equal(dk.metric_, mem.metric_)


def test_bit_one_shard_is_bit_identical(client):
    """All rows in one block (one worker): the same sums in the same order, so every
    array is equal bit for bit (node order, tie-breaking, values)."""
    X, y = bit_data(6_000, 2, seed=5)
    X = X.astype(np.float32)                # kept float32 (binned without a copy)
    sw = np.random.default_rng(2).uniform(0.5, 2.0, size=len(X))
    kw = dict(n_parameters=2, n_estimators=4, early_stopping=False, random_state=0,
              l2_regularization=0.01)
    mem = bpt.BoostedInformationTree(**kw).fit(X, y, sample_weight=sw)
    dk = DaskBoostedInformationTree(**kw).fit(chunked(X, 6000), chunked(y, 6000),
                                              sample_weight=chunked(sw, 6000), client=client)
    for k, v in mem.ensemble_.arrays.items():
        np.testing.assert_array_equal(dk.ensemble_.arrays[k], v, err_msg=k)
    np.testing.assert_array_equal(dk.train_loss_, mem.train_loss_)


def test_bit_weights_l2_and_learning_rate(client):
    X, y = bit_data(8_000, 1, seed=7)
    sw = np.random.default_rng(4).uniform(0.2, 3.0, size=len(X))
    kw = dict(n_parameters=1, n_estimators=5, early_stopping=False, random_state=11,
              learning_rate=0.3, l2_regularization=0.05, max_depth=4, min_weight_leaf=1.0)
    mem = bpt.BoostedInformationTree(**kw).fit(X, y, sample_weight=sw)
    dk = DaskBoostedInformationTree(**kw).fit(chunked(X, 1500), chunked(y, 1500),
                                              sample_weight=chunked(sw, 1500), client=client)
    assert_same_trees(dk, mem)


def test_bpt_trees_equal_in_memory_fit(client, small_binning_sample):
    X, nu, w = bpt_data(12_000)
    kw = dict(n_nuisances=1, order=2, n_estimators=6, max_depth=2, early_stopping=False,
              random_state=2, min_samples_leaf=30, learn_global=True)
    mem = bpt.BoostedParametricTree(**kw).fit(X, nu, sample_weight=w)
    dk = DaskBoostedParametricTree(**kw).fit(chunked(X, 2000), chunked(nu, 2000),
                                             sample_weight=chunked(w, 2000), client=client)
    assert dk.dask_traffic_["n_workers"] == 2
    np.testing.assert_array_equal(dk.base_points_, mem.base_points_)
    np.testing.assert_array_equal(dk.V_, mem.V_)
    assert dk.ensemble_.arrays["learning_rates"][0] == 1.0      # learn_global
    assert_same_trees(dk, mem)


def test_bpt_samples_auto_resolved_as_in_memory(client, small_binning_sample):
    # weight variations (the nominal rows repeated at nu = -1, +1) resolve to "shared",
    # independent samples to "independent", across shards as in memory; same trees
    X, nu, w = bpt_data(6_000, seed=4)
    X0 = X[:2_000]
    Xs = np.vstack([X0, X0, X0])
    nus = np.repeat([0.0, -1.0, 1.0], 2_000)[:, None]
    ws = np.exp(0.3 * nus[:, 0] * np.tanh(Xs[:, 0]))
    kw = dict(n_nuisances=1, order=2, n_estimators=3, max_depth=2, early_stopping=False,
              min_samples_leaf=30, random_state=1)
    for data, expected in (((Xs, nus, ws), "shared"), ((X, nu, w), "independent")):
        mem = bpt.BoostedParametricTree(**kw).fit(data[0], data[1], sample_weight=data[2])
        dk = DaskBoostedParametricTree(**kw).fit(
            *(chunked(a, 1500) for a in data[:2]), sample_weight=chunked(data[2], 1500),
            client=client)
        assert mem.samples_ == dk.samples_ == expected
        assert_same_trees(dk, mem)


def test_early_stopping_on_training_loss(client):
    """early_stopping=True with validation_fraction=None monitors the training loss, as
    in memory (same stopping tree, same kept trees)."""
    X, nu, w = bpt_data(6_000, seed=3)
    kw = dict(n_nuisances=1, order=1, n_estimators=60, max_depth=1, early_stopping=True,
              validation_fraction=None, n_iter_no_change=2, tol=1e-3, random_state=0)
    mem = bpt.BoostedParametricTree(**kw).fit(X, nu, sample_weight=w)
    assert mem.n_iter_ < 59                       # the rule fired
    dk = DaskBoostedParametricTree(**kw).fit(chunked(X, 1000), chunked(nu, 1000),
                                             sample_weight=chunked(w, 1000), client=client)
    assert len(dk.train_loss_) == len(mem.train_loss_)
    assert_same_trees(dk, mem)


def test_predict_on_dask_arrays_save_and_load(client, tmp_path):
    X, y = bit_data(5_000, 2, seed=9, nan=False)
    kw = dict(n_parameters=2, n_estimators=3, early_stopping=False, random_state=1)
    dk = DaskBoostedInformationTree(**kw).fit(chunked(X, 1200), chunked(y, 1200),
                                              client=client)
    mem = bpt.BoostedInformationTree(**kw).fit(X, y)
    assert_same_trees(dk, mem)
    local = dk.to_local()
    assert type(local) is bpt.BoostedInformationTree
    assert local.get_params() == dk.get_params()
    assert not hasattr(local, "dask_traffic_")
    Xd = chunked(X, 1700)
    pred = dk.predict(Xd)
    assert isinstance(pred, da.Array)
    np.testing.assert_array_equal(pred.compute(), local.predict(X))
    np.testing.assert_allclose(pred.compute(), mem.predict(X), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(dk.predict(X), local.predict(X))       # numpy: as usual
    theta = np.array([[0.5, -1.0], [1.0, 2.0]])
    np.testing.assert_array_equal(dk.predict_ratio(Xd, theta).compute(),
                                  local.predict_ratio(X, theta))
    np.testing.assert_array_equal(dk.predict_ratio(Xd, theta[0]).compute(),
                                  local.predict_ratio(X, theta[0]))
    with pytest.raises(ValueError, match="features"):
        dk.predict(Xd[:, :3])
    path = tmp_path / "bit.bpt"
    dk.save(path)
    back = bpt.load(path)
    assert type(back) is bpt.BoostedInformationTree
    np.testing.assert_array_equal(back.predict(X), local.predict(X))
    np.testing.assert_array_equal(back.train_loss_, dk.train_loss_)


def test_dask_dataframe_input(client):
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    X, y = bit_data(5_000, 1, seed=9, nan=False, order=1)
    names = ["a", "b", "c", "d"]
    dfX = dd.from_pandas(pd.DataFrame(X, columns=names), npartitions=3)
    dfy = dd.from_pandas(pd.DataFrame(y, columns=["c0", "c1"]), npartitions=3)
    kw = dict(n_parameters=1, order=1, n_estimators=3, early_stopping=False, random_state=1)
    dk = DaskBoostedInformationTree(**kw).fit(dfX, dfy, client=client)
    assert list(dk.feature_names_in_) == names
    mem = bpt.BoostedInformationTree(**kw).fit(pd.DataFrame(X, columns=names), y)
    assert_same_trees(dk, mem)
    local = dk.to_local()
    np.testing.assert_array_equal(dk.predict(dfX).compute(), local.predict(X))
    with pytest.raises(ValueError, match="feature names"):
        dk.predict(dfX.rename(columns={"a": "z"}))


def test_bpt_predict_log_ratio_on_dask(client):
    X, nu, w = bpt_data(6_000, seed=4)
    kw = dict(n_nuisances=1, n_estimators=3, early_stopping=False, random_state=0)
    dk = DaskBoostedParametricTree(**kw).fit(chunked(X, 1500), chunked(nu, 1500),
                                             sample_weight=chunked(w, 1500), client=client)
    local = dk.to_local()
    assert type(local) is bpt.BoostedParametricTree
    Xd = chunked(X, 2000)
    np.testing.assert_array_equal(dk.predict_log_ratio(Xd, [0.5]).compute(),
                                  local.predict_log_ratio(X, [0.5]))
    np.testing.assert_array_equal(dk.predict(Xd).compute(), local.predict(X))


def test_params_clone_and_unsupported_settings(client):
    from sklearn.base import clone
    est = DaskBoostedInformationTree(n_parameters=2, max_depth=3)
    c = clone(est)
    assert type(c) is DaskBoostedInformationTree and c.get_params() == est.get_params()
    assert set(c.get_params()) == set(bpt.BoostedInformationTree().get_params())
    X, y = bit_data(1000, 1, nan=False)
    Xd, yd = chunked(X, 500), chunked(y, 500)
    for kw, word in [(dict(max_leaf_nodes=8), "max_leaf_nodes"),
                     (dict(subsample=0.5), "subsample"),
                     (dict(max_features=0.5), "max_features"),
                     (dict(split="exact"), "split"),
                     (dict(early_stopping=True), "validation_fraction")]:
        with pytest.raises(NotImplementedError, match=word):
            DaskBoostedInformationTree(**kw).fit(Xd, yd, client=client)
    with pytest.raises(NotImplementedError, match="groups"):
        DaskBoostedParametricTree().fit(Xd, np.zeros((1000, 1)), groups=np.arange(1000),
                                        client=client)


def test_bad_input_names_the_block(client):
    X, y = bit_data(3000, 1, nan=False)
    y[2100, 1] = np.nan
    est = DaskBoostedInformationTree(n_parameters=1, n_estimators=2, early_stopping=False)
    with pytest.raises(ValueError, match=r"y contains .*rows 2000\.\.2999"):
        est.fit(chunked(X, 1000), chunked(y, 1000), client=client)
    assert not hasattr(est, "ensemble_")
    with pytest.raises(ValueError, match="columns"):
        est.fit(chunked(X, 1000), chunked(y[:, :1], 1000), client=client)
    with pytest.raises(ValueError, match="rows"):
        est.fit(chunked(X, 1000), chunked(y[:2000], 1000), client=client)


def test_worker_lost_during_fit_raises():
    """A worker that leaves during the fit (closed after the 2nd tree) aborts the fit with
    a RuntimeError naming it; no (silently different) model is returned."""
    X, y = bit_data(4_000, 1, seed=3, nan=False, order=1)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster:
        with distributed.Client(cluster) as c:
            def close_a_worker(info):
                if info.iteration == 2:
                    worker = next(iter(cluster.workers.values()))
                    cluster.sync(worker.close)

            est = DaskBoostedInformationTree(n_parameters=1, order=1, n_estimators=6,
                                             early_stopping=False)
            with pytest.raises(RuntimeError, match="lost during the fit"):
                est.fit(chunked(X, 1000), chunked(y, 1000), client=c,
                        callbacks=[close_a_worker])
            assert not hasattr(est, "ensemble_")
    # in-process workers share bpt.dask's registry: the surviving worker's shard was
    # freed, the closed worker's (never told) is left; remove it for the other tests
    import bpt.dask as bd
    assert len(bd._SHARDS) <= 1
    bd._SHARDS.clear()


def test_bpt_two_nuisances_with_missing_values(client):
    """Two nuisances (5 terms), base points seen by different workers, NaN features."""
    rng = np.random.default_rng(8)
    n = 9_000
    X = rng.normal(size=(n, 3))
    X[rng.random(n) < 0.1, 1] = np.nan
    pts = np.array([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0],
                    [1.0, 1.0]])
    # rows sorted by base point: the first worker sees only some of them
    nu = pts[np.sort(rng.integers(0, len(pts), size=n))]
    w = np.exp(0.2 * nu[:, 0] * np.tanh(X[:, 0]) - 0.1 * nu[:, 1] * X[:, 2] ** 2 / 3)
    kw = dict(n_nuisances=2, order=2, n_estimators=4, max_depth=2, early_stopping=False,
              random_state=5, min_samples_leaf=20, learning_rate=0.2)
    mem = bpt.BoostedParametricTree(**kw).fit(X, nu, sample_weight=w)
    dk = DaskBoostedParametricTree(**kw).fit(chunked(X, 1500), chunked(nu, 1500),
                                             sample_weight=chunked(w, 1500), client=client)
    np.testing.assert_array_equal(dk.base_points_, mem.base_points_)
    assert_same_trees(dk, mem)


def test_bit_eval_set_early_stopping_as_in_memory(client):
    """eval_set (a dask array): validation_loss_, the stopping tree and the kept trees as
    in memory; "auto" is on from 10 000 rows when eval_set is given, as in memory."""
    X, y = bit_data(12_000, 1, seed=12, order=1)
    Xv, yv = bit_data(4_000, 1, seed=13, order=1, nan=False)
    yv[:, 1] += np.random.default_rng(0).normal(scale=3.0, size=len(yv))  # noisy: stops
    sv = np.random.default_rng(1).uniform(0.5, 1.5, size=len(yv))
    kw = dict(n_parameters=1, order=1, n_estimators=80, max_depth=3, learning_rate=0.5,
              n_iter_no_change=3, random_state=4, min_samples_leaf=10)
    mem = bpt.BoostedInformationTree(**kw).fit(X, y, eval_set=(Xv, yv, sv))
    assert mem.n_iter_ < len(mem.train_loss_) < 80        # stopped, kept the best
    dk = DaskBoostedInformationTree(**kw).fit(
        chunked(X, 3000), chunked(y, 3000), client=client,
        eval_set=(chunked(Xv, 1000), chunked(yv, 1000), chunked(sv, 1000)))
    assert_same_trees(dk, mem)
    assert len(dk.validation_loss_) == len(mem.validation_loss_)
    np.testing.assert_allclose(dk.validation_loss_, mem.validation_loss_, rtol=1e-11)
    with pytest.raises(ValueError, match="eval_set X has 3 features"):
        DaskBoostedInformationTree(**kw).fit(chunked(X, 3000), chunked(y, 3000),
                                             client=client, eval_set=(Xv[:, :3], yv))


def test_bpt_eval_set(client):
    X, nu, w = bpt_data(8_000, seed=6)
    Xv, nuv, wv = bpt_data(3_000, seed=7)
    kw = dict(n_nuisances=1, n_estimators=5, early_stopping=False, random_state=0,
              min_samples_leaf=20)
    mem = bpt.BoostedParametricTree(**kw).fit(X, nu, sample_weight=w,
                                              eval_set=(Xv, nuv, wv))
    dk = DaskBoostedParametricTree(**kw).fit(chunked(X, 2000), chunked(nu[:, 0], 2000),
                                             sample_weight=chunked(w, 2000), client=client,
                                             eval_set=(chunked(Xv, 1000), nuv, wv))
    assert_same_trees(dk, mem)
    np.testing.assert_allclose(dk.validation_loss_, mem.validation_loss_, rtol=1e-11)
    nuv[5] = 7.0
    with pytest.raises(ValueError, match="eval_set nu row 5"):
        DaskBoostedParametricTree(**kw).fit(chunked(X, 2000), chunked(nu, 2000),
                                            sample_weight=chunked(w, 2000), client=client,
                                            eval_set=(Xv, nuv, wv))


@pytest.mark.slow
def test_worker_process_killed_during_fit_raises():
    """A worker process that dies (os._exit in a task; its nanny restarts it under a new
    address) aborts the fit with the RuntimeError."""
    import os
    import time
    X, y = bit_data(8_000, 1, seed=3, nan=False, order=1)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster:
        with distributed.Client(cluster) as c:
            def kill_a_worker(info):
                if info.iteration == 2:
                    addr = sorted(c.scheduler_info()["workers"])[0]
                    kill_a_worker.future = c.submit(os._exit, 1, workers=[addr], pure=False)
                    time.sleep(0.5)

            est = DaskBoostedInformationTree(n_parameters=1, order=1, n_estimators=8,
                                             early_stopping=False, n_jobs=1)
            with pytest.raises(RuntimeError, match="lost during the fit"):
                est.fit(chunked(X, 2000), chunked(y, 2000), client=c,
                        callbacks=[kill_a_worker])
            assert not hasattr(est, "ensemble_")
