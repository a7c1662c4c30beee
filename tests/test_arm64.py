"""The ARM64 column: LiteRT's aarch64 build under qemu-user, against the host's run of the same file.

The bench that fills it is tiny_benched's (conftest.py), run once per session; these tests read its
report. The expected figures are what was measured independently on emulated Cortex-A76: int8
through XNNPack is bit-identical to x86, fp32 differs by about 1e-6 relative.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import cli_helpers
from benchmarks.arm64.column import Arm64Data, Arm64Options, arm64_pass, unavailable
from benchmarks.arm64.runtime import STAMP, cpuinfo_text, read_stamp, runtime_dir, setup
from benchmarks.parity.outputs import OutputSpec


@pytest.fixture(scope="module")
def report(tiny_benched):
    return json.loads((tiny_benched / "report.json").read_text())


def test_every_tflite_row_has_an_arm64_block_from_aarch64(report):
    assert report["arm64"]["status"] == "measured", report["arm64"]["note"]
    assert report["arm64"]["machine"] == "aarch64"
    assert report["arm64"]["samples"] == 16
    rows = {r["name"]: r for r in report["artifacts"]}
    assert {n for n, r in rows.items() if r["target"] == "tflite"} == {n for n, r in rows.items() if r["arm64"]}
    for row in rows.values():
        block = row["arm64"]
        assert block["error"] is None and block["samples"] == 16
        assert block["elements"] == 16 * 10  # 16 inputs x 10 digit classes
        assert block["agreement_vs_host"] == 1.0


def test_measured_arm64_blocks_match_the_schema(report, fp16_inference_benched):
    import copy

    import jsonschema

    schema = json.loads((Path(__file__).parents[1] / "benchmarks" / "report" / "report.schema.json").read_text())
    jsonschema.validate(report, schema)
    jsonschema.validate(json.loads((fp16_inference_benched[0] / "report.json").read_text()), schema)
    broken = copy.deepcopy(report)
    broken["arm64"]["machine"] = "x86_64"  # figures that did not come from the aarch64 build
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_int8_is_bit_identical_and_float_within_rounding(report):
    rows = {r["quantization"]: r["arm64"] for r in report["artifacts"]}
    int8 = rows["int8"]
    assert int8["bit_identical"] == int8["elements"] and int8["max_abs_error_vs_host"] == 0.0
    for quant in ("fp32", "fp16", "dynamic"):  # float outputs: summation order differs, ~1e-6 relative
        assert rows[quant]["max_abs_error_vs_host"] < 1e-5, (quant, rows[quant])
    # Against Keras the ARM run shows what the variant loses, as the host does: int8 more than fp32.
    assert rows["int8"]["max_abs_error_vs_reference"] > rows["fp32"]["max_abs_error_vs_reference"]


def test_report_md_and_html_show_the_arm64_column_and_no_emulator_time(tiny_benched):
    md = (tiny_benched / "report.md").read_text()
    html = (tiny_benched / "report.html").read_text()
    assert "| ARM64 (emulated Cortex-A76) |" in md.replace(" | status |", " |")
    assert "agree 1.000, 160/160 identical, max err 0.0e+00" in md  # the int8 row's cell
    assert "<th>ARM64 (emulated Cortex-A76)</th>" in html
    section = md.split("## ARM64 (emulated Cortex-A76)")[1].split("\n## ")[0]
    assert "no latency comes from it" in section and " ms" not in section


def _tiny_inputs(tiny_dist):
    x = np.random.default_rng(0).uniform(0, 255, (4, 16, 16, 3)).astype(np.float32)
    spec = OutputSpec(index=0, name="output_0", kind="classification", shape=(10,), kind_source="softmax")
    return [(("model_int8", tiny_dist / "model_int8.tflite"))], [x], [np.zeros((4, 10), np.float32)], [spec]


def _damaged_runtime(tmp_path, arm64_home):
    """A stamp that says ready over a runtime whose python is gone."""
    root = runtime_dir(tmp_path)
    root.mkdir(parents=True)
    shutil.copy(runtime_dir(arm64_home) / STAMP, root / STAMP)
    return tmp_path


@pytest.mark.bad_input("loader")
@pytest.mark.parametrize("state, status, fragment", [
    pytest.param("missing", "skipped", "is missing or outdated; run `mobilepack arm64 setup`", id="runtime-missing"),
    pytest.param("interrupted", "skipped", "was interrupted; run `mobilepack arm64 setup`", id="setup-interrupted"),
    pytest.param("no-qemu", "skipped", "qemu-aarch64-static not found; install it", id="no-qemu"),
    pytest.param("damaged", "failed", "the emulated run failed", id="runtime-damaged"),
])
def test_without_a_working_runtime_bench_says_how_in_one_line_and_goes_on(state, status, fragment, tiny_dist,
                                                                           arm64_home, tmp_path, monkeypatch):
    home = tmp_path / "home"
    if state == "interrupted":
        (home / "runtime.partial" / "sysroot").mkdir(parents=True)
    elif state == "no-qemu":
        home = arm64_home
        monkeypatch.setenv("PATH", str(tmp_path))
    elif state == "damaged":
        home = _damaged_runtime(home, arm64_home)
    artifacts, inputs, ref, specs = _tiny_inputs(tiny_dist)
    summary, blocks, outputs = arm64_pass(artifacts, Arm64Data(inputs, ref, specs, ["input"], 4), Arm64Options(home=home))
    assert summary["status"] == status and blocks == {} and outputs == {}
    assert fragment in summary["note"] and "\n" not in summary["note"], summary["note"]
    assert summary["note"].startswith("ARM64 column skipped")
    cli_helpers.record_bad_input("loader", summary["note"][:120])


@pytest.mark.bad_input("cli")
def test_bench_cli_without_runtime_prints_the_fix_and_goes_on_with_device_results(benched_fp32, tmp_path, monkeypatch):
    """One bench run for two things: no ARM64 runtime (one line, exit 0) and a phone's logs brought back."""
    from convert.manifest import load_manifest

    dist = tmp_path / "dist"
    shutil.copytree(benched_fp32, dist)
    phone = tmp_path / "phone"
    phone.mkdir()
    (phone / "device.txt").write_text("model=Pixel 7\nandroid=14\nabi=arm64-v8a\n")
    sha = load_manifest(dist).artifacts[0].sha256
    (phone / "model_fp32.sha256").write_text(f"{sha}  /data/local/tmp/mobilepack/model_fp32.tflite\n")
    shutil.copy(Path(__file__).with_name("device_logs") / "tf42507_cpu.log", phone / "model_fp32.cpu.t4.log")
    monkeypatch.setenv("MOBILEPACK_ARM64_HOME", str(tmp_path / "empty"))
    result = cli_helpers.run("bench", dist, "--runs", "2",
                             "--min-seconds", "0", "--warmup-seconds", "0", "--repeat", "1", "--threads", "1", "--no-crosscheck",
                             "--no-gate", "--data", "digits", "--device-results", phone)
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.output.splitlines() if "ARM64" in ln]
    assert len(lines) == 1 and "run `mobilepack arm64 setup`" in lines[0], result.output
    assert "Traceback" not in result.output
    saved = json.loads((dist / "report.json").read_text())
    assert saved["arm64"]["status"] == "skipped" and all(r["arm64"] is None for r in saved["artifacts"])
    md = (dist / "report.md").read_text()
    assert "ARM64 (emulated Cortex-A76) |" not in md.split("## ")[1]
    cli_helpers.record_bad_input("cli", lines[0][:120])
    # The phone's figures sit in their own block and section, the host's latency untouched beside them.
    device = saved["artifacts"][0]["device"]
    assert device["model"] == "Pixel 7" and device["android"] == "14" and device["sha256"] == sha
    assert device["runs"][0]["mean_ms"] == pytest.approx(33.2094) and device["runs"][0]["threads"] == 4
    assert saved["artifacts"][0]["latency_ms"][0]["p50"] != pytest.approx(33.2094)
    assert "`model_fp32` on Pixel 7 (Android 14), CPU, 4 thread(s): mean 33.209 ms (std 0.450, 50 runs)" in md


