"""BIT and BPT trained on a dask.distributed cluster (``pip install bpt[dask]``).

:class:`DaskBoostedInformationTree` and :class:`DaskBoostedParametricTree` take the
parameters of :class:`bpt.BoostedInformationTree` / :class:`bpt.BoostedParametricTree`
and fit on dask arrays or dask DataFrames partitioned by rows.  The rows stay on the
workers that hold them; per tree only histograms (workers -> client) and split decisions
and leaf updates (client -> workers) travel:

* binning: the client draws the same seeded subsample of global row indices as the
  in-memory binner and fetches only those rows (at most 200 000 rows x n_features float64,
  once per fit) to compute the quantile edges; the workers bin their own rows;
* growth, level by level: each worker builds the histograms of its rows for the nodes of
  a level with the engine's compiled kernel (of two siblings only the smaller; the larger
  is the parent minus it), the client sums them in a fixed order, finds each node's split
  once with the engine's split finder and sends the decisions; the workers partition
  their rows locally.  The tree (features, thresholds, node order, leaf values) is the
  in-memory grower's, up to the round-off of summing histograms per worker;
* leaf values on the client, the boosting update (BIT target update, BPT reweighting and
  loss) on the workers.

The workers' state (bin codes, working targets) lives in each worker's process for the
duration of ``fit``, outside dask's data store; a worker lost during ``fit`` aborts the
fit with a RuntimeError naming it (no model is returned).  dask is imported only when a
fit or a dask prediction runs.  Usage, what travels in bytes and fault handling:
docs/dask.md; the mathematics: docs/math.md.
"""

from __future__ import annotations

import pickle
import threading
import time
import uuid

import numba
import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._base import EARLY_STOPPING_MIN_ROWS, WEIGHT_FLOOR, _verbose_logging, weight_scale
from ._bit import BoostedInformationTree, _transform_targets
from ._bpt import BoostedParametricTree, _row_hashes, _shared_counts, _unique_rows
from ._engine._binning import BinMapper
from ._engine._grower import GrownTree, partition_binned
from ._engine._histogram import build_histogram, node_stats
from ._engine._linear import (combine_moments, leaf_moments, path_features, reference_rows,
                              reference_values, solve_linear_bpt)
from ._engine._loss import (NO_EXPONENTIALS, BITLoss, BPTLoss, _nominal_index,
                            add_tree_log_ratio, bpt_model_loss, update_bit)
from ._engine._predictor import TreeEnsemble
from ._engine._runtime import lock_released, numba_threads
from ._engine._splitting import find_split_hist
from ._validation import check_features, check_finite, check_sample_weight
from ._warnings import warn_user

__all__ = ["DaskBoostedInformationTree", "DaskBoostedParametricTree"]

# seconds between checks that the workers holding the training rows are alive
_POLL = 0.5


def _dask_modules():
    try:
        import dask
        import dask.array as da
        import distributed
    except ImportError as exc:
        raise ImportError("bpt.dask needs dask and distributed: pip install 'bpt[dask]' "
                          f"({exc})") from None
    return dask, da, distributed


def _is_dask_collection(a):
    return type(a).__module__.split(".")[0] in ("dask", "dask_expr") and hasattr(
        a, "__dask_graph__")


# =================================================================== worker side
# The rows of one worker ("shard") live in this registry of the worker's process, keyed
# by (fit token, shard index), from the first setup task of a fit to its end.  They are
# not dask results: dask never copies, spills or recomputes them, so a task that would
# run on another worker (or after a restart) finds no state and fails loudly.
_SHARDS = {}
_SHARDS_LOCK = threading.Lock()


class _Shard:
    """The training rows of one worker and their boosting state."""

    def __init__(self, kind, n_jobs):
        self.kind = kind              # "bit" or "bpt"
        self.n_jobs = n_jobs          # numba threads of its kernels
        self.step = 0                 # tasks run so far (checked by every task)
        self.X = None                 # the row blocks (until binned)
        self.y = None                 # BIT: checked coefficient blocks (until transformed)
        self.w = None                 # BPT: weights (until transformed)
        self.nu = None                # BPT: base-point blocks (until classified)
        self.n = 0
        self.cls = None
        self.Xb = None
        self.Y = None
        self.rows = None
        self.ranges = None


def _shard(key, step):
    """The shard of ``key`` on this worker, checked to be at ``step``."""
    with _SHARDS_LOCK:
        sh = _SHARDS.get(key)
    if sh is None:
        raise RuntimeError(f"bpt.dask: the training rows of shard {key[1]} are not on this "
                           "worker (the worker that held them was lost or restarted); the "
                           "fit cannot continue")
    if sh.step != step:
        raise RuntimeError(f"bpt.dask: shard {key[1]} is at step {sh.step}, expected {step} "
                           "(its state was rebuilt or a task ran twice); the fit cannot "
                           "continue")
    sh.step += 1
    return sh


def _chunk_error(exc, name, offset, n):
    return ValueError(f"{exc} (in the dask block of {name} holding rows {offset}.."
                      f"{offset + n - 1})")


def _w_create(key, kind, n_jobs, offsets, X_blocks, t_blocks, w_blocks, spec):
    """Check this worker's blocks, register the shard; return totals for the client."""
    sh = _Shard(kind, n_jobs)
    Xs, ts, ws = [], [], []
    pre = spec.get("prefix", "")
    tname = pre + ("y" if kind == "bit" else "nu")
    # eval_set X is float64, as in memory; training X keeps float32
    xdtype = np.float64 if pre else (np.float64, np.float32)
    for j, Xc in enumerate(X_blocks):
        off = offsets[j]
        n = Xc.shape[0]
        try:
            # eval_set X: no NaN, as the in-memory fit's eval_set check
            Xc = check_features(Xc, pre + "X", n_features=spec["n_features"], dtype=xdtype,
                                allow_nan=not pre)
        except ValueError as exc:
            raise _chunk_error(exc, pre + "X", off, n) from None
        wc = None if w_blocks is None else w_blocks[j]
        try:
            if wc is not None:
                wc = check_sample_weight(np.asarray(wc), n, pre + "sample_weight")
            if kind == "bit":
                tc = spec["checker"]._check_y(np.asarray(t_blocks[j]), n, spec["n_terms"], wc,
                                              name=tname)
            else:
                tc = spec["checker"]._check_nu(np.asarray(t_blocks[j]), n, name=tname)
        except ValueError as exc:
            raise _chunk_error(exc, tname, off, n) from None
        Xs.append(Xc)
        ts.append(tc)
        ws.append(wc)
    sh.n = int(sum(x.shape[0] for x in Xs))
    sh.X = Xs
    sh.offsets = list(offsets)
    out = {"n": sh.n}
    if kind == "bit":
        sh.y = ts
        out["total"] = float(sum(t[:, 0].sum() for t in ts))
    else:
        sh.nu = ts
        sh.w = [np.ones(x.shape[0]) if w is None else w for x, w in zip(Xs, ws)]
        out["points"] = _unique_rows(np.concatenate(ts))[0]
    with _SHARDS_LOCK:
        _SHARDS[key] = sh
    return out


