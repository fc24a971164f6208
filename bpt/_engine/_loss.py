"""Losses: the only part of the engine that differs between BIT and BPT.

Every loss sees a node through one float64 vector ``stats`` accumulated by the
histogram kernels: K weighted sums, then C event counts.

* BIT (``KIND_BIT``): one row of ``Y`` per event, ``Y[i] = (c0, U c_1..)``
  (Cholesky-transformed coefficients), C = 1.  Node score ``|S'|^2 / S0``
  (docs/math.md section 1), larger is better.
* BPT (``KIND_BPT``): event i of class k (0 = nominal) adds its weight to
  ``sums[k]`` and 1 to ``counts[k]``.  Node score = minus the summed cross
  entropy of docs/math.md section 2 with ``g = P log(lambda_k / lambda_0)``.

``node_score`` returns ``-inf`` for a node that may not exist (too few events,
non-positive weight sums).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ._vmath import exp_into, log1p_into

KIND_BIT = 0
KIND_BPT = 1

_NEG_INF = -np.inf
# kernels called only from compiled code: compiled without their CPython and C wrappers
# (less to compile); calling one from Python crashes the interpreter
_INTERNAL = dict(cache=True, no_cpython_wrapper=True, no_cfunc_wrapper=True)


@njit(cache=True, inline="always")
def _softplus(x):
    if x > 0.0:
        return x + math.log1p(math.exp(-x))
    return math.log1p(math.exp(x))


@njit(cache=True)
def node_score(kind, stats, K, P, min_samples, min_weight, scratch, lam, ridge_a, ridge_e,
               ridge_b):
    """Score of a node (higher is better); -inf if the node is not allowed.

    ``stats`` holds the K weighted sums, then the C event counts.  ``scratch`` is
    a float64 work array of length >= 2 K (no allocation here).  ``lam`` is the L2
    penalty in the (scaled) weight units of ``stats``; see docs/concepts.md
    "Regularisation".  BIT: ``|S'|^2 / (S0 + lam)``.  BPT with ``lam > 0``: minus the
    node cross entropy plus ``lam / 2 |Delta|^2`` at the ridge leaf value
    ``Delta = (V^T V + mu I)^-1 V^T ell``, ``mu = lam / h``, computed through the
    eigen-decomposition ``V^T V = Q diag(e) Q^T`` given as ``ridge_a = Q^T V^T``,
    ``ridge_e = e``, ``ridge_b = V Q``.

    ``kind`` is a run-time value here (both scores are compiled); the grower calls
    :func:`score_bit` / :func:`score_bpt` directly, chosen when it is compiled.
    """
    if kind == KIND_BIT:
        return score_bit(stats, K, min_samples, min_weight, lam)
    return score_bpt(stats, K, P, min_samples, min_weight, scratch, lam, ridge_a, ridge_e,
                     ridge_b)


@njit(**_INTERNAL)
def score_bit(stats, K, min_samples, min_weight, lam):
    """BIT node score ``|S'|^2 / (S0 + lam)`` (see :func:`node_score`)."""
    if stats[K] < min_samples:
        return _NEG_INF
    s0 = stats[0]
    if not (s0 > 0.0) or s0 < min_weight:
        return _NEG_INF
    acc = 0.0
    for a in range(1, K):
        acc += stats[a] * stats[a]
    if lam > 0.0:
        return acc / (s0 + lam)
    return acc / s0


