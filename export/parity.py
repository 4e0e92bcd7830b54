"""Does ONNX Runtime compute what the framework computed? On held-out spectra, or fail.

Tolerance, per output column k: |ort - ref| <= atol_k + rtol * |ref| with
rtol = 1e-4 and atol_k = 1e-4 * max(max|ref[:, k]|, tiny): relative agreement
for large values, and an absolute floor at a 1e-4 fraction of that column's
range for values near zero (where relative error is meaningless). The parity
figure is the worst ratio |ort - ref| / (atol_k + rtol * |ref|): <= 1 passes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import onnxruntime as ort

from proto.bundle import INPUT_NAME

RTOL = 1e-4
ATOL_FRACTION = 1e-4
MIN_SPECTRA = 1000


class ParityError(AssertionError):
    """ONNX Runtime and the framework disagree beyond tolerance."""


@dataclass(frozen=True)
class Parity:
    spectra: int
    max_abs: float
    max_rel: float
    ratio: float  # worst |err| / tolerance; <= 1 passes
    worst_index: int
    worst_column: str
    worst_onnx: float
    worst_reference: float
    worst_atol: float
    rtol: float
    atol: list[float]
    source: str

    @property
    def ok(self) -> bool:
        return self.ratio <= 1.0

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        return (f"parity on {self.spectra} spectra ({self.source}): max abs {self.max_abs:.3g}, "
                f"max rel {self.max_rel:.3g}, worst/tolerance {self.ratio:.3g} "
                f"[{'ok' if self.ok else 'FAIL'}]")

    def worst(self) -> str:
        return (f"worst case: spectrum {self.worst_index}, output {self.worst_column!r}: "
                f"onnx {self.worst_onnx!r} vs framework {self.worst_reference!r} "
                f"(tolerance {self.worst_atol:.3g} + {self.rtol:g} * |ref|)")


def compare(got: np.ndarray, want: np.ndarray, columns: list[str] | tuple[str, ...],
            source: str = "", rtol: float = RTOL,
            atol_fraction: float = ATOL_FRACTION) -> Parity:
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64).reshape(got.shape)
    if not np.isfinite(got).all():
        bad = np.argwhere(~np.isfinite(got))[0]
        raise ParityError(f"ONNX Runtime returned a non-finite value at spectrum {bad[0]}, "
                          f"output {columns[bad[1]]!r}")
    if not np.isfinite(want).all():
        raise ParityError("the framework itself returned non-finite values on held-out spectra")
    atol = atol_fraction * np.maximum(np.abs(want).max(axis=0), 1e-12)
    err = np.abs(got - want)
    ratio = err / (atol + rtol * np.abs(want))
    i, k = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    rel = err / np.maximum(np.abs(want), atol)
    return Parity(
        spectra=len(got), max_abs=float(err.max()), max_rel=float(rel.max()),
        ratio=float(ratio[i, k]), worst_index=int(i), worst_column=str(columns[k]),
        worst_onnx=float(got[i, k]), worst_reference=float(want[i, k]),
        worst_atol=float(atol[k]), rtol=rtol, atol=[float(a) for a in atol], source=source,
    )


def run_onnx(onnx_bytes: bytes, x: np.ndarray, threads: int = 2, batch: int = 4096) -> np.ndarray:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx_bytes, so, providers=["CPUExecutionProvider"])
    out = [session.run(None, {INPUT_NAME: np.ascontiguousarray(x[i:i + batch], np.float32)})[0]
           for i in range(0, len(x), batch)]
    return np.concatenate(out)


def check(onnx_bytes: bytes, reference: np.ndarray, x: np.ndarray, columns, source: str = "",
          min_spectra: int = MIN_SPECTRA) -> Parity:
    """Run the graph on x and compare with the framework's `reference`; raise on mismatch."""
    if len(x) < min_spectra:
        raise ParityError(f"parity needs >= {min_spectra} held-out spectra, got {len(x)}")
    p = compare(run_onnx(onnx_bytes, x), reference, list(columns), source)
    if not p.ok:
        raise ParityError(f"{p.line()}\n{p.worst()}")
    return p
