"""Process and nuisance specifications, the coefficient layout and per-event coefficients.

The model of docs/math.md (section 3),

    dSigma(x|theta,nu) / dSigma(x|SM) = L(nu) sum_p alpha_p(nu) R_p(x|theta) S_p(x|nu) f_p(x),

is evaluated from one row of coefficients per event: for every process its R_A terms,
its merged systematics terms Delta_A and its fraction f_p.  ``build_layout`` decides the
columns (a :class:`Layout`) and ``coefficients`` fills them for features X.
"""

from __future__ import annotations

import numbers
from collections import OrderedDict

import numpy as np

from .._validation import check_features, check_finite

__all__ = ["Nuisance", "Process", "Layout", "build_layout", "check_fractions", "coefficients",
           "MAX_TOTAL_WEIGHT"]

# Event weights summing beyond this overflow q and its derivatives in float64 (q ~ sum w,
# its Hessian ~ sum w x coefficients^2): refused with a clear error.
MAX_TOTAL_WEIGHT = 1e30

_CONSTRAINTS = ("gaussian", None)


def _check_name(name, what):
    if not isinstance(name, str) or not name:
        raise ValueError(f"{what} name must be a non-empty string, got {name!r}")
    return name


class Nuisance:
    """A nuisance parameter.

    Parameters
    ----------
    name : str
    constraint : {"gaussian", None}, default="gaussian"
        "gaussian": a unit Gaussian auxiliary measurement, log C(nu)/C(0) = -nu^2/2
        (nu = +-1 is the one-sigma variation the systematics models were trained for).
        None: free-floating (no constraint term), e.g. a normalisation fitted from data.
    """

    def __init__(self, name, constraint="gaussian"):
        self.name = _check_name(name, "Nuisance")
        if constraint not in _CONSTRAINTS:
            raise ValueError(f"Nuisance {name!r}: constraint must be 'gaussian' or None, "
                             f"got {constraint!r}")
        self.constraint = constraint

    def __repr__(self):
        return f"Nuisance({self.name!r}, constraint={self.constraint!r})"


def _n_params(model, attr):
    n = getattr(model, attr, None)
    if n is None:
        n = 1 + max(i for t in model.terms_ for i in t)
    return int(n)


def _check_fitted_model(model, what, attr):
    if not hasattr(model, "predict"):
        raise ValueError(f"{what} must have a predict(X) method, got {type(model).__name__}")
    terms = getattr(model, "terms_", None)
    if terms is None:
        raise ValueError(f"{what} ({type(model).__name__}) is not fitted (no terms_); fit it "
                         "before building the model")
    terms = [tuple(int(i) for i in t) for t in terms]
    if not terms or any(len(t) not in (1, 2) for t in terms):
        raise ValueError(f"{what}: terms_ must be a non-empty list of 1- or 2-index tuples, got "
                         f"{terms}")
    return terms, _n_params(model, attr)


class Process:
    """One physics process and its simulation.

    Parameters
    ----------
    name : str
        Must match a class of the ``fractions`` classifier when there are several processes.
    X : array (N_p, F)
        SM simulation of this process (features as the trained models expect them).
    weight : array (N_p,)
        SM cross-section weights (sum = expected SM yield; negative weights are allowed
        for yields, see ``AdditiveModel.toys`` for pseudo-data).
    ratio : fitted BoostedInformationTree, or (model, [POI names]), optional
        theta dependence R_p(x|theta) = 1 + sum_A R_A(x) m_A(theta).  A bare model
        uses the model's parameters as the first POIs in order.  None: no theta dependence.
    systematics : list of (fitted BoostedParametricTree, [nuisance names]), optional
        Each model's parameters in order map to the named nuisances; S_p is the product
        of their exp(sum_A m_A(nu) Delta_A(x)).
    normalization : dict {nuisance name: kappa}, optional
        Normalisation factors (1 + kappa)^nu (log-normal; kappa > -1).  With a
        free-floating nuisance this is a free normalisation alpha = (1 + kappa)^nu.
    """

    def __init__(self, name, X, weight, ratio=None, systematics=(), normalization=None):
        self.name = _check_name(name, "Process")
        self.X = check_features(X, f"Process {name!r}: X")
        self.weight = check_finite(weight, f"Process {name!r}: weight", ndim=1,
                                   length=self.X.shape[0])
        total = float(np.sum(np.abs(self.weight)))
        if not total <= MAX_TOTAL_WEIGHT:
            raise ValueError(f"Process {name!r}: the sum of |weight| is {total:.6g}, beyond "
                             f"{MAX_TOTAL_WEIGHT:g}; weights of this magnitude overflow the "
                             "likelihood (check the weights' units)")
        if not self.weight.sum() > 0:
            raise ValueError(f"Process {name!r}: the sum of weights must be positive, got "
                             f"{self.weight.sum():.6g}")
        self.ratio = ratio
        self.systematics = list(systematics or ())
        self.normalization = dict(normalization or {})

    def __repr__(self):
        return (f"Process({self.name!r}, n_events={self.X.shape[0]}, "
                f"ratio={type(self.ratio).__name__ if self.ratio is not None else None}, "
                f"systematics={len(self.systematics)}, normalization={self.normalization})")



