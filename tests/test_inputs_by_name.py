"""Several inputs matched by name, integer inputs kept integer, and a failed variant that costs only itself.

Through the real commands: `convert` (calibration by name, int8 keeping an int32 input), `bench` on an
.npz of named arrays, and a partly failing convert whose failures the manifest and the report carry.
"""

import json

import numpy as np
import pytest

from cli_helpers import assert_one_line_error, run


@pytest.fixture(scope="module")
def mixed_model(tmp_path_factory):
    """Token ids (int32) and a float feature vector, by name, into one classifier; and its data."""
    import keras
    from keras import layers as L

    keras.utils.set_random_seed(0)
    tokens = keras.Input((6,), dtype="int32", name="tokens")
    features = keras.Input((4,), name="features")
    x = L.GlobalAveragePooling1D()(L.Embedding(20, 8)(tokens))
    x = L.Concatenate()([x, L.Dense(8, activation="relu")(features)])
    model = keras.Model([tokens, features], L.Dense(3, activation="softmax")(x))
    folder = tmp_path_factory.mktemp("mixed")
    model.save(folder / "mixed.keras")
    rng = np.random.default_rng(0)
    data = {"tokens": rng.integers(0, 20, (40, 6)).astype(np.int32),
            "features": rng.normal(size=(40, 4)).astype(np.float32)}
    np.savez(folder / "data.npz", **data)
    # The order of the arrays in the file is not the model's: matching is by name.
    np.savez(folder / "reversed.npz", features=data["features"], tokens=data["tokens"])
    return folder


