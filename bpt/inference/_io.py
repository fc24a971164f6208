"""Whole inference models in one file: ``AdditiveModel.save`` / :func:`load_model`.

The file is a bpt container (``bpt/_io.py``) of kind ``"bpt.model"``: one
checksum covers everything.  Its JSON meta describes the structure (POIs,
nuisances, processes, normalisations, luminosity, which estimator maps to which
parameter names); its arrays are

* ``process/<i>/X`` (float64, (N_i, F)) and ``process/<i>/weight`` (float64, (N_i,)):
  the simulation of process i, needed for the yields;
* ``estimator/<j>`` (uint8): the complete estimator file (``est.save``) of each
  distinct BoostedInformationTree / BoostedParametricTree, read back with
  :func:`bpt.load` (its own format version, checks and checksum);
* ``fractions`` (uint8): the fraction classifier as a ``skops.io`` dump (or, only
  when explicitly allowed, a pickle).

Loading builds the estimators from plain arrays; the classifier is built by
``skops.io`` only from types that skops trusts by default or that the caller
explicitly trusts.  Nothing is unpickled unless ``trusted=True``.
"""

from __future__ import annotations

import io
import numbers
import pickle

import numpy as np

from .._io import (decode_value, encode_value, load as _load_estimator, read_container,
                   save_estimator, write_container)
from ._layout import Nuisance, Process

__all__ = ["MODEL_KIND", "save_model", "read_model"]

MODEL_KIND = "bpt.model"
_SKOPS_HINT = "pip install bpt[skops]"
_META_KEYS = ["bpt_version", "format_version", "fractions", "kind", "luminosity", "n_estimators",
              "nuisances", "pois", "processes"]


# ===================================================================== saving
def _type_name(obj):
    t = type(obj)
    return f"{t.__module__}.{t.__qualname__}"


def _dump_fractions(clf, allow_pickle):
    """(meta entry, uint8 array) of the fraction classifier."""
    try:
        import skops
        import skops.io as sio
    except ImportError:
        if not allow_pickle:
            raise ImportError(
                "AdditiveModel.save stores the fraction classifier with skops.io, which is not "
                f"installed: {_SKOPS_HINT} (or pip install skops).  Alternatively "
                "save(path, allow_pickle=True) stores it as a pickle, which "
                "bpt.inference.load_model then reads only with trusted=True") from None
        sio = None
    entry = {"class": _type_name(clf)}
    if sio is not None:
        try:
            data = sio.dumps(clf)
        except Exception as exc:          # skops cannot represent some object in clf
            if not allow_pickle:
                raise TypeError(f"skops.io cannot save the fraction classifier "
                                f"({_type_name(clf)}): {type(exc).__name__}: {exc}; "
                                "save(path, allow_pickle=True) stores it as a pickle, which "
                                "load_model reads only with trusted=True") from exc
        else:
            entry.update(format="skops", skops_version=str(skops.__version__))
            return entry, np.frombuffer(data, dtype=np.uint8)
    data = pickle.dumps(clf, protocol=4)
    entry.update(format="pickle", skops_version=None)
    return entry, np.frombuffer(data, dtype=np.uint8)


def _estimator_bytes(est, what):
    buf = io.BytesIO()
    try:
        save_estimator(est, buf)
    except TypeError as exc:
        raise TypeError(f"{what}: {exc}.  AdditiveModel.save stores only fitted bpt estimators "
                        "(BoostedInformationTree, BoostedParametricTree)") from None
    return np.frombuffer(buf.getvalue(), dtype=np.uint8)


def _names(names):
    return [names] if isinstance(names, str) else [str(n) for n in names]


def save_model(model, target, allow_pickle=False):
    """Write ``model`` (an AdditiveModel) to ``target`` (path, atomic; or binary file object)."""
    arrays, estimators = {}, {}          # id(estimator) -> index: shared models stored once

    def estimator_index(est, what):
        j = estimators.get(id(est))
        if j is None:
            j = estimators[id(est)] = len(estimators)
            arrays[f"estimator/{j}"] = _estimator_bytes(est, what)
        return j

    processes = []
    for i, p in enumerate(model.processes):
        what = f"Process {p.name!r}"
        arrays[f"process/{i}/X"] = np.ascontiguousarray(p.X, dtype=np.float64)
        arrays[f"process/{i}/weight"] = np.ascontiguousarray(p.weight, dtype=np.float64)
        ratio = None
        if p.ratio is not None:
            est, pois = p.ratio if isinstance(p.ratio, tuple) else (p.ratio, None)
            ratio = {"estimator": estimator_index(est, f"{what}: ratio"),
                     "pois": None if pois is None else _names(pois)}
        systematics = []
        for s, (est, names) in enumerate(p.systematics):
            systematics.append({"estimator": estimator_index(est, f"{what}: systematics[{s}]"),
                                "nuisances": _names(names)})
        normalization = [[n, encode_value(k, arrays, f"process/{i}/kappa/{n}")]
                         for n, k in p.normalization.items()]
        processes.append({"name": p.name, "X": f"process/{i}/X",
                          "weight": f"process/{i}/weight", "ratio": ratio,
                          "systematics": systematics, "normalization": normalization})
    luminosity = None
    if model.luminosity is not None:
        name, kappa = model.luminosity
        luminosity = {"nuisance": name, "kappa": encode_value(kappa, arrays, "luminosity")}
    fractions = None
    if model.fractions is not None:
        fractions, arrays["fractions"] = _dump_fractions(model.fractions, allow_pickle)
    meta = {"pois": list(model.pois),
            "nuisances": [{"name": n.name, "constraint": n.constraint} for n in model.nuisances],
            "luminosity": luminosity, "processes": processes, "n_estimators": len(estimators),
            "fractions": fractions}
    write_container(target, MODEL_KIND, meta, arrays)