class Layout:
    """Columns of the per-event coefficient array.

    Process p owns the ratio columns ``[ratio_start[p], ratio_end[p])``, the merged
    systematics columns ``[syst_start[p], syst_end[p])`` and the fraction column
    ``fraction_column[p]`` (-1 with one process).  Column c multiplies the monomial
    z[term_a[c]] (term_b[c] = -1) or z[term_a[c]] z[term_b[c]] of z = (theta, nu).
    ``log_norm`` (n_proc, n_par): d log(normalisation of p) / dz (log-normal factors).

    Derived: ``grad_a`` / ``grad_b`` the parameters a column's first derivative
    involves (grad_b = -1: none), ``hess_a`` / ``hess_b`` / ``hess_value`` its constant
    second derivative d2 m / dz_a dz_b (hess_a = -1: none), ``active`` the columns that
    hold polynomial coefficients (not fractions).
    """

    def __init__(self, ratio_start, ratio_end, syst_start, syst_end, fraction_column, term_a,
                 term_b, log_norm):
        as_int = lambda a: np.asarray(a, dtype=np.int64)  # noqa: E731
        self.ratio_start = as_int(ratio_start)
        self.ratio_end = as_int(ratio_end)
        self.syst_start = as_int(syst_start)
        self.syst_end = as_int(syst_end)
        self.fraction_column = as_int(fraction_column)
        self.term_a = as_int(term_a)
        self.term_b = as_int(term_b)
        self.log_norm = np.ascontiguousarray(log_norm, dtype=np.float64)   # (n_proc, n_par)
        ta, tb = self.term_a, self.term_b
        quad = tb >= 0
        self.quad = quad
        self.square = quad & (ta == tb)
        self.cross = quad & (ta != tb)
        self.grad_a = ta.copy()
        self.grad_b = np.where(self.cross, tb, -1).astype(np.int64)
        active = np.zeros(ta.shape[0], dtype=bool)
        for p in range(self.ratio_start.shape[0]):
            active[self.ratio_start[p]:self.syst_end[p]] = True
        self.active = active
        self.hess_a = np.where(quad & active, ta, -1).astype(np.int64)
        self.hess_b = np.where(quad, tb, -1).astype(np.int64)
        self.hess_value = np.where(self.square, 2.0, np.where(self.cross, 1.0, 0.0))

    @property
    def n_columns(self):
        return self.term_a.shape[0]

    @property
    def n_processes(self):
        return self.ratio_start.shape[0]

    @property
    def blocks(self):
        """(ratio_start, ratio_end, syst_start, syst_end, fraction_column) for the kernels."""
        return (self.ratio_start, self.ratio_end, self.syst_start, self.syst_end,
                self.fraction_column)

    @property
    def hessian_map(self):
        """(hess_a, hess_b, hess_value) for the kernels."""
        return (self.hess_a, self.hess_b, self.hess_value)

    def columns_at(self, z):
        """Monomial values (C,) and transposed Jacobian JT (n_par, C) at z."""
        ta = np.maximum(self.term_a, 0)
        tb = np.where(self.quad, self.term_b, 0)
        za, zb = z[ta], z[tb]
        with np.errstate(over="ignore", invalid="ignore"):    # overflow: reported by q
            mv = np.where(self.quad, za * zb, za)
        ga = np.where(self.square, 2.0 * za, np.where(self.cross, zb, 1.0))
        gb = np.where(self.cross, za, 0.0)
        n_par = self.log_norm.shape[1]
        JT = np.zeros((n_par, self.n_columns))
        cols = np.arange(self.n_columns)
        m = self.active
        np.add.at(JT, (self.grad_a[m], cols[m]), ga[m])
        mc = m & self.cross
        np.add.at(JT, (self.grad_b[mc], cols[mc]), gb[mc])
        return np.ascontiguousarray(np.where(m, mv, 0.0)), JT

    def sub(self, p):
        """The layout of process p's simulation block: its R then S columns, no fraction."""
        lo, hi = int(self.ratio_start[p]), int(self.syst_end[p])
        n_ratio = int(self.ratio_end[p] - self.ratio_start[p])
        lay = Layout([0], [n_ratio], [n_ratio], [hi - lo], [-1], self.term_a[lo:hi],
                     self.term_b[lo:hi], self.log_norm[p:p + 1])
        return lay, lo, hi


