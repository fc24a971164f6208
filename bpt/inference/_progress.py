"""Progress reports of long inference calls (scans, intervals, toys, coverage, impacts).

``verbose`` (an int) is the same everywhere:

* 0 (default): silent;
* 1: ``logging`` INFO records (about every 5% of the steps, at most ~20) and a
  summary at the end, on the logger
  named ``"bpt"`` (enable with ``logging.basicConfig(level=logging.INFO)`` or
  ``logging.getLogger("bpt").setLevel(logging.INFO)`` plus a handler);
* 2 or more: additionally a tqdm progress bar when ``tqdm`` is installed (else the
  log records only); 3 or more: a log record for every step.

Usage::

    with progress(n_points, "scan", verbose) as bar:
        for ...:
            ...
            bar.update(1, "t=%.3g" % t)          # one step done (optional note)

    for item in progress(items, "toys", verbose):   # or wrap an iterable
        ...
"""

from __future__ import annotations

import logging
import numbers
import time

__all__ = ["LOGGER_NAME", "logger", "check_verbose", "progress", "Progress"]

LOGGER_NAME = "bpt"
logger = logging.getLogger(LOGGER_NAME)


def check_verbose(verbose):
    """``verbose`` as a non-negative int (bool accepted as 0 / 1); ValueError otherwise."""
    if isinstance(verbose, (bool,)) or verbose is None:
        return int(bool(verbose))
    if not isinstance(verbose, numbers.Integral) or verbose < 0:
        raise ValueError(f"verbose must be a non-negative integer, got {verbose!r}")
    return int(verbose)


class Progress:
    """Counts steps of a task of ``total`` steps; logs and (verbose >= 2) draws a tqdm bar.

    Iterating over it iterates over the wrapped iterable, counting one step per item.
    Use as a context manager (or call :meth:`close`) to log the summary line.
    """

    def __init__(self, iterable_or_total, desc, verbose=0):
        self.verbose = check_verbose(verbose)
        if isinstance(iterable_or_total, numbers.Integral):
            self.iterable, self.total = None, int(iterable_or_total)
        else:
            self.iterable = iterable_or_total
            try:
                self.total = len(iterable_or_total)
            except TypeError:
                self.total = None
        self.desc = str(desc)
        self.n = 0
        self.start = time.perf_counter()
        self.closed = False
        self.bar = None
        if self.verbose >= 2:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self.bar = tqdm(total=self.total, desc=self.desc, leave=False)
        if self.verbose >= 1:
            logger.info("%s: start (%s steps)", self.desc,
                        "?" if self.total is None else self.total)

    def update(self, n=1, note=None):
        """``n`` more steps done; ``note`` (str) is added to the log record."""
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
            if note:
                self.bar.set_postfix_str(str(note), refresh=False)
        every = 1 if (self.verbose >= 3 or not self.total) else max(1, -(-self.total // 20))
        if self.verbose >= 1 and (self.n % every < n or self.n == self.total):
            tot = "?" if self.total is None else self.total
            logger.info("%s: %d/%s%s (%.1f s)", self.desc, self.n, tot,
                        f" {note}" if note else "", time.perf_counter() - self.start)

    def close(self, note=None):
        if self.closed:
            return
        self.closed = True
        if self.bar is not None:
            self.bar.close()
        if self.verbose >= 1:
            logger.info("%s: done, %d step(s) in %.2f s%s", self.desc, self.n,
                        time.perf_counter() - self.start, f" ({note})" if note else "")

    def __iter__(self):
        if self.iterable is None:
            raise TypeError("progress(total, ...) counts steps; iterate over progress(iterable)")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def progress(iterable_or_total, desc, verbose=0):
    """A :class:`Progress` over an iterable (iterate it) or a number of steps (``update``)."""
    return Progress(iterable_or_total, desc, verbose)
