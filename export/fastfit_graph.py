"""A FastFitModel (export.fastfit) as one ONNX graph: PyMca's fast linear fit, live.

    quantity="counts":  spectra (N, C) float32 counts -> areas (N, G), sigma (N, G) counts
    quantity="counts_per_live_second":  spectra (N, C) counts per live second and
        live_time_s (N, 1) -> areas, sigma in counts per live second

Inside, per spectrum and in PyMca's order: fit window; Savitzky-Golay (interior Conv plus
PyMca's exact edge rows, raw counts where it goes negative); SNIP as `snip_width` clip passes
(Conv with a dilated two-tap mean, then Min; the segment sits between +1e30 margins so the
ends are left alone as PyMca's loop bounds do); areas = net @ pinv(D)^T; `refit_passes`
refits with the negative groups fixed at zero, each a conjugate-gradient solve of the
excluded block of the unit-weight covariance (the only per-pixel linear algebra: a few
(N, P) x (P, P) MatMuls); negatives left after the last pass set to zero, as PyMca does.

With `continuum` (build_graph), a second input holds the scan's continuum (proto.continuum):
where it is given each pixel's background is that shape at the pixel's own scale, linear in
its counts, and SNIP runs only for a batch where some pixel still needs it (an If).

sigma is counting statistics through the weights of the pixel's last refit:
sigma_g^2 = sum_c (u_g . W)_c^2 * counts_c, u_g the output row carried through that refit,
so where As K is fixed at zero Pb L's sigma drops as its correlation with As K says. An
output the refit fixed at zero (all its groups) keeps its sigma of the full fit instead: its
detection sigma (3 sigma is the detection limit there), where PyMca reports 0 -- "0 +- 0"
would claim an absence known exactly, and a clipped value has no Gaussian spread to match.
It needs raw counts: with counts per live second it takes live time as a second input
(the bundle contract, proto/BUNDLE.md, has one input; the element bundle of part 2 decides
how live time reaches it).

Cost on the 2-core box, CPU time of one ONNX Runtime thread (M6: 1541-channel window, SNIP
width 40, 8 outputs): SNIP ~120 us a spectrum (40 x Conv + Min over 1700 values: ORT's
elementwise kernels run at ~2 G values/s here), Savitzky-Golay ~25 us, sigma ~50-100 us,
the rest ~20-30 us: 3.4-4.9 k spectra per CPU second against PyMca's whole-map call at
1.4-2.1 k (1.7-3x; the shared box moves both from run to run) and PyMca spectrum by
spectrum at 1-7 (bench/bench_fastfit.py). The SNIP alone caps the graph near 8 k/s; it
scales with window channels x SNIP width, so a 20 eV grid (half of each) is ~2x faster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from export.fastfit import FastFitModel
from proto.bundle import sha256_bytes
from proto.continuum import CONTINUUM_INPUT
from proto.energy import EnergyGrid
from proto.energy_axis import AXIS_FILE, AXIS_KEY, AxisCheck

if TYPE_CHECKING:
    import onnxruntime

OPSET = 17
_BIG = 1e30  # SNIP margin value: halves at most once per pass, stays far above any count rate
_TINY = 1e-30  # guards 0/0 in conjugate gradient once a residual is exactly zero
# CG steps per solve: on M6 spectra from 1 to 0.001x the real one's counts (up to 9 groups
# at zero) 8 steps leave < 1e-4 sigma of error, float32's floor; 10 for margin.
CG_ITERATIONS = 10

Quantity = Literal["counts", "counts_per_live_second"]


class _Graph:
    """Minimal node/initializer bookkeeping with unique names."""

    def __init__(self, prefix: str = "") -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[TensorProto] = []
        self._n = 0
        self.prefix = prefix  # a branch's names must not meet the outer graph's

    def const(self, value: np.ndarray | float | list, dtype: type = np.float32) -> str:
        name = f"{self.prefix}c{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def ints(self, *values: int) -> str:
        return self.const(list(values), np.int64)

    def op(self, op_type: str, *inputs: str, **attrs: object) -> str:
        self._n += 1
        out = f"{self.prefix}{op_type.lower()}{self._n}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def slice(self, x: str, start: int, stop: int, axis: int = 1) -> str:
        return self.op("Slice", x, self.ints(start), self.ints(stop), self.ints(axis))

    def rowsum(self, x: str) -> str:
        return self.op("ReduceSum", x, self.ints(-1), keepdims=1)


def _savgol(g: _Graph, model: FastFitModel, y: str) -> str:
    """PyMca's SavitskyGolay: kernel in the interior, its own rows at the ends, and the raw
    count wherever the smoothed value is negative."""
    sg, n = model.savgol, model.window
    h, rh, rt = sg.half, sg.head.shape[0], sg.tail.shape[0]
    kernel = g.const(sg.kernel.reshape(1, 1, -1))
    conv = g.op("Conv", g.op("Unsqueeze", y, g.ints(1)), kernel)  # rows h .. n-h-1
    inner = g.slice(g.op("Squeeze", conv, g.ints(1)), rh - h, n - rt - h)
    head = g.op("MatMul", g.slice(y, 0, sg.head.shape[1]), g.const(sg.head.T))
    tail = g.op("MatMul", g.slice(y, n - sg.tail.shape[1], n), g.const(sg.tail.T))
    smooth = g.op("Concat", head, inner, tail, axis=1)
    return g.op("Where", g.op("Less", smooth, g.const(0.0)), y, smooth)


def _snip(g: _Graph, model: FastFitModel, s: str) -> str:
    """snip1d on all channels but the last: for p = width .. 1, b = min(b, (b[i-p] + b[i+p])/2)
    on [p, L-p). Margins of 2 * width keep a zero pad from ever meeting data."""
    n, width = model.window, model.snip_width
    length, margin = n - 1, 2 * width
    seg = g.op("Pad", g.slice(s, 0, length), g.ints(0, margin, 0, margin), g.const(_BIG))
    z = g.op("Unsqueeze", seg, g.ints(1))
    half = g.const(np.full((1, 1, 2), 0.5))
    for p in range(width, 0, -1):
        if length - 2 * p <= 0:  # PyMca's loop over [p, L-p) is empty
            continue
        mean = g.op("Conv", z, half, dilations=[2 * p], kernel_shape=[2], pads=[p, p])
        z = g.op("Min", z, mean)
    bg = g.slice(g.op("Squeeze", z, g.ints(1)), margin, margin + length)
    return g.op("Concat", bg, g.slice(s, length, n), axis=1)


def _cg(g: _Graph, corr: str, mask: str, rhs: str, iterations: int) -> str:
    """Solve corr[E, E] w[E] = rhs[E], w = 0 off E (E: mask == 1), batched over leading axes.
    CG on the masked operator d * (corr @ (d * v)): exact in |E| steps in exact arithmetic."""
    tiny = g.const(_TINY)
    r = g.op("Mul", mask, rhs)
    w = g.op("Mul", r, g.const(0.0))
    p, rr = r, g.rowsum(g.op("Mul", r, r))
    for it in range(iterations):
        q = g.op("Mul", mask, g.op("MatMul", p, corr))
        alpha = g.op("Div", rr, g.op("Max", g.rowsum(g.op("Mul", p, q)), tiny))
        w = g.op("Add", w, g.op("Mul", alpha, p))
        if it == iterations - 1:
            break
        r = g.op("Sub", r, g.op("Mul", alpha, q))
        rr_new = g.rowsum(g.op("Mul", r, r))
        beta = g.op("Div", rr_new, g.op("Max", rr, tiny))
        p, rr = g.op("Add", r, g.op("Mul", beta, p)), rr_new
    return w


def _background(g: _Graph, model: FastFitModel, y: str) -> str:
    """PyMca's per-pixel background: Savitzky-Golay, then SNIP."""
    smooth = _savgol(g, model, y) if model.savgol is not None else y
    return _snip(g, model, smooth)


