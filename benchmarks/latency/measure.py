"""One artifact, one thread count, one fresh process: latency, peak memory and arena size.

The parent (`bench`) writes a request and the batch-1 inputs to a temp dir and
runs `python -m benchmarks.latency.measure REQUEST RESULT`. A fresh process per
measurement means one artifact's caches, thread pool and allocator state cannot
colour another's, and the process's peak memory is that of exactly one artifact. An
"empty" request imports the same runtime and loads nothing: its peak is the
baseline subtracted from every measurement.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from benchmarks.errors import MeasurementError, last_stderr_line
from benchmarks.latency.protocol import LatencyProtocol, litert_latency, runner_latency

CHILD_TIMEOUT_S = 1800


def peak_rss_bytes() -> int:
    """This process's peak resident set size.

    Linux: VmHWM, which belongs to the address space exec created. ru_maxrss is not
    used there: it carries over the parent's peak from before exec, so a child of a
    bench that has TensorFlow loaded would report TensorFlow's memory.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def tflite_arena_bytes(content: bytes) -> int | None:
    """The TFLite memory planner's arena for `content`, read from tensor addresses.

    The Python API does not expose the arena, so it is measured: an interpreter
    without default delegates allocates every non-constant tensor (inputs,
    activations, outputs, kernel scratch) in its arena; constants point into the
    model buffer. The arena is the span of the non-constant tensors, summed over
    separate allocations. XNNPack, used for the latency runs, plans its own
    workspace: that is in the peak RSS, not here.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_content=content,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    model = np.frombuffer(content, np.uint8)
    lo, hi = model.ctypes.data, model.ctypes.data + model.nbytes
    spans = []
    for detail in interp.get_tensor_details():  # tensors with a type: model tensors and kernel scratch
        try:
            view = interp.tensor(detail["index"])()
        except (ValueError, RuntimeError):
            continue  # no data (optional or unallocated tensor)
        if not isinstance(view, np.ndarray):
            continue  # a 0-d tensor comes back as a numpy scalar copy: a few bytes, no address
        start = view.ctypes.data
        if view.nbytes and not lo <= start < hi:
            spans.append((start, start + view.nbytes))
    if not spans:
        return None
    spans.sort()
    total, (cur_start, cur_end) = 0, spans[0]
    for start, end in spans[1:]:
        if start - cur_end > 1 << 20:  # another allocation (persistent arena), not a gap in this one
            total += cur_end - cur_start
            cur_start = start
        cur_end = max(cur_end, end)
    return total + cur_end - cur_start


def _load_inputs(path: str) -> list[np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return [z[f"arr_{i}"] for i in range(len(z.files))]


def _import_runtime(kind: str) -> None:
    if kind == "litert":
        import ai_edge_litert.interpreter  # noqa: F401
    else:
        # The evaluator needs no TensorFlow, but coremltools imports it when installed: 3 of the 4.7 s a
        # process takes to start, and hundreds of MiB of RSS that are not the artifact's.
        sys.modules.setdefault("tensorflow", None)
        from convert.coreml.convert import import_coremltools

        from benchmarks.coreml_reference import MLModel  # noqa: F401
        from benchmarks.coreml_reference.depthwise import load_compiled

        import_coremltools()
        load_compiled()  # LLVM and the compiled depthwise loop: the evaluator's, in the baseline


def pin_cpus(threads: int | None) -> list[int]:
    """The CPUs a measuring process keeps to: the last `threads` this process may use (all for Core ML).

    One CPU per thread means the scheduler cannot move a 1-thread run between cores mid-measurement;
    the last ones, because interrupts and the parent tend to land on CPU 0.
    """
    allowed = sorted(os.sched_getaffinity(0))
    return allowed if threads is None else allowed[-min(threads, len(allowed)):]


def _measure(request: dict, inputs: list[np.ndarray]) -> dict:
    started = time.time()  # when this repetition ran: the report shows they were interleaved
    kind, threads, path = request["kind"], request.get("threads"), Path(request["path"])
    if request.get("cpus"):  # before the runtime starts its thread pool, which inherits the mask
        os.sched_setaffinity(0, request["cpus"])
    protocol = LatencyProtocol(**request["protocol"])
    _import_runtime(kind)
    if kind == "litert":
        arena = tflite_arena_bytes(path.read_bytes())
        stats = litert_latency(path, inputs, threads, protocol, request.get("input_names"))
    else:
        from benchmarks.runners import coreml_runner

        arena, stats = None, runner_latency(coreml_runner(path), inputs, protocol)
    return {"latency": stats.to_dict(), "peak_rss_bytes": peak_rss_bytes(), "arena_bytes": arena, "pid": os.getpid(),
            "started": started}


def child_main(argv: list[str]) -> int:
    request_path, result_path = Path(argv[0]), Path(argv[1])
    request = json.loads(request_path.read_text())
    if request["kind"] == "empty":  # everything a measurement does except loading the artifact
        _import_runtime(request["runtime"])
        from benchmarks import runners  # noqa: F401

        _load_inputs(request["inputs"])
        result = {"peak_rss_bytes": peak_rss_bytes()}
    else:
        result = _measure(request, _load_inputs(request["inputs"]))
    result_path.write_text(json.dumps(result))
    return 0


class FreshProcessMeter:
    """Runs each measurement in its own `python -m benchmarks.latency.measure` process."""

    def __init__(self, inputs: list[np.ndarray], protocol: LatencyProtocol, input_names: list[str] | None = None):
        self._tmp = tempfile.TemporaryDirectory(prefix="mobilepack-measure-")
        self.dir = Path(self._tmp.name)
        self.inputs_path = self.dir / "inputs.npz"
        np.savez(self.inputs_path, *[np.ascontiguousarray(x[:1]) for x in inputs])
        self.inputs, self.protocol = inputs, protocol
        self.input_names = input_names
        self._baselines: dict[str, int] = {}
        self._count = 0

    def close(self) -> None:
        self._tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def baseline_rss(self, runtime: str) -> int:
        """Peak RSS of a process that imports `runtime` and loads nothing (measured once)."""
        if runtime not in self._baselines:
            request = {"kind": "empty", "runtime": runtime, "inputs": str(self.inputs_path)}
            self._baselines[runtime] = self._run(request, "empty process")["peak_rss_bytes"]
        return self._baselines[runtime]

    def measure(self, kind: str, path: Path, threads: int | None, protocol: LatencyProtocol | None = None,
                pin: bool = False) -> dict:
        """Latency stats (with quantiles) plus memory: peak RSS, its baseline, their difference, arena."""
        request = {"kind": kind, "path": str(Path(path).resolve()), "threads": threads,
                   "protocol": asdict(protocol or self.protocol), "inputs": str(self.inputs_path),
                   "input_names": self.input_names, "cpus": pin_cpus(threads) if pin and hasattr(os, "sched_getaffinity") else None}
        result = self._run(request, Path(path).name)
        baseline = self.baseline_rss(kind)
        stats = result["latency"]
        stats["memory"] = {"peak_rss_bytes": result["peak_rss_bytes"], "baseline_rss_bytes": baseline,
                           "rss_delta_bytes": max(0, result["peak_rss_bytes"] - baseline),
                           "arena_bytes": result["arena_bytes"]}
        stats["pid"] = result["pid"]  # the fresh process that measured this entry
        stats["started"] = result["started"]
        stats["cpus"] = request["cpus"]
        return stats

    @property
    def machine(self) -> dict:
        """The machine that measures: this one (node_latency.NodeLatency's is a Ray node)."""
        from benchmarks.latency.machine import machine_info

        return machine_info()

    def reference_latency(self, job) -> dict:
        """The Keras reference's latency, in this process: its runner (job.local_runner) is loaded here already."""
        return runner_latency(job.local_runner, self.inputs, self.protocol).to_dict()

    def tool_median(self, path: Path, ours: dict) -> float:
        """Google's tool on the same file, right after one of ours (benchmarks/latency/crosscheck.py)."""
        from benchmarks.latency.crosscheck import tool_run

        return tool_run(path, ours)

    def _run(self, request: dict, what: str) -> dict:
        self._count += 1
        req, res = self.dir / f"request{self._count}.json", self.dir / f"result{self._count}.json"
        req.write_text(json.dumps(request))
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONWARNINGS="ignore")
        try:
            proc = subprocess.run([sys.executable, "-m", "benchmarks.latency.measure", str(req), str(res)], env=env,
                                  capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, cwd=_project_root())
        except subprocess.TimeoutExpired as exc:
            raise MeasurementError(f"{what}: measurement process ran over {CHILD_TIMEOUT_S} s; "
                                   "lower --runs or check the model") from exc
        if proc.returncode != 0 or not res.is_file():
            raise MeasurementError(f"{what}: measurement process failed (exit {proc.returncode}): "
                                   f"{last_stderr_line(proc.stderr)}")
        return json.loads(res.read_text())


def _project_root() -> str:
    """Where `benchmarks` is importable from, so the child finds the same code as the parent."""
    return str(Path(__file__).resolve().parents[2])


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
