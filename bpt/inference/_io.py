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

__all__ = ["MODEL_KIND", "COMBINATION_KIND", "save_model", "save_combination", "read_model"]

MODEL_KIND = "bpt.model"
COMBINATION_KIND = "bpt.combination"
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


class _Estimators:
    """Estimators of a file, each stored once (by identity) as ``estimator/<j>``."""

    def __init__(self, arrays):
        self.arrays = arrays
        self.index = {}

    def __call__(self, est, what):
        j = self.index.get(id(est))
        if j is None:
            j = self.index[id(est)] = len(self.index)
            self.arrays[f"estimator/{j}"] = _estimator_bytes(est, what)
        return j

    def __len__(self):
        return len(self.index)


def _processes_meta(processes, arrays, prefix, estimator_index):
    out = []
    for i, p in enumerate(processes):
        what = f"Process {p.name!r}"
        arrays[f"{prefix}process/{i}/X"] = np.ascontiguousarray(p.X, dtype=np.float64)
        arrays[f"{prefix}process/{i}/weight"] = np.ascontiguousarray(p.weight, dtype=np.float64)
        ratio = None
        if p.ratio is not None:
            est, pois = p.ratio if isinstance(p.ratio, tuple) else (p.ratio, None)
            ratio = {"estimator": estimator_index(est, f"{what}: ratio"),
                     "pois": None if pois is None else _names(pois)}
        systematics = []
        for s, (est, names) in enumerate(p.systematics):
            systematics.append({"estimator": estimator_index(est, f"{what}: systematics[{s}]"),
                                "nuisances": _names(names)})
        normalization = [[n, encode_value(k, arrays, f"{prefix}process/{i}/kappa/{n}")]
                         for n, k in p.normalization.items()]
        out.append({"name": p.name, "X": f"{prefix}process/{i}/X",
                    "weight": f"{prefix}process/{i}/weight", "ratio": ratio,
                    "systematics": systematics, "normalization": normalization})
    return out


def _luminosity_meta(luminosity, arrays, prefix):
    if luminosity is None:
        return None
    name, kappa = luminosity
    return {"nuisance": name, "kappa": encode_value(kappa, arrays, f"{prefix}luminosity")}


def _unbinned_meta(model, arrays, prefix, estimator_index, allow_pickle):
    fractions = None
    if model.fractions is not None:
        fractions, arrays[f"{prefix}fractions"] = _dump_fractions(model.fractions, allow_pickle)
        fractions = dict(fractions, array=f"{prefix}fractions") if prefix else fractions
    meta = {"pois": list(model.pois),
            "nuisances": [{"name": n.name, "constraint": n.constraint} for n in model.nuisances],
            "luminosity": _luminosity_meta(model.luminosity, arrays, prefix),
            "processes": _processes_meta(model.processes, arrays, prefix, estimator_index),
            "fractions": fractions}
    if model.name != "unbinned" or prefix:
        meta["name"] = model.name
    return meta


def save_model(model, target, allow_pickle=False):
    """Write ``model`` (an AdditiveModel) to ``target`` (path, atomic; or binary file object)."""
    arrays = {}
    estimators = _Estimators(arrays)
    meta = _unbinned_meta(model, arrays, "", estimators, allow_pickle)
    meta["n_estimators"] = len(estimators)
    write_container(target, MODEL_KIND, meta, arrays)


def _binned_meta(ch, arrays, prefix, estimator_index):
    obs = ch.observable
    if callable(obs) or not isinstance(obs, (str, numbers.Integral)):
        raise TypeError(f"channel {ch.name!r}: a callable observable cannot be saved; build the "
                        "channel with a feature index or name to save it")
    arrays[f"{prefix}edges"] = np.ascontiguousarray(ch.edges, dtype=np.float64)
    return {"type": "binned", "name": ch.name, "pois": list(ch.pois),
            "nuisances": [{"name": n.name, "constraint": n.constraint} for n in ch.nuisances],
            "luminosity": _luminosity_meta(ch.luminosity, arrays, prefix),
            "processes": _processes_meta(ch.processes, arrays, prefix, estimator_index),
            "observable": obs if isinstance(obs, str) else int(obs),
            "edges": f"{prefix}edges", "feature_names": ch.feature_names}


