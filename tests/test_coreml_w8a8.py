"""w8a8: the evaluator's activation ranges fed to coremltools' own W8A8 passes, checked against coremltools'
own calibration path (its linear_quantize_activations, with Core ML's predict answered by the evaluator as
in the op-test plugin), and against the Keras model on digits."""

import re
import shutil

import numpy as np
import pytest

from benchmarks.coreml_reference import MLModel
from benchmarks.coreml_reference.calibrate import activation_ranges
from convert.calibration import CalibrationSet
from convert.context import ConversionContext
from convert.coreml.convert import convert_coreml
from convert.coreml.w8a8 import activation_config, calibrated_stats

from cli_helpers import run


def _model():
    """conv+relu, max pool, a strided conv, add, concat, dense: every pattern the passes quantize around."""
    import keras

    keras.utils.set_random_seed(5)
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    y = keras.layers.Conv2D(8, 3, strides=2, padding="same")(x)
    s = keras.layers.Add()([keras.layers.MaxPooling2D()(x), y])
    c = keras.layers.Concatenate()([s, keras.layers.AveragePooling2D(2)(x)])
    out = keras.layers.Dense(4, activation="softmax")(keras.layers.GlobalAveragePooling2D()(c))
    return keras.Model(inp, out)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """(w8a8 MLModel calibrated on one sample, the float model it was calibrated on (saved), the samples)."""
    tmp = tmp_path_factory.mktemp("w8a8")
    x = np.random.default_rng(0).uniform(-1, 1, (3, 8, 8, 3)).astype(np.float32)

    def keep_float(path, inputs, names):  # the real evaluator's ranges; the float model kept for comparison
        shutil.copytree(path, tmp / "float.mlpackage")
        return activation_ranges(path, inputs, names)

    ctx = ConversionContext(_model(), calibration=CalibrationSet((x[:1],), {}), activation_ranges=keep_float)
    return convert_coreml(ctx, "mlprogram", "w8a8"), tmp / "float.mlpackage", x


def _coremltools_predicts_with_the_evaluator(monkeypatch, tmp_path):
    """Core ML's predict (what coremltools' calibration calls) answered by the evaluator at the CPU's precision."""
    from coremltools.models import MLModel as CoreMLModel

    def predict(self, data, state=None):
        path = tmp_path / f"cal{len(list(tmp_path.iterdir()))}.mlpackage"
        self.save(str(path))
        return MLModel(path, precision="cpu").predict(data)

    monkeypatch.setattr(CoreMLModel, "predict", predict)


def _float(path):
    import coremltools as ct

    return ct.models.MLModel(str(path), skip_model_load=True)


def _qdq(mlmodel):
    """Every op in order, with the scale and zero point of each quantize/dequantize."""
    ops = []
    for op in mlmodel._mil_program.functions["main"].operations:
        if op.op_type in ("quantize", "dequantize"):
            zp = None if op.zero_point is None else int(op.zero_point.val)
            ops.append((op.op_type, op.inputs["input"].name, float(op.scale.val), zp))
        elif op.op_type != "const":
            ops.append((op.op_type,))
    return ops


def test_w8a8_is_what_coremltools_own_calibration_makes(converted, monkeypatch, tmp_path):
    from coremltools.optimize import coreml as cto
    from coremltools.optimize.coreml.experimental._post_training_quantization import (
        _get_activation_calibration_stats,
    )

    ours, float_path, x = converted
    _coremltools_predicts_with_the_evaluator(monkeypatch, tmp_path)
    fl = _float(float_path)
    name = fl.get_spec().description.input[0].name
    theirs = cto.linear_quantize_activations(fl, activation_config(), [{name: x[:1]}])
    theirs = cto.linear_quantize_weights(theirs, cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(
        mode="linear_symmetric", dtype="int8", granularity="per_channel")))
    assert _qdq(ours) == _qdq(theirs)
    qdq = [op for op in _qdq(ours) if op[0] == "quantize"]
    assert len(qdq) >= 6 and {op[0] for op in _qdq(ours)} >= {"conv", "add", "max_pool", "avg_pool", "concat"}
    # the stats themselves: same tensors, same ranges as coremltools' calibration returns (as fp16, which it keeps)
    stats = calibrated_stats(fl, (x[:1],), activation_ranges)
    expected = _get_activation_calibration_stats(fl, [{name: x[:1]}])
    assert sorted(stats) == sorted(expected)
    for key in expected:
        assert [np.float16(stats[key][k]) for k in ("rmin", "rmax")] == \
            [np.float16(expected[key][k]) for k in ("rmin", "rmax")], key
    # the input's pair, by the textbook: symmetric int8, scale = max|x| / 127 in fp16 (the range is held as
    # fp16 first), no zero point
    first = qdq[0]
    assert first[2] == float(np.float16(np.float16(np.abs(x[:1]).max()) / np.float16(127))) and first[3] is None


