"""Unbinned inference with the additive, refinable model (MATH.md sections 3 and 4).

Build an :class:`AdditiveModel` from :class:`Process` es (SM simulation, a fitted
BoostedInformationTree for the theta dependence, fitted BoostedParametricTrees for
systematics, normalisation uncertainties), :class:`Nuisance` parameters and a
process-fraction classifier; then ``q``, ``fit``, ``profile``, ``scan``, ``interval``,
``asimov``, ``toys`` and ``coverage``.  See docs/inference.md.
"""

from ._fit import FitResult, ProfileResult, ScanResult
from ._likelihood import RateError
from ._model import AdditiveModel, Dataset, Nuisance, Process, load_model
from ._toys import CoverageResult

__all__ = ["AdditiveModel", "CoverageResult", "Dataset", "FitResult", "Nuisance", "Process",
           "ProfileResult", "RateError", "ScanResult", "load_model"]