def _w_classes(key, step, points):
    """BPT: class of every row (0 = nominal, k = base point k); counts and weight sums."""
    sh = _shard(key, step)
    cls = []
    for nu in sh.nu:
        match = np.all(nu[:, None, :] == points[None, :, :], axis=2)
        cls.append(match.argmax(axis=1).astype(np.int64))
    sh.cls = np.concatenate(cls)
    sh.nu = None
    w = np.concatenate(sh.w)
    sh.w = w
    m = points.shape[0]
    return (np.bincount(sh.cls, minlength=m), np.bincount(sh.cls, weights=w, minlength=m),
            float(np.abs(w).sum()), np.bincount(sh.cls, weights=w * w, minlength=m))


def _w_nominal_hashes(key, step):
    """BPT, samples="auto": row hashes of this shard (kept) and those of its nominal rows
    (every row is tested here, not a subsample as in memory: the shards' rows differ)."""
    sh = _shard(key, step)
    sh.row_hashes = np.concatenate([_row_hashes(Xc) for Xc in sh.X]) if sh.X else \
        np.zeros(0, dtype=np.uint64)
    return sh.row_hashes[sh.cls == 0]


def _w_shared_counts(key, step, nominal_hashes, n_classes):
    """Per base point: this shard's rows and those repeating a nominal row's features."""
    sh = _shard(key, step)
    h, sh.row_hashes = sh.row_hashes, None
    return _shared_counts(h, sh.cls, nominal_hashes, n_classes)


def _w_take(key, step, local_rows):
    """The float64 rows ``local_rows`` of this shard (the binning subsample)."""
    sh = _shard(key, step)
    out = np.empty((local_rows.shape[0], sh.X[0].shape[1]))
    off = 0
    for Xc in sh.X:
        sel = (local_rows >= off) & (local_rows < off + Xc.shape[0])
        out[sel] = Xc[local_rows[sel] - off]
        off += Xc.shape[0]
    return out


def _w_bin(key, step, edges, n_bins, mcode, max_bins, keep_rows=False):
    """Map this shard's rows to bin codes (feature-major uint8); drop the float rows
    (``keep_rows``: keep them as one array, for the BPT's linear leaves)."""
    sh = _shard(key, step)
    mapper = BinMapper(max_bins)
    mapper.edges_, mapper.n_bins_, mapper.missing_code_ = edges, n_bins, mcode
    F = edges.shape[0]
    Xb = np.empty((F, sh.n), dtype=np.uint8)
    off = 0
    with numba_threads(sh.n_jobs):
        for Xc in sh.X:
            Xb[:, off:off + Xc.shape[0]] = mapper.transform(Xc)
            off += Xc.shape[0]
    sh.Xb = Xb
    if keep_rows:
        sh.Xraw = (np.ascontiguousarray(np.concatenate(sh.X)) if len(sh.X) > 1
                   else np.ascontiguousarray(sh.X[0]))
    sh.X = None
    return None


def _w_targets(key, step, U, scale, linear=False):
    """The working targets: BIT scale * (c0, U c), BPT scale * w; partial sums."""
    sh = _shard(key, step)
    if sh.kind == "bit":
        Y = np.empty((sh.n, sh.y[0].shape[1]))
        off = 0
        for yc in sh.y:
            Y[off:off + yc.shape[0]] = _transform_targets(yc, U, scale=scale)
            off += yc.shape[0]
        sh.y = None
        sh.Y = Y
        return float(np.abs(Y[:, 0]).sum()), float(Y[:, 0].sum())
    sh.Y = (sh.w * scale).reshape(-1, 1)
    sh.w = None
    sh.w0 = sh.Y[:, 0].copy()
    sh.nom_index, n_nom = _nominal_index(sh.cls)
    sh.n_points = int(U)
    sh.g_nom = np.zeros((n_nom, sh.n_points))
    sh.g_own = np.zeros(sh.n)
    sh.linear = bool(linear)
    # the training rows of Xraw (all of them) for the linear-leaf kernels
    sh.xrows = np.arange(sh.n, dtype=np.int64) if linear else None
    if linear:                                      # not carried, as in memory
        sh.e_nom, sh.e_own = NO_EXPONENTIALS
    else:
        sh.e_nom = np.ones((n_nom, sh.n_points))    # exp(g_nom), carried as in memory
        sh.e_own = np.ones(sh.n)                    # exp(-g_own)
    w0 = sh.w0
    return (float(np.abs(w0).sum()),
            float(sh.n_points * w0[sh.cls == 0].sum() + w0[sh.cls > 0].sum()))


