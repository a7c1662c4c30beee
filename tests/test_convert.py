import json

import numpy as np
import pytest

from ai_edge_litert.interpreter import Interpreter
from convert.api import ConvertConfig, convert
from convert.errors import CalibrationDataError, ManifestError, UsageError
from convert.manifest import load_manifest, manifest_from_dict, verify_artifacts
from train.loading import sha256_file

QUANTS = ["fp32", "fp16", "dynamic", "int8"]
quiet = lambda m: None  # noqa: E731


@pytest.mark.parametrize("quant", QUANTS)
def test_each_variant_matches_its_manifest_entry(tiny_dist, quant):
    m = load_manifest(tiny_dist)
    a = m.artifact(f"model_{quant}")
    path = a.path(tiny_dist)
    assert a.size_bytes == path.stat().st_size and a.sha256 == sha256_file(path)
    interp = Interpreter(model_path=str(path))
    d = interp.get_input_details()[0]
    assert a.inputs[0]["dtype"] == np.dtype(d["dtype"]).name
    assert a.inputs[0]["shape_signature"] == [-1, 16, 16, 3]
    assert a.outputs[0]["shape"] == [1, 10]


def test_int8_is_full_integer_with_raw_pixel_input(tiny_dist):
    a = load_manifest(tiny_dist).artifact("model_int8")
    assert a.inputs[0]["dtype"] == "uint8"
    assert a.inputs[0]["quantization"] == {"scale": 1.0, "zero_point": 0}
    assert a.outputs[0]["dtype"] == "float32"
    interp = Interpreter(model_path=str(a.path(tiny_dist)))
    float_tensors = [t for t in interp.get_tensor_details()
                     if t["dtype"] == np.float32 and t["index"] != interp.get_output_details()[0]["index"]]
    # Only the dequantized output is float; every tensor in between is integer.
    assert float_tensors == []


def test_sizes_shrink_with_quantization(tiny_dist):
    m = load_manifest(tiny_dist)
    size = {a.quantization: a.size_bytes for a in m.artifacts}
    assert size["fp16"] < 0.6 * size["fp32"]
    assert size["int8"] < 0.35 * size["fp32"]


def test_manifest_carries_the_contract(tiny_dist, tiny_run):
    m = load_manifest(tiny_dist)
    assert m.task == "image_classification"
    assert m.labels == [str(i) for i in range(10)] and (tiny_dist / "labels.txt").is_file()
    assert m.preprocessing["image_size"] == [16, 16]
    assert m.source["model_sha256"] == sha256_file(tiny_run / "model.keras")
    assert m.tools["tensorflow"] and m.tools["ai-edge-litert"]
    assert m.calibration["count"] == 200 and "train split" in m.calibration["source"]
    assert set(m.calibration["per_class"].values()) == {20}  # class-balanced
    verify_artifacts(m, tiny_dist)


def test_uint8_output_option(tiny_run, tmp_path):
    m = convert(tiny_run, tmp_path / "o", ConvertConfig(quantizations=("int8",), int8_output="uint8"), log=quiet)
    out = m.artifact("model_int8").outputs[0]
    assert out["dtype"] == "uint8" and out["quantization"]["scale"] > 0


def test_non_image_model_converts_float_variants(tensor_model, tmp_path):
    m = convert(tensor_model, tmp_path / "o", ConvertConfig(quantizations=("fp32", "fp16")), log=quiet)
    assert m.task == "tensor" and m.preprocessing is None
    assert m.artifact("model_fp32").inputs[0]["shape"] == [1, 8]


@pytest.mark.bad_input("api")
def test_non_image_int8_without_calibration_is_refused(tensor_model, tmp_path):
    with pytest.raises(CalibrationDataError, match="--calibration FILE.npy"):
        convert(tensor_model, tmp_path / "o", ConvertConfig(quantizations=("int8",)), log=quiet)
    assert not (tmp_path / "o").exists()


def test_non_image_int8_with_npy_calibration(tensor_model, features_npy, tmp_path):
    m = convert(tensor_model, tmp_path / "o",
                ConvertConfig(quantizations=("int8",), calibration=str(features_npy)), log=quiet)
    a = m.artifact("model_int8")
    assert a.inputs[0]["dtype"] == "float32" and m.calibration["count"] == 120


@pytest.mark.bad_input("loader")
def test_calibration_of_wrong_shape(tensor_model, tmp_path):
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((150, 3), np.float32))
    with pytest.raises(CalibrationDataError, match=r"shape \(3,\), the model takes \(8,\)"):
        convert(tensor_model, tmp_path / "o", ConvertConfig(quantizations=("int8",), calibration=str(bad)), log=quiet)


