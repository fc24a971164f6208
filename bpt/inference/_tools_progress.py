"""Progress messages of impacts and goodness-of-fit toys (a local stand-in: logging to
the "bpt" logger when ``verbose`` > 0; to be replaced by ``_progress`` at merge)."""

from __future__ import annotations

import logging
import numbers

__all__ = ["check_verbose", "report"]

logger = logging.getLogger("bpt")


def check_verbose(verbose):
    if isinstance(verbose, bool) or not isinstance(verbose, numbers.Integral) or verbose < 0:
        raise ValueError(f"verbose must be a non-negative integer, got {verbose!r}")
    return int(verbose)


def report(verbose, what, done, total):
    """Log '<what>: done/total' at INFO when verbose > 0."""
    if verbose > 0:
        logger.info("%s: %d/%d", what, done, total)
