"""Process-wide numba setup, imported first by ``bpt/__init__.py`` (private).

Three things are settled here, once, before any bpt kernel is compiled or launched:

Threading layer
    numba runs ``parallel=True`` kernels on one of three layers (``tbb``, ``omp``,
    ``workqueue``). GNU OpenMP (``omp``, numba's pick on Linux when TBB is absent) is not
    fork-safe: a child forked after a fit (``multiprocessing`` / ``ProcessPoolExecutor``
    on Linux, joblib's ``multiprocessing`` backend) is killed at its first parallel
    kernel, and its threads spin while waiting, which is slow on shared cores. Unless the
    user chose a layer (``NUMBA_THREADING_LAYER`` or ``numba.config.THREADING_LAYER``
    set before ``import bpt``), or numba's threads were already launched, bpt selects
    ``tbb`` when the ``tbb`` package loads (fork- and thread-safe, idle threads sleep),
    else ``workqueue`` (fork-safe, idle threads sleep, not thread-safe); also
    ``workqueue`` when the process may use a single CPU only (a fork after a fit hangs
    on TBB there).

Thread safety
    ``workqueue`` aborts the process when two threads run parallel kernels at once; on
    that layer (or while the layer is not yet known) the estimators' kernels run under
    one process-wide lock (:func:`numba_threads`), so fits and predictions from several
    Python threads are safe but take turns.

Caching
    Kernels are compiled with ``cache=True``. When no cache location is writable (the
    package directory, ``NUMBA_CACHE_DIR``, the user cache directory: read-only
    installations, containers) numba refuses to define the kernel; bpt then compiles it
    without an on-disk cache and warns once. numba's cache of a kernel goes stale when
    a kernel it calls in another file changes (numba checks the kernel's own file
    only); bpt's kernels are checked against the source of the whole package
    (:func:`package_source_stamp`).

See docs/performance.md ("Threads, processes and the numba threading layer").
"""

from __future__ import annotations

import ctypes
import numbers
import os
import sys
import threading
import warnings
from contextlib import contextmanager, nullcontext

import numba

__all__ = ["numba_threads", "resolve_n_jobs", "threading_layer", "caching_enabled"]

# layers that run parallel kernels from several threads at once
_THREAD_SAFE_LAYERS = ("tbb", "omp", "safe", "threadsafe")

_PACKAGE = __name__.split(".")[0]          # "bpt"


# ------------------------------------------------------------------ threading layer
def _tbb_library_paths():
    """Where the ``tbb`` wheel puts its shared library: ``<prefix>/lib`` (Linux, macOS),
    ``<prefix>/Library/bin`` (Windows). The dynamic loader does not search there in a
    virtual environment, so numba reports TBB as missing although it is installed."""
    names = {"linux": ["lib/libtbb.so.12"], "darwin": ["lib/libtbb.12.dylib"],
             "win32": ["Library/bin/tbb12.dll", "Lib/tbb12.dll"]}
    rel = next((v for k, v in names.items() if sys.platform.startswith(k)), [])
    seen = []
    for prefix in (sys.prefix, sys.base_prefix, sys.exec_prefix):
        for r in rel:
            path = os.path.join(prefix, *r.split("/"))
            if path not in seen and os.path.isfile(path):
                seen.append(path)
    return seen


def _tbb_loadable():
    """True if numba's TBB layer can be loaded (preloading the ``tbb`` wheel's library
    from the environment's prefix when the loader does not find it by itself)."""
    try:
        from numba.np.ufunc import parallel
        check = parallel._check_tbb_version_compatible
    except (ImportError, AttributeError):       # numba internals moved: leave numba's choice
        return False

    def attempt():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                check()
                from numba.np.ufunc import tbbpool  # noqa: F401
            return True
        except (ImportError, OSError, ValueError):
            return False

    if attempt():
        return True
    mode = getattr(ctypes, "RTLD_GLOBAL", 0)
    for path in _tbb_library_paths():
        try:
            ctypes.CDLL(path, mode=mode)
        except OSError:
            continue
        if attempt():
            return True
    return False


def _threads_launched():
    try:
        from numba.np.ufunc import parallel
        return bool(parallel._is_initialized)
    except (ImportError, AttributeError):
        return True


