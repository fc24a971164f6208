"""The compiled grower reproduces the trees of the engine's first version (stored fixture).

tests/data/engine_trees_v01.npz was written by tests/data/make_engine_trees_v01.py from the
Python-per-node grower; with every new option off the trees must be the same: same
features, thresholds and children, leaf values and gains to round-off.
"""

import importlib.util
import os

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(os.path.dirname(HERE), "data")


def _generator():
    spec = importlib.util.spec_from_file_location(
        "make_engine_trees_v01", os.path.join(DATA, "make_engine_trees_v01.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


GEN = _generator()
STORED = np.load(os.path.join(DATA, "engine_trees_v01.npz"))
CASES = GEN.fixture_cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_trees_match_stored_fixture(name):
    est = GEN.fit_case(CASES[name])
    a = est.ensemble_.arrays
    for k in ("feature", "left", "right", "n_samples", "tree_start"):
        np.testing.assert_array_equal(a[k], STORED[f"{name}/{k}"], err_msg=k)
    np.testing.assert_array_equal(a["threshold"], STORED[f"{name}/threshold"])
    for k in ("value", "gain"):
        ref = STORED[f"{name}/{k}"]
        scale = np.max(np.abs(ref))
        np.testing.assert_allclose(a[k], ref, rtol=1e-12, atol=1e-12 * scale, err_msg=k)
    ref = STORED[f"{name}/train_loss"]
    np.testing.assert_allclose(est.train_loss_, ref, rtol=1e-10, atol=1e-12)
