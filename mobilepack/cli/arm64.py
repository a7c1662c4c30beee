"""`mobilepack arm64 setup`: the commands around the phone's own kernels (registered by main.py)."""

from __future__ import annotations

from pathlib import Path

import click

from mobilepack.cli.common import command_options


@click.group("arm64")
def arm64_group():
    """LiteRT's ARM64 build under emulation: what `bench` uses for its ARM64 column.

    Example:

        mobilepack arm64 setup
    """


@arm64_group.command("setup")
@click.option("--home", type=click.Path(path_type=Path), default=None,
              help="Cache folder (default: $MOBILEPACK_ARM64_HOME or ~/.cache/mobilepack/arm64), "
                   "e.g. --home /var/cache/mobilepack-arm64.")
@click.option("--force", is_flag=True, help="Rebuild even when a finished setup is there, e.g. after a mirror change.")
@command_options
def arm64_setup_cmd(home, force, ui):
    """Prepare the emulated ARM64 runtime: aarch64 CPython 3.11 and ai-edge-litert under qemu-aarch64-static.

    Downloads Debian's arm64 python3.11 through a private apt configuration (never
    `dpkg --add-architecture`) and the pinned aarch64 wheels, pins the CPU model
    (Cortex-A76) and ships its /proc/cpuinfo. About a minute and 250 MB; a second run does
    nothing; an interrupted one is detected and redone. Needs qemu-user-static.

    Example:

        mobilepack arm64 setup --home ~/.cache/mobilepack/arm64
    """
    from benchmarks.arm64.runtime import setup

    setup(home, log=ui.log, force=force)


@click.command("device-bench")
@click.argument("dist", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Where to write the script (default: DIST/device-bench.sh), e.g. --out bench-phone.sh.")
@click.option("--threads", default=None, help="Comma list of CPU thread counts (default: bench's, 1 and all cores), "
                                              "e.g. --threads 1,4.")
@click.option("--runs", type=click.IntRange(min=2), default=50, show_default=True, help="Timed runs, as bench's --runs.")
@click.option("--gpu", is_flag=True, help="Also run each .tflite on the GPU delegate (--use_gpu=true).")
@command_options
def device_bench_cmd(dist, out, threads, runs, gpu, ui):
    """Write a script that times DIST's .tflite files on a phone with Google's benchmark_model over adb.

    The script pushes each file, records its sha256 as the phone sees it, runs benchmark_model
    with the same thread and run counts as `bench` (CPU, and the GPU delegate with --gpu) and
    collects the logs in one folder. Bring that folder back with
    `mobilepack bench DIST --device-results DIR`.

    Example:

        mobilepack device-bench dist --threads 1,4 --gpu && BENCHMARK_MODEL=./android_aarch64_benchmark_model sh dist/device-bench.sh results
    """
    from benchmarks.bench import default_threads
    from benchmarks.phone.script import BINARY_URL, write_device_script
    from benchmarks.latency.protocol import LatencyProtocol

    from mobilepack.cli.bench_options import parse_threads

    counts = parse_threads(threads) or default_threads()
    if any(t < 1 for t in counts):
        raise click.BadParameter(f"{threads!r}: give whole numbers >= 1, e.g. --threads 1,4", param_hint="--threads")
    path = write_device_script(dist, out or Path(dist) / "device-bench.sh", counts, runs, LatencyProtocol().warmup_runs,
                               gpu)
    click.echo(f"wrote {path}; download benchmark_model from {BINARY_URL}")
