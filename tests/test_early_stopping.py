"""Early stopping, eval_set, callbacks and verbose logging of both estimators (issue 12)."""

import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import BPT_POINTS, bit_quadratic_model, bpt_gaussian_samples
from sklearn.base import clone

import bpt
from bpt import BoostedInformationTree as BIT
from bpt import BoostedParametricTree as BPT

ROOT = Path(__file__).resolve().parent.parent


def _overfitting_bit(**kw):
    # small sample, deep trees, high rate: the validation loss turns up after a few trees
    params = dict(n_parameters=2, n_estimators=120, learning_rate=0.5, max_depth=4,
                  min_samples_leaf=10, random_state=0)
    return BIT(**{**params, **kw})


@pytest.fixture(scope="module")
def bit_data():
    X, y, _ = bit_quadratic_model(1500, seed=21)
    Xv, yv, _ = bit_quadratic_model(1500, seed=22)
    return X, y, Xv, yv


# ------------------------------------------------------------------ truncation
def test_keeps_exactly_the_trees_up_to_the_best_validation_loss(bit_data):
    X, y, Xv, yv = bit_data
    es = _overfitting_bit(early_stopping=True, n_iter_no_change=5).fit(X, y, eval_set=(Xv, yv))
    grown = es.train_loss_.shape[0]
    assert es.validation_loss_.shape == (grown,)
    assert grown < 120                                   # it stopped ...
    best = int(np.argmin(es.validation_loss_)) + 1
    assert es.n_iter_ == best == es.ensemble_.n_trees < grown   # ... and kept the best trees
    assert grown == best + 5                              # n_iter_no_change trees past it
    # the same fit grown to the end without early stopping: same losses, and the truncated
    # model predicts exactly what the full one predicts after `best` trees
    full = _overfitting_bit(early_stopping=False, n_estimators=grown).fit(
        X, y, eval_set=(Xv, yv))
    assert full.n_iter_ == grown
    np.testing.assert_array_equal(full.validation_loss_, es.validation_loss_)
    np.testing.assert_array_equal(full.train_loss_, es.train_loss_)
    staged = list(full.staged_predict(Xv))
    np.testing.assert_array_equal(es.predict(Xv), staged[best - 1])
    assert es.score(Xv, yv) == pytest.approx(-es.validation_loss_.min(), rel=1e-12)


def test_stopping_rule_relative_tolerance():
    est = BIT(n_iter_no_change=2, tol=0.1)
    # lowest loss before the last two trees: 9; they must go below 9 - 0.1 * 9 = 8.1
    assert est._should_stop([10.0, 9.0, 8.5, 8.6])
    assert not est._should_stop([10.0, 9.0, 8.5, 8.0])
    assert not est._should_stop([10.0, 9.0, 8.5])                   # too few trees
    est.set_params(tol=0.0)
    assert not est._should_stop([10.0, 9.0, 8.5, 8.6])
    assert est._should_stop([10.0, 9.0, 9.0, 9.5])
    # negative losses (the BIT's): the tolerance is relative to |loss|
    est.set_params(tol=0.1)
    assert est._should_stop([-1.0, -2.0, -2.1, -2.15])
    assert not est._should_stop([-1.0, -2.0, -2.1, -2.25])


def test_training_loss_is_monitored_without_validation_fraction(bit_data):
    X, y, _, _ = bit_data
    est = BIT(n_parameters=2, n_estimators=300, learning_rate=0.5, max_depth=1,
              early_stopping=True, validation_fraction=None, n_iter_no_change=3,
              tol=1e-2).fit(X, y)
    assert not hasattr(est, "validation_loss_")
    tl = est.train_loss_
    assert est.n_iter_ == int(np.argmin(tl)) + 1 and len(tl) < 300
    best_before = tl[:-3].min()
    assert tl[-3:].min() >= best_before - 1e-2 * abs(best_before)


# ------------------------------------------------------------------ auto threshold
@pytest.mark.parametrize("n, on", [(9_999, False), (10_000, True)])
def test_auto_switches_on_at_ten_thousand_rows(n, on):
    rng = np.random.default_rng(3)
    X = rng.uniform(size=(n, 1))
    y = np.column_stack([np.ones(n), X[:, 0]])
    est = BIT(n_parameters=1, order=1, n_estimators=2, max_depth=1, refit=False).fit(X, y)
    assert est.early_stopping == "auto"
    assert hasattr(est, "validation_loss_") == on
    # off: every event trains (the root holds all rows); on: 90% of them
    root = est.ensemble_.arrays["n_samples"][0]
    assert root == (n - int(np.ceil(0.1 * n)) if on else n)
    # refit: the kept trees are grown again on every event
    est = BIT(n_parameters=1, order=1, n_estimators=2, max_depth=1, refit=True).fit(X, y)
    assert est.refitted_ == on
    assert est.ensemble_.arrays["n_samples"][0] == n


