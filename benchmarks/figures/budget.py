"""Accuracy-budgeted conversion on a model int8 breaks, and on digits.

    python -m benchmarks.figures.budget

1. Trains small_cnn on digits, then inserts two 1x1 convolutions that scale one
   channel by 1000 and back (train.parity_models.outlier_run): the same function in
   float, but that tensor's range makes int8 rounding erase every other channel.
   Plain full int8 breaks a 1.0 pp budget; `convert --max-drop 1.0` must find an
   artifact within it at <= 50% of fp32.
2. On digits with `--max-drop 0.5`, both recommended artifacts (Android, iOS) must be
   within budget and <= 35% of their platform's fp32 size.
Final figures come from the test split, which the search never sees.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from benchmarks.figures.common import quiet
from benchmarks.figures.common import figure_parser


def _bench(dist: Path) -> dict:
    from benchmarks.bench import BenchConfig, run_bench

    return run_bench(dist, BenchConfig(data="digits", threads=(os.cpu_count() or 1,)), log=quiet)


def _convert(run: Path, out: Path, config, judge=None, log=quiet) -> Path:
    from convert.api import RuntimeHooks, convert

    convert(run, out, config, log=log, hooks=RuntimeHooks(judge=judge))
    return out


def _judge(run: Path, max_drop_pp: float):
    from convert.budget import Budget
    from mobilepack.judge import validation_judge

    return validation_judge(run, Budget(max_drop_pp=max_drop_pp), log=quiet)


def outlier(work: Path) -> None:
    from convert.api import ConvertConfig, RuntimeHooks, convert
    from train.parity_models import outlier_run

    run = outlier_run(work / "run", work / "outlier_run")
    plain = _bench(_convert(run, work / "plain", ConvertConfig(quantizations=("fp32", "int8"))))
    rows = {a["quantization"]: a for a in plain["artifacts"]}
    print(f"outlier model: float test accuracy {plain['reference']['accuracy']:.4f}; plain int8 accuracy "
          f"{rows['int8']['accuracy']:.4f}, drop {rows['int8']['accuracy_drop_pp']:.2f} pp (> 1.0 pp budget)")
    manifest = convert(run, work / "budget", ConvertConfig(max_drop_pp=1.0), log=print,
                       hooks=RuntimeHooks(judge=_judge(run, 1.0)))
    chosen = _bench(work / "budget")["artifacts"][0]
    layers = manifest.artifacts[0].notes.get("float_layers", [])
    floats = f"; float tensors: {len(layers)} ({sum(len(g['layers']) for g in layers)} layers kept float)"
    print(f"--max-drop 1.0: chose {chosen['name']} ({chosen['size_bytes'] / 1024:.1f} KiB = "
          f"{chosen['size_bytes'] / rows['fp32']['size_bytes']:.1%} of fp32), test drop "
          f"{chosen['accuracy_drop_pp']:.2f} pp, status {chosen['status']}{floats}")


def digits(work: Path) -> None:
    from convert.api import ConvertConfig

    fp32 = _bench(_convert(work / "run", work / "digits_fp32", ConvertConfig(
        targets=("tflite", "coreml"), quantizations=("fp32",))))
    fp32_size = {a["target"]: a["size_bytes"] for a in fp32["artifacts"]}
    _convert(work / "run", work / "digits_budget", ConvertConfig(targets=("tflite", "coreml"), max_drop_pp=0.5),
             judge=_judge(work / "run", 0.5), log=print)
    report = _bench(work / "digits_budget")
    for platform, name in report["recommended"].items():
        a = next(r for r in report["artifacts"] if r["name"] == name)
        print(f"digits --max-drop 0.5, {platform}: {name}, test drop {a['accuracy_drop_pp']:.2f} pp, "
              f"{a['size_bytes'] / 1024:.1f} KiB = {a['size_bytes'] / fp32_size[a['target']]:.1%} of fp32 (limit 35%)")


def main() -> None:
    ap = figure_parser("budget", __doc__)
    ap.parse_args()
    from train.trainer import TrainConfig, train

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        train(TrainConfig(), work / "run", log=quiet, verbose=0)
        outlier(work)
        digits(work)


if __name__ == "__main__":
    main()
