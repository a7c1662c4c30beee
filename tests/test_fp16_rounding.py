"""round_fp16 must give numpy's own float16 cast, bit for bit: the evaluator's gpu/ane numbers rest on it."""

import numpy as np

from benchmarks.coreml_reference.kernels import round_fp16


def _numpy_cast(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return x.astype(np.float16).astype(np.float32)


def _same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Equal bits, or NaN on both sides (a NaN's payload is not a value)."""
    return (a.view(np.uint32) == b.view(np.uint32)) | (np.isnan(a) & np.isnan(b))


def _check(x: np.ndarray) -> None:
    got, want = round_fp16(x), _numpy_cast(x)
    bad = ~_same(got, want)
    assert not bad.any(), f"{bad.sum()} differ, e.g. {x[bad][:5]} -> {got[bad][:5]}, numpy {want[bad][:5]}"


def test_every_fp16_value_and_every_tie_between_two():
    values = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)
    finite = np.sort(values[np.isfinite(values)])
    mids = ((finite[:-1].astype(np.float64) + finite[1:]) / 2).astype(np.float32)  # exact in float32: ties
    assert np.all((mids.astype(np.float64) * 2) == finite[:-1].astype(np.float64) + finite[1:])
    next_up, next_down = np.nextafter(mids, np.float32(np.inf)), np.nextafter(mids, np.float32(-np.inf))
    edges = np.array([65504, 65519.996, 65520, 65536, 3e38, np.inf, -np.inf, np.nan, 0.0, -0.0,
                      2.0 ** -24, 2.0 ** -25, 2.0 ** -25 * 1.0000001, 2.0 ** -26, 2.0 ** -14, 1e-45], np.float32)
    x = np.concatenate([values, mids, next_up, next_down, edges, -edges])
    _check(x)


def test_random_bit_patterns_over_the_whole_float32_range():
    bits = np.random.default_rng(0).integers(0, 1 << 32, 2_000_000, dtype=np.uint64).astype(np.uint32)
    _check(bits.view(np.float32))


def test_shape_and_strides_do_not_matter_and_the_input_is_left_alone():
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32) * 1e-5
    view = x.transpose(0, 2, 3, 1)  # not contiguous
    before = view.copy()
    got = round_fp16(view)
    assert got.shape == view.shape and np.array_equal(view, before)
    assert np.all(_same(got, _numpy_cast(view)))
