"""Core ML conversion and the reference evaluator, checked against Keras with real coremltools."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmarks.coreml_reference import CoreMLFormatError, InputMismatchError, MLModel, UnsupportedOpError
from benchmarks.coreml_reference.mil_ops import affine_dequantize, lut_to_dense
from benchmarks.parity.compare import sqnr_db
from convert.context import ConversionContext
from convert.coreml.convert import convert_coreml, imagetype_scale_bias
from convert.errors import UnsupportedLayerError
from train.preprocessing import Preprocessing

FAMILIES = [("mlprogram", "fp32"), ("mlprogram", "fp16"), ("mlprogram", "int8w"), ("mlprogram", "pal6"),
            ("mlprogram", "pal4"), ("neuralnetwork", "fp32"), ("neuralnetwork", "fp16")]
SUFFIX = {"mlprogram": ".mlpackage", "neuralnetwork": ".mlmodel"}


def test_imagetype_scale_bias_arithmetic_on_a_2x2_image():
    prep = Preprocessing(image_size=(2, 2), normalization_in_model=False, mean=(127.5,) * 3, std=(127.5,) * 3)
    scale, bias = imagetype_scale_bias(prep)
    img = np.array([[[0, 0, 0], [255, 255, 255]], [[127.5, 127.5, 127.5], [51, 102, 204]]], np.float32)
    core_ml = img * scale + np.array(bias)  # what Core ML does to each pixel
    np.testing.assert_allclose(core_ml, (img - 127.5) / 127.5, atol=1e-6)
    assert imagetype_scale_bias(Preprocessing(image_size=(2, 2))) == (1.0, [0.0, 0.0, 0.0])
    with pytest.raises(UnsupportedLayerError, match="one scale for all channels"):
        imagetype_scale_bias(Preprocessing(image_size=(2, 2), normalization_in_model=False, std=(58.0, 57.0, 57.5)))


def test_lut_expansion_matches_coremltools():
    from coremltools.converters.mil.mil.ops.defs.iOS16.constexpr_ops import constexpr_lut_to_dense
    from coremltools.optimize._utils import pack_elements_into_bits

    rng = np.random.default_rng(0)
    for nbits in (4, 6):
        lut = rng.normal(size=2 ** nbits).astype(np.float32)
        idx = rng.integers(0, 2 ** nbits, 5 * 7).astype(np.uint8)
        packed = pack_elements_into_bits(idx, nbits)
        ours = lut_to_dense(lut, packed, np.array([5, 7], np.uint32))
        np.testing.assert_array_equal(ours, constexpr_lut_to_dense.decompress(lut, packed, np.array([5, 7])))
        np.testing.assert_array_equal(ours, lut[idx].reshape(5, 7))


def test_affine_dequantize_is_per_channel():
    q = np.array([[-128, 0, 127], [10, -10, 0]], np.int8)
    out = affine_dequantize(q, np.array([0, 1], np.int8), np.array([0.5, 2.0], np.float32), np.array(0))
    np.testing.assert_allclose(out, [[-64, 0, 63.5], [18, -22, -2]])


@pytest.fixture(scope="module")
def zoo():
    from model_zoo import zoo_model

    model = zoo_model()
    x = np.random.default_rng(0).uniform(0, 255, (6, 16, 16, 3)).astype(np.float32)
    return model, x, np.asarray(model(x, training=False))


@pytest.mark.parametrize("fmt,quant", FAMILIES)
def test_evaluator_matches_keras_on_every_building_block(zoo, tmp_path, fmt, quant):
    model, x, ref = zoo
    path = tmp_path / f"zoo{SUFFIX[fmt]}"
    convert_coreml(ConversionContext(model), fmt, quant).save(str(path))
    # as the bench runs them: ML Programs with every fp16 op rounded (the Neural Engine's precision)
    out = MLModel(path, precision="gpu/ane" if fmt == "mlprogram" else "cpu").predict_batch([x])[0]
    assert out.shape == ref.shape
    if quant == "fp32":
        assert np.abs(out - ref).max() <= 1e-4
    elif quant == "fp16":
        assert sqnr_db(out, ref) >= 30.0
    else:
        # Compressed weights: lossy, but a wrong expansion (bit order, axis) gives ~0 dB.
        assert sqnr_db(out, ref) >= 15.0


def test_fp16_program_on_the_neural_engine_and_on_the_cpu(zoo, tmp_path):
    """gpu/ane rounds every fp16 op, adding error beyond the fp16 weights; cpu (the default) keeps
    float32 activations, as Core ML's CPU does. A mode that changed nothing would hide one or the other."""
    model, x, ref = zoo
    path = tmp_path / "zoo16.mlpackage"
    convert_coreml(ConversionContext(model), "mlprogram", "fp16").save(str(path))
    gpu_ane = MLModel(path, precision="gpu/ane")
    cpu = MLModel(path, precision="cpu")
    assert cpu.precision == "cpu"
    out16, out32 = gpu_ane.predict_batch([x])[0], cpu.predict_batch([x])[0]
    assert np.abs(out16 - out32).max() > 1e-5
    assert np.abs(out16 - ref).max() > 1.2 * np.abs(out32 - ref).max()


