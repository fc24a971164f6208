"""Estimator files: ``est.save(path)`` and :func:`bpt.load` on the container format.

A file of kind ``"bpt.estimator"`` holds, in its JSON meta, ``{"class", "params",
"fitted", "attributes"}`` (values in the codec of ``_container``) and the tree arrays
as ``ensemble/<field>`` (``TreeEnsemble.DTYPES``).  What an estimator stores and how a
loaded state is checked is the estimator's business (``bpt/_state.py``): this module
only asks it for its state (``__bpt_state__``) and hands a decoded state back
(``__bpt_from_state__``).
"""

from __future__ import annotations

import importlib

from ._container import decode_value, encode_value, read_container, write_container

__all__ = ["ESTIMATOR_KIND", "save_estimator", "load"]

ESTIMATOR_KIND = "bpt.estimator"
_ENSEMBLE_PREFIX = "ensemble/"
# Class name -> module.  Only these classes are ever built from a file.
_CLASSES = {"BoostedInformationTree": "bpt._bit", "BoostedParametricTree": "bpt._bpt"}
_HEADER_V1 = ["attributes", "bpt_version", "class", "fitted", "format_version", "kind",
              "params"]


def _estimator_class(name):
    if not isinstance(name, str) or name not in _CLASSES:
        raise ValueError(f"unknown estimator class {name!r} (known: {sorted(_CLASSES)})")
    return getattr(importlib.import_module(_CLASSES[name]), name)


def save_estimator(est, target):
    """Save a bpt estimator (fitted or not) to ``target`` (path or binary file object).

    Stores the class name, ``get_params()``, every public fitted attribute
    (``terms_``, ``n_features_in_``, ``feature_names_in_``, ``base_points_``, ...)
    and the tree arrays.  Raises TypeError for an unsupported class or for a
    parameter/attribute value that is not plain data.
    """
    cls_name = type(est).__name__
    if cls_name not in _CLASSES or type(est) is not _estimator_class(cls_name):
        raise TypeError(f"cannot save {type(est).__qualname__}: only {sorted(_CLASSES)} can be "
                        "saved (subclasses would be loaded as their base class)")
    state = est.__bpt_state__()
    arrays = {}
    fitted = state.ensemble is not None
    meta = {"class": cls_name,
            "params": encode_value(state.params, arrays, "param"),
            "fitted": fitted,
            "attributes": encode_value(state.attributes if fitted else {}, arrays, "attr")}
    if fitted:
        for k, a in state.ensemble.items():
            arrays[_ENSEMBLE_PREFIX + k] = a
    write_container(target, ESTIMATOR_KIND, meta, arrays)


def load(source):
    """Load an estimator saved with ``est.save(path)``; returns an instance of its class.

    ``source`` is a path or a binary file object.  Raises ValueError, with the
    reason, when the file is not a complete, unmodified bpt estimator file of a
    supported format version; OSError when it cannot be read.
    """
    meta, arrays = read_container(source)
    if meta["kind"] != ESTIMATOR_KIND:
        hint = " (use bpt.inference.load_model)" if meta["kind"] == "bpt.model" else ""
        raise ValueError(f"the file holds a {meta['kind']!r}, not a saved estimator{hint}")
    loader = _ESTIMATOR_LOADERS.get(meta["format_version"])
    if loader is None:
        raise ValueError(f"no estimator loader for format version {meta['format_version']}")
    return loader(meta, arrays)


def _estimator_v1(meta, arrays):
    if sorted(meta) != _HEADER_V1:
        raise ValueError("the estimator header has missing or unknown fields")
    cls = _estimator_class(meta["class"])
    try:
        params = decode_value(meta["params"], arrays)
        attributes = decode_value(meta["attributes"], arrays)
        fitted = meta["fitted"]
        ensemble = {k[len(_ENSEMBLE_PREFIX):]: a for k, a in arrays.items()
                    if k.startswith(_ENSEMBLE_PREFIX)}
        if not isinstance(fitted, bool) or not isinstance(attributes, dict):
            raise ValueError("malformed 'fitted' / 'attributes'")
        if not fitted:
            if attributes or ensemble:
                raise ValueError("an unfitted estimator cannot have fitted attributes")
            return cls.__bpt_from_state__(params)
        return cls.__bpt_from_state__(params, attributes, ensemble)
    except ValueError as exc:
        raise ValueError(f"invalid {meta['class']} in file: {exc}") from None
    except (TypeError, KeyError, IndexError, AttributeError, OverflowError,
            RecursionError) as exc:
        raise ValueError(f"invalid {meta['class']} in file: {type(exc).__name__}: {exc}") from None


_ESTIMATOR_LOADERS = {1: _estimator_v1}   # format version -> loader; keep every version
