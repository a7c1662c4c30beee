"""`bench --device-results DIR`: benchmark_model logs from a phone, one `device` block per .tflite row.

The folder is what the `mobilepack device-bench` script collects (see script.py). Figures
from the phone stay in their own block, never mixed with the host's. Results for other files than
the dist's (sha256 of what the phone ran differs from the manifest's) are refused, and so is a log
that is not a finished benchmark_model log: one line naming the file and the line.
"""

from __future__ import annotations

import re
from pathlib import Path

from train.errors import DocumentError

from benchmarks.phone.script import log_name

# A line as logcat prints it ("05-30 15:16:44.857  3380  3380 I tflite  : ..."), or with a level prefix.
_PREFIX = re.compile(r"^(?:\d\d-\d\d \d\d:\d\d:\d\d\.\d+\s+\d+\s+\d+\s+[VDIWEF]\s+\S+\s*:\s?|(?:INFO|WARN|WARNING|ERROR): )")
_TIMINGS = re.compile(r"^Inference timings in us: Init: ([\d.]+), First inference: ([\d.]+), "
                      r"Warmup \(avg\): ([\d.e+]+), Inference \(avg\): ([\d.e+]+)\s*$")
_COUNT = re.compile(r"^count=(\d+) first=\d+ curr=\d+ min=\d+ max=\d+ avg=([\d.e+]+) std=(\d+)")
_MEMORY = re.compile(r"^(Peak memory footprint|Memory footprint delta from the start of the tool) \(MB\): "
                     r"init=([\d.]+) overall=([\d.]+)")
_FLAG = re.compile(r"^(Num threads|#threads used for CPU inference|Use gpu|Use NNAPI|Graph): \[(.*)\]")
_NAME = re.compile(r"^(?P<artifact>.+)\.(?:gpu|cpu\.t(?P<threads>\d+))\.log$")


class DeviceResultsError(DocumentError):
    """A --device-results folder is missing, damaged, or for other files than the dist's."""


def parse_log(path: Path) -> dict:
    """One benchmark_model log: init, first, warm-up, mean and std (ms), run count, memory (MB) if reported."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DeviceResultsError(f"{path}: not text (byte {exc.start}); give the log benchmark_model wrote") from None
    found: dict = {"counts": []}
    for number, raw in enumerate(lines, 1):
        line = _PREFIX.sub("", raw.strip())
        if line.startswith("Inference timings in us:"):
            m = _TIMINGS.match(line)
            if not m:
                raise DeviceResultsError(f"{path}:{number}: unreadable timing line {line[:70]!r}; give the log as "
                                         "benchmark_model wrote it, or re-run the device-bench script")
            found["timings"] = [float(v) / 1000 for v in m.groups()]
        elif (m := _COUNT.match(line)):
            found["counts"].append((int(m.group(1)), float(m.group(3)) / 1000))
        elif (m := _MEMORY.match(line)):
            found["memory"] = {"kind": "peak" if m.group(1).startswith("Peak") else "delta",
                               "init_mb": float(m.group(2)), "overall_mb": float(m.group(3))}
        elif (m := _FLAG.match(line)):
            found.setdefault(m.group(1), m.group(2))
    if "timings" not in found:
        raise DeviceResultsError(f"{path}:{len(lines)}: no 'Inference timings in us' line, so not a finished "
                                 "benchmark_model log (cut short, failed, or another tool's); re-run the script")
    init, first, warmup, mean = found["timings"]
    count, std = found["counts"][-1] if found["counts"] else (None, None)  # the last count= line: the timed runs
    threads = found.get("Num threads") or found.get("#threads used for CPU inference")
    return {"init_ms": init, "first_ms": first, "warmup_ms": warmup, "mean_ms": mean, "std_ms": std,
            "count": count, "threads": int(threads) if threads and threads.lstrip("-").isdigit() else None,
            "delegate": _delegate(found, lines), "graph": found.get("Graph"),
            "memory": found.get("memory")}


def _delegate(found: dict, lines: list[str]) -> str:
    """gpu or nnapi when the log says that delegate was applied (its flag, or its 'Explicitly applied' line)."""
    text = "\n".join(lines)
    if found.get("Use gpu") in ("1", "true") or "Explicitly applied GPU delegate" in text:
        return "gpu"
    if found.get("Use NNAPI") in ("1", "true") or "Explicitly applied NNAPI delegate" in text:
        return "nnapi"
    return "cpu"


def _device_info(folder: Path) -> dict:
    path = folder / "device.txt"
    if not path.is_file():
        raise DeviceResultsError(f"{folder}: no device.txt; give the folder the device-bench script wrote "
                                 "(its first argument, default device-results)")
    info = dict(line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines() if "=" in line)
    return {"model": info.get("model") or None, "android": info.get("android") or None, "abi": info.get("abi") or None}


def _check_sha256(folder: Path, artifact, dist: Path) -> None:
    path = folder / f"{artifact.name}.sha256"
    if not path.is_file():
        raise DeviceResultsError(f"{path}: missing, so nothing says which file the phone ran; re-run the "
                                 f"script `mobilepack device-bench {dist}` wrote")
    ran = (path.read_text(encoding="utf-8").split() or [""])[0].lower()
    if ran != artifact.sha256:
        raise DeviceResultsError(f"{path}: the phone ran a file with sha256 {ran[:12] or 'none'}..., but {dist}'s "
                                 f"{artifact.file} is {artifact.sha256[:12]}...: results for other files; re-run "
                                 f"`mobilepack device-bench {dist}` and its script")


def load_device_results(folder: Path, manifest, dist: Path) -> dict:
    """{artifact name: its `device` block} for every .tflite the folder has logs of; refuses what does not fit."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DeviceResultsError(f"--device-results {folder}: no such folder; give the folder the device-bench "
                                 "script wrote")
    device = _device_info(folder)
    tflite = {a.name: a for a in manifest.artifacts if a.target == "tflite"}
    blocks: dict = {}
    for log in sorted(folder.glob("*.log")):
        m = _NAME.match(log.name)
        if not m:
            raise DeviceResultsError(f"{log}: not a name the device-bench script writes (ARTIFACT.cpu.tN.log or "
                                     "ARTIFACT.gpu.log); rename it or remove it")
        artifact = tflite.get(m.group("artifact"))
        if artifact is None:
            raise DeviceResultsError(f"{log}: {dist}'s manifest has no .tflite named {m.group('artifact')!r}; "
                                     "these results are for another dist")
        if artifact.name not in blocks:
            _check_sha256(folder, artifact, dist)
            blocks[artifact.name] = {**device, "sha256": artifact.sha256, "runs": []}
        run = parse_log(log)
        run["log"] = log.name
        blocks[artifact.name]["runs"].append(run)
    if not blocks:
        raise DeviceResultsError(f"{folder}: no benchmark_model logs (*.log); run the device-bench script first")
    return blocks


__all__ = ["DeviceResultsError", "load_device_results", "log_name", "parse_log"]
