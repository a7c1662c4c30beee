"""--data DIR end to end through the CLI, with MobileNetV2: train -> convert -> bench."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from mobilepack.cli.main import cli


def _stripes(root, n=90, size=12, seed=0):
    """Two learnable classes (horizontal vs vertical stripes, noisy), mixed modes and formats."""
    rng = np.random.default_rng(seed)
    for label, axis in (("horizontal", 0), ("vertical", 1)):
        (root / label).mkdir(parents=True)
        for i in range(n):
            base = (np.indices((size, size))[axis] % 4 < 2) * 200
            img = np.clip(base + rng.normal(0, 25, (size, size)), 0, 255).astype(np.uint8)
            pil = Image.fromarray(img, "L")
            if i % 3 == 1:
                pil = pil.convert("RGBA")
            name = f"{i}.png" if i % 2 else f"{i}.jpg"
            (pil.convert("RGB") if name.endswith(".jpg") else pil).save(root / label / name)
    (root / "vertical" / "broken.png").write_bytes(b"\x89PNG\r\n not an image")


@pytest.mark.slow
def test_folder_mobilenet_pipeline(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _stripes(tmp_path / "data")
    runner = CliRunner()
    r = runner.invoke(cli, ["train", "--data", "data", "--arch", "mobilenet_v2", "--alpha", "0.35",
                            "--img-size", "32", "--epochs", "1", "--out", "run", "-q"])
    assert r.exit_code == 0, r.stderr
    assert (tmp_path / "run" / "labels.txt").read_text().split() == ["horizontal", "vertical"]
    prep = json.loads((tmp_path / "run" / "preprocessing.json").read_text())
    assert prep["mean"] == [127.5] * 3 and prep["image_size"] == [32, 32]
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert "vertical/broken.png" not in split["train"] + split["val"] + split["test"]

    r = runner.invoke(cli, ["convert", "run", "--quant", "fp32,int8", "--out", "dist", "-q"])
    assert r.exit_code == 0, r.stderr
    manifest = json.loads((tmp_path / "dist" / "manifest.json").read_text())
    assert manifest["calibration"]["per_class"] == {"horizontal": 54, "vertical": 54}

    r = runner.invoke(cli, ["bench", "dist", "--threads", "1", "--no-crosscheck", "--runs", "5",
                            "--min-seconds", "0", "--warmup-seconds", "0", "--repeat", "1", "--no-gate", "-q"])
    assert r.exit_code == 0, r.stderr
    report = json.loads((tmp_path / "dist" / "report.json").read_text())
    assert report["dataset"]["split"] == "test" and report["dataset"]["count"] == 36
    sizes = {a["quantization"]: a["size_bytes"] for a in report["artifacts"]}
    # At alpha 0.35 per-channel scales, zero points and int32 biases weigh more than at
    # alpha 1 (28% there, see benchmarks.figures.foundation); int8 weights still quarter the bulk.
    assert sizes["int8"] < 0.5 * sizes["fp32"]
    fp32 = next(a for a in report["artifacts"] if a["quantization"] == "fp32")
    assert fp32["agreement"] == 1.0 and fp32["max_abs_error"] < 1e-4