def _user_chose_layer():
    return ("NUMBA_THREADING_LAYER" in os.environ
            or str(numba.config.THREADING_LAYER).lower() != "default")


def _select_layer():
    """Pick tbb, else workqueue, unless the user or an earlier import already decided."""
    if _threads_launched():
        return
    if _user_chose_layer():
        if str(numba.config.THREADING_LAYER).lower() in ("tbb", "safe", "threadsafe",
                                                          "forksafe", "default"):
            _tbb_loadable()                     # only makes the tbb wheel findable
        return
    # with a single usable CPU (a batch slot's CPU set, taskset) there is nothing to run
    # in parallel, and a fork of a process whose TBB pool was started there hangs in the
    # child (seen with ProcessPoolExecutor and joblib's multiprocessing backend)
    numba.config.THREADING_LAYER = ("tbb" if _usable_cpus() > 1 and _tbb_loadable()
                                    else "workqueue")


def _usable_cpus():
    """CPUs this process may run on (its affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def threading_layer():
    """The numba threading layer in use (``'tbb'``, ``'omp'``, ``'workqueue'``); starts
    numba's threads if no parallel kernel has run yet."""
    numba.get_num_threads()                     # launches the threads (idempotent)
    return numba.threading_layer()


# ------------------------------------------------------------------ thread safety
_lock = threading.RLock()


_forked_from_gnu_omp = False


def _after_fork_in_child():
    # a fork taken while another thread held the lock must not leave the child locked
    global _lock, _forked_from_gnu_omp
    _lock = threading.RLock()
    if _threads_launched() and sys.platform.startswith("linux"):
        try:
            _forked_from_gnu_omp = numba.threading_layer() == "omp"
        except ValueError:
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _layer_is_thread_safe():
    if _threads_launched():
        try:
            return numba.threading_layer() in _THREAD_SAFE_LAYERS
        except ValueError:
            return False
    return str(numba.config.THREADING_LAYER).lower() in _THREAD_SAFE_LAYERS


def resolve_n_jobs(n_jobs):
    """``n_jobs`` -> number of numba threads (None = numba's current setting).

    Negative values count back from the number of numba threads (-1 = all); values
    above it are clipped to it."""
    if n_jobs is None:
        return None
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral) or n_jobs == 0:
        raise ValueError(f"n_jobs must be a non-zero integer or None, got {n_jobs!r}")
    max_threads = numba.config.NUMBA_NUM_THREADS
    n = n_jobs if n_jobs > 0 else max_threads + 1 + n_jobs
    return int(min(max(n, 1), max_threads))


@contextmanager
def numba_threads(n_jobs):
    """Run the enclosed numba kernels on ``n_jobs`` threads, then restore the setting.

    On a threading layer that is not thread-safe (``workqueue``) the enclosed kernels
    also hold a process-wide lock, so that kernels from two Python threads never run at
    once (numba would abort the process)."""
    n = resolve_n_jobs(n_jobs)
    if _forked_from_gnu_omp:
        # numba would terminate this process at its first parallel kernel
        raise RuntimeError(
            "bpt: this process was forked from one that had run numba kernels on the GNU "
            "OpenMP threading layer ('omp'), which cannot run in a forked child. Start "
            "worker processes with 'spawn' or 'forkserver' (joblib's default 'loky' "
            "backend does), or do not select NUMBA_THREADING_LAYER=omp (bpt's default, "
            "tbb or workqueue, is fork-safe).")
    guard = nullcontext() if _layer_is_thread_safe() else _lock
    with guard:
        if n is None:
            yield
            return
        old = numba.get_num_threads()           # thread-local in numba
        numba.set_num_threads(n)
        try:
            yield
        finally:
            numba.set_num_threads(old)


@contextmanager
def lock_released():
    """Give up the process-wide kernel lock of :func:`numba_threads` (every level this
    thread holds) while the enclosed code waits for other threads, and take it back
    after.  For a driver that holds the lock for a whole fit and waits on in-process
    workers (``bpt.dask`` with ``LocalCluster(processes=False)``): without it the
    workers' kernels would wait for the lock forever."""
    lock = _lock
    held = 0
    while True:
        try:
            lock.release()
        except RuntimeError:            # not held (any more) by this thread
            break
        held += 1
    try:
        yield
    finally:
        for _ in range(held):
            lock.acquire()


