"""Every output judged by its kind: a two-headed detector and a sequence regressor, real converter and runtimes."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from benchmarks.bench import BenchConfig, run_bench
from benchmarks.errors import BenchDataError
from benchmarks.parity.outputs import describe_outputs
from cli_helpers import assert_one_line_error as one_line
from cli_helpers import run
from mobilepack.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
quiet = lambda m: None  # noqa: E731


def schema_check(report: dict) -> None:
    import jsonschema

    schema = json.loads((ROOT / "benchmarks" / "report" / "report.schema.json").read_text())
    jsonschema.validate(json.loads(json.dumps(report)), schema)


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    """The two-headed detector, its box head broken for int8 by an outlier channel; data with both labels."""
    from convert.api import ConvertConfig, convert
    from train.parity_models import detector_data, set_outlier, two_head_detector

    folder = tmp_path_factory.mktemp("detector")
    model = two_head_detector(epochs=4)
    data = detector_data(260, seed=2)
    set_outlier(model, "box", 1000.0, data["x"][:100])  # the strongest channel: int8 erases all the others
    model.save(folder / "model.keras")
    np.savez(folder / "calib.npz", x=data["x"][:100])
    np.savez(folder / "eval.npz", x=data["x"][100:], y_class=data["y_class"][100:], y_box=data["y_box"][100:])
    convert(folder / "model.keras", folder / "dist", ConvertConfig(quantizations=("fp32", "int8"),
                                                                  calibration=str(folder / "calib.npz")), log=quiet)
    return folder


@pytest.fixture(scope="module")
def detector_report(detector, fast_latency):
    return run_bench(detector / "dist", BenchConfig(repeat=1, data=str(detector / "eval.npz"), threads=(1,), latency=fast_latency,
                                                    crosscheck=False), log=quiet)


def test_kinds_are_inferred_from_the_last_activation(detector):
    import keras

    model = keras.models.load_model(detector / "model.keras")
    cls, box = describe_outputs(model)
    assert (cls.name, cls.kind, cls.classes) == ("class", "classification", 3) and "softmax" in cls.kind_source
    assert (box.name, box.kind) == ("box", "regression")
    inp = keras.Input((4,))
    odd = keras.Model(inp, [keras.layers.Dense(1, activation="sigmoid", name="p")(inp),
                            keras.layers.Softmax(name="s")(keras.layers.Dense(5)(inp))])
    assert [s.kind for s in describe_outputs(odd)] == ["regression", "classification"]  # one sigmoid unit: a score
    assert [s.kind for s in describe_outputs(odd, {"p": "embedding"})] == ["embedding", "classification"]
    with pytest.raises(BenchDataError, match="no output of that name; its outputs are p, s"):
        describe_outputs(odd, {"q": "regression"})


def test_each_head_is_judged_by_its_kind(detector_report):
    report = detector_report
    schema_check(report)
    assert [(o["name"], o["kind"]) for o in report["outputs"]] == [("class", "classification"), ("box", "regression")]
    rows = {r["name"]: r for r in report["artifacts"]}
    fp32, int8 = rows["model_fp32"], rows["model_int8"]
    assert [o["tflite_name"] for o in fp32["outputs"]] == ["output_0", "output_1"]
    assert fp32["status"] == "passed" and [o["status"] for o in fp32["outputs"]] == ["passed", "passed"]
    cls, box = int8["outputs"]
    assert cls["status"] == "passed" and cls["agreement"] >= 0.98 and cls["accuracy"] is not None
    assert box["status"] == "failed" and box["sqnr_db"] < 25 and "mae" in box
    assert int8["status"] == "failed" and "output 'box' (regression): SQNR" in int8["reason"]
    assert "output 'class'" not in int8["reason"]
    # The row's headline is the class head's accuracy and the worst SQNR, not a pooled one.
    assert int8["agreement"] == cls["agreement"] and int8["sqnr_db"] == box["sqnr_db"]
    ref = {o["name"]: o for o in report["reference"]["outputs"]}
    assert ref["class"]["accuracy"] > 0.9 and ref["box"]["mae"] < 0.2
    assert report["gate"]["reasons"] == {"model_int8": int8["reason"]}
    assert report["worst"]["output"] == "class"


def test_reports_name_the_failing_head(detector, detector_report):
    md = (detector / "dist" / "report.md").read_text()
    assert "## Outputs" in md and re.search(r"\| model_int8 \| box \| regression \| output_1 \|.*\| failed \|", md)
    html = (detector / "dist" / "report.html").read_text()
    assert "<h2>Outputs</h2>" in html and "output &#x27;box&#x27; (regression)" in html


def test_cli_lists_every_failing_artifact_with_its_reason(detector):
    result = run("bench", detector / "dist", "--data", detector / "eval.npz", "--threads", "1", "--runs", "5",
                 "--min-seconds", "0", "--warmup-seconds", "0", "--repeat", "1",
                 "--no-crosscheck")
    one_line(result, 1, "gate failed for 1 artifact(s): model_int8: ", "output 'box' (regression)")
    assert "FAILED model_int8: model_int8.tflite: output 'box'" in result.output
    assert re.search(r"model_int8\s+class\s+classification\s+output_0 .* passed", result.output)


def test_y_labels_the_first_classification_output(detector, tmp_path, fast_latency):
    src = np.load(detector / "eval.npz")
    np.savez(tmp_path / "y.npz", x=src["x"], y=src["y_class"])
    report = run_bench(detector / "dist", BenchConfig(repeat=1, data=str(tmp_path / "y.npz"), threads=(1,), latency=fast_latency,
                                                      crosscheck=False), log=quiet)
    assert report["dataset"]["labelled_outputs"] == ["class"]
    cls, box = report["artifacts"][0]["outputs"]
    assert cls["accuracy"] is not None and "mae" not in box


@pytest.mark.parametrize("arrays, fragment", [
    ({"y_boxes": "box"}, "'y_boxes' names no output of the model; its outputs are class, box"),
    ({"y_class": "short"}, "labels for 160 inputs"),
    ({"y_box": "flat"}, "targets for regression output 'box' must be numbers of shape (160, 4)"),
    ({"y_class": "big"}, "label 7 outside 0..2 of output 'class'"),
])
@pytest.mark.bad_input("cli")
def test_bad_labels_are_one_line(detector, tmp_path, arrays, fragment):
    src = np.load(detector / "eval.npz")
    make = {"box": src["y_box"], "short": src["y_class"][:50], "flat": src["y_box"][:, 0],
            "big": np.full(160, 7)}
    np.savez(tmp_path / "bad.npz", x=src["x"], **{k: make[v] for k, v in arrays.items()})
    one_line(run("bench", detector / "dist", "--data", tmp_path / "bad.npz", "--no-crosscheck"), 2, fragment)


@pytest.mark.parametrize("args, fragment", [
    (["--output-kind", "boxes=regression"], "--output-kind boxes: the model has no output of that name"),
    (["--output-kind", "box=detector"], "unknown kind 'detector'; valid: classification, regression, embedding"),
    (["--max-drop", "int8=0.5"], "now spelled --gate int8.max_drop=0.5"),
    (["--min-agreement", "int8=0.99"], "now spelled --gate int8.min_agreement=0.99"),
    (["--gate", "int8.max_drop"], "expected QUANT.FIELD=VALUE"),
    (["--min-sqnr", "box=lots"], "expected DB or OUTPUT=DB"),
    (["--max-metric-drop", "iou=0.1"], "no --metric given"),
])
@pytest.mark.bad_input("cli")
def test_bad_bench_flags_are_one_line(detector, args, fragment):
    one_line(run("bench", detector / "dist", "--data", detector / "eval.npz", "--no-crosscheck", *args), 2, fragment)


def test_embedding_kind_is_judged_by_cosine(detector, fast_latency):
    report = run_bench(detector / "dist", BenchConfig(repeat=1, data=str(detector / "eval.npz"), threads=(1,),
                                                      latency=fast_latency, crosscheck=False,
                                                      output_kinds={"box": "embedding"}), log=quiet)
    box = report["artifacts"][0]["outputs"][1]
    assert box["kind"] == "embedding" and box["kind_source"] == "--output-kind"
    assert box["cosine_mean"] > 0.9999 and box["cosine_min"] <= box["cosine_mean"]
    schema_check(report)


def test_coreml_heads_map_to_their_features(tmp_path, fast_latency):
    """Core ML names outputs itself; each head must still meet its own reference (a swapped order could not)."""
    from convert.api import ConvertConfig, convert
    from train.parity_models import detector_data, two_head_detector

    two_head_detector(epochs=1).save(tmp_path / "m.keras")
    np.savez(tmp_path / "e.npz", **{k: v for k, v in detector_data(40, seed=3).items()})
    convert(tmp_path / "m.keras", tmp_path / "d", ConvertConfig(targets=("coreml",), quantizations=("fp32",)), log=quiet)
    report = run_bench(tmp_path / "d", BenchConfig(repeat=1, data=str(tmp_path / "e.npz"), threads=(1,), latency=fast_latency,
                                                   crosscheck=False), log=quiet)
    [row] = report["artifacts"]
    assert [o["name"] for o in row["outputs"]] == ["class", "box"]
    assert all(o["coreml_name"] for o in row["outputs"]) and len({o["coreml_name"] for o in row["outputs"]}) == 2
    assert all(o["sqnr_db"] is None or o["sqnr_db"] > 60 for o in row["outputs"]) and row["status"] == "passed"


METRIC = '''
import numpy as np

def box_iou(inputs, outputs, labels):
    box, true = outputs["box"], labels["box"]
    lo, hi = np.maximum(box[:, :2], true[:, :2]), np.minimum(box[:, 2:], true[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    area = lambda b: np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    return {"box_iou": float(np.mean(inter / (area(box) + area(true) - inter + 1e-9)))}

def broken(inputs, outputs, labels):
    raise ValueError("shapes do not match")

def not_a_number(inputs, outputs, labels):
    return {"box_iou": "high"}
'''


@pytest.mark.bad_input("cli")
def test_user_metric_is_computed_and_gated(detector, tmp_path, monkeypatch):
    (tmp_path / "my_metrics.py").write_text(METRIC)
    monkeypatch.chdir(tmp_path)
    base = ["bench", detector / "dist", "--data", detector / "eval.npz", "--threads", "1", "--runs", "5",
            "--min-seconds", "0", "--warmup-seconds", "0", "--repeat", "1",
            "--no-crosscheck", "--gate", "int8.min_sqnr=0", "--gate", "int8.max_rel_error=100"]
    result = run(*base, "--metric", "my_metrics:box_iou", "--max-metric-drop", "box_iou=0.02")
    one_line(result, 1, "model_int8", "metric 'box_iou'", "(higher is better), drop")
    report = json.loads((detector / "dist" / "report.json").read_text())
    ref = report["reference"]["metrics"]["box_iou"]
    rows = {r["name"]: r for r in report["artifacts"]}
    assert 0.3 < ref <= 1.0 and rows["model_fp32"]["metrics"]["box_iou"]["drop"] == pytest.approx(0, abs=1e-5)
    assert rows["model_int8"]["metrics"]["box_iou"]["drop"] > 0.02 and rows["model_fp32"]["status"] == "passed"
    assert "metric my_metrics:box_iou on the reference: box_iou" in result.output
    one_line(run(*base, "--metric", "nowhere:box_iou"), 2, "cannot import 'nowhere'")
    one_line(run(*base, "--metric", "my_metrics:absent"), 2, "has no function 'absent'")
    one_line(run(*base, "--metric", "my_metrics:broken"), 2, "raised ValueError on the Keras reference: shapes")
    one_line(run(*base, "--metric", "my_metrics:not_a_number"), 2, "metric 'box_iou' on the Keras reference is 'high'")
    one_line(run(*base, "--metric", "my_metrics:box_iou", "--max-metric-drop", "iou=0.1"), 2,
             "--max-metric-drop iou: --metric my_metrics:box_iou returns no such metric; it returns box_iou")


def test_documented_metric_example_runs(detector, tmp_path, monkeypatch):
    """The documented worked example, as written, on the detector."""
    text = (ROOT / "docs" / "benchmarking.md").read_text()
    code = re.search(r"```python\n(# my_metrics\.py.*?)```", text, flags=re.S).group(1)
    command = re.search(r"^(mobilepack bench dist-detector .*--metric.*)$", text, flags=re.M).group(1)
    (tmp_path / "my_metrics.py").write_text(code)
    (tmp_path / "dist-detector").symlink_to(detector / "dist")
    import shutil

    shutil.copy(detector / "eval.npz", tmp_path / "detector-val.npz")
    monkeypatch.chdir(tmp_path)
    import shlex

    result = CliRunner().invoke(cli, shlex.split(command)[1:] + ["--threads", "1", "--runs", "5",
                                                                 "--min-seconds", "0", "--warmup-seconds", "0", "--repeat", "1", "--no-crosscheck"])
    assert result.exit_code == 1 and "metric 'box_iou'" in result.stderr, (result.output, result.stderr)


@pytest.fixture(scope="module")
def sequence(tmp_path_factory):
    """The sequence regressor with an outlier channel that breaks plain int8; calibration, validation, test."""
    from train.parity_models import sequence_data, sequence_regressor, set_outlier

    folder = tmp_path_factory.mktemp("sequence")
    model = sequence_regressor(epochs=6)
    data = sequence_data(500, seed=1)
    set_outlier(model, "features", 1000.0, data["x"][:100])  # the strongest channel: int8 erases all the others
    model.save(folder / "model.keras")
    np.savez(folder / "calib.npz", x=data["x"][:100])
    np.savez(folder / "val.npz", x=data["x"][100:300], y=data["y"][100:300])
    np.savez(folder / "test.npz", x=data["x"][300:], y=data["y"][300:])
    return folder


def test_broken_int8_regressor_fails_on_sqnr_and_the_sqnr_budget_recovers(sequence, tmp_path):
    common = ["--threads", "1", "--runs", "5",
              "--min-seconds", "0", "--warmup-seconds", "0", "--repeat", "1", "--no-crosscheck", "--data", sequence / "test.npz"]
    assert run("convert", sequence / "model.keras", "--quant", "fp32,int8", "--calibration", sequence / "calib.npz",
               "--out", tmp_path / "plain").exit_code == 0
    one_line(run("bench", tmp_path / "plain", *common), 1, "model_int8", "SQNR")
    plain = json.loads((tmp_path / "plain" / "report.json").read_text())
    int8 = next(r for r in plain["artifacts"] if r["name"] == "model_int8")
    assert int8["agreement"] is None and int8["outputs"][0]["kind"] == "regression" and int8["sqnr_db"] < 10
    result = run("convert", sequence / "model.keras", "--calibration", sequence / "calib.npz", "--validation",
                 sequence / "val.npz", "--min-sqnr", "30", "--out", tmp_path / "budget")
    assert result.exit_code == 0, result.stderr
    assert "int8: validation SQNR" in result.output and "< 30 dB" in result.output
    manifest = json.loads((tmp_path / "budget" / "manifest.json").read_text())
    [chosen] = manifest["artifacts"]
    assert chosen["name"] != "model_int8" and chosen["notes"]["budget"]["min_sqnr_db"] == 30.0
    assert chosen["notes"]["search"][0]["within_budget"] is False
    result = run("bench", tmp_path / "budget", *common)
    assert result.exit_code == 0, result.stderr
    [row] = json.loads((tmp_path / "budget" / "report.json").read_text())["artifacts"]
    assert row["status"] == "passed" and row["sqnr_db"] >= 30 and row["search_budget"] == "SQNR >= 30 dB"
    schema_check(json.loads((tmp_path / "budget" / "report.json").read_text()))


@pytest.mark.parametrize("args, fragment", [
    (["--max-drop", "1"], "no class labels for this model's outputs"),
    (["--min-sqnr", "speed=30"], "--min-sqnr speed=...: the model has no output of that name"),
    (["--min-sqnr", "=30"], "the output name is empty"),
])
@pytest.mark.bad_input("cli")
def test_budget_on_unlabelled_regression_data_is_refused_clearly(sequence, tmp_path, args, fragment):
    np.savez(tmp_path / "x.npz", x=np.load(sequence / "val.npz")["x"])
    one_line(run("convert", sequence / "model.keras", "--calibration", sequence / "calib.npz", "--validation",
                 tmp_path / "x.npz", *args, "--out", tmp_path / "o"), 2, fragment)
    assert not (tmp_path / "o").exists()
