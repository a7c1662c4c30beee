"""The Core ML reference evaluator against Keras, and its speed.

    python -m benchmarks.figures.coreml [--models small_cnn,mobilenet_v2,resnet50] [--inputs 50] [--skip-speed]
    python -m benchmarks.figures.coreml --speed-only --speed-runs 3
    python -m benchmarks.figures.coreml --fp16-crosscheck resnet50

For small_cnn trained on digits, for MobileNetV2 (as train/models.py builds it) and for
other Keras applications (224x224, weights=None, seed 0) it converts to ML Program and
NeuralNetwork in every quantization, runs the saved files through the evaluator and prints,
against the Keras model on the same inputs: max abs error of the softmax outputs (fp32
limit 1e-4), SQNR (fp16 limit 30 dB) and top-1 agreement. First it times the evaluator on
MobileNetV2 224 fp32 at batch 32 against LiteRT fp32 on the same inputs, in three runs (goal:
at least 0.5 of LiteRT's throughput), as an ML Program and as a NeuralNetwork .mlmodel, then
once per sample, as the evaluator ran before it batched (--speed-only stops there).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.figures.common import mobilenet_v2_224, quiet
from benchmarks.figures.common import figure_parser

# The Keras applications besides MobileNetV2: class name, and whether [-1, 1] scaling must be
# folded in front (the others scale raw pixels themselves).
APPS = {
    "mobilenet_v3_small": ("MobileNetV3Small", False),
    "mobilenet_v3_large": ("MobileNetV3Large", False),
    "efficientnet_b0": ("EfficientNetB0", False),
    "resnet50": ("ResNet50", True),
    "densenet121": ("DenseNet121", True),
}
MODELS = ("small_cnn", "mobilenet_v2", *APPS)
FAMILIES = [("mlprogram", "fp32"), ("neuralnetwork", "fp32"), ("mlprogram", "fp16"), ("neuralnetwork", "fp16"),
            ("mlprogram", "int8w"), ("mlprogram", "pal6"), ("mlprogram", "pal4")]


def app_model(name: str):
    """MobileNetV2 or a Keras application at 224 px, weights=None, seed 0, taking raw 0-255 RGB."""
    model = mobilenet_v2_224() if name == "mobilenet_v2" else _application(name)
    _estimate_batchnorm(model, 224)
    return model


def _application(name: str, size: int = 224):
    import keras

    cls, needs_rescale = APPS[name]
    keras.utils.set_random_seed(0)
    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs) if needs_rescale else inputs
    base = getattr(keras.applications, cls)(input_tensor=x, weights=None)
    return keras.Model(inputs, base.output, name=name)


def _estimate_batchnorm(model, size: int) -> None:
    """Give BatchNormalization real statistics, as a trained network has.

    With weights=None the default statistics (mean 0, variance 1) let activations
    collapse through the depth of the network: MobileNetV2 then outputs exactly
    1/1000 for every class and any comparison "passes". One training-mode pass
    with momentum 0 sets each layer's statistics to those of 8 random images.
    """
    import keras

    layers = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    saved = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    model(np.random.default_rng(7).uniform(0, 255, (8, size, size, 3)).astype(np.float32), training=True)
    for layer, momentum in zip(layers, saved):
        layer.momentum = momentum


def _coreml(model, fmt: str, quant: str):
    """A tensor-input Core ML model: the evaluator is compared on the raw softmax outputs."""
    from convert.context import ConversionContext
    from convert.coreml.convert import convert_coreml

    return convert_coreml(ConversionContext(model), fmt, quant)


def compare(model, x: np.ndarray, work: Path, label: str, n_fp32: int, n_other: int) -> None:
    from benchmarks.runners import CoreMLReferenceRunner
    from benchmarks.parity.compare import sqnr_db

    ref = np.asarray(model.predict(x, batch_size=16, verbose=0))
    for fmt, quant in FAMILIES:
        path = work / f"{label}_{fmt}_{quant}{'.mlpackage' if fmt == 'mlprogram' else '.mlmodel'}"
        t0 = time.perf_counter()
        n = n_fp32 if quant == "fp32" else n_other
        try:
            _coreml(model, fmt, quant).save(str(path))
            t1 = time.perf_counter()
            # ML Programs with per-op fp16 rounding, as the bench judges them (the Neural Engine's precision)
            precision = "gpu/ane" if fmt == "mlprogram" else "cpu"
            out = CoreMLReferenceRunner(path, precision=precision).predict([x[:n]])[0]
        except Exception as exc:  # report and go on to the next family
            print(f"{label:20s} {fmt:13s} {quant:6s} ERROR {exc}", flush=True)
            continue
        t2 = time.perf_counter()
        r = ref[:n]
        agree = float(np.mean(out.argmax(-1) == r.argmax(-1)))
        verdict = ""
        if quant == "fp32":
            verdict = "ok" if np.abs(out - r).max() <= 1e-4 else "OVER 1e-4"
        elif quant == "fp16":
            verdict = "ok" if sqnr_db(out, r) >= 30 else "UNDER 30 dB"
        print(f"{label:20s} {fmt:13s} {quant:6s} n={n:3d} top-prob {r.max(-1).mean():.3f} max_abs {np.abs(out - r).max():.2e} "
              f"sqnr {sqnr_db(out, r):6.1f} dB agreement {agree:.3f}  {verdict:10s} "
              f"(convert {t1 - t0:.0f} s, evaluate {t2 - t1:.1f} s)", flush=True)


def digits_model(work: Path):
    from train.data import split_part
    from train.loading import load_keras_model
    from train.preprocessing import Preprocessing
    from train.trainer import TrainConfig, train

    run = work / "digits_run"
    train(TrainConfig(), run, log=quiet, verbose=0)
    ds, idx = split_part(run / "split.json", "test", quiet)
    prep = Preprocessing.load(run / "preprocessing.json")
    return load_keras_model(run), prep.apply_batch([ds.images[i] for i in idx])


def speed(work: Path, batch: int = 32, runs: int = 3) -> None:
    """Images per second of LiteRT fp32 and of the evaluator on MobileNetV2 224 fp32, as an ML Program
    (.mlpackage) and as a NeuralNetwork (.mlmodel, cpu precision), same process, same inputs,
    interleaved; each run takes the better of two timed calls per runner. Then each once per sample."""
    from benchmarks.runners import CoreMLReferenceRunner, LiteRTRunner
    from convert.tflite.convert import convert_tflite

    model = app_model("mobilenet_v2")
    x = np.random.default_rng(1).uniform(0, 255, (batch, 224, 224, 3)).astype(np.float32)
    (work / "mnv2.tflite").write_bytes(convert_tflite(model, "fp32"))
    litert = LiteRTRunner(work / "mnv2.tflite", num_threads=os.cpu_count())
    litert.predict([x])
    paths = {fmt: work / f"mnv2{'.mlpackage' if fmt == 'mlprogram' else '.mlmodel'}" for fmt in ("mlprogram", "neuralnetwork")}
    evaluators = {fmt: _speed_evaluator(model, fmt, path, x) for fmt, path in paths.items()}
    print(f"speed: load average {_load()} before the runs", flush=True)
    ratios = {fmt: [] for fmt in evaluators}
    for run in range(1, runs + 1):
        lit = batch / min(_timed(litert, x) for _ in range(2))
        rates = {fmt: batch / min(_timed(ev, x) for _ in range(2)) for fmt, ev in evaluators.items()}
        for fmt, rate in rates.items():
            ratios[fmt].append(rate / lit)
        ev, nn = rates["mlprogram"], rates["neuralnetwork"]
        print(f"speed run {run}, MobileNetV2 224 fp32, batch {batch}: LiteRT {lit:.1f} img/s ({os.cpu_count()} threads), "
              f"evaluator {ev:.1f} img/s = {ev / lit:.2f} of LiteRT (goal >= 0.5); "
              f".mlmodel {nn:.1f} img/s = {nn / lit:.2f}", flush=True)
    lit = batch / _timed(litert, x)
    base = {}
    for fmt, path in paths.items():
        per_sample = CoreMLReferenceRunner(path)
        per_sample.model.per_sample_reason = "the figure's per-sample baseline"  # the evaluator before batching
        base[fmt] = batch / _timed(per_sample, x)
    shown = {fmt: ", ".join(f"{r:.2f}" for r in ratios[fmt]) for fmt in ratios}
    print(f"speed, per sample (before batching): LiteRT {lit:.1f} img/s, evaluator {base['mlprogram']:.1f} img/s = "
          f"{base['mlprogram'] / lit:.2f}, .mlmodel {base['neuralnetwork']:.1f} img/s = {base['neuralnetwork'] / lit:.2f}; "
          f"batched runs: evaluator {shown['mlprogram']} "
          f"({'meets' if min(ratios['mlprogram']) >= 0.5 else 'below'} the 0.5 goal), .mlmodel {shown['neuralnetwork']}; "
          f"load average {_load()}", flush=True)


def _speed_evaluator(model, fmt: str, path: Path, x: np.ndarray):
    """The evaluator of `model` saved as `fmt` at path, warmed up; says if it cannot batch."""
    from benchmarks.runners import CoreMLReferenceRunner

    _coreml(model, fmt, "fp32").save(str(path))
    evaluator = CoreMLReferenceRunner(path)
    if evaluator.per_sample_reason:
        print(f"speed: the evaluator runs MobileNetV2 {path.suffix} per sample ({evaluator.per_sample_reason})", flush=True)
    evaluator.predict([x[:2]])
    return evaluator


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def _timed(runner, x: np.ndarray) -> float:
    t0 = time.perf_counter()
    runner.predict([x])
    return time.perf_counter() - t0


def fp16_crosscheck(name: str, n: int) -> None:
    """How much fp16 costs the model itself, without the evaluator: fp16 weights in TFLite
    (fp32 compute), and TensorFlow computing the same weights under Keras' float16 policy."""
    import keras

    from benchmarks.parity.compare import sqnr_db
    from benchmarks.runners import LiteRTRunner
    from convert.tflite.convert import convert_tflite

    model = app_model(name)
    x = np.random.default_rng(0).uniform(0, 255, (n, 224, 224, 3)).astype(np.float32)
    ref = np.asarray(model.predict(x, batch_size=10, verbose=0))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fp16.tflite"
        path.write_bytes(convert_tflite(model, "fp16"))
        lite = LiteRTRunner(path, num_threads=os.cpu_count()).predict([x])[0]
    keras.mixed_precision.set_global_policy("float16")
    try:
        half = app_model(name)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    half.set_weights(model.get_weights())
    out16 = np.asarray(half.predict(x, batch_size=10, verbose=0), np.float32)
    print(f"{name} fp16 cross-check on {n} inputs: TFLite fp16 weights {sqnr_db(lite, ref):.1f} dB; "
          f"TensorFlow float16 compute {sqnr_db(out16, ref):.1f} dB", flush=True)