def _continuum(g: _Graph, model: FastFitModel, y: str, gate: str | None
               ) -> tuple[str, str, str]:
    """The scan's continuum in place of the per-pixel SNIP (proto.continuum): row 0 of input
    `continuum` is its shape T, row 1 the scale channels w, background = (w . y) T.
    It serves where w is not all zero and, with a `gate`, where the gate is 0 (a residual
    learned on SNIP areas keeps SNIP under it). SNIP, two thirds of the fit's time, runs only
    when some pixel of the batch needs it (an If). Returns (background, use (N|1, 1) float,
    the two rows)."""
    rows = g.slice(CONTINUUM_INPUT, model.first, model.first + model.window)
    shape, w = g.slice(rows, 0, 1, axis=0), g.slice(rows, 1, 2, axis=0)
    use = g.op("Greater", g.op("ReduceSum", g.op("Abs", w), g.ints(1), keepdims=1),
               g.const(0.0))
    if gate is not None:
        use = g.op("And", use, g.op("Less", gate, g.const(0.5)))
    snip_g, none_g = _Graph("snip_"), _Graph("none_")
    branches = {}
    for name, sub, out in (("then_branch", snip_g, _background(snip_g, model, y)),
                           ("else_branch", none_g, none_g.op("Identity", y))):
        branches[name] = helper.make_graph(sub.nodes, name, [], [helper.make_tensor_value_info(
            out, TensorProto.FLOAT, ["N", model.window])], sub.inits)
    needed = g.op("Greater", g.op("ReduceMax", g.op("Cast", g.op("Not", use),
                                                    to=TensorProto.FLOAT), keepdims=0),
                  g.const(0.0))
    snip = g.op("If", needed, **branches)  # the else branch's value is never picked
    tmpl = g.op("Mul", g.op("MatMul", y, g.op("Transpose", w)), shape)
    return (g.op("Where", use, tmpl, snip), g.op("Cast", use, to=TensorProto.FLOAT),
            g.op("Concat", shape, w, axis=0))


