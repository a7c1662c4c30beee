"""The `mobilepack` command. Each command parses, calls one library function, prints.

Library errors (MobilepackError) become one line on stderr and their exit code;
--debug shows the traceback instead.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import click

# Before any TensorFlow import: keep its C++ INFO/WARNING lines out of the output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from .console import ProgressLine, native_stderr_silenced  # noqa: E402

EXAMPLE_DATA = "digits"


def _split_list(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip()) if value else ()


def _threads(value: str | None):
    if value is None:
        return None
    try:
        return tuple(int(v) for v in _split_list(value))
    except ValueError:
        raise click.BadParameter(f"{value!r}: give whole numbers >= 1, e.g. --threads 1,2") from None


def command_options(fn):
    """--debug and --quiet on every command, and the one error-handling policy."""

    @click.option("--debug", is_flag=True, help="Show tracebacks and native (TensorFlow) logs.")
    @click.option("--quiet", "-q", is_flag=True, help="Only errors and the final result.")
    @functools.wraps(fn)
    def wrapper(*args, debug: bool, quiet: bool, **kwargs):
        debug = debug or bool((click.get_current_context().find_root().obj or {}).get("debug"))
        from train.errors import MobilepackError

        ui = ProgressLine(quiet)
        try:
            with native_stderr_silenced(not debug):
                return fn(*args, ui=ui, **kwargs)
        except MobilepackError as exc:
            if debug:
                raise
            click.echo(f"Error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted; nothing was left half-written.", err=True)
            sys.exit(130)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks and native logs for every command.")
@click.version_option(package_name="mobilepack")
@click.pass_context
def cli(ctx, debug):
    """Package a Keras model for Android (TFLite) and iOS (Core ML), and prove every artifact.

    Example:

        mobilepack demo --out dist
    """
    ctx.obj = {"debug": debug}


@cli.command("train")
@click.option("--data", default="digits", show_default=True, help="'digits' or a folder with one sub-folder per class.")
@click.option("--arch", type=click.Choice(["small_cnn", "mobilenet_v2"]), default="small_cnn", show_default=True)
@click.option("--img-size", type=int, default=32, show_default=True, help="Square input size in pixels.")
@click.option("--epochs", type=int, default=40, show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--alpha", type=float, default=1.0, show_default=True, help="MobileNetV2 width multiplier.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out", type=click.Path(path_type=Path), default=Path("runs/latest"), show_default=True,
              help="Run dir to write (replaced atomically).")
@command_options
def train_cmd(data, arch, img_size, epochs, batch_size, alpha, seed, out, ui):
    """Train a classifier from scratch and write a run dir.

    The run dir holds model.keras (normalization baked in: it takes raw RGB
    0-255), labels.txt, preprocessing.json, split.json and the history.

    Example:

        mobilepack train --data digits --epochs 30 --out runs/digits
    """
    from train.trainer import TrainConfig, train

    config = TrainConfig(data=data, arch=arch, img_size=img_size, epochs=epochs, batch_size=batch_size,
                         alpha=alpha, seed=seed)
    result = train(config, out, log=ui.log, verbose=0 if ui.quiet else 2)
    click.echo(f"run dir: {result.run_dir} (val accuracy {result.val_accuracy:.4f}, test {result.test_accuracy:.4f})")


@click.command("convert")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--target", default="tflite", show_default=True, help="Comma list of targets: tflite, coreml.")
@click.option("--coreml-format", default="mlprogram", show_default=True,
              help="Comma list: mlprogram (.mlpackage, iOS 15+), neuralnetwork (.mlmodel, iOS 13+).")
@click.option("--quant", default=None,
              help="Comma list. TFLite: fp32, fp16, dynamic, int8. Core ML: fp32, fp16, and for mlprogram "
                   "int8w, pal6, pal4. Default: all the targets support.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("dist"), show_default=True,
              help="Output folder (replaced atomically).")
@click.option("--calibration", default=None,
              help="int8 calibration data: digits, an image folder, or FILE.npy/.npz. Default: the run's training split.")
@click.option("--calibration-size", type=int, default=200, show_default=True, help="Images used for calibration (>= 100).")
@click.option("--int8-output", type=click.Choice(["float32", "uint8"]), default="float32", show_default=True)
@click.option("--unsafe-load", is_flag=True, help="Allow Lambda layers (runs Python code from the file). Only for files you trust.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--max-drop", type=float, default=None, metavar="PP",
              help="Accuracy budget: keep, per format, the most compressed artifact whose validation accuracy "
                   "drop stays within PP percentage points (needs a run dir).")
@command_options
def convert_cmd(model, target, coreml_format, quant, out, calibration, calibration_size, int8_output, unsafe_load,
                seed, max_drop, ui):
    """Convert a Keras model or run dir to TFLite / Core ML artifacts and manifest.json.

    Example:

        mobilepack convert runs/digits --target tflite,coreml --coreml-format mlprogram,neuralnetwork --out dist

    With a budget, one artifact per format: the most compressed within 0.5 pp:

        mobilepack convert runs/digits --target tflite,coreml --max-drop 0.5 --out dist
    """
    from convert.api import ConvertConfig, convert

    config = ConvertConfig(targets=_split_list(target), quantizations=_split_list(quant),
                           coreml_formats=_split_list(coreml_format), calibration=calibration,
                           calibration_size=calibration_size, int8_output=int8_output, unsafe_load=unsafe_load,
                           seed=seed, max_drop_pp=max_drop)
    manifest = convert(model, out, config, log=ui.log, judge=_judge(model, max_drop, unsafe_load, ui), progress=ui)
    click.echo(f"{out}/manifest.json: {len(manifest.artifacts)} artifact(s)")


cli.add_command(convert_cmd)


def _judge(model, max_drop, unsafe_load, ui):
    if max_drop is None or not max_drop > 0:
        return None  # ConvertConfig refuses a non-positive budget with the reason
    from mobilepack.search import validation_judge

    return validation_judge(model, max_drop, unsafe_load, ui.log)


def _bench_config(data, threads, max_drop, min_agreement, no_gate, runs, unsafe_load, dist=None, baseline=None,
                  no_crosscheck=False):
    from benchmarks.bench import BenchConfig
    from benchmarks.gate import parse_overrides, thresholds_with
    from benchmarks.latency import LatencyProtocol

    kwargs = {}
    if threads is not None:
        kwargs["threads"] = threads
    table = thresholds_with(parse_overrides(max_drop, "--max-drop", 0.0, 100.0),
                            parse_overrides(min_agreement, "--min-agreement", 0.0, 1.0))
    return BenchConfig(data=data or _default_data(dist), latency=LatencyProtocol(min_runs=runs),
                       thresholds=table, gate=not no_gate, unsafe_load=unsafe_load, baseline=baseline,
                       crosscheck=not no_crosscheck, **kwargs)


def _default_data(dist) -> str:
    from benchmarks.evaldata import default_data_spec

    return default_data_spec(dist)


def _finish_bench(report: dict, dist: Path, ui, junit: Path | None = None) -> None:
    from benchmarks.report import text_table

    click.echo(text_table(report))
    click.echo(f"report: {dist}/report.html, {dist}/report.json, {dist}/report.md  (measured on {report['machine']['cpu']}; "
               "host latency, not phone latency)")
    base = report.get("baseline")
    if junit:
        from benchmarks.junit import write_junit

        write_junit(junit, report, base["comparisons"] if base else None)
    if base and base["regressed"]:
        worst = next(c for c in base["comparisons"] if c["regressed"])
        click.echo(f"Error: regression against {base['path']} for {', '.join(base['regressed'])}: "
                   f"{worst['name']}: {'; '.join(worst['problems'])}", err=True)
        sys.exit(1)
    if report["gate"]["verdict"] == "failed":
        first = next(a for a in report["artifacts"] if a["status"] == "failed")
        click.echo(f"Error: gate failed for {', '.join(report['gate']['failed'])}: {first['reason']}", err=True)
        sys.exit(1)


bench_options = [
    click.option("--threads", default=None, help="Comma list of thread counts for latency (default: 1 and all cores)."),
    click.option("--max-drop", multiple=True, metavar="QUANT=PP",
                 help="Override the accuracy-drop limit of one quantization, e.g. int8=0.5 (demo: a plain PP "
                      "is the accuracy budget of the conversion)."),
    click.option("--min-agreement", multiple=True, metavar="QUANT=X", help="Override the top-1 agreement floor, e.g. int8=0.99."),
    click.option("--no-gate", is_flag=True, help="Report only; exit 0 even when an artifact fails."),
    click.option("--runs", type=click.IntRange(min=2), default=50, show_default=True, help="Minimum timed runs per latency."),
    click.option("--no-crosscheck", is_flag=True,
                 help="Skip timing each .tflite again with Google's benchmark_litert_model.py (faster)."),
]


def _apply(options):
    def deco(fn):
        for opt in reversed(options):
            fn = opt(fn)
        return fn
    return deco


@cli.command("bench")
@click.argument("dist", type=click.Path(path_type=Path))
@click.option("--data", default=None, help="digits, an image folder, or FILE.npz (x, optional y). Default: the training data's test split.")
@_apply(bench_options)
@click.option("--unsafe-load", is_flag=True, help="Allow Lambda layers in the reference model.")
@click.option("--baseline", type=click.Path(path_type=Path), default=None,
              help="A previous report.json: exit 1 if an artifact lost accuracy, grew or slowed beyond the limits.")
@click.option("--junit", type=click.Path(path_type=Path), default=None, help="Write each gate as a JUnit test case.")
@command_options
def bench_cmd(dist, data, threads, max_drop, min_agreement, no_gate, runs, no_crosscheck, unsafe_load, baseline, junit,
              ui):
    """Benchmark every artifact in DIST against the Keras reference; gate on accuracy.

    Exit code 1 when an artifact fails its threshold (unless --no-gate) or, with
    --baseline, regressed against the old report.

    Example:

        mobilepack bench dist --data digits --threads 1,2 --max-drop int8=0.5 --junit bench.xml
    """
    from benchmarks.bench import run_bench
    from benchmarks.junit import check_junit_path

    if junit:
        check_junit_path(junit)
    config = _bench_config(data, _threads(threads), max_drop, min_agreement, no_gate, runs, unsafe_load, dist, baseline,
                           no_crosscheck)
    report = run_bench(dist, config, log=ui.log, progress=ui)
    _finish_bench(report, dist, ui, junit)


@cli.command("demo")
@click.option("--out", type=click.Path(path_type=Path), default=Path("dist"), show_default=True)
@click.option("--run-dir", type=click.Path(path_type=Path), default=Path("runs/demo"), show_default=True)
@click.option("--epochs", type=int, default=40, show_default=True)
@click.option("--img-size", type=int, default=32, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@_apply(bench_options)
@command_options
def demo_cmd(out, run_dir, epochs, img_size, seed, threads, max_drop, min_agreement, no_gate, runs, no_crosscheck, ui):
    """Train on digits, convert to every TFLite and Core ML variant, benchmark, and write the report.

    --max-drop PP (a plain number) makes it an accuracy-budgeted conversion: one artifact per format.

    Example:

        mobilepack demo --out dist --max-drop 0.5
    """
    from convert.api import ConvertConfig
    from mobilepack.pipeline import run_demo
    from train.trainer import TrainConfig

    budget = _budget(max_drop)
    gate_overrides = tuple(v for v in max_drop if "=" in v)
    bench = _bench_config("digits", _threads(threads), gate_overrides, min_agreement, no_gate, runs, False,
                          no_crosscheck=no_crosscheck)
    every = ConvertConfig(targets=("tflite", "coreml"), coreml_formats=("mlprogram", "neuralnetwork"), seed=seed,
                          max_drop_pp=budget)
    report = run_demo(out, run_dir, TrainConfig(epochs=epochs, img_size=img_size, seed=seed), every, bench,
                      log=ui.log, progress=ui, verbose=0 if ui.quiet else 2)
    _finish_bench(report, out, ui)


@cli.command("ship")
@click.argument("dist", type=click.Path(path_type=Path))
@click.option("--android", type=click.Path(path_type=Path), default=None, help="The android_demo app folder.")
@click.option("--ios", type=click.Path(path_type=Path), default=None, help="The ios_demo app folder.")
@click.option("--artifact", "artifacts", multiple=True, metavar="NAME",
              help="Ship this artifact instead of the report's recommendation (once per platform).")
@click.option("--force", is_flag=True, help="Ship an artifact even though its gate failed.")
@click.option("--samples", type=click.IntRange(min=0), default=10, show_default=True,
              help="Test-split images bundled as the app's samples.")
@command_options
def ship_cmd(dist, android, ios, artifacts, force, samples, ui):
    """Copy the artifact that passed its gate, its labels, manifest, preprocessing and samples into the apps.

    The artifact is the report's recommendation per platform (run `mobilepack bench` first) unless
    --artifact names one; an artifact whose gate failed is refused unless --force.

    Example:

        mobilepack ship dist --android android_demo --ios ios_demo
    """
    from convert.errors import UsageError
    from mobilepack.ship import ShipConfig, ship

    apps = {p: d for p, d in (("android", android), ("ios", ios)) if d is not None}
    if not apps:
        raise UsageError("nothing to ship into: give --android android_demo and/or --ios ios_demo")
    ship(dist, ShipConfig(apps=apps, artifacts=tuple(artifacts), force=force, samples=samples), log=ui.log)


@cli.command("serve")
@click.argument("dist", type=click.Path(path_type=Path))
@click.option("--artifact", default=None, metavar="NAME", help="Default artifact for /predict (default: the float one).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind; 0.0.0.0 exposes it.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=4, show_default=True,
              help="Worker threads of the waitress server (each keeps its own interpreters).")
@command_options
def serve_cmd(dist, artifact, host, port, workers, ui):
    """Serve DIST's .tflite artifacts over HTTP: POST /predict, GET /healthz, /v1/models, and a test page at /.

    POST /predict takes JSON {"input": [...]} in the model's input shape or a multipart image
    upload (field 'image', preprocessed as the benchmark does); ?artifact=NAME picks the artifact.

    Example:

        mobilepack serve dist --port 8000 --workers 4
    """
    from mobilepack.serve import serve

    serve(dist, artifact, host, port, workers, log=click.echo)


def _budget(values) -> float | None:
    """demo's --max-drop: a plain number is the accuracy budget, QUANT=PP overrides a gate row."""
    from convert.errors import UsageError

    plain = [v for v in values if "=" not in v]
    if len(plain) > 1:
        raise UsageError(f"--max-drop given {len(plain)} budgets ({', '.join(plain)}); give one number")
    if not plain:
        return None
    try:
        return float(plain[0])
    except ValueError:
        raise UsageError(f"--max-drop {plain[0]!r}: not a number; e.g. --max-drop 0.5 or --max-drop int8=0.5") from None


def main() -> None:
    cli(prog_name="mobilepack")


def convert_main() -> None:
    convert_cmd(prog_name="python -m convert")