@pytest.mark.bad_input("cli")
def test_setup_without_qemu_is_one_line_exit_2(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    result = cli_helpers.run("arm64", "setup", "--home", tmp_path / "home")
    cli_helpers.assert_one_line_error(result, 2, "qemu-aarch64-static not found", "apt-get install qemu-user-static")
    assert not (tmp_path / "home").exists()


def test_setup_is_idempotent_and_pins_the_cpu(arm64_home):
    said = []
    assert setup(arm64_home, log=said.append) == runtime_dir(arm64_home)
    assert said == [f"arm64 runtime ready in {runtime_dir(arm64_home)} (nothing to do)"]
    stamp = read_stamp(arm64_home)
    assert stamp["versions"] == {"machine": "aarch64", "python": stamp["versions"]["python"], "numpy": "2.4.6",
                                 "ai_edge_litert": "2.3.0"}
    cpuinfo = (runtime_dir(arm64_home) / "sysroot" / "proc" / "cpuinfo").read_text()
    assert cpuinfo == cpuinfo_text() and "CPU part\t: 0xd0b" in cpuinfo  # Cortex-A76's part number (Arm TRM)
    assert unavailable(Arm64Options(home=arm64_home)) is None


@pytest.fixture(scope="module")
def fp16_inference_benched(tiny_run, fast_latency, arm64_home, tmp_path_factory):
    """fp16-inference alone, benched with the ARM64 column on 32 inputs (tiny_benched has the fp16 row)."""
    from benchmarks.bench import BenchConfig, run_bench
    from convert.api import ConvertConfig, convert

    dist = tmp_path_factory.mktemp("fp16inf") / "dist"
    convert(tiny_run, dist, ConvertConfig(quantizations=("fp16-inference",)), log=lambda m: None)
    data = dist.parent / "confident.npz"
    np.savez(data, **_confident_digits(tiny_run, 32, min_gap=0.2))
    report = run_bench(dist, BenchConfig(threads=(1,), latency=fast_latency, crosscheck=False, repeat=1, data=str(data),
                                         arm64=Arm64Options(samples=32, home=arm64_home)), log=lambda m: None)
    return dist, {r["quantization"]: r for r in report["artifacts"]}


def _confident_digits(run, count: int, min_gap: float) -> dict:
    """`count` test-split inputs whose Keras top-1 leads the top-2 by `min_gap` or more: fp16 arithmetic moves an
    output by at most ~7e-3 here (docs/arm64.md), so on these no top-1 can flip, whatever the CPU that trained."""
    import keras

    from train.data import split_part
    from train.preprocessing import Preprocessing

    data, test = split_part(run / "split.json", "test", log=lambda m: None)
    x = Preprocessing.load(run / "preprocessing.json").apply_batch([data.images[i] for i in test])
    probs = np.sort(np.asarray(keras.models.load_model(run / "model.keras")(x)), axis=-1)
    keep = np.flatnonzero(probs[:, -1] - probs[:, -2] >= min_gap)[:count]
    assert len(keep) == count, f"only {len(keep)} test inputs with a top-2 gap >= {min_gap}"
    return {"x": x[keep], "y": data.labels[test][keep]}


def _metadata(path) -> dict:
    """The model's metadata entries, read with TensorFlow's own flatbuffer schema."""
    from tensorflow.lite.python import schema_py_generated as schema

    data = path.read_bytes()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    return {m.name.decode(): bytes(model.buffers[m.buffer].data) for m in model.metadata or []}


def test_fp16_inference_carries_the_metadata_xnnpack_reads(fp16_inference_benched, tiny_dist):
    # XNNPack hints fp16 inference only for fp16 inference with fp16 accumulation (xnnpack_delegate.cc);
    # plain fp16 weights say fp32 accumulation, so every CPU keeps fp32 arithmetic for them.
    dist, _ = fp16_inference_benched
    assert _metadata(dist / "model_fp16-inference.tflite")["reduced_precision_support"] == b"fp16accfp16"
    assert _metadata(tiny_dist / "model_fp16.tflite")["reduced_precision_support"] == b"fp16accfp32"


def test_fp16_inference_computes_in_fp16_on_arm_only_and_is_gated_there(fp16_inference_benched, report):
    _, rows = fp16_inference_benched
    weights_only = next(r["arm64"] for r in report["artifacts"] if r["quantization"] == "fp16")
    inference = rows["fp16-inference"]["arm64"]
    # fp16 weights on fp32 arithmetic: ARM matches x86 to float32 rounding.
    assert weights_only["max_abs_error_vs_host"] < 1e-5
    # fp16 arithmetic on the Cortex-A76 (x86 ignores the hint): errors of fp16's 2^-11 relative step,
    # and hardly an output value left bit-identical with the host's fp32 run.
    assert inference["max_abs_error_vs_host"] > 1e-4
    assert inference["bit_identical_share"] < 0.5
    row = rows["fp16-inference"]
    assert row["status"] == "passed" and row["reason"].startswith("on ARM64 (Cortex-A76 (emulated), fp16 arithmetic)")
    assert "on 32 inputs" in row["reason"]
    assert inference["judged_outputs"][0]["max_abs_error"] == pytest.approx(inference["max_abs_error_vs_reference"])


def test_fp16_inference_without_arm64_is_skipped_with_the_reason():
    from benchmarks.bench import _judge_on_arm64
    from row_helpers import make_row

    row = make_row("model_fp16-inference", target="tflite", format="tflite", quantization="fp16-inference",
                   path="model_fp16-inference.tflite", status="passed", reason="host figures")
    _judge_on_arm64(row, None, None, None, {"note": "ARM64 column skipped (--no-arm64)"})
    assert row.status == "skipped"
    assert "judged on the ARM64 column, which is missing (ARM64 column skipped (--no-arm64))" in row.reason
