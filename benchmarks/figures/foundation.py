"""Digits accuracy and drops, and int8 size ratios.

    python -m benchmarks.figures.foundation [--skip-mobilenet]

Trains small_cnn on digits with the default config, converts every TFLite
variant, benchmarks them on the held-out test split, and compares with
scikit-learn's default SVC on the same split and on the classic 80/20 split.
Then converts MobileNetV2 (224, weights=None, 1000 classes, as train/models.py
builds it) to fp32 and int8 and prints the size ratio.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks.figures.common import quiet, save_mobilenet_v2
from benchmarks.figures.common import figure_parser


def svc_baselines(split_file: Path) -> tuple[float, float]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.svm import SVC

    from train.data import load_split

    d = load_digits()
    x, y = d.data, d.target
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
    classic = SVC().fit(xtr, ytr).score(xte, yte)
    split = load_split(split_file)
    train_idx = [int(i) for i in split["train"]]
    test_idx = [int(i) for i in split["test"]]
    ours = SVC().fit(x[train_idx], y[train_idx]).score(x[test_idx], y[test_idx])
    return classic, ours


def digits(work: Path) -> None:
    from benchmarks.bench import BenchConfig, run_bench
    from convert.api import ConvertConfig, convert
    from train.trainer import TrainConfig, train

    run, dist = work / "run", work / "dist"
    train(TrainConfig(), run, log=quiet, verbose=0)
    convert(run, dist, ConvertConfig(), log=quiet)
    report = run_bench(dist, BenchConfig(data="digits"), log=quiet)
    classic, same = svc_baselines(run / "split.json")
    rows = {a["quantization"]: a for a in report["artifacts"]}
    ref = report["reference"]["accuracy"]
    print(f"digits small_cnn: reference test accuracy {ref:.4f} on {report['dataset']['count']} images "
          f"(floor 0.97; SVC default: {same:.4f} on the same split, {classic:.4f} on a stratified 80/20 split)")
    for q, a in rows.items():
        print(f"  {q:8s} accuracy {a['accuracy']:.4f}  drop {a['accuracy_drop_pp']:+.2f} pp  agreement "
              f"{a['agreement']:.4f}  size {a['size_bytes']:>7d} B ({a['size_bytes'] / rows['fp32']['size_bytes']:.1%} of fp32)"
              f"  {a['status']}")
    print(f"  fp16 drop {rows['fp16']['accuracy_drop_pp']:.2f} pp (limit 0.1); int8 drop "
          f"{rows['int8']['accuracy_drop_pp']:.2f} pp (limit 1.0); int8 size "
          f"{rows['int8']['size_bytes'] / rows['fp32']['size_bytes']:.1%} of fp32 (limit 35%)")


def mobilenet(work: Path) -> None:
    from convert.api import ConvertConfig, convert

    path, calib = save_mobilenet_v2(work)
    m = convert(path, work / "mnv2", ConvertConfig(quantizations=("fp32", "int8"), calibration=str(calib),
                                                     calibration_size=100), log=quiet)
    fp32, int8 = m.artifact("model_fp32").size_bytes, m.artifact("model_int8").size_bytes
    print(f"MobileNetV2 224 (weights=None, 1000 classes): fp32 {fp32 / 2**20:.2f} MiB, int8 {int8 / 2**20:.2f} MiB "
          f"= {int8 / fp32:.1%} of fp32 (limit 30%)")


def main() -> None:
    ap = figure_parser("foundation", __doc__)
    ap.add_argument("--skip-mobilenet", action="store_true", help="only the digits figures")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        digits(Path(tmp))
        if not args.skip_mobilenet:
            mobilenet(Path(tmp))


if __name__ == "__main__":
    main()