def _w_step(key, step, msg):
    """One round trip of growth: apply ``splits``; optionally finish the previous tree
    (update, loss) and start a new one (root stats); build the histograms ``builds``."""
    t0 = time.perf_counter()
    sh = _shard(key, step)
    onehot = sh.kind == "bpt"
    cls = sh.cls if onehot else None
    K, C = msg["K"], msg["C"]
    out = {}
    with numba_threads(sh.n_jobs):
        nthreads = numba.get_num_threads()
        for nid, f, b, ml, lid, rid in msg.get("splits", ()):
            a, z = sh.ranges[nid]
            nl = partition_binned(sh.rows, a, z, sh.Xb[f], b, ml, msg["mcode"], sh.buf,
                                  nthreads)
            sh.ranges[lid] = (a, a + nl)
            sh.ranges[rid] = (a + nl, z)
        if "moments" in msg:
            # linear leaves: the moments of this shard's rows in every leaf
            leaves, feats, scale, ref = msg["moments"]
            leaf_row = np.empty(sh.n, dtype=np.int64)
            for k, t in enumerate(leaves):
                a, z = sh.ranges[t]
                leaf_row[sh.rows[a:z]] = k
            out["moments"] = leaf_moments(sh.Xraw, sh.xrows, sh.cls, sh.Y[:, 0], leaf_row,
                                          feats, scale, ref, sh.n_points + 1)
        fin = msg.get("finish")
        if fin is not None:
            leaves, upd, eta, lin = fin
            leaf_of = np.empty(sh.n, dtype=np.int64)
            for k, t in enumerate(leaves):
                a, z = sh.ranges[t]
                leaf_of[a:z] = k
            if onehot:
                add_tree_log_ratio(sh.g_nom, sh.g_own, sh.e_nom, sh.e_own, sh.nom_index,
                                   sh.cls, sh.rows, leaf_of, upd, eta, sh.linear, sh.Xraw,
                                   sh.xrows, lin)
                out["loss"] = bpt_model_loss(sh.w0, sh.cls, sh.g_nom, sh.g_own, sh.e_nom,
                                             sh.e_own, sh.nom_index, sh.Y[:, 0])
            else:
                update_bit(sh.Y, sh.rows, leaf_of, upd, eta)
        identity = False
        if msg.get("root"):
            sh.rows = np.arange(sh.n, dtype=np.int64)
            if sh.ranges is None:
                sh.buf = np.empty(sh.n, dtype=np.int64)
            sh.ranges = {0: (0, sh.n)}
            identity = True
            out["stats"] = node_stats(sh.rows, 0, sh.n, sh.Y, cls, onehot, K, C)
        builds = msg.get("builds", ())
        if builds:
            F = sh.Xb.shape[0]
            hist = np.zeros((len(builds), F, msg["mcode"] + 1, K + C))
            order = np.empty(1)
            for j, nid in enumerate(builds):
                a, z = sh.ranges[nid]
                build_histogram(sh.Xb, sh.rows, a, z, sh.Y, cls, onehot, K, hist[j], order,
                                identity and nid == 0, nthreads)
            out["hist"] = hist
    out["seconds"] = time.perf_counter() - t0
    return out


def _w_val_init(key, step, arg):
    """Validation rows (eval_set): BIT ``arg`` = None: returns the SM weight sum; BPT
    ``arg`` = (nominal + base points, V): classes, then counts and weight sums."""
    sh = _shard(key, step)
    sh.Xv = np.ascontiguousarray(np.concatenate(sh.X))
    sh.X = None
    if sh.kind == "bit":
        sh.C = np.concatenate(sh.y)
        sh.y = None
        sh.F = np.zeros((sh.n, sh.C.shape[1] - 1))
        return float(sh.C[:, 0].sum())
    points, V = arg
    sh.V = V
    cls = []
    for nu, start in zip(sh.nu, sh.offsets):
        match = np.all(nu[:, None, :] == points[None, :, :], axis=2)
        if not match.any(axis=1).all():
            bad = int(np.flatnonzero(~match.any(axis=1))[0])
            raise ValueError(f"eval_set nu row {start + bad} = {nu[bad].tolist()} is not one "
                             f"of the fitted base points (nominal or "
                             f"{points[1:].tolist()})")
        cls.append(match.argmax(axis=1).astype(np.int64))
    sh.cls = np.concatenate(cls)
    sh.nu = None
    sh.w = np.concatenate(sh.w)
    sh.F = np.zeros((sh.n, V.shape[1]))
    m = points.shape[0]
    return (np.bincount(sh.cls, minlength=m),
            np.bincount(sh.cls, weights=sh.w, minlength=m))


def _w_val_tree(key, step, arrays, M):
    """Add one tree to the validation predictions; partial sums of the loss."""
    t0 = time.perf_counter()
    sh = _shard(key, step)
    with numba_threads(sh.n_jobs):
        TreeEnsemble.from_arrays(arrays).predict(sh.Xv, 0, 1, out=sh.F)
        if sh.kind == "bit":
            C, F = sh.C, sh.F
            FM = F @ M
            num = (np.einsum("i,ij,ij->", C[:, 0], FM, F)
                   - 2.0 * np.einsum("ij,ij->", C[:, 1:], FM))
            res = (float(num), float(C[:, 0].sum()))
        else:
            cls, w = sh.cls, sh.w
            G = np.ascontiguousarray(sh.F @ sh.V.T)
            own = np.ascontiguousarray(G[np.arange(sh.n), np.maximum(cls - 1, 0)])
            nom_index, _ = _nominal_index(cls)
            g_nom = np.ascontiguousarray(G[cls == 0])
            loss = bpt_model_loss(w, cls, g_nom, own, *NO_EXPONENTIALS, nom_index,
                                  np.empty(0))
            total = sh.V.shape[0] * w[cls == 0].sum() + w[cls > 0].sum()
            res = (float(loss), float(total))
    return {"partial": res, "seconds": time.perf_counter() - t0}


def _w_drop_token(token):
    """Remove every shard of the fit ``token`` from this worker's process."""
    with _SHARDS_LOCK:
        for key in [k for k in _SHARDS if k[0] == token]:
            del _SHARDS[key]


def _predict_block(block, est, method, args):
    return getattr(est, method)(block, *args)


# =================================================================== client side
class _Cluster:
    """The fit's shards: which worker holds which rows; round trips with a watchdog."""

    def __init__(self, client, distributed):
        self.client = client
        self.distributed = distributed
        self.token = uuid.uuid4().hex
        self.workers = []          # address of shard j
        self.keys = []
        self.step = []
        self.sent = 0              # bytes of messages sent (pickled)
        self.received = 0          # bytes of results received (array nbytes)
        self.round_trips = 0
        self.worker_seconds = 0.0  # per round trip the slowest worker's compute time

    def submit_all(self, fn, args_of, count=True):
        """``fn(key, step, *args_of(j))`` on every shard's worker; results in shard order."""
        futures = []
        for j, addr in enumerate(self.workers):
            args = args_of(j)
            if count:
                self.sent += len(pickle.dumps(args, protocol=5))
            futures.append(self.client.submit(fn, self.keys[j], self.step[j], *args,
                                              workers=[addr], allow_other_workers=False,
                                              pure=False, retries=0))
            self.step[j] += 1
        res = self.gather(futures)
        self.round_trips += 1
        if count:
            self.received += sum(_nbytes(r) for r in res)
            self.worker_seconds += max((r.get("seconds", 0.0) for r in res
                                        if isinstance(r, dict)), default=0.0)
        return res

    def gather(self, futures):
        distributed = self.distributed
        # in-process workers run their kernels under the lock this thread may hold
        with lock_released():
            while True:
                try:
                    distributed.wait(futures, timeout=_POLL)
                    break
                except Exception as exc:  # noqa: BLE001 - TimeoutError differs by version
                    if "Timeout" not in type(exc).__name__:
                        raise
                    self.check_alive(futures)
            return self.client.gather(futures)

    def check_alive(self, futures):
        alive = self.alive()
        if alive is None:           # the scheduler did not answer: ask again later
            return
        lost = [a for a in self.workers if a not in alive]
        if lost:
            for f in futures:
                f.cancel()
            raise RuntimeError(
                f"bpt.dask: worker(s) {lost} holding training rows were lost during the "
                "fit; their boosting state is gone, so the fit is aborted (no model is "
                "returned, nothing partial is kept). Fit again on the remaining workers.")

    def alive(self):
        """Addresses of the scheduler's workers, asked now; None if it did not answer
        (``Client.scheduler_info`` would return a cached list, possibly without workers)."""
        try:
            info = self.client.sync(self.client.scheduler.identity, n_workers=-1)
        except TypeError:           # older distributed: identity() lists every worker
            try:
                info = self.client.sync(self.client.scheduler.identity)
            except OSError:
                return None
        except OSError:
            return None
        return set(info["workers"])

    def drop(self):
        """Free the shards on the workers that are still alive (``client.run``: runs at
        once, outside the task graph)."""
        try:
            alive = self.alive()
            addrs = sorted({a for a in self.workers if alive is None or a in alive})
            if addrs:
                with lock_released():
                    self.client.run(_w_drop_token, self.token, workers=addrs)
        except Exception:  # noqa: BLE001 - best effort cleanup (client closing)
            pass


