"""Latency in the protocol of LiteRT's benchmark_model: init, first, warm-up, timed runs.

Only invoke() is timed, as benchmark_model does; inputs are set once before.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class LatencyProtocol:
    min_runs: int = 50
    min_seconds: float = 1.0
    max_seconds: float = 60.0
    warmup_runs: int = 1
    warmup_seconds: float = 0.5


@dataclass(frozen=True)
class LatencyStats:
    threads: int | None
    init: float
    first: float
    warmup_runs: int
    runs: int
    mean: float
    std: float
    min: float
    max: float
    p5: float
    p50: float
    p90: float
    p95: float
    p99: float
    quantiles: list  # p0, p5, ..., p100 of the timed runs: the distribution, for plots
    samples: list  # p0, p1, ..., p100 of the timed runs: what repetitions are pooled and compared on
    cpu_p50: float | None = None  # median CPU time per run (1-thread runs): blind to time spent descheduled

    def to_dict(self) -> dict:
        return asdict(self)


def time_calls(call: Callable[[], object], protocol: LatencyProtocol,
               cpu: bool = False) -> tuple[float, int, np.ndarray, np.ndarray | None]:
    """first (ms), warm-up count, the timed runs (ms) and, with `cpu`, each run's process CPU time (ms).

    Runs continue until both min_runs and min_seconds are reached, as benchmark_model does, so a small
    model gets as many runs as fit in the minimum wall time.
    """
    t0 = time.perf_counter()
    call()
    first = (time.perf_counter() - t0) * 1e3
    warm, t_end = 0, time.perf_counter() + protocol.warmup_seconds
    while warm < protocol.warmup_runs or time.perf_counter() < t_end:
        call()
        warm += 1
    times: list[float] = []
    cpu_times: list[int] = []
    start = time.perf_counter()
    while len(times) < protocol.min_runs or time.perf_counter() - start < protocol.min_seconds:
        c0 = time.process_time_ns() if cpu else 0
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
        if cpu:
            cpu_times.append(time.process_time_ns() - c0)
        if time.perf_counter() - start > protocol.max_seconds and len(times) >= 2:
            break
    return first, warm, np.asarray(times) * 1e3, (np.asarray(cpu_times) / 1e6 if cpu else None)


def summarize(threads: int | None, init: float, first: float, warm: int, ms: np.ndarray,
              cpu_ms: np.ndarray | None = None) -> LatencyStats:
    return LatencyStats(
        threads=threads, init=round(init, 4), first=round(first, 4), warmup_runs=warm, runs=len(ms),
        mean=float(ms.mean()), std=float(ms.std()), min=float(ms.min()), max=float(ms.max()),
        p5=float(np.percentile(ms, 5)), p50=float(np.percentile(ms, 50)), p90=float(np.percentile(ms, 90)),
        p95=float(np.percentile(ms, 95)), p99=float(np.percentile(ms, 99)),
        quantiles=[float(q) for q in np.percentile(ms, np.arange(0, 101, 5))],
        samples=[float(q) for q in np.percentile(ms, np.arange(0, 101))],
        cpu_p50=float(np.median(cpu_ms)) if cpu_ms is not None and len(cpu_ms) else None,
    )


def litert_latency(path, inputs: list[np.ndarray], threads: int, protocol: LatencyProtocol,
                   input_names: list[str] | None = None) -> LatencyStats:
    """Batch-1 latency of a .tflite file with a fresh interpreter at `threads`."""
    from benchmarks.runners import LiteRTRunner

    t0 = time.perf_counter()
    runner = LiteRTRunner(path, num_threads=threads, input_names=input_names)
    runner.set_inputs([x[:1] for x in inputs])  # includes allocate_tensors, as benchmark_model's init
    init = (time.perf_counter() - t0) * 1e3
    # CPU time only means "this run's work" when one thread does it all.
    first, warm, ms, cpu_ms = time_calls(runner.interpreter.invoke, protocol, cpu=threads == 1)
    return summarize(threads, init, first, warm, ms, cpu_ms)


def runner_latency(runner, inputs: list[np.ndarray], protocol: LatencyProtocol) -> LatencyStats:
    """Batch-1 latency of any runner's predict() (Keras, Core ML, the Core ML evaluator)."""
    one = [x[:1] for x in inputs]
    t0 = time.perf_counter()
    runner.predict(one)  # traces the tf.function
    init = (time.perf_counter() - t0) * 1e3
    first, warm, ms, _ = time_calls(lambda: runner.predict(one), protocol)
    return summarize(None, init, first, warm, ms)
