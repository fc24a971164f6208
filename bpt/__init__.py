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
load
    Read an estimator saved with ``est.save(path)`` (safe: no code is executed).

Sub-modules
-----------
bpt.inference
    The additive, refinable model and the unbinned test statistic q (AdditiveModel,
    Process, Nuisance): fits, profiles, scans, intervals, toys.
bpt.datasets
    A built-in toy physics generator with exact truth (no downloads).
bpt.plotting
    Learned vs true coefficients, loss curves, systematic ratios, scans, contours
    (needs matplotlib: ``pip install bpt[plot]``).
bpt.export
    ONNX export of fitted estimators (``pip install bpt[onnx]``).
"""

from ._engine import _runtime  # noqa: F401  (numba threading layer and cache: first)
from ._bit import BoostedInformationTree
from ._bpt import BoostedParametricTree
from ._io import load
from ._terms import coefficients_from_derivatives, make_terms

__version__ = "0.1.0"

__all__ = ["BoostedInformationTree", "BoostedParametricTree", "coefficients_from_derivatives",
           "load", "make_terms", "__version__"]
