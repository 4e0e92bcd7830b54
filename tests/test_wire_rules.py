"""Protocol rules beyond the vectors: versioning, limits before allocation, zero copy,
receiver-side checks, PUB framing, and that encode refuses what decode would refuse."""

import pickle
import tracemalloc

import msgpack
import numpy as np
import pytest

from proto.energy import EnergyGrid
from proto.wire import (
    PROTOCOL_VERSION,
    Preview,
    ProtocolError,
    ScanEnd,
    ScanStart,
    SnapshotReply,
    Spectra,
    Status,
    check_in_scan,
    decode,
    encode,
    from_pub_frames,
    pub_frames,
    to_wire,
)

START = ScanStart("s1", 8, 4, 4096, -0.01, 0.005, 0.01, 50.0, 100.0, counts_dtype="<u4")


def pixel(n: int = 1, c: int = 4096, dtype=np.uint32, seq: int = 1, x: int = 0) -> Spectra:
    rng = np.random.default_rng(seq)
    return Spectra(
        "s1",
        seq,
        np.full(n, x, np.uint32),
        np.zeros(n, np.uint32),
        np.full(n, 0.009),
        np.full(n, 0.01),
        rng.poisson(3, (n, c)).astype(dtype),
    )


def reason(buf: bytes, **kw) -> tuple[str, str]:
    with pytest.raises(ProtocolError) as err:
        decode(buf, **kw)
    return err.value.reason, err.value.path


def test_version_constant() -> None:
    assert PROTOCOL_VERSION == (1, 1)  # 1.1: instrument identity, foreign, domain (issue 12)
    assert msgpack.unpackb(encode(START))["version"] == [1, 1]


def test_newer_minor_with_unknown_keys_is_accepted_at_every_level() -> None:
    wire = to_wire(pixel(), layout="dense")
    wire["version"] = (1, 9)
    wire["future_top"] = {"anything": [1, 2.5, "x"]}
    wire["pixels"]["future_column"] = {"dtype": "<f4", "shape": (1,), "bytes": b"\0" * 4}
    wire["pixels"]["counts"]["compression"] = "none"
    msg = decode(msgpack.packb(wire))
    assert msg == pixel()
    reply = to_wire(SnapshotReply("s1", 3, START, ()))
    reply["scan_start"]["version"] = (1, 4)
    reply["scan_start"]["tube_age_h"] = 1200
    assert decode(msgpack.packb(reply)).scan_start == START


@pytest.mark.parametrize("version", [(0, 9), (2, 0), (2, 5), (17, 0)])
def test_other_major_is_refused(version) -> None:
    wire = to_wire(ScanEnd("s1", "success", 1))
    wire["version"] = version
    assert reason(msgpack.packb(wire)) == ("unsupported_version", "version")


def test_major_is_checked_before_the_type() -> None:
    wire = {"type": "hologram", "version": (2, 0)}
    assert reason(msgpack.packb(wire)) == ("unsupported_version", "version")
    wire["version"] = (1, 3)
    assert reason(msgpack.packb(wire)) == ("unknown_type", "type")


def test_oversize_buffer_refused_before_unpacking() -> None:
    buf = encode(pixel())
    assert reason(buf, max_bytes=len(buf) - 1) == ("too_large", "")
    assert decode(buf, max_bytes=len(buf)) == pixel()


def test_forged_lengths_never_allocate() -> None:
    # headers claiming a 2 GiB bin, a 4 G-entry array and map, a 2 GiB str
    forged = [
        b"\x82\xa4type\xa7spectra\xa7version\xc6\x7f\xff\xff\xff",
        b"\xdd\xff\xff\xff\xff",
        b"\xdf\xff\xff\xff\xff",
        b"\xdb\x7f\xff\xff\xff",
    ]
    tracemalloc.start()
    try:
        for buf in forged:
            with pytest.raises(ProtocolError):
                decode(buf)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"decoding forged headers allocated {peak} bytes"


def test_msgpack_limits_are_enforced_inside_the_buffer() -> None:
    # a 5000-entry array fits in the buffer but is over the per-array limit
    wire = to_wire(ScanEnd("s1", "success", 1))
    wire["padding"] = [0] * 5000
    assert reason(msgpack.packb(wire)) == ("too_large", "")
    wire = to_wire(ScanEnd("s1", "success", 1))
    wire["detail"] = "x" * 70_000
    assert reason(msgpack.packb(wire)) == ("too_large", "")


def test_dense_counts_are_a_zero_copy_read_only_view() -> None:
    msg = decode(encode(pixel(), layout="dense"))
    counts = msg.counts
    assert counts.shape == (1, 4096) and counts.dtype == np.dtype("<u4")
    assert isinstance(counts.base, bytes) and len(counts.base) == counts.nbytes
    assert np.shares_memory(counts, np.frombuffer(counts.base, np.uint8))
    assert not counts.flags.writeable and not counts.flags.owndata


