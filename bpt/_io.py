"""Saved models: a safe, versioned single-file container, and estimator save/load.

Loading a file never runs code from it: the file holds only raw little-endian
numeric arrays and a JSON header, and every value is checked before use.

Container layout, format version 1 (all integers little-endian)::

    offset  size  field
         0     8  magic  b"\\x89BPT\\r\\n\\x1a\\n"
         8     4  uint32 format version (1)
        12     4  uint32 flags (0)
        16     8  uint64 length J of the JSON header
        24     8  uint64 length D of the data section
        32    32  sha256 of bytes [0, 32) and [64, end): everything but itself
        64     J  JSON header (UTF-8, ASCII only, sorted keys)
             pad  zeros up to a multiple of 16
             D    data: the arrays, each starting at a multiple of 16

The JSON header is ``{"kind", "bpt_version", "meta", "arrays"}``; ``arrays`` lists
``{"name", "dtype", "shape", "offset"}`` in file order, at the canonical offsets
the writer uses.  A file is accepted only if it is exactly this; anything else
(truncation, flipped bytes, foreign file, unknown version) raises ValueError.

Internal API reused by other savers (e.g. whole inference models):
:func:`write_container`, :func:`read_container`, :func:`encode_value`,
:func:`decode_value`.  Estimators: :func:`save_estimator`, :func:`load`.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import numbers
import os
import secrets
import struct

import numpy as np

__all__ = ["FORMAT_VERSION", "MAGIC", "write_container", "read_container", "encode_value",
           "decode_value", "save_estimator", "load"]

MAGIC = b"\x89BPT\r\n\x1a\n"
FORMAT_VERSION = 1
ESTIMATOR_KIND = "bpt.estimator"
_ALIGN = 16
_FIXED = 64                       # bytes before the JSON header
_PREFIX = struct.Struct("<8sIIQQ")  # magic, version, flags, json_len, data_len (32 bytes)
_DTYPES = frozenset(["|b1", "|i1", "<i2", "<i4", "<i8", "|u1", "<u2", "<u4", "<u8",
                     "<f4", "<f8", "<c8", "<c16"])
_HEADER_KEYS = ("kind", "bpt_version", "meta", "arrays")
_RESERVED_META = frozenset(["kind", "format_version", "bpt_version"])


def _align(n):
    return -(-n // _ALIGN) * _ALIGN


def _bpt_version():
    from . import __version__
    return __version__


# ===================================================================== writing
def _le_array(name, a):
    """``a`` as a C-contiguous little-endian array of an allowed dtype."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"array {name!r} must be a numpy array, got {type(a).__name__}")
    dt = a.dtype.newbyteorder("<") if a.dtype.kind in "biufc" else a.dtype
    if dt.str not in _DTYPES:
        raise TypeError(f"array {name!r} has dtype {a.dtype}, which cannot be saved (allowed: "
                        "bool, integer, float and complex)")
    return a.astype(dt, order="C", copy=False)


def _layout(arrays):
    """Canonical table of the data section: [(name, array, offset)], data length."""
    table, pos = [], 0
    for name, a in arrays.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"array names must be non-empty strings, got {name!r}")
        a = _le_array(name, a)
        pos = _align(pos)
        table.append((name, a, pos))
        pos += a.nbytes
    return table, pos


def _container_bytes(kind, meta, arrays):
    """The pieces of a container file (a list of buffers) for ``write_container``."""
    if not isinstance(kind, str) or not kind:
        raise TypeError("kind must be a non-empty string")
    if not isinstance(meta, dict) or _RESERVED_META.intersection(meta):
        raise TypeError(f"meta must be a dict without the keys {sorted(_RESERVED_META)}")
    table, data_len = _layout(arrays)
    header = {
        "kind": kind,
        "bpt_version": _bpt_version(),
        "meta": meta,
        "arrays": [{"name": n, "dtype": a.dtype.str, "shape": list(a.shape), "offset": off}
                   for n, a, off in table],
    }
    try:
        text = json.dumps(header, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except ValueError as exc:      # NaN/inf floats: use encode_value
        raise TypeError(f"meta is not plain JSON: {exc}") from None
    js = text.encode("ascii")
    prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, 0, len(js), data_len)
    pieces = [js, bytes(_align(_FIXED + len(js)) - _FIXED - len(js))]
    pos = 0
    for _, a, off in table:
        pieces.append(bytes(off - pos))
        pieces.append(memoryview(a.reshape(-1).view(np.uint8)))
        pos = off + a.nbytes
    digest = hashlib.sha256(prefix)
    for p in pieces:
        digest.update(p)
    return [prefix, digest.digest()] + pieces


