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


def peak_memory(make_data_code, fit_code, warmup_rows=2000):
    """Peak RSS growth (bytes) of a fit in a fresh process, after the data are in memory.

    The data are built and written to .npy files first; a fresh process loads them,
    runs a tiny warm-up fit (numba kernels loaded), then samples its resident set size
    every millisecond during the real fit.  Returns (peak - baseline, data bytes).
    ``fit_code`` uses the placeholder FIT_SIZE for the number of rows (``warmup_rows``
    in the warm-up fit, None in the measured one).
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
import glob, json, os, threading, time
import numpy as np
import psutil
import bpt
data = {{os.path.basename(p)[:-4]: np.load(p) for p in glob.glob({tmp!r} + "/*.npy")}}
globals().update(data)
{fit_code.replace('FIT_SIZE', str(int(warmup_rows)))}
proc = psutil.Process()
base = proc.memory_info().rss
peak = [base]
done = threading.Event()
def poll():
    while not done.is_set():
        peak[0] = max(peak[0], proc.memory_info().rss)
        time.sleep(0.001)
th = threading.Thread(target=poll)
th.start()
{fit_code.replace('FIT_SIZE', 'None')}
done.set()
th.join()
print(json.dumps({{"extra": peak[0] - base}}))
"""
        extra = run_fresh(code_fit)["extra"]
    return extra, data_bytes


def ratio(a, b):
    return a / b if b > 0 else float("nan")