@njit(**_INTERNAL)
def score_bpt(stats, K, P, min_samples, min_weight, scratch, lam, ridge_a, ridge_e, ridge_b):
    """BPT node score: minus the node cross entropy (see :func:`node_score`);
    K = C = number of classes (nominal first)."""
    for c in range(K):
        if stats[K + c] < min_samples or not (stats[c] > 0.0) or stats[c] < min_weight:
            return _NEG_INF
    lam0 = stats[0]
    n = K - 1
    log0 = math.log(lam0)
    for m in range(n):
        scratch[m] = math.log(stats[m + 1]) - log0
    loss = 0.0
    if lam > 0.0:
        h = 0.0
        for k in range(n):
            h += lam0 * stats[k + 1] / (lam0 + stats[k + 1])
        mu = lam * n / h
        T = ridge_e.shape[0]
        pen = 0.0
        for j in range(T):
            acc = 0.0
            for m in range(n):
                acc += ridge_a[j, m] * scratch[m]
            zj = acc / (ridge_e[j] + mu)
            scratch[n + j] = zj
            pen += zj * zj
        for k in range(n):
            g = 0.0
            for j in range(T):
                g += ridge_b[k, j] * scratch[n + j]
            loss += _cross_entropy_term(lam0, stats[k + 1], g)
        return -(loss + 0.5 * lam * pen)
    for k in range(n):
        g = 0.0
        for m in range(n):
            g += P[k, m] * scratch[m]
        loss += _cross_entropy_term(lam0, stats[k + 1], g)
    return -loss


@njit(cache=True, inline="always")
def _cross_entropy_term(lam0, lamk, g):
    """lam0 softplus(g) + lamk softplus(-g), written as (lam0 + lamk) softplus(g) - lamk g
    (softplus(-g) = softplus(g) - g): one exponential and one logarithm instead of two
    of each."""
    return (lam0 + lamk) * _softplus(g) - lamk * g


@njit(parallel=True, cache=True)
def update_bit(Y, rows, leaf_of, upd, eta):
    """c'_iA -= eta * c_i0 * upd[leaf, A] for every row (transformed space)."""
    n_terms = upd.shape[1]
    for ii in prange(rows.shape[0]):
        i = rows[ii]
        c0 = Y[i, 0]
        u = upd[leaf_of[ii]]
        for a in range(n_terms):
            Y[i, a + 1] -= eta * c0 * u[a]


@njit(parallel=True, cache=True)
def add_leaf_log_ratio(g_nom, g_own, e_nom, e_own, nom_index, cls, rows, leaf_of, upd, fac,
                       ifac, eta):
    """Add eta * (the leaf's fitted log ratios) to the BPT boosting state.

    Nominal event i: g_nom[nom_index[i], :] (all base points); event of base point
    k >= 1: g_own[i] (its own base point only).  The exponentials e_nom = exp(g_nom)
    and e_own = exp(-g_own) of constant leaves are carried along by the leaf factors
    ``fac = exp(eta upd)`` and ``ifac = exp(-eta upd)`` (one product per value instead
    of one exponential per value in :func:`bpt_model_loss`); linear leaves use
    ``add_linear_log_ratio`` (bpt/_engine/_linear.py) instead.
    """
    # the body stays in the loop: a function call per row is not inlined by LLVM here
    # and costs more run time than it saves compile time
    n = upd.shape[1]
    for ii in prange(rows.shape[0]):
        i = rows[ii]
        k = cls[i]
        lf = leaf_of[ii]
        u = upd[lf]
        if k == 0:
            j = nom_index[i]
            for m in range(n):
                g_nom[j, m] += eta * u[m]
            for m in range(n):
                e_nom[j, m] *= fac[lf, m]
        else:
            g_own[i] += eta * u[k - 1]
            e_own[i] *= ifac[lf, k - 1]


