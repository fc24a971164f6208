"""Process-model safety (issue 11): fits and predictions after a fit in the parent
under fork, spawn, forkserver, joblib loky / multiprocessing and 4 threads at once, on
bpt's default threading layer and on numba's workqueue layer (not thread-safe: bpt
takes a lock); ``import bpt`` and a fit without any writable numba cache location; a
cached kernel recompiled when a kernel it calls in another file changed.

Each case runs in a fresh interpreter with a timeout, so that a crash or a hang fails
the test instead of killing or blocking the suite. The children must return exactly
the parent's numbers (tests/_process_worker.py).
"""

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="fork / forkserver process models: Linux")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TIMEOUT = 120       # generous for a loaded 2-core machine; a hang fails instead of blocking


def _run(args, env=None, cwd=HERE):
    full_env = dict(os.environ)
    full_env.pop("NUMBA_THREADING_LAYER", None)
    full_env["PYTHONPATH"] = ROOT + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.update(env or {})
    try:
        res = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                             env=full_env, cwd=cwd, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{args} hung for more than {TIMEOUT} s")
    assert res.returncode == 0, (res.stdout[-2000:], res.stderr[-4000:])
    return res


def test_default_layer_forked_children_and_threads():
    """fork (ProcessPoolExecutor's default on Linux), joblib's multiprocessing backend
    (it hung with GNU OpenMP), 4 threads at once (the default layer is thread-safe or
    locked)."""
    res = _run([os.path.join(HERE, "_process_worker.py"), "fork,multiprocessing,threads"])
    assert res.stdout.split()[-1] in ("tbb", "workqueue"), res.stdout   # never GNU OpenMP


def test_one_cpu_affinity_forked_children_and_threads():
    """A process restricted to one CPU (a batch slot): the default layer is workqueue
    (fork after a fit hung in the children on TBB there) and every process model works."""
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no CPU affinity on this platform")
    res = _run([os.path.join(HERE, "_process_worker.py"), "fork,multiprocessing,threads",
                "one-cpu"])
    assert res.stdout.split()[-1] == "workqueue", res.stdout


def test_one_cpu_affinity_dask_on_in_process_workers():
    """bpt.dask with LocalCluster(processes=False) in a one-CPU process (workqueue, so
    kernels are serialised by a lock): the driver held the lock for the whole fit and
    its workers' kernels waited for it forever."""
    pytest.importorskip("distributed")
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no CPU affinity on this platform")
    res = _run([os.path.join(HERE, "_process_worker.py"), "dask-threads", "one-cpu"])
    assert res.stdout.split()[-1] == "workqueue", res.stdout


def test_default_layer_fresh_interpreters():
    """spawn, forkserver and joblib's loky backend (fresh interpreters in the children)."""
    res = _run([os.path.join(HERE, "_process_worker.py"), "spawn,forkserver,loky"])
    assert res.stdout.split()[-1] in ("tbb", "workqueue"), res.stdout


def test_workqueue_layer():
    """workqueue is numba's fallback without TBB: fork-safe, and not thread-safe (4
    threads at once abort the process unless bpt serialises their kernels)."""
    res = _run([os.path.join(HERE, "_process_worker.py"), "fork,threads"],
               env={"NUMBA_THREADING_LAYER": "workqueue"})
    assert res.stdout.split()[-1] == "workqueue"


def test_user_choice_of_omp_is_respected_and_fork_gives_a_clear_error():
    code = textwrap.dedent("""
        import multiprocessing as mp, sys
        sys.path.insert(0, %r)
        import numba
        try:
            import numba.np.ufunc.omppool
        except ImportError:
            print("SKIP"); sys.exit(0)
        from _process_worker import fit, make_data
        model = fit(0)
        assert numba.threading_layer() == "omp"

        def child(q):
            try:
                model.predict(make_data(1)[0])
                q.put("no error")
            except RuntimeError as exc:
                q.put(str(exc))

        q = mp.get_context("fork").Queue()
        p = mp.get_context("fork").Process(target=child, args=(q,))
        p.start(); msg = q.get(timeout=60); p.join()
        assert "forked" in msg and "spawn" in msg, msg
        print("OK")
    """) % HERE
    res = _run(["-c", code], env={"NUMBA_THREADING_LAYER": "omp"})
    if res.stdout.strip().endswith("SKIP"):
        pytest.skip("numba's OpenMP threading layer is not available")
    assert res.stdout.strip().endswith("OK")


