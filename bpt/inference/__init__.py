"""Unbinned inference with the additive, refinable model (docs/math.md, sections 3 and 4).

Build an :class:`AdditiveModel` from :class:`Process` es (SM simulation, a fitted
BoostedInformationTree for the theta dependence, fitted BoostedParametricTrees for
systematics, normalisation uncertainties), :class:`Nuisance` parameters and a
process-fraction classifier; then ``q``, ``fit``, ``profile``, ``scan``, ``interval``,
``asimov``, ``toys`` and ``coverage``, ``minuit`` (an iminuit.Minuit), ``impacts`` and
``goodness_of_fit``; :func:`saturated_gof` for binned counts and :func:`to_pyhf_workspace`
(a HistFactory JSON workspace of a binned channel); the uncertainty of the learned pieces with
:class:`Replicas` (:func:`bootstrap_fit`) and :func:`check_calibration`.  See docs/inference.md.
"""

from ._binned import BinnedChannel, BinnedData
from ._calibration import CalibrationResult, check_calibration
from ._combination import Combination, CombinedData
from ._fit import FitResult, ProfileResult, ScanResult
from ._gof import GoodnessOfFitResult, saturated_gof
from ._impacts import ImpactsResult
from ._likelihood import RateError
from ._model import AdditiveModel, Dataset, Nuisance, Process, load_model
from ._pyhf import PYHF_MODIFIER_SETTINGS, to_pyhf_workspace
from ._replicas import ReplicaInterval, Replicas, bootstrap_fit
from ._toys import CoverageResult

__all__ = ["AdditiveModel", "BinnedChannel", "BinnedData", "CalibrationResult", "Combination",
           "CombinedData", "CoverageResult", "Dataset", "FitResult", "GoodnessOfFitResult",
           "ImpactsResult", "Nuisance", "PYHF_MODIFIER_SETTINGS", "Process", "ProfileResult",
           "RateError", "ReplicaInterval", "Replicas", "ScanResult", "bootstrap_fit",
           "check_calibration", "load_model", "saturated_gof", "to_pyhf_workspace"]