class BITLoss:
    """Quadratic (Fisher-information) loss of the Boosted Information Tree.

    ``lam``: L2 penalty on the leaf value (transformed space), in the units of the
    scaled SM weights: leaf ``S' / (S0 + lam)``, score ``|S'|^2 / (S0 + lam)``.
    """

    kind = KIND_BIT
    onehot = False

    def __init__(self, U, lam=0.0):
        self.U = np.asarray(U, dtype=np.float64)          # M = U^T U
        self.U_inv = np.linalg.inv(self.U)
        self.n_terms = self.U.shape[0]
        self.n_sums = self.n_terms + 1
        self.n_counts = 1
        self.P = np.zeros((1, 1))
        self.lam = float(lam)
        self.ridge_a = np.zeros((1, 1))
        self.ridge_e = np.zeros(1)
        self.ridge_b = np.zeros((1, 1))

    def leaf(self, sums):
        """(value stored in the tree, vector used for the boosting update)."""
        value, upd = self.leaf_values(np.asarray(sums, dtype=np.float64)[None, :])
        return value[0], upd[0]

    def leaf_values(self, sums):
        """Per node (rows of ``sums``, (m, K)): the stored values (m, n_terms) and the
        boosting update vectors (m, n_terms) in the transformed space."""
        s0 = sums[:, 0] + self.lam if self.lam > 0 else sums[:, 0]
        delta_t = sums[:, 1:] / s0[:, None]                 # transformed space
        return delta_t @ self.U_inv.T, delta_t

    # boosting state: the working targets data.Y are the residuals c' - c0 F'
    def start(self, data):
        self.weight_ = float(data.Y[:, 0].sum(dtype=np.float64))
        self.loss_ = 0.0

    def finish_leaves(self, data, tree):
        """Constant leaves: nothing to add after growth."""

    def update(self, data, tree, eta):
        update_bit(data.Y, tree.update_rows, tree.leaf_of, tree.leaf_update, eta)

    def end_tree(self, data, tree, eta):
        """Training loss after the tree: a leaf with sums (S0, S') and update u lowers the
        loss by 2 eta u.S' - eta^2 S0 |u|^2 (eta (2 - eta) |S'|^2 / S0 for u = S'/S0)."""
        s, u = tree.leaf_sums, tree.leaf_update
        drop = 2.0 * eta * np.sum(u * s[:, 1:]) - eta * eta * np.sum(s[:, 0] * np.sum(u * u, 1))
        self.loss_ -= drop / self.weight_
        return self.loss_

    def model_loss(self, C, F):
        return bit_model_loss(C, F, self.U.T @ self.U)


