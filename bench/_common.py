"""Helpers shared by the benchmark scripts (timing, fresh-process runs, peak memory)."""

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def best_of(fn, repeat=3):
    """Minimum wall time of ``repeat`` calls (seconds) and the last result."""
    best, out = np.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def run_fresh(code, env=None):
    """Run python ``code`` in a fresh process; it must print one JSON line last."""
    full_env = dict(os.environ, **(env or {}))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=full_env, check=False)
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-3000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def fresh_fit_times(make_data_code, fit_code):
    """First fit in a fresh process with an empty numba cache (compiling), then with
    the on-disk cache warm; returns (cold_compile_s, cold_cached_s)."""
    code = f"""
import json, time
import numpy as np
{make_data_code}
t = time.perf_counter()
{fit_code}
print(json.dumps({{"t": time.perf_counter() - t}}))
"""
    with tempfile.TemporaryDirectory() as cache:
        env = {"NUMBA_CACHE_DIR": cache}
        compile_s = run_fresh(code, env)["t"]
        cached_s = run_fresh(code, env)["t"]
    return compile_s, cached_s


def peak_memory(make_data_code, fit_code):
    """Peak RSS growth (bytes) of a fit in a fresh process, after the data are in memory.

    The data are built and written to .npy files first, then a fresh process loads
    them (no temporaries), records its RSS and runs the fit; the growth of the peak
    RSS over that baseline is the fit's own memory.
    """
    with tempfile.TemporaryDirectory() as tmp:
        code_save = f"""
import json
import numpy as np
{make_data_code}
for name, arr in data.items():
    np.save({tmp!r} + "/" + name + ".npy", arr)
print(json.dumps({{"bytes": int(sum(a.nbytes for a in data.values()))}}))
"""
        data_bytes = run_fresh(code_save)["bytes"]
        code_fit = f"""
import json, resource, glob, os
import numpy as np
import bpt  # import and compile-load before the baseline
data = {{os.path.basename(p)[:-4]: np.load(p) for p in glob.glob({tmp!r} + "/*.npy")}}
globals().update(data)
{fit_code.replace('FIT_SIZE', '2000')}
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
import psutil
base = max(base, psutil.Process().memory_info().rss)
{fit_code.replace('FIT_SIZE', 'None')}
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({{"extra": peak - base}}))
"""
        extra = run_fresh(code_fit)["extra"]
    return extra, data_bytes


def ratio(a, b):
    return a / b if b > 0 else float("nan")