def build_graph(model: FastFitModel, *, quantity: Quantity = "counts",
                cg_iterations: int = CG_ITERATIONS, continuum: bool = False,
                gate: str | None = None) -> onnx.ModelProto:
    """The compiled fast fit of `model`; `cg_iterations` conjugate-gradient steps per refit
    solve (exact once it reaches the number of groups fixed at zero). `continuum`: a second
    input, the scan's continuum (proto.continuum), serves as background where given (and
    where the [N, 1] input `gate` is 0, when named); all zeros: per-pixel SNIP."""
    g = _Graph()
    n, P = model.window, len(model.names)
    cov = model.covariance
    scale = np.sqrt(np.diag(cov))
    corr = g.const(cov / np.outer(scale, scale))
    inv_scale, scale_c = g.const(1.0 / scale), g.const(scale)
    steps = min(P, cg_iterations)
    y = g.slice("spectra", model.first, model.first + n)
    net, scan = y, None
    if model.snip_width:
        if continuum:
            bg, use, scan = _continuum(g, model, y, gate)
        else:
            bg = _background(g, model, y)
        net = g.op("Sub", y, bg)
    x_full = g.op("MatMul", net, g.const(model.weights.T))
    x, last = x_full, g.op("ConstantOfShape", g.op("Shape", x_full),
                           value=numpy_helper.from_array(np.zeros(1, np.float32)))
    peaks = g.const(model.peaks.astype(np.float32))
    xs_full = g.op("Mul", x_full, inv_scale)
    for _ in range(model.refit_passes if model.peaks.any() else 0):
        neg = g.op("Mul", g.op("Cast", g.op("Less", x, g.const(0.0)), to=TensorProto.FLOAT),
                   peaks)
        refit = g.op("Greater", g.op("ReduceMax", neg, axes=[1], keepdims=1), g.const(0.0))
        w = _cg(g, corr, neg, xs_full, steps)
        reduced = g.op("Mul", g.op("Sub", xs_full, g.op("MatMul", w, corr)), scale_c)
        reduced = g.op("Mul", reduced, g.op("Sub", g.const(1.0), neg))  # exact zeros on E
        x = g.op("Where", refit, reduced, x)
        last = g.op("Where", refit, neg, last)
    floor = np.where(model.peaks, 0.0, -np.finfo(np.float32).max)
    x = g.op("Max", x, g.const(floor))  # PyMca: still negative after the refits -> zero
    areas = g.op("MatMul", x, g.const(model.combine.T))
    counts = g.op("Relu", y)
    outputs = len(model.outputs)
    rows_full = model.combine @ model.weights  # the full fit's output rows R
    full_var = g.op("MatMul", counts, g.const((rows_full ** 2).T))
    if scan is not None:  # net = y - (w . y) T: each row r becomes r - (r . T) w, so
        # var = c.r^2 - 2 a c.(r w) + a^2 c.w^2 with a = r . T (zero where SNIP serves)
        shape_t = g.op("Transpose", g.slice(scan, 0, 1, axis=0))
        scale_w = g.slice(scan, 1, 2, axis=0)
        a = g.op("Mul", use, g.op("Transpose", g.op("MatMul", g.const(rows_full), shape_t)))
        cross = g.op("MatMul", counts, g.op("Transpose", g.op("Mul", g.const(rows_full),
                                                               scale_w)))
        own = g.op("MatMul", counts, g.op("Transpose", g.op("Mul", scale_w, scale_w)))
        full_var = g.op("Add", g.op("Sub", full_var, g.op("Mul", g.const(2.0),
                                                            g.op("Mul", a, cross))),
                        g.op("Mul", g.op("Mul", a, a), own))
    if model.refit_passes and model.peaks.any():
        # output rows through the last refit: u_g = S_g - E C[E,E]^-1 (C S_g^T)[E]
        cs = model.combine @ cov / scale  # (G, P), scaled like corr
        mask = g.op("Unsqueeze", last, g.ints(1))  # (N, 1, P)
        v = g.op("Mul", _cg(g, corr, mask, g.const(cs[None]), steps), inv_scale)
        u = g.op("Sub", g.const(model.combine[None]), g.op("Mul", mask, v))  # (N, G, P)
        rows = g.op("MatMul", g.op("Reshape", u, g.ints(-1, P)), g.const(model.weights))
        rows = g.op("Reshape", rows, g.op("Concat", g.op("Shape", x_full, end=1),
                                          g.ints(outputs, n), axis=0))
        if scan is not None:
            along = g.op("MatMul", rows, shape_t)  # (N, G, 1)
            rows = g.op("Sub", rows, g.op("Mul", g.op("Mul", along, scale_w),
                                          g.op("Unsqueeze", use, g.ints(1))))
        root = g.op("Unsqueeze", g.op("Sqrt", counts), g.ints(1))
        var = g.op("ReduceSumSquare", g.op("Mul", rows, root), axes=[2], keepdims=0)
        # an output whose every group was fixed at zero: its sigma in the full fit instead
        fixed = g.op("GreaterOrEqual", g.op("MatMul", last, g.const(model.combine.T)),
                     g.const(model.combine.sum(axis=1) - 0.5))
        var = g.op("Where", fixed, full_var, var)
    else:
        var = full_var
    inputs = [helper.make_tensor_value_info("spectra", TensorProto.FLOAT, ["N", model.channels])]
    if quantity == "counts_per_live_second":
        inputs.append(helper.make_tensor_value_info("live_time_s", TensorProto.FLOAT, ["N", 1]))
        var = g.op("Div", var, "live_time_s")
    if scan is not None:
        if gate is not None:
            inputs.append(helper.make_tensor_value_info(gate, TensorProto.FLOAT, ["N", 1]))
        inputs.append(helper.make_tensor_value_info(CONTINUUM_INPUT, TensorProto.FLOAT,
                                                    [2, model.channels]))
    sigma = g.op("Sqrt", g.op("Max", var, g.const(0.0)))
    g.nodes += [helper.make_node("Identity", [areas], ["areas"], name="out_areas"),
                helper.make_node("Identity", [sigma], ["sigma"], name="out_sigma")]
    out = [helper.make_tensor_value_info(k, TensorProto.FLOAT, ["N", outputs])
           for k in ("areas", "sigma")]
    graph = helper.make_graph(g.nodes, "pymca_fast_fit", inputs, out, g.inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                          producer_name="maxrf-export-fastfit")
    m.ir_version = 8
    helper.set_model_props(m, {
        "maxrf.kind": "fastfit", "maxrf.outputs": ",".join(model.outputs),
        "maxrf.quantity": quantity, "maxrf.calibration": f"{model.zero:.6g},{model.gain:.6g}",
        "maxrf.window": f"{model.first},{model.first + n}",
    })
    onnx.checker.check_model(m)
    return m


