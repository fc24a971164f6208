"""Export fitted trees to ONNX (extra ``onnx``) for ONNX Runtime in C++ frameworks.

:func:`to_onnx` builds one ``ai.onnx.ml`` ``TreeEnsembleRegressor`` node, one
target per term, whose output ``Y`` (N, n_terms) is ``est.predict(X)``.  A scikit-learn
``Pipeline`` ending in a bpt estimator is exported whole: skl2onnx converts the steps
before it and bpt's converter (:func:`register_skl2onnx`) the trees.

Precision, honestly
-------------------
bpt sends ``x <= threshold`` left; the graph uses ``BRANCH_LEQ`` with the same
tree structure and the leaf values (already scaled by the learning rate) as
target weights; base values are zero.  The operator's output is float32 (ONNX
defines it so), hence agreement with ``predict`` (float64) to ~1e-7 relative.

* ``ml_opset=3`` (default): thresholds and leaf values are stored as float64
  tensors (``*_as_tensor``).  With ``dtype="float64"`` input, routing equals
  bpt's for every row.  With ``dtype="float32"`` input (what C++ wrappers
  usually feed) the graph casts X to float64 first, so a float32 row routes
  exactly as bpt routes the same (float32-valued) numbers; a float64 row that
  you cast to float32 can route differently only where a feature lies within
  float32 rounding (relative 6e-8) of a threshold.
* ``ml_opset=1``, for runtimes without ai.onnx.ml opset 3 (float32 input only):
  attributes are float32.  Each threshold t is rounded *down* to the largest
  float32 t32 <= t, so for every float32 x, ``x <= t32`` exactly when
  ``x <= t``: routing is still exact for float32 rows.  Leaf values are rounded
  to float32 and summed in float32, so the error is ~1e-7 of the term's scale,
  larger relative to outputs where trees cancel.
* NaN inputs (missing values) take the side learned in training
  (``nodes_missing_value_tracks_true``), as in ``predict``.
* Linear leaves (``BoostedParametricTree(linear_leaves=...)``): a second
  TreeEnsembleRegressor gives every row's leaf in every tree (as an index into
  tables of the leaves' linear terms, exact below 2^24 leaves); Gather /
  GatherElements fetch the features, centres, ranges and slopes, and the terms
  (clipped to the leaf's range, 0 for NaN) are summed in float64 (opset 3) or
  float32 (opset 1) and added to the trees' float32 output.
"""

from __future__ import annotations

import json
import sys

import numpy as np
from sklearn.utils.validation import check_is_fitted

__all__ = ["to_onnx", "float32_thresholds", "register_skl2onnx"]


def float32_thresholds(threshold):
    """Largest float32 <= each float64 threshold (so float32 inputs route like bpt)."""
    t = np.asarray(threshold, dtype=np.float64)
    with np.errstate(over="ignore"):
        t32 = t.astype(np.float32)
    above = t32.astype(np.float64) > t
    t32[above] = np.nextafter(t32[above], np.float32(-np.inf))
    return t32


def _tree_attributes(arrays):
    """Flat node/target lists of TreeEnsembleRegressor from bpt's flat arrays."""
    feature, left, right = arrays["feature"], arrays["left"], arrays["right"]
    start = arrays["tree_start"]
    n, n_out = arrays["value"].shape
    sizes = np.diff(np.append(start, n))
    tree_id = np.repeat(np.arange(start.shape[0], dtype=np.int64), sizes)
    local = np.arange(n, dtype=np.int64) - start[tree_id]
    leaf = feature < 0
    offset = start[tree_id]
    leaf_ids = np.flatnonzero(leaf)
    return dict(
        nodes_treeids=tree_id.tolist(),
        nodes_nodeids=local.tolist(),
        nodes_featureids=np.where(leaf, 0, feature).tolist(),
        nodes_modes=np.where(leaf, "LEAF", "BRANCH_LEQ").tolist(),
        nodes_truenodeids=np.where(leaf, 0, left - offset).tolist(),
        nodes_falsenodeids=np.where(leaf, 0, right - offset).tolist(),
        # a NaN follows the side learned in training (bpt's missing_go_left): true = left
        nodes_missing_value_tracks_true=np.where(
            leaf, 0, arrays["missing_go_left"]).astype(np.int64).tolist(),
        target_treeids=np.repeat(tree_id[leaf_ids], n_out).tolist(),
        target_nodeids=np.repeat(local[leaf_ids], n_out).tolist(),
        target_ids=np.tile(np.arange(n_out, dtype=np.int64), leaf_ids.shape[0]).tolist(),
    ), leaf_ids


