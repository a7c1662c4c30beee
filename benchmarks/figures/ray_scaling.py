"""Accuracy evaluation in this process against `--executor ray` with 2 workers.

    python -m benchmarks.figures.ray_scaling [--inputs 5000] [--quick]
    python -m benchmarks.figures.ray_scaling --budget-search [--min-sqnr 30]

MobileNetV2 at 96 px (random weights, seed 0, 1000 classes), its four TFLite variants (fp32, fp16,
dynamic, int8) and one Core ML variant (mlprogram fp16, on the Core ML reference evaluator off macOS),
and the Keras reference: six models over the same synthetic inputs (uniform pixels, seed 0), as
bench's evaluation runs them (batch 32, LiteRT on as many threads as there are cores).

Prints the wall time of the local evaluation and of a Ray one with 2 workers (a fresh local Ray
runtime, its start-up timed separately), their ratio (goal: Ray no slower), whether every output is
bit for bit the same, and the overhead Ray adds per shard: the workers' time (2 x the wall time)
less what they spent loading models and predicting, over the shards. It also prints each model's
throughput alone, from which docs/ray.md projects the 50,000-image case. Timings depend on what
else the machine runs; say so when quoting them.

--budget-search times the budget search instead (`convert --min-sqnr DB` on the same model, TFLite and
Core ML mlprogram families, 200 synthetic validation inputs, 50 calibration inputs): in this process,
then with its candidates converted and judged on a local Ray runtime with 2 workers. It prints both wall
times (the runtime's start-up apart), their ratio, each family's trail, and whether the chosen
artifacts (sha256) and trails are the local run's.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from benchmarks.figures.common import figure_parser, quiet, work_dir

SIZE = 96


def _artifacts(work: Path) -> list:
    """The four TFLite variants and Core ML fp16 of MobileNetV2 96 px, as EvalJobs, plus the Keras reference."""
    import keras

    from benchmarks.distributed.executor import EvalJob
    from convert.api import ConvertConfig, convert
    from train.loading import sha256_file
    from train.models import build_model

    keras.utils.set_random_seed(0)
    model_path, calib = work / "mobilenet_v2_96.keras", work / "calib.npy"
    build_model("mobilenet_v2", (SIZE, SIZE), 1000).save(model_path)
    np.save(calib, np.random.default_rng(1).uniform(0, 255, (50, SIZE, SIZE, 3)).astype(np.float32))
    jobs = [EvalJob("reference", "keras", model_path, sha256_file(model_path))]
    for name, config in [("tflite", ConvertConfig(quantizations=("fp32", "fp16", "dynamic", "int8"),
                                                  calibration=str(calib))),
                         ("coreml", ConvertConfig(targets=("coreml",), quantizations=("fp16",)))]:
        manifest = convert(model_path, work / name, config, log=quiet)
        jobs += [EvalJob(a.name, a.target, a.path(work / name), a.sha256, num_threads=os.cpu_count() or 1,
                         input_names=None) for a in manifest.artifacts]
    return jobs


def _local(jobs, inputs) -> tuple[list, float, dict]:
    from benchmarks.distributed.executor import LocalExecutor

    per_model, results = {}, []
    start = time.perf_counter()
    for job in jobs:  # one at a time, as bench's local executor does, timing each
        t = time.perf_counter()
        results += LocalExecutor().evaluate([job], inputs, 32)
        per_model[job.name] = time.perf_counter() - t
    return results, time.perf_counter() - start, per_model


def _ray(jobs, inputs) -> tuple[list, float, int, float]:
    """Outputs, wall time, shards, and the time per shard the workers were not loading or predicting."""
    from benchmarks.distributed.executor import ExecutorSpec
    from benchmarks.distributed.ray_executor import RayExecutor

    with RayExecutor.connect(ExecutorSpec("ray", workers=2)) as executor:
        start = time.perf_counter()
        results = executor.evaluate(jobs, inputs, 32)
        wall = time.perf_counter() - start
        return results, wall, executor.shards, (executor.workers * wall - executor.busy_s) / executor.shards


def _same(a, b) -> bool:
    return all(x.runtime == y.runtime and all(np.array_equal(p, q) for p, q in zip(x.outputs, y.outputs))
               for x, y in zip(a, b))


def _search(model_path: Path, out: Path, config, validation: Path, executor=None) -> tuple[list, float]:
    """(name, sha256, trail) of each chosen artifact, and the search's wall time (the validation's reference apart)."""
    from convert.api import RuntimeHooks, convert
    from mobilepack.judge import validation_judge
    from mobilepack.ray_search import RaySearch

    judge = validation_judge(model_path, config.budget(), log=quiet, validation=str(validation))
    search = RaySearch(judge, executor.workers) if executor else None
    start = time.perf_counter()
    manifest = convert(model_path, out, config, log=quiet, hooks=RuntimeHooks(judge=judge, search=search))
    return [(a.name, a.sha256, a.notes["search"]) for a in manifest.artifacts], time.perf_counter() - start


def budget_search(min_sqnr: float) -> None:
    import keras

    from benchmarks.distributed.executor import ExecutorSpec
    from benchmarks.distributed.ray_executor import RayExecutor
    from convert.api import ConvertConfig
    from train.models import build_model

    with work_dir() as work:
        keras.utils.set_random_seed(0)
        model_path, calib, val = work / "mobilenet_v2_96.keras", work / "calib.npy", work / "val.npz"
        build_model("mobilenet_v2", (SIZE, SIZE), 1000).save(model_path)
        rng = np.random.default_rng(1)
        np.save(calib, rng.uniform(0, 255, (50, SIZE, SIZE, 3)).astype(np.float32))
        np.savez(val, x=rng.uniform(0, 255, (200, SIZE, SIZE, 3)).astype(np.float32))
        config = ConvertConfig(targets=("tflite", "coreml"), calibration=str(calib), min_sqnr_db=min_sqnr)
        print(f"budget search: MobileNetV2 {SIZE} px, tflite and mlprogram ladders, SQNR >= {min_sqnr:g} dB on 200 "
              f"synthetic inputs; {os.cpu_count()} cores (shared with other work while measured)", flush=True)
        local, local_s = _search(model_path, work / "local", config, val)
        for name, _, trail in local:
            print(f"  {name}: tried {', '.join(t['candidate'] for t in trail)}")
        start = time.perf_counter()
        with RayExecutor.connect(ExecutorSpec("ray", workers=2)) as executor:
            startup = time.perf_counter() - start
            remote, ray_s = _search(model_path, work / "ray", config, val, executor)
    print(f"local search: {local_s:.1f} s")
    print(f"ray search, 2 workers: {ray_s:.1f} s (+{startup:.1f} s to start the local runtime); ray/local "
          f"{ray_s / local_s:.2f}")
    print(f"chosen artifacts (sha256) and search trails identical to local: {remote == local}")


def main() -> None:
    ap = figure_parser("ray_scaling", __doc__)
    ap.add_argument("--inputs", type=int, default=5000, help="synthetic inputs (default 5000)")
    ap.add_argument("--quick", action="store_true", help="500 inputs")
    ap.add_argument("--budget-search", action="store_true", help="time the budget search instead")
    ap.add_argument("--min-sqnr", type=float, default=30.0, help="its budget, dB (default 30)")
    args = ap.parse_args()
    if args.budget_search:
        budget_search(args.min_sqnr)
        return
    count = 500 if args.quick else args.inputs
    import ray

    with work_dir() as work:
        jobs = _artifacts(work)
        inputs = [np.random.default_rng(0).uniform(0, 255, (count, SIZE, SIZE, 3)).astype(np.float32)]
        print(f"{count} inputs of {SIZE}x{SIZE}x3, {len(jobs)} models: {', '.join(j.name for j in jobs)}; "
              f"{os.cpu_count()} cores (shared with other work while measured)", flush=True)
        local, local_s, per_model = _local(jobs, inputs)
        for name, s in per_model.items():
            print(f"  local {name}: {s:.1f} s, {count / s:.0f} inputs/s")
        start = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        startup = time.perf_counter() - start
        try:
            remote, ray_s, shards, overhead = _ray(jobs, inputs)
        finally:
            ray.shutdown()
    print(f"local evaluation: {local_s:.1f} s")
    print(f"ray, 2 workers: {ray_s:.1f} s in {shards} shards (+{startup:.1f} s to start the local runtime); "
          f"ray/local {ray_s / local_s:.2f}")
    print(f"outputs identical to local, bit for bit: {_same(local, remote)}")
    print(f"ray overhead per shard: {overhead * 1e3:.0f} ms (2 workers x wall time, less the time they spent "
          f"loading and predicting, over {shards} shards)")


if __name__ == "__main__":
    main()
