"""`mobilepack device-bench` and `bench --device-results`: real benchmark_model logs quoted in public issues
(tests/device_logs/, each with its origin in its header) parsed into a `device` block per .tflite row."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import cli_helpers
from benchmarks.phone.results import DeviceResultsError, load_device_results, parse_log
from convert.manifest import load_manifest

LOGS = Path(__file__).with_name("device_logs")


@pytest.mark.parametrize("log, expected", [
    pytest.param("tf42507_cpu.log", {"init_ms": 0.855, "first_ms": 49.06, "warmup_ms": 34.8251, "mean_ms": 33.2094,
                                     "std_ms": 0.45, "count": 50, "threads": 4, "delegate": "cpu",
                                     "memory": {"kind": "peak", "init_mb": 0.0, "overall_mb": 12.8672}}, id="cpu"),
    pytest.param("tf56301_nnapi_logcat.log", {"init_ms": 126.059, "first_ms": 32.942, "warmup_ms": 12.5819,
                                              "mean_ms": 12.1676, "std_ms": 0.325, "count": 75, "threads": None,
                                              "delegate": "nnapi", "memory": None}, id="logcat-nnapi"),
    pytest.param("gr802_timings.log", {"init_ms": 17.851, "first_ms": 2.104, "warmup_ms": 1.04115, "mean_ms": 1.03966,
                                       "std_ms": None, "count": None, "threads": None, "delegate": "cpu",
                                       "memory": {"kind": "delta", "init_mb": 10.7383, "overall_mb": 12.1055}},
                 id="result-lines-only"),
])
def test_parses_real_benchmark_model_logs(log, expected):
    parsed = parse_log(LOGS / log)
    for key, value in expected.items():
        assert parsed[key] == (pytest.approx(value) if isinstance(value, float) else value), (key, parsed[key])


def _results(dist: Path, folder: Path, logs: dict[str, str]) -> Path:
    """A results folder as the device-bench script fills it, with quoted logs under the dist's names."""
    folder.mkdir()
    (folder / "device.txt").write_text("model=Pixel 7\nandroid=14\nabi=arm64-v8a\n")
    for artifact in load_manifest(dist).artifacts:
        (folder / f"{artifact.name}.sha256").write_text(f"{artifact.sha256}  /data/local/tmp/mobilepack/{artifact.file}\n")
    for name, source in logs.items():
        shutil.copy(LOGS / source, folder / name)
    return folder


def _cut_log(folder):
    shutil.copy(LOGS / "tf58379_gpu_cut.log", folder / "model_fp32.gpu.log")
    return "model_fp32.gpu.log:26: no 'Inference timings in us' line"


def _bad_timing(folder):
    text = (LOGS / "tf42507_cpu.log").read_text().replace("Warmup (avg): 34825.1", "Warmup (avg): n/a")
    (folder / "model_fp32.cpu.t1.log").write_text(text)
    return "model_fp32.cpu.t1.log:19: unreadable timing line"


def _binary(folder):
    (folder / "model_fp32.cpu.t1.log").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    return "model_fp32.cpu.t1.log: not text"


def _other_file(folder):
    (folder / "model_fp32.sha256").write_text("0" * 64 + "  /data/local/tmp/mobilepack/model_fp32.tflite\n")
    return "model_fp32.sha256: the phone ran a file with sha256 000000000000..., but"


def _unknown_artifact(folder):
    shutil.copy(LOGS / "tf42507_cpu.log", folder / "model_int8.cpu.t1.log")
    return "has no .tflite named 'model_int8'; these results are for another dist"


def _bad_name(folder):
    shutil.copy(LOGS / "tf42507_cpu.log", folder / "fp32-on-phone.log")
    return "fp32-on-phone.log: not a name the device-bench script writes"


def _no_device_txt(folder):
    (folder / "device.txt").unlink()
    return "no device.txt; give the folder the device-bench script wrote"


def _no_sha256(folder):
    (folder / "model_fp32.sha256").unlink()
    return "model_fp32.sha256: missing, so nothing says which file the phone ran"


@pytest.mark.bad_input("loader")
@pytest.mark.parametrize("damage", [
    pytest.param(_cut_log, id="log-cut-short"), pytest.param(_bad_timing, id="log-unreadable-timing-line"),
    pytest.param(_binary, id="log-not-text"), pytest.param(_other_file, id="results-for-other-file-sha256"),
    pytest.param(_unknown_artifact, id="results-for-another-dist"), pytest.param(_bad_name, id="log-unknown-name"),
    pytest.param(_no_device_txt, id="results-without-device-txt"), pytest.param(_no_sha256, id="results-without-sha256"),
])
def test_refuses_what_does_not_fit_in_one_line(damage, benched_fp32, tmp_path):
    folder = _results(benched_fp32, tmp_path / "results", {"model_fp32.cpu.t1.log": "tf42507_cpu.log"})
    fragment = damage(folder)
    with pytest.raises(DeviceResultsError) as err:
        load_device_results(folder, load_manifest(benched_fp32), benched_fp32)
    message = str(err.value)
    assert fragment in message and "\n" not in message, message
    assert err.value.exit_code == 2
    cli_helpers.record_bad_input("loader", message[:120])


@pytest.mark.bad_input("cli")
def test_bench_refuses_results_of_other_files_and_keeps_the_report(benched_fp32, tmp_path):
    dist = tmp_path / "dist"
    shutil.copytree(benched_fp32, dist)
    before = (dist / "report.json").read_bytes()
    folder = _results(dist, tmp_path / "results", {"model_fp32.cpu.t1.log": "tf42507_cpu.log"})
    _other_file(folder)
    result = cli_helpers.run("bench", dist, "--device-results", folder, "--no-crosscheck", "--runs", "2",
                             "--min-seconds", "0", "--warmup-seconds", "0")
    cli_helpers.assert_one_line_error(result, 2, "model_fp32.sha256: the phone ran a file with sha256")
    assert (dist / "report.json").read_bytes() == before


def test_device_bench_writes_a_script_with_bench_s_threads_and_runs(benched_fp32, tmp_path):
    out = tmp_path / "phone.sh"
    result = cli_helpers.run("device-bench", benched_fp32, "--out", out, "--threads", "1,4", "--runs", "30", "--gpu")
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert subprocess.run(["sh", "-n", str(out)]).returncode == 0  # the shell parses it
    assert out.stat().st_mode & 0o111
    sha = load_manifest(benched_fp32).artifacts[0].sha256
    assert f"# model_fp32: sha256 {sha}" in text
    for flags in ("--num_threads=1 --num_runs=30", "--num_threads=4 --num_runs=30", "--use_gpu=true --num_runs=30"):
        assert flags in text
    for name in ("model_fp32.cpu.t1.log", "model_fp32.cpu.t4.log", "model_fp32.gpu.log", "model_fp32.sha256"):
        assert f'"$OUT/{name}"' in text  # the names load_device_results reads back


@pytest.mark.bad_input("cli")
def test_device_bench_of_a_folder_without_manifest_is_one_line(tmp_path):
    result = cli_helpers.run("device-bench", tmp_path)
    cli_helpers.assert_one_line_error(result, 2, "manifest.json")
    assert not (tmp_path / "device-bench.sh").exists()