@pytest.fixture(scope="module")
def coreml_dist(tiny_run, tmp_path_factory):
    from convert.api import ConvertConfig, convert

    out = tmp_path_factory.mktemp("cm") / "dist"
    convert(tiny_run, out, ConvertConfig(targets=("coreml",), coreml_formats=("mlprogram", "neuralnetwork"),
                                         quantizations=("fp32", "fp16", "pal6")), log=lambda m: None)
    return out


def test_image_classifier_contract(coreml_dist, tiny_run):
    from convert.manifest import load_manifest
    from train.loading import sha256_file

    m = load_manifest(coreml_dist)
    assert sorted(a.name for a in m.artifacts) == ["model_mlprogram_fp16", "model_mlprogram_fp32",
                                                     "model_mlprogram_pal6", "model_neuralnetwork_fp16",
                                                     "model_neuralnetwork_fp32"]
    for a in m.artifacts:
        assert a.path(coreml_dist).exists() and a.file.endswith(SUFFIX[a.format])
        assert a.inputs[0]["kind"] == "imageType" and a.inputs[0]["shape"] == [1, 16, 16, 3]
        assert a.notes["predicted_feature"] == "classLabel"
        spec = MLModel(a.path(coreml_dist), precision="cpu").spec
        meta = spec.description.metadata
        assert meta.author and meta.license and meta.shortDescription and meta.versionString
        user = dict(meta.userDefined)
        assert user["mobilepack.source_model_sha256"] == sha256_file(tiny_run / "model.keras")
        assert json.loads(user["mobilepack.preprocessing"])["image_size"] == [16, 16]
    assert m.artifact("model_mlprogram_pal6").notes["minimum_deployment_target"] == "iOS16"
    assert m.artifact("model_neuralnetwork_fp32").notes["minimum_deployment_target"] == "iOS13"


def test_bench_reports_coreml_rows(coreml_dist, fast_latency):
    from benchmarks.bench import BenchConfig, run_bench

    r = run_bench(coreml_dist, BenchConfig(repeat=1, data="digits", threads=(1,), latency=fast_latency, crosscheck=False), log=lambda m: None)
    rows = {a["name"]: a for a in r["artifacts"]}
    for a in rows.values():
        assert a["runtime"] == "coreml-reference" and "not device latency" in a["latency_note"]
        assert a["latency_ms"][0]["threads"] is None and a["latency_ms"][0]["runs"] >= 5
    # fp32: exact where the precision is float32, the ML Program everywhere, the NeuralNetwork on the CPU
    for figures in (rows["model_mlprogram_fp32"], rows["model_neuralnetwork_fp32"]["cpu_figures"]):
        assert figures["agreement"] == 1.0 and figures["max_abs_error"] < 1e-4
    # ...and a NeuralNetwork is gated on float16, as the GPU and Neural Engine run it
    nn = rows["model_neuralnetwork_fp32"]
    assert nn["precision"] == "gpu/ane" and nn["max_abs_error"] > 10 * nn["cpu_figures"]["max_abs_error"]
    assert nn["agreement"] >= 0.99 and "judged at gpu/ane precision" in nn["reason"]
    assert all(rows[n]["cpu_figures"] is None for n in rows if "mlprogram" in n)
    assert rows["model_mlprogram_fp16"]["agreement"] >= 0.99 and rows["model_mlprogram_fp16"]["sqnr_db"] >= 30
    assert "coreml-reference" in (coreml_dist / "report.md").read_text()
    # fp32-typed ML Program: no Neural Engine; fp16-typed and compressed on fp16, and NeuralNetwork: all three.
    assert {n: a["compute_units"] for n, a in rows.items()} == {
        "model_mlprogram_fp32": "CPU, GPU", "model_mlprogram_fp16": "CPU, GPU, Neural Engine",
        "model_mlprogram_pal6": "CPU, GPU, Neural Engine", "model_neuralnetwork_fp32": "CPU, GPU, Neural Engine",
        "model_neuralnetwork_fp16": "CPU, GPU, Neural Engine"}
    md = (coreml_dist / "report.md").read_text()
    assert "| artifact | runtime | quant | compute units | precision |" in md and "## Core ML compute units" in md
    assert "`model_mlprogram_fp32`: CPU, GPU (float32-typed ML Program: Core ML bars the Neural Engine)" in md
    passing = [a for a in rows.values() if a["status"] == "passed"]
    assert r["recommended"]["ios"] == min(passing, key=lambda a: a["size_bytes"])["name"]
    assert r["recommended"]["android"] is None
    import jsonschema

    schema = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "report" / "report.schema.json").read_text())
    jsonschema.validate(json.loads((coreml_dist / "report.json").read_text()), schema)


