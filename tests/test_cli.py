"""The CLI: help with examples, one-line errors with the right exit codes, nothing half-written."""

import os
import re
import shutil
import subprocess
import sys

import pytest

from cli_helpers import assert_one_line_error, run
from mobilepack.cli.main import cli

COMMANDS = sorted(cli.commands)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_has_an_example(command):
    result = run(command, "--help")
    assert result.exit_code == 0
    assert "Example:" in result.output and f"mobilepack {command}" in result.output


def test_commands_cover_the_pipeline():
    assert {"train", "convert", "bench", "demo", "ship", "serve"} <= set(COMMANDS)


def test_python_m_convert_is_the_convert_command():
    out = subprocess.run([sys.executable, "-m", "convert", "--help"], capture_output=True, text=True, check=True)
    assert "Usage: python -m convert [OPTIONS] MODEL" in out.stdout and "Example:" in out.stdout
    # The options each declares (a line's first word), not those its help prose names: prose wraps with the width.
    options = lambda text: sorted(re.findall(r"^  (?:-[a-z], )?(--[a-z0-9-]+)", text.split("Options:")[1], re.M))  # noqa: E731
    assert len(options(out.stdout)) >= 15 and options(out.stdout) == options(run("convert", "--help").output)


@pytest.mark.bad_input("cli")
def test_missing_model(tmp_path):
    assert_one_line_error(run("convert", tmp_path / "nope.keras", "--out", tmp_path / "o"), 2, "no such file")
    assert not (tmp_path / "o").exists()


@pytest.mark.bad_input("cli")
def test_not_a_model(tmp_path):
    (tmp_path / "m.txt").write_text("x")
    assert_one_line_error(run("convert", tmp_path / "m.txt", "--out", tmp_path / "o"), 2, "not a Keras model")


@pytest.mark.bad_input("cli")
def test_truncated_model(tensor_model, tmp_path):
    cut = tmp_path / "cut.keras"
    cut.write_bytes(tensor_model.read_bytes()[:300])
    assert_one_line_error(run("convert", cut, "--out", tmp_path / "o"), 2, "cut.keras")
    assert not (tmp_path / "o").exists()


@pytest.mark.bad_input("cli")
def test_lambda_names_unsafe_flag(lambda_model, tmp_path):
    assert_one_line_error(run("convert", lambda_model, "--out", tmp_path / "o"), 2, "--unsafe-load")


@pytest.mark.bad_input("cli")
def test_bad_quant_lists_valid(tiny_run, tmp_path):
    assert_one_line_error(run("convert", tiny_run, "--quant", "fp32,int3", "--out", tmp_path / "o"), 2,
                          "int3", "valid: fp32, fp16, dynamic, int8")


@pytest.mark.bad_input("cli")
def test_calibration_size_must_be_positive(tiny_run, tmp_path):
    assert_one_line_error(run("convert", tiny_run, "--calibration-size", "0", "--out", tmp_path / "o"), 2,
                          "--calibration-size must be positive")
    assert not (tmp_path / "o").exists()


@pytest.mark.bad_input("cli")
def test_int8_on_tensor_model_needs_calibration(tensor_model, tmp_path):
    assert_one_line_error(run("convert", tensor_model, "--quant", "int8", "--out", tmp_path / "o"), 2,
                          "--calibration FILE.npy")
    assert not (tmp_path / "o").exists()


@pytest.mark.bad_input("cli")
def test_unwritable_output(tiny_run, tmp_path):
    if os.geteuid() == 0:
        target = "/sys/mobilepack-out"  # root writes through chmod; sysfs refuses even root
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = locked / "out"
    assert_one_line_error(run("convert", tiny_run, "--out", target), 2, "not writable")


def test_debug_shows_the_exception(tmp_path):
    result = run("--debug", "convert", tmp_path / "nope.keras")
    assert result.exit_code != 0 and type(result.exception).__name__ == "ModelLoadError"


@pytest.mark.bad_input("cli")
def test_train_rejects_bad_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_one_line_error(run("train", "--data", tmp_path / "empty", "--out", tmp_path / "r"), 2, "no class sub-folders")
    (tmp_path / "one" / "cat").mkdir(parents=True)
    assert_one_line_error(run("train", "--data", tmp_path / "one", "--out", tmp_path / "r"), 2, "only one class")
    for c in ("a", "b"):
        (tmp_path / "bad" / c).mkdir(parents=True)
        (tmp_path / "bad" / c / "x.png").write_bytes(b"\x89PNG broken")
    assert_one_line_error(run("train", "--data", tmp_path / "bad", "--out", tmp_path / "r"), 2, "unreadable")
    assert not (tmp_path / "r").exists()


@pytest.mark.bad_input("cli")
def test_bench_threads_must_be_positive(tiny_dist):
    assert_one_line_error(run("bench", tiny_dist, "--threads", "0"), 2, "--threads")
    assert_one_line_error(run("bench", tiny_dist, "--threads", "1,-1"), 2, "--threads")


@pytest.mark.bad_input("cli")
def test_bench_max_drop_must_be_a_number(tiny_dist):
    assert_one_line_error(run("bench", tiny_dist, "--max-drop", "lots"), 2, "not a number")
    assert_one_line_error(run("bench", tiny_dist, "--max-drop", "0"), 2, "greater than 0")
    assert_one_line_error(run("bench", tiny_dist, "--gate", "int8.max_drop=lots"), 2, "not a number")


def test_bench_gate_failure_exits_1(outlier_dist, tmp_path):
    dist = shutil.copytree(outlier_dist, tmp_path / "d")
    result = run("bench", dist, "--data", "digits", "--threads", "1", "--no-crosscheck", "--runs", "5",
                 "--min-seconds", "0", "--warmup-seconds", "0", "--repeat", "1", "-q")
    assert_one_line_error(result, 1, "gate failed", "model_int8", "agreement")
    assert "failed" in result.stdout


def test_bench_no_gate_reports_only(outlier_dist, tmp_path):
    dist = shutil.copytree(outlier_dist, tmp_path / "d")
    result = run("bench", dist, "--data", "digits", "--threads", "1", "--no-crosscheck", "--runs", "5",
                 "--min-seconds", "0", "--warmup-seconds", "0", "--repeat", "1", "--no-gate", "-q")
    assert result.exit_code == 0, result.stderr
    assert "model_int8" in result.stdout


def test_real_process_prints_one_line_without_native_noise(lambda_model, tmp_path):
    """Outside CliRunner: TensorFlow's C++ logging must not reach the user's stderr."""
    proc = subprocess.run([sys.executable, "-m", "mobilepack", "convert", str(lambda_model), "--out",
                           str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--unsafe-load" in lines[0], proc.stderr


@pytest.mark.bad_input("cli")
def test_usage_errors_are_one_line(tiny_dist):
    assert_one_line_error(run("bench", tiny_dist, "--runs", "1",
                              "--min-seconds", "0", "--warmup-seconds", "0"), 2, "'--runs': 1 is not in the range",
                          "bench --help")
    assert_one_line_error(run("bench", tiny_dist, "--no-such-flag"), 2, "No such option")
    assert_one_line_error(run("frobnicate"), 2, "No such command 'frobnicate'")