# ------------------------------------------------------------------ caching
_cache_state = {"warned": False, "disabled": 0}


def caching_enabled():
    """False if at least one bpt kernel could not get an on-disk numba cache."""
    return _cache_state["disabled"] == 0


def _is_ours(py_func):
    mod = getattr(py_func, "__module__", "") or ""
    return mod == _PACKAGE or mod.startswith(_PACKAGE + ".")


_package_stamp = []


def package_source_stamp():
    """SHA-256 of the source of every ``.py`` file of the installed bpt package.

    numba checks a cached kernel against its own source file only, while a kernel's
    machine code also holds the kernels it calls from other files (inlined or linked
    in): after a change of ``_loss.py`` alone, the cached grower in ``_grower.py``
    would still run the old loss code (wrong results, or a crash when a data layout
    changed), e.g. in an editable install after ``git pull``.  bpt's kernels carry
    this stamp of the whole package in their cache index too, so that a change of any
    file recompiles them all.  Computed once per process (a few ms)."""
    if not _package_stamp:
        import hashlib
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        h = hashlib.sha256()
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for name in sorted(filenames):
                if name.endswith(".py"):
                    path = os.path.join(dirpath, name)
                    h.update(os.path.relpath(path, root).encode())
                    with open(path, "rb") as f:
                        h.update(f.read())
        _package_stamp.append(h.hexdigest())
    return _package_stamp[0]


def _stamp_with_package(dispatcher):
    """Add :func:`package_source_stamp` to the cache stamp of one of bpt's kernels
    (numba's ``Cache`` keeps it in ``_cache_file._source_stamp``; if that layout is
    missing, numba's own per-file stamp stays in use)."""
    cache_file = getattr(getattr(dispatcher, "_cache", None), "_cache_file", None)
    stamp = getattr(cache_file, "_source_stamp", None)
    if stamp is None:
        return
    cache_file._source_stamp = ("bpt", stamp, package_source_stamp())


def _install_cache_fallback():
    """Let ``@njit(cache=True)`` on bpt's kernels fall back to no caching (one warning)
    instead of raising "cannot cache function ...: no locator available", and give
    their cache index the stamp of the whole package (:func:`package_source_stamp`)."""
    try:
        from numba.core.dispatcher import Dispatcher
    except ImportError:                          # pragma: no cover - numba layout changed
        return
    original = Dispatcher.enable_caching
    if getattr(original, "_bpt_fallback", False):
        return

    def enable_caching(self):
        try:
            original(self)
            if _is_ours(self.py_func):
                _stamp_with_package(self)
                _skip_failed_saves(self)
        except RuntimeError as exc:
            if not _is_ours(self.py_func) or "no locator" not in str(exc):
                raise
            _cache_state["disabled"] += 1
            if not _cache_state["warned"]:
                _cache_state["warned"] = True
                warnings.warn(
                    "bpt: no writable numba cache location (the package directory, "
                    "NUMBA_CACHE_DIR, the user cache directory); the compiled kernels are "
                    "not cached and are compiled again in every new process. Set "
                    "NUMBA_CACHE_DIR to a writable directory to cache them.",
                    RuntimeWarning, stacklevel=2)

    enable_caching._bpt_fallback = True
    Dispatcher.enable_caching = enable_caching


# ------------------------------------------------------------------ prebuilt caches
_magic = []


def _this_machine():
    """numba's description of the code it generates here (target triple, CPU name and
    features): the part of a cache entry's key that differs between machines; None if
    numba's internals moved."""
    if not _magic:
        try:
            from numba.core.registry import cpu_target
            _magic.append(cpu_target.target_context.codegen().magic_tuple())
        except Exception:                         # pragma: no cover - numba layout changed
            _magic.append(None)
    return _magic[0]


def _index_name(py_func, py_file):
    """File name of numba's cache index of ``py_func`` (as numba's ``CacheImpl`` names
    it)."""
    modname = os.path.splitext(os.path.basename(py_file))[0]
    qualname = getattr(py_func, "__qualname__", py_func.__name__)
    fullname = f"{modname}.{qualname}".replace("<", "").replace(">", "")
    return (f"{fullname}-{py_func.__code__.co_firstlineno}.py{sys.version_info[0]}"
            f"{sys.version_info[1]}{getattr(sys, 'abiflags', '')}.nbi")