@pytest.mark.bad_input("loader")
def test_not_a_core_ml_file(tmp_path):
    bad = tmp_path / "model.mlmodel"
    bad.write_bytes(b"\x00\x01 this is not a protobuf of a model")
    with pytest.raises(CoreMLFormatError, match="not a Core ML model"):
        MLModel(bad, precision="cpu")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(CoreMLFormatError, match="not a Core ML model"):
        MLModel(tmp_path / "notes.txt", precision="cpu")


@pytest.mark.bad_input("loader")
def test_truncated_mlpackage(coreml_dist, tmp_path):
    pkg = tmp_path / "cut.mlpackage"
    shutil.copytree(coreml_dist / "model_mlprogram_fp32.mlpackage", pkg)
    weights = next(pkg.rglob("weight.bin"))
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CoreMLFormatError, match="truncated"):
        MLModel(pkg, precision="cpu")
    (pkg / "Manifest.json").unlink()
    with pytest.raises(CoreMLFormatError, match="no Manifest.json"):
        MLModel(pkg, precision="cpu")


@pytest.mark.bad_input("api")
def test_unknown_op_is_named(coreml_dist, tmp_path):
    pkg = tmp_path / "odd.mlpackage"
    shutil.copytree(coreml_dist / "model_mlprogram_fp32.mlpackage", pkg)
    spec_file = next(pkg.rglob("model.mlmodel"))
    from coremltools.proto import Model_pb2

    spec = Model_pb2.Model()
    spec.ParseFromString(spec_file.read_bytes())
    block = spec.mlProgram.functions["main"].block_specializations["CoreML5"]
    next(op for op in block.operations if op.type == "relu").type = "mystery_op"
    spec_file.write_bytes(spec.SerializeToString())
    with pytest.raises(UnsupportedOpError, match="mystery_op") as raw:
        MLModel(pkg, precision="cpu")
    # mobilepack's runner: the same message, as a named MobilepackError (one line, exit 2) with the ops
    from benchmarks.runners import CoreMLReferenceRunner, CoreMLUnsupportedError

    with pytest.raises(CoreMLUnsupportedError) as adapted:
        CoreMLReferenceRunner(pkg)
    assert str(adapted.value) == str(raw.value) and adapted.value.ops == ("mystery_op",)
    assert adapted.value.exit_code == 2 and "\n" not in str(adapted.value)


@pytest.mark.bad_input("api")
def test_input_shape_mismatch(coreml_dist):
    path = coreml_dist / "model_neuralnetwork_fp32.mlmodel"
    with pytest.raises(InputMismatchError, match=r"\(16, 16, 3\).*\(20, 20, 3\)") as raw:
        MLModel(path, precision="cpu").predict_batch([np.zeros((2, 20, 20, 3), np.float32)])
    from benchmarks.errors import BenchDataError
    from benchmarks.runners import CoreMLReferenceRunner

    with pytest.raises(BenchDataError) as adapted:  # bad data for any runtime is BenchDataError
        CoreMLReferenceRunner(path).predict([np.zeros((2, 20, 20, 3), np.float32)])
    assert str(adapted.value) == str(raw.value) and adapted.value.exit_code == 2