def _nbytes(obj):
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, dict):
        return sum(_nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes(v) for v in obj)
    if obj is None:
        return 0
    return 8


def _rows_array(a, name, da, row_chunks=None, ndim=(1, 2)):
    """``a`` as a dask array chunked by rows only (one chunk along the columns), and its
    column names (dask DataFrame).  numpy input is chunked like ``row_chunks``."""
    names = None
    if _is_dask_collection(a) and hasattr(a, "to_dask_array"):      # DataFrame / Series
        if hasattr(a, "columns"):
            names = [str(c) for c in a.columns]
        a = a.to_dask_array(lengths=True)
    elif not _is_dask_collection(a):
        arr = np.asarray(a)
        if arr.ndim == 0:
            raise ValueError(f"{name} must be an array, got a scalar")
        chunks = (row_chunks,) + arr.shape[1:] if row_chunks is not None else (
            ("auto",) + arr.shape[1:])
        a = da.from_array(arr, chunks=chunks)
    elif not hasattr(a, "chunks"):
        raise ValueError(f"{name} must be a dask array or dask DataFrame, got "
                         f"{type(a).__name__}")
    if a.ndim not in ndim:
        raise ValueError(f"{name} must be {' or '.join(f'{d}-d' for d in ndim)}, got shape "
                         f"{a.shape}")
    if any(np.isnan(c) for c in a.chunks[0]):
        a = a.compute_chunk_sizes()
    if a.ndim == 2 and len(a.chunks[1]) > 1:
        a = a.rechunk({1: -1})
    return a, names


def _block_futures(arr, dask, distributed):
    keys = list(dask.core.flatten(arr.__dask_keys__()))
    futs = {f.key: f for f in distributed.futures_of(arr)}
    return [futs[k] for k in keys]


