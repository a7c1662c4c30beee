"""The `mobilepack` command. Each command parses, calls one library function, prints.

Library errors (MobilepackError) become one line on stderr and their exit code, and so
does any OSError (the path, what the OS said, what to do; exit 2); --debug shows the
traceback instead.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from pathlib import Path

import click

from mobilepack.cli.common import Command, Group, command_options  # first: it keeps TensorFlow's C++ logs quiet
from mobilepack.cli.apps import serve_cmd, ship_cmd
from mobilepack.cli.arm64 import arm64_group, device_bench_cmd
from mobilepack.cli.bench_options import apply_options, bench_config, bench_options, finish_bench, parse_budget, split_list

EXAMPLE_DATA = "digits"


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
              help="Where --max-drop converts and judges its candidates: this process, or concurrently on a "
                   "local Ray runtime or a Ray cluster, e.g. --max-drop 1 --executor ray.")
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
    from convert.api import ConvertConfig, RuntimeHooks, convert
    from convert.budget import parse_min_sqnr
    from convert.errors import UsageError

    sqnr, sqnr_by_output = parse_min_sqnr(min_sqnr)
    config = ConvertConfig(targets=split_list(target), quantizations=split_list(quant),
                           coreml_formats=split_list(coreml_format), calibration=calibration,
                           calibration_size=calibration_size, int8_output=int8_output, unsafe_load=unsafe_load,
                           custom_objects=split_list(custom_objects), input_shapes=input_shapes,
                           seed=seed, max_drop_pp=max_drop, min_sqnr_db=sqnr, min_sqnr_by_output=sqnr_by_output,
                           ios_target=int(ios_target))
    if validation and not config.budgeted:
        raise UsageError(f"--validation {validation}: it feeds the budget search; add --max-drop PP or --min-sqnr DB")
    from benchmarks.runners import activation_ranges
    from benchmarks.distributed.executor import parse_executor
    from benchmarks.distributed.pool import open_executor

    spec = parse_executor(executor, eval_workers)
    if spec.kind != "local" and not config.budgeted:
        raise UsageError(f"--executor {executor}: it runs the budget search's candidates; add --max-drop PP or "
                         "--min-sqnr DB (an unbudgeted convert evaluates nothing)")
    with open_executor(spec) as pool:  # a cluster is checked before anything converts
        judge = _judge(model, config, validation, output_kind, ui)
        search = None
        if pool.name == "ray" and judge is not None:  # candidates converted and judged on the workers
            from mobilepack.ray_search import RaySearch

            search = RaySearch(judge, pool.workers)
        manifest = convert(model, out, config, log=ui.log, progress=ui,
                           hooks=RuntimeHooks(judge=judge, search=search, activation_ranges=activation_ranges))
    click.echo(f"{out}/manifest.json: {len(manifest.artifacts)} artifact(s)")
    if manifest.failed:  # the others are written; the exit code still says the run is not what was asked
        click.echo(f"{len(manifest.failed)} variant(s) failed to convert:", err=True)
        for reason in dict.fromkeys(f.reason for f in manifest.failed):  # one line per distinct reason
            click.echo(f"  {', '.join(f.name for f in manifest.failed if f.reason == reason)}: {reason}", err=True)
        raise SystemExit(1)


cli.add_command(convert_cmd)


def _judge(model, config, validation, output_kinds, ui):
    if not config.budgeted:
        return None
    from benchmarks.parity.outputs import parse_output_kinds
    from convert.shapes import load_fixed
    from mobilepack.judge import validation_judge

    load = functools.partial(load_fixed, unsafe=config.unsafe_load, custom_objects=config.custom_objects,
                             input_shapes=config.input_shapes)
    return validation_judge(model, config.budget(), ui.log, validation=validation,
                            output_kinds=parse_output_kinds(output_kinds), load=load)


@cli.command("bench")
@click.argument("dist", type=click.Path(path_type=Path))
@click.option("--data", default=None, help="digits, an image folder, or FILE.npz (x, optional y). Default: the training data's test split.")
@apply_options(bench_options)
@click.option("--unsafe-load", is_flag=True, help="Allow Lambda layers in the reference model.")
@click.option("--custom-objects", default=None, metavar="MODULE:NAME[,...]",
              help="Custom layers / subclassed models the reference model needs, as for convert.")
@click.option("--baseline", type=click.Path(path_type=Path), default=None,
              help="A previous report.json: exit 1 if an artifact lost accuracy, grew or slowed beyond the limits.")
@click.option("--junit", type=click.Path(path_type=Path), default=None, help="Write each gate as a JUnit test case.")
@click.option("--executor", default="local", show_default=True, metavar="local|ray|ray://HOST:PORT",
              help="Where accuracy is evaluated: this process, a local Ray runtime, or a Ray cluster (`ray` joins "
                   "RAY_ADDRESS when set); needs pip install 'mobilepack[ray]'. Latency stays here (or on "
                   "--latency-on's node), one artifact at a time. E.g. --executor ray://head-node:10001")
@click.option("--eval-workers", type=int, default=None, metavar="N",
              help="Ray workers evaluating shards (default: one per CPU of the cluster), e.g. --eval-workers 2.")
@click.option("--latency-on", default=None, metavar="NODE",
              help="Measure latency on this Ray node instead of here, one artifact at a time, with every CPU of it "
                   "reserved: its IP, node ID (or a unique prefix) or a label key=value from `ray start --labels`. "
                   "Needs --executor ray. E.g. --latency-on device=pixel-host")
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
    from benchmarks.report.junit import check_junit_path
    from train.loading import custom_objects_scope

    if junit:
        check_junit_path(junit)
    from benchmarks.distributed.executor import parse_executor

    executor = parse_executor(options.pop("executor"), options.pop("eval_workers"))  # a bad value: before any work
    latency_on = options.pop("latency_on")
    config = replace(bench_config({**options, "data": data}, unsafe_load, dist, baseline), device_results=device_results,
                     executor=executor, latency_on=latency_on, custom_objects=split_list(custom_objects))
    with custom_objects_scope(split_list(custom_objects)):  # the reference model is loaded inside
        report = run_bench(dist, config, log=ui.log, progress=ui)
    finish_bench(report, dist, ui, junit)


# Two repetitions keep `make demo` under 3 minutes on 2 cores (three measured 180 s); bench's default is 3.
@cli.command("demo", context_settings={"default_map": {"repeat": 2}})
@click.option("--out", type=click.Path(path_type=Path), default=Path("dist"), show_default=True)
@click.option("--run-dir", type=click.Path(path_type=Path), default=Path("runs/demo"), show_default=True)
@click.option("--epochs", type=int, default=40, show_default=True)
@click.option("--img-size", type=int, default=32, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@apply_options(bench_options)
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

    bench = bench_config({**options, "data": "digits"})
    every = ConvertConfig(targets=("tflite", "coreml"), coreml_formats=("mlprogram", "neuralnetwork"), seed=seed,
                          max_drop_pp=parse_budget(options["max_drop"]))
    demo = Demo(out, run_dir, TrainConfig(epochs=epochs, img_size=img_size, seed=seed), every, bench)
    report = run_demo(demo, log=ui.log, progress=ui, verbose=0 if ui.quiet else 2)
    finish_bench(report, out, ui)
    if report.get("not_converted"):  # the rest was converted and benched; the run is still not what was asked
        names = ", ".join(f["name"] for f in report["not_converted"])
        click.echo(f"Error: {len(report['not_converted'])} variant(s) failed to convert ({names}); their reasons "
                   f"are in {out}/report.md", err=True)
        raise SystemExit(1)


for _command in (ship_cmd, serve_cmd, arm64_group, device_bench_cmd):
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="mobilepack")


def convert_main() -> None:
    convert_cmd(prog_name="python -m convert")