def _check_estimator(est):
    from ._bit import BoostedInformationTree
    from ._bpt import BoostedParametricTree
    if not isinstance(est, (BoostedInformationTree, BoostedParametricTree)):
        raise TypeError("to_onnx exports a fitted BoostedInformationTree or "
                        "BoostedParametricTree, or a Pipeline ending in one; got "
                        f"{type(est).__name__}")
    check_is_fitted(est, "ensemble_")
    if est.ensemble_.arrays["tree_start"].shape[0] == 0:
        raise ValueError("the model has no trees")


def _trees_node_attributes(est, ml_opset):
    """Attributes of the ai.onnx.ml TreeEnsembleRegressor node computing ``est.predict``."""
    a = est.ensemble_.arrays
    attrs, leaf_ids = _tree_attributes(a)
    return _with_values(attrs, a, a["value"][leaf_ids].reshape(-1), a["value"].shape[1],
                        ml_opset)


def _with_values(attrs, a, weights, n_targets, ml_opset):
    """TreeEnsembleRegressor attributes: ``attrs`` plus the thresholds of ``a`` and the
    target ``weights`` (float64 tensors for opset 3, float32 lists for opset 1)."""
    from onnx import numpy_helper
    thresholds = np.where(a["feature"] < 0, 0.0, a["threshold"])
    if ml_opset == 3:
        attrs["nodes_values_as_tensor"] = numpy_helper.from_array(thresholds, "nodes_values")
        attrs["target_weights_as_tensor"] = numpy_helper.from_array(
            np.asarray(weights, dtype=np.float64), "target_weights")
    else:
        attrs["nodes_values"] = float32_thresholds(thresholds).tolist()
        attrs["target_weights"] = np.asarray(weights).astype(np.float32).tolist()
    return dict(n_targets=int(n_targets), aggregate_function="SUM", post_transform="NONE",
                **attrs)


def _linear_tables(a):
    """Tables of the linear terms: per leaf with terms a row (row 0: no terms), columns
    = term slots (padded with slope 0): (row of every node (n,), feature (R, D) int64,
    centre, lo, hi (R, D), slope (R, D, n_out))."""
    count, start = a["linear_count"], a["linear_start"]
    n_out = a["value"].shape[1]
    with_terms = np.flatnonzero(count > 0)
    R, D = with_terms.shape[0] + 1, int(count.max())
    row = np.zeros(count.shape[0], dtype=np.int64)
    row[with_terms] = np.arange(1, R)
    feat = np.zeros((R, D), dtype=np.int64)
    centre, lo, hi = np.zeros((R, D)), np.zeros((R, D)), np.zeros((R, D))
    slope = np.zeros((R, D, n_out))
    for r, j in enumerate(with_terms, start=1):
        q = slice(start[j], start[j] + count[j])
        c = count[j]
        feat[r, :c] = a["linear_feature"][q]
        centre[r, :c] = a["linear_centre"][q]
        lo[r, :c] = a["linear_lo"][q]
        hi[r, :c] = a["linear_hi"][q]
        slope[r, :c] = a["linear_slope"][q]
    return row, feat, centre, lo, hi, slope