# ===================================================================== loading
def _check_trusted(trusted):
    if trusted is True or trusted is False or trusted is None:
        return bool(trusted)
    if isinstance(trusted, (str, bytes)) or not isinstance(trusted, (list, tuple, set,
                                                                     frozenset)):
        raise TypeError("trusted must be False, True or a list of type names (as listed by "
                        f"the error of load_model or skops.io.get_untrusted_types), got "
                        f"{trusted!r}")
    for t in trusted:
        if not isinstance(t, (str, type)):
            raise TypeError(f"trusted types must be str (fully qualified names) or types, got "
                            f"{t!r}")
    return list(trusted)


def _trusted_names(trusted):
    out = set()
    for t in trusted:
        if isinstance(t, str):
            out.add(t)
        else:                           # skops names a type module + "." + __name__
            out.update({f"{t.__module__}.{t.__name__}", f"{t.__module__}.{t.__qualname__}"})
    return out


def read_model(source, trusted=False):
    """The constructor arguments of a saved AdditiveModel (a dict); see
    :func:`bpt.inference.load_model` for ``trusted`` and the errors."""
    trusted = _check_trusted(trusted)
    meta, arrays = read_container(source)
    if meta["kind"] != MODEL_KIND:
        hint = " (use bpt.load)" if meta["kind"] == "bpt.estimator" else ""
        raise ValueError(f"the file holds a {meta['kind']!r}, not a saved inference model "
                         f"({MODEL_KIND!r}){hint}")
    loader = _MODEL_LOADERS.get(meta["format_version"])
    if loader is None:
        raise ValueError(f"no model loader for format version {meta['format_version']}")
    return loader(meta, arrays, trusted)


class _TrustError(ValueError):
    """Refusal to build an untrusted classifier (re-raised unchanged by the loader)."""


def _fields(obj, keys, what):
    if not isinstance(obj, dict) or sorted(obj) != sorted(keys):
        raise ValueError(f"{what} must have exactly the fields {sorted(keys)}")
    return obj


def _string_list(obj, what):
    if not isinstance(obj, list) or not all(isinstance(s, str) for s in obj):
        raise ValueError(f"{what} must be a list of strings")
    return obj


def _array(arrays, used, name, dtype, ndim, what):
    a = arrays.get(name) if isinstance(name, str) else None
    if a is None or a.dtype != dtype or a.ndim != ndim:
        raise ValueError(f"{what}: array {name!r} is missing or not a {ndim}-d {np.dtype(dtype)} "
                         "array")
    if name in used:
        raise ValueError(f"{what}: array {name!r} is used twice")
    used.add(name)
    return a


def _model_v1(meta, arrays, trusted):
    if sorted(meta) != _META_KEYS:
        raise ValueError("the model header has missing or unknown fields")
    try:
        return _build_v1(meta, arrays, trusted)
    except _TrustError:
        raise
    except ValueError as exc:
        raise ValueError(f"invalid inference model in file: {exc}") from None
    except (TypeError, KeyError, IndexError, AttributeError, OverflowError,
            RecursionError) as exc:
        raise ValueError(f"invalid inference model in file: {type(exc).__name__}: "
                         f"{exc}") from None


