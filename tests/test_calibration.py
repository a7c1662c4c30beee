"""int8 calibration with the real converter: few samples warn and convert; unusable samples are refused."""

import json

import numpy as np
import pytest

from convert.api import ConvertConfig, convert
from cli_helpers import assert_one_line_error, run


def samples(n, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 8)).astype(np.float32)


def test_24_samples_convert_to_int8_with_a_warning(tensor_model, tmp_path):
    few = tmp_path / "few.npy"
    np.save(few, samples(24))
    result = run("convert", tensor_model, "--quant", "int8", "--calibration", few, "--out", tmp_path / "o")
    assert result.exit_code == 0, result.stderr
    assert f"calibration: 24 of 24 samples from {few}\n" in result.stdout
    warning = ("24 samples; int8 ranges from fewer than 100 samples may clip unseen inputs: "
               "give more with --calibration")
    assert f"warning: {warning}\n" in result.stdout
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["calibration"]["warning"] == warning
    assert (manifest["calibration"]["count"], manifest["calibration"]["given"]) == (24, 24)
    assert (tmp_path / "o" / "model_int8.tflite").is_file()


def test_npz_count_used_out_of_given(tensor_model, tmp_path):
    path = tmp_path / "calib.npz"
    np.savez(path, x=samples(120))
    lines = []
    m = convert(tensor_model, tmp_path / "o", ConvertConfig(quantizations=("int8",), calibration=str(path),
                                                              calibration_size=64), log=lines.append)
    assert f"calibration: 64 of 120 samples from {path}" in lines
    # The file had enough: the remedy is the size option, not more data.
    assert m.calibration["warning"].endswith("raise --calibration-size (up to 120)")


def test_enough_samples_have_no_warning(tensor_model, features_npy, tmp_path):
    m = convert(tensor_model, tmp_path / "o", ConvertConfig(quantizations=("int8",), calibration=str(features_npy),
                                                            calibration_size=100), log=lambda _: None)
    assert "warning" not in m.calibration and (m.calibration["count"], m.calibration["given"]) == (100, 120)


def _nan_and_inf():
    x = samples(120)
    x[3, 2] = np.nan
    x[7, :2] = np.nan
    x[9, 0] = np.inf
    return x


@pytest.mark.parametrize("array, fragments", [
    (np.zeros((0, 8), np.float32), ["0 samples to calibrate int8 on"]),
    (np.where(np.arange(8) == 5, np.nan, samples(120)).astype(np.float32),
     ["input features holds 120 NaN value(s) in 120 of 120 samples", "finite"]),
    (_nan_and_inf(), ["input features holds 3 NaN and 1 inf value(s) in 3 of 120 samples"]),
    (np.full((120, 8), "a"), ["input features is <U1, not numbers"]),
    (samples(120) > 0, ["input features is bool, not numbers"]),
    (samples(120).astype(np.complex64), ["input features is complex64, not numbers"]),
    (np.zeros((120, 3), np.float32), ["input features has samples of shape (3,), the model takes (8,)"]),
], ids=["zero", "nan", "nan-and-inf", "strings", "bool", "complex", "shape"])
@pytest.mark.bad_input("cli")
def test_unusable_calibration_is_refused(tensor_model, tmp_path, array, fragments):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    result = run("convert", tensor_model, "--quant", "int8", "--calibration", path, "--out", tmp_path / "o")
    assert_one_line_error(result, 2, str(path), *fragments)
    assert not (tmp_path / "o").exists()


@pytest.mark.bad_input("cli")
def test_object_array_is_refused(tensor_model, tmp_path):
    path = tmp_path / "objects.npy"
    np.save(path, np.array([[1.0] * 8, None], dtype=object), allow_pickle=True)
    result = run("convert", tensor_model, "--quant", "int8", "--calibration", path, "--out", tmp_path / "o")
    assert_one_line_error(result, 2, "holds Python objects (dtype object), not numbers")
    assert not (tmp_path / "o").exists()