@pytest.fixture(scope="module")
def mixed_dist(mixed_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("mixed-dist") / "dist"
    result = run("convert", mixed_model / "mixed.keras", "--target", "tflite,coreml", "--quant", "fp32,int8",
                 "--calibration", mixed_model / "reversed.npz", "--out", out)
    assert result.exit_code == 0, result.output + result.stderr
    return out


def test_manifest_lists_each_input_by_name_with_its_dtype_on_both_targets(mixed_dist):
    manifest = json.loads((mixed_dist / "manifest.json").read_text())
    by_name = {a["name"]: a for a in manifest["artifacts"]}
    assert sorted(by_name) == ["model_fp32", "model_int8", "model_mlprogram_fp32"] and manifest["failed"] == []
    for name in ("model_fp32", "model_int8"):  # int8 quantizes the float parts; the ids stay int32
        inputs = {t["signature_name"]: t["dtype"] for t in by_name[name]["inputs"]}
        assert inputs == {"tokens": "int32", "features": "float32"}, inputs
    coreml = {t["name"]: t["dtype"] for t in by_name["model_mlprogram_fp32"]["inputs"]}
    assert coreml == {"tokens": "int32", "features": "float32"}, coreml


def test_bench_feeds_each_input_by_name_and_every_artifact_matches_keras(mixed_model, mixed_dist):
    result = run("bench", mixed_dist, "--data", mixed_model / "reversed.npz", "--threads", "1", "--repeat", "1",
                 "--runs", "5", "--min-seconds", "0", "--warmup-seconds", "0", "--no-crosscheck", "--no-arm64", "--no-gate")
    assert result.exit_code == 0, result.output + result.stderr
    report = json.loads((mixed_dist / "report.json").read_text())
    rows = {r["name"]: r for r in report["artifacts"]}
    # Fed by position, the float features would reach the Embedding as ids and the outputs would disagree.
    assert rows["model_fp32"]["sqnr_db"] is None or rows["model_fp32"]["sqnr_db"] > 100
    assert rows["model_mlprogram_fp32"]["sqnr_db"] > 100
    # random weights give near-even probabilities, so agreement says little; the error is small (45 dB here)
    assert rows["model_int8"]["sqnr_db"] > 30
    assert report["not_converted"] == []


@pytest.mark.bad_input("cli")
def test_float_data_for_an_integer_input_is_refused_in_one_line(mixed_model, mixed_dist, tmp_path):
    data = np.load(mixed_model / "data.npz")
    np.savez(tmp_path / "float_ids.npz", tokens=data["tokens"].astype(np.float32), features=data["features"])
    result = run("bench", mixed_dist, "--data", tmp_path / "float_ids.npz", "--no-arm64")
    assert_one_line_error(result, 2, "input tokens is float32 but the model takes int32", "astype('int32')")


@pytest.fixture(scope="module")
def half_convertible(tmp_path_factory):
    """3-D max pooling: Core ML converts it, TFLite has no builtin kernel for it (only a TF Select op)."""
    import keras
    from keras import layers as L

    keras.utils.set_random_seed(0)
    inp = keras.Input((4, 4, 4, 2), name="x")
    model = keras.Model(inp, L.Dense(2)(L.Flatten()(L.MaxPooling3D(2, name="pool3d")(inp))))
    folder = tmp_path_factory.mktemp("half")
    model.save(folder / "half.keras")
    np.savez(folder / "data.npz", x=np.random.default_rng(0).normal(size=(16, 4, 4, 4, 2)).astype(np.float32))
    return folder


def test_a_failed_variant_costs_only_itself_and_bench_says_why(half_convertible):
    out = half_convertible / "dist"
    result = run("convert", half_convertible / "half.keras", "--target", "tflite,coreml", "--quant", "fp32,fp16",
                 "--out", out)
    assert result.exit_code == 1, result.output + result.stderr
    assert "2 variant(s) failed to convert:" in result.stderr
    assert "model_fp32: TFLite fp32: layer 'pool3d' (MaxPooling3D) uses TensorFlow op MaxPool3D, which has no " \
           "builtin TFLite kernel; replace it or use --target coreml" in result.stderr
    assert "Traceback" not in result.output + result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert [a["name"] for a in manifest["artifacts"]] == ["model_mlprogram_fp32", "model_mlprogram_fp16"]
    assert all((out / a["file"]).exists() for a in manifest["artifacts"])
    assert [(f["name"], f["status"]) for f in manifest["failed"]] == [("model_fp32", "failed"), ("model_fp16", "failed")]
    assert all("MaxPool3D" in f["reason"] for f in manifest["failed"])

    result = run("bench", out, "--data", half_convertible / "data.npz", "--threads", "1", "--repeat", "1", "--runs", "5",
                 "--min-seconds", "0", "--warmup-seconds", "0",
                 "--no-crosscheck", "--no-arm64", "--no-gate")
    assert result.exit_code == 0, result.output + result.stderr
    report = json.loads((out / "report.json").read_text())
    assert [r["name"] for r in report["artifacts"]] == ["model_mlprogram_fp32", "model_mlprogram_fp16"]
    assert report["artifacts"][0]["max_abs_error"] < 1e-4  # the rest was benched as usual
    assert [f["name"] for f in report["not_converted"]] == ["model_fp32", "model_fp16"]
    table = [ln for ln in result.output.splitlines() if ln.startswith("model_fp16 ")]
    assert len(table) == 1 and table[0].rstrip().endswith("not converted"), result.output
    assert "`model_fp16`: not converted: TFLite fp16: layer 'pool3d' (MaxPooling3D)" in result.output
    assert "`model_fp16`: not converted:" in (out / "report.md").read_text()
    assert "model_fp16" in (out / "report.html").read_text()


@pytest.mark.bad_input("http")
def test_serve_takes_one_json_value_per_input_by_name(mixed_model, mixed_dist):
    """POST /predict {"inputs": {NAME: [...]}} answers as Keras does; a missing or fractional id is a 400."""
    import keras
    import requests

    from cli_helpers import record_bad_input
    from mobilepack.serve.server import create_app
    from serve_helpers import live_server

    data = np.load(mixed_model / "data.npz")
    expected = np.asarray(keras.models.load_model(mixed_model / "mixed.keras")([data["tokens"][:1],
                                                                                 data["features"][:1]]))[0]
    body = {"inputs": {"features": data["features"][0].tolist(), "tokens": data["tokens"][0].tolist()}}
    with live_server(create_app(mixed_dist, "model_fp32")) as url:
        answer = requests.post(url + "/predict", json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        probs = {p["index"]: p["probability"] for p in answer.json()["probabilities"]}
        assert answer.json()["prediction"] == int(np.argmax(expected))
        assert np.allclose([probs[i] for i in range(3)], expected, atol=1e-5)
        schema = requests.get(url + "/openapi.json", timeout=30).json()
        request = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert request["properties"]["inputs"]["required"] == ["tokens", "features"]

        for bad, needle in (({"tokens": body["inputs"]["tokens"]}, '"inputs" needs exactly tokens, features; '
                                                                   "missing features"),
                            ({**body["inputs"], "tokens": [0.5] * 6}, '"tokens" takes whole numbers (int32 ids')):
            response = requests.post(url + "/predict", json={"inputs": bad}, timeout=30)
            assert response.status_code == 400 and needle in response.json()["error"], response.text
            record_bad_input("http", f"400 {response.json()['error'][:110]}")


def test_int8_sensitivity_and_mixed_int8_feed_several_inputs_in_the_converted_order():
    """LiteRT's QuantizationDebugger sets inputs by position in its own order, which for the photo and metadata
    model is not Keras' (metadata comes first): fed in Keras order, the photo would reach the metadata input."""
    from convert.calibration import CalibrationSet
    from convert.tflite.convert import convert_tflite, convert_tflite_mixed, layer_sensitivity
    from train.architectures import sample_inputs, two_inputs

    model = two_inputs()
    data = sample_inputs(model, 16, seed=1)
    calibration = CalibrationSet(tuple(data[t.name] for t in model.inputs), {}, tuple(t.name for t in model.inputs))
    scores = layer_sensitivity(model, calibration, convert_tflite(model, "int8", calibration))
    assert scores and all(np.isfinite(score) for _, score in scores)
    mixed = convert_tflite_mixed(model, calibration, scores[0][0])
    from benchmarks.runners import LiteRTRunner

    runner = LiteRTRunner(None, content=mixed, input_names=[t.name for t in model.inputs])
    out = runner.predict([data[t.name][:4] for t in model.inputs])[0]
    expected = np.asarray(model([data["photo"][:4], data["metadata"][:4]]))
    assert np.abs(out - expected).max() < 0.05


def test_a_budget_search_whose_family_cannot_convert_costs_only_that_family(half_convertible, tmp_path):
    out = tmp_path / "dist"
    result = run("convert", half_convertible / "half.keras", "--target", "tflite,coreml", "--min-sqnr", "20",
                 "--validation", half_convertible / "data.npz", "--calibration", half_convertible / "data.npz",
                 "--out", out)
    assert result.exit_code == 1, result.output + result.stderr
    assert "Traceback" not in result.output + result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert [a["target"] for a in manifest["artifacts"]] == ["coreml"]  # the Core ML search chose one
    assert [(f["name"], f["quantization"]) for f in manifest["failed"]] == [("model_budget", "budget search")]
    assert "tflite: no candidate converted (" in manifest["failed"][0]["reason"]
    assert "MaxPool3D" in manifest["failed"][0]["reason"]