def model_names(value: str) -> list[str]:
    names = value.split(",")
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown model {unknown[0]!r}; choose from {', '.join(MODELS)}")
    return names


def main() -> None:
    ap = figure_parser("coreml", __doc__)
    ap.add_argument("--models", type=model_names, default=list(MODELS), help=f"comma-separated, from {', '.join(MODELS)}")
    ap.add_argument("--inputs", type=int, default=50, help="inputs for fp16 and compressed variants")
    ap.add_argument("--fp32-inputs", type=int, default=10)
    ap.add_argument("--skip-speed", action="store_true", help="no evaluator-vs-LiteRT timing (MobileNetV2 224)")
    ap.add_argument("--speed-only", action="store_true", help="only the evaluator-vs-LiteRT timing, e.g. --speed-only")
    ap.add_argument("--speed-runs", type=int, default=3, help="timing runs, each printed, e.g. --speed-runs 3")
    ap.add_argument("--fp16-crosscheck", metavar="APP", choices=MODELS[1:],
                    help="only the fp16 cross-check of one application, e.g. resnet50")
    args = ap.parse_args()
    if args.fp16_crosscheck:
        fp16_crosscheck(args.fp16_crosscheck, args.inputs)
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if not args.skip_speed:
            speed(work, runs=args.speed_runs)
        if args.speed_only:
            return
        for name in args.models:
            if name == "small_cnn":
                model, x = digits_model(work)
                compare(model, x, work, name, len(x), len(x))
                continue
            x = np.random.default_rng(0).uniform(0, 255, (args.inputs, 224, 224, 3)).astype(np.float32)
            compare(app_model(name), x, work, name, args.fp32_inputs, args.inputs)


if __name__ == "__main__":
    main()