def _create_temp(directory, base):
    """A new temporary file next to the target, created with the umask's usual permissions."""
    while True:
        tmp = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL |
                                getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:
            continue


def write_container(target, kind, meta, arrays):
    """Write a container: ``kind`` (e.g. ``"bpt.estimator"``), JSON ``meta``, numeric ``arrays``.

    ``target`` is a path (written atomically: a temporary file in the same
    directory is fsync'ed, then renamed over ``target``, so a crash leaves either
    the old file or the complete new one) or a binary file object.  ``meta``
    must be plain JSON (use :func:`encode_value` for tuples, numpy values and
    arrays); ``arrays`` maps names to numpy arrays of bool/int/float/complex dtype.
    Raises TypeError for content that is not plain data.
    """
    pieces = _container_bytes(kind, meta, arrays)
    if not isinstance(target, (str, bytes, os.PathLike)):
        for p in pieces:
            target.write(p)
        return
    path = os.fsdecode(target)
    directory = os.path.dirname(os.path.abspath(path))
    tmp, fd = _create_temp(directory, os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            for p in pieces:
                f.write(p)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if hasattr(os, "O_DIRECTORY"):          # make the rename durable (POSIX)
        try:
            dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass


# ===================================================================== reading
def _read_all(source):
    """(format version, whole file as uint8 array) of a path or binary file object.

    The magic and version are checked on the first 12 bytes before the rest is read.
    """
    if isinstance(source, (str, bytes, os.PathLike)):
        with open(source, "rb") as f:
            return _read_stream(f, os.fstat(f.fileno()).st_size)
    return _read_stream(source, None)


def _describe_foreign(head):
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive (e.g. numpy .npz)"
    if head.startswith(b"\x93NUMPY"):
        return "a numpy .npy file"
    if head[:1] == b"\x80":
        return "a pickle / joblib file; bpt.load never unpickles"
    return None


def _read_stream(f, size):
    head = f.read(12)
    if head[:8] != MAGIC[:len(head[:8])]:
        what = _describe_foreign(head)
        raise ValueError("not a bpt model file (wrong magic bytes)" +
                         (f": it looks like {what}" if what else ""))
    if len(head) < 12:
        raise ValueError(f"the file is truncated: {len(head)} bytes" if head else
                         "the file is empty")
    version = struct.unpack_from("<I", head, 8)[0]
    if version not in _READERS:
        if version > FORMAT_VERSION:
            raise ValueError(f"the file has format version {version}, newer than this bpt "
                             f"{_bpt_version()} reads (up to {FORMAT_VERSION}): upgrade bpt")
        raise ValueError(f"unknown format version {version}")
    if size is not None and size >= 12:
        buf = np.empty(size, dtype=np.uint8)
        buf[:12] = np.frombuffer(head, dtype=np.uint8)
        n = f.readinto(memoryview(buf)[12:]) or 0
        buf = buf[:12 + n]
        if n == size - 12 and f.read(1):
            raise ValueError("the file grew while being read")
    else:
        rest = f.read()
        buf = np.empty(12 + len(rest), dtype=np.uint8)
        buf[:12] = np.frombuffer(head, dtype=np.uint8)
        buf[12:] = np.frombuffer(rest, dtype=np.uint8)
    return version, buf


def read_container(source, kind=None):
    """Read and verify a container: returns ``(meta, arrays)``.

    ``meta`` is the writer's dict plus ``"kind"``, ``"format_version"`` and
    ``"bpt_version"``; ``arrays`` are writable native-endian numpy arrays (views
    of one buffer).  Raises ValueError (with the reason) for a file that is not
    a complete, unmodified bpt container of a supported version, or (if given)
    not of ``kind``.
    """
    version, buf = _read_all(source)
    meta, arrays = _READERS[version](buf)
    if kind is not None and meta["kind"] != kind:
        raise ValueError(f"the file holds a {meta['kind']!r}, not a {kind!r}")
    return meta, arrays


def _reject_constant(name):
    raise ValueError(f"non-standard JSON constant {name}")


def _read_v1(buf):
    size = buf.shape[0]
    if size < _FIXED:
        raise ValueError(f"the file is truncated: {size} bytes, shorter than the "
                         f"{_FIXED}-byte header")
    _, _, flags, json_len, data_len = _PREFIX.unpack_from(buf, 0)
    data_start = _align(_FIXED + json_len)
    expected = data_start + data_len
    if size != expected:
        reason = "truncated" if size < expected else "has trailing bytes"
        raise ValueError(f"the file {reason}: {size} bytes, but its header records "
                         f"{expected} (damaged file or header)")
    digest = hashlib.sha256(memoryview(buf)[:32])
    digest.update(memoryview(buf)[_FIXED:])
    if digest.digest() != bytes(buf[32:_FIXED]):
        raise ValueError("checksum mismatch: the file is corrupted or was modified after "
                         "it was written")
    if flags != 0:
        raise ValueError(f"unsupported flags {flags:#x} in format version 1")
    try:
        header = json.loads(bytes(buf[_FIXED:_FIXED + json_len]).decode("ascii"),
                            parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"corrupt JSON header: {exc}") from None
    if not isinstance(header, dict) or sorted(header) != sorted(_HEADER_KEYS):
        raise ValueError(f"the JSON header must have exactly the keys {list(_HEADER_KEYS)}")
    kind, written_by, meta = header["kind"], header["bpt_version"], header["meta"]
    if not (isinstance(kind, str) and isinstance(written_by, str) and isinstance(meta, dict)):
        raise ValueError("the JSON header has fields of the wrong type")
    if _RESERVED_META.intersection(meta):
        raise ValueError("the JSON meta uses reserved keys")
    arrays = _arrays_v1(header["arrays"], buf[data_start:], data_len)
    meta = dict(meta, kind=kind, bpt_version=written_by, format_version=1)
    return meta, arrays


def _arrays_v1(table, data, data_len):
    if not isinstance(table, list):
        raise ValueError("the array table must be a list")
    arrays, pos = {}, 0
    for i, entry in enumerate(table):
        if not isinstance(entry, dict) or sorted(entry) != ["dtype", "name", "offset", "shape"]:
            raise ValueError(f"array table entry {i} is malformed")
        name, dt, shape, off = entry["name"], entry["dtype"], entry["shape"], entry["offset"]
        if not isinstance(name, str) or not name or name in arrays:
            raise ValueError(f"array table entry {i}: bad or duplicate name {name!r}")
        if not isinstance(dt, str) or dt not in _DTYPES:
            raise ValueError(f"array {name!r}: dtype {dt!r} is not allowed")
        if (not isinstance(shape, list) or len(shape) > 32
                or not all(type(s) is int and s >= 0 for s in shape)):
            raise ValueError(f"array {name!r}: bad shape {shape!r}")
        dtype = np.dtype(dt)
        nbytes = math.prod(shape) * dtype.itemsize
        pos = _align(pos)
        if type(off) is not int or off != pos or off + nbytes > data_len:
            raise ValueError(f"array {name!r}: offset {off!r} / size {nbytes} do not fit the "
                             "data section")
        a = data[off:off + nbytes].view(dtype).reshape(shape)
        if not dtype.isnative:
            a = a.astype(dtype.newbyteorder("="))
        arrays[name] = a
        pos = off + nbytes
    if pos != data_len:
        raise ValueError(f"the data section has {data_len - pos} bytes no array accounts for")
    return arrays


_READERS = {1: _read_v1}        # format version -> reader; keep every version readable


# ===================================================================== values
def encode_value(value, arrays, name):
    """Plain-JSON form of ``value``; numeric arrays go to ``arrays`` under names ``name...``.

    Supports None, bool, int, float (incl. NaN/inf), str, list, tuple, dict with
    str keys, numpy scalars, numeric numpy arrays, arrays of str, and
    ``numpy.random.RandomState``.  Anything else raises TypeError: no pickle.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        if value.dtype.kind not in "biuf":
            raise TypeError(f"{name}: numpy scalars of dtype {value.dtype} are not supported")
        return {"__scalar__": value.dtype.newbyteorder("<").str,
                "value": encode_value(value.item(), arrays, name)}
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, tuple):
        return {"__tuple__": [encode_value(v, arrays, f"{name}/{i}")
                              for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [encode_value(v, arrays, f"{name}/{i}") for i, v in enumerate(value)]
    if isinstance(value, dict):
        if not all(isinstance(k, str) and not k.startswith("__") for k in value):
            raise TypeError(f"{name}: dict keys must be str not starting with '__', got "
                            f"{list(value)}")
        return {k: encode_value(value[k], arrays, f"{name}/{k}") for k in sorted(value)}
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "OU" and all(isinstance(s, str) for s in value.flat):
            return {"__strarray__": [str(s) for s in value.flat], "shape": list(value.shape),
                    "object": value.dtype.kind == "O"}
        if name in arrays:
            raise ValueError(f"duplicate array name {name!r}")
        arrays[name] = _le_array(name, value)
        return {"__ndarray__": name}
    if isinstance(value, np.random.RandomState):
        kind, key, pos, has_gauss, gauss = value.get_state()
        return {"__random_state__": encode_value(
            {"kind": kind, "key": key, "pos": pos, "has_gauss": has_gauss, "gauss": gauss},
            arrays, name)}
    raise TypeError(f"{name}: values of type {type(value).__name__} cannot be saved "
                    "(bpt files hold only plain data, never pickles)")


_TAGS = {"__scalar__": {"__scalar__", "value"}, "__float__": {"__float__"},
         "__tuple__": {"__tuple__"}, "__strarray__": {"__strarray__", "shape", "object"},
         "__ndarray__": {"__ndarray__"}, "__random_state__": {"__random_state__"}}


def decode_value(obj, arrays):
    """Inverse of :func:`encode_value`; ValueError for anything malformed."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, list):
        return [decode_value(v, arrays) for v in obj]
    if not isinstance(obj, dict):
        raise ValueError(f"unexpected JSON value of type {type(obj).__name__}")
    tags = [k for k in obj if k in _TAGS]
    if not tags:
        if any(k.startswith("__") for k in obj):
            raise ValueError(f"unknown tag in {sorted(obj)}")
        return {k: decode_value(v, arrays) for k, v in obj.items()}
    tag = tags[0]
    if set(obj) != _TAGS[tag]:
        raise ValueError(f"malformed {tag} entry")
    body = obj[tag]
    if tag == "__tuple__" and isinstance(body, list):
        return tuple(decode_value(v, arrays) for v in body)
    if tag == "__float__" and body in ("nan", "inf", "-inf"):
        return float(body)
    if tag == "__ndarray__" and isinstance(body, str) and body in arrays:
        return arrays[body]
    if tag == "__scalar__" and body in _DTYPES:
        value = decode_value(obj["value"], arrays)
        if isinstance(value, (bool, int, float)):
            try:
                return np.dtype(body).type(value)
            except (OverflowError, ValueError, TypeError):
                pass
    if tag == "__strarray__" and isinstance(body, list) and all(isinstance(s, str) for s in body):
        shape, is_object = obj["shape"], obj["object"]
        if (isinstance(shape, list) and all(type(s) is int and s >= 0 for s in shape)
                and math.prod(shape) == len(body) and isinstance(is_object, bool)):
            a = np.empty(len(body), dtype=object) if is_object else np.array(body, dtype=str)
            if is_object:
                a[:] = body
            return a.reshape(shape)
    if tag == "__random_state__" and isinstance(body, dict):
        return _decode_random_state(decode_value(body, arrays))
    raise ValueError(f"malformed {tag} entry")


def _decode_random_state(s):
    keys = {"kind", "key", "pos", "has_gauss", "gauss"}
    if not isinstance(s, dict) or set(s) != keys:
        raise ValueError("malformed random state")
    rs = np.random.RandomState()
    try:
        rs.set_state((s["kind"], s["key"], s["pos"], s["has_gauss"], s["gauss"]))
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"malformed random state: {exc}") from None
    return rs