def _check_kappa(kappa, what):
    if isinstance(kappa, bool) or not (isinstance(kappa, numbers.Real) and np.isfinite(kappa)
                                       and kappa > -1):
        raise ValueError(f"{what} must be a finite number > -1, got {kappa!r}")


def build_layout(processes, pois, nuisances, luminosity):
    """(Layout, sources) of the model: ``sources[p]`` = (ratio model or None,
    [(systematics model, [(its term index, merged column offset)])])."""
    P, K = len(pois), len(nuisances)
    nu_names = [n.name for n in nuisances]
    poi_index = {n: a for a, n in enumerate(pois)}
    nu_index = {n: k for k, n in enumerate(nu_names)}
    n_proc = len(processes)
    ratio_start, ratio_end, syst_start, syst_end, fraction_column = [], [], [], [], []
    term_a, term_b = [], []
    log_norm = np.zeros((n_proc, P + K))
    sources = []
    used = np.zeros(K, dtype=bool)
    col = 0
    for ip, proc in enumerate(processes):
        what = f"Process {proc.name!r}"
        # ---- ratio
        ratio_start.append(col)
        ratio, ratio_map = proc.ratio, None
        if isinstance(ratio, tuple):
            if len(ratio) != 2:
                raise ValueError(f"{what}: ratio must be a model or (model, [POI names])")
            ratio, rnames = ratio
            rnames = [rnames] if isinstance(rnames, str) else list(rnames)
            for n in rnames:
                if n not in poi_index:
                    raise ValueError(f"{what}: ratio mapped to unknown POI {n!r}; POIs are {pois}")
            ratio_map = [poi_index[n] for n in rnames]
        if ratio is not None:
            terms, n_par = _check_fitted_model(ratio, f"{what}: ratio", "n_parameters")
            if ratio_map is None:
                if n_par > P:
                    raise ValueError(f"{what}: the ratio model has {n_par} parameters but "
                                     f"the model has {P} POIs {pois}")
                ratio_map = list(range(n_par))
            elif len(ratio_map) != n_par:
                raise ValueError(f"{what}: the ratio model has {n_par} parameters but "
                                 f"{len(ratio_map)} POI names were given")
            for t in terms:
                g = sorted(ratio_map[i] for i in t)
                term_a.append(g[0])
                term_b.append(g[1] if len(g) == 2 else -1)
                col += 1
        ratio_end.append(col)
        # ---- systematics
        syst_start.append(col)
        merged = OrderedDict()
        syst_sources = []
        for s, entry in enumerate(proc.systematics):
            if not (isinstance(entry, (tuple, list)) and len(entry) == 2):
                raise ValueError(f"{what}: systematics entries must be (model, [nuisance "
                                 f"names]), got {entry!r}")
            model, snames = entry
            snames = [snames] if isinstance(snames, str) else list(snames)
            terms, n_par = _check_fitted_model(model, f"{what}: systematics[{s}]", "n_nuisances")
            if len(snames) != n_par:
                raise ValueError(f"{what}: systematics[{s}] has {n_par} nuisance "
                                 f"parameter(s) but {len(snames)} name(s) {snames} were given")
            if len(set(snames)) != len(snames):
                raise ValueError(f"{what}: systematics[{s}] names repeat: {snames}")
            for n in snames:
                if n not in nu_index:
                    raise ValueError(f"{what}: systematics[{s}] is mapped to unknown "
                                     f"nuisance {n!r}; nuisances are {nu_names}")
                used[nu_index[n]] = True
            pairs = []
            for j, t in enumerate(terms):
                g = tuple(sorted(P + nu_index[snames[i]] for i in t))
                if g not in merged:
                    merged[g] = len(merged)
                pairs.append((j, merged[g]))
            syst_sources.append((model, pairs))
        for g in merged:
            term_a.append(g[0])
            term_b.append(g[1] if len(g) == 2 else -1)
        col += len(merged)
        syst_end.append(col)
        # ---- normalisation
        for n, kappa in proc.normalization.items():
            if n not in nu_index:
                raise ValueError(f"{what}: normalization refers to unknown nuisance {n!r}; "
                                 f"nuisances are {nu_names}")
            _check_kappa(kappa, f"{what}: normalization kappa for {n!r}")
            log_norm[ip, P + nu_index[n]] += np.log1p(kappa)
            used[nu_index[n]] = True
        # ---- fraction
        if n_proc > 1:
            fraction_column.append(col)
            term_a.append(0)
            term_b.append(-1)
            col += 1
        else:
            fraction_column.append(-1)
        sources.append((ratio, syst_sources))
    if luminosity is not None:
        if not (isinstance(luminosity, (tuple, list)) and len(luminosity) == 2):
            raise ValueError(f"luminosity must be (nuisance name, kappa), got {luminosity!r}")
        n, kappa = luminosity
        if n not in nu_index:
            raise ValueError(f"luminosity refers to unknown nuisance {n!r}; nuisances are "
                             f"{nu_names}")
        _check_kappa(kappa, "luminosity kappa")
        log_norm[:, P + nu_index[n]] += np.log1p(kappa)
        used[nu_index[n]] = True
    if K and not used.all():
        unused = [nu_names[k] for k in np.flatnonzero(~used)]
        raise ValueError(f"nuisance(s) {unused} are not used by any process, normalization "
                         "or the luminosity")
    layout = Layout(ratio_start, ratio_end, syst_start, syst_end, fraction_column, term_a,
                    term_b, log_norm)
    return layout, sources