class _DaskMixin:
    """fit on a dask.distributed cluster, predict on dask arrays, ``to_local``."""

    _local_class = None

    # ---------------------------------------------------------------- checks
    def _check_dask_support(self, eval_set, groups=None):
        unsupported = []
        if self.split != "hist":
            unsupported.append(f"split={self.split!r} (only 'hist')")
        if self.max_leaf_nodes is not None:
            unsupported.append(f"max_leaf_nodes={self.max_leaf_nodes!r} (best-first growth; "
                               "use max_depth)")
        if self.subsample != 1.0:
            unsupported.append(f"subsample={self.subsample!r} (only 1.0)")
        if self.max_features != 1.0:
            unsupported.append(f"max_features={self.max_features!r} (only 1.0)")
        if groups is not None:
            unsupported.append("groups")
        if getattr(self, "target_dtype", "float64") != "float64":
            unsupported.append(f"target_dtype={self.target_dtype!r} (only 'float64'; the "
                               "workers hold their rows' targets in float64)")
        if self.early_stopping is True and self.n_iter_no_change is not None and (
                self.validation_fraction is not None) and eval_set is None:
            unsupported.append(
                f"early_stopping=True with validation_fraction={self.validation_fraction!r} "
                "(an internal validation split; set validation_fraction=None to monitor "
                "the training loss)")
        if unsupported:
            raise NotImplementedError(
                f"{type(self).__name__} does not support " + "; ".join(unsupported)
                + " (see docs/dask.md); the in-memory estimator does")

    def _plan_early_stopping(self, n, has_eval_set):
        """As in memory with ``eval_set``; without it "auto" is off and True monitors the
        training loss (validation_fraction=None, checked above)."""
        es = self.early_stopping
        if has_eval_set:
            on = (n >= EARLY_STOPPING_MIN_ROWS) if es == "auto" else bool(es)
        else:
            on = es is True
        self._early_stopping_on = bool(on) and self.n_iter_no_change is not None

    def _client(self, client, distributed):
        if client is not None:
            return client
        try:
            return distributed.default_client()
        except ValueError:
            raise ValueError(f"{type(self).__name__}.fit needs a dask.distributed client: "
                             "pass client=... or create one (distributed.Client(...)) "
                             "first") from None

    # ---------------------------------------------------------------- setup
    def _setup(self, client, X, T, w, kind, spec):
        """Persist the blocks, create one shard per worker; returns (cluster, infos).
        ``spec["prefix"]`` = "eval_set ": the validation rows (checked against X)."""
        dask, da, distributed = _dask_modules()
        pre = spec.get("prefix", "")
        X, names = _rows_array(X, pre + "X", da, ndim=(2,))
        if pre:
            if int(X.shape[1]) != spec["n_features"]:
                raise ValueError(f"eval_set X has {X.shape[1]} features, but the model is "
                                 f"fitted with {spec['n_features']}")
            fitted = getattr(self, "feature_names_in_", None)
            if names is not None and fitted is not None and names != list(fitted):
                raise ValueError(f"eval_set X has feature names {names}, but X has "
                                 f"{list(fitted)}")
        spec["n_features"] = int(X.shape[1])
        n = int(X.shape[0])
        if n == 0:
            raise ValueError(f"{pre}X has no rows")
        row_chunks = X.chunks[0]
        tname = pre + ("y" if kind == "bit" else "nu")
        T, _ = _rows_array(T, tname, da, row_chunks)
        if int(T.shape[0]) != n:
            raise ValueError(f"{tname} has {T.shape[0]} rows but {pre}X has {n}")
        if w is not None:
            w, _ = _rows_array(w, pre + "sample_weight", da, row_chunks, ndim=(1,))
            if int(w.shape[0]) != n:
                raise ValueError(f"{pre}sample_weight has {w.shape[0]} rows but {pre}X has "
                                 f"{n}")
        # blocks of the targets and weights aligned with X's (a rechunk moves data)
        if T.chunks[0] != row_chunks:
            T = T.rechunk({0: row_chunks})
        if w is not None and w.chunks[0] != row_chunks:
            w = w.rechunk({0: row_chunks})
        arrays = [X, T] + ([w] if w is not None else [])
        arrays = client.persist(arrays)
        X, T = arrays[0], arrays[1]
        w = arrays[2] if w is not None else None
        fX = _block_futures(X, dask, distributed)
        fT = _block_futures(T, dask, distributed)
        fw = _block_futures(w, dask, distributed) if w is not None else None
        with lock_released():
            distributed.wait(fX + fT + (fw or []))
        who = client.who_has(fX)
        offsets = np.concatenate([[0], np.cumsum(row_chunks)]).astype(np.int64)
        groups = {}
        for i, f in enumerate(fX):
            if row_chunks[i] == 0:
                continue
            holders = sorted(who.get(f.key, ()))
            addr = holders[0] if holders else None
            if addr is None:
                raise RuntimeError(f"bpt.dask: block {i} of X is held by no worker")
            groups.setdefault(addr, []).append(i)
        cl = _Cluster(client, distributed)
        # shards in the order of their first block
        order = sorted(groups.items(), key=lambda kv: kv[1][0])
        futures = []
        self._blocks = []
        for j, (addr, blocks) in enumerate(order):
            cl.workers.append(addr)
            cl.keys.append((cl.token, j))
            cl.step.append(0)
            self._blocks.append((blocks, offsets[blocks], row_chunks))
            futures.append(client.submit(
                _w_create, (cl.token, j), kind, self.n_jobs, [int(offsets[i]) for i in blocks],
                [fX[i] for i in blocks], [fT[i] for i in blocks],
                None if fw is None else [fw[i] for i in blocks], spec,
                workers=[addr], allow_other_workers=False, pure=False, retries=0))
        try:
            infos = cl.gather(futures)
        except BaseException:
            cl.drop()
            raise
        cl.rows = [i["n"] for i in infos]
        # the shards hold the blocks they need; release ours (freed unless the caller
        # keeps them)
        del X, T, w, arrays, fX, fT, fw, futures
        return cl, infos, n, names

    def _take_rows(self, cl, idx):
        """The float64 rows ``idx`` (sorted global row indices) of the training data."""
        shard_rows = []
        for blocks, offs, chunks in self._blocks:
            local, glob, base = [], [], 0
            for i, off in zip(blocks, offs):
                sel = idx[(idx >= off) & (idx < off + chunks[i])]
                local.append(sel - off + base)
                glob.append(sel)
                base += chunks[i]
            shard_rows.append((np.concatenate(local).astype(np.int64), np.concatenate(glob)))
        parts = cl.submit_all(_w_take, lambda j: (shard_rows[j][0],), count=False)
        glob = np.concatenate([g for _, g in shard_rows])
        return np.concatenate(parts)[np.argsort(glob, kind="stable")]

    def _bin(self, cl, n, n_features, keep_rows=False):
        """Quantile edges from the in-memory binner's subsample of global rows
        (``keep_rows``: the workers keep their float rows after binning)."""
        mapper = BinMapper(self.max_bins, random_state=self._rng_seed)
        idx = mapper.sample_indices(n)
        if idx is None:
            idx = np.arange(n)
        Xs = self._take_rows(cl, idx)
        self._sample_bytes = int(Xs.nbytes)
        mapper.fit_sample(Xs)
        cl.submit_all(_w_bin, lambda j: (mapper.edges_, mapper.n_bins_, mapper.missing_code_,
                                         self.max_bins, keep_rows), count=False)
        return mapper

    # ---------------------------------------------------------------- boosting
    def _dask_boost(self, cl, mapper, loss, weight_scale_, callbacks, n_feat, vcl=None):
        """The boosting loop of ``BaseBoostedTrees._boost_loop`` with level-wise growth on
        the shards."""
        min_weight = max(getattr(self, "min_weight_leaf", 0.0) * weight_scale_, WEIGHT_FLOOR)
        K, C = loss.n_sums, loss.n_counts
        lp = (loss.P, float(loss.lam), loss.ridge_a, loss.ridge_e, loss.ridge_b)
        g = dict(K=K, C=C, M=K + C, kind=loss.kind, lp=lp, min_weight=min_weight,
                 mcode=int(mapper.missing_code_), n_bins=mapper.n_bins_,
                 feats=np.arange(n_feat, dtype=np.int64),
                 cls=np.zeros(1, dtype=np.int64) if loss.onehot else None,
                 edges=np.concatenate([mapper.edges_, np.full((n_feat, 1), np.inf)], axis=1))
        base = dict(K=K, C=C, mcode=g["mcode"])
        ens = TreeEnsemble(loss.n_terms)
        train_loss, val_loss = [], []
        monitored = val_loss if vcl is not None else train_loss
        early = bool(self._early_stopping_on)
        traffic = {"sent": [], "received": [], "round_trips": [], "worker_seconds": []}
        t_start = time.perf_counter()
        prev = {}
        clusters = [cl] if vcl is None else [cl, vcl]

        def totals():
            return tuple(sum(getattr(c, k) for c in clusters)
                         for k in ("sent", "received", "round_trips", "worker_seconds"))

        counters = totals()
        for b in range(self.n_estimators):
            eta = self._learning_rate(b)
            tree, pending, leaves = self._grow_one(cl, g, base, prev)
            lin = None
            if getattr(loss, "linear", 0.0) > 0 and tree.left.shape[0] > 1:
                # linear leaves: the leaves' moments on the workers (the pending splits
                # applied first), the fit here
                _, feats = path_features(tree.feature, tree.left, tree.right)
                m = dict(base, splits=pending, moments=(leaves, feats, loss.scale_,
                                                        loss.ref_))
                pending = []
                res = cl.submit_all(_w_step, lambda j: (m,))
                lin = solve_linear_bpt(tree, feats, combine_moments([r["moments"] for r in res]),
                                       loss.H, loss.V, loss.linear, loss.scale_, loss.ref_)
            ens.add(tree, eta)
            # the update of this tree: the splits not yet applied, then the leaves
            prev = dict(splits=pending, finish=(leaves, tree.leaf_update, float(eta), lin))
            if loss.onehot:
                # BPT: reweighting and loss on the workers, now (the stopping rule and
                # the callbacks need the loss); BIT: with the next tree's first message
                res = cl.submit_all(_w_step, lambda j: (dict(base, **prev),))
                prev = {}
                train_loss.append(sum(r["loss"] for r in res) / loss.weight_)
            else:
                # the loss drop of the tree from its leaf sums (as BITLoss.end_tree)
                train_loss.append(float(loss.end_tree(None, tree, eta)))
            if vcl is not None:
                one = TreeEnsemble(loss.n_terms)
                one.add(tree, eta)
                res = vcl.submit_all(_w_val_tree, lambda j: (one.arrays, vcl.M))
                val_loss.append(sum(r["partial"][0] for r in res)
                                / sum(r["partial"][1] for r in res))
            now = totals()
            for j, k in enumerate(("sent", "received", "round_trips", "worker_seconds")):
                traffic[k].append(now[j] - counters[j])
            counters = now
            if self._tree_done(b, tree, train_loss, val_loss, t_start, callbacks,
                               monitored if early else None, vcl is not None):
                break
        if early:
            ens.truncate(int(np.argmin(monitored)) + 1)
        self.ensemble_ = TreeEnsemble.from_arrays(ens.arrays)
        self.train_loss_ = np.array(train_loss, dtype=np.float64)
        if vcl is not None:
            self.validation_loss_ = np.array(val_loss, dtype=np.float64)
        elif hasattr(self, "validation_loss_"):
            del self.validation_loss_
        self.n_iter_ = int(ens.n_trees)
        self.fit_time_ = time.perf_counter() - t_start
        self.refitted_ = False          # no internal validation split here: never refitted
        self.dask_traffic_ = {k: np.array(v, dtype=np.float64 if k == "worker_seconds"
                                          else np.int64) for k, v in traffic.items()}
        self.dask_traffic_["sample_bytes"] = self._sample_bytes
        self.dask_traffic_["n_workers"] = len(cl.workers)
        self.dask_traffic_["rows_per_worker"] = np.array(cl.rows, dtype=np.int64)
        if self.max_depth != 0 and not np.any(self.ensemble_.arrays["feature"] >= 0):
            warn_user(
                f"{type(self).__name__}: no valid split was found in any tree (constant "
                "features, or too few events / too little weight for min_samples_leaf and "
                "min_weight_leaf); the model is constant", UserWarning)

    def _count(self, stats, g):
        K = g["K"]
        return float(stats[K:].sum())

    def _grow_one(self, cl, g, base, prev):
        """Grow one tree level by level; the same tree (node order included) as the
        in-memory depth-first grower.  ``prev``: the previous tree's update, applied on
        the workers first (BIT).  Returns (GrownTree, splits not yet applied on the
        workers, the shard-side ids of the leaves in the tree's leaf order)."""
        ms = self.min_samples_leaf
        max_depth = self.max_depth
        K = g["K"]
        # the root's histogram is built with its stats (dropped below if not needed)
        msg = dict(base, root=True, builds=[0], **prev)
        res = cl.submit_all(_w_step, lambda j: (msg,))
        root = res[0]["stats"].copy()
        for r in res[1:]:
            root += r["stats"]
        depth, stats, cand, children = [0], [root], [None], [None]
        hist = {}
        if max_depth > 0 and self._count(root, g) >= 2 * ms:
            h = res[0]["hist"][0].copy()
            for r in res[1:]:
                h += r["hist"][0]
            hist[0] = h
        level = [0]
        pending = []                 # splits not yet applied on the workers
        while level:
            for nid in level:
                h = hist.get(nid)
                if h is None:
                    continue
                if depth[nid] < max_depth and self._count(stats[nid], g) >= 2 * ms:
                    f, b, ml, has, gain, ls = find_split_hist(
                        h, g["feats"], g["n_bins"], g["mcode"], stats[nid], K, g["kind"],
                        g["lp"], ms, g["min_weight"])
                    if f >= 0:
                        cand[nid] = (int(f), int(b), bool(ml), bool(has), float(gain),
                                     np.asarray(ls).copy())
            splits, builds, subs, nxt = [], [], [], []
            for nid in level:
                c = cand[nid]
                if c is None:
                    hist.pop(nid, None)
                    continue
                f, b, ml, has, gain, ls = c
                lid, rid = len(depth), len(depth) + 1
                d = depth[nid] + 1
                depth += [d, d]
                stats += [ls, stats[nid] - ls]
                cand += [None, None]
                children += [None, None]
                children[nid] = (lid, rid)
                splits.append((nid, f, b, ml, lid, rid))
                nl, nr = self._count(stats[lid], g), self._count(stats[rid], g)
                if d < max_depth and (nl >= 2 * ms or nr >= 2 * ms):
                    small, large = (lid, rid) if nl <= nr else (rid, lid)
                    builds.append(small)
                    subs.append((nid, small, large))
                else:
                    hist.pop(nid, None)
                nxt += [lid, rid]
            if builds:
                m = dict(base, splits=pending + splits, builds=builds)
                pending = []
                res = cl.submit_all(_w_step, lambda j: (m,))
                summed = res[0]["hist"].copy()
                for r in res[1:]:
                    summed += r["hist"]
                for j, (nid, small, large) in enumerate(subs):
                    parent = hist.pop(nid)
                    hist[small] = summed[j]
                    parent -= summed[j]
                    hist[large] = parent
            else:
                pending += splits
            level = nxt if builds else []
        tree, leaves = self._assemble(depth, stats, cand, children, g)
        return tree, pending, leaves

    def _assemble(self, depth, stats, cand, children, g):
        """Node arrays in the in-memory grower's order (depth first: a split node's
        children get the next two ids; the left subtree is numbered first)."""
        n_tmp = len(depth)
        final = np.full(n_tmp, -1, dtype=np.int64)
        final[0] = 0
        nxt = 1
        stack = [0] if children[0] is not None else []
        while stack:
            t = stack.pop()
            lid, rid = children[t]
            final[lid], final[rid] = nxt, nxt + 1
            nxt += 2
            for c in (rid, lid):
                if children[c] is not None:
                    stack.append(c)
        m = nxt
        inv = np.empty(m, dtype=np.int64)
        inv[final] = np.arange(n_tmp)
        feature = np.full(m, -1, dtype=np.int64)
        binv = np.zeros(m, dtype=np.int64)
        mleft = np.zeros(m, dtype=np.bool_)
        left = np.full(m, -1, dtype=np.int64)
        right = np.full(m, -1, dtype=np.int64)
        gain = np.zeros(m)
        S = np.array([stats[inv[j]] for j in range(m)])
        for j in range(m):
            t = inv[j]
            if children[t] is None:
                continue
            f, b, ml, has, gn, _ = cand[t]
            lt, rt = children[t]
            feature[j], binv[j], gain[j] = f, b, gn
            left[j], right[j] = final[lt], final[rt]
            nl, nr = self._count(stats[lt], g), self._count(stats[rt], g)
            mleft[j] = ml if has else nl >= nr
        internal = feature >= 0
        threshold = np.where(internal, g["edges"][np.maximum(feature, 0), binv], 0.0)
        loss = self._loss
        value, upd = loss.leaf_values(S[:, :loss.n_sums])
        leaf_node = np.flatnonzero(~internal)
        n_samples = np.rint(S[:, g["K"]:].sum(axis=1)).astype(np.int64)
        tree = GrownTree(feature=feature, threshold=threshold, left=left, right=right,
                         value=value, gain=gain, n_samples=n_samples,
                         missing_go_left=mleft & internal, update_rows=None, leaf_of=None,
                         leaf_update=np.ascontiguousarray(upd[leaf_node]),
                         leaf_sums=np.ascontiguousarray(S[leaf_node, :loss.n_sums]))
        return tree, [int(inv[j]) for j in leaf_node]

    def _run(self, client, X, T, w, kind, spec, eval_set, callbacks):
        """Set up the shards (and the eval_set's), bin, make the working targets and
        boost; always drop the shards."""
        _, _, distributed = _dask_modules()
        client = self._client(client, distributed)
        with numba_threads(self.n_jobs), _verbose_logging(self.verbose):
            cl, infos, n, names = self._setup(client, X, T, w, kind, spec)
            vcl = None
            try:
                self.n_features_in_ = int(spec["n_features"])
                if names is not None:
                    self.feature_names_in_ = np.asarray(names, dtype=object)
                elif hasattr(self, "feature_names_in_"):
                    del self.feature_names_in_
                blocks = self._blocks
                if eval_set is not None:
                    Xv, tv, wv = self._unpack_eval_set(eval_set, "y" if kind == "bit" else "nu")
                    vcl, vinfos, _, _ = self._setup(client, Xv, tv, wv, kind,
                                                    dict(spec, prefix="eval_set "))
                    vcl.infos = vinfos
                    self._blocks = blocks
                self._plan_early_stopping(n, eval_set is not None)
                return self._fit_shards(cl, infos, n, vcl, callbacks, spec)
            finally:
                cl.drop()
                if vcl is not None:
                    vcl.drop()
                self._blocks = self._loss = self._U = None

    # predictions on dask arrays --------------------------------------------------
    def _map_rows(self, X, method, args, n_out):
        """``method(X, *args)`` block by block (``map_blocks``) on a dask array / DataFrame;
        ``n_out`` None: one value per row."""
        check_is_fitted(self, "ensemble_")
        _, da, _ = _dask_modules()
        if hasattr(X, "to_dask_array"):
            names = getattr(self, "feature_names_in_", None)
            if names is not None and hasattr(X, "columns") and [
                    str(c) for c in X.columns] != list(names):
                raise ValueError(f"X has feature names {[str(c) for c in X.columns]}, but "
                                 f"the model was fitted with {list(names)}")
            X = X.to_dask_array()
        if X.ndim != 2:
            raise ValueError(f"X must be 2-d (n_samples, n_features), got shape {X.shape}")
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but the model was fitted with "
                             f"{self.n_features_in_}")
        if len(X.chunks[1]) > 1:
            X = X.rechunk({1: -1})
        local = self.to_local()
        if n_out is None:
            return X.map_blocks(_predict_block, local, method, args, dtype=np.float64,
                                drop_axis=1, chunks=(X.chunks[0],))
        return X.map_blocks(_predict_block, local, method, args, dtype=np.float64,
                            chunks=(X.chunks[0], (n_out,)))

    def predict(self, X):
        """Learned coefficients (N, n_terms); a dask array for dask input (computed
        block by block with ``map_blocks``), else a numpy array as in memory."""
        if _is_dask_collection(X):
            return self._map_rows(X, "predict", (), len(self.terms_))
        return super().predict(X)

    def _map_point(self, method, X, point):
        if _is_dask_collection(X):
            check_is_fitted(self, "ensemble_")
            p = np.asarray(point, dtype=np.float64)
            n_out = None if p.ndim <= 1 else p.shape[0]
            return self._map_rows(X, method, (point,), n_out)
        return getattr(super(), method)(X, point)

    def to_local(self):
        """The fitted model as a plain in-memory estimator (same parameters and fitted
        attributes): save, load, export and predict as usual."""
        check_is_fitted(self, "ensemble_")
        est = self._local_class(**self.get_params(deep=False))
        for k, v in vars(self).items():
            if k.endswith("_") and not k.startswith("_") and k != "dask_traffic_":
                setattr(est, k, v)
        return est

    def save(self, path):
        """Save the fitted model (as ``to_local().save(path)``); :func:`bpt.load` returns
        the in-memory estimator."""
        self.to_local().save(path)


