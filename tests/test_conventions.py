"""The first hour: lazy sub-modules, scikit-learn tags and checks, warnings that point at the
caller, and the BPT's refusal of nu it cannot model / warning on unnormalised yields."""

import subprocess
import sys
import warnings

import numpy as np
import pytest
from conftest import bpt_gaussian_samples
from sklearn.base import clone
from sklearn.utils import get_tags

from bpt import BoostedInformationTree as BIT
from bpt import BoostedParametricTree as BPT
from bpt._bpt import YIELD_RATIO_TOLERANCE

PUBLIC_SUBMODULES = ["datasets", "export", "inference", "plotting"]


# ---------------------------------------------------------------- lazy sub-modules
def test_import_bpt_is_light_and_submodules_load_on_first_use():
    code = (
        "import sys, bpt\n"
        "heavy = [m for m in ('matplotlib', 'onnx', 'bpt.inference', 'bpt.plotting', "
        "'bpt.datasets', 'bpt.export') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "names = dir(bpt)\n"
        f"assert all(n in names for n in {PUBLIC_SUBMODULES!r} + ['diagnostics']), names\n"
        "s = bpt.datasets.make_eft_signal(10, random_state=0)\n"
        "assert s.X.shape[0] == 10\n"
        "assert bpt.inference.AdditiveModel.__name__ == 'AdditiveModel'\n"
        "assert callable(bpt.export.to_onnx) and callable(bpt.plotting.plot_loss)\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
        "import bpt.datasets\n"
        "assert bpt.datasets is sys.modules['bpt.datasets']\n"
        "try:\n"
        "    bpt.no_such_module\n"
        "except AttributeError as exc:\n"
        "    assert 'no_such_module' in str(exc)\n"
        "else:\n"
        "    raise SystemExit('no AttributeError')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


# ---------------------------------------------------------------- scikit-learn
@pytest.mark.parametrize("est", [BIT(), BPT()], ids=["BIT", "BPT"])
def test_sklearn_tags(est):
    tags = get_tags(est)
    assert tags.target_tags.required            # fit needs y / nu
    assert tags.target_tags.multi_output
    assert tags.requires_fit and not tags.non_deterministic
    assert tags.input_tags.two_d_array and not tags.input_tags.sparse
    if isinstance(est, BIT):
        assert tags.estimator_type == "regressor" and not tags.target_tags.single_output
    else:
        assert tags.estimator_type is None and tags.target_tags.single_output
    assert est._more_tags()["requires_y"]       # scikit-learn < 1.6


@pytest.mark.parametrize("est", [BIT(n_parameters=2, learning_rate=0.3),
                                 BPT(n_nuisances=2, terms=[(0,), (1,)])], ids=["BIT", "BPT"])
def test_sklearn_estimator_checks_that_apply(est):
    # the general checks that need no fit on sklearn's own (1-d y) data
    from sklearn.utils import estimator_checks as ec
    name = type(est).__name__
    for check in ("check_no_attributes_set_in_init", "check_parameters_default_constructible",
                  "check_get_params_invariance", "check_set_params", "check_estimator_repr",
                  "check_estimator_cloneable", "check_valid_tag_types"):
        fn = getattr(ec, check, None)
        if fn is not None:                      # some are new in scikit-learn 1.6
            fn(name, est)
    c = clone(est)
    assert c is not est and c.get_params() == est.get_params()


def test_fit_does_not_change_params_and_clone_is_unfitted():
    X, nu, w = bpt_gaussian_samples(300, seed=1)
    est = BPT(n_nuisances=2, terms=[(0,), (1,)], n_estimators=2, max_depth=2,
              min_samples_leaf=20, random_state=0)
    before = est.get_params()
    est.fit(X, nu, w)
    assert est.get_params() == before
    assert not hasattr(clone(est), "ensemble_")


# ---------------------------------------------------------------- warnings point at the caller
def test_constant_model_warning_points_at_the_callers_line():
    X = np.zeros((200, 2))
    y = np.column_stack([np.ones(200), np.linspace(-1, 1, 200)])
    with pytest.warns(UserWarning, match="no valid split") as record:
        BIT(n_parameters=1, order=1, n_estimators=2).fit(X, y)
    assert record[0].filename == __file__


def test_yield_warning_points_at_the_callers_line():
    rng = np.random.default_rng(0)
    # unit weights and half as many events at the base point: a -50% "normalisation"
    X = rng.normal(size=(3000, 2))
    nu = np.r_[np.zeros(2000), np.ones(1000)]
    with pytest.warns(UserWarning, match="times the nominal") as record:
        BPT(n_nuisances=1, order=1, n_estimators=2, max_depth=1).fit(X, nu)
    assert record[0].filename == __file__
    # also through a scikit-learn Pipeline: the user's pipe.fit line, not sklearn's
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    pipe = make_pipeline(StandardScaler(), BPT(n_nuisances=1, order=1, n_estimators=2,
                                               max_depth=1))
    with pytest.warns(UserWarning, match="times the nominal") as record:
        pipe.fit(X, nu)
    assert record[0].filename == __file__


# ---------------------------------------------------------------- BPT inputs
def test_bpt_refuses_rows_in_columns_no_term_models():
    X, nu, w = bpt_gaussian_samples(200, seed=2)      # base points vary nu0 and nu1
    est = BPT(n_nuisances=2, terms=[(0,), (0, 0)], n_estimators=2, min_samples_leaf=10)
    with pytest.raises(ValueError, match=r"column\(s\) \[1\].*as nominal"):
        est.fit(X, nu, w)
    # without those rows the same model is fine
    keep = nu[:, 1] == 0
    est.fit(X[keep], nu[keep], w[keep])
    assert est.base_points_.shape == (2, 2)


def _two_point_sample(n_nom, n_var, weight_var, seed=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_nom + n_var, 2))
    nu = np.r_[np.zeros(n_nom), np.ones(n_var)]
    w = np.r_[np.full(n_nom, 1.0 / n_nom), np.full(n_var, weight_var)]
    return X, nu, w


@pytest.mark.parametrize("ratio,warns", [(1.0, False), (1.9, False), (0.55, False),
                                         (YIELD_RATIO_TOLERANCE, True), (0.5, True),
                                         (3.0, True)])
def test_bpt_warns_when_base_point_yield_is_far_from_nominal(ratio, warns):
    X, nu, w = _two_point_sample(1000, 500, ratio / 500)
    est = BPT(n_nuisances=1, order=1, n_estimators=1, max_depth=0,
              learn_global=True)                   # one global leaf at rate 1
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        est.fit(X, nu, w)
    hits = [r for r in record if "times the nominal" in str(r.message)]
    assert bool(hits) == warns
    # the warning does not change what is learned: the global log ratio is log(ratio)
    np.testing.assert_allclose(est.predict(X[:3])[:, 0], np.log(ratio), rtol=1e-12)


def test_sliced_nu_counting_other_samples_as_nominal_is_flagged():
    # the case: keeping one column of a two-nuisance sample turns the other
    # nuisance's base points into "nominal" rows; the nominal yield then looks 3x too big
    X, nu, w = bpt_gaussian_samples(300, seed=4, points=np.array(
        [[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]))
    with pytest.warns(UserWarning, match="rows of other samples in the nominal"):
        BPT(n_nuisances=1, n_estimators=1, max_depth=1, min_samples_leaf=10).fit(
            X, nu[:, :1], w)