def _linear_parts(est, x, y_trees, y_out, ml_opset, fresh):
    """Nodes and initializers adding the linear leaves' terms to ``y_trees`` (float32
    (N, n_out)) as ``y_out``, from the input ``x`` (float64 for opset 3, float32 for
    opset 1).  Returns (nodes, initializers): nodes as (op, inputs, outputs, domain,
    attributes), initializers as (name, array); ``fresh(base)`` makes a unique name."""
    from onnx import TensorProto
    a = est.ensemble_.arrays
    n_nodes = a["feature"].shape[0]
    row, feat, centre, lo, hi, slope = _linear_tables(a)
    if row.max() >= 2 ** 24:
        raise ValueError("too many linear leaves for the float32 leaf index of ONNX "
                         f"({row.max()} >= 2^24)")
    ftype = np.float64 if ml_opset == 3 else np.float32
    n_trees = a["tree_start"].shape[0]
    attrs, leaf_ids = _tree_attributes(a)
    tree_of = np.repeat(np.arange(n_trees), np.diff(np.append(a["tree_start"], n_nodes)))
    attrs["target_treeids"] = tree_of[leaf_ids].tolist()
    attrs["target_nodeids"] = (leaf_ids - a["tree_start"][tree_of[leaf_ids]]).tolist()
    attrs["target_ids"] = tree_of[leaf_ids].tolist()
    attrs = _with_values(attrs, a, row[leaf_ids], n_trees, ml_opset)
    N = {k: fresh("lin_" + k) for k in (
        "leaf_f", "leaf", "feat_t", "centre_t", "lo_t", "hi_t", "slope_t", "fi", "flat",
        "fi_flat", "xg", "shape3", "x3", "c3", "lo3", "hi3", "nan", "xf", "xmax", "xclip",
        "d", "axis3", "d4", "s4", "prod", "axes12", "sum", "sum32")}
    D = feat.shape[1]
    inits = [(N["feat_t"], feat), (N["centre_t"], centre.astype(ftype)),
             (N["lo_t"], lo.astype(ftype)), (N["hi_t"], hi.astype(ftype)),
             (N["slope_t"], slope.astype(ftype)),
             (N["flat"], np.array([0, -1], dtype=np.int64)),
             (N["shape3"], np.array([0, n_trees, D], dtype=np.int64)),
             (N["axis3"], np.array([3], dtype=np.int64)),
             (N["axes12"], np.array([1, 2], dtype=np.int64))]
    nodes = [
        ("TreeEnsembleRegressor", [x], [N["leaf_f"]], "ai.onnx.ml", attrs),
        ("Cast", [N["leaf_f"]], [N["leaf"]], "", dict(to=TensorProto.INT64)),
        ("Gather", [N["feat_t"], N["leaf"]], [N["fi"]], "", dict(axis=0)),
        ("Reshape", [N["fi"], N["flat"]], [N["fi_flat"]], "", {}),
        ("GatherElements", [x, N["fi_flat"]], [N["xg"]], "", dict(axis=1)),
        ("Reshape", [N["xg"], N["shape3"]], [N["x3"]], "", {}),
        ("Gather", [N["centre_t"], N["leaf"]], [N["c3"]], "", dict(axis=0)),
        ("Gather", [N["lo_t"], N["leaf"]], [N["lo3"]], "", dict(axis=0)),
        ("Gather", [N["hi_t"], N["leaf"]], [N["hi3"]], "", dict(axis=0)),
        ("IsNaN", [N["x3"]], [N["nan"]], "", {}),
        ("Where", [N["nan"], N["c3"], N["x3"]], [N["xf"]], "", {}),
        ("Max", [N["xf"], N["lo3"]], [N["xmax"]], "", {}),
        ("Min", [N["xmax"], N["hi3"]], [N["xclip"]], "", {}),
        ("Sub", [N["xclip"], N["c3"]], [N["d"]], "", {}),
        ("Unsqueeze", [N["d"], N["axis3"]], [N["d4"]], "", {}),
        ("Gather", [N["slope_t"], N["leaf"]], [N["s4"]], "", dict(axis=0)),
        ("Mul", [N["d4"], N["s4"]], [N["prod"]], "", {}),
        ("ReduceSum", [N["prod"], N["axes12"]], [N["sum"]], "", dict(keepdims=0)),
        ("Cast", [N["sum"]], [N["sum32"]], "", dict(to=TensorProto.FLOAT)),
        ("Add", [y_trees, N["sum32"]], [y_out], "", {}),
    ]
    return nodes, inits


def _model_properties(est, dtype):
    from . import __version__
    names = getattr(est, "feature_names_in_", None)
    return {
        "bpt_version": __version__,
        "bpt_class": type(est).__name__,
        "terms": json.dumps([list(t) for t in est.terms_]),
        "feature_names": json.dumps(None if names is None else [str(s) for s in names]),
        "input_dtype": dtype,
    }