class DaskBoostedInformationTree(_DaskMixin, BoostedInformationTree):
    """:class:`bpt.BoostedInformationTree` trained on a dask.distributed cluster.

    The parameters are those of :class:`bpt.BoostedInformationTree`; the fitted
    attributes too, plus ``dask_traffic_`` (bytes sent and received and round trips per
    tree).  Not supported (a NotImplementedError names them): ``split="exact"``,
    ``max_leaf_nodes``, ``subsample`` < 1, ``max_features`` < 1 and early stopping on an
    internal validation split.  With ``eval_set`` early stopping is the in-memory one;
    without it ``early_stopping="auto"`` is off and ``early_stopping=True`` needs
    ``validation_fraction=None`` (the training loss is monitored).  See docs/dask.md.
    """

    _local_class = BoostedInformationTree

    def fit(self, X, y, sample_weight=None, *, client=None, callbacks=None, eval_set=None):
        """Fit on a dask array / DataFrame X (N, F) partitioned by rows and coefficients y
        (N, 1 + n_terms) (and sample_weight (N,)) with the same row blocks (numpy y and
        sample_weight are split like X).  ``client``: a ``distributed.Client`` (default:
        the current one).  ``callbacks`` and ``eval_set`` (dask or numpy arrays) as in the
        in-memory ``fit``.  The trees equal the in-memory fit's on the same rows
        (docs/dask.md).  Returns self."""
        with self._fitting():
            self._start_fit()
            self._check_dask_support(eval_set)
            callbacks = self._check_callbacks(callbacks)
            terms = self._resolve_terms()
            self.terms_ = terms
            self.base_points_, self.metric_, U = self._metric(terms)
            checker = BoostedInformationTree(**self.get_params(deep=False))
            checker.terms_ = terms
            spec = dict(n_terms=len(terms), checker=checker)   # + n_features from X
            self._U = U
            self._run(client, X, y, sample_weight, "bit", spec, eval_set, callbacks)
        return self

    def _fit_shards(self, cl, infos, n, vcl, callbacks, spec):
        total = sum(i["total"] for i in infos)
        if not total > 0:
            raise ValueError("the sum of SM weights (y[:, 0]) must be positive, got "
                             f"{total:.6g}")
        scale = weight_scale(total)
        mapper = self._bin(cl, n, self.n_features_in_)
        sums = cl.submit_all(_w_targets, lambda j: (self._U, scale), count=False)
        loss = BITLoss(self._U)
        loss.lam = float(self.l2_regularization) * sum(s[0] for s in sums)
        loss.weight_ = sum(s[1] for s in sums)
        loss.loss_ = 0.0
        self._loss = loss
        if vcl is not None:
            sums = vcl.submit_all(_w_val_init, lambda j: (None,), count=False)
            if not sum(sums) > 0:
                raise ValueError("the sum of SM weights of eval_set y (column 0) must be "
                                 f"positive, got {sum(sums):.6g}")
            vcl.M = self._U.T @ self._U            # as BITLoss.model_loss
        self._dask_boost(cl, mapper, loss, scale, callbacks, self.n_features_in_, vcl)
        return self

    def predict_ratio(self, X, theta):
        """r(x|theta) as in memory; a dask array for dask X."""
        return self._map_point("predict_ratio", X, theta)


