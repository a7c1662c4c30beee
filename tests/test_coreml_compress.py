"""fp16-compute compression, the iOS 18 variants (int4b, pal4g) and their per-layer fallbacks, compute units,
--ios-target: with real coremltools conversions and the reference evaluator."""

import numpy as np
import pytest

from benchmarks.parity.compute_units import ALL_UNITS, CPU_GPU, compute_units
from benchmarks.coreml_reference import MLModel
from benchmarks.coreml_reference.constexpr_ops import (CONSTEXPR_OPS, blockwise_shift_scale, lut_to_dense_ios18,
                                                       lut_to_sparse, sparse_blockwise_shift_scale)
from benchmarks.coreml_reference.model import load_spec
from benchmarks.coreml_reference.values import BlobFile, parse_value
from benchmarks.parity.compare import sqnr_db
from convert.context import ConversionContext
from convert.coreml.convert import convert_coreml
from convert.coreml.compress import int4_block, palette_group

from cli_helpers import assert_one_line_error, run


def _stored_args(op, blobs):
    """A saved constexpr op's inputs and attributes, read as the evaluator reads them (in their stored dtypes)."""
    args = {k: parse_value(v, blobs) for k, v in op.attributes.items() if k != "name"}
    args.update({k: parse_value(a.arguments[0].value, blobs) for k, a in op.inputs.items()})
    return args