def _package_without_cache_dirs(tmp_path):
    """A copy of the package in tmp_path/site whose ``__pycache__`` directories are regular
    files (no in-tree numba cache possible), and a regular file tmp_path/blocker: paths
    below a file stand for read-only directories (also when the tests run as root, who
    may write into read-only directories)."""
    pkg = tmp_path / "site"
    shutil.copytree(os.path.join(ROOT, "bpt"), pkg / "bpt",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for dirpath, _, files in os.walk(pkg / "bpt"):
        if any(f.endswith(".py") for f in files):
            (open(os.path.join(dirpath, "__pycache__"), "w")).close()
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, so nothing can be created below it")
    return pkg, blocker


def test_no_writable_cache_location(tmp_path):
    """Package directory, NUMBA_CACHE_DIR and the user cache directory all unusable (as on
    a read-only CVMFS installation): import and fit work, with one warning.

    Paths below a regular file stand for read-only directories (this also holds when the
    tests run as root, who may write into read-only directories)."""
    pkg, blocker = _package_without_cache_dirs(tmp_path)
    code = textwrap.dedent("""
        import warnings
        import numpy as np
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            import bpt, bpt.inference
            from bpt._engine._runtime import caching_enabled
            assert bpt.__file__.startswith(%r), bpt.__file__
            rng = np.random.default_rng(0)
            X = rng.uniform(-1, 1, (500, 2)); w = rng.uniform(0.5, 1.5, 500)
            est = bpt.BoostedInformationTree(n_parameters=1, order=1, n_estimators=2,
                                             max_depth=2, max_bins=8)
            pred = est.fit(X, np.column_stack([w, w * X[:, 0]])).predict(X)
            assert np.all(np.isfinite(pred))
        msgs = [str(r.message) for r in rec if "numba cache" in str(r.message)]
        assert len(msgs) == 1, msgs
        assert not caching_enabled()
        print("OK")
    """) % str(pkg)
    env = {"PYTHONPATH": str(pkg), "NUMBA_CACHE_DIR": str(blocker / "numba"),
           "HOME": str(blocker / "home"), "XDG_CACHE_HOME": str(blocker / "cache"),
           "PYTHONDONTWRITEBYTECODE": "1"}
    full = dict(os.environ, **env)
    full.pop("NUMBA_THREADING_LAYER", None)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=full, cwd=str(tmp_path), timeout=TIMEOUT * 2, check=False)
    assert res.returncode == 0, res.stderr[-4000:]
    assert res.stdout.strip().endswith("OK")


# run first in the read-only processes below: every write below the cache directory
# fails, as on a read-only file system (root may write into read-only directories, so
# the permission bits cannot stand for one), and so does numba's probe for a writable
# cache directory
_READ_ONLY = """
import builtins, os, tempfile
ROOT_RO = os.path.realpath(os.environ["BPT_TEST_READ_ONLY"])
def _below(path):
    return os.path.realpath(str(path)).startswith(ROOT_RO)
_open, _tmp = builtins.open, tempfile.TemporaryFile
def _ro_open(file, mode="r", *a, **k):
    if any(c in mode for c in "wax+") and _below(file):
        raise PermissionError(13, "Read-only file system", str(file))
    return _open(file, mode, *a, **k)
def _ro_tmp(*a, dir=None, **k):
    if dir is not None and _below(dir):
        raise PermissionError(13, "Read-only file system", str(dir))
    return _tmp(*a, dir=dir, **k)
builtins.open, tempfile.TemporaryFile = _ro_open, _ro_tmp
"""

_PREBUILT_FIT = """
import os, warnings
import numpy as np
import bpt
assert bpt.__file__.startswith(os.environ["PYTHONPATH"]), bpt.__file__
rng = np.random.default_rng(0)
X = rng.normal(size=(3000, 2)); c0 = rng.uniform(0.5, 1.5, 3000)
y = np.column_stack([c0, c0 * np.tanh(X[:, 0])])
with warnings.catch_warnings(record=True) as rec:
    warnings.simplefilter("always")
    est = bpt.BoostedInformationTree(n_parameters=1, order=1, n_estimators=3,
                                     max_depth=2).fit(X.astype(DTYPE), y)
    pred = est.predict(X.astype(DTYPE))
from bpt.precompile import kernels
compiled = sum(sum(d.stats.cache_misses.values()) for d in kernels().values())
print(repr(pred[:5, 0].tolist()), compiled,
      sum("numba cache" in str(r.message) for r in rec), flush=True)
"""