@pytest.mark.bad_input("api")
def test_option_values_are_checked_before_any_work():
    with pytest.raises(UsageError, match="--calibration-size must be positive, got 0"):
        ConvertConfig(calibration_size=0)
    with pytest.raises(UsageError, match="--int8-output 'int4'; valid: float32, uint8"):
        ConvertConfig(int8_output="int4")


@pytest.mark.bad_input("api")
def test_unknown_quant_lists_valid_ones():
    with pytest.raises(UsageError, match="valid: fp32, fp16, dynamic, int8"):
        ConvertConfig(quantizations=("int4",))


@pytest.mark.bad_input("loader")
def test_manifest_refuses_unknown_schema_and_missing_fields(tiny_dist):
    d = json.loads((tiny_dist / "manifest.json").read_text())
    with pytest.raises(ManifestError, match="schema_version 7"):
        manifest_from_dict({**d, "schema_version": 7})
    broken = json.loads(json.dumps(d))
    del broken["artifacts"][0]["sha256"]
    with pytest.raises(ManifestError, match="sha256"):
        manifest_from_dict(broken)


@pytest.mark.bad_input("loader")
def test_altered_artifact_is_named(tiny_dist, tmp_path):
    import shutil

    copy = tmp_path / "d"
    shutil.copytree(tiny_dist, copy)
    with open(copy / "model_fp16.tflite", "ab") as fh:
        fh.write(b"x")
    with pytest.raises(ManifestError, match="model_fp16.tflite: sha256"):
        verify_artifacts(load_manifest(copy), copy)


def test_reconvert_replaces_the_folder_whole(tiny_run, tmp_path):
    out = tmp_path / "o"
    convert(tiny_run, out, ConvertConfig(quantizations=("fp32", "fp16")), log=quiet)
    convert(tiny_run, out, ConvertConfig(quantizations=("fp32",)), log=quiet)
    assert not (out / "model_fp16.tflite").exists()
    verify_artifacts(load_manifest(out), out)
    assert not list(tmp_path.glob(".o.mobilepack-staging-*"))


def test_one_savedmodel_export_gives_the_bytes_from_keras_model_gives(tiny_run):
    """convert exports the Keras model to a SavedModel once and converts every variant from it; each .tflite is
    byte for byte what TFLiteConverter.from_keras_model (an export per call) makes, metadata included."""
    import numpy as np

    from convert.calibration import CalibrationSet
    from convert.shapes import unrolled
    from convert.tflite import convert as tflite
    from train.loading import load_keras_model

    exported, per_call = load_keras_model(tiny_run / "model.keras"), load_keras_model(tiny_run / "model.keras")
    tflite._EXPORTED[unrolled(per_call)] = None  # as for a model Keras cannot export: from_keras_model each time
    x = np.random.default_rng(0).uniform(0, 255, (8, 16, 16, 3)).astype(np.float32)
    calibration = CalibrationSet((x,), {}, (exported.inputs[0].name,))
    for quant in ("fp32", "fp16", "dynamic", "int8"):
        once = tflite.convert_tflite(exported, quant, calibration, image_input=True)
        each = tflite.convert_tflite(per_call, quant, calibration, image_input=True)
        assert once == each, quant
    assert tflite._EXPORTED[unrolled(exported)] is not None  # the export was made, and kept for the next variant


def test_every_budget_candidate_quantizes_one_kept_calibration_to_the_bytes_a_new_debugger_gives(tiny_run):
    """The selective int8 candidates of the budget search quantize one kept calibrated conversion; each is byte
    for byte what a new QuantizationDebugger (a conversion and a calibration per candidate) made before."""
    import numpy as np
    import tensorflow as tf

    from convert.calibration import CalibrationSet
    from convert.tflite import convert as tflite
    from train.loading import load_keras_model

    kept, fresh = load_keras_model(tiny_run / "model.keras"), load_keras_model(tiny_run / "model.keras")
    x = np.random.default_rng(0).uniform(0, 255, (8, 16, 16, 3)).astype(np.float32)
    calibration = CalibrationSet((x,), {}, (kept.inputs[0].name,))
    int8 = tflite.convert_tflite(kept, "int8", calibration, image_input=True)
    ranked = tflite.layer_sensitivity(kept, calibration, int8)
    for float_layers in (ranked[0][0], [n for group, _ in ranked[:2] for n in group]):
        converter = tflite._converter(fresh)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = tflite._representative(calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
        new = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=tflite._representative(calibration),
            debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=float_layers))
        assert tflite.convert_tflite_mixed(kept, calibration, float_layers) == new.get_nondebug_quantized_model()
    assert tflite._DEBUGGERS[kept][0] is calibration  # one calibrated conversion, kept for every candidate