# ===================================================================== estimators
# Class name -> module.  Only these classes are ever built from a file.
_CLASSES = {"BoostedInformationTree": "bpt._bit", "BoostedParametricTree": "bpt._bpt"}
_ENSEMBLE_DTYPES = {"feature": np.int64, "threshold": np.float64, "left": np.int64,
                    "right": np.int64, "value": np.float64, "gain": np.float64,
                    "n_samples": np.int64, "tree_start": np.int64, "learning_rates": np.float64}
# [engine] per-node arrays that files written before them lack; loading fills the
# default (TreeEnsemble.from_arrays: NaN goes to the child with more training events)
_ENSEMBLE_OPTIONAL = {"missing_go_left": np.bool_}


def _estimator_class(name):
    if not isinstance(name, str) or name not in _CLASSES:
        raise ValueError(f"unknown estimator class {name!r} (known: {sorted(_CLASSES)})")
    return getattr(importlib.import_module(_CLASSES[name]), name)


def _fitted_attributes(est):
    """Public fitted attributes (trailing underscore) except the ensemble."""
    return {k: v for k, v in vars(est).items()
            if k.endswith("_") and not k.startswith("_") and k != "ensemble_"}


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
    arrays = {}
    params = encode_value(est.get_params(deep=False), arrays, "param")
    fitted = hasattr(est, "ensemble_")
    attributes = encode_value(_fitted_attributes(est) if fitted else {}, arrays, "attr")
    meta = {"class": cls_name, "params": params, "fitted": fitted, "attributes": attributes}
    if fitted:
        ens = est.ensemble_.arrays
        _check_ensemble(ens, est.n_features_in_, ens["value"].shape[1])
        for k in _ENSEMBLE_DTYPES:
            arrays[f"ensemble/{k}"] = ens[k]
        for k in _ENSEMBLE_OPTIONAL:                      # [engine]
            arrays[f"ensemble/{k}"] = ens[k]
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
    if sorted(meta) != ["attributes", "bpt_version", "class", "fitted", "format_version",
                        "kind", "params"]:
        raise ValueError("the estimator header has missing or unknown fields")
    cls = _estimator_class(meta["class"])
    try:
        params = decode_value(meta["params"], arrays)
        attributes = decode_value(meta["attributes"], arrays)
        est = _build(cls, params, attributes, meta["fitted"], arrays)
    except ValueError as exc:
        raise ValueError(f"invalid {meta['class']} in file: {exc}") from None
    except (TypeError, KeyError, IndexError, AttributeError, OverflowError,
            RecursionError) as exc:
        raise ValueError(f"invalid {meta['class']} in file: {type(exc).__name__}: {exc}") from None
    return est