class BPTLoss:
    """Cross-entropy loss of the Boosted Parametric Tree with closed-form leaves.

    ``lam``: L2 penalty ``lam / 2 |Delta|^2`` on the leaf value, in the units of the
    scaled weights; the leaf is the ridge form of the closed form (docs/concepts.md
    "Regularisation").

    ``sample_sizes``: None, or the effective number of events of each sample (nominal
    first, length n_base_points + 1) when the samples are independent simulations.
    None fits each node's log yield ratios ``ell_k = log(lambda_k / lambda_0)`` by
    ordinary least squares (the nominal yield taken as exact: right when the samples
    are the same events reweighted or with varied features, whose common fluctuation
    cancels in the ratios).  Given, the fit is generalised least squares with the
    covariance of independent samples, ``C = diag(1 / n_k) + 1 1^T / n_0`` (the
    nominal's fluctuation is shared by every ratio), with each node assumed to hold the
    samples in the proportions of the whole sample: ``Delta = (V^T W V)^-1 V^T W ell``,
    ``W = C^-1`` normalised to a mean diagonal of 1 (docs/math.md section 2).  Either
    way the leaf is one fixed linear map of ``ell`` (``H``; the compiled split search
    sees ``P = V H``).
    """

    kind = KIND_BPT
    onehot = True

    def __init__(self, V, lam=0.0, sample_sizes=None, linear=0.0):
        V = np.asarray(V, dtype=np.float64)                 # (n_base_points, n_terms)
        self.V = V
        VW = V.T @ ls_metric(V.shape[0], sample_sizes)      # (n_terms, n_base_points)
        G = VW @ V
        self.H = np.linalg.solve(G, VW)                     # (V^T W V)^-1 V^T W
        self.P = V @ self.H                                 # projection onto col(V)
        self.n_terms = V.shape[1]
        self.n_sums = V.shape[0] + 1
        self.n_counts = V.shape[0] + 1
        self.lam = float(lam)
        e, Q = np.linalg.eigh(G)
        self.Q = Q
        self.ridge_a = np.ascontiguousarray(Q.T @ VW)      # (n_terms, n_base_points)
        self.ridge_e = np.ascontiguousarray(e)
        self.ridge_b = np.ascontiguousarray(V @ Q)         # (n_base_points, n_terms)
        # weight alpha of the linear leaves (_linear.py); 0: constant leaves
        self.linear = float(linear)

    def leaf(self, sums):
        value, upd = self.leaf_values(np.asarray(sums, dtype=np.float64)[None, :])
        return value[0], upd[0]

    def leaf_values(self, sums):
        """Per node (rows of ``sums``): Delta (m, n_terms) and V Delta (m, n_base_points)."""
        ell = np.log(sums[:, 1:] / sums[:, :1])
        if self.lam > 0:
            lam0, lamk = sums[:, :1], sums[:, 1:]
            h = np.mean(lam0 * lamk / (lam0 + lamk), axis=1)
            mu = self.lam / h
            z = (ell @ self.ridge_a.T) / (self.ridge_e[None, :] + mu[:, None])
            delta = z @ self.Q.T
        else:
            delta = ell @ self.H.T
        return delta, delta @ self.V.T

    # boosting state: fitted log ratios g_nom (nominal events x base points) and g_own
    # (each other event at its own base point); data.Y[:, 0] = w_i exp(-g_own[i])
    def start(self, data):
        self.w0_ = data.Y[:, 0].copy()
        self.nom_index_, n_nom = _nominal_index(data.cls)
        self.g_nom_ = np.zeros((n_nom, self.V.shape[0]))
        self.g_own_ = np.zeros(data.Y.shape[0])
        if self.linear > 0:
            # linear leaves change g per event: the exponentials are not carried
            self.e_nom_, self.e_own_ = NO_EXPONENTIALS
            self.x_rows_ = data.feature_rows()
            from ._linear import reference_rows, reference_values
            self.scale_, self.ref_ = reference_values(
                data.X[self.x_rows_[reference_rows(self.x_rows_.shape[0])]])
        else:
            self.e_nom_ = np.ones((n_nom, self.V.shape[0]))     # exp(g_nom)
            self.e_own_ = np.ones(data.Y.shape[0])              # exp(-g_own)
            self.x_rows_ = None
        self._lin = None
        self.weight_ = self._total_weight(self.w0_, data.cls)

    def finish_leaves(self, data, tree):
        """With ``linear`` > 0: make the leaves of a grown tree linear in x (in place)."""
        self._lin = None
        if self.linear > 0 and tree.left.shape[0] > 1:
            from ._linear import fit_linear_bpt
            self._lin = fit_linear_bpt(data.X, self.x_rows_, data.cls, data.Y[:, 0],
                                       tree.leaf_of, tree, self.H, self.V, self.linear,
                                       self.scale_, self.ref_)

    def _total_weight(self, w, cls):
        n = self.V.shape[0]
        return float(n * w[cls == 0].sum() + w[cls > 0].sum())

    def update(self, data, tree, eta):
        add_tree_log_ratio(self.g_nom_, self.g_own_, self.e_nom_, self.e_own_,
                           self.nom_index_, data.cls, tree.update_rows, tree.leaf_of,
                           tree.leaf_update, eta, self.linear > 0, data.X, self.x_rows_,
                           self._lin)

    def end_tree(self, data, tree, eta):
        """Reweight the base-point events and return the cross entropy per unit weight."""
        w_cur = data.Y[:, 0]
        loss = bpt_model_loss(self.w0_, data.cls, self.g_nom_, self.g_own_, self.e_nom_,
                              self.e_own_, self.nom_index_, w_cur)
        return loss / self.weight_

    def model_loss(self, w, cls, delta):
        """Cross entropy per unit weight of predictions ``delta`` (N, n_terms)."""
        G = np.ascontiguousarray(delta @ self.V.T)
        own = G[np.arange(len(cls)), np.maximum(cls - 1, 0)]
        nom_index, _ = _nominal_index(cls)
        g_nom = np.ascontiguousarray(G[cls == 0])
        loss = bpt_model_loss(w, cls, g_nom, np.ascontiguousarray(own), *NO_EXPONENTIALS,
                              nom_index, np.empty(0))
        return loss / self._total_weight(w, cls)


