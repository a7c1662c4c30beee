"""`mobilepack device-bench DIST`: a shell script that times every .tflite on a phone over adb.

It runs Google's `benchmark_model` Android binary (the native one, not the APK) with the thread
counts and run counts `bench` uses, on the CPU (XNNPack) and, when asked, on the GPU delegate.
Everything it collects lands in one folder that `bench --device-results DIR` reads:

    device.txt                   model=..., android=..., abi=...  (getprop)
    ARTIFACT.sha256              sha256sum of the file as pushed to the phone (what it really ran)
    ARTIFACT.cpu.tN.log          benchmark_model's log, N threads, CPU
    ARTIFACT.gpu.log             ... with --use_gpu=true
"""

from __future__ import annotations

import shlex
from pathlib import Path

from convert.manifest import load_manifest, verify_artifacts
from train.fsutil import atomic_write_text

BINARY_URL = ("https://storage.googleapis.com/tensorflow-nightly-public/prod/tensorflow/release/lite/tools/"
              "nightly/latest/android_aarch64_benchmark_model")
DEVICE_DIR = "/data/local/tmp/mobilepack"


def log_name(artifact: str, delegate: str, threads: int | None) -> str:
    return f"{artifact}.gpu.log" if delegate == "gpu" else f"{artifact}.cpu.t{threads}.log"


def device_script(dist: Path, threads: tuple[int, ...], runs: int, warmup_runs: int, gpu: bool) -> str:
    """The script's text for `dist`'s .tflite artifacts (checked against the manifest first)."""
    manifest = load_manifest(dist)
    verify_artifacts(manifest, dist)
    tflite = [a for a in manifest.artifacts if a.target == "tflite"]
    q = shlex.quote
    lines = [
        "#!/bin/sh",
        f"# Written by `mobilepack device-bench {dist}`: times every .tflite of that dist on the phone adb",
        "# sees, with Google's benchmark_model Android binary. Download it (arm64 phones) from",
        f"#   {BINARY_URL}",
        "# then: BENCHMARK_MODEL=./android_aarch64_benchmark_model sh THIS_SCRIPT [RESULTS_DIR]",
        "# and bring the results back: mobilepack bench DIST --device-results RESULTS_DIR",
        "set -eu",
        f"DIST=${{DIST:-{q(str(Path(dist).resolve()))}}}  # the dist whose files are pushed (override: DIST=...)",
        'BIN=${BENCHMARK_MODEL:?set BENCHMARK_MODEL to the downloaded android_aarch64_benchmark_model}',
        'OUT=${1:-device-results}',
        f"DEV={DEVICE_DIR}",
        'mkdir -p "$OUT"',
        "adb get-state >/dev/null",
        'adb shell mkdir -p "$DEV"',
        'adb push "$BIN" "$DEV/benchmark_model" >/dev/null',
        'adb shell chmod 755 "$DEV/benchmark_model"',
        '{ echo "model=$(adb shell getprop ro.product.model | tr -d \'\\r\')"',
        '  echo "android=$(adb shell getprop ro.build.version.release | tr -d \'\\r\')"',
        '  echo "abi=$(adb shell getprop ro.product.cpu.abi | tr -d \'\\r\')"; } > "$OUT/device.txt"',
    ]
    common = f"--num_runs={runs} --warmup_runs={warmup_runs}"
    for a in tflite:
        name, remote = a.name, f"$DEV/{a.file}"
        lines += [f"# {name}: sha256 {a.sha256}",
                  f'adb push "$DIST/{a.file}" "{remote}" >/dev/null',
                  f'adb shell sha256sum "{remote}" > "$OUT/{q(name)}.sha256"']
        for t in threads:
            lines.append(f'adb shell "$DEV/benchmark_model" --graph="{remote}" --num_threads={t} {common} '
                         f'> "$OUT/{log_name(name, "cpu", t)}" 2>&1')
        if gpu:
            lines.append(f'adb shell "$DEV/benchmark_model" --graph="{remote}" --use_gpu=true {common} '
                         f'> "$OUT/{log_name(name, "gpu", None)}" 2>&1 || echo "{name}: GPU delegate failed, '
                         f'see $OUT/{log_name(name, "gpu", None)}"')
        lines.append(f'adb shell rm -f "{remote}"')
    lines += ['adb shell rm -f "$DEV/benchmark_model"',
              'echo "done: mobilepack bench DIST --device-results $OUT"', ""]
    return "\n".join(lines)


def write_device_script(dist: Path, out: Path, threads: tuple[int, ...], runs: int, warmup_runs: int,
                        gpu: bool) -> Path:
    """Write the script (atomically, executable) to `out`; returns it."""
    out = Path(out)
    atomic_write_text(out, device_script(Path(dist), threads, runs, warmup_runs, gpu))
    out.chmod(0o755)
    return out