_ESTIMATOR_LOADERS = {1: _estimator_v1}


def _build(cls, params, attributes, fitted, arrays):
    from ._engine._predictor import TreeEnsemble
    if not isinstance(params, dict):
        raise ValueError("parameters must be a dict")
    unknown = set(params) - set(cls._get_param_names())
    if unknown:      # missing ones (older files) take their defaults
        raise ValueError(f"unknown parameters {sorted(unknown)} for {cls.__name__}")
    est = cls(**params)
    est._check_params()
    terms = est._resolve_terms()
    if not isinstance(fitted, bool) or not isinstance(attributes, dict):
        raise ValueError("malformed 'fitted' / 'attributes'")
    if not fitted:
        if attributes or any(k.startswith("ensemble/") for k in arrays):
            raise ValueError("an unfitted estimator cannot have fitted attributes")
        return est
    for k, v in attributes.items():
        if (not k.isidentifier() or not k.endswith("_") or k.startswith("_")
                or hasattr(cls, k) or k == "ensemble_"):
            raise ValueError(f"attribute name {k!r} is not allowed")
        setattr(est, k, v)
    ens = {k: arrays.get(f"ensemble/{k}") for k in _ENSEMBLE_DTYPES}
    ens.update({k: arrays[f"ensemble/{k}"] for k in _ENSEMBLE_OPTIONAL      # [engine]
                if f"ensemble/{k}" in arrays})
    _check_fitted(est, terms, ens)
    est.ensemble_ = TreeEnsemble.from_arrays(ens)
    return est