def _build_v1(meta, arrays, trusted):
    used = set()
    n_est = meta["n_estimators"]
    if type(n_est) is not int or not 0 <= n_est <= len(arrays):
        raise ValueError(f"bad number of estimators {n_est!r}")
    estimators = []
    for j in range(n_est):
        data = _array(arrays, used, f"estimator/{j}", np.uint8, 1, f"estimator {j}")
        try:
            estimators.append(_load_estimator(io.BytesIO(data.tobytes())))
        except ValueError as exc:
            raise ValueError(f"estimator {j}: {exc}") from None

    referenced = set()

    def estimator(j, what):
        if type(j) is not int or not 0 <= j < n_est:
            raise ValueError(f"{what}: bad estimator index {j!r}")
        referenced.add(j)
        return estimators[j]

    pois = _string_list(meta["pois"], "pois")
    if not isinstance(meta["nuisances"], list):
        raise ValueError("nuisances must be a list")
    nuisances = []
    for k, n in enumerate(meta["nuisances"]):
        n = _fields(n, ["name", "constraint"], f"nuisance {k}")
        nuisances.append(Nuisance(n["name"], constraint=n["constraint"]))
    if not isinstance(meta["processes"], list):
        raise ValueError("processes must be a list")
    processes = []
    for i, p in enumerate(meta["processes"]):
        what = f"process {i}"
        p = _fields(p, ["name", "X", "weight", "ratio", "systematics", "normalization"], what)
        X = _array(arrays, used, p["X"], np.float64, 2, what)
        w = _array(arrays, used, p["weight"], np.float64, 1, what)
        ratio = p["ratio"]
        if ratio is not None:
            ratio = _fields(ratio, ["estimator", "pois"], f"{what} ratio")
            est = estimator(ratio["estimator"], f"{what} ratio")
            ratio = est if ratio["pois"] is None else (
                est, _string_list(ratio["pois"], f"{what} ratio POIs"))
        if not isinstance(p["systematics"], list):
            raise ValueError(f"{what}: systematics must be a list")
        systematics = []
        for s, entry in enumerate(p["systematics"]):
            entry = _fields(entry, ["estimator", "nuisances"], f"{what} systematics[{s}]")
            systematics.append((estimator(entry["estimator"], f"{what} systematics[{s}]"),
                                _string_list(entry["nuisances"], f"{what} systematics[{s}]")))
        norm = p["normalization"]
        if not (isinstance(norm, list) and all(isinstance(e, list) and len(e) == 2
                                               and isinstance(e[0], str) for e in norm)):
            raise ValueError(f"{what}: normalization must be a list of [name, kappa]")
        normalization = {n: _number(decode_value(k, arrays), f"{what} normalization {n!r}")
                         for n, k in norm}
        if len(normalization) != len(norm):
            raise ValueError(f"{what}: repeated normalization nuisance")
        processes.append(Process(p["name"], X, w, ratio=ratio, systematics=systematics,
                                 normalization=normalization))
    luminosity = meta["luminosity"]
    if luminosity is not None:
        luminosity = _fields(luminosity, ["nuisance", "kappa"], "luminosity")
        luminosity = (luminosity["nuisance"],
                      _number(decode_value(luminosity["kappa"], arrays), "luminosity kappa"))
    fractions = None
    if meta["fractions"] is not None:
        entry = _fields(meta["fractions"], ["class", "format", "skops_version"], "fractions")
        data = _array(arrays, used, "fractions", np.uint8, 1, "fractions")
        fractions = _load_fractions(entry, data.tobytes(), trusted)
    extra = sorted(set(arrays) - used)
    if extra:
        raise ValueError(f"arrays {extra} are not part of the model")
    if len(referenced) != n_est:
        raise ValueError(f"estimators {sorted(set(range(n_est)) - referenced)} are not part of "
                         "the model")
    n_features = processes[0].X.shape[1] if processes else None
    for j, est in enumerate(estimators):
        if n_features is not None and est.n_features_in_ != n_features:
            raise ValueError(f"estimator {j} has {est.n_features_in_} features, the simulation "
                             f"{n_features}")
    return {"processes": processes, "pois": pois, "nuisances": nuisances,
            "fractions": fractions, "luminosity": luminosity}


def _number(v, what):
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise ValueError(f"{what} must be a number, got {v!r}")
    return v


def _load_fractions(entry, data, trusted):
    fmt, cls = entry["format"], entry["class"]
    what = f"the fraction classifier ({cls})" if isinstance(cls, str) else "the fraction classifier"
    if fmt == "pickle":
        if trusted is not True:
            raise _TrustError(f"{what} is stored as a pickle (saved with allow_pickle=True); "
                             "unpickling runs code from the file, so load_model refuses it "
                             "unless trusted=True.  Pass trusted=True only for a file from a "
                             "source you trust")
        try:
            return pickle.loads(data)
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
                IndexError, KeyError) as exc:
            raise ValueError(f"{what}: unreadable pickle: {type(exc).__name__}: {exc}") from None
    if fmt != "skops":
        raise ValueError(f"unknown storage format {fmt!r} of the fraction classifier")
    try:
        import skops.io as sio
    except ImportError:
        raise ImportError(f"{what} is stored with skops.io, which is not installed: "
                          f"{_SKOPS_HINT} (or pip install skops)") from None
    try:
        untrusted = list(sio.get_untrusted_types(data=data))
    except Exception as exc:
        raise ValueError(f"{what}: unreadable skops data: {type(exc).__name__}: {exc}") from None
    if trusted is True:
        allowed = untrusted
    else:
        allowed = list(trusted) if trusted else []
        missing = [t for t in untrusted if t not in _trusted_names(allowed)]
        if missing:
            raise _TrustError(
                f"{what} contains types that skops.io does not trust by default: {missing}.  "
                "Building them could run their code.  If you trust this file, load it with "
                f"bpt.inference.load_model(path, trusted={missing!r}) (or trusted=True)")
    try:
        return sio.loads(data, trusted=allowed or None)
    except Exception as exc:
        raise ValueError(f"{what} could not be loaded by skops.io: {type(exc).__name__}: "
                         f"{exc}") from None


_MODEL_LOADERS = {1: _model_v1}        # container format version -> model loader