# the (e_nom, e_own) arguments of bpt_model_loss when the exponentials are not carried
# (linear leaves, validation and scoring)
NO_EXPONENTIALS = (np.empty((0, 0)), np.empty(0))


def add_tree_log_ratio(g_nom, g_own, e_nom, e_own, nom_index, cls, rows, leaf_of, upd, eta,
                       linear=False, X=None, xrows=None, lin=None):
    """Add eta * (a tree's log ratios) to the BPT boosting state of ``rows``: constant
    leaves through :func:`add_leaf_log_ratio` (with the carried exponentials), a model
    with linear leaves (``linear``; ``lin`` = the tree's linear parts from
    ``solve_linear_bpt``, None: every leaf constant) through the one-pass
    ``add_linear_log_ratio``, so that a fit compiles one of the two kernels."""
    if not linear:
        fac, ifac = leaf_factors(upd, eta)
        add_leaf_log_ratio(g_nom, g_own, e_nom, e_own, nom_index, cls, rows, leaf_of, upd,
                           fac, ifac, eta)
        return
    from ._linear import add_linear_log_ratio, constant_leaves
    if lin is None:
        lin = constant_leaves(upd.shape[0], upd.shape[1])
    add_linear_log_ratio(g_nom, g_own, nom_index, cls, X, xrows, rows, leaf_of, upd, *lin,
                         eta)


def leaf_factors(upd, eta):
    """exp(eta upd) and exp(-eta upd) per leaf and base point (see add_leaf_log_ratio)."""
    return np.exp(eta * upd), np.exp(-eta * upd)


def ls_metric(n, sample_sizes=None):
    """The metric W (n x n) of the BPT's least-squares leaf (see :class:`BPTLoss`): the
    identity, or for independent samples of effective sizes ``sample_sizes`` (nominal
    first) ``C^-1 = diag(s) - s s^T / (s_0 + sum s)`` with ``s`` the base points' sizes,
    scaled to a mean diagonal of 1 (Sherman-Morrison inverse of
    ``C = diag(1 / s) + 1 1^T / s_0``)."""
    if sample_sizes is None:
        return np.eye(n)
    sizes = np.asarray(sample_sizes, dtype=np.float64)
    if sizes.shape != (n + 1,) or not np.all(np.isfinite(sizes)) or not np.all(sizes > 0):
        raise ValueError(f"sample_sizes must be {n + 1} positive numbers (nominal first), "
                         f"got {sample_sizes!r}")
    s = sizes[1:]
    W = np.diag(s) - np.outer(s, s) / sizes.sum()
    return W / np.mean(np.diag(W))


def effective_sizes(w, cls, n_classes):
    """Kish effective number of events (sum w)^2 / sum w^2 of each class 0..n_classes-1."""
    sw = np.bincount(cls, weights=w, minlength=n_classes)
    return sw * sw / np.bincount(cls, weights=w * w, minlength=n_classes)


def _nominal_index(cls):
    """Row -> index among the nominal rows (int32; -1 for other rows), and their number."""
    nominal = cls == 0
    idx = np.full(cls.shape[0], -1, dtype=np.int32)
    idx[nominal] = np.arange(int(nominal.sum()), dtype=np.int32)
    return idx, int(nominal.sum())



# --- model losses (training curves, validation, score) -------------------------------

# rows per chunk of the model-loss sum: partial sums over fixed chunks, added in chunk
# order, so that the result does not depend on the threads or their scheduling (a
# prange scalar reduction would, under the work-stealing tbb layer)
_LOSS_CHUNK = 1 << 14


