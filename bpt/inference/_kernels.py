"""Numba kernels: one pass over events gives q's data or yield term and its derivatives.

Layout (see ``_likelihood.Layout``): every event is one row of a C-contiguous float64
coefficient array.  Process p owns the columns ``[rs[p], re[p])`` (BIT coefficients
R_A, polynomial in theta), then ``[ss[p], se[p])`` (merged BPT coefficients Delta_A,
exponentiated polynomial in nu), then optionally the column ``fc[p]`` (its SM fraction
f_p; -1 = 1).  Per evaluation point z = (theta, nu) the caller passes the monomial
values ``mv[c]`` = m_c(z), the Jacobian ``J[c, k]`` = d m_c / d z_k and
``logc[p]``, ``dlogc[p]`` = log(L(nu) alpha_p(nu)) and its gradient.

Per event i the kernel computes, for every process,

    R_p = 1 + sum_c x_c mv_c,   g_p = logc_p + sum_c x_c mv_c,
    e_p = f_p exp(g_p),         T_p = e_p R_p,            r = sum_p T_p

and accumulates with s_i = w_i / r_i (``log_mode``: the data term sum_i w_i log r_i)
or s_i = w_i (the yield sum_i w_i r_i):

* the value;
* U_c = sum_i s_i e_p x_c (R columns), sum_i s_i T_p x_c (systematics columns) and
  V_p = sum_i s_i T_p: the gradient is J^T U + dlogc^T V (assembled by the caller),
  because every term of dr/dz is linear in the event's coefficients;
* (order 2) the parts of the Hessian that are not linear in the coefficients:
  sum_i s_i [e_p (gR gS' + gS gR') + T_p gS gS'] - [log_mode] w_i dr dr' / r^2, with
  gR = dR_p/dz, gS = dg_p/dz; the linear part sum_c U_c d2m_c/dz2 is added by the caller.

Events with w = 0 are skipped; in ``log_mode`` events with r <= 0 or a non-finite r
are counted (and skipped), never accumulated.  Events are processed in fixed chunks
whose partial sums the caller adds in a fixed order, so results do not depend on the
number of threads (no fast-math: IEEE arithmetic, the same sums in every run).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .._engine._runtime import numba_threads

__all__ = ["CHUNK", "accumulate"]

CHUNK = 2048
MIN_PARALLEL_CHUNKS = 16      # run in parallel from 16 chunks (32768 events) on


@numba.njit(cache=True, nogil=True)
def _chunk(lo, hi, coef, rows, weight, log_mode, order, n_pois,
           rs, re, ss, se, fc, logc, dlogc, mv, J, out, bad):
    # Inner loops index with unsigned integers: numba then emits no negative-index
    # wraparound code, which lets LLVM vectorise them (about 2x faster).
    u0 = np.uint64(0)
    n_par = np.uint64(dlogc.shape[1])
    n_proc = np.uint64(rs.shape[0])
    n_col = np.uint64(mv.shape[0])
    P = np.uint64(n_pois)
    use_rows = rows.shape[0] > 0
    use_weight = weight.shape[0] > 0
    e = np.empty(n_proc)
    T = np.empty(n_proc)
    gR = np.zeros(n_par)
    gS = np.zeros(n_par)
    dr = np.zeros(n_par)
    val = 0.0
    U = np.zeros(n_col)
    V = np.zeros(n_proc)
    H = np.zeros((n_par, n_par))
    n_bad = 0
    first_bad = -1
    for i in range(lo, hi):
        w = 1.0
        if use_weight:
            w = weight[i]
            if w == 0.0:
                continue
        row = np.uint64(rows[i]) if use_rows else np.uint64(i)
        x = coef[row]
        r = 0.0
        for p in range(n_proc):
            R = 1.0
            for c in range(np.uint64(rs[p]), np.uint64(re[p])):
                R += x[c] * mv[c]
            g = logc[p]
            for c in range(np.uint64(ss[p]), np.uint64(se[p])):
                g += x[c] * mv[c]
            f = 1.0
            if fc[p] >= 0:
                f = x[np.uint64(fc[p])]
            ep = f * math.exp(g)
            e[p] = ep
            T[p] = ep * R
            r += ep * R
        if log_mode:
            if not (r > 0.0) or r == math.inf:
                n_bad += 1
                if first_bad < 0:
                    first_bad = i
                continue
            val += w * math.log(r)
            s = w / r
        else:
            val += w * r
            s = w
        if order == 0:
            continue
        for p in range(n_proc):
            se_ = s * e[p]
            st = s * T[p]
            for c in range(np.uint64(rs[p]), np.uint64(re[p])):
                U[c] += se_ * x[c]
            for c in range(np.uint64(ss[p]), np.uint64(se[p])):
                U[c] += st * x[c]
            V[p] += st
        if order == 1:
            continue
        # ---- order 2: per-process gradient vectors and the non-linear Hessian parts
        for a in range(n_par):
            dr[a] = 0.0
        for p in range(n_proc):
            for a in range(P, n_par):
                gS[a] = dlogc[p, a]
            for c in range(np.uint64(ss[p]), np.uint64(se[p])):
                xc = x[c]
                for a in range(P, n_par):
                    gS[a] += xc * J[c, a]
            ep = e[p]
            tp = T[p]
            st = s * tp
            for a in range(P, n_par):
                dr[a] += tp * gS[a]
                ca = st * gS[a]
                for b in range(a, n_par):
                    H[a, b] += ca * gS[b]
            if re[p] > rs[p]:
                for a in range(u0, P):
                    gR[a] = 0.0
                for c in range(np.uint64(rs[p]), np.uint64(re[p])):
                    xc = x[c]
                    for a in range(u0, P):
                        gR[a] += xc * J[c, a]
                se_ = s * ep
                for a in range(u0, P):
                    dr[a] += ep * gR[a]
                    ca = se_ * gR[a]
                    for b in range(P, n_par):
                        H[a, b] += ca * gS[b]
        if log_mode:
            c2 = s / r
            for a in range(n_par):
                ca = c2 * dr[a]
                for b in range(a, n_par):
                    H[a, b] -= ca * dr[b]
    out[0] = val
    k = 1
    for c in range(n_col):
        out[k] = U[c]
        k += 1
    for p in range(n_proc):
        out[k] = V[p]
        k += 1
    for a in range(n_par):
        for b in range(n_par):
            out[k] = H[a, b]
            k += 1
    bad[0] = n_bad
    bad[1] = first_bad


@numba.njit(cache=True, nogil=True, parallel=True)
def _run_parallel(n, coef, rows, weight, log_mode, order, hstride, n_pois, rs, re, ss, se, fc,
                  logc, dlogc, mv, J, out, bad):
    n_chunks = out.shape[0]
    for k in numba.prange(n_chunks):
        lo = k * CHUNK
        hi = min(n, lo + CHUNK)
        o = order if (order < 2 or k % hstride == 0) else 1
        _chunk(lo, hi, coef, rows, weight, log_mode, o, n_pois, rs, re, ss, se, fc, logc,
               dlogc, mv, J, out[k], bad[k])


@numba.njit(cache=True, nogil=True)
def _run_serial(n, coef, rows, weight, log_mode, order, hstride, n_pois, rs, re, ss, se, fc,
                logc, dlogc, mv, J, out, bad):
    n_chunks = out.shape[0]
    for k in range(n_chunks):
        lo = k * CHUNK
        hi = min(n, lo + CHUNK)
        o = order if (order < 2 or k % hstride == 0) else 1
        _chunk(lo, hi, coef, rows, weight, log_mode, o, n_pois, rs, re, ss, se, fc, logc,
               dlogc, mv, J, out[k], bad[k])


def accumulate(coef, rows, weight, log_mode, order, n_pois, blocks, logc, dlogc, mv, JT, Hm,
               parallel=True, hess_sample=None):
    """Sum over events: (value, grad (n_par,), hess (n_par, n_par), n_bad, first_bad).

    ``rows`` / ``weight``: int64 / float64 arrays, empty = identity / unit weights.
    ``blocks`` = (rs, re, ss, se, fc) int64 arrays; ``Hm`` = (ha, hb, hv) the constant
    second derivatives of the monomials (ha = -1: none).
    ``hess_sample``: if given and there are more events, the part of the Hessian that is
    not linear in the coefficients (the costly one) is estimated from every k-th chunk
    (at least ``hess_sample`` events) and scaled up; value and gradient stay exact.
    """
    n_par = dlogc.shape[1]
    n_proc = dlogc.shape[0]
    n_col = mv.shape[0]
    n = rows.shape[0] if rows.shape[0] > 0 else coef.shape[0]
    n_chunks = max(1, -(-n // CHUNK))
    out = np.zeros((n_chunks, 1 + n_col + n_proc + n_par * n_par))
    bad = np.zeros((n_chunks, 2), dtype=np.int64)
    hstride = 1
    if order >= 2 and hess_sample is not None and n > hess_sample:
        hstride = max(1, n_chunks // max(1, -(-int(hess_sample) // CHUNK)))
    args = (n, coef, rows, weight, bool(log_mode), int(order), hstride, int(n_pois), *blocks,
            logc, dlogc, mv, np.ascontiguousarray(JT.T), out, bad)
    # small datasets run serially: a parallel region costs more than it saves there, and
    # far more on a shared, oversubscribed machine (chunk sums are the same either way)
    if parallel and n_chunks >= MIN_PARALLEL_CHUNKS:
        # hand out 4 chunks at a time instead of one static block per thread: robust to
        # threads that run slower (shared machines)
        # numba_threads(None): takes the process-wide lock when the threading layer is not
        # thread-safe (workqueue), so fits from several threads cannot abort the process
        with numba_threads(None), numba.parallel_chunksize(4):
            _run_parallel(*args)
    else:
        _run_serial(*args)
    if hstride > 1:
        sampled = np.arange(0, n_chunks, hstride)
        n_sampled = int(np.minimum(CHUNK, n - sampled * CHUNK).sum())
        out[:, 1 + n_col + n_proc:] *= n / n_sampled
    tot = out.sum(axis=0)
    val = float(tot[0])
    U = tot[1:1 + n_col]
    V = tot[1 + n_col:1 + n_col + n_proc]
    grad = JT @ U + V @ dlogc
    hess = tot[1 + n_col + n_proc:].reshape(n_par, n_par)
    hess = np.triu(hess) + np.triu(hess, 1).T
    if order >= 2:
        ha, hb, hv = Hm
        m = ha >= 0
        if m.any():
            contrib = U[m] * hv[m]
            np.add.at(hess, (ha[m], hb[m]), contrib)
            off = ha[m] != hb[m]
            np.add.at(hess, (hb[m][off], ha[m][off]), contrib[off])
    n_bad = int(bad[:, 0].sum())
    first = -1
    if n_bad:
        firsts = bad[:, 1]
        first = int(firsts[firsts >= 0].min())
    return val, grad, hess, n_bad, first