@pytest.mark.parametrize("data_shape,scale_shape,offset", [
    ((8, 64), (8, 2), False), ((8, 64), (8, 2), True), ((6, 48, 3, 3), (6, 2, 1, 1), True),
    ((5, 7), (5, 1), False), ((4, 6), (2, 3), True),
])
def test_blockwise_shift_scale_is_coremltools_bit_for_bit(data_shape, scale_shape, offset):
    from coremltools.converters.mil.mil.ops.defs.iOS18.compression import constexpr_blockwise_shift_scale as op

    rng = np.random.default_rng(sum(data_shape))
    data = rng.integers(-8, 8, data_shape).astype(np.int8)  # int4 values, as the blob reader gives them
    scale = rng.uniform(1e-3, 0.1, scale_shape).astype(np.float16)
    zero = rng.integers(-8, 8, scale_shape).astype(np.int8) if offset else None
    ours = blockwise_shift_scale(data, scale, zero)
    theirs = op.decompress(data, scale, zero)
    assert ours.dtype == np.float16 and ours.shape == data.shape
    np.testing.assert_array_equal(ours.view(np.uint16), theirs.astype(np.float16).view(np.uint16))
    block = [d // s for d, s in zip(data_shape, scale_shape)]  # the textbook sum, element by element
    idx = tuple(np.indices(data_shape)[a] // block[a] for a in range(len(data_shape)))
    shifted = data.astype(np.float16) - (zero[idx] if offset else np.float16(0))
    np.testing.assert_array_equal(ours, scale[idx] * shifted)


@pytest.mark.parametrize("indices_shape,lut_shape,vector_axis", [
    ((32, 6), (2, 1, 16, 1), None), ((48, 5, 3, 3), (3, 1, 1, 1, 16, 1), None), ((6, 4), (1, 2, 4, 1), None),
    ((4, 3), (1, 1, 4, 2), 0), ((4, 3), (2, 1, 16, 3), 1),
])
def test_ios18_lut_to_dense_is_coremltools_bit_for_bit(indices_shape, lut_shape, vector_axis):
    from coremltools.converters.mil.mil.ops.defs.iOS18.compression import constexpr_lut_to_dense as op

    rng = np.random.default_rng(len(indices_shape) + lut_shape[-2])
    indices = rng.integers(0, lut_shape[-2], indices_shape).astype(np.uint8)
    lut = rng.normal(size=lut_shape).astype(np.float16)
    ours = lut_to_dense_ios18(indices, lut, None if vector_axis is None else np.int32(vector_axis))
    theirs = op.decompress(indices, lut, vector_axis)
    assert ours.dtype == np.float16
    np.testing.assert_array_equal(ours, theirs)
    if vector_axis is None:  # each element reads its own block's table
        block = [i // n for i, n in zip(indices_shape, lut_shape[:-2])]
        for pos in [(0,) * len(indices_shape), tuple(d - 1 for d in indices_shape)]:
            table = lut[tuple(p // b for p, b in zip(pos, block))][..., 0]
            assert ours[pos] == table[indices[pos]]


@pytest.mark.parametrize("shape,lut_shape,vector_axis", [
    ((8, 6), (2, 1, 4, 1), None), ((4, 3, 2), (1, 3, 1, 2, 1), None), ((4, 6), (1, 1, 4, 2), 0), ((4, 6), (2, 1, 2, 3), -1),
])
def test_ios18_lut_to_sparse_is_coremltools_bit_for_bit(shape, lut_shape, vector_axis):
    """Both outputs, the (repeated) mask and the nonzero values, as coremltools' own decompress gives them."""
    from coremltools.converters.mil.mil.ops.defs.iOS18.compression import constexpr_lut_to_sparse as op

    rng = np.random.default_rng(sum(shape) + lut_shape[-1])
    mask = rng.integers(0, 2, shape).astype(np.uint8)
    indices = rng.integers(0, lut_shape[-2], int(mask.sum())).astype(np.uint8)
    lut = rng.normal(size=lut_shape).astype(np.float16)
    axis = None if vector_axis is None else np.int32(vector_axis)
    (our_mask, ours), (their_mask, theirs) = lut_to_sparse(mask, indices, lut, axis), op.decompress(
        mask, indices, lut, vector_axis)
    np.testing.assert_array_equal(our_mask, their_mask)
    assert ours.dtype == np.float16 and ours.size == mask.sum() * lut_shape[-1]
    np.testing.assert_array_equal(ours.view(np.uint16), theirs.view(np.uint16))
    if vector_axis is None:  # the first nonzero entry reads its own block's table
        first = tuple(int(i) for i in np.argwhere(mask)[0])
        block = tuple(p // (d // n) for p, d, n in zip(first, shape, lut_shape[:-2]))
        assert ours[0] == lut[block][indices[0], 0]


@pytest.mark.parametrize("shape,scale_shape,offset", [((8, 6), (8, 1), True), ((8, 6), (2, 3), False),
                                                      ((4, 4, 2), (1, 2, 1), True)])
def test_ios18_sparse_blockwise_shift_scale_is_coremltools_bit_for_bit(shape, scale_shape, offset):
    from coremltools.converters.mil.mil.ops.defs.iOS18.compression import constexpr_sparse_blockwise_shift_scale as op

    rng = np.random.default_rng(sum(shape) + len(scale_shape))
    mask = rng.integers(0, 2, shape).astype(np.uint8)
    data = rng.integers(-8, 8, int(mask.sum())).astype(np.int8)
    scale = rng.uniform(1e-3, 0.1, scale_shape).astype(np.float16)
    zero = rng.integers(-8, 8, scale_shape).astype(np.int8) if offset else None
    (our_mask, ours), (their_mask, theirs) = sparse_blockwise_shift_scale(mask, data, scale, zero), op.decompress(
        mask, data, scale, zero)
    np.testing.assert_array_equal(our_mask, mask)
    np.testing.assert_array_equal(their_mask, mask)
    assert ours.dtype == np.float16 and ours.shape == data.shape
    np.testing.assert_array_equal(ours.view(np.uint16), theirs.astype(np.float16).view(np.uint16))
    last = tuple(int(i) for i in np.argwhere(mask)[-1])  # the last nonzero value, by hand
    block = tuple(p // (d // n) for p, d, n in zip(last, shape, scale_shape))
    assert ours[-1] == scale[block] * (np.float16(data[-1]) - (np.float16(zero[block]) if offset else 0))


def test_fallback_block_and_group_sizes():
    assert [int4_block(c) for c in (32, 64, 48, 144, 40, 24, 1, 3, 37, 74)] == [32, 32, 24, 24, 20, 24, 1, 3, 37, 74]
    assert [palette_group(c) for c in (16, 64, 40, 10, 37, 24)] == [16, 16, 10, 10, 1, 12]


def _fallback_model():
    """Layers whose channels 32 (int4b blocks) and 16 (pal4g groups) do not all divide."""
    import keras

    keras.utils.set_random_seed(4)
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(48, 3, padding="same", activation="relu")(inp)
    x = keras.layers.Conv2D(40, 3, padding="same", activation="relu")(x)  # in 48, out 40
    x = keras.layers.Conv2D(64, 1, activation="relu")(x)  # in 40, out 64
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(37, activation="relu")(x)  # in 64, out 37
    x = keras.layers.Dense(64, activation="relu")(x)  # in 37, out 64
    return keras.Model(inp, keras.layers.Dense(10, activation="softmax")(x))


@pytest.fixture(scope="module")
def ios18(tmp_path_factory):
    """The fallback model converted to int4b and pal4g: (model, inputs, {quant: (in-memory MLModel, saved path)})."""
    model = _fallback_model()
    x = np.random.default_rng(0).uniform(0, 255, (8, 8, 8, 3)).astype(np.float32)
    out = {}
    for quant in ("int4b", "pal4g"):
        path = tmp_path_factory.mktemp(quant) / f"m_{quant}.mlpackage"
        mlmodel = convert_coreml(ConversionContext(model), "mlprogram", quant)
        mlmodel.save(str(path))
        out[quant] = (mlmodel, path)
    return model, x, out


@pytest.mark.parametrize("quant", ["int4b", "pal4g"])
def test_saved_ios18_weights_expand_as_coremltools_does(ios18, quant):
    mlmodel, path = ios18[2][quant]
    theirs = {op.name: op.materialized_val_inference()
              for op in mlmodel._mil_program.functions["main"].operations if op.op_type.startswith("constexpr_")}
    spec, weights = load_spec(path)
    fn = spec.mlProgram.functions["main"]
    assert fn.opset == "CoreML8"  # iOS 18
    ops = [op for op in fn.block_specializations[fn.opset].operations if op.type.startswith("constexpr_")]
    want = "constexpr_blockwise_shift_scale" if quant == "int4b" else "constexpr_lut_to_dense"
    assert len(ops) == 4 and {op.type for op in ops} == {want}
    for op in ops:
        ours = CONSTEXPR_OPS[op.type](**_stored_args(op, BlobFile(weights)))
        expected = theirs[op.outputs[0].name]
        assert ours.dtype == expected.dtype == np.float16
        np.testing.assert_array_equal(ours.view(np.uint16), expected.view(np.uint16))


def test_layers_the_block_does_not_divide_fall_back_and_are_recorded(ios18):
    import json

    from convert.coreml.compress import FALLBACKS_KEY

    records = {q: json.loads(m.user_defined_metadata[FALLBACKS_KEY]) for q, (m, _) in ios18[2].items()}
    # MIL weight shapes: conv (out, in, kh, kw), matmul (in, out). By hand: the largest divisor <= 32 of
    # the input channels if >= 8, else the whole input; for pal4g the largest divisor <= 16 of the outputs.
    assert {tuple(r["shape"]): r["block_size"] for r in records["int4b"]} == {
        (40, 48, 3, 3): 24, (64, 40, 1, 1): 20, (37, 64): 37}
    assert {tuple(r["shape"]): r["group_size"] for r in records["pal4g"]} == {(40, 48, 3, 3): 10, (64, 37): 1}
    assert all("not a multiple of" in r["reason"] for rs in records.values() for r in rs)
    mlmodel, _ = ios18[2]["int4b"]
    scales = {op.name: op.scale.val.shape for op in mlmodel._mil_program.functions["main"].operations
              if op.op_type == "constexpr_blockwise_shift_scale"}
    assert sorted(scales.values()) == sorted([(40, 2, 1, 1), (64, 2, 1, 1), (2, 37), (1, 64)])


@pytest.mark.parametrize("quant", ["int4b", "pal4g"])
def test_evaluator_runs_ios18_programs_in_fp16(ios18, quant):
    model, x, converted = ios18
    runner = MLModel(converted[quant][1], precision="gpu/ane")
    compute = [st for st in runner.program.steps if st.op_type not in ("cast",)]
    assert compute and all(all(st.fp16) for st in compute)
    out = runner.predict_batch([x])[0]
    # 4-bit weights: lossy, but a wrong expansion (block order, axis) gives ~0 dB.
    assert sqnr_db(out, np.asarray(model(x))) >= 15.0


@pytest.fixture(scope="module")
def small_model():
    import keras

    keras.utils.set_random_seed(2)
    inp = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2D(32, 3, padding="same", dilation_rate=2, activation="relu")(inp)
    x = keras.layers.Conv2D(96, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(4)(x))


@pytest.mark.parametrize("fmt,quant,units,dtype", [
    ("mlprogram", "int8w", ALL_UNITS, 10), ("mlprogram", "pal6", ALL_UNITS, 10), ("mlprogram", "pal4", ALL_UNITS, 10),
    ("mlprogram", "pal4-fp32", CPU_GPU, 11), ("mlprogram", "fp32", CPU_GPU, 11), ("neuralnetwork", "fp32", ALL_UNITS, None),
])
def test_compute_precision_and_units(small_model, tmp_path, fmt, quant, units, dtype):
    path = tmp_path / ("m.mlpackage" if fmt == "mlprogram" else "m.mlmodel")
    convert_coreml(ConversionContext(small_model), fmt, quant).save(str(path))
    found = compute_units(path)
    assert found["compute_units"] == units
    assert "dilated conv (1) reported to fall back" in found["compute_units_note"]
    spec, _ = load_spec(path)
    assert [f.type.multiArrayType.dataType for f in (*spec.description.input, *spec.description.output)] == [65568] * 2
    if dtype is not None:  # the program's ops are typed in its compute precision
        runner = MLModel(path, precision="gpu/ane")
        convs = [st for st in runner.program.steps if st.op_type == "conv"]
        assert len(convs) == 2 and all(st.fp16 == [dtype == 10] for st in convs)


def test_default_variants_follow_the_ios_target():
    from convert.config import ConvertConfig

    def quants(**kw):
        return [q for _, _, q in ConvertConfig(targets=("coreml",), **kw).variants()]

    assert quants() == ["fp32", "fp16", "int8w", "pal6", "pal4"]
    assert quants(ios_target=18) == ["fp32", "fp16", "int8w", "pal6", "pal4", "int4b", "pal4g"]
    assert quants(quantizations=("pal4-fp32", "int8w")) == ["int8w", "pal4-fp32"]
    from convert.search import COREML_LADDER

    def ladder(**kw):
        config = ConvertConfig(targets=("coreml",), max_drop_pp=1.0, **kw)
        return [q for q in COREML_LADDER["mlprogram"] if config.allows("coreml", "mlprogram", q)]

    assert ladder() == ["pal4", "pal6", "int8w", "fp16"]
    assert ladder(ios_target=18) == ["pal4", "pal4g", "int4b", "pal6", "int8w", "fp16"]
    assert ladder(ios_target=18, quantizations=("int8w-fp32", "int4b")) == ["int4b", "int8w-fp32"]


@pytest.mark.bad_input("cli")
@pytest.mark.parametrize("args,fragments", [
    pytest.param(["--quant", "int4b"], ["int4b", "needs iOS 18", "--ios-target 18"], id="int4b-on-ios16"),
    pytest.param(["--quant", "fp16,pal4g", "--ios-target", "17"], ["pal4g", "needs iOS 18", "--ios-target is 17"],
                 id="pal4g-on-ios17"),
    pytest.param(["--quant", "w8a8"], ["w8a8", "needs iOS 17", "--ios-target 17"], id="w8a8-on-ios16"),
    pytest.param(["--ios-target", "15"], ["--ios-target", "'15' is not one of '16', '17', '18'"], id="ios-target-15"),
])
def test_variant_newer_than_the_ios_target_is_refused(tensor_model, tmp_path, args, fragments):
    out = tmp_path / "dist"
    out.mkdir()
    (out / "keep.txt").write_text("previous output")
    result = run("convert", tensor_model, "--target", "coreml", *args, "--out", out)
    assert_one_line_error(result, 2, *fragments)
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "previous output"


def _row(name, size, units):
    from row_helpers import figures, make_row

    return make_row(name, [figures(sqnr_db=40.0)], size_bytes=size, compute_units=units)


def test_ios_recommendation_prefers_the_neural_engine_unless_told_not_to():
    from benchmarks.gating.recommend import recommend
    from convert.budget import Budget

    rows = [_row("pal4-fp32", 60_000, CPU_GPU), _row("pal4", 62_000, ALL_UNITS), _row("fp32", 380_000, CPU_GPU)]
    assert recommend(rows, Budget(max_drop_pp=1.0))["ios"] == "pal4"
    assert "that can use the Neural Engine" in rows[1].recommendation_reason
    assert "no Neural Engine; pal4 can use the Neural Engine" in rows[0].recommendation_reason
    assert recommend(rows, Budget(max_drop_pp=1.0), prefer_neural_engine=False)["ios"] == "pal4-fp32"
    assert "Neural Engine" not in rows[0].recommendation_reason
    only_fp32 = [_row("pal4-fp32", 60_000, CPU_GPU), _row("fp32", 380_000, CPU_GPU)]
    assert recommend(only_fp32, Budget(max_drop_pp=1.0))["ios"] == "pal4-fp32"
    assert only_fp32[0].recommendation_reason.endswith("none of them can use the Neural Engine")


@pytest.mark.parametrize("quant", ["int4b", "pal4g"])
def test_a_weight_coremltools_cannot_compress_is_recorded_not_dropped(quant):
    """A weight read as matmul's y by one op and as its x by another has no single channel axis: coremltools
    skips it with a log line only; the artifact must say so."""
    from convert.coreml.convert import import_coremltools
    from convert.coreml.compress import compress, recorded_fallbacks

    ct = import_coremltools()
    from coremltools.converters.mil import Builder as mb

    w_val = np.random.default_rng(0).normal(size=(64, 64)).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(shape=(64, 64))], opset_version=ct.target.iOS18)
    def prog(x):
        w = mb.const(val=w_val, name="shared")
        return mb.add(x=mb.matmul(x=x, y=w), y=mb.matmul(x=w, y=x))

    mlmodel = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS18,
                         compute_precision=ct.precision.FLOAT16)
    [record] = recorded_fallbacks(compress(mlmodel, quant))
    assert record["uncompressed"] is True and record["shape"] == [64, 64] and "channel axes" in record["reason"]


def test_fallbacks_reach_the_manifest_and_the_report_lines(tmp_path):
    """convert -> manifest notes -> bench row -> report.md line, for a layer int4b could not block by 32."""
    from benchmarks.bench import _coreml_fields
    from benchmarks.report.summary import compute_unit_lines
    from convert.api import ConvertConfig, convert
    from convert.manifest import load_manifest

    _fallback_model().save(tmp_path / "m.keras")
    convert(tmp_path / "m.keras", tmp_path / "dist", ConvertConfig(targets=("coreml",), quantizations=("int4b",),
                                                                    ios_target=18), log=lambda m: None)
    [artifact] = load_manifest(tmp_path / "dist").artifacts
    assert artifact.notes["minimum_deployment_target"] == "iOS18" and artifact.notes["compute_precision"] == "float16"
    assert len(artifact.notes["compression_fallbacks"]) == 3
    from types import SimpleNamespace

    from benchmarks.row import ArtifactRow
    from row_helpers import make_row

    fields = ArtifactRow.parse_fields(_coreml_fields(artifact, artifact.path(tmp_path / "dist")))
    lines = compute_unit_lines(SimpleNamespace(artifacts=[make_row(artifact.name, **fields)]))  # one row's report
    assert lines[0] == "`model_mlprogram_int4b`: CPU, GPU, Neural Engine (float16-typed ML Program)"
    assert any("[40, 48, 3, 3]: block size 24, 48 input channels are not a multiple of 32" in ln for ln in lines[1:])