def save_combination(model, target, allow_pickle=False):
    """Write a Combination (or a single BinnedChannel) to ``target``."""
    from ._binned import BinnedChannel
    arrays = {}
    estimators = _Estimators(arrays)
    single = isinstance(model, BinnedChannel)
    channels = [model] if single else model.channels
    metas = []
    for c, ch in enumerate(channels):
        prefix = f"channel/{c}/"
        if isinstance(ch, BinnedChannel):
            metas.append(_binned_meta(ch, arrays, prefix, estimators))
        else:
            metas.append(dict(_unbinned_meta(ch, arrays, prefix, estimators, allow_pickle),
                              type="unbinned"))
    meta = {"channels": metas, "single": single, "n_estimators": len(estimators),
            "pois": list(model.pois),
            "nuisances": [{"name": n.name, "constraint": n.constraint} for n in model.nuisances]}
    write_container(target, COMBINATION_KIND, meta, arrays)


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
    """What a saved model file holds: ``("unbinned", constructor arguments of an
    AdditiveModel)`` or ``("combination", spec)`` (see :func:`read_combination`); see
    :func:`bpt.inference.load_model` for ``trusted`` and the errors."""
    trusted = _check_trusted(trusted)
    meta, arrays = read_container(source)
    if meta["kind"] not in (MODEL_KIND, COMBINATION_KIND):
        hint = " (use bpt.load)" if meta["kind"] == "bpt.estimator" else ""
        raise ValueError(f"the file holds a {meta['kind']!r}, not a saved inference model "
                         f"({MODEL_KIND!r} or {COMBINATION_KIND!r}){hint}")
    loaders = _MODEL_LOADERS if meta["kind"] == MODEL_KIND else _COMBINATION_LOADERS
    loader = loaders.get(meta["format_version"])
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


def _guarded(build, *args):
    try:
        return build(*args)
    except _TrustError:
        raise
    except ValueError as exc:
        raise ValueError(f"invalid inference model in file: {exc}") from None
    except (TypeError, KeyError, IndexError, AttributeError, OverflowError,
            RecursionError) as exc:
        raise ValueError(f"invalid inference model in file: {type(exc).__name__}: "
                         f"{exc}") from None


def _model_v1(meta, arrays, trusted):
    keys = sorted(meta)
    if keys != _META_KEYS and keys != sorted(_META_KEYS + ["name"]):
        raise ValueError("the model header has missing or unknown fields")
    return "unbinned", _guarded(_build_v1, meta, arrays, trusted)


class _Reader:
    """Estimators and the bookkeeping of which arrays / estimators a file's parts use."""

    def __init__(self, meta, arrays):
        self.arrays = arrays
        self.used = set()
        n_est = meta["n_estimators"]
        if type(n_est) is not int or not 0 <= n_est <= len(arrays):
            raise ValueError(f"bad number of estimators {n_est!r}")
        self.n_est = n_est
        self.estimators = []
        for j in range(n_est):
            data = _array(arrays, self.used, f"estimator/{j}", np.uint8, 1, f"estimator {j}")
            try:
                self.estimators.append(_load_estimator(io.BytesIO(data.tobytes())))
            except ValueError as exc:
                raise ValueError(f"estimator {j}: {exc}") from None
        self.referenced = set()

    def estimator(self, j, what):
        if type(j) is not int or not 0 <= j < self.n_est:
            raise ValueError(f"{what}: bad estimator index {j!r}")
        self.referenced.add(j)
        return self.estimators[j]

    def array(self, name, dtype, ndim, what):
        return _array(self.arrays, self.used, name, dtype, ndim, what)

    def finish(self, n_features):
        extra = sorted(set(self.arrays) - self.used)
        if extra:
            raise ValueError(f"arrays {extra} are not part of the model")
        if len(self.referenced) != self.n_est:
            raise ValueError(f"estimators {sorted(set(range(self.n_est)) - self.referenced)} are "
                             "not part of the model")
        for j, est in enumerate(self.estimators):
            if n_features is not None and est.n_features_in_ != n_features:
                raise ValueError(f"estimator {j} has {est.n_features_in_} features, the "
                                 f"simulation {n_features}")


def _build_nuisances(obj):
    if not isinstance(obj, list):
        raise ValueError("nuisances must be a list")
    out = []
    for k, n in enumerate(obj):
        n = _fields(n, ["name", "constraint"], f"nuisance {k}")
        out.append(Nuisance(n["name"], constraint=n["constraint"]))
    return out


