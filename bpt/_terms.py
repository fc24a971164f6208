"""Polynomial terms: the monomial basis m_A shared by every estimator.

A term is a tuple of parameter indices: ``(a,)`` is the linear term theta_a,
``(a, b)`` with ``a <= b`` the quadratic term theta_a * theta_b.  The default
order lists every linear term, then every quadratic term in lexicographic
order, e.g. for two parameters ``[(0,), (1,), (0, 0), (0, 1), (1, 1)]``.
"""

from __future__ import annotations

import itertools
import numbers

import numpy as np

__all__ = ["make_terms", "check_terms", "monomials", "monomial_jacobian",
           "default_base_points", "coefficients_from_derivatives", "term_name"]


def make_terms(n_parameters, order=2):
    """All terms up to ``order`` (1 or 2) for ``n_parameters`` parameters."""
    n_parameters = int(n_parameters)
    if n_parameters < 1:
        raise ValueError(f"n_parameters must be >= 1, got {n_parameters}")
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r}")
    terms = [(a,) for a in range(n_parameters)]
    if order == 2:
        terms += list(itertools.combinations_with_replacement(range(n_parameters), 2))
    return terms


def check_terms(terms, n_parameters, name="terms"):
    """Validate an explicit list of terms and return it as a list of tuples."""
    if terms is None or len(terms) == 0:
        raise ValueError(f"{name} must be a non-empty list of index tuples")
    out = []
    for t in terms:
        raw = tuple(t) if np.ndim(t) else (t,)
        if not all(isinstance(i, numbers.Integral) and not isinstance(i, bool) for i in raw):
            raise ValueError(f"{name}: term {raw!r} must hold integer parameter indices")
        t = tuple(int(i) for i in raw)
        if len(t) not in (1, 2):
            raise ValueError(f"{name}: term {t} must have one or two indices (order <= 2)")
        if any(i < 0 or i >= n_parameters for i in t):
            raise ValueError(f"{name}: term {t} refers to a parameter outside "
                             f"0..{n_parameters - 1}")
        if len(t) == 2 and t[0] > t[1]:
            t = (t[1], t[0])
        out.append(t)
    if len(set(out)) != len(out):
        raise ValueError(f"{name}: duplicate terms in {out}")
    return out


def term_name(term, names=None):
    """Human-readable name, e.g. ``theta0*theta1``."""
    names = names or {}
    parts = [names.get(i, f"theta{i}") if isinstance(names, dict) else names[i] for i in term]
    if len(parts) == 2 and parts[0] == parts[1]:
        return f"{parts[0]}^2"
    return "*".join(parts)


def _index_arrays(terms):
    a = np.array([t[0] for t in terms], dtype=np.int64)
    b = np.array([t[1] if len(t) == 2 else -1 for t in terms], dtype=np.int64)
    return a, b


def monomials(points, terms):
    """Evaluate m_A at ``points``: (P,) -> (n_terms,), (M, P) -> (M, n_terms)."""
    pts = np.asarray(points, dtype=np.float64)
    single = pts.ndim == 1
    pts = np.atleast_2d(pts)
    a, b = _index_arrays(terms)
    out = pts[:, a].copy()
    quad = b >= 0
    out[:, quad] *= pts[:, b[quad]]
    return out[0] if single else out


def monomial_jacobian(point, terms):
    """d m_A / d theta_p at one point: (n_terms, P)."""
    pt = np.asarray(point, dtype=np.float64)
    jac = np.zeros((len(terms), pt.shape[0]))
    for A, t in enumerate(terms):
        if len(t) == 1:
            jac[A, t[0]] = 1.0
        else:
            jac[A, t[0]] += pt[t[1]]
            jac[A, t[1]] += pt[t[0]]
    return jac


def default_base_points(n_parameters, terms):
    """Base points e_a, 2 e_a (a used by a term) and e_a + e_b (for each cross term)."""
    pts = []
    used = sorted({i for t in terms for i in t})
    for a in used:
        e = np.zeros(n_parameters)
        e[a] = 1.0
        pts.append(e)
        pts.append(2.0 * e)
    for t in terms:
        if len(t) == 2 and t[0] != t[1]:
            e = np.zeros(n_parameters)
            e[t[0]] = e[t[1]] = 1.0
            pts.append(e)
    return np.array(pts)


def coefficients_from_derivatives(w, w_a=None, w_ab=None, *, n_parameters=None, terms=None,
                                  order=None):
    """Convert generator derivative weights into the ``y`` layout of the BIT.

    The weight of an event is ``w(theta) = w + theta_a w_a + 1/2 theta_a theta_b w_ab``.
    Returns ``y`` of shape (N, 1 + n_terms): column 0 is the SM weight, then the
    coefficients c_A in term order: c_a = w_a, c_aa = w_aa / 2, c_ab = w_ab (a < b).

    Parameters
    ----------
    w : array (N,)
        SM weights.
    w_a : array (N, P) or dict {a: (N,)}
        First derivatives.
    w_ab : array (N, P, P), or dict {(a, b): (N,)}, optional
        Second derivatives (symmetric); missing entries count as zero.
    n_parameters : int, optional
        Number of parameters P (inferred from ``w_a`` when it is an array).
    terms, order : optional
        Which terms to output (default: every term of order 2 if ``w_ab`` is
        given, else order 1).
    """
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 1:
        raise ValueError(f"w must be 1-d (one SM weight per event), got shape {w.shape}")
    n = w.shape[0]
    if isinstance(w_a, dict):
        if n_parameters is None:
            n_parameters = max(w_a) + 1
        first = {int(k): np.asarray(v, dtype=np.float64) for k, v in w_a.items()}
    elif w_a is not None:
        arr = np.asarray(w_a, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.shape[0] != n:
            raise ValueError(f"w_a has {arr.shape[0]} rows but w has {n}")
        n_parameters = arr.shape[1] if n_parameters is None else n_parameters
        first = {a: arr[:, a] for a in range(arr.shape[1])}
    else:
        first = {}
    if n_parameters is None:
        raise ValueError("give w_a or n_parameters")
    second = {}
    if isinstance(w_ab, dict):
        for k, v in w_ab.items():
            a, b = sorted(int(i) for i in k)
            second[(a, b)] = np.asarray(v, dtype=np.float64)
    elif w_ab is not None:
        arr = np.asarray(w_ab, dtype=np.float64)
        if arr.shape != (n, n_parameters, n_parameters):
            raise ValueError(f"w_ab must have shape (N, P, P) = {(n, n_parameters, n_parameters)}, "
                             f"got {arr.shape}")
        for a in range(n_parameters):
            for b in range(a, n_parameters):
                second[(a, b)] = arr[:, a, b]
    if terms is None:
        terms = make_terms(n_parameters, order if order is not None else (2 if second else 1))
    else:
        terms = check_terms(terms, n_parameters)
    y = np.zeros((n, 1 + len(terms)))
    y[:, 0] = w
    for A, t in enumerate(terms):
        if len(t) == 1:
            col = first.get(t[0])
            scale = 1.0
        else:
            col = second.get(t)
            scale = 0.5 if t[0] == t[1] else 1.0
        if col is not None:
            if col.shape != (n,):
                raise ValueError(f"derivative for term {t} has shape {col.shape}, expected ({n},)")
            y[:, 1 + A] = scale * col
    return y