class DaskBoostedParametricTree(_DaskMixin, BoostedParametricTree):
    """:class:`bpt.BoostedParametricTree` trained on a dask.distributed cluster.

    Parameters and fitted attributes as :class:`bpt.BoostedParametricTree` (plus
    ``dask_traffic_``); the same restrictions as :class:`DaskBoostedInformationTree`
    (and ``groups`` is not supported).  See docs/dask.md.
    """

    _local_class = BoostedParametricTree

    def fit(self, X, nu, sample_weight=None, groups=None, *, client=None, callbacks=None,
            eval_set=None):
        """Fit on a dask array / DataFrame X (N, F) partitioned by rows and base-point
        coordinates nu (N, K) (and sample_weight (N,)) with the same row blocks.
        ``client``: a ``distributed.Client`` (default: the current one).  ``callbacks``
        and ``eval_set`` as in the in-memory ``fit``.  The trees equal the in-memory fit's
        on the same rows (docs/dask.md).  Returns self."""
        with self._fitting():
            self._start_fit()
            self._check_dask_support(eval_set, groups)
            callbacks = self._check_callbacks(callbacks)
            if not isinstance(self.learn_global, (bool, np.bool_)):
                raise ValueError(f"learn_global must be True or False, got "
                                 f"{self.learn_global!r}")
            terms = self._resolve_terms()
            checker = BoostedParametricTree(**self.get_params(deep=False))
            spec = dict(checker=checker, terms=terms)          # + n_features from X
            self._run(client, X, nu, sample_weight, "bpt", spec, eval_set, callbacks)
        return self

    def _fit_shards(self, cl, infos, n, vcl, callbacks, spec):
        terms = spec["terms"]
        union = np.unique(np.concatenate([i["points"] for i in infos]), axis=0)
        points, _, V = self._base_points(union, None, terms)
        all_points = np.vstack([np.zeros((1, self.n_nuisances)), points])
        res = cl.submit_all(_w_classes, lambda j: (all_points,), count=False)
        counts = sum(r[0] for r in res)
        sums = sum(r[1] for r in res)
        self._check_sample_totals(counts, sums, points)
        self.terms_ = terms
        self.base_points_ = points
        self.V_ = V
        scale = weight_scale(sum(r[2] for r in res))
        sumsq = sum(r[3] for r in res)
        share = None
        if self.samples == "auto":        # the in-memory rule (groups are not supported)
            nominal = np.sort(np.concatenate(cl.submit_all(_w_nominal_hashes, lambda j: (),
                                                           count=False)))
            hit = cl.submit_all(_w_shared_counts, lambda j: (nominal, len(all_points)),
                                count=False)
            rows, hits = sum(r[0] for r in hit), sum(r[1] for r in hit)
            share = float(np.max(hits / np.maximum(rows, 1))) if rows.size else 0.0
        self.samples_ = self._resolve_samples(False, share)
        linear = float(self.linear_leaves)
        if linear > 0:
            scale_ref = reference_values(self._take_rows(cl, reference_rows(n)))
        mapper = self._bin(cl, n, self.n_features_in_, keep_rows=linear > 0)
        tot = cl.submit_all(_w_targets, lambda j: (len(points), scale, linear > 0),
                            count=False)
        loss = BPTLoss(V, sample_sizes=None if self.samples_ == "shared" else sums * sums / sumsq,
                       linear=linear)
        if linear > 0:
            loss.scale_, loss.ref_ = scale_ref
        loss.lam = float(self.l2_regularization) * sum(t[0] for t in tot)
        loss.weight_ = sum(t[1] for t in tot)
        self._loss = loss
        if vcl is not None:
            res = vcl.submit_all(_w_val_init, lambda j: ((all_points, V),), count=False)
            self._check_sample_totals(sum(r[0] for r in res), sum(r[1] for r in res), points,
                                      part=" in eval_set", check_counts=False)
            vcl.M = None
        self._dask_boost(cl, mapper, loss, scale, callbacks, self.n_features_in_, vcl)
        return self

    def predict_log_ratio(self, X, nu):
        """g_nu(x) as in memory; a dask array for dask X."""
        return self._map_point("predict_log_ratio", X, nu)

    def predict_ratio(self, X, nu):
        """S(x|nu) as in memory; a dask array for dask X."""
        return self._map_point("predict_ratio", X, nu)
