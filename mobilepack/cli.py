"""The `mobilepack` command. Each command parses, calls one library function, prints.

Library errors (MobilepackError) become one line on stderr and their exit code, and so
does any OSError (the path, what the OS said, what to do; exit 2); --debug shows the
traceback instead.
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import replace
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
        from train.errors import MobilepackError, os_error_message

        ui = ProgressLine(quiet)
        try:
            with native_stderr_silenced(not debug):
                return fn(*args, ui=ui, **kwargs)
        except MobilepackError as exc:
            if debug:
                raise
            click.echo(f"Error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except OSError as exc:  # full disk, read-only or forbidden path, busy port: the user's to fix, so exit 2
            if debug:
                raise
            click.echo(f"Error: {os_error_message(exc)}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("Interrupted; nothing was left half-written.", err=True)
            sys.exit(130)

    return wrapper


class _OneLineUsageErrors:
    """Click prints a usage error as three lines (usage, hint, error); ours is one line and exit 2."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:  # bare `mobilepack`: the help, as click shows it
            click.echo(exc.ctx.get_help(), err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.UsageError as exc:
            where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
            click.echo(f"Error: {exc.format_message()}{where}", err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.ClickException as exc:
            click.echo(f"Error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


class Group(_OneLineUsageErrors, click.Group):
    pass


class Command(_OneLineUsageErrors, click.Command):
    pass


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
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


@click.command("convert", cls=Command)
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--target", default="tflite", show_default=True, help="Comma list of targets: tflite, coreml.")
@click.option("--coreml-format", default="mlprogram", show_default=True,
              help="Comma list: mlprogram (.mlpackage, iOS 15+), neuralnetwork (.mlmodel, iOS 13+).")
@click.option("--quant", default=None,
              help="Comma list. TFLite: fp32, fp16, dynamic, int8, fp16-inference (fp16 arithmetic on ARM phones, "
                   "judged on bench's ARM64 column). Core ML: fp32, fp16, and for mlprogram "
                   "int8w, pal6, pal4 (float16 compute), int4b, pal4g (iOS 18), w8a8 (int8 activations too, iOS 17, "
                   "calibrated like int8), int8w-fp32, pal6-fp32, pal4-fp32 (float32 compute: no Neural Engine). "
                   "Default: all the targets support but fp16-inference, w8a8, the -fp32 ones and those newer than "
                   "--ios-target, e.g. --target coreml --quant w8a8 --ios-target 17.")
@click.option("--ios-target", type=click.Choice(["16", "17", "18"]), default="16", show_default=True,
              help="The oldest iOS your app supports: a Core ML variant that needs a newer one is refused (int4b "
                   "and pal4g need 18, w8a8 17), e.g. --ios-target 18 --quant int4b,pal4g.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("dist"), show_default=True,
              help="Output folder (replaced atomically).")
@click.option("--calibration", default=None,
              help="int8 and w8a8 calibration data: digits, an image folder, or FILE.npy/.npz. Default: the run's "
                   "training split.")
@click.option("--calibration-size", type=int, default=200, show_default=True,
              help="Samples used for calibration (fewer than 100 converts with a warning).")
@click.option("--int8-output", type=click.Choice(["float32", "uint8"]), default="float32", show_default=True)
@click.option("--unsafe-load", is_flag=True, help="Allow Lambda layers (runs Python code from the file). Only for files you trust.")
@click.option("--custom-objects", default=None, metavar="MODULE:NAME[,...]",
              help="Custom layers / subclassed models the file needs, imported from MODULE (the current "
                   "directory or an installed package). Runs that module's code: only for code you trust.")
@click.option("--input-shape", "input_shapes", multiple=True, metavar="NAME=1xHxWxC",
              help="Fix the None sizes of input NAME, batch first, e.g. image=1x224x224x3 (repeatable).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--max-drop", type=float, default=None, metavar="PP",
              help="Accuracy budget: keep, per format, the most compressed artifact whose validation accuracy "
                   "drop stays within PP percentage points (a run dir's validation split, or --validation).")
@click.option("--min-sqnr", multiple=True, metavar="DB|OUTPUT=DB",
              help="Budget for outputs without labels: keep the most compressed artifact whose SQNR against "
                   "Keras stays >= DB on every output (or on OUTPUT; repeatable).")
@click.option("--validation", default=None, metavar="FILE.npz|DIR",
              help="Validation data for the budget when MODEL is not a run dir: an .npz with 'x' (or one array "
                   "per input) and labels 'y' / 'y_<output>', or an image folder.")
@click.option("--output-kind", multiple=True, metavar="NAME=KIND",
              help="Judge output NAME as classification, regression or embedding during the budget search.")
@click.option("--executor", default="local", show_default=True, metavar="local|ray|ray://HOST:PORT",
              help="Where --max-drop judges its candidates on the validation data: this process, a local Ray "
                   "runtime or a Ray cluster, e.g. --max-drop 1 --executor ray.")
@click.option("--eval-workers", type=int, default=None, metavar="N",
              help="Ray workers for --executor ray (default: one per CPU of the cluster), e.g. --eval-workers 2.")
@command_options
def convert_cmd(model, target, coreml_format, quant, ios_target, out, calibration, calibration_size, int8_output,
                unsafe_load, custom_objects, input_shapes, seed, max_drop, min_sqnr, validation, output_kind, executor,
                eval_workers, ui):
    """Convert a Keras model or run dir to TFLite / Core ML artifacts and manifest.json.

    Example:

        mobilepack convert runs/digits --target tflite,coreml --coreml-format mlprogram,neuralnetwork --out dist

    With a budget, one artifact per format: the most compressed within 0.5 pp:

        mobilepack convert runs/digits --target tflite,coreml --max-drop 0.5 --out dist

    Your own model and data, budgeted on SQNR for a regression output:

        mobilepack convert model.keras --calibration calib.npz --validation val.npz --min-sqnr 30 --out dist

    A model with a custom layer and a free sequence length:

        mobilepack convert seq.keras --custom-objects mylayers:Attention --input-shape tokens=1x128x64
    """
    from convert.api import ConvertConfig, convert
    from convert.budget import parse_min_sqnr
    from convert.errors import UsageError

    sqnr, sqnr_by_output = parse_min_sqnr(min_sqnr)
    config = ConvertConfig(targets=_split_list(target), quantizations=_split_list(quant),
                           coreml_formats=_split_list(coreml_format), calibration=calibration,
                           calibration_size=calibration_size, int8_output=int8_output, unsafe_load=unsafe_load,
                           custom_objects=_split_list(custom_objects), input_shapes=input_shapes,
                           seed=seed, max_drop_pp=max_drop, min_sqnr_db=sqnr, min_sqnr_by_output=sqnr_by_output,
                           ios_target=int(ios_target))
    if validation and not config.budgeted:
        raise UsageError(f"--validation {validation}: it feeds the budget search; add --max-drop PP or --min-sqnr DB")
    from benchmarks.coreml_reference.calibrate import activation_ranges
    from benchmarks.executor import open_executor, parse_executor

    spec = parse_executor(executor, eval_workers)
    if spec.kind != "local" and not config.budgeted:
        raise UsageError(f"--executor {executor}: it runs the budget search's candidates; add --max-drop PP or "
                         "--min-sqnr DB (an unbudgeted convert evaluates nothing)")
    with open_executor(spec) as pool:  # a cluster is checked before anything converts
        manifest = convert(model, out, config, log=ui.log, progress=ui, activation_ranges=activation_ranges,
                           evaluate=_evaluator(model, config, validation, output_kind, ui, pool))
    click.echo(f"{out}/manifest.json: {len(manifest.artifacts)} artifact(s)")


cli.add_command(convert_cmd)


def _evaluator(model, config, validation, output_kinds, ui, executor):
    if not config.budgeted:
        return None
    from benchmarks.outputs import parse_output_kinds
    from convert.shapes import load_fixed
    from mobilepack.search import validation_evaluator

    load = functools.partial(load_fixed, unsafe=config.unsafe_load, custom_objects=config.custom_objects,
                             input_shapes=config.input_shapes)
    return validation_evaluator(model, config.budget(), ui.log, validation=validation,
                            output_kinds=parse_output_kinds(output_kinds), load=load,
                            executor=None if executor.name == "local" else executor)


def _bench_config(opts: dict, unsafe_load=False, dist=None, baseline=None):
    """BenchConfig from the shared bench options (as click passes them)."""
    from benchmarks.arm64 import Arm64Options
    from benchmarks.bench import BenchConfig
    from benchmarks.gate import parse_gate
    from benchmarks.latency import LatencyProtocol
    from benchmarks.outputs import parse_output_kinds
    from benchmarks.usermetric import parse_metric_limits
    from convert.budget import Budget, parse_min_sqnr

    _refuse_old_gate_spellings(opts)
    kwargs = {}
    if opts["threads"] is not None:
        kwargs["threads"] = _threads(opts["threads"])
    min_sqnr, per_output = parse_min_sqnr(opts["min_sqnr"])
    budget = Budget(_budget(opts["max_drop"]) or 1.0, min_sqnr, per_output)
    return BenchConfig(data=opts.get("data") or _default_data(dist), latency=LatencyProtocol(min_runs=opts["runs"]),
                       thresholds=parse_gate(opts["gate"]), gate=not opts["no_gate"], unsafe_load=unsafe_load,
                       baseline=baseline, crosscheck=not opts["no_crosscheck"],
                       output_kinds=parse_output_kinds(opts["output_kind"]), metric=opts["metric"],
                       metric_limits=parse_metric_limits(opts["max_metric_drop"]), budget=budget,
                       repeat=opts["repeat"], pin=opts["pin"], prefer_neural_engine=opts["prefer_neural_engine"],
                       arm64=Arm64Options(enabled=opts["arm64"], samples=opts["arm64_samples"]), **kwargs)


def _refuse_old_gate_spellings(opts: dict) -> None:
    """--max-drop QUANT=PP and --min-agreement QUANT=X were gate overrides; --gate is their one name now."""
    from convert.errors import UsageError

    for value in opts["max_drop"]:
        if "=" in value:
            quant, _, num = value.partition("=")
            raise UsageError(f"--max-drop {value}: a gate override is now spelled --gate {quant}.max_drop={num} "
                             "(--max-drop PP is the accuracy budget)")
    for value in opts["min_agreement"]:
        quant, _, num = value.partition("=")
        raise UsageError(f"--min-agreement {value}: now spelled --gate {quant}.min_agreement={num}")


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
        reasons = report["gate"]["reasons"]
        for name, reason in reasons.items():  # every failing artifact with its reason, not just the first
            click.echo(f"FAILED {name}: {reason}")
        click.echo(f"Error: gate failed for {len(reasons)} artifact(s): "
                   + " | ".join(f"{n}: {r}" for n, r in reasons.items()), err=True)
        sys.exit(1)


bench_options = [
    click.option("--threads", default=None, help="Comma list of thread counts for latency (default: 1 and all cores)."),
    click.option("--max-drop", multiple=True, metavar="PP",
                 help="Accuracy budget in percentage points (default 1): the recommended artifact must lose at most "
                      "this much on every labelled classification output, whatever its gate row allows."),
    click.option("--min-sqnr", multiple=True, metavar="DB|OUTPUT=DB",
                 help="Budget for outputs without labels: SQNR floor against Keras, for every output or one "
                      "(repeatable)."),
    click.option("--gate", multiple=True, metavar="QUANT.FIELD=X",
                 help="Override one gate limit, e.g. int8.max_drop=0.5, int8.min_agreement=0.99, int8.min_sqnr=30, "
                      "int8.max_rel_error=0.05, int8.min_cosine=0.99 (repeatable)."),
    click.option("--min-agreement", multiple=True, hidden=True),  # old spelling: refused with the new one
    click.option("--output-kind", multiple=True, metavar="NAME=KIND",
                 help="Judge output NAME as classification, regression or embedding (default: inferred from its "
                      "last activation)."),
    click.option("--metric", default=None, metavar="MODULE:FUNCTION",
                 help="Your own task metric, computed for the reference and every artifact. Runs your code: "
                      "only when named here."),
    click.option("--max-metric-drop", multiple=True, metavar="NAME=X",
                 help="Fail an artifact whose --metric NAME is worse than the reference's by more than X "
                      "(names starting with loss/error are lower-is-better)."),
    click.option("--no-gate", is_flag=True, help="Report only; exit 0 even when an artifact fails."),
    click.option("--runs", type=click.IntRange(min=2), default=50, show_default=True, help="Minimum timed runs per latency."),
    click.option("--repeat", type=click.IntRange(min=1), default=3, show_default=True,
                 help="Fresh processes per artifact and thread count, interleaved across artifacts; the p50 "
                      "interval and the baseline's significance test come from them."),
    click.option("--pin/--no-pin", default=False, show_default=True,
                 help="Keep each measuring process to one CPU per thread (os.sched_setaffinity)."),
    click.option("--no-crosscheck", is_flag=True,
                 help="Skip timing each .tflite again with Google's benchmark_litert_model.py (faster)."),
    click.option("--arm64/--no-arm64", default=True, show_default=True,
                 help="Run every .tflite again on LiteRT's ARM64 build under emulation (numerics only, needs "
                      "`mobilepack arm64 setup`; skipped with a note when missing), e.g. --no-arm64 to save time."),
    click.option("--arm64-samples", type=click.IntRange(min=1), default=64, show_default=True, metavar="N",
                 help="Inputs the emulated ARM64 pass runs (the first N), e.g. --arm64-samples 16."),
    click.option("--prefer-neural-engine/--smallest-ios", default=True, show_default=True,
                 help="iOS recommendation: an artifact that can use the Neural Engine before a smaller one that "
                      "cannot (a float32-compute ML Program), or just the smallest, e.g. --smallest-ios."),
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
@click.option("--custom-objects", default=None, metavar="MODULE:NAME[,...]",
              help="Custom layers / subclassed models the reference model needs, as for convert.")
@click.option("--baseline", type=click.Path(path_type=Path), default=None,
              help="A previous report.json: exit 1 if an artifact lost accuracy, grew or slowed beyond the limits.")
@click.option("--junit", type=click.Path(path_type=Path), default=None, help="Write each gate as a JUnit test case.")
@click.option("--executor", default="local", show_default=True, metavar="local|ray|ray://HOST:PORT",
              help="Where accuracy is evaluated: this process, a local Ray runtime, or a Ray cluster (`ray` joins "
                   "RAY_ADDRESS when set); needs pip install 'mobilepack[ray]'. Latency stays here, one artifact "
                   "at a time. E.g. --executor ray://head-node:10001")
@click.option("--eval-workers", type=int, default=None, metavar="N",
              help="Ray workers evaluating shards (default: one per CPU of the cluster), e.g. --eval-workers 2.")
@click.option("--device-results", type=click.Path(path_type=Path), default=None, metavar="DIR",
              help="benchmark_model logs from a phone (the folder `mobilepack device-bench`'s script fills): a "
                   "device block per .tflite row, e.g. --device-results device-results.")
@command_options
def bench_cmd(dist, data, unsafe_load, custom_objects, baseline, junit, device_results, ui, **options):
    """Benchmark every artifact in DIST against the Keras reference; gate every output by its kind.

    Exit code 1 when an artifact fails its threshold (unless --no-gate) or, with
    --baseline, regressed against the old report.

    Example:

        mobilepack bench dist --data digits --threads 1,2 --gate int8.max_drop=0.5 --junit bench.xml

    A two-headed model, its box head judged as regression, gated on your own metric:

        mobilepack bench dist --data val.npz --metric my_metrics:box_iou --max-metric-drop box_iou=0.02
    """
    from benchmarks.bench import run_bench
    from benchmarks.junit import check_junit_path
    from train.loading import custom_objects_scope

    if junit:
        check_junit_path(junit)
    from benchmarks.executor import parse_executor

    executor = parse_executor(options.pop("executor"), options.pop("eval_workers"))  # a bad value: before any work
    config = replace(_bench_config({**options, "data": data}, unsafe_load, dist, baseline),
                     device_results=device_results, executor=executor)
    with custom_objects_scope(_split_list(custom_objects)):  # the reference model is loaded inside
        report = run_bench(dist, config, log=ui.log, progress=ui)
    _finish_bench(report, dist, ui, junit)


# Two repetitions keep `make demo` under 3 minutes on 2 cores (three measured 180 s); bench's default is 3.
@cli.command("demo", context_settings={"default_map": {"repeat": 2}})
@click.option("--out", type=click.Path(path_type=Path), default=Path("dist"), show_default=True)
@click.option("--run-dir", type=click.Path(path_type=Path), default=Path("runs/demo"), show_default=True)
@click.option("--epochs", type=int, default=40, show_default=True)
@click.option("--img-size", type=int, default=32, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@_apply(bench_options)
@command_options
def demo_cmd(out, run_dir, epochs, img_size, seed, ui, **options):
    """Train on digits, convert to every TFLite and Core ML variant, benchmark, and write the report.

    --max-drop PP, the accuracy budget, also makes the conversion budgeted: one artifact per
    format, the most compressed within PP (without it, every variant, recommended within 1 pp).

    Example:

        mobilepack demo --out dist --max-drop 0.5
    """
    from convert.api import ConvertConfig
    from mobilepack.pipeline import Demo, run_demo
    from train.trainer import TrainConfig

    bench = _bench_config({**options, "data": "digits"})
    every = ConvertConfig(targets=("tflite", "coreml"), coreml_formats=("mlprogram", "neuralnetwork"), seed=seed,
                          max_drop_pp=_budget(options["max_drop"]))
    demo = Demo(out, run_dir, TrainConfig(epochs=epochs, img_size=img_size, seed=seed), every, bench)
    report = run_demo(demo, log=ui.log, progress=ui, verbose=0 if ui.quiet else 2)
    _finish_bench(report, out, ui)


@cli.command("ship")
@click.argument("dist", type=click.Path(path_type=Path))
@click.option("--android", type=click.Path(path_type=Path), default=None, help="The android_demo app folder.")
@click.option("--ios", type=click.Path(path_type=Path), default=None, help="The ios_demo app folder.")
@click.option("--artifact", "artifacts", multiple=True, metavar="NAME",
              help="Ship this artifact instead of the report's recommendation (once per platform).")
@click.option("--force", is_flag=True, help="Ship an artifact even though its gate failed.")
@click.option("--samples", type=click.IntRange(min=0), default=10, show_default=True,
              help="Test-split images bundled as the app's samples, at their original size with the contract's "
                   "pixels for the app's launch check. Example: --samples 20")
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
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="TCP port; 0 takes a free one and prints it, e.g. --port 0.")
@click.option("--workers", type=click.IntRange(min=1), default=4, show_default=True,
              help="Worker threads of the waitress server (each keeps its own interpreters).")
@click.option("--max-pixels", type=int, default=None, metavar="N",
              help="Largest image decoded, in pixels (default 4194304 = 2048x2048); larger get 413, "
                   "e.g. --max-pixels 12000000 for 12-megapixel photos.")
@command_options
def serve_cmd(dist, artifact, host, port, workers, max_pixels, ui):
    """Serve DIST's .tflite artifacts over HTTP: /predict, /healthz, /v1/models, /openapi.json and a test page.

    POST /predict takes JSON {"input": [...]} in the model's input shape or a multipart image
    upload (field 'image', preprocessed as the benchmark does); ?artifact=NAME picks the artifact.
    The artifacts' bytes are read and sha256-checked once at start and served from memory.

    Example:

        mobilepack serve dist --port 8000 --workers 4
    """
    from mobilepack.serve import serve

    serve(dist, artifact, host, port, workers, log=click.echo, max_pixels=max_pixels)


def _budget(values) -> float | None:
    """--max-drop PP: one accuracy budget in percentage points, or None when not given."""
    from convert.errors import UsageError

    if len(values) > 1:
        raise UsageError(f"--max-drop given {len(values)} budgets ({', '.join(values)}); give one number")
    if not values:
        return None
    try:
        value = float(values[0])
    except ValueError:
        raise UsageError(f"--max-drop {values[0]!r}: not a number of percentage points; e.g. --max-drop 0.5") from None
    if not value > 0:
        raise UsageError(f"--max-drop {values[0]}: the accuracy budget must be greater than 0, e.g. --max-drop 0.5")
    return value


from .cli_arm64 import arm64_group, device_bench_cmd  # noqa: E402  (they take command_options from this module)

cli.add_command(arm64_group)
cli.add_command(device_bench_cmd)


def main() -> None:
    cli(prog_name="mobilepack")


def convert_main() -> None:
    convert_cmd(prog_name="python -m convert")
