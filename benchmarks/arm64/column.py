"""The ARM64 column: every .tflite run by LiteRT's aarch64 build on an emulated Cortex-A76.

Numerics only. The emulator's speed says nothing about a phone's, so no time measured here is
ever reported as a latency. One emulated process runs every artifact (its start-up, ~2-6 s, is
paid once per bench). Inputs go to it quantized by the host, as .npy files keyed by tensor
index, and raw outputs come back, so integer outputs are compared bit for bit with the host's
run of the same artifact, over the same batches.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.parity import compare
from benchmarks.arm64.runtime import CPU_MODEL, QEMU, default_home, qemu_command, read_stamp, runtime_dir
from benchmarks.errors import last_stderr_line
from benchmarks.runners import LiteRTRunner, dequantize, quantize

CPU_LABEL = "Cortex-A76 (emulated)"
CHILD = Path(__file__).with_name("child.py")
TIMEOUT_S = 3600


@dataclass(frozen=True)
class Arm64Options:
    enabled: bool = True
    samples: int = 64  # the first N evaluation inputs: bounds the emulator's cost
    home: Path | None = None  # the setup's cache folder; None: default_home()


def unavailable(options: Arm64Options) -> str | None:
    """Why the ARM64 column cannot be computed (one line with the fix), or None when it can."""
    if not options.enabled:
        return "ARM64 column skipped (--no-arm64)"
    home = Path(options.home or default_home())
    if read_stamp(home) is None:
        state = "was interrupted" if (home / "runtime.partial").exists() else "is missing or outdated"
        return (f"ARM64 column skipped: the emulated runtime in {home} {state}; "
                "run `mobilepack arm64 setup` (or `make test`) to add it")
    if shutil.which(QEMU) is None:
        return f"ARM64 column skipped: {QEMU} not found; install it with `apt-get install qemu-user-static`"
    return None


@dataclass(frozen=True)
class Arm64Data:
    """What the emulated runs are fed and compared with: the bench's inputs and the Keras outputs on them."""

    inputs: list[np.ndarray]  # one array per model input, batch first
    reference: list[np.ndarray]  # the Keras outputs, in Keras order
    specs: list  # benchmarks.parity.outputs.OutputSpec per output
    input_names: list[str]
    batch_size: int


def arm64_pass(artifacts: list[tuple[str, Path]], data: Arm64Data, options: Arm64Options) -> tuple[dict, dict, dict]:
    """(the report's `arm64` summary, {artifact name: its row's `arm64` block}, {artifact name: its ARM64
    outputs, dequantized, in Keras order}) for the .tflite artifacts."""
    started = time.perf_counter()
    inputs, batch_size = data.inputs, data.batch_size
    n = min(options.samples, len(inputs[0]))
    summary = {"enabled": options.enabled, "cpu": CPU_LABEL, "qemu_cpu": CPU_MODEL, "samples": n, "note": None,
               "status": "measured"}
    note = unavailable(options) if artifacts else "no .tflite artifact"
    if note:
        return {**summary, "status": "skipped", "note": note}, {}, {}
    sub = [x[:n] for x in inputs]
    with tempfile.TemporaryDirectory(prefix="mobilepack-arm64-") as tmp:
        jobs, host = [], {}
        for name, path in artifacts:
            runner = LiteRTRunner(path, num_threads=1, input_names=data.input_names)
            host[name] = (runner, _host_raw(runner, sub, batch_size))
            jobs.append(_job(name, path, runner, sub, Path(tmp), batch_size))
        child = time.perf_counter()
        results, error = _run_child(jobs, Path(tmp), Path(options.home or default_home()))
        summary["emulation_seconds"] = round(time.perf_counter() - child, 2)  # a cost of bench, not a latency
        if not error and results.get("machine") != "aarch64":
            error = f"the emulated python reports machine {results.get('machine')!r}, not aarch64"
        if error:
            return {**summary, "status": "failed", "note": f"ARM64 column skipped: {error}"}, {}, {}
        summary["machine"] = results["machine"]
        outputs = {name: _arm_outputs(results["jobs"][name], host[name][0]) for name, _ in artifacts}
    blocks = {name: _block(outputs[name], host[name], data, n, results["jobs"][name].get("error"))
              for name, _ in artifacts}
    summary["pass_seconds"] = round(time.perf_counter() - started, 2)  # what it added to bench, host runs included
    return summary, blocks, {name: [a for _, a in out] for name, out in outputs.items() if out is not None}


def _arm_outputs(result: dict, runner: LiteRTRunner) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """(raw, dequantized) ARM64 outputs in Keras order, read before the temporary folder goes."""
    if "error" in result:
        return None
    raw = [np.load(result["outputs"][str(d["index"])], allow_pickle=False) for d in runner.outputs]
    return [(r, dequantize(r, d)) for r, d in zip(raw, runner.outputs)]


