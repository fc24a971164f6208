"""Datasets prepared for an AdditiveModel: per-event coefficients computed once, and the
small identity-keyed cache that lets the same array be passed again without recomputing.
"""

from __future__ import annotations

import hashlib
import weakref
from collections import OrderedDict

import numpy as np

__all__ = ["Dataset", "CoefficientCache", "data_key"]

class Dataset:
    """A dataset prepared for one AdditiveModel (per-event coefficient arrays computed once).

    Obtain it from :meth:`AdditiveModel.prepare` (or :meth:`AdditiveModel.toys`) and pass
    it wherever an ``X`` is accepted.  ``X, weight = dataset`` unpacks it.

    Attributes
    ----------
    X : (n, F) features (for toys: the distinct simulated events drawn)
    weight : (n,) or None; None = observed events (unit weights); for toys the
        number of times each event was drawn
    n_events : number of rows
    global_observables : (K,) or None
        The auxiliary measurements of the Gaussian-constrained nuisances (None = 0):
        their constraint terms are -(nu_k - a_k)^2 / 2.  Toys draw them from
        N(nu_true, 1), as a frequentist toy must.
    """

    def __init__(self, owner, coef, weight=None, rows=None, X=None, source_X=None,
                 global_observables=None):
        self._owner = owner
        self.global_observables = (None if global_observables is None
                                   else np.asarray(global_observables, dtype=np.float64))
        self._coef = coef
        self._rows = None if rows is None else np.ascontiguousarray(rows, dtype=np.int64)
        self.weight = None if weight is None else np.ascontiguousarray(weight, dtype=np.float64)
        self._X = X
        self._source_X = source_X

    @property
    def X(self):
        if self._X is None:
            self._X = self._source_X[self._rows]
        return self._X

    @property
    def n_events(self):
        return self._coef.shape[0] if self._rows is None else self._rows.shape[0]

    def __len__(self):
        return self.n_events

    def __iter__(self):
        return iter((self.X, self.weight))

    def __repr__(self):
        w = "observed" if self.weight is None else f"sum(weight)={self.weight.sum():.6g}"
        return f"Dataset(n_events={self.n_events}, {w})"

    def arrays(self, weight=None):
        """(coef, rows, weight) for the kernels (empty arrays = identity / unit weights)."""
        rows = _EMPTY_I if self._rows is None else self._rows
        w = self.weight if weight is None else np.ascontiguousarray(weight, dtype=np.float64)
        if w is None:
            w = _EMPTY_F
        elif w.shape[0] != self.n_events:
            raise ValueError(f"weight has {w.shape[0]} entries but the dataset has "
                             f"{self.n_events} events")
        return (self._coef, rows, w, self.global_observables)


_EMPTY_I = np.zeros(0, dtype=np.int64)
_EMPTY_F = np.zeros(0, dtype=np.float64)


class CoefficientCache:
    """The coefficient arrays of the last ``size`` arrays seen, recognised by identity
    (a weak reference), shape, dtype and a hash of a sample of rows."""

    def __init__(self, size=2):
        self.size = size
        self._entries = OrderedDict()

    @staticmethod
    def key(X):
        a = np.asarray(X)
        step = max(1, a.shape[0] // 256) if a.ndim else 1
        sample = np.ascontiguousarray(a[::step]) if a.ndim else a
        h = hashlib.blake2b(sample.tobytes(), digest_size=16)
        if a.ndim and a.shape[0]:
            h.update(np.ascontiguousarray(a[-1]).tobytes())
        return (id(X), a.shape, a.dtype.str, h.hexdigest())

    def get(self, X):
        """(coef, checked X) of a cached array, or None."""
        key = self.key(X)
        hit = self._entries.get(key)
        if hit is None or hit[0]() is not X:
            return None
        self._entries.move_to_end(key)
        return hit[1], hit[2]

    def put(self, X, coef, X_checked):
        try:
            ref = weakref.ref(X)
        except TypeError:
            return
        self._entries[self.key(X)] = (ref, coef, X_checked)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def clear(self):
        self._entries.clear()


def data_key(data):
    """Identity of a kernel data tuple: the (internal, never modified) coefficient array
    by id, rows / weights / global observables by content."""
    coef, rows, w = data[:3]
    aux = data[3] if len(data) > 3 else None
    h = hashlib.blake2b(digest_size=16)
    for a in (rows, w, aux):
        h.update(b"|" if a is None else np.ascontiguousarray(a).tobytes())
        h.update(b"/")
    return (id(coef), coef.shape, h.hexdigest())
