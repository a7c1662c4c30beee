"""What `convert` costs against its floor: one plain float conversion per target, timed side by side.

    python -m benchmarks.figures.convert_speed [--models efficientnet,digits] [--repeat 1]

For each model, in fresh processes one after the other (floor, convert, floor, convert, ... --repeat times):

- floor: load the .keras file, one plain TFLite float conversion (`TFLiteConverter.from_keras_model`) and one
  plain Core ML ML Program float conversion (`ct.convert` of the traced function, FLOAT32), in one process;
- convert: `python -m convert MODEL --target tflite,coreml --quant fp32,fp16,dynamic,int8,int8w,pal6` with 40
  calibration samples (8 variants), as a user runs it.

Prints both wall times (process start to exit, imports included on both sides), their ratio (the goal of
issue 27: at most 1.6), and each variant's own time as convert's log gives it. Models: EfficientNetB0 at
64 px with 10 classes (weights=None: conversion time does not depend on the weights; nothing is
downloaded) and the digits small_cnn at 32 px (trained 2 epochs: its weights do not change its cost).

Example:

    python -m benchmarks.figures.convert_speed --models digits
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.figures.common import figure_parser, quiet, work_dir

QUANTS = "fp32,fp16,dynamic,int8,int8w,pal6"
CALIBRATION = 40
FLOOR = """
import os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import coremltools as ct, keras, tensorflow as tf
model = keras.saving.load_model(sys.argv[1])
tflite = tf.lite.TFLiteConverter.from_keras_model(model).convert()
spec = tf.TensorSpec((1, *model.inputs[0].shape[1:]), tf.float32, name="input")
traced = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
ct.convert([traced], source="tensorflow", convert_to="mlprogram", inputs=[ct.TensorType(name="input", shape=tuple(spec.shape))],
           compute_precision=ct.precision.FLOAT32, minimum_deployment_target=ct.target.iOS16).save(sys.argv[2])
"""
VARIANT_LINE = re.compile(r"\[\d+/\d+\] (\S+ (?:\S+ )?\S+): [\d.]+ KiB in ([\d.]+) s")


def efficientnet(work: Path) -> Path:
    import keras

    keras.utils.set_random_seed(0)
    path = work / "efficientnet_b0_64.keras"
    keras.applications.EfficientNetB0(weights=None, input_shape=(64, 64, 3), classes=10).save(path)
    return path


def digits(work: Path) -> Path:
    from train.trainer import TrainConfig, train

    run = work / "digits"
    if not (run / "model.keras").is_file():
        train(TrainConfig(epochs=2, seed=0), run, log=quiet, verbose=0)
    return run / "model.keras"


def _timed(command: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        what = "the floor" if command[1] == "-c" else "convert"
        sys.exit(f"{what} failed (exit {proc.returncode}): {proc.stderr.strip()[-400:]}")
    return seconds, proc.stdout + proc.stderr


def measure(name: str, model: Path, work: Path, repeat: int) -> None:
    shape = _input_shape(model)
    np.savez(work / f"{name}_calib.npz", x=np.random.default_rng(0).uniform(0, 255, (CALIBRATION, *shape))
             .astype(np.float32))
    floors, wholes, variants = [], [], {}
    for _ in range(repeat):
        floors.append(_timed([sys.executable, "-c", FLOOR, str(model), str(work / f"{name}_floor.mlpackage")])[0])
        seconds, log = _timed([sys.executable, "-m", "convert", str(model), "--target", "tflite,coreml", "--quant",
                               QUANTS, "--calibration", str(work / f"{name}_calib.npz"), "--calibration-size",
                               str(CALIBRATION), "--out", str(work / f"{name}_dist")])
        wholes.append(seconds)
        for variant, cost in VARIANT_LINE.findall(log):
            variants.setdefault(variant, []).append(float(cost))
    floor, whole = statistics.median(floors), statistics.median(wholes)
    print(f"{name}: convert of {len(variants)} variants {whole:.1f} s, floor (load + one float conversion per "
          f"target) {floor:.1f} s: ratio {whole / floor:.2f} (goal <= 1.6; medians of {repeat})", flush=True)
    for variant, costs in variants.items():
        print(f"  {variant:24s} {statistics.median(costs):6.1f} s", flush=True)


def _input_shape(model: Path) -> tuple[int, ...]:
    import keras

    return tuple(keras.saving.load_model(model).inputs[0].shape[1:])


def main() -> None:
    ap = figure_parser("convert_speed", __doc__)
    ap.add_argument("--models", default="efficientnet,digits", help="comma list of efficientnet, digits")
    ap.add_argument("--repeat", type=int, default=1, help="floor/convert pairs per model, e.g. --repeat 3")
    ap.add_argument("--work", type=Path, default=None, help="keep models and outputs here")
    args = ap.parse_args()
    makers = {"efficientnet": efficientnet, "digits": digits}
    names = [n for n in args.models.split(",") if n]
    unknown = [n for n in names if n not in makers]
    if unknown:
        ap.error(f"unknown model {unknown[0]!r}; choose from {', '.join(makers)}")
    from benchmarks.latency.machine import machine_info

    print(f"machine: {machine_info()['cpu']}, {machine_info()['cores']} cores", flush=True)
    with work_dir(args.work) as work:
        for name in names:
            measure(name, makers[name](work), work, args.repeat)


if __name__ == "__main__":
    main()
