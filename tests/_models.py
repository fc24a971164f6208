"""Exact (analytic) stand-ins for BIT / BPT / the fraction classifier shared by the inference
tests: objects with the ``predict`` / ``terms_`` (or ``predict_proba`` / ``classes_``)
interface whose outputs are the closed forms of docs/math.md for a one-POI, one-shape model.

Signal x1 ~ Exp(1) with yield ``sig``, background x1 ~ Exp(2) with yield ``bkg``.
"""

from __future__ import annotations

import numpy as np


class ExactRatio:
    """R_A(x) of r(x|theta) = (1 + theta x1 / 2)^2: R_theta = x1, R_theta^2 = x1^2 / 4.
    ``n_calls`` counts the ``predict`` calls."""
    terms_ = [(0,), (0, 0)]
    n_parameters = 1

    def __init__(self):
        self.n_calls = 0

    def predict(self, X):
        self.n_calls += 1
        x = np.asarray(X)[:, 0]
        return np.column_stack([x, 0.25 * x * x])


class ExactShape:
    """Delta_A(x) of S(x|nu) = exp(beta nu (x1 - 1))."""
    terms_ = [(0,), (0, 0)]
    n_nuisances = 1

    def __init__(self, beta):
        self.beta = beta

    def predict(self, X):
        x = np.asarray(X)[:, 0]
        return np.column_stack([self.beta * (x - 1.0), np.zeros_like(x)])


class ExactFractions:
    """The exact SM class probabilities of the signal (yield ``sig``, density exp(-x1)) and
    background (yield ``bkg``, density 2 exp(-2 x1)) mixture."""
    classes_ = np.array(["bkg", "sig"])

    def __init__(self, sig, bkg):
        self.sig = sig
        self.bkg = bkg

    def predict_proba(self, X):
        x = np.asarray(X)[:, 0]
        s = self.sig * np.exp(-x)
        b = self.bkg * 2.0 * np.exp(-2.0 * x)
        return np.column_stack([b / (s + b), s / (s + b)])
