"""scikit-learn estimator (on preprocessed features) -> ONNX graph in the bundle contract.

skl2onnx converts the estimator; export.graph prepends the preprocessing as
ONNX ops from the stats training stored (info["preprocess"]), so the bundle
takes counts/s like every other.

kNN (uniform weights, Euclidean) is not converted by skl2onnx: its graph loops
over the training set with a Scan op (~130 spectra/s here). `knn_graph` writes
the brute-force search as one MatMul + TopK instead (~12k spectra/s on 2 cores,
6x scikit-learn): |f - x|^2 ranks like |x|^2 - 2 f.x, the mean of the k
neighbours' targets is the prediction. Float32 distances could reorder near-ties
that float64 scikit-learn separates; parity on held-out spectra catches that, and
`double=True` computes the distances in float64 (2.7x slower, 2x the size).

RBF SVRs (one, or a MultiOutputRegressor of them sharing gamma) likewise become
one graph, `svr_graph`: skl2onnx emits one SVMRegressor node per output, each
with its own copy of the support vectors (23 MB for three RGB SVRs on 2665
spectra, over the bundle limit); here the union of support vectors is stored
once and the kernel is exp(-gamma |f - sv|^2) through one MatMul, then a
MatMul with the (n_sv, K) dual coefficients.
"""

from __future__ import annotations

import warnings

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

from export import graph
from export.graph import OPSET, check_contract, contract_io


def is_plain_knn(estimator) -> bool:
    from sklearn.neighbors import KNeighborsRegressor

    return (isinstance(estimator, KNeighborsRegressor) and estimator.weights == "uniform"
            and (estimator.metric == "euclidean"
                 or (estimator.metric == "minkowski" and estimator.p == 2)))


def knn_graph(estimator, channels: int, double: bool = False) -> onnx.ModelProto:
    """"features" float32 [batch, D] -> "variable" float32 [batch, K]: brute-force kNN."""
    x = np.asarray(estimator._fit_X, np.float64)
    y = np.asarray(estimator._y, np.float32).reshape(len(x), -1)
    size = x.size * (8 if double else 4) + y.size * 4
    if size > graph.MAX_BYTES:
        raise ValueError(f"kNN holds {len(x)} training spectra ({size / 2**20:.0f} MiB), over "
                         f"the {graph.MAX_BYTES / 2**20:.0f} MiB bundle limit: subsample them")
    dt, npd = (TensorProto.DOUBLE, np.float64) if double else (TensorProto.FLOAT, np.float32)
    src = "features"
    nodes = []
    if double:
        nodes.append(helper.make_node("Cast", [src], ["features_d"], to=dt, name="knn_cast"))
        src = "features_d"
    nodes += [
        helper.make_node("MatMul", [src, "knn_xt"], ["knn_dot"], name="knn_dot"),  # (N, M)
        helper.make_node("Mul", ["knn_dot", "knn_minus2"], ["knn_m2dot"], name="knn_m2"),
        helper.make_node("Add", ["knn_m2dot", "knn_xsq"], ["knn_rank"], name="knn_rank"),
        helper.make_node("Neg", ["knn_rank"], ["knn_neg"], name="knn_neg"),
        helper.make_node("TopK", ["knn_neg", "knn_k"], ["knn_vals", "knn_idx"], largest=1,
                         sorted=0, name="knn_topk"),
        helper.make_node("Gather", ["knn_y", "knn_idx"], ["knn_ny"], axis=0,
                         name="knn_gather"),  # (N, k, K)
        helper.make_node("ReduceMean", ["knn_ny"], ["variable"], axes=[1], keepdims=0,
                         name="knn_mean"),
    ]
    init = [numpy_helper.from_array(np.ascontiguousarray(x.T, npd), "knn_xt"),
            numpy_helper.from_array(np.array(-2.0, npd), "knn_minus2"),
            numpy_helper.from_array((x**2).sum(axis=1).astype(npd), "knn_xsq"),
            numpy_helper.from_array(np.array([estimator.n_neighbors], np.int64), "knn_k"),
            numpy_helper.from_array(y, "knn_y")]
    g = helper.make_graph(
        nodes, "knn",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", channels])],
        [helper.make_tensor_value_info("variable", TensorProto.FLOAT, ["batch", y.shape[1]])],
        init)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = graph.IR_VERSION
    return model


def _svrs(estimator) -> list | None:
    """The RBF SVRs behind `estimator` (one per output) if svr_graph can take them."""
    from sklearn.multioutput import MultiOutputRegressor
    from sklearn.svm import SVR

    svrs = estimator.estimators_ if isinstance(estimator, MultiOutputRegressor) else [estimator]
    if not all(isinstance(m, SVR) and m.kernel == "rbf" for m in svrs):
        return None
    if len({float(m._gamma) for m in svrs}) != 1:
        return None
    return svrs