def _check_fitted(est, terms, ens):
    """Consistency of the fitted attributes and the trees (so nothing can crash numba)."""
    for k in ("terms_", "n_features_in_", "n_iter_", "train_loss_"):
        if not hasattr(est, k):
            raise ValueError(f"missing fitted attribute {k}")
    if est.terms_ != terms:
        raise ValueError(f"terms_ {est.terms_!r} do not match the parameters")
    F = est.n_features_in_
    if type(F) is not int or F < 1:
        raise ValueError(f"n_features_in_ must be a positive int, got {F!r}")
    names = getattr(est, "feature_names_in_", None)
    if names is not None and not (isinstance(names, np.ndarray) and names.dtype == object
                                  and names.shape == (F,)):
        raise ValueError("feature_names_in_ must be an object array of n_features_in_ strings")
    T = len(est.terms_)
    n_trees = _check_ensemble(ens, F, T)
    if type(est.n_iter_) is not int or est.n_iter_ != n_trees:
        raise ValueError(f"n_iter_ = {est.n_iter_!r} but the file holds {n_trees} trees")
    for k in ("train_loss_", "validation_loss_"):
        v = getattr(est, k, None)
        if v is not None and not (isinstance(v, np.ndarray) and v.dtype == np.float64
                                  and v.ndim == 1):
            raise ValueError(f"{k} must be a 1-d float64 array")
    P = est.n_parameters if hasattr(est, "n_parameters") else est.n_nuisances
    shapes = {"base_points_": (None, P), "metric_": (T, T)}
    if hasattr(est, "V_"):
        shapes["V_"] = (est.base_points_.shape[0] if hasattr(est, "base_points_") else None, T)
    for k, shape in shapes.items():
        v = getattr(est, k, None)
        if v is None:
            continue
        if not (isinstance(v, np.ndarray) and v.dtype == np.float64 and v.ndim == len(shape)
                and all(s is None or s == d for s, d in zip(shape, v.shape))):
            raise ValueError(f"{k} must be a float64 array of shape {shape}")


