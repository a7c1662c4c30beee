"""Issue 4's figures: accuracy-budgeted conversion on a model int8 breaks, and on digits.

    python -m benchmarks.budget_figures

1. Trains small_cnn on digits, then inserts two 1x1 convolutions that scale one
   channel by 1000 and back: the same function in float, but that tensor's range
   makes int8 rounding erase every other channel. Plain full int8 breaks a 1.0 pp
   budget; `convert --max-drop 1.0` must find an artifact within it at <= 50% of fp32.
2. On digits with `--max-drop 0.5`, both recommended artifacts (Android, iOS) must be
   within budget and <= 35% of their platform's fp32 size.
Final figures come from the test split, which the search never sees.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def outlier_model(base, factor: float = 1000.0, after: str = "relu2"):
    """`base` with a channel blown up by `factor` and shrunk back after layer `after`."""
    import keras

    x = base.get_layer(after).output
    c = x.shape[-1]
    up = keras.layers.Conv2D(c, 1, use_bias=False, name="outlier_up")
    down = keras.layers.Conv2D(c, 1, use_bias=False, name="outlier_down")
    y = down(up(x))
    for layer in base.layers[base.layers.index(base.get_layer(after)) + 1:]:
        y = layer(y)
    model = keras.Model(base.inputs, y, name="outlier_cnn")
    scale = np.ones(c, np.float32)
    scale[0] = factor
    up.set_weights([np.diag(scale)[None, None]])
    down.set_weights([np.diag(1.0 / scale)[None, None]])
    return model


def outlier_run(run: Path, out: Path) -> Path:
    """A copy of run dir `run` whose model is the outlier variant (same split, labels, preprocessing)."""
    from train.loading import load_keras_model

    shutil.copytree(run, out)
    outlier_model(load_keras_model(run)).save(out / "model.keras")
    return out


def _bench(dist: Path) -> dict:
    from benchmarks.bench import BenchConfig, run_bench

    return run_bench(dist, BenchConfig(data="digits", threads=(os.cpu_count() or 1,)), log=lambda m: None)


def main() -> None:
    from convert.api import ConvertConfig, convert
    from mobilepack.search import validation_judge
    from train.trainer import TrainConfig, train

    quiet = lambda m: None  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        train(TrainConfig(), work / "run", log=quiet, verbose=0)
        run = outlier_run(work / "run", work / "outlier_run")
        plain = _bench(_convert(run, work / "plain", ConvertConfig(quantizations=("fp32", "int8"))))
        rows = {a["quantization"]: a for a in plain["artifacts"]}
        print(f"outlier model: float test accuracy {plain['reference']['accuracy']:.4f}; plain int8 accuracy "
              f"{rows['int8']['accuracy']:.4f}, drop {rows['int8']['accuracy_drop_pp']:.2f} pp (> 1.0 pp budget)")
        judge = validation_judge(run, 1.0, log=quiet)
        manifest = convert(run, work / "budget", ConvertConfig(max_drop_pp=1.0), log=print, judge=judge)
        budget = _bench(work / "budget")
        chosen = budget["artifacts"][0]
        layers = manifest.artifacts[0].notes.get("float_layers", [])
        floats = f"; float tensors: {len(layers)} ({sum(len(g['layers']) for g in layers)} layers kept float)"
        print(f"--max-drop 1.0: chose {chosen['name']} ({chosen['size_bytes'] / 1024:.1f} KiB = "
              f"{chosen['size_bytes'] / rows['fp32']['size_bytes']:.1%} of fp32), test drop "
              f"{chosen['accuracy_drop_pp']:.2f} pp, status {chosen['status']}{floats}")
        _digits(work, quiet)


def _convert(run, out, config):
    from convert.api import convert

    return convert(run, out, config, log=lambda m: None) and out


def _digits(work: Path, quiet) -> None:
    from convert.api import ConvertConfig, convert
    from mobilepack.search import validation_judge

    fp32 = _bench(_convert(work / "run", work / "digits_fp32", ConvertConfig(
        targets=("tflite", "coreml"), quantizations=("fp32",))))
    fp32_size = {a["target"]: a["size_bytes"] for a in fp32["artifacts"]}
    judge = validation_judge(work / "run", 0.5, log=quiet)
    convert(work / "run", work / "digits_budget", ConvertConfig(targets=("tflite", "coreml"), max_drop_pp=0.5),
            log=print, judge=judge)
    report = _bench(work / "digits_budget")
    for platform, name in report["recommended"].items():
        a = next(r for r in report["artifacts"] if r["name"] == name)
        print(f"digits --max-drop 0.5, {platform}: {name}, test drop {a['accuracy_drop_pp']:.2f} pp, "
              f"{a['size_bytes'] / 1024:.1f} KiB = {a['size_bytes'] / fp32_size[a['target']]:.1%} of fp32 (limit 35%)")


if __name__ == "__main__":
    main()