def svr_graph(svrs: list, channels: int) -> onnx.ModelProto:
    """"features" float32 [batch, D] -> "variable" float32 [batch, K] for RBF SVRs."""
    index = np.unique(np.concatenate([m.support_ for m in svrs]))
    where = {int(j): i for i, j in enumerate(index)}
    sv = np.zeros((len(index), channels), np.float64)
    coef = np.zeros((len(index), len(svrs)), np.float32)
    for k, m in enumerate(svrs):
        rows = [where[int(j)] for j in m.support_]
        sv[rows] = m.support_vectors_
        coef[rows, k] = m.dual_coef_[0]
    gamma = float(svrs[0]._gamma)
    bias = np.array([float(m.intercept_[0]) for m in svrs], np.float32)
    if sv.size * 4 > graph.MAX_BYTES:
        raise ValueError(f"SVR holds {len(sv)} support vectors, over the bundle limit")
    nodes = [
        helper.make_node("ReduceSumSquare", ["features"], ["svr_fsq"], axes=[1], keepdims=1,
                         name="svr_fsq"),
        helper.make_node("MatMul", ["features", "svr_t"], ["svr_dot"], name="svr_dot"),
        helper.make_node("Mul", ["svr_dot", "svr_minus2"], ["svr_m2dot"], name="svr_m2"),
        helper.make_node("Add", ["svr_m2dot", "svr_sq"], ["svr_part"], name="svr_part"),
        helper.make_node("Add", ["svr_part", "svr_fsq"], ["svr_d2raw"], name="svr_d2"),
        helper.make_node("Relu", ["svr_d2raw"], ["svr_d2"], name="svr_clamp"),
        helper.make_node("Mul", ["svr_d2", "svr_neg_gamma"], ["svr_arg"], name="svr_arg"),
        helper.make_node("Exp", ["svr_arg"], ["svr_kernel"], name="svr_exp"),
        helper.make_node("MatMul", ["svr_kernel", "svr_coef"], ["svr_sum"], name="svr_sum"),
        helper.make_node("Add", ["svr_sum", "svr_bias"], ["variable"], name="svr_bias"),
    ]
    init = [numpy_helper.from_array(np.ascontiguousarray(sv.T, np.float32), "svr_t"),
            numpy_helper.from_array(np.array(-2.0, np.float32), "svr_minus2"),
            numpy_helper.from_array((sv**2).sum(axis=1).astype(np.float32), "svr_sq"),
            numpy_helper.from_array(np.array(-gamma, np.float32), "svr_neg_gamma"),
            numpy_helper.from_array(coef, "svr_coef"),
            numpy_helper.from_array(bias, "svr_bias")]
    g = helper.make_graph(
        nodes, "svr",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", channels])],
        [helper.make_tensor_value_info("variable", TensorProto.FLOAT, ["batch", len(svrs)])],
        init)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = graph.IR_VERSION
    return model


def sklearn_to_onnx(estimator, preprocess: dict, output_name: str, width: int,
                    *, double: bool = False) -> onnx.ModelProto:
    """`preprocess` is training.preprocess.Preprocess.to_dict() (mean, scale, grid)."""
    mean = np.asarray(preprocess["mean"], np.float32)
    scale = np.asarray(preprocess["scale"], np.float32)
    channels = int(preprocess["grid"]["channels"])
    if mean.shape != (channels,) or scale.shape != (channels,):
        raise ValueError(f"preprocess stats have shape {mean.shape}/{scale.shape}, grid has "
                         f"{channels} channels")
    n_in = getattr(estimator, "n_features_in_", channels)
    if n_in != channels:
        raise ValueError(f"estimator was fitted on {n_in} features, grid has {channels}")
    svrs = None if double else _svrs(estimator)
    if is_plain_knn(estimator):
        model = knn_graph(estimator, channels, bool(double))
    elif svrs:
        model = svr_graph(svrs, channels)
    else:
        tensor = DoubleTensorType if double else FloatTensorType
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = convert_sklearn(estimator,
                                    initial_types=[("features", tensor([None, channels]))],
                                    target_opset={"": OPSET, "ai.onnx.ml": 3})
    contract_io(model, channels, output_name, width, pre=(mean, scale))
    check_contract(model, channels, output_name, width)
    return model


def sklearn_predict(estimator, preprocess: dict, x: np.ndarray) -> np.ndarray:
    """The framework's own answer on counts/s x: estimator.predict(preprocess(x)), (N, K)."""
    from training.preprocess import Preprocess

    y = np.asarray(estimator.predict(Preprocess.from_dict(preprocess)(x)))
    return y.reshape(len(x), -1)
