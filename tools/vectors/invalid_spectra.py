"""Invalid `spectra` vectors: dense and sparse (CSR) counts, coordinates, times, seq."""

from __future__ import annotations

import numpy as np

from tools.vectors.mutate import Case, bases, drop, mut, put, typed


def spectra_cases() -> list[Case]:
    """(name, bytes, reason, path, why) for every invalid spectra vector."""
    b = bases()
    dense, dense4 = b["spectra_dense_u4_1px"], b["spectra_dense_u2_4px_f4"]
    sparse = b["spectra_sparse_u2_3px"]
    nan_live = np.array([np.nan])
    return [
        ("spectra_seq_zero", mut(dense, put("seq", 0)), "bad_value", "seq", "seq starts at 1"),
        ("spectra_seq_negative", mut(dense, put("seq", -4)), "bad_value", "seq", ""),
        (
            "spectra_missing_counts",
            mut(dense, drop("pixels.counts")),
            "missing_field",
            "pixels.counts",
            "",
        ),
        (
            "spectra_counts_u8",
            mut(dense, put("pixels.counts.dtype", "<u8")),
            "bad_dtype",
            "pixels.counts.dtype",
            "",
        ),
        (
            "spectra_counts_float",
            mut(dense, put("pixels.counts", typed(np.full((1, 16), 1.5, "<f4")))),
            "bad_dtype",
            "pixels.counts.dtype",
            "",
        ),
        (
            "spectra_counts_short_bytes",
            mut(dense, put("pixels.counts.bytes", b"\x00" * 60)),
            "bad_shape",
            "pixels.counts.shape",
            "shape [1, 16] needs 64 bytes",
        ),
        (
            "spectra_counts_rows_mismatch",
            mut(dense, put("pixels.counts", typed(np.ones((2, 8), "<u4")))),
            "bad_shape",
            "pixels.counts.shape",
            "2 rows for 1 pixel",
        ),
        (
            "spectra_counts_zero_channels",
            mut(dense, put("pixels.counts", typed(np.ones((1, 0), "<u4")))),
            "bad_shape",
            "pixels.counts.shape",
            "",
        ),
        (
            "spectra_counts_big_endian",
            mut(dense, put("pixels.counts.dtype", ">u4")),
            "bad_dtype",
            "pixels.counts.dtype",
            "",
        ),
        (
            "spectra_live_nan",
            mut(dense, put("pixels.live_time_s", typed(nan_live))),
            "bad_value",
            "pixels.live_time_s",
            "",
        ),
        (
            "spectra_live_infinite",
            mut(dense, put("pixels.live_time_s", typed(np.array([np.inf])))),
            "bad_value",
            "pixels.live_time_s",
            "times must be finite (a zero or negative one is valid: recorded, not inferred)",
        ),
        (
            "spectra_real_infinite",
            mut(dense4, put("pixels.real_time_s", typed(np.full(4, np.inf, "<f4")))),
            "bad_value",
            "pixels.real_time_s",
            "",
        ),
        (
            "spectra_x_signed",
            mut(dense, put("pixels.x", typed(np.array([-1], "<i4")))),
            "bad_dtype",
            "pixels.x.dtype",
            "coordinates are unsigned",
        ),
        (
            "spectra_y_length",
            mut(dense4, put("pixels.y", typed(np.array([1, 2, 3], "<u4")))),
            "bad_shape",
            "pixels.y.shape",
            "",
        ),
        (
            "spectra_too_many_pixels",
            mut(
                dense,
                lambda m: m["pixels"].update(
                    x=typed(np.zeros(4097, "<u2")),
                    y=typed(np.zeros(4097, "<u2")),
                    live_time_s=typed(np.ones(4097, "<f4")),
                    real_time_s=typed(np.ones(4097, "<f4")),
                    counts=typed(np.zeros((4097, 1), "<u2")),
                ),
            ),
            "too_large",
            "pixels.x.shape",
            "",
        ),
        (
            "spectra_pixels_not_map",
            mut(dense, put("pixels", [1, 2])),
            "bad_type",
            "pixels",
            "",
        ),
        (
            "sparse_index_unsorted",
            mut(
                sparse,
                put("pixels.counts.index", typed(np.array([17, 3, 30, 0, 31], "<u2"))),
            ),
            "bad_index",
            "pixels.counts.index",
            "",
        ),
        (
            "sparse_index_duplicate",
            mut(
                sparse,
                put("pixels.counts.index", typed(np.array([3, 3, 30, 0, 31], "<u2"))),
            ),
            "bad_index",
            "pixels.counts.index",
            "",
        ),
        (
            "sparse_index_past_channels",
            mut(
                sparse,
                put("pixels.counts.index", typed(np.array([3, 17, 30, 0, 32], "<u2"))),
            ),
            "bad_index",
            "pixels.counts.index",
            "",
        ),
        (
            "sparse_indptr_end",
            mut(sparse, put("pixels.counts.indptr", typed(np.array([0, 3, 3, 4], "<u4")))),
            "bad_index",
            "pixels.counts.indptr",
            "indptr must end at len(index)",
        ),
        (
            "sparse_indptr_decreasing",
            mut(sparse, put("pixels.counts.indptr", typed(np.array([0, 3, 2, 5], "<u4")))),
            "bad_index",
            "pixels.counts.indptr",
            "",
        ),
        (
            "sparse_value_length",
            mut(sparse, put("pixels.counts.value", typed(np.ones(4, "<u2")))),
            "bad_shape",
            "pixels.counts.value.shape",
            "",
        ),
        (
            "sparse_layout_coo",
            mut(sparse, put("pixels.counts.layout", "coo")),
            "bad_value",
            "pixels.counts.layout",
            "",
        ),
    ]