def check_fractions(fractions, process_names):
    """The column of each process in ``fractions.predict_proba`` (None with one process)."""
    if fractions is None:
        if len(process_names) > 1:
            raise ValueError(f"with {len(process_names)} processes a fitted classifier "
                             "`fractions` (predict_proba, classes_ = process names) is required")
        return None
    if not hasattr(fractions, "predict_proba"):
        raise ValueError("fractions must have a predict_proba method")
    classes = getattr(fractions, "classes_", None)
    if classes is None:
        raise ValueError("fractions is not fitted (no classes_)")
    classes = [str(c) for c in classes]
    if sorted(classes) != sorted(process_names):
        raise ValueError(f"the classifier's classes_ {classes} do not match the process names "
                         f"{process_names}")
    return np.array([classes.index(n) for n in process_names], dtype=np.int64)


def predict_fractions(fractions, class_index, X):
    """f_p(x) (n, n_proc) in process order, normalised to sum 1 per event."""
    n, n_proc = X.shape[0], class_index.shape[0]
    proba = np.asarray(fractions.predict_proba(X), dtype=np.float64)
    if proba.shape != (n, n_proc):
        raise ValueError(f"fractions.predict_proba returned shape {proba.shape}, expected "
                         f"{(n, n_proc)}")
    proba = proba[:, class_index]
    if not np.all(np.isfinite(proba)) or np.any(proba < -1e-12):
        raise ValueError("fractions.predict_proba returned negative or non-finite values")
    proba = np.maximum(proba, 0.0)
    tot = proba.sum(axis=1, keepdims=True)
    if np.any(tot <= 0):
        raise ValueError("fractions.predict_proba returned rows that sum to 0")
    return proba / tot