@njit(**_INTERNAL)
def _model_loss_chunk_direct(w, cls, g_nom, g_own, nom_index, w_current, i0, i1):
    """Rows i0..i1-1 of :func:`bpt_model_loss` without carried exponentials, summed in
    row order: every exponential, then every logarithm of the chunk first, each in one
    SIMD loop (bpt/_engine/_vmath.py; one call each: every call site is compiled
    again), then the sum.  Nominal row: sum_m softplus(g_m) = sum_m max(g_m, 0) +
    log(prod_m (1 + e_m)), e_m = exp(-|g_m|) (one logarithm per event); other row:
    softplus(-g) = max(-g, 0) + log1p(exp(-|g|)) and the boosting weight w exp(-g)
    (inf beyond g < -709)."""
    n = g_nom.shape[1]
    m = i1 - i0
    write = w_current.shape[0] > 0
    # the chunk's nominal rows hold consecutive nominal indices j0..j1-1
    j0 = -1
    j1 = -1
    for i in range(i0, i1):
        if cls[i] == 0:
            if j0 < 0:
                j0 = nom_index[i]
            j1 = nom_index[i] + 1
    nj = j1 - j0 if j0 >= 0 else 0
    # exponents: -|g| per row, -g per row (the weights), -|g_m| per nominal row and m
    a = np.empty(2 * m + nj * n)
    for ii in range(m):
        g = g_own[i0 + ii]
        a[ii] = -abs(g)
        a[m + ii] = -g
    for r in range(nj):
        for mm in range(n):
            a[2 * m + r * n + mm] = -abs(g_nom[j0 + r, mm])
    e = np.empty(2 * m + nj * n)
    exp_into(a, e, 2 * m + nj * n)
    # log1p arguments: exp(-|g|) per row, then q = prod_m (1 + e_m) - 1 per nominal row
    # (accumulated as q += e_m (1 + q): positive terms)
    y = a                                   # reused: its values are no longer needed
    for ii in range(m):
        y[ii] = e[ii]
    s = np.empty(nj)
    for r in range(nj):
        sr = 0.0
        qr = 0.0
        for mm in range(n):
            g = g_nom[j0 + r, mm]
            sr += 0.5 * (g + abs(g))
            qr += e[2 * m + r * n + mm] * (1.0 + qr)
        s[r] = sr
        y[m + r] = qr
    lg = np.empty(m + nj)
    log1p_into(y, lg, m + nj)
    acc = 0.0
    for i in range(i0, i1):
        ii = i - i0
        if cls[i] == 0:
            r = nom_index[i] - j0
            acc += w[i] * (s[r] + lg[m + r])
            if write:
                w_current[i] = w[i]
        else:
            g = g_own[i]
            acc += w[i] * (lg[ii] + 0.5 * (abs(g) - g))
            if write:
                w_current[i] = w[i] * e[m + ii]
    return acc


@njit(**_INTERNAL)
def _model_loss_chunk(w, cls, g_nom, g_own, e_nom, e_own, nom_index, w_current, i0, i1):
    """Rows i0..i1-1 of :func:`bpt_model_loss` with carried exponentials, summed in row
    order; a value whose carried exponential overflowed falls back to the direct form."""
    n = g_nom.shape[1]
    write = w_current.shape[0] > 0
    acc = 0.0
    for i in range(i0, i1):
        k = cls[i]
        if k == 0:
            j = nom_index[i]
            # sum_m softplus(g_m) = log(prod_m (1 + E_m)), E_m = exp(g_m) carried:
            # q = prod - 1 accumulated as q += E (1 + q) (positive terms: a few ulp
            # relative), one logarithm; the form below if it overflows
            q = 0.0
            for m in range(n):
                q += e_nom[j, m] * (1.0 + q)
            if q < math.inf:
                acc += w[i] * math.log1p(q)
                if write:
                    w_current[i] = w[i]
                continue
            # sum_m softplus(g_m) = sum_m max(g_m, 0) + log(prod_m (1 + e_m)) with
            # e_m = exp(-|g_m|) <= 1: one logarithm per event instead of one per base
            # point (q < 2^n: no overflow)
            s = 0.0
            q = 0.0
            for m in range(n):
                g = g_nom[j, m]
                a = abs(g)
                s += 0.5 * (g + a)
                q += math.exp(-a) * (1.0 + q)
            acc += w[i] * (s + math.log1p(q))
            if write:
                w_current[i] = w[i]
        else:
            # softplus(-g) = log1p(exp(-g)) with exp(-g) carried; the boosting weight
            # w exp(-g) without an exponential
            e = e_own[i]
            if e < math.inf:
                acc += w[i] * math.log1p(e)
                if write:
                    w_current[i] = w[i] * e
                continue
            # softplus(-g) = max(-g, 0) + log1p(e) with e = exp(-|g|), and the weight
            # w exp(-g) (inf beyond g < -709, as the carried form; not w / e, which
            # divides by zero beyond -745)
            g = g_own[i]
            a = abs(g)
            e = math.exp(-a)
            acc += w[i] * (math.log1p(e) + 0.5 * (a - g))
            if write:
                w_current[i] = w[i] * e if g > 0.0 else w[i] * math.exp(a)
    return acc


