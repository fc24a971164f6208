"""Warnings that point at the caller's line, not into bpt."""

from __future__ import annotations

import os
import sys
import warnings

__all__ = ["warn_user"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _skipped_dirs():
    """bpt itself, and scikit-learn (whose Pipeline / GridSearchCV call bpt's fit)."""
    dirs = [_PACKAGE_DIR]
    sklearn = sys.modules.get("sklearn")
    if sklearn is not None and getattr(sklearn, "__file__", None):
        dirs.append(os.path.dirname(os.path.abspath(sklearn.__file__)) + os.sep)
    return tuple(dirs)


def _stacklevel():
    """``stacklevel`` for ``warnings.warn`` called in ``warn_user``: the first frame whose
    file lies outside bpt and scikit-learn (the user's code, a test, a script)."""
    skipped = _skipped_dirs()
    frame = sys._getframe(2)          # the caller of warn_user
    level = 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(skipped):
        frame = frame.f_back
        level += 1
    return level if frame is not None else 2


def warn_user(message, category=UserWarning):
    """``warnings.warn(message, category)`` attributed to the first line outside bpt.

    The warning's ``filename``/``lineno`` name the user's call (e.g. ``est.fit(...)`` or
    ``pipeline.fit(...)``), however deep inside bpt it is raised, so that filters and the
    printed location are useful.
    """
    warnings.warn(message, category, stacklevel=_stacklevel())