def axis_graph(model: FastFitModel) -> onnx.ModelProto:
    """The energy-axis check of an element bundle (proto.energy_axis): spectra (N, C) counts
    on the model's grid -> net (N, window), each spectrum less PyMca's background on the fit
    window, and responses (window, P), the fit's unit responses (constant). The edge moves
    the responses, not the spectrum, along candidate axes: rebinning the counts would smooth
    their noise by a different amount for every candidate and bias the search."""
    g = _Graph()
    y = g.slice("spectra", model.first, model.first + model.window)
    net = g.op("Sub", y, _background(g, model, y)) if model.snip_width else y
    g.nodes += [helper.make_node("Identity", [net], ["net"], name="out_net"),
                helper.make_node("Identity", [g.const(model.derivatives)], ["responses"],
                                 name="out_responses")]
    graph = helper.make_graph(
        g.nodes, "pymca_fast_fit_axis",
        [helper.make_tensor_value_info("spectra", TensorProto.FLOAT, ["N", model.channels])],
        [helper.make_tensor_value_info("net", TensorProto.FLOAT, ["N", model.window]),
         helper.make_tensor_value_info("responses", TensorProto.FLOAT,
                                       [model.window, len(model.names)])], g.inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                          producer_name="maxrf-export-fastfit")
    m.ir_version = 8
    helper.set_model_props(m, {"maxrf.kind": "axis",
                               "maxrf.window": f"{model.first},{model.first + model.window}"})
    onnx.checker.check_model(m)
    return m