def test_ranges_cover_every_calibration_sample(converted, monkeypatch, tmp_path):
    """coremltools 9.0 keeps only the last sample's range (apple/coremltools#2704); the fix (#2724) and we
    keep the running min and max: the union of what its calibration gives for each sample alone."""
    from coremltools.optimize.coreml.experimental._post_training_quantization import (
        _get_activation_calibration_stats,
    )

    _, float_path, x = converted
    _coremltools_predicts_with_the_evaluator(monkeypatch, tmp_path)
    fl = _float(float_path)
    name = fl.get_spec().description.input[0].name
    per_sample = [_get_activation_calibration_stats(fl, [{name: x[i:i + 1]}]) for i in range(len(x))]
    stats = calibrated_stats(fl, (x,), activation_ranges)
    widened = 0
    for key in stats:
        lo = min(np.float16(s[key]["rmin"]) for s in per_sample)
        hi = max(np.float16(s[key]["rmax"]) for s in per_sample)
        assert (np.float16(stats[key]["rmin"]), np.float16(stats[key]["rmax"])) == (lo, hi), key
        widened += (lo, hi) != (np.float16(per_sample[-1][key]["rmin"]), np.float16(per_sample[-1][key]["rmax"]))
    assert widened > 0  # the samples differ, so the last one alone would have been narrower somewhere


def test_digits_w8a8_agrees_with_keras_as_healthy_int8_does(tiny_run, tmp_path):
    """Through the CLI (mobilepack supplies the evaluator's ranges), on the run's own test split."""
    import keras

    from benchmarks.runners import coreml_runner
    from train.data import split_part
    from train.preprocessing import Preprocessing

    out = tmp_path / "dist"
    result = run("convert", tiny_run, "--target", "coreml", "--quant", "w8a8", "--ios-target", "17", "--out", out)
    assert result.exit_code == 0, result.output
    from convert.manifest import load_manifest

    [artifact] = load_manifest(out).artifacts
    assert artifact.notes["minimum_deployment_target"] == "iOS17"
    assert artifact.notes["weights"] == "int8, linear symmetric per channel; activations int8"
    assert re.fullmatch(r"int8, linear symmetric per tensor: \d+ quantize/dequantize pair\(s\), ranges from 200 "
                        r"calibration sample\(s\) .*", artifact.notes["activations"])
    data, test = split_part(tiny_run / "split.json", "test", log=lambda m: None)
    x = Preprocessing.load(tiny_run / "preprocessing.json").apply_batch([data.images[i] for i in test])
    y = data.labels[test]
    runner = coreml_runner(out / "model_mlprogram_w8a8.mlpackage")  # the device's precision, as bench runs it
    ours = runner.predict([x])[0].argmax(-1)
    ref = np.asarray(keras.models.load_model(tiny_run / "model.keras")(x)).argmax(-1)
    # Healthy int8 activations agree with Keras on all but a few inputs (0-1 of 359 for int8 over training seeds);
    # ranges that were not wired through reach chance (~0.1). The bounds sit between the two with a margin
    # for the CPU that trained, rather than at the w8a8 gate's own edge (1 pp, 3 inputs).
    assert len(y) >= 100 and (ref == y).mean() >= 0.9
    assert 100 * ((ref == y).mean() - (ours == y).mean()) <= 3.0
    assert (ours == ref).mean() >= 0.95
    steps = [st.op_type for st in runner.model.program.steps]
    assert steps.count("quantize") >= 3 and steps.count("dequantize") >= 3


def test_w8a8_without_an_activation_range_provider_says_how_to_get_one():
    from convert.errors import UsageError

    x = np.zeros((1, 8, 8, 3), np.float32)
    with pytest.raises(UsageError, match=r"w8a8 calibrates activations .*`mobilepack convert`"):
        convert_coreml(ConversionContext(_model(), calibration=CalibrationSet((x,), {})), "mlprogram", "w8a8")


@pytest.mark.bad_input("cli")
@pytest.mark.parametrize("args,fragments", [
    pytest.param([], ["w8a8 needs calibration data", "--calibration FILE.npy"], id="w8a8-without-calibration"),
    pytest.param(["--coreml-format", "neuralnetwork"], ["unknown --quant 'w8a8' for --target coreml", "valid: fp32, fp16"],
                 id="w8a8-neuralnetwork"),
])
def test_w8a8_bad_input_is_refused(tensor_model, tmp_path, args, fragments):
    from cli_helpers import assert_one_line_error

    out = tmp_path / "dist"
    out.mkdir()
    (out / "keep.txt").write_text("previous output")
    result = run("convert", tensor_model, "--target", "coreml", "--quant", "w8a8", "--ios-target", "17", *args,
                 "--out", out)
    assert_one_line_error(result, 2, *fragments)
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "previous output"