def _prebuilt_entries(path):
    """True if the cache index ``path`` was written by this numba for this version of
    bpt's source and holds a kernel compiled for this machine."""
    import pickle
    try:
        with open(path, "rb") as f:
            version = pickle.load(f)
            data = f.read()
        if version != numba.__version__:
            return False
        stamp, overloads = pickle.loads(data)
    except Exception:
        return False
    if not (isinstance(stamp, tuple) and len(stamp) == 3 and stamp[0] == "bpt"
            and stamp[2] == package_source_stamp()):
        return False
    machine = _this_machine()
    return machine is not None and any(
        isinstance(key, tuple) and len(key) > 1 and key[1] == machine for key in overloads)


def _prebuilt_locator_class():
    """A numba cache locator for bpt's kernels whose cache was built beforehand
    (``python -m bpt.precompile``) in the package directory or in ``NUMBA_CACHE_DIR``,
    which are read-only now (CVMFS, container images): numba's own locators accept
    only writable directories, so without it every process compiles everything again.
    It is consulted after numba's locators for those two places (a writable one is
    used as before) and before the user cache directory, and only where the index
    holds a kernel of the current source compiled for this machine.  Kernels missing
    there are compiled in the process and not saved (:func:`_skip_failed_saves`)."""
    try:
        from numba.core import caching
        base = caching.InTreeCacheLocator
    except (ImportError, AttributeError):       # pragma: no cover - numba layout changed
        return None

    class PrebuiltCacheLocator(base):
        def __init__(self, py_func, py_file, path):
            super().__init__(py_func, py_file)
            self._cache_path = path

        def ensure_cache_path(self):
            """Nothing is created here: the directory exists and may be read-only."""

        @classmethod
        def from_function(cls, py_func, py_file):
            if not _is_ours(py_func) or not os.path.isfile(py_file):
                return None
            places = [os.path.join(os.path.dirname(py_file), "__pycache__")]
            if numba.config.CACHE_DIR:
                places.insert(0, os.path.join(numba.config.CACHE_DIR,
                                              base.get_suitable_cache_subpath(py_file)))
            name = _index_name(py_func, py_file)
            for path in places:
                if _prebuilt_entries(os.path.join(path, name)):
                    return cls(py_func, py_file, path)
            return None

    return PrebuiltCacheLocator


def _install_prebuilt_locator():
    try:
        from numba.core import caching
        classes = caching.CacheImpl._locator_classes
        at = classes.index(caching.InTreeCacheLocator) + 1
    except (ImportError, AttributeError, ValueError):   # pragma: no cover
        return
    if any(getattr(c, "_bpt_prebuilt", False) for c in classes):
        return
    locator = _prebuilt_locator_class()
    if locator is not None:
        locator._bpt_prebuilt = True
        classes.insert(at, locator)


def _skip_failed_saves(dispatcher):
    """A kernel whose cache location is read-only (a prebuilt cache without this
    kernel or signature) is compiled in the process and not saved, with one warning,
    instead of failing the fit on the write."""
    cache = getattr(dispatcher, "_cache", None)
    locator = getattr(getattr(cache, "_impl", None), "locator", None)
    if not getattr(type(locator), "_bpt_prebuilt", False):
        return
    save = cache.save_overload

    def save_overload(sig, data):
        try:
            save(sig, data)
        except OSError:
            _cache_state["unsaved"] = _cache_state.get("unsaved", 0) + 1
            if not _cache_state.get("warned_unsaved"):
                _cache_state["warned_unsaved"] = True
                warnings.warn(
                    f"bpt: the prebuilt numba cache in {locator.get_cache_path()} is "
                    f"read-only and has no {dispatcher.py_func.__name__} for these argument "
                    "types; it was compiled for this process only. Run `python -m "
                    "bpt.precompile` where the cache is writable, or set NUMBA_CACHE_DIR "
                    "to a writable directory.", RuntimeWarning, stacklevel=2)

    cache.save_overload = save_overload


_select_layer()
_install_prebuilt_locator()
_install_cache_fallback()
