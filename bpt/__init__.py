"""bpt: Boosted Information Trees, Boosted Parametric Trees and unbinned inference.

Public API
----------
BoostedInformationTree
    Learns the per-event SMEFT polynomial r(x|theta) from weighted simulation.
BoostedParametricTree
    Learns systematic variations log dsigma(x|nu)/dsigma(x|0) from base-point samples.
coefficients_from_derivatives
    Converts generator derivative weights into the BIT's ``y`` layout.
make_terms
    The polynomial terms (linear, then quadratic) used by both estimators.
IterationInfo
    What a ``fit(..., callbacks=[...])`` callback receives after every tree.
load
    Read an estimator saved with ``est.save(path)`` (safe: no code is executed).

Sub-modules
-----------
bpt.inference
    The additive, refinable model and the unbinned test statistic q (AdditiveModel,
    Process, Nuisance): fits, profiles, scans, intervals, toys.
bpt.diagnostics
    Closure on held-out simulation, training vs held-out loss (overfitting) and the
    learned Fisher information.
bpt.datasets
    A built-in toy physics generator with exact truth (no downloads).
bpt.toys
    Small analytic toys with exact truth for accuracy studies (bench/bench_accuracy.py).
bpt.plotting
    Learned vs true coefficients, loss curves, systematic ratios, scans, contours
    (needs matplotlib: ``pip install bpt[plot]``).
bpt.export
    ONNX export of fitted estimators and pipelines (``pip install bpt[onnx]``).
bpt.diagnostics
    Checks of a fitted model against held-out data.
bpt.dask
    DaskBoostedInformationTree / DaskBoostedParametricTree: training on a
    dask.distributed cluster (``pip install bpt[dask]``; docs/dask.md).

The sub-modules are imported on first use (``import bpt; bpt.datasets.make_...`` works);
``import bpt`` itself does not import matplotlib, onnx, dask or the inference code.
The mathematics: docs/math.md in the repository.
"""

import importlib as _importlib

from ._engine import _runtime  # noqa: F401  (numba threading layer and cache: first)
from ._base import IterationInfo
from ._bit import BoostedInformationTree
from ._bpt import BoostedParametricTree
from ._io import load
from ._terms import coefficients_from_derivatives, make_terms

__version__ = "0.1.0"

__all__ = ["BoostedInformationTree", "BoostedParametricTree", "IterationInfo",
           "coefficients_from_derivatives", "load", "make_terms", "__version__"]

# public sub-modules, imported lazily on first attribute access (PEP 562)
_SUBMODULES = ("dask", "datasets", "diagnostics", "export", "inference", "plotting", "toys")


def __getattr__(name):
    if name in _SUBMODULES:
        try:
            module = _importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise                   # a missing dependency: say which
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
        globals()[name] = module        # later lookups skip __getattr__
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SUBMODULES))
