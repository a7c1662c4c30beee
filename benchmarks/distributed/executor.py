"""Where accuracy evaluation runs: in this process (`local`) or spread over a Ray cluster (`ray`).

Only evaluation is spread: every artifact and the Keras reference predict the whole input set, and
bench computes every figure from those outputs here, exactly as a local run does. Latency is never
measured through an executor (benchmarks/latency/measure.py times one artifact at a time in a fresh process).

Outputs are bit for bit those of a local run because each shard starts on a multiple of
--batch-size: every worker calls the runtime with exactly the batches a local run would.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from benchmarks.errors import ExecutorError

RAY_EXTRA = "pip install 'mobilepack[ray]'"
EXECUTOR_HELP_EXAMPLE = "e.g. --executor local, --executor ray, --executor ray://head-node:10001"


@dataclass(frozen=True)
class ExecutorSpec:
    """What --executor asked for: `local`, a local Ray runtime, or an existing cluster's address."""

    kind: str  # "local" or "ray"
    address: str | None = None  # None: start a local Ray runtime
    workers: int | None = None  # None: one per CPU the cluster has
    shard_size: int | None = None  # inputs per shard; None: chosen from the input count and the workers

    def describe(self) -> str:
        return self.kind if self.address is None else self.address


def parse_executor(value: str | None, workers: int | None = None, environ: dict | None = None) -> ExecutorSpec:
    """--executor local | ray | ray://HOST:PORT; `ray` joins the cluster in RAY_ADDRESS when that is set."""
    import os

    environ = os.environ if environ is None else environ
    value = (value or "local").strip()
    if workers is not None and workers < 1:
        raise ExecutorError(f"--eval-workers {workers}: give a whole number >= 1, e.g. --eval-workers 2")
    if value == "local":
        if workers is not None:
            raise ExecutorError("--eval-workers needs --executor ray (a local run evaluates in this process)")
        return ExecutorSpec("local")
    if value == "ray":
        return ExecutorSpec("ray", environ.get("RAY_ADDRESS") or None, workers)
    if value.startswith("ray://"):
        host, _, port = value[len("ray://"):].rpartition(":")
        if not host or not port.isdigit():
            raise ExecutorError(f"--executor {value}: a cluster address is ray://HOST:PORT, e.g. ray://head-node:10001")
        return ExecutorSpec("ray", value, workers)
    raise ExecutorError(f"--executor {value!r}: unknown executor; valid: local, ray, ray://HOST:PORT "
                        f"({EXECUTOR_HELP_EXAMPLE})")


@dataclass
class EvalJob:
    """One model to run over every input: the Keras reference or an artifact."""

    name: str
    target: str  # "keras", "tflite" or "coreml"
    path: Path
    sha256: str  # as the manifest records it (train.loading.sha256_file)
    num_threads: int | None = None  # LiteRT threads: the same on every worker as in a local run
    input_names: list[str] | None = None
    unsafe_load: bool = False
    custom_objects: tuple[str, ...] = ()  # --custom-objects specs the Keras reference needs (user code: only if named)
    local_runner: object = field(default=None, repr=False)  # a runner already built here (local only)


@dataclass
class EvalResult:
    runtime: str
    outputs: list[np.ndarray]
    precision: str | None = None  # the Core ML reference evaluator's arithmetic ("gpu/ane" or "cpu"), else None


Progress = Callable[[str, int, int], None]


def build_runner(job: EvalJob, path: Path | None = None, content: bytes | None = None):
    """The runner for a job, from its file (or, for a .tflite, the bytes already in memory)."""
    from benchmarks.runners import KerasRunner, LiteRTRunner, coreml_runner

    if job.local_runner is not None:
        return job.local_runner
    if job.target == "keras":
        from train.loading import load_keras_model

        return KerasRunner(load_keras_model(path or job.path, unsafe=job.unsafe_load, custom_objects=job.custom_objects))
    if job.target == "tflite":
        return LiteRTRunner(None if content is not None else (path or job.path), num_threads=job.num_threads,
                            input_names=job.input_names, content=content)
    return coreml_runner(path or job.path)


def shard_bounds(count: int, batch_size: int, workers: int, shard_size: int | None = None) -> list[tuple[int, int]]:
    """Input ranges, each starting on a multiple of batch_size (so each worker feeds a local run's batches).

    About four shards per worker and artifact: enough to balance a slow worker, few enough that the
    per-shard overhead stays small next to the shard's work.
    """
    if shard_size is None:
        shard_size = math.ceil(count / (4 * max(1, workers)))
    size = max(batch_size, math.ceil(shard_size / batch_size) * batch_size)
    return [(start, min(start + size, count)) for start in range(0, count, size)]


class LocalExecutor:
    """Today's behaviour: each model in turn in this process, each runtime using all cores itself."""

    name = "local"
    address = None
    workers = 1
    shards = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def close(self) -> None:
        pass

    def evaluate(self, jobs: list[EvalJob], inputs: list[np.ndarray], batch_size: int,
                 progress: Progress | None = None) -> list[EvalResult]:
        from benchmarks.runners import predict_batched

        results = []
        for job in jobs:
            runner = build_runner(job)
            results.append(EvalResult(runner.runtime, predict_batched(runner, inputs, batch_size, progress, job.name),
                                      getattr(runner, "precision", None)))
            self.shards += 1
        return results


def executor_record(executor, wall_s: float) -> dict:
    """What report.json says about where evaluation ran (never compared between runs)."""
    return {"name": executor.name, "address": executor.address, "workers": executor.workers,
            "shards": executor.shards, "evaluation_wall_s": round(wall_s, 3)}


def timed_evaluate(executor, jobs, inputs, batch_size, progress) -> tuple[list[EvalResult], float]:
    start = time.perf_counter()
    results = executor.evaluate(jobs, inputs, batch_size, progress)
    return results, time.perf_counter() - start