def _check_ensemble(ens, n_features, n_out):
    """Validate flat tree arrays; returns the number of trees.

    Every node of tree t lies in [tree_start[t], tree_end[t]); an internal node j
    has 0 <= feature < n_features and children j < child < tree_end, so every
    walk from a root ends at a leaf (feature == -1, children -1) in bounds.
    """
    for k, dt in _ENSEMBLE_DTYPES.items():
        a = ens.get(k)
        if not isinstance(a, np.ndarray) or a.dtype != dt:
            raise ValueError(f"tree array {k!r} is missing or not {np.dtype(dt)}")
    n = ens["feature"].shape[0]
    for k, dt in _ENSEMBLE_OPTIONAL.items():                               # [engine]
        if k in ens and not (isinstance(ens[k], np.ndarray) and ens[k].dtype == dt
                             and ens[k].shape == (n,)):
            raise ValueError(f"tree array {k!r} must be {np.dtype(dt)} of shape ({n},)")
    for k in ("feature", "threshold", "left", "right", "gain", "n_samples"):
        if ens[k].shape != (n,):
            raise ValueError(f"tree array {k!r} has shape {ens[k].shape}, expected ({n},)")
    if ens["value"].shape != (n, n_out):
        raise ValueError(f"tree values have shape {ens['value'].shape}, expected ({n}, {n_out})")
    start, rates = ens["tree_start"], ens["learning_rates"]
    n_trees = start.shape[0]
    if start.ndim != 1 or rates.shape != (n_trees,):
        raise ValueError("tree_start / learning_rates have inconsistent shapes")
    if n_trees == 0:
        if n:
            raise ValueError("nodes without trees")
        return 0
    if start[0] != 0 or np.any(np.diff(start) <= 0) or start[-1] >= n:
        raise ValueError("tree_start must increase strictly from 0 below the number of nodes")
    end = np.append(start[1:], n)
    node_end = np.repeat(end, end - start)
    idx = np.arange(n)
    feat, left, right = ens["feature"], ens["left"], ens["right"]
    leaf = feat == -1
    internal = ~leaf
    if np.any(feat[internal] < 0) or np.any(feat[internal] >= n_features):
        raise ValueError(f"split features must lie in 0..{n_features - 1}")
    if np.any(left[leaf] != -1) or np.any(right[leaf] != -1):
        raise ValueError("leaves must have children -1")
    for child in (left, right):
        c, j, e = child[internal], idx[internal], node_end[internal]
        if np.any(c <= j) or np.any(c >= e):
            raise ValueError("child indices must point forward inside their own tree")
    if np.any(np.isnan(ens["threshold"][internal])):
        raise ValueError("split thresholds must not be NaN")
    return n_trees