def test_prebuilt_cache_is_used_where_it_is_read_only(tmp_path):
    """A cache built beforehand (here by a fit; ``python -m bpt.precompile`` in practice)
    in NUMBA_CACHE_DIR, which is read-only afterwards, with no other writable cache
    location (the package directory and the user cache directory unusable, as on
    CVMFS or in a container image): the kernels load from it (nothing is compiled, the
    same predictions, no warning); a kernel it lacks (float32 features) is compiled in
    the process and not saved, with one warning, and the fit works."""
    pkg, blocker = _package_without_cache_dirs(tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir()
    env = {"PYTHONPATH": str(pkg), "NUMBA_CACHE_DIR": str(cache),
           "HOME": str(blocker / "home"), "XDG_CACHE_HOME": str(blocker / "cache"),
           "PYTHONDONTWRITEBYTECODE": "1", "BPT_TEST_READ_ONLY": str(cache)}

    def run(code):
        full = dict(os.environ, **env)
        full.pop("NUMBA_THREADING_LAYER", None)
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=full, cwd=str(tmp_path), timeout=TIMEOUT * 2, check=False)
        assert res.returncode == 0, res.stderr[-4000:]
        return res.stdout.split("\n")[-2].rsplit(" ", 2)

    built, n_built, warned = run(_PREBUILT_FIT.replace("DTYPE", "np.float64"))
    assert int(n_built) > 5 and warned == "0"            # compiled, and saved: writable
    assert any(f.endswith(".nbi") for _, _, fs in os.walk(cache) for f in fs)
    loaded, n_loaded, warned = run(_READ_ONLY + _PREBUILT_FIT.replace("DTYPE", "np.float64"))
    assert loaded == built
    assert (n_loaded, warned) == ("0", "0")
    before = sorted(os.path.join(d, f) for d, _, fs in os.walk(cache) for f in fs)
    _, n_new, warned = run(_READ_ONLY + _PREBUILT_FIT.replace("DTYPE", "np.float32"))
    assert int(n_new) > 0 and warned == "1"
    assert sorted(os.path.join(d, f) for d, _, fs in os.walk(cache) for f in fs) == before


def test_precompile_fills_the_cache():
    """``python -m bpt.precompile`` (in process: the suite's cache is mostly warm) fits
    every variant and reports the kernels and where they are cached."""
    from bpt.precompile import kernels, precompile
    n, hits, compiled, paths = precompile(verbose=False)
    assert n >= 40 and paths
    # every variant reached its own kernels (a signature each, loaded or compiled)
    ready = {name for name, d in kernels().items() if d.signatures}
    for name in ("_engine._grower.grow_tree", "_engine._splitting.find_split_exact",
                 "_engine._loss.add_leaf_log_ratio", "_engine._linear.add_linear_log_ratio",
                 "_engine._predictor._predict_linear", "_engine._binning._map_to_bins",
                 "_engine._contributions._contributions"):
        assert "bpt." + name in ready, (name, sorted(ready))
    assert any(name.startswith("bpt.inference.") for name in ready), sorted(ready)
    grow = kernels()["bpt._engine._grower.grow_tree"]
    assert len(grow.signatures) >= 4        # BIT / BPT, with and without best-first growth


def test_cached_kernel_follows_a_change_in_another_file(tmp_path):
    """numba checks a cached kernel against its own file only; a kernel's machine code also
    holds the kernels it calls from other files.  In a copy of the package, a cached
    kernel in one module calls a kernel in another; after the callee's file alone
    changes (the caller's file untouched, as after ``git pull`` in an editable install),
    a new process must run the new callee, not the stale cached caller."""
    pkg = tmp_path / "site"
    shutil.copytree(os.path.join(ROOT, "bpt"), pkg / "bpt",
                    ignore=shutil.ignore_patterns("__pycache__"))
    callee = pkg / "bpt" / "_probe_callee.py"
    callee.write_text("from numba import njit\n\n\n@njit(cache=True)\n"
                      "def value():\n    return 1\n")
    (pkg / "bpt" / "_probe_caller.py").write_text(
        "from numba import njit\n\nfrom ._probe_callee import value\n\n\n"
        "@njit(cache=True)\ndef outer(x):\n    return value() + x\n")
    env = {"PYTHONPATH": str(pkg), "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    code = ("import bpt; assert bpt.__file__.startswith(%r); from bpt._probe_caller import "
            "outer; print(outer(10), sum(outer.stats.cache_hits.values()))" % str(pkg))

    def run():
        out = _run(["-c", code], env=env, cwd=str(tmp_path)).stdout.split()
        return int(out[-2]), int(out[-1])        # result, signatures loaded from the cache

    assert run() == (11, 0)          # compiled and cached
    assert run() == (11, 1)          # loaded from the cache
    callee.write_text(callee.read_text().replace("return 1", "return 2"))
    assert run() == (12, 0)          # recompiled, not the stale cached caller