def _host_raw(runner: LiteRTRunner, inputs: list[np.ndarray], batch_size: int) -> list[np.ndarray]:
    """The host's raw output tensors (before dequantization), batched as the emulated run is."""
    chunks = []
    for start in range(0, len(inputs[0]), batch_size):
        runner.set_inputs([x[start:start + batch_size] for x in inputs])
        runner.interpreter.invoke()
        chunks.append([runner.interpreter.get_tensor(d["index"]).copy() for d in runner.outputs])
    return [np.concatenate([c[k] for c in chunks]) for k in range(len(runner.outputs))]


def _job(name: str, path: Path, runner: LiteRTRunner, inputs: list[np.ndarray], tmp: Path, batch_size: int) -> dict:
    folder = tmp / f"job{len(list(tmp.glob('job*')))}"
    folder.mkdir()
    files = {}
    for d, x in zip(runner.inputs, inputs):
        files[str(d["index"])] = str(folder / f"in_{d['index']}.npy")
        np.save(files[str(d["index"])], quantize(x, d))
    return {"name": name, "model": str(Path(path).resolve()), "inputs": files, "threads": 1, "batch": batch_size,
            "outputs": [int(d["index"]) for d in runner.outputs], "out": str(folder)}


def _run_child(jobs: list[dict], tmp: Path, home: Path) -> tuple[dict, str | None]:
    request, result = tmp / "request.json", tmp / "result.json"
    request.write_text(json.dumps({"jobs": jobs, "result": str(result)}))
    cmd, env = qemu_command(runtime_dir(home), shutil.which(QEMU) or QEMU)
    try:
        proc = subprocess.run([*cmd, str(CHILD), str(request)], env=env, capture_output=True, text=True,
                              timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {}, f"the emulated run took over {TIMEOUT_S} s; lower --arm64-samples"
    except OSError as exc:
        return {}, f"the emulator did not start ({exc.strerror}); run `mobilepack arm64 setup --force`"
    if proc.returncode != 0 or not result.is_file():
        return {}, (f"the emulated run failed (exit {proc.returncode}: {last_stderr_line(proc.stderr)}); "
                    "run `mobilepack arm64 setup --force`")
    return json.loads(result.read_text()), None


def _block(arm_out, host: tuple[LiteRTRunner, list[np.ndarray]], data: Arm64Data, n: int, error: str | None) -> dict:
    """One row's figures: the emulated ARM64 run against the host's run (its runner and raw outputs) of the same
    file, and against Keras."""
    (runner, host_raw), ref_out, specs = host, data.reference, data.specs
    if arm_out is None:
        return {"cpu": CPU_LABEL, "samples": n, "error": error, "outputs": []}
    outputs = []
    for spec, d, raw, (arm_raw, arm) in zip(specs, runner.outputs, host_raw, arm_out):
        host, ref = dequantize(raw, d), ref_out[spec.index][:n]
        classify = spec.kind == "classification"
        outputs.append({
            "name": spec.name, "dtype": np.dtype(d["dtype"]).name, "integer": np.dtype(d["dtype"]).kind in "iu",
            "elements": int(arm_raw.size), "bit_identical": int(np.sum(arm_raw == raw)),
            "agreement_vs_host": compare.agreement(compare.top1(arm), compare.top1(host)) if classify else None,
            "max_abs_error_vs_host": compare.max_abs_error(arm, host),
            "agreement_vs_reference": compare.agreement(compare.top1(arm), compare.top1(ref)) if classify else None,
            "max_abs_error_vs_reference": compare.max_abs_error(arm, ref),
        })
    return {"cpu": CPU_LABEL, "samples": n, "error": None, **_headline(outputs), "outputs": outputs}


def _headline(outputs: list[dict]) -> dict:
    """The row's summary over its outputs: the lowest agreement, the largest error, all identical elements."""
    def lowest(key):
        values = [o[key] for o in outputs if o[key] is not None]
        return min(values) if values else None

    elements = sum(o["elements"] for o in outputs)
    return {"agreement_vs_host": lowest("agreement_vs_host"),
            "max_abs_error_vs_host": max(o["max_abs_error_vs_host"] for o in outputs),
            "bit_identical": sum(o["bit_identical"] for o in outputs), "elements": elements,
            "bit_identical_share": sum(o["bit_identical"] for o in outputs) / elements if elements else None,
            "agreement_vs_reference": lowest("agreement_vs_reference"),
            "max_abs_error_vs_reference": max(o["max_abs_error_vs_reference"] for o in outputs)}