def _check_options(dtype, ml_opset):
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    if ml_opset not in (1, 3) or (ml_opset == 1 and dtype == "float64"):
        raise ValueError("ml_opset must be 3, or 1 with dtype='float32'")


def to_onnx(est, dtype="float32", ml_opset=3, path=None):
    """ONNX model computing ``est.predict(X)`` with one TreeEnsembleRegressor.

    Parameters
    ----------
    est : fitted BoostedInformationTree or BoostedParametricTree, or a fitted
        scikit-learn ``Pipeline`` whose last step is one
        The steps before the estimator are converted by skl2onnx (extra ``onnx``);
        without skl2onnx a Pipeline raises ImportError.
    dtype : {"float32", "float64"}
        Type of the graph input ``X`` (N, n_features).
    ml_opset : {3, 1}
        ai.onnx.ml opset: 3 stores float64 thresholds and values; 1 stores float32
        ones (float32 input only) for runtimes without opset 3.  See module notes.
    path : str, optional
        Also write the model there.

    Returns
    -------
    onnx.ModelProto with input ``X`` and float32 output ``Y`` (N, n_terms) in
    ``terms_`` order; metadata_props record the bpt version, class, terms and
    feature names.
    """
    import onnx
    from onnx import TensorProto, helper

    from . import __version__

    _check_options(dtype, ml_opset)
    if _is_pipeline(est):
        return _pipeline_to_onnx(est, dtype, ml_opset, path)
    _check_estimator(est)
    n_out = est.ensemble_.arrays["value"].shape[1]
    nodes = []
    tree_input = "X"
    if ml_opset == 3 and dtype == "float32":
        nodes.append(helper.make_node("Cast", ["X"], ["X64"], name="to_float64",
                                      to=TensorProto.DOUBLE))
        tree_input = "X64"
    linear = est.ensemble_.has_linear
    nodes.append(helper.make_node("TreeEnsembleRegressor", [tree_input],
                                  ["Y_trees" if linear else "Y"],
                                  domain="ai.onnx.ml", name="bpt_trees",
                                  **_trees_node_attributes(est, ml_opset)))
    initializers = []
    if linear:
        from onnx import numpy_helper
        parts, inits = _linear_parts(est, tree_input, "Y_trees", "Y", ml_opset,
                                     lambda base: base)
        for j, (op, ins, outs, domain, attrs) in enumerate(parts):
            nodes.append(helper.make_node(op, ins, outs, domain=domain or None,
                                          name=f"bpt_linear_{j}", **attrs))
        initializers = [numpy_helper.from_array(v, k) for k, v in inits]
    elem = TensorProto.FLOAT if dtype == "float32" else TensorProto.DOUBLE
    F = int(est.n_features_in_)
    graph = helper.make_graph(
        nodes, f"bpt_{type(est).__name__}",
        [helper.make_tensor_value_info("X", elem, [None, F])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, int(n_out)])],
        initializer=initializers)
    graph.doc_string = (f"{type(est).__name__}.predict(X): columns = terms {est.terms_}; "
                        "split rule x <= threshold goes left")
    model = helper.make_model(graph, producer_name="bpt", producer_version=__version__,
                              opset_imports=[helper.make_opsetid("", 15),
                                             helper.make_opsetid("ai.onnx.ml", ml_opset)])
    model.ir_version = 8
    helper.set_model_props(model, _model_properties(est, dtype))
    onnx.checker.check_model(model)
    if path is not None:
        onnx.save(model, path)
    return model


# ------------------------------------------------------------------ pipelines (skl2onnx)
def _is_pipeline(est):
    from sklearn.pipeline import Pipeline
    return isinstance(est, Pipeline)


def _skl2onnx_shape(operator):
    from skl2onnx.common.data_types import FloatTensorType
    est = operator.raw_operator
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = FloatTensorType([n, len(est.terms_)])


