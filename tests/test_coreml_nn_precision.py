"""NeuralNetwork (.mlmodel) files at device precision: float16 on the GPU / Neural Engine, float32 on the CPU.

The evaluator's gpu/ane mode is checked against a float16 computation written here from the Keras
weights (not the evaluator's kernels), and the bench must gate a .mlmodel on its gpu/ane figures.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks.coreml_reference import MLModel
from benchmarks.coreml_reference.model import load_spec
from cli_helpers import run

ROOT = Path(__file__).resolve().parents[1]
F16_MAX = 65504.0


def f16(a):
    """float64 -> nearest float16 -> float64: what a tensor stored in fp16 holds."""
    return np.asarray(a, np.float64).astype(np.float16).astype(np.float64)


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    """6 -> 16 (ReLU) -> 4 linear, inputs of a few tens: outputs in the hundreds, where an fp16 step is 0.25-0.5.

    Saved as .keras, converted to a NeuralNetwork .mlmodel (fp32 weights), with 48 evaluation inputs in x.npz.
    """
    import keras

    from convert.context import ConversionContext
    from convert.coreml.convert import convert_coreml

    folder = tmp_path_factory.mktemp("nnfp16")
    keras.utils.set_random_seed(3)
    inputs = keras.Input((6,), name="x")
    hidden = keras.layers.Dense(16, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(4)(hidden))
    model.save(folder / "model.keras")
    convert_coreml(ConversionContext(model), "neuralnetwork", "fp32").save(str(folder / "mlp.mlmodel"))
    x = (np.random.default_rng(4).normal(size=(48, 6)) * 30).astype(np.float32)
    np.savez(folder / "x.npz", x=x)
    return folder, model, x


def test_gpu_ane_is_an_independent_fp16_computation(mlp):
    """Weights, input and every layer's output in float16, arithmetic inside a layer wider: as the GPU runs it."""
    folder, model, x = mlp
    (w1, b1), (w2, b2) = [[np.asarray(v, np.float64) for v in layer.get_weights()] for layer in model.layers[1:]]
    device = MLModel(folder / "mlp.mlmodel", precision="gpu/ane")
    # The rounding points below are the converter's layer boundaries: matmul+bias, ReLU, matmul+bias.
    assert [layer.WhichOneof("layer") for layer in device.spec.neuralNetwork.layers] == \
        ["batchedMatmul", "activation", "batchedMatmul"]
    hidden = f16(np.maximum(f16(f16(x) @ f16(w1) + f16(b1)), 0))
    want = f16(hidden @ f16(w2) + f16(b2))
    exact = x.astype(np.float64) @ w1 + b1
    exact = np.maximum(exact, 0) @ w2 + b2

    got = device.predict_batch([x])[0].astype(np.float64)
    ulp = np.spacing(np.abs(want).astype(np.float16)).astype(np.float64)
    assert np.all(np.abs(got - want) <= ulp)  # float32 vs float64 sums may round the other way, never further
    assert np.mean(got == want) >= 0.95
    # Rounding only the final output would not give these numbers: the weights' and hidden layer's rounding shows.
    assert np.mean(got == f16(exact)) < 0.8

    cpu = MLModel(folder / "mlp.mlmodel", precision="cpu").predict_batch([x])[0]
    np.testing.assert_allclose(cpu, exact, rtol=1e-5, atol=1e-4)
    assert np.abs(got - exact).max() > 100 * np.abs(cpu - exact).max()  # fp16 error dwarfs float32's
    # The loaded spec keeps its stored float32 weights: gpu/ane rounds a copy.
    assert device.spec.SerializeToString() == load_spec(folder / "mlp.mlmodel")[0].SerializeToString()


def test_fp16_overflow_is_not_finite(mlp):
    """Inputs past float16's range (65504) become IEEE float16 infinities at gpu/ane precision; the CPU stays finite."""
    folder, _, x = mlp
    big = x[:2] * 4000  # up to ~1e5
    assert np.abs(big).max() > F16_MAX
    device = MLModel(folder / "mlp.mlmodel", precision="gpu/ane").predict_batch([big])[0]
    cpu = MLModel(folder / "mlp.mlmodel", precision="cpu").predict_batch([big])[0]
    assert np.all(np.isfinite(cpu)) and not np.all(np.isfinite(device))


def test_bench_gates_a_neuralnetwork_on_its_gpu_ane_figures(mlp, tmp_path):
    """An SQNR floor the float32 (cpu) figures meet and the float16 (gpu/ane) ones miss: the row fails, both reported."""
    import jsonschema

    from convert.api import ConvertConfig, convert

    folder, _, _ = mlp
    dist = tmp_path / "dist"
    convert(folder / "model.keras", dist, ConvertConfig(targets=("coreml",), coreml_formats=("neuralnetwork",),
                                                        quantizations=("fp32",)), log=lambda m: None)
    result = run("bench", dist, "--data", folder / "x.npz", "--threads", "1", "--runs", "5",
                 "--min-seconds", "0", "--warmup-seconds", "0", "--repeat", "1",
                 "--no-crosscheck", "--gate", "fp16.min_sqnr=100")
    assert result.exit_code == 1, result.output + result.stderr
    report = json.loads((dist / "report.json").read_text())
    jsonschema.validate(report, json.loads((ROOT / "benchmarks" / "report" / "report.schema.json").read_text()))
    [row] = report["artifacts"]
    cpu = row["cpu_figures"]
    assert row["precision"] == "gpu/ane" and cpu["precision"] == "cpu"
    assert cpu["sqnr_db"] > 110 and cpu["max_abs_error"] < 1e-3  # float32: the Keras model's numbers
    assert 40 < row["sqnr_db"] < 90  # float16 through two layers
    assert row["status"] == "failed" and f"SQNR {row['sqnr_db']:.1f} dB < 100 dB" in row["reason"]
    assert "judged at gpu/ane precision" in row["reason"] and "--coreml-format mlprogram --quant fp32" in row["reason"]
    assert f"at cpu precision (float32): SQNR {cpu['sqnr_db']:.1f} dB" in row["reason"]
    md = (dist / "report.md").read_text()
    assert "| compute units | precision |" in md and "| CPU, GPU, Neural Engine | gpu/ane |" in md
    assert "`model_neuralnetwork_fp32`: judged at gpu/ane precision" in md
    html = (dist / "report.html").read_text()
    assert f"at cpu precision (float32): SQNR {cpu['sqnr_db']:.1f} dB" in html
