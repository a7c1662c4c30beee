"""The CLI boundary under real faults: a read-only output, a full disk, an unreadable input, a converter crash.

Each case is one line (what, where, the fix), exit 2, no traceback, and the previous output
exactly as it was (every file's sha256), with no staging folder left beside it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from cli_helpers import assert_one_line_error, run
from fs_helpers import digest, fill, read_only, small_disk, staging_left, unreadable

ROOT = Path(__file__).resolve().parents[1]
FAST_BENCH = ("--runs", "2",
              "--min-seconds", "0", "--warmup-seconds", "0", "--repeat", "1", "--threads", "1", "--no-crosscheck", "--no-gate", "-q")
REFUSED = "Read-only file system" if os.geteuid() == 0 else "Permission denied"


@pytest.fixture(scope="module")
def shipped_app(benched_fp32, tmp_path_factory):
    """The Android demo app with `benched_fp32` already shipped into it."""
    app = tmp_path_factory.mktemp("app") / "android_demo"
    shutil.copytree(ROOT / "android_demo", app, ignore=shutil.ignore_patterns("mobilepack"))
    result = run("ship", benched_fp32, "--android", app, "--samples", "2", "-q")
    assert result.exit_code == 0, result.output
    return app


def _previous(case: str, box: Path, tiny_run: Path, benched_fp32: Path, shipped_app: Path) -> tuple[Path, list]:
    """Put the previous output of `case` into `box`; return it and the command that would replace it."""
    if case == "train":
        shutil.copytree(tiny_run, box / "run")
        return box / "run", ["train", "--epochs", "1", "--img-size", "16", "--out", box / "run", "-q"]
    if case == "ship":
        shutil.copytree(shipped_app, box / "app")
        return box / "app", ["ship", benched_fp32, "--android", box / "app", "--samples", "3", "-q"]
    shutil.copytree(benched_fp32, box / "dist")
    if case == "convert":
        return box / "dist", ["convert", tiny_run, "--quant", "fp32,fp16", "--out", box / "dist", "-q"]
    return box / "dist", ["bench", box / "dist", *FAST_BENCH]


@pytest.mark.bad_input("cli")
@pytest.mark.parametrize("case, fragment", [
    pytest.param("convert", "choose a folder you can write with --out", id="convert-out-read-only"),
    pytest.param("train", "choose a folder you can write with --out", id="train-out-read-only"),
    pytest.param("bench", "bench the copy", id="bench-dist-read-only"),
    pytest.param("ship", "ship into a copy of the app", id="ship-app-read-only"),
])
def test_read_only_output_is_refused_before_any_work(case, fragment, tiny_run, benched_fp32, shipped_app, tmp_path):
    box = tmp_path / "box"
    box.mkdir()
    previous, command = _previous(case, box, tiny_run, benched_fp32, shipped_app)
    before = digest(box)
    with read_only(box):
        result = run(*command)
    assert_one_line_error(result, 2, "not writable", REFUSED, fragment)
    assert digest(box) == before


# Free space left on the small disk: enough for the command to start writing, not to finish.
DISK_FULL = [
    pytest.param("convert", 1_000_000, "/dist/", id="convert-disk-full"),  # the artifacts fit; the reference does not
    pytest.param("bench", 40_000, "/dist/report.", id="bench-disk-full"),  # the full bench runs, then the reports
    pytest.param("ship", 100_000, "/app/app/src/main/assets/mobilepack/", id="ship-disk-full"),
    pytest.param("train", 200_000, "/run", id="train-disk-full"),  # Keras' save names no file: the run dir is named
]


@pytest.mark.bad_input("cli")
@pytest.mark.parametrize("case, leave, where", DISK_FULL)
def test_full_disk_mid_write_leaves_the_previous_output(case, leave, where, tiny_run, benched_fp32, shipped_app,
                                                        tmp_path):
    with small_disk(tmp_path / "disk") as disk:
        previous, command = _previous(case, disk, tiny_run, benched_fp32, shipped_app)
        before = digest(previous)
        fill(disk, leave)
        result = run(*command)
        assert_one_line_error(result, 2, "No space left on device", "free space on that disk", f"{disk}{where}")
        assert digest(previous) == before
        assert staging_left(disk) == []


@pytest.mark.bad_input("cli")
@pytest.mark.parametrize("case", [pytest.param("model", id="convert-model-unreadable")])
def test_unreadable_input_names_the_file(case, tiny_run, benched_fp32, tmp_path):
    model = tmp_path / "model.keras"
    shutil.copy(tiny_run / "model.keras", model)
    out = tmp_path / "dist"
    shutil.copytree(benched_fp32, out)
    before = digest(out)
    with unreadable(model):
        result = run("convert", model, "--out", out)
    assert_one_line_error(result, 2, f"{model}: Permission denied", "chmod")
    assert digest(out) == before


@pytest.fixture(scope="module")
def rnn_model(tmp_path_factory):
    """An LSTM applied per frame by TimeDistributed: the loop Keras 3 traces for it makes coremltools 9 fail
    with a bare IndexError inside its TF frontend (mobilepack unrolls RNN layers, but not inside this wrapper)."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((2, 6, 4), name="sequence")
    frames = keras.layers.TimeDistributed(keras.layers.LSTM(3), name="encoder")(inputs)
    outputs = keras.layers.Dense(2)(keras.layers.Flatten()(frames))
    path = tmp_path_factory.mktemp("rnn") / "rnn.keras"
    keras.Model(inputs, outputs).save(path)
    return path


@pytest.mark.bad_input("cli")
@pytest.mark.parametrize("fmt", [pytest.param("mlprogram", id="coreml-rnn-indexerror")])
def test_converter_error_mobilepack_does_not_know_is_one_line(fmt, rnn_model, benched_fp32, tmp_path):
    out = tmp_path / "dist"
    shutil.copytree(benched_fp32, out)
    before = digest(out)
    result = run("convert", rnn_model, "--target", "coreml", "--coreml-format", fmt, "--quant", "fp32", "--out", out)
    assert_one_line_error(result, 2, f"Core ML {fmt}: conversion failed at TensorFlow op Less of layer 'encoder' "
                                     "(TimeDistributed): IndexError: list index out of range", "--target tflite", "--debug")
    assert digest(out) == before and staging_left(tmp_path) == []


def test_debug_shows_the_converters_own_error(rnn_model, tmp_path):
    result = run("--debug", "convert", rnn_model, "--target", "coreml", "--quant", "fp32", "--out", tmp_path / "dist")
    assert type(result.exception).__name__ == "ConversionError"
    cause = result.exception.__cause__
    assert isinstance(cause, IndexError)
    frames = []
    tb = cause.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    assert "coremltools" in frames[-1]  # raised inside coremltools, and --debug shows where