def test_early_stopping_false_ignores_validation_fraction(bit_data):
    X, y, _, _ = bit_data
    est = BIT(n_parameters=2, n_estimators=3, max_depth=1, early_stopping=False,
              validation_fraction=0.3).fit(X, y)
    assert not hasattr(est, "validation_loss_") and est.n_iter_ == 3
    assert est.ensemble_.arrays["n_samples"][0] == X.shape[0]


# ------------------------------------------------------------------ eval_set
def test_bit_eval_set_equals_the_internal_split(bit_data):
    X, y, _, _ = bit_data
    inner = _overfitting_bit(early_stopping=True, n_iter_no_change=4,
                             validation_fraction=0.25, refit=False).fit(X, y)
    tr, va = inner._split_validation(X.shape[0])
    outer = clone(inner).fit(X[tr], y[tr], eval_set=(X[va], y[va]))
    np.testing.assert_array_equal(outer.validation_loss_, inner.validation_loss_)
    np.testing.assert_array_equal(outer.train_loss_, inner.train_loss_)
    assert outer.n_iter_ == inner.n_iter_
    np.testing.assert_array_equal(outer.predict(X), inner.predict(X))
    # with sample weights given as the third element: the same as weighted y
    w = np.linspace(0.5, 1.5, len(va))
    a = clone(inner).fit(X[tr], y[tr], eval_set=(X[va], y[va], w))
    b = clone(inner).fit(X[tr], y[tr], eval_set=(X[va], y[va] * w[:, None]))
    np.testing.assert_array_equal(a.validation_loss_, b.validation_loss_)


def test_bpt_groups_split_equals_eval_set_and_warns_only_without_them():
    X, nu, w = bpt_gaussian_samples(400, seed=31, reweighted=True)   # shared events
    n_pts = len(BPT_POINTS) + 1
    groups = np.tile(np.arange(400), n_pts)
    kw = dict(n_nuisances=2, n_estimators=30, max_depth=2, min_samples_leaf=10,
              learning_rate=0.3, early_stopping=True, n_iter_no_change=3,
              validation_fraction=0.25, random_state=4, refit=False)
    with pytest.warns(UserWarning, match="groups="):
        BPT(**kw).fit(X, nu, w)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        inner = BPT(**kw).fit(X, nu, w, groups=groups)
        tr, va = inner._split_validation(X.shape[0], groups=groups)
        # every event's copies are on one side
        assert not set(groups[tr]) & set(groups[va])
        outer = BPT(**kw).fit(X[tr], nu[tr], w[tr], eval_set=(X[va], nu[va], w[va]))
    np.testing.assert_array_equal(outer.validation_loss_, inner.validation_loss_)
    np.testing.assert_array_equal(outer.train_loss_, inner.train_loss_)
    np.testing.assert_array_equal(outer.predict(X), inner.predict(X))