def _build_processes(obj, reader):
    arrays = reader.arrays
    if not isinstance(obj, list):
        raise ValueError("processes must be a list")
    processes = []
    for i, p in enumerate(obj):
        what = f"process {i}"
        p = _fields(p, ["name", "X", "weight", "ratio", "systematics", "normalization"], what)
        X = reader.array(p["X"], np.float64, 2, what)
        w = reader.array(p["weight"], np.float64, 1, what)
        ratio = p["ratio"]
        if ratio is not None:
            ratio = _fields(ratio, ["estimator", "pois"], f"{what} ratio")
            est = reader.estimator(ratio["estimator"], f"{what} ratio")
            ratio = est if ratio["pois"] is None else (
                est, _string_list(ratio["pois"], f"{what} ratio POIs"))
        if not isinstance(p["systematics"], list):
            raise ValueError(f"{what}: systematics must be a list")
        systematics = []
        for s, entry in enumerate(p["systematics"]):
            entry = _fields(entry, ["estimator", "nuisances"], f"{what} systematics[{s}]")
            systematics.append((reader.estimator(entry["estimator"], f"{what} systematics[{s}]"),
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
    return processes


def _build_luminosity(obj, arrays):
    if obj is None:
        return None
    obj = _fields(obj, ["nuisance", "kappa"], "luminosity")
    return (obj["nuisance"], _number(decode_value(obj["kappa"], arrays), "luminosity kappa"))


def _unbinned_args(meta, reader, trusted, fractions_key="fractions"):
    pois = _string_list(meta["pois"], "pois")
    nuisances = _build_nuisances(meta["nuisances"])
    processes = _build_processes(meta["processes"], reader)
    luminosity = _build_luminosity(meta["luminosity"], reader.arrays)
    fractions = None
    if meta["fractions"] is not None:
        keys = ["class", "format", "skops_version"]
        if fractions_key != "fractions":
            keys = keys + ["array"]
        entry = _fields(meta["fractions"], keys, "fractions")
        name = entry.get("array", "fractions")
        data = reader.array(name, np.uint8, 1, "fractions")
        fractions = _load_fractions(entry, data.tobytes(), trusted)
    args = {"processes": processes, "pois": pois, "nuisances": nuisances,
            "fractions": fractions, "luminosity": luminosity}
    if "name" in meta:
        if not isinstance(meta["name"], str):
            raise ValueError("the channel name must be a string")
        args["name"] = meta["name"]
    return args


def _build_v1(meta, arrays, trusted):
    reader = _Reader(meta, arrays)
    args = _unbinned_args(meta, reader, trusted)
    processes = args["processes"]
    reader.finish(processes[0].X.shape[1] if processes else None)
    return args


_COMBINATION_KEYS = ["bpt_version", "channels", "format_version", "kind", "n_estimators",
                     "nuisances", "pois", "single"]
_UNBINNED_CHANNEL_KEYS = sorted(["type", "name", "pois", "nuisances", "luminosity", "processes",
                                 "fractions"])
_BINNED_CHANNEL_KEYS = sorted(["type", "name", "pois", "nuisances", "luminosity", "processes",
                               "observable", "edges", "feature_names"])


def _combination_v1(meta, arrays, trusted):
    if sorted(meta) != _COMBINATION_KEYS:
        raise ValueError("the combination header has missing or unknown fields")
    return "combination", _guarded(_build_combination_v1, meta, arrays, trusted)


def _build_combination_v1(meta, arrays, trusted):
    """{"channels": [("unbinned" | "binned", constructor arguments)], "pois", "nuisances",
    "single"}."""
    reader = _Reader(meta, arrays)
    if not isinstance(meta["channels"], list) or not meta["channels"]:
        raise ValueError("channels must be a non-empty list")
    if not isinstance(meta["single"], bool):
        raise ValueError("single must be true or false")
    channels = []
    n_features = None
    for c, ch in enumerate(meta["channels"]):
        if not isinstance(ch, dict) or ch.get("type") not in ("unbinned", "binned"):
            raise ValueError(f"channel {c}: unknown channel type")
        if ch["type"] == "unbinned":
            if sorted(ch) != _UNBINNED_CHANNEL_KEYS:
                raise ValueError(f"channel {c}: missing or unknown fields")
            args = _unbinned_args(ch, reader, trusted, fractions_key="array")
        else:
            if sorted(ch) != _BINNED_CHANNEL_KEYS:
                raise ValueError(f"channel {c}: missing or unknown fields")
            obs = ch["observable"]
            if not (isinstance(obs, str) or type(obs) is int):
                raise ValueError(f"channel {c}: bad observable {obs!r}")
            fn = ch["feature_names"]
            if fn is not None:
                fn = _string_list(fn, f"channel {c} feature_names")
            if not isinstance(ch["name"], str):
                raise ValueError(f"channel {c}: the name must be a string")
            args = {"processes": _build_processes(ch["processes"], reader),
                    "pois": _string_list(ch["pois"], "pois"),
                    "nuisances": _build_nuisances(ch["nuisances"]),
                    "observable": obs,
                    "edges": reader.array(ch["edges"], np.float64, 1, f"channel {c} edges"),
                    "luminosity": _build_luminosity(ch["luminosity"], arrays),
                    "name": ch["name"], "feature_names": fn}
        procs = args["processes"]
        if procs:
            if n_features is not None and procs[0].X.shape[1] != n_features:
                n_features = -1           # channels may differ: skip the estimator check
            elif n_features is None:
                n_features = procs[0].X.shape[1]
        channels.append((ch["type"], args))
    reader.finish(n_features if n_features and n_features > 0 else None)
    if meta["single"] and len(channels) != 1:
        raise ValueError("a single-channel file must hold one channel")
    return {"channels": channels, "pois": _string_list(meta["pois"], "pois"),
            "nuisances": _build_nuisances(meta["nuisances"]), "single": meta["single"]}


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
_COMBINATION_LOADERS = {1: _combination_v1}
