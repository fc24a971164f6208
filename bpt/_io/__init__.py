"""Saved files (private package; the public entry points are ``est.save``, :func:`bpt.load`
and :func:`bpt.inference.load_model`).

``_container``  the versioned single-file format (magic, checksum, JSON header, aligned
                raw arrays) and the value codec (plain JSON + named arrays, no pickle)
``_estimator``  estimator files: asks the estimator for its state and hands a decoded
                state back (the estimators declare and check their own state:
                ``bpt/_state.py``)

Whole inference models are saved by ``bpt/inference/_io.py`` on the same container.
"""

from ._container import (_READERS, FORMAT_VERSION, MAGIC, decode_value, encode_value,
                         read_container, write_container)
from ._estimator import _ESTIMATOR_LOADERS, ESTIMATOR_KIND, load, save_estimator

__all__ = ["ESTIMATOR_KIND", "FORMAT_VERSION", "MAGIC", "decode_value", "encode_value", "load",
           "read_container", "save_estimator", "write_container"]
