"""Scans, toys and coverage through joblib's dask backend on a real distributed.LocalCluster.

Needs the ``dask`` extra (dask[distributed]); skipped otherwise.  The same calls with the
same ``n_jobs`` on the local threading backend must give the same numbers: the work is
split into ``n_jobs`` chunks independently of the backend.
"""

from __future__ import annotations

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
joblib = pytest.importorskip("joblib")

from _models import ExactFractions, ExactRatio  # noqa: E402
from bpt.inference import AdditiveModel, Nuisance, Process  # noqa: E402


class Shape:
    terms_ = [(0,)]
    n_nuisances = 1

    def predict(self, X):
        return 0.15 * (np.asarray(X)[:, :1] - 1.0)


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    n = 5000
    xs = np.column_stack([rng.exponential(1.0, n), rng.uniform(size=n)])
    xb = np.column_stack([rng.exponential(0.5, n), rng.uniform(size=n)])
    w = np.full(n, 300.0 / n)
    return AdditiveModel([Process("sig", xs, w, ratio=ExactRatio(),
                                  systematics=[(Shape(), ["shape"])]),
                          Process("bkg", xb, w, normalization={"norm": 0.2})],
                         pois=["theta"], nuisances=[Nuisance("shape"), Nuisance("norm")],
                         fractions=ExactFractions(1.0, 1.0))


@pytest.fixture(scope="module")
def client():
    from distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()


def test_scan_toys_coverage_on_dask(model, client):
    X, w = model.asimov([0.3], [0.0, 0.0])
    thetas = np.linspace(0.0, 0.6, 8)
    with joblib.parallel_config(backend="threading"):
        t_local = model.scan(thetas, X, w, n_jobs=2)
        toys_local = model.toys([0.3], [0.0, 0.0], 6, random_state=11, n_jobs=2)
        cov_local = model.coverage([0.3], [0.0, 0.0], 12, random_state=5, n_jobs=2)

    with distributed.get_task_stream(client) as stream:
        with joblib.parallel_config(backend="dask"):
            t_dask = model.scan(thetas, X, w, n_jobs=2)
            toys_dask = model.toys([0.3], [0.0, 0.0], 6, random_state=11, n_jobs=2)
            cov_dask = model.coverage([0.3], [0.0, 0.0], 12, random_state=5, n_jobs=2)
    # the work ran as tasks on the cluster's worker processes
    workers = {t["worker"] for t in stream.data}
    assert len(stream.data) >= 6 and workers <= set(client.scheduler_info()["workers"])

    np.testing.assert_allclose(t_dask, t_local, rtol=1e-12, atol=1e-12)
    for a, b in zip(toys_dask, toys_local):
        np.testing.assert_array_equal(a.weight, b.weight)
        np.testing.assert_array_equal(a.X, b.X)
        np.testing.assert_array_equal(a.global_observables, b.global_observables)
    np.testing.assert_allclose(cov_dask.t, cov_local.t, rtol=1e-12, atol=1e-12)
    assert cov_dask.coverage == cov_local.coverage
