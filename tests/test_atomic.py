"""A convert killed with SIGKILL leaves the output folder as it was or complete."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from convert.api import ConvertConfig, convert
from convert.manifest import load_manifest, verify_artifacts


def _state(out):
    return json.loads((out / "manifest.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.6, 1.5])
def test_sigkill_mid_convert(tiny_run, tmp_path, delay):
    out = tmp_path / "dist"
    convert(tiny_run, out, ConvertConfig(quantizations=("fp32",)), log=lambda m: None)
    before = _state(out)
    proc = subprocess.Popen([sys.executable, "-m", "convert", str(tiny_run), "--out", str(out), "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    # Wait until the run is writing (its staging folder exists), then kill it at `delay`.
    while not list(tmp_path.glob(".dist.mobilepack-staging-*")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(delay)
    assert proc.poll() is None, "convert finished before it could be killed; the test proves nothing"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    manifest = load_manifest(out)
    verify_artifacts(manifest, out)  # every file the manifest names is there and whole
    after = _state(out)
    assert after == before or len(after["artifacts"]) == 4
    # The next run clears what the killed one left behind.
    convert(tiny_run, out, ConvertConfig(quantizations=("fp32",)), log=lambda m: None)
    assert not list(tmp_path.glob(".dist.mobilepack-staging-*"))
    assert sorted(os.listdir(out)) == sorted(["convert_config.json", "labels.txt", "manifest.json",
                                              "model_fp32.tflite", "preprocessing.json", "reference"])