@pytest.mark.bad_input("api")
def test_layer_core_ml_cannot_take_is_named_and_nothing_written(tmp_path):
    import keras

    from convert.api import ConvertConfig, convert

    inputs = keras.Input((4, 4, 2))
    outputs = keras.layers.UpSampling2D(interpolation="bicubic", name="bicubic")(inputs)
    keras.Model(inputs, outputs).save(tmp_path / "bicubic.keras")
    with pytest.raises(UnsupportedLayerError, match=r"mlprogram: layer 'bicubic' \(UpSampling2D\).*ResizeBicubic.*"
                                                    r"--target tflite"):
        convert(tmp_path / "bicubic.keras", tmp_path / "out", ConvertConfig(targets=("coreml",)), log=lambda m: None)
    assert not (tmp_path / "out").exists()


def _tamper(dist, tmp_path, edit):
    """A copy of `dist` whose mlpackage was changed by `edit` and re-recorded in the manifest."""
    from train.loading import sha256_file, size_on_disk

    copy = tmp_path / "dist"
    shutil.copytree(dist, copy)
    pkg = copy / "model_mlprogram_fp32.mlpackage"
    edit(pkg)
    manifest = json.loads((copy / "manifest.json").read_text())
    for a in manifest["artifacts"]:
        if a["file"] == pkg.name:
            a["sha256"], a["size_bytes"] = sha256_file(pkg), size_on_disk(pkg)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


@pytest.mark.parametrize("edit,message", [
    (lambda pkg: next(pkg.rglob("weight.bin")).write_bytes(b"\x00" * 64), "truncated"),
    (lambda pkg: (pkg / "Manifest.json").write_text("{}"), "damaged Manifest.json"),
])
def test_bench_cli_one_line_for_a_damaged_package(coreml_dist, tmp_path, edit, message):
    from click.testing import CliRunner

    from mobilepack.cli.main import cli

    dist = _tamper(coreml_dist, tmp_path, edit)
    result = CliRunner().invoke(cli, ["bench", str(dist), "--data", "digits", "--threads", "1", "--no-crosscheck", "--runs", "5",
                                      "--min-seconds", "0", "--warmup-seconds", "0", "--repeat", "1"])
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0] and "model_mlprogram_fp32.mlpackage" in lines[0], result.stderr


def test_real_bench_process_keeps_stderr_clean(coreml_dist, tmp_path):
    """coremltools logs about macOS-only modules on import; none of it may reach the user."""
    import subprocess
    import sys

    copy = tmp_path / "d"
    shutil.copytree(coreml_dist, copy)
    proc = subprocess.run([sys.executable, "-m", "mobilepack", "bench", str(copy), "--data", "digits", "--threads", "1", "--no-crosscheck",
                           "--runs", "5", "--min-seconds", "0", "--warmup-seconds", "0", "--repeat", "1", "-q"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == ""
    assert "coreml-reference" in proc.stdout


def test_stride2_same_padding_is_folded_into_the_conv(tmp_path):
    """MobileNet's explicit ZeroPadding2D + 'valid' stride-2 conv: the evaluator folds the pad and stays exact."""
    import keras

    keras.utils.set_random_seed(5)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu6")(inputs)
    x = keras.layers.ZeroPadding2D(((0, 1), (0, 1)))(x)
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="valid", activation="relu")(x)
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    path = tmp_path / "pads.mlpackage"
    convert_coreml(ConversionContext(model), "mlprogram", "fp32").save(str(path))
    runner = MLModel(path, precision="cpu")
    block = runner.spec.mlProgram.functions["main"].block_specializations["CoreML5"]
    assert [op.type for op in block.operations].count("pad") == 1  # the converter's explicit pad...
    assert not [st for st in runner.program.steps if st.op_type == "pad"]  # ...folded into the conv
    x = np.random.default_rng(0).normal(size=(4, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(runner.predict_batch([x])[0], np.asarray(model(x)), atol=1e-5)


def test_exact_gelu_is_one_gelu_op_on_both_targets():
    """Keras' default GELU (TF's Erfc): one gelu(EXACT) op in Core ML (convert/coreml/tf_ops.py), TFLite's GELU."""
    import keras
    from ai_edge_litert.interpreter import Interpreter

    from convert.context import ConversionContext
    from convert.coreml.convert import convert_coreml
    from convert.tflite.convert import convert_tflite

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="gelu")(inputs))
    ops = convert_coreml(ConversionContext(model), "mlprogram", "fp32")._mil_program.functions["main"].operations
    gelu = [op for op in ops if op.op_type == "gelu"]
    assert len(gelu) == 1 and gelu[0].mode.val == "EXACT" and not [op for op in ops if op.op_type == "erf"]
    tflite_ops = {op["op_name"] for op in Interpreter(model_content=convert_tflite(model, "fp32"))._get_ops_details()}
    assert "GELU" in tflite_ops