def test_independent_bpt_samples_do_not_warn():
    X, nu, w = bpt_gaussian_samples(400, seed=32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = BPT(n_nuisances=2, n_estimators=3, max_depth=1, min_samples_leaf=10,
                  early_stopping=True, random_state=0).fit(X, nu, w)
    assert est.validation_loss_.shape == est.train_loss_.shape


def test_eval_set_is_checked_like_the_training_data(bit_data):
    X, y, Xv, yv = bit_data
    est = BIT(n_parameters=2, n_estimators=2, max_depth=1)
    with pytest.raises(ValueError, match="eval_set must be a tuple"):
        est.fit(X, y, eval_set=Xv)
    with pytest.raises(ValueError, match="eval_set X has 2 features"):
        est.fit(X, y, eval_set=(Xv[:, :2], yv))
    with pytest.raises(ValueError, match="eval_set y must have 1 \\+ n_terms"):
        est.fit(X, y, eval_set=(Xv, yv[:, :3]))
    with pytest.raises(ValueError, match="eval_set y contains"):
        bad = yv.copy()
        bad[3, 1] = np.nan
        est.fit(X, y, eval_set=(Xv, bad))
    with pytest.raises(ValueError, match="eval_set sample_weight"):
        est.fit(X, y, eval_set=(Xv, yv, np.ones(3)))
    with pytest.raises(ValueError, match="SM weights of eval_set"):
        est.fit(X, y, eval_set=(Xv, -yv))
    assert not hasattr(est, "n_iter_")                      # nothing half-fitted
    Xb, nu, w = bpt_gaussian_samples(200, seed=33)
    b = BPT(n_nuisances=2, n_estimators=2, max_depth=1, min_samples_leaf=5)
    nu_v = nu.copy()
    nu_v[0] = [0.3, 0.3]
    with pytest.raises(ValueError, match="eval_set nu row 0 .* not one of the fitted"):
        b.fit(Xb, nu, w, eval_set=(Xb, nu_v, w))
    with pytest.raises(ValueError, match="eval_set nu must have n_nuisances"):
        b.fit(Xb, nu, w, eval_set=(Xb, nu[:, :1]))
    only_nominal = np.all(nu == 0, axis=1)
    with pytest.raises(ValueError, match="in eval_set is not positive"):
        b.fit(Xb, nu, w, eval_set=(Xb[only_nominal], nu[only_nominal]))


# ------------------------------------------------------------------ callbacks
def test_callbacks_see_every_tree_in_order_and_can_stop(bit_data):
    X, y, Xv, yv = bit_data
    calls = []

    def first(info):
        calls.append(("first", info.iteration))
        return info.iteration == 4

    def second(info):
        calls.append(("second", info.iteration, info.train_loss, info.validation_loss,
                      info.estimator))

    est = BIT(n_parameters=2, n_estimators=50, max_depth=2, early_stopping=False)
    est.fit(X, y, eval_set=(Xv, yv), callbacks=[first, second])
    assert est.n_iter_ == 4 and est.train_loss_.shape == (4,)
    assert [c[:2] for c in calls] == [(name, i) for i in (1, 2, 3, 4)
                                      for name in ("first", "second")]
    seconds = [c for c in calls if c[0] == "second"]
    np.testing.assert_array_equal([c[2] for c in seconds], est.train_loss_)
    np.testing.assert_array_equal([c[3] for c in seconds], est.validation_loss_)
    assert all(c[4] is est for c in seconds)
    # no validation data: validation_loss is None; a single callable is accepted
    infos = []
    BIT(n_parameters=2, n_estimators=2, max_depth=1, early_stopping=False).fit(
        X, y, callbacks=infos.append)
    assert [i.iteration for i in infos] == [1, 2]
    assert all(i.validation_loss is None for i in infos)
    assert isinstance(infos[0], bpt.IterationInfo)


def test_callbacks_are_checked_and_their_errors_propagate(bit_data):
    X, y, _, _ = bit_data
    est = BIT(n_parameters=2, n_estimators=2, max_depth=1)
    with pytest.raises(ValueError, match="callbacks\\[1\\] is not callable"):
        est.fit(X, y, callbacks=[print, 3])
    with pytest.raises(ValueError, match="callbacks must be a list"):
        est.fit(X, y, callbacks=3)

    def boom(info):
        raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        est.fit(X, y, callbacks=[boom])
    assert not hasattr(est, "n_iter_")


def test_bpt_callback_stops_and_early_stopping_keeps_best():
    X, nu, w = bpt_gaussian_samples(300, seed=34)
    Xv, nuv, wv = bpt_gaussian_samples(300, seed=35)
    seen = []
    est = BPT(n_nuisances=2, n_estimators=40, max_depth=3, min_samples_leaf=5,
              learning_rate=0.5, early_stopping=True, n_iter_no_change=40).fit(
        X, nu, w, eval_set=(Xv, nuv, wv), callbacks=[lambda i: seen.append(i) or
                                                      i.iteration == 12])
    assert len(seen) == 12 == est.validation_loss_.shape[0]
    assert est.n_iter_ == int(np.argmin(est.validation_loss_)) + 1
    np.testing.assert_allclose([i.validation_loss for i in seen], est.validation_loss_)


# ------------------------------------------------------------------ parameters
def test_new_parameters_in_get_params_clone_and_checks():
    for cls in (BIT, BPT):
        est = cls()
        p = est.get_params()
        assert p["early_stopping"] == "auto" and p["validation_fraction"] == 0.1
        assert p["n_iter_no_change"] == 10 and p["tol"] == 1e-7
        c = clone(cls(early_stopping=False, tol=1e-3, n_iter_no_change=4))
        assert c.get_params()["early_stopping"] is False and c.tol == 1e-3
        assert c.n_iter_no_change == 4
    X, y, _ = bit_quadratic_model(200, seed=1)
    for name, value in [("early_stopping", "yes"), ("early_stopping", 1), ("tol", -1.0),
                        ("tol", np.nan), ("n_iter_no_change", 0), ("validation_fraction", 0.0),
                        ("validation_fraction", True)]:
        with pytest.raises(ValueError, match=name):
            BIT(n_parameters=2, **{name: value}).fit(X, y)


# ------------------------------------------------------------------ verbose / logging
def test_verbose_logs_to_the_bpt_logger(caplog, bit_data):
    X, y, _, _ = bit_data
    with caplog.at_level(logging.INFO, logger="bpt"):
        _overfitting_bit(early_stopping=True, n_iter_no_change=3, verbose=1,
                         validation_fraction=0.3).fit(X, y)
    records = [r for r in caplog.records if r.name == "bpt"]
    trees = [r for r in records if "] tree " in r.getMessage()]
    assert trees and all(r.levelno == logging.INFO for r in records)
    assert "val loss" in trees[0].getMessage()
    assert any("early stopping after" in r.getMessage() for r in records)
    assert any("keeping the first" in r.getMessage() for r in records)
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        BIT(n_parameters=2, n_estimators=3, max_depth=1).fit(X, y)
    assert not [r for r in caplog.records if r.name == "bpt"]
    assert logging.getLogger("bpt").level == logging.NOTSET     # restored


_SCRIPT = """
import logging, sys
import numpy as np
import bpt
rng = np.random.default_rng(0)
X = rng.uniform(size=(300, 2))
y = np.column_stack([np.ones(300), X[:, 0]])
def fit(verbose):
    bpt.BoostedInformationTree(n_estimators=3, max_depth=1, order=1, verbose=verbose).fit(X, y)
    for stream in (sys.stdout, sys.stderr):
        stream.write("=== end of fit ===\\n")
        stream.flush()
fit(1)
fit(0)
# a configured handler receives the lines instead (no duplicate on stdout)
logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
fit(1)
"""


def test_verbose_prints_on_stdout_without_logging_configuration():
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True,
                          timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.split("=== end of fit ===\n")
    err = proc.stderr.split("=== end of fit ===\n")
    assert out[0].count("[BIT] tree") == 3 and "train loss" in out[0]
    assert "[BIT]" not in err[0]
    assert out[1] == "" and "[BIT]" not in err[1]                  # verbose=0: silent
    assert "[BIT]" not in out[2] and err[2].count("[BIT] tree") == 3


# ------------------------------------------------------------------ refit
def test_bit_refit_is_a_fit_on_all_rows_with_the_kept_number_of_trees(bit_data):
    X, y, _, _ = bit_data
    first = _overfitting_bit(early_stopping=True, n_iter_no_change=4, refit=False).fit(X, y)
    n = first.n_iter_
    assert n < 120 and not first.refitted_
    refitted = _overfitting_bit(early_stopping=True, n_iter_no_change=4, refit=True).fit(X, y)
    assert refitted.refitted_ and refitted.n_iter_ == n
    # the curve that chose n_iter_ is kept; the training curve is the refitted model's
    np.testing.assert_array_equal(refitted.validation_loss_, first.validation_loss_)
    by_hand = _overfitting_bit(early_stopping=False, n_estimators=n).fit(X, y)
    np.testing.assert_array_equal(refitted.train_loss_, by_hand.train_loss_)
    np.testing.assert_array_equal(refitted.predict(X), by_hand.predict(X))
    assert not np.array_equal(refitted.predict(X), first.predict(X))


def test_bpt_refit_is_a_fit_on_all_rows_with_the_kept_number_of_trees():
    X, nu, w = bpt_gaussian_samples(400, seed=33)
    kw = dict(n_nuisances=2, max_depth=2, min_samples_leaf=10, learning_rate=0.3,
              n_iter_no_change=3, random_state=5)
    first = BPT(early_stopping=True, refit=False, n_estimators=60, **kw).fit(X, nu, w)
    n = first.n_iter_
    assert n < 60
    refitted = BPT(early_stopping=True, n_estimators=60, **kw).fit(X, nu, w)  # the default
    assert refitted.refit and refitted.refitted_ and refitted.n_iter_ == n
    np.testing.assert_array_equal(refitted.validation_loss_, first.validation_loss_)
    by_hand = BPT(early_stopping=False, n_estimators=n, **kw).fit(X, nu, w)
    np.testing.assert_array_equal(refitted.predict(X), by_hand.predict(X))
    assert refitted.ensemble_.arrays["n_samples"][0] == X.shape[0]


def test_refit_needs_an_internal_split(bit_data):
    X, y, _, _ = bit_data
    # eval_set: every training row already trains; early stopping off: nothing held out
    a = _overfitting_bit(early_stopping=True, n_iter_no_change=4, refit=True).fit(
        X[:300], y[:300], eval_set=(X[300:], y[300:]))
    b = _overfitting_bit(early_stopping=True, n_iter_no_change=4, refit=False).fit(
        X[:300], y[:300], eval_set=(X[300:], y[300:]))
    assert not a.refitted_
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    c = _overfitting_bit(early_stopping=False, n_estimators=5, refit=True).fit(X, y)
    assert not c.refitted_ and c.n_iter_ == 5
    with pytest.raises(ValueError, match="refit must be True or False"):
        _overfitting_bit(refit="yes").fit(X, y)