def _skl2onnx_convert(scope, operator, container):
    """skl2onnx converter of a fitted bpt estimator: one TreeEnsembleRegressor on the
    input cast to float64 (ai.onnx.ml opset 3), or on float32 input (opset 1)."""
    from onnx import TensorProto
    est = operator.raw_operator
    _check_estimator(est)
    ml_opset = 3
    if hasattr(container, "target_opset_any_domain"):
        ml_opset = 3 if (container.target_opset_any_domain("ai.onnx.ml") or 3) >= 3 else 1
    source = operator.inputs[0].full_name
    is_double = operator.inputs[0].type.to_onnx_type().tensor_type.elem_type == \
        TensorProto.DOUBLE
    if ml_opset == 3 and not is_double:
        cast = scope.get_unique_variable_name("X64")
        container.add_node("Cast", source, cast, name=scope.get_unique_operator_name("Cast"),
                           to=TensorProto.DOUBLE)
        source = cast
    elif ml_opset == 1 and is_double:
        raise ValueError("ai.onnx.ml opset 1 takes float32 input only")
    out = operator.outputs[0].full_name
    linear = est.ensemble_.has_linear
    y_trees = scope.get_unique_variable_name("Y_trees") if linear else out
    container.add_node("TreeEnsembleRegressor", source, y_trees,
                       op_domain="ai.onnx.ml", op_version=ml_opset,
                       name=scope.get_unique_operator_name("BptTrees"),
                       **_trees_node_attributes(est, ml_opset))
    if linear:
        from onnx import helper
        parts, inits = _linear_parts(est, source, y_trees, out, ml_opset,
                                     scope.get_unique_variable_name)
        for name, v in inits:
            container.add_initializer(name, helper.np_dtype_to_tensor_dtype(v.dtype),
                                      list(v.shape), v.ravel().tolist())
        for op, ins, outs, domain, attrs in parts:
            kw = dict(op_domain=domain, op_version=ml_opset) if domain else {}
            container.add_node(op, ins, outs, name=scope.get_unique_operator_name("BptLin"),
                               **kw, **attrs)


def register_skl2onnx():
    """Register bpt's estimators with skl2onnx (``skl2onnx.to_onnx`` then converts
    pipelines that contain them).  Done by :func:`to_onnx` for a Pipeline, and on
    ``import bpt.export`` when skl2onnx is already imported.  Raises ImportError
    without skl2onnx."""
    from skl2onnx import update_registered_converter

    from ._bit import BoostedInformationTree
    from ._bpt import BoostedParametricTree
    for cls in (BoostedInformationTree, BoostedParametricTree):
        update_registered_converter(cls, f"Bpt{cls.__name__}", _skl2onnx_shape,
                                    _skl2onnx_convert)


def _pipeline_to_onnx(pipe, dtype, ml_opset, path):
    import onnx
    from onnx import helper
    last = pipe.steps[-1][1] if pipe.steps else None
    _check_estimator(last)
    check_is_fitted(pipe)
    try:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
    except ImportError:
        raise ImportError("to_onnx converts the steps of a Pipeline before the bpt estimator "
                          "with skl2onnx, which is not installed: pip install bpt[onnx] (or "
                          "export the estimator alone: to_onnx(pipe[-1]) takes the "
                          "transformed features)") from None
    register_skl2onnx()
    n_features = getattr(pipe, "n_features_in_", None)
    if n_features is None:
        n_features = getattr(pipe.steps[0][1], "n_features_in_", None)
    tensor = FloatTensorType if dtype == "float32" else DoubleTensorType
    model = convert_sklearn(
        pipe, name=f"bpt_pipeline_{type(last).__name__}",
        initial_types=[("X", tensor([None, n_features]))],
        final_types=[("Y", FloatTensorType([None, len(last.terms_)]))],
        target_opset={"": 15, "ai.onnx.ml": ml_opset})
    helper.set_model_props(model, dict(_model_properties(last, dtype),
                                       pipeline=json.dumps([n for n, _ in pipe.steps])))
    onnx.checker.check_model(model)
    if path is not None:
        onnx.save(model, path)
    return model


if "skl2onnx" in sys.modules:            # a user who already uses skl2onnx gets bpt's converter
    try:
        register_skl2onnx()
    except ImportError:
        pass