def bpt_model_loss(w, cls, g_nom, g_own, e_nom, e_own, nom_index, w_current):
    """Cross entropy of the model on weighted events; refreshes w_current if given.

    Returns sum_i w_i * [sum_k softplus(g_k(x_i)) if nominal else softplus(-g_k_i(x_i))]
    and sets w_current[i] = w_i exp(-g_k_i(x_i)) for non-nominal events (the boosting
    weights; nominal weights are unchanged).  ``e_nom`` / ``e_own``: the carried
    exp(g_nom) / exp(-g_own) of :func:`add_leaf_log_ratio`, or empty (NO_EXPONENTIALS:
    computed here, in SIMD loops).  Deterministic: the same sum on any number of threads.
    Two parallel kernels, one per form: a fit with linear leaves (the default) compiles
    only the direct one.
    """
    if e_own.shape[0] > 0:
        return _model_loss_carried(w, cls, g_nom, g_own, e_nom, e_own, nom_index, w_current)
    return _model_loss_direct(w, cls, g_nom, g_own, nom_index, w_current)


@njit(parallel=True, cache=True)
def _model_loss_carried(w, cls, g_nom, g_own, e_nom, e_own, nom_index, w_current):
    """:func:`bpt_model_loss` with carried exponentials."""
    N = w.shape[0]
    n_chunks = (N + _LOSS_CHUNK - 1) // _LOSS_CHUNK
    partial = np.empty(n_chunks)      # not np.zeros: a parallel loop of its own
    for c in prange(n_chunks):
        i1 = (c + 1) * _LOSS_CHUNK
        partial[c] = _model_loss_chunk(w, cls, g_nom, g_own, e_nom, e_own, nom_index,
                                       w_current, c * _LOSS_CHUNK, i1 if i1 < N else N)
    loss = 0.0
    for c in range(n_chunks):
        loss += partial[c]
    return loss


@njit(parallel=True, cache=True)
def _model_loss_direct(w, cls, g_nom, g_own, nom_index, w_current):
    """:func:`bpt_model_loss` without carried exponentials."""
    N = w.shape[0]
    n_chunks = (N + _LOSS_CHUNK - 1) // _LOSS_CHUNK
    partial = np.empty(n_chunks)
    for c in prange(n_chunks):
        i1 = (c + 1) * _LOSS_CHUNK
        partial[c] = _model_loss_chunk_direct(w, cls, g_nom, g_own, nom_index, w_current,
                                              c * _LOSS_CHUNK, i1 if i1 < N else N)
    loss = 0.0
    for c in range(n_chunks):
        loss += partial[c]
    return loss


def bit_model_loss(C, F, M):
    """Quadratic loss of docs/math.md section 1 minus its model-independent part, per SM weight.

    ``C``: (N, 1 + T) coefficients (c0 first), ``F``: (N, T) predicted R_A,
    ``M``: (T, T).  Returns sum_i [c0 F^T M F - 2 c^T M F] / sum_i c0, which is
    zero for F = 0 and decreases as the model improves.
    """
    FM = F @ M
    c0 = C[:, 0]
    num = np.einsum("i,ij,ij->", c0, FM, F) - 2.0 * np.einsum("ij,ij->", C[:, 1:], FM)
    return float(num / c0.sum())
