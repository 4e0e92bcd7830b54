"""Property tests: every message type survives encode -> decode, deterministically."""

import contextlib

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from proto.wire import (
    Control,
    Error,
    Preview,
    ScanEnd,
    ScanStart,
    SnapshotReply,
    SnapshotRequest,
    Spectra,
    Status,
    decode,
    encode,
)

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)
words = st.text(min_size=1, max_size=12)
finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
positive = st.floats(min_value=1e-9, max_value=1e9, allow_nan=False)
json_like = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | finite | words,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(words, inner, max_size=3),
    max_leaves=8,
)
seqs = st.integers(0, 2**63 - 1)


@st.composite
def scan_starts(draw) -> ScanStart:
    return ScanStart(
        scan_id=draw(ids),
        width=draw(st.integers(1, 16384)),
        height=draw(st.integers(1, 16384)),
        channels=draw(st.integers(1, 16384)),
        offset_kev=draw(finite),
        gain_kev=draw(positive),
        dwell_s=draw(positive),
        beam_spot_um=draw(positive),
        pixel_size_um=draw(positive),
        instrument=draw(st.dictionaries(words, json_like, max_size=4)),
        scan_pattern=draw(st.sampled_from(["raster", "serpentine", "arbitrary"])),
        counts_dtype=draw(st.sampled_from(["<u2", "<u4"])),
    )


@st.composite
def spectra(draw) -> Spectra:
    n = draw(st.integers(1, 6))
    c = draw(st.integers(1, 40))
    dtype = draw(st.sampled_from([np.uint16, np.uint32]))
    density = draw(st.sampled_from([0.0, 0.05, 0.5, 1.0]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    counts = (rng.random((n, c)) < density) * rng.integers(1, np.iinfo(dtype).max, (n, c))
    tdtype = draw(st.sampled_from([np.float32, np.float64]))
    live = draw(hnp.arrays(tdtype, n, elements=st.floats(0.0009765625, 10.0, width=32)))
    extra = draw(hnp.arrays(tdtype, n, elements=st.floats(0.0, 1.0, width=32)))
    real = (live + extra).astype(tdtype)
    return Spectra(
        scan_id=draw(ids),
        seq=draw(st.integers(1, 2**63 - 1)),
        x=draw(hnp.arrays(np.uint32, n, elements=st.integers(0, 16383))),
        y=draw(hnp.arrays(np.uint16, n)),
        live_time_s=live,
        real_time_s=real,
        counts=counts.astype(dtype),
    )


@st.composite
def previews(draw) -> Preview:
    topic = draw(st.sampled_from(["rgb", "elements", "trust"]))
    w, h = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    full = draw(st.booleans())
    x0, y0 = (0, 0) if full else (draw(st.integers(0, 100)), draw(st.integers(0, 100)))
    floats = st.floats(-1024.0, 1024.0, width=32)
    if topic == "rgb":
        names, data = ("R", "G", "B"), draw(hnp.arrays(np.uint8, (h, w, 3)))
    elif topic == "elements":
        names = tuple(draw(st.lists(st.sampled_from(["Ca", "Fe", "Pb", "Hg"]), min_size=1)))
        data = draw(hnp.arrays(np.float32, (len(names), h, w), elements=floats))
    else:
        names, data = ("trust",), draw(hnp.arrays(np.float32, (h, w), elements=floats))
    return Preview(topic, draw(ids), draw(seqs), (x0, y0, w, h), full, names, data)


counts_maps = st.dictionaries(words, st.integers(0, 2**64 - 1), max_size=4)
statuses = st.builds(
    Status,
    scan_id=st.just("") | ids,
    seq=seqs,
    state=st.sampled_from(["idle", "scanning"]),
    counters=counts_maps,
    rates=st.dictionaries(words, finite, max_size=3),
    latency_ms=st.dictionaries(words, st.floats(0, 1e9), max_size=3),
    errors=counts_maps,
    detail=st.dictionaries(words, json_like, max_size=3),
)
messages = st.one_of(
    scan_starts(),
    spectra(),
    st.builds(
        ScanEnd, ids, st.sampled_from(["success", "abort", "fail"]), st.integers(0, 10**8), words
    ),
    previews(),
    statuses,
    st.builds(
        SnapshotRequest,
        st.lists(st.sampled_from(["rgb", "elements", "trust"]), max_size=3).map(tuple),
    ),
    st.builds(
        SnapshotReply,
        st.just("") | ids,
        seqs,
        st.none() | scan_starts(),
        st.lists(previews(), max_size=3).map(tuple),
        st.none() | statuses,
    ),
    st.builds(Control, st.just("reload_models"), st.none() | words),
    st.builds(Error, words, words, words),
)


@SETTINGS
@given(messages, st.sampled_from(["auto", "dense", "sparse"]))
def test_round_trip(msg, layout) -> None:
    buf = encode(msg, layout=layout)
    back = decode(buf)
    assert type(back) is type(msg)
    assert back == msg
    assert encode(back, layout=layout) == buf  # deterministic, and decode loses nothing


@SETTINGS
@given(spectra())
def test_sparse_and_dense_decode_alike(msg) -> None:
    dense, sparse = decode(encode(msg, layout="dense")), decode(encode(msg, layout="sparse"))
    assert dense.counts.dtype == sparse.counts.dtype == msg.counts.dtype
    np.testing.assert_array_equal(dense.counts, sparse.counts)
    assert dense.live_time_s.dtype == msg.live_time_s.dtype


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash(buf) -> None:
    from proto.wire import ProtocolError

    with contextlib.suppress(ProtocolError):  # anything else (a crash) fails the test
        decode(buf)
