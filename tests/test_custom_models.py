"""Models users actually have: custom layers, subclassed models (--custom-objects), None sizes (--input-shape)."""

import importlib.util
import json
import sys

import numpy as np
import pytest

from cli_helpers import assert_one_line_error, run

MODULE = '''
import keras


class MyLayer(keras.layers.Layer):
    def __init__(self, units=4, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, shape):
        self.w = self.add_weight(shape=(shape[-1], self.units))

    def call(self, x):
        return keras.ops.tanh(x @ self.w)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class Classifier(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(12, activation="relu")
        self.out = keras.layers.Dense(3, activation="softmax")

    def call(self, x):
        return self.out(self.hidden(x))
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """mymod.py in the working directory, as a user's own code is; imported afresh by each test."""
    (tmp_path / "mymod.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "mymod", raising=False)
    spec = importlib.util.spec_from_file_location("mymod", tmp_path / "mymod.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def custom_layer_model(user_module, tmp_path):
    import keras

    keras.utils.set_random_seed(5)
    inputs = keras.Input((8,), name="features")
    outputs = keras.layers.Dense(3, name="scores")(user_module.MyLayer(6)(inputs))
    keras.Model(inputs, outputs).save(tmp_path / "custom.keras")
    return tmp_path / "custom.keras"


@pytest.fixture
def subclassed_model(user_module, tmp_path):
    import keras

    keras.utils.set_random_seed(6)
    model = user_module.Classifier()
    model(np.zeros((1, 8), np.float32))
    model.save(tmp_path / "sub.keras")
    return tmp_path / "sub.keras"


@pytest.fixture
def sequence_model(tmp_path):
    import keras

    keras.utils.set_random_seed(7)
    inputs = keras.Input((None, 8), name="seq")
    x = keras.layers.Conv1D(6, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling1D()(x)
    keras.Model(inputs, keras.layers.Dense(1, name="value")(x)).save(tmp_path / "seq.keras")
    return tmp_path / "seq.keras"


def tflite_outputs(path, x):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    interp.allocate_tensors()
    out = []
    for sample in x:
        interp.set_tensor(interp.get_input_details()[0]["index"], sample[None])
        interp.invoke()
        out.append(interp.get_tensor(interp.get_output_details()[0]["index"])[0])
    return np.array(out)


def keras_outputs(path, x, **custom_objects):
    import keras

    return keras.models.load_model(path, compile=False, custom_objects=custom_objects).predict(x, verbose=0)


@pytest.mark.parametrize("fixture, name", [("custom_layer_model", "MyLayer"), ("subclassed_model", "Classifier")])
def test_custom_objects_convert_and_match_keras(request, tmp_path, fixture, name):
    path = request.getfixturevalue(fixture)
    assert "mymod" not in sys.modules  # the CLI must find it in the current directory by itself
    result = run("convert", path, "--quant", "fp32", "--custom-objects", f"mymod:{name}", "--out", tmp_path / "o")
    assert result.exit_code == 0, result.stderr
    x = np.random.default_rng(0).normal(size=(6, 8)).astype(np.float32)
    expected = keras_outputs(path, x, **{name: getattr(sys.modules["mymod"], name)})
    np.testing.assert_allclose(tflite_outputs(tmp_path / "o" / "model_fp32.tflite", x), expected, atol=1e-5)
    assert str(tmp_path) not in sys.path  # the working directory was on the path for the import only


@pytest.mark.parametrize("fixture, name", [("custom_layer_model", "MyLayer"), ("subclassed_model", "Classifier")])
@pytest.mark.bad_input("cli")
def test_missing_class_names_it_and_the_flag(request, tmp_path, fixture, name):
    path = request.getfixturevalue(fixture)
    result = run("convert", path, "--quant", "fp32", "--out", tmp_path / "o")
    assert_one_line_error(result, 2, f"needs the class '{name}'", f"--custom-objects mymod:{name}")
    assert "truncated" not in result.stderr and not (tmp_path / "o").exists()


@pytest.mark.parametrize("value, fragments", [
    ("mymod", ["--custom-objects 'mymod': not module:name"]),
    ("mymod:My-Layer", ["not module:name"]),
    ("nomod:MyLayer", ["--custom-objects nomod:MyLayer", "no module 'nomod' in the current directory"]),
    ("mymod:Nope", ["--custom-objects mymod:Nope", "has no attribute 'Nope'", "it defines: Classifier, MyLayer"]),
    ("broken:X", ["--custom-objects broken:X", "importing 'broken' raised SyntaxError"]),
], ids=["no-colon", "bad-name", "no-module", "no-attribute", "syntax-error"])
@pytest.mark.bad_input("cli")
def test_bad_custom_objects_one_line_each(custom_layer_model, tmp_path, value, fragments):
    (tmp_path / "broken.py").write_text("def oops(:\n")
    result = run("convert", custom_layer_model, "--quant", "fp32", "--custom-objects", value, "--out", tmp_path / "o")
    assert_one_line_error(result, 2, *fragments)
    assert not (tmp_path / "o").exists()


def test_input_shape_fixes_a_free_sequence_length(sequence_model, tmp_path):
    result = run("convert", sequence_model, "--quant", "fp32,int8", "--input-shape", "seq=1x20x8",
                 "--calibration", _calibration(tmp_path, (150, 20, 8)), "--out", tmp_path / "o")
    assert result.exit_code == 0, result.stderr
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["artifacts"][0]["inputs"][0]["shape"] == [1, 20, 8]
    x = np.random.default_rng(1).normal(size=(5, 20, 8)).astype(np.float32)
    expected = keras_outputs(sequence_model, x)
    np.testing.assert_allclose(tflite_outputs(tmp_path / "o" / "model_fp32.tflite", x), expected, atol=1e-5)
    # The reference bench runs is the converted model: fixed sizes, same weights, no flag needed.
    assert manifest["source"]["input_shapes"] == {"seq": [-1, 20, 8]}
    np.testing.assert_allclose(keras_outputs(tmp_path / "o" / manifest["source"]["model_file"], x), expected, atol=1e-6)


def _calibration(tmp_path, shape):
    path = tmp_path / "calib.npy"
    np.save(path, np.random.default_rng(2).normal(size=shape).astype(np.float32))
    return path


@pytest.mark.bad_input("cli")
def test_none_size_error_names_the_flag_with_an_example(sequence_model, tmp_path):
    result = run("convert", sequence_model, "--quant", "fp32", "--out", tmp_path / "o")
    assert_one_line_error(result, 2, "(None, None, 8)", "--input-shape seq=1x32x8")


@pytest.mark.parametrize("value, fragments", [
    ("sq=1x20x8", ["the model has no input 'sq'", "its inputs: seq (None, None, 8)"]),
    ("seq=1x20", ["input 'seq' has rank 3, shape (None, None, 8)", "give 3 numbers"]),
    ("seq=1x20x9", ["size at axis 2 is fixed at 8, not 9"]),
    ("seq=1x0x8", ["dimension '0' is not a positive whole number"]),
    ("seq=1x-4x8", ["dimension '-4' is not a positive whole number"]),
    ("seq=1x2.5x8", ["dimension '2.5' is not a positive whole number"]),
    ("seq=4x20x8", ["the first number is the batch", "give 1x20x8"]),
    ("1x20x8", ["give NAME=DIMS", "--input-shape NAME=1x20x8"]),
], ids=["unknown-name", "rank", "contradicts", "zero", "negative", "fraction", "batch", "no-name"])
@pytest.mark.bad_input("cli")
def test_bad_input_shape_one_line_each(sequence_model, tmp_path, value, fragments):
    result = run("convert", sequence_model, "--quant", "fp32", "--input-shape", value, "--out", tmp_path / "o")
    assert_one_line_error(result, 2, "--input-shape ", *fragments)
    assert not (tmp_path / "o").exists()


@pytest.mark.bad_input("cli")
def test_input_shape_given_twice(sequence_model, tmp_path):
    result = run("convert", sequence_model, "--input-shape", "seq=1x20x8", "--input-shape", "seq=1x30x8",
                 "--out", tmp_path / "o")
    assert_one_line_error(result, 2, "--input-shape seq is given twice")


@pytest.mark.bad_input("cli")
def test_bench_loads_the_reference_with_custom_objects(subclassed_model, tmp_path):
    dist = tmp_path / "o"
    assert run("convert", subclassed_model, "--quant", "fp32", "--custom-objects", "mymod:Classifier",
               "--out", dist).exit_code == 0
    np.savez(tmp_path / "eval.npz", x=np.random.default_rng(3).normal(size=(20, 8)).astype(np.float32))
    bench = ("bench", dist, "--data", tmp_path / "eval.npz", "--threads", "1", "--no-crosscheck", "--runs", "5",
             "--min-seconds", "0", "--warmup-seconds", "0", "--repeat", "1", "-q")
    assert_one_line_error(run(*bench), 2, "needs the class 'Classifier'", "--custom-objects mymod:Classifier")
    result = run(*bench, "--custom-objects", "mymod:Classifier")
    assert result.exit_code == 0, result.stderr
    report = json.loads((dist / "report.json").read_text())
    assert [a["status"] for a in report["artifacts"]] == ["passed"]


def test_fixed_model_keeps_names_and_weights_for_sequential_and_two_inputs():
    import keras

    from convert.shapes import fixed_model

    keras.utils.set_random_seed(8)
    seq = keras.Sequential([keras.Input((None, 8), name="seq"), keras.layers.Conv1D(4, 3),
                            keras.layers.GlobalMaxPooling1D(), keras.layers.Dense(2, name="out")])
    fixed = fixed_model(seq, {"seq": (1, 20, 8)})
    x = np.random.default_rng(4).normal(size=(3, 20, 8)).astype(np.float32)
    assert tuple(fixed.inputs[0].shape) == (None, 20, 8)
    assert [layer.name for layer in fixed.layers] == [layer.name for layer in seq.layers]
    np.testing.assert_array_equal(fixed.predict(x, verbose=0), seq.predict(x, verbose=0))
    a, b = keras.Input((None, 4), name="a"), keras.Input((6,), name="b")
    pooled = keras.layers.GlobalAveragePooling1D()(a)
    two = keras.Model([a, b], keras.layers.Dense(2, name="o")(keras.layers.Concatenate()([pooled, b])))
    fixed = fixed_model(two, {"a": (1, 10, 4)})
    assert [tuple(t.shape) for t in fixed.inputs] == [(None, 10, 4), (None, 6)] and fixed.output_names == ["o"]
    assert fixed_model(fixed, {}) is fixed  # nothing to fix: the model itself, not a copy