def test_nan_anywhere_numeric_is_bad_value() -> None:
    for wire, path in [
        (to_wire(START), "offset_kev"),
        (to_wire(Status("s1", 1, rates={"a": 1.0})), "rates.a"),
        (to_wire(Status("s1", 1, detail={"x": [1.0]})), "detail.x.0"),
    ]:
        *parents, last = path.split(".")
        target = wire
        for p in parents:
            target = target[int(p)] if isinstance(target, list) else target[p]
        target[int(last) if isinstance(target, list) else last] = float("nan")
        assert reason(msgpack.packb(wire)) == ("bad_value", path)


def test_encode_refuses_invalid_messages() -> None:
    bad = [
        (ScanStart("s1", 0, 4, 16, 0.0, 0.01, 0.1, 1.0, 1.0), "width"),
        (ScanStart("s1", 4, 4, 16, float("nan"), 0.01, 0.1, 1.0, 1.0), "offset_kev"),
        (ScanEnd("s1", "done", 3), "status"),
        (
            Spectra(
                "s1",
                1,
                np.zeros(1),
                np.zeros(1),
                np.ones(1),
                np.ones(1),
                np.ones((1, 4), np.uint32),
            ),
            "pixels.x",
        ),
        (
            Spectra(
                "s1", 1, np.zeros(1, int), np.zeros(1, int), np.ones(1), np.ones(1), np.ones((1, 4))
            ),
            "pixels.counts.dtype",
        ),
        (
            Spectra(
                "s1",
                1,
                np.zeros(1, int),
                np.zeros(1, int),
                np.full(1, 2.0),
                np.full(1, np.inf),  # 1.1: times must be finite; real < live is recorded
                np.ones((1, 4), np.uint16),
            ),
            "pixels.real_time_s",
        ),
        (
            Preview(
                "rgb", "s1", 0, (0, 0, 2, 2), True, ("R", "G", "B"), np.zeros((2, 2, 3), np.float32)
            ),
            "data.dtype",
        ),
        (
            Preview("trust", "s1", 0, (0, 0, 2, 1), True, ("t",), np.zeros((2, 2), np.float32)),
            "data.shape",
        ),
    ]
    for msg, path in bad:
        with pytest.raises(ProtocolError) as err:
            encode(msg)
        assert err.value.path == path, (msg, err.value)


def test_check_in_scan() -> None:
    check_in_scan(START, pixel(x=7))
    cases = [
        (pixel(x=8), "out_of_range", "pixels.x"),
        (pixel(c=16), "bad_shape", "pixels.counts.shape"),
        (pixel(dtype=np.uint16), "bad_dtype", "pixels.counts.dtype"),
        (Spectra("s2", *list(vars(pixel()).values())[1:]), "unknown_scan", "scan_id"),
    ]
    for msg, why, path in cases:
        with pytest.raises(ProtocolError) as err:
            check_in_scan(START, decode(encode(msg)))
        assert (err.value.reason, err.value.path) == (why, path)


def test_scan_start_grid_is_the_energy_grid() -> None:
    assert decode(encode(START)).grid == EnergyGrid(-0.01, 0.005, 4096)


def test_pub_frames_round_trip_and_topic_must_match() -> None:
    preview = Preview("trust", "s1", 4, (0, 0, 2, 1), True, ("t",), np.ones((1, 2), np.float32))
    frames = pub_frames(preview)
    assert frames[0] == b"trust" and from_pub_frames(frames) == preview
    assert pub_frames(Status("s1", 4))[0] == b"status"
    with pytest.raises(ProtocolError):
        from_pub_frames([b"rgb", frames[1]])
    with pytest.raises(ProtocolError):
        from_pub_frames([frames[1]])


def test_protocol_error_carries_path_and_reason_and_pickles() -> None:
    e = ProtocolError("pixels.counts.shape", "bad_shape", "detail")
    assert isinstance(e, ValueError)
    back = pickle.loads(pickle.dumps(e))
    assert (back.path, back.reason, back.detail) == ("pixels.counts.shape", "bad_shape", "detail")
    assert "pixels.counts.shape: bad_shape" in str(e)


def test_auto_layout_picks_sparse_for_short_dwells() -> None:
    sparse = pixel(c=4096)
    sparse = Spectra(*list(vars(sparse).values())[:6], counts=(sparse.counts > 6).astype(np.uint16))
    assert len(encode(sparse)) < len(encode(sparse, layout="dense")) // 2
    assert len(encode(pixel())) == len(encode(pixel(), layout="dense"))


def test_proto_wire_imports_no_heavy_libraries() -> None:
    import subprocess
    import sys

    heavy = ("torch", "onnx", "sklearn", "onnxruntime", "zmq")
    code = f"import sys, proto.wire, proto.vectors; print([m for m in {heavy} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_encode_refuses_what_decode_would_find_too_large() -> None:
    for msg, path in [
        (Status("s1", 1, detail={"a": list(range(5000))}), "detail.a"),
        (ScanStart("s1", 4, 4, 16, 0.0, 0.01, 0.1, 1.0, 1.0, {"a": "x" * 70_000}), "instrument.a"),
        (Status("s1", 1, detail={"a": 2**70}), "detail.a"),
    ]:
        with pytest.raises(ProtocolError) as err:
            encode(msg)
        assert err.value.path == path
