"""Calibration check of the process-fraction classifier on held-out simulation.

If f_p(x) are the true SM fractions, then on any simulated sample and in any region of x,
sum_i w_i f_p(x_i) (over the events of all processes) equals sum_{i in p} w_i (the
events of process p) up to the sample's statistical fluctuation.  A mismatch larger than
what the data can resolve biases the fit.  ``check_calibration`` compares the two overall
and in quantile bins of every learned coefficient R_A(x) / Delta_A(x) of the model.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from .._validation import check_features, check_finite

__all__ = ["CalibrationResult", "check_calibration"]


@dataclass
class CalibrationResult:
    """Held-out calibration of the fractions: one row per (region, process).

    Attributes
    ----------
    rows : list of dict with keys ``region`` ("all", or "<column> bin k" of a learned
        coefficient), ``process``, ``yield_`` (sum of held-out weights of the process),
        ``predicted`` (sum over all held-out events of w f_p), ``mismatch`` (predicted -
        yield_), ``data_error`` (sqrt of the region's total expected yield: the
        statistical error of data with these weights), ``holdout_error`` (the held-out
        sample's own fluctuation of the mismatch, sqrt(sum w^2 (1[p] - f_p)^2))
    n_flagged : number of rows with |mismatch| > data_error + 2 holdout_error
    """
    rows: list = field(repr=False)
    n_flagged: int

    @property
    def worst(self):
        """The row with the largest |mismatch| / data_error."""
        return max(self.rows, key=lambda r: abs(r["mismatch"]) / max(r["data_error"], 1e-300))


def _column_names(model):
    lay = model._layout
    names = []
    for ip, p in enumerate(model.processes):
        for c in range(lay.ratio_start[ip], lay.ratio_end[ip]):
            names.append((c, f"{p.name} R[{c - lay.ratio_start[ip]}]"))
        for c in range(lay.syst_start[ip], lay.syst_end[ip]):
            names.append((c, f"{p.name} Delta[{c - lay.syst_start[ip]}]"))
    return names


def check_calibration(model, holdout, n_bins=4, warn=True):
    """Compare sum w f_p with the process yields on held-out simulation.

    ``holdout``: {process name: (X, weight)} for every process of the model, simulated
    independently of the classifier's training sample, weights normalised as the
    processes' (expected yields).  Regions: all events, and ``n_bins`` quantile bins of
    every learned coefficient column (R_A of each ratio model, merged Delta_A of each
    process's systematics).  A row is flagged when |mismatch| exceeds the data
    statistical error of the region plus twice the held-out sample's own error; with
    ``warn`` a RuntimeWarning names the worst flagged row.
    """
    names = model.process_names
    if model.fractions is None:
        raise ValueError("the model has one process and no fraction classifier to check")
    if not isinstance(holdout, dict) or sorted(holdout) != sorted(names):
        raise ValueError(f"holdout must be a dict with one (X, weight) per process {names}")
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    Xs, ws, labels = [], [], []
    for ip, name in enumerate(names):
        entry = holdout[name]
        if not (isinstance(entry, tuple) and len(entry) == 2):
            raise ValueError(f"holdout[{name!r}] must be (X, weight)")
        X = check_features(entry[0], f"holdout[{name!r}] X", n_features=model.n_features_in_)
        w = check_finite(entry[1], f"holdout[{name!r}] weight", ndim=1, length=X.shape[0])
        Xs.append(X)
        ws.append(w)
        labels.append(np.full(X.shape[0], ip))
    X = np.concatenate(Xs)
    w = np.concatenate(ws)
    label = np.concatenate(labels)
    coef = model._coefficients(X)
    lay = model._layout
    frac = coef[:, lay.fraction_column]                 # (n, n_proc) in process order
    regions = [("all", np.ones(X.shape[0], dtype=bool))]
    for c, cname in _column_names(model):
        v = coef[:, c]
        edges = np.unique(np.quantile(v, np.linspace(0, 1, n_bins + 1)))
        if edges.shape[0] < 2:
            continue
        code = np.clip(np.searchsorted(edges, v, side="right") - 1, 0, edges.shape[0] - 2)
        for k in range(edges.shape[0] - 1):
            regions.append((f"{cname} bin {k} [{edges[k]:.4g}, {edges[k + 1]:.4g}]",
                            code == k))
    rows = []
    n_flagged = 0
    for region, m in regions:
        wm = w[m]
        data_err = float(np.sqrt(max(wm.sum(), 0.0)))
        for ip, name in enumerate(names):
            is_p = label[m] == ip
            y = float(wm[is_p].sum())
            pred = float(wm @ frac[m, ip])
            resid = is_p.astype(np.float64) - frac[m, ip]
            h_err = float(np.sqrt(np.sum((wm * resid) ** 2)))
            row = {"region": region, "process": name, "yield_": y, "predicted": pred,
                   "mismatch": pred - y, "data_error": data_err, "holdout_error": h_err}
            rows.append(row)
            if abs(pred - y) > data_err + 2.0 * h_err:
                n_flagged += 1
    result = CalibrationResult(rows, n_flagged)
    if warn and n_flagged:
        r = max((r for r in rows if abs(r["mismatch"]) > r["data_error"] + 2 * r["holdout_error"]),
                key=lambda r: abs(r["mismatch"]) / max(r["data_error"], 1e-300))
        warnings.warn(f"the fraction classifier is miscalibrated in {n_flagged} region(s) "
                      f"beyond the data's statistical error; worst: {r['region']}, process "
                      f"{r['process']!r}: sum w f_p = {r['predicted']:.6g} vs yield "
                      f"{r['yield_']:.6g} (data error {r['data_error']:.3g}, held-out error "
                      f"{r['holdout_error']:.3g})", RuntimeWarning, stacklevel=2)
    return result
