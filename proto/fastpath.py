"""The hot decode path: well-formed `spectra` maps in few Python steps (~150k+ msgs/s target).

`fast_spectra` accepts only a subset of what `proto.schema.check_spectra` accepts
(well-formed messages with tuple shapes, as msgpack gives with use_list=False) and
hands anything else, valid or not, to it, so the careful path alone says what is
valid and names what is not. A test checks both agree on every golden vector.

Plain `type()` tests, `np.frombuffer` views on the unpacked bytes (zero copy,
read-only), instances built without running dataclass ``__init__``. No state is kept
between messages: the scan id is matched every time (its compiled regex costs about
0.2 us, within the bench's noise; see bench/bench_wire.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from proto.checks import COORD, COUNTS, DTYPES, INF, TIME, new, scan_id_ok
from proto.messages import MAX_CHANNELS, MAX_PIXELS_PER_MESSAGE, Spectra
from proto.schema import CHECKS, check_spectra

_ndarray = np.ndarray
_frombuffer = np.frombuffer
_isfinite = np.isfinite
_INDPTR = DTYPES["<u4"]


def fast_spectra(m: dict, p: str = "") -> Spectra:
    """A `spectra` map -> Spectra; the same result or error as `check_spectra`."""
    try:
        scan_id, seq, px = m["scan_id"], m["seq"], m["pixels"]
        x, y, lv, rv = px["x"], px["y"], px["live_time_s"], px["real_time_s"]
        xd, xz = COORD[x["dtype"]]
        yd, yz = COORD[y["dtype"]]
        ld, lz = TIME[lv["dtype"]]
        rd, rz = TIME[rv["dtype"]]
        xs, ys, ls, rs = x["shape"], y["shape"], lv["shape"], rv["shape"]
        xb, yb, lb, rb = x["bytes"], y["bytes"], lv["bytes"], rv["bytes"]
        n = xs[0]
        if not (
            type(scan_id) is str
            and scan_id_ok(scan_id) is not None
            and type(seq) is int
            and 1 <= seq < 2**63
            and type(xs) is tuple
            and len(xs) == 1
            and type(n) is int
            and 1 <= n <= MAX_PIXELS_PER_MESSAGE
            and type(ys) is tuple
            and type(ls) is tuple
            and type(rs) is tuple
            and ys == xs
            and ls == xs
            and rs == xs
            and type(ys[0]) is int
            and type(ls[0]) is int
            and type(rs[0]) is int
            and type(xb) is bytes
            and type(yb) is bytes
            and type(lb) is bytes
            and type(rb) is bytes
            and len(xb) == n * xz
            and len(yb) == n * yz
            and len(lb) == n * lz
            and len(rb) == n * rz
        ):
            return check_spectra(m, p)
        counts = _fast_counts(px["counts"], n)
    except (KeyError, TypeError, IndexError):
        return check_spectra(m, p)
    if counts is None:
        return check_spectra(m, p)
    live, real = _frombuffer(lb, ld), _frombuffer(rb, rd)
    if n == 1:
        ok = -INF < live.item(0) < INF and -INF < real.item(0) < INF
    else:
        ok = bool(_isfinite(live).all() and _isfinite(real).all())
    if not ok:
        return check_spectra(m, p)  # names the field
    o = new(Spectra)
    d = o.__dict__
    d["scan_id"] = scan_id
    d["seq"] = seq
    d["x"] = _frombuffer(xb, xd)
    d["y"] = _frombuffer(yb, yd)
    d["live_time_s"] = live
    d["real_time_s"] = real
    d["counts"] = counts
    return o


def _fast_counts(c: dict, n: int) -> np.ndarray | None:
    """Dense (n, C) counts of a well-formed counts map, else None (the careful path then
    names the fault). May raise KeyError, TypeError or IndexError on odd maps."""
    if "layout" in c:
        return _fast_csr(c, n)
    cd, cz = COUNTS[c["dtype"]]
    cs, cb = c["shape"], c["bytes"]
    channels = cs[1]
    if (
        type(cs) is tuple
        and len(cs) == 2
        and type(cs[0]) is int
        and cs[0] == n
        and type(channels) is int
        and 1 <= channels <= MAX_CHANNELS
        and type(cb) is bytes
        and len(cb) == n * channels * cz
    ):
        return _ndarray(cs, cd, cb)
    return None


def _fast_csr(c: dict, n: int) -> np.ndarray | None:
    """Dense counts of a well-formed CSR map (short dwells send these), without paths."""
    shape, ip, ix, va = c["shape"], c["indptr"], c["index"], c["value"]
    ixd, ixz = COUNTS[ix["dtype"]]
    vd, vz = COUNTS[va["dtype"]]
    ips, ixs, vs = ip["shape"], ix["shape"], va["shape"]
    ipb, ixb, vb = ip["bytes"], ix["bytes"], va["bytes"]
    channels, nnz = shape[1], ixs[0]
    if not (
        c["layout"] == "csr"
        and type(shape) is tuple
        and len(shape) == 2
        and type(shape[0]) is int
        and shape[0] == n
        and type(channels) is int
        and 1 <= channels <= MAX_CHANNELS
        and ip["dtype"] == "<u4"
        and type(ips) is tuple
        and len(ips) == 1
        and type(ips[0]) is int
        and ips[0] == n + 1
        and type(ipb) is bytes
        and len(ipb) == 4 * (n + 1)
        and type(ixs) is tuple
        and len(ixs) == 1
        and type(nnz) is int
        and nnz <= n * channels
        and type(vs) is tuple
        and len(vs) == 1
        and type(vs[0]) is int
        and vs[0] == nnz
        and type(ixb) is bytes
        and type(vb) is bytes
        and len(ixb) == nnz * ixz
        and len(vb) == nnz * vz
    ):
        return None
    indptr = _frombuffer(ipb, _INDPTR)
    index = _frombuffer(ixb, ixd)
    if n == 1:  # one pixel: no row bookkeeping
        if indptr.item(0) != 0 or indptr.item(1) != nnz:
            return None
        if nnz and (index.item(nnz - 1) >= channels
                    or (nnz > 1 and not (index[1:] > index[:-1]).all())):
            return None
        dense = np.zeros(channels, dtype=vd)
        dense[index.astype(np.intp)] = _frombuffer(vb, vd)  # intp: 2x faster scatter
        return dense.reshape(1, channels)
    steps = np.diff(indptr.astype(np.int64))
    if indptr.item(0) != 0 or indptr.item(n) != nnz or (steps < 0).any():
        return None
    dense = np.zeros(n * channels, dtype=vd)
    if nnz:
        if int(index.max()) >= channels:
            return None
        flat = np.repeat(np.arange(n, dtype=np.int64) * channels, steps) + index
        if nnz > 1 and not (flat[1:] > flat[:-1]).all():
            return None
        dense[flat] = _frombuffer(vb, vd)
    return dense.reshape(n, channels)


# What decode and encode validate with: the careful checks, the hot one swapped in.
FAST_CHECKS: dict[str, Callable[[dict, str], Any]] = {**CHECKS, "spectra": fast_spectra}