def background_check(model: FastFitModel, grid: EnergyGrid) -> AxisCheck:
    """The model's axis graph in ONNX Runtime, for its background only (what the scan's
    continuum strips a sum with, proto.continuum): its anchors are never searched."""
    return AxisCheck(session(axis_graph(model)).run, grid, (1.0, 2.0), model.first)


def with_axis_check(fields: dict, model: FastFitModel, grid: EnergyGrid
                    ) -> tuple[dict, dict[str, bytes]]:
    """An element bundle's manifest `fields` with its energy-axis check for the edge in their
    `domain` (anchored at a quarter and three quarters of the fit window on `grid`), and the
    check's file for write_bundle."""
    data = axis_graph(model).SerializeToString()
    anchors = [grid.offset + grid.gain * (model.first + f * model.window) for f in (0.25, 0.75)]
    entry = {"file": AXIS_FILE, "sha256": sha256_bytes(data), "anchors_kev": anchors,
             "first": model.first}
    return ({**fields, "domain": {**fields.get("domain", {}), AXIS_KEY: entry}},
            {AXIS_FILE: data})


def session(m: onnx.ModelProto, threads: int = 1) -> onnxruntime.InferenceSession:
    """An ONNX Runtime session on the graph (CPU, `threads` intra-op threads)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    return ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def run(sess: onnxruntime.InferenceSession, spectra: np.ndarray,
        live_time_s: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(areas, sigma) for a batch, float32."""
    feed = {"spectra": np.ascontiguousarray(spectra, dtype=np.float32)}
    if live_time_s is not None:
        feed["live_time_s"] = np.asarray(live_time_s, np.float32).reshape(-1, 1)
    areas, sigma = sess.run(["areas", "sigma"], feed)
    return areas, sigma
