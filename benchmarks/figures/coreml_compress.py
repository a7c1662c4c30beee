"""Core ML weight compression on fp16 compute, and the iOS 18 variants: what each costs.

    python -m benchmarks.figures.coreml_compress [--models small_cnn,mobilenet_v2,resnet50] [--inputs 20]
    python -m benchmarks.figures.coreml_compress --mlmodel-only --models mobilenet_v2,resnet50

small_cnn trained on digits as `make demo` trains it, converted as `mobilepack convert --target coreml
--ios-target 18` converts it (an image classifier), every compressed variant run through the reference
evaluator on the 359 test images: size, accuracy drop against Keras (pp), top-1 agreement, compute units,
and the budgets (int4b, pal4g: at most 3 pp; w8a8, int8 activations calibrated on 200 training images by
the evaluator: at most 1 pp). Then MobileNetV2 and the Keras applications of
`benchmarks.figures.coreml` (224 px, weights=None, batch-norm statistics from random images): SQNR against
Keras of int8w, pal6 and pal4 on fp16 compute next to the same on fp32 compute, and of int4b and pal4g,
with the layers whose channels the block (group) did not divide. For every model, a NeuralNetwork
(.mlmodel, fp32 weights) too: its SQNR (and, for small_cnn, drop) at gpu/ane precision (float16, as the
GPU and Neural Engine run it, what the bench gates) next to cpu precision (float32, as the CPU runs it).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.figures.common import quiet
from benchmarks.figures.coreml import MODELS, model_names, app_model
from benchmarks.figures.common import figure_parser

PAIRS = (("int8w", "int8w-fp32"), ("pal6", "pal6-fp32"), ("pal4", "pal4-fp32"))
IOS18 = ("int4b", "pal4g")
BUDGET_PP = {"int4b": 3.0, "pal4g": 3.0, "w8a8": 1.0}


def digits(work: Path) -> None:
    from benchmarks.parity import compare
    from benchmarks.parity.compute_units import compute_units
    from benchmarks.runners import activation_ranges, coreml_runner
    from convert.api import ConvertConfig, RuntimeHooks, convert
    from train.data import split_part
    from train.loading import load_keras_model
    from train.preprocessing import Preprocessing
    from train.trainer import TrainConfig, train

    run = work / "digits_run"
    train(TrainConfig(), run, log=quiet, verbose=0)
    ds, idx = split_part(run / "split.json", "test", quiet)
    x = Preprocessing.load(run / "preprocessing.json").apply_batch([ds.images[i] for i in idx])
    labels = ds.labels[idx]
    ref = compare.top1(np.asarray(load_keras_model(run).predict(x, verbose=0)))
    quants = ("fp16", *[q for pair in PAIRS for q in pair], *IOS18, "w8a8")
    t0 = time.perf_counter()
    manifest = convert(run, work / "dist", ConvertConfig(targets=("coreml",), quantizations=quants, ios_target=18),
                       log=quiet, hooks=RuntimeHooks(activation_ranges=activation_ranges))
    print(f"digits small_cnn: {len(idx)} test images, Keras accuracy {compare.accuracy(ref, labels):.4f} "
          f"(converted {len(quants)} variants in {time.perf_counter() - t0:.0f} s)", flush=True)
    for a in manifest.artifacts:
        pred = compare.top1(coreml_runner(a.path(work / "dist")).predict([x])[0])
        drop = (compare.accuracy(ref, labels) - compare.accuracy(pred, labels)) * 100
        limit = BUDGET_PP.get(a.quantization)
        verdict = "" if limit is None else ("within" if drop <= limit else "OVER") + f" {limit:g} pp budget"
        units = compute_units(a.path(work / "dist"))["compute_units"]
        print(f"  {a.quantization:10s} {a.size_bytes / 1024:7.1f} KiB  drop {drop:+.2f} pp  agreement "
              f"{compare.agreement(pred, ref):.4f}  {a.notes['minimum_deployment_target']:5s}  {units:24s} "
              f"fallbacks {len(a.notes.get('compression_fallbacks', []))}  {verdict}", flush=True)
    nn = convert(run, work / "dist_nn", ConvertConfig(targets=("coreml",), coreml_formats=("neuralnetwork",),
                                                      quantizations=("fp32",)), log=quiet).artifacts[0]
    path = nn.path(work / "dist_nn")
    probs = np.asarray(load_keras_model(run).predict(x, verbose=0))
    for precision in ("cpu", "gpu/ane"):
        out = coreml_runner(path, precision=precision).predict([x])[0]
        drop = (compare.accuracy(ref, labels) - compare.accuracy(compare.top1(out), labels)) * 100
        print(f"  .mlmodel fp32 at {precision:7s} drop {drop:+.2f} pp  agreement "
              f"{compare.agreement(compare.top1(out), ref):.4f}  SQNR {compare.sqnr_db(out, probs):6.1f} dB", flush=True)


def application(name: str, work: Path, n: int, mlmodel_only: bool = False) -> None:
    from benchmarks.runners import coreml_runner
    from benchmarks.parity.compare import sqnr_db
    from convert.context import ConversionContext
    from convert.coreml.convert import convert_coreml
    from convert.coreml.compress import recorded_fallbacks
    from train.loading import size_on_disk

    model = app_model(name)
    x = np.random.default_rng(0).uniform(0, 255, (n, 224, 224, 3)).astype(np.float32)
    ref = np.asarray(model.predict(x, batch_size=10, verbose=0))
    figures = {}
    for quant in () if mlmodel_only else (*[q for pair in PAIRS for q in pair], *IOS18):
        t0 = time.perf_counter()
        path = work / f"{name}_{quant}.mlpackage"
        try:
            mlmodel = convert_coreml(ConversionContext(model), "mlprogram", quant)
            mlmodel.save(str(path))
            out = coreml_runner(path).predict([x])[0]
        except Exception as exc:  # report and go on to the next variant
            print(f"{name:20s} {quant:10s} ERROR {exc}", flush=True)
            continue
        figures[quant] = sqnr_db(out, ref)
        fell_back = recorded_fallbacks(mlmodel)
        extra = f"  {len(fell_back)} layer(s) fell back" if quant in IOS18 else ""
        agree = float(np.mean(out.argmax(-1) == ref.argmax(-1)))
        print(f"{name:20s} {quant:10s} {size_on_disk(path) / 2**20:6.2f} MiB  SQNR {figures[quant]:6.1f} dB  "
              f"agreement {agree:.3f}{extra}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    for fp16, fp32 in PAIRS:
        if fp16 in figures and fp32 in figures:
            print(f"{name:20s} {fp16:6s} SQNR on fp16 compute {figures[fp16]:6.1f} dB, on fp32 compute "
                  f"{figures[fp32]:6.1f} dB", flush=True)
    neural_network(name, model, x, ref, work)


def neural_network(name: str, model, x: np.ndarray, ref: np.ndarray, work: Path) -> None:
    """A .mlmodel (fp32 weights) at the device's float16 (gpu/ane) and the CPU's float32 precision."""
    from benchmarks.parity.compare import sqnr_db
    from benchmarks.runners import coreml_runner
    from convert.context import ConversionContext
    from convert.coreml.convert import convert_coreml

    t0 = time.perf_counter()
    path = work / f"{name}_nn_fp32.mlmodel"
    try:
        convert_coreml(ConversionContext(model), "neuralnetwork", "fp32").save(str(path))
        outs = {p: coreml_runner(path, precision=p).predict([x])[0] for p in ("gpu/ane", "cpu")}
    except Exception as exc:  # report and go on to the next model
        print(f"{name:20s} .mlmodel   ERROR {exc}", flush=True)
        return
    agree = {p: float(np.mean(o.argmax(-1) == ref.argmax(-1))) for p, o in outs.items()}
    print(f"{name:20s} .mlmodel fp32 SQNR at gpu/ane (fp16) {sqnr_db(outs['gpu/ane'], ref):6.1f} dB, at cpu (fp32) "
          f"{sqnr_db(outs['cpu'], ref):6.1f} dB  agreement {agree['gpu/ane']:.3f} / {agree['cpu']:.3f}  "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)


def main() -> None:
    ap = figure_parser("coreml_compress", __doc__)
    ap.add_argument("--models", type=model_names, default=list(MODELS), help=f"comma-separated, from {', '.join(MODELS)}")
    ap.add_argument("--inputs", type=int, default=20, help="random 224 px inputs per Keras application")
    ap.add_argument("--mlmodel-only", action="store_true",
                    help="Keras applications: only the .mlmodel line (gpu/ane vs cpu SQNR), e.g. --mlmodel-only --models resnet50")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            if name == "small_cnn":
                digits(Path(tmp))
            else:
                application(name, Path(tmp), args.inputs, args.mlmodel_only)


if __name__ == "__main__":
    main()