def coefficients(layout, sources, process_names, fractions, class_index, X):
    """Per-event coefficient rows (N, C) of ``layout`` for features X."""
    n = X.shape[0]
    out = np.zeros((n, layout.n_columns))
    proba = None
    if len(process_names) > 1:
        proba = predict_fractions(fractions, class_index, X)
    for ip, (ratio, systs) in enumerate(sources):
        name = process_names[ip]
        lo, hi = layout.ratio_start[ip], layout.ratio_end[ip]
        if ratio is not None:
            out[:, lo:hi] = _predict(ratio, X, int(hi - lo), f"{name!r} ratio")
        for s, (model, pairs) in enumerate(systs):
            D = _predict(model, X, len(pairs), f"{name!r} systematics[{s}]")
            for j, dst in pairs:
                out[:, layout.syst_start[ip] + dst] += D[:, j]
        if layout.fraction_column[ip] >= 0:
            out[:, layout.fraction_column[ip]] = proba[:, ip]
    return out


def process_block(layout, sources, ip, name, X):
    """Coefficient rows (N, C_p) of process ``ip``'s own columns (its R then merged S
    columns, the layout of ``layout.sub(ip)``) for features X."""
    lo, hi = int(layout.ratio_start[ip]), int(layout.syst_end[ip])
    out = np.zeros((X.shape[0], hi - lo))
    ratio, systs = sources[ip]
    n_ratio = int(layout.ratio_end[ip]) - lo
    if ratio is not None:
        out[:, :n_ratio] = _predict(ratio, X, n_ratio, f"{name!r} ratio")
    s0 = int(layout.syst_start[ip]) - lo
    for s, (model, pairs) in enumerate(systs):
        D = _predict(model, X, len(pairs), f"{name!r} systematics[{s}]")
        for j, dst in pairs:
            out[:, s0 + dst] += D[:, j]
    return out


def check_spec(processes, pois, nuisances):
    """Validated (processes, pois, nuisances) of a channel (shared by every channel type)."""
    processes = list(processes)
    if not processes:
        raise ValueError("give at least one Process")
    for p in processes:
        if not isinstance(p, Process):
            raise ValueError(f"processes must be Process objects, got {type(p).__name__}")
    names = [p.name for p in processes]
    if len(set(names)) != len(names):
        raise ValueError(f"process names must be unique, got {names}")
    if isinstance(pois, str):
        pois = [pois]
    pois = [_check_name(n, "POI") for n in pois]
    if not pois or len(set(pois)) != len(pois):
        raise ValueError(f"pois must be a non-empty list of unique names, got {pois}")
    return processes, pois, as_nuisances(nuisances or [])


def as_nuisances(nuisances):
    """A list of Nuisance objects from Nuisance objects or names (a name: a Gaussian one)."""
    nus = [Nuisance(n) if isinstance(n, str) else n for n in nuisances]
    for n in nus:
        if not isinstance(n, Nuisance):
            raise ValueError(f"nuisances must be Nuisance objects or names, got {n!r}")
    return nus


def check_nuisance_names(pois, nus):
    nu_names = [n.name for n in nus]
    if len(set(nu_names)) != len(nu_names):
        raise ValueError(f"nuisance names must be unique, got {nu_names}")
    clash = set(nu_names) & set(pois)
    if clash:
        raise ValueError(f"names used both as POI and nuisance: {sorted(clash)}")


def _predict(model, X, n_cols, what):
    out = np.asarray(model.predict(X), dtype=np.float64)
    if out.ndim == 1 and n_cols == 1:
        out = out[:, None]
    if out.shape != (X.shape[0], n_cols):
        raise ValueError(f"{what}.predict returned shape {out.shape}, expected "
                         f"{(X.shape[0], n_cols)} (one column per term of terms_)")
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{what}.predict returned non-finite values")
    return out
